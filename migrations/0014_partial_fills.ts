/**
 * An order may have several fills: with a volume limit (`execution.maxVolumePercent`) the paper
 * broker fills it in parts across bars, each a fill of its own id (`<order>:fill`, `<order>:fill:2`…).
 * The fills table kept one per order (`unique (run_id, order_id)`, from migration 1): a stored run
 * with a second part would fail to record. Each fill stays unique by its id (the primary key, which
 * the ledger's exactly-once booking mirrors); an index keeps an order's fills quick to find.
 * Idempotent (`if exists`, `if not exists`), as a database rolled back past it may run it again.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // The constraint migration 1 declared inline, as Postgres (and PGlite) named it.
  yield* sql`alter table fills drop constraint if exists fills_run_id_order_id_key`
  yield* sql`create index if not exists fills_order on fills (run_id, order_id)`
})
