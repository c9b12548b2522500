/**
 * Runs as the user names them: numbered 1, 2, 3… per strategy even when started together, found by
 * id or `<strategy>#<number>` only by their owner (anyone else, and any malformed or hostile
 * reference, gets the same `RunNotFound`), and a row edited into nonsense is a `CorruptRecord`
 * naming the column — never a defect. On every back-end (see fixtures/backends.ts).
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Layer, Option } from "effect"
import Pg from "pg"
import type { RunId } from "../../schemas/Ids.js"
import * as DataSource from "../../src/market/DataSource.js"
import * as Audit from "../../src/store/Audit.js"
import * as Database from "../../src/store/Database.js"
import { migrate } from "../../src/store/Migrations.js"
import * as RunRecorder from "../../src/store/RunRecorder.js"
import { PgPool } from "../../src/store/Pool.js"
import * as Runs from "../../src/store/Runs.js"
import { LEASE_PREFIX, type Session, SESSION } from "../../src/store/Lease.js"
import * as Strategies from "../../src/store/Strategies.js"
import { RunNotFound } from "../../src/store/StoreError.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Users from "../../src/store/Users.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { failure } from "./fixtures/checks.js"
import { serverUrl } from "./fresh.js"
import { marketConfig, stored, strategy } from "./fixtures/workload.js"

const bindIfFunction = (target: object, value: unknown) => typeof value === "function" ? value.bind(target) : value

const count = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`select count(*)::int as n from ${sql(table)}`).pipe(
    Effect.map((rows) => rows[0]!.n)
  )

/** A `running` backtest row of `strategy` on the synthetic market `config`, not executed. */
const newRun = (
  owner: string,
  saved: Strategies.SavedVersion,
  strategy: Runs.NewRun["strategy"],
  config: Parameters<typeof DataSource.synthetic>[0],
  dataFingerprint: string
) =>
  Runs.create({
    owner,
    strategyId: saved.strategyId,
    strategyVersion: saved.version,
    strategy,
    mode: "backtest",
    seed: "0",
    dataSource: DataSource.encode(DataSource.synthetic(config)),
    dataFingerprint,
    eventDetail: "decisions"
  })

/** A `running` row of a one-symbol strategy named `name` (10 synthetic bars), not executed: for a recorder of its own. */
const unexecutedRun = (name: string) =>
  Effect.gen(function*() {
    const owner = yield* Users.ensureLocal()
    const s = strategy(1, name)
    const saved = yield* Strategies.saveVersion(owner, s)
    return yield* newRun(owner, saved, s, marketConfig(1, 10), "fp")
  })

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`runs (${backend.name})`, (it) => {
    it.effect("a backtest of a symbol its data lacks records nothing: no strategy version, no run (the server starts runs this way)", () =>
      Effect.gen(function*() {
        const runs = yield* count("runs")
        const versions = yield* count("strategy_versions")
        const options = stored(2, 10, { name: "lacks a symbol" })
        const error = yield* Effect.flip(StoredRun.backtest({ ...options, strategy: { ...options.strategy, symbols: [...options.strategy.symbols, "ZZZ" as never] } }))
        expect(error).toMatchObject({ _tag: "BacktestError", field: "symbols", reason: "no data for ZZZ (the data has S0, S1)" })
        expect(yield* count("runs")).toBe(runs)
        expect(yield* count("strategy_versions")).toBe(versions)
      }))

    it.effect("a strategy's stored body changed by another writer is read as it is now: its new content, or CorruptRecord", () =>
      Effect.gen(function*() {
        const owner = yield* Users.ensureLocal()
        const saved = yield* Strategies.saveVersion(owner, strategy(1, "edited elsewhere"))
        const sql = yield* SqlClient.SqlClient
        // Read twice, as a server's reads keep it; then its body changed by another process.
        expect((yield* Strategies.find(owner, "edited elsewhere")).strategy.name).toBe("edited elsewhere")
        expect((yield* Strategies.find(owner, "edited elsewhere")).strategy.name).toBe("edited elsewhere")
        yield* sql`update strategy_versions set body = jsonb_set(body, '{name}', '"renamed by hand"')
          where strategy_id = ${saved.strategyId} and version = ${saved.version}`
        expect((yield* Strategies.find(owner, "edited elsewhere")).strategy.name).toBe("renamed by hand")
        yield* sql`update strategy_versions set body = jsonb_set(body, '{symbols}', '5')
          where strategy_id = ${saved.strategyId} and version = ${saved.version}`
        expect(yield* failure(Strategies.find(owner, "edited elsewhere"))).toMatchObject({
          _tag: "CorruptRecord",
          table: "strategy_versions",
          key: `${saved.strategyId}@${saved.version}`,
          column: "body"
        })
      }))

    it.effect("a strategy with unfinished runs is not deleted: the refusal names a few of them by <strategy>#<n> and id, and counts the rest", () =>
      Effect.gen(function*() {
        const owner = yield* Users.ensureLocal()
        const s = strategy(1, "busy deleting")
        const saved = yield* Strategies.saveVersion(owner, s)
        const first = yield* newRun(owner, saved, s, marketConfig(1, 10), "fp")
        const one = yield* Effect.flip(Strategies.remove(owner, "busy deleting"))
        expect(one).toMatchObject({ _tag: "Conflict", reason: `strategy busy deleting has an unfinished run, busy deleting#1 (${first.id}): stop it first (runs.stop)` })
        const more = [first]
        for (let i = 0; i < 4; i++) more.push(yield* newRun(owner, saved, s, marketConfig(1, 10), "fp"))
        const five = yield* Effect.flip(Strategies.remove(owner, saved.strategyId))
        expect(five).toMatchObject({
          _tag: "Conflict",
          reason: `strategy busy deleting has 5 unfinished runs, ${more.slice(0, 3).map((r, i) => `busy deleting#${i + 1} (${r.id})`).join(", ")} and 2 more: stop them first (runs.stop)`
        })
        const sql = yield* SqlClient.SqlClient
        yield* sql`update runs set status = 'stopped' where strategy_id = ${saved.strategyId}`
        yield* Strategies.remove(owner, "busy deleting")
      }))

    it.effect("concurrent starts of one strategy get the numbers 1..N, each once", () =>
      Effect.gen(function*() {
        const owner = yield* Users.ensureLocal()
        const s = strategy(2, "numbered concurrently")
        const saved = yield* Strategies.saveVersion(owner, s)
        const config = marketConfig(2, 10)
        const N = 24
        // On Postgres these spread over the pool's connections (8) and contend for the strategy row.
        const created = yield* Effect.all(
          Array.from({ length: N }, () =>
            newRun(owner, saved, s, config, "fp")),
          { concurrency: "unbounded" }
        )
        expect(created.map((c) => c.number).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i + 1))
        expect(new Set(created.map((c) => c.id)).size).toBe(N)
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ id: string; number: number }>`
          select id, number from runs where strategy_id = ${saved.strategyId} order by number`
        expect(rows.map((r) => r.number)).toEqual(Array.from({ length: N }, (_, i) => i + 1))
        expect(new Set(rows.map((r) => r.id))).toEqual(new Set(created.map((c) => c.id)))
        // Each is found by `<name>#<number>` as the list shows it.
        for (const c of created) expect((yield* Runs.get(`${s.name}#${c.number}`)).id).toBe(c.id)
      }))

    it.effect("concurrent stored backtests of one strategy: distinct numbers, one version, each run whole", () =>
      Effect.gen(function*() {
        const runs = yield* Effect.all(
          [1, 2, 3].map((i) => StoredRun.backtest(stored(3, 80, { name: "three at once", seed: String(i) }))),
          { concurrency: "unbounded" }
        )
        expect(runs.map((r) => r.number).sort()).toEqual([1, 2, 3])
        expect(new Set(runs.map((r) => r.strategyId)).size).toBe(1)
        expect(runs.map((r) => r.strategyVersion)).toEqual([1, 1, 1])
        for (const r of runs) {
          const report = yield* Audit.verifyRun(r.run)
          expect(report).toMatchObject({ ok: true, entries: r.result.counts.events })
          expect((yield* Runs.get(r.run)).status).toBe("completed")
        }
      }))

    it.effect.each([
      ["at its end", 200],
      ["mid-way", 4_000]
    ] as const)("a run whose recording fails %s ends failed, saying why (not running in no process)", ([, bars]) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // The database refuses the run's events past the 40th (as it refused a reason with U+0000).
        yield* sql`create or replace function refuse_late_events() returns trigger language plpgsql as $$
          begin
            if new.seq > 40 then raise exception 'refused by the test'; end if;
            return new;
          end $$`
        yield* sql`create trigger refuse_late_events before insert on run_events for each row execute function refuse_late_events()`
        let run: string | undefined
        const error = yield* failure(
          StoredRun.backtest(stored(2, bars, { name: `recording refused ${bars}`, onCreated: (c) => (run = c.id) }))
        ).pipe(Effect.ensuring(Effect.ignore(sql`drop trigger refuse_late_events on run_events`)))
        expect(error.message).toContain("refused by the test")
        const row = yield* Runs.get(run!)
        expect(row.status).toBe("failed")
        expect(row.failure).toContain("refused by the test")
        expect(row.failure).not.toMatch(/\n\s+at /)
      }))

    it.scoped("connections killed under a recording run, then the database refusing connections for half the lease's grace: no crash; the run completes and verifies", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const sql = yield* SqlClient.SqlClient
        const database = (yield* sql<{ database: string }>`select current_database() as database`)[0]!.database
        // An administrator's session of its own, on another database: what kills and refuses.
        const admin = new Pg.Client({ connectionString: serverUrl })
        yield* Effect.acquireRelease(Effect.promise(() => admin.connect()), () => Effect.promise(() => admin.end()))
        const kill = Effect.promise(() =>
          admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [database])
        )
        const allow = (on: boolean) => Effect.promise(() => admin.query(`alter database "${database}" allow_connections ${on}`))
        // The server's process: an 'error' of a connection nobody listens to would be thrown here.
        const uncaught: Array<unknown> = []
        const hear = (error: unknown) => void uncaught.push(error)
        process.on("uncaughtException", hear)
        yield* Effect.addFinalizer(() => Effect.sync(() => process.off("uncaughtException", hear)))
        let run: string | undefined
        // Recording (its lease and row made, a batch committed) before the connections go: 300 ms
        // were not always enough on a loaded machine, and a row not yet made is no run to complete.
        const recording = yield* Deferred.make<void>()
        const running = yield* Effect.fork(StoredRun.backtest(stored(2, 20_000, {
          name: "connections killed",
          onCreated: (c) => (run = c.id),
          onCommitted: () => Deferred.unsafeDone(recording, Exit.void)
        })))
        yield* Deferred.await(recording)
        for (let i = 0; i < 4; i++) {
          yield* kill
          yield* Effect.sleep("150 millis")
        }
        // Its lease taken again (a session holds its lock) before the outage: the outage's grace
        // then runs from the kill below. Before, it could run from one of the kills above — a
        // retake under way when the next kill came (a loaded machine) — and the last second of it
        // was the only margin left.
        const leased = Effect.promise(() =>
          admin.query(`select exists (select 1 from pg_locks where locktype = 'advisory' and granted and objsubid = 1
            and classid::bigint = (hashtextextended($1, 0) >> 32) & 4294967295 and objid::bigint = hashtextextended($1, 0) & 4294967295) as held`,
            [`${LEASE_PREFIX}${run}`])
        ).pipe(Effect.map((result) => result.rows[0].held === true))
        let held = false
        for (let i = 0; i < 400 && !(held = yield* leased); i++) yield* Effect.sleep("25 millis")
        expect(held).toBe(true)
        // Refused for half the grace: its attempts, a second apart, fail twice or three times, and
        // the first after the refusal ends (within a second and an attempt of it) has the other
        // half, 2.5 s, to connect and lock — where a 3 s refusal left it under a second at worst.
        yield* allow(false).pipe(
          Effect.zipRight(kill),
          Effect.zipRight(Effect.sleep(Duration.times(Runs.LEASE_GRACE, 0.5))),
          Effect.ensuring(allow(true))
        )
        const result = yield* Fiber.join(running)
        expect(uncaught.map(String)).toEqual([])
        expect(result.result.status).toBe("completed")
        const row = yield* Runs.get(run!)
        expect([row.status, row.failure]).toEqual(["completed", null])
        expect((yield* Audit.verifyRun(run!)).ok).toBe(true)
      }), { timeout: 120_000 })

    it.scoped("a run whose lease cannot be taken again within the grace (the database refusing connections) stops there, writing nothing more", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const sql = yield* SqlClient.SqlClient
        const database = (yield* sql<{ database: string }>`select current_database() as database`)[0]!.database
        const admin = new Pg.Client({ connectionString: serverUrl })
        yield* Effect.acquireRelease(Effect.promise(() => admin.connect()), () => Effect.promise(() => admin.end()))
        const kill = Effect.promise(() =>
          admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [database])
        )
        const allow = (on: boolean) => Effect.promise(() => admin.query(`alter database "${database}" allow_connections ${on}`))
        let run: string | undefined
        // Recording before the database goes away: 300 ms were not always enough on a loaded
        // machine — the outage came while its row was being written, and it failed there instead.
        const recording = yield* Deferred.make<void>()
        const running = yield* Effect.fork(StoredRun.backtest(stored(2, 200_000, {
          name: "lease not renewed",
          onCreated: (c) => (run = c.id),
          onCommitted: () => Deferred.unsafeDone(recording, Exit.void)
        })))
        yield* Deferred.await(recording)
        // Away for longer than the grace: from then on another server may take the run over, so this
        // one stops executing it. Before, it went on (and wrote its row) once the database came back.
        const exit = yield* allow(false).pipe(
          Effect.zipRight(kill),
          Effect.zipRight(Effect.timeout(Fiber.await(running), Duration.sum(Runs.LEASE_GRACE, Duration.seconds(5)))),
          Effect.ensuring(allow(true))
        )
        expect(Exit.isExit(exit) && Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(Option.some(new Runs.RunLeased({ run: run! })))
        // Its row is left for whoever takes it over: still running, no end written.
        const row = yield* Runs.get(run!)
        expect([row.status, row.failure]).toEqual(["running", null])
      }), { timeout: 120_000 })

    it.effect("a run leased by a live process is left alone by resume; once the lease goes, it resumes", () =>
      Effect.gen(function*() {
        const owner = yield* Users.ensureLocal()
        const s = strategy(2, "leased")
        const saved = yield* Strategies.saveVersion(owner, s)
        const config = marketConfig(2, 60)
        const created = yield* newRun(owner, saved, s, config, (yield* DataSource.open(DataSource.synthetic(config))).fingerprint)
        if (backend.name === "postgres") {
          // Another process's lease, as a live run holds it: a session lock on a connection of its own.
          const outcome = yield* Effect.scoped(Effect.zipRight(Runs.lease(created.id), Effect.either(StoredRun.resume(created.id))))
          expect(outcome._tag).toBe("Left")
          expect(outcome._tag === "Left" && outcome.left._tag).toBe("RunLeased")
          const all = yield* Effect.scoped(Effect.zipRight(Runs.lease(created.id), StoredRun.resumeAll()))
          expect(all.map((r) => r.run)).not.toContain(created.id)
          expect((yield* Runs.get(created.id)).status).toBe("running")
        }
        // The embedded database serves one process: there is no other to exclude, the lease is a no-op.
        const resumed = yield* StoredRun.resume(created.id)
        expect(resumed.result.status).toBe("completed")
        expect((yield* Runs.get(created.id)).status).toBe("completed")
      }))

    it.effect("a lease whose connection the database ends is taken again on a new one; the process stays up", () =>
      Effect.gen(function*() {
        // The embedded database has no lease (one process): nothing to lose.
        if (backend.name !== "postgres") return
        const owner = yield* Users.ensureLocal()
        const s = strategy(2, "lease lost")
        const saved = yield* Strategies.saveVersion(owner, s)
        const config = marketConfig(2, 60)
        const created = yield* newRun(owner, saved, s, config, (yield* DataSource.open(DataSource.synthetic(config))).fingerprint)
        const sql = yield* SqlClient.SqlClient
        const holders = sql<{ pid: number }>`
          select pid from pg_locks
          where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`
        const wait = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Runs.lease(created.id)
          const [first] = yield* holders
          expect(first).toBeDefined()
          // As an administrator, a restart or an idle killer ends it: its 'error' reached no listener and ended the process.
          yield* sql`select pg_terminate_backend(${first!.pid})`
          let again: number | undefined
          for (let i = 0; i < 500 && again === undefined; i++) {
            const now = yield* holders
            if (now.length === 1 && now[0]!.pid !== first!.pid) again = now[0]!.pid
            else yield* wait
          }
          expect(again).toBeDefined()
          // Held again: another process's lease of the run is refused.
          const other = yield* Effect.either(Effect.scoped(Runs.lease(created.id)))
          expect(other._tag === "Left" && other.left._tag).toBe("RunLeased")
        }))
        // Released with the scope.
        expect(yield* holders).toEqual([])
      }))

    it.scoped("a lease lost to another process while its connection was closed: the run's end and its batches are refused, nothing written", () =>
      Effect.gen(function*() {
        // The embedded database has no lease (one process): nothing to lose.
        if (backend.name !== "postgres") return
        const created = yield* unexecutedRun("split brain")
        const { pool } = yield* PgPool
        const sql = yield* SqlClient.SqlClient
        const lease = (yield* Runs.lease(created.id))!
        const first = lease.backend()
        expect(first).toBeDefined()
        // Another process waits for the run's lease (a server taking it over), and has it the moment
        // this process's connection to the database is gone — before this one can take it again.
        const other = yield* Effect.acquireRelease(Effect.promise(() => pool.connect()), (client) => Effect.sync(() => client.release(true)))
        const taken = other.query("select pg_advisory_lock(hashtextextended($1, 0))", [`swarm-run:${created.id}`])
        yield* Effect.sleep("200 millis")
        yield* sql`select pg_terminate_backend(${first!.pid})`
        yield* Effect.promise(() => taken)
        for (let i = 0; i < 500 && lease.lost() === undefined; i++) yield* Effect.sleep("10 millis")
        expect(lease.lost()).toBe("another process has taken it since")
        expect(lease.backend()).toBeUndefined()
        // Before, the end of its run was written all the same (`failed`: "cannot record run …"),
        // while the other process went on with it, and its chain past the count that row recorded.
        const ended = yield* failure(Runs.markEndedLeased(lease, created.id, "failed", "the database went away"))
        expect(ended).toMatchObject({ _tag: "LeaseNotHeld", run: created.id, retaking: false })
        expect((yield* Runs.get(created.id)).status).toBe("running")
        // Nor does its recorder commit anything more.
        const recorder = yield* RunRecorder.make(created.id, { lease })
        const event = { _tag: "ReasoningRecorded", run: created.id, seq: 1, at: 0, agent: "a", round: "r", kind: "plan", role: "analyst", text: "late" }
        recorder.sink(event as never, JSON.stringify(event))
        const refused = yield* Effect.flip(recorder.flush.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the flush never ended" })))
        expect(refused).toMatchObject({ _tag: "StoreError", reason: `this process no longer holds run ${created.id}'s lease (another process has taken it since): it writes nothing more to it` })
        expect(yield* sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${created.id}`).toEqual([{ n: 0 }])
      }), { timeout: 60_000 })

    it.scoped("a lease whose session no longer holds its lock (killed unseen): the run's end is refused, nothing written", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const created = yield* unexecutedRun("unseen loss")
        const sql = yield* SqlClient.SqlClient
        // A session that holds no lock of the run: as a lease whose connection the database ended
        // while this process has not heard yet (a half-open connection).
        const pid = (yield* sql<{ pid: number }>`select pg_backend_pid() as pid`)[0]!.pid
        const lease = { run: created.id, backend: () => ({ pid: pid + 1_000_000, started: "2026-01-01T00:00:00.000000Z" }), lost: () => undefined }
        const ended = yield* failure(Runs.markEndedLeased(lease, created.id, "stopped", "a stop"))
        expect(ended).toMatchObject({ _tag: "LeaseNotHeld", reason: "its database session no longer holds it", retaking: false })
        expect((yield* Runs.get(created.id)).status).toBe("running")
        // Its own lease, held: the end is written.
        const held = (yield* Runs.lease(created.id))!
        yield* Runs.markEndedLeased(held, created.id, "stopped", "a stop")
        expect((yield* Runs.get(created.id)).status).toBe("stopped")
      }))

    it.scoped("a lease whose session ended, its pid now another session's that holds the lock (the pid reused): its writes are refused, nothing written", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const created = yield* unexecutedRun("pid reused")
        const { pool } = yield* PgPool
        const sql = yield* SqlClient.SqlClient
        // Another process's session holds the run's lock (a server that took the run over), and has
        // the pid this process's lease session had: the server gives a pid again once its session
        // has ended. The lease this process remembers: that pid, with its own session's start.
        const other = yield* Effect.acquireRelease(Effect.promise(() => pool.connect()), (client) => Effect.sync(() => client.release(true)))
        const holder = (yield* Effect.promise(() =>
          other.query<Session>(`select ${SESSION}, pg_advisory_lock(hashtextextended($1, 0))`, [`${LEASE_PREFIX}${created.id}`])
        )).rows[0]!
        const earlier = new Date(Date.parse(holder.started) - 60_000).toISOString().replace(/Z$/, "000Z")
        const reused = { run: created.id, backend: () => ({ pid: holder.pid, started: earlier }), lost: () => undefined }
        const refused = { _tag: "LeaseNotHeld", run: created.id, reason: "its database session no longer holds it", retaking: false }
        // Before, the pid alone was asked, and each was written: by a process the run had been taken from.
        expect(yield* failure(Runs.markEndedLeased(reused, created.id, "stopped", "a stop"))).toMatchObject(refused)
        expect(yield* failure(Runs.setStatus(created.id, "paused", reused))).toMatchObject(refused)
        expect((yield* Runs.get(created.id)).status).toBe("running")
        // Nor does its recorder commit anything (its batches ask on a connection of their own).
        const recorder = yield* RunRecorder.make(created.id, { lease: reused })
        const event = { _tag: "ReasoningRecorded", run: created.id, seq: 1, at: 0, agent: "a", round: "r", kind: "plan", role: "analyst", text: "late" }
        recorder.sink(event as never, JSON.stringify(event))
        const flushed = yield* Effect.flip(recorder.flush.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the flush never ended" })))
        expect(flushed).toMatchObject({ _tag: "StoreError", reason: `this process no longer holds run ${created.id}'s lease (its database session no longer holds it): it writes nothing more to it` })
        expect(yield* sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${created.id}`).toEqual([{ n: 0 }])
        // The session that holds it, as it is: its writes go.
        const holding = { run: created.id, backend: () => holder, lost: () => undefined }
        yield* Runs.setStatus(created.id, "paused", holding)
        expect((yield* Runs.get(created.id)).status).toBe("paused")
      }), { timeout: 60_000 })

    it.scoped("a pause, a resume and a held approval's bookkeeping under a lease this process no longer holds are refused, nothing written", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const created = yield* unexecutedRun("unseen loss, owner's writes")
        const sql = yield* SqlClient.SqlClient
        // As in the test above: a session that holds no lock of the run (its connection half-open).
        const pid = (yield* sql<{ pid: number }>`select pg_backend_pid() as pid`)[0]!.pid
        const lost = { run: created.id, backend: () => ({ pid: pid + 1_000_000, started: "2026-01-01T00:00:00.000000Z" }), lost: () => undefined }
        const refused = { _tag: "LeaseNotHeld", run: created.id, reason: "its database session no longer holds it", retaking: false }
        const waits = sql<{ waited: number; expires: number | null }>`
          select waited_ms::float8 as waited, expires_at_ms::float8 as expires from approval_waits where run_id = ${created.id}`
        // Before, each was written all the same, by a server the run had been taken from.
        expect(yield* failure(Runs.setStatus(created.id, "paused", lost))).toMatchObject(refused)
        expect((yield* Runs.get(created.id)).status).toBe("running")
        expect(yield* failure(Runs.holdApproval(created.id, "r1", { waitedMillis: 10, requestedAt: 1_000, expiresAt: 61_000 }, lost))).toMatchObject(refused)
        expect(yield* failure(Runs.saveApprovalWaited(created.id, "r1", 20, lost))).toMatchObject(refused)
        expect(yield* waits).toEqual([])
        // Its own lease, held: each is written.
        const held = (yield* Runs.lease(created.id))!
        yield* Runs.setStatus(created.id, "paused", held)
        expect((yield* Runs.get(created.id)).status).toBe("paused")
        yield* Runs.holdApproval(created.id, "r1", { waitedMillis: 10, requestedAt: 1_000, expiresAt: 61_000 }, held)
        yield* Runs.saveApprovalWaited(created.id, "r1", 20, held)
        yield* Runs.saveApprovalExpiry(created.id, "r1", 62_000, held)
        expect(yield* waits).toEqual([{ waited: 20, expires: 62_000 }])
        // And refused again under the lost one, whatever was written before.
        expect(yield* failure(Runs.setStatus(created.id, "running", lost))).toMatchObject(refused)
        expect(yield* failure(Runs.saveApprovalExpiry(created.id, "r1", 90_000, lost))).toMatchObject(refused)
        expect(yield* failure(Runs.saveApprovalWaited(created.id, "r1", 30, lost))).toMatchObject(refused)
        expect((yield* Runs.get(created.id)).status).toBe("paused")
        expect(yield* waits).toEqual([{ waited: 20, expires: 62_000 }])
      }))

    it.scoped("a resume stopped before it holds the run's lease, which another process has taken meanwhile, writes nothing to the run's row", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const owner = yield* Users.ensureLocal()
        const s = strategy(2, "stopped before its lease")
        const saved = yield* Strategies.saveVersion(owner, s)
        const config = marketConfig(2, 60)
        const created = yield* newRun(owner, saved, s, config, (yield* DataSource.open(DataSource.synthetic(config))).fingerprint)
        const { pool } = yield* PgPool
        // Another server: it holds the run's lease (it took the run over), and holds the resume here
        // while it reads the run's inputs (a lock of the approvals table, which the resume's
        // reopening of cancelled approvals waits for) — before the resume takes the lease.
        const other = yield* Effect.acquireRelease(Effect.promise(() => pool.connect()), (client) => Effect.sync(() => client.release(true)))
        yield* Effect.promise(() => other.query("select pg_advisory_lock(hashtextextended($1, 0))", [`swarm-run:${created.id}`]))
        yield* Effect.promise(() => other.query("begin"))
        yield* Effect.promise(() => other.query("lock table approvals in exclusive mode"))
        const resuming = yield* Effect.fork(StoredRun.resume(created.id, { stopReason: () => "stopped by alice" }))
        const sql = yield* SqlClient.SqlClient
        let waiting = false
        for (let i = 0; i < 500 && !waiting; i++) {
          waiting = (yield* sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock' and query like '%approvals%'`)[0]!.n > 0
          if (!waiting) yield* Effect.sleep("10 millis")
        }
        expect(waiting).toBe(true)
        // An operator's stop interrupts it there; the other server lets the approvals go.
        const stopping = yield* Effect.fork(Fiber.interrupt(resuming))
        yield* Effect.sleep("200 millis")
        yield* Effect.promise(() => other.query("commit"))
        yield* Fiber.join(stopping)
        // Before, its row was marked `stopped` while the other server ran it.
        const row = yield* Runs.get(created.id)
        expect([row.status, row.failure]).toEqual(["running", null])
      }), { timeout: 60_000 })

    it.scoped("more live runs than the pool has connections: their leases take none of them, and queries go on", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        // A pool of two: before, each live run's lease held one of the pool's connections for the
        // run's life, and with all of them held every query (auth, the recorder, RPC) waited for good.
        const small = Layer.unwrapScoped(Effect.map(Database.temporary(serverUrl!), (url) => Database.layerWith({ url, maxConnections: 2 })))
        yield* Effect.scoped(Effect.gen(function*() {
          yield* migrate
          const owner = yield* Users.ensureLocal()
          const s = strategy(1, "more runs than connections")
          const saved = yield* Strategies.saveVersion(owner, s)
          const config = marketConfig(1, 10)
          for (let i = 0; i < 4; i++) yield* Runs.lease((yield* newRun(owner, saved, s, config, "fp")).id)
          const sql = yield* SqlClient.SqlClient
          const answer = yield* sql<{ x: number }>`select 1 as x`.pipe(
            Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the query waited on the runs' leases" })
          )
          expect(answer).toEqual([{ x: 1 }])
        })).pipe(Effect.provide(small))
      }), { timeout: 60_000 })

    it.effect("a new run that cannot have its lease (no connection for it) is refused, saying why, with nothing written", () =>
      Effect.gen(function*() {
        const real = yield* PgPool
        const sql = yield* SqlClient.SqlClient
        const runCount = Effect.map(sql<{ n: number }>`select count(*)::int as n from runs`, (rows) => rows[0]!.n)
        const before = yield* runCount
        // Every lease connection refused, as when the database has no more for this process.
        const exhausted = { connect: (callback: (error: Error) => void) => callback(new Error("sorry, too many clients already")), totalCount: 0, idleCount: 0, options: { max: 32 } } as unknown as Pg.Pool
        let created = false
        const error = yield* failure(
          StoredRun.backtest(stored(1, 30, { name: "no lease", onCreated: () => (created = true) })).pipe(
            Effect.provideService(PgPool, { ...real, shared: true, leases: exhausted })
          )
        )
        expect(error.message).toMatch(/^store: cannot lease run run_[0-9a-f]{12}: sorry, too many clients already$/)
        // Before, its row was written first and ended `failed`: a caller told it had started learnt otherwise only later.
        expect(created).toBe(false)
        expect(yield* runCount).toBe(before)
        // Nor was a run number used: the strategy's first run is #1.
        const { number } = yield* StoredRun.backtest(stored(1, 30, { name: "no lease" }))
        expect(number).toBe(1)
      }))

    it.scoped("a new run past this process's leases waits for one, then is refused naming the limit; one that ends frees its lease", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const real = yield* PgPool
        // A process allowed one live run, which waits half a second for a lease.
        const one = yield* Effect.acquireRelease(
          Effect.sync(() => new Pg.Pool({ connectionString: serverUrl!, max: 1, connectionTimeoutMillis: 500 })),
          (pool) => Effect.promise(() => pool.end())
        )
        const leases = { ...real, leases: one }
        const owner = yield* Users.ensureLocal()
        const s = strategy(1, "one lease")
        const saved = yield* Strategies.saveVersion(owner, s)
        const held = yield* newRun(owner, saved, s, marketConfig(1, 10), "fp")
        const holding = yield* Effect.forkScoped(Effect.scoped(Effect.zipRight(Runs.lease(held.id), Effect.never)).pipe(Effect.provideService(PgPool, leases)))
        yield* Effect.sleep("200 millis")
        const error = yield* failure(StoredRun.backtest(stored(1, 30, { name: "past the leases" })).pipe(Effect.provideService(PgPool, leases)))
        expect(error.message).toMatch(
          /^store: cannot lease run run_[0-9a-f]{12}: this process already executes 1 live run, its most \(each holds a database connection for its lease\); try again when one ends$/
        )
        expect(yield* failure(Runs.get("past the leases#1"))).toEqual(new RunNotFound({ run: "past the leases#1" }))
        // The live run ends: the next one has its lease.
        yield* Fiber.interrupt(holding)
        const { number } = yield* StoredRun.backtest(stored(1, 30, { name: "past the leases" })).pipe(Effect.provideService(PgPool, leases))
        expect(number).toBe(1)
      }), { timeout: 60_000 })

    it.effect("leases leave nothing on the pool's connections: a server running many runs does not pile up listeners", () =>
      Effect.gen(function*() {
        if (backend.name !== "postgres") return
        const { leases: pool } = yield* PgPool
        const errorListeners = Effect.promise(async () => {
          const client = await pool.connect()
          const count = client.listenerCount("error")
          client.release()
          return count
        })
        const before = yield* errorListeners
        const owner = yield* Users.ensureLocal()
        const s = strategy(2, "many leases")
        const saved = yield* Strategies.saveVersion(owner, s)
        const config = marketConfig(2, 60)
        const fingerprint = (yield* DataSource.open(DataSource.synthetic(config))).fingerprint
        for (let i = 0; i < 15; i++) {
          const created = yield* newRun(owner, saved, s, config, fingerprint)
          yield* Effect.scoped(Runs.lease(created.id))
        }
        // One was left on the connection the pool lent again, per run: 15 more, and Node's leak warning.
        expect(yield* errorListeners).toBe(before)
      }))

    it.effect("a run's trades as runs show lists them: how many, the first and last n in closing order, never overlapping; a trade that does not decode is a CorruptRecord", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const trade = (i: number) => ({
          symbol: "ACME",
          side: i % 2 === 0 ? "long" : "short",
          quantity: i + 1,
          entryTs: 1_000 * i,
          exitTs: 1_000 * i + 500,
          entryPrice: 100 + i,
          exitPrice: 101 + i,
          pnl: 1_000_000 * i,
          commission: 0
        })
        for (const n of [0, 1, 3, 4, 5, 6, 7, 10]) {
          const run = `run_ends_${n}` as RunId
          // A trade's event every other seq: the trades' own order, not the events', is what counts.
          for (let i = 0; i < n; i++) {
            const seq = 2 * i + 2
            yield* sql`insert into run_events (run_id, seq, tag, at, hash, body)
              values (${run}, ${seq - 1}, 'DecisionMade', 0, ${"0".repeat(64)}, '{}'),
                     (${run}, ${seq}, 'TradeClosed', 0, ${"0".repeat(64)}, ${JSON.stringify({ _tag: "TradeClosed", trade: trade(i) })})`
            yield* sql`insert into trades (run_id, seq, symbol, side, entry_ts, exit_ts, pnl) values (${run}, ${seq}, 'ACME', ${trade(i).side}, 0, 0, 0)`
          }
          const all = Array.from({ length: n }, (_, i) => trade(i))
          // As runs show has always listed them: the first 3, then the last 3 after those.
          expect(yield* Runs.tradeEnds(run, 3), `${n} trades`).toEqual({
            count: n,
            first: all.slice(0, 3),
            last: n <= 3 ? [] : all.slice(Math.max(3, n - 3))
          })
        }
        yield* sql`update run_events set body = '{"trade":{"symbol":"ACME"}}' where run_id = 'run_ends_7' and seq = 14`
        expect(yield* failure(Runs.tradeEnds("run_ends_7" as RunId, 3))).toMatchObject({ _tag: "CorruptRecord", table: "run_events", key: "run_ends_7", column: "body" })
      }).pipe(Effect.orDie))

    it.effect("another owner's run is RunNotFound, exactly like a run that does not exist", () =>
      Effect.gen(function*() {
        const { run } = yield* StoredRun.backtest(stored(2, 40, { name: "owned" }))
        yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`insert into users (id, name, role) values ('someone-else', 'someone-else', 'user')`)
        // The owner finds it by id and by name.
        expect((yield* Runs.get(run, "local")).id).toBe(run)
        expect((yield* Runs.get("owned#1", "local")).id).toBe(run)
        for (const ref of [run, "owned#1"]) {
          const other = yield* failure(Runs.get(ref, "someone-else"))
          const unknown = yield* failure(Runs.get(`${ref}x`, "someone-else"))
          expect(other).toEqual(new RunNotFound({ run: ref }))
          expect(unknown._tag).toBe("RunNotFound")
          expect(other.message).toBe(`no run ${ref}`)
          // Every entry point that takes an owner answers the same.
          expect(yield* failure(Audit.verifyRun(ref, "someone-else"))).toEqual(other)
          expect(yield* failure(StoredRun.replay(ref, { owner: "someone-else" }))).toEqual(other)
          expect(yield* failure(StoredRun.resume(ref, { owner: "someone-else" }))).toEqual(other)
        }
        // A user who does not exist at all: the same answer.
        expect(yield* failure(Runs.get(run, "nobody"))).toEqual(new RunNotFound({ run }))
      }))

    it.effect("a <strategy>#<number> that names several runs: the live strategy's, or refused with the ids", () =>
      Effect.gen(function*() {
        yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`insert into users (id, name, role) values ('twin', 'twin', 'user')`)
        // Two owners' strategies of one name: each owner's "same#1" is their own; an admin's is ambiguous.
        const { run: mine } = yield* StoredRun.backtest(stored(2, 30, { name: "same" }))
        const { run: theirs } = yield* StoredRun.backtest({ ...stored(2, 30, { name: "same" }), owner: "twin" })
        expect((yield* Runs.get("same#1", "local")).id).toBe(mine)
        expect((yield* Runs.getSummary("same#1", "twin")).id).toBe(theirs)
        for (const lookup of [Runs.get("same#1"), Runs.getSummary("same#1")]) {
          const error = yield* failure(lookup)
          expect(error).toEqual(new RunNotFound({ run: "same#1", ambiguous: [theirs, mine] }))
          expect(error.message).toBe(`same#1 names 2 runs (${theirs}, ${mine}): give the run's id`)
        }
        // A deleted strategy's run and the run of its namesake created since: the live one is meant.
        const { run: old } = yield* StoredRun.backtest(stored(2, 30, { name: "reborn" }))
        yield* Strategies.remove("local", "reborn")
        const { run: current } = yield* StoredRun.backtest(stored(2, 30, { name: "reborn", seed: "2" }))
        expect(current).not.toBe(old)
        expect((yield* Runs.get("reborn#1", "local")).id).toBe(current)
        expect((yield* Runs.getSummary("reborn#1")).id).toBe(current)
        // Its ids still name each.
        expect((yield* Runs.get(old, "local")).id).toBe(old)
      }))

    it.effect("a renamed strategy's runs answer to the name they ran under too; the name now wins where both match", () =>
      Effect.gen(function*() {
        const { run: first } = yield* StoredRun.backtest(stored(2, 30, { name: "before rename" }))
        const current = yield* Strategies.find("local", "before rename")
        yield* Strategies.update("local", current.id, { ...current.strategy, name: "after rename" })
        expect((yield* Runs.get("after rename#1", "local")).id).toBe(first)
        expect((yield* Runs.get("before rename#1", "local")).id).toBe(first)
        expect((yield* Runs.getSummary("before rename#1")).id).toBe(first)
        // Not someone else's: the owner still decides.
        expect(yield* failure(Runs.get("before rename#1", "someone-else"))).toEqual(new RunNotFound({ run: "before rename#1" }))
        // A new strategy takes the old name: its own #1 is meant by it now.
        const { run: namesake } = yield* StoredRun.backtest(stored(2, 30, { name: "before rename", seed: "3" }))
        expect((yield* Runs.get("before rename#1", "local")).id).toBe(namesake)
        expect((yield* Runs.get("after rename#1", "local")).id).toBe(first)
        // …and the renamed one's runs past the new one's count no longer answer to it: "Short#2" is no
        // run of the new "Short", not the renamed one's second (a `runs stop` given it stopped that).
        yield* StoredRun.backtest(stored(2, 30, { name: "Short" }))
        const { run: second } = yield* StoredRun.backtest(stored(2, 30, { name: "Short", seed: "4" }))
        const short = yield* Strategies.find("local", "Short")
        yield* Strategies.update("local", short.id, { ...short.strategy, name: "Long" })
        expect((yield* Runs.get("Short#2", "local")).id).toBe(second)
        yield* StoredRun.backtest(stored(2, 30, { name: "Short", seed: "5" }))
        expect(yield* failure(Runs.get("Short#2", "local"))).toEqual(new RunNotFound({ run: "Short#2" }))
        expect(yield* failure(Runs.getSummary("Short#2"))).toEqual(new RunNotFound({ run: "Short#2" }))
        expect((yield* Runs.get("Long#2", "local")).id).toBe(second)
        // Deleted, the new strategy has the name no more: the old name answers again.
        yield* Strategies.remove("local", "Short")
        expect((yield* Runs.get("Short#2", "local")).id).toBe(second)
      }))

    it.effect("a run names its owner's user name (an admin's list holds several users')", () =>
      Effect.gen(function*() {
        const ann = yield* Users.create("ann-owner", "user")
        const { run: hers } = yield* StoredRun.backtest(stored(2, 30, { name: "owned", owner: ann.id }))
        const { run: local } = yield* StoredRun.backtest(stored(2, 30, { name: "owned" }))
        const listed = yield* Runs.list({ strategy: "owned" })
        expect(listed.find((r) => r.id === hers)?.ownerName).toBe("ann-owner")
        expect(listed.find((r) => r.id === local)?.ownerName).toBe("local")
        expect((yield* Runs.getSummary(hers)).ownerName).toBe("ann-owner")
        expect((yield* Runs.get(hers)).ownerName).toBe("ann-owner")
      }))

    it.effect("pages after a `before` cursor concatenate to the whole list: no gap, no duplicate, runs started in one instant included, with filters", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pager = yield* Users.create("pager", "user")
        const other = yield* Users.create("pager-other", "user")
        const a = yield* Strategies.saveVersion(pager.id, strategy(1, "paged A"))
        const b = yield* Strategies.saveVersion(pager.id, strategy(1, "paged B"))
        const ids: Array<string> = []
        for (let i = 0; i < 14; i++) {
          const saved = i % 2 === 0 ? a : b
          ids.push((yield* newRun(pager.id, saved, strategy(1, i % 2 === 0 ? "paged A" : "paged B"), marketConfig(1, 10), "fp")).id)
        }
        // Ties: runs 0–5 in one instant (A#1 and B#1 share their number too: only the id orders them),
        // 6–9 in another; the rest a microsecond apart, which a JavaScript Date cannot tell apart.
        for (const [i, id] of ids.entries()) {
          const at = i < 6 ? "2026-03-01 10:00:00.123456+00" : i < 10 ? "2026-03-01 09:00:00+00" : `2026-03-01 08:00:00.00000${i - 10}+00`
          const status = ["completed", "failed", "running"][i % 3]!
          yield* sql`update runs set started_at = ${at}::timestamptz, status = ${status} where id = ${id}`
        }
        const theirs = yield* Strategies.saveVersion(other.id, strategy(1, "paged A"))
        const { id: otherRun } = yield* newRun(other.id, theirs, strategy(1, "paged A"), marketConfig(1, 10), "fp")
        yield* sql`update runs set started_at = '2026-03-01 10:00:00.123456+00' where id = ${otherRun}`

        const filters: ReadonlyArray<Runs.ListOptions> = [
          {},
          { strategy: "paged A" },
          { status: "completed" },
          { strategy: "paged B", status: "failed" },
          { strategy: b.strategyId, status: "running" }
        ]
        for (const filter of filters) {
          const whole = (yield* Runs.list({ ...filter, owner: pager.id, limit: 1_000 })).map((r) => r.id)
          for (const limit of [1, 2, 3, 5]) {
            const paged: Array<string> = []
            let before: string | undefined
            for (let pages = 0; pages < 20; pages++) {
              const page = yield* Runs.list({ ...filter, owner: pager.id, limit, ...(before === undefined ? {} : { before }) })
              paged.push(...page.map((r) => r.id))
              if (page.length < limit) break
              before = page[page.length - 1]!.id
            }
            expect(paged, `${JSON.stringify(filter)}, ${limit} a page`).toEqual(whole)
          }
        }
        // The order is the one the cursor follows: start time, then number, then id, all newest first.
        const all = yield* Runs.list({ owner: pager.id, limit: 1_000 })
        expect(all.map((r) => r.id)).toHaveLength(14)
        const ordered = [...ids.slice(0, 6)].sort((x, y) => {
          const rx = all.find((r) => r.id === x)!
          const ry = all.find((r) => r.id === y)!
          return ry.number - rx.number || (y < x ? -1 : y > x ? 1 : 0)
        })
        expect(all.slice(0, 6).map((r) => r.id)).toEqual(ordered)
        expect(all.slice(10).map((r) => r.id)).toEqual([ids[13], ids[12], ids[11], ids[10]])

        // A cursor is a place in the order: it need not match the filters (a run that ended since its page).
        const running = ids.find((_, i) => i % 3 === 2)!
        const after = all.slice(all.findIndex((r) => r.id === running) + 1)
        expect((yield* Runs.list({ owner: pager.id, status: "completed", before: running })).map((r) => r.id))
          .toEqual(after.filter((r) => r.status === "completed").map((r) => r.id))
        // …and `<strategy>#<number>` names it as well as its id does.
        const third = all.find((r) => r.strategyName === "paged A" && r.number === 3)!
        expect(yield* Runs.list({ owner: pager.id, before: "paged A#3" })).toEqual(yield* Runs.list({ owner: pager.id, before: third.id }))
        // The last page is empty after the oldest run.
        expect(yield* Runs.list({ owner: pager.id, before: all[all.length - 1]!.id })).toEqual([])

        // Another owner's run is no cursor, exactly like a run that does not exist; an admin (no owner) may use it.
        const notYours = yield* failure(Runs.list({ owner: pager.id, before: otherRun }))
        expect(notYours).toEqual(new RunNotFound({ run: otherRun, field: "before" }))
        expect(notYours.message).toBe(`before: no run ${otherRun}`)
        expect(yield* failure(Runs.list({ owner: pager.id, before: "run_000000000000" }))).toEqual(new RunNotFound({ run: "run_000000000000", field: "before" }))
        expect(yield* failure(Runs.list({ owner: other.id, before: ids[0]! }))).toEqual(new RunNotFound({ run: ids[0]!, field: "before" }))
        expect(yield* failure(Runs.list({ owner: pager.id, before: "a\u0000b" }))).toEqual(new RunNotFound({ run: "a\u0000b", field: "before" }))
        const everyone = yield* Runs.list({ strategy: "paged A", limit: 1_000 })
        expect((yield* Runs.list({ strategy: "paged A", before: otherRun, limit: 1_000 })).map((r) => r.id))
          .toEqual(everyone.slice(everyone.findIndex((r) => r.id === otherRun) + 1).map((r) => r.id))
      }))

    it.effect("malformed, huge and hostile references are RunNotFound, and the tables are intact", () =>
      Effect.gen(function*() {
        const { run } = yield* StoredRun.backtest(stored(2, 40, { name: "target" }))
        const before = { runs: yield* count("runs"), events: yield* count("run_events"), strategies: yield* count("strategies") }
        const refs = [
          "",
          " ",
          "#",
          "##",
          "target#",
          "#1",
          "target#0",
          "target#-1",
          "target#1.0",
          "target#1e0",
          "target# 1",
          `target#${"9".repeat(40)}`,
          "target#2147483648",
          "target#9007199254740993",
          "x".repeat(200_000),
          `${"y".repeat(100_000)}#1`,
          "x'; drop table runs; --",
          "target'; drop table runs; --#1",
          `'); delete from run_events; --`,
          "run_%",
          "%#1",
          "_#1",
          "\\",
          "\u0000",
          `${run}\u0000`,
          "target\u0000#1",
          "\ud800",
          "💥#1",
          run.toUpperCase(),
          ` ${run}`
        ]
        for (const ref of refs) {
          const error = yield* failure(Runs.get(ref))
          // (Compared field by field: a failing deep comparison of a 200,000-character ref overflows the stack.)
          expect({ ref: ref.slice(0, 40), tag: error._tag, same: error._tag === "RunNotFound" && error.run === ref })
            .toEqual({ ref: ref.slice(0, 40), tag: "RunNotFound", same: true })
        }
        expect({ runs: yield* count("runs"), events: yield* count("run_events"), strategies: yield* count("strategies") }).toEqual(before)
        expect((yield* Runs.get(run)).id).toBe(run)
        expect((yield* Runs.get("target#1")).id).toBe(run)
        expect((yield* Audit.verifyRun(run)).ok).toBe(true)
      }))

    it.effect("a strategy name with '#' in it: its runs are found by the last '#'", () =>
      Effect.gen(function*() {
        const { run } = yield* StoredRun.backtest(stored(2, 40, { name: "a#b #3" }))
        expect((yield* Runs.get("a#b #3#1")).id).toBe(run)
        expect((yield* failure(Runs.get("a#b #3")))._tag).toBe("RunNotFound")
      }))

    it.effect("a column edited into nonsense is CorruptRecord naming the run and the column, from every reader", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const corrupt = (column: string, value: string) =>
          Effect.gen(function*() {
            const { run } = yield* StoredRun.backtest(stored(2, 40, { name: `corrupt ${column}` }))
            yield* sql`update runs set ${sql(column)} = ${value}::jsonb where id = ${run}`
            return run
          })
        const expectCorrupt = (error: unknown, run: string, column: string) =>
          expect(error).toMatchObject({ _tag: "CorruptRecord", table: "runs", key: run, column })

        const badStrategy = yield* corrupt("strategy", `{"x":1}`)
        expectCorrupt(yield* failure(Runs.get(badStrategy)), badStrategy, "strategy")
        expectCorrupt(yield* failure(StoredRun.replay(badStrategy)), badStrategy, "strategy")
        expectCorrupt(yield* failure(Audit.verifyRun(badStrategy)), badStrategy, "strategy")
        expect((yield* failure(Runs.get(badStrategy))).message).toContain("strategy does not decode")

        const badMetrics = yield* corrupt("metrics", `{"sharpe":"high"}`)
        expectCorrupt(yield* failure(Runs.get(badMetrics)), badMetrics, "metrics")
        expectCorrupt(yield* failure(Runs.list({ strategy: "corrupt metrics" })), badMetrics, "metrics")

        // Metrics read (and kept decoded) before another writer changes them are read as they are now.
        const { run: readFirst } = yield* StoredRun.backtest(stored(2, 40, { name: "metrics read, then edited" }))
        expect((yield* Runs.getSummary(readFirst)).metrics).not.toBeNull()
        yield* sql`update runs set metrics = jsonb_set(metrics, '{tradeCount}', '12345') where id = ${readFirst}`
        expect((yield* Runs.getSummary(readFirst)).metrics?.tradeCount).toBe(12345)
        expect((yield* Runs.list({ strategy: "metrics read, then edited" }))[0]!.metrics?.tradeCount).toBe(12345)
        yield* sql`update runs set metrics = ${`{"sharpe":"high"}`}::jsonb where id = ${readFirst}`
        expectCorrupt(yield* failure(Runs.getSummary(readFirst)), readFirst, "metrics")
        // Acting on a run does not need them: they are null there.
        expect((yield* Runs.locate(readFirst)).metrics).toBeNull()

        const badFaults = yield* corrupt("faults", `{"sma_crossover":{"every":0}}`)
        expectCorrupt(yield* failure(Runs.get(badFaults)), badFaults, "faults")

        const badSource = yield* corrupt("data_source", `{"_tag":"ftp","host":"x"}`)
        expectCorrupt(yield* failure(StoredRun.replay(badSource)), badSource, "data_source")

        // Not JSON of the right kind at all.
        const notAnObject = yield* corrupt("strategy", `"a string"`)
        expectCorrupt(yield* failure(Runs.get(notAnObject)), notAnObject, "strategy")
      }))

    it.scoped("a group commit the database refuses fails the recorder, and the very next query works (the embedded single connection too)", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("refused commit")
        const recorder = yield* RunRecorder.make(created.id)
        // Text no Postgres column holds (a NUL): the batch is refused, all of it, on every try.
        const event = { _tag: "ReasoningRecorded", run: created.id, seq: 1, at: 0, agent: "a", round: "r", kind: "plan", role: "analyst", text: "a\u0000b" }
        recorder.sink(event as never, JSON.stringify(event))
        const refused = yield* Effect.flip(recorder.flush.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the flush never ended" })))
        expect(refused).toMatchObject({ _tag: "StoreError" })
        // Before, the embedded database's connection was closed with the failure, and reopening it
        // failed the next query ("Failed to acquire connection").
        const sql = yield* SqlClient.SqlClient
        expect(yield* sql<{ x: number }>`select 1 as x`).toEqual([{ x: 1 }])
        expect(yield* count("run_events")).toBeGreaterThanOrEqual(0)
      }), { timeout: 60_000 })

    it.scoped("a batch Postgres committed whose acknowledgement was lost is not written again: the retry finds it, the run goes on", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("lost commit ack")
        const real = yield* PgPool
        // The first `commit` is carried out, and then its connection is lost before the answer.
        let lose = 1
        const losing = (client: Pg.PoolClient) =>
          new Proxy(client, {
            get: (c, key) =>
              key === "query"
                ? (...args: Array<unknown>) =>
                  args[0] === "commit" && lose-- > 0
                    ? c.query("commit").then(() => Promise.reject(new Error("Connection terminated unexpectedly")))
                    : (c.query as (...a: Array<unknown>) => unknown)(...args)
                : bindIfFunction(c, Reflect.get(c, key))
          })
        const connect = (callback: (error: Error | undefined, client?: Pg.PoolClient) => void) =>
          real.pool.connect((error, client) => callback(error ?? undefined, client === undefined ? undefined : losing(client)))
        const pool = new Proxy(real.pool, { get: (target, name) => name === "connect" ? connect : bindIfFunction(target, Reflect.get(target, name)) })
        const recorder = yield* RunRecorder.make(created.id).pipe(Effect.provideService(PgPool, { ...real, pool }))
        const before = yield* count("run_events")
        for (let seq = 1; seq <= 3; seq++) {
          const event = { _tag: "ReasoningRecorded", run: created.id, seq, at: 0, agent: "a", round: "r", kind: "plan", role: "analyst", text: `step ${seq}` }
          recorder.sink(event as never, JSON.stringify(event))
        }
        // Before, the retry met its own rows ("duplicate key") and failed the run.
        yield* recorder.flush.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the flush never ended" }))
        expect(lose).toBe(0)
        expect(yield* count("run_events")).toBe(before + 3)
        const next = { _tag: "ReasoningRecorded", run: created.id, seq: 4, at: 0, agent: "a", round: "r", kind: "plan", role: "analyst", text: "step 4" }
        recorder.sink(next as never, JSON.stringify(next))
        yield* recorder.flush
        expect(yield* count("run_events")).toBe(before + 4)
      }), { timeout: 60_000 })

    it.scoped("a connection whose error comes as the pool lends it is heard, not thrown at the process (the recorder, the lease)", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("error as lent")
        const real = yield* PgPool
        const uncaught: Array<unknown> = []
        const hear = (error: unknown) => void uncaught.push(error)
        process.on("uncaughtException", hear)
        yield* Effect.addFinalizer(() => Effect.sync(() => process.off("uncaughtException", hear)))
        // As a backend terminated while it opens: its error is read with its readiness, in one turn of
        // the socket, right after the pool hands the client over.
        let lent = 0
        const ended = () => new Error("terminating connection due to administrator command")
        const connect = (callback?: (error: Error | undefined, client?: Pg.PoolClient, done?: unknown) => void) => {
          lent++
          const handOver = (then: (error: Error | undefined, client?: Pg.PoolClient, done?: unknown) => void) =>
            setImmediate(() =>
              real.pool.connect((error, client, done) => {
                then(error ?? undefined, client, done)
                client?.emit("error", ended())
              })
            )
          if (callback !== undefined) return handOver(callback)
          return new Promise<Pg.PoolClient>((resolve, reject) => handOver((error, client) => (error ? reject(error) : resolve(client!))))
        }
        const pool = new Proxy(real.pool, { get: (target, name) => name === "connect" ? connect : bindIfFunction(target, Reflect.get(target, name)) })
        const lying = Effect.provideService(PgPool, { ...real, pool, leases: pool })
        const recorder = yield* lying(RunRecorder.make(created.id))
        const event = { _tag: "ReasoningRecorded", run: created.id, seq: 1, at: 0, agent: "a", round: "r", kind: "plan", role: "analyst", text: "heard" }
        recorder.sink(event as never, JSON.stringify(event))
        yield* recorder.flush.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the flush never ended" }))
        if (real.shared) yield* Effect.scoped(lying(Runs.lease(created.id)))
        yield* Effect.sleep("50 millis")
        expect(lent).toBeGreaterThan(0)
        expect(uncaught.map(String)).toEqual([])
      }), { timeout: 60_000 })

    it.scoped("the backlog is bounded in characters too: a few large events (an LLM run's) make pace wait for their commit", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("large events")
        const recorder = yield* RunRecorder.make(created.id, { highWaterChars: 10_000 })
        for (let seq = 1; seq <= 5; seq++) {
          const event = { _tag: "ReasoningRecorded", run: created.id, seq, at: 0, agent: "a", round: "r", kind: "plan", role: "analyst", text: "x".repeat(5_000) }
          recorder.sink(event as never, JSON.stringify(event))
        }
        // Five rows are far below the rows' high-water mark; 25,000 characters are past this one.
        yield* recorder.pace.pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "pace never ended" }))
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${created.id}`
        expect(row!.n).toBe(5)
      }), { timeout: 30_000 })

    it.scoped("a checkpoint that is the last row written is committed by a flush (a paper run suspended between bars)", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("checkpoint last")
        const recorder = yield* RunRecorder.make(created.id)
        const before = yield* count("checkpoints")
        // Nothing else follows it: the writer is asleep, and only the checkpoint may wake it.
        yield* Effect.sleep("20 millis")
        recorder.checkpoint({ slices: 16, bars: 16, ts: 0, events: 0 })
        yield* recorder.flush.pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "the flush never ended" }))
        expect(yield* count("checkpoints")).toBe(before + 1)
      }), { timeout: 30_000 })
  })
}
