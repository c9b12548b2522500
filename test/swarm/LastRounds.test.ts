/**
 * The last slice's rounds, when an analyst is still thinking as the data ends: virtual time runs
 * on to their deadline and they close — decided, judged, recorded — as every other slice's do when
 * the next slice comes (`RunStarted.lastRounds`). Runs recorded before it dropped them.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { LlmAnalystType } from "../../agents/LlmAnalyst.js"
import { JudgementAnswer } from "../../agents/analysts/internal/llm.js"
import { llmAnalysts } from "../../agents/registry.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Summary from "../../src/cli/Summary.js"
import * as ResultDocument from "../../src/cli/ResultDocument.js"
import * as Backtest from "../../src/swarm/Backtest.js"

const Config = Schema.Struct({ bars: Schema.optionalWith(Schema.Int, { default: () => 10 }) })

/** A researcher's analyst that thinks for an hour of the run's time every round: its own deadline cuts it off (an abstention). */
const slow: LlmAnalystType<typeof Config.Type> = {
  type: "slow_thinker",
  description: "thinks longer than any deadline",
  config: Config,
  horizon: () => 1,
  answers: [JudgementAnswer],
  plan: () => "think it over",
  think: () => Effect.as(Effect.sleep("1 hour"), undefined)
}
;(llmAnalysts as Map<string, unknown>).set(slow.type, slow)
afterAll(() => void (llmAnalysts as Map<string, unknown>).delete(slow.type))

const symbols = ["AAA", "BBB"]
const feed = () => Feed.synthetic({ ...Synthetic.defaults, seed: 11, symbols: symbols as never, bars: 80 })
const strategy = (fillTiming: "next_open" | "same_close") =>
  Schema.decodeUnknownSync(Strategy)({
    name: "last rounds",
    symbols,
    agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }, { type: slow.type }],
    consensus: { quorum: 0.3, deadlineMillis: 5_000 },
    execution: { fillTiming },
    sizing: { mode: "percent_of_equity", value: 10 }
  })

const run = (options: Partial<Backtest.Options> & { readonly strategy: Strategy }) =>
  Effect.gen(function*() {
    const events: Array<RunEvent> = []
    const result = yield* Backtest.run({ feed: feed(), events: "rounds", ...options, onEvent: (event) => void events.push(event) })
    return { result, events }
  })

const lastTs = (events: ReadonlyArray<RunEvent>) => Math.max(...events.flatMap((e) => (e._tag === "DecisionMade" ? [e.decision.ts] : [])))

describe("the last slice's rounds", () => {
  it.effect("close at their deadline when an analyst is still thinking as the data ends; runs recorded before dropped them", () =>
    Effect.gen(function*() {
      const now = yield* run({ strategy: strategy("same_close") })
      expect(now.result.status).toBe("completed")
      const started = now.events.find((e) => e._tag === "RunStarted")
      expect(started?._tag === "RunStarted" && started.lastRounds).toBe("closed")
      // Every round of every slice, the last included: decided, with the slow analyst abstaining.
      expect(now.result.counts.rounds).toBe(now.result.counts.slices * symbols.length)
      expect(lastTs(now.events)).toBe(now.result.to)
      const last = now.events.flatMap((e) => (e._tag === "DecisionMade" && e.decision.ts === now.result.to ? [e.decision] : []))
      expect(last.map((d) => d.symbol).sort()).toEqual(symbols)
      for (const decision of last) expect(decision.abstentions.map((a) => a.agent)).toContain(slow.type)

      // A run recorded before: its last slice's rounds were never closed, and its replay drops them again.
      const before = yield* run({ strategy: strategy("same_close"), recordedStart: {} })
      expect(before.events.find((e) => e._tag === "RunStarted")).not.toHaveProperty("lastRounds")
      expect(before.result.counts.rounds).toBe((before.result.counts.slices - 1) * symbols.length)
      expect(lastTs(before.events)).toBeLessThan(before.result.to)
      const again = yield* run({ strategy: strategy("same_close"), recordedStart: {} })
      expect(again.result.checksum).toBe(before.result.checksum)
      expect((yield* run({ strategy: strategy("same_close") })).result.checksum).toBe(now.result.checksum)
    }))

  it.effect("the summary and --json tell an analyst cut off by its deadline from one warming up, and count every analyst's abstentions", () =>
    Effect.gen(function*() {
      const { events, result } = yield* run({ strategy: strategy("next_open") })
      const slowOne = result.abstentions.find((a) => a.agent === slow.type)!
      // Asked every round; silent while its brief warms up, then past its deadline every round after.
      expect(slowOne.rounds).toBe(result.counts.rounds)
      expect(slowOne.late).toBeGreaterThan(0)
      expect(slowOne.silent).toBeGreaterThan(0)
      expect(slowOne.silent + slowOne.late).toBe(result.counts.rounds)
      // What the recorded rounds say: it abstained in each of them.
      const recorded = events.flatMap((e) => (e._tag === "DecisionMade" ? [e.decision] : []))
      expect(recorded.length).toBe(result.counts.rounds)
      for (const d of recorded) expect(d.abstentions.map((a) => a.agent)).toContain(slow.type)
      // The SMA analyst: silent only while warming up (8 bars a symbol), never late.
      const sma = result.abstentions.find((a) => a.agent === "sma_crossover")
      expect(sma === undefined || (sma.late === 0 && sma.failed === 0)).toBe(true)
      const text = Summary.render(result, { strategy: "last rounds", strategyFile: "s.yaml", seed: "0", symbols: 2 })
      const n = (x: number) => x.toLocaleString("en-US")
      expect(text).toContain(
        `\nabstained slow_thinker: ${n(result.counts.rounds)} of ${n(result.counts.rounds)} rounds (${n(slowOne.late)} past the deadline, ${n(slowOne.silent)} without an opinion)\n`
      )
      expect(text).not.toContain("abstained sma_crossover")
      const document = ResultDocument.make(result, { strategy: "last rounds", seed: "0" })
      expect(JSON.parse(ResultDocument.toJson(document)).abstentions).toContainEqual({ ...slowOne })
    }))
})
