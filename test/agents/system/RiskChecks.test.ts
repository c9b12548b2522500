/**
 * The `risk_checks` tool's pure core (agents/system/RiskChecks.ts): which rules and gates rejected or
 * reduced a run's intents, its rules as the run has them and its limits, and the sentences an
 * operator reads without a model.
 */
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { describeRiskChecks, riskChecks, type RiskChecksInput } from "../../../agents/system/RiskChecks.js"
import { RiskLimits } from "../../../schemas/Risk.js"
import { Rule } from "../../../schemas/Rule.js"
import type { Verdict } from "../../../schemas/Verdict.js"

const intent = { round: "ACME@1", symbol: "ACME", ts: 1, side: "buy", quantity: 100, currentQuantity: 0, targetQuantity: 100, referencePrice: 10, reason: "open" }
const measured = { limit: 1, actual: 2, unit: "count", quantityBefore: 100 }
const rule = (id: string, result: "pass" | "reduce" | "reject" | "skipped", reason: string) => ({
  rule: id,
  name: `rule ${id}`,
  kind: "max_open_positions",
  category: "position",
  result,
  reason,
  ...measured,
  quantityAfter: result === "reject" ? 0 : result === "reduce" ? 50 : 100
})
const gate = (name: string, result: "reduce" | "reject", reason: string) => ({ gate: name, result, reason, ...measured, quantityAfter: result === "reject" ? 0 : 50 })
const passed = (name: string) => ({ gate: name, result: "pass", limit: null, actual: null, unit: null })

const verdict = (outcome: Verdict["outcome"], rules: ReadonlyArray<unknown>, gates: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}): Verdict =>
  ({ outcome, quantity: outcome === "rejected" ? 0 : 50, reasons: ["why"], intent, state: "active", transition: null, rules, gates, ...extra }) as unknown as Verdict

const rules = Schema.decodeUnknownSync(Schema.Array(Rule))([
  { id: "late", name: "No late orders", kind: "max_orders_per_day", priority: 5, params: { count: 2 }, allowSymbols: ["ACME", "GLOBEX"], denySymbols: ["GLOBEX"] },
  { id: "one", name: "One position", kind: "max_open_positions", priority: 1, params: { count: 1 }, active: false, denySymbols: ["INITECH"] }
])

const input = (acted: ReadonlyArray<Verdict>, extra: Partial<RiskChecksInput> = {}): RiskChecksInput => ({
  verdicts: { approved: 10, reduced: 2, rejected: 4, needsApproval: 1 },
  acted,
  actedInRun: acted.length,
  rules,
  limits: Schema.decodeUnknownSync(RiskLimits)({ maxPositionPct: 20 }),
  allowShort: false,
  ...extra
})

const acted = [
  verdict("rejected", [rule("one", "reject", "1 position open, the most allowed"), rule("late", "pass", "")], [passed("max_drawdown_halt")]),
  verdict("rejected", [rule("one", "reject", "1 position open (ACME), the most allowed")], [gate("max_position", "reject", "position 60% above 20%")]),
  verdict("reduced", [rule("late", "skipped", "inactive")], [gate("max_position", "reduce", "cut to 20% of equity")]),
  // The trading state refused it before any rule or gate.
  verdict("rejected", [], [], { state: "halted", reasons: ["trading is halted: only an operator lifts it"] }),
  verdict("needs_approval", [rule("late", "reduce", "2 orders today, cut to the last allowed")], [], { policy: "pause" }),
  verdict("rejected", [], [gate("no_negative_cash", "reject", "costs 1,000.00 but cash is 10.00")])
]

describe("risk_checks", () => {
  it("tallies every rule and gate that rejected or reduced an intent, the trading state when nothing else did, most often first", () => {
    const view = riskChecks(input(acted))
    expect(view.checks.map((c) => [c.check, c.kind, c.rejected, c.reduced])).toEqual([
      ["one", "rule", 2, 0],
      ["max_position", "gate", 1, 1],
      ["trading_state", "state", 1, 0],
      // As often as `late`, but it rejected: first.
      ["no_negative_cash", "gate", 1, 0],
      ["late", "rule", 0, 1]
    ])
    expect(view.checks[0]!.lastReason).toBe("1 position open (ACME), the most allowed")
    expect(view.checks[2]).toMatchObject({ label: "the trading state (halted)", lastReason: "trading is halted: only an operator lifts it" })
    expect([view.read, view.readOf]).toEqual([6, null])
    expect(riskChecks(input(acted, { actedInRun: 6_000 })).readOf).toBe(6_000)
  })

  it("lists the rules in the order they are checked, with their scope, and the limits as the strategy sets them", () => {
    const view = riskChecks(input([]))
    expect(view.rules.map((r) => [r.id, r.priority, r.active, r.scope])).toEqual([
      ["one", 1, false, "every symbol but INITECH"],
      ["late", 5, true, "only ACME"]
    ])
    expect(describeRiskChecks(view)).toBe(
      "Of the run's 17 verdicts, the risk officer approved 10, reduced 2, rejected 4 and sent 1 to an operator for approval. " +
        "None of the verdicts read says which check acted. " +
        "Its 2 rules, in the order they are checked: one (\"One position\"): max_open_positions count 1, every symbol but INITECH, priority 1, inactive; " +
        "late (\"No late orders\"): max_orders_per_day count 2, exemptRiskReducing true, only ACME, priority 5. " +
        "The hard gates, which no rule loosens, as this strategy sets them: a position at most 20% of equity, at least 10% of equity kept in cash, " +
        "a daily loss breaker at 5% and a drawdown halt at 25%, no negative cash, no selling beyond what is held (the strategy may not short)."
    )
  })

  it("says what acted, with the last reason each gave; with no verdict and no rule, says so", () => {
    const text = describeRiskChecks(riskChecks(input(acted, { actedInRun: 6_000, allowShort: true, symbol: "ACME" })))
    expect(text).toContain("Of the run's 17 verdicts on ACME,")
    expect(text).toContain(
      "What acted (in the latest 6 verdicts that did not simply approve, of 6,000): rule one (max_open_positions) rejected 2 " +
        "(last: \"1 position open (ACME), the most allowed\"); the position cap rejected 1 and reduced 1 (last: \"cut to 20% of equity\"); " +
        "the trading state (halted) rejected 1 (last: \"trading is halted: only an operator lifts it\"); "
    )
    expect(text).toContain("no covering beyond the short held (the strategy may short).")
    const none = describeRiskChecks(riskChecks(input([], { verdicts: { approved: 0, reduced: 0, rejected: 0, needsApproval: 0 }, rules: [] })))
    expect(none).toMatch(/^No intent has gone to the risk officer yet\. The strategy has no rules of its own\. The hard gates/)
  })
})
