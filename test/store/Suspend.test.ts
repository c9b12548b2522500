/**
 * A paper run suspended by a shutdown (interrupted with `suspended` saying so): it stays `running`
 * with everything it recorded committed and a checkpoint of exactly where it stood — the last event
 * and the slice it waited after — and a resume finishes it as the uninterrupted run would have,
 * checking the books it rebuilds against that checkpoint. On every back-end.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option } from "effect"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { stored } from "./fixtures/workload.js"

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
