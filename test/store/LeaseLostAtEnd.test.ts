/**
 * A run whose lease is given up while it ends — its last batch in flight, or the write of its end:
 * it stops at the give-up, as in its main loop (`RunLeased`), writing nothing more. Before, only
 * its main loop was raced against the lease: its end was tried again on a database refusing
 * connections for half a minute, then its failure for another, the run live in its process all
 * that time. Postgres only: the embedded database has no lease.
 */
import type * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Clock, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, TestClock } from "effect"
import * as Database from "../../src/store/Database.js"
import { migrate } from "../../src/store/Migrations.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { type Lease, LOCK_RUN } from "../../src/store/Lease.js"
import { serverUrl } from "./fresh.js"
import { cuttable, pgProxy } from "./fixtures/pgProxy.js"
import { stored } from "./fixtures/workload.js"
import { pgSession } from "./fixtures/pgSession.js"

/** One turn of the event loop: what a connection refused by the proxy needs to be seen. */
const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * A new database, migrated, reached through a proxy that passes connections through until
 * `cutNow`, which closes them all (a lease's too) and from then on closes every new one at once: a
 * database refusing connections, which a write tries again for half a minute by the clock.
 */
const cutOff = Effect.gen(function*() {
  const direct = yield* Database.temporary(serverUrl!)
  const { cutDone, cutNow, url } = yield* cuttable(direct)
  const context = yield* Layer.build(Database.layerWith({ url }))
  yield* migrate.pipe(Effect.provide(context))
  return { context, cutDone, cutNow, direct }
})

describe.runIf(serverUrl !== undefined)("a run whose lease is lost while it ends, on Postgres", () => {
  it.scoped.each([
    ["its last batch is being written", "sunk"],
    ["the end of its row is being written", "committed"]
  ] as const)("stops at the give-up when %s, writing nothing more", ([, at]) =>
    Effect.gen(function*() {
      const { context, cutDone, cutNow, direct } = yield* cutOff
      let run: string | undefined
      /** The last event the database holds, as the run was told. */
      let committed = 0
      let last = 0
      let endedAt: number | undefined
      const running = yield* Effect.fork(
        StoredRun.backtest(stored(2, 60, {
          name: `lease lost at its end (${at})`,
          // No pause between batches: nothing of the run waits on the test's clock before the cut.
          recorder: { groupMillis: 0 },
          onCreated: (created) => (run = created.id),
          // Its last event: the main loop is done, and the run goes on to its end.
          onEvent: (event) => {
            if (event._tag !== "RunCompleted") return
            last = event.seq
            if (at === "sunk") cutNow()
          },
          onCommitted: (event) => {
            committed = event.seq
            if (at === "committed" && event._tag === "RunCompleted") cutNow()
          }
        })).pipe(
          Effect.onExit(() => Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => (endedAt = now)))),
          Effect.provide(context)
        )
      )
      yield* Deferred.await(cutDone)
      const cutAt = yield* Clock.currentTimeMillis
      // The lease's connection closed: its grace runs from now, on the clock.
      const graceEnd = cutAt + Duration.toMillis(Runs.LEASE_GRACE)
      while (!Chunk.some(yield* TestClock.sleeps(), (wake) => wake === graceEnd)) yield* turn
      // Ending: its last batch, or its row's end, tried again on a database refusing connections.
      for (let i = 0; i < 50; i++) yield* turn
      expect(Option.isNone(yield* Fiber.poll(running))).toBe(true)
      yield* TestClock.adjust(Runs.LEASE_GRACE)
      // The clock goes on, a quarter of a second at a time once what is under way has been seen:
      // before, the run ended only once its end had been tried for half a minute, then its failure.
      for (let step = 0; step < 400 && endedAt === undefined; step++) {
        for (let i = 0; i < 20 && endedAt === undefined; i++) yield* turn
        if (endedAt === undefined) yield* TestClock.adjust("250 millis")
      }
      const exit = yield* Fiber.await(running)
      expect(endedAt! - cutAt).toBeLessThanOrEqual(Duration.toMillis(Runs.LEASE_GRACE) + 1_000)
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(Option.some(new Runs.RunLeased({ run: run! })))
      // Nothing written since the cut: its row says it runs (for a takeover), and holds the events
      // committed before it — the last one not, when it was cut while its last batch was on its way.
      const admin = yield* pgSession(direct)
      const row = (yield* Effect.promise(() => admin.query("select status, failure from runs where id = $1", [run]))).rows[0]
      expect(row).toEqual({ status: "running", failure: null })
      const events = (yield* Effect.promise(() => admin.query("select count(*)::int as n from run_events where run_id = $1", [run]))).rows[0].n
      expect(events).toBe(committed)
      if (at === "sunk") expect(committed).toBeLessThan(last)
      else expect(committed).toBe(last)
    }), { timeout: 60_000 })

  it.scoped("the end of a run's row under a lease given up is refused at once on a database refusing connections, not tried again", () =>
    Effect.gen(function*() {
      const { context, cutNow } = yield* cutOff
      const run = Runs.newRunId()
      // Given up (`Runs.lease` past its grace): a stop recorded after the run's own end (a
      // backtest's `stoppedIfInterrupted`) writes under it.
      const lease = { run, backend: () => undefined, lost: () => "it could not be taken again within 5s" }
      cutNow()
      const ending = yield* Effect.fork(Runs.markEndedLeased(lease, run, "stopped", "stopped by alice").pipe(Effect.provide(context)))
      // No time passes: before, the write asked for a connection first, and was tried again for
      // half a minute (by the clock) on the connections refused, the lease long given up.
      for (let i = 0; i < 50 && Option.isNone(yield* Fiber.poll(ending)); i++) yield* turn
      const exit = Option.getOrUndefined(yield* Fiber.poll(ending))
      expect(exit !== undefined && Exit.isFailure(exit) && Option.getOrUndefined(Cause.failureOption(exit.cause))).toMatchObject({
        _tag: "LeaseNotHeld",
        run,
        reason: "it could not be taken again within 5s",
        retaking: false
      })
      yield* Fiber.interrupt(ending)
    }), { timeout: 60_000 })
})

/**
 * A new database, migrated, reached through a proxy that lets the commit of a run's end (the
 * transaction `Runs.finish` writes) reach the database and, once it has answered, closes every
 * connection before that answer is passed on — a database restarting as the run ended: committed,
 * and nobody told. New connections are refused until `reopen`.
 */
const endAnswerLost = Effect.gen(function*() {
  const direct = yield* Database.temporary(serverUrl!)
  const state = { cut: false, armed: false }
  const open = new Set<Net.Socket>()
  const cutDone = yield* Deferred.make<void>()
  const cutNow = () => {
    state.cut = true
    for (const socket of open) socket.destroy()
    Deferred.unsafeDone(cutDone, Exit.void)
  }
  const url = yield* pgProxy(direct, (socket, connectUpstream) => {
    if (state.cut) return void socket.destroy()
    const upstream = connectUpstream()
    for (const end of [socket, upstream]) {
      open.add(end)
      end.on("close", () => open.delete(end))
    }
    /** This connection writes a run's end, and its commit is on its way. */
    let finishing = false
    let committing = false
    socket.on("data", (chunk: Buffer) => {
      const text = chunk.toString("latin1")
      if (state.armed && text.includes("update runs set\n      status =")) finishing = true
      if (finishing && text.includes("COMMIT\0")) committing = true
      upstream.write(chunk)
    })
    upstream.on("data", (chunk: Buffer) => {
      // The database answered the commit: the answer is lost, with every connection.
      if (committing) return cutNow()
      socket.write(chunk)
    })
    socket.on("error", () => upstream.destroy())
    upstream.on("error", () => socket.destroy())
    socket.on("close", () => upstream.destroy())
    upstream.on("close", () => socket.destroy())
  })
  const context = yield* Layer.build(Database.layerWith({ url }))
  yield* migrate.pipe(Effect.provide(context))
  return { context, cutDone, direct, arm: () => void (state.armed = true), reopen: () => void (state.cut = false) }
})

describe.runIf(serverUrl !== undefined)("a run whose lease is lost once its end is committed, on Postgres", () => {
  it.scoped("ends as its row says it did (completed), not as a run going on elsewhere (RunLeased)", () =>
    Effect.gen(function*() {
      const { arm, context, cutDone, direct, reopen } = yield* endAnswerLost
      let run: string | undefined
      let endedAt: number | undefined
      const running = yield* Effect.fork(
        StoredRun.backtest(stored(2, 60, {
          name: "lease lost once its end is committed",
          recorder: { groupMillis: 0 },
          onCreated: (created) => (run = created.id),
          onEvent: (event) => {
            if (event._tag === "RunCompleted") arm()
          }
        })).pipe(
          Effect.onExit(() => Effect.sync(() => (endedAt = Date.now()))),
          Effect.provide(context)
        )
      )
      yield* Deferred.await(cutDone)
      const admin = yield* pgSession(direct)
      // Committed: the row says it completed, though the run was not told.
      expect((yield* Effect.promise(() => admin.query("select status from runs where id = $1", [run]))).rows).toEqual([{ status: "completed" }])
      // Another process holds its lease by the time the database is back (it looked before the
      // end was committed): taking it again is refused, and the lease given up at once.
      yield* Effect.promise(() => admin.query("select pg_advisory_lock(hashtextextended($1, 0))", [`swarm-run:${run}`]))
      reopen()
      for (let step = 0; step < 200 && endedAt === undefined; step++) {
        for (let i = 0; i < 20 && endedAt === undefined; i++) yield* turn
        if (endedAt === undefined) yield* TestClock.adjust("250 millis")
      }
      const exit = yield* Fiber.await(running)
      // Before, `RunLeased`: its server took it for a run going on elsewhere, which nobody takes over.
      expect(Exit.isSuccess(exit) ? exit.value.result.status : Cause.pretty(exit.cause)).toBe("completed")
      expect((yield* Effect.promise(() => admin.query("select status from runs where id = $1", [run]))).rows).toEqual([{ status: "completed" }])
    }), { timeout: 60_000 })
})

describe.runIf(serverUrl !== undefined)("a run whose end waits behind another session's lock as its lease is lost, on Postgres", () => {
  it.live("stops at the give-up, and the write behind the lock ends within RUN_END_WAIT, not when the lock is let go", () =>
    Effect.scoped(Effect.gen(function*() {
      const direct = yield* Database.temporary(serverUrl!)
      const context = yield* Layer.build(Database.layerWith({ url: direct }))
      yield* migrate.pipe(Effect.provide(context))
      const session = pgSession(direct)
      const [holder, taker, watcher] = [yield* session, yield* session, yield* session]
      const pause = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))
      /** The run's statements the server runs (or waits on a lock for), their text starting with `prefix`. */
      const running = (prefix: string) =>
        Effect.map(
          Effect.promise(() => watcher.query(`select count(*)::int as n from pg_stat_activity where datname = current_database()
            and state = 'active' and query like '${prefix}%' and pid <> pg_backend_pid()`)),
          (result) => result.rows[0].n as number
        )
      const until = (condition: Effect.Effect<boolean>, millis: number) =>
        Effect.gen(function*() {
          const start = Date.now()
          while (!(yield* condition)) {
            if (Date.now() - start > millis) return false
            yield* pause(20)
          }
          return true
        })
      let run: string | undefined
      let lease: Lease | undefined
      let endedAt: number | undefined
      const locked = yield* Deferred.make<void>()
      const runningRun = yield* Effect.fork(
        StoredRun.backtest(stored(2, 60, {
          name: "end behind a lock",
          onCreated: (created) => (run = created.id),
          onLeased: (held) => (lease = held),
          // The run goes on once another session holds its row: the write of its end waits for it.
          pace: () => Deferred.await(locked)
        })).pipe(
          Effect.onExit(() => Effect.sync(() => (endedAt = Date.now()))),
          Effect.provide(context)
        )
      )
      expect(yield* until(Effect.sync(() => run !== undefined && lease !== undefined), 10_000)).toBe(true)
      yield* Effect.promise(() => holder.query("begin"))
      yield* Effect.promise(() => holder.query("select 1 from runs where id = $1 for update", [run]))
      yield* Deferred.succeed(locked, undefined)
      // Its lease checked under the run's row (`LOCK_RUN`), which the end's transaction locks first.
      expect(yield* until(Effect.map(running(LOCK_RUN), (n) => n === 1), 10_000)).toBe(true)
      // Another process takes the lease as its connection closes: taking it again is refused, and given up.
      const key = `swarm-run:${run}`
      const taking = taker.query("select pg_advisory_lock(hashtextextended($1, 0))", [key])
      yield* pause(100)
      yield* Effect.promise(() => watcher.query("select pg_terminate_backend($1)", [lease!.backend()!.pid]))
      yield* Effect.promise(() => taking)
      const lostAt = Date.now()
      // Before, the run's shutdown waited for the rollback of its end, behind the lock for as long as it was held.
      expect(yield* until(Effect.sync(() => endedAt !== undefined), 3_000)).toBe(true)
      const exit = yield* Fiber.await(runningRun)
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(Option.some(new Runs.RunLeased({ run: run! })))
      // The write given up on ends by the database's deadline, its connection free again.
      expect(yield* until(Effect.map(running(LOCK_RUN), (n) => n === 0), Duration.toMillis(Runs.RUN_END_WAIT) + 1_000)).toBe(true)
      expect(Date.now() - lostAt).toBeLessThan(Duration.toMillis(Runs.RUN_END_WAIT) + 1_000)
      yield* Effect.promise(() => holder.query("rollback"))
      expect((yield* Effect.promise(() => watcher.query("select status from runs where id = $1", [run]))).rows).toEqual([{ status: "running" }])
    })), { timeout: 60_000 })
})
