/**
 * A run's lease whose connection closed (`Runs.lease`): taken again while the database is away,
 * and given up at the end of the grace (`Runs.LEASE_GRACE`) — by the clock, whatever an attempt to
 * take it again is doing. Postgres only: the embedded database has no lease.
 */
import type * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Layer, TestClock } from "effect"
import * as Database from "../../src/store/Database.js"
import { PgPool } from "../../src/store/Pool.js"
import * as Runs from "../../src/store/Runs.js"
import { serverUrl } from "./fresh.js"
import { join, pgProxy } from "./fixtures/pgProxy.js"
import { pgSession } from "./fixtures/pgSession.js"

describe.runIf(serverUrl !== undefined)("a lease whose connection closed, on Postgres", () => {
  it.scoped("is given up at the end of the grace, by the clock, while an attempt to take it again still hangs", () =>
    Effect.gen(function*() {
      const direct = yield* Database.temporary(serverUrl!)
      // Between this process and the database: passes connections through until `cut`, then
      // takes new ones and answers nothing (a network cut, a server too busy to answer): a
      // connection attempt then waits for its connect timeout (10 s).
      const cut = { on: false }
      const hanging = new Set<Net.Socket>()
      const hung = yield* Deferred.make<void>()
      const url = yield* pgProxy(direct, (socket, connectUpstream) => {
        if (cut.on) {
          hanging.add(socket)
          socket.on("close", () => hanging.delete(socket))
          Deferred.unsafeDone(hung, Exit.void)
          return
        }
        join(socket, connectUpstream())
      })
      const context = yield* Layer.build(Database.layerWith({ url }))
      // Before the database's pools close (finalizers run last added first): no attempt is left hanging.
      yield* Effect.addFinalizer(() => Effect.sync(() => {
        for (const socket of hanging) socket.destroy()
      }))
      const lostAt = yield* Deferred.make<void>()
      const lease = (yield* Runs.lease(Runs.newRunId(), () => Deferred.unsafeDone(lostAt, Exit.void)).pipe(Effect.provide(context)))!
      const admin = yield* pgSession(direct)
      cut.on = true
      yield* Effect.promise(() => admin.query("select pg_terminate_backend($1)", [lease.backend()!.pid]))
      // Its connection closed; the attempt to take it again hangs, and the grace is on the clock.
      yield* Deferred.await(hung)
      while ((yield* TestClock.sleeps()).length === 0) yield* Effect.yieldNow()
      yield* TestClock.adjust(Runs.LEASE_GRACE)
      yield* Deferred.await(lostAt)
      // Given up then, the attempt still hanging (its connection is the leases' pool's one, still
      // connecting): before, only that attempt's failure (at its connect timeout, twice the grace)
      // decided it — past the moment another server may take the run over.
      expect(Context.get(context, PgPool).leases.totalCount).toBe(1)
      expect(lease.lost()).toMatch(/could not be taken again within 5s \(the database did not answer\)/)
      expect(lease.backend()).toBeUndefined()
    }), { timeout: 60_000 })
})
