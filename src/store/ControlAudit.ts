/**
 * Who controlled a run, and when. Every operator's pause, resume, stop, approval, rejection and
 * trading-state command (`trading`: halt, reduce only, lift) of a run that took effect is an entry of the run's control stream (`control:<run>`) in the chained
 * `audit_log` — who (user id and name), what, at what wall-clock time, and the round and reason
 * where there is one. Not a run event: a run's event log replays byte for byte, and who pressed
 * pause at what time is no input of the run. Its length and last hash are kept on the run's row
 * (migrations/0010), so `Audit.verifyRun` catches an entry changed, deleted (the last included),
 * moved or added.
 */
import { SqlClient } from "@effect/sql"
import { Clock, Effect, Option, Schema } from "effect"
import type { Principal } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import type { TradingState } from "../../schemas/Risk.js"
import { ControlAction, type ControlHistory, type RunStatusNote } from "../../schemas/Rpc.js"
import { GENESIS } from "./RunRecorder.js"
import { appendAudit } from "./Strategies.js"
import { storeError } from "./StoreError.js"
import { transaction } from "./Transaction.js"

export type Action = ControlAction["action"]

export const ACTIONS: ReadonlyArray<Action> = ["pause", "resume", "stop", "approve", "reject", "trading"]

/** One operator action, as its entry's canonical JSON says it (keys in this order). */
export interface Entry {
  readonly action: Action
  readonly run: string
  readonly by: { readonly id: string; readonly name: string }
  /** Wall-clock time, ISO 8601 (the server's `Clock`). */
  readonly at: string
  /** Approvals: the round answered. */
  readonly round?: string
  /** A rejection's reason; a pause's when it was not its operator's own call (`user <name> disabled`: `admin.setUser`); a trading-state command's. */
  readonly reason?: string
  /** A trading-state command: the state it moved the run to. */
  readonly state?: TradingState
}

/** The `audit_log` stream of a run's operator actions. */
export const streamOf = (run: string): string => `control:${run}`

/** The status a run is left in by an action that took effect; approvals change none. */
const LEAVES: Partial<Record<Action, string>> = { pause: "paused", resume: "running", stop: "stopped" }

/** An entry's canonical JSON: fixed key order, optional fields only when present. */
export const canonicalEntry = (entry: Entry): string =>
  JSON.stringify({
    action: entry.action,
    run: entry.run,
    by: { id: entry.by.id, name: entry.by.name },
    at: entry.at,
    ...(entry.round === undefined ? {} : { round: entry.round }),
    ...(entry.reason === undefined ? {} : { reason: entry.reason }),
    ...(entry.state === undefined ? {} : { state: entry.state })
  })

/**
 * Record `action` on `run` by `principal`, after `change` (the state change it makes, if any: a
 * pause's status), in one transaction holding the run's row — the lock that orders the stream's
 * writers. A pause, resume or stop is recorded only when the row then says it took effect (a run
 * that ended meanwhile was not paused); true when it was recorded.
 */
export const record = <E = never, R = never>(
  run: RunId,
  action: Action,
  principal: Principal,
  details: { readonly round?: string; readonly reason?: string; readonly state?: TradingState } = {},
  change: Effect.Effect<unknown, E, R> = Effect.void as Effect.Effect<unknown, E, R>
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const at = new Date(yield* Clock.currentTimeMillis).toISOString()
    return yield* transaction(sql, Effect.gen(function*() {
      const [locked] = yield* sql<{ status: string }>`select status from runs where id = ${run} for update`
      if (locked === undefined) return false
      yield* change
      const leaves = LEAVES[action]
      if (leaves !== undefined) {
        const [now] = yield* sql<{ status: string }>`select status from runs where id = ${run}`
        if (now?.status !== leaves) return false
      }
      const entry = canonicalEntry({ action, run, by: { id: principal.userId, name: principal.name }, at, ...details })
      const head = yield* appendAudit(streamOf(run), action, entry)
      yield* sql`update runs set control_count = control_count + 1, control_head = ${head} where id = ${run}`
      return true
    }))
  }).pipe(storeError("record an operator's action in the run's control log"), Effect.withSpan("ControlAudit.record", { attributes: { run, action } }))

/** Where a run's control stream must end, as its row says: its length and last hash. */
export const headOf = Effect.fn("ControlAudit.headOf")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ controlCount: number | string; controlHead: string | null }>`
    select control_count, control_head from runs where id = ${run}`
  return { count: Number(row?.controlCount ?? 0), hash: row?.controlHead ?? GENESIS }
}, storeError("read a run's control log"))

/** How many of a run's operator actions `history` gives at most: the latest. */
export const SHOWN = 10

const decodeAction = Schema.decodeUnknownOption(Schema.parseJson(ControlAction))

/** A run's operator actions: how many there are, and the latest `limit` of them, oldest first. */
export const history = Effect.fn("ControlAudit.history")(function*(run: RunId, limit: number = SHOWN) {
  const sql = yield* SqlClient.SqlClient
  const stream = streamOf(run)
  const [counted] = yield* sql<{ n: number | string }>`select count(*) as n from audit_log where stream = ${stream}`
  const rows = yield* sql<{ entry: string }>`
    select entry from audit_log where stream = ${stream} order by position desc limit ${limit}`
  // Shown, not vouched for (`audit verify` says whether the log is intact): one that does not decode is passed over.
  const last = [...rows].reverse().flatMap(({ entry }) => Option.toArray(decodeAction(entry)))
  return { count: Number(counted?.n ?? 0), last } satisfies ControlHistory
}, storeError("read a run's control log"))

/** What `statusOf` read: the run's status now, and what says whether it changed since (`stamp`). */
export interface StatusRead {
  /** The row's status and the length of the run's control log: unchanged, so is the note. */
  readonly stamp: string
  readonly note: RunStatusNote
}

/**
 * Run `run`'s status as its followers are told it (`RunStatusNote`): its row's status, with the
 * latest pause or resume of its control log when that is what left it so. `known`: what was read
 * before — with the same stamp (status and control log's length), it is the answer, without reading
 * the log. None: no such run.
 */
export const statusOf = Effect.fn("ControlAudit.statusOf")(function*(run: RunId, known?: StatusRead) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ status: RunStatusNote["status"]; controlCount: number | string }>`
    select status, control_count from runs where id = ${run}`
  if (row === undefined) return Option.none<StatusRead>()
  const stamp = `${row.status}/${row.controlCount}`
  if (known !== undefined && known.stamp === stamp) return Option.some(known)
  const [last] = yield* sql<{ entry: string }>`
    select entry from audit_log where stream = ${streamOf(run)} and kind in ('pause', 'resume') order by position desc limit 1`
  const action = last === undefined ? Option.none() : decodeAction(last.entry)
  // Only the action that left the run as it is says who and since when: a resume names no one of a paused run.
  const note: RunStatusNote = Option.isSome(action) && LEAVES[action.value.action] === row.status
    ? {
      status: row.status,
      by: { id: action.value.by.id, name: action.value.by.name },
      ...(action.value.reason === undefined ? {} : { reason: action.value.reason }),
      at: action.value.at.toISOString()
    }
    : { status: row.status }
  return Option.some({ stamp, note })
}, storeError("read a run's status"))
