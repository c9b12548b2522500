/**
 * A run waiting for a slot on one server (its owner at the cap of live runs a user may have there,
 * `SWARM_MAX_LIVE_RUNS_PER_USER`), as every server on the database says it: `runs.get`,
 * `runs.report` and `runs.list` on another server (behind a load balancer, any one answers) say it
 * waits, and why, in the words of the server where it waits. Before, only that server said so; any
 * other said `running`, no note, until a takeover. No longer said once it goes on (there, or taken
 * over by another server), is stopped, or once its server has gone: shut down, at once; died, within
 * the bound of `RunManager.WAITING_BELIEVED`. Two run managers on one Postgres play two servers;
 * skipped, saying so, without `DATABASE_URL` (the embedded database serves one process).
 */
import { RpcTest } from "@effect/rpc"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { RunRpcs } from "../../schemas/Rpc.js"
import { EventBus, type EventBusService } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { RunHandlers } from "../../src/edge/RpcHandlers.js"
import * as RunEvents from "../../src/edge/RunEvents.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { createUsers, principals, stubAuthenticator, until } from "./fixtures.js"

const alice = principals["sk_alice"]
const postgres = backends.find((backend) => backend.name === "postgres")
if (postgres === undefined) console.warn("WaitingAnywhere skipped: DATABASE_URL is not set (two servers need a Postgres server)")

/** A run manager (a server) on `bus`, in a scope of its own: closing it is the server shutting down. */
const serverOn = (bus: EventBusService, options: RunManager.Options = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(RunManager.layerWith(options).pipe(Layer.provide(Layer.succeed(EventBus, bus))), scope)
    const shutdown = Scope.close(scope, Exit.void)
    yield* Effect.addFinalizer(() => shutdown)
    return { manager: Context.get(context, RunManager.RunManager), shutdown }
  })

const slowPaperRun = (manager: RunManager.RunManagerService, strategy: string) =>
  manager.start(alice, { strategy, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })

/**
 * Two paper runs of a new strategy of alice's, left by a server that stopped, resumed by `a`, a
 * server with a cap of one live run a user: the first goes on there (`live`), the second waits
 * there for a slot (`waiting`, `reason` as `a` says it).
 */
const waitingIn = (bus: EventBusService, name: string, options: RunManager.Options = {}) =>
  Effect.gen(function*() {
    yield* Strategies.create(alice.userId, smaStrategy(name))
    const first = yield* serverOn(bus)
    const started = [yield* slowPaperRun(first.manager, name), yield* slowPaperRun(first.manager, name)]
    yield* first.shutdown
    // Whatever the test did, once its servers are shut down: no run of alice's left unfinished for the next.
    yield* Effect.addFinalizer(() => Effect.forEach(started, (run) => Effect.ignore(Runs.markEnded(run.id, "stopped", "end of the test")), { discard: true }))
    const a = yield* serverOn(bus, { ...options, maxLiveRunsPerUser: 1 })
    const outcomes = (yield* a.manager.resumeUnfinished()).filter((o) => started.some((r) => r.id === o.run))
    expect(outcomes.map((o) => o.outcome)).toEqual(["resumed", "waiting"])
    const waiting = outcomes[1]!.run as RunId
    const reason = (yield* a.manager.waiting(waiting, "running"))!
    expect(reason).toBe(outcomes[1]!.reason)
    return { a, live: outcomes[0]!.run as RunId, waiting, reason }
  })

describe.skipIf(postgres === undefined)("a run waiting for a slot, as every server says it", () => {
  // The RPC procedures of server `b`, as a client reaching it through a load balancer calls them.
  const served = Layer.mergeAll(RunHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(Layer.mergeAll(RunManager.layer, RunEvents.layer)),
    Layer.provideMerge(Layer.mergeAll(InProcessBus.layerTest(), stubAuthenticator, Layer.effectDiscard(Effect.orDie(createUsers)))),
    Layer.provideMerge(postgres?.store ?? backends[0]!.store)
  )
  const clientFor = (key: string) => Effect.provide(RpcTest.makeClient(RunRpcs, { flatten: true }), clientKey(key))

  /** What server `b`'s `runs.get`, `runs.report` and `runs.list` say of `run`'s waiting. */
  const saidOnB = (run: RunId) =>
    Effect.gen(function*() {
      const client = yield* clientFor("sk_alice")
      const got = yield* client("runs.get", { run })
      const report = yield* client("runs.report", { run })
      const listed = (yield* client("runs.list", {})).find((r) => r.id === run)
      return { status: got.status, get: got.waiting, report: report.waiting, list: listed?.waiting }
    })

  layer(served, { timeout: startTimeout, excludeTestServices: true })("two servers on one Postgres", (it) => {
    it.scoped("runs.get, runs.report and runs.list on another server say it waits, and why, as the server where it waits does", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const b = yield* RunManager.RunManager
        const { a, live, waiting, reason } = yield* waitingIn(bus, "waiting, said anywhere")
        // Before: `running`, and no word of its waiting on any read of b.
        expect(yield* saidOnB(waiting)).toEqual({ status: "running", get: reason, report: reason, list: reason })
        // Said in words true wherever read: not "this server" on a server where it does not wait.
        expect(reason).not.toMatch(/this server|\bhere\b/)
        expect(reason).toMatch(/^its owner has 1 live run on the server where it waits, the most a user may have there \(SWARM_MAX_LIVE_RUNS_PER_USER=1\)/)
        expect(yield* b.waiting(waiting, "running")).toBe(reason)
        // Not of the run live there, nor of an ended one.
        expect(yield* saidOnB(live)).toEqual({ status: "running", get: undefined, report: undefined, list: undefined })
        expect(yield* b.waiting(waiting, "stopped")).toBeUndefined()
        // Said again every few seconds while it waits: a word grown old (as if its server had been
        // slow to say it) is said again, and believed again, within `WAITING_SAID_EVERY`.
        const sql = yield* SqlClient.SqlClient
        yield* sql`update waiting_runs set seen_at = now() - ${`${Duration.toSeconds(RunManager.WAITING_BELIEVED) + 1} seconds`}::interval where run_id = ${waiting}`
        expect((yield* saidOnB(waiting)).get).toBeUndefined()
        expect((yield* until(saidOnB(waiting), (said) => said.get !== undefined, "its server's next word", 500)).get).toBe(reason)
        // Stopped through b (relayed to a, which ends it in its row): said nowhere.
        yield* b.stop(alice, waiting, "not needed")
        expect(yield* saidOnB(waiting)).toEqual({ status: "stopped", get: undefined, report: undefined, list: undefined })
        expect(yield* a.manager.waiting(waiting, "running")).toBeUndefined()
        yield* a.manager.stop(alice, live)
      }), { timeout: 60_000 })

    it.scoped("one that goes on where it waited, or is taken over by another server, is no longer said to wait anywhere", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const b = yield* RunManager.RunManager
        // Goes on there: a run of its owner's ends there.
        const first = yield* waitingIn(bus, "waiting, goes on there")
        expect((yield* saidOnB(first.waiting)).get).toBe(first.reason)
        yield* first.a.manager.stop(alice, first.live)
        // Said to wait no more once its turn has taken its lease there (a moment after it is live there).
        const after = yield* until(saidOnB(first.waiting), (said) => said.get === undefined, "its turn there", 250)
        expect(after).toEqual({ status: "running", get: undefined, report: undefined, list: undefined })
        expect(yield* first.a.manager.waiting(first.waiting, "running")).toBeUndefined()
        yield* first.a.manager.stop(alice, first.waiting)
        yield* first.a.shutdown
        // Taken over by a server with room (free at two looks in a row), before the waiting server
        // has noticed: said nowhere, the waiting server included.
        const second = yield* waitingIn(bus, "waiting, taken over")
        const c = yield* serverOn(bus, { takeover: { every: Duration.hours(1), grace: Duration.zero } })
        expect(yield* c.manager.takeOver()).toEqual([])
        expect((yield* c.manager.takeOver()).map((o) => [o.run, o.outcome])).toEqual([[second.waiting, "resumed"]])
        expect(yield* saidOnB(second.waiting)).toEqual({ status: "running", get: undefined, report: undefined, list: undefined })
        expect(yield* c.manager.waiting(second.waiting, "running")).toBeUndefined()
        expect(yield* second.a.manager.waiting(second.waiting, "running")).toBeUndefined()
        yield* b.stop(alice, second.waiting)
        yield* second.a.manager.stop(alice, second.live)
      }), { timeout: 60_000 })

    it.scoped("a waiting server gone: shut down, its runs are said to wait no more at once; died, its word is believed only a while", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const { a, live, waiting, reason } = yield* waitingIn(bus, "waiting, server gone")
        expect((yield* saidOnB(waiting)).get).toBe(reason)
        // Shut down: its runs wait for the next start or a takeover, no longer for a slot there.
        yield* a.shutdown
        expect(yield* saidOnB(waiting)).toEqual({ status: "running", get: undefined, report: undefined, list: undefined })
        // Died (no shutdown to take its word back): what it last said is believed for a while
        // after it last said it (`WAITING_BELIEVED`), then no more.
        yield* sql`insert into waiting_runs (run_id, reason) values (${waiting}, ${reason})`
        expect((yield* saidOnB(waiting)).get).toBe(reason)
        yield* sql`update waiting_runs set seen_at = now() - ${`${Duration.toSeconds(RunManager.WAITING_BELIEVED) + 1} seconds`}::interval`
        expect(yield* saidOnB(waiting)).toEqual({ status: "running", get: undefined, report: undefined, list: undefined })
        // Nor, however fresh, of a run a live server holds (taken over, or resumed by a start since):
        // here, a note left as a server racing the resume would leave it.
        const holder = yield* serverOn(bus)
        const resumed = (yield* holder.manager.resumeUnfinished()).filter((o) => o.run === live || o.run === waiting)
        expect(resumed.map((o) => o.outcome)).toEqual(["resumed", "resumed"])
        yield* sql`insert into waiting_runs (run_id, reason) values (${waiting}, ${reason}) on conflict (run_id) do update set seen_at = now()`
        expect(yield* saidOnB(waiting)).toEqual({ status: "running", get: undefined, report: undefined, list: undefined })
        for (const run of [live, waiting]) yield* holder.manager.stop(alice, run)
      }), { timeout: 60_000 })
  })
})
