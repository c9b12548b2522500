/** Restart delays: the plain-data `Backoff` of a supervision spec turned into a `Schedule`. */
import { Duration, Schedule } from "effect"
import type { Backoff } from "../schemas/Supervision.js"

export type BackoffSchedule = Schedule.Schedule<unknown, unknown>

/** Exponential is capped by `union` with a fixed spacing: union takes the shorter of the two delays. */
export const toSchedule = (backoff: Backoff): BackoffSchedule => {
  switch (backoff._tag) {
    case "exponential":
      return Schedule.exponential(Duration.millis(backoff.baseMillis), backoff.factor).pipe(
        Schedule.union(Schedule.spaced(Duration.millis(backoff.maxMillis)))
      )
    case "fixed":
      return Schedule.spaced(Duration.millis(backoff.delayMillis))
    case "none":
      return Schedule.forever
  }
}

/** A spec may give the data form or any `Schedule` (its output is ignored; only its delays count). */
export const resolve = (backoff: Backoff | BackoffSchedule): BackoffSchedule =>
  Schedule.isSchedule(backoff) ? backoff : toSchedule(backoff)
