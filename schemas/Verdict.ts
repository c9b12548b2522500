/**
 * The risk officer's answer to an order intent, with every rule and gate it evaluated. Plain data:
 * numbers are finite (no NaN or Infinity), absent values are `null`, so a verdict is JSON as is.
 */
import { Schema } from "effect"
import { OrderIntent } from "./Order.js"
import { ApprovalPolicy, StateTransition, TradingState } from "./Risk.js"
import { RuleCategory, RuleId, RuleKind } from "./Rule.js"

/** What one check did to the intent. `skipped`: an inactive rule, or the symbol is out of its scope. */
export const CheckResult = Schema.Literal("pass", "reduce", "reject")
export type CheckResult = typeof CheckResult.Type

export const RuleResult = Schema.Literal("pass", "reduce", "reject", "skipped")
export type RuleResult = typeof RuleResult.Type

/**
 * The unit of an outcome's `limit` and `actual`: `percent` of equity, a `count`, money in
 * `micros`, a `quantity` of the instrument, or an epoch-ms `timestamp`.
 */
export const MeasureUnit = Schema.Literal("percent", "count", "micros", "quantity", "timestamp")
export type MeasureUnit = typeof MeasureUnit.Type

const Finite = Schema.Number.pipe(Schema.finite())
const Qty = Schema.Number.pipe(Schema.finite(), Schema.nonNegative())

/** Shared by rule and gate outcomes: what was measured against what, and the quantity before and after. */
const measured = {
  reason: Schema.String,
  limit: Schema.NullOr(Finite),
  /** The measure of the quantity the check was given (for a reduce: before reducing). */
  actual: Schema.NullOr(Finite),
  unit: Schema.NullOr(MeasureUnit),
  quantityBefore: Qty,
  /** 0 when rejected; equal to `quantityBefore` when passed or skipped. */
  quantityAfter: Qty
}

export const RuleOutcome = Schema.Struct({
  rule: RuleId,
  name: Schema.String,
  kind: RuleKind,
  category: RuleCategory,
  result: RuleResult,
  ...measured
})
export type RuleOutcome = typeof RuleOutcome.Type

/**
 * The hard gates: the seven every verdict records, and `money_range` (cash after the order inside
 * Money's exact range), which a verdict records only when it reduced or rejected the intent.
 */
export const GateName = Schema.Literal(
  "max_drawdown_halt",
  "daily_loss_breaker",
  "no_sell_beyond_held",
  "no_cover_beyond_short",
  "max_position",
  "min_cash_reserve",
  "no_negative_cash",
  "money_range"
)
export type GateName = typeof GateName.Type

/** What a gate said of an intent, in full (src/trading/Gates.ts); a verdict records it as a `GateOutcome`. */
export const GateCheck = Schema.Struct({
  gate: GateName,
  result: CheckResult,
  ...measured
})
export type GateCheck = typeof GateCheck.Type

/**
 * A gate the quantity passed unchanged: what it measured against what (`actual` null when the
 * intent was not measured, as a sell is not by `no_sell_beyond_held`'s limit when it sells no more
 * than held). Its reason and quantities would only repeat the verdict's: the quantity a check is
 * given is the intent's, less what the checks before it took (in evaluation order). A verdict
 * records seven gates, every order of a backtest has one, so this is most of a run's log.
 */
export const GatePassed = Schema.Struct({
  gate: GateName,
  result: Schema.Literal("pass"),
  limit: measured.limit,
  actual: measured.actual,
  unit: measured.unit
})
export type GatePassed = typeof GatePassed.Type

/** A gate that reduced or rejected the intent: why, and the quantity before and after. */
export const GateActed = Schema.Struct({
  gate: GateName,
  result: Schema.Literal("reduce", "reject"),
  ...measured
})
export type GateActed = typeof GateActed.Type

export const GateOutcome = Schema.Union(GatePassed, GateActed)
export type GateOutcome = typeof GateOutcome.Type

const common = {
  intent: OrderIntent,
  /** The trading state the intent was judged in (after any breaker this check tripped). */
  state: TradingState,
  /** A breaker this check tripped: the risk officer applies it to its trading status. */
  transition: Schema.NullOr(StateTransition),
  /** In priority order, skipped ones included; empty when the trading state rejected the intent first. */
  rules: Schema.Array(RuleOutcome),
  /**
   * In evaluation order: the two breakers, then (unless the state rejected the intent) the five order
   * gates, and `money_range` last when it reduced or rejected the intent.
   */
  gates: Schema.Array(GateOutcome)
}

/** The intent passes unchanged. */
export const Approved = Schema.Struct({
  outcome: Schema.Literal("approved"),
  quantity: Qty,
  reasons: Schema.Array(Schema.String),
  ...common
})

/**
 * The intent passes with a smaller quantity; `reasons` says what reduced it. What was cut off is
 * worked on the symbol's next bars, judged again each time, in runs that say so
 * (`RunStarted.reducedIntents`): the later intents name the round of the decision (`remainderOf`).
 */
export const Reduced = Schema.Struct({
  outcome: Schema.Literal("reduced"),
  quantity: Qty,
  reasons: Schema.NonEmptyArray(Schema.String),
  ...common
})

/** Nothing passes; `reasons` has every reason (state, rules, gates); `quantity` is 0. */
export const Rejected = Schema.Struct({
  outcome: Schema.Literal("rejected"),
  quantity: Qty,
  reasons: Schema.NonEmptyArray(Schema.String),
  ...common
})

/**
 * A human must decide. `quantity` is what would execute if approved (possibly already reduced),
 * `reasons` the thresholds it crossed, `policy` what a run without a human does with it.
 */
export const NeedsApproval = Schema.Struct({
  outcome: Schema.Literal("needs_approval"),
  quantity: Qty,
  reasons: Schema.NonEmptyArray(Schema.String),
  policy: ApprovalPolicy,
  ...common
})

export const Verdict = Schema.Union(Approved, Reduced, Rejected, NeedsApproval)
export type Verdict = typeof Verdict.Type
export type VerdictOutcome = Verdict["outcome"]
