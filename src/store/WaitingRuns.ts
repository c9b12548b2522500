/**
 * A server's word that an unfinished run waits there for a slot (its owner at the cap of live runs a
 * user may have there), and why (migrations/0016): what every server on a shared database says of
 * the run (`runs.get`, `runs.report`, `runs.list`), not only the one whose memory holds the wait
 * (src/edge/RunManager.ts `awaitingSlot`). The waiting server says it when the run comes to wait,
 * again every few seconds while it waits, and takes it back when it no longer waits there; a server
 * that resumes the run (the waiting one, or another taking it over) takes it back too.
 *
 * Believed only while it is fresh and no process holds the run's lease (`reasonOf`): a word left by
 * a server that died is not believed past its bound, and one left over a run some server executes
 * (taken over, a write racing its resume) never is. Said only over a run no process holds, for the
 * same reason (`say`). Only a shared database has any: the embedded one serves one process, whose
 * memory says it.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { LEASE_PREFIX } from "./Lease.js"
import { storeError } from "./StoreError.js"

/** A run waiting for a slot, and why, as its server says it. */
export interface Waiting {
  readonly run: RunId
  readonly reason: string
}

/**
 * Whether a session holds the lease of the run in column `run_id` of the row aliased `w` (as
 * `Runs.unfinishedLeases` reads `pg_locks`: the key's high 32 bits as `classid`, its low as `objid`).
 */
const leaseHeld = (sql: SqlClient.SqlClient) =>
  sql`exists (
    select 1 from pg_locks l cross join lateral (select hashtextextended(${LEASE_PREFIX} || w.run_id, 0) as key) k
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
      and l.database = (select oid from pg_database where datname = current_database())
      and l.classid::bigint = (k.key >> 32) & 4294967295 and l.objid::bigint = k.key & 4294967295
  )`

/**
 * Say (again) that `runs` wait for a slot on this server, and why, now by the database's clock: one
 * statement for them all. Not of a run ended or deleted meanwhile, nor of one a process holds the
 * lease of — another server took it over, or this one is resuming it: said again after, it would
 * outlast the wait.
 */
export const say = Effect.fn("WaitingRuns.say")(function*(runs: ReadonlyArray<Waiting>) {
  if (runs.length === 0) return
  const sql = yield* SqlClient.SqlClient
  yield* sql`insert into waiting_runs (run_id, reason, seen_at)
    select w.run_id, w.reason, now()
    from jsonb_to_recordset(${JSON.stringify(runs.map((w) => ({ run_id: w.run, reason: w.reason })))}::jsonb) as w(run_id text, reason text)
    join runs r on r.id = w.run_id and r.status in ('running', 'paused')
    where not ${leaseHeld(sql)}
    on conflict (run_id) do update set reason = excluded.reason, seen_at = excluded.seen_at`
}, storeError("say which runs wait for a slot"))

/** Take back the word that `runs` wait for a slot (whichever server said it): they go on, ended, or wait no more there. */
export const forget = Effect.fn("WaitingRuns.forget")(function*(runs: ReadonlyArray<RunId>) {
  if (runs.length === 0) return
  const sql = yield* SqlClient.SqlClient
  yield* sql`delete from waiting_runs where run_id in ${sql.in(runs)}`
}, storeError("say which runs no longer wait for a slot"))

/**
 * Why `run` waits for a slot, as the server where it waits last said it, when that was within
 * `believed` (by the database's clock) and no process holds the run's lease; undefined otherwise.
 */
export const reasonOf = Effect.fn("WaitingRuns.reasonOf")(function*(run: RunId, believed: Duration.Duration) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ reason: string }>`select w.reason from waiting_runs w
    where w.run_id = ${run} and w.seen_at > now() - make_interval(secs => ${Duration.toMillis(believed) / 1000})
      and not ${leaseHeld(sql)}`
  return rows[0]?.reason
}, storeError("read why a run waits for a slot"))
