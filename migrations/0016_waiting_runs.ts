/**
 * The unfinished runs a server keeps waiting for a slot (their owner at the cap of live runs a user
 * may have there, `SWARM_MAX_LIVE_RUNS_PER_USER`), and why, as that server says it — so that every
 * server on a shared database says it of them (`runs.get`, `runs.report`, `runs.list`), not only the
 * one whose memory holds the wait (src/store/WaitingRuns.ts). `seen_at`: when that server last said
 * it (the database's clock); it says it again every few seconds, and a word older than the bound is
 * not believed (a server that died). Kept apart from `runs`: said again that often, it would rewrite
 * the run's wide row each time, and take its row lock, which the run's lease orders its writes by. No
 * foreign key, as the other tables of a run's rows (`Runs.remove` deletes them). Idempotent (`if
 * not exists`).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table if not exists waiting_runs (
    run_id text primary key,
    reason text not null,
    seen_at timestamptz not null default now()
  )`
})
