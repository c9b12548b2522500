/**
 * The risk officer's vocabulary: the trading state machine (`active → reducing → halted`, as
 * nautilus_trader's risk engine has it), the hard limits strategies may tighten but never loosen,
 * the approval policy, and the context an order intent is judged in.
 *
 * Percentages are plain numbers of percent (`25` is 25 %), as strategies write them.
 */
import { Schema } from "effect"
import { Timestamp } from "./Ids.js"
import { Money } from "./Money.js"
import { oneOf } from "./OneOf.js"
import { PortfolioSnapshot } from "./Portfolio.js"

// ---------------------------------------------------------------------------------------------
// Trading state

/** `active`: everything may pass; `reducing`: only risk-reducing orders; `halted`: nothing. */
export const TradingState = Schema.Literal("active", "reducing", "halted")
export type TradingState = typeof TradingState.Type

/**
 * Why the trading state changed. `daily_loss_breaker` and `drawdown_halt` come from the risk check,
 * `new_trading_day` lifts a daily-loss `reducing`, `operator` is a person (an actor is named),
 * `system` is the runtime failing closed (for example: the risk officer is down).
 */
export const TransitionCause = Schema.Literal("daily_loss_breaker", "drawdown_halt", "new_trading_day", "operator", "system")
export type TransitionCause = typeof TransitionCause.Type

/** One change of trading state, with why and (for operators) who. */
export const StateTransition = Schema.Struct({
  from: TradingState,
  to: TradingState,
  cause: TransitionCause,
  at: Timestamp,
  reason: Schema.String.pipe(Schema.minLength(1)),
  /** The operator who asked for it; `null` for automatic transitions. */
  actor: Schema.NullOr(Schema.String.pipe(Schema.minLength(1)))
})
export type StateTransition = typeof StateTransition.Type

/** The current trading state with the transition that put it there (`cause: null` at the start of a run). */
export const TradingStatus = Schema.Struct({
  state: TradingState,
  since: Timestamp,
  cause: Schema.NullOr(TransitionCause),
  reason: Schema.String,
  actor: Schema.NullOr(Schema.String)
})
export type TradingStatus = typeof TradingStatus.Type

/** A transition the state machine does not allow, or one that does not say why (or, for an operator, who). */
export class IllegalTransition extends Schema.TaggedError<IllegalTransition>()("IllegalTransition", {
  from: TradingState,
  to: TradingState,
  cause: TransitionCause,
  message: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------
// Limits

const percent = (what: string) =>
  Schema.Number.pipe(
    Schema.finite({ message: () => `${what} must be a finite number of percent` }),
    Schema.greaterThan(0, { message: () => `${what} must be greater than 0 (percent)` }),
    Schema.lessThanOrEqualTo(100, { message: () => `${what} must be at most 100 (percent)` })
  )

/**
 * The hard values of the gates. No configuration loosens them: a strategy's `RiskLimits` are
 * combined with these by taking the stricter of the two (see `Gates.effectiveLimits`).
 */
export const HARD_LIMITS = {
  /** A position's notional after the order, as a percent of equity: at most this. */
  maxPositionPct: 50,
  /** Equity not committed to positions (equity − gross exposure; cash for a long-only book) after the order: at least this percent of equity. */
  minCashReservePct: 10,
  /**
   * Equity down more than this percent from the day's starting equity moves trading to `reducing`.
   * (The issue names no value for this breaker; 5 % is Swarm's choice.)
   */
  dailyLossPct: 5,
  /** Equity down more than this percent from its peak moves trading to `halted`. */
  maxDrawdownPct: 25
} as const

/**
 * A strategy's risk limits; omitted ones are the hard values. The schema accepts looser values (a
 * strategy stored before they were refused still decodes, and its gates take the hard values); a
 * strategy given now — a file, `strategies.create|update` — is refused with `looserLimits`.
 */
export const RiskLimits = Schema.Struct({
  maxPositionPct: Schema.optionalWith(percent("maxPositionPct"), { default: () => HARD_LIMITS.maxPositionPct, exact: true }),
  minCashReservePct: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.finite({ message: () => "minCashReservePct must be a finite number of percent" }),
      Schema.between(0, 100, { message: () => "minCashReservePct must be between 0 and 100 (percent)" })
    ),
    { default: () => HARD_LIMITS.minCashReservePct, exact: true }
  ),
  dailyLossPct: Schema.optionalWith(percent("dailyLossPct"), { default: () => HARD_LIMITS.dailyLossPct, exact: true }),
  maxDrawdownPct: Schema.optionalWith(percent("maxDrawdownPct"), { default: () => HARD_LIMITS.maxDrawdownPct, exact: true })
})
export type RiskLimits = typeof RiskLimits.Type

/**
 * The first limit looser than its hard gate, as the field under `risk.limits` and why, or
 * undefined: a strategy may tighten a gate, never loosen it, and one that asks to is told so
 * rather than given the hard value unseen.
 */
export const looserLimits = (limits: RiskLimits): { readonly field: string; readonly reason: string } | undefined => {
  const above = (["maxPositionPct", "dailyLossPct", "maxDrawdownPct"] as const).find((name) => limits[name] > HARD_LIMITS[name])
  if (above !== undefined) {
    return {
      field: above,
      reason: `${limits[above]} is looser than the hard gate's ${HARD_LIMITS[above]} %: a strategy may tighten a gate, never loosen it (give at most ${HARD_LIMITS[above]}, or leave it out)`
    }
  }
  if (limits.minCashReservePct < HARD_LIMITS.minCashReservePct) {
    return {
      field: "minCashReservePct",
      reason: `${limits.minCashReservePct} is looser than the hard gate's ${HARD_LIMITS.minCashReservePct} %: a strategy may tighten a gate, never loosen it (give at least ${HARD_LIMITS.minCashReservePct}, or leave it out)`
    }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Approval

/**
 * What a run without a human does with an intent that needs approval (backtests): execute it,
 * drop it, or pause the run until an operator decides.
 */
export const ApprovalPolicy = oneOf("approve", "reject", "pause")
export type ApprovalPolicy = typeof ApprovalPolicy.Type

/**
 * When an intent needs a human decision. Risk-reducing intents never do: an approval queue must
 * not stand between a run and getting out of a position.
 */
export const ApprovalConfig = Schema.Struct({
  /** An order whose notional is strictly above this percent of equity needs approval. Omitted: no notional threshold. */
  notionalPctAbove: Schema.optionalWith(percent("notionalPctAbove"), { exact: true }),
  /** Every order that opens, increases or reverses into a short position needs approval. */
  shorts: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true }),
  /** Backtests have no human: fail closed (`reject`) unless the strategy says otherwise. */
  policy: Schema.optionalWith(ApprovalPolicy, { default: () => "reject" as const, exact: true }),
  /**
   * Under `pause`, how long an operator has to decide before the intent is rejected as expired,
   * in seconds (fractions allowed). Omitted: 900 (15 minutes). Kept optional rather than defaulted
   * so strategies that never name it encode — and so identify their runs — as they did before it.
   */
  timeoutSeconds: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.finite({ message: () => "timeoutSeconds must be a finite number of seconds" }),
      Schema.between(0.1, 7 * 86_400, { message: () => "timeoutSeconds must be between 0.1 and 604800 (7 days)" })
    ),
    { exact: true }
  )
})
export type ApprovalConfig = typeof ApprovalConfig.Type

/** No thresholds: nothing needs approval. */
export const noApproval: ApprovalConfig = { shorts: false, policy: "reject" }

/** How long an approval waits when the strategy does not say. */
export const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 900

/** The approval timeout of a configuration, in milliseconds. */
export const approvalTimeoutMillis = (approval: ApprovalConfig): number =>
  Math.round((approval.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS) * 1000)

// ---------------------------------------------------------------------------------------------
// Context

/** What an order intent is judged against. The risk officer builds it from the ledger's latest snapshot. */
export const RiskContext = Schema.Struct({
  /** The ledger's books: the source of truth for cash and positions (not the intent's `currentQuantity`). */
  portfolio: PortfolioSnapshot,
  /**
   * Equity at the start of the trading day — or at the last operator resume within the day, so
   * that a resumed run is not put straight back into `reducing` by the loss it was resumed with.
   */
  dayStartEquity: Money,
  /**
   * The highest equity since the run began — or since the last operator resume from a halt, for
   * the same reason: a halt lifted explicitly must not re-trip on the drawdown it acknowledged.
   */
  peakEquity: Money,
  /** Orders placed so far today, not counting the intent being judged. */
  ordersToday: Schema.Int.pipe(Schema.nonNegative()),
  /**
   * The same by symbol: what a `max_orders_per_day` rule limited to some symbols counts (an order
   * of a symbol outside its scope is none of its business). Without it, such a rule counts all.
   */
  ordersTodayBySymbol: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Int.pipe(Schema.nonNegative()) })),
  /** The current time, epoch ms (the virtual clock in a backtest). */
  now: Timestamp,
  allowShort: Schema.Boolean,
  /** Fractional quantities (on the ledger's 10⁻⁶ grid) instead of whole units when an order is reduced. */
  allowFractional: Schema.Boolean
})
export type RiskContext = typeof RiskContext.Type
