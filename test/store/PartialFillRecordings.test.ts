/**
 * Runs with a volume limit (`execution.maxVolumePercent`) in the store: an order filled in parts
 * has one fills row per part (migration 14 lifted the one-fill-per-order constraint), the rows are
 * what the events say (the audit), the run replays and resumes byte for byte, and a run without
 * the option records as before. The order toward a reduced target (`RunStarted.workingOrders`): a
 * new run records the flag and keeps the order working, and replays so; a run recorded before it
 * placed the remainder again on every bar, and replays so, byte for byte. A fractional strategy's
 * whole-number order cut on micro-units (`RunStarted.fractionalCuts`) replays so, the flag read back.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { recordedBefore, registryOf } from "../swarm/recorded.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { crashAt, fillsOf } from "./fixtures/checks.js"
import { stored } from "./fixtures/workload.js"
import * as Recordings from "./fixtures/recordings.js"
import { SqlClient } from "@effect/sql"

const checkpointsOf = (run: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ seq: number }>`select seq from checkpoints where run_id = ${run} order by seq`)

const DAY = 86_400_000
const START = Date.UTC(2024, 0, 1)

/** AAA at 100, trading 1,000 a day: 10 % of it is 100 a day. */
const thin: Array<Bar> = Array.from({ length: 6 }, (_, i) => ({
  symbol: "AAA" as Bar["symbol"],
  ts: (START + i * DAY) as Bar["ts"],
  open: 100,
  high: 100,
  low: 100,
  close: 100,
  volume: 1_000
}))
/** Half the equity asked (500), the position capped at 30 % (300): a reduced target, its order filled 100 a day. */
const reduced = Schema.decodeUnknownSync(Strategy)({
  name: "reduced and volume limited",
  symbols: ["AAA"],
  initialCash: "100000",
  agents: [{ type: "test_script" }],
  sizing: { mode: "percent_of_equity", value: 50 },
  risk: { limits: { maxPositionPct: 30 } },
  execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "per_share", perShare: "0.01", minimum: "5" }, maxVolumePercent: 10 }
})
const registry = registryOf({ AAA: ["long"] })
const csvData = Recordings.csvData("working-orders", [thin])
/** 10 units (fractional) bought at 50, the next open 300 with 2,000 at hand: cut to 6.666666. */
const fractional = Schema.decodeUnknownSync(Strategy)({
  name: "fractional cuts",
  symbols: ["AAA"],
  initialCash: "2000",
  agents: [{ type: "test_script" }],
  sizing: { mode: "fixed_quantity", value: 10, fractional: true },
  execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }
})
const gapData = Recordings.csvData("fractional-cuts", [thin.map((b, i) => (i === 0 ? { ...b, open: 50, high: 50, low: 50, close: 50 } : { ...b, open: 300, high: 300, low: 300, close: 300 }))])
const placed = (events: ReadonlyArray<RunEvent>) => events.filter((e) => e._tag === "OrderPlaced").length

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`partial fills in the store (${backend.name})`, (it) => {
    describe("a volume-limited run", () => {
      it.effect("stores every part of an order, audits clean, replays and resumes byte for byte", () =>
        Effect.gen(function*() {
          const options = stored(3, 300, { name: "volume limit", checkpointEvery: 32 })
          const encoded = Schema.encodeSync(Strategy)(options.strategy)
          const limited = Schema.decodeUnknownSync(Strategy)({ ...encoded, execution: { ...encoded.execution, maxVolumePercent: 0.02 } })
          const { result, run } = yield* StoredRun.backtest({ ...options, strategy: limited })
          expect(result.status).toBe("completed")
          const fills = yield* fillsOf(run)
          expect(fills.length).toBe(result.counts.fills)
          // The case is met: orders with more than one fill.
          const perOrder = new Map<string, number>()
          for (const f of fills) perOrder.set(f.orderId, (perOrder.get(f.orderId) ?? 0) + 1)
          expect([...perOrder.values()].filter((n) => n > 1).length).toBeGreaterThan(3)
          expect(fills.some((f) => /:fill:\d+$/.test(f.fillId))).toBe(true)
          expect((yield* Audit.verifyRun(run)).ok).toBe(true)

          const replayed = yield* StoredRun.replay(run)
          expect(replayed.checksum).toBe(result.checksum)
          const checkpoints = yield* checkpointsOf(run)
          expect(checkpoints.length).toBeGreaterThanOrEqual(4)
          yield* crashAt(run, checkpoints.at(-2)!.seq)
          const resumed = yield* StoredRun.resume(run)
          expect(resumed.result.checksum).toBe(result.checksum)
          expect((yield* Runs.get(run)).status).toBe("completed")
        }), 120_000)
    })

    describe("the order toward a reduced target", () => {
      it.effect("a new run records workingOrders, places the order once, and replays byte for byte", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* csvData
          const events: Array<RunEvent> = []
          const { result, run } = yield* StoredRun.backtest({ strategy: reduced, feed, dataSource: source, registry, onEvent: (event) => void events.push(event) })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", workingOrders: "kept" })
          expect(placed(events)).toBe(1)
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
        }).pipe(Effect.scoped))

      it.effect("a run recorded before it (no workingOrders) placed the remainder again on every bar, and replays so", () =>
        Effect.gen(function*() {
          const { events, result, run } = yield* Recordings.recordedBefore({
            strategy: reduced,
            data: yield* csvData,
            registry,
            recordedStart: recordedBefore
          })
          expect(events[0]!).not.toHaveProperty("workingOrders")
          expect(placed(events)).toBe(3)
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
        }).pipe(Effect.scoped))
    })

    describe("a fractional strategy's whole-number order", () => {
      it.effect("a new run records fractionalCuts, cuts on micro-units, and replays byte for byte", () =>
        Effect.gen(function*() {
          const { feed, source } = yield* gapData
          const events: Array<RunEvent> = []
          const { result, run } = yield* StoredRun.backtest({ strategy: fractional, feed, dataSource: source, registry, onEvent: (event) => void events.push(event) })
          expect(events[0]).toMatchObject({ _tag: "RunStarted", fractionalCuts: "micro" })
          expect(events.flatMap((e) => (e._tag === "OrderFilled" ? [e.fill.quantity] : []))).toEqual([6.666666])
          const again = yield* StoredRun.replay(run, { registry })
          expect(again.checksum).toBe(result.checksum)
          expect(again.events).toBe(result.counts.events)
        }).pipe(Effect.scoped))
    })
  })
}
