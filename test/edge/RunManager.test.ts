/**
 * What the run manager tells a run's followers about its end: a shutdown suspends a paper run (it
 * stays `running` and the next start resumes it), so its followers — in this process, and through
 * Redis on another server — are not told it ended; an operator's stop, or the run finishing, ends
 * them. Nor does a resume that another process's lease refuses (the run goes on there). On every
 * back-end; the Redis case when a Redis answers.
 */
import { SqlClient } from "@effect/sql"
import { RpcTest } from "@effect/rpc"
import { afterAll, describe, expect, layer } from "@effect/vitest"
import Pg from "pg"
import { Context, Deferred, Effect, Either, Exit, Fiber, FiberRef, HashSet, Layer, Logger, Option, Schema, Scope } from "effect"
import { canonicalSignal } from "../../schemas/ExternalSignal.js"
import type { RunId, Timestamp } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import type { Delivery, EventBusService, Subscription } from "../../src/bus/EventBus.js"
import { EventBus } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as Redis from "../../src/bus/Redis.js"
import * as RedisBus from "../../src/bus/RedisBus.js"
import * as RunManager from "../../src/edge/RunManager.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { RunHandlers } from "../../src/edge/RpcHandlers.js"
import * as RunEvents from "../../src/edge/RunEvents.js"
import * as RemoteView from "../../src/cli/RemoteView.js"
import * as RunsView from "../../src/cli/RunsView.js"
import { RunRpcs } from "../../schemas/Rpc.js"
import * as ControlAudit from "../../src/store/ControlAudit.js"
import * as RecordedSignals from "../../src/store/RecordedSignals.js"
import { PgPool } from "../../src/store/Pool.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as WebhookStore from "../../src/store/Webhooks.js"
import * as Strategies from "../../src/store/Strategies.js"
import { cleanUp, connection, runRedis, uniquePrefix } from "../bus/redis.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { serverUrl } from "../store/fresh.js"
import { smaStrategy, symbolsOf } from "../store/fixtures/workload.js"
import { createUsers, principals, stubAuthenticator } from "./fixtures.js"

const alice = principals["sk_alice"]
const bob = principals["sk_bob"]
const prefix = uniquePrefix("manager")
afterAll(() => cleanUp(prefix))

const strategyBody = (name: string) => smaStrategy(name)

/** A run manager publishing on `bus`, in a scope of its own: closing it is the server shutting down. */
const managerOn = (bus: EventBusService, options: RunManager.Options = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(RunManager.layerWith(options).pipe(Layer.provide(Layer.succeed(EventBus, bus))), scope)
    return { manager: Context.get(context, RunManager.RunManager), shutdown: Scope.close(scope, Exit.void) }
  })

/** A paper run of `strategy`, twenty bars a second for half a minute: it waits between slices most of the time. */
const slowPaperRun = (manager: RunManager.RunManagerService, strategy: string) =>
  manager.start(alice, { strategy, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })

/** A strategy of alice's whose one analyst reads TradingView alerts, on two symbols. */
const alertedStrategy = (name: string) =>
  Strategies.create(alice.userId, Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: symbolsOf(2),
    agents: [{ type: "tradingview", params: { validity: 50 } }],
    sizing: { mode: "percent_of_equity", value: 10 }
  }))

/**
 * A paper run of a new strategy of alice's whose every opening order needs an operator (approval
 * timeout `timeoutSeconds`), started on `manager` and polled until it holds its first intent.
 */
const heldIntent = (manager: RunManager.RunManagerService, name: string, timeoutSeconds: number) =>
  Effect.gen(function*() {
    yield* Strategies.create(alice.userId, Schema.decodeUnknownSync(Strategy)({
      name,
      symbols: symbolsOf(1),
      agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
      sizing: { mode: "percent_of_equity", value: 10 },
      risk: { approval: { notionalPctAbove: 5, policy: "pause", timeoutSeconds } }
    }))
    const run = yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 60 }, speed: 86_400_000 })
    const held = yield* pendingOf(manager, run.id)
    expect(held).toHaveLength(1)
    return { run, round: held[0]!.round }
  })

/** What `manager` lists as waiting in `run`, polled for a few seconds until something is. */
const pendingOf = (manager: RunManager.RunManagerService, run: string) =>
  Effect.gen(function*() {
    let held: ReadonlyArray<{ readonly round: string; readonly requestedAt: number; readonly expiresAt: number }> = []
    for (let i = 0; i < 200 && held.length === 0; i++) {
      held = yield* manager.pending(alice, run)
      if (held.length === 0) yield* Effect.sleep("25 millis")
    }
    return held
  })

/** What `follower` delivers within `millis`, read until it stops delivering or ends. */
const drain = (follower: Subscription, millis: number) =>
  Effect.gen(function*() {
    const all: Array<Delivery> = []
    for (;;) {
      const ready = yield* follower.takeAllWithin(millis)
      all.push(...ready)
      if (ready.length === 0 || ready.some((d) => d._tag !== "Event")) return all
    }
  })

const ends = (deliveries: ReadonlyArray<Delivery>) => deliveries.filter((d) => d._tag !== "Event").map((d) => d._tag)

/** Until `follower` delivers something other than an event (at most `millis`). */
const endOf = (follower: Subscription, millis: number) =>
  Effect.gen(function*() {
    const until = Date.now() + millis
    while (Date.now() < until) {
      const terminal = ends(yield* follower.takeAllWithin(100))
      if (terminal.length > 0) return terminal
    }
    return []
  })

/**
 * Start a slow paper run on `publisher`, follow it on `reader` (the same bus, or another process's),
 * shut the manager down, then resume the run under a new manager and, once the follower has seen it
 * go on, stop it: how the follower's subscription ended after the stop.
 */
const suspendThenStop = (publisher: EventBusService, reader: EventBusService, name: string) =>
  Effect.gen(function*() {
    yield* Strategies.create(alice.userId, strategyBody(name))
    const first = yield* managerOn(publisher)
    const run = yield* slowPaperRun(first.manager, name)
    const follower = yield* reader.subscribe(run.id)
    // It is under way and the follower gets its events.
    expect((yield* follower.takeAllWithin(5_000)).length).toBeGreaterThan(0)

    yield* first.shutdown
    const left = yield* Runs.get(run.id)
    expect(left.status).toBe("running")
    const recorded = Option.getOrThrow(yield* Runs.lastEvent(run.id)).seq
    // Not ended: it goes on at the next start.
    expect(ends(yield* drain(follower, 1_500))).toEqual([])

    // The next start resumes it: the same follower sees it go on past where it was left...
    const next = yield* managerOn(publisher)
    const resumed = yield* next.manager.resumeUnfinished()
    expect(resumed).toContainEqual(expect.objectContaining({ run: run.id, outcome: "resumed" }))
    let newest = 0
    for (let i = 0; i < 100 && newest <= recorded; i++) {
      for (const delivery of yield* follower.takeAllWithin(100)) {
        if (delivery._tag !== "Event") return yield* Effect.dieMessage(`the follower got ${delivery._tag} while the run went on`)
        newest = Math.max(newest, delivery.event.seq)
      }
    }
    expect(newest).toBeGreaterThan(recorded)
    // ...and an operator's stop ends it.
    yield* next.manager.stop(alice, run.id)
    const afterStop = yield* endOf(follower, 10_000)
    yield* next.shutdown
    expect((yield* Runs.get(run.id)).status).toBe("stopped")
    return afterStop
  })

const usersLayer = Layer.effectDiscard(Effect.orDie(createUsers))

for (const backend of backends) {
  const environment = Layer.mergeAll(InProcessBus.layerTest(), usersLayer).pipe(Layer.provideMerge(backend.store))
  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`run manager: the end of a run on the bus (${backend.name})`, (it) => {
    it.scoped("suspended by a shutdown, a run's follower is not ended; stopped (after its resume), it is", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        expect(yield* suspendThenStop(bus, bus, "suspend on the bus")).toEqual(["Ended"])
      }), { timeout: 60_000 })

    it.scoped("an alert a paused paper run had not taken when the server stopped is taken once the run is resumed, once", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "alerts across a restart"
        const created = yield* alertedStrategy(name)
        const first = yield* managerOn(bus)
        const run = yield* slowPaperRun(first.manager, name)
        yield* first.manager.pause(alice, run.id)
        // Delivered as the webhook endpoint delivers it (answered 202, its key taken), into the paused run's inbox.
        const signal = canonicalSignal({
          source: "tradingview",
          symbol: symbolsOf(2)[0]!,
          ticker: symbolsOf(2)[0]!,
          action: "sell",
          price: 51 as never,
          alertId: "paused-1",
          receivedAt: Date.now() as Timestamp
        })
        const claimed = yield* WebhookStore.claimAlert(created.id, signal.alertId, Effect.map(first.manager.deliver(created.id, signal), (runs) => ({ runs, signal })))
        expect(claimed).toEqual({ duplicate: false, runs: [run.id] })
        // The server stops with it in the inbox: it was lost, and a repeat was answered "duplicate".
        yield* first.shutdown
        const next = yield* managerOn(bus)
        expect(yield* next.manager.resumeUnfinished()).toContainEqual(expect.objectContaining({ run: run.id, outcome: "resumed" }))
        yield* next.manager.resume(alice, run.id)
        let taken: Array<string> = []
        for (let i = 0; i < 100 && taken.length === 0; i++) {
          yield* Effect.sleep("100 millis")
          taken = [...(yield* RecordedSignals.read(run.id)).values()].flat().map((s) => s.alertId)
        }
        expect(taken).toEqual(["paused-1"])
        // Taken and recorded: a later restart does not put it back.
        yield* next.shutdown
        const third = yield* managerOn(bus)
        yield* third.manager.resumeUnfinished()
        yield* Effect.sleep("500 millis")
        expect([...(yield* RecordedSignals.read(run.id)).values()].flat().map((s) => s.alertId)).toEqual(["paused-1"])
        yield* third.manager.stop(alice, run.id)
        yield* third.shutdown
      }), { timeout: 60_000 })

    it.scoped("a shutdown says which runs it suspended, a paused one as paused, and not a run stopped before it", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const first = yield* managerOn(bus)
        yield* Strategies.create(alice.userId, strategyBody("suspended a"))
        yield* Strategies.create(alice.userId, strategyBody("suspended b"))
        const a = yield* slowPaperRun(first.manager, "suspended a")
        const b = yield* slowPaperRun(first.manager, "suspended b")
        const stopped = yield* slowPaperRun(first.manager, "suspended a")
        yield* first.manager.pause(alice, b.id)
        yield* first.manager.stop(alice, stopped.id)
        expect(first.manager.suspended()).toEqual([])
        yield* first.shutdown
        const suspended = first.manager.suspended()
        expect([...suspended].sort((x, y) => x.ref.localeCompare(y.ref))).toEqual([
          { run: a.id, ref: "suspended a#1", paused: false },
          { run: b.id, ref: "suspended b#1", paused: true }
        ])
        expect(RunManager.describeSuspended(suspended)).toMatch(
          /^stopping: 2 runs suspended \((suspended a#1, suspended b#1 \(paused\)|suspended b#1 \(paused\), suspended a#1)\); the next start resumes them \(a paused run stays paused\)$/
        )

        // Taken over by the next start, and suspended again by its shutdown: named as it ran.
        const next = yield* managerOn(bus)
        yield* next.manager.resumeUnfinished()
        yield* next.manager.stop(alice, b.id)
        yield* next.shutdown
        expect(next.manager.suspended()).toEqual([{ run: a.id, ref: "suspended a#1", paused: false }])
        expect(RunManager.describeSuspended(next.manager.suspended())).toBe("stopping: 1 run suspended (suspended a#1); the next start resumes it")
        expect(RunManager.describeSuspended([])).toBe("stopping: no run was live")
        // Ended, so that no later start here takes it over.
        const last = yield* managerOn(bus)
        yield* last.manager.resumeUnfinished()
        yield* last.manager.stop(alice, a.id)
        yield* last.shutdown
        expect(last.manager.suspended()).toEqual([])
      }), { timeout: 60_000 })

    it.scoped("a start the database fails is Unavailable (try again), not an invalid request; nothing is left", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const { manager, shutdown } = yield* managerOn(bus)
        yield* Strategies.create(alice.userId, strategyBody("refused start"))
        yield* sql.unsafe(`create function refuse_runs() returns trigger language plpgsql as $$ begin raise exception 'no room for runs'; end $$`)
        yield* sql.unsafe(`create trigger refuse_runs before insert on runs for each row execute function refuse_runs()`)
        const refused = yield* Effect.flip(slowPaperRun(manager, "refused start"))
        expect(refused._tag).toBe("Unavailable")
        expect(refused.message).toContain("no room for runs")
        expect(manager.live()).toBe(0)
        yield* sql.unsafe(`drop trigger refuse_runs on runs`)
        const run = yield* slowPaperRun(manager, "refused start")
        expect(run.number).toBe(1)
        yield* manager.stop(alice, run.id)
        yield* shutdown
      }), { timeout: 60_000 })

    it.scoped("a run paused with an intent waiting, across a restart: it stays paused and the intent can be answered", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const first = yield* managerOn(bus)
        const { round, run } = yield* heldIntent(first.manager, "paused with an intent", 600)
        yield* first.manager.pause(alice, run.id)
        yield* first.shutdown

        const next = yield* managerOn(bus)
        yield* Effect.addFinalizer(() => next.shutdown)
        expect(yield* next.manager.resumeUnfinished()).toContainEqual(expect.objectContaining({ run: run.id, outcome: "resumed" }))
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        // Before, the resumed run waited at its first re-executed slice, short of the intent: it
        // was listed nowhere, and an answer was told "its run is ending".
        expect((yield* pendingOf(next.manager, run.id)).map((p) => p.round)).toEqual([round])
        yield* next.manager.approve(alice, run.id, round)
        let resolved: ReadonlyArray<string> = []
        for (let i = 0; i < 100 && resolved.length === 0; i++) {
          resolved = (yield* Runs.events(run.id)).filter((e) => e.tag === "ApprovalResolved").map((e) => e.body)
          if (resolved.length === 0) yield* Effect.sleep("50 millis")
        }
        expect(JSON.parse(resolved[0]!)).toMatchObject({ round, outcome: "approved", by: alice.name })
        // Still paused, as the operator left it.
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        yield* next.manager.stop(alice, run.id)
      }), { timeout: 60_000 })

    it.scoped("a held intent's wait survives a restart: the restarted server gives it what is left of its timeout, not all of it", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const first = yield* managerOn(bus)
        const { round, run } = yield* heldIntent(first.manager, "waited across a restart", 5)
        yield* Effect.sleep("2500 millis")
        // Saved while it waits (a crash loses at most a second of it)…
        expect(yield* Runs.approvalWaited(run.id, round)).toBeGreaterThanOrEqual(1_000)
        yield* first.shutdown
        // …and when the server stops.
        const waited = yield* Runs.approvalWaited(run.id, round)
        expect(waited).toBeGreaterThanOrEqual(2_400)
        expect(waited).toBeLessThan(5_000)

        const next = yield* managerOn(bus)
        yield* Effect.addFinalizer(() => next.shutdown)
        expect(yield* next.manager.resumeUnfinished()).toContainEqual(expect.objectContaining({ run: run.id, outcome: "resumed" }))
        const again = yield* pendingOf(next.manager, run.id)
        expect(again.map((p) => p.round)).toEqual([round])
        // Before, the restart gave it its whole five seconds again.
        expect(again[0]!.expiresAt - Date.now()).toBeLessThanOrEqual(5_000 - waited + 100)
        // Held again at `heldAt` (its times say it: asked `waited` before), its countdown goes on for
        // what is left, never less (the countdown reads the same clock) — and a countdown given its
        // whole timeout again would hold it until `heldAt` + 5 s, `waited` (≥ 2.4 s) past its
        // expiry. Measured from when it is held again, not from the restart: re-executing the run up
        // to the intent takes what the machine's load makes it (once 2 s at a load of 20).
        const heldAt = again[0]!.requestedAt + waited
        let goneAt: number | undefined
        for (let i = 0; i < 400 && goneAt === undefined; i++) {
          // This process's own list, read every 25 ms: it sees the expiry within a poll or two.
          if ((yield* next.manager.pending(alice, run.id)).every((p) => p.round !== round)) goneAt = Date.now()
          else yield* Effect.sleep("25 millis")
        }
        expect(goneAt).toBeGreaterThanOrEqual(again[0]!.expiresAt)
        expect(goneAt! - heldAt).toBeLessThan(5_000)
        let resolved: ReadonlyArray<string> = []
        for (let i = 0; i < 200 && resolved.length === 0; i++) {
          resolved = (yield* Runs.events(run.id)).filter((e) => e.tag === "ApprovalResolved").map((e) => e.body)
          if (resolved.length === 0) yield* Effect.sleep("25 millis")
        }
        expect(JSON.parse(resolved[0]!)).toMatchObject({ round, outcome: "expired", by: "expiry" })
        yield* next.manager.stop(alice, run.id)
      }), { timeout: 60_000 })

    it.scoped("a start past this server's leases is Unavailable, naming the limit, with nothing written; once a run ends, a start goes", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const bus = yield* InProcessBus.InProcessBus
        const real = yield* PgPool
        // A server allowed one live run (32 in production), which waits half a second for a lease.
        const one = yield* Effect.acquireRelease(
          Effect.sync(() => new Pg.Pool({ connectionString: serverUrl!, max: 1, connectionTimeoutMillis: 500 })),
          (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption("5 seconds"))
        )
        // Shut down first however the test ends: its runs' leases go back to the pool before the pool ends.
        const { manager } = yield* Effect.acquireRelease(managerOn(bus).pipe(Effect.provideService(PgPool, { ...real, leases: one })), (m) => m.shutdown)
        yield* Strategies.create(alice.userId, strategyBody("past the leases"))
        const first = yield* slowPaperRun(manager, "past the leases")
        // Before, the second was answered as started and showed `failed` some ten seconds later.
        const refused = yield* Effect.flip(slowPaperRun(manager, "past the leases"))
        expect(refused._tag).toBe("Unavailable")
        expect(refused.message).toContain("this process already executes 1 live run, its most")
        expect(manager.live()).toBe(1)
        expect((yield* Runs.list({ owner: alice.userId, strategy: "past the leases" })).map((r) => r.id)).toEqual([first.id])
        yield* manager.stop(alice, first.id)
        const next = yield* slowPaperRun(manager, "past the leases")
        expect(next.number).toBe(2)
        yield* manager.stop(alice, next.id)
      }), { timeout: 60_000 })

    it.scoped("a user's live runs are capped: the next start is a Conflict naming the cap, a stop frees a slot, starts at once take no more, others are not held back", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const bob = principals["sk_bob"]
        const { manager } = yield* Effect.acquireRelease(
          Effect.gen(function*() {
            const scope = yield* Scope.make()
            const context = yield* Layer.buildWithScope(RunManager.layerWith({ maxLiveRunsPerUser: 2 }).pipe(Layer.provide(Layer.succeed(EventBus, bus))), scope)
            return { manager: Context.get(context, RunManager.RunManager), shutdown: Scope.close(scope, Exit.void) }
          }),
          (m) => m.shutdown
        )
        yield* Strategies.create(alice.userId, strategyBody("capped"))
        yield* Strategies.create(bob.userId, strategyBody("capped"))
        const first = yield* slowPaperRun(manager, "capped")
        const second = yield* slowPaperRun(manager, "capped")
        // A paused run is live too: it holds its feed, agents and books.
        yield* manager.pause(alice, second.id)
        // Before, every start went: one user's runs took the whole server's memory.
        const refused = yield* Effect.flip(slowPaperRun(manager, "capped"))
        expect(refused).toMatchObject({
          _tag: "Conflict",
          reason: expect.stringMatching(/^you have 2 live runs \(running or paused\), the most a user may have on this server \(SWARM_MAX_LIVE_RUNS_PER_USER=2\): stop one first \(runs\.list, then runs\.stop\)$/)
        })
        // Nothing was written for it.
        expect((yield* Runs.list({ owner: alice.userId, strategy: "capped" })).map((r) => r.id).sort()).toEqual([first.id, second.id].sort())
        // Another user is not held back by alice's runs.
        const bobs = yield* manager.start(bob, { strategy: "capped", mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })
        // A stop frees a slot; two starts at once for it: one goes, one is refused.
        yield* manager.stop(alice, first.id)
        const raced = yield* Effect.all([Effect.either(slowPaperRun(manager, "capped")), Effect.either(slowPaperRun(manager, "capped"))], { concurrency: 2 })
        expect(raced.map((r) => r._tag).sort()).toEqual(["Left", "Right"])
        expect(raced.flatMap((r) => (r._tag === "Left" ? [r.left._tag] : []))).toEqual(["Conflict"])
        expect(manager.live()).toBe(3)
        // A run that ends by itself frees its slot too.
        for (const r of raced) if (r._tag === "Right") yield* manager.stop(alice, r.right.id)
        yield* manager.stop(alice, second.id)
        yield* manager.stop(bob, bobs.id)
        yield* manager.start(alice, { strategy: "capped", mode: "backtest", data: { _tag: "synthetic", bars: 30 } })
        yield* manager.start(alice, { strategy: "capped", mode: "backtest", data: { _tag: "synthetic", bars: 30 } })
        for (let i = 0; i < 200 && manager.live() > 0; i++) yield* Effect.sleep("25 millis")
        expect(manager.live()).toBe(0)
        const after = yield* slowPaperRun(manager, "capped")
        yield* manager.stop(alice, after.id)
      }), { timeout: 60_000 })

    it.scoped("a restart keeps a user to their cap: the runs past it wait unfinished, saying why, and go on as soon as a run of theirs ends, before any new start; a stop ends one waiting", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "capped at restart"
        yield* Strategies.create(bob.userId, strategyBody(name))
        const first = yield* managerOn(bus)
        const started: Array<Runs.RunRecord> = []
        for (let i = 0; i < 4; i++) {
          started.push(yield* first.manager.start(bob, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 }))
        }
        const [r1, r2, r3, r4] = started.map((r) => r.id) as [RunId, RunId, RunId, RunId]
        yield* first.shutdown
        // The next start may keep two of a user's runs live (SWARM_MAX_LIVE_RUNS_PER_USER lowered, say).
        const logged: Array<string> = []
        const capture = Logger.make(({ logLevel, message }) =>
          void logged.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
        )
        const { manager } = yield* Effect.acquireRelease(
          managerOn(bus, { maxLiveRunsPerUser: 2 }).pipe(Effect.locallyWith(FiberRef.currentLoggers, HashSet.add(capture))),
          (m) => m.shutdown
        )
        const outcomes = (yield* manager.resumeUnfinished()).filter((o) => started.some((r) => r.id === o.run))
        // Before, all four were resumed: two past the cap every start and takeover keeps to.
        expect(outcomes.map((o) => [o.run, o.outcome])).toEqual([[r1, "resumed"], [r2, "resumed"], [r3, "waiting"], [r4, "waiting"]])
        // On a shared database, in words true on whichever server reads them (WaitingAnywhere.test.ts).
        const why = backend.name === "embedded"
          ? "its owner has 2 live runs on this server, the most a user may have here (SWARM_MAX_LIVE_RUNS_PER_USER=2): " +
            "it waits, unfinished, and is resumed here as soon as one of their runs ends, else at the next start"
          : "its owner has 2 live runs on the server where it waits, the most a user may have there (SWARM_MAX_LIVE_RUNS_PER_USER=2): " +
            "it waits, unfinished, and is resumed there as soon as one of their runs ends, else at the next start"
        expect(outcomes[2]!.reason).toMatch(new RegExp(`^${why.replace(/[()]/g, "\\$&")}`))
        expect(outcomes[2]!.reason).toContain(`swarm runs stop ${r3}`)
        expect(RunManager.describeResumption(outcomes[2]!)).toBe(`run ${r3} (${name}#3) waits for a slot: ${outcomes[2]!.reason}`)
        // Not failed, not lost: unfinished in its row, and what runs get says of it is why it waits.
        for (const run of [r3, r4]) {
          expect((yield* Runs.get(run)).status).toBe("running")
          expect(yield* manager.waiting(run, "running")).toBe(outcomes[2]!.reason!.replace(r3, run))
          expect(yield* manager.notResumable(run, "running")).toBeUndefined()
        }
        expect(yield* manager.waiting(r1, "running")).toBeUndefined()
        // Paused and resumed in its row, audited as a live run's (before, a Conflict saying it waits):
        // it keeps waiting, in its place.
        expect(yield* manager.pause(bob, r3, "hold it")).toMatchObject({ id: r3, status: "paused" })
        expect(yield* manager.waiting(r3, "paused")).toBe(outcomes[2]!.reason)
        expect(yield* Effect.flip(manager.pause(bob, r3))).toMatchObject({ _tag: "Conflict", reason: `run ${r3} is paused already` })
        expect(yield* manager.resume(bob, r3)).toMatchObject({ id: r3, status: "running" })
        expect(yield* Effect.flip(manager.resume(bob, r3))).toMatchObject({ _tag: "Conflict", reason: `run ${r3} is not paused` })
        expect((yield* ControlAudit.history(r3)).last.map((a) => [a.action, a.by.name, a.reason ?? null])).toEqual([["pause", "bob", "hold it"], ["resume", "bob", null]])
        expect(yield* manager.waiting(r3, "running")).toBe(outcomes[2]!.reason)
        // Someone else's is not found, as ever.
        expect(yield* Effect.flip(manager.pause(alice, r3))).toMatchObject({ _tag: "RunNotFound" })
        // A stop ends one waiting in its row, with its operator's reason; nothing frees, nothing more goes.
        const stopped = yield* manager.stop(bob, r4, "not needed")
        expect(stopped).toMatchObject({
          status: "stopped",
          failure: "stopped by bob: not needed; held by no live process: it was waiting here for a slot among its owner's live runs (SWARM_MAX_LIVE_RUNS_PER_USER=2)"
        })
        expect(yield* manager.waiting(r4, "stopped")).toBeUndefined()
        // Its stop freed no slot of bob's: the other still waits.
        yield* Effect.sleep("200 millis")
        expect(yield* manager.waiting(r3, "running")).toBe(outcomes[2]!.reason)
        // A run of bob's ends: the oldest waiting goes on at once (before, only at the next restart).
        const recorded = Option.getOrThrow(yield* Runs.lastEvent(r3)).seq
        yield* manager.stop(bob, r1)
        // The slot it freed is kept for the oldest waiting run: a start meanwhile is refused (before,
        // it took the slot while r3's resume read its recording, and r3 waited on).
        const meanwhile = yield* Effect.either(manager.start(bob, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 }))
        if (Either.isRight(meanwhile)) yield* manager.stop(bob, meanwhile.right.id)
        expect(Either.isLeft(meanwhile) && meanwhile.left._tag).toBe("Conflict")
        let newest = recorded
        for (let i = 0; i < 200 && newest <= recorded; i++) {
          yield* Effect.sleep("50 millis")
          newest = Option.getOrThrow(yield* Runs.lastEvent(r3)).seq
        }
        expect(newest).toBeGreaterThan(recorded)
        expect(yield* manager.waiting(r3, "running")).toBeUndefined()
        expect(logged).toContain(`INFO resumed run ${r3} (${name}#3), which waited for a slot: one of its owner's runs ended`)
        // At the cap again: a start is refused as ever.
        expect(yield* Effect.flip(manager.start(bob, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })))
          .toMatchObject({ _tag: "Conflict" })
        for (const run of [r2, r3]) yield* manager.stop(bob, run)
        for (const run of [r1, r2, r3, r4]) expect((yield* Runs.get(run)).status).toBe("stopped")
      }), { timeout: 60_000 })

    it.scoped("a run paused while it waits for a slot goes on paused when its turn comes: it takes the slot and trades nothing until resumed", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "paused while waiting"
        yield* Strategies.create(bob.userId, strategyBody(name))
        const first = yield* managerOn(bus)
        const started: Array<Runs.RunRecord> = []
        for (let i = 0; i < 3; i++) {
          started.push(yield* first.manager.start(bob, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 }))
        }
        const [r1, r2, r3] = started.map((r) => r.id) as [RunId, RunId, RunId]
        yield* first.shutdown
        const { manager } = yield* Effect.acquireRelease(managerOn(bus, { maxLiveRunsPerUser: 2 }), (m) => m.shutdown)
        const outcomes = (yield* manager.resumeUnfinished()).filter((o) => started.some((r) => r.id === o.run))
        expect(outcomes.map((o) => [o.run, o.outcome])).toEqual([[r1, "resumed"], [r2, "resumed"], [r3, "waiting"]])
        expect(yield* manager.pause(bob, r3)).toMatchObject({ status: "paused" })
        const recorded = Option.getOrThrow(yield* Runs.lastEvent(r3)).seq
        // A run of bob's ends: the paused one's turn comes, and it is resumed as its row says, paused.
        yield* manager.stop(bob, r1)
        for (let i = 0; i < 200 && (yield* manager.waiting(r3, "paused")) !== undefined; i++) yield* Effect.sleep("50 millis")
        expect(yield* manager.waiting(r3, "paused")).toBeUndefined()
        // It holds the slot (paused runs count toward the cap, as live ones do): a start is refused.
        expect(yield* Effect.flip(manager.start(bob, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })))
          .toMatchObject({ _tag: "Conflict" })
        yield* Effect.sleep("500 millis")
        expect((yield* Runs.get(r3)).status).toBe("paused")
        expect(Option.getOrThrow(yield* Runs.lastEvent(r3)).seq).toBe(recorded)
        // Resumed as any live run: it trades on.
        expect(yield* manager.resume(bob, r3)).toMatchObject({ status: "running" })
        let newest = recorded
        for (let i = 0; i < 200 && newest <= recorded; i++) {
          yield* Effect.sleep("50 millis")
          newest = Option.getOrThrow(yield* Runs.lastEvent(r3)).seq
        }
        expect(newest).toBeGreaterThan(recorded)
        for (const run of [r2, r3]) yield* manager.stop(bob, run)
      }), { timeout: 60_000 })

    it.scoped("a paused paper run takes no slice once the pause is answered, not even the one it was waiting for, nor its alerts", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "paused between slices"
        const symbol = symbolsOf(2)[0]!
        const created = yield* alertedStrategy(name)
        const { manager } = yield* Effect.acquireRelease(managerOn(bus), (m) => m.shutdown)
        // A slice a second: the run spends nearly all its time waiting for the next one.
        const run = yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 86_400 })
        for (let i = 0; i < 100 && (yield* Runs.events(run.id)).length === 0; i++) yield* Effect.sleep("20 millis")
        yield* manager.pause(alice, run.id)
        const signal = canonicalSignal({ source: "tradingview", symbol, ticker: symbol, action: "buy", price: 51 as never, alertId: "after-pause", receivedAt: Date.now() as Timestamp })
        yield* WebhookStore.claimAlert(created.id, signal.alertId, Effect.map(manager.stage(created.id, signal), (s) => {
          s.settle(true)
          return { runs: s.runs, signal }
        }))
        // What the slice in hand when it paused recorded is committed within moments.
        yield* Effect.sleep("200 millis")
        const seen = (yield* Runs.events(run.id)).length
        yield* Effect.sleep("1500 millis")
        // Before, the slice the run was waiting for went on when its moment came, with the alert.
        expect([...(yield* RecordedSignals.read(run.id)).values()].flat()).toEqual([])
        expect((yield* Runs.events(run.id)).length).toBe(seen)
        yield* manager.resume(alice, run.id)
        let taken: ReadonlyArray<string> = []
        for (let i = 0; i < 100 && taken.length === 0; i++) {
          taken = [...(yield* RecordedSignals.read(run.id)).values()].flat().map((s) => s.alertId)
          if (taken.length === 0) yield* Effect.sleep("50 millis")
        }
        expect(taken).toEqual(["after-pause"])
        yield* manager.stop(alice, run.id)
      }), { timeout: 60_000 })

    it.scoped("a paused run's trading state moves at once, at the bar it takes next: it stays paused, takes nothing else, and holds there across a restart", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "halted while paused"
        yield* Strategies.create(alice.userId, strategyBody(name))
        const first = yield* managerOn(bus)
        // A bar every ten seconds: a command waiting for the run's next bar would wait that long.
        const run = yield* first.manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 8_640 })
        for (let i = 0; i < 100 && (yield* Runs.events(run.id)).length === 0; i++) yield* Effect.sleep("20 millis")
        yield* first.manager.pause(alice, run.id)
        yield* Effect.sleep("200 millis")
        const before = yield* Runs.events(run.id)
        // The bar it took last: its events' time.
        const lastBar = Math.max(...before.map((e) => (JSON.parse(e.body) as { at: number }).at))

        const asked = Date.now()
        const halted = yield* first.manager.trading(alice, run.id, "halted", "something is wrong")
        expect(Date.now() - asked).toBeLessThan(5_000)
        expect(halted.transition).toMatchObject({ from: "active", to: "halted", cause: "operator", actor: "alice", reason: "something is wrong" })
        // At the bar the run takes next: a day of bars after the last it took.
        expect(halted.transition.at).toBe(lastBar + 86_400_000)
        // The state machine's word, while paused too.
        expect(yield* Effect.flip(first.manager.trading(alice, run.id, "halted"))).toMatchObject({ _tag: "IllegalTransition", from: "halted", to: "halted" })
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        // Recorded, and nothing else: no bar, no round.
        const recorded = () => Effect.map(Runs.events(run.id), (events) => events.slice(before.length).map((e) => e.tag))
        const taken = ["TradingStateRequested", "TradingStateChanged", "TradingStateRequested"]
        for (let i = 0; i < 100 && (yield* recorded()).length < taken.length; i++) yield* Effect.sleep("20 millis")
        yield* Effect.sleep("500 millis")
        expect(yield* recorded()).toEqual(taken)

        // Suspended paused, resumed paused: it re-executes what it recorded, the commands too, and holds at the same bar, halted.
        yield* first.shutdown
        const next = yield* managerOn(bus)
        yield* Effect.addFinalizer(() => next.shutdown)
        expect(yield* next.manager.resumeUnfinished()).toContainEqual(expect.objectContaining({ run: run.id, outcome: "resumed" }))
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        const lifted = yield* next.manager.trading(alice, run.id, "active", "all clear")
        expect(lifted.transition).toMatchObject({ from: "halted", to: "active", actor: "alice", reason: "all clear", at: halted.transition.at })
        yield* Effect.sleep("300 millis")
        expect(yield* recorded()).toEqual([...taken, "TradingStateRequested", "TradingStateChanged"])
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        // Stopped where it held: its recording ends mid-bar, and replays up to there.
        yield* next.manager.stop(alice, run.id)
        const events = yield* Runs.events(run.id)
        const replayed = yield* StoredRun.replay(run.id)
        expect(replayed.events).toBe(events.length)
      }), { timeout: 60_000 })

    it.scoped("alerts waiting in a paused run keep their arrival order across a restart, and a resume with no server (swarm resume) takes them", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "alerts in order across a restart"
        const symbol = symbolsOf(2)[0]!
        const created = yield* alertedStrategy(name)
        const alert = (alertId: string, receivedAt: number) =>
          canonicalSignal({ source: "tradingview", symbol, ticker: symbol, action: "buy", price: 51 as never, alertId, receivedAt: receivedAt as Timestamp })
        const staged = (manager: RunManager.RunManagerService, signal: ReturnType<typeof alert>) =>
          Effect.map(manager.stage(created.id, signal), (s) => ({ runs: s.runs, signal, settle: s.settle }))
        const order = (run: string) =>
          Effect.map(RecordedSignals.read(run as never), (taken) => [...taken.values()].flat().map((s) => s.alertId))

        // Live: the later-received alert's claim commits first; the run takes them in arrival order.
        const first = yield* managerOn(bus)
        const live = yield* slowPaperRun(first.manager, name)
        yield* first.manager.pause(alice, live.id)
        const now = Date.now()
        const early = alert("early", now)
        const late = alert("late", now + 200)
        const held = yield* staged(first.manager, early)
        yield* WebhookStore.claimAlert(created.id, late.alertId, staged(first.manager, late))
        held.settle(true)
        yield* WebhookStore.claimAlert(created.id, early.alertId, Effect.succeed({ runs: held.runs, signal: early }))
        yield* first.manager.resume(alice, live.id)
        for (let i = 0; i < 100 && (yield* order(live.id)).length < 2; i++) yield* Effect.sleep("50 millis")
        expect(yield* order(live.id)).toEqual(["early", "late"])
        yield* first.manager.stop(alice, live.id)

        // Across a restart: claimed in the other order while paused, given back in arrival order.
        const run = yield* slowPaperRun(first.manager, name)
        yield* first.manager.pause(alice, run.id)
        const third = alert("third", now + 600)
        const second = alert("second", now + 400)
        yield* WebhookStore.claimAlert(created.id, third.alertId, staged(first.manager, third))
        yield* WebhookStore.claimAlert(created.id, second.alertId, staged(first.manager, second))
        yield* first.shutdown
        // No server: what `swarm resume` does. The run ends at once (at backtest speed) with both taken.
        const resumed = yield* StoredRun.resume(run.id)
        expect(resumed.result.status).toBe("completed")
        expect(yield* order(run.id)).toEqual(["second", "third"])
        expect(yield* WebhookStore.pendingOf({ id: run.id, strategyId: created.id })).toEqual([])
      }), { timeout: 60_000 })

    it.scoped("an alert taken while the run's last bar waits on an approval is recorded as not applied when the run ends; after it, none is taken", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "alert after the last bar"
        const symbol = symbolsOf(2)[0]!
        const created = yield* Strategies.create(alice.userId, Schema.decodeUnknownSync(Strategy)({
          name,
          symbols: symbolsOf(2),
          allowShort: true,
          agents: [{ type: "tradingview", params: { validity: 20, confidence: 0.9 } }],
          sizing: { mode: "percent_of_equity", value: 10 },
          risk: { approval: { policy: "pause", notionalPctAbove: 5, timeoutSeconds: 60 } }
        }))
        const alert = (alertId: string, action: "buy" | "sell") =>
          canonicalSignal({ source: "tradingview", symbol, ticker: symbol, action, price: 50 as never, alertId, receivedAt: Date.now() as Timestamp })
        const { manager, shutdown } = yield* managerOn(bus)
        // Two bars two seconds apart: the first alert, sent once the first bar has gone by, enters
        // with the second (the last), whose intent waits for an operator.
        const run = yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 2 }, speed: 43_200 })
        const follower = yield* bus.subscribe(run.id)
        expect((yield* follower.take)._tag).toBe("Event")
        yield* Effect.sleep("300 millis")
        expect(yield* manager.deliver(created.id, alert("first", "buy"))).toEqual([run.id])
        let waiting: ReadonlyArray<{ readonly round: string }> = []
        for (let i = 0; i < 200 && waiting.length === 0; i++) {
          yield* Effect.sleep("50 millis")
          waiting = yield* manager.pending(alice, run.id)
        }
        expect(waiting).toHaveLength(1)
        // Taken (the webhook answers 202 "delivered"), with no bar left to take it.
        expect(yield* manager.deliver(created.id, alert("late", "sell"))).toEqual([run.id])
        yield* manager.approve(alice, run.id, waiting[0]!.round)
        yield* endOf(follower, 30_000)
        expect((yield* Runs.get(run.id)).status).toBe("completed")
        // Ended: no run takes an alert any more.
        const after = yield* Effect.flip(manager.deliver(created.id, alert("after", "buy")))
        expect(after._tag).toBe("NoPaperRun")
        yield* shutdown

        const sql = yield* SqlClient.SqlClient
        const events = (yield* sql<{ tag: string; body: string }>`select tag, body from run_events where run_id = ${run.id} order by seq`)
          .map((row) => ({ tag: row.tag, event: JSON.parse(row.body) }))
        expect(events.filter((e) => e.tag === "SignalReceived").map((e) => e.event.signal.alertId)).toEqual(["first"])
        const notApplied = events.filter((e) => e.tag === "SignalNotApplied")
        expect(notApplied.map((e) => [e.event.signal.alertId, e.event.reason])).toEqual([["late", `the run ended before a bar of ${symbol} could take it`]])
        // Recorded before the run's end, and given again by a replay: the same run, byte for byte.
        expect(events.at(-1)!.tag).toBe("RunCompleted")
        const replayed = yield* StoredRun.replay(run.id)
        expect(replayed.checksum).toBe((yield* Runs.get(run.id)).checksum)
      }), { timeout: 60_000 })

    it.scoped("an alert waiting for a resumed run that fails at once is not dropped unseen: the run takes no more, and the server says which it never applied", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "alerts of a resume that fails"
        const symbol = symbolsOf(2)[0]!
        const created = yield* Strategies.create(alice.userId, Schema.decodeUnknownSync(Strategy)({
          name,
          symbols: symbolsOf(2),
          allowShort: true,
          // Decides from the third bar: a sign the run is past its first slices.
          agents: [{ type: "tradingview", params: { validity: 50 } }, { type: "sma_crossover", params: { fast: 2, slow: 3 } }],
          sizing: { mode: "percent_of_equity", value: 10 }
        }))
        const alert = (alertId: string) =>
          canonicalSignal({ source: "tradingview", symbol, ticker: symbol, action: "sell", price: 51 as never, alertId, receivedAt: Date.now() as Timestamp })
        const sql = yield* SqlClient.SqlClient
        // Paused, with an alert in its inbox (answered 202, its key taken), when the server stops —
        // once past its first slices: a run paused before any has no checkpoint, and its paused
        // resume would wait at its first slice before comparing anything.
        const first = yield* managerOn(bus)
        const run = yield* slowPaperRun(first.manager, name)
        for (let i = 0; i < 500; i++) {
          if ((yield* sql`select 1 from run_events where run_id = ${run.id} and tag = 'DecisionMade' limit 1`).length > 0) break
          yield* Effect.sleep("20 millis")
        }
        yield* first.manager.pause(alice, run.id)
        // Past the slice it was waiting for when paused (20 a second), which would take the alert: it waits at the next.
        yield* Effect.sleep("200 millis")
        const claimed = yield* WebhookStore.claimAlert(created.id, "waiting-1", Effect.map(first.manager.deliver(created.id, alert("waiting-1")), (runs) => ({ runs, signal: alert("waiting-1") })))
        expect(claimed).toEqual({ duplicate: false, runs: [run.id] })
        yield* first.shutdown
        // Still waiting in its inbox: the run never took it.
        expect([...(yield* RecordedSignals.read(run.id)).values()].flat()).toEqual([])
        const recorded = Option.getOrThrow(yield* Runs.lastEvent(run.id)).seq

        // Its recording no longer reproduces (another seed): the resume fails at its first slice,
        // inside the recorded part, where its log can take no event.
        yield* sql`update runs set seed = '99' where id = ${run.id}`
        const warnings: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
        const capture = Logger.make(({ annotations, logLevel, message }) => {
          if (logLevel._tag === "Warning") warnings.push({ message: String(message), annotations: Object.fromEntries(annotations) })
        })
        const next = yield* managerOn(bus)
        yield* next.manager.resumeUnfinished().pipe(Effect.locallyWith(FiberRef.currentLoggers, HashSet.add(capture)))
        let status = "running"
        for (let i = 0; i < 100 && (status === "running" || status === "paused" || next.manager.live() > 0); i++) {
          yield* Effect.sleep("50 millis")
          status = (yield* Runs.get(run.id)).status
        }
        expect(status).toBe("failed")
        // It takes no alert any more...
        const after = yield* Effect.flip(next.manager.deliver(created.id, alert("after-1")))
        expect(after._tag).toBe("NoPaperRun")
        // ...and the one it held is said not applied, in the server's log, since the run's cannot take it.
        expect(warnings).toContainEqual({
          message: expect.stringContaining("never applied"),
          annotations: expect.objectContaining({ run: run.id, alerts: "waiting-1" })
        })
        expect(Option.getOrThrow(yield* Runs.lastEvent(run.id)).seq).toBe(recorded)
        yield* next.shutdown
      }), { timeout: 60_000 })

    // A second connection holds the run's row while the stop records its end: the embedded database has one.
    it.scoped.skipIf(backend.name !== "postgres")("a stopped paper run takes no alert from the moment it is stopped, while it records its end", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const name = "alerts while stopping"
        const symbol = symbolsOf(2)[0]!
        const created = yield* alertedStrategy(name)
        const alert = (alertId: string) =>
          canonicalSignal({ source: "tradingview", symbol, ticker: symbol, action: "buy", price: 51 as never, alertId, receivedAt: Date.now() as Timestamp })
        const { manager, shutdown } = yield* managerOn(bus)
        const run = yield* slowPaperRun(manager, name)
        yield* manager.pause(alice, run.id)
        // The run's row is held: the stop interrupts the run, then waits to mark it stopped.
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(sql.withTransaction(
          sql`select id from runs where id = ${run.id} for update`.pipe(Effect.zipRight(Deferred.succeed(locked, undefined)), Effect.zipRight(Deferred.await(release)))
        ))
        yield* Deferred.await(locked)
        const stopping = yield* Effect.fork(manager.stop(alice, run.id))
        yield* Effect.sleep("500 millis")
        // Still ending: an alert now would be answered 202 and never applied.
        expect(manager.live()).toBe(1)
        const during = yield* Effect.flip(manager.deliver(created.id, alert("during-stop")))
        expect(during._tag).toBe("NoPaperRun")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        expect((yield* Fiber.join(stopping)).status).toBe("stopped")
        yield* shutdown
      }), { timeout: 60_000 })

    it.scoped("followers see only events the database holds: a run whose recording fails publishes none it did not commit", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const name = "published once committed"
        yield* Strategies.create(alice.userId, strategyBody(name))
        const published: Array<number> = []
        const watched: EventBusService = {
          ...bus,
          publish: (run, event) => {
            published.push(event.seq)
            bus.publish(run, event)
          }
        }
        // The database refuses this run's events past the 40th, as a process killed there would
        // have left them: the run has given them, the database will never hold them.
        yield* sql.unsafe(`create function refuse_late_events() returns trigger language plpgsql as $$
          begin
            if new.seq > 40 and new.run_id in (select r.id from runs r join strategies s on s.id = r.strategy_id where s.name = '${name}') then
              raise exception 'refused for the test';
            end if;
            return new;
          end $$`)
        yield* sql`create trigger refuse_late_events before insert on run_events for each row execute function refuse_late_events()`
        yield* Effect.addFinalizer(() =>
          Effect.orDie(Effect.zipRight(sql`drop trigger refuse_late_events on run_events`, sql`drop function refuse_late_events()`)))
        const { manager, shutdown } = yield* managerOn(watched)
        const run = yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 86_400_000 })
        const follower = yield* bus.subscribe(run.id)
        expect(yield* endOf(follower, 30_000)).toEqual(["Ended"])
        yield* shutdown
        expect((yield* Runs.get(run.id)).status).toBe("failed")
        const committed = (yield* sql<{ seq: number }>`select seq from run_events where run_id = ${run.id} order by seq`).map((row) => row.seq)
        expect(committed.length).toBeGreaterThan(0)
        expect(committed.at(-1)).toBeLessThanOrEqual(40)
        // Every event published is committed, in order, once.
        expect(published).toEqual(committed)
      }), { timeout: 60_000 })

    it.scoped("a run that failed and whose end its row cannot take is said so in the server's log, as EndNotRecorded — not as a run that failed", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const name = "end not recorded"
        yield* Strategies.create(alice.userId, strategyBody(name))
        // Its recording fails past its 40th event, and its row refuses to say it failed (as a
        // database gone, or a lease lost, would): the run stops here, its row still saying it runs.
        const ofTheTest = `(select r.id from runs r join strategies s on s.id = r.strategy_id where s.name = '${name}')`
        for (const [fn, refused] of [["refuse_late_event", `new.seq > 40 and new.run_id in ${ofTheTest}`], ["refuse_end_of_run", `new.status = 'failed' and new.id in ${ofTheTest}`]]) {
          yield* sql.unsafe(`create function ${fn}() returns trigger language plpgsql as $$
            begin
              if ${refused} then
                raise exception 'refused for the test';
              end if;
              return new;
            end $$`)
        }
        yield* sql`create trigger refuse_late_event before insert on run_events for each row execute function refuse_late_event()`
        yield* sql`create trigger refuse_end_of_run before update on runs for each row execute function refuse_end_of_run()`
        let id: string | undefined
        yield* Effect.addFinalizer(() =>
          Effect.orDie(Effect.gen(function*() {
            yield* sql`drop trigger refuse_late_event on run_events`
            yield* sql`drop trigger refuse_end_of_run on runs`
            yield* sql`drop function refuse_late_event()`
            yield* sql`drop function refuse_end_of_run()`
            // Not left for the next test's resume to find.
            if (id !== undefined) yield* sql`update runs set status = 'failed', failure = 'the test ended it' where id = ${id}`
          })))
        const logged: Array<{ readonly level: string; readonly message: string; readonly annotations: Record<string, unknown> }> = []
        const capture = Logger.make(({ annotations, logLevel, message }) =>
          void logged.push({ level: logLevel.label, message: Array.isArray(message) ? message.join(" ") : String(message), annotations: Object.fromEntries(annotations) }))
        const { manager, shutdown } = yield* managerOn(bus)
        // The run's fiber logs with the loggers of the fiber that started it.
        const run = yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 86_400_000 }).pipe(
          Effect.locallyWith(FiberRef.currentLoggers, HashSet.add(capture))
        )
        id = run.id
        for (let i = 0; i < 300 && manager.live() > 0; i++) yield* Effect.sleep("50 millis")
        expect(manager.live()).toBe(0)
        yield* shutdown
        const said = logged.filter((line) => line.annotations["run"] === run.id && line.message.includes("its end was not recorded"))
        expect(said).toEqual([{
          level: "WARN",
          message: expect.stringMatching(new RegExp(`^run ${run.id} stopped here \\(.*refused for the test.*\\), and its end was not recorded \\(.*refused for the test.*\\): its row still says it runs, for a takeover or the next start to go on with$`)),
          annotations: expect.objectContaining({ run: run.id })
        }])
        // Not the line of a run that failed (with its stack): it did not, as far as its row says.
        expect(logged.filter((line) => line.message === "a run failed" || line.message.startsWith("a run failed:"))).toEqual([])
        const row = yield* Runs.get(run.id)
        expect([row.status, row.failure]).toEqual(["running", null])
      }), { timeout: 60_000 })

    it.scoped("a run that finishes ends its follower", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, strategyBody("finishing on the bus"))
        const { manager, shutdown } = yield* managerOn(bus)
        const run = yield* manager.start(alice, { strategy: "finishing on the bus", mode: "paper", data: { _tag: "synthetic", bars: 100 }, speed: 86_400_000 })
        const follower = yield* bus.subscribe(run.id)
        expect(yield* endOf(follower, 30_000)).toEqual(["Ended"])
        expect((yield* Runs.get(run.id)).status).toBe("completed")
        yield* shutdown
      }), { timeout: 60_000 })

    // Leases exclude only on a shared database (the embedded one is a single process).
    it.scoped.skipIf(backend.name !== "postgres")("a resume refused because another process took the run meanwhile does not end its followers here", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, strategyBody("leased elsewhere"))
        // A run left unfinished by a shutdown…
        const first = yield* managerOn(bus)
        const run = yield* slowPaperRun(first.manager, "leased elsewhere")
        yield* first.shutdown
        const follower = yield* bus.subscribe(run.id)
        const { manager, shutdown } = yield* managerOn(bus)
        const logged: Array<string> = []
        const logger = Logger.make(({ logLevel, message }) => void logged.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`))
        // …which another process takes over while this one reads what the resume needs (a busy
        // database: a lock held for a while): its lease was free when this one looked, and is
        // refused only after the read. Before, 50 ms without the run ending was "resumed".
        const sql = yield* SqlClient.SqlClient
        const locked = yield* Deferred.make<void>()
        yield* Effect.forkScoped(sql.withTransaction(
          Effect.zipRight(sql`lock table checkpoints in access exclusive mode`, Effect.zipRight(Deferred.succeed(locked, undefined), Effect.sleep("1500 millis")))
        ))
        yield* Deferred.await(locked)
        const resuming = yield* Effect.fork(manager.resumeUnfinished().pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
        for (let i = 0; i < 100; i++) {
          const waiting = yield* sql`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%from checkpoints%'`
          if (waiting.length > 0) break
          yield* Effect.sleep("10 millis")
        }
        yield* Runs.lease(run.id)
        const outcomes = yield* Fiber.join(resuming)
        // Left to the process running it: no failure.
        expect(outcomes).toEqual([{ run: run.id, ref: "leased elsewhere#1", outcome: "left", reason: "another process runs it" }])
        expect(ends(yield* drain(follower, 1_000))).toEqual([])
        // Said as what it is, not as a failure with a stack trace.
        expect(logged.filter((line) => line.includes("a run failed"))).toEqual([])
        expect(logged).toContain("INFO the run is running in another process: left to it")
        // It was refused here: nothing of it runs in this process.
        expect(manager.live()).toBe(0)
        expect((yield* Runs.get(run.id)).status).toBe("running")
        yield* shutdown
      }), { timeout: 60_000 })
  })
}

for (const backend of backends) {
  // The RPC procedures of a server whose start-up keeps a user to one live run, as a client calls them.
  const served = Layer.mergeAll(RunHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(Layer.mergeAll(RunManager.layerWith({ maxLiveRunsPerUser: 1 }), RunEvents.layer)),
    Layer.provideMerge(Layer.mergeAll(InProcessBus.layerTest(), stubAuthenticator, usersLayer)),
    Layer.provideMerge(backend.store)
  )
  const clientFor = (key: string) => Effect.provide(RpcTest.makeClient(RunRpcs, { flatten: true }), clientKey(key))
  layer(served, { timeout: startTimeout, excludeTestServices: true })(`a run waiting for a slot, over RPC (${backend.name})`, (it) => {
    it.scoped("runs.get, runs.report and runs.list say it waits and why; runs show prints it, runs list marks it", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const name = "waits over RPC"
        yield* Strategies.create(bob.userId, strategyBody(name))
        const first = yield* managerOn(bus)
        const one = yield* first.manager.start(bob, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })
        const two = yield* first.manager.start(bob, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })
        yield* first.shutdown
        const manager = yield* RunManager.RunManager
        const outcomes = yield* manager.resumeUnfinished()
        expect(outcomes.map((o) => [o.run, o.outcome])).toEqual([[one.id, "resumed"], [two.id, "waiting"]])
        const client = yield* clientFor("sk_bob")
        // Before, nothing said why a run left `running` did not go on.
        const got = yield* client("runs.get", { run: two.id })
        expect(got).toMatchObject({ status: "running", waiting: outcomes[1]!.reason })
        expect(got).not.toHaveProperty("notResumable")
        const report = yield* client("runs.report", { run: two.id })
        expect(report.waiting).toBe(outcomes[1]!.reason)
        const line = `waiting for a slot on the server, not failed: ${outcomes[1]!.reason}`
        expect(RemoteView.runShow(got)).toContain(line)
        expect(RunsView.renderShow(RunsView.shownOf(report))).toContain(line)
        // A run going on says nothing of it.
        expect(yield* client("runs.get", { run: one.id })).not.toHaveProperty("waiting")
        // Nor did runs.list say it (before, the waiting run looked as the one going on), which
        // `runs list` marks.
        const listed = yield* client("runs.list", { strategy: name })
        expect(listed.map((run) => [run.id, run.waiting])).toEqual([[two.id, outcomes[1]!.reason], [one.id, undefined]])
        expect(RemoteView.runsTable(listed, undefined)).toMatch(new RegExp(`${two.id} +│ running \\(waiting\\) `))
        yield* client("runs.stop", { run: one.id })
        // Its slot went to the one waiting.
        let waiting: string | undefined = got.waiting
        for (let i = 0; i < 200 && waiting !== undefined; i++) {
          yield* Effect.sleep("50 millis")
          waiting = (yield* client("runs.get", { run: two.id })).waiting
        }
        expect(waiting).toBeUndefined()
        expect((yield* client("runs.list", { strategy: name })).find((run) => run.id === two.id)).not.toHaveProperty("waiting")
        yield* client("runs.stop", { run: two.id })
      }), { timeout: 60_000 })
  })
}

describe.skipIf(!runRedis)("run manager: the end of a run through Redis", () => {
  layer(Layer.mergeAll(usersLayer).pipe(Layer.provideMerge(backends[0]!.store)), { timeout: startTimeout, excludeTestServices: true })("two processes", (it) => {
    it.scoped("a follower on another server is not ended by the shutdown of the one running the run; a stop ends it", () =>
      Effect.gen(function*() {
        const busOf = Effect.flatMap(connection(prefix), (redis) => RedisBus.make().pipe(Effect.provideService(Redis.Redis, redis)))
        const publisher = yield* busOf
        const reader = yield* busOf
        expect(yield* suspendThenStop(publisher, reader, "suspend through redis")).toEqual(["Ended"])
      }), { timeout: 60_000 })
  })
})
