/**
 * A bound on how much of one kind of work one turn of the event loop does: a claim per piece of
 * work, and once a turn has granted its allowance, further claims wait for a later turn
 * (`setImmediate`, after the loop's timers and I/O have had theirs), served in the order they came.
 * The allowance is as many pieces as fit in `budgetMillis`, learnt from the turns so far: how long
 * each took from its first claim to its end, over the claims it granted — which counts the work
 * the claims led to, and anything else the turn did: an estimate on the safe side.
 *
 * For fan-out (Follow.ts's `fanOut`): the SSE clients of a run share the process with the run itself. With 500
 * of them woken for every slice of a paper run paced at 1,000 slices a second, their bursts took
 * turns of up to half a second, and the run, waiting behind them for its timers and its database,
 * was slowed to 25 slices a second — its clients keeping up with it because it had slowed down.
 * Bounded, the fan-out gets what the run leaves; clients it cannot keep up with fall behind and are
 * disconnected, as a slow client is.
 */
import { Effect } from "effect"

/** The longest rest after a turn (`share`): a turn the collector made long does not starve the followers for long. */
const MAX_REST_MILLIS = 50

export class TurnBudget {
  /** When this turn's first claim was granted (`performance.now()`), or -1 before it. */
  private turnStart = -1
  private granted = 0
  /** Milliseconds a claim's work takes, learnt (a moving average); 0 until a turn has been measured. */
  private millisPerClaim = 0
  private waiters: Array<() => void> = []
  private resetScheduled = false
  private restScheduled = false
  /** Before this (`performance.now()`), no claim is granted: the rest after a turn with claims (`share`). */
  restUntil = -Infinity

  /**
   * `share`: at most this part of the time for the claims — a turn that granted some is followed by
   * a rest (1 / share − 1 times as long as it took, at most `MAX_REST_MILLIS`) in which none is. A
   * bound per turn alone is no bound on the time when turns are short: a paper run's loop turns
   * every millisecond, and 2 ms of fan-out a turn is two thirds of the core. Default 1: no rest.
   */
  constructor(readonly budgetMillis: number, readonly share = 1) {}

  /** How many claims a turn grants now (at least one). */
  get allowance(): number {
    return this.millisPerClaim === 0 ? 16 : Math.max(1, Math.floor(this.budgetMillis / this.millisPerClaim))
  }

  /** Completes at once while the turn has room, else in a later turn. Interruptible: an interrupted claim leaves the queue. */
  readonly claim: Effect.Effect<void> = Effect.suspend(() => {
    if (this.waiters.length === 0 && this.fits() && (this.turnStart >= 0 || performance.now() >= this.restUntil)) {
      this.grant()
      return Effect.void
    }
    return Effect.async<void>((resume) => {
      const waiter = () => resume(Effect.void)
      this.waiters.push(waiter)
      this.scheduleReset()
      return Effect.sync(() => {
        const i = this.waiters.indexOf(waiter)
        if (i >= 0) this.waiters.splice(i, 1)
      })
    })
  })

  private fits(): boolean {
    return this.turnStart < 0 || this.granted < this.allowance
  }

  private grant(): void {
    if (this.turnStart < 0) {
      this.turnStart = performance.now()
      this.scheduleReset()
    }
    this.granted++
  }

  private scheduleReset(): void {
    if (this.resetScheduled) return
    this.resetScheduled = true
    setImmediate(() => {
      this.resetScheduled = false
      if (this.turnStart >= 0 && this.granted > 0) {
        const now = performance.now()
        const took = now - this.turnStart
        const sample = took / this.granted
        this.millisPerClaim = this.millisPerClaim === 0 ? sample : 0.8 * this.millisPerClaim + 0.2 * sample
        if (this.share < 1) this.restUntil = now + Math.min(MAX_REST_MILLIS, took * (1 / this.share - 1))
      }
      this.turnStart = -1
      this.granted = 0
      this.serve()
    })
  }

  /** The waiting claims a new turn has room for, in the order they came — after the rest, if any. */
  private serve(): void {
    if (this.waiters.length === 0) return
    const rest = this.restUntil - performance.now()
    if (rest > 0) {
      if (this.restScheduled) return
      this.restScheduled = true
      setTimeout(() => {
        this.restScheduled = false
        this.serve()
      }, Math.ceil(rest))
      return
    }
    let n = 0
    while (n < this.waiters.length && this.fits()) {
      this.grant()
      n++
    }
    const now = this.waiters.splice(0, n)
    for (const w of now) w()
    if (this.waiters.length > 0) this.scheduleReset()
  }
}
