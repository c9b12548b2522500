/**
 * A held intent's bookkeeping (`Runs.holdApproval`, `saveApprovalWaited`, `saveApprovalExpiry`) is
 * given up on after 2 s, the run going on without it; the database ends the write there too
 * (`Database.withDeadline`). Before, a write given up on behind a lock ran on, holding a connection
 * of the pool, for as long as the lock was held, and landed after. Postgres only: the embedded
 * database ends nothing and has one connection.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { freshPostgresUrl, serverUrl } from "../store/fixtures/backends.js"
import { approvalServerOn, guarded, until } from "./fixtures.js"
import { pgSession } from "../store/fixtures/pgSession.js"

const pause = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

describe.runIf(serverUrl !== undefined)("a held intent's bookkeeping, on Postgres", () => {
  it.live("given up on behind another session's lock, it is ended by the database at its deadline, and the run goes on", () =>
    Effect.scoped(Effect.gen(function*() {
      const url = yield* freshPostgresUrl
      const { alice } = yield* approvalServerOn(url)
      const session = pgSession(url)
      const [admin, watcher] = [yield* session, yield* session]
      const query = (text: string) => Effect.promise(() => admin.query(text))
      /**
       * The bookkeeping's writes the server runs, or waits on the lock for: each one's session and
       * start. From a session of its own: within a transaction (the lock's), the server keeps the
       * first look at pg_stat_activity for the rest of it.
       */
      const writing = Effect.map(
        Effect.promise(() =>
          watcher.query(`select pid, query_start::text as started from pg_stat_activity where datname = current_database()
            and pid <> pg_backend_pid() and state = 'active' and query like 'insert into approval_waits%'`)
        ),
        (result) => result.rows.map((row) => `${row.pid} ${row.started}`)
      )
      // Reads of the table go on; its writes wait for the lock (a slow migration, an administrator's transaction).
      yield* query("begin; lock table approval_waits in exclusive mode")
      yield* alice("strategies.create", { strategy: guarded("guarded", 60) })
      const run = yield* alice("runs.start", { strategy: "guarded", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
      yield* until(alice("approvals.pending", {}), (p) => p.length > 0, "the first approval")
      const [first] = yield* until(writing, (writes) => writes.length > 0, "the held intent's write to wait on the lock", 250)
      const seenAt = Date.now()
      // Given up on at 2 s, ended by the database at 2 s of its own: before, it waited on as long as
      // the lock was held (the next saves of how long the intent waited come meanwhile, and go as it did).
      yield* until(writing, (writes) => !writes.includes(first!), "the write given up on to end", 300)
      expect(Date.now() - seenAt).toBeLessThan(5_000)
      yield* query("commit")
      yield* pause(300)
      // The intent's hold (its times) did not land after: the write given up on was rolled back. (A
      // save of how long it waited, under way as the lock went, may land: it has no times.)
      expect((yield* query("select count(*)::int as n from approval_waits where requested_at_ms is not null")).rows).toEqual([{ n: 0 }])
      // The run went on waiting for its operator all the while.
      expect((yield* alice("runs.get", { run: run.id })).status).toBe("running")
      yield* alice("runs.stop", { run: run.id })
    })), { timeout: 60_000 })
})
