/**
 * Runs with a volume limit (`execution.maxVolumePercent`) in the store: an order filled in parts
 * has one fills row per part (migration 14 lifted the one-fill-per-order constraint), the rows are
 * what the events say (the audit), the run replays and resumes byte for byte, and a run without
 * the option records as before.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { crashAt, fillsOf } from "./fixtures/checks.js"
import { stored } from "./fixtures/workload.js"
import { SqlClient } from "@effect/sql"

const checkpointsOf = (run: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ seq: number }>`select seq from checkpoints where run_id = ${run} order by seq`)

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
  })
}
