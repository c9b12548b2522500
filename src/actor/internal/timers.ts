/**
 * Ask deadlines without a fiber per ask: an indexed min-heap of deadlines and one timer fiber that
 * sleeps (on the system's `Clock`, so `TestClock` drives it) until the earliest one. A reply removes
 * its entry in O(log n); with one timeout the fiber wakes about once per timeout period, not per ask.
 */
import { Deferred, Effect, type Fiber } from "effect"
import { IndexedHeap } from "./heap.js"

export class Deadline {
  index = -1
  constructor(readonly at: number, readonly expire: () => void) {}
}

export class Deadlines {
  private readonly heap = new IndexedHeap<Deadline>((a, b) => a.at < b.at)
  private wake: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  private early: Deferred.Deferred<void> | undefined = undefined
  private sleepingUntil = Infinity
  fiber: Fiber.RuntimeFiber<void> | undefined = undefined

  constructor(private readonly now: () => number) {}

  add(at: number, expire: () => void): Deadline {
    const deadline = new Deadline(at, expire)
    this.heap.push(deadline)
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
    this.heap.remove(deadline)
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
      const first = self.heap.peek()
      if (first === undefined) return park
      const now = self.now()
      if (first.at <= now) {
        for (let due = self.heap.peek(); due !== undefined && due.at <= now; due = self.heap.peek()) {
          self.heap.remove(due)
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
}
