/**
 * Recorded runs and an analyst's progress (`RunStarted.analystProgress`): a run recorded before it —
 * its `RunStarted` without the flag, an analyst failing on every bar once warmed up restarted for
 * ever and the run completed — replays byte for byte, counting its warm-up as progress again; a new
 * run records the flag, gives up on that analyst, fails, and replays so. On every back-end.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { analysts } from "../../agents/registry.js"
import type { AnyModel } from "../../agents/analysts/Model.js"
import type { Bar } from "../../schemas/Market.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { sulky } from "../swarm/crashing.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import * as Recordings from "./fixtures/recordings.js"

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)

const registry = new Map<string, AnyModel>([...analysts, [sulky.type, sulky]])

const bars: Array<Bar> = Array.from({ length: 150 }, (_, i) => {
  const close = 100 + 10 * Math.sin(i / 6)
  return { symbol: "AAA" as Bar["symbol"], ts: (START + i * DAY) as Bar["ts"], open: close, high: close + 1, low: close - 1, close, volume: 1_000 }
})

const strategy = (name: string) =>
  Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: ["AAA"],
    initialCash: "100000",
    agents: [{ type: "sulky", params: { fast: 2, slow: 5 } }, { type: "ema_crossover", params: { fast: 2, slow: 5 } }],
    sizing: { mode: "percent_of_equity", value: 50 }
  })

const csvData = Recordings.csvData("progress", [bars])

/** A run recorded as a server before this change recorded it: `RunStarted` without `analystProgress`. */
const recordedBefore = (name: string) =>
  Effect.flatMap(csvData, (data) =>
    Recordings.recordedBefore({
      strategy: strategy(name),
      data,
      registry,
      recordedStart: { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "marks" }
    }))

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`analyst progress and recorded runs (${backend.name})`, (it) => {
    describe("a run recorded before an analyst's warm-up stopped counting as progress", () => {
      it.effect("replays byte for byte: the analyst restarted for ever, the run completed, as recorded", () =>
        Effect.gen(function*() {
          const { events, result, run } = yield* recordedBefore("recorded before")
          expect(events[0]).toMatchObject({ _tag: "RunStarted", breakers: "marks" })
          expect(events[0]).not.toHaveProperty("analystProgress")
          expect(result.status).toBe("completed")
          expect(result.agentRestarts[0]!.crashes).toBeGreaterThan(16)
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
          expect(again.result!.status).toBe("completed")
        }).pipe(Effect.scoped))
    })

    describe("a new run", () => {
      it.effect("records the flag, gives up on the analyst that fails on every bar once warmed up, and replays so", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* csvData
          const events: Array<RunEvent> = []
          const { result, run } = yield* StoredRun.backtest({
            strategy: strategy("new run"),
            feed,
            dataSource: source,
            registry,
            onEvent: (event) => void events.push(event)
          })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", analystProgress: "past_warm_up" })
          expect(result.status).toBe("failed")
          expect(result.failure).toContain("/user/run/analysts/sulky kept failing")
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.result!.status).toBe("failed")
        }).pipe(Effect.scoped))
    })
  })
}
