/**
 * The analyst actor keeps one model state per symbol, whatever the order of a request's rounds:
 * it finds a symbol's state by the round's position when the symbol is where it was last time
 * (the coordinator's order, the same on every timestamp), and by the symbol otherwise.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as Analyst from "../../agents/Analyst.js"
import type { Model } from "../../agents/analysts/Model.js"
import { RequestOpinions } from "../../schemas/AnalystProtocol.js"
import type { AgentId, RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import * as Actor from "../../src/actor/Actor.js"
import { run } from "../support.js"

/** Counts the bars of its symbol: its signal's feature `bars` is how many it has seen, this one included. */
const counter: Model<{}, { bars: number }, { bars: number }> = {
  type: "bar_counter",
  description: "Counts its symbol's bars.",
  config: Schema.Struct({}),
  horizon: () => 1,
  init: () => ({ bars: 0 }),
  update: (state) => ({ direction: "long", confidence: 1, features: { bars: ++state.bars } }),
  explain: ({ features }) => `${features.bars} bars`
}

describe("the analyst actor", () => {
  it.effect("each symbol's state is its own, however the rounds are ordered from one request to the next", () =>
    run(Effect.gen(function*() {
      const ref = yield* Actor.spawn(Analyst.make({ name: "counter" as AgentId, model: counter as never, config: {}, allowShort: false }), { name: "counter" })
      let ts = 0
      const ask = (...symbols: ReadonlyArray<string>) => {
        ts += 60_000
        return ref.ask(
          new RequestOpinions({
            ts: ts as Timestamp,
            rounds: symbols.map((symbol) => ({
              round: `${symbol}@${ts}` as RoundId,
              bar: { symbol: symbol as Symbol, ts: ts as Timestamp, open: 1, high: 1, low: 1, close: 1, volume: 1 }
            }))
          })
        ).pipe(Effect.map((opinions) => opinions.map((o) => `${o.symbol}:${o.features.bars}`)))
      }
      expect(yield* ask("AAA", "BBB")).toEqual(["AAA:1", "BBB:1"])
      expect(yield* ask("AAA", "BBB")).toEqual(["AAA:2", "BBB:2"])
      expect(yield* ask("BBB", "AAA")).toEqual(["BBB:3", "AAA:3"])
      expect(yield* ask("AAA")).toEqual(["AAA:4"])
      expect(yield* ask("CCC", "AAA", "BBB")).toEqual(["CCC:1", "AAA:5", "BBB:4"])
      expect(yield* ask("AAA", "BBB", "CCC")).toEqual(["AAA:6", "BBB:5", "CCC:2"])
      expect(yield* ask("AAA", "BBB", "CCC")).toEqual(["AAA:7", "BBB:6", "CCC:3"])
    })))
})
