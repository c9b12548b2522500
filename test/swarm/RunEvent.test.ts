import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { canonicalSignal, type ExternalSignal } from "../../schemas/ExternalSignal.js"
import { ActorRestarted } from "../../schemas/Lifecycle.js"
import { RunEvent } from "../../schemas/RunEvent.js"

const roundTrip = (event: unknown) =>
  Schema.decodeUnknownSync(RunEvent)(JSON.parse(JSON.stringify(Schema.encodeUnknownSync(RunEvent)(event))))

describe("run events", () => {
  it("round-trip through JSON, kernel lifecycle events included", () => {
    const restarted = {
      _tag: "AgentLifecycle",
      run: "r1",
      seq: 7,
      at: 1000,
      event: new ActorRestarted({ actor: "/user/run/sma" as never, attempt: 1, delayMillis: 10, incarnation: 2, at: 1000 })
    }
    expect(roundTrip(restarted)).toEqual(restarted)
    const fill = {
      _tag: "OrderFilled",
      run: "r1",
      seq: 8,
      at: 2000,
      fill: {
        id: "o1:fill",
        orderId: "o1",
        symbol: "ACME",
        side: "buy",
        quantity: 10,
        price: 101.5,
        marketPrice: 101.45,
        slippageBps: 5,
        notional: 1_015_000_000,
        commission: 1_000_000,
        ts: 2000
      }
    }
    expect(roundTrip(fill)).toEqual(fill)
  })

  it("a received signal round-trips, and its canonical form has the schema's field order whatever object it came from", () => {
    const signal = {
      indicators: { rsi: 28.5 },
      source: "tradingview",
      symbol: "AAPL",
      ticker: "NASDAQ:AAPL",
      action: "buy",
      price: 101.25,
      alertId: "id:a1",
      receivedAt: 1_700_000_000_000,
      confidence: undefined
    } as unknown as ExternalSignal
    const event = { _tag: "SignalReceived", run: "r1", seq: 3, at: 5000, ts: 5000, signal: canonicalSignal(signal) }
    expect(roundTrip(event)).toEqual(event)
    expect(Object.keys(event.signal)).toEqual(["source", "symbol", "ticker", "action", "price", "alertId", "receivedAt", "indicators"])
    const decoded = roundTrip(event) as { readonly signal: ExternalSignal }
    expect(JSON.stringify(canonicalSignal(decoded.signal))).toBe(JSON.stringify(event.signal))
    expect(() => Schema.decodeUnknownSync(RunEvent)({ ...event, signal: { ...event.signal, action: "hodl" } })).toThrow(/action/)
  })

  it("an unknown type, a zero sequence number or a missing field is refused with the field named", () => {
    expect(() => Schema.decodeUnknownSync(RunEvent)({ _tag: "Nope", run: "r", seq: 1, at: 0 })).toThrow(/_tag/)
    expect(() => Schema.decodeUnknownSync(RunEvent)({ _tag: "RunFailed", run: "r", seq: 0, at: 0, reason: "x" })).toThrow(/seq/)
    expect(() => Schema.decodeUnknownSync(RunEvent)({ _tag: "RunFailed", run: "r", seq: 1, at: 0 })).toThrow(/reason/)
  })
})
