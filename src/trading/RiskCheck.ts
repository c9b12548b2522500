/**
 * The risk officer's judgement of one order intent, composed: the trading state (with the two
 * breakers that move it), then the user rules in priority order, then the five order gates on the
 * quantity the rules left, then the approval policy. Pure, synchronous and free of schema work: it
 * runs for every intent on the per-bar path.
 *
 * Decisions (where the issue left room):
 * - `check(intent, context, rules, limits, state, approval?)`: `rules` is a `RuleBook` prepared
 *   once with `Rules.make` (sorting and time-zone set-up stay off the per-intent path); `approval`
 *   defaults to no thresholds. A `needs_approval` verdict carries the strategy's backtest policy
 *   (`approve | reject | pause`, default `reject`) for the risk officer to apply when no human is
 *   there.
 * - The two breaker gates (`max_drawdown_halt`, `daily_loss_breaker`) run with the state check,
 *   since they decide the state: a tripped drawdown moves `active`/`reducing` to `halted`, a tripped
 *   daily loss moves `active` to `reducing`. The verdict carries that transition for the risk
 *   officer to apply (`TradingState.apply`) and is judged in the new state. `breakers` is the same
 *   test with no intent, on the ledger's marks alone: how a run whose `RunStarted` says
 *   `breakers: "marks"` (and `"fills"`) moves the state on a bar nothing is judged on (agents/RiskOfficer.ts).
 * - When the state rejects the intent, no rule or order gate is evaluated (`rules: []`, two gates).
 * - In `reducing`, a reversal (an order against the position held and past it: long to short, or
 *   short to long) is reduced to closing the position, not rejected: its closing part is
 *   risk-reducing. The breakers are recorded on that quantity, and the rules and gates judge it.
 *   `halted` still passes nothing, a close included (nautilus_trader's `HALTED`).
 * - `money_range` (src/trading/Gates.ts) runs after the five order gates, on what they left, and is
 *   recorded only when it reduces or rejects the intent.
 *   Otherwise every rule and gate is evaluated even after a reject, on the quantity as it stood,
 *   so a rejected verdict lists every reason.
 * - `reasons`: the reduce reasons of a `reduced` verdict, the reject reasons of a `rejected` one
 *   (state first), the approval thresholds crossed for `needs_approval`; each prefixed with the
 *   rule's name or the gate's.
 * - Approval is judged on the final quantity; risk-reducing orders never need it. "Any short" means
 *   an order that leaves the position short and is not risk-reducing (opens, adds to, or reverses
 *   into a short).
 */
import type { Timestamp } from "../../schemas/Ids.js"
import type { OrderIntent } from "../../schemas/Order.js"
import {
  type ApprovalConfig,
  noApproval,
  type RiskContext,
  type RiskLimits,
  type StateTransition,
  type TradingState
} from "../../schemas/Risk.js"
import type { GateCheck, GateOutcome, RuleOutcome, Verdict } from "../../schemas/Verdict.js"
import * as Gates from "./Gates.js"
import * as Rules from "./Rules.js"

type NonEmpty = readonly [string, ...Array<string>]

const nothing: ReadonlyArray<never> = []

const ruleReason = (o: RuleOutcome): string => `rule "${o.name}": ${o.reason}`
const gateReason = (o: GateCheck): string => `gate ${o.gate}: ${o.reason}`

/** Why an order needs approval: its share of equity shown apart from the threshold it is above (Gates.formatPercents). */
const approvalReason = (value: number, percent: number, threshold: number): string => {
  const shown = Gates.formatPercents(percent, threshold)
  return `order notional ${Gates.formatMoney(value)} is ${shown.actual}% of equity, above the approval threshold of ${shown.limit}%`
}

/** What the two breakers read: equity at the ledger's marks, its peak, and the day's start (micros). */
export interface RiskMarks {
  readonly equity: number
  readonly peakEquity: number
  readonly dayStartEquity: number
}

/**
 * The transition the two breakers make of `state` at these marks, with no intent to judge (the books
 * marked at a bar's close): a drawdown past its limit moves `active` or `reducing` to `halted`, else a
 * daily loss past its limit moves `active` to `reducing`; null when neither trips, or the state is
 * already where the breaker would put it (or past it). The transition and its reason are those `check`
 * proposes for an intent that is not risk-reducing.
 */
export const breakers = (marks: RiskMarks, now: Timestamp, limits: RiskLimits, state: TradingState): StateTransition | null => {
  const { dayStartEquity, equity, peakEquity } = marks
  if (state !== "halted" && Gates.drawdownPast(equity, peakEquity, limits)) {
    return { from: state, to: "halted", cause: "drawdown_halt", at: now, reason: Gates.drawdownReason(equity, peakEquity, limits), actor: null }
  }
  if (state === "active" && Gates.dailyLossPast(equity, dayStartEquity, limits)) {
    return {
      from: state,
      to: "reducing",
      cause: "daily_loss_breaker",
      at: now,
      reason: Gates.dailyLossReason(equity, dayStartEquity, limits),
      actor: null
    }
  }
  return null
}

/**
 * Judges `intent` in `context` under the strategy's rules (prepared with `Rules.make`), risk
 * limits (clamped to the hard ones here, whatever is passed), the current trading state and the
 * approval thresholds.
 */
export const check = (
  intent: OrderIntent,
  context: RiskContext,
  rules: Rules.RuleBook,
  limits: RiskLimits,
  state: TradingState,
  approval: ApprovalConfig = noApproval
): Verdict => {
  const f = Gates.orderFacts(intent, context)
  const requested = intent.quantity

  // 1. The state, with the breakers that move it.
  let drawdown = Gates.maxDrawdownHalt(f, requested, limits)
  let dailyLoss = Gates.dailyLossBreaker(f, requested, limits)
  let judgedIn = state
  let transition: StateTransition | null = null
  if (state !== "halted" && drawdown.result === "reject") {
    judgedIn = "halted"
    transition = { from: state, to: "halted", cause: "drawdown_halt", at: context.now, reason: drawdown.reason, actor: null }
  } else if (state === "active" && Gates.dailyLossTripped(context, limits)) {
    judgedIn = "reducing"
    transition = { from: state, to: "reducing", cause: "daily_loss_breaker", at: context.now, reason: dailyLoss.reason, actor: null }
  }
  // In `reducing`, a reversal (against the position held, and past it) is cut to closing that
  // position: its closing part is the risk-reducing order the state lets through. Refused whole, a
  // long the signal turned short on was never sold, and rode on into the drawdown halt.
  const reversal = judgedIn === "reducing" && f.dir * f.held < 0 && requested > Math.abs(f.held)
  const judged = reversal ? Math.abs(f.held) : requested
  if (reversal) {
    drawdown = Gates.maxDrawdownHalt(f, judged, limits)
    dailyLoss = Gates.dailyLossBreaker(f, judged, limits)
  }
  const gates: Array<GateOutcome> = [Gates.recorded(drawdown), Gates.recorded(dailyLoss)]
  const riskReducing = Gates.reducesExposure(f, judged)
  if (judgedIn === "halted" || (judgedIn === "reducing" && !riskReducing)) {
    const reasons: Array<string> = [
      judgedIn === "halted"
        ? "trading is halted: no order passes"
        : "trading is reducing: only risk-reducing orders pass"
    ]
    if (drawdown.result === "reject") reasons.push(gateReason(drawdown))
    if (dailyLoss.result === "reject") reasons.push(gateReason(dailyLoss))
    return {
      outcome: "rejected",
      quantity: 0,
      reasons: reasons as unknown as NonEmpty,
      intent,
      state: judgedIn,
      transition,
      rules: nothing,
      gates
    }
  }

  // 2. The rules, in priority order; 3. the order gates, on what the rules left.
  let quantity = judged
  let rejections: Array<string> | null = null
  let reductions: Array<string> | null = reversal
    ? [`trading is reducing: a reversal is cut to closing the ${f.held > 0 ? "long" : "short"} of ${Math.abs(f.held)} held`]
    : null
  const ruleOutcomes: Array<RuleOutcome> = []
  for (const prepared of rules.rules) {
    const o = Rules.evaluateRule(prepared, f, quantity)
    ruleOutcomes.push(o)
    if (o.result === "reduce") {
      quantity = o.quantityAfter
      ;(reductions ??= []).push(ruleReason(o))
    } else if (o.result === "reject") {
      ;(rejections ??= []).push(ruleReason(o))
    }
  }
  for (const gate of Gates.orderGates) {
    const o = gate(f, quantity, limits)
    gates.push(Gates.recorded(o))
    if (o.result === "reduce") {
      quantity = o.quantityAfter
      ;(reductions ??= []).push(gateReason(o))
    } else if (o.result === "reject") {
      ;(rejections ??= []).push(gateReason(o))
    }
  }
  const range = Gates.moneyRange(f, quantity)
  if (range.result === "reduce") {
    gates.push(Gates.recorded(range))
    quantity = range.quantityAfter
    ;(reductions ??= []).push(gateReason(range))
  } else if (range.result === "reject") {
    gates.push(Gates.recorded(range))
    ;(rejections ??= []).push(gateReason(range))
  }
  if (rejections !== null) {
    return {
      outcome: "rejected",
      quantity: 0,
      reasons: rejections as unknown as NonEmpty,
      intent,
      state: judgedIn,
      transition,
      rules: ruleOutcomes,
      gates
    }
  }

  // 4. Approval, on the final quantity.
  if (!Gates.reducesExposure(f, quantity)) {
    let approvals: Array<string> | null = null
    const threshold = approval.notionalPctAbove
    if (threshold !== undefined) {
      const value = Gates.notional(quantity, f.price)
      if (f.equity <= 0 || value * 100 > threshold * f.equity) {
        approvals = [
          f.equity <= 0
            ? `order notional ${Gates.formatMoney(value)} with equity not positive`
            : approvalReason(value, value * 100 / f.equity, threshold)
        ]
      }
    }
    if (approval.shorts) {
      const after = Gates.positionAfter(f, quantity)
      if (after < 0) (approvals ??= []).push(`leaves a short position of ${-after}: shorts need approval`)
    }
    if (approvals !== null) {
      return {
        outcome: "needs_approval",
        quantity,
        reasons: approvals as unknown as NonEmpty,
        policy: approval.policy,
        intent,
        state: judgedIn,
        transition,
        rules: ruleOutcomes,
        gates
      }
    }
  }

  return reductions !== null
    ? {
      outcome: "reduced",
      quantity,
      reasons: reductions as unknown as NonEmpty,
      intent,
      state: judgedIn,
      transition,
      rules: ruleOutcomes,
      gates
    }
    : { outcome: "approved", quantity, reasons: nothing, intent, state: judgedIn, transition, rules: ruleOutcomes, gates }
}
