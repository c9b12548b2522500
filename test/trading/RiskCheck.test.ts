import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck, Schema } from "effect"
import type { RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { IntentReason, OrderIntent, Side } from "../../schemas/Order.js"
import type { PortfolioSnapshot } from "../../schemas/Portfolio.js"
import { ApprovalConfig, type RiskContext, type RiskLimits, type TradingState } from "../../schemas/Risk.js"
import { Verdict } from "../../schemas/Verdict.js"
import * as Gates from "../../src/trading/Gates.js"
import * as RiskCheck from "../../src/trading/RiskCheck.js"
import * as Rules from "../../src/trading/Rules.js"
import { books, holding, money } from "./portfolioFixtures.js"

// --- fixtures ------------------------------------------------------------------------------------

const at = (iso: string) => Date.parse(iso) as Timestamp



const context = (portfolio: PortfolioSnapshot, over: Partial<RiskContext> = {}): RiskContext => ({
  portfolio,
  dayStartEquity: portfolio.equity,
  peakEquity: portfolio.equity,
  ordersToday: 0,
  now: at("2024-03-04T15:00:00Z"), // Monday 10:00 in New York
  allowShort: false,
  allowFractional: false,
  ...over
})

const order = (
  side: Side,
  quantity: number,
  o: { readonly symbol?: string; readonly price?: number; readonly reason?: IntentReason } = {}
): OrderIntent => ({
  round: "AAPL@0" as RoundId,
  symbol: (o.symbol ?? "AAPL") as Symbol,
  ts: 0 as Timestamp,
  side,
  quantity,
  currentQuantity: 0,
  targetQuantity: 0,
  referencePrice: o.price ?? 100,
  reason: o.reason ?? "open"
})

const rulebook = (json: unknown) => Either.getOrThrow(Rules.fromJson(json))
const approvalOf = (json: unknown): ApprovalConfig => Schema.decodeUnknownSync(ApprovalConfig)(json)

const hard = Gates.hardLimits
const gateNames = [
  "max_drawdown_halt",
  "daily_loss_breaker",
  "no_sell_beyond_held",
  "no_cover_beyond_short",
  "max_position",
  "min_cash_reserve",
  "no_negative_cash"
]

const nyse = {
  id: "nyse",
  name: "NYSE hours",
  kind: "trading_hours",
  priority: 1,
  params: { timeZone: "America/New_York", windows: [{ start: "09:30", end: "16:00" }] }
}
const maxOrder = { id: "size", name: "60k orders", kind: "max_order_notional", params: { notional: "60000" } }
const maxPos = { id: "pos", name: "Max 20%", kind: "max_position_percent", priority: 2, params: { percent: 20 } }

const cash100k = context(books(100_000))
const check = (
  intent: OrderIntent,
  ctx: RiskContext,
  rules: Rules.RuleBook = Rules.empty,
  state: TradingState = "active",
  limits: RiskLimits = hard,
  approval?: ApprovalConfig
) => RiskCheck.check(intent, ctx, rules, limits, state, approval)

// --- composition ---------------------------------------------------------------------------------

describe("RiskCheck", () => {
  it("approves an intent every rule and gate passes, recording all of them", () => {
    const v = check(order("buy", 100), cash100k, rulebook([nyse, maxPos]))
    expect([v.outcome, v.quantity, v.reasons, v.state, v.transition]).toEqual(["approved", 100, [], "active", null])
    expect(v.rules.map((r) => [r.rule, r.result])).toEqual([["nyse", "pass"], ["pos", "pass"]])
    expect(v.gates.map((g) => g.gate)).toEqual(gateNames)
    expect(v.gates.every((g) => g.result === "pass")).toBe(true)
    expect(v.intent).toEqual(order("buy", 100))
  })

  it("runs the rules first, then the gates on the quantity the rules left", () => {
    const v = check(order("buy", 900), cash100k, rulebook([maxOrder]))
    expect([v.outcome, v.quantity]).toEqual(["reduced", 500])
    expect(v.reasons).toEqual([
      "rule \"60k orders\": order notional 90000 is above the limit of 60000; reduced from 900 to 600",
      "gate max_position: position would be 60% of equity (limit 50%); reduced from 600 to 500"
    ])
    expect(v.rules[0]).toMatchObject({ quantityBefore: 900, quantityAfter: 600 })
    const byName = Object.fromEntries(v.gates.map((g) => [g.gate, g]))
    // A passing gate records what it measured, not the quantities (they follow from the order of the checks).
    expect(byName["no_sell_beyond_held"]).toEqual({ gate: "no_sell_beyond_held", result: "pass", limit: null, actual: null, unit: null })
    expect(byName["max_position"]).toMatchObject({ result: "reduce", quantityBefore: 600, quantityAfter: 500 })
    expect(byName["no_negative_cash"]).toEqual({ gate: "no_negative_cash", result: "pass", limit: 100_000_000_000, actual: 50_000_000_000, unit: "micros" })
  })

  it("records skipped rules in priority order", () => {
    const v = check(
      order("buy", 100),
      cash100k,
      rulebook([{ ...maxPos, active: false }, nyse, { ...maxOrder, priority: 0, allowSymbols: ["MSFT"] }])
    )
    expect(v.rules.map((r) => [r.rule, r.result, r.reason])).toEqual([
      ["size", "skipped", "AAPL is not in the rule's allow list"],
      ["nyse", "pass", "within trading hours"],
      ["pos", "skipped", "inactive rule"]
    ])
    expect(v.outcome).toBe("approved")
  })

  it("rejects with every reason, from rules and gates alike", () => {
    const weekend = context(books(100_000), { now: at("2024-03-09T15:00:00Z") })
    const v = check(order("sell", 10), weekend, rulebook([nyse]))
    expect([v.outcome, v.quantity]).toEqual(["rejected", 0])
    expect(v.reasons).toEqual([
      "rule \"NYSE hours\": outside trading hours: sat 10:00 in America/New_York (open 09:30-16:00 on mon,tue,wed,thu,fri)",
      "gate no_sell_beyond_held: sells 10 but no long position is held and shorting is not allowed"
    ])
    expect(v.gates.map((g) => g.gate)).toEqual(gateNames)
  })

  it("clamps a strategy's looser limits to the hard ones, and keeps its tighter ones", () => {
    const loose = check(order("buy", 900), cash100k, Rules.empty, "active", { ...hard, maxPositionPct: 60 })
    expect([loose.outcome, loose.quantity]).toEqual(["reduced", 500])
    const tight = check(order("buy", 900), cash100k, Rules.empty, "active", { ...hard, maxPositionPct: 20 })
    expect([tight.outcome, tight.quantity]).toEqual(["reduced", 200])
  })

  // --- trading state -----------------------------------------------------------------------------

  it("rejects everything when halted, without evaluating rules or order gates", () => {
    const ctx = context(books(50_000, [holding("AAPL", 500, 100)]))
    for (const intent of [order("buy", 1), order("sell", 500, { reason: "close" })]) {
      const v = check(intent, ctx, rulebook([nyse]), "halted")
      expect([v.outcome, v.quantity, v.reasons, v.state, v.transition, v.rules]).toEqual([
        "rejected",
        0,
        ["trading is halted: no order passes"],
        "halted",
        null,
        []
      ])
      expect(v.gates.map((g) => g.gate)).toEqual(["max_drawdown_halt", "daily_loss_breaker"])
    }
  })

  it("lets only risk-reducing intents through when reducing, and still applies the rules to them", () => {
    const ctx = context(books(50_000, [holding("AAPL", 500, 100)]))
    const buy = check(order("buy", 1), ctx, Rules.empty, "reducing")
    expect([buy.outcome, buy.reasons, buy.rules]).toEqual(["rejected", ["trading is reducing: only risk-reducing orders pass"], []])
    // a "close" that sells more than held is cut to the long held: the rest would open a short
    const past = check(order("sell", 600, { reason: "close" }), ctx, Rules.empty, "reducing")
    expect([past.outcome, past.quantity, past.reasons]).toEqual(["reduced", 500, ["trading is reducing: a reversal is cut to closing the long of 500 held"]])
    const sell = check(order("sell", 200, { reason: "reduce" }), ctx, rulebook([nyse]), "reducing")
    expect([sell.outcome, sell.quantity, sell.state]).toEqual(["approved", 200, "reducing"])
    const afterHours = context(ctx.portfolio, { now: at("2024-03-04T22:00:00Z") })
    expect(check(order("sell", 200, { reason: "reduce" }), afterHours, rulebook([nyse]), "reducing").outcome).toBe("rejected")
  })

  it("trips the daily loss breaker from the context: proposes active → reducing and judges in reducing", () => {
    const ctx = context(books(44_000, [holding("AAPL", 500, 100)]), { dayStartEquity: money(100_000), peakEquity: money(100_000) })
    const buy = check(order("buy", 1), ctx)
    expect([buy.outcome, buy.state]).toEqual(["rejected", "reducing"])
    expect(buy.transition).toEqual({
      from: "active",
      to: "reducing",
      cause: "daily_loss_breaker",
      at: ctx.now,
      reason: "equity 94000 is 6% below the day's start of 100000 (limit 5%): only risk-reducing orders pass",
      actor: null
    })
    expect(buy.reasons).toEqual([
      "trading is reducing: only risk-reducing orders pass",
      "gate daily_loss_breaker: equity 94000 is 6% below the day's start of 100000 (limit 5%): only risk-reducing orders pass"
    ])
    const sell = check(order("sell", 500, { reason: "close" }), ctx)
    expect([sell.outcome, sell.quantity, sell.state, sell.transition?.to]).toEqual(["approved", 500, "reducing", "reducing"])
    // already reducing: nothing to propose
    expect(check(order("buy", 1), ctx, Rules.empty, "reducing").transition).toBeNull()
  })

  it("when reducing, cuts a reversal to closing the position held, its breakers recorded on that, the rules and gates judging it", () => {
    // Short 526 with shorting on, the day 13 % down: the signal turns long (buy 887 = cover 526 + open 361).
    const short = context(books(150_000, [holding("AAPL", -526, 100)]), {
      allowShort: true,
      dayStartEquity: money(110_000),
      peakEquity: money(110_000)
    })
    const v = check(order("buy", 887, { reason: "reverse" }), short)
    expect([v.outcome, v.quantity, v.state, v.transition?.to]).toEqual(["reduced", 526, "reducing", "reducing"])
    expect(v.reasons).toEqual(["trading is reducing: a reversal is cut to closing the short of 526 held"])
    expect(v.gates.slice(0, 2).map((g) => [g.gate, g.result])).toEqual([["max_drawdown_halt", "pass"], ["daily_loss_breaker", "pass"]])
    expect(v.gates.map((g) => g.gate)).toEqual(gateNames)
    // A long the signal turns short on, in reducing already: sold, not left to ride.
    const long = context(books(50_000, [holding("AAPL", 500, 100)]), { allowShort: true })
    expect([check(order("sell", 900, { reason: "reverse" }), long, Rules.empty, "reducing").quantity]).toEqual([500])
    // The rules still judge what is left: outside trading hours, rejected.
    const afterHours = context(long.portfolio, { allowShort: true, now: at("2024-03-04T22:00:00Z") })
    expect(check(order("sell", 900, { reason: "reverse" }), afterHours, rulebook([nyse]), "reducing").outcome).toBe("rejected")
    // Halted: nothing, a reversal's close included.
    expect(check(order("sell", 900, { reason: "reverse" }), long, Rules.empty, "halted").outcome).toBe("rejected")
    // An order that does not reverse is as before: a buy onto a long is refused.
    expect(check(order("buy", 10), long, Rules.empty, "reducing").outcome).toBe("rejected")
  })

  it("trips the drawdown halt from the context: proposes a halt and rejects even a close", () => {
    const ctx = context(books(24_000, [holding("AAPL", 500, 100)]), { dayStartEquity: money(74_000), peakEquity: money(100_000) })
    for (const state of ["active", "reducing"] as const) {
      const v = check(order("sell", 500, { reason: "close" }), ctx, Rules.empty, state)
      expect([v.outcome, v.state, v.transition?.from, v.transition?.to, v.transition?.cause]).toEqual([
        "rejected",
        "halted",
        state,
        "halted",
        "drawdown_halt"
      ])
      expect(v.reasons).toEqual([
        "trading is halted: no order passes",
        "gate max_drawdown_halt: equity 74000 is 26% below its peak of 100000 (limit 25%): trading halts"
      ])
    }
    expect(check(order("buy", 1), ctx, Rules.empty, "halted").transition).toBeNull()
  })

  it("breakers: on the marks alone, the transition check proposes for an intent that is not risk-reducing", () => {
    const states: ReadonlyArray<TradingState> = ["active", "reducing", "halted"]
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 1, max: 200_000 }),
        FastCheck.integer({ min: 1, max: 200_000 }),
        FastCheck.integer({ min: 0, max: 2 }),
        (equity, peakOrStart, s) => {
          const state = states[s]!
          const peak = Math.max(equity, peakOrStart)
          const ctx = context(books(equity), { peakEquity: money(peak), dayStartEquity: money(peakOrStart) })
          const marks = { equity: ctx.portfolio.equity, peakEquity: ctx.peakEquity, dayStartEquity: ctx.dayStartEquity }
          expect(RiskCheck.breakers(marks, ctx.now, hard, state)).toEqual(check(order("buy", 1), ctx, Rules.empty, state).transition)
        }
      )
    )
    const down = { equity: money(74_000), peakEquity: money(100_000), dayStartEquity: money(74_000) }
    expect(RiskCheck.breakers(down, at("2024-03-04T15:00:00Z"), hard, "reducing")).toEqual({
      from: "reducing",
      to: "halted",
      cause: "drawdown_halt",
      at: at("2024-03-04T15:00:00Z"),
      reason: "equity 74000 is 26% below its peak of 100000 (limit 25%): trading halts",
      actor: null
    })
    expect(RiskCheck.breakers(down, at("2024-03-04T15:00:00Z"), hard, "halted")).toBeNull()
  })

  // --- approval ----------------------------------------------------------------------------------

  it("asks for approval above the notional threshold, on the final quantity", () => {
    const approval = approvalOf({ notionalPctAbove: 20 })
    expect(approval).toEqual({ notionalPctAbove: 20, shorts: false, policy: "reject" })
    const v = check(order("buy", 300), cash100k, Rules.empty, "active", hard, approval)
    expect(v).toMatchObject({
      outcome: "needs_approval",
      quantity: 300,
      policy: "reject",
      reasons: ["order notional 30000 is 30% of equity, above the approval threshold of 20%"]
    })
    const reducedStillAbove = check(order("buy", 900), cash100k, Rules.empty, "active", hard, approval)
    expect([reducedStillAbove.outcome, reducedStillAbove.quantity]).toEqual(["needs_approval", 500])
    const reducedBelow = check(order("buy", 900), cash100k, rulebook([maxPos]), "active", hard, approval)
    expect([reducedBelow.outcome, reducedBelow.quantity]).toEqual(["reduced", 200])
    expect(check(order("buy", 200), cash100k, Rules.empty, "active", hard, approval).outcome).toBe("approved")
    // Just above the threshold: shown apart from it, not as 20 % "above" 20 %.
    const justAbove = check(order("buy", 1, { price: 20_001 }), cash100k, Rules.empty, "active", hard, approval)
    expect(justAbove.reasons).toEqual(["order notional 20001 is 20.001% of equity, above the approval threshold of 20%"])
  })

  it("asks for approval for shorts when so configured, with the backtest policy", () => {
    const approval = approvalOf({ shorts: true, policy: "pause" })
    const shortable = context(books(100_000), { allowShort: true })
    const v = check(order("sell", 10), shortable, Rules.empty, "active", hard, approval)
    expect(v).toMatchObject({ outcome: "needs_approval", quantity: 10, policy: "pause", reasons: ["leaves a short position of 10: shorts need approval"] })
    expect(check(order("buy", 10), shortable, Rules.empty, "active", hard, approval).outcome).toBe("approved")
  })

  it("never asks for approval to reduce risk", () => {
    const approval = approvalOf({ notionalPctAbove: 1, shorts: true })
    const shortHeavy = context(books(140_000, [holding("AAPL", -400, 100)]), { allowShort: true })
    expect(check(order("buy", 400, { reason: "close" }), shortHeavy, Rules.empty, "active", hard, approval).outcome).toBe("approved")
  })

  it("records money_range only when it acts: last, on what the other gates left", () => {
    // A short of 20 million at 100 with 8 billion of cash: 50 % of equity, but its proceeds overflow cash.
    const rich = context(books(8_000_000_000), { allowShort: true })
    const v = check(order("sell", 20_000_000), rich)
    expect([v.outcome, v.quantity]).toEqual(["reduced", 10_071_992])
    expect(v.gates.map((g) => g.gate)).toEqual([...gateNames, "money_range"])
    expect(v.reasons).toEqual([
      "gate money_range: its proceeds of 2000000000 would take cash from 8000000000 to 10000000000, past the most the books hold " +
      "exactly (9007199254.740991); reduced from 20000000 to 10071992"
    ])
    expect(v.gates.at(-1)).toMatchObject({ gate: "money_range", result: "reduce", quantityBefore: 20_000_000, quantityAfter: 10_071_992 })
    // The reduced order passes it, unrecorded: the verdict of the usual size lists the seven.
    const again = check(order("sell", v.quantity), rich)
    expect([again.outcome, again.gates.map((g) => g.gate)]).toEqual(["approved", gateNames])
  })

  it("judges an intent whose notional is past the exact range without a throw (a fixed quantity of billions)", () => {
    const v = check(order("buy", 9_000_000_000, { price: 35 }), cash100k)
    expect([v.outcome, v.quantity]).toEqual(["reduced", 1428])
    expect(v.reasons[0]).toMatch(/^gate max_position: position would be 315000000% of equity/)
    const short = check(order("sell", 9_000_000_000, { price: 35 }), context(books(100_000), { allowShort: true }))
    expect([short.outcome, short.quantity]).toEqual(["reduced", 1428])
  })

  it("does not mutate its inputs", () => {
    const deepFreeze = <A>(a: A): A => {
      if (a !== null && typeof a === "object") {
        Object.values(a).forEach(deepFreeze)
        Object.freeze(a)
      }
      return a
    }
    const intent = deepFreeze(order("buy", 900))
    const ctx = deepFreeze(context(books(100_000, [holding("MSFT", 10, 100)])))
    expect(check(intent, ctx, rulebook([maxOrder, nyse])).outcome).toBe("reduced")
  })

  // --- properties --------------------------------------------------------------------------------

  const scenario = FastCheck.record({
    cash: FastCheck.integer({ min: -1_000, max: 200_000 }),
    held: FastCheck.integer({ min: -800, max: 800 }),
    other: FastCheck.integer({ min: 0, max: 900 }),
    price: FastCheck.double({ min: 0.5, max: 500, noNaN: true }),
    side: FastCheck.constantFrom<Side>("buy", "sell"),
    quantity: FastCheck.integer({ min: 1, max: 5_000 }),
    reason: FastCheck.constantFrom<IntentReason>("open", "increase", "reduce", "close", "reverse"),
    allowShort: FastCheck.boolean(),
    allowFractional: FastCheck.boolean(),
    state: FastCheck.constantFrom<TradingState>("active", "active", "reducing", "halted"),
    dayStart: FastCheck.integer({ min: 50_000, max: 150_000 }),
    peak: FastCheck.integer({ min: 50_000, max: 200_000 }),
    ordersToday: FastCheck.integer({ min: 0, max: 12 }),
    hour: FastCheck.integer({ min: 0, max: 23 }),
    approvalPct: FastCheck.option(FastCheck.integer({ min: 1, max: 100 }), { nil: undefined }),
    approveShorts: FastCheck.boolean()
  })
  const book = rulebook([
    nyse,
    maxPos,
    maxOrder,
    { id: "open", name: "3 open", kind: "max_open_positions", params: { count: 3 } },
    { id: "cash", name: "Keep 15%", kind: "min_cash_reserve", params: { percent: 15 } },
    { id: "day", name: "10 a day", kind: "max_orders_per_day", params: { count: 10 } }
  ])
  const setup = (s: typeof scenario extends FastCheck.Arbitrary<infer A> ? A : never) => {
    const ctx = context(books(s.cash, [holding("AAPL", s.held, 100), holding("MSFT", s.other, 50)]), {
      allowShort: s.allowShort,
      allowFractional: s.allowFractional,
      dayStartEquity: money(s.dayStart),
      peakEquity: money(s.peak),
      ordersToday: s.ordersToday,
      now: (at("2024-03-04T00:00:00Z") + s.hour * 3_600_000) as Timestamp
    })
    const approval: ApprovalConfig = {
      ...(s.approvalPct === undefined ? {} : { notionalPctAbove: s.approvalPct }),
      shorts: s.approveShorts,
      policy: "reject"
    }
    return { ctx, approval, intent: order(s.side, s.quantity, { price: s.price, reason: s.reason }) }
  }

  it("always yields a valid verdict, as JSON that decodes to itself", () => {
    const encode = Schema.encodeSync(Verdict)
    const decode = Schema.decodeUnknownSync(Verdict)
    FastCheck.assert(
      FastCheck.property(scenario, (s) => {
        const { approval, ctx, intent } = setup(s)
        const v = check(intent, ctx, book, s.state, hard, approval)
        expect(decode(JSON.parse(JSON.stringify(encode(v))))).toEqual(v)
        if (v.outcome === "rejected") expect([v.quantity, v.reasons.length > 0]).toEqual([0, true])
        else {
          expect(v.quantity).toBeGreaterThan(0)
          expect(v.quantity).toBeLessThanOrEqual(s.quantity)
          if (v.outcome === "approved") expect(v.quantity).toBe(s.quantity)
          if (v.outcome === "reduced") expect(v.quantity).toBeLessThan(s.quantity)
          if (!s.allowFractional && v.quantity !== Math.abs(s.held)) expect(Number.isInteger(v.quantity)).toBe(true)
          expect(s.state).not.toBe("halted")
        }
      }),
      { numRuns: 1_000 }
    )
  })

  it("a reduced quantity, checked again, is approved", () => {
    FastCheck.assert(
      FastCheck.property(scenario, (s) => {
        const { approval, ctx, intent } = setup(s)
        const v = check(intent, ctx, book, s.state, hard, approval)
        if (v.outcome === "reduced") {
          expect(check({ ...intent, quantity: v.quantity }, ctx, book, s.state, hard, approval).outcome).toBe("approved")
        }
      }),
      { numRuns: 1_000 }
    )
  })
})
