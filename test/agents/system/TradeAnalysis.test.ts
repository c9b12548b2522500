import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import type { RoundId, Symbol, Timestamp } from "../../../schemas/Ids.js"
import type { Money } from "../../../schemas/Money.js"
import type { OrderIntent } from "../../../schemas/Order.js"
import type { PortfolioSnapshot } from "../../../schemas/Portfolio.js"
import type { RiskContext, RiskLimits } from "../../../schemas/Risk.js"
import { Rule } from "../../../schemas/Rule.js"
import type { Trade } from "../../../schemas/Trade.js"
import * as Gates from "../../../src/trading/Gates.js"
import * as Metrics from "../../../src/trading/Metrics.js"
import * as RiskCheck from "../../../src/trading/RiskCheck.js"
import * as Rules from "../../../src/trading/Rules.js"
import * as TradeAnalysis from "../../../agents/system/TradeAnalysis.js"
import { books, holding } from "../../trading/portfolioFixtures.js"
import { at, entry, trade, u } from "./fixtures.js"

// Seven round trips with known P&L (units): 2024-03-04 is a Monday; New York is on EST (UTC−5)
// until 2024-03-10.
const t1 = trade({ symbol: "AAPL", entry: "2024-03-04T09:30:00Z", exit: "2024-03-04T09:45:00Z", quantity: 10, pnl: 50 })
const t2 = trade({ symbol: "AAPL", entry: "2024-03-04T14:00:00Z", exit: "2024-03-05T10:00:00Z", quantity: 20, pnl: -30 })
const t3 = trade({
  symbol: "AAPL",
  side: "short",
  entry: "2024-03-05T03:10:00Z",
  exit: "2024-03-07T09:10:00Z",
  quantity: 5,
  entryPrice: 200,
  pnl: -20
})
const t4 = trade({ symbol: "MSFT", entry: "2024-03-06T15:00:00Z", exit: "2024-03-13T15:00:00Z", quantity: 30, pnl: -100 })
const t5 = trade({
  symbol: "MSFT",
  side: "short",
  entry: "2024-03-08T09:00:00Z",
  exit: "2024-03-08T11:00:00Z",
  quantity: 10,
  entryPrice: 50,
  pnl: 40
})
const t6 = trade({ symbol: "TSLA", entry: "2024-03-09T23:30:00Z", exit: "2024-03-10T00:10:00Z", quantity: 1, pnl: 0 })
const t7 = trade({ symbol: "TSLA", entry: "2024-03-04T09:50:00Z", exit: "2024-03-04T10:20:00Z", quantity: 2, pnl: 10.5 })
const trades: ReadonlyArray<Trade> = [t1, t2, t3, t4, t5, t6, t7]

type Row = readonly [key: unknown, trades: number, wins: number, losses: number, breakeven: number, totalUnits: number]

/** Each bucket as [key, trades, wins, losses, breakeven, total P&L in units]. */
const rows = (buckets: ReadonlyArray<TradeAnalysis.Bucket<unknown>>): ReadonlyArray<Row> =>
  buckets.map((b) => [b.key, b.trades, b.wins, b.losses, b.breakeven, b.totalPnl / 1_000_000])

// The orders that opened them, decided when they filled, counted per UTC day as the risk officer
// counts them: 03-04 had five orders (t1 in, t1 out, t7 in, t7 out, t2 in), 03-05 two (t3 in, t2
// out), 03-08 two (t5 in and out), 03-06 and 03-09 one each (t4 in, t6 in).
// Their positions as a share of equity when the entries were judged: one in each band.
const entries = new Map([
  [t1, entry("2024-03-04T09:30:00Z", 1, 5, 10)],
  [t7, entry("2024-03-04T09:50:00Z", 3, 5, 1.5)],
  [t2, entry("2024-03-04T14:00:00Z", 5, 5, 20.2)],
  [t3, entry("2024-03-05T03:10:00Z", 1, 2, 12.5)],
  [t4, entry("2024-03-06T15:00:00Z", 1, 1, 33)],
  [t5, entry("2024-03-08T09:00:00Z", 1, 2, 4.9)],
  [t6, entry("2024-03-09T23:30:00Z", 1, 1, 0.8)]
])

const analysis = TradeAnalysis.analyseTrades(trades, { entries })

describe("analyseTrades", () => {
  it("summarises every trade, with figures in micros", () => {
    expect(analysis.overall).toEqual({
      trades: 7,
      wins: 3,
      losses: 3,
      breakeven: 1,
      winRate: 3 / 7,
      totalPnl: u(-49.5),
      // −49.5 / 7 = −7.0714285… units, to the nearest micro
      averagePnl: -7_071_429,
      grossProfit: u(100.5),
      grossLoss: u(-150),
      averageWin: u(33.5),
      averageLoss: u(-50),
      profitFactor: 100.5 / 150
    })
    expect(analysis.timeZone).toBe("UTC")
    expect(analysis.firstEntryTs).toBe(at("2024-03-04T09:30:00Z"))
    expect(analysis.lastExitTs).toBe(at("2024-03-13T15:00:00Z"))
  })

  it("agrees with the metrics' trade statistics", () => {
    const m = Metrics.tradeStats(trades)
    expect(analysis.overall.wins).toBe(m.winningTrades)
    expect(analysis.overall.losses).toBe(m.losingTrades)
    expect(analysis.overall.profitFactor).toBe(m.profitFactor)
    expect(analysis.overall.averageWin).toBe(m.averageWin)
    expect(analysis.overall.averageLoss).toBe(m.averageLoss)
  })

  it("breaks down by symbol, worst total first", () => {
    expect(rows(analysis.bySymbol)).toEqual([
      ["MSFT", 2, 1, 1, 0, -60],
      ["AAPL", 3, 1, 2, 0, 0],
      ["TSLA", 2, 1, 0, 1, 10.5]
    ])
    expect(analysis.bySymbol[0]).toEqual({
      key: "MSFT",
      label: "MSFT",
      trades: 2,
      wins: 1,
      losses: 1,
      breakeven: 0,
      winRate: 0.5,
      totalPnl: u(-60),
      averagePnl: u(-30),
      grossProfit: u(40),
      grossLoss: u(-100),
      averageWin: u(40),
      averageLoss: u(-100),
      profitFactor: 0.4
    })
  })

  it("breaks down by side", () => {
    expect(rows(analysis.bySide)).toEqual([
      ["long", 5, 2, 2, 1, -69.5],
      ["short", 2, 1, 1, 0, 20]
    ])
  })

  it("breaks down by hour of entry in UTC, hours without trades absent", () => {
    expect(rows(analysis.byHour)).toEqual([
      [3, 1, 0, 1, 0, -20],
      [9, 3, 3, 0, 0, 100.5],
      [14, 1, 0, 1, 0, -30],
      [15, 1, 0, 1, 0, -100],
      [23, 1, 0, 0, 1, 0]
    ])
    expect(analysis.byHour.map((b) => b.label)).toEqual([
      "03:00–04:00",
      "09:00–10:00",
      "14:00–15:00",
      "15:00–16:00",
      "23:00–24:00"
    ])
  })

  it("breaks down by weekday of entry in UTC, Monday first", () => {
    expect(rows(analysis.byWeekday)).toEqual([
      ["mon", 3, 2, 1, 0, 30.5],
      ["tue", 1, 0, 1, 0, -20],
      ["wed", 1, 0, 1, 0, -100],
      ["fri", 1, 1, 0, 0, 40],
      ["sat", 1, 0, 0, 1, 0]
    ])
    expect(analysis.byWeekday.map((b) => b.label)).toEqual(["Monday", "Tuesday", "Wednesday", "Friday", "Saturday"])
  })

  it("reads hours and weekdays in the given time zone", () => {
    const ny = TradeAnalysis.analyseTrades(trades, { timeZone: "America/New_York" })
    expect(ny.timeZone).toBe("America/New_York")
    expect(rows(ny.byHour)).toEqual([
      [4, 3, 3, 0, 0, 100.5],
      [9, 1, 0, 1, 0, -30],
      [10, 1, 0, 1, 0, -100],
      [18, 1, 0, 0, 1, 0],
      [22, 1, 0, 1, 0, -20]
    ])
    // t3 entered 03:10 UTC on Tuesday, which is 22:10 on Monday in New York.
    expect(rows(ny.byWeekday)).toEqual([
      ["mon", 4, 2, 2, 0, 10.5],
      ["wed", 1, 0, 1, 0, -100],
      ["fri", 1, 1, 0, 0, 40],
      ["sat", 1, 0, 0, 1, 0]
    ])
  })

  it("follows daylight saving time and half-hour zones", () => {
    expect(TradeAnalysis.localHourAndWeekday(at("2024-03-10T06:59:00Z"), "America/New_York")).toEqual([1, "sun"])
    expect(TradeAnalysis.localHourAndWeekday(at("2024-03-10T07:00:00Z"), "America/New_York")).toEqual([3, "sun"])
    expect(TradeAnalysis.localHourAndWeekday(at("2024-03-04T18:45:00Z"), "Asia/Kolkata")).toEqual([0, "tue"])
  })

  it("breaks down by holding period", () => {
    expect(rows(analysis.byHoldingPeriod)).toEqual([
      ["under_1h", 3, 2, 0, 1, 60.5],
      ["1h_to_1d", 2, 1, 1, 0, 10],
      ["1d_to_5d", 1, 0, 1, 0, -20],
      ["5d_or_more", 1, 0, 1, 0, -100]
    ])
    expect(analysis.byHoldingPeriod.map((b) => b.label)).toEqual(["under 1 hour", "1 hour to 1 day", "1 to 5 days", "5 days or more"])
  })

  it("puts a holding period on its boundary in the longer bucket", () => {
    const held = (ms: number) => trade({ entry: "2024-01-01T00:00:00Z", exit: new Date(Date.UTC(2024, 0, 1) + ms).toISOString(), pnl: 1 })
    const keys = (ms: number) => TradeAnalysis.analyseTrades([held(ms)]).byHoldingPeriod.map((b) => b.key)
    expect(keys(3_600_000 - 1)).toEqual(["under_1h"])
    expect(keys(3_600_000)).toEqual(["1h_to_1d"])
    expect(keys(86_400_000)).toEqual(["1d_to_5d"])
    expect(keys(5 * 86_400_000 - 1)).toEqual(["1d_to_5d"])
    expect(keys(5 * 86_400_000)).toEqual(["5d_or_more"])
  })

  it("breaks down by position size as a share of equity when the entry was judged", () => {
    expect(rows(analysis.byPositionSize)).toEqual([
      ["0-1", 1, 0, 0, 1, 0],
      ["1-2", 1, 1, 0, 0, 10.5],
      ["2-5", 1, 1, 0, 0, 40],
      ["5-10", 1, 1, 0, 0, 50],
      ["10-15", 1, 0, 1, 0, -20],
      ["20-25", 1, 0, 1, 0, -30],
      ["30-40", 1, 0, 1, 0, -100]
    ])
    expect(analysis.byPositionSize.map((b) => [b.label, b.minPercent, b.maxPercent])).toEqual([
      ["up to 1% of equity", 0, 1],
      ["over 1% to 2% of equity", 1, 2],
      ["over 2% to 5% of equity", 2, 5],
      ["over 5% to 10% of equity", 5, 10],
      ["over 10% to 15% of equity", 10, 15],
      ["over 20% to 25% of equity", 20, 25],
      ["over 30% to 40% of equity", 30, 40]
    ])
    // A position of exactly an edge is within it (a cap there passes it); one a hair above is not.
    const sized = (percents: ReadonlyArray<number | null>) => {
      const ts = percents.map((_, i) => trade({ symbol: `S${i}`, entry: "2024-01-01T00:00:00Z", exit: "2024-01-01T01:00:00Z", pnl: 1 }))
      const es = new Map(ts.map((t, i) => [t, entry("2024-01-01T00:00:00Z", 1, 1, percents[i]!)]))
      return TradeAnalysis.analyseTrades(ts, { entries: es }).byPositionSize.map((b) => [b.key, b.trades, b.label, b.maxPercent])
    }
    expect(sized([10, 10.000001, 50, 50.5, null])).toEqual([
      ["5-10", 1, "over 5% to 10% of equity", 10],
      ["10-15", 1, "over 10% to 15% of equity", 15],
      ["40-50", 1, "over 40% to 50% of equity", 50],
      ["50+", 1, "over 50% of equity", null]
    ])
  })

  it("has no position-size breakdown without the entries' orders: trades do not carry the equity at their entry", () => {
    expect(TradeAnalysis.analyseTrades(trades).byPositionSize).toEqual([])
  })

  describe("positionPercentOf", () => {
    const context = (portfolio: PortfolioSnapshot): RiskContext => ({
      portfolio,
      dayStartEquity: portfolio.equity,
      peakEquity: portfolio.equity,
      ordersToday: 0,
      now: at("2024-03-04T15:00:00Z"),
      allowShort: true,
      allowFractional: false
    })
    const intent = (side: "buy" | "sell", quantity: number, current = 0): OrderIntent => ({
      round: "S@0" as RoundId,
      symbol: "S" as Symbol,
      ts: 0 as Timestamp,
      side,
      quantity,
      currentQuantity: current,
      targetQuantity: current + (side === "buy" ? quantity : -quantity),
      referencePrice: 100,
      reason: current === 0 ? "open" : Math.sign(current) !== Math.sign(current + (side === "buy" ? quantity : -quantity)) ? "reverse" : "increase"
    })
    /** What a `max_position_percent` rule measures of the order placed: the figure a cap compares. */
    const ruleMeasure = (i: OrderIntent, ctx: RiskContext, placed: number) => {
      const rule = Schema.decodeUnknownSync(Rule)({ id: "cap", name: "cap", kind: "max_position_percent", params: { percent: 50 } })
      return Rules.evaluateRule(Rules.make([rule]).rules[0]!, Gates.orderFacts(i, ctx), placed).actual
    }
    const cases: ReadonlyArray<readonly [string, OrderIntent, PortfolioSnapshot, RiskLimits]> = [
      ["an order the checks passed", intent("buy", 100), books(100_000), Gates.hardLimits],
      ["an order the position limit cut", intent("buy", 400), books(100_000), { ...Gates.hardLimits, maxPositionPct: 25 }],
      ["an order the cash reserve cut after the position limit passed it", intent("buy", 200), books(25_000, [holding("X", 750, 100)]), Gates.hardLimits],
      ["a reversal", intent("buy", 150, -50), books(105_000, [holding("S", -50, 100)]), Gates.hardLimits],
      ["a short", intent("sell", 80), books(100_000, [holding("S", 0, 100)]), Gates.hardLimits]
    ]
    it.each(cases)("measures %s as the rule does, at the quantity placed", (_, i, portfolio, limits) => {
      const verdict = RiskCheck.check(i, context(portfolio), Rules.empty, limits, "active")
      expect(verdict.quantity).toBeGreaterThan(0)
      const measured = TradeAnalysis.positionPercentOf(verdict, verdict.quantity)
      expect(measured).not.toBeNull()
      expect(measured).toBeCloseTo(ruleMeasure(i, context(portfolio), verdict.quantity)!, 6)
    })
    it("says which cut it: the position limit to 25 %, the reserve to 15 %", () => {
      const cut = RiskCheck.check(intent("buy", 400), context(books(100_000)), Rules.empty, { ...Gates.hardLimits, maxPositionPct: 25 }, "active")
      expect([cut.outcome, cut.quantity, TradeAnalysis.positionPercentOf(cut, cut.quantity)]).toEqual(["reduced", 250, 25])
      const reserve = RiskCheck.check(intent("buy", 200), context(books(25_000, [holding("X", 750, 100)])), Rules.empty, Gates.hardLimits, "active")
      expect([reserve.outcome, reserve.quantity, TradeAnalysis.positionPercentOf(reserve, reserve.quantity)]).toEqual(["reduced", 150, 15])
    })
  })

  it("breaks down by the orders of the UTC day the entry was decided on, as recorded", () => {
    expect(rows(analysis.byOrdersPerDay)).toEqual([
      [1, 2, 0, 1, 1, -100],
      [2, 2, 1, 1, 0, 20],
      [5, 3, 2, 1, 0, 30.5]
    ])
    expect(analysis.byOrdersPerDay.map((b) => [b.days, b.label])).toEqual([
      [2, "days with 1 order"],
      [2, "days with 2 orders"],
      [1, "days with 5 orders"]
    ])
    expect(rows(analysis.byOrderOfDay)).toEqual([
      [1, 5, 2, 2, 1, -30],
      [3, 1, 1, 0, 0, 10.5],
      [5, 1, 0, 1, 0, -30]
    ])
    expect(analysis.byOrderOfDay.map((b) => b.label)).toEqual(["1st order of its day", "3rd order of its day", "5th order of its day"])
    // Trades alone do not say how many orders there were (a reversal is one; resizing orders are not trades).
    const plain = TradeAnalysis.analyseTrades(trades)
    expect(plain.byOrdersPerDay).toEqual([])
    expect(plain.byOrderOfDay).toEqual([])
    expect(TradeAnalysis.analyseTrades(trades, { entries: new Map([[t4, entry("2024-03-06T15:00:00Z", 2, 3)]]) }).byOrderOfDay)
      .toMatchObject([{ key: 2, trades: 1 }])
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111].map(TradeAnalysis.ordinal)).toEqual([
      "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"
    ])
  })

  it("lists the largest winners and losers", () => {
    expect(analysis.topWinners).toEqual([t1, t5, t7])
    expect(analysis.topLosers).toEqual([t4, t2, t3])
    const two = TradeAnalysis.analyseTrades(trades, { top: 2 })
    expect(two.topWinners).toEqual([t1, t5])
    expect(two.topLosers).toEqual([t4, t2])
    expect(TradeAnalysis.analyseTrades(trades, { top: 0 }).topLosers).toEqual([])
  })

  it("orders equal losses by exit time, then symbol, whatever the input order", () => {
    const a = trade({ symbol: "BBB", entry: "2024-01-01T00:00:00Z", exit: "2024-01-02T00:00:00Z", pnl: -10 })
    const b = trade({ symbol: "AAA", entry: "2024-01-01T00:00:00Z", exit: "2024-01-02T00:00:00Z", pnl: -10 })
    const c = trade({ symbol: "AAA", entry: "2024-01-01T00:00:00Z", exit: "2024-01-01T12:00:00Z", pnl: -10 })
    expect(TradeAnalysis.analyseTrades([a, b, c]).topLosers).toEqual([c, b, a])
    expect(TradeAnalysis.analyseTrades([c, a, b]).topLosers).toEqual([c, b, a])
  })

  it("combines bucket statistics back into the overall ones, for every breakdown", () => {
    for (
      const breakdown of [
        analysis.bySymbol,
        analysis.bySide,
        analysis.byHour,
        analysis.byWeekday,
        analysis.byHoldingPeriod,
        analysis.byPositionSize,
        analysis.byOrdersPerDay,
        analysis.byOrderOfDay
      ]
    ) {
      expect(TradeAnalysis.combine(breakdown)).toEqual(analysis.overall)
    }
  })

  it("gives a clear empty result without trades: zeros and nulls, never NaN", () => {
    const empty = TradeAnalysis.analyseTrades([], { entries: new Map() })
    expect(empty).toEqual({
      timeZone: "UTC",
      clock: "entry",
      firstEntryTs: null,
      lastExitTs: null,
      overall: {
        trades: 0,
        wins: 0,
        losses: 0,
        breakeven: 0,
        winRate: null,
        totalPnl: 0,
        averagePnl: null,
        grossProfit: 0,
        grossLoss: 0,
        averageWin: null,
        averageLoss: null,
        profitFactor: null
      },
      bySymbol: [],
      bySide: [],
      byHour: [],
      byWeekday: [],
      byHoldingPeriod: [],
      byPositionSize: [],
      byOrdersPerDay: [],
      byOrderOfDay: [],
      topWinners: [],
      topLosers: []
    })
    expect(JSON.parse(JSON.stringify(empty))).toEqual(empty)
    expect(TradeAnalysis.describeTradeAnalysis(empty)).toMatch(/no closed trades/)
  })

  it("is JSON as is", () => {
    expect(JSON.parse(JSON.stringify(analysis))).toEqual(analysis)
  })

  it("refuses an unknown time zone with a typed defect", () => {
    expect(() => TradeAnalysis.analyseTrades([], { timeZone: "Mars/Olympus" })).toThrow(TradeAnalysis.UnknownTimeZone)
  })
})

describe("selectTrades", () => {
  it("selects by symbol, in any case, and by the period of exits [from, to)", () => {
    expect(TradeAnalysis.selectTrades(trades, { symbol: "msft" })).toEqual([t4, t5])
    expect(TradeAnalysis.selectTrades(trades, { from: at("2024-03-07T09:10:00Z") })).toEqual([t3, t4, t5, t6])
    expect(TradeAnalysis.selectTrades(trades, { to: at("2024-03-07T09:10:00Z") })).toEqual([t1, t2, t7])
    expect(TradeAnalysis.selectTrades(trades, { symbol: "AAPL", from: at("2024-03-05T00:00:00Z"), to: at("2024-03-08T00:00:00Z") }))
      .toEqual([t2, t3])
    expect(TradeAnalysis.selectTrades(trades, { symbol: "NONE" })).toEqual([])
  })
})

describe("describeTradeAnalysis", () => {
  it("says the overall figures, the extremes of each breakdown and the largest trades", () => {
    const text = TradeAnalysis.describeTradeAnalysis(analysis)
    expect(text).toContain(
      "7 trades, 3 won and 3 lost (win rate 42.9%), total P&L -49.50; 1 broke even, between 2024-03-04 09:30 UTC and 2024-03-13 15:00 UTC."
    )
    expect(text).toContain("Average P&L per trade -7.07, average win +33.50, average loss -50.00; profit factor 0.67.")
    expect(text).toContain("By symbol, the worst was MSFT (2 trades, -60.00) and the best TSLA (2 trades, +10.50).")
    expect(text).toContain("By hour of entry (UTC), the worst was 15:00–16:00 (1 trade, -100.00) and the best 09:00–10:00 (3 trades, +100.50).")
    expect(text).toContain("Largest losses: MSFT long closed 2024-03-13 15:00 UTC (-100.00); AAPL long closed 2024-03-05 10:00 UTC (-30.00)")
    expect(text).toContain("Largest wins: AAPL long closed 2024-03-04 09:45 UTC (+50.00)")
  })

  it("says when there was no losing trade", () => {
    const text = TradeAnalysis.describeTradeAnalysis(TradeAnalysis.analyseTrades([t1]))
    expect(text).toContain("1 trade, 1 won and 0 lost (win rate 100%), total P&L +50.00")
    expect(text).toContain("no losing trade, so no profit factor")
    expect(text).not.toContain("NaN")
  })
})

// Money stays integer micros through averages of odd sums.
it("rounds averages to whole micros, halves away from zero", () => {
  const odd = [
    trade({ entry: "2024-01-01T00:00:00Z", exit: "2024-01-01T01:00:00Z", pnl: -0.000001 }),
    trade({ entry: "2024-01-01T00:00:00Z", exit: "2024-01-01T01:00:00Z", pnl: -0.000002 })
  ]
  const s = TradeAnalysis.statsOf(odd)
  expect(s.averagePnl).toBe(-2 as Money)
  expect(s.averageLoss).toBe(-2 as Money)
  expect(Number.isInteger(s.averagePnl)).toBe(true)
})
