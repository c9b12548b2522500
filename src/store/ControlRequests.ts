/**
 * Control requests relayed between server processes sharing a database (migrations/0009, 0013): a
 * process asked to stop, pause or resume a run, to answer one of its approvals, or to move its
 * trading state (`runs.trading`), that executes elsewhere
 * writes the request here and waits for its answer; the process executing the run takes it, carries
 * it out as the requesting principal, and writes the answer. Answered once: a request is either
 * taken by its holder or abandoned by its requester, never both (conditional updates).
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { Principal } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import type { TradingState } from "../../schemas/Risk.js"
import { LEASE_PREFIX } from "./Lease.js"
import { storeError } from "./StoreError.js"

export type Action = "stop" | "pause" | "resume" | "approve" | "reject" | "trading"

export interface NewRequest {
  readonly run: RunId
  readonly action: Action
  /** Approvals: the round answered, and a rejection's reason; a trading-state command's reason. */
  readonly round?: string
  readonly reason?: string
  /** A trading-state command (`trading`): the state it asks for. */
  readonly state?: TradingState
  readonly principal: Principal
}

export interface Request extends NewRequest {
  readonly id: string
}

/**
 * `done`, or the tag of the typed error the holder answered with (`Conflict`, `ApprovalNotFound`…)
 * and its reason; `result`, when the holder wrote one (a trading-state command's: the JSON of its
 * success answer, or of its typed error with every field), for the requester to answer with.
 */
export interface Answer {
  readonly answer: string
  readonly reason: string | null
  readonly result?: string | null
}

/**
 * The relay protocol this build's servers speak: 1, the actions of migration 0009 (stop, pause,
 * resume, approve, reject); 2, `trading` too (migration 0013). A server says it in the
 * `application_name` of the database sessions that hold its runs' leases (`LEASE_APPLICATION`), so
 * that a requester learns, from the run's lease itself, whether the server executing the run can
 * carry out what it asks (`holderOf`): a server of a build before this said nothing there, and
 * took a relayed `trading` without ever answering it. Said by the session, it is never stale: a
 * run taken over by another server is said by that server's session. Raised with each action added.
 */
export const RELAY_PROTOCOL = 2

/** The `application_name` of a server's lease sessions: its relay protocol after `relay/`. */
export const LEASE_APPLICATION = `swarm leases relay/${RELAY_PROTOCOL}`

/** The relay protocol each action needs of the server executing the run. */
export const PROTOCOL_OF: Readonly<Record<Action, number>> = { stop: 1, pause: 1, resume: 1, approve: 1, reject: 1, trading: 2 }

/** The relay protocol a lease session's `application_name` says: 1 when it says none (a server of a build before it). */
export const protocolOf = (applicationName: string | null): number => {
  const said = /\brelay\/(\d{1,6})\b/.exec(applicationName ?? "")
  return said === null ? 1 : Number(said[1])
}

/**
 * The server process holding `run`'s lease (executing it), as its lease session says it: its relay
 * protocol; undefined when no session holds the lease (no live process runs it, or its lease is
 * being taken again). One query over `pg_locks` and `pg_stat_activity` (whose `application_name`
 * every role may read), as `Runs.unfinishedLeases` reads the leases.
 */
export const holderOf = Effect.fn("ControlRequests.holderOf")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const key = `${LEASE_PREFIX}${run}`
  const rows = yield* sql<{ applicationName: string | null }>`
    select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid
    cross join lateral (select hashtextextended(${key}, 0) as key) k
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
      and l.database = (select oid from pg_database where datname = current_database())
      and l.classid::bigint = (k.key >> 32) & 4294967295 and l.objid::bigint = k.key & 4294967295
    limit 1`
  const row = rows[0]
  return row === undefined ? undefined : { protocol: protocolOf(row.applicationName) }
}, storeError("read which server holds a run"))

/** The requester's answer to a request nobody took in time: the caller was told so, and nobody may carry it out after. */
export const ABANDONED = "abandoned"

/** Write a request; its id. */
export const ask = Effect.fn("ControlRequests.ask")(function*(request: NewRequest) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`insert into control_requests
    (run_id, action, round_id, reason, state, principal_id, principal_name, principal_role)
    values (${request.run}, ${request.action}, ${request.round ?? null}, ${request.reason ?? null}, ${request.state ?? null},
      ${request.principal.userId}, ${request.principal.name}, ${request.principal.role})
    returning id::text as id`
  return rows[0]!.id
}, storeError("relay a control request"))

/** A request's answer, once written; whether its holder took it. */
export const answerOf = Effect.fn("ControlRequests.answerOf")(function*(id: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ answer: string | null; answerReason: string | null; result: string | null; taken: boolean }>`
    select answer, answer_reason, result, taken_at is not null as taken from control_requests where id = ${id}`
  const row = rows[0]
  return {
    taken: row?.taken ?? false,
    answer: row === undefined || row.answer === null
      ? undefined
      : { answer: row.answer, reason: row.answerReason, ...(row.result === null ? {} : { result: row.result }) } satisfies Answer
  }
}, storeError("read a control request's answer"))

/** Give up a request nobody took: true when it was given up (no holder will carry it out), false when its holder has it. */
export const abandon = Effect.fn("ControlRequests.abandon")(function*(id: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`update control_requests set answer = ${ABANDONED}, answered_at = now()
    where id = ${id} and taken_at is null and answered_at is null returning id::text as id`
  return rows.length > 0
}, storeError("abandon a control request"))

/** The requests for `runs` nobody took or gave up yet, oldest first (one indexed query). */
export const openFor = Effect.fn("ControlRequests.openFor")(function*(runs: ReadonlyArray<RunId>) {
  if (runs.length === 0) return [] as ReadonlyArray<Request>
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{
    id: string
    runId: RunId
    action: Action
    roundId: string | null
    reason: string | null
    state: TradingState | null
    principalId: string
    principalName: string
    principalRole: "admin" | "user"
  }>`select id::text as id, run_id, action, round_id, reason, state, principal_id, principal_name, principal_role
    from control_requests where answered_at is null and taken_at is null and run_id in ${sql.in(runs)} order by id`
  return rows.map((row): Request => ({
    id: row.id,
    run: row.runId,
    action: row.action,
    ...(row.roundId === null ? {} : { round: row.roundId }),
    ...(row.reason === null ? {} : { reason: row.reason }),
    ...(row.state === null ? {} : { state: row.state }),
    principal: new Principal({ userId: row.principalId, name: row.principalName, role: row.principalRole })
  }))
}, storeError("read control requests"))

/** Take a request to carry it out: false when its requester gave it up (or another process took it). */
export const take = Effect.fn("ControlRequests.take")(function*(id: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`update control_requests set taken_at = now()
    where id = ${id} and taken_at is null and answered_at is null returning id::text as id`
  return rows.length > 0
}, storeError("take a control request"))

/** Write a taken request's answer (once). */
export const answer = Effect.fn("ControlRequests.answer")(function*(id: string, answer: Answer) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`update control_requests set answer = ${answer.answer}, answer_reason = ${answer.reason}, result = ${answer.result ?? null}, answered_at = now()
    where id = ${id} and answered_at is null`
}, storeError("answer a control request"))

/** Delete the requests older than `seconds`: answered long ago, or left by a requester that went away. */
export const cleanUp = Effect.fn("ControlRequests.cleanUp")(function*(seconds: number) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`delete from control_requests where created_at < now() - make_interval(secs => ${seconds})`
}, storeError("clean up control requests"))
