/**
 * The system agent's `risk_checks` tool, pure: the risk officer's side of a run — its verdicts by
 * outcome, which rules and gates rejected or reduced intents (how often, and the last reason each
 * gave), the strategy's rules as the run has them, and the hard gates as the strategy sets them. An
 * operator whose run trades less than expected asks "which rule rejected the most orders?" and
 * "what rules are active?"; `explain_decision` answers for one round, this for the whole run.
 */
import type { RiskLimits } from "../../schemas/Risk.js"
import type { Rule } from "../../schemas/Rule.js"
import type { Verdict } from "../../schemas/Verdict.js"
import * as Format from "./internal/Format.js"

export interface CheckTally {
  /** A rule's id, a gate's name, or `trading_state`. */
  readonly check: string
  readonly kind: "rule" | "gate" | "state"
  /** A rule's name and kind; a gate's name; the trading state that refused. */
  readonly label: string
  readonly rejected: number
  readonly reduced: number
  /** The reason the newest of them gave. */
  readonly lastReason: string
}

export interface RuleView {
  readonly id: string
  readonly name: string
  readonly kind: string
  readonly category: string
  readonly priority: number
  readonly active: boolean
  /** Which symbols it covers: "every symbol", "only A, B", "every symbol but C". */
  readonly scope: string
  readonly params: { readonly [key: string]: unknown }
}

export interface RiskChecksView {
  readonly symbol: string | null
  /** The run's verdicts by outcome (of `symbol`, when asked). */
  readonly verdicts: { readonly approved: number; readonly reduced: number; readonly rejected: number; readonly needsApproval: number }
  /** The verdicts that were not plain approvals read for `checks`, and how many there are when only the latest were read. */
  readonly read: number
  readonly readOf: number | null
  /** Each check that rejected or reduced an intent, most often first. */
  readonly checks: ReadonlyArray<CheckTally>
  readonly rules: ReadonlyArray<RuleView>
  readonly limits: RiskLimits
  readonly allowShort: boolean
}

export interface RiskChecksInput {
  readonly symbol?: string | undefined
  readonly verdicts: RiskChecksView["verdicts"]
  /** Verdicts other than plain approvals, oldest first. */
  readonly acted: ReadonlyArray<Verdict>
  readonly actedInRun: number
  readonly rules: ReadonlyArray<Rule>
  readonly limits: RiskLimits
  readonly allowShort: boolean
}

const GATES: { readonly [gate: string]: string } = {
  max_drawdown_halt: "the maximum drawdown halt",
  daily_loss_breaker: "the daily loss breaker",
  no_sell_beyond_held: "no selling beyond what is held",
  no_cover_beyond_short: "no covering beyond the short held",
  max_position: "the position cap",
  min_cash_reserve: "the minimum cash reserve",
  no_negative_cash: "no negative cash",
  money_range: "the books' exact range"
}

const scopeOf = (rule: Rule): string =>
  rule.allowSymbols !== undefined
    ? `only ${Format.list(rule.allowSymbols.filter((s) => !rule.denySymbols.includes(s)))}`
    : rule.denySymbols.length > 0
    ? `every symbol but ${Format.list(rule.denySymbols)}`
    : "every symbol"

/** The view of a run's verdicts, rules and limits. */
export const riskChecks = (input: RiskChecksInput): RiskChecksView => {
  const tallies = new Map<string, { check: string; kind: CheckTally["kind"]; label: string; rejected: number; reduced: number; lastReason: string }>()
  const count = (check: string, kind: CheckTally["kind"], label: string, result: "reduce" | "reject", reason: string) => {
    let t = tallies.get(`${kind}:${check}`)
    if (t === undefined) tallies.set(`${kind}:${check}`, (t = { check, kind, label, rejected: 0, reduced: 0, lastReason: reason }))
    if (result === "reject") t.rejected++
    else t.reduced++
    t.lastReason = reason
  }
  for (const verdict of input.acted) {
    // An approval sent to an operator may carry a rule's or gate's reduction too.
    if (verdict.outcome === "approved") continue
    let named = false
    for (const rule of verdict.rules) {
      if (rule.result !== "reject" && rule.result !== "reduce") continue
      named = true
      count(rule.rule, "rule", `rule ${rule.rule} (${rule.kind})`, rule.result, rule.reason)
    }
    for (const gate of verdict.gates) {
      if (gate.result !== "reject" && gate.result !== "reduce") continue
      named = true
      count(gate.gate, "gate", GATES[gate.gate] ?? gate.gate, gate.result, "reason" in gate ? gate.reason : verdict.reasons[0] ?? "")
    }
    // Rejected with no rule or gate acting: the trading state refused it first.
    if (!named && verdict.outcome === "rejected") {
      count("trading_state", "state", `the trading state (${verdict.state})`, "reject", verdict.reasons[0] ?? verdict.state)
    }
  }
  const checks = [...tallies.values()].sort((a, b) => b.rejected + b.reduced - (a.rejected + a.reduced) || b.rejected - a.rejected)
  return {
    symbol: input.symbol ?? null,
    verdicts: input.verdicts,
    read: input.acted.length,
    readOf: input.actedInRun > input.acted.length ? input.actedInRun : null,
    checks,
    rules: [...input.rules]
      .sort((a, b) => a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((rule) => ({
        id: rule.id,
        name: rule.name,
        kind: rule.kind,
        category: rule.category,
        priority: rule.priority,
        active: rule.active,
        scope: scopeOf(rule),
        params: rule.params as { readonly [key: string]: unknown }
      })),
    limits: input.limits,
    allowShort: input.allowShort
  }
}

const paramsText = (params: { readonly [key: string]: unknown }): string =>
  Object.entries(params).map(([key, value]) => `${key} ${typeof value === "object" && value !== null ? JSON.stringify(value) : String(value)}`).join(", ")

/** At most this many checks and rules are named in the sentences (the result has them all). */
const SHOWN = 10

/** The plain sentences an operator reads without a model. */
export const describeRiskChecks = (view: RiskChecksView): string => {
  const v = view.verdicts
  const of = view.symbol === null ? "" : ` on ${view.symbol}`
  const total = v.approved + v.reduced + v.rejected + v.needsApproval
  const sentences: Array<string> = []
  sentences.push(
    total === 0
      ? `No intent${of} has gone to the risk officer yet.`
      : `Of the run's ${Format.count(total, "verdict")}${of}, the risk officer approved ${v.approved}, reduced ${v.reduced}, rejected ${v.rejected}` +
        ` and sent ${v.needsApproval} to an operator for approval.`
  )
  if (view.checks.length > 0) {
    const window = view.readOf === null ? "" : ` (in the latest ${Format.count(view.read, "verdict")} that did not simply approve, of ${Format.integer(view.readOf)})`
    const acted = (c: CheckTally) =>
      `${c.label} ${[c.rejected > 0 ? `rejected ${c.rejected}` : "", c.reduced > 0 ? `reduced ${c.reduced}` : ""].filter((s) => s !== "").join(" and ")}` +
      ` (last: ${Format.quote(c.lastReason, 200)})`
    sentences.push(
      `What acted${window}: ${view.checks.slice(0, SHOWN).map(acted).join("; ")}` +
        `${view.checks.length > SHOWN ? `; and ${view.checks.length - SHOWN} more` : ""}.`
    )
  } else if (v.rejected + v.reduced > 0) {
    sentences.push("None of the verdicts read says which check acted.")
  }
  const rule = (r: RuleView) =>
    `${r.id} (${Format.quote(r.name, 80)}): ${r.kind}${paramsText(r.params) === "" ? "" : ` ${paramsText(r.params)}`}, ${r.scope}, priority ${r.priority}` +
    `${r.active ? "" : ", inactive"}`
  sentences.push(
    view.rules.length === 0
      ? "The strategy has no rules of its own."
      : `Its ${Format.count(view.rules.length, "rule")}, in the order they are checked: ${view.rules.slice(0, SHOWN).map(rule).join("; ")}` +
        `${view.rules.length > SHOWN ? `; and ${view.rules.length - SHOWN} more` : ""}.`
  )
  const l = view.limits
  sentences.push(
    `The hard gates, which no rule loosens, as this strategy sets them: a position at most ${Format.decimal(l.maxPositionPct, 4)}% of equity, ` +
      `at least ${Format.decimal(l.minCashReservePct, 4)}% of equity kept in cash, a daily loss breaker at ${Format.decimal(l.dailyLossPct, 4)}% and a ` +
      `drawdown halt at ${Format.decimal(l.maxDrawdownPct, 4)}%, no negative cash, ` +
      `${view.allowShort ? "no covering beyond the short held (the strategy may short)" : "no selling beyond what is held (the strategy may not short)"}.`
  )
  return sentences.join(" ")
}
