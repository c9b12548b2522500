/**
 * A run's recorded inputs are sealed when it is created: `inputs_seal` holds the SHA-256 of each
 * input column as the database keeps it (`Runs.INPUTS_SEAL`), so that `swarm audit verify` sees
 * one changed after the run (a strategy snapshot, its faults, its event detail) — which a replay
 * would otherwise report as a run that does not reproduce. Runs recorded before have none: verify
 * says what it cannot check for them.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`alter table runs add column inputs_seal jsonb`
})
