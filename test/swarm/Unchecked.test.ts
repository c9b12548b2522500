import { describe, expect, it } from "@effect/vitest"
import { Equal, Schema } from "effect"
import { RequestOpinions, requestOpinions } from "../../schemas/AnalystProtocol.js"
import type { ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import {
  Book,
  book,
  DeskProtocol,
  Judge,
  judge,
  LedgerProtocol,
  MarketOpen,
  marketOpen,
  MarketUpdate,
  marketUpdate,
  PlaceOrders,
  placeOrders,
  RiskProtocol,
  ViewBooks,
  viewBooks
} from "../../schemas/TradingProtocol.js"
import { unchecked } from "../../schemas/Unchecked.js"

const ts = 1_700_000_000_000 as Timestamp
const bar = { symbol: "ACME" as Symbol, ts, open: 10, high: 11, low: 9, close: 10.5, volume: 1_000 }
const signal: ExternalSignal = {
  source: "tradingview",
  symbol: "ACME" as Symbol,
  ticker: "ACME",
  action: "buy",
  price: 10.5 as ExternalSignal["price"],
  alertId: "tv-1",
  receivedAt: ts
}

describe("messages built unchecked", () => {
  it("are the instances the constructor makes: prototype, fields in order, tag last, equal, and members of their protocols", () => {
    // The same field values to both (Equal compares arrays by reference).
    const bars = [bar]
    const rounds = [{ round: "ACME@1" as RoundId, bar }]
    const none: Array<never> = []
    const update = { ts, bars }
    const withSignals = { ts, bars, signals: [signal] }
    const cases: Array<readonly [unknown, unknown, (u: unknown) => boolean]> = [
      [marketUpdate(update), new MarketUpdate(update, true), Schema.is(MarketUpdate)],
      [marketUpdate(withSignals), new MarketUpdate(withSignals, true), Schema.is(MarketUpdate)],
      [marketOpen({ ts, bars }), new MarketOpen({ ts, bars }, true), Schema.is(DeskProtocol)],
      [placeOrders({ ts, orders: none }), new PlaceOrders({ ts, orders: none }, true), Schema.is(DeskProtocol)],
      [book({ ts, bars, fills: none, open: none }), new Book({ ts, bars, fills: none, open: none }, true), Schema.is(LedgerProtocol)],
      [viewBooks({ asOf: ts }), new ViewBooks({ asOf: ts }, true), Schema.is(LedgerProtocol)],
      [judge({ ts, decisions: none, closes: none }), new Judge({ ts, decisions: none, closes: none }, true), Schema.is(RiskProtocol)],
      [requestOpinions({ ts, rounds }), new RequestOpinions({ ts, rounds }, true), Schema.is(RequestOpinions)]
    ]
    for (const [fast, made, member] of cases) {
      expect(Object.getPrototypeOf(fast)).toBe(Object.getPrototypeOf(made))
      expect(Reflect.ownKeys(fast as object)).toEqual(Reflect.ownKeys(made as object))
      expect(fast).toEqual(made)
      expect(Equal.equals(fast, made)).toBe(true)
      expect(JSON.stringify(fast)).toBe(JSON.stringify(made))
      expect(member(fast)).toBe(true)
    }
  })

  it("refuses a class with a constructor default it would not apply", () => {
    class WithDefault extends Schema.TaggedClass<WithDefault>()("WithDefault", {
      n: Schema.optionalWith(Schema.Number, { default: () => 1, exact: true })
    }) {}
    expect(() => unchecked(WithDefault)).toThrow(/field n has a constructor default/)
    class Plain extends Schema.TaggedClass<Plain>()("Plain", { n: Schema.Number }) {}
    expect(unchecked(Plain)({ n: 2 })).toEqual(new Plain({ n: 2 }))
  })
})
