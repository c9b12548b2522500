import { describe, expect, it } from "@effect/vitest"
import { FastCheck, Schema } from "effect"
import type { RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { IntentReason, OrderIntent, Side } from "../../schemas/Order.js"
import type { PortfolioSnapshot } from "../../schemas/Portfolio.js"
import { HARD_LIMITS, type RiskContext, RiskLimits } from "../../schemas/Risk.js"
import type { GateCheck } from "../../schemas/Verdict.js"
import * as Gates from "../../src/trading/Gates.js"
import { books, holding, money } from "./portfolioFixtures.js"

// --- fixtures ------------------------------------------------------------------------------------




const context = (portfolio: PortfolioSnapshot, over: Partial<RiskContext> = {}): RiskContext => ({
  portfolio,
  dayStartEquity: portfolio.equity,
  peakEquity: portfolio.equity,
  ordersToday: 0,
  now: Date.parse("2024-03-04T15:00:00Z") as Timestamp,
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

const hard = Gates.hardLimits
const limits = (over: Partial<RiskLimits>): RiskLimits => ({ ...hard, ...over })

type Gate = (f: Gates.OrderFacts, quantity: number, limits: RiskLimits) => GateCheck
const run = (gate: Gate, intent: OrderIntent, ctx: RiskContext, lim: RiskLimits = hard): GateCheck =>
  gate(Gates.orderFacts(intent, ctx), intent.quantity, lim)
const summary = (o: GateCheck) => [o.result, o.reason, o.quantityAfter] as const

const cash100k = context(books(100_000))

// --- limits --------------------------------------------------------------------------------------

describe("limits", () => {
  it("defaults to the hard values", () => {
    expect(Schema.decodeUnknownSync(RiskLimits)({})).toEqual({
      maxPositionPct: 50,
      minCashReservePct: 10,
      dailyLossPct: 5,
      maxDrawdownPct: 25
    })
    expect(hard).toEqual(HARD_LIMITS)
  })

  it("lets a strategy tighten every limit and loosen none", () => {
    expect(Gates.effectiveLimits({ maxPositionPct: 20, minCashReservePct: 30, dailyLossPct: 2, maxDrawdownPct: 10 })).toEqual({
      maxPositionPct: 20,
      minCashReservePct: 30,
      dailyLossPct: 2,
      maxDrawdownPct: 10
    })
    expect(Gates.effectiveLimits({ maxPositionPct: 60, minCashReservePct: 0, dailyLossPct: 50, maxDrawdownPct: 90 })).toEqual(HARD_LIMITS)
  })

  it("refuses limits that are not percents, naming the field", () => {
    expect(() => Schema.decodeUnknownSync(RiskLimits)({ maxPositionPct: 0 })).toThrow("maxPositionPct must be greater than 0 (percent)")
    expect(() => Schema.decodeUnknownSync(RiskLimits)({ dailyLossPct: "5" })).toThrow(/dailyLossPct/)
  })
})

// --- the gates -----------------------------------------------------------------------------------

describe("no_negative_cash", () => {
  it("passes a buy the cash covers, and every sell", () => {
    const o = run(Gates.noNegativeCash, order("buy", 100), cash100k)
    expect(o).toEqual({
      gate: "no_negative_cash",
      result: "pass",
      reason: "within the cash held",
      limit: 100_000_000_000,
      actual: 10_000_000_000,
      unit: "micros",
      quantityBefore: 100,
      quantityAfter: 100
    })
    expect(summary(run(Gates.noNegativeCash, order("sell", 100), context(books(-5))))).toEqual([
      "pass",
      "a sell does not spend cash",
      100
    ])
  })

  it("reduces a buy to what the cash covers", () => {
    expect(summary(run(Gates.noNegativeCash, order("buy", 15), context(books(1_000))))).toEqual([
      "reduce",
      "costs 1500 but cash is 1000; reduced from 15 to 10",
      10
    ])
    const fractional = run(Gates.noNegativeCash, order("buy", 10, { price: 300 }), context(books(1_000), { allowFractional: true }))
    expect(fractional.quantityAfter).toBe(3.333333)
  })

  it("rejects a buy when not one unit is covered", () => {
    expect(summary(run(Gates.noNegativeCash, order("buy", 1), context(books(50))))).toEqual([
      "reject",
      "costs 100 but cash is 50; no smaller order fits",
      0
    ])
    expect(run(Gates.noNegativeCash, order("buy", 1), context(books(-5))).reason).toBe("costs 100 but cash is -5; no smaller order fits")
  })
})

describe("money_range (cash inside Money's exact range, about ±9 billion)", () => {
  const MAX = Number.MAX_SAFE_INTEGER

  it("passes an order that leaves cash inside the range, whatever its size", () => {
    expect(run(Gates.moneyRange, order("sell", 10_000_000, { price: 100 }), context(books(7_000_000_000)))).toMatchObject({
      gate: "money_range",
      result: "pass",
      limit: MAX,
      actual: money(8_000_000_000),
      unit: "micros"
    })
  })

  it("cuts a sale down to the proceeds the cash has room for, and refuses one with no room", () => {
    // 8 billion of cash; selling 20 million at 100 brings in 2 billion: past 9,007,199,254.74.
    const cut = run(Gates.moneyRange, order("sell", 20_000_000, { price: 100 }), context(books(8_000_000_000), { allowShort: true }))
    expect(summary(cut)).toEqual([
      "reduce",
      "its proceeds of 2000000000 would take cash from 8000000000 to 10000000000, past the most the books hold exactly " +
      "(9007199254.740991); reduced from 20000000 to 10071992",
      10_071_992
    ])
    expect(cut).toMatchObject({ limit: MAX, actual: money(10_000_000_000), unit: "micros" })
    // The largest that fits: one more unit would not.
    expect(money(8_000_000_000) + 10_071_992 * 100_000_000).toBeLessThanOrEqual(MAX)
    expect(money(8_000_000_000) + 10_071_993 * 100_000_000).toBeGreaterThan(MAX)
    const full = context(books(9_007_199_254.740991))
    expect(summary(run(Gates.moneyRange, order("sell", 1, { price: 100 }), full))[0]).toBe("reject")
    expect(run(Gates.moneyRange, order("sell", 1, { price: 100 }), full).reason).toMatch(/; no smaller order fits$/)
  })

  it("says so when the order's notional alone is past the range (cash would still hold the difference)", () => {
    const o = run(Gates.moneyRange, order("buy", 100_000_000, { price: 100 }), context(books(5_000_000_000)))
    expect(o.reason).toBe(
      "the order's notional of 10000000000 is past the most the books hold exactly (9007199254.740991); reduced from 100000000 to 90071992"
    )
  })
})

describe("orders past the exact money range", () => {
  it("are measured, not a crash: the other gates compare their notional as too large and cut it down", () => {
    // A fixed quantity of 9 billion units at 35: a notional 35 times what Money holds.
    const huge = order("buy", 9_000_000_000, { price: 35 })
    expect(() => Gates.orderFacts(huge, cash100k)).not.toThrow()
    expect(summary(run(Gates.maxPosition, huge, cash100k))).toEqual([
      "reduce",
      "position would be 315000000% of equity (limit 50%); reduced from 9000000000 to 1428",
      1428
    ])
    expect(run(Gates.noNegativeCash, huge, cash100k)).toMatchObject({ result: "reduce", quantityAfter: 2857 })
  })
})

describe("no_sell_beyond_held", () => {
  const long100 = context(books(90_000, [holding("AAPL", 100, 100)]))

  it("passes a sell of at most the long held, and any buy", () => {
    const o = run(Gates.noSellBeyondHeld, order("sell", 100), long100)
    expect([o.result, o.reason, o.limit, o.actual, o.unit]).toEqual(["pass", "sells at most the long held", 100, 100, "quantity"])
    expect(run(Gates.noSellBeyondHeld, order("buy", 100), long100).reason).toBe("not a sell")
  })

  it("reduces a sell to the long held when shorting is off", () => {
    expect(summary(run(Gates.noSellBeyondHeld, order("sell", 150, { reason: "reverse" }), long100))).toEqual([
      "reduce",
      "sells 150 but only 100 is held long and shorting is not allowed; reduced to 100",
      100
    ])
  })

  it("rejects a sell with no long held when shorting is off", () => {
    expect(summary(run(Gates.noSellBeyondHeld, order("sell", 10), cash100k))).toEqual([
      "reject",
      "sells 10 but no long position is held and shorting is not allowed",
      0
    ])
  })

  it("lets a sell open a short when shorting is allowed", () => {
    expect(summary(run(Gates.noSellBeyondHeld, order("sell", 10), context(books(100_000), { allowShort: true })))).toEqual([
      "pass",
      "shorting is allowed",
      10
    ])
  })

  it("never lets a reduce or close sell beyond the long held, even with shorting on", () => {
    const shortable = context(books(90_000, [holding("AAPL", 100, 100)]), { allowShort: true })
    expect(summary(run(Gates.noSellBeyondHeld, order("sell", 150, { reason: "close" }), shortable))).toEqual([
      "reduce",
      "a close sells 150 but only 100 is held long; reduced to 100",
      100
    ])
    expect(summary(run(Gates.noSellBeyondHeld, order("sell", 10, { reason: "reduce" }), context(books(100_000), { allowShort: true }))))
      .toEqual(["reject", "a reduce sells 10 but no long position is held", 0])
  })
})

describe("no_cover_beyond_short", () => {
  const short100 = context(books(110_000, [holding("AAPL", -100, 100)]), { allowShort: true })

  it("passes a cover of at most the short held, and ordinary buys", () => {
    const o = run(Gates.noCoverBeyondShort, order("buy", 100, { reason: "close" }), short100)
    expect([o.result, o.reason, o.limit, o.actual]).toEqual(["pass", "covers at most the short held", 100, 100])
    expect(run(Gates.noCoverBeyondShort, order("buy", 10), cash100k).reason).toBe("not a buy to cover")
    expect(run(Gates.noCoverBeyondShort, order("buy", 300, { reason: "reverse" }), short100).reason).toBe("not a buy to cover")
    expect(run(Gates.noCoverBeyondShort, order("sell", 10, { reason: "close" }), short100).reason).toBe("not a buy to cover")
  })

  it("reduces a cover to the short held", () => {
    expect(summary(run(Gates.noCoverBeyondShort, order("buy", 150, { reason: "close" }), short100))).toEqual([
      "reduce",
      "a close buys 150 but only 100 is held short; reduced to 100",
      100
    ])
  })

  it("rejects a cover when no short is held", () => {
    expect(summary(run(Gates.noCoverBeyondShort, order("buy", 5, { reason: "close" }), context(books(99_000, [holding("AAPL", 10, 100)])))))
      .toEqual(["reject", "a close buys 5 but no short position is held (10 held long)", 0])
    expect(run(Gates.noCoverBeyondShort, order("buy", 5, { reason: "reduce" }), cash100k).reason).toBe(
      "a reduce buys 5 but no short position is held"
    )
  })
})

describe("max_position (50 %)", () => {
  it("passes a position within the cap", () => {
    const o = run(Gates.maxPosition, order("buy", 400), cash100k)
    expect([o.gate, o.result, o.reason, o.limit, o.actual]).toEqual(["max_position", "pass", "within the limit", 50, 40])
  })

  it("reduces to the cap", () => {
    expect(summary(run(Gates.maxPosition, order("buy", 600), cash100k))).toEqual([
      "reduce",
      "position would be 60% of equity (limit 50%); reduced from 600 to 500",
      500
    ])
  })

  it("rejects when the position is already at the cap", () => {
    expect(summary(run(Gates.maxPosition, order("buy", 1), context(books(50_000, [holding("AAPL", 500, 100)]))))).toEqual([
      "reject",
      "position would be 50.1% of equity (limit 50%); no smaller order fits",
      0
    ])
  })

  it("takes a stricter strategy cap and ignores a looser one", () => {
    const tight = run(Gates.maxPosition, order("buy", 600), cash100k, limits({ maxPositionPct: 20 }))
    expect([tight.limit, tight.quantityAfter, tight.reason]).toEqual([
      20,
      200,
      "position would be 60% of equity (limit 20%); reduced from 600 to 200"
    ])
    const loose = run(Gates.maxPosition, order("buy", 600), cash100k, limits({ maxPositionPct: 60 }))
    expect([loose.limit, loose.quantityAfter]).toEqual([50, 500])
  })

  it("passes a risk-reducing order on a position above the cap", () => {
    expect(run(Gates.maxPosition, order("sell", 100), context(books(30_000, [holding("AAPL", 700, 100)]))).reason).toBe(
      "risk-reducing order: not limited"
    )
  })

  it("re-marks the traded symbol at the reference price", () => {
    // marked at 90 in the snapshot: equity 100000; at the reference price 100 it is 102000.
    const stale = context(books(82_000, [holding("AAPL", 200, 90)]))
    expect(run(Gates.maxPosition, order("buy", 310), stale).result).toBe("pass") // 51000 / 102000 = 50 %
    expect(run(Gates.maxPosition, order("buy", 311), stale).quantityAfter).toBe(310)
  })
})

describe("min_cash_reserve (10 %)", () => {
  it("passes a buy that leaves the reserve", () => {
    const o = run(Gates.minCashReserve, order("buy", 100), cash100k)
    expect([o.gate, o.result, o.reason, o.limit, o.actual]).toEqual(["min_cash_reserve", "pass", "within the limit", 10, 90])
  })

  it("reduces a buy to what leaves the reserve", () => {
    expect(summary(run(Gates.minCashReserve, order("buy", 950), cash100k))).toEqual([
      "reduce",
      "cash reserve would be 5% of equity (minimum 10%); reduced from 950 to 900",
      900
    ])
  })

  it("rejects when the reserve is already used up", () => {
    expect(summary(run(Gates.minCashReserve, order("buy", 1), context(books(10_000, [holding("MSFT", 900, 100)]))))).toEqual([
      "reject",
      "cash reserve would be 9.9% of equity (minimum 10%); no smaller order fits",
      0
    ])
  })

  it("takes a stricter strategy reserve and ignores a looser one", () => {
    expect(run(Gates.minCashReserve, order("buy", 950), cash100k, limits({ minCashReservePct: 30 })).quantityAfter).toBe(700)
    const loose = run(Gates.minCashReserve, order("buy", 950), cash100k, limits({ minCashReservePct: 0 }))
    expect([loose.limit, loose.quantityAfter]).toEqual([10, 900])
  })

  it("counts a short against the reserve and lets a cover free it", () => {
    const o = run(Gates.minCashReserve, order("sell", 950), context(books(100_000), { allowShort: true }))
    expect(summary(o)).toEqual(["reduce", "cash reserve would be 5% of equity (minimum 10%); reduced from 950 to 900", 900])
    const shortHeavy = context(books(195_000, [holding("AAPL", -950, 100)]), { allowShort: true })
    expect(run(Gates.minCashReserve, order("buy", 100, { reason: "reduce" }), shortHeavy).result).toBe("pass")
  })
})

describe("daily_loss_breaker", () => {
  const down = (equity: number) => context(books(equity), { dayStartEquity: money(100_000) })

  it("passes a loss within the limit (the limit itself included)", () => {
    const o = run(Gates.dailyLossBreaker, order("buy", 1), down(96_000))
    expect([o.result, o.reason, o.limit, o.actual]).toEqual(["pass", "daily loss within the limit", 5, 4])
    expect(run(Gates.dailyLossBreaker, order("buy", 1), down(95_000)).result).toBe("pass")
  })

  it("rejects a risk-increasing order past the limit", () => {
    expect(summary(run(Gates.dailyLossBreaker, order("buy", 1), down(94_000)))).toEqual([
      "reject",
      "equity 94000 is 6% below the day's start of 100000 (limit 5%): only risk-reducing orders pass",
      0
    ])
    expect(Gates.dailyLossTripped(down(94_000), hard)).toBe(true)
  })

  it("passes a risk-reducing order past the limit", () => {
    const ctx = context(books(44_000, [holding("AAPL", 500, 100)]), { dayStartEquity: money(100_000) })
    expect(summary(run(Gates.dailyLossBreaker, order("sell", 100), ctx))).toEqual([
      "pass",
      "daily loss 6% is above the limit of 5%; a risk-reducing order passes",
      100
    ])
  })

  it("takes a stricter strategy limit and ignores a looser one", () => {
    expect(run(Gates.dailyLossBreaker, order("buy", 1), down(96_000), limits({ dailyLossPct: 3 })).result).toBe("reject")
    const loose = run(Gates.dailyLossBreaker, order("buy", 1), down(94_000), limits({ dailyLossPct: 10 }))
    expect([loose.result, loose.limit]).toEqual(["reject", 5])
  })
})

describe("max_drawdown_halt", () => {
  const fromPeak = (equity: number) => context(books(equity), { peakEquity: money(100_000), dayStartEquity: money(equity) })

  it("passes a drawdown within the limit (the limit itself included)", () => {
    const o = run(Gates.maxDrawdownHalt, order("buy", 1), fromPeak(76_000))
    expect([o.result, o.reason, o.limit, o.actual]).toEqual(["pass", "drawdown within the limit", 25, 24])
    expect(run(Gates.maxDrawdownHalt, order("buy", 1), fromPeak(75_000)).result).toBe("pass")
  })

  it("rejects every order past the limit, risk-reducing ones too", () => {
    expect(summary(run(Gates.maxDrawdownHalt, order("buy", 1), fromPeak(74_000)))).toEqual([
      "reject",
      "equity 74000 is 26% below its peak of 100000 (limit 25%): trading halts",
      0
    ])
    const holdingCtx = context(books(24_000, [holding("AAPL", 500, 100)]), { peakEquity: money(100_000) })
    expect(run(Gates.maxDrawdownHalt, order("sell", 500, { reason: "close" }), holdingCtx).result).toBe("reject")
  })

  it("takes a stricter strategy limit and ignores a looser one", () => {
    expect(run(Gates.maxDrawdownHalt, order("buy", 1), fromPeak(88_000), limits({ maxDrawdownPct: 10 })).result).toBe("reject")
    const loose = run(Gates.maxDrawdownHalt, order("buy", 1), fromPeak(74_000), limits({ maxDrawdownPct: 40 }))
    expect([loose.result, loose.limit]).toEqual(["reject", 25])
  })
})

// --- properties ----------------------------------------------------------------------------------

describe("reductions compose", () => {
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
    maxPositionPct: FastCheck.integer({ min: 1, max: 80 }),
    minCashReservePct: FastCheck.integer({ min: 0, max: 60 })
  })

  it("the quantity the order gates leave passes every one of them again", () => {
    FastCheck.assert(
      FastCheck.property(scenario, (s) => {
        const ctx = context(books(s.cash, [holding("AAPL", s.held, 100), holding("MSFT", s.other, 50)]), {
          allowShort: s.allowShort,
          allowFractional: s.allowFractional
        })
        const lim = limits({ maxPositionPct: s.maxPositionPct, minCashReservePct: s.minCashReservePct })
        const f = Gates.orderFacts(order(s.side, s.quantity, { price: s.price, reason: s.reason }), ctx)
        let q = s.quantity
        let rejected = false
        for (const gate of Gates.orderGates) {
          const o = gate(f, q, lim)
          expect(o.quantityBefore).toBe(q)
          if (o.result === "reduce") {
            expect(o.quantityAfter).toBeGreaterThan(0)
            expect(o.quantityAfter).toBeLessThan(q)
            if (!s.allowFractional && gate !== Gates.noSellBeyondHeld && gate !== Gates.noCoverBeyondShort) {
              expect(Number.isInteger(o.quantityAfter)).toBe(true)
            }
            q = o.quantityAfter
          } else if (o.result === "reject") rejected = true
        }
        if (!rejected) {
          for (const gate of Gates.orderGates) expect(gate(f, q, lim).result).toBe("pass")
          if (s.side === "buy") expect(Gates.notional(q, s.price)).toBeLessThanOrEqual(money(s.cash))
          if (s.side === "sell" && !s.allowShort) expect(q).toBeLessThanOrEqual(Math.max(s.held, 0))
        }
      }),
      { numRuns: 2_000 }
    )
  })

  it("a reduce is the largest quantity that passes", () => {
    FastCheck.assert(
      FastCheck.property(scenario, (s) => {
        const ctx = context(books(s.cash, [holding("AAPL", s.held, 100), holding("MSFT", s.other, 50)]), { allowShort: true })
        const lim = limits({ maxPositionPct: s.maxPositionPct, minCashReservePct: s.minCashReservePct })
        const f = Gates.orderFacts(order(s.side, s.quantity, { price: s.price, reason: "open" }), ctx)
        for (const gate of [Gates.maxPosition, Gates.minCashReserve, Gates.noNegativeCash]) {
          const o = gate(f, s.quantity, lim)
          if (o.result === "reduce") expect(gate(f, o.quantityAfter + 1, lim).result).not.toBe("pass")
        }
      }),
      { numRuns: 2_000 }
    )
  })
})

describe("a reason's figure against its limit", () => {
  it("shows as many decimals as it takes never to read as the limit it tripped", () => {
    const day = (equity: number, positions: Parameters<typeof books>[1] = []) =>
      context(books(equity, positions), { dayStartEquity: money(100_000) })
    expect(run(Gates.dailyLossBreaker, order("buy", 1), day(94_995)).reason)
      .toBe("equity 94995 is 5.005% below the day's start of 100000 (limit 5%): only risk-reducing orders pass")
    expect(run(Gates.dailyLossBreaker, order("sell", 100), day(44_995, [holding("AAPL", 500, 100)])).reason)
      .toBe("daily loss 5.005% is above the limit of 5%; a risk-reducing order passes")
    const fromPeak = context(books(75_370), { peakEquity: money(100_500) })
    expect(run(Gates.maxDrawdownHalt, order("buy", 1), fromPeak).reason)
      .toBe("equity 75370 is 25.005% below its peak of 100500 (limit 25%): trading halts")
    const atCap = context(books(5_000_000, [holding("AAPL", 50_000, 100)]))
    expect(run(Gates.maxPosition, order("buy", 1), atCap).reason).toBe("position would be 50.001% of equity (limit 50%); no smaller order fits")
    const reserveUsed = context(books(100_000, [holding("MSFT", 9_000, 100)]))
    expect(run(Gates.minCashReserve, order("buy", 1, { price: 10 }), reserveUsed).reason)
      .toBe("cash reserve would be 9.999% of equity (minimum 10%); no smaller order fits")
    // A limit is shown as given, not rounded to two decimals.
    expect(Gates.formatPercents(12.3456, 12.345)).toEqual({ actual: "12.346", limit: "12.345" })
    expect(Gates.formatPercents(60, 50)).toEqual({ actual: "60", limit: "50" })
  })

  it.prop(
    "the figure shown is on the same side of the limit shown as the measure is of the limit",
    { actual: FastCheck.double({ min: 0, max: 100, noNaN: true }), limit: FastCheck.integer({ min: 0, max: 100_000 }) },
    ({ actual, limit: thousandths }) => {
      const limit = thousandths / 1_000
      const shown = Gates.formatPercents(actual, limit)
      expect(Math.sign(Number(shown.actual) - Number(shown.limit))).toBe(Math.sign(actual - limit))
      expect(Number(shown.limit)).toBe(limit)
    }
  )
})
