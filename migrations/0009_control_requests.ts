/**
 * Control of a run through any server process: a process asked to stop, pause or resume a run, or
 * to answer one of its approvals, that it does not execute writes the request here; the process
 * executing the run takes it (`taken_at`), carries it out as the requesting principal, and writes
 * the answer (`done`, or the typed error's tag and reason). Each is answered once: the requester
 * gives up on a request nobody took (`abandoned`), with a conditional update, so that a late holder
 * never carries out what the caller was told was not done (src/store/ControlRequests.ts).
 *
 * `approval_waits` also keeps a held intent's wall-clock times, as the process holding it sees
 * them: when it was asked and when it expires (moved on while its run is paused), so that another
 * process lists it as the holder does.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table control_requests (
    id bigserial primary key,
    run_id text not null,
    action text not null check (action in ('stop', 'pause', 'resume', 'approve', 'reject')),
    round_id text,
    reason text,
    principal_id text not null,
    principal_name text not null,
    principal_role text not null check (principal_role in ('admin', 'user')),
    created_at timestamptz not null default now(),
    taken_at timestamptz,
    answer text,
    answer_reason text,
    answered_at timestamptz
  )`
  // What a holder looks for every quarter of a second: the unanswered requests for its runs.
  yield* sql`create index control_requests_open on control_requests (run_id) where answered_at is null`
  yield* sql`create index control_requests_created on control_requests (created_at)`
  yield* sql`alter table approval_waits add column requested_at_ms bigint`
  yield* sql`alter table approval_waits add column expires_at_ms bigint`
})
