/**
 * Takeover: servers sharing a Postgres database look every so often (`SWARM_TAKEOVER_SECONDS`) for
 * unfinished runs whose process stopped — its lease free — and resume them, so that a rolling
 * deploy or a scale-down leaves no run stuck `running` until some process restarts. Two run
 * managers on one database in this process play two servers: each lease is a connection of its
 * own, so they exclude each other as two processes do. A run held by a live process is left alone,
 * with nothing launched and nothing logged at each look; a run just started is left to its starter;
 * a resume whose run changed while it read the recording (run elsewhere meanwhile) is left.
 * Postgres only (the embedded database serves one process: there is nothing to take over); skipped,
 * saying so, without `DATABASE_URL`.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Either, Exit, Fiber, FiberRef, HashSet, Layer, Logger, Scope } from "effect"
import type { EventBusService } from "../../src/bus/EventBus.js"
import { EventBus } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { createUsers, principals } from "./fixtures.js"

const alice = principals["sk_alice"]
const postgres = backends.find((backend) => backend.name === "postgres")
if (postgres === undefined) console.warn("Takeover skipped: DATABASE_URL is not set (takeover is between processes sharing a Postgres)")

/**
 * A run manager (a server) publishing on `bus`, in a scope of its own (closing it is the server
 * shutting down), with what it logs — its looks for runs to take over included.
 */
const serverOn = (bus: EventBusService, options: RunManager.Options = {}) =>
  Effect.gen(function*() {
    const logged: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) =>
      void logged.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    )
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(RunManager.layerWith(options).pipe(Layer.provide(Layer.succeed(EventBus, bus))), scope).pipe(
      Effect.locallyWith(FiberRef.currentLoggers, HashSet.add(capture))
    )
    return { manager: Context.get(context, RunManager.RunManager), shutdown: Scope.close(scope, Exit.void), logged }
  })

/** A paper run of a new strategy of alice's, `bars` bars at `perSecond` bars a second. */
const paperRun = (manager: RunManager.RunManagerService, name: string, bars: number, perSecond: number) =>
  Effect.zipRight(
    Strategies.create(alice.userId, smaStrategy(name)),
    manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars }, speed: perSecond * 86_400 })
  )

/** Until `run`'s status is one of `statuses`, at most `millis`: the last status seen. */
const statusOf = (run: string, statuses: ReadonlyArray<Runs.RunStatus>, millis: number) =>
  Effect.gen(function*() {
    const until = Date.now() + millis
    let status = (yield* Runs.get(run)).status
    while (!statuses.includes(status) && Date.now() < until) {
      yield* Effect.sleep("50 millis")
      status = (yield* Runs.get(run)).status
    }
    return status
  })

describe("takeover settings", () => {
  layer(Layer.empty)((it) => {
    it.effect("SWARM_TAKEOVER_SECONDS: a whole number of seconds from 0 (off) to 3600; anything else is refused saying why", () =>
      Effect.sync(() => {
        expect(RunManager.parseTakeoverSeconds("10")).toEqual(Either.right(10))
        expect(RunManager.parseTakeoverSeconds(" 0 ")).toEqual(Either.right(0))
        expect(RunManager.parseTakeoverSeconds("3600")).toEqual(Either.right(3600))
        for (const bad of ["3601", "-1", "2.5", "ten", "", "1e3"]) {
          expect(RunManager.parseTakeoverSeconds(bad)).toEqual(
            Either.left(`must be a whole number of seconds from 0 (off) to 3600 (default 10), not ${JSON.stringify(bad)}`)
          )
        }
      }))

    it.effect("start-up says whether the server takes over runs, and a stopping server who resumes what it suspends", () =>
      Effect.sync(() => {
        expect(RunManager.describeTakeover(10, true)).toBe(
          "takeover: every 10 s, this server looks for runs whose server stopped and takes them over (SWARM_TAKEOVER_SECONDS)"
        )
        expect(RunManager.describeTakeover(0, true)).toBe(
          "takeover: off (SWARM_TAKEOVER_SECONDS=0): the runs of a server that stops wait for a server to start"
        )
        expect(RunManager.describeTakeover(10, false)).toContain("takeover: none, the embedded database serves this one process")
        const one = [{ run: "run_1" as never, ref: "a#1", paused: false }]
        // Whether another server runs, and with takeover on, is not known to the one stopping: said as a possibility.
        expect(RunManager.describeSuspended(one, true)).toBe(
          "stopping: 1 run suspended (a#1); the next start resumes it, or a server running on this database with takeover on takes it over (within about twice its SWARM_TAKEOVER_SECONDS)"
        )
        expect(RunManager.describeSuspended(one)).toBe("stopping: 1 run suspended (a#1); the next start resumes it")
        expect(RunManager.describeSuspended(one, false)).toBe("stopping: 1 run suspended (a#1); the next start resumes it")
      }))
  })
})

describe.skipIf(postgres === undefined)("takeover between servers on one Postgres", () => {
  // A skipped suite is still collected.
  if (postgres === undefined) return
  const environment = Layer.mergeAll(InProcessBus.layerTest(), Layer.effectDiscard(Effect.orDie(createUsers))).pipe(
    Layer.provideMerge(postgres.store)
  )
  layer(environment, { timeout: startTimeout, excludeTestServices: true })("two run managers", (it) => {
    it.scoped("a run whose server stopped is taken over by the other within its looks: its events go on with no gap, and it completes", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const b = yield* serverOn(bus, { takeover: { every: Duration.millis(200), grace: Duration.zero } })
        yield* Effect.addFinalizer(() => b.shutdown)
        // A hundred bars a second for three seconds: well under way when its server stops (after its
        // first twenty events, a few bars in), with most of its bars left for the other to take over.
        // (Thirty a second made the test wait ten seconds for a run whose pace it does not check.)
        const run = yield* paperRun(a.manager, "taken over", 300, 100)
        const follower = yield* bus.subscribe(run.id)
        const seqs: Array<number> = []
        for (let i = 0; i < 100 && seqs.length < 20; i++) {
          for (const d of yield* follower.takeAllWithin(100)) if (d._tag === "Event") seqs.push(d.event.seq)
        }
        expect(seqs.length).toBeGreaterThanOrEqual(20)
        // Held by a live server: the other's looks leave it alone.
        expect(b.manager.live()).toBe(0)

        yield* a.shutdown
        expect(a.manager.suspended().map((s) => s.run)).toEqual([run.id])
        expect((yield* Runs.get(run.id)).status).toBe("running")
        const stoppedAt = Date.now()
        // Before, nobody went on with it until a server started: its followers got heartbeats.
        let ended = false
        while (!ended && Date.now() - stoppedAt < 60_000) {
          for (const d of yield* follower.takeAllWithin(200)) {
            if (d._tag === "Event") seqs.push(d.event.seq)
            else ended = true
          }
        }
        expect(ended).toBe(true)
        expect((yield* Runs.get(run.id)).status).toBe("completed")
        expect(b.logged.filter((line) => line.includes("took over"))).toEqual([
          `INFO took over run ${run.id} (taken over#1) from a process that stopped`
        ])
        // Every event of the run, once each, in order: none lost between the two servers.
        const last = Number((yield* Runs.get(run.id)).recordedEvents)
        const distinct = [...new Set(seqs)]
        expect(distinct).toEqual(Array.from({ length: last }, (_, i) => i + 1))
        expect(b.manager.live()).toBe(0)
      }), { timeout: 90_000 })

    it.scoped("a run a live server holds is not touched by another's looks, which launch nothing and log nothing", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        yield* Effect.addFinalizer(() => a.shutdown)
        const run = yield* paperRun(a.manager, "held elsewhere", 600, 20)
        const paused = yield* paperRun(a.manager, "held and paused", 600, 20)
        yield* a.manager.pause(alice, paused.id)
        const b = yield* serverOn(bus, { takeover: { every: Duration.millis(100), grace: Duration.zero } })
        // Many looks.
        yield* Effect.sleep("1500 millis")
        expect(yield* b.manager.takeOver()).toEqual([])
        expect(yield* b.manager.takeOver()).toEqual([])
        expect(b.manager.live()).toBe(0)
        // Not even a resume refused by the lease ("running in another process: left to it").
        expect(b.logged).toEqual([])
        yield* b.shutdown
        expect(a.manager.live()).toBe(2)
        expect((yield* Runs.get(run.id)).status).toBe("running")
        expect((yield* Runs.get(paused.id)).status).toBe("paused")
        yield* a.manager.stop(alice, run.id)
        yield* a.manager.stop(alice, paused.id)
      }), { timeout: 60_000 })

    it.scoped("a run younger than the grace is not taken, nor one seen free by a single look; a paused one is taken paused", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const run = yield* paperRun(a.manager, "young", 600, 20)
        yield* a.manager.pause(alice, run.id)
        yield* a.shutdown
        // Looks by hand (its own never come): the row is a moment old, the grace three seconds.
        const b = yield* serverOn(bus, { takeover: { every: Duration.hours(1), grace: Duration.seconds(3) } })
        yield* Effect.addFinalizer(() => b.shutdown)
        expect(yield* b.manager.takeOver()).toEqual([])
        expect(yield* b.manager.takeOver()).toEqual([])
        expect(b.manager.live()).toBe(0)
        const age = Date.now() - (yield* Runs.get(run.id)).startedAt.getTime()
        yield* Effect.sleep(Duration.millis(Math.max(0, 3_200 - age)))
        // Past the grace: the first look that sees it free leaves it (a holder may be between two
        // leases); the next takes it.
        expect(yield* b.manager.takeOver()).toEqual([])
        expect(yield* b.manager.takeOver()).toEqual([{ run: run.id, ref: "young#1", outcome: "resumed" }])
        expect(b.manager.live()).toBe(1)
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        yield* b.manager.stop(alice, run.id)
        expect(yield* statusOf(run.id, ["stopped"], 10_000)).toBe("stopped")
      }), { timeout: 60_000 })

    it.scoped("a resume whose run another process ran and let go while it read the recording is left, not resumed from what it read", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const a = yield* serverOn(bus)
        const run = yield* paperRun(a.manager, "changed while read", 600, 20)
        yield* a.shutdown
        const b = yield* serverOn(bus)
        yield* Effect.addFinalizer(() => b.shutdown)
        // The resume's reading is held up (a lock on the checkpoints), past its read of the run's row
        // and last event; meanwhile another process takes the run, pauses it and lets it go.
        const release = yield* Deferred.make<void>()
        const locked = yield* Deferred.make<void>()
        yield* Effect.forkScoped(sql.withTransaction(
          Effect.zipRight(sql`lock table checkpoints in access exclusive mode`, Effect.zipRight(Deferred.succeed(locked, undefined), Deferred.await(release)))
        ))
        yield* Deferred.await(locked)
        const resuming = yield* Effect.fork(b.manager.resumeUnfinished())
        for (let i = 0; i < 200; i++) {
          if ((yield* sql`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%from checkpoints%'`).length > 0) break
          yield* Effect.sleep("10 millis")
        }
        yield* Effect.scoped(Effect.zipRight(Runs.lease(run.id), Runs.setStatus(run.id, "paused")))
        yield* Deferred.succeed(release, undefined)
        // Before, it was resumed running, from the row it read: the other process's pause undone.
        expect(yield* Fiber.join(resuming)).toEqual([{ run: run.id, ref: "changed while read#1", outcome: "left", reason: "another process runs it" }])
        expect(b.manager.live()).toBe(0)
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        // The next look reads it again, and takes it as it is now.
        expect(yield* b.manager.resumeUnfinished()).toEqual([{ run: run.id, ref: "changed while read#1", outcome: "resumed" }])
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        yield* b.manager.stop(alice, run.id)
      }), { timeout: 60_000 })

    it.scoped("a server whose lease another process took while it could not take it again stops its copy, writing nothing more", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const a = yield* serverOn(bus)
        yield* Effect.addFinalizer(() => a.shutdown)
        const run = yield* paperRun(a.manager, "lease lost", 6_000, 20)
        const follower = yield* bus.subscribe(run.id)
        let seen = 0
        for (let i = 0; i < 100 && seen < 5; i++) seen += (yield* follower.takeAllWithin(100)).filter((d) => d._tag === "Event").length
        expect(seen).toBeGreaterThanOrEqual(5)
        const key = `swarm-run:${run.id}`
        const [holder] = yield* sql<{ pid: number }>`select l.pid from pg_locks l
          where l.locktype = 'advisory' and l.granted and l.objsubid = 1
            and l.classid::bigint = (hashtextextended(${key}, 0) >> 32) & 4294967295 and l.objid::bigint = hashtextextended(${key}, 0) & 4294967295`
        expect(holder).toBeDefined()
        // Another process waits for the lease; the holder's connection is ended (an idle killer, a
        // network cut): the waiter has the lease before the server can take it again.
        const other = yield* sql.reserve
        const taken = yield* Effect.fork(other.execute("select pg_advisory_lock(hashtextextended($1, 0))", [key], undefined))
        for (let i = 0; i < 200; i++) {
          if ((yield* sql`select 1 from pg_locks where locktype = 'advisory' and not granted`).length > 0) break
          yield* Effect.sleep("10 millis")
        }
        yield* sql`select pg_terminate_backend(${holder!.pid})`
        yield* Fiber.join(taken)
        // Before, the server went on running it beside the other, both writing its events.
        for (let i = 0; i < 100 && a.manager.live() > 0; i++) yield* Effect.sleep("50 millis")
        expect(a.manager.live()).toBe(0)
        const count = () => Effect.map(sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${run.id}`, (rows) => rows[0]!.n)
        const stoppedAt = yield* count()
        yield* Effect.sleep("500 millis")
        // Nothing more written, and its row left as the other process's: not marked ended here.
        expect(yield* count()).toBe(stoppedAt)
        expect((yield* Runs.get(run.id)).status).toBe("running")
        // The other process ends it (it is no unfinished run for the tests after this one).
        yield* Runs.markEnded(run.id, "stopped", "stopped by the test")
        yield* other.execute("select pg_advisory_unlock(hashtextextended($1, 0))", [key], undefined)
      }), { timeout: 60_000 })

    it.scoped("at start-up, a run another live server holds is left to it, with no resume launched", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        yield* Effect.addFinalizer(() => a.shutdown)
        const run = yield* paperRun(a.manager, "left at start-up", 600, 20)
        const b = yield* serverOn(bus)
        yield* Effect.addFinalizer(() => b.shutdown)
        const outcomes = yield* b.manager.resumeUnfinished()
        expect(outcomes).toEqual([{ run: run.id, ref: "left at start-up#1", outcome: "left", reason: "another process runs it" }])
        expect(b.manager.live()).toBe(0)
        expect(b.logged).toEqual([])
        yield* a.manager.stop(alice, run.id)
      }), { timeout: 60_000 })

    it.scoped("a server taking over the runs of one that stopped keeps to its cap of live runs a user may have: the rest are left to a server with room, said once", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        // At most two of a user's runs live here; its looks are the test's own.
        const b = yield* serverOn(bus, { maxLiveRunsPerUser: 2, takeover: { every: Duration.hours(1), grace: Duration.zero } })
        yield* Effect.addFinalizer(() => b.shutdown)
        const here = yield* paperRun(b.manager, "capped here", 600, 20)
        const first = yield* paperRun(a.manager, "capped first", 600, 20)
        const second = yield* paperRun(a.manager, "capped second", 600, 20)
        yield* a.shutdown
        // Free twice in a row, a look apart: taken over at the second look.
        expect(yield* b.manager.takeOver()).toEqual([])
        const outcomes = yield* b.manager.takeOver()
        expect(outcomes.map((o) => [o.run, o.outcome])).toEqual([[first.id, "resumed"], [second.id, "failed"]])
        expect(outcomes[1]!.reason).toBe(
          "its owner has 2 live runs on this server, the most a user may have here (SWARM_MAX_LIVE_RUNS_PER_USER=2): left to a server with room (this one looks again in a few minutes)"
        )
        // Before, it took both: three of alice's runs live where she may have two.
        expect(b.manager.live()).toBe(2)
        expect((yield* Runs.get(second.id)).status).toBe("running")
        // Not said again at the next look, nor tried before its retry.
        expect(yield* b.manager.takeOver()).toEqual([])
        // Nor does a start pass the cap meanwhile.
        expect(yield* Effect.flip(paperRun(b.manager, "capped third", 600, 20))).toMatchObject({ _tag: "Conflict" })
        for (const run of [here, first]) yield* b.manager.stop(alice, run.id)
        yield* Runs.markEnded(second.id, "stopped", "stopped by the test")
      }), { timeout: 60_000 })

    it.scoped("a start-up keeps to the cap too: the runs past it wait for a slot there, its takeover looks leave them be, and one taken over elsewhere is no longer said to wait", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const first = yield* paperRun(a.manager, "start-up capped first", 600, 20)
        const second = yield* paperRun(a.manager, "start-up capped second", 600, 20)
        yield* a.shutdown
        // The server restarted with at most one of a user's runs live; its looks are the test's own.
        const b = yield* serverOn(bus, { maxLiveRunsPerUser: 1, takeover: { every: Duration.hours(1), grace: Duration.zero } })
        yield* Effect.addFinalizer(() => b.shutdown)
        const outcomes = (yield* b.manager.resumeUnfinished()).filter((o) => o.run === first.id || o.run === second.id)
        expect(outcomes.map((o) => [o.run, o.outcome])).toEqual([[first.id, "resumed"], [second.id, "waiting"]])
        expect(outcomes[1]!.reason).toContain("or sooner by a server on this database with takeover on and room for it")
        // Free, and waiting here: the looks do not take it as a run of a server that stopped, nor say it failed.
        expect(yield* b.manager.takeOver()).toEqual([])
        expect(yield* b.manager.takeOver()).toEqual([])
        expect(b.logged.filter((line) => line.startsWith("WARN"))).toEqual([])
        expect(yield* b.manager.waiting(second.id, "running")).toBe(outcomes[1]!.reason)
        // Taken over by a server with room meanwhile: no longer said to wait here.
        const c = yield* serverOn(bus)
        yield* Effect.addFinalizer(() => c.shutdown)
        expect((yield* c.manager.resumeUnfinished()).filter((o) => o.run === second.id).map((o) => o.outcome)).toEqual(["resumed"])
        expect(yield* b.manager.waiting(second.id, "running")).toBeUndefined()
        // Stopped there, relayed: as ever.
        yield* b.manager.stop(alice, second.id)
        expect(yield* statusOf(second.id, ["stopped"], 10_000)).toBe("stopped")
        yield* b.manager.stop(alice, first.id)
      }), { timeout: 60_000 })
  })
})
