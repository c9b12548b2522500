import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Effect, FastCheck as fc, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { RunEvent } from "../../schemas/RunEvent.js"
import { compile } from "../../src/internal/canonicalJson.js"
import { RunLog } from "../../src/swarm/RunLog.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { w3 } from "../../bench/internal/backtestWorkloads.js"

const serialize = compile(RunEvent)

describe("the compiled canonical JSON", () => {
  it("writes any run event as JSON.stringify does", () => {
    fc.assert(
      fc.property(Arbitrary.make(RunEvent), (event) => {
        expect(serialize(event)).toBe(JSON.stringify(event))
      }),
      { numRuns: 3_000, seed: 20_261_203 }
    )
  })

  it("writes every event of a backtest that trades on every bar as JSON.stringify does", () =>
    Effect.gen(function*() {
      const events: Array<RunEvent> = []
      yield* Backtest.run({ ...w3(4, 300), onEvent: (event) => void events.push(event) })
      expect(new Set(events.map((e) => e._tag))).toEqual(
        new Set(["RunStarted", "AgentLifecycle", "OpinionGiven", "DecisionMade", "VerdictGiven", "OrderPlaced", "OrderFilled", "OrderCancelled", "PortfolioUpdated", "TradeClosed", "RunCompleted"])
      )
      for (const event of events) expect(serialize(event)).toBe(JSON.stringify(event))
    }).pipe(Effect.runPromise))

  it("escapes, drops and falls back exactly where JSON.stringify does", () => {
    const serializeFill = compile(Schema.Struct({
      id: Schema.String,
      note: Schema.optional(Schema.String),
      price: Schema.Number,
      side: Schema.Literal("buy", "sell"),
      tags: Schema.Array(Schema.String),
      limit: Schema.NullOr(Schema.Number),
      extra: Schema.Record({ key: Schema.String, value: Schema.Number })
    }))
    const hostile: Array<Record<string, unknown>> = [
      // strings to escape: quotes, backslashes, controls, a lone surrogate, a pair, a line separator
      { id: "a\"b\\c\n\u0000\u001f", price: 1, side: "buy", tags: ["\ud800", "😀", "\u2028"], limit: null, extra: {} },
      // numbers JSON has no word for, and -0
      { id: "x", price: Number.NaN, side: "sell", tags: [], limit: Number.POSITIVE_INFINITY, extra: { a: -0, b: Number.NEGATIVE_INFINITY } },
      // an optional field present and absent, an undefined array element, an undefined record value
      { id: "x", note: "n", price: 0.1 + 0.2, side: "buy", tags: [undefined, "t"], limit: 1e21, extra: { "k\"ey": 1, u: undefined } },
      // a required field missing, values of the wrong kind, a literal outside its set
      { id: 7, price: "12", side: "hold", tags: "no", limit: "x", extra: [1, 2] },
      { price: 1, side: "buy", tags: [], limit: null, extra: {} },
      // integer-like record keys come first, as JSON.stringify puts them
      { id: "x", price: 1, side: "buy", tags: [], limit: 5e-324, extra: { b: 1, 2: 2, a: 3, 1: 4 } }
    ]
    for (const value of hostile) expect(serializeFill(value as never)).toBe(JSON.stringify(value))
    // Each field keeps the text of the last string it wrote: a value after the same string, after an
    // equal string made another way, after a value of another kind, is still written as JSON.stringify does.
    const same = { id: "a\"b", price: 1, side: "buy", tags: ["t"], limit: null, extra: {} }
    const sequence: Array<Record<string, unknown>> = [
      same,
      same,
      { ...same, id: ["a", "\"b"].join("") },
      { ...same, id: 7 },
      { ...same, id: "7" },
      { ...same, id: { toJSON: () => "first" } },
      { ...same, id: { toJSON: () => "second" } },
      { ...same, id: "7" },
      ...hostile,
      ...hostile
    ]
    for (const value of sequence) expect(serializeFill(value as never)).toBe(JSON.stringify(value))
    // With nothing kept yet, or after a value of another kind, `undefined` at a string's place is
    // not taken for what was kept: written as before the keeping (JSON.stringify's value in an array).
    const lone = compile(Schema.String)
    expect(lone(undefined as never)).toBe("null")
    expect(lone(7 as never)).toBe("7")
    expect(lone(undefined as never)).toBe("null")
    // A struct where an array or null is: JSON.stringify's text.
    expect(serializeFill(null as never)).toBe("null")
    expect(serializeFill([1, "a"] as never)).toBe(JSON.stringify([1, "a"]))
  })

  it("tells apart a union of structs by a literal field, and falls back when it cannot", () => {
    const Tagged = Schema.Union(
      Schema.Struct({ kind: Schema.Literal("a"), x: Schema.Number }),
      Schema.Struct({ kind: Schema.Literal("b", "c"), y: Schema.String })
    )
    const Overlapping = Schema.Union(
      Schema.Struct({ kind: Schema.Literal("a", "b"), x: Schema.Number }),
      Schema.Struct({ kind: Schema.Literal("b"), y: Schema.String })
    )
    const tagged = compile(Tagged)
    const overlapping = compile(Overlapping)
    for (const value of [{ kind: "a", x: 1 }, { kind: "c", y: "q" }, { kind: "z", x: 1, y: "q" }, { kind: "b", x: 2 }, { kind: "b", y: "r" }]) {
      expect(tagged(value as never)).toBe(JSON.stringify(value))
      expect(overlapping(value as never)).toBe(JSON.stringify(value))
    }
  })

  it("is checked against JSON.stringify on every line under SWARM_CANONICAL_CHECK=1 (as in this suite)", () => {
    expect(process.env.SWARM_CANONICAL_CHECK).toBe("1")
    const log = new RunLog("r1" as RunId, () => 1_000)
    // An event with a field the schema does not list: JSON.stringify writes it, the serialiser does not.
    const payload = { reason: "halted", extra: 1 }
    expect(() => log.emit("RunFailed", payload)).toThrow(/unlike JSON.stringify/)
    // In the schema's order it is written and hashed as JSON.stringify writes it.
    const good = new RunLog("r1" as RunId, () => 1_000)
    const lines: Array<string> = []
    good.subscribe((_, json) => lines.push(json))
    good.emit("RunFailed", { reason: "halted" })
    expect(lines).toEqual(['{"_tag":"RunFailed","run":"r1","seq":1,"at":1000,"reason":"halted"}'])
  })
})
