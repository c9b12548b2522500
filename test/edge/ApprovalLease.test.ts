/**
 * An operator's answer to a held intent is taken only while this server holds the run's lease: the
 * run records it (`ApprovalResolved`) under the lease. Its lease's connection closed and being taken
 * again, the answer waits; given up meanwhile, the operator is told so (`Conflict`, saying why),
 * nothing taken, and the run's events claim no answer. Before, the answer was taken at once and the
 * operator told it was applied, while the run stopped at the give-up without recording it.
 * Postgres only: the embedded database has no lease. The seam is a proxy that cuts only the lease
 * connections (their `application_name`), so the rest of the server goes on meanwhile.
 */
import type * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { LEASE_PREFIX } from "../../src/store/Lease.js"
import * as Runs from "../../src/store/Runs.js"
import { freshPostgresUrl, serverUrl } from "../store/fixtures/backends.js"
import { pgProxy } from "../store/fixtures/pgProxy.js"
import { approvalServerOn, guarded, until } from "./fixtures.js"
import { pgSession } from "../store/fixtures/pgSession.js"

const pause = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

/**
 * `direct` reached through a proxy that, once `cutLeases`, closes the connections of the runs'
 * leases (the pool named `swarm leases`, said in each connection's startup message) and refuses new
 * ones: the leases are being taken again, and given up at their grace, while every other query goes on.
 */
const leasesCuttable = (direct: string) =>
  Effect.gen(function*() {
    const cut = { on: false, stalling: false }
    const leaseSockets = new Set<Net.Socket>()
    /** Sends on of the connections whose lease checks are held back (`stallChecks`). */
    const stalled = new Set<() => void>()
    const url = yield* pgProxy(direct, (socket, connectUpstream) => {
      const upstream = connectUpstream()
      socket.once("data", (startup) => {
        if (startup.includes("swarm leases")) {
          if (cut.on) return void socket.destroy()
          leaseSockets.add(socket)
          socket.on("close", () => leaseSockets.delete(socket))
          upstream.write(startup)
          return void socket.pipe(upstream)
        }
        upstream.write(startup)
        // A query connection: once `stallChecks`, a lease check (`Lease.HOLDS`, which reads
        // pg_locks) and all that follows it on the connection wait until `releaseChecks`.
        let held: Array<Buffer> | undefined
        socket.on("data", (chunk: Buffer) => {
          if (held !== undefined) return void held.push(chunk)
          if (!cut.stalling || !chunk.includes("pg_locks")) return void upstream.write(chunk)
          held = [chunk]
          stalled.add(function release() {
            stalled.delete(release)
            for (const piece of held!) upstream.write(piece)
            held = undefined
          })
        })
      })
      upstream.pipe(socket)
      socket.on("close", () => upstream.destroy())
      upstream.on("close", () => socket.destroy())
      socket.on("error", () => upstream.destroy())
      upstream.on("error", () => socket.destroy())
    })
    const cutLeases = () => {
      cut.on = true
      for (const socket of leaseSockets) socket.destroy()
    }
    const stallChecks = () => void (cut.stalling = true)
    const releaseChecks = () => {
      cut.stalling = false
      for (const release of [...stalled]) release()
    }
    return { url, cutLeases, stallChecks, releaseChecks }
  })

/** A server on `url` (through the proxy), alice's client of it, and a session of the test's own on `direct`. */
const serverOn = (url: string, direct: string) =>
  Effect.gen(function*() {
    const { alice, context } = yield* approvalServerOn(url)
    const admin = yield* pgSession(direct)
    /** How many sessions hold `run`'s lease (its advisory lock: `Lease.HOLDS`'s key). */
    const leasesHeld = (run: string) =>
      Effect.map(
        Effect.promise(() =>
          admin.query<{ n: number }>(
            `select count(*)::int as n from pg_locks l where l.locktype = 'advisory' and l.granted and l.objsubid = 1
              and l.classid::bigint = (hashtextextended($1, 0) >> 32) & 4294967295 and l.objid::bigint = hashtextextended($1, 0) & 4294967295`,
            [`${LEASE_PREFIX}${run}`]
          )
        ),
        (result) => result.rows[0]!.n
      )
    /**
     * `run`'s events claim no answer, and its row says it runs (for the server that takes it over,
     * where the intent is asked again) — looked at once what was under way has had its time.
     */
    const claimsNoAnswer = (run: string) =>
      Effect.gen(function*() {
        yield* pause(500)
        const resolved = yield* Runs.events(run as RunId).pipe(
          Effect.map((rows) => rows.filter((row) => row.tag === "ApprovalResolved")),
          Effect.provide(context)
        )
        expect(resolved).toEqual([])
        expect((yield* alice("runs.get", { run })).status).toBe("running")
      })
    return { alice, claimsNoAnswer, context, leasesHeld }
  })

describe.runIf(serverUrl !== undefined)("an answer to a held intent under the run's lease, on Postgres", () => {
  it.live("its lease being taken again, the answer waits; given up, it is refused (Conflict), and the run's events claim none", () =>
    Effect.scoped(Effect.gen(function*() {
      const direct = yield* freshPostgresUrl
      const { cutLeases, url } = yield* leasesCuttable(direct)
      const { alice, claimsNoAnswer, leasesHeld } = yield* serverOn(url, direct)

      yield* alice("strategies.create", { strategy: guarded("guarded", 600) })
      const run = yield* alice("runs.start", { strategy: "guarded", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
      const [held] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "the first approval")
      expect(yield* leasesHeld(run.id)).toBe(1)

      // The lease's connection closes (the database's session with it, and the lock): taken again,
      // refused by the proxy, until it is given up at its grace (5 s).
      cutLeases()
      yield* until(leasesHeld(run.id), (n) => n === 0, "the lease's session to end")
      yield* pause(200)

      const answering = yield* Effect.fork(Effect.either(alice("approvals.approve", { run: run.id, round: held!.round })))
      // Before, taken at once: the operator told it was applied, the run about to stop without it.
      yield* pause(1_000)
      expect(Option.getOrUndefined(yield* Fiber.poll(answering))?._tag).toBeUndefined()
      const answer = yield* Fiber.join(answering)
      expect(answer._tag).toBe("Left")
      const error = answer._tag === "Left" ? answer.left : undefined
      expect(error?._tag).toBe("Conflict")
      expect(error?._tag === "Conflict" && error.reason).toMatch(
        new RegExp(`run ${run.id} is no longer this server's to change: it does not hold the run's lease \\(it could not be taken again within 5s .*\\)\\. Nothing was changed`)
      )

      // The run stopped at the give-up, its events claiming no answer; its row says it runs, for
      // the server that takes it over, where the intent is asked again.
      yield* claimsNoAnswer(run.id)
    })), { timeout: 60_000 })

  it.live("its lease given up after the answer was handed to the run and before the run recorded it: refused (Conflict), not told applied", () =>
    Effect.scoped(Effect.gen(function*() {
      const direct = yield* freshPostgresUrl
      const { cutLeases, releaseChecks, stallChecks, url } = yield* leasesCuttable(direct)
      const { alice, claimsNoAnswer, leasesHeld } = yield* serverOn(url, direct)
      yield* alice("strategies.create", { strategy: guarded("guarded", 600) })
      const run = yield* alice("runs.start", { strategy: "guarded", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
      const [held] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "the first approval")
      expect(yield* leasesHeld(run.id)).toBe(1)

      // The lease is held when the answer comes; the recorder's batch with its resolution waits at
      // its lease check, and meanwhile the lease's connection closes and cannot be had again.
      // Let go whatever happens, or the server's shutdown would wait on the connections held back.
      yield* Effect.addFinalizer(() => Effect.sync(releaseChecks))
      stallChecks()
      const answering = yield* Effect.fork(Effect.either(alice("approvals.approve", { run: run.id, round: held!.round })))
      yield* until(alice("approvals.pending", {}), (p) => !p.some((item) => item.round === held!.round), "the run to take the answer")
      cutLeases()
      yield* until(leasesHeld(run.id), (n) => n === 0, "the lease's session to end")
      releaseChecks()

      // Before, told at once that it was applied; the run then stopped at the give-up without recording it.
      const answer = yield* Fiber.join(answering)
      expect(answer._tag).toBe("Left")
      const error = answer._tag === "Left" ? answer.left : undefined
      expect(error?._tag).toBe("Conflict")
      expect(error?._tag === "Conflict" && error.reason).toMatch(
        new RegExp(`run ${run.id} is no longer this server's to change: it does not hold the run's lease \\(.*\\)\\. Nothing was changed; .*ask again`)
      )
      yield* claimsNoAnswer(run.id)
    })), { timeout: 60_000 })

  it.live("its lease held throughout: answered once the run has recorded it", () =>
    Effect.scoped(Effect.gen(function*() {
      const direct = yield* freshPostgresUrl
      const { url } = yield* leasesCuttable(direct)
      const { alice, context } = yield* serverOn(url, direct)
      yield* alice("strategies.create", { strategy: guarded("guarded", 600) })
      const run = yield* alice("runs.start", { strategy: "guarded", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
      const [held] = yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "the first approval")
      yield* alice("approvals.approve", { run: run.id, round: held!.round })
      const resolved = yield* Runs.events(run.id as RunId).pipe(
        Effect.map((rows) => rows.filter((row) => row.tag === "ApprovalResolved" && row.body.includes(held!.round))),
        Effect.provide(context)
      )
      expect(resolved.length).toBe(1)
    })), { timeout: 60_000 })
})

describe.runIf(serverUrl !== undefined)("the relay's polling queries behind another session's lock, on Postgres", () => {
  it.live("each ends at its deadline (RELAY_QUERY_WAIT, 2 s), its connection free again, not when the lock is let go", () =>
    Effect.scoped(Effect.gen(function*() {
      const direct = yield* freshPostgresUrl
      const { alice } = yield* serverOn(direct, direct)
      // A live run here: the server looks for requests relayed to it four times a second.
      yield* alice("strategies.create", { strategy: guarded("guarded", 600) })
      yield* alice("runs.start", { strategy: "guarded", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
      yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "the first approval")
      const [locker, watcher] = [yield* pgSession(direct), yield* pgSession(direct)]
      yield* Effect.promise(() => locker.query("begin; lock table control_requests in access exclusive mode"))
      yield* pause(3_500)
      // Before, the look under way when the lock was taken waited on it, holding its connection, as long as it was held.
      const stuck = yield* Effect.promise(() =>
        watcher.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and state = 'active'
          and query like '%control_requests%' and now() - query_start > interval '2500 milliseconds' and pid <> pg_backend_pid()`))
      yield* Effect.promise(() => locker.query("rollback"))
      expect(stuck.rows[0].n).toBe(0)
    })), { timeout: 60_000 })
})
