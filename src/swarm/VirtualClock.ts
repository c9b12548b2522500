/**
 * Virtual time for backtests and replays: a `Clock` whose time moves only when the run's driver
 * says so. Sleepers (actor timers, round deadlines, restart backoff, ask deadlines) wake in deadline
 * order, ties in the order they went to sleep, one deadline at a time — so a fiber woken at t sees
 * the clock read t, and two runs of the same inputs wake the same fibers in the same order.
 */
import { Clock, Duration, Effect } from "effect"
import { IndexedHeap } from "../actor/internal/heap.js"

interface Sleeper {
  readonly at: number
  readonly seq: number
  readonly wake: (effect: Effect.Effect<void>) => void
  index: number
}

export class VirtualClock implements Clock.Clock {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  private time: number
  private seq = 0
  /** Earliest deadline first; among equal deadlines, the first to fall asleep. */
  private readonly heap = new IndexedHeap<Sleeper>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq))

  constructor(start: number) {
    this.time = start
  }

  unsafeCurrentTimeMillis(): number {
    return this.time
  }

  readonly currentTimeMillis: Effect.Effect<number> = Effect.sync(() => this.time)

  unsafeCurrentTimeNanos(): bigint {
    return BigInt(Math.round(this.time)) * 1_000_000n
  }

  readonly currentTimeNanos: Effect.Effect<bigint> = Effect.sync(() => this.unsafeCurrentTimeNanos())

  sleep(duration: Duration.Duration): Effect.Effect<void> {
    const millis = Duration.toMillis(duration)
    return Effect.async<void>((wake) => {
      const sleeper: Sleeper = { at: this.time + (Number.isFinite(millis) ? Math.max(0, millis) : Infinity), seq: this.seq++, wake, index: -1 }
      this.heap.push(sleeper)
      return Effect.sync(() => {
        this.heap.remove(sleeper)
      })
    })
  }

  /**
   * Run `task` when time reaches `at` (woken as a sleeper is, in deadline order with the sleepers),
   * without a fiber: the actor system's ask deadlines (src/actor/internal/timers.ts `TimerClock`).
   * Returns the cancel.
   */
  readonly scheduleAt = (at: number, task: () => void): () => void => {
    const sleeper: Sleeper = { at: Math.max(at, this.time), seq: this.seq++, wake: task, index: -1 }
    this.heap.push(sleeper)
    return () => this.heap.remove(sleeper)
  }

  /** The earliest pending deadline, if any. */
  get nextWakeup(): number | undefined {
    return this.heap.peek()?.at
  }

  get pending(): number {
    return this.heap.size
  }

  /**
   * If the earliest deadline is at or before `limit`, move time to it and wake every sleeper due
   * then (their fibers are scheduled, not run); otherwise move time to `limit`. Returns whether
   * anything woke. Time never goes backwards.
   */
  wakeNext(limit: number): boolean {
    const first = this.heap.peek()
    if (first === undefined || first.at > limit) {
      if (limit > this.time) this.time = limit
      return false
    }
    if (first.at > this.time) this.time = first.at
    const at = first.at
    for (let sleeper = this.heap.peek(); sleeper !== undefined && sleeper.at === at; sleeper = this.heap.peek()) {
      this.heap.remove(sleeper)
      sleeper.wake(Effect.void)
    }
    return true
  }
}
