/**
 * A live paper run's inbox of outside signals (TradingView alerts accepted by the webhook): filled
 * by the edge whenever an alert comes, drained by the run's driver right before each slice
 * (`Backtest.Options.signals`), so every signal enters the run at a slice boundary and is recorded
 * there — the run stays a function of its recorded inputs. Bounded: a paused run does not pile up
 * an unbounded backlog.
 */
import type { ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { StrategyId, Symbol } from "../../schemas/Ids.js"

/** Signals one run may hold undelivered (a paused run's backlog). */
export const CAPACITY = 1_000

const NONE: ReadonlyArray<ExternalSignal> = []

export class SignalInbox {
  private queue: Array<ExternalSignal> = []
  private ended = false

  constructor(
    readonly strategy: StrategyId,
    /** The symbols the run trades: an alert about another one is refused at the edge. */
    readonly symbols: ReadonlyArray<Symbol>
  ) {}

  get size(): number {
    return this.queue.length
  }

  /** Whether the run has ended (`close`): it takes nothing more. */
  get closed(): boolean {
    return this.ended
  }

  /** Queue a signal for the next slice; false when the inbox is full or closed. */
  offer(signal: ExternalSignal): boolean {
    if (this.ended || this.queue.length >= CAPACITY) return false
    this.queue.push(signal)
    return true
  }

  /**
   * The run is ending (an operator stopped it): from now on nothing is taken; what is queued stays
   * for `close`, or for a slice that comes before the run ends.
   */
  readonly shut = (): void => {
    this.ended = true
  }

  /**
   * The run has ended: what is queued, oldest first, which no slice will take (the run records it
   * as not applied); from now on nothing is taken. Synchronous, so no alert can slip in between.
   */
  readonly close = (): ReadonlyArray<ExternalSignal> => {
    this.ended = true
    return this.drain()
  }

  /** Everything queued, oldest first (the same empty array when nothing is: asked every slice). */
  readonly drain = (): ReadonlyArray<ExternalSignal> => {
    if (this.queue.length === 0) return NONE
    const out = this.queue
    this.queue = []
    return out
  }
}
