/**
 * Ask deadlines without a fiber per ask: an indexed min-heap of deadlines and one timer fiber that
 * sleeps (on the system's `Clock`, so `TestClock` drives it) until the earliest one. A reply removes
 * its entry in O(log n); with one timeout the fiber wakes about once per timeout period, not per ask.
 */
import { Deferred, Effect, type Fiber } from "effect"

export class Deadline {
  index = -1
  constructor(readonly at: number, readonly expire: () => void) {}
}

export class Deadlines {
  private readonly heap: Array<Deadline> = []
  private wake: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  private early: Deferred.Deferred<void> | undefined = undefined
  private sleepingUntil = Infinity
  fiber: Fiber.RuntimeFiber<void> | undefined = undefined

  constructor(private readonly now: () => number) {}

  add(at: number, expire: () => void): Deadline {
    const deadline = new Deadline(at, expire)
    deadline.index = this.heap.length
    this.heap.push(deadline)
    this.up(deadline.index)
    if (this.wake !== undefined) {
      const wake = this.wake
      this.wake = undefined
      wake(Effect.void)
    } else if (at < this.sleepingUntil && this.early !== undefined) {
      Deferred.unsafeDone(this.early, Effect.void)
    }
    return deadline
  }

  remove(deadline: Deadline): void {
    const i = deadline.index
    if (i < 0) return
    deadline.index = -1
    const last = this.heap.pop()!
    if (i < this.heap.length) {
      this.heap[i] = last
      last.index = i
      this.down(i)
      this.up(last.index)
    }
  }

  /** The timer fiber's loop: park while empty, sleep to the earliest deadline, expire what is due. */
  readonly run: Effect.Effect<void> = Effect.suspend(() => {
    const self = this
    const park = Effect.async<void>((resume) => {
      self.wake = resume
      return Effect.sync(() => {
        self.wake = undefined
      })
    })
    return Effect.forever(Effect.suspend(() => {
      const first = self.heap[0]
      if (first === undefined) return park
      const now = self.now()
      if (first.at <= now) {
        while (self.heap.length > 0 && self.heap[0]!.at <= now) {
          const due = self.heap[0]!
          self.remove(due)
          due.expire()
        }
        return Effect.void
      }
      self.sleepingUntil = first.at
      return Effect.flatMap(Deferred.make<void>(), (early) => {
        self.early = early
        return Effect.raceFirst(Effect.sleep(first.at - now), Deferred.await(early)).pipe(
          Effect.ensuring(Effect.sync(() => {
            self.early = undefined
            self.sleepingUntil = Infinity
          }))
        )
      })
    }))
  })

  private up(i: number): void {
    const heap = this.heap
    const item = heap[i]!
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]!.at <= item.at) break
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
      const child = right < n && heap[right]!.at < heap[left]!.at ? right : left
      if (heap[child]!.at >= item.at) break
      heap[i] = heap[child]!
      heap[i]!.index = i
      i = child
    }
    heap[i] = item
    item.index = i
  }
}
