import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import type { RoundId, Symbol, Timestamp } from "../../../schemas/Ids.js"
import type { OrderIntent, Side } from "../../../schemas/Order.js"
import type { RiskContext } from "../../../schemas/Risk.js"
import { Rule } from "../../../schemas/Rule.js"
import { Strategy, type StrategyEncoded } from "../../../schemas/Strategy.js"
import type { Trade } from "../../../schemas/Trade.js"
import * as Gates from "../../../src/trading/Gates.js"
import * as Rules from "../../../src/trading/Rules.js"
import * as RuleSuggestions from "../../../agents/system/RuleSuggestions.js"
import * as TradeAnalysis from "../../../agents/system/TradeAnalysis.js"
import { books, holding } from "../../trading/portfolioFixtures.js"
import { at, day, entry, trade, u } from "./fixtures.js"

// --- fixtures ------------------------------------------------------------------------------------

const strategyJson = (over: Partial<StrategyEncoded> = {}): StrategyEncoded => ({
  name: "test",
  symbols: ["WIN", "LOSE", "AAPL", "S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9"],
  agents: [{ type: "sma_crossover" }],
  ...over
})
const strategy = (over: Partial<StrategyEncoded> = {}) => Schema.decodeUnknownSync(Strategy)(strategyJson(over))

const suggest = (trades: ReadonlyArray<Trade>, options: RuleSuggestions.SuggestOptions & { timeZone?: string } = {}, over = {}) =>
  RuleSuggestions.suggestRules(
    TradeAnalysis.analyseTrades(trades, options.timeZone ? { timeZone: options.timeZone } : {}),
    strategy(over),
    options
  )

/** A suggestion is ready to apply: its encoded form decodes as a Rule (strictly), and the strategy takes it. */
const expectApplicable = (result: RuleSuggestions.RuleSuggestions, over: Partial<StrategyEncoded> = {}) => {
  const encoded = result.suggestions.map((s) => Schema.encodeSync(Rule)(s.rule))
  for (const e of encoded) {
    expect(Schema.decodeUnknownSync(Rule)(e)).toBeDefined()
    expect(Either.isRight(Rules.decodeRule(JSON.parse(JSON.stringify(e))))).toBe(true)
  }
  const base = strategyJson(over)
  const applied = Schema.decodeUnknownSync(Strategy)({ ...base, rules: [...(base.rules ?? []), ...encoded] })
  expect(applied.rules.length).toBe((base.rules ?? []).length + encoded.length)
}

/** One trade a day from 2024-01-01 (a Monday), entered and closed the same hour. */
const daily = (specs: ReadonlyArray<{ symbol?: string; hour?: number; pnl: number; quantity?: number; day?: number }>) =>
  specs.map((s, i) => {
    const d = s.day ?? i
    return trade({ symbol: s.symbol ?? "AAPL", entry: day(d, s.hour ?? 10), exit: day(d, s.hour ?? 10, 30), quantity: s.quantity ?? 1, pnl: s.pnl })
  })

const context = (over: Partial<RiskContext> = {}): RiskContext => ({
  portfolio: books(100_000),
  dayStartEquity: books(100_000).equity,
  peakEquity: books(100_000).equity,
  ordersToday: 0,
  now: at("2024-03-04T15:00:00Z"),
  allowShort: false,
  allowFractional: false,
  ...over
})

const intent = (symbol: string, side: Side, quantity: number, current = 0): OrderIntent => ({
  round: `${symbol}@0` as RoundId,
  symbol: symbol as Symbol,
  ts: 0 as Timestamp,
  side,
  quantity,
  currentQuantity: current,
  targetQuantity: current + (side === "buy" ? quantity : -quantity),
  referencePrice: 100,
  reason: current === 0 ? "open" : "close"
})

/** What the rules engine does with a suggested rule. */
const judge = (rule: Rule, i: OrderIntent, ctx: RiskContext) =>
  Rules.evaluateRule(Rules.make([rule]).rules[0]!, Gates.orderFacts(i, ctx), i.quantity).result

/**
 * Trades with their entry orders: each decided when it filled, the `nth` of `of` orders of its day
 * (default the only one), making a position of `percent` of equity (default unknown).
 */
const entered = (
  specs: ReadonlyArray<{ day: number; hour: number; pnl: number; nth?: number; of?: number; percent?: number; symbol?: string }>
) => {
  const trades = specs.map((s) => trade({ symbol: s.symbol ?? "AAPL", entry: day(s.day, s.hour), exit: day(s.day, s.hour, 30), pnl: s.pnl }))
  const entries = new Map(trades.map((t, i) => {
    const s = specs[i]!
    return [t, entry(day(s.day, s.hour), s.nth ?? 1, s.of ?? s.nth ?? 1, s.percent ?? null)]
  }))
  return { trades, entries }
}

const suggestEntered = (e: ReturnType<typeof entered>, options: RuleSuggestions.SuggestOptions = {}, over = {}) =>
  RuleSuggestions.suggestRules(TradeAnalysis.analyseTrades(e.trades, { entries: e.entries }), strategy(over), options)

// --- a losing symbol -----------------------------------------------------------------------------

// WIN makes 5 a trade, LOSE loses 10, six trades each; each pair shares an hour and a day, so no
// hour, weekday or busy day stands out on its own.
const symbolTrades = daily(
  Array.from({ length: 6 }, (_, i) => [{ symbol: "WIN", pnl: 5, hour: 8 + i, day: i }, { symbol: "LOSE", pnl: -10, hour: 8 + i, day: i }]).flat()
)

describe("suggestRules: a losing symbol", () => {
  it("stops opening positions in it, and lets a held position be closed", () => {
    const result = suggest(symbolTrades)
    expect(result.suggestions).toHaveLength(1)
    const [s] = result.suggestions
    expect(s!.rule).toEqual({
      kind: "max_orders_per_day",
      category: "frequency",
      id: "suggested-stop-lose",
      name: "Stop opening positions in LOSE (suggested)",
      priority: 0,
      active: true,
      allowSymbols: ["LOSE"],
      denySymbols: [],
      params: { count: 0, exemptRiskReducing: true }
    })
    expect(s!.pattern).toEqual({ kind: "symbol", symbol: "LOSE" })
    expect(s!.evidence).toEqual({
      trades: 6,
      losingTrades: 6,
      pnl: u(-60),
      averagePnl: u(-10),
      winRate: 0,
      otherTrades: 6,
      otherPnl: u(30),
      otherAveragePnl: u(5)
    })
    expect(s!.reason).toContain("LOSE lost 60.00 over 6 trades (6 losing, win rate 0%), while the other 6 trades made +30.00 (+5.00 a trade)")
    expectApplicable(result)

    const rule = s!.rule
    const ctx = context({ portfolio: books(100_000, [holding("LOSE", 10, 100)]) })
    expect(judge(rule, intent("LOSE", "buy", 10), context())).toBe("reject")
    expect(judge(rule, intent("LOSE", "sell", 10, 10), ctx)).toBe("pass")
    expect(judge(rule, intent("WIN", "buy", 10), context())).toBe("skipped")
  })

  it("suggests nothing for a pattern with fewer trades than the minimum, and says so", () => {
    const result = suggest(symbolTrades, { minTrades: 7 })
    expect(result.suggestions).toEqual([])
    expect(result.minTrades).toBe(7)
    expect(result.skipped).toEqual([{ pattern: "symbol LOSE", reason: "lost 60.00 over 6 trades: fewer than the 7 a pattern needs" }])
  })

  it("suggests nothing from one bad trade", () => {
    const result = suggest(daily([{ symbol: "LOSE", pnl: -1_000 }]))
    expect(result.suggestions).toEqual([])
  })

  it("suggests nothing for a loss within minLoss", () => {
    expect(suggest(symbolTrades, { minLoss: u(60) }).suggestions).toEqual([])
    expect(suggest(symbolTrades, { minLoss: u(59) }).suggestions).toHaveLength(1)
  })

  it("picks an id the strategy does not use", () => {
    const taken = {
      rules: [{ id: "suggested-stop-lose", name: "mine", kind: "max_open_positions", params: { count: 3 } }]
    } as Partial<StrategyEncoded>
    const result = suggest(symbolTrades, {}, taken)
    expect(result.suggestions.map((s) => s.rule.id)).toEqual(["suggested-stop-lose-2"])
    expectApplicable(result, taken)
  })

  it("skips a symbol the strategy no longer trades, or that a rule already stops", () => {
    const gone = suggest(symbolTrades, {}, { symbols: ["WIN"] })
    expect(gone.suggestions).toEqual([])
    expect(gone.skipped).toEqual([{ pattern: "symbol LOSE", reason: "the strategy no longer trades LOSE" }])

    const stopped = suggest(symbolTrades, {}, {
      rules: [{ id: "no-lose", name: "no", kind: "max_orders_per_day", allowSymbols: ["LOSE"], params: { count: 0 } }]
    } as Partial<StrategyEncoded>)
    expect(stopped.suggestions).toEqual([])
    expect(stopped.skipped).toEqual([{ pattern: "symbol LOSE", reason: "rule no-lose already stops new orders in LOSE" }])
  })

  it("orders suggestions by loss, then id", () => {
    const trades = daily([
      ...Array.from({ length: 5 }, (_, i) => ({ symbol: "S2", pnl: -12, hour: i, day: i })),
      ...Array.from({ length: 5 }, (_, i) => ({ symbol: "S1", pnl: -12, hour: 5 + i, day: 5 + i })),
      ...Array.from({ length: 5 }, (_, i) => ({ symbol: "S3", pnl: -20, hour: 10 + i, day: 10 + i })),
      ...Array.from({ length: 5 }, (_, i) => ({ symbol: "S0", pnl: -1, hour: 15 + i, day: 15 + i }))
    ])
    const result = suggest(trades)
    expect(result.suggestions.map((s) => [s.rule.id, s.evidence.pnl])).toEqual([
      ["suggested-stop-s3", u(-100)],
      ["suggested-stop-s1", u(-60)],
      ["suggested-stop-s2", u(-60)],
      ["suggested-stop-s0", u(-5)]
    ])
    expectApplicable(result)
  })
})

// --- hours and weekdays --------------------------------------------------------------------------

// One trade a day for 15 days: every third day at 15:00 UTC, losing 10; the others at 10:00, winning 10.
const hourTrades = daily(Array.from({ length: 15 }, (_, i) => (i % 3 === 0 ? { hour: 15, pnl: -10 } : { hour: 10, pnl: 10 })))

describe("suggestRules: losing hours and weekdays", () => {
  it("suggests trading hours without the losing hour", () => {
    const result = suggest(hourTrades)
    expect(result.suggestions).toHaveLength(1)
    const [s] = result.suggestions
    expect(s!.rule).toEqual({
      kind: "trading_hours",
      category: "schedule",
      id: "suggested-trading-hours",
      name: "Trade outside the losing hours (suggested)",
      priority: 0,
      active: true,
      denySymbols: [],
      params: {
        timeZone: "UTC",
        windows: [{ start: "00:00", end: "15:00" }, { start: "16:00", end: "24:00" }],
        days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        exemptRiskReducing: true
      }
    })
    expect(s!.pattern).toEqual({ kind: "hours", hours: [15], timeZone: "UTC" })
    expect(s!.evidence).toMatchObject({ trades: 5, losingTrades: 5, pnl: u(-50), otherTrades: 10, otherPnl: u(100), otherAveragePnl: u(10) })
    expect(s!.reason).toContain("Trades entered 15:00–16:00 (UTC) lost 50.00 over 5 trades")
    expectApplicable(result)

    expect(judge(s!.rule, intent("AAPL", "buy", 1), context({ now: at("2024-03-04T15:30:00Z") }))).toBe("reject")
    expect(judge(s!.rule, intent("AAPL", "buy", 1), context({ now: at("2024-03-04T16:00:00Z") }))).toBe("pass")
    expect(judge(s!.rule, intent("AAPL", "buy", 1), context({ now: at("2024-03-09T10:00:00Z") }))).toBe("pass")
  })

  it("writes the windows in the analysis's time zone", () => {
    // January: New York is UTC−5, so 15:00 UTC is 10:00 there.
    const result = suggest(hourTrades, { timeZone: "America/New_York" })
    const rule = result.suggestions[0]!.rule
    expect(rule.kind === "trading_hours" && rule.params).toMatchObject({
      timeZone: "America/New_York",
      windows: [{ start: "00:00", end: "10:00" }, { start: "11:00", end: "24:00" }]
    })
    expectApplicable(result)
  })

  it("does not call it a time-of-day pattern when the other hours did no better", () => {
    const all = daily(Array.from({ length: 6 }, () => ({ hour: 15, pnl: -10 })).map((s, i) => ({ ...s, symbol: `S${i}` })))
    const result = suggest(all)
    expect(result.suggestions).toEqual([])
    expect(result.skipped).toContainEqual({
      pattern: "hours 15:00–16:00",
      reason: "the other hours did no better per trade: not a time-of-day pattern"
    })
  })

  it("does not blame an hour whose trades did better than the rest", () => {
    // 15:00 loses 5 a trade over six trades; the four trades at other hours lost 20 each.
    const trades = daily([
      ...Array.from({ length: 6 }, (_, i) => ({ symbol: `S${i}`, hour: 15, pnl: -5 })),
      ...Array.from({ length: 4 }, (_, i) => ({ symbol: `S${6 + i}`, hour: 8 + i, pnl: -20 }))
    ])
    const result = suggest(trades)
    expect(result.suggestions).toEqual([])
    expect(result.skipped).toContainEqual({
      pattern: "hours 15:00–16:00",
      reason: "the other hours did no better per trade: not a time-of-day pattern"
    })
  })

  it("suggests trading on the other weekdays when Mondays lose", () => {
    // Five weeks: Monday loses 10, Tuesday and Wednesday win 10, all at noon.
    const trades = daily(
      Array.from({ length: 5 }, (_, w) => [
        { day: 7 * w, hour: 12, pnl: -10 },
        { day: 7 * w + 1, hour: 12, pnl: 10 },
        { day: 7 * w + 2, hour: 12, pnl: 10 }
      ]).flat()
    )
    const result = suggest(trades)
    expect(result.suggestions).toHaveLength(1)
    const [s] = result.suggestions
    expect(s!.rule).toMatchObject({
      kind: "trading_hours",
      id: "suggested-trading-days",
      params: {
        timeZone: "UTC",
        windows: [{ start: "00:00", end: "24:00" }],
        days: ["tue", "wed", "thu", "fri", "sat", "sun"],
        exemptRiskReducing: true
      }
    })
    expect(s!.pattern).toEqual({ kind: "weekdays", days: ["mon"], timeZone: "UTC" })
    expect(s!.evidence).toMatchObject({ trades: 5, pnl: u(-50), otherTrades: 10, otherPnl: u(100) })
    expectApplicable(result)
    expect(judge(s!.rule, intent("AAPL", "buy", 1), context({ now: at("2024-03-04T12:00:00Z") }))).toBe("reject")
    expect(judge(s!.rule, intent("AAPL", "buy", 1), context({ now: at("2024-03-05T12:00:00Z") }))).toBe("pass")
  })

  // Five weeks of `next_open` fills: decided on Friday's bar (21:00 UTC), filled at Monday's open
  // (14:30 UTC), losing 10; decided Tuesday, filled Wednesday, winning 10. The rule judges an order
  // when it is decided, so the pattern is Friday, at 21:00.
  const nextOpen = Array.from({ length: 5 }, (_, w) => [
    { decided: day(7 * w + 4, 21), filled: day(7 * w + 7, 14, 30), pnl: -10 },
    { decided: day(7 * w + 1, 21), filled: day(7 * w + 2, 14, 30), pnl: 10 }
  ]).flat()
  const nextOpenTrades = nextOpen.map((o) => trade({ entry: o.filled, exit: new Date(at(o.filled) + 6 * 3_600_000).toISOString(), pnl: o.pnl }))
  const decidedAt = new Map(nextOpenTrades.map((t, i) => [t, entry(nextOpen[i]!.decided)]))
  const byDecision = (trades: ReadonlyArray<Trade>, entries: ReadonlyMap<Trade, TradeAnalysis.Entry>) =>
    RuleSuggestions.suggestRules(TradeAnalysis.analyseTrades(trades, { entries, clock: "decision" }), strategy())

  it("reads weekdays and hours when the entry was decided, which is when the rule judges it", () => {
    expect(new Date(nextOpenTrades[0]!.entryTs).getUTCDay()).toBe(1) // filled on a Monday
    const result = byDecision(nextOpenTrades, decidedAt)
    const days = result.suggestions.find((s) => s.pattern.kind === "weekdays")!
    expect(days.pattern).toEqual({ kind: "weekdays", days: ["fri"], timeZone: "UTC" })
    expect(days.rule).toMatchObject({ params: { days: ["mon", "tue", "wed", "thu", "sat", "sun"] } })
    expect(days.evidence).toMatchObject({ trades: 5, pnl: u(-50), otherTrades: 5, otherPnl: u(50) })
    expect(days.reason).toContain("Trades whose entry was decided on Friday (UTC) lost 50.00 over 5 trades")
    const hours = result.suggestions.find((s) => s.pattern.kind === "hours")
    // Every entry was decided at 21:00: no hour stands out. (Filled at 14:30 every time, too.)
    expect(hours).toBeUndefined()
    expectApplicable(result)

    // Applied, the rule rejects exactly the entries its evidence names, when they are decided.
    for (const [i, o] of nextOpen.entries()) {
      const verdict = judge(days.rule, intent("AAPL", "buy", 1), context({ now: at(o.decided) }))
      expect([i, verdict]).toEqual([i, o.pnl < 0 ? "reject" : "pass"])
    }
  })

  // Five weeks: Monday loses 10, Friday loses 5, Tuesday and Wednesday win 10, all at noon.
  const weekTrades = daily(
    Array.from({ length: 5 }, (_, w) => [
      { day: 7 * w, hour: 12, pnl: -10 },
      { day: 7 * w + 1, hour: 12, pnl: 10 },
      { day: 7 * w + 2, hour: 12, pnl: 10 },
      { day: 7 * w + 4, hour: 12, pnl: -5 }
    ]).flat()
  )
  const withRules = (...rules: ReadonlyArray<unknown>) => ({ rules: rules.map((r) => Schema.encodeSync(Rule)(r as Rule)) }) as Partial<StrategyEncoded>

  it("does not suggest trading days or hours again once applied: the strategy's rule already keeps them closed", () => {
    const days = suggest(weekTrades).suggestions.find((s) => s.pattern.kind === "weekdays")!
    expect(days.pattern).toMatchObject({ days: ["mon", "fri"] })
    const again = suggest(weekTrades, {}, withRules(days.rule))
    expect(again.suggestions.filter((s) => s.pattern.kind === "weekdays")).toEqual([])
    expect(again.skipped).toContainEqual({
      pattern: "weekdays Monday and Friday",
      reason: "rule suggested-trading-days already keeps orders out on those days"
    })

    const hours = suggest(hourTrades).suggestions.find((s) => s.pattern.kind === "hours")!
    const hoursAgain = suggest(hourTrades, {}, withRules(hours.rule))
    expect(hoursAgain.suggestions).toEqual([])
    expect(hoursAgain.skipped).toContainEqual({
      pattern: "hours 15:00–16:00",
      reason: "rule suggested-trading-hours already keeps orders out of those hours"
    })
  })

  it("suggests only the days and hours no rule keeps closed yet, on their own evidence", () => {
    const noMondays = {
      kind: "trading_hours",
      category: "schedule",
      id: "no-mondays",
      name: "no Mondays",
      priority: 0,
      active: true,
      denySymbols: [],
      params: { timeZone: "UTC", windows: [{ start: "00:00", end: "24:00" }], days: ["tue", "wed", "thu", "fri", "sat", "sun"], exemptRiskReducing: false }
    }
    const result = suggest(weekTrades, {}, withRules(noMondays))
    const days = result.suggestions.find((s) => s.pattern.kind === "weekdays")!
    expect(days.pattern).toEqual({ kind: "weekdays", days: ["fri"], timeZone: "UTC" })
    expect(days.rule).toMatchObject({ params: { days: ["mon", "tue", "wed", "thu", "sat", "sun"] } })
    expect(days.evidence).toMatchObject({ trades: 5, pnl: u(-25) })
    expect(result.skipped).toContainEqual({ pattern: "weekdays Monday", reason: "rule no-mondays already keeps orders out on those days" })

    // Mornings only, every day: 15:00 is closed. A window that reaches into the hour leaves it open.
    const mornings = { ...noMondays, id: "mornings", params: { ...noMondays.params, windows: [{ start: "08:00", end: "12:00" }], days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] } }
    expect(suggest(hourTrades, {}, withRules(mornings)).suggestions.filter((s) => s.pattern.kind === "hours")).toEqual([])
    const late = { ...mornings, id: "late", params: { ...mornings.params, windows: [{ start: "08:00", end: "15:30" }] } }
    expect(suggest(hourTrades, {}, withRules(late)).suggestions.map((s) => s.rule.id)).toContain("suggested-trading-hours")
  })

  it("does not count a rule that is inactive, for some symbols only, or in another zone", () => {
    const days = suggest(weekTrades).suggestions.find((s) => s.pattern.kind === "weekdays")!.rule
    for (
      const other of [
        { ...days, active: false },
        { ...days, allowSymbols: ["AAPL"] },
        { ...days, params: { ...days.params, timeZone: "America/New_York" } }
      ]
    ) {
      const result = suggest(weekTrades, {}, withRules(other))
      expect(result.suggestions.find((s) => s.pattern.kind === "weekdays")!.rule.id).toBe("suggested-trading-days-2")
    }
  })

  it("reads the entry fill's time for a trade whose entry order is not known", () => {
    const result = byDecision(nextOpenTrades, new Map())
    expect(result.suggestions.find((s) => s.pattern.kind === "weekdays")!.pattern).toEqual({ kind: "weekdays", days: ["mon"], timeZone: "UTC" })
    // analyse_trades' own breakdown stays by entry fill.
    expect(TradeAnalysis.analyseTrades(nextOpenTrades, { entries: decidedAt }).byWeekday.map((b) => b.key)).toEqual(["mon", "wed"])
  })
})

// --- position size and orders per day -----------------------------------------------------------

// Ten symbols, one trade each at its own hour and day: positions of 5 % of equity win 10, of 30 % lose 20.
const sized = entered(
  Array.from({ length: 10 }, (_, i) => ({ symbol: `S${i}`, day: i, hour: i, percent: i % 2 === 0 ? 5 : 30, pnl: i % 2 === 0 ? 10 : -20 }))
)

describe("suggestRules: large positions", () => {
  it("caps the position percent at the top of the smaller, better positions: what the rule measures", () => {
    const result = suggestEntered(sized)
    expect(result.suggestions).toHaveLength(1)
    const [s] = result.suggestions
    expect(s!.rule).toEqual({
      kind: "max_position_percent",
      category: "position",
      id: "suggested-max-position",
      name: "Positions at most 5% of equity (suggested)",
      priority: 0,
      active: true,
      denySymbols: [],
      params: { percent: 5 }
    })
    expect(s!.pattern).toEqual({ kind: "position_size", abovePercent: 5 })
    expect(s!.evidence).toMatchObject({ trades: 5, losingTrades: 5, pnl: u(-100), otherTrades: 5, otherPnl: u(50) })
    expect(s!.reason).toContain("Positions above 5% of equity when they were entered lost 100.00 over 5 trades")
    expectApplicable(result)
    // Applied, it cuts the positions its evidence names and passes the others (one of exactly 5 % included).
    expect(judge(s!.rule, intent("AAPL", "buy", 300), context())).toBe("reduce")
    expect(judge(s!.rule, intent("AAPL", "buy", 50), context())).toBe("pass")
  })

  it("says when positions are already limited as tightly: such a cap would change nothing", () => {
    const result = suggestEntered(sized, {}, { risk: { limits: { maxPositionPct: 5 } } })
    expect(result.suggestions).toEqual([])
    expect(result.skipped).toContainEqual({
      pattern: "positions above 5% of equity",
      reason: "positions are already limited to 5% of equity: a cap of 5% would change nothing"
    })
    const capped = suggestEntered(sized, {}, {
      rules: [{ id: "cap", name: "cap", kind: "max_position_percent", params: { percent: 4 } }]
    } as Partial<StrategyEncoded>)
    expect(capped.suggestions).toEqual([])
    expect(capped.skipped).toContainEqual({
      pattern: "positions above 5% of equity",
      reason: "positions are already limited to 4% of equity: a cap of 5% would change nothing"
    })
  })

  it("suggests no cap when every position was the share of equity the strategy sizes at", () => {
    // Sized at 10 % of equity: the positions were 9.9 to 10 % when judged, whatever the equity had
    // grown to (against the initial cash they looked ever larger), and the later ones lost.
    const grown = entered(Array.from({ length: 12 }, (_, i) => ({ symbol: `S${i % 3}`, day: i, hour: 10, percent: i < 6 ? 9.9 : 10, pnl: i < 6 ? 10 : -10 })))
    const result = suggestEntered(grown)
    expect(result.suggestions.filter((s) => s.pattern.kind === "position_size")).toEqual([])
  })

  it("needs the positions the entries made", () => {
    const result = RuleSuggestions.suggestRules(TradeAnalysis.analyseTrades(sized.trades), strategy())
    expect(result.suggestions).toEqual([])
  })
})

// Three busy days (Mon–Wed of week 1) with four intraday round trips each losing 5 — eight orders
// a day, the entries 1st, 3rd, 5th and 7th; ten quiet days with one round trip winning 10.
const busy = entered([
  ...[0, 1, 2].flatMap((d) => [11, 12, 13, 14].map((hour, i) => ({ day: d, hour, pnl: -5, nth: 2 * i + 1, of: 8 }))),
  ...[3, 4, 5, 6, 10, 11, 12, 13, 17, 18].map((d) => ({ day: d, hour: 10, pnl: 10, nth: 1, of: 2 }))
])

describe("suggestRules: busy days", () => {
  it("caps orders per day below the entries a cap would refuse, which are its evidence", () => {
    const result = suggestEntered(busy)
    expect(result.suggestions).toHaveLength(1)
    const [s] = result.suggestions
    expect(s!.rule).toEqual({
      kind: "max_orders_per_day",
      category: "frequency",
      id: "suggested-max-orders-per-day",
      name: "At most 2 orders a day (suggested)",
      priority: 0,
      active: true,
      denySymbols: [],
      params: { count: 2, exemptRiskReducing: true }
    })
    expect(s!.pattern).toEqual({ kind: "orders_per_day", above: 2 })
    // The entries placed 3rd or later: a day's first entry passes a cap of 2.
    expect(s!.evidence).toMatchObject({ trades: 9, losingTrades: 9, pnl: u(-45), otherTrades: 13, otherPnl: u(85) })
    expect(s!.reason).toContain("Trades entered by the 3rd order of a UTC day or a later one lost 45.00 over 9 trades")
    expectApplicable(result)
    expect(judge(s!.rule, intent("AAPL", "buy", 1), context({ ordersToday: 2 }))).toBe("reject")
    expect(judge(s!.rule, intent("AAPL", "buy", 1), context({ ordersToday: 1 }))).toBe("pass")
  })

  it("counts a reversal as one order, and blames only the entries the cap refuses", () => {
    // Five days with two orders, each a reversal (it closes one trade and opens the next): the 2nd
    // entry of the day loses 20, the 1st loses 5; ten quiet days with one entry winning 10. Counting
    // an entry and an exit for each reversal made those days look like four orders, so "at most 2
    // orders a day" was suggested against every entry of those days — and refused none of them.
    const reversals = entered([
      ...[0, 1, 2, 3, 4].flatMap((d) => [
        { day: d, hour: 11, pnl: -5, nth: 1, of: 2, symbol: "S1" },
        { day: d, hour: 12, pnl: -20, nth: 2, of: 2, symbol: "S2" }
      ]),
      ...[7, 8, 9, 10, 11, 14, 15, 16, 17, 18].map((d) => ({ day: d, hour: 10, pnl: 10, nth: 1, of: 1 }))
    ])
    const result = suggestEntered(reversals)
    const s = result.suggestions.find((x) => x.pattern.kind === "orders_per_day")!
    expect(s.pattern).toEqual({ kind: "orders_per_day", above: 1 })
    expect(s.rule).toMatchObject({ params: { count: 1, exemptRiskReducing: true } })
    expect(s.evidence).toMatchObject({ trades: 5, losingTrades: 5, pnl: u(-100), otherTrades: 15, otherPnl: u(75) })
    // Applied, it refuses exactly those entries: each was the day's 2nd order.
    for (const t of reversals.trades) {
      const nth = reversals.entries.get(t)!.nthOfDay
      expect(judge(s.rule, intent("AAPL", "buy", 1), context({ ordersToday: nth - 1 }))).toBe(t.symbol === "S2" ? "reject" : "pass")
    }
    const analysis = TradeAnalysis.analyseTrades(reversals.trades, { entries: reversals.entries })
    expect(analysis.byOrdersPerDay.map((b) => [b.key, b.trades, b.days])).toEqual([[1, 10, 10], [2, 10, 5]])
  })

  it("needs the entries' orders: trades alone do not say how many orders a day had", () => {
    const result = RuleSuggestions.suggestRules(TradeAnalysis.analyseTrades(busy.trades), strategy())
    expect(result.suggestions.filter((s) => s.pattern.kind === "orders_per_day")).toEqual([])
  })

  it("skips it when a rule already limits orders per day as tightly", () => {
    const over = { rules: [{ id: "cap", name: "cap", kind: "max_orders_per_day", params: { count: 2 } }] } as Partial<StrategyEncoded>
    const result = suggestEntered(busy, {}, over)
    expect(result.suggestions).toEqual([])
    expect(result.skipped).toEqual([{ pattern: "entries after the 2nd order of a day", reason: "rule cap already limits orders per day" }])
  })
})

describe("suggestRules: nothing to suggest", () => {
  it("suggests nothing without trades", () => {
    const result = suggest([])
    expect(result).toEqual({ minTrades: 5, suggestions: [], skipped: [] })
    expect(RuleSuggestions.describeSuggestions(result)).toBe(
      "No rule to suggest: no losing pattern had the 5 trades it needs and a clear loss."
    )
  })

  it("suggests nothing when everything wins", () => {
    expect(suggest(daily(Array.from({ length: 10 }, () => ({ pnl: 5 })))).suggestions).toEqual([])
  })

  it("is deterministic and JSON as is", () => {
    const all = [...symbolTrades, ...busy.trades]
    const a = suggest(all)
    expect(suggest([...all].reverse())).toEqual(a)
    expect(JSON.parse(JSON.stringify(a))).toEqual(a)
  })
})

describe("describeSuggestions", () => {
  it("lists each suggestion with its reason and rule, then what was not suggested", () => {
    const text = RuleSuggestions.describeSuggestions(suggest(symbolTrades))
    expect(text).toMatch(/^1 rule to suggest, largest loss first\. 1\. LOSE lost 60\.00 over 6 trades/)
    expect(text).toContain("(rule suggested-stop-lose, max_orders_per_day)")
    const skipped = RuleSuggestions.describeSuggestions(suggest(symbolTrades, { minTrades: 7 }))
    expect(skipped).toContain("Not suggested: symbol LOSE (lost 60.00 over 6 trades: fewer than the 7 a pattern needs).")
  })
})
