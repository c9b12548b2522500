/**
 * How long each held intent has waited for an operator while its run went on (wall-clock
 * milliseconds, a paused run's time not counted): a server that restarts goes on with what is left
 * of the strategy's approval timeout instead of starting it again (src/edge/RunManager.ts). Kept
 * apart from `approvals`, which holds what the run's events say (the audit checks it against
 * them): this is the server's own bookkeeping, written while the intent waits. No foreign key, as
 * the other tables of a run's rows (`Runs.remove` deletes them).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table approval_waits (
    run_id text not null,
    round_id text not null,
    waited_ms bigint not null check (waited_ms >= 0),
    primary key (run_id, round_id)
  )`
})
