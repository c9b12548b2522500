/**
 * Virtual time for backtests and replays: a `Clock` whose time moves only when the run's driver
 * says so. Sleepers (actor timers, round deadlines, restart backoff, ask deadlines) wake in deadline
 * order, ties in the order they went to sleep, one deadline at a time — so a fiber woken at t sees
 * the clock read t, and two runs of the same inputs wake the same fibers in the same order.
 */
import { Clock, Duration, Effect } from "effect"

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
  private readonly heap: Array<Sleeper> = []

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
      this.push(sleeper)
      return Effect.sync(() => this.remove(sleeper))
    })
  }

  /** The earliest pending deadline, if any. */
  get nextWakeup(): number | undefined {
    return this.heap[0]?.at
  }

  get pending(): number {
    return this.heap.length
  }

  /**
   * If the earliest deadline is at or before `limit`, move time to it and wake every sleeper due
   * then (their fibers are scheduled, not run); otherwise move time to `limit`. Returns whether
   * anything woke. Time never goes backwards.
   */
  wakeNext(limit: number): boolean {
    const first = this.heap[0]
    if (first === undefined || first.at > limit) {
      if (limit > this.time) this.time = limit
      return false
    }
    if (first.at > this.time) this.time = first.at
    const at = first.at
    while (this.heap.length > 0 && this.heap[0]!.at === at) {
      const sleeper = this.heap[0]!
      this.remove(sleeper)
      sleeper.wake(Effect.void)
    }
    return true
  }

  private before(a: Sleeper, b: Sleeper): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  private push(sleeper: Sleeper): void {
    sleeper.index = this.heap.length
    this.heap.push(sleeper)
    this.up(sleeper.index)
  }

  private remove(sleeper: Sleeper): void {
    const i = sleeper.index
    if (i < 0) return
    sleeper.index = -1
    const last = this.heap.pop()!
    if (i < this.heap.length) {
      this.heap[i] = last
      last.index = i
      this.down(i)
      this.up(last.index)
    }
  }

  private up(i: number): void {
    const heap = this.heap
    const item = heap[i]!
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.before(item, heap[parent]!)) break
      heap[i] = heap[parent]!
      heap[i]!.index = i
      i = parent
    }
    heap[i] = item
    item.index = i
  }

  private down(i: number): void {
    const heap = this.heap
    const n = heap.length
    const item = heap[i]!
    while (true) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && this.before(heap[right]!, heap[left]!) ? right : left
      if (!this.before(heap[child]!, item)) break
      heap[i] = heap[child]!
      heap[i]!.index = i
      i = child
    }
    heap[i] = item
    item.index = i
  }
}
