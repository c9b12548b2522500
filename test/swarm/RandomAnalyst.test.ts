/**
 * An analyst type that draws random numbers (examples/analysts/NoisyMomentum.ts): its randomness is
 * the run's — the same seed gives the same run, byte for byte; another seed other opinions and
 * other trades — and its own: seeded per analyst and symbol, so other analysts in the roster and the
 * order its actors run in do not move its draws.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { analysts } from "../../agents/registry.js"
import type { AnyModel } from "../../agents/analysts/Model.js"
import { seededDraws } from "../../agents/analysts/internal/draws.js"
import * as NoisyMomentum from "../../examples/analysts/NoisyMomentum.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import { ofTag, record } from "./recorded.js"

const symbols = ["AAA", "BBB", "CCC"] as const
const market = () => Feed.synthetic({ ...Synthetic.defaults, seed: 7, symbols: [...symbols] as never, bars: 300 })
const registry = new Map<string, AnyModel>([...analysts, [NoisyMomentum.model.type, NoisyMomentum.model as AnyModel]])

const strategy = (agents: ReadonlyArray<object>) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "noisy",
    symbols,
    initialCash: "100000",
    allowShort: true,
    agents,
    sizing: { mode: "percent_of_equity", value: 10 }
  })

const noisy = { type: "noisy_momentum", params: { lookback: 10, explore: 0.3 } }
const sma = { type: "sma_crossover", params: { fast: 5, slow: 20 } }

/** An analyst's opinions of a run (`--events rounds`). */
const opinionsOf = (events: ReadonlyArray<RunEvent>, agent: string) =>
  ofTag(events, "OpinionGiven").filter((e) => e.opinion.agent === agent).map((e) => JSON.stringify(e.opinion))

const run = (agents: ReadonlyArray<object>, seed: string) => record({ strategy: strategy(agents), feed: market(), registry, seed, events: "rounds" })

describe("an analyst type that draws random numbers", () => {
  it.effect("is deterministic under the run's seed: the same seed, the same run byte for byte; another, other opinions and trades", () =>
    Effect.gen(function*() {
      const a = yield* run([noisy, sma], "1")
      const b = yield* run([noisy, sma], "1")
      expect(a.result.status).toBe("completed")
      expect(b.lines).toEqual(a.lines)
      expect(b.result.checksum).toBe(a.result.checksum)
      // It explored: some of its opinions are random picks.
      const explored = ofTag(a.events, "OpinionGiven").filter((e) => e.opinion.agent === "noisy_momentum" && e.opinion.features.explored === 1)
      expect(explored.length).toBeGreaterThan(50)

      const c = yield* run([noisy, sma], "2")
      expect(c.result.checksum).not.toBe(a.result.checksum)
      // Not only the seed it records: what it says, and so what the run trades.
      expect(opinionsOf(c.events, "noisy_momentum")).not.toEqual(opinionsOf(a.events, "noisy_momentum"))
      const trades = (r: typeof a) => ofTag(r.events, "OrderFilled").map((e) => `${e.fill.symbol}@${e.fill.ts}:${e.fill.side}`)
      expect(trades(c)).not.toEqual(trades(a))
      // The analyst that draws nothing says the same under either seed.
      expect(opinionsOf(c.events, "sma_crossover")).toEqual(opinionsOf(a.events, "sma_crossover"))
    }))

  it.effect("draws from its own generator, per symbol: other analysts in the roster do not move its draws", () =>
    Effect.gen(function*() {
      const alone = yield* run([noisy], "1")
      const among = yield* run([sma, noisy, { type: "rsi_reversion", params: { period: 14 } }], "1")
      expect(opinionsOf(among.events, "noisy_momentum")).toEqual(opinionsOf(alone.events, "noisy_momentum"))
      expect(opinionsOf(alone.events, "noisy_momentum").length).toBeGreaterThan(0)
    }))

  it("a model's draws are seeded by the run's seed, the analyst and the symbol, each stream its own", () => {
    const draws = (seed: string, agent: string, symbol: string) => {
      const random = seededDraws(seed, agent, symbol)
      return Array.from({ length: 8 }, () => random.number())
    }
    const base = draws("1", "noisy", "AAA")
    expect(draws("1", "noisy", "AAA")).toEqual(base)
    for (const other of [draws("2", "noisy", "AAA"), draws("1", "other", "AAA"), draws("1", "noisy", "BBB")]) expect(other).not.toEqual(base)
    for (const x of base) expect(x >= 0 && x < 1).toBe(true)
    const random = seededDraws("1", "noisy", "AAA")
    const ints = Array.from({ length: 1_000 }, () => random.integer(3))
    expect(new Set(ints)).toEqual(new Set([0, 1, 2]))
  })
})
