/**
 * The messages of a run's trading spine (DESIGN.md, "The shape of a run"), one timestamp's worth of
 * work per message (docs/backtest-engine.md):
 *
 *   feed ─MarketUpdate→ Coordinator ─MarketOpen→ ExecutionDesk ─Book→ Ledger
 *                       Coordinator ─RequestOpinions→ Analysts (AnalystProtocol.ts)
 *                       Coordinator ─Judge→ RiskOfficer ─ViewBooks→ Ledger
 *                                           RiskOfficer ─PlaceOrders→ ExecutionDesk
 *                                           Ledger ─BooksMarked→ RiskOfficer (a breaker's limit crossed at the marks, or by same-close fills)
 *
 * Messages built on the per-bar path are built unchecked (`marketUpdate(fields)`…, Unchecked.ts):
 * no validation and none of the class constructor's work; their fields come from decoded bars and
 * from pure functions, not from outside.
 */
import { Schema } from "effect"
import { Decision } from "./Decision.js"
import { ExternalSignal } from "./ExternalSignal.js"
import { OrderId, RoundId, Symbol, Timestamp } from "./Ids.js"
import { Bar, Price } from "./Market.js"
import { Metrics } from "./Metrics.js"
import { Money } from "./Money.js"
import { Fill, Order, Quantity } from "./Order.js"
import { PortfolioSnapshot } from "./Portfolio.js"
import { IllegalTransition, TradingState, TradingStatus } from "./Risk.js"
import { Trade } from "./Trade.js"
import { unchecked } from "./Unchecked.js"

const Bars = Schema.Array(Bar)

/**
 * Every bar of one timestamp, sorted by symbol: the feed's message to the coordinator. `signals`:
 * the outside signals delivered with this slice (absent when there are none, as on almost every
 * slice), each about a symbol that has a bar here; the coordinator passes them to that symbol's round.
 */
export class MarketUpdate extends Schema.TaggedClass<MarketUpdate>()("MarketUpdate", {
  ts: Timestamp,
  bars: Bars,
  signals: Schema.optional(Schema.Array(ExternalSignal))
}) {}

// --- execution desk ----------------------------------------------------------------------------

/** The bars of a new timestamp reach the desk before any decision on them: orders due at this open fill now. */
export class MarketOpen extends Schema.TaggedClass<MarketOpen>()("MarketOpen", { ts: Timestamp, bars: Bars }) {}

/** Orders the risk officer passed (only it sends these): the desk places each once, by idempotency key. */
export class PlaceOrders extends Schema.TaggedClass<PlaceOrders>()("PlaceOrders", {
  ts: Timestamp,
  orders: Schema.Array(Order),
  /**
   * With a volume limit only: symbols whose order still working (partly filled, or not yet) a newer
   * decision supersedes without an order of its own to replace it (it asked for no change, or was
   * rejected, or waits for an operator): the desk cancels it, naming the decision's round. Absent: none.
   */
  superseded: Schema.optional(Schema.Array(Schema.Struct({ symbol: Symbol, round: RoundId })))
}) {}

/**
 * The feed has no more bars (a run that ran to the end of its data): the orders still waiting for
 * a bar to fill at never will, and are cancelled, saying so.
 */
export class DataEnded extends Schema.TaggedClass<DataEnded>()("DataEnded", { ts: Timestamp }) {}

export const DeskProtocol = Schema.Union(MarketOpen, PlaceOrders, DataEnded)
export type DeskProtocol = typeof DeskProtocol.Type

// --- ledger ------------------------------------------------------------------------------------

/** An order the desk still works, and the quantity of it left to fill (less than ordered once partly filled). */
export const OpenOrder = Schema.Struct({ order: OrderId, left: Quantity })
export type OpenOrder = typeof OpenOrder.Type

/**
 * The fills of a timestamp and its bars (to mark the books at their closes). Bars may be empty (a
 * same-close fill). `open`: the orders the desk still holds unfilled after these fills (their
 * symbol had no bar to fill at yet), for the risk officer to judge against (`BooksView.open`).
 */
export class Book extends Schema.TaggedClass<Book>()("Book", {
  ts: Timestamp,
  bars: Bars,
  fills: Schema.Array(Fill),
  open: Schema.Array(OrderId),
  /** With a volume limit only: what is left to fill of each order of `open` (`BooksView.left`). */
  left: Schema.optional(Schema.Array(OpenOrder))
}) {}

/** What the risk officer judges against: the books once every fill up to `asOf` is booked. */
export const BooksView = Schema.Struct({
  snapshot: PortfolioSnapshot,
  /**
   * The orders placed and not filled as of `snapshot.ts` (the desk's last `Book`): they will spend
   * cash and take positions, and the next intent must be judged as if they had.
   */
  open: Schema.Array(OrderId),
  /**
   * With a volume limit only: what is left of each order of `open` — an order partly filled has
   * its fills in the snapshot already, and only what is left still to come.
   */
  left: Schema.optional(Schema.Array(OpenOrder)),
  /** Equity at the start of the trading day (UTC) of `snapshot.ts`. */
  dayStartEquity: Money,
  /** The highest mark-to-market equity so far (the initial cash counts). */
  peakEquity: Money
})
export type BooksView = typeof BooksView.Type

/** Answered once the ledger has booked the bars of `asOf` (it holds the reply until then). */
export class ViewBooks extends Schema.TaggedRequest<ViewBooks>()("ViewBooks", {
  failure: Schema.Never,
  success: BooksView,
  payload: { asOf: Timestamp }
}) {}

export const FinalBooks = Schema.Struct({
  metrics: Metrics,
  trades: Schema.Array(Trade),
  snapshot: PortfolioSnapshot
})
export type FinalBooks = typeof FinalBooks.Type

/** The run is over: the metrics of the whole equity curve, the closed trades and the final books. */
export class CloseBooks extends Schema.TaggedRequest<CloseBooks>()("CloseBooks", {
  failure: Schema.Never,
  success: FinalBooks,
  payload: {}
}) {}

/**
 * Start the risk marks afresh from the current equity: the peak (for the drawdown halt) and the
 * day's start (for the daily loss breaker). Sent by the risk officer when an operator lifts a halt
 * or a `reducing`, so the breaker does not trip again on the loss that was acknowledged.
 */
export class RebaseRiskMarks extends Schema.TaggedClass<RebaseRiskMarks>()("RebaseRiskMarks", {}) {}

export const LedgerProtocol = Schema.Union(Book, ViewBooks, CloseBooks, RebaseRiskMarks)
export type LedgerProtocol = typeof LedgerProtocol.Type

// --- risk officer ------------------------------------------------------------------------------

/**
 * A symbol whose decided target is still being worked (the risk officer said so: a rule or a gate
 * reduced its intent) and whose consensus stands on this bar: its round, and the bar's close.
 */
export const Remainder = Schema.Struct({ round: RoundId, symbol: Symbol, close: Price })
export type Remainder = typeof Remainder.Type

/**
 * Decisions that change a symbol's target, for the risk officer to size, judge and pass on, with
 * each decision's bar close (the reference price), and the remainders still worked toward earlier
 * targets (judged first). The answer counts what happened; `blocked` rounds could not be judged,
 * and `refused` rounds' intents were rejected by a rule, a gate or the trading state: the
 * coordinator offers both again on the symbol's next bar (a rejection holds only while what made it
 * holds: a position slot frees, a day starts, a halt is lifted). `working` rounds (decisions or
 * remainders) leave their symbol's target not reached, to be worked on its next bar
 * (`RunStarted.reducedIntents`); the others' symbols have nothing left to work.
 */
export class Judge extends Schema.TaggedRequest<Judge>()("Judge", {
  failure: Schema.Never,
  success: Schema.Struct({
    placed: Schema.Int,
    rejected: Schema.Int,
    /** Intents held for a human (the `pause` policy). */
    pending: Schema.Int,
    blocked: Schema.Array(RoundId),
    refused: Schema.Array(RoundId),
    working: Schema.Array(RoundId),
    /**
     * The decisions (of `refused`) and remainders the trading state alone rejected while `halted`:
     * the same answer until the state changes (`RunStarted.stateRejections`). Absent: none.
     */
    standing: Schema.optional(Schema.Array(RoundId))
  }),
  payload: {
    ts: Timestamp,
    decisions: Schema.Array(Decision),
    closes: Schema.Array(Price),
    remainders: Schema.optional(Schema.Array(Remainder))
  }
}) {}

/** An operator's (or the run's approver's) answer to an intent held under the `pause` policy. */
export class ResolveApproval extends Schema.TaggedClass<ResolveApproval>()("ResolveApproval", {
  round: RoundId,
  approved: Schema.Boolean,
  by: Schema.String.pipe(Schema.minLength(1)),
  reason: Schema.String,
  /** Nobody decided within the strategy's timeout: rejected, and recorded as `expired`. */
  expired: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true })
}) {}

export class GetTradingStatus extends Schema.TaggedRequest<GetTradingStatus>()("GetTradingStatus", {
  failure: Schema.Never,
  success: TradingStatus,
  payload: {}
}) {}

/**
 * An operator moves the trading state: halt, reduce only, or lift a halt or a `reducing` (the only
 * way a halt is ever lifted). Answers the new status, or `IllegalTransition` saying why not.
 */
export class SetTradingState extends Schema.TaggedRequest<SetTradingState>()("SetTradingState", {
  failure: IllegalTransition,
  success: TradingStatus,
  payload: {
    to: TradingState,
    actor: Schema.String.pipe(Schema.trimmed(), Schema.minLength(1)),
    reason: Schema.String.pipe(Schema.trimmed(), Schema.minLength(1))
  }
}) {}

/**
 * The ledger has marked the books of `ts` at its closes, or booked fills at those closes
 * (`same_close`, in runs whose `RunStarted.breakers` is `fills`), and a breaker's limit is crossed
 * there — the equity went past the daily loss or the drawdown limit since the ledger last looked —
 * or it is the first mark of a day after a day whose loss went past its limit (the day's `reducing`
 * may be lifted). Sent only in runs that check their breakers at every mark (`RunStarted.breakers`),
 * and only then: the risk officer moves the trading state on this bar, whether or not an intent is
 * judged on it.
 */
export class BooksMarked extends Schema.TaggedClass<BooksMarked>()("BooksMarked", {
  ts: Timestamp,
  /** Mark-to-market equity at `ts`. */
  equity: Money,
  /** The highest equity so far (as `BooksView.peakEquity`). */
  peakEquity: Money,
  /** Equity at the start of the trading day of `ts` (as `BooksView.dayStartEquity`). */
  dayStartEquity: Money
}) {}

export const RiskProtocol = Schema.Union(Judge, ResolveApproval, GetTradingStatus, SetTradingState, BooksMarked)
export type RiskProtocol = typeof RiskProtocol.Type

// --- built on every bar (Unchecked.ts) ------------------------------------------------------------

export const marketUpdate = unchecked(MarketUpdate)
export const marketOpen = unchecked(MarketOpen)
export const placeOrders = unchecked(PlaceOrders)
export const book = unchecked(Book)
export const viewBooks = unchecked(ViewBooks)
export const judge = unchecked(Judge)
export const booksMarked = unchecked(BooksMarked)
