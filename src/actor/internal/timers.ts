/**
 * Ask deadlines without a fiber per ask: an indexed min-heap of deadlines, expired by one timer.
 * On a clock that can run a callback at a time (`TimerClock`: the world's virtual clock, where every
 * backtest, paper run and replay runs) that timer is one callback armed for the earliest deadline —
 * no fiber at all. On any other clock (the real one, `TestClock`) one timer fiber sleeps until the
 * earliest deadline. A reply removes its entry in O(log n).
 */
import { type Clock, Deferred, Effect, Fiber } from "effect"
import { IndexedHeap } from "./heap.js"

/** A clock that runs a callback at a time of its own, without a fiber; the callback is cancelled by the function returned. */
export interface TimerClock extends Clock.Clock {
  readonly scheduleAt: (at: number, task: () => void) => () => void
}

const isTimerClock = (clock: Clock.Clock): clock is TimerClock => typeof (clock as Partial<TimerClock>).scheduleAt === "function"

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
  /** The callback timer (a `TimerClock`'s): when it is armed for, and how to cancel it. */
  private readonly timerClock: TimerClock | undefined
  private armedAt = Infinity
  private disarm: (() => void) | undefined = undefined
  private closed = false

  constructor(private readonly clock: Clock.Clock) {
    this.timerClock = isTimerClock(clock) ? clock : undefined
  }

  /** Whether a fiber must run `run` (no callback timer on this clock). */
  get needsFiber(): boolean {
    return this.timerClock === undefined
  }

  private now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  add(at: number, expire: () => void): Deadline {
    const deadline = new Deadline(at, expire)
    this.heap.push(deadline)
    if (this.timerClock !== undefined) {
      if (at < this.armedAt && !this.closed) this.arm(at)
    } else if (this.wake !== undefined) {
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
    if (this.heap.size === 0 && this.disarm !== undefined) {
      this.disarm()
      this.disarm = undefined
      this.armedAt = Infinity
    }
  }

  /** Expire every deadline due now. */
  private expireDue(): void {
    const now = this.now()
    for (let due = this.heap.peek(); due !== undefined && due.at <= now; due = this.heap.peek()) {
      this.heap.remove(due)
      due.expire()
    }
  }

  /** (Re)arm the callback timer for `at`. */
  private arm(at: number): void {
    this.disarm?.()
    this.armedAt = at
    this.disarm = this.timerClock!.scheduleAt(at, this.fire)
  }

  /** The callback timer went off: expire what is due, arm for the next deadline. */
  private readonly fire = (): void => {
    this.disarm = undefined
    this.armedAt = Infinity
    this.expireDue()
    // An expiry that added a deadline (re-entrantly) may have armed the timer already, maybe later.
    const next = this.heap.peek()
    if (next !== undefined && next.at < this.armedAt && !this.closed) this.arm(next.at)
  }

  /** Stop expiring deadlines (the system is shut down): the timer fiber is interrupted, the callback cancelled. */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    this.closed = true
    this.disarm?.()
    this.disarm = undefined
    this.armedAt = Infinity
    return this.fiber === undefined ? Effect.void : Fiber.interrupt(this.fiber)
  })

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
        self.expireDue()
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
