/**
 * A run no process can resume: its server stopped, and the server after it cannot make its agents
 * (an analyst type removed from the registry since, or params it now refuses). Such a run stayed
 * `running` for good: each start-up and takeover tried it again, and `runs stop` was refused
 * ("held by no live process"). Now the server says it once, tries it no more, and an operator's
 * stop ends it in its row — `stopped`, the control log naming who and why, `audit verify` passing
 * — while a stop of someone else's run is `RunNotFound`, as a missing one is, and a run another
 * live server holds is still stopped there (relayed). On every back-end; what needs two servers
 * on one database, on Postgres only.
 *
 * The same for a run whose resume failed for another reason that does not pass by itself: its
 * data file deleted (or changed) since it ran. Tried again (a file may come back), said with why
 * and what ends it, ended by its owner's stop.
 */
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { RpcTest } from "@effect/rpc"
import { describe, expect, it as plain, layer } from "@effect/vitest"
import { Cause, Context, Deferred, Duration, Effect, Exit, Fiber, FiberRef, HashSet, Layer, Logger, Schema, Scope } from "effect"
import { analysts } from "../../agents/registry.js"
import type { RunId } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import type { EventBusService } from "../../src/bus/EventBus.js"
import { EventBus } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import { ApprovalRpcs, RunRpcs } from "../../schemas/Rpc.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { ApprovalHandlers, RunHandlers } from "../../src/edge/RpcHandlers.js"
import * as RunEvents from "../../src/edge/RunEvents.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as DataSource from "../../src/market/DataSource.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { CorruptRecord, StoreError } from "../../src/store/StoreError.js"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { createUsers, principals, stubAuthenticator } from "./fixtures.js"

const alice = principals["sk_alice"]
const bob = principals["sk_bob"]

/** This build without the analyst type of the runs below (`smaStrategy`'s). */
const withoutSma = new Map([...analysts].filter(([type]) => type !== "sma_crossover"))

/** A run manager (a server) on `bus`, in a scope of its own (closing it shuts the server down), with what it logs. */
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
    const shutdown = Scope.close(scope, Exit.void)
    yield* Effect.addFinalizer(() => shutdown)
    return { manager: Context.get(context, RunManager.RunManager), shutdown, logged }
  })

/** A paper run of a new strategy of alice's (an `sma_crossover` analyst), well under way: `events` of its events seen. */
const paperRunUnderWay = (bus: InProcessBus.InProcessBusService, manager: RunManager.RunManagerService, name: string, events = 5) =>
  Effect.gen(function*() {
    yield* Strategies.create(alice.userId, smaStrategy(name))
    const run = yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 6_000 }, speed: 20 * 86_400 })
    const follower = yield* bus.subscribe(run.id)
    let seen = 0
    for (let i = 0; i < 100 && seen < events; i++) seen += (yield* follower.takeAllWithin(100)).filter((d) => d._tag === "Event").length
    expect(seen).toBeGreaterThanOrEqual(events)
    return run
  })

/** The run's control log as stored: each entry's kind and parsed text, in order. */
const controlLog = (run: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ kind: string; entry: string }>`select kind, entry from audit_log where stream = ${`control:${run}`} order by position`).pipe(
    Effect.map((rows) => rows.map((row): Record<string, unknown> => ({ kind: row.kind, ...JSON.parse(row.entry) as Record<string, unknown> })))
  )

/** The sample data's directory (data/), and two of its symbols. */
/**
 * Alice's stop of `run`, which no server can resume (`why`, a pattern): it ends in its row with the
 * reason, the control log names her and why, and its followers are told it ended.
 */
const stoppedByAlice = (
  manager: RunManager.RunManagerService,
  run: string,
  why: string,
  follower: { readonly takeAllWithin: (millis: number) => Effect.Effect<ReadonlyArray<{ readonly _tag: string }>> }
) =>
  Effect.gen(function*() {
    const stopped = yield* manager.stop(alice, run)
    expect(stopped.status).toBe("stopped")
    expect(stopped.failure).toMatch(new RegExp(`^stopped by alice: held by no live process, and this server cannot resume it: ${why}$`))
    expect(yield* controlLog(run)).toEqual([{
      kind: "stop",
      action: "stop",
      run,
      by: { id: "alice", name: "alice" },
      at: expect.any(String),
      reason: expect.stringMatching(new RegExp(`^held by no live process, and this server cannot resume it: ${why}$`))
    }])
    let ended = false
    for (let i = 0; i < 20 && !ended; i++) ended = (yield* follower.takeAllWithin(100)).some((d) => d._tag === "Ended")
    expect(ended).toBe(true)
    return stopped
  })

const SAMPLE = fileURLToPath(new URL("../../data", import.meta.url))
const SAMPLE_SYMBOLS = ["ACME", "GLOBEX"]

/**
 * A paper run of alice's on CSV files in a temp dir (a copy of the sample data), recorded as a
 * server records one, its process then stopped (suspended: left `running` for the next start)
 * well under way: the run, its dir, and how to put its files back.
 */
const paperRunOnCsv = (name: string) =>
  Effect.gen(function*() {
    const dir = mkdtempSync(Path.join(tmpdir(), "swarm-unresumable-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const copy = () => {
      mkdirSync(dir, { recursive: true })
      for (const file of readdirSync(SAMPLE).filter((f) => f.endsWith(".csv"))) copyFileSync(Path.join(SAMPLE, file), Path.join(dir, file))
    }
    copy()
    const source = DataSource.csv([dir], { symbols: SAMPLE_SYMBOLS })
    const strategy = Schema.decodeUnknownSync(Strategy)({ ...Schema.encodeSync(Strategy)(smaStrategy(name)), symbols: SAMPLE_SYMBOLS })
    const created = yield* Deferred.make<RunId>()
    const underWay = yield* Deferred.make<void>()
    let slices = 0
    const fiber = yield* Effect.fork(StoredRun.backtest({
      strategy,
      feed: yield* Effect.orDie(DataSource.open(source)),
      dataSource: source,
      owner: alice.userId,
      mode: "paper",
      speed: 1,
      onCreated: (c) => Deferred.unsafeDone(created, Exit.succeed(c.id)),
      // Well under way (its windows warm, some rounds decided), then waiting for its next bar.
      beforeSlice: () => (++slices < 80 ? Effect.void : Effect.zipRight(Deferred.succeed(underWay, undefined), Effect.never)),
      suspended: () => true
    }))
    yield* Deferred.await(underWay)
    yield* Fiber.interrupt(fiber)
    const run = yield* Runs.get(yield* Deferred.await(created))
    expect(run).toMatchObject({ status: "running", mode: "paper" })
    expect((yield* Runs.events(run.id)).length).toBeGreaterThan(0)
    return { run, dir, copy }
  })

/** Why a run whose CSV files are gone cannot be resumed. */
const DATA_GONE = String.raw`the run's data cannot be read as it was: [^()]*no such file or directory[^()]*`

const WHY = String.raw`its strategy's agent [^,]+, agents\[0\]\.type: unknown agent type "sma_crossover"; the registered ones are [^;]*; this build cannot re-execute it`

for (const backend of backends) {
  const environment = Layer.mergeAll(InProcessBus.layerTest(), Layer.effectDiscard(Effect.orDie(createUsers))).pipe(
    Layer.provideMerge(backend.store)
  )
  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`a run no server can resume (${backend.name})`, (it) => {
    it.scoped("its stop ends it in its row, with the control log saying who and why; audit verify passes; no later start takes it", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const run = yield* paperRunUnderWay(bus, a.manager, "type gone")
        yield* a.shutdown
        expect((yield* Runs.get(run.id)).status).toBe("running")

        // The next start is of a build without its analyst type: said once, with what ends it; nothing launched.
        const b = yield* serverOn(bus, { registry: withoutSma })
        const outcomes = yield* b.manager.resumeUnfinished()
        expect(outcomes).toEqual([{ run: run.id, ref: "type gone#1", outcome: "failed", reason: expect.stringMatching(new RegExp(`^${WHY}; not tried again`)) }])
        expect(outcomes[0]!.reason).toContain(`swarm runs stop ${run.id}`)
        expect(b.manager.live()).toBe(0)
        // Not "a run failed" with its cause, nor its followers told it ended: it did not.
        expect(b.logged).toEqual([])
        const follower = yield* bus.subscribe(run.id)
        expect((yield* follower.takeAllWithin(100)).filter((d) => d._tag !== "Event")).toEqual([])

        // Someone else's run is not found, as a missing one is; nothing is written.
        const missing = yield* Effect.flip(b.manager.stop(bob, "run_0000000000000000000000000"))
        const others = yield* Effect.flip(b.manager.stop(bob, run.id))
        expect(missing).toMatchObject({ _tag: "RunNotFound" })
        expect(others).toMatchObject({ _tag: "RunNotFound", run: run.id })
        expect(Object.keys(others).sort()).toEqual(Object.keys(missing).sort())
        expect((yield* Runs.get(run.id)).status).toBe("running")
        expect(yield* controlLog(run.id)).toEqual([])

        // What `runs.get` and `runs show` say of it: why this server cannot resume it.
        expect(yield* b.manager.notResumable(run.id, "running")).toMatch(new RegExp(`^${WHY}$`))
        // A server that can make its agents has nothing to say.
        expect(yield* a.manager.notResumable(run.id, "running")).toBeUndefined()

        // A pause cannot be carried out by anyone: the refusal says why, and what ends it.
        const pause = yield* Effect.flip(b.manager.pause(alice, run.id))
        expect(pause).toMatchObject({ _tag: "Conflict" })
        expect((pause as { reason: string }).reason).toMatch(new RegExp(`this server cannot resume it: ${WHY}.*runs stop ends it`))
        expect((yield* Runs.get(run.id)).status).toBe("running")

        // Before, a Conflict: "held by no live process" (Postgres) or "running in no live process here" (embedded).
        yield* stoppedByAlice(b.manager, run.id, WHY, follower)
        // Its events end where its server left them, and its row holds it to them: the audit passes.
        const events = yield* Runs.events(run.id as RunId)
        expect(events.length).toBeGreaterThan(0)
        expect((yield* Runs.get(run.id)).chain?.count).toBe(events.length)
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
        expect(yield* b.manager.notResumable(run.id, "stopped")).toBeUndefined()
        // Stopped once.
        expect(yield* Effect.flip(b.manager.stop(alice, run.id))).toMatchObject({ _tag: "Conflict", reason: `run ${run.id} is stopped` })

        // A later start, of either build, does not take it up.
        yield* b.shutdown
        const c = yield* serverOn(bus)
        expect(yield* c.manager.resumeUnfinished()).toEqual([])
        const d = yield* serverOn(bus, { registry: withoutSma })
        expect(yield* d.manager.resumeUnfinished()).toEqual([])
        expect(c.manager.live() + d.manager.live()).toBe(0)
        expect((yield* Runs.get(run.id)).status).toBe("stopped")
        expect(c.logged.concat(d.logged)).toEqual([])
      }), { timeout: 60_000 })

    it.scoped("a paper run whose CSV was deleted: said with why and what ends it; its owner's stop ends it in its row", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const { dir, run } = yield* paperRunOnCsv("csv gone")
        rmSync(dir, { recursive: true, force: true })

        const follower = yield* bus.subscribe(run.id)
        const b = yield* serverOn(bus)
        const outcomes = yield* b.manager.resumeUnfinished()
        expect(outcomes).toEqual([{
          run: run.id,
          ref: "csv gone#1",
          outcome: "failed",
          reason: expect.stringMatching(new RegExp(
            String.raw`^${DATA_GONE} \(once its data reads as the run read it, the next start or takeover look resumes it, or \`swarm runs stop ${run.id}\` ends it\)$`
          ))
        }])
        expect(b.manager.live()).toBe(0)
        expect((yield* Runs.get(run.id)).status).toBe("running")
        // Its followers are not told it ended: it did not (before, they were, and it went on `running`).
        expect((yield* follower.takeAllWithin(200)).filter((d) => d._tag !== "Event")).toEqual([])
        expect(yield* b.manager.notResumable(run.id, "running")).toMatch(new RegExp(`^${DATA_GONE}$`))

        // Someone else's stop is not found, as a missing run's is; nothing is written.
        const missing = yield* Effect.flip(b.manager.stop(bob, "run_0000000000000000000000000"))
        const others = yield* Effect.flip(b.manager.stop(bob, run.id))
        expect(others).toMatchObject({ _tag: "RunNotFound", run: run.id })
        expect(Object.keys(others).sort()).toEqual(Object.keys(missing).sort())
        expect(yield* controlLog(run.id)).toEqual([])
        // A pause says why, and what ends it.
        expect(((yield* Effect.flip(b.manager.pause(alice, run.id))) as { reason: string }).reason)
          .toMatch(new RegExp(`this server cannot resume it: ${DATA_GONE}.*runs stop ends it`))

        // Before, a Conflict ("held by no live process", "running in no live process here").
        yield* stoppedByAlice(b.manager, run.id, DATA_GONE, follower)
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
        expect(yield* b.manager.notResumable(run.id, "stopped")).toBeUndefined()
        expect(yield* Effect.flip(b.manager.stop(alice, run.id))).toMatchObject({ _tag: "Conflict", reason: `run ${run.id} is stopped` })
        yield* b.shutdown
        const c = yield* serverOn(bus)
        expect(yield* c.manager.resumeUnfinished()).toEqual([])
      }), { timeout: 60_000 })

    it.scoped("a run whose CSV comes back is resumed by the next attempt, and no longer said not resumable", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const { copy, dir, run } = yield* paperRunOnCsv("csv back")
        rmSync(dir, { recursive: true, force: true })
        const b = yield* serverOn(bus)
        // (The other tests' runs are not this one's business.)
        const ours = (outcomes: ReadonlyArray<RunManager.Resumption>) => outcomes.filter((o) => o.run === run.id)
        expect(ours(yield* b.manager.resumeUnfinished())).toMatchObject([{ run: run.id, outcome: "failed" }])
        expect(yield* b.manager.notResumable(run.id, "running")).toMatch(new RegExp(`^${DATA_GONE}$`))
        // The file back (restored from a backup, the disk remounted): the next attempt resumes it.
        copy()
        expect(ours(yield* b.manager.resumeUnfinished())).toEqual([{ run: run.id, ref: "csv back#1", outcome: "resumed" }])
        expect(b.manager.live()).toBe(1)
        expect(yield* b.manager.notResumable(run.id, "running")).toBeUndefined()
        // A stop is a live run's, as ever: no word of resuming.
        const stopped = yield* b.manager.stop(alice, run.id)
        expect(stopped).toMatchObject({ status: "stopped", failure: "stopped by alice" })
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
      }), { timeout: 60_000 })

    it.scoped("a run whose record does not decode is said, its stop ends it, and the other runs are resumed all the same", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const bus = yield* InProcessBus.InProcessBus
        const altered = yield* paperRunOnCsv("alerts corrupt")
        const unreadable = yield* paperRunOnCsv("strategy corrupt")
        const healthy = yield* paperRunOnCsv("healthy")
        // A recorded alert that does not decode (its row edited by hand), and a strategy column likewise.
        const [last] = yield* sql<{ seq: number }>`select max(seq) as seq from run_events where run_id = ${altered.run.id}`
        yield* sql`update run_events set tag = 'SignalReceived', body = ${'{"_tag":"SignalReceived"}'} where run_id = ${altered.run.id} and seq = ${last!.seq}`
        const [strategy] = yield* sql<{ strategy: unknown }>`select strategy from runs where id = ${unreadable.run.id}`
        yield* sql`update runs set strategy = ${'{"bogus":true}'} where id = ${unreadable.run.id}`

        const b = yield* serverOn(bus)
        const ours = (yield* b.manager.resumeUnfinished()).filter((o) => [altered.run.id, unreadable.run.id, healthy.run.id].includes(o.run))
        // Before, the altered run's alerts failed the whole look ("cannot look for unfinished runs"):
        // no run resumed at all; and the unreadable one was skipped unsaid.
        expect(ours).toEqual([
          {
            run: altered.run.id,
            ref: "alerts corrupt#1",
            outcome: "failed",
            reason: expect.stringMatching(new RegExp(
              String.raw`^its record cannot be read: run_events ${altered.run.id}#${last!.seq}: body does not decode: .* ` +
                String.raw`\(once its record reads again, the next start or takeover look resumes it, or \x60swarm runs stop ${altered.run.id}\x60 ends it\)$`,
              "s"
            ))
          },
          { run: unreadable.run.id, ref: "strategy corrupt#1", outcome: "failed", reason: expect.stringMatching(/^its record cannot be read: runs run_\w+: strategy does not decode/) },
          { run: healthy.run.id, ref: "healthy#1", outcome: "resumed" }
        ])
        expect(yield* b.manager.notResumable(altered.run.id, "running")).toMatch(/^its record cannot be read: run_events /)
        const stopped = yield* b.manager.stop(alice, altered.run.id)
        expect(stopped.status).toBe("stopped")
        expect(stopped.failure).toMatch(/^stopped by alice: held by no live process, and this server cannot resume it: its record cannot be read: run_events /)
        expect(yield* controlLog(altered.run.id)).toMatchObject([{ action: "stop", reason: expect.stringContaining("its record cannot be read") }])
        expect((yield* b.manager.stop(alice, healthy.run.id)).status).toBe("stopped")

        // Its strategy not decoding is why no server can resume it, and its owner's stop ends it all
        // the same (before, the stop read its row whole: "strategy does not decode", and it stayed running).
        const CORRUPT = String.raw`its record cannot be read: runs ${unreadable.run.id}: strategy does not decode: `
        expect(yield* b.manager.notResumable(unreadable.run.id, "running")).toMatch(new RegExp(`^${CORRUPT}`))
        const missing = yield* Effect.flip(b.manager.stop(bob, "run_0000000000000000000000000"))
        const others = yield* Effect.flip(b.manager.stop(bob, unreadable.run.id))
        expect(others).toMatchObject({ _tag: "RunNotFound", run: unreadable.run.id })
        expect(Object.keys(others).sort()).toEqual(Object.keys(missing).sort())
        expect(yield* controlLog(unreadable.run.id)).toEqual([])
        // A pause says why, and what ends it.
        expect(((yield* Effect.flip(b.manager.pause(alice, unreadable.run.id))) as { reason: string }).reason)
          .toMatch(new RegExp(`this server cannot resume it: ${CORRUPT}.*runs stop ends it`, "s"))
        const follower = yield* bus.subscribe(unreadable.run.id)
        const ended = yield* b.manager.stop(alice, unreadable.run.id)
        expect(ended).toMatchObject({ status: "stopped", failure: expect.stringMatching(new RegExp(`^stopped by alice: held by no live process, and this server cannot resume it: ${CORRUPT}`)) })
        expect(yield* controlLog(unreadable.run.id)).toEqual([{
          kind: "stop",
          action: "stop",
          run: unreadable.run.id,
          by: { id: "alice", name: "alice" },
          at: expect.any(String),
          reason: expect.stringMatching(new RegExp(`^held by no live process, and this server cannot resume it: ${CORRUPT}`))
        }])
        let told = false
        for (let i = 0; i < 20 && !told; i++) told = (yield* follower.takeAllWithin(100)).some((d) => d._tag === "Ended")
        expect(told).toBe(true)
        expect(yield* b.manager.notResumable(unreadable.run.id, "stopped")).toBeUndefined()
        expect(yield* Effect.flip(b.manager.stop(alice, unreadable.run.id))).toMatchObject({ _tag: "Conflict", reason: `run ${unreadable.run.id} is stopped` })
        // Its strategy put back (from a backup): its chains hold, the stop among them.
        yield* sql`update runs set strategy = ${JSON.stringify(strategy!.strategy)} where id = ${unreadable.run.id}`
        expect(yield* Audit.verifyRun(unreadable.run.id)).toMatchObject({ ok: true, control: 1 })
      }), { timeout: 60_000 })
  })
}

describe("StoredRun.lastingFailure: what a retry cannot mend", () => {
  const fail = (error: unknown) => Cause.fail(error)
  plain("a run's data gone or changed, a record that does not decode, a strategy this build cannot make", () => {
    const data = new DataSource.DataChanged({ reason: "ENOENT" })
    const corrupt = new CorruptRecord({ table: "run_events", key: "run_x#3", column: "body", reason: "bad" })
    const unbuildable = new StoredRun.NotReexecutable({ run: "run_x", ref: "x#1", agent: "a", field: "agents[0].type", reason: "unknown" })
    for (const error of [data, corrupt, unbuildable]) expect(StoredRun.lastingFailure(fail(error))).toBe(error)
  })
  plain("not the database failing, the lease held by another process, an interruption or a defect", () => {
    expect(StoredRun.lastingFailure(fail(new StoreError({ operation: "read a run", reason: "connection lost" })))).toBeUndefined()
    expect(StoredRun.lastingFailure(fail(new Runs.RunLeased({ run: "run_x" })))).toBeUndefined()
    expect(StoredRun.lastingFailure(Cause.interrupt("fiber" as never))).toBeUndefined()
    expect(StoredRun.lastingFailure(Cause.die(new Error("bug")))).toBeUndefined()
  })
})

for (const backend of backends) {
  // The RPC procedures of a server whose build lacks the type, as a client calls them.
  const served = Layer.mergeAll(RunHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(Layer.mergeAll(RunManager.layerWith({ registry: withoutSma }), RunEvents.layer)),
    Layer.provideMerge(Layer.mergeAll(InProcessBus.layerTest(), stubAuthenticator, Layer.effectDiscard(Effect.orDie(createUsers)))),
    Layer.provideMerge(backend.store)
  )
  const clientFor = (key: string) => Effect.provide(RpcTest.makeClient(RunRpcs, { flatten: true }), clientKey(key))
  layer(served, { timeout: startTimeout, excludeTestServices: true })(`a run no server can resume, over RPC (${backend.name})`, (it) => {
    it.scoped("runs.get and runs.report say why it is stuck; runs.stop ends it, and not for someone else", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const run = yield* paperRunUnderWay(bus, a.manager, "type gone, over RPC")
        yield* a.shutdown
        const alice = yield* clientFor("sk_alice")
        const bob = yield* clientFor("sk_bob")
        const got = yield* alice("runs.get", { run: run.id })
        expect(got).toMatchObject({ status: "running", notResumable: expect.stringMatching(new RegExp(`^${WHY}$`)) })
        expect((yield* alice("runs.report", { run: run.id })).notResumable).toEqual(got.notResumable)
        // runs.list says it of the run too, as runs.get does (before, nothing: `runs list` had no mark).
        const listed = (yield* alice("runs.list", {})).find((r) => r.id === run.id)
        expect(listed?.notResumable).toEqual(got.notResumable)
        expect(yield* Effect.flip(bob("runs.stop", { run: run.id }))).toMatchObject({ _tag: "RunNotFound", run: run.id })
        expect(yield* Effect.flip(bob("runs.get", { run: run.id }))).toMatchObject({ _tag: "RunNotFound" })
        const stopped = yield* alice("runs.stop", { run: run.id })
        expect(stopped).toMatchObject({ status: "stopped", failure: expect.stringMatching(/^stopped by alice: held by no live process/) })
        const after = yield* alice("runs.get", { run: run.id })
        expect(after.status).toBe("stopped")
        expect(after.notResumable).toBeUndefined()
        expect((yield* alice("runs.list", {})).find((r) => r.id === run.id)).not.toHaveProperty("notResumable")
        expect(after.control).toMatchObject({ count: 1, last: [{ action: "stop", by: { name: "alice" }, reason: expect.stringContaining("this server cannot resume it") }] })
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
      }), { timeout: 60_000 })

    it.scoped("runs.stop with a reason: the operator's reason is recorded and shown beside the server's, in the row and the control log", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const run = yield* paperRunUnderWay(bus, a.manager, "type gone, stopped with a reason")
        yield* a.shutdown
        const alice = yield* clientFor("sk_alice")
        const stopped = yield* alice("runs.stop", { run: run.id, reason: "retiring the sma analyst" })
        // As a live run's stop says it (`stopped by alice: <reason>`), then why no agents were there to stop.
        // Before, the server's reason alone: the operator's was dropped.
        const both = `retiring the sma analyst; held by no live process, and this server cannot resume it: ${WHY}`
        expect(stopped).toMatchObject({ status: "stopped", failure: expect.stringMatching(new RegExp(`^stopped by alice: ${both}$`)) })
        const after = yield* alice("runs.get", { run: run.id })
        expect(after.failure).toEqual(stopped.failure)
        expect(after.control).toMatchObject({ count: 1, last: [{ action: "stop", by: { name: "alice" }, reason: expect.stringMatching(new RegExp(`^${both}$`)) }] })
        expect((yield* alice("runs.report", { run: run.id })).failure).toEqual(stopped.failure)
        expect(yield* controlLog(run.id)).toEqual([{
          kind: "stop",
          action: "stop",
          run: run.id,
          by: { id: "alice", name: "alice" },
          at: expect.any(String),
          reason: expect.stringMatching(new RegExp(`^${both}$`))
        }])
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
      }), { timeout: 60_000 })
  })
}

for (const backend of backends) {
  // The RPC procedures of a server with every analyst type, as a client calls them.
  const served = Layer.mergeAll(RunHandlers, ApprovalHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(Layer.mergeAll(RunManager.layer, RunEvents.layer)),
    Layer.provideMerge(Layer.mergeAll(InProcessBus.layerTest(), stubAuthenticator, Layer.effectDiscard(Effect.orDie(createUsers)))),
    Layer.provideMerge(backend.store)
  )
  const clientFor = (key: string) => Effect.provide(RpcTest.makeClient(RunRpcs, { flatten: true }), clientKey(key))
  const approvalsFor = (key: string) => Effect.provide(RpcTest.makeClient(ApprovalRpcs, { flatten: true }), clientKey(key))
  layer(served, { timeout: startTimeout, excludeTestServices: true })(`a run whose data is gone, over RPC (${backend.name})`, (it) => {
    it.scoped("runs.get and runs.report say why once the server tried it; runs.stop ends it, and not for someone else", () =>
      Effect.gen(function*() {
        const { dir, run } = yield* paperRunOnCsv("csv gone, over RPC")
        rmSync(dir, { recursive: true, force: true })
        const alice = yield* clientFor("sk_alice")
        const bob = yield* clientFor("sk_bob")
        // Nothing learnt yet (the data is not read for the asking): nothing said.
        expect((yield* alice("runs.get", { run: run.id })).notResumable).toBeUndefined()
        const manager = yield* RunManager.RunManager
        expect((yield* manager.resumeUnfinished()).filter((o) => o.run === run.id)).toMatchObject([{ outcome: "failed" }])
        const got = yield* alice("runs.get", { run: run.id })
        expect(got).toMatchObject({ status: "running", notResumable: expect.stringMatching(new RegExp(`^${DATA_GONE}$`)) })
        expect((yield* alice("runs.report", { run: run.id })).notResumable).toEqual(got.notResumable)
        expect(yield* Effect.flip(bob("runs.stop", { run: run.id }))).toMatchObject({ _tag: "RunNotFound", run: run.id })
        const stopped = yield* alice("runs.stop", { run: run.id })
        expect(stopped).toMatchObject({ status: "stopped", failure: expect.stringMatching(/^stopped by alice: held by no live process, and this server cannot resume it: the run's data/) })
        const after = yield* alice("runs.get", { run: run.id })
        expect(after.notResumable).toBeUndefined()
        expect(after.control).toMatchObject({ count: 1, last: [{ action: "stop", by: { name: "alice" }, reason: expect.stringContaining("the run's data cannot be read as it was") }] })
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
      }), { timeout: 60_000 })

    it.scoped("a run whose strategy does not decode: runs.get says so; runs.stop ends it, and not for someone else", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { run } = yield* paperRunOnCsv("strategy corrupt, over RPC")
        yield* sql`update runs set strategy = ${'{"bogus":true}'} where id = ${run.id}`
        const alice = yield* clientFor("sk_alice")
        const bob = yield* clientFor("sk_bob")
        const CORRUPT = String.raw`^its record cannot be read: runs ${run.id}: strategy does not decode: `
        // Before, runs.get failed whole (Unavailable: "strategy does not decode").
        expect(yield* alice("runs.get", { run: run.id })).toMatchObject({ status: "running", notResumable: expect.stringMatching(new RegExp(CORRUPT)) })
        const missing = yield* Effect.flip(bob("runs.stop", { run: "run_0000000000000000000000000" }))
        const others = yield* Effect.flip(bob("runs.stop", { run: run.id }))
        expect(others).toMatchObject({ _tag: "RunNotFound", run: run.id })
        expect(Object.keys(others).sort()).toEqual(Object.keys(missing).sort())
        // Its approvals: why nothing of it can be answered, typed and in one line (before, Unavailable
        // with the parse tree: "cannot do it now", as if asking again could help); someone else's is no run.
        const approvals = yield* approvalsFor("sk_alice")
        const unreadable = { _tag: "RunUnreadable", run: run.id, reason: expect.stringMatching(new RegExp(`${CORRUPT}bogus: is not a known field here \\(known: name, `)) }
        const asked = [
          yield* Effect.flip(approvals("approvals.pending", { run: run.id })),
          yield* Effect.flip(approvals("approvals.approve", { run: run.id, round: "r-1" })),
          yield* Effect.flip(approvals("approvals.reject", { run: run.id, round: "r-1", reason: "no" }))
        ]
        expect(asked).toEqual([unreadable, unreadable, unreadable].map((e) => expect.objectContaining(e)))
        for (const error of asked) expect((error as { reason: string }).reason).not.toContain("\n")
        expect(yield* Effect.flip((yield* approvalsFor("sk_bob"))("approvals.pending", { run: run.id }))).toMatchObject({ _tag: "RunNotFound", run: run.id })
        // Before, Unavailable: the stop read its row whole.
        const stopped = yield* alice("runs.stop", { run: run.id })
        expect(stopped).toMatchObject({ status: "stopped", failure: expect.stringMatching(/^stopped by alice: held by no live process, and this server cannot resume it: its record cannot be read: /) })
        // One line naming the field and why (before, Effect's parse tree, a dozen indented lines).
        expect(stopped.failure).toBe(
          `stopped by alice: held by no live process, and this server cannot resume it: its record cannot be read: runs ${run.id}: strategy does not decode: ` +
            "bogus: is not a known field here (known: name, description, symbols, initialCash, allowShort, agents, consensus, sizing, execution, risk, rules, metrics, llm)"
        )
        const after = yield* alice("runs.get", { run: run.id })
        expect(after.notResumable).toBeUndefined()
        expect(after.control).toMatchObject({ count: 1, last: [{ action: "stop", by: { name: "alice" }, reason: expect.stringContaining("strategy does not decode") }] })
      }), { timeout: 60_000 })
  })
}

const postgres = backends.find((backend) => backend.name === "postgres")

describe.skipIf(postgres === undefined)("a run no server can resume, among servers on one Postgres", () => {
  // A skipped suite is still collected.
  if (postgres === undefined) return
  const environment = Layer.mergeAll(InProcessBus.layerTest(), Layer.effectDiscard(Effect.orDie(createUsers))).pipe(
    Layer.provideMerge(postgres.store)
  )
  layer(environment, { timeout: startTimeout, excludeTestServices: true })("servers", (it) => {
    it.scoped("the takeover says it once and does not try it again; the stop then ends it", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const run = yield* paperRunUnderWay(bus, a.manager, "type gone, taken over")
        yield* a.shutdown
        const b = yield* serverOn(bus, { registry: withoutSma, takeover: { every: Duration.millis(100), grace: Duration.zero } })
        // Its looks come every 100 ms: many in two seconds.
        for (let i = 0; i < 40 && !b.logged.some((line) => line.includes(run.id)); i++) yield* Effect.sleep("100 millis")
        yield* Effect.sleep("1500 millis")
        expect(b.logged).toEqual([expect.stringMatching(new RegExp(`^WARN could not take over run ${run.id} \\(type gone, taken over#1\\): ${WHY}; not tried again`))])
        expect(b.manager.live()).toBe(0)
        // Its start-up tried it: its looks do not (before, the first look after it tried again).
        const c = yield* serverOn(bus, { registry: withoutSma })
        expect(yield* c.manager.resumeUnfinished()).toMatchObject([{ run: run.id, outcome: "failed" }])
        expect(yield* c.manager.takeOver()).toEqual([])
        expect(yield* c.manager.takeOver()).toEqual([])
        expect(c.logged).toEqual([])
        yield* c.shutdown

        expect((yield* b.manager.stop(alice, run.id)).status).toBe("stopped")
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
        const lines = b.logged.length
        yield* Effect.sleep("500 millis")
        expect(b.logged.slice(lines).filter((line) => line.includes("take over"))).toEqual([])
      }), { timeout: 60_000 })

    it.scoped("a takeover of a run whose CSV was deleted says why and that runs stop ends it, once; the stop then ends it", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const { dir, run } = yield* paperRunOnCsv("csv gone, taken over")
        rmSync(dir, { recursive: true, force: true })
        const b = yield* serverOn(bus, { takeover: { every: Duration.millis(100), grace: Duration.zero } })
        const said = () => b.logged.filter((line) => line.includes("take over") && line.includes(run.id))
        for (let i = 0; i < 40 && said().length === 0; i++) yield* Effect.sleep("100 millis")
        yield* Effect.sleep("1500 millis")
        // Tried again only every 5 minutes (its file may come back), and said once per reason.
        expect(said()).toEqual([expect.stringMatching(new RegExp(
          String.raw`^WARN could not take over run ${run.id} \(csv gone, taken over#1\): ${DATA_GONE} ` +
            String.raw`\(once its data reads as the run read it, the next start or takeover look resumes it, or \x60swarm runs stop ${run.id}\x60 ends it\)$`
        ))])
        expect(b.manager.live()).toBe(0)
        expect(yield* b.manager.notResumable(run.id, "running")).toMatch(new RegExp(`^${DATA_GONE}$`))
        const stopped = yield* b.manager.stop(alice, run.id)
        expect(stopped.status).toBe("stopped")
        expect(stopped.failure).toMatch(new RegExp(`^stopped by alice: held by no live process, and this server cannot resume it: ${DATA_GONE}$`))
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
      }), { timeout: 60_000 })

    it.scoped("a run whose data is gone: its failed takeovers are said once, without a stack; a different failure is said again", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const { copy, dir, run } = yield* paperRunOnCsv("csv gone, tried again")
        rmSync(dir, { recursive: true, force: true })
        // Tried again every 300 ms rather than every 5 minutes: many attempts in a few seconds.
        const b = yield* serverOn(bus, { takeover: { every: Duration.millis(100), grace: Duration.zero, retry: Duration.millis(300) } })
        const ours = () => b.logged.filter((line) => line.includes(run.id) || line.includes("a run failed"))
        for (let i = 0; i < 40 && ours().length === 0; i++) yield* Effect.sleep("100 millis")
        yield* Effect.sleep("2500 millis")
        // Before, every attempt also logged "a run failed" with the failure's stack trace.
        expect(ours()).toEqual([expect.stringMatching(new RegExp(String.raw`^WARN could not take over run ${run.id} \(csv gone, tried again#1\): ${DATA_GONE} \(`))])
        // (Not `live()`: an attempt, every 300 ms, holds its entry for the moment it takes to fail.)
        expect((yield* Runs.get(run.id)).status).toBe("running")

        // Its files back, but one of them changed: a different failure, said once too.
        copy()
        const file = Path.join(dir, readdirSync(dir).filter((f) => f.endsWith(".csv"))[0]!)
        appendFileSync(file, readFileSync(file, "utf8").trimEnd().split("\n").at(-1)!.replace(/^\S+?,/, "2100-01-01,") + "\n")
        for (let i = 0; i < 40 && ours().length === 1; i++) yield* Effect.sleep("100 millis")
        yield* Effect.sleep("1500 millis")
        const lines = ours()
        expect(lines).toHaveLength(2)
        expect(lines[1]).toMatch(new RegExp(`^WARN could not take over run ${run.id} .*: the run's data cannot be read as it was: `))
        expect(lines[1]).not.toEqual(lines[0])
        expect((yield* b.manager.stop(alice, run.id)).status).toBe("stopped")
      }), { timeout: 60_000 })

    it.scoped("a run whose data is gone, said by start-up: its takeover looks after do not say it again", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const { dir, run } = yield* paperRunOnCsv("csv gone, said at start-up")
        rmSync(dir, { recursive: true, force: true })
        const b = yield* serverOn(bus, { takeover: { every: Duration.millis(100), grace: Duration.zero, retry: Duration.millis(300) } })
        expect((yield* b.manager.resumeUnfinished()).filter((o) => o.run === run.id)).toMatchObject([{ outcome: "failed" }])
        yield* Effect.sleep("2500 millis")
        // Before, the first look after start-up said it again.
        expect(b.logged.filter((line) => line.includes(run.id) || line.includes("a run failed"))).toEqual([])
        expect((yield* b.manager.stop(alice, run.id)).status).toBe("stopped")
      }), { timeout: 60_000 })

    it.scoped("a run another live server holds is stopped there (relayed), by a server that cannot make its agents", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const run = yield* paperRunUnderWay(bus, a.manager, "held, type elsewhere")
        const b = yield* serverOn(bus, { registry: withoutSma })
        const stopped = yield* b.manager.stop(alice, run.id)
        expect(stopped.status).toBe("stopped")
        // Stopped by its holder, as any stop: no word of resuming.
        expect(stopped.failure).toBe("stopped by alice")
        expect(a.manager.live()).toBe(0)
        expect(yield* controlLog(run.id)).toEqual([{ kind: "stop", action: "stop", run: run.id, by: { id: "alice", name: "alice" }, at: expect.any(String) }])
        expect(yield* Audit.verifyRun(run.id)).toMatchObject({ ok: true, control: 1 })
      }), { timeout: 60_000 })
  })
})
