/**
 * Recorded runs and an analyst's progress (`RunStarted.analystProgress`): a run recorded before it —
 * its `RunStarted` without the flag, an analyst failing on every bar once warmed up restarted for
 * ever and the run completed — replays byte for byte, counting its warm-up as progress again; a new
 * run records the flag, gives up on that analyst, fails, and replays so. On every back-end.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { analysts } from "../../agents/registry.js"
import type { AnyModel, Model } from "../../agents/analysts/Model.js"
import * as SmaCrossover from "../../agents/analysts/SmaCrossover.js"
import type { Bar } from "../../schemas/Market.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Csv from "../../src/market/Csv.js"
import * as DataSource from "../../src/market/DataSource.js"
import * as Feed from "../../src/market/Feed.js"
import * as RunRecorder from "../../src/store/RunRecorder.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Users from "../../src/store/Users.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { backends, startTimeout } from "./fixtures/backends.js"

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)

/** SMA crossover that throws wherever it would give an opinion: every bar once warmed up. */
const sma: Model<any, any, any> = SmaCrossover.model
const sulky: AnyModel = {
  ...sma,
  type: "sulky",
  update: (state, bar, config, allowShort) => {
    const signal = sma.update(state, bar, config, allowShort)
    if (signal !== undefined) throw new Error("sulky: warmed up, and failing")
    return signal
  }
}
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

const csvData = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "swarm-progress-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  fs.writeFileSync(path.join(dir, "AAA.csv"), Csv.format(bars))
  return { source: DataSource.csv([dir]), feed: yield* Feed.load([dir]) }
})

/** A run recorded as a server before this change recorded it: `RunStarted` without `analystProgress`. */
const recordedBefore = (name: string) =>
  Effect.gen(function*() {
    const { feed, source } = yield* csvData
    const s = strategy(name)
    const owner = yield* Users.ensureLocal()
    const saved = yield* Strategies.saveVersion(owner, s)
    const created = yield* Runs.create({
      owner,
      strategyId: saved.strategyId,
      strategyVersion: saved.version,
      strategy: s,
      mode: "backtest",
      seed: "0",
      dataSource: DataSource.encode(source),
      dataFingerprint: feed.fingerprint,
      eventDetail: "decisions"
    })
    const recorder = yield* RunRecorder.make(created.id)
    const events: Array<RunEvent> = []
    const result = yield* Backtest.run({
      strategy: s,
      feed,
      seed: "0",
      runId: created.id,
      strategyRef: { id: saved.strategyId, version: saved.version },
      registry,
      recordedStart: { reducedIntents: "worked", flatScoring: "not_long", lastRounds: "closed", breakers: "marks" },
      onEvent: (event, json) => {
        events.push(event)
        recorder.sink(event, json)
      }
    })
    yield* recorder.flush
    yield* Runs.finish(created.id, {
      status: result.status,
      checksum: result.checksum,
      metrics: result.metrics,
      counts: result.counts,
      tradingState: result.tradingState,
      from: result.from,
      to: result.to,
      chain: recorder.head()
    })
    return { run: created.id, result, events }
  })

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
