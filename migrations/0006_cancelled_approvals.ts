/**
 * An approval can be `cancelled`: its run ended (stopped, failed or completed) while the intent
 * still waited for an operator. Before, such a row stayed `pending` for ever, and answering it
 * later said there was no such approval. The check constraint of 0001 (Postgres names an inline
 * column check `<table>_<column>_check`) is replaced by one that allows the new status.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`alter table approvals drop constraint approvals_status_check`
  yield* sql`alter table approvals add constraint approvals_status_check
    check (status in ('pending', 'approved', 'rejected', 'expired', 'cancelled'))`
})
