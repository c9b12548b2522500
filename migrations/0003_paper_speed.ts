/**
 * A paper run's pace — how many times faster than its bars' own spacing it is replayed — so a
 * server that restarts resumes it at the pace it was started with. Null for backtests, which run
 * as fast as they can.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`alter table runs add column speed double precision check (speed is null or speed > 0)`
})
