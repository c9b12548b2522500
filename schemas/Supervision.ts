/**
 * Supervision as plain data: how a supervisor reacts to a failing child, how often it may
 * restart before it gives up, and how long it waits between restarts. Decodable from JSON so
 * strategies can carry it.
 */
import { Schema } from "effect"

/** `one_for_one` restarts the failed child; `one_for_all` all children; `rest_for_one` the failed child and those started after it. */
export const Strategy = Schema.Literal("one_for_one", "one_for_all", "rest_for_one")
export type Strategy = typeof Strategy.Type

/** `permanent` is always restarted; `transient` only after a crash; `temporary` never. */
export const RestartType = Schema.Literal("permanent", "transient", "temporary")
export type RestartType = typeof RestartType.Type

const Millis = Schema.Number.pipe(Schema.nonNegative(), Schema.finite())

/** Restart delay `min(max, base × factor^(attempt-1))`; `none` restarts at once. */
export const Backoff = Schema.Union(
  Schema.TaggedStruct("exponential", {
    baseMillis: Millis,
    factor: Schema.Number.pipe(Schema.greaterThanOrEqualTo(1), Schema.finite()),
    maxMillis: Millis
  }),
  Schema.TaggedStruct("fixed", { delayMillis: Millis }),
  Schema.TaggedStruct("none", {})
)
export type Backoff = typeof Backoff.Type

export const defaultBackoff: Backoff = { _tag: "exponential", baseMillis: 10, factor: 2, maxMillis: 5_000 }

/**
 * At most `intensity` restarts within `period`; one more and the supervisor escalates. And, when
 * `maxConsecutiveRestarts` is set, at most that many restarts of one child in a row without the
 * child handling a message in between (a child that fails on every message), whatever the clock.
 */
export class SupervisionPolicy extends Schema.Class<SupervisionPolicy>("SupervisionPolicy")({
  strategy: Schema.optionalWith(Strategy, { default: () => "one_for_one" as const, exact: true }),
  intensity: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { default: () => 3, exact: true }),
  maxConsecutiveRestarts: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  /** Milliseconds (a number is a valid `Duration` input, so a decoded policy spreads into a spec). */
  period: Schema.optionalWith(Millis, { default: () => 5_000, exact: true }),
  backoff: Schema.optionalWith(Backoff, { default: () => defaultBackoff, exact: true })
}) {}
