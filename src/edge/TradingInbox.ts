/**
 * A live run's inbox of operators' trading-state commands (`runs.trading`): filled by the edge,
 * drained by the run's driver right before each slice (`Backtest.Options.trading`), so every
 * command enters the run at a slice boundary and is recorded there, as an outside signal is
 * (SignalInbox.ts) — or at once, where it stands, while the run waits for an operator's answer to a
 * held intent (`Backtest.Options.waiting`). Each command carries its answer: the driver tells it synchronously as it takes
 * it, so a command is either still here (withdrawable) or answered — never in between. A run an
 * operator paused stands at its next slice and takes its commands as they come (`arrival`).
 */
import { Deferred, Effect, Exit, FiberId } from "effect"
import type * as Backtest from "../swarm/Backtest.js"

/** Commands one run may hold untaken: an operator does not queue more than a few. */
export const CAPACITY = 16

/** A command with what to tell its sender if the run ends before taking it. */
export interface Queued extends Backtest.TradingCommand {
  readonly ended: () => void
}

const NONE: ReadonlyArray<Queued> = []

export class TradingInbox {
  private queue: Array<Queued> = []
  private ended = false
  /** Told when a command comes: a paused run's driver waits on it (`arrival`). */
  private waiter: Deferred.Deferred<void> | undefined

  /** Queue a command for the next slice; false when the inbox is full or the run has ended. */
  offer(command: Queued): boolean {
    if (this.ended || this.queue.length >= CAPACITY) return false
    this.queue.push(command)
    this.wake()
    return true
  }

  /** Done once a command waits here (at once when one does), or the run has ended. */
  readonly arrival: Effect.Effect<void> = Effect.suspend(() => {
    if (this.queue.length > 0 || this.ended) return Effect.void
    this.waiter ??= Deferred.unsafeMake<void>(FiberId.none)
    return Deferred.await(this.waiter)
  })

  private wake() {
    const waiter = this.waiter
    this.waiter = undefined
    if (waiter !== undefined) Deferred.unsafeDone(waiter, Exit.void)
  }

  /** Take back a command no slice has taken yet; false when one has (it is answered). */
  withdraw(command: Queued): boolean {
    const i = this.queue.indexOf(command)
    if (i < 0) return false
    this.queue.splice(i, 1)
    return true
  }

  /** Everything queued, oldest first (the same empty array when nothing is: asked every slice). */
  readonly drain = (): ReadonlyArray<Queued> => {
    if (this.queue.length === 0) return NONE
    const out = this.queue
    this.queue = []
    return out
  }

  /** The run has ended: what is queued (never taken), and nothing is taken from now on. */
  readonly close = (): ReadonlyArray<Queued> => {
    this.ended = true
    this.wake()
    return this.drain()
  }
}
