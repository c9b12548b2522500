import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck, ParseResult, Schema } from "effect"
import type { Symbol, Timestamp } from "../../schemas/Ids.js"
import {
  type EquityPoint,
  Metrics as MetricsSchema,
  MetricsConfig,
  UnorderedEquityPoint
} from "../../schemas/Metrics.js"
import type { Money } from "../../schemas/Money.js"
import type { Trade } from "../../schemas/Trade.js"
import * as Metrics from "../../src/trading/Metrics.js"

const DAY = 86_400_000
const SQRT252 = 15.874507866387544
const SQRT365 = 19.1049731745428

/** Units of currency to Money micros. */
const u = (units: number) => Math.round(units * 1_000_000) as Money
const at = (iso: string) => Date.parse(iso) as Timestamp
const pt = (ts: number, units: number, exposed = true): EquityPoint => ({ ts: ts as Timestamp, equity: u(units), exposed })
/** One point per consecutive UTC day at 00:00, starting 2024-01-01. */
const daily = (...units: ReadonlyArray<number>): Array<EquityPoint> =>
  units.map((x, i) => pt(at("2024-01-01T00:00:00Z") + i * DAY, x))
const trade = (pnlUnits: number): Trade => ({
  symbol: "TEST" as Symbol,
  side: "long",
  quantity: 1,
  entryTs: 0 as Timestamp,
  exitTs: 1 as Timestamp,
  entryPrice: 100,
  exitPrice: 100,
  pnl: u(pnlUnits),
  commission: 0 as Money
})
const run = (curve: ReadonlyArray<EquityPoint>, initialUnits = 100, config?: Partial<MetricsConfig>, trades: ReadonlyArray<Trade> = []) =>
  Metrics.compute({ curve, trades, initialCash: u(initialUnits), config: { ...Metrics.defaultConfig, ...config } })

// --- the worked example of docs/metrics.md -------------------------------------------------------

const example: Array<EquityPoint> = [
  pt(at("2024-01-03T14:30:00Z"), 1000, false),
  pt(at("2024-01-03T14:45:00Z"), 1005),
  pt(at("2024-01-03T15:00:00Z"), 1010),
  pt(at("2024-01-04T14:30:00Z"), 1030.2),
  pt(at("2024-01-05T14:30:00Z"), 1040),
  pt(at("2024-01-05T14:45:00Z"), 978.69),
  pt(at("2024-01-08T14:30:00Z"), 1027.6245),
  pt(at("2024-01-09T14:30:00Z"), 1048.17699, false)
]
const exampleTrades = [trade(35), trade(-12.5), trade(0), trade(25.67699)]

describe("MetricsConfig", () => {
  it("defaults to 252 periods a year and a zero risk-free rate", () => {
    expect(Schema.decodeUnknownSync(MetricsConfig)({})).toEqual({ periodsPerYear: 252, riskFreeRate: 0 })
    expect(Metrics.defaultConfig).toEqual({ periodsPerYear: 252, riskFreeRate: 0 })
    expect(Schema.decodeUnknownSync(MetricsConfig)({ periodsPerYear: 365, riskFreeRate: 0.05 })).toEqual({
      periodsPerYear: 365,
      riskFreeRate: 0.05
    })
  })

  it.each([
    [{ periodsPerYear: 0 }, "periodsPerYear", "greater than 0"],
    [{ periodsPerYear: -252 }, "periodsPerYear", "greater than 0"],
    [{ periodsPerYear: "252" }, "periodsPerYear", "Expected number"],
    [{ periodsPerYear: Infinity }, "periodsPerYear", "finite"],
    [{ riskFreeRate: -1 }, "riskFreeRate", "greater than -1"],
    [{ riskFreeRate: -5 }, "riskFreeRate", "greater than -1"],
    [{ riskFreeRate: NaN }, "riskFreeRate", "finite"],
    [{ riskFreeRate: null }, "riskFreeRate", "Expected number"]
  ])("rejects %j with a typed error naming %s", (input, field, reason) => {
    const result = Schema.decodeUnknownEither(MetricsConfig)(input)
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isRight(result)) return
    expect(result.left._tag).toBe("ParseError")
    const issues = ParseResult.ArrayFormatter.formatErrorSync(result.left)
    expect(issues.map((issue) => issue.path)).toEqual([[field]])
    expect(issues[0]!.message).toContain(reason)
    expect(ParseResult.TreeFormatter.formatErrorSync(result.left)).toContain(field)
  })

  it("converts the annual risk-free rate to a compounded daily rate", () => {
    // 1.05^(1/252) − 1 = 0.000193631;  1.05^(1/365) − 1 = 0.000133681
    expect(Metrics.riskFreePerPeriod({ periodsPerYear: 252, riskFreeRate: 0.05 })).toBeCloseTo(0.000193631, 9)
    expect(Metrics.riskFreePerPeriod({ periodsPerYear: 365, riskFreeRate: 0.05 })).toBeCloseTo(0.000133681, 9)
    expect(Metrics.riskFreePerPeriod(Metrics.defaultConfig)).toBe(0)
  })
})

describe("the worked example of docs/metrics.md", () => {
  it("resamples to daily closes with the initial cash as the first base", () => {
    const days = Metrics.dailyReturns(example, u(1000))
    expect(days.map((d) => new Date(d.day).toISOString().slice(0, 10))).toEqual([
      "2024-01-03",
      "2024-01-04",
      "2024-01-05",
      "2024-01-08",
      "2024-01-09"
    ])
    // closes: Wed 1010 (last of three points), Thu 1030.20, Fri 978.69 (not the 1040 peak), Mon, Tue
    expect(days.map((d) => d.close)).toEqual([u(1010), u(1030.2), u(978.69), u(1027.6245), u(1048.17699)])
    const expected = [0.01, 0.02, -0.05, 0.05, 0.02]
    days.forEach((d, i) => expect(d.ret).toBeCloseTo(expected[i]!, 12))
  })

  it("gives every figure the document gives, with the default config", () => {
    const m = Metrics.compute({ curve: example, trades: exampleTrades, initialCash: u(1000) })
    expect(m.config).toEqual({ periodsPerYear: 252, riskFreeRate: 0 })
    expect(m.bars).toBe(8)
    expect(m.days).toBe(5)
    expect(m.startTs).toBe(at("2024-01-03T14:30:00Z"))
    expect(m.endTs).toBe(at("2024-01-09T14:30:00Z"))
    expect(m.initialCash).toBe(u(1000))
    expect(m.finalEquity).toBe(u(1048.17699))
    // 1048.17699 / 1000 − 1
    expect(m.totalReturn).toBeCloseTo(0.04817699, 12)
    // 1.04817699^(365.25/6) − 1 = e^(60.875 × 0.0470525) − 1 = 16.537093
    expect(m.cagr).toBeCloseTo(16.537093, 5)
    // returns 0.01, 0.02, −0.05, 0.05, 0.02: mean 0.01; Σ(r − mean)² = 0 + 0.0001 + 0.0036 + 0.0016 + 0.0001 = 0.0054
    // sd = √(0.0054/4) = 0.0367423; vol = 0.0367423 × √252 = 0.583267
    expect(m.annualVolatility).toBeCloseTo(0.583267, 6)
    // 0.01 / 0.0367423 × √252 = 4.320494
    expect(m.sharpe).toBeCloseTo(4.320494, 6)
    // DD = √(0.05² / 5) = 0.0223607; 0.01 / 0.0223607 × √252 = 7.099296
    expect(m.sortino).toBeCloseTo(7.099296, 6)
    // peak 1040 (Fri 14:30), trough 978.69 (Fri 14:45): 61.31 / 1040
    expect(m.maxDrawdown).toBeCloseTo(0.0589519, 7)
    expect(m.maxDrawdownPeakTs).toBe(at("2024-01-05T14:30:00Z"))
    expect(m.maxDrawdownTroughTs).toBe(at("2024-01-05T14:45:00Z"))
    expect(m.maxDrawdownRecoveryTs).toBe(at("2024-01-09T14:30:00Z"))
    expect(m.maxDrawdownBars).toBe(3) // bar 4 → bar 7
    expect(m.maxDrawdownDays).toBe(4) // Fri 14:30 → Tue 14:30
    expect(m.longestDrawdownBars).toBe(3)
    expect(m.longestDrawdownDays).toBe(4)
    // 16.537093 / 0.0589519
    expect(m.calmar).toBeCloseTo(280.518, 3)
    expect(m.exposure).toBe(0.75) // 6 of 8 points
    expect(m.tradeCount).toBe(4)
    expect(m.winningTrades).toBe(2)
    expect(m.losingTrades).toBe(1)
    expect(m.winRate).toBe(0.5)
    expect(m.grossProfit).toBe(u(60.67699))
    expect(m.grossLoss).toBe(u(-12.5))
    expect(m.profitFactor).toBeCloseTo(4.8541592, 12) // 60.67699 / 12.5
    expect(m.averageWin).toBe(u(30.338495)) // 60.67699 / 2
    expect(m.averageLoss).toBe(u(-12.5))
  })

  it("with 365 periods and a 5% risk-free rate, only the return statistics change, as defined", () => {
    const base = Metrics.compute({ curve: example, trades: exampleTrades, initialCash: u(1000) })
    const m = Metrics.compute({
      curve: example,
      trades: exampleTrades,
      initialCash: u(1000),
      config: { periodsPerYear: 365, riskFreeRate: 0.05 }
    })
    // 0.0367423 × √365 = 0.701962 = 0.583267 × √(365/252)
    expect(m.annualVolatility).toBeCloseTo(0.701962, 6)
    expect(m.annualVolatility! / base.annualVolatility!).toBeCloseTo(Math.sqrt(365 / 252), 12)
    // rf_d = 1.05^(1/365) − 1 = 0.000133681; (0.01 − 0.000133681) / 0.0367423 × 19.1049732 = 5.130205
    expect(m.sharpe).toBeCloseTo(5.130205, 6)
    // only −0.05 < rf_d: DD = √((−0.050133681)² / 5) = 0.0224205; 0.00986632 / 0.0224205 × 19.1049732 = 8.407309
    expect(m.sortino).toBeCloseTo(8.407309, 6)
    const { annualVolatility: _v, config: _c, sharpe: _s, sortino: _o, ...rest } = m
    const { annualVolatility: _v2, config: _c2, sharpe: _s2, sortino: _o2, ...baseRest } = base
    expect(rest).toEqual(baseRest)
  })
})

describe("returns: total return, CAGR, Calmar", () => {
  const twoYears = 2 * 365.25 * DAY

  it("CAGR compounds over calendar years of 365.25 days", () => {
    // 100 → 121 over exactly 730.5 days: total 0.21, CAGR √1.21 − 1 = 0.1
    const m = run([pt(0, 100), pt(twoYears, 121)])
    expect(m.totalReturn).toBeCloseTo(0.21, 12)
    expect(m.cagr).toBeCloseTo(0.1, 12)
    // a loss: 100 → 81 over two years: √0.81 − 1 = −0.1
    expect(run([pt(0, 100), pt(twoYears, 81)]).cagr).toBeCloseTo(-0.1, 12)
  })

  it("Calmar is CAGR over the maximum drawdown", () => {
    // 100 → 90 (drawdown 0.1) → 121 two years after the first point: CAGR 0.1, Calmar 0.1 / 0.1 = 1
    const m = run([pt(0, 100), pt(DAY, 90), pt(twoYears, 121)])
    expect(m.maxDrawdown).toBeCloseTo(0.1, 12)
    expect(m.cagr).toBeCloseTo(0.1, 12)
    expect(m.calmar).toBeCloseTo(1, 12)
    // no drawdown: no Calmar
    expect(run([pt(0, 100), pt(twoYears, 121)]).calmar).toBeNull()
  })

  it("CAGR is −1 when equity ends at or below zero, null over no time or without positive initial cash", () => {
    expect(run([pt(0, 100), pt(DAY, 0)]).cagr).toBe(-1)
    expect(run([pt(0, 100), pt(DAY, -20)]).cagr).toBe(-1)
    // −20 from a peak of 100: (100 − (−20)) / 100 = 1.2
    expect(run([pt(0, 100), pt(DAY, -20)]).maxDrawdown).toBeCloseTo(1.2, 12)
    expect(run([pt(0, 150)]).cagr).toBeNull() // one point: years = 0
    expect(run([pt(0, 150)]).calmar).toBeNull()
    expect(run([pt(0, 150)]).totalReturn).toBeCloseTo(0.5, 12)
    const noCash = run([pt(0, 10), pt(DAY, 20)], 0)
    expect(noCash.totalReturn).toBeNull()
    expect(noCash.cagr).toBeNull()
  })

  it("a CAGR too large for a double is null, not Infinity", () => {
    // ×1000 in one millisecond: 1000^(31 557 600 000) overflows
    const m = run([pt(0, 100), pt(1, 100_000)])
    expect(m.cagr).toBeNull()
    expect(m.calmar).toBeNull()
    expect(m.totalReturn).toBeCloseTo(999, 9)
  })
})

describe("volatility, Sharpe and Sortino on daily returns", () => {
  // closes 110, 99, 108.9, 98.01 from 100: returns +0.1, −0.1, +0.1, −0.1; mean 0
  // Σ(r − 0)² = 4 × 0.01 = 0.04; sample sd = √(0.04/3) = 0.1154701
  const zigzag = daily(110, 99, 108.9, 98.01)

  it("annualised volatility is the sample standard deviation × √periodsPerYear", () => {
    const m = run(zigzag)
    expect(m.days).toBe(4)
    // 0.11547005 × 15.8745079 = 1.8330303
    expect(m.annualVolatility).toBeCloseTo(1.8330303, 6)
    expect(m.sharpe).toBeCloseTo(0, 12) // mean 0
    expect(m.sortino).toBeCloseTo(0, 12)
  })

  it("√365 instead of √252 scales volatility, Sharpe and Sortino by √(365/252)", () => {
    const m252 = run(example, 1000)
    const m365 = run(example, 1000, { periodsPerYear: 365 })
    const ratio = SQRT365 / SQRT252 // 1.2035002
    // 0.11547005 × 19.1049732 = 2.2060523
    expect(run(zigzag, 100, { periodsPerYear: 365 }).annualVolatility).toBeCloseTo(2.2060523, 6)
    expect(m365.annualVolatility! / m252.annualVolatility!).toBeCloseTo(ratio, 12)
    expect(m365.sharpe! / m252.sharpe!).toBeCloseTo(ratio, 12)
    expect(m365.sortino! / m252.sortino!).toBeCloseTo(ratio, 12)
  })

  it("a risk-free rate is subtracted from the mean daily return and is the Sortino target", () => {
    const m = run(zigzag, 100, { riskFreeRate: 0.05 })
    // rf_d = 1.05^(1/252) − 1 = 0.000193631; Sharpe = (0 − 0.000193631) / 0.1154701 × 15.8745079 = −0.0266198
    expect(m.sharpe).toBeCloseTo(-0.0266198, 7)
    // below target: the two −0.1 days, (−0.100193631)² = 0.0100388 each
    // DD = √(2 × 0.0100388 / 4) = 0.0708476; Sortino = −0.000193631 / 0.0708476 × 15.8745079 = −0.0433859
    expect(m.sortino).toBeCloseTo(-0.0433859, 6)
    // volatility does not depend on the risk-free rate
    expect(m.annualVolatility).toBe(run(zigzag).annualVolatility)
  })

  it("Sortino's downside deviation divides by all days, not only the losing ones", () => {
    // returns +0.1, +0.1, −0.1 (closes 110, 121, 108.9): mean 0.1/3 = 0.0333333
    // DD = √(0.01 / 3) = 0.0577350 (over 3 days; over the 1 losing day it would be 0.1)
    // Sortino = 0.0333333 / 0.0577350 × 15.8745079 = 9.1651514
    const m = run(daily(110, 121, 108.9))
    expect(m.sortino).toBeCloseTo(9.1651514, 6)
  })

  it("flat equity: zero volatility, no Sharpe; no Sortino without a target above it", () => {
    const m = run(daily(100, 100, 100, 100))
    expect(m.totalReturn).toBe(0)
    expect(m.cagr).toBe(0)
    expect(m.annualVolatility).toBe(0)
    expect(m.sharpe).toBeNull()
    expect(m.sortino).toBeNull()
    expect(m.maxDrawdown).toBe(0)
    expect(m.calmar).toBeNull()
    // every day misses a 5% target by rf_d: Sortino = −rf_d / rf_d × √252 = −√252
    expect(run(daily(100, 100, 100, 100), 100, { riskFreeRate: 0.05 }).sortino).toBeCloseTo(-SQRT252, 9)
  })

  it("only rising days: a Sharpe ratio but no Sortino ratio, no drawdown", () => {
    // returns +0.01, +0.02 (closes 101, 103.02): mean 0.015, sd √((0.005² × 2)/1) = 0.0070711
    // Sharpe = 0.015 / 0.0070711 × 15.8745079 = 33.674916
    const m = run(daily(101, 103.02))
    expect(m.sharpe).toBeCloseTo(33.674916, 5)
    expect(m.sortino).toBeNull()
    expect(m.maxDrawdown).toBe(0)
    expect(m.maxDrawdownPeakTs).toBeNull()
    expect(m.calmar).toBeNull()
  })

  it("one day gives one return: no volatility, Sharpe or Sortino", () => {
    const m = run([pt(at("2024-01-01T10:00:00Z"), 100), pt(at("2024-01-01T12:00:00Z"), 95), pt(at("2024-01-01T16:00:00Z"), 102)])
    expect(m.days).toBe(1)
    expect(m.annualVolatility).toBeNull()
    expect(m.sharpe).toBeNull()
    expect(m.sortino).toBeNull()
    expect(m.maxDrawdown).toBeCloseTo(0.05, 12) // measured bar by bar within the day
    expect(m.cagr).not.toBeNull() // six hours elapsed
  })
})

describe("resampling an intraday curve to daily returns", () => {
  it("takes each UTC day's last point, and a weekend is no days at all", () => {
    const curve = [
      pt(at("2024-01-05T14:30:00Z"), 100), // Fri
      pt(at("2024-01-05T17:00:00Z"), 104),
      pt(at("2024-01-05T20:45:00Z"), 102), // Fri close
      pt(at("2024-01-08T14:30:00Z"), 99), // Mon
      pt(at("2024-01-08T20:45:00Z"), 107.1), // Mon close
      pt(at("2024-01-09T14:30:00Z"), 90) // Tue (close)
    ]
    const days = Metrics.dailyReturns(curve, u(100))
    expect(days.map((d) => d.day)).toEqual([at("2024-01-05T00:00:00Z"), at("2024-01-08T00:00:00Z"), at("2024-01-09T00:00:00Z")])
    // Fri 102/100 − 1 = 0.02; Mon against Friday's close 107.1/102 − 1 = 0.05; Tue 90/107.1 − 1 = −0.1596639
    expect(days.map((d) => d.ret)).toEqual([
      expect.closeTo(0.02, 12),
      expect.closeTo(0.05, 12),
      expect.closeTo(-0.1596639, 7)
    ])
    const m = run(curve)
    expect(m.days).toBe(3)
    expect(m.bars).toBe(6)
    // same statistics as the three daily closes alone
    const closesOnly = run([pt(at("2024-01-05T00:00:00Z"), 102), pt(at("2024-01-08T00:00:00Z"), 107.1), pt(at("2024-01-09T00:00:00Z"), 90)])
    expect(m.annualVolatility).toBe(closesOnly.annualVolatility)
    expect(m.sharpe).toBe(closesOnly.sharpe)
    expect(m.sortino).toBe(closesOnly.sortino)
    // drawdown is measured bar by bar: Friday's intraday 104 is a peak the daily closes never show
    // (104 → 99 Monday morning: 5/104 = 0.0480769), but the deepest fall is 107.1 → 90 = 17.1/107.1
    expect(m.maxDrawdown).toBeCloseTo(0.1596639, 7)
    expect(m.maxDrawdownPeakTs).toBe(at("2024-01-08T20:45:00Z"))
    expect(run(curve.slice(0, 4)).maxDrawdown).toBeCloseTo(0.0480769, 7)
    expect(run(curve.slice(0, 4)).maxDrawdownPeakTs).toBe(at("2024-01-05T17:00:00Z"))
  })

  it("splits days at midnight UTC", () => {
    const curve = [pt(at("2024-01-01T23:59:59.999Z"), 110), pt(at("2024-01-02T00:00:00.000Z"), 121)]
    const days = Metrics.dailyReturns(curve, u(100))
    expect(days.map((d) => d.ret)).toEqual([expect.closeTo(0.1, 12), expect.closeTo(0.1, 12)])
    expect(run(curve).days).toBe(2)
  })

  it("an intraday dip recovered by the close is a drawdown, not a daily loss", () => {
    const curve = [pt(at("2024-01-01T10:00:00Z"), 100), pt(at("2024-01-01T11:00:00Z"), 80), pt(at("2024-01-01T16:00:00Z"), 100), pt(at("2024-01-02T16:00:00Z"), 100)]
    const m = run(curve)
    expect(m.maxDrawdown).toBeCloseTo(0.2, 12)
    expect(m.maxDrawdownBars).toBe(2) // bar 0 → recovered at bar 2
    expect(m.maxDrawdownDays).toBeCloseTo(6 / 24, 12) // 10:00 → 16:00
    expect(m.annualVolatility).toBe(0) // daily returns 0, 0
  })

  it("a day whose base is not positive has no return, and the run no return statistics", () => {
    // closes 0, 50, 55 from 100: returns −1 (0/100 − 1), undefined (base 0), +0.1 (55/50 − 1)
    const curve = daily(0, 50, 55)
    expect(Metrics.dailyReturns(curve, u(100)).map((d) => d.ret)).toEqual([-1, null, expect.closeTo(0.1, 12)])
    const m = run(curve)
    expect(m.days).toBe(3)
    // The two returns left (−1 and 0.1) would give a volatility and a Sharpe of a run that never lost everything.
    expect([m.annualVolatility, m.sharpe, m.sortino]).toEqual([null, null, null])
    expect([m.cagr, m.maxDrawdown]).toEqual([expect.any(Number), 1])
    // Below zero and back: the recovery leaves the Sharpe as undefined as the day below did (a probe's run showed +1.42).
    const below = run(daily(-20, 30, 40, 50))
    expect([below.sharpe, below.sortino, below.annualVolatility]).toEqual([null, null, null])
    // Never at or below zero: as before.
    expect(run(daily(90, 99, 95)).sharpe).not.toBeNull()
  })
})

describe("maximum drawdown and its duration", () => {
  it("reports the peak, the trough, the recovery and the bars and days between", () => {
    // 100, 120 (peak, bar 1), 90 (trough: 30/120 = 0.25, bar 2), 110, 125 (recovery, bar 4), 125
    const m = run(daily(100, 120, 90, 110, 125, 125))
    expect(m.maxDrawdown).toBeCloseTo(0.25, 12)
    expect(m.maxDrawdownPeakTs).toBe(at("2024-01-02T00:00:00Z"))
    expect(m.maxDrawdownTroughTs).toBe(at("2024-01-03T00:00:00Z"))
    expect(m.maxDrawdownRecoveryTs).toBe(at("2024-01-05T00:00:00Z"))
    expect(m.maxDrawdownBars).toBe(3)
    expect(m.maxDrawdownDays).toBe(3)
  })

  it("an unrecovered drawdown lasts to the last point", () => {
    // peak 120 at bar 1, trough 60 at bar 2 (0.5), 90 at bar 4: not recovered; bars 4 − 1 = 3, days 3
    const m = run(daily(100, 120, 60, 80, 90))
    expect(m.maxDrawdown).toBeCloseTo(0.5, 12)
    expect(m.maxDrawdownRecoveryTs).toBeNull()
    expect(m.maxDrawdownBars).toBe(3)
    expect(m.maxDrawdownDays).toBe(3)
    expect(m.longestDrawdownBars).toBe(3)
    expect(m.longestDrawdownDays).toBe(3)
  })

  it("the longest drawdown may be a different, shallower one", () => {
    // episode A: peak 100 (bar 0), 99 … 99 for 5 bars, recovered at bar 6 (depth 0.01, 6 bars)
    // episode B: peak 101 (bar 6), 50 (bar 7, depth 0.5049505), recovered at bar 8 (2 bars)
    const m = run(daily(100, 99, 99, 99, 99, 99, 101, 50, 102))
    expect(m.maxDrawdown).toBeCloseTo(51 / 101, 12)
    expect(m.maxDrawdownPeakTs).toBe(at("2024-01-07T00:00:00Z"))
    expect(m.maxDrawdownBars).toBe(2)
    expect(m.maxDrawdownDays).toBe(2)
    expect(m.longestDrawdownBars).toBe(6)
    expect(m.longestDrawdownDays).toBe(6)
  })

  it("of equally deep drawdowns the first is reported, and the peak is the last point at its level", () => {
    // 100, 100, 90 (0.1 from the bar-1 peak), 100 (recovered), 90 (0.1 again), 100
    const m = run(daily(100, 100, 90, 100, 90, 100))
    expect(m.maxDrawdownPeakTs).toBe(at("2024-01-02T00:00:00Z"))
    expect(m.maxDrawdownTroughTs).toBe(at("2024-01-03T00:00:00Z"))
    expect(m.maxDrawdownRecoveryTs).toBe(at("2024-01-04T00:00:00Z"))
    expect(m.maxDrawdownBars).toBe(2)
  })

  it("the initial cash is the first peak", () => {
    // initial 100, first point 80: drawdown 0.2 from the initial cash, dated at the first point
    const m = run(daily(80, 90), 100)
    expect(m.maxDrawdown).toBeCloseTo(0.2, 12)
    expect(m.maxDrawdownPeakTs).toBe(at("2024-01-01T00:00:00Z"))
    expect(m.maxDrawdownTroughTs).toBe(at("2024-01-01T00:00:00Z"))
    expect(m.maxDrawdownBars).toBe(1)
    expect(m.maxDrawdownDays).toBe(1)
  })
})

describe("exposure", () => {
  it("is the share of points with an open position", () => {
    const curve = daily(100, 101, 102, 103).map((p, i) => ({ ...p, exposed: i !== 0 }))
    expect(run(curve).exposure).toBe(0.75)
    expect(run(curve.map((p) => ({ ...p, exposed: false }))).exposure).toBe(0)
    expect(run(curve.map((p) => ({ ...p, exposed: true }))).exposure).toBe(1)
  })
})

describe("trade statistics", () => {
  it("win rate counts a break-even trade as not won; profit factor and averages ignore it", () => {
    // +30, +10, −20, 0, −5: wins 2, losses 2, break-even 1
    const m = run([], 100, {}, [trade(30), trade(10), trade(-20), trade(0), trade(-5)])
    expect(m.tradeCount).toBe(5)
    expect(m.winningTrades).toBe(2)
    expect(m.losingTrades).toBe(2)
    expect(m.winRate).toBe(0.4) // 2 / 5
    expect(m.grossProfit).toBe(u(40))
    expect(m.grossLoss).toBe(u(-25))
    expect(m.profitFactor).toBe(1.6) // 40 / 25
    expect(m.averageWin).toBe(u(20)) // 40 / 2
    expect(m.averageLoss).toBe(u(-12.5)) // −25 / 2
  })

  it("averages round to the nearest micro, halves away from zero", () => {
    const micros = (n: number) => ({ ...trade(0), pnl: n as Money })
    // wins 1 + 2 micros over 2 = 1.5 → 2; losses −1 − 2 over 2 = −1.5 → −2; 1 + 1 + 2 over 3 = 1.33 → 1
    expect(Metrics.tradeStats([micros(1), micros(2), micros(-1), micros(-2)])).toMatchObject({ averageWin: 2, averageLoss: -2 })
    expect(Metrics.tradeStats([micros(1), micros(1), micros(2)]).averageWin).toBe(1)
  })

  it("all winners: win rate 1, no profit factor, no average loss", () => {
    const m = run([], 100, {}, [trade(5), trade(7)])
    expect(m.winRate).toBe(1)
    expect(m.profitFactor).toBeNull()
    expect(m.averageLoss).toBeNull()
    expect(m.averageWin).toBe(u(6))
    expect(m.grossLoss).toBe(0)
  })

  it("all losers: win rate 0, profit factor 0, no average win", () => {
    const m = run([], 100, {}, [trade(-5), trade(-7)])
    expect(m.winRate).toBe(0)
    expect(m.profitFactor).toBe(0)
    expect(m.averageWin).toBeNull()
    expect(m.averageLoss).toBe(u(-6))
  })

  it("no trades, no points: counts are zero and the ratios are null", () => {
    const m = run([])
    expect(m).toMatchObject({
      tradeCount: 0,
      winningTrades: 0,
      losingTrades: 0,
      winRate: null,
      profitFactor: null,
      averageWin: null,
      averageLoss: null,
      grossProfit: 0,
      grossLoss: 0,
      bars: 0,
      days: 0,
      startTs: null,
      endTs: null,
      finalEquity: u(100),
      totalReturn: 0,
      cagr: null,
      annualVolatility: null,
      sharpe: null,
      sortino: null,
      calmar: null,
      maxDrawdown: 0,
      maxDrawdownBars: 0,
      maxDrawdownDays: 0,
      longestDrawdownBars: 0,
      longestDrawdownDays: 0,
      exposure: null
    })
  })
})

// --- the accumulator, properties -----------------------------------------------------------------

/** A random walk of equity points with gaps from one minute to four days. */
const walk = FastCheck.record({
  start: FastCheck.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2030, 0, 1) }),
  initial: FastCheck.integer({ min: 1_000_000, max: 10_000_000_000_000 }),
  steps: FastCheck.array(
    FastCheck.record({
      gap: FastCheck.integer({ min: 60_000, max: 4 * DAY }),
      move: FastCheck.double({ min: -0.2, max: 0.2, noNaN: true }),
      exposed: FastCheck.boolean()
    }),
    { maxLength: 300 }
  ),
  config: FastCheck.record({
    periodsPerYear: FastCheck.constantFrom(252, 365, 52, 12),
    riskFreeRate: FastCheck.double({ min: -0.05, max: 0.2, noNaN: true })
  }),
  pnls: FastCheck.array(FastCheck.integer({ min: -1_000_000_000, max: 1_000_000_000 }), { maxLength: 30 })
})
type Walk = typeof walk extends FastCheck.Arbitrary<infer A> ? A : never

const curveOf = (w: Walk): Array<EquityPoint> => {
  let ts = w.start
  let equity = w.initial
  return w.steps.map((s) => {
    ts += s.gap
    // kept between 1 micro and 2^52 micros, where Money is exact
    equity = Math.min(2 ** 52, Math.max(1, Math.round(equity * (1 + s.move))))
    return { ts: ts as Timestamp, equity: equity as Money, exposed: s.exposed }
  })
}
const tradesOf = (pnls: ReadonlyArray<number>) => pnls.map((p) => ({ ...trade(0), pnl: p as Money }))

/** An independent, naive two-pass implementation of the return and drawdown definitions. */
const reference = (curve: ReadonlyArray<EquityPoint>, initialCash: number, config: MetricsConfig) => {
  const closes = new Map<number, number>()
  for (const p of curve) closes.set(Math.floor(p.ts / DAY), p.equity)
  const returns: Array<number> = []
  let base = initialCash
  for (const close of closes.values()) {
    if (base > 0) returns.push(close / base - 1)
    base = close
  }
  const n = returns.length
  const mean = returns.reduce((a, b) => a + b, 0) / n
  const sd = Math.sqrt(returns.reduce((a, r) => a + (r - mean) ** 2, 0) / (n - 1))
  const rf = Math.pow(1 + config.riskFreeRate, 1 / config.periodsPerYear) - 1
  const dd = Math.sqrt(returns.reduce((a, r) => a + Math.min(0, r - rf) ** 2, 0) / n)
  let peak = initialCash
  let maxDrawdown = 0
  for (const p of curve) {
    peak = Math.max(peak, p.equity)
    if (peak > 0) maxDrawdown = Math.max(maxDrawdown, (peak - p.equity) / peak)
  }
  const k = Math.sqrt(config.periodsPerYear)
  return { n, days: closes.size, vol: sd * k, sd, sharpe: ((mean - rf) / sd) * k, dd, sortino: ((mean - rf) / dd) * k, maxDrawdown }
}

const near = (a: number | null, b: number) =>
  a !== null && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))

const everyNumberFinite = (value: unknown): boolean =>
  typeof value === "number"
    ? Number.isFinite(value)
    : typeof value === "object" && value !== null
    ? Object.values(value).every(everyNumberFinite)
    : true

describe("MetricsAccumulator", () => {
  it.prop("gives exactly the batch result, and result() mid-run disturbs nothing", [walk, FastCheck.nat()], ([w, cut]) => {
    const curve = curveOf(w)
    const trades = tradesOf(w.pnls)
    const split = curve.length === 0 ? 0 : cut % (curve.length + 1)
    const accumulator = new Metrics.MetricsAccumulator(w.initial as Money, w.config)
    curve.slice(0, split).forEach((p) => accumulator.add(p.ts, p.equity, p.exposed))
    // a mid-run look equals the batch over the prefix …
    expect(accumulator.result(trades)).toEqual(Metrics.compute({ curve: curve.slice(0, split), trades, initialCash: w.initial as Money, config: w.config }))
    curve.slice(split).forEach((p) => accumulator.add(p.ts, p.equity, p.exposed))
    // … and the final result equals the batch over the whole curve, bit for bit
    expect(accumulator.result(trades)).toStrictEqual(Metrics.compute({ curve, trades, initialCash: w.initial as Money, config: w.config }))
  }, { fastCheck: { numRuns: 200 } })

  it.prop("agrees with a naive two-pass implementation of the definitions", [walk], ([w]) => {
    const curve = curveOf(w)
    const m = Metrics.compute({ curve, trades: [], initialCash: w.initial as Money, config: w.config })
    const ref = reference(curve, w.initial, w.config)
    expect(m.days).toBe(ref.days)
    expect(m.maxDrawdown).toBe(ref.maxDrawdown)
    if (ref.n >= 2) {
      expect(near(m.annualVolatility, ref.vol)).toBe(true)
      // near-zero dispersion is where Welford and two passes legitimately differ in the last bits
      if (ref.sd > 1e-9) expect(near(m.sharpe, ref.sharpe)).toBe(true)
      if (ref.dd > 1e-9) expect(near(m.sortino, ref.sortino)).toBe(true)
    } else {
      expect(m.annualVolatility).toBeNull()
      expect(m.sharpe).toBeNull()
    }
  }, { fastCheck: { numRuns: 200 } })

  it("rejects a point that is not after the previous one, as a defect", () => {
    const accumulator = new Metrics.MetricsAccumulator(u(100))
    accumulator.add(1000 as Timestamp, u(100), false)
    expect(() => accumulator.add(1000 as Timestamp, u(101), false)).toThrow(UnorderedEquityPoint)
    expect(() => accumulator.add(999 as Timestamp, u(101), false)).toThrow(/not after the previous point at 1000/)
    expect(() => run([pt(DAY, 100), pt(0, 100)])).toThrow(UnorderedEquityPoint)
  })
})

describe("degenerate input and determinism", () => {
  const anyMoney = FastCheck.oneof(
    FastCheck.integer({ min: -1_000_000_000_000, max: 1_000_000_000_000 }),
    FastCheck.constantFrom(0, 1, -1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER)
  )
  const degenerate = FastCheck.record({
    start: FastCheck.integer({ min: -1_000_000_000_000, max: 4_000_000_000_000 }),
    initial: anyMoney,
    points: FastCheck.array(
      FastCheck.record({
        gap: FastCheck.oneof(FastCheck.constantFrom(1, DAY, 3 * DAY), FastCheck.integer({ min: 1, max: 100_000_000_000 })),
        equity: anyMoney,
        exposed: FastCheck.boolean()
      }),
      { maxLength: 40 }
    ),
    pnls: FastCheck.array(anyMoney.map((x) => Math.trunc(x / 1000)), { maxLength: 10 }),
    config: FastCheck.record({
      periodsPerYear: FastCheck.oneof(FastCheck.constantFrom(252, 365), FastCheck.double({ min: 1e-3, max: 1e6, noNaN: true })),
      riskFreeRate: FastCheck.double({ min: -0.999, max: 10, noNaN: true })
    })
  })

  it.prop("never produces NaN or Infinity, and the output always satisfies the Metrics schema", [degenerate], ([d]) => {
    let ts = d.start
    const curve = d.points.map((p) => ({ ts: (ts += p.gap) as Timestamp, equity: p.equity as Money, exposed: p.exposed }))
    const m = Metrics.compute({ curve, trades: tradesOf(d.pnls), initialCash: d.initial as Money, config: d.config })
    expect(everyNumberFinite(m)).toBe(true)
    // through JSON and back (JSON has no −0, so the comparison is on JSON too)
    const json = JSON.parse(JSON.stringify(Schema.encodeSync(MetricsSchema)(m)))
    expect(Schema.decodeUnknownSync(MetricsSchema)(json)).toEqual(JSON.parse(JSON.stringify(m)))
  }, { fastCheck: { numRuns: 500 } })

  it("the same input gives the same output, byte for byte", () => {
    const first = Metrics.compute({ curve: example, trades: exampleTrades, initialCash: u(1000) })
    const second = Metrics.compute({ curve: [...example], trades: [...exampleTrades], initialCash: u(1000) })
    expect(second).toStrictEqual(first)
    expect(JSON.stringify(second)).toBe(JSON.stringify(first))
  })
})
