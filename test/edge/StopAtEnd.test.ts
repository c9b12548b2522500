/**
 * A stop that comes as a run ends by itself (its feed ran out; its last events are being written,
 * or its row finished) is too late: the run is `completed`, its hash chain whole (the row's chain
 * count is every event recorded), its followers get every event, and the stop answers so — it
 * neither turns the run `stopped` nor cuts its last batch off. The moments are held open by
 * triggers that slow the database at each of them. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Layer, Stream } from "effect"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as Follow from "../../src/edge/Follow.js"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { createUsers, managerOn, principals } from "./fixtures.js"

const alice = principals["sk_alice"]
const usersLayer = Layer.effectDiscard(Effect.orDie(createUsers))

/** A trigger that makes each row of `on` (`update of status on runs`…) matching `when` take `seconds` longer to write. */
const slowed = (name: string, on: string, when: string, seconds: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`create or replace function ${name}() returns trigger language plpgsql as $$
      begin perform pg_sleep(${seconds}); return new; end $$`)
    yield* sql.unsafe(`create trigger ${name} before ${on} for each row when (${when}) execute function ${name}()`)
  })

/** What became of `run`: its row, and its events as the database holds them. */
const outcome = (run: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const row = yield* Runs.get(run as never)
    const tags = (yield* sql<{ tag: string }>`select tag from run_events where run_id = ${run} order by seq`).map((r) => r.tag)
    const [counted] = yield* sql<{ chainCount: number | null }>`select chain_count from runs where id = ${run}`
    const verified = yield* Audit.verifyRun(run as never)
    return {
      status: row.status,
      failure: row.failure,
      checksum: row.checksum !== null,
      last: tags[tags.length - 1],
      events: tags.length,
      chainCount: counted!.chainCount,
      verified: verified.ok
    }
  })

const stopped = (exit: Exit.Exit<Runs.RunSummary, { readonly _tag: string }>) =>
  Exit.isSuccess(exit) ? exit.value.status : Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error._tag : "defect or interruption"

for (const backend of backends) {
  const environment = Layer.mergeAll(InProcessBus.layerTest(), usersLayer).pipe(Layer.provideMerge(backend.store))
  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`a stop as the run ends (${backend.name})`, (it) => {
    it.scoped("while its row is finished: the run is completed, its chain whole; the stop says so", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const manager = yield* managerOn(bus)
        yield* Strategies.create(alice.userId, smaStrategy("ends while stopped"))
        yield* slowed("slow_finish", "update of status on runs", "new.status = 'completed'", 0.4)
        for (let i = 0; i < 3; i++) {
          const run = yield* manager.start(alice, { strategy: "ends while stopped", mode: "backtest", data: { _tag: "synthetic", bars: 120 } })
          const follower = yield* bus.subscribe(run.id)
          // RunCompleted is on the bus once the database holds it: the run is finishing its row now.
          for (let n = 0; n < 400; n++) {
            const got = yield* follower.takeAllWithin(50)
            if (got.some((d) => d._tag !== "Event" || d.event.tag === "RunCompleted")) break
          }
          yield* Effect.sleep(`${50 + 100 * i} millis`)
          const stop = yield* Effect.exit(manager.stop(alice, run.id))
          expect([i, stopped(stop)]).toEqual([i, expect.stringMatching(/^(completed|Conflict)$/)])
          const after = yield* outcome(run.id)
          expect(after).toEqual({ status: "completed", failure: null, checksum: true, last: "RunCompleted", events: after.events, chainCount: after.events, verified: true })
          expect(manager.live()).toBe(0)
        }
      }), { timeout: 120_000 })

    it.scoped("while its last events are written: they are all recorded and followed, and the run is completed", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const manager = yield* managerOn(bus)
        yield* Strategies.create(alice.userId, smaStrategy("last batch while stopped"))
        yield* slowed("slow_last_batch", "insert on run_events", "new.tag = 'RunCompleted'", 1)
        for (let i = 0; i < 3; i++) {
          const run = yield* manager.start(alice, { strategy: "last batch while stopped", mode: "backtest", data: { _tag: "synthetic", bars: 40 } })
          const following = yield* Effect.fork(
            Follow.follow({ bus, sql }, run.id, 0).pipe(Stream.runFold(0, (n, burst) => n + burst.length), Effect.timeout("30 seconds"), Effect.either)
          )
          // A short run has computed everything in well under 300 ms; the batch with its RunCompleted takes a second to insert.
          yield* Effect.sleep(`${300 + 150 * i} millis`)
          const stop = yield* Effect.exit(manager.stop(alice, run.id))
          expect([i, stopped(stop)]).toEqual([i, expect.stringMatching(/^(completed|Conflict)$/)])
          const after = yield* outcome(run.id)
          expect(after).toEqual({ status: "completed", failure: null, checksum: true, last: "RunCompleted", events: after.events, chainCount: after.events, verified: true })
          const followed = yield* Fiber.join(following)
          expect(Either.getOrUndefined(followed)).toBe(after.events)
        }
      }), { timeout: 120_000 })
  })
}
