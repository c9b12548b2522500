/**
 * A paper run suspended by a shutdown (interrupted with `suspended` saying so): it stays `running`
 * with everything it recorded committed and a checkpoint of exactly where it stood — the last event
 * and the slice it waited after — and a resume finishes it as the uninterrupted run would have,
 * checking the books it rebuilds against that checkpoint. In a quiet stretch (no event since the
 * last checkpoint) the checkpoint still moves to where the run stood, so that the resume neither
 * waits for the bars it had passed again nor takes a new alert with one of them. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Schema } from "effect"
import type { ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { Symbol, Timestamp } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"
import { ROUND_SPAN } from "../../agents/Coordinator.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { stored, symbolsOf } from "./fixtures/workload.js"

/** Only a `tradingview` analyst, and no alert: a run with nothing to say, bar after bar. */
const quietStrategy = Schema.decodeUnknownSync(Strategy)({
  name: "quiet",
  symbols: symbolsOf(2),
  agents: [{ type: "tradingview", params: { validity: 20 } }],
  sizing: { mode: "percent_of_equity", value: 10 }
})

const alert: ExternalSignal = {
  source: "tradingview",
  symbol: "S0" as Symbol,
  ticker: "S0",
  action: "buy",
  price: 100,
  alertId: "id:after-restart",
  receivedAt: 1_700_000_000_000 as Timestamp
}

/**
 * `options`' run, suspended (as at a server's shutdown) while it waits before slice 121: periodic
 * checkpoints every 16 slices; its id.
 */
const suspendedAt120 = (options: StoredRun.Options) =>
  Effect.gen(function*() {
    const created = yield* Deferred.make<string>()
    let slices = 0
    const fiber = yield* Effect.fork(StoredRun.backtest({
      ...options,
      onCreated: (c) => Deferred.unsafeDone(created, Effect.succeed(c.id)),
      beforeSlice: () => ++slices > 120 ? Effect.sleep("10 seconds") : Effect.void,
      checkpointEvery: 16,
      suspended: () => true
    }))
    const run = yield* Deferred.await(created)
    while (slices <= 120) yield* Effect.sleep("10 millis")
    yield* Fiber.interrupt(fiber)
    return run
  })

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`suspend (${backend.name})`, (it) => {
    it.effect("suspended between slices: left running, a checkpoint at its last event, resumed to the uninterrupted run's result", () =>
      Effect.gen(function*() {
        const whole = yield* StoredRun.backtest(stored(2, 300, { name: "whole", mode: "paper", events: "rounds" }))
        const created = yield* Deferred.make<string>()
        let slices = 0
        const fiber = yield* Effect.fork(StoredRun.backtest(stored(2, 300, {
          name: "suspended",
          mode: "paper",
          // Every round recorded: events on every slice, so the last one is past any periodic checkpoint.
          events: "rounds",
          onCreated: (c) => Deferred.unsafeDone(created, Effect.succeed(c.id)),
          // A slow paper run after its 120th slice: the shutdown finds it waiting for the next one.
          beforeSlice: () => ++slices > 120 ? Effect.sleep("10 seconds") : Effect.void,
          checkpointEvery: 16,
          suspended: () => true
        })))
        const run = yield* Deferred.await(created)
        while (slices <= 120) yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(fiber)

        const left = yield* Runs.get(run)
        expect(left.status).toBe("running")
        const last = Option.getOrThrow(yield* Runs.lastEvent(left.id))
        const checkpoint = Option.getOrThrow(yield* Runs.lastCheckpoint(left.id))
        expect(checkpoint.state.cursor.events).toBe(last.seq)
        expect(checkpoint.state.cursor.slices).toBe(120)
        expect((yield* Audit.verifyRun(run)).ok).toBe(true)

        const resumed = yield* StoredRun.resume(run)
        expect(resumed.recorded).toBe(last.seq)
        expect(resumed.result.status).toBe("completed")
        // The same run but for its id, which the strategy name is part of: same trades, same metrics.
        expect(resumed.result.metrics).toEqual(whole.result.metrics)
        expect(resumed.result.counts).toEqual(whole.result.counts)
        expect((yield* Runs.get(run)).status).toBe("completed")
        expect((yield* Audit.verifyRun(run)).ok).toBe(true)
      }), { timeout: 120_000 })

    it.effect("suspended in a quiet stretch: checkpointed where it stood, not at its last event; the resume waits only for the bars after it", () =>
      Effect.gen(function*() {
        const options = stored(2, 300, { strategy: quietStrategy, mode: "paper" })
        const times = [...options.feed].map((slice) => slice.ts)
        const run = yield* suspendedAt120(options)

        // Its events all came at the start (a periodic checkpoint at slice 16 holds the same last one).
        const last = Option.getOrThrow(yield* Runs.lastEvent(run as never))
        const checkpoint = Option.getOrThrow(yield* Runs.lastCheckpoint(run as never))
        expect(checkpoint.state.cursor.events).toBe(last.seq)
        expect(checkpoint.state.cursor.slices).toBe(120)
        expect(checkpoint.state.cursor.ts).toBe(times[119])
        // One row at that event: the later cursor replaced the earlier one.
        const sql = yield* SqlClient.SqlClient
        expect((yield* sql<{ n: number }>`select count(*)::int as n from checkpoints where run_id = ${run}`)[0]!.n).toBe(1)

        // Resumed (a server's next start): only the 180 bars after slice 120 wait for their moment,
        // and an alert that comes at once enters with slice 121, not with a bar weeks before.
        let paced = 0
        let given = false
        const resumed = yield* StoredRun.resume(run, {
          beforeSlice: () => Effect.sync(() => void paced++),
          signals: () => (given ? [] : ((given = true), [alert]))
        })
        expect(resumed.result.status).toBe("completed")
        expect(paced).toBe(180)
        const received = yield* sql<{ body: string }>`select body from run_events where run_id = ${run} and tag = 'SignalReceived'`
        expect(received.map((row) => JSON.parse(row.body).ts)).toEqual([times[120]])
        expect((yield* StoredRun.replay(run)).checksum).toBe(resumed.result.checksum)
        expect((yield* Audit.verifyRun(run)).ok).toBe(true)
      }), { timeout: 120_000 })

    it.effect("a resumed paper run traces only the rounds after its recording: the catch-up's were traced when they happened", () =>
      Effect.gen(function*() {
        const options = stored(2, 300, { name: "traced resume", mode: "paper", events: "rounds" })
        const times = [...options.feed].map((slice) => slice.ts)
        const run = yield* suspendedAt120(options)
        const exporter = new InMemorySpanExporter()
        // The spans read before the telemetry layer closes (its shutdown empties the exporter).
        const [resumed, spans] = yield* Effect.map(StoredRun.resume(run), (r) => [r, [...exporter.getFinishedSpans()]] as const).pipe(
          Effect.provide(Telemetry.make({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
        )
        expect(resumed.result.status).toBe("completed")
        const traced = spans.filter((span) => span.name === ROUND_SPAN).map((span) => span.attributes["swarm.ts"])
        // Every paper round is traced (the default rate): those of the 180 slices after the 120th, once each.
        expect(traced).toEqual(times.slice(120))
      }), { timeout: 120_000 })

    it.effect("a re-execution with an event the recording's checkpoint says did not happen stops the resume, recording nothing of it", () =>
      Effect.gen(function*() {
        const options = stored(2, 300, { strategy: quietStrategy, mode: "paper" })
        const run = yield* suspendedAt120(options)
        const last = Option.getOrThrow(yield* Runs.lastEvent(run as never)).seq

        // A recording whose quiet stretch the re-execution does not reproduce (as changed code
        // would): its last event taken away, and its checkpoint saying so — the re-execution gives
        // that event again before the checkpoint's slice, where the recording vouches for none.
        const sql = yield* SqlClient.SqlClient
        yield* sql`delete from run_events where run_id = ${run} and seq = ${last}`
        yield* sql`update checkpoints set seq = ${last - 1}, state = jsonb_set(jsonb_set(state, '{cursor,events}', ${String(last - 1)}::jsonb), '{chain,count}', ${String(last - 1)}::jsonb) where run_id = ${run}`
        const error = yield* Effect.flip(StoredRun.resume(run))
        expect(error).toMatchObject({ _tag: "RunDiverged", seq: last, field: "checkpoint.cursor.events" })
        expect(Option.getOrThrow(yield* Runs.lastEvent(run as never)).seq).toBe(last - 1)
      }), { timeout: 120_000 })

    it.effect("interrupted as soon as its row exists (before it takes its lease): stopped, unless suspended, then left running", () =>
      Effect.gen(function*() {
        for (const suspending of [false, true]) {
          // Interrupted right after the row is written: at the next step, before the run's own handler is in place.
          const created = yield* Deferred.make<string>()
          const fiber = yield* Effect.fork(StoredRun.backtest(stored(2, 300, {
            name: `interrupted early ${suspending}`,
            mode: "paper",
            onCreated: (c) => Deferred.unsafeDone(created, Effect.succeed(c.id)),
            suspended: () => suspending
          })))
          const run = yield* Deferred.await(created)
          yield* Fiber.interrupt(fiber)
          expect((yield* Runs.get(run)).status).toBe(suspending ? "running" : "stopped")
        }
      }), { timeout: 120_000 })
  })
}
