import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import type { GateName, GateOutcome, RuleOutcome } from "../../../schemas/Verdict.js"
import { RunEvent } from "../../../schemas/RunEvent.js"
import * as DecisionExplanation from "../../../agents/system/DecisionExplanation.js"
import { at, u } from "./fixtures.js"

// --- a run's events, by hand ---------------------------------------------------------------------

const T1 = at("2024-03-01T14:00:00Z") // 1709301600000
const T2 = at("2024-03-04T14:00:00Z") // 1709560800000
const R1 = `AAPL@${T1}`
const R2 = `AAPL@${T2}`
const MSFT = `MSFT@${T1}`

const GATES: ReadonlyArray<GateName> = [
  "max_drawdown_halt",
  "daily_loss_breaker",
  "no_sell_beyond_held",
  "no_cover_beyond_short",
  "max_position",
  "min_cash_reserve",
  "no_negative_cash"
]
const gatesPassing = (): Array<GateOutcome> =>
  GATES.map((gate) => ({ gate, result: "pass", limit: null, actual: null, unit: null }))

const ruleOutcome = (over: Partial<Omit<RuleOutcome, "rule">> & { readonly rule?: string }): RuleOutcome => ({
  rule: "max-pos",
  name: "Max 10% position",
  kind: "max_position_percent",
  category: "position",
  result: "pass",
  reason: "within the limit",
  limit: 10,
  actual: 5,
  unit: "percent",
  quantityBefore: 100,
  quantityAfter: 100,
  ...over
} as RuleOutcome)

const intent = (round: string, ts: number, side: "buy" | "sell", quantity: number, current: number) => ({
  round,
  symbol: "AAPL",
  ts,
  side,
  quantity,
  currentQuantity: current,
  targetQuantity: side === "buy" ? current + quantity : current - quantity,
  referencePrice: 100,
  reason: current === 0 ? "open" : "close"
})

const opinion = (round: string, symbol: string, ts: number, agent: string, direction: string, confidence: number, rationale: string) => ({
  _tag: "OpinionGiven",
  opinion: { round, agent, symbol, ts, direction, confidence, horizon: 5, rationale, features: { sma: 101.5 } }
})

const raw: ReadonlyArray<Record<string, unknown>> = [
  { _tag: "RunStarted", strategy: "s1", strategyVersion: 1, mode: "backtest", seed: "1", symbols: ["AAPL", "MSFT"], dataFingerprint: "x" },
  // Round 1: two analysts disagree, one does not answer; the decision is long.
  opinion(R1, "AAPL", T1, "sma", "long", 0.8, "fast average crossed above the slow one"),
  opinion(R1, "AAPL", T1, "rsi", "short", 0.6, "RSI at 74: overbought"),
  opinion(MSFT, "MSFT", T1, "sma", "flat", 0.5, "nothing to see"),
  {
    _tag: "DecisionMade",
    decision: {
      round: R1,
      symbol: "AAPL",
      ts: T1,
      action: "long",
      confidence: 0.8 / 1.4,
      votes: [
        { agent: "sma", direction: "long", confidence: 0.8, weight: 1, score: 0.8 },
        { agent: "rsi", direction: "short", confidence: 0.6, weight: 1, score: 0.6 }
      ],
      abstentions: [{ agent: "macd", reason: "no_answer" }],
      dissent: ["rsi"],
      disagreement: 0.6 / 1.4,
      participation: 2 / 3,
      quorumMet: true
    }
  },
  // The risk officer reduces 100 to 50 and, above the approval threshold, asks a human.
  {
    _tag: "VerdictGiven",
    verdict: {
      outcome: "needs_approval",
      quantity: 50,
      reasons: ["notional 5000 above the approval threshold of 4000"],
      policy: "pause",
      intent: intent(R1, T1, "buy", 100, 0),
      state: "active",
      transition: null,
      rules: [
        ruleOutcome({
          result: "reduce",
          reason: "position would be 20% of equity (limit 10%)",
          actual: 20,
          quantityAfter: 50
        }),
        ruleOutcome({
          rule: "hours",
          name: "Market hours",
          kind: "trading_hours",
          category: "schedule",
          result: "skipped",
          reason: "inactive",
          limit: null,
          actual: null,
          unit: "timestamp",
          quantityBefore: 50,
          quantityAfter: 50
        })
      ],
      gates: gatesPassing()
    }
  },
  {
    _tag: "ApprovalRequested",
    round: R1,
    intent: intent(R1, T1, "buy", 100, 0),
    quantity: 50,
    reasons: ["notional 5000 above the approval threshold of 4000"],
    expiresAt: T1 + 3_600_000
  },
  { _tag: "ApprovalResolved", round: R1, outcome: "approved", by: "alice", reason: "fine by me" },
  {
    _tag: "OrderPlaced",
    order: { id: R1, idempotencyKey: `run/${R1}`, round: R1, symbol: "AAPL", side: "buy", quantity: 50, type: "market", decidedAt: T1, fillTiming: "next_open" }
  },
  {
    _tag: "OrderFilled",
    fill: {
      id: `${R1}:fill`,
      orderId: R1,
      symbol: "AAPL",
      side: "buy",
      quantity: 50,
      price: 101.25,
      marketPrice: 101.2,
      slippageBps: 5,
      notional: u(5062.5),
      commission: u(1),
      ts: T1 + 86_400_000
    }
  },
  // Round 2: flat; the sell is reduced by a rule and fills, closing the trade round 1 opened.
  {
    _tag: "DecisionMade",
    decision: {
      round: R2,
      symbol: "AAPL",
      ts: T2,
      action: "flat",
      confidence: 0.9,
      votes: [{ agent: "sma", direction: "flat", confidence: 0.9, weight: 1, score: 0.9 }],
      abstentions: [],
      dissent: [],
      disagreement: 0,
      participation: 1 / 3,
      quorumMet: true
    }
  },
  {
    _tag: "VerdictGiven",
    verdict: {
      outcome: "reduced",
      quantity: 40,
      reasons: ["rule notional reduced it"],
      intent: intent(R2, T2, "sell", 50, 50),
      state: "reducing",
      transition: null,
      rules: [
        ruleOutcome({
          rule: "notional",
          name: "Max order 4000",
          kind: "max_order_notional",
          category: "order",
          result: "reduce",
          reason: "order notional 5000 above 4000",
          limit: 4_000_000_000,
          actual: 5_000_000_000,
          unit: "micros",
          quantityBefore: 50,
          quantityAfter: 40
        })
      ],
      gates: gatesPassing()
    }
  },
  {
    _tag: "OrderPlaced",
    order: { id: R2, idempotencyKey: `run/${R2}`, round: R2, symbol: "AAPL", side: "sell", quantity: 40, type: "market", decidedAt: T2, fillTiming: "next_open" }
  },
  {
    _tag: "OrderFilled",
    fill: {
      id: `${R2}:fill`,
      orderId: R2,
      symbol: "AAPL",
      side: "sell",
      quantity: 40,
      price: 110,
      marketPrice: 110,
      slippageBps: 0,
      notional: u(4400),
      commission: u(1),
      ts: T2 + 86_400_000
    }
  },
  {
    _tag: "TradeClosed",
    trade: {
      symbol: "AAPL",
      side: "long",
      quantity: 50,
      entryTs: T1 + 86_400_000,
      exitTs: T2 + 86_400_000,
      entryPrice: 101.25,
      exitPrice: 110,
      pnl: u(348),
      commission: u(2)
    }
  },
  // Round 3: nothing could judge it.
  { _tag: "ExecutionBlocked", ts: T2 + 3_600_000, rounds: [`MSFT@${T2}`], reason: "the ledger did not show its books: timeout" },
  // Round 4: placed, then cancelled before it filled.
  {
    _tag: "OrderPlaced",
    order: {
      id: `MSFT@${T1 + 1}`,
      idempotencyKey: "run/x",
      round: `MSFT@${T1 + 1}`,
      symbol: "MSFT",
      side: "buy",
      quantity: 3,
      type: "market",
      decidedAt: T1 + 1,
      fillTiming: "next_open"
    }
  },
  { _tag: "OrderCancelled", order: `MSFT@${T1 + 1}`, symbol: "MSFT", reason: "replaced by a newer order" }
]

/** Every fixture is a valid run event: the explanation is tested on what a run really records. */
const events: ReadonlyArray<RunEvent> = raw.map((e, i) =>
  Schema.decodeUnknownSync(RunEvent)({ run: "run_1", seq: i + 1, at: T1 + i * 1_000, ...e })
)

// --- tests ---------------------------------------------------------------------------------------

describe("explainRound", () => {
  const found = DecisionExplanation.explainRound(events, R1)

  it("gathers the round's opinions and decision, with dissent and abstentions", () => {
    if (found._tag !== "RoundFound") throw new Error(found.reason)
    expect(found.round).toBe(R1)
    expect(found.symbol).toBe("AAPL")
    expect(found.ts).toBe(T1)
    expect(found.opinions).toEqual([
      { agent: "sma", direction: "long", confidence: 0.8, horizon: 5, rationale: "fast average crossed above the slow one", features: { sma: 101.5 } },
      { agent: "rsi", direction: "short", confidence: 0.6, horizon: 5, rationale: "RSI at 74: overbought", features: { sma: 101.5 } }
    ])
    expect(found.decision).toEqual({
      action: "long",
      confidence: 0.8 / 1.4,
      quorumMet: true,
      participation: 2 / 3,
      disagreement: 0.6 / 1.4,
      votes: [
        { agent: "sma", direction: "long", confidence: 0.8, weight: 1, score: 0.8 },
        { agent: "rsi", direction: "short", confidence: 0.6, weight: 1, score: 0.6 }
      ],
      dissent: ["rsi"],
      abstentions: [{ agent: "macd", reason: "no_answer" }]
    })
  })

  it("gives the verdict with every rule and gate", () => {
    if (found._tag !== "RoundFound") throw new Error(found.reason)
    const v = found.verdict!
    expect(v).toMatchObject({
      outcome: "needs_approval",
      side: "buy",
      intent: "open",
      requestedQuantity: 100,
      quantity: 50,
      currentQuantity: 0,
      targetQuantity: 100,
      referencePrice: 100,
      state: "active",
      policy: "pause",
      reasons: ["notional 5000 above the approval threshold of 4000"]
    })
    expect(v.rules.map((r) => [r.rule, r.result, r.reason])).toEqual([
      ["max-pos", "reduce", "position would be 20% of equity (limit 10%)"],
      ["hours", "skipped", "inactive"]
    ])
    expect(v.gates.map((g) => g.gate)).toEqual(GATES)
  })

  it("gives the approval, the order with its fill, and the trade the fill opened", () => {
    if (found._tag !== "RoundFound") throw new Error(found.reason)
    expect(found.approval).toEqual({
      requestedAt: T1 + 6_000,
      quantity: 50,
      reasons: ["notional 5000 above the approval threshold of 4000"],
      expiresAt: T1 + 3_600_000,
      resolution: { outcome: "approved", by: "alice", reason: "fine by me", at: T1 + 7_000 }
    })
    expect(found.orders).toEqual([{
      id: R1,
      side: "buy",
      quantity: 50,
      placedAt: T1 + 8_000,
      fillTiming: "next_open",
      fills: [{
        id: `${R1}:fill`,
        quantity: 50,
        price: 101.25,
        marketPrice: 101.2,
        slippageBps: 5,
        notional: u(5062.5),
        commission: u(1),
        ts: T1 + 86_400_000
      }],
      filledQuantity: 50,
      cancelled: null
    }])
    expect(found.blocked).toEqual([])
    expect(found.trades.map((t) => [t.role, t.trade.pnl])).toEqual([["opened", u(348)]])
  })

  it("links the closing round to the trade it closed", () => {
    const r2 = DecisionExplanation.explainRound(events, R2)
    if (r2._tag !== "RoundFound") throw new Error(r2.reason)
    expect(r2.opinions).toEqual([])
    expect(r2.verdict).toMatchObject({ outcome: "reduced", requestedQuantity: 50, quantity: 40, state: "reducing", policy: null })
    expect(r2.approval).toBeNull()
    expect(r2.orders.map((o) => [o.id, o.side, o.filledQuantity])).toEqual([[R2, "sell", 40]])
    expect(r2.trades.map((t) => [t.role, t.trade.pnl])).toEqual([["closed", u(348)]])
  })

  it("finds a round that only execution-blocked events mention", () => {
    const r = DecisionExplanation.explainRound(events, `MSFT@${T2}`)
    expect(r._tag).toBe("RoundFound")
    if (r._tag === "RoundFound") {
      expect(r.blocked).toEqual([{ reason: "the ledger did not show its books: timeout", at: T1 + 15_000 }])
      expect(r.symbol).toBe("MSFT")
      expect(r.ts).toBe(T2)
      expect(DecisionExplanation.describeRound(r)).toContain("Execution was blocked")
    }
  })

  it("says an order was cancelled", () => {
    const r = DecisionExplanation.explainRound(events, `MSFT@${T1 + 1}`)
    if (r._tag !== "RoundFound") throw new Error(r.reason)
    expect(r.orders[0]!.cancelled).toEqual({ reason: "replaced by a newer order", at: T1 + 17_000 })
    expect(DecisionExplanation.describeRound(r)).toContain("it was cancelled: replaced by a newer order")
  })

  it("returns a typed not-found, saying only changed rounds are recorded, with recorded rounds nearby", () => {
    const missing = DecisionExplanation.explainRound(events, `AAPL@${T1 + 3_600_000}`)
    expect(missing._tag).toBe("RoundNotFound")
    if (missing._tag !== "RoundNotFound") return
    expect(missing.round).toBe(`AAPL@${T1 + 3_600_000}`)
    expect(missing.reason).toContain("only the rounds whose decision changed a target")
    expect(missing.reason).toContain("--events rounds")
    expect(missing.nearby).toEqual([
      { round: R1, ts: T1, action: "long" },
      { round: R2, ts: T2, action: "flat" }
    ])
    expect(DecisionExplanation.describeRound(missing)).toBe(missing.reason)
  })

  it("returns not-found for nonsense, without nearby rounds, and never echoes a huge id in full", () => {
    const huge = "x".repeat(100_000)
    const r = DecisionExplanation.explainRound(events, huge)
    expect(r._tag).toBe("RoundNotFound")
    if (r._tag === "RoundNotFound") {
      expect(r.nearby).toEqual([])
      expect(r.reason.length).toBeLessThan(400)
    }
    expect(DecisionExplanation.explainRound([], R1)._tag).toBe("RoundNotFound")
  })

  it("is JSON as is", () => {
    expect(JSON.parse(JSON.stringify(found))).toEqual(found)
  })
})

describe("explainOrder", () => {
  it("explains the round that placed the order", () => {
    expect(DecisionExplanation.explainOrder(events, R1)).toEqual(DecisionExplanation.explainRound(events, R1))
  })

  it("returns a typed not-found for an order never placed", () => {
    const r = DecisionExplanation.explainOrder(events, "nope")
    expect(r).toEqual({
      _tag: "OrderNotFound",
      order: "nope",
      reason: "No order \"nope\" was placed in this run (order ids are the rounds that placed them, e.g. AAPL@1709301600000)."
    })
    if (r._tag === "OrderNotFound") expect(DecisionExplanation.describeRound(r)).toBe(r.reason)
  })
})

describe("describeRound", () => {
  it("tells the round in sentences: opinions, decision, verdict, approval, order, trade", () => {
    const text = DecisionExplanation.describeRound(DecisionExplanation.explainRound(events, R1))
    expect(text).toContain(`Round ${R1} (AAPL, bar of 2024-03-01 14:00 UTC).`)
    expect(text).toContain(
      "2 analysts gave an opinion: sma said long at 0.8 (\"fast average crossed above the slow one\"); rsi said short at 0.6 (\"RSI at 74: overbought\")."
    )
    expect(text).toContain(
      "The coordinator decided long with confidence 0.57 (quorum met, participation 66.7%); rsi dissented (disagreement 42.9%); macd (no opinion: none given, or none in time) abstained."
    )
    expect(text).toContain(
      "The risk officer asked a human to approve the buy of 100 (50 if approved; without one the policy is pause): rule Max 10% position (max-pos) reduced it: position would be 20% of equity (limit 10%); 7 other checks passed, 1 rule did not apply."
    )
    expect(text).toContain("Approval was requested for 50 (notional 5000 above the approval threshold of 4000); it was approved by alice (\"fine by me\").")
    expect(text).toContain(`Order ${R1} to buy 50 was placed 2024-03-01 14:00:08 UTC; it filled 50 at 101.25 on 2024-03-02 14:00 UTC (commission 1.00).`)
    expect(text).toContain("It opened a long trade that closed 2024-03-05 14:00 UTC with P&L +348.00.")
  })

  it("says a remainder's verdict works toward the target of the round that decided it", () => {
    const worked = events.find((e) => e._tag === "VerdictGiven" && e.verdict.intent.round === R2)!
    if (worked._tag !== "VerdictGiven") throw new Error("no verdict")
    const R3 = `AAPL@${T2 + 86_400_000}`
    const later = { ...worked, seq: events.length + 1, verdict: { ...worked.verdict, intent: { ...worked.verdict.intent, round: R3, remainderOf: R2 } } } as RunEvent
    const r = DecisionExplanation.explainRound([...events, later], R3)
    if (r._tag !== "RoundFound") throw new Error(r.reason)
    expect(r.decision).toBeNull()
    expect(r.verdict).toMatchObject({ outcome: "reduced", remainderOf: R2 })
    expect(DecisionExplanation.explainRound(events, R2)).toMatchObject({ verdict: { remainderOf: null } })
    expect(DecisionExplanation.describeRound(r)).toContain(
      `The risk officer reduced the sell of 50 (what was left of the target decided in round ${R2}) to 40: rule Max order 4000`
    )
  })

  it("says the reduction and the trading state of the closing round", () => {
    const text = DecisionExplanation.describeRound(DecisionExplanation.explainRound(events, R2))
    expect(text).toContain("No opinion is recorded for it.")
    expect(text).toContain(
      "The risk officer reduced the sell of 50 to 40: rule Max order 4000 (notional) reduced it: order notional 5000 above 4000; 7 other checks passed. Trading was reducing."
    )
    expect(text).toContain("It closed a long trade opened 2024-03-02 14:00 UTC, with P&L +348.00.")
  })
})
