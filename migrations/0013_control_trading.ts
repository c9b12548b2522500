/**
 * Operators' trading-state commands (`runs.trading`) relayed between server processes sharing a
 * database, as their other control is (migrations/0009): the action `trading`, the state it asks
 * for (`state`), and what its holder answered in full (`result`: the JSON of the success answer, or
 * of the typed error with its fields) — a remote caller gets the answer a local caller gets, the
 * change made (from, to, actor, the bar's time) or `IllegalTransition` with its states, not only a
 * tag and a reason.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // The check 0009 declared inline, as Postgres (and PGlite) named it.
  yield* sql`alter table control_requests drop constraint control_requests_action_check`
  yield* sql`alter table control_requests add constraint control_requests_action_check
    check (action in ('stop', 'pause', 'resume', 'approve', 'reject', 'trading'))`
  yield* sql`alter table control_requests add column state text
    check (state is null or state in ('active', 'reducing', 'halted'))`
  yield* sql`alter table control_requests add constraint control_requests_trading_state
    check ((action = 'trading') = (state is not null))`
  yield* sql`alter table control_requests add column result text`
})
