/**
 * The `tradingview` analyst: nothing before an alert about the symbol; then the alert's direction
 * (a sell is flat when shorting is not allowed) with its confidence or the configured one, for
 * `validity` bars; a newer alert replaces it; other symbols' alerts change nothing. Through the
 * analyst actor: signals delivered with a round reach the model before that bar.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as Analyst from "../../agents/Analyst.js"
import { type AnyModel, copySignal, type Signal } from "../../agents/analysts/Model.js"
import * as TradingView from "../../agents/analysts/TradingView.js"
import { RequestOpinions } from "../../schemas/AnalystProtocol.js"
import type { ExternalSignal, SignalAction } from "../../schemas/ExternalSignal.js"
import type { AgentId, RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import * as Actor from "../../src/actor/Actor.js"
import { run } from "../support.js"
import { seededDraws } from "../../agents/analysts/internal/draws.js"

const model = TradingView.model
const config = (params: unknown = {}) => Schema.decodeUnknownSync(model.config)(params)

const bar = (i: number, symbol = "AAPL"): Bar => ({
  symbol: symbol as Symbol,
  ts: (i * 60_000) as Timestamp,
  open: 100 + i,
  high: 101 + i,
  low: 99 + i,
  close: 100 + i,
  volume: 1_000
})

const alert = (action: SignalAction, extra: Partial<ExternalSignal> = {}): ExternalSignal => ({
  source: "tradingview",
  symbol: "AAPL" as Symbol,
  ticker: "NASDAQ:AAPL",
  action,
  price: 123.45,
  alertId: `id:${action}`,
  receivedAt: 0 as Timestamp,
  ...extra
})

/** Fold bars 0..n-1 into one state, observing `alerts[i]` right before bar i; every bar's signal, kept. */
const fold = (n: number, alerts: Record<number, ExternalSignal>, params: unknown = {}, allowShort = true) => {
  const c = config(params)
  const state = model.init(c, seededDraws("0", "test", "X"))
  return Array.from({ length: n }, (_, i) => {
    if (alerts[i] !== undefined) model.observe!(state, alerts[i]!, c)
    const signal = model.update(state, bar(i), c, allowShort)
    return signal === undefined ? undefined : copySignal(signal as Signal)
  })
}

describe("tradingview model", () => {
  it("decodes its defaults; bad params name the field", () => {
    expect(config()).toEqual({ validity: 20, confidence: 0.7 })
    expect(model.horizon(config({ validity: 5 }))).toBe(5)
    expect(() => config({ validity: 0 })).toThrow(/validity/)
    expect(() => config({ confidence: 1.5 })).toThrow(/confidence/)
  })

  it("says nothing before the first alert, whatever the bars", () => {
    expect(fold(30, {})).toEqual(Array.from({ length: 30 }, () => undefined))
  })

  it("relays the alert for `validity` bars, the bar it came with counted, then says nothing", () => {
    const signals = fold(10, { 2: alert("BUY".toLowerCase() as SignalAction) }, { validity: 3 })
    expect(signals.map((s) => s?.direction)).toEqual([undefined, undefined, "long", "long", "long", undefined, undefined, undefined, undefined, undefined])
    expect(signals[2]).toEqual({ direction: "long", confidence: 0.7, features: { price: 123.45, age: 0, action: 0 } })
    expect(signals[4]!.features.age).toBe(2)
  })

  it("maps every action; a sell or short is flat when shorting is not allowed; the alert's confidence wins", () => {
    const direction = (action: SignalAction, allowShort: boolean) => fold(1, { 0: alert(action) }, {}, allowShort)[0]!.direction
    expect([direction("buy", true), direction("long", true)]).toEqual(["long", "long"])
    expect([direction("sell", true), direction("short", true)]).toEqual(["short", "short"])
    expect([direction("sell", false), direction("short", false)]).toEqual(["flat", "flat"])
    expect([direction("flat", true), direction("close", true)]).toEqual(["flat", "flat"])
    expect(fold(1, { 0: alert("buy", { confidence: 0.25 }) })[0]!.confidence).toBe(0.25)
    expect(fold(1, { 0: alert("buy") }, { confidence: 0.9 })[0]!.confidence).toBe(0.9)
  })

  it("a newer alert replaces the older and starts its validity again", () => {
    const signals = fold(6, { 0: alert("buy"), 2: alert("sell") }, { validity: 3 })
    expect(signals.map((s) => s?.direction)).toEqual(["long", "long", "short", "short", "short", undefined])
  })

  it("explains the alert in words and numbers", () => {
    const c = config({ validity: 4 })
    const [first, , third] = fold(3, { 0: alert("sell") }, { validity: 4 }, false)
    const explain = (signal: Signal | undefined, allowShort: boolean) => (model as AnyModel).explain(signal!, c, allowShort)
    expect(explain(first, false)).toBe("TradingView alert: sell at 123.45, with this bar (stands for 4); shorting not allowed")
    expect(explain(third, true)).toBe("TradingView alert: sell at 123.45, 2 bars ago (stands for 4)")
  })
})

describe("tradingview analyst actor", () => {
  it.effect("sees a round's signals before its bar; a signal about another symbol does not reach this one", () =>
    run(Effect.gen(function*() {
      const ref = yield* Actor.spawn(
        Analyst.make({ name: "tv" as AgentId, model, config: config(), allowShort: true }),
        { name: "tv" }
      )
      const ask = (i: number, signals?: ReadonlyArray<ExternalSignal>) =>
        ref.ask(
          new RequestOpinions({
            ts: bar(i).ts,
            rounds: [
              signals === undefined
                ? { round: `AAPL@${i}` as RoundId, bar: bar(i) }
                : { round: `AAPL@${i}` as RoundId, bar: bar(i), signals },
              { round: `MSFT@${i}` as RoundId, bar: bar(i, "MSFT") }
            ]
          })
        ).pipe(Effect.map((opinions) => opinions.map(Analyst.copyOpinion)))
      expect(yield* ask(0)).toEqual([])
      const answered = yield* ask(1, [alert("flat"), alert("buy", { confidence: 0.6 })])
      // The latest of the round's signals counts; MSFT has had none.
      expect(answered.map((o) => [o.symbol, o.direction, o.confidence, o.horizon])).toEqual([["AAPL", "long", 0.6, 20]])
      expect(answered[0]!.rationale).toBe("TradingView alert: buy at 123.45, with this bar (stands for 20)")
      expect((yield* ask(2)).map((o) => [o.symbol, o.direction, o.features.age])).toEqual([["AAPL", "long", 1]])
    })))
})
