import { describe, expect, it } from "@effect/vitest"
import { Either, ParseResult, Schema } from "effect"
import { ExecutionConfig, type OrderNotFillable } from "../../schemas/Execution.js"
import type { OrderId, RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import type { Fill, Order } from "../../schemas/Order.js"
import * as FillModel from "../../src/trading/FillModel.js"
import * as Ledger from "../../src/trading/Ledger.js"
import * as Money from "../../src/trading/Money.js"

const AAA = "AAA" as Symbol
const config = (input: unknown = {}) => Schema.decodeUnknownSync(ExecutionConfig)(input)

const order = (patch: Partial<Order> = {}): Order => ({
  id: "run-1/AAA@1000" as OrderId,
  idempotencyKey: "run-1/AAA@1000",
  round: "AAA@1000" as RoundId,
  symbol: AAA,
  side: "buy",
  quantity: 100,
  type: "market",
  decidedAt: 1000 as Timestamp,
  fillTiming: "next_open",
  ...patch
})

/** Bar t (decided on) and bar t+1: distinct open and close so the timing shows. */
const barT: Bar = { symbol: AAA, ts: 1000 as Timestamp, open: 95, high: 106, low: 94, close: 100, volume: 1_000 }
const barNext: Bar = { symbol: AAA, ts: 2000 as Timestamp, open: 101, high: 107, low: 99, close: 105, volume: 1_000 }

const filled = (o: Order, bar: Bar, c = config()): Fill => Either.getOrThrowWith(FillModel.fill(o, bar, c), (e) => e)
const refused = (o: unknown, bar: unknown, c: unknown = config()): OrderNotFillable => {
  const result = FillModel.fill(o as Order, bar as Bar, c as ExecutionConfig)
  if (Either.isRight(result)) throw new Error(`expected a refusal, got a fill at ${result.right.price}`)
  return result.left
}

describe("fill timing", () => {
  it("next_open (the default): an order decided on bar t fills at bar t+1's open, stamped with t+1's time", () => {
    const f = filled(order(), barNext)
    expect({ price: f.price, marketPrice: f.marketPrice, ts: f.ts }).toEqual({ price: 101, marketPrice: 101, ts: 2000 })
    expect(f.notional).toBe(Money.fromUnits(10_100))
  })

  it("next_open refuses bar t itself and any earlier bar: no look-ahead, no stale price", () => {
    expect(refused(order(), barT).field).toBe("ts")
    expect(refused(order(), { ...barT, ts: 500 }).field).toBe("ts")
    expect(FillModel.isDue(order(), barT)).toBe(false)
    expect(FillModel.isDue(order(), barNext)).toBe(true)
  })

  it("same_close is the explicit option: bar t's close, and only bar t", () => {
    const o = order({ fillTiming: "same_close" })
    const f = filled(o, barT)
    expect({ price: f.price, ts: f.ts }).toEqual({ price: 100, ts: 1000 })
    expect(refused(o, barNext).field).toBe("ts")
    expect(FillModel.isDue(o, barT)).toBe(true)
    expect(FillModel.isDue(o, barNext)).toBe(false)
  })

  it("the default configuration is next_open, no slippage, no commission", () => {
    expect(config()).toEqual({ fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } })
    const f = filled(order(), barNext)
    expect({ slippageBps: f.slippageBps, commission: f.commission }).toEqual({ slippageBps: 0, commission: 0 })
  })
})

describe("slippage and commission", () => {
  it("slippage is adverse: a buy pays more, a sell receives less, by the basis points", () => {
    const c = config({ slippageBps: 10 })
    const buy = filled(order(), barNext, c)
    const sell = filled(order({ side: "sell" }), barNext, c)
    expect(buy.price).toBeCloseTo(101 * 1.001, 12)
    expect(sell.price).toBeCloseTo(101 * 0.999, 12)
    expect(buy.price).toBeGreaterThan(buy.marketPrice)
    expect(sell.price).toBeLessThan(sell.marketPrice)
    expect(buy.slippageBps).toBe(10)
    expect(buy.notional).toBe(Money.notional(100, buy.price))
    expect(buy.notional - sell.notional).toBe(Money.fromUnits(100 * 101 * 0.002))
  })

  it("per-share commission with a minimum per order", () => {
    const c = config({ commission: { _tag: "per_share", perShare: "0.005", minimum: "1.00" } })
    expect(filled(order({ quantity: 100 }), barNext, c).commission).toBe(Money.fromUnits(1)) // 0.50 → the minimum
    expect(filled(order({ quantity: 1_000 }), barNext, c).commission).toBe(Money.fromUnits(5))
    expect(filled(order({ quantity: 333 }), barNext, c).commission).toBe(Money.fromUnits(1.665))
    expect(FillModel.commissionOf(c.commission, 1, Money.zero)).toBe(Money.fromUnits(1))
  })

  it("percentage commission of notional, with an optional minimum", () => {
    const c = config({ commission: { _tag: "percent", rate: 0.001 } })
    expect(filled(order(), barNext, c).commission).toBe(Money.fromUnits(10.1)) // 0.1 % of 10,100
    const withMinimum = config({ commission: { _tag: "percent", rate: 0.001, minimum: 20 } })
    expect(filled(order(), barNext, withMinimum).commission).toBe(Money.fromUnits(20))
  })

  it("a fill books in the ledger as is: cash moves by notional + commission", () => {
    const c = config({ slippageBps: 3.5, commission: { _tag: "per_share", perShare: 0.0035, minimum: 0.35 } })
    const f = filled(order({ quantity: 37 }), { ...barNext, open: 123.4567 }, c)
    const s = Either.getOrThrow(Ledger.applyFill(Ledger.make({ cash: Money.fromUnits(10_000) }), f))
    expect(s.cash).toBe(Money.fromUnits(10_000) - f.notional - f.commission)
  })
})

describe("determinism", () => {
  it("the fill id is derived from the order id, and the same order and bar give the same fill", () => {
    const c = config({ slippageBps: 7, commission: { _tag: "percent", rate: 0.0005 } })
    const a = filled(order(), barNext, c)
    const b = filled(order(), barNext, c)
    expect(a.id).toBe("run-1/AAA@1000:fill")
    expect(a.id).toBe(FillModel.fillIdOf(order()))
    expect(a.orderId).toBe("run-1/AAA@1000")
    expect(a).toEqual(b)
    expect(filled(order({ id: "other" as OrderId }), barNext, c).id).not.toBe(a.id)
  })
})

describe("bad orders, bars and configurations are typed refusals naming the field", () => {
  const cases: ReadonlyArray<[string, unknown, unknown, unknown, string]> = [
    ["a bar of another symbol", order(), { ...barNext, symbol: "BBB" }, config(), "symbol"],
    ["quantity 0", order({ quantity: 0 }), barNext, config(), "quantity"],
    ["negative quantity", order({ quantity: -5 }), barNext, config(), "quantity"],
    ["NaN quantity", order({ quantity: Number.NaN }), barNext, config(), "quantity"],
    ["infinite quantity", order({ quantity: Infinity }), barNext, config(), "quantity"],
    ["huge quantity", order({ quantity: 1e300 }), barNext, config(), "quantity"],
    ["a notional beyond the exact range", order({ quantity: 1e9 }), { ...barNext, open: 1e9 }, config(), "quantity"],
    ["NaN open", order(), { ...barNext, open: Number.NaN }, config(), "open"],
    ["zero open", order(), { ...barNext, open: 0 }, config(), "open"],
    ["infinite close", order({ fillTiming: "same_close" }), { ...barT, close: Infinity }, config(), "close"],
    ["unknown side", order({ side: "short" as never }), barNext, config(), "side"],
    ["unknown timing", order({ fillTiming: "whenever" as never }), barNext, config(), "fillTiming"],
    ["NaN slippage", order(), barNext, { ...config(), slippageBps: Number.NaN }, "slippageBps"],
    ["slippage of 100 %", order({ side: "sell" }), barNext, { ...config(), slippageBps: 10_000 }, "slippageBps"],
    [
      "a commission beyond the exact range",
      order({ quantity: 1e6 }),
      barNext,
      { ...config(), commission: { _tag: "per_share", perShare: 9e15, minimum: 0 } },
      "commission"
    ]
  ]
  for (const [name, o, bar, c, field] of cases) {
    it(name, () => {
      const error = refused(o, bar, c)
      expect(error._tag).toBe("OrderNotFillable")
      expect(error.field).toBe(field)
      expect(error.orderId).toBe((o as Order).id)
    })
  }
})

describe("ExecutionConfig decoding", () => {
  const errorPaths = (input: unknown) => {
    const result = Schema.decodeUnknownEither(ExecutionConfig)(input)
    if (Either.isRight(result)) throw new Error("expected a decoding error")
    return ParseResult.ArrayFormatter.formatErrorSync(result.left).map((issue) => issue.path.join("."))
  }

  it("decodes amounts written as decimal strings or numbers to exact micros, and encodes them as decimal strings", () => {
    const c = config({ fillTiming: "same_close", slippageBps: 2.5, commission: { _tag: "per_share", perShare: 0.005, minimum: "1" } })
    expect(c).toEqual({
      fillTiming: "same_close",
      slippageBps: 2.5,
      commission: { _tag: "per_share", perShare: 5_000, minimum: 1_000_000 }
    })
    expect(Schema.encodeSync(ExecutionConfig)(c).commission).toEqual({ _tag: "per_share", perShare: "0.005", minimum: "1" })
    expect(config({ commission: { _tag: "percent", rate: 0.0002 } }).commission).toEqual({ _tag: "percent", rate: 0.0002, minimum: 0 })
  })

  it("errors name the field", () => {
    expect(errorPaths({ slippageBps: 5_000 })).toEqual(["slippageBps"])
    expect(errorPaths({ slippageBps: -1 })).toEqual(["slippageBps"])
    expect(errorPaths({ fillTiming: "close" })).toContain("fillTiming")
    expect(errorPaths({ commission: { _tag: "per_share", perShare: "abc" } })).toContain("commission.perShare")
    expect(errorPaths({ commission: { _tag: "per_share", perShare: "-0.01" } })).toContain("commission.perShare")
    expect(errorPaths({ commission: { _tag: "per_share", perShare: 0.0000001 } })).toContain("commission.perShare")
    expect(errorPaths({ commission: { _tag: "per_share" } })).toContain("commission.perShare")
    expect(errorPaths({ commission: { _tag: "percent", rate: 0.5 } })).toContain("commission.rate")
    expect(errorPaths({ commission: { _tag: "percentage", rate: 0.001 } })).toContain("commission._tag")
    expect(errorPaths({ slipageBps: 3 })).toEqual(["slipageBps"]) // a typo is an error, not a silent default
  })
})
