/**
 * A live paper run's inbox of outside signals (TradingView alerts accepted by the webhook): filled
 * by the edge whenever an alert comes, drained by the run's driver right before each slice
 * (`Backtest.Options.signals`), so every signal enters the run at a slice boundary and is recorded
 * there — the run stays a function of its recorded inputs. Bounded: a paused run does not pile up
 * an unbounded backlog.
 *
 * A webhook's alert is staged first (`stage`) and taken only once its claim is committed
 * (`confirm`), or dropped if the commit fails (`cancel`): no slice takes an alert whose claim a
 * rollback released, which the sender's retry would deliver a second time.
 */
import { arrivalOrder, type ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { StrategyId, Symbol } from "../../schemas/Ids.js"

/** Signals one run may hold undelivered (a paused run's backlog). */
export const CAPACITY = 1_000

const NONE: ReadonlyArray<ExternalSignal> = []

export class SignalInbox {
  private queue: Array<ExternalSignal> = []
  /** Staged signals: held against the capacity, not taken by a slice until confirmed. */
  private staged: Array<ExternalSignal> = []
  private ended = false

  constructor(
    readonly strategy: StrategyId,
    /** The symbols the run trades: an alert about another one is refused at the edge. */
    readonly symbols: ReadonlyArray<Symbol>
  ) {}

  /** Signals held: queued, and staged. */
  get size(): number {
    return this.queue.length + this.staged.length
  }

  /** Whether the run has ended (`close`): it takes nothing more. */
  get closed(): boolean {
    return this.ended
  }

  /** Queue a signal for the next slice; false when the inbox is full or closed. */
  offer(signal: ExternalSignal): boolean {
    if (this.ended || this.size >= CAPACITY) return false
    this.queue.push(signal)
    return true
  }

  /** Hold a signal until `confirm` queues it or `cancel` drops it; false when the inbox is full or closed. */
  stage(signal: ExternalSignal): boolean {
    if (this.ended || this.size >= CAPACITY) return false
    this.staged.push(signal)
    return true
  }

  /**
   * Queue a staged signal for the next slice. If the run ended meanwhile, `close` has already
   * handed it over with what was queued (the run records it as not applied).
   */
  confirm(signal: ExternalSignal): void {
    if (!this.unstage(signal)) return
    // In arrival order among what waits (`arrivalOrder`), as a restart would give it back: claims
    // that overlap commit in either order.
    let i = this.queue.length
    while (i > 0 && arrivalOrder(this.queue[i - 1]!, signal) > 0) i--
    this.queue.splice(i, 0, signal)
  }

  /** Drop a staged signal: it was never delivered. */
  cancel(signal: ExternalSignal): void {
    this.unstage(signal)
  }

  private unstage(signal: ExternalSignal): boolean {
    const i = this.staged.indexOf(signal)
    if (i < 0) return false
    this.staged.splice(i, 1)
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
   * The run has ended: what is queued, oldest first, then what is staged, which no slice will take
   * (the run records it as not applied); from now on nothing is taken. Synchronous, so no alert can
   * slip in between.
   */
  readonly close = (): ReadonlyArray<ExternalSignal> => {
    this.ended = true
    const left = this.staged.length === 0 ? this.drain() : [...this.drain(), ...this.staged]
    this.staged = []
    return left
  }

  /** Everything queued, oldest first (the same empty array when nothing is: asked every slice); not what is staged. */
  readonly drain = (): ReadonlyArray<ExternalSignal> => {
    if (this.queue.length === 0) return NONE
    const out = this.queue
    this.queue = []
    return out
  }
}
