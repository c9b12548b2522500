import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import type { RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { IntentReason, OrderIntent, Side } from "../../schemas/Order.js"
import type { PortfolioSnapshot } from "../../schemas/Portfolio.js"
import type { RiskContext } from "../../schemas/Risk.js"
import { InvalidRule, Rule } from "../../schemas/Rule.js"
import type { RuleOutcome } from "../../schemas/Verdict.js"
import * as Gates from "../../src/trading/Gates.js"
import * as Rules from "../../src/trading/Rules.js"
import { books, holding } from "./portfolioFixtures.js"

// --- fixtures ------------------------------------------------------------------------------------

const at = (iso: string) => Date.parse(iso) as Timestamp



const context = (portfolio: PortfolioSnapshot, over: Partial<RiskContext> = {}): RiskContext => ({
  portfolio,
  dayStartEquity: portfolio.equity,
  peakEquity: portfolio.equity,
  ordersToday: 0,
  now: at("2024-03-04T15:00:00Z"),
  allowShort: false,
  allowFractional: false,
  ...over
})

const order = (
  side: Side,
  quantity: number,
  o: { readonly symbol?: string; readonly price?: number; readonly reason?: IntentReason; readonly current?: number } = {}
): OrderIntent => ({
  round: "AAPL@0" as RoundId,
  symbol: (o.symbol ?? "AAPL") as Symbol,
  ts: 0 as Timestamp,
  side,
  quantity,
  currentQuantity: o.current ?? 0,
  targetQuantity: (o.current ?? 0) + (side === "buy" ? quantity : -quantity),
  referencePrice: o.price ?? 100,
  reason: o.reason ?? "open"
})

const rule = (json: unknown): Rule => Either.getOrThrow(Rules.decodeRule(json))

/** One rule's outcome for an intent in a context. */
const judge = (json: unknown, intent: OrderIntent, ctx: RiskContext): RuleOutcome => {
  const prepared = Rules.make([rule(json)]).rules[0]!
  return Rules.evaluateRule(prepared, Gates.orderFacts(intent, ctx), intent.quantity)
}

const invalid = (input: unknown): InvalidRule => {
  const result = Rules.decode(input)
  if (Either.isRight(result)) throw new Error(`expected a decode error, got ${JSON.stringify(result.right)}`)
  expect(result.left).toBeInstanceOf(InvalidRule)
  expect(result.left._tag).toBe("InvalidRule")
  return result.left
}

const cash100k = context(books(100_000))

// --- rules ---------------------------------------------------------------------------------------

describe("max_position_percent", () => {
  const maxPos = { id: "pos", name: "Max 20%", kind: "max_position_percent", params: { percent: 20 } }

  it("passes a position within the limit", () => {
    const o = judge(maxPos, order("buy", 100), cash100k)
    expect(o).toEqual({
      rule: "pos",
      name: "Max 20%",
      kind: "max_position_percent",
      category: "position",
      result: "pass",
      reason: "within the limit",
      limit: 20,
      actual: 10,
      unit: "percent",
      quantityBefore: 100,
      quantityAfter: 100
    })
  })

  it("reduces to the largest whole quantity that fits", () => {
    const o = judge(maxPos, order("buy", 300), cash100k)
    expect(o.result).toBe("reduce")
    expect(o.reason).toBe("position would be 30% of equity (limit 20%); reduced from 300 to 200")
    expect([o.limit, o.actual, o.quantityBefore, o.quantityAfter]).toEqual([20, 30, 300, 200])
  })

  it("reduces to a fractional quantity when fractional is allowed", () => {
    const o = judge(maxPos, order("buy", 100, { price: 300 }), context(books(100_000), { allowFractional: true }))
    expect(o.reason).toBe("position would be 30% of equity (limit 20%); reduced from 100 to 66.666666")
    expect(o.quantityAfter).toBe(66.666666)
  })

  it("rejects when the position is already at the limit", () => {
    const o = judge(maxPos, order("buy", 10), context(books(80_000, [holding("AAPL", 200, 100)])))
    expect(o.result).toBe("reject")
    expect(o.reason).toBe("position would be 21% of equity (limit 20%); no smaller order fits")
    expect([o.limit, o.actual, o.quantityAfter]).toEqual([20, 21, 0])
  })

  it("limits a short by its absolute size", () => {
    const o = judge(maxPos, order("sell", 300), context(books(100_000), { allowShort: true }))
    expect(o.reason).toBe("position would be 30% of equity (limit 20%); reduced from 300 to 200")
  })

  it("never limits a risk-reducing order", () => {
    const o = judge(maxPos, order("sell", 50, { reason: "reduce" }), context(books(70_000, [holding("AAPL", 300, 100)])))
    expect([o.result, o.reason, o.quantityAfter]).toEqual(["pass", "risk-reducing order: not limited", 50])
  })

  it("rejects a risk-increasing order when equity is not positive", () => {
    const o = judge(maxPos, order("buy", 1), context(books(-10)))
    expect([o.result, o.reason]).toEqual(["reject", "equity is -10, not positive: only risk-reducing orders pass"])
    expect(o.actual).toBeNull()
  })
})

describe("max_open_positions", () => {
  const maxOpen = { id: "open", name: "Two at most", kind: "max_open_positions", params: { count: 2 } }

  it("passes an order that opens a position within the limit", () => {
    const o = judge(maxOpen, order("buy", 10), context(books(90_000, [holding("MSFT", 100, 100)])))
    expect([o.result, o.reason, o.limit, o.actual, o.unit]).toEqual(["pass", "within the limit", 2, 2, "count"])
  })

  it("rejects an order that opens one position too many (it cannot be reduced)", () => {
    const o = judge(maxOpen, order("buy", 1), context(books(80_000, [holding("MSFT", 100, 100), holding("GOOG", 100, 100)])))
    expect([o.result, o.reason, o.limit, o.actual, o.quantityAfter]).toEqual([
      "reject",
      "would open position 3 (limit 2 open positions)",
      2,
      3,
      0
    ])
  })

  it("passes orders on a position already open, even over the limit", () => {
    const ctx = context(books(70_000, [holding("AAPL", 100, 100), holding("MSFT", 100, 100), holding("GOOG", 100, 100)]))
    const o = judge(maxOpen, order("buy", 10), ctx)
    expect([o.result, o.reason, o.actual]).toEqual(["pass", "does not open a new position", null])
    expect(judge(maxOpen, order("sell", 100, { reason: "close" }), ctx).result).toBe("pass")
  })

  it("does not count flat positions", () => {
    const ctx = context(books(90_000, [holding("MSFT", 100, 100), holding("GOOG", 0, 100)]))
    expect(judge(maxOpen, order("buy", 10), ctx).result).toBe("pass")
  })
})

describe("min_cash_reserve", () => {
  const reserve = { id: "cash", name: "Keep 30%", kind: "min_cash_reserve", params: { percent: 30 } }

  it("passes when enough cash is left", () => {
    const o = judge(reserve, order("buy", 100), cash100k)
    expect([o.result, o.reason, o.limit, o.actual, o.category]).toEqual(["pass", "within the limit", 30, 90, "cash"])
  })

  it("reduces a buy to what leaves the reserve", () => {
    const o = judge(reserve, order("buy", 800), cash100k)
    expect(o.reason).toBe("cash reserve would be 20% of equity (minimum 30%); reduced from 800 to 700")
    expect([o.result, o.actual, o.quantityAfter]).toEqual(["reduce", 20, 700])
  })

  it("rejects when the reserve is already used up", () => {
    const o = judge(reserve, order("buy", 1), context(books(30_000, [holding("MSFT", 700, 100)])))
    expect([o.result, o.reason]).toEqual(["reject", "cash reserve would be 29.9% of equity (minimum 30%); no smaller order fits"])
  })

  it("counts a short sale against the reserve as a buy of the same size", () => {
    const o = judge(reserve, order("sell", 800), context(books(100_000), { allowShort: true }))
    expect(o.reason).toBe("cash reserve would be 20% of equity (minimum 30%); reduced from 800 to 700")
  })

  it("never limits a risk-reducing order", () => {
    const o = judge(reserve, order("sell", 100, { reason: "reduce" }), context(books(10_000, [holding("AAPL", 900, 100)])))
    expect([o.result, o.reason]).toEqual(["pass", "risk-reducing order: not limited"])
  })
})

describe("max_order_notional", () => {
  const maxNotional = { id: "size", name: "5k orders", kind: "max_order_notional", params: { notional: "5000" } }

  it("passes an order at the limit", () => {
    const o = judge(maxNotional, order("buy", 50), cash100k)
    expect([o.result, o.reason, o.limit, o.actual, o.unit]).toEqual(["pass", "within the limit", 5_000_000_000, 5_000_000_000, "micros"])
  })

  it("reduces an order above the limit", () => {
    const o = judge(maxNotional, order("buy", 80), cash100k)
    expect([o.result, o.reason, o.quantityAfter]).toEqual([
      "reduce",
      "order notional 8000 is above the limit of 5000; reduced from 80 to 50",
      50
    ])
  })

  it("rejects when not even one unit fits", () => {
    const o = judge(maxNotional, order("buy", 1, { price: 6000 }), cash100k)
    expect([o.result, o.reason]).toEqual(["reject", "order notional 6000 is above the limit of 5000; no smaller order fits"])
  })

  it("exempts risk-reducing orders by default, and limits them when told to", () => {
    const ctx = context(books(90_000, [holding("AAPL", 100, 100)]))
    const exempt = judge(maxNotional, order("sell", 80, { reason: "reduce" }), ctx)
    expect([exempt.result, exempt.reason]).toEqual(["pass", "risk-reducing order: exempt by the rule's parameters"])
    const strict = judge({ ...maxNotional, params: { notional: 5000, exemptRiskReducing: false } }, order("sell", 80), ctx)
    expect([strict.result, strict.quantityAfter]).toEqual(["reduce", 50])
  })

  it("takes the amount as a decimal string or a number of units", () => {
    expect(rule({ ...maxNotional, params: { notional: "5000.50" } })).toMatchObject({ params: { notional: 5_000_500_000 } })
    expect(rule({ ...maxNotional, params: { notional: 5000.5 } })).toMatchObject({ params: { notional: 5_000_500_000 } })
  })
})

describe("max_orders_per_day", () => {
  const perDay = { id: "day", name: "Ten a day", kind: "max_orders_per_day", params: { count: 10 } }

  it("passes the last order allowed", () => {
    const o = judge(perDay, order("buy", 1), context(books(100_000), { ordersToday: 9 }))
    expect([o.result, o.reason, o.limit, o.actual]).toEqual(["pass", "within the limit", 10, 10])
  })

  it("rejects one more (it cannot be reduced)", () => {
    const o = judge(perDay, order("buy", 1), context(books(100_000), { ordersToday: 10 }))
    expect([o.result, o.reason, o.actual, o.quantityAfter]).toEqual(["reject", "would be order 11 today (limit 10 per day)", 11, 0])
  })

  it("exempts risk-reducing orders by default", () => {
    const ctx = context(books(90_000, [holding("AAPL", 100, 100)]), { ordersToday: 50 })
    expect(judge(perDay, order("sell", 100, { reason: "close" }), ctx).result).toBe("pass")
    expect(judge({ ...perDay, params: { count: 10, exemptRiskReducing: false } }, order("sell", 100), ctx).result).toBe("reject")
  })

  it("limited to some symbols, counts only their orders", () => {
    // Ten today, all of MSFT: an AAPL-only rule has counted none of them; an all-symbols rule all.
    const ctx = context(books(100_000), { ordersToday: 10, ordersTodayBySymbol: { MSFT: 10 } })
    const aaplOnly = { ...perDay, params: { count: 1 }, allowSymbols: ["AAPL"] }
    expect(judge(aaplOnly, order("buy", 1), ctx)).toMatchObject({ result: "pass", actual: 1 })
    expect(judge({ ...perDay, params: { count: 1 }, denySymbols: ["MSFT"] }, order("buy", 1), ctx)).toMatchObject({ result: "pass", actual: 1 })
    expect(judge({ ...perDay, params: { count: 1 } }, order("buy", 1), ctx)).toMatchObject({ result: "reject", actual: 11 })
    const mixed = context(books(100_000), { ordersToday: 3, ordersTodayBySymbol: { MSFT: 2, AAPL: 1 } })
    expect(judge(aaplOnly, order("buy", 1), mixed)).toMatchObject({ result: "reject", reason: "would be order 2 today (limit 1 per day)" })
  })
})

describe("trading_hours", () => {
  const nyse = {
    id: "nyse",
    name: "NYSE hours",
    kind: "trading_hours",
    params: { timeZone: "America/New_York", windows: [{ start: "09:30", end: "16:00" }] }
  }
  const when = (iso: string, over: Partial<RiskContext> = {}) => context(books(100_000), { now: at(iso), ...over })

  it("passes inside the window, in the zone's wall-clock time, across a DST change", () => {
    expect(judge(nyse, order("buy", 1), when("2024-03-04T14:30:00Z")).result).toBe("pass") // 09:30 EST
    expect(judge(nyse, order("buy", 1), when("2024-03-11T13:30:00Z")).result).toBe("pass") // 09:30 EDT
    const o = judge(nyse, order("buy", 1), when("2024-03-04T20:59:00Z"))
    expect([o.result, o.reason, o.actual, o.unit]).toEqual(["pass", "within trading hours", at("2024-03-04T20:59:00Z"), "timestamp"])
  })

  it("rejects before the open, at the close and on weekends", () => {
    const early = judge(nyse, order("buy", 1), when("2024-03-11T13:29:00Z"))
    expect([early.result, early.reason, early.quantityAfter]).toEqual([
      "reject",
      "outside trading hours: mon 09:29 in America/New_York (open 09:30-16:00 on mon,tue,wed,thu,fri)",
      0
    ])
    expect(judge(nyse, order("buy", 1), when("2024-03-04T21:00:00Z")).reason).toBe(
      "outside trading hours: mon 16:00 in America/New_York (open 09:30-16:00 on mon,tue,wed,thu,fri)"
    )
    expect(judge(nyse, order("buy", 1), when("2024-03-09T15:00:00Z")).reason).toBe(
      "outside trading hours: sat 10:00 in America/New_York (open 09:30-16:00 on mon,tue,wed,thu,fri)"
    )
  })

  it("applies to risk-reducing orders unless exempted", () => {
    const ctx = when("2024-03-09T15:00:00Z", { portfolio: books(90_000, [holding("AAPL", 100, 100)]) })
    expect(judge(nyse, order("sell", 100, { reason: "close" }), ctx).result).toBe("reject")
    const exempt = { ...nyse, params: { ...nyse.params, exemptRiskReducing: true } }
    expect(judge(exempt, order("sell", 100, { reason: "close" }), ctx).reason).toBe(
      "risk-reducing order: exempt by the rule's parameters"
    )
  })

  it("handles several windows, chosen weekdays, and an offset change inside a UTC hour", () => {
    // Lord Howe Island moves from +10:30 to +11:00 at 2024-10-05T15:30Z, half way through a UTC hour.
    const lordHowe = {
      id: "lh",
      name: "Lord Howe mornings",
      kind: "trading_hours",
      params: { timeZone: "Australia/Lord_Howe", windows: [{ start: "00:00", end: "02:30" }, { start: "22:00", end: "24:00" }], days: ["sun"] }
    }
    const prepared = Rules.make([rule(lordHowe)]).rules[0]!
    const judgeAt = (iso: string) => Rules.evaluateRule(prepared, Gates.orderFacts(order("buy", 1), when(iso)), 1)
    expect(judgeAt("2024-10-05T15:29:00Z").result).toBe("pass") // sun 01:59 (+10:30)
    expect(judgeAt("2024-10-05T15:31:00Z").reason).toBe(
      "outside trading hours: sun 02:31 in Australia/Lord_Howe (open 00:00-02:30, 22:00-24:00 on sun)"
    )
    expect(judgeAt("2024-10-05T15:29:59Z").result).toBe("pass")
    expect(judgeAt("2024-10-06T11:00:00Z").result).toBe("pass") // sun 22:00 (+11)
    expect(judgeAt("2024-10-06T13:00:00Z").reason).toContain("mon 00:00")
  })
})

describe("blackout", () => {
  const fomc = {
    id: "fomc",
    name: "FOMC",
    kind: "blackout",
    params: { windows: [{ from: "2024-03-01T09:00:00-05:00", to: "2024-03-01T15:00:00Z", label: "rate decision" }] }
  }
  const when = (iso: string) => context(books(100_000), { now: at(iso) })

  it("passes outside the window (its end is exclusive)", () => {
    expect(judge(fomc, order("buy", 1), when("2024-03-01T13:59:59Z")).reason).toBe("outside every blackout window")
    expect(judge(fomc, order("buy", 1), when("2024-03-01T15:00:00Z")).result).toBe("pass")
  })

  it("rejects inside the window (its start is inclusive)", () => {
    const o = judge(fomc, order("buy", 1), when("2024-03-01T14:00:00Z"))
    expect([o.result, o.reason, o.actual, o.quantityAfter]).toEqual([
      "reject",
      "inside the blackout window 2024-03-01T14:00:00.000Z to 2024-03-01T15:00:00.000Z (rate decision)",
      at("2024-03-01T14:00:00Z"),
      0
    ])
  })

  it("takes whole UTC days: a date as the end is through the end of that day, as --to reads it", () => {
    const day = { ...fomc, params: { windows: [{ from: "2024-03-01", to: "2024-03-01" }] } }
    expect(judge(day, order("buy", 1), when("2024-02-29T23:59:59.999Z")).result).toBe("pass")
    expect(judge(day, order("buy", 1), when("2024-03-01T00:00:00Z")).result).toBe("reject")
    expect(judge(day, order("buy", 1), when("2024-03-01T23:59:59.999Z")).reason).toBe(
      "inside the blackout window 2024-03-01T00:00:00.000Z to 2024-03-02T00:00:00.000Z"
    )
    expect(judge(day, order("buy", 1), when("2024-03-02T00:00:00Z")).result).toBe("pass")
    // Stored as the instants it means: read back, the same window.
    const rule = Schema.decodeUnknownSync(Rule)({ ...day, params: { windows: [{ from: "2024-03-01", to: "2024-03-03T12:00:00+01:00" }] } })
    const encoded = Schema.encodeSync(Rule)(rule)
    expect(encoded).toMatchObject({ params: { windows: [{ from: "2024-03-01T00:00:00.000Z", to: "2024-03-03T11:00:00.000Z" }] } })
    expect(Schema.decodeUnknownSync(Rule)(encoded)).toEqual(rule)
  })

  it("applies to risk-reducing orders unless exempted", () => {
    const ctx = context(books(90_000, [holding("AAPL", 100, 100)]), { now: at("2024-03-01T14:30:00Z") })
    expect(judge(fomc, order("sell", 100, { reason: "close" }), ctx).result).toBe("reject")
    expect(judge({ ...fomc, params: { ...fomc.params, exemptRiskReducing: true } }, order("sell", 100), ctx).result).toBe("pass")
  })
})

describe("scope and activity", () => {
  const base = { id: "pos", name: "Max 20%", kind: "max_position_percent", params: { percent: 20 } }

  it("skips an inactive rule, and records it", () => {
    const o = judge({ ...base, active: false }, order("buy", 900), cash100k)
    expect(o).toEqual({
      rule: "pos",
      name: "Max 20%",
      kind: "max_position_percent",
      category: "position",
      result: "skipped",
      reason: "inactive rule",
      limit: 20,
      actual: null,
      unit: "percent",
      quantityBefore: 900,
      quantityAfter: 900
    })
  })

  it("skips a symbol outside the allow list or inside the deny list", () => {
    expect(judge({ ...base, allowSymbols: ["MSFT"] }, order("buy", 900), cash100k).reason).toBe(
      "AAPL is not in the rule's allow list"
    )
    expect(judge({ ...base, denySymbols: ["AAPL"] }, order("buy", 900), cash100k).reason).toBe("AAPL is in the rule's deny list")
    expect(judge({ ...base, allowSymbols: ["AAPL"], denySymbols: ["AAPL"] }, order("buy", 900), cash100k).result).toBe("skipped")
    expect(judge({ ...base, allowSymbols: ["AAPL", "MSFT"] }, order("buy", 900), cash100k).result).toBe("reduce")
  })
})

describe("priority order", () => {
  const rules = Either.getOrThrow(
    Rules.decode([
      { id: "late", name: "Max 10%", kind: "max_position_percent", priority: 5, params: { percent: 10 } },
      { id: "b", name: "Max 40%", kind: "max_position_percent", priority: 1, params: { percent: 40 } },
      { id: "a", name: "Max 30%", kind: "max_position_percent", priority: 1, params: { percent: 30 } },
      { id: "first", name: "6k orders", kind: "max_order_notional", priority: -3, params: { notional: 6000 } }
    ])
  )

  it("sorts by priority, then by id", () => {
    expect(Rules.make(rules).rules.map((p) => p.rule.id)).toEqual(["first", "a", "b", "late"])
    expect(Rules.make([...rules].reverse()).rules.map((p) => p.rule.id)).toEqual(["first", "a", "b", "late"])
  })

  it("gives each rule the quantity the previous ones left", () => {
    const result = Rules.evaluate(Rules.make(rules), Gates.orderFacts(order("buy", 500), cash100k), 500)
    expect(result.outcomes.map((o) => [o.rule, o.result, o.quantityBefore, o.quantityAfter])).toEqual([
      ["first", "reduce", 500, 60],
      ["a", "pass", 60, 60],
      ["b", "pass", 60, 60],
      ["late", "pass", 60, 60]
    ])
    const big = Rules.evaluate(Rules.make(rules.slice(0, 3)), Gates.orderFacts(order("buy", 500), cash100k), 500)
    expect(big.outcomes.map((o) => [o.rule, o.result, o.quantityBefore, o.quantityAfter])).toEqual([
      ["a", "reduce", 500, 300],
      ["b", "pass", 300, 300],
      ["late", "reduce", 300, 100]
    ])
    expect([big.quantity, big.rejected]).toEqual([100, false])
  })
})

// --- decoding ------------------------------------------------------------------------------------

describe("decoding rules", () => {
  const good = [
    { id: "pos", name: "Max 20%", kind: "max_position_percent", params: { percent: 20 } },
    {
      id: "hrs",
      name: "NYSE",
      kind: "trading_hours",
      category: "schedule",
      priority: 3,
      active: false,
      allowSymbols: ["AAPL", "MSFT"],
      denySymbols: ["GME"],
      params: { timeZone: "America/New_York", windows: [{ start: "09:30", end: "16:00" }], days: ["mon", "wed"] }
    }
  ]

  it("decodes well-formed rules, filling the defaults", () => {
    const rules = Either.getOrThrow(Rules.decode(good))
    expect(rules[0]).toEqual({
      id: "pos",
      name: "Max 20%",
      kind: "max_position_percent",
      category: "position",
      priority: 0,
      active: true,
      denySymbols: [],
      params: { percent: 20 }
    })
    expect(rules[1]).toMatchObject({ priority: 3, active: false, allowSymbols: ["AAPL", "MSFT"], params: { days: ["mon", "wed"] } })
  })

  it("encodes back to JSON that decodes to the same rules", () => {
    const rules = Either.getOrThrow(Rules.decode(good))
    const encoded = Schema.encodeSync(Schema.Array(Rule))(rules)
    expect(Either.getOrThrow(Rules.decode(JSON.parse(JSON.stringify(encoded))))).toEqual(rules)
    const blackout = rule({ id: "b", name: "B", kind: "blackout", params: { windows: [{ from: "2024-03-01T09:00:00-05:00", to: "2024-03-01T15:00:00Z" }] } })
    expect(Schema.encodeSync(Rule)(blackout)).toMatchObject({
      params: { windows: [{ from: "2024-03-01T14:00:00.000Z", to: "2024-03-01T15:00:00.000Z" }] }
    })
  })

  const pos = (over: Record<string, unknown>) => ({ id: "pos", name: "Max", kind: "max_position_percent", params: { percent: 20 }, ...over })
  const hours = (params: Record<string, unknown>) => ({
    id: "h",
    name: "Hours",
    kind: "trading_hours",
    params: { timeZone: "America/New_York", windows: [{ start: "09:30", end: "16:00" }], ...params }
  })
  const blackout = (window: Record<string, unknown>) => ({ id: "b", name: "B", kind: "blackout", params: { windows: [window] } })

  it.each([
    ["a percent above 100", [pos({ params: { percent: 120 } })], "rules[0].params.percent", "a percent must be at most 100"],
    ["a negative percent", [pos({ params: { percent: -1 } })], "rules[0].params.percent", "a percent must be greater than 0"],
    ["a percent that is not a number", [pos({ params: { percent: "20" } })], "rules[0].params.percent", "expected a number, got \"20\""],
    ["NaN", [pos({ params: { percent: Number.NaN } })], "rules[0].params.percent", "a percent must be a finite number"],
    ["Infinity", [pos({ params: { percent: Infinity } })], "rules[0].params.percent", "a percent must be a finite number"],
    ["parameters that are not an object", [pos({ params: 20 })], "rules[0].params", "params must be an object { percent }"],
    ["missing parameters", [{ id: "p", name: "p", kind: "max_position_percent" }], "rules[0].params", "is missing"],
    ["a misspelt parameter", [pos({ params: { percent: 20, percnt: 2 } })], "rules[0].params.percnt", "is not a known field here (known: percent)"],
    ["an unknown kind", [pos({ kind: "max_leverage" })], "rules[0].kind", undefined],
    ["a missing kind", [{ id: "x", name: "x", params: {} }], "rules[0].kind", "is missing"],
    ["the wrong category for the kind", [pos({ category: "cash" })], "rules[0].category", "Expected \"position\", actual \"cash\""],
    ["an empty id", [pos({ id: "" })], "rules[0].id", "a rule id must not be empty"],
    ["a fractional priority", [pos({ priority: 1.5 })], "rules[0].priority", "a priority must be a whole number"],
    ["an active flag that is a string", [pos({ active: "yes" })], "rules[0].active", "expected true or false, got \"yes\""],
    ["an empty allow list", [pos({ allowSymbols: [] })], "rules[0].allowSymbols", "an allow list must name at least one symbol (omit it to apply to every symbol)"],
    ["a malformed symbol", [pos({ denySymbols: ["AAPL", "no spaces"] })], "rules[0].denySymbols[1]", undefined],
    ["a negative count", [{ id: "c", name: "c", kind: "max_open_positions", params: { count: -1 } }], "rules[0].params.count", "a count must be between 0 and 1000000"],
    ["a fractional count", [{ id: "c", name: "c", kind: "max_orders_per_day", params: { count: 2.5 } }], "rules[0].params.count", "a count must be a whole number"],
    ["a zero notional", [{ id: "n", name: "n", kind: "max_order_notional", params: { notional: "0" } }], "rules[0].params.notional", "an amount must be greater than 0"],
    ["a notional that is not an amount", [{ id: "n", name: "n", kind: "max_order_notional", params: { notional: true } }], "rules[0].params.notional", "an amount is a decimal string such as \"10000\" or a number of units"],
    ["a notional in exponent notation", [{ id: "n", name: "n", kind: "max_order_notional", params: { notional: "1e5" } }], "rules[0].params.notional", "expected a decimal amount with at most 6 decimals, e.g. \"10000\" or \"99.95\""],
    ["a notional beyond safe money", [{ id: "n", name: "n", kind: "max_order_notional", params: { notional: 1e12 } }], "rules[0].params.notional", "an amount must be a finite number of at most 9000000000 units"],
    ["an unknown time zone", [hours({ timeZone: "Mars/Olympus_Mons" })], "rules[0].params.timeZone", "unknown time zone \"Mars/Olympus_Mons\" (expected an IANA name such as \"America/New_York\")"],
    ["a time of 25:00", [hours({ windows: [{ start: "25:00", end: "26:00" }] })], "rules[0].params.windows[0].start", "a time of day is HH:MM between 00:00 and 24:00"],
    ["a window ending before it starts", [hours({ windows: [{ start: "16:00", end: "09:30" }] })], "rules[0].params.windows[0].end", "a window ends after it starts (16:00 to 09:30)"],
    ["no windows", [hours({ windows: [] })], "rules[0].params.windows", "trading hours need at least one window"],
    ["a weekday listed twice", [hours({ days: ["mon", "mon"] })], "rules[0].params.days", "a weekday is listed twice"],
    ["an unknown weekday", [hours({ days: ["monday"] })], "rules[0].params.days[0]", undefined],
    ["a blackout without an offset", [blackout({ from: "2024-03-01T09:00:00", to: "2024-03-01T10:00:00Z" })], "rules[0].params.windows[0].from", "expected an ISO-8601 date-time with Z or an offset, e.g. \"2024-03-01T14:30:00Z\""],
    ["a date not on the calendar", [blackout({ from: "2024-02-30T09:00:00Z", to: "2024-03-01T10:00:00Z" })], "rules[0].params.windows[0].from", "\"2024-02-30T09:00:00Z\" is not a date-time on the calendar"],
    ["a blackout ending before it starts", [blackout({ from: "2024-03-01T10:00:00Z", to: "2024-03-01T09:00:00Z" })], "rules[0].params.windows[0].to", "a blackout window ends after it starts"],
    ["a blackout day not on the calendar", [blackout({ from: "2024-02-30", to: "2024-03-01" })], "rules[0].params.windows[0].from", "\"2024-02-30\" is not a date on the calendar"],
    ["a blackout end that is neither a date nor a date-time", [blackout({ from: "2024-03-01", to: "tomorrow" })], "rules[0].params.windows[0].to", "expected an ISO date (\"2024-03-15\", a whole UTC day) or a date-time with Z or an offset (\"2024-03-15T14:30:00Z\")"],
    ["a duplicate id", [pos({}), pos({ name: "again" })], "rules[1].id", "duplicate rule id \"pos\""],
    ["a rule that is null", [null], "rules[0]", undefined],
    ["rules that are not a list", { pos: pos({}) }, "rules", undefined],
    ["a very long name", [pos({ name: "x".repeat(201) })], "rules[0].name", "a rule name is at most 200 characters"]
  ] as const)("names the field for %s", (_, input, field, message) => {
    const error = invalid(input)
    expect(error.field).toBe(field)
    if (message !== undefined) expect(error.message).toBe(message)
    expect(error.issues[0]).toEqual({ field: error.field, message: error.message })
  })

  it("refuses a __proto__ key rather than merging it", () => {
    const hostile = JSON.parse("[{\"id\":\"p\",\"name\":\"p\",\"kind\":\"max_position_percent\",\"params\":{\"percent\":20},\"__proto__\":{\"active\":false}}]")
    const error = invalid(hostile)
    expect(error.field).toBe("rules[0].__proto__")
    expect(({} as Record<string, unknown>)["active"]).toBeUndefined()
  })

  it("names odd keys safely", () => {
    expect(invalid([pos({ "bad key": 1 })]).field).toBe("rules[0][\"bad key\"]")
  })

  it("reports every issue, not just the first", () => {
    const error = invalid([pos({ priority: 0.5, params: { percent: 0 } })])
    expect(error.issues.map((i) => i.field)).toEqual(["rules[0].priority", "rules[0].params.percent"])
  })

  it("refuses more than 1000 rules", () => {
    const many = Array.from({ length: 1001 }, (_, i) => pos({ id: `r${i}` }))
    expect(invalid(many)).toMatchObject({ field: "rules", message: "a strategy has at most 1000 rules" })
  })

  it("names the field of a single rule without a prefix", () => {
    const result = Rules.decodeRule(pos({ params: { percent: 101 } }))
    expect(Either.isLeft(result) && [result.left.field, result.left.message]).toEqual(["params.percent", "a percent must be at most 100"])
    const root = Rules.decodeRule("max 20%")
    expect(Either.isLeft(root) && root.left.field).toBe("(root)")
  })
})
