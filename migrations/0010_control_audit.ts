/**
 * Who controlled a run: each operator's pause, resume, stop, approval and rejection that took effect
 * is an entry of the run's `control:<run>` stream in `audit_log` (src/store/ControlAudit.ts). The
 * run's row keeps the stream's length and last hash, written in the transaction that appends, so an
 * entry deleted from its end is caught as the strategies' `audit_head` catches a version's.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`alter table runs add column control_count bigint not null default 0`
  yield* sql`alter table runs add column control_head text`
})
