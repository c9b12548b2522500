import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
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

  it("an unknown type, a zero sequence number or a missing field is refused with the field named", () => {
    expect(() => Schema.decodeUnknownSync(RunEvent)({ _tag: "Nope", run: "r", seq: 1, at: 0 })).toThrow(/_tag/)
    expect(() => Schema.decodeUnknownSync(RunEvent)({ _tag: "RunFailed", run: "r", seq: 0, at: 0, reason: "x" })).toThrow(/seq/)
    expect(() => Schema.decodeUnknownSync(RunEvent)({ _tag: "RunFailed", run: "r", seq: 1, at: 0 })).toThrow(/reason/)
  })
})
