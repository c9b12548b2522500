/**
 * A run stopped or failed before it completed has no metrics of its own; its figures up to where
 * it ended are rebuilt from its data and fills (agents/system/Tools.ts `upToStop`) — its whole
 * feed read again and its equity marked bar by bar, seconds for a large run. `runs list` did that
 * for every such run it listed, each time it was asked (dashboards poll it). Such a run records
 * nothing more unless resumed by name, so the first reader that rebuilds them keeps them here, as
 * JSON, with the run's last event they were made at (agents/system/Tools.ts `KeptUpToStop`): they
 * are its figures while that is its last event. Null until then. Idempotent (`if not exists`).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`alter table runs add column if not exists up_to_stop jsonb`
})
