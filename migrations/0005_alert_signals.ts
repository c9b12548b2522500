/**
 * The signal a webhook alert was delivered as, kept with the alert's claim. A paper run takes an
 * alert into its inbox and records it only with its next slice: an alert waiting there when the
 * server stops (a paused run's, or one between two slow bars) was acknowledged `202` and its key
 * taken, yet lost. Kept here, it is put back in the run's inbox when the run is resumed. Null for
 * alerts claimed before this migration.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`alter table webhook_alerts add column signal jsonb`
})
