/**
 * A batch of the run recorder commits only under the run's lease, checked as it commits: held up
 * (behind a lock) while the lease went to another process, it commits nothing once it goes on —
 * before, its lease was checked at its start only, and it committed events into a log the new
 * holder was writing (a split brain in a hash chain). A batch whose writer was interrupted commits
 * nothing either, and a process taking a lease waits for a batch committing under the one before.
 * Postgres only: the embedded database has no lease, and one connection (no lock can hold a batch
 * up, and whatever an interrupted batch does is done before anyone reads).
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Option } from "effect"
import type Pg from "pg"
import * as DataSource from "../../src/market/DataSource.js"
import { type Session, SESSION } from "../../src/store/Lease.js"
import { PgPool } from "../../src/store/Pool.js"
import * as RunRecorder from "../../src/store/RunRecorder.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as Users from "../../src/store/Users.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { marketConfig, strategy } from "./fixtures/workload.js"
import { serverUrl } from "./fresh.js"

/** A `running` row of a one-symbol strategy named `name`, not executed: for a recorder of its own. */
const unexecutedRun = (name: string) =>
  Effect.gen(function*() {
    const owner = yield* Users.ensureLocal()
    const s = strategy(1, name)
    const saved = yield* Strategies.saveVersion(owner, s)
    return yield* Runs.create({
      owner,
      strategyId: saved.strategyId,
      strategyVersion: saved.version,
      strategy: s,
      mode: "backtest",
      seed: "0",
      dataSource: DataSource.encode(DataSource.synthetic(marketConfig(1, 10))),
      dataFingerprint: "fp",
      eventDetail: "decisions"
    })
  })

/**
 * A session of the test's own from the pool under test, closed with the scope (not lent again). The
 * tests end some of theirs (`pg_terminate_backend`, a lease's session going): its error is expected,
 * and unheard it would be an uncaught exception of the test process.
 */
const session = Effect.flatMap(PgPool, ({ pool }) =>
  Effect.acquireRelease(
    Effect.promise(() => pool.connect()).pipe(Effect.tap((client) => void client.on("error", () => {}))),
    (client) => Effect.sync(() => client.release(true))
  ))

const query = (client: Pg.PoolClient, text: string, params: ReadonlyArray<unknown> = []) =>
  Effect.promise(() => client.query(text, [...params]))

/** An event of `run` at `seq`, as the run gives it to the recorder. */
const event = (run: string, seq: number) => {
  const e = { _tag: "ReasoningRecorded", run, seq, at: 0, agent: "a", round: "r", kind: "plan", role: "analyst", text: `event ${seq}` }
  return [e as never, JSON.stringify(e)] as const
}

/** Waits until another session of the database waits for a lock in a statement like `pattern`. */
const waitingOn = (sql: SqlClient.SqlClient, pattern: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1_000; i++) {
      const rows = yield* sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and query ilike ${pattern}`
      if (rows[0]!.n > 0) return
      yield* Effect.sleep("10 millis")
    }
    throw new Error(`no session waited for a lock in ${pattern}`)
  })

/** Waits until the backend `pid` has exited (a `pg_terminate_backend` only signals it). */
const gone = (sql: SqlClient.SqlClient, pid: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1_000; i++) {
      const rows = yield* sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`
      if (rows[0]!.n === 0) return
      yield* Effect.sleep("10 millis")
    }
    throw new Error(`backend ${pid} did not exit`)
  })

/** Waits until every other session of the database is idle: what a batch was doing is over. */
const allIdle = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1_000; i++) {
      const rows = yield* sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid() and state <> 'idle'`
      if (rows[0]!.n === 0) return
      yield* Effect.sleep("10 millis")
    }
    throw new Error("a session stayed busy")
  })

const eventsOf = (sql: SqlClient.SqlClient, run: string) =>
  Effect.map(sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${run}`, (rows) => rows[0]!.n)

const postgres = backends.find((backend) => backend.name === "postgres")

describe.runIf(serverUrl !== undefined)("the recorder's batches under a run's lease, on Postgres", () => {
  // Built only when there is one (the block is read, its tests skipped, without DATABASE_URL).
  layer(Layer.suspend(() => postgres!.store), { timeout: startTimeout, excludeTestServices: true })("fenced batches", (it) => {
    it.scoped("a batch held up by a lock while its lease goes to another process commits nothing when the lock goes", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("held up, lease taken over")
        const sql = yield* SqlClient.SqlClient
        const lease = (yield* Runs.lease(created.id))!
        const first = lease.backend()!.pid
        // Another session holds what the batch's first statement needs (a long transaction, a migration).
        const blocker = yield* session
        yield* query(blocker, "begin")
        yield* query(blocker, "lock table run_events in share row exclusive mode")
        const recorder = yield* RunRecorder.make(created.id, { lease, groupMillis: 0 })
        recorder.sink(...event(created.id, 1))
        // Its lease was checked, and it waits for the table.
        yield* waitingOn(sql, "%run_events%")
        // Another process waits for the run's lease (a server taking it over), and has it the moment
        // this process's lease connection is gone — before this one can take it again.
        const other = yield* session
        const taken = other.query("select pg_advisory_lock(hashtextextended($1, 0))", [`swarm-run:${created.id}`])
        yield* waitingOn(sql, "%pg_advisory_lock%")
        yield* sql`select pg_terminate_backend(${first})`
        yield* Effect.promise(() => taken)
        for (let i = 0; i < 500 && lease.lost() === undefined; i++) yield* Effect.sleep("10 millis")
        expect(lease.lost()).toBe("another process has taken it since")
        // The lock goes: the batch goes on — and before, committed under a lease another process held.
        yield* query(blocker, "rollback")
        const flushed = yield* Effect.either(recorder.flush.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the flush never ended" })))
        yield* allIdle(sql)
        expect(yield* eventsOf(sql, created.id)).toBe(0)
        expect(flushed).toMatchObject({
          _tag: "Left",
          left: { _tag: "StoreError", reason: `this process no longer holds run ${created.id}'s lease (another process has taken it since): it writes nothing more to it` }
        })
      }), { timeout: 60_000 })

    it.scoped("a batch whose writer is interrupted while a lock holds it up commits nothing when the lock goes", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("held up, interrupted")
        const sql = yield* SqlClient.SqlClient
        const lease = (yield* Runs.lease(created.id))!
        const blocker = yield* session
        yield* query(blocker, "begin")
        yield* query(blocker, "lock table run_events in share row exclusive mode")
        // The recorder's scope closes (a run stopped, a server shutting down) while its batch waits.
        yield* Effect.scoped(Effect.gen(function*() {
          const recorder = yield* RunRecorder.make(created.id, { lease, groupMillis: 0 })
          recorder.sink(...event(created.id, 1))
          yield* waitingOn(sql, "%run_events%")
        }))
        // The lease is still this process's: only the interruption stands between the batch and its
        // commit — before, its promise went on, and committed events nobody was told of.
        yield* query(blocker, "rollback")
        yield* allIdle(sql)
        expect(lease.lost()).toBeUndefined()
        expect(yield* eventsOf(sql, created.id)).toBe(0)
      }), { timeout: 60_000 })

    it.scoped("a process taking a run's lease waits for a batch committing under the lease before, and reads after it", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("lease taken at a commit")
        const sql = yield* SqlClient.SqlClient
        // A batch of the process before at its end: its lease checked, the run's row locked until it commits.
        const batch = yield* session
        yield* query(batch, "begin")
        yield* query(batch, "select 1 from runs where id = $1 for no key update", [created.id])
        const taking = yield* Effect.fork(Effect.scoped(Effect.as(Runs.lease(created.id), "taken")))
        yield* waitingOn(sql, "%for share%")
        expect(Option.isNone(yield* Fiber.poll(taking))).toBe(true)
        yield* query(batch, "commit")
        expect(yield* Fiber.join(taking)).toBe("taken")
      }), { timeout: 60_000 })

    it.scoped("a write under the lease, held up after its check, holds the run's row: a process taking the lease meanwhile waits for its commit", () =>
      Effect.gen(function*() {
        const created = yield* unexecutedRun("write held up after its check")
        const sql = yield* SqlClient.SqlClient
        // The lease of the process before, as its session holds it.
        const before = yield* session
        const held = (yield* query(before, `select ${SESSION}, pg_advisory_lock(hashtextextended($1, 0))`, [`swarm-run:${created.id}`])).rows[0] as Session
        const lease = { run: created.id, backend: () => ({ pid: held.pid, started: held.started }), lost: () => undefined }
        const blocker = yield* session
        yield* query(blocker, "begin")
        yield* query(blocker, "lock table approval_waits in share row exclusive mode")
        // An operator's bookkeeping of the run (`underLease`): its lease checked, it waits for the table.
        const writing = yield* Effect.fork(Runs.saveApprovalWaited(created.id, "r1", 1_000, lease))
        yield* waitingOn(sql, "%approval_waits%")
        // That lease's session goes, and this process takes the lease: it waits for the write, which
        // was under the lease when it checked — before, it read the run at once, and the write
        // committed after.
        yield* sql`select pg_terminate_backend(${held.pid})`
        // Terminating only signals the backend: until it has exited it holds the lease, and a take
        // then is refused at once (the run held elsewhere), never reaching the row it waits for.
        yield* gone(sql, held.pid)
        const taking = yield* Effect.fork(Effect.scoped(Effect.as(Runs.lease(created.id), "taken")))
        yield* waitingOn(sql, "%for share%")
        expect(Option.isNone(yield* Fiber.poll(taking))).toBe(true)
        yield* query(blocker, "rollback")
        yield* Fiber.join(writing)
        expect(yield* Fiber.join(taking)).toBe("taken")
      }), { timeout: 60_000 })
  })
})
