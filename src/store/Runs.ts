/**
 * Runs: created numbered (per strategy, atomically), finished with their results, listed and read
 * back with their event log. The rows a run writes while it goes are the recorder's
 * (`RunRecorder.ts`); this module owns the `runs` row itself.
 */
import { randomBytes } from "node:crypto"
import { SqlClient, type Statement } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Option, Runtime, Schema, type Scope } from "effect"
import type * as Pg from "pg"
import type { RunId, StrategyId } from "../../schemas/Ids.js"
import { MoneyAmount } from "../../schemas/Execution.js"
import { Metrics } from "../../schemas/Metrics.js"
import type { Money } from "../../schemas/Money.js"
import type { StateTransition } from "../../schemas/Risk.js"
import type { RunMode } from "../../schemas/RunEvent.js"
import { type AgentRestarts, StrategyNotFound, type LlmUsage } from "../../schemas/Rpc.js"
import { defaultLlmConfig } from "../../schemas/Llm.js"
import { RunStarted, TradingStateChanged } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import { Trade } from "../../schemas/Trade.js"
import { type LlmTally, llmUsageOf, restartsOf } from "../swarm/AgentTally.js"
import { FaultPlan } from "../swarm/Run.js"
import { type CheckpointState, GENESIS } from "./RunRecorder.js"
import { BARRIER, HOLDS, holdsParameters, type Lease, LEASE_PREFIX, type LeaseNotHeld, LOCK_RUN, notHeld, retryLeased, SESSION, type Session } from "./Lease.js"
import * as Database from "./Database.js"
import { decodedByText } from "./DecodedText.js"
import { connectListening, PgPool } from "./Pool.js"
import { CorruptRecord, RunNotFound, StoreError, storeError } from "./StoreError.js"
import { oneLineOf } from "../internal/issues.js"
import { transaction } from "./Transaction.js"
import * as Transient from "./Transient.js"

export const newRunId = (): RunId => `run_${randomBytes(6).toString("hex")}` as RunId

export type RunStatus = "running" | "paused" | "completed" | "failed" | "stopped"

export interface NewRun {
  readonly owner: string
  readonly strategyId: StrategyId
  readonly strategyVersion: number
  readonly strategy: Strategy
  readonly mode: RunMode
  readonly seed: string
  /** Where the bars come from, as JSON (files and their hashes, or the synthetic market's settings). */
  readonly dataSource: unknown
  readonly dataFingerprint: string
  readonly eventDetail: string
  readonly faults?: FaultPlan
  readonly replayOf?: RunId
  /** Paper runs: the pace they are replayed at (times the bars' own spacing). */
  readonly speed?: number
  /** The run's id, when it was chosen first (`StoredRun.backtest` leases it before the row exists); default a new one. */
  readonly id?: RunId
}

export interface Created {
  readonly id: RunId
  /** 1, 2, 3… per strategy. */
  readonly number: number
}

const encodeStrategy = Schema.encodeSync(Strategy)
const encodeMetrics = Schema.encodeSync(Metrics)
/** A column that does not decode is a `CorruptRecord` naming the run and the column, never a defect. */
const decodeColumn = <A, I>(schema: Schema.Schema<A, I>, run: string, column: string) => (value: unknown) =>
  Schema.decodeUnknown(schema)(value).pipe(
    Effect.mapError((error) => new CorruptRecord({ table: "runs", key: run, column, reason: oneLineOf(error) }))
  )

/** A run's recorded inputs, by the name a report gives them, and their column. */
export const INPUTS = [
  ["strategy snapshot", "strategy"],
  ["strategy", "strategy_id"],
  ["strategy version", "strategy_version"],
  ["mode", "mode"],
  ["seed", "seed"],
  ["data source", "data_source"],
  ["data fingerprint", "data_fingerprint"],
  ["event detail", "event_detail"],
  ["faults", "faults"],
  ["pace", "speed"]
] as const

/**
 * The seal of a run's inputs, computed by the database from its row: each input's SHA-256, of the
 * column's text as the database keeps it (jsonb normalised), so that the same row always gives the
 * same seal whatever client wrote it and whatever the strategy schema has become since.
 */
export const inputsSeal = (sql: SqlClient.SqlClient) =>
  sql.literal(
    `jsonb_build_object(${
      INPUTS.map(([, column]) => `'${column}', encode(sha256(convert_to(coalesce(${column}::text, 'null'), 'UTF8')), 'hex')`).join(", ")
    })`
  )

/**
 * A new `running` run. Its number is the strategy's run count plus one, taken under the strategy
 * row's lock in the same transaction as the insert: two concurrent starts never share a number.
 */
export const create = Effect.fn("Runs.create")(function*(run: NewRun) {
  const sql = yield* SqlClient.SqlClient
  const id = run.id ?? newRunId()
  return yield* transaction(sql, Effect.gen(function*() {
    // The row's lock also orders the run against a delete of its strategy (`Strategies.remove`):
    // a strategy deleted first has no row here, and a delete after sees this run unfinished.
    const [counted] = yield* sql<{ runCount: number }>`
      update strategies set run_count = run_count + 1 where id = ${run.strategyId} and deleted_at is null returning run_count`
    if (counted === undefined) return yield* new StrategyNotFound({ strategy: run.strategyId })
    yield* sql`insert into runs ${
      sql.insert({
        id,
        strategyId: run.strategyId,
        strategyVersion: run.strategyVersion,
        number: counted.runCount,
        ownerId: run.owner,
        mode: run.mode,
        status: "running",
        seed: run.seed,
        strategy: JSON.stringify(encodeStrategy(run.strategy)),
        dataSource: JSON.stringify(run.dataSource),
        dataFingerprint: run.dataFingerprint,
        eventDetail: run.eventDetail,
        faults: run.faults === undefined ? null : JSON.stringify(run.faults),
        replayOf: run.replayOf ?? null,
        speed: run.speed ?? null
      })
    }`
    // Sealed as the row was written, in its transaction: a change to its inputs later is seen by `Audit.verifyRun`.
    yield* sql`update runs set inputs_seal = ${inputsSeal(sql)} where id = ${id}`
    return { id, number: counted.runCount } satisfies Created
  }))
}, storeError("create a run"))

export interface Finish {
  readonly status: RunStatus
  readonly failure?: string
  readonly checksum: string
  readonly metrics: Metrics
  readonly counts: Record<string, number>
  readonly tradingState: string
  readonly from: number
  readonly to: number
  /** The event chain's length and last hash. */
  readonly chain: { readonly count: number; readonly hash: string }
}

export const finish = Effect.fn("Runs.finish")(function*(id: RunId, result: Finish, lease?: Lease) {
  const sql = yield* SqlClient.SqlClient
  // The run has ended: a database blip must not leave its row saying `running` (Transient.ts).
  // Only under its lease: a process that lost it writes nothing (another may be running the run).
  yield* retryLeased(endAttempt(lease, transaction(sql, Effect.zipRight(checkLease(lease), Effect.zipRight(sql`update runs set
      status = ${result.status},
      failure = ${result.failure ?? null},
      checksum = ${result.checksum},
      metrics = ${JSON.stringify(encodeMetrics(result.metrics))}::jsonb,
      counts = ${JSON.stringify(result.counts)}::jsonb,
      trading_state = ${result.tradingState},
      period_from = ${result.from},
      period_to = ${result.to},
      chain_count = ${result.chain.count},
      chain_head = ${result.chain.hash},
      finished_at = now()
    where id = ${id}`, cancelWaiting(id))))), lease)
}, storeError("finish a run"))

/**
 * How long one attempt at the write of a run's end by the process executing it (`finish`,
 * `markEndedLeased`) may take, ended there by the database too (`Database.withDeadline`). Unbounded,
 * an attempt behind a lock (another session holding the run's row) held its connection as long as
 * the lock was held — and, the lease given up meanwhile, the run's shutdown with it, which waits for
 * the attempt's rollback. Past it, the attempt fails (not tried again): the run's row still says it
 * runs, and it is resumed or taken over from what was committed.
 */
export const RUN_END_WAIT = Duration.seconds(5)

/** Under a lease (a shared database: none on the embedded one, whose one connection a lock cannot hold from another session). */
const endAttempt = <A, E, R>(lease: Lease | undefined, attempt: Effect.Effect<A, E, R>) =>
  lease === undefined ? attempt : Database.withDeadline({
    duration: RUN_END_WAIT,
    onTimeout: () => new SqlError({ message: `no answer within ${Duration.format(RUN_END_WAIT)}` })
  })(attempt)

/**
 * Whether run `id`'s row says it ended as `end` does (its status, checksum and event chain's
 * length): that end was committed. Asked by a run that gave up its lease while the write of its end
 * was under way — the commit's answer lost with its connection, the lease's with it — so that the
 * run says how it ended as its row does.
 */
export const endedAs = Effect.fn("Runs.endedAs")(function*(id: RunId, end: Pick<Finish, "status" | "checksum" | "chain">) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ status: string; checksum: string | null; chainCount: number | null }>`
    select status, checksum, chain_count from runs where id = ${id}`
  const row = rows[0]
  return row !== undefined && row.status === end.status && row.checksum === end.checksum && row.chainCount === end.chain.count
}, storeError("read how a run ended"))

/**
 * A run that ended before its end: `failed` (it could not go on) or `stopped` (interrupted on
 * purpose). What was recorded stays, and its chain's length and last hash are recorded as it ends
 * (as `finish` does), so rows deleted from its end later are seen by `Audit.verifyRun`. An already
 * finished run is left as it is.
 */
export const markEnded = Effect.fn("Runs.markEnded")(function*(id: RunId, status: "failed" | "stopped", reason: string) {
  const sql = yield* SqlClient.SqlClient
  // The run has ended: a database blip must not leave its row saying `running` in no process.
  yield* Transient.retry(transaction(sql, ending(sql, id, status, reason)))
}, storeError("mark a run ended"))

/**
 * `markEnded` by the process executing the run, under its lease (none: the embedded database's
 * one process): `LeaseNotHeld`, and nothing written, when it no longer holds it — the run goes on
 * in the process that took it over, and its row is that one's.
 */
export const markEndedLeased = Effect.fn("Runs.markEndedLeased")(function*(lease: Lease | undefined, id: RunId, status: "failed" | "stopped", reason: string) {
  const sql = yield* SqlClient.SqlClient
  yield* retryLeased(endAttempt(lease, transaction(sql, Effect.zipRight(checkLease(lease), ending(sql, id, status, reason)))), lease)
}, storeError("mark a run ended"))

const ending = (sql: SqlClient.SqlClient, id: RunId, status: "failed" | "stopped", reason: string) =>
  Effect.zipRight(
    sql`update runs set status = ${status}, failure = ${reason}, finished_at = now(),
      chain_count = (select count(*) from run_events where run_id = ${id}),
      chain_head = coalesce((select hash from run_events where run_id = ${id} order by seq desc limit 1), ${GENESIS})
    where id = ${id} and status in ('running', 'paused')`,
    cancelWaiting(id)
  )

/** Who cancelled an approval whose run ended, by how the run ended, and why. */
const CANCELLED: Record<string, { readonly by: string; readonly reason: string }> = {
  stopped: { by: "stop", reason: "the run was stopped before anyone answered it" },
  failed: { by: "failure", reason: "the run failed before anyone answered it" },
  completed: { by: "completion", reason: "the run completed before anyone answered it" }
}

/**
 * The approvals of a run that ended still `pending` become `cancelled`, saying how the run ended:
 * nobody can answer them any more (a `stopped` run resumed by name asks them again:
 * `reopenCancelledApprovals`). Only once the run's row says it ended: a run that goes on (suspended
 * by a shutdown, or executing in another process) keeps its approvals waiting. No event records a
 * cancellation — the run's events end before it — so a replay or a resume never answers with one.
 */
const cancelWaiting = (id: RunId) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.flatMap(sql<{ status: string }>`select status from runs where id = ${id}`, (rows) => {
      const how = rows[0] === undefined ? undefined : CANCELLED[rows[0].status]
      return how === undefined ? Effect.void : sql`update approvals set status = 'cancelled', resolved_by = ${how.by}, reason = ${how.reason}
        where run_id = ${id} and status = 'pending'`
    }))

/**
 * A stopped run resumed by name asks its cancelled approvals again: they wait (`pending`) until it
 * answers them or ends again.
 */
export const reopenCancelledApprovals = Effect.fn("Runs.reopenCancelledApprovals")(function*(id: RunId) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`update approvals set status = 'pending', resolved_by = null, reason = null where run_id = ${id} and status = 'cancelled'`
}, storeError("reopen a run's cancelled approvals"))

/** The tables that hold a run's rows besides `runs` (they have no foreign keys: see the migration). */
const RUN_TABLES = [
  "run_events",
  "rounds",
  "opinions",
  "decisions",
  "verdicts",
  "approvals",
  "approval_waits",
  "control_requests",
  "waiting_runs",
  "reasoning",
  "agent_restarts",
  "llm_usage",
  "orders",
  "fills",
  "trades",
  "equity_snapshots",
  "positions",
  "checkpoints"
] as const

/**
 * `write` under `lease` (none: the embedded database's one process): in one transaction with the
 * check that this process holds it, so a process that lost it writes nothing (`LeaseNotHeld`).
 * Not tried again here: a caller that may wait for a lease being taken again says so (`retryLeased`).
 */
const underLease = <A, E, R>(lease: Lease | undefined, write: Effect.Effect<A, E, R>) =>
  lease === undefined ? write : Effect.flatMap(SqlClient.SqlClient, (sql) => transaction(sql, Effect.zipRight(checkLease(lease), write)))

/**
 * An operator paused or resumed a live run: under its lease (`lease`, held by the process executing
 * it, or taken for the write by one changing a run nobody executes), so that a process that lost
 * the run to another writes nothing to its row.
 */
export const setStatus = Effect.fn("Runs.setStatus")(function*(id: RunId, status: "running" | "paused", lease?: Lease) {
  const sql = yield* SqlClient.SqlClient
  yield* underLease(lease, sql`update runs set status = ${status} where id = ${id} and status in ('running', 'paused')`)
}, storeError("set a run's status"))

/** Delete a run and everything it recorded, in one transaction. */
export const remove = Effect.fn("Runs.remove")(function*(id: RunId) {
  const sql = yield* SqlClient.SqlClient
  yield* transaction(sql, Effect.gen(function*() {
    for (const table of RUN_TABLES) yield* sql`delete from ${sql(table)} where run_id = ${id}`
    yield* sql`delete from runs where id = ${id}`
  }))
}, storeError("delete a run"))

/** A run as listed: no strategy body, no events. */
export interface RunSummary {
  readonly id: RunId
  readonly strategyId: StrategyId
  readonly strategyName: string
  readonly strategyVersion: number
  readonly number: number
  readonly owner: string
  /** The owner's user name; absent when no user row has the owner's id. */
  readonly ownerName?: string
  readonly mode: RunMode
  readonly status: RunStatus
  readonly seed: string
  readonly dataFingerprint: string
  readonly failure: string | null
  readonly checksum: string | null
  readonly metrics: Metrics | null
  readonly counts: Record<string, number> | null
  /** The events recorded, once the run has ended any way (completed, failed, stopped); null before. */
  readonly recordedEvents: number | null
  /**
   * The events committed so far, while the run is unfinished (running or paused): its last
   * event's sequence number (the chain numbers them from 1, without gaps), read from the events'
   * primary key — not counted. Null once it has ended (`recordedEvents` says it then).
   */
  readonly liveEvents: number | null
  readonly tradingState: string | null
  readonly from: number | null
  readonly to: number | null
  readonly startedAt: Date
  readonly finishedAt: Date | null
  /** The cash the run started with (its strategy's `initialCash`), which its return is measured from. */
  readonly initialCash: Money | null
  /** How many operator actions its control log holds (src/store/ControlAudit.ts). */
  readonly controlCount: number
}

export interface RunRecord extends RunSummary {
  readonly strategy: Strategy
  readonly dataSource: unknown
  readonly eventDetail: string
  readonly faults: FaultPlan | null
  readonly replayOf: RunId | null
  /** Paper runs: the pace they were started at. */
  readonly speed: number | null
  /** The event chain's length and last hash as the run recorded them when it ended. */
  readonly chain: { readonly count: number; readonly hash: string } | null
  /** Whether its owner is disabled (`admin.setUser`): nothing automatic sets their paper runs going again. */
  readonly ownerDisabled: boolean
}

interface Row {
  readonly id: RunId
  readonly strategyId: StrategyId
  readonly strategyName: string
  readonly strategyVersion: number
  readonly number: number
  readonly ownerId: string
  readonly ownerName: string | null
  readonly mode: RunMode
  readonly status: RunStatus
  readonly seed: string
  readonly dataFingerprint: string
  readonly failure: string | null
  readonly checksum: string | null
  /** As stored, the jsonb's text (`metricsOf` decodes it). */
  readonly metrics: string | null
  readonly counts: Record<string, number> | null
  readonly chainCount: number | null
  readonly liveEvents: number | string | null
  readonly tradingState: string | null
  readonly periodFrom: number | null
  readonly periodTo: number | null
  readonly startedAt: Date
  readonly finishedAt: Date | null
  readonly initialCash: unknown
  readonly controlCount: number | string
}

interface FullRow extends Row {
  readonly strategy: unknown
  readonly dataSource: unknown
  readonly eventDetail: string
  readonly faults: unknown
  readonly replayOf: RunId | null
  readonly speed: number | null
  readonly chainCount: number | null
  readonly chainHead: string | null
  readonly ownerDisabled: boolean | null
}

/** Runs' metrics by their stored text (`metrics::text`): decoding them was a third of what reading a run's row cost. */
const decodeMetrics = decodedByText(Metrics, 1_024)

/** A row's metrics: null, or decoded (`CorruptRecord` when they do not). */
const metricsOf = (row: Row): Effect.Effect<Metrics | null, CorruptRecord> =>
  row.metrics === null ? Effect.succeed(null) : Effect.mapError(
    decodeMetrics(row.metrics),
    (error) => new CorruptRecord({ table: "runs", key: row.id, column: "metrics", reason: oneLineOf(error) })
  )

const summaryOf = (row: Row) =>
  Effect.map(
    metricsOf(row),
    (metrics): RunSummary => ({
  id: row.id,
  strategyId: row.strategyId,
  strategyName: row.strategyName,
  strategyVersion: row.strategyVersion,
  number: row.number,
  owner: row.ownerId,
  ...(row.ownerName === null ? {} : { ownerName: row.ownerName }),
  mode: row.mode,
  status: row.status,
  seed: row.seed,
  dataFingerprint: row.dataFingerprint,
  failure: row.failure,
  checksum: row.checksum,
  metrics,
  counts: row.counts,
  recordedEvents: row.chainCount,
  liveEvents: row.liveEvents === null ? null : Number(row.liveEvents),
  tradingState: row.tradingState,
  from: row.periodFrom,
  to: row.periodTo,
  startedAt: row.startedAt,
  finishedAt: row.finishedAt,
  // Shown, not computed with: a snapshot whose amount does not decode (a full record's strategy
  // is checked where it is used) leaves the return unknown rather than the run unreadable.
  initialCash: Option.getOrNull(decodeInitialCash(row.initialCash)),
  controlCount: Number(row.controlCount)
})
  )

const decodeInitialCash = Schema.decodeUnknownOption(MoneyAmount)

const SUMMARY_COLUMNS = `r.id, r.strategy_id, s.name as strategy_name, r.strategy_version, r.number, r.owner_id, r.mode,
  r.status, r.seed, r.data_fingerprint, r.failure, r.checksum, r.metrics::text as metrics, r.counts, r.chain_count, r.trading_state, r.period_from,
  r.period_to, r.started_at, r.finished_at, r.strategy->'initialCash' as initial_cash, r.control_count,
  (select u.name from users u where u.id = r.owner_id) as owner_name,
  case when r.status in ('running', 'paused') then coalesce((select max(e.seq) from run_events e where e.run_id = r.id), 0) end as live_events`

/** `runs.number` is an `integer`. */
const MAX_RUN_NUMBER = 2_147_483_647

/** A run reference as looked up: its id, or its strategy's name and its number. */
type Ref = { readonly id: string } | { readonly name: string; readonly number: number }

/**
 * A reference — a run's id, or `<strategy name>#<number>` (the last `#`) — as looked up; undefined
 * for one no run can have. No run has a number past the column's range, nor a NUL in its id or
 * name (Postgres text cannot hold one): the server would answer those with an error, and the user
 * must get "no such run".
 */
const parseRef = (ref: string): Ref | undefined => {
  const hash = ref.lastIndexOf("#")
  const byName = hash > 0 && /^\d+$/.test(ref.slice(hash + 1))
  if (ref.includes("\u0000") || (byName && Number(ref.slice(hash + 1)) > MAX_RUN_NUMBER)) return undefined
  return byName ? { name: ref.slice(0, hash), number: Number(ref.slice(hash + 1)) } : { id: ref }
}

/**
 * The `where` of one run by reference and owner. By name, the strategy's name now, or with
 * `former` the name the run's strategy had when it ran (a rename must not break `Old name#2`).
 */
const whereRef = (sql: SqlClient.SqlClient, ref: Ref, owner: string | undefined, former: boolean) =>
  sql`${
    "id" in ref
      ? sql`r.id = ${ref.id}`
      : former
      ? sql`r.strategy->>'name' = ${ref.name} and r.number = ${ref.number}`
      : sql`s.name = ${ref.name} and r.number = ${ref.number}`
  }
      ${owner === undefined ? sql`` : sql`and r.owner_id = ${owner}`}`

/**
 * The row of the one run `ref` names, of those a query found (at most `CANDIDATES`, a live
 * strategy's first, then newest first). A `<strategy>#<number>` may name several: a deleted
 * strategy's run and the run of the strategy re-created under its name (the live one is meant), or,
 * for an admin, runs of several owners' strategies of one name. Where nothing tells them apart, the
 * reference is refused with their ids rather than one picked unseen.
 */
const theOne = <R extends { readonly id: string; readonly live: boolean }>(ref: string, rows: ReadonlyArray<R>): Effect.Effect<R, RunNotFound> => {
  const [first, second] = rows
  if (first === undefined) return Effect.fail(new RunNotFound({ run: ref }))
  if (second === undefined || second.live !== first.live) return Effect.succeed(first)
  return Effect.fail(new RunNotFound({ run: ref, ambiguous: rows.filter((row) => row.live === first.live).map((row) => row.id) }))
}

/**
 * The one run `ref` names, found by `query` (given the `where`): by the strategy's name now, else
 * (no run matched) by a name its strategy had then — the strategy renamed since — unless a strategy
 * has that name now: `Short#4` of a new "Short" with one run is no run, not the run the renamed one
 * made as "Short" (a `runs stop` given it stopped that run unsaid). The name now wins where both
 * match: it is what `runs list` shows.
 */
const lookUp = <R extends { readonly id: string; readonly live: boolean }, E, Q>(
  ref: string,
  owner: string | undefined,
  query: (where: Statement.Fragment) => Effect.Effect<ReadonlyArray<R>, E, Q>
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const parsed = parseRef(ref)
    if (parsed === undefined) return yield* new RunNotFound({ run: ref })
    const now = yield* query(whereRef(sql, parsed, owner, false))
    if (now.length > 0 || "id" in parsed) return yield* theOne(ref, now)
    const taken = yield* sql<{ readonly one: number }>`
      select 1 as one from strategies s
      where s.name = ${parsed.name} and s.deleted_at is null ${owner === undefined ? sql`` : sql`and s.owner_id = ${owner}`}
      limit 1`
    return yield* theOne(ref, taken.length > 0 ? now : yield* query(whereRef(sql, parsed, owner, true)))
  })

/** How many runs a `<strategy>#<number>` is looked up among (`theOne`): enough to name a few when it is ambiguous. */
const CANDIDATES = 5

/**
 * A run by its id, or by `<strategy name>#<number>` (as `runs list` shows it). An owner, when given,
 * must own it: another's run is `RunNotFound`, exactly like one that does not exist.
 */
export const get = Effect.fn("Runs.get")(function*(ref: string, owner?: string) {
  const sql = yield* SqlClient.SqlClient
  const row = yield* lookUp(ref, owner, (where) =>
    sql<FullRow & { readonly live: boolean }>`
    select ${sql.literal(SUMMARY_COLUMNS)}, r.strategy, r.data_source, r.event_detail, r.faults, r.replay_of, r.speed, r.chain_count, r.chain_head,
      s.deleted_at is null as live, (select u.disabled_at is not null from users u where u.id = r.owner_id) as owner_disabled
    from runs r join strategies s on s.id = r.strategy_id
    where ${where}
    order by s.deleted_at is null desc, r.started_at desc limit ${CANDIDATES}`)
  const summary = yield* summaryOf(row)
  const strategy = yield* decodeColumn(Strategy, row.id, "strategy")(row.strategy)
  const faults = row.faults === null ? null : yield* decodeColumn(FaultPlan, row.id, "faults")(row.faults)
  return {
    ...summary,
    strategy,
    dataSource: row.dataSource,
    eventDetail: row.eventDetail,
    faults,
    replayOf: row.replayOf,
    speed: row.speed,
    chain: row.chainCount === null || row.chainHead === null ? null : { count: row.chainCount, hash: row.chainHead },
    ownerDisabled: row.ownerDisabled === true
  } satisfies RunRecord
}, storeError("read a run"))

/**
 * A run as listed (no strategy body, data source or faults: nothing decoded but its metrics), by
 * its id or `<strategy name>#<number>`, under the same rules as `get`. What a read that answers a
 * summary needs: `runs.get` over RPC is polled by dashboards, and decoding the strategy it does not
 * send cost more than the query.
 */
export const getSummary = Effect.fnUntraced(function*(ref: string, owner?: string) {
  return yield* summaryOf(yield* summaryRow(ref, owner))
}, storeError("read a run"), Effect.withSpan("Runs.getSummary")) // fnUntraced: Effect.fn makes an Error per call, for its span's stack

/** The listed columns of the run `ref` names, under `get`'s rules. */
const summaryRow = (ref: string, owner: string | undefined) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    lookUp(ref, owner, (where) =>
      sql<Row & { readonly live: boolean }>`
    select ${sql.literal(SUMMARY_COLUMNS)}, s.deleted_at is null as live
    from runs r join strategies s on s.id = r.strategy_id
    where ${where}
    order by s.deleted_at is null desc, r.started_at desc limit ${CANDIDATES}`))

/**
 * A run as listed, under `getSummary`'s rules, whatever its row holds: nothing of it is decoded
 * that could fail (its metrics, when they do not decode, are null). What acting on a run needs —
 * who owns it, where it stands — when its row may be corrupt: an operator must be able to stop a
 * run whose strategy column was edited by hand, which `get` cannot read.
 */
export const locate = Effect.fn("Runs.locate")(function*(ref: string, owner?: string) {
  const row = yield* summaryRow(ref, owner)
  // Cannot fail: the metrics decode, or are null.
  return yield* Effect.orDie(Effect.catchTag(summaryOf(row), "CorruptRecord", () => summaryOf({ ...row, metrics: null })))
}, storeError("read a run"))

export interface ListOptions {
  readonly owner?: string
  readonly strategy?: string
  readonly status?: RunStatus
  readonly limit?: number
  /**
   * A cursor: a run (its id, or `<strategy>#<number>`, looked up as `get` does, with `owner`) —
   * only the runs after it in the list's order. It need not match `strategy` or `status` (a run
   * may have ended since the page that showed it): it is a place in the order, not a row of the
   * page. One that names no run of `owner`'s is `RunNotFound` with `field: "before"`.
   */
  readonly before?: string
}

/**
 * Runs, newest first: by start time, then number, then id — unique, so that a page starting
 * after a run (`before`) is exact even among runs started in one instant (runs created in one
 * transaction share its `now()`): no run twice, none skipped.
 */
export const list = Effect.fnUntraced(function*(options: ListOptions = {}) {
  const sql = yield* SqlClient.SqlClient
  const before = options.before === undefined ? undefined : yield* cursorOf(options.before, options.owner)
  const rows = yield* sql<Row>`
    select ${sql.literal(SUMMARY_COLUMNS)} from runs r join strategies s on s.id = r.strategy_id
    where true
      ${options.owner === undefined ? sql`` : sql`and r.owner_id = ${options.owner}`}
      ${options.strategy === undefined ? sql`` : sql`and (s.id = ${options.strategy} or s.name = ${options.strategy})`}
      ${options.status === undefined ? sql`` : sql`and r.status = ${options.status}`}
      ${
    // Compared in the database: a start time read into JavaScript loses its microseconds.
    before === undefined ? sql`` : sql`and (r.started_at, r.number, r.id) < (select c.started_at, c.number, c.id from runs c where c.id = ${before})`}
    order by r.started_at desc, r.number desc, r.id desc
    limit ${Math.max(1, Math.min(10_000, Math.trunc(options.limit ?? 50)))}`
  return yield* Effect.forEach(rows, summaryOf)
}, storeError("list runs"), Effect.withSpan("Runs.list")) // fnUntraced: as `getSummary`

/** The id of the run a `before` cursor names, under `get`'s rules; `RunNotFound` naming the field otherwise. */
const cursorOf = (ref: string, owner: string | undefined) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    lookUp(ref, owner, (where) =>
      sql<{ readonly id: RunId; readonly live: boolean }>`
      select r.id, s.deleted_at is null as live from runs r join strategies s on s.id = r.strategy_id
      where ${where}
      order by s.deleted_at is null desc, r.started_at desc limit ${CANDIDATES}`)).pipe(
    Effect.map((row) => row.id),
    Effect.catchTag("RunNotFound", (error) =>
      Effect.fail(new RunNotFound({ run: error.run, ...(error.ambiguous === undefined ? {} : { ambiguous: error.ambiguous }), field: "before" })))
  )

/** Unfinished runs (the process that ran them died), oldest first. */
export const unfinished = Effect.fn("Runs.unfinished")(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Row>`
    select ${sql.literal(SUMMARY_COLUMNS)} from runs r join strategies s on s.id = r.strategy_id
    where r.status in ('running', 'paused') order by r.started_at`
  return yield* Effect.forEach(rows, summaryOf)
}, storeError("list unfinished runs"))

/** A run's status and the sequence number of its last event (0: none), or undefined when there is no such run. */
export const stateOf = Effect.fn("Runs.stateOf")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ status: RunStatus; seq: number | null }>`
    select r.status, (select max(e.seq) from run_events e where e.run_id = r.id) as seq from runs r where r.id = ${run}`
  const row = rows[0]
  return row === undefined ? undefined : { status: row.status, seq: Number(row.seq ?? 0) }
}, storeError("read a run's state"))

/** An unfinished run's lease, as `unfinishedLeases` reads it. */
export interface LeaseState {
  readonly id: RunId
  /** Whether a process holds its lease (`lease`): it is running there. */
  readonly held: boolean
  /** How long ago its row was created, by the database's clock. */
  readonly ageMillis: number
}

/**
 * Whether each unfinished run's lease is held, oldest first: one query over `pg_locks`, so that a
 * server looking for runs to take over launches no resume for a run another live process holds.
 * Only a shared database (`PgPool.shared`) says anything here: the embedded one's locks exclude
 * nobody. `lease` locks the bigint `hashtextextended('swarm-run:' || id, 0)`, which `pg_locks`
 * shows split in two: its high 32 bits as `classid`, its low 32 bits as `objid`, `objsubid` 1.
 */
export const unfinishedLeases = Effect.fn("Runs.unfinishedLeases")(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<LeaseState>`
    select r.id,
      exists (
        select 1 from pg_locks l
        where l.locktype = 'advisory' and l.granted and l.objsubid = 1
          and l.database = (select oid from pg_database where datname = current_database())
          and l.classid::bigint = (k.key >> 32) & 4294967295 and l.objid::bigint = k.key & 4294967295
      ) as held,
      (extract(epoch from now() - r.started_at) * 1000)::float8 as age_millis
    from runs r cross join lateral (select hashtextextended(${LEASE_PREFIX} || r.id, 0) as key) k
    where r.status in ('running', 'paused') order by r.started_at`
}, storeError("read the leases of unfinished runs"))


export interface StoredEvent {
  readonly seq: number
  readonly tag: string
  /** The canonical JSON line, byte for byte as the run wrote it. */
  readonly body: string
}

/**
 * A run's events from `since` (exclusive), in order, a page at a time: `body` comes back as the
 * stored text (cast, so the driver does not parse it). `tags`, when given: only events of those types.
 */
export const events = Effect.fn("Runs.events")(function*(run: RunId, since = 0, limit = 10_000, tags?: ReadonlyArray<string>, through?: number) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<StoredEvent>`
    select seq, tag, body from run_events where run_id = ${run} and seq > ${since}
      ${through === undefined ? sql`` : sql`and seq <= ${through}`}
      ${tags === undefined ? sql`` : sql`and tag in ${sql.in(tags)}`}
    order by seq limit ${limit}`
}, storeError("read run events"))

/**
 * What a reader kept of a stopped or failed run's figures up to where it ended (`keepUpToStop`):
 * their JSON, undefined when none are kept; and the run's last event now (0: none), which the kept
 * figures must have been made at to be its figures still (a stopped run resumed by name goes on
 * recording, still `stopped`).
 */
export const keptUpToStop = Effect.fn("Runs.keptUpToStop")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ kept: string | null; lastSeq: number | string }>`
    select up_to_stop::text as kept, coalesce((select max(seq) from run_events where run_id = ${run}), 0) as last_seq
    from runs where id = ${run}`
  return { kept: rows[0]?.kept ?? undefined, lastSeq: Number(rows[0]?.lastSeq ?? 0) }
}, storeError("read a run's figures up to its stop"))

/**
 * Keep a stopped or failed run's figures up to where it ended (`json`: what `keptUpToStop` gives
 * back), replacing any kept before: only for a run that is so (no metrics, stopped or failed).
 */
export const keepUpToStop = Effect.fn("Runs.keepUpToStop")(function*(run: RunId, json: string) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`update runs set up_to_stop = ${json}::jsonb where id = ${run} and metrics is null and status in ('stopped', 'failed')`
}, storeError("keep a run's figures up to its stop"))

/** The last committed event: its sequence number and chain hash. */
export const lastEvent = Effect.fn("Runs.lastEvent")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ seq: number; hash: string }>`select seq, hash from run_events where run_id = ${run} order by seq desc limit 1`
  return Option.fromNullable(rows[0])
}, storeError("read the last event"))

/** The last checkpoint of a run. */
export const lastCheckpoint = Effect.fn("Runs.lastCheckpoint")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ seq: number; state: CheckpointState }>`select seq, state from checkpoints where run_id = ${run} order by seq desc limit 1`
  return Option.fromNullable(rows[0])
}, storeError("read the last checkpoint"))

export interface ResolvedApproval {
  /** `cancelled`: the run ended while the intent waited (`by` says how it ended: stop, failure, completion). */
  readonly outcome: "approved" | "rejected" | "expired" | "cancelled"
  readonly by: string
  readonly reason: string
}

/**
 * How each of a run's approvals was answered, by round: what a replay or a resume answers in place
 * of the operator who decided then. A cancelled one was never answered (its run ended first): a
 * resume asks it again, and a replay of the run's events never reaches its answer.
 */
export const resolvedApprovals = Effect.fn("Runs.resolvedApprovals")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ roundId: string; status: Exclude<ResolvedApproval["outcome"], "cancelled">; resolvedBy: string; reason: string }>`
    select round_id, status, resolved_by, reason from approvals where run_id = ${run} and status in ('approved', 'rejected', 'expired')`
  return new Map(rows.map((row) => [row.roundId, { outcome: row.status, by: row.resolvedBy, reason: row.reason ?? "" }]))
}, storeError("read resolved approvals"))

/** How one held intent of a run was resolved, if it was (and is recorded): answered, expired, or cancelled with its run. */
export const resolvedApproval = Effect.fn("Runs.resolvedApproval")(function*(run: RunId, round: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ status: ResolvedApproval["outcome"]; resolvedBy: string; reason: string | null }>`
    select status, resolved_by, reason from approvals where run_id = ${run} and round_id = ${round} and status <> 'pending'`
  const row = rows[0]
  return row === undefined ? undefined : { outcome: row.status, by: row.resolvedBy, reason: row.reason ?? "" } satisfies ResolvedApproval
}, storeError("read an approval"))

/** Whether a held intent of a run is recorded as waiting for an answer (`pending`). */
export const approvalPending = Effect.fn("Runs.approvalPending")(function*(run: RunId, round: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ n: number }>`
    select count(*)::int as n from approvals where run_id = ${run} and round_id = ${round} and status = 'pending'`
  return (rows[0]?.n ?? 0) > 0
}, storeError("read an approval"))

/**
 * How long a held intent of a run has waited for an answer while its run went on, in wall-clock
 * milliseconds (0 if never said): a restarted server goes on with what is left of its timeout.
 */
export const approvalWaited = Effect.fn("Runs.approvalWaited")(function*(run: RunId, round: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ waited: number }>`
    select waited_ms::float8 as waited from approval_waits where run_id = ${run} and round_id = ${round}`
  return rows[0]?.waited ?? 0
}, storeError("read how long an approval waited"))

/** Say how long a held intent of a run has waited (`approvalWaited`); it never goes back. Under the run's lease (`setStatus`). */
export const saveApprovalWaited = Effect.fn("Runs.saveApprovalWaited")(function*(run: RunId, round: string, waitedMillis: number, lease?: Lease) {
  const sql = yield* SqlClient.SqlClient
  const waited = Math.max(0, Math.round(waitedMillis))
  yield* underLease(lease, sql`insert into approval_waits (run_id, round_id, waited_ms) values (${run}, ${round}, ${waited})
    on conflict (run_id, round_id) do update set waited_ms = greatest(approval_waits.waited_ms, excluded.waited_ms)`)
}, storeError("save how long an approval waited"))

/**
 * Say that a held intent of a run waits in this process, with its wall-clock times as this process
 * sees them (`pendingElsewhere` lists it so on other processes): when it was asked, and when it
 * expires. What it waited never goes back. Under the run's lease (`setStatus`).
 */
export const holdApproval = Effect.fn("Runs.holdApproval")(function*(run: RunId, round: string, hold: {
  readonly waitedMillis: number
  readonly requestedAt: number
  readonly expiresAt: number
}, lease?: Lease) {
  const sql = yield* SqlClient.SqlClient
  const waited = Math.max(0, Math.round(hold.waitedMillis))
  yield* underLease(lease, sql`insert into approval_waits (run_id, round_id, waited_ms, requested_at_ms, expires_at_ms)
    values (${run}, ${round}, ${waited}, ${Math.round(hold.requestedAt)}, ${Math.round(hold.expiresAt)})
    on conflict (run_id, round_id) do update set waited_ms = greatest(approval_waits.waited_ms, excluded.waited_ms),
      requested_at_ms = excluded.requested_at_ms, expires_at_ms = excluded.expires_at_ms`)
}, storeError("save a held approval"))

/** A held intent's expiry moved on (its run was paused meanwhile), in wall-clock milliseconds. Under the run's lease (`setStatus`). */
export const saveApprovalExpiry = Effect.fn("Runs.saveApprovalExpiry")(function*(run: RunId, round: string, expiresAt: number, lease?: Lease) {
  const sql = yield* SqlClient.SqlClient
  yield* underLease(lease, sql`update approval_waits set expires_at_ms = ${Math.round(expiresAt)} where run_id = ${run} and round_id = ${round}`)
}, storeError("save a held approval's expiry"))

/** An approval pending in a live run, as the approvals table and its holder's bookkeeping say it. */
export interface StoredPendingApproval {
  readonly run: RunId
  readonly ref: string
  readonly round: string
  readonly symbol: string
  readonly intent: { readonly side?: string; readonly referencePrice?: number }
  readonly quantity: number
  readonly reasons: ReadonlyArray<string>
  readonly owner: string
  readonly ownerName: string | null
  readonly status: "running" | "paused"
  /** The strategy's `risk.approval` (its timeout), as the run's snapshot holds it. */
  readonly approval: unknown
  /** Its holder's bookkeeping (`holdApproval`), if any. */
  readonly waitedMillis: number | null
  readonly requestedAt: number | null
  readonly expiresAt: number | null
}

/**
 * The approvals pending in runs that are running or paused, but for the runs of `except` (those
 * live in the caller's process, which lists them itself); of `owner`'s runs only when given, of
 * one run when `run` is. Oldest first within a run.
 */
export const pendingApprovals = Effect.fn("Runs.pendingApprovals")(function*(filter: {
  readonly owner?: string
  readonly run?: RunId
  readonly except: ReadonlyArray<RunId>
}) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{
    runId: RunId
    strategyName: string
    number: number
    roundId: string
    symbol: string
    intent: StoredPendingApproval["intent"]
    quantity: number
    reasons: ReadonlyArray<string>
    ownerId: string
    ownerName: string | null
    status: "running" | "paused"
    approval: unknown
    waitedMs: number | null
    requestedAtMs: number | null
    expiresAtMs: number | null
  }>`select a.run_id, s.name as strategy_name, r.number, a.round_id, a.symbol, a.intent, a.quantity, a.reasons,
      r.owner_id, u.name as owner_name, r.status, r.strategy -> 'risk' -> 'approval' as approval,
      w.waited_ms::float8 as waited_ms, w.requested_at_ms::float8 as requested_at_ms, w.expires_at_ms::float8 as expires_at_ms
    from approvals a
      join runs r on r.id = a.run_id
      join strategies s on s.id = r.strategy_id
      left join users u on u.id = r.owner_id
      left join approval_waits w on w.run_id = a.run_id and w.round_id = a.round_id
    where a.status = 'pending' and r.status in ('running', 'paused')
      ${filter.owner === undefined ? sql`` : sql`and r.owner_id = ${filter.owner}`}
      ${filter.run === undefined ? sql`` : sql`and a.run_id = ${filter.run}`}
      ${filter.except.length === 0 ? sql`` : sql`and a.run_id not in ${sql.in(filter.except)}`}
    order by a.run_id, a.requested_seq`
  return rows.map((row): StoredPendingApproval => ({
    run: row.runId,
    ref: `${row.strategyName}#${row.number}`,
    round: row.roundId,
    symbol: row.symbol,
    intent: row.intent,
    quantity: row.quantity,
    reasons: row.reasons,
    owner: row.ownerId,
    ownerName: row.ownerName,
    status: row.status,
    approval: row.approval,
    waitedMillis: row.waitedMs,
    requestedAt: row.requestedAtMs,
    expiresAt: row.expiresAtMs
  }))
}, storeError("read pending approvals"))

/** A run's closed trades as `runs show` lists them: how many, and the first and the last few. */
export interface TradeEnds {
  readonly count: number
  /** The first `n` (all of them, when there are no more). */
  readonly first: ReadonlyArray<Trade>
  /** The last `n` after those, not overlapping them: none when `first` has them all. */
  readonly last: ReadonlyArray<Trade>
}

const decodeTrade = (run: RunId) => (body: string) =>
  Effect.try({
    try: () => (JSON.parse(body) as { trade?: unknown } | null)?.trade,
    catch: (error) => new CorruptRecord({ table: "run_events", key: run, column: "body", reason: String(error) })
  }).pipe(
    Effect.flatMap((trade) =>
      Schema.decodeUnknown(Trade)(trade).pipe(
        Effect.mapError((error) =>
          new CorruptRecord({ table: "run_events", key: run, column: "body", reason: oneLineOf(error) })
        )
      )
    )
  )

/**
 * How many trades a run closed, and the first and last `n` of them in closing order (their events
 * decoded): three short reads by the trades' key, whatever their number — a run may close hundreds
 * of thousands, and `runs show` (here, or a server's `runs.report`) lists a few from each end.
 */
export const tradeEnds = Effect.fn("Runs.tradeEnds")(function*(run: RunId, n: number) {
  const sql = yield* SqlClient.SqlClient
  const [counted] = yield* sql<{ n: number }>`select count(*)::int as n from trades where run_id = ${run}`
  const count = counted?.n ?? 0
  const bodies = (order: "asc" | "desc", limit: number) =>
    limit <= 0
      ? Effect.succeed([] as ReadonlyArray<{ readonly body: string }>)
      : sql<{ body: string }>`
    select e.body from trades t join run_events e on e.run_id = t.run_id and e.seq = t.seq
    where t.run_id = ${run} order by t.seq ${sql.literal(order)} limit ${limit}`
  const first = yield* bodies("asc", Math.min(n, count))
  const last = yield* bodies("desc", count <= n ? 0 : Math.min(n, count - n))
  return {
    count,
    first: yield* Effect.forEach(first, (row) => decodeTrade(run)(row.body)),
    last: yield* Effect.forEach([...last].reverse(), (row) => decodeTrade(run)(row.body))
  } satisfies TradeEnds
}, storeError("read trades"))

/**
 * The agents of a run that crashed, named as its strategy names them, those restarted most first:
 * its `agent_restarts` rows (a row per agent, whatever the number of its events).
 */
export const agentRestarts = Effect.fn("Runs.agentRestarts")(function*(run: Pick<RunRecord, "id" | "strategy">) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ agent: string; crashes: number | string; restarts: number | string; lastSeq: number | string | null; lastCause: string | null }>`
    select agent, crashes, restarts, last_seq, last_cause from agent_restarts where run_id = ${run.id} order by agent`
  return restartsOf(
    rows.map((row) => ({
      actor: row.agent,
      crashes: Number(row.crashes),
      restarts: Number(row.restarts),
      lastSeq: row.lastSeq === null ? null : Number(row.lastSeq),
      lastCause: row.lastCause
    })),
    run.strategy
  ) satisfies Array<AgentRestarts>
}, storeError("read a run's restarts"))

const decodeTradingChange = Schema.decodeUnknown(Schema.parseJson(TradingStateChanged))

/**
 * The change that put a run in its trading state (who or what, when, why), when its row says it is
 * not `active`: the newest `TradingStateChanged` by its sequence. Not read for an active run (one
 * that never changed it records none, and looking for one would walk its whole log); null then.
 */
export const tradingChange = Effect.fn("Runs.tradingChange")(function*(run: Pick<RunRecord, "id" | "tradingState">) {
  if (run.tradingState === null || run.tradingState === "active") return null
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ seq: number | string; body: string }>`
    select seq, body from run_events where run_id = ${run.id} and tag = 'TradingStateChanged' order by seq desc limit 1`
  if (row === undefined) return null
  const decoded = yield* decodeTradingChange(row.body).pipe(
    Effect.mapError((error) => new CorruptRecord({ table: "run_events", key: `${run.id}#${row.seq}`, column: "body", reason: oneLineOf(error) }))
  )
  return decoded.transition satisfies StateTransition
}, storeError("read a run's trading state change"))

const decodeStarted = Schema.decodeUnknown(Schema.parseJson(RunStarted))

/**
 * What a run's LLM agents used — model calls, cache hits, refusals, tokens, cost, by agent — and
 * its budget: its `llm_usage` rows and the language model its `RunStarted` named. None for a run
 * without LLM agents (its `RunStarted` names no model), nor for one with no event yet.
 */
export const llmUsage = Effect.fn("Runs.llmUsage")(function*(run: Pick<RunRecord, "id" | "strategy">) {
  const sql = yield* SqlClient.SqlClient
  const [first] = yield* sql<{ body: string }>`select body from run_events where run_id = ${run.id} and seq = 1`
  if (first === undefined) return Option.none<LlmUsage>()
  const started = yield* decodeStarted(first.body).pipe(
    Effect.mapError((error) =>
      new CorruptRecord({ table: "run_events", key: `${run.id}#1`, column: "body", reason: oneLineOf(error) })
    )
  )
  if (started.llm === undefined) return Option.none<LlmUsage>()
  const rows = yield* sql<{
    agent: string
    backend: string
    model: string
    calls: number | string
    cacheHits: number | string
    refused: number | string
    failed: number | string
    budgetSpent: number | string
    tokensIn: number | string
    tokensOut: number | string
    costNanos: number | string
  }>`select agent, backend, model, calls, cache_hits, refused, failed, budget_spent, tokens_in, tokens_out, cost_nanos
    from llm_usage where run_id = ${run.id} order by agent, backend, model`
  const tallies = rows.map((row): LlmTally => ({
    agent: row.agent,
    backend: row.backend,
    model: row.model,
    calls: Number(row.calls),
    cacheHits: Number(row.cacheHits),
    refused: Number(row.refused),
    failed: Number(row.failed),
    budgetSpent: Number(row.budgetSpent),
    tokensIn: Number(row.tokensIn),
    tokensOut: Number(row.tokensOut),
    costNanos: Number(row.costNanos)
  }))
  return Option.some(llmUsageOf(started.llm, tallies, (run.strategy.llm ?? defaultLlmConfig).budget))
}, storeError("read a run's model calls"))

/** The first and last equity snapshots and the extremes, for a summary. */
export const equitySummary = Effect.fn("Runs.equitySummary")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ points: number; first: number | null; last: number | null; low: number | null; high: number | null }>`
    select count(*)::int as points,
      (select equity from equity_snapshots where run_id = ${run} order by seq asc limit 1) as first,
      (select equity from equity_snapshots where run_id = ${run} order by seq desc limit 1) as last,
      min(equity) as low, max(equity) as high
    from equity_snapshots where run_id = ${run}`
  return Option.fromNullable(row).pipe(Option.filter((r) => r.points > 0))
}, storeError("read equity"))

/** Another process is running the run (it holds the run's lease). */
export class RunLeased extends Schema.TaggedError<RunLeased>()("RunLeased", { run: Schema.String }) {
  override get message(): string {
    return `run ${this.run} is running in another process`
  }
}

/**
 * Fails with `LeaseNotHeld` unless the run's lease is held by this process now (none: nothing to
 * check). In a transaction, the run's row is locked first (`LOCK_RUN`) and the check holds until it
 * commits: a process taking the lease meanwhile waits for that (`lease`) before it reads the run.
 */
export const checkLease = (lease: Lease | undefined): Effect.Effect<void, LeaseNotHeld | SqlError, SqlClient.SqlClient> =>
  lease === undefined ? Effect.void : Effect.gen(function*() {
    const backend = lease.backend()
    if (backend === undefined || lease.lost() !== undefined) return yield* notHeld(lease, false)!
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(LOCK_RUN, [lease.run])
    const [row] = yield* sql.unsafe<{ held: boolean }>(HOLDS, holdsParameters(lease, backend))
    const error = notHeld(lease, row?.held)
    if (error !== undefined) return yield* error
  })


/**
 * The run's lease, for as long as the scope lasts: on a shared database (Postgres), a session
 * advisory lock on a connection of its own, which the server releases if the process dies — so a
 * process resuming unfinished runs takes only the ones nobody is running. On the embedded
 * database (one process) there is nobody to exclude: no lease (undefined).
 *
 * The connection may go while the run goes on (Postgres restarted, an administrator or an idle
 * killer ended the session): its lock goes with it. Its `error` then reached no listener and
 * took the whole process down, every run and stream of the server with it. Now the lease is taken
 * again on a new connection, at once and then every `RELEASE_RETRY` while the database is away,
 * for `LEASE_GRACE` at most — kept by the clock: at its end the lease is given up whatever an
 * attempt is doing (one may hang for the connect timeout). Should another process have taken it
 * meanwhile (a server taking over a run it saw free), or should it not be had again in time
 * (another server may take the run over from then on), the lease is lost: that is logged as an
 * error naming the run, and `onLost` is
 * called — the run must stop here at once (fail closed), writing nothing more; the other process
 * goes on with it from what was committed. Meanwhile the run's writes check the lease
 * (`checkLease`): none lands while it is not held, so two processes never both write one run.
 */
export const lease = (run: RunId, onLost?: () => void): Effect.Effect<Lease | undefined, StoreError | RunLeased, PgPool | Scope.Scope> =>
  Effect.gen(function*() {
    const { leases: pool, shared } = yield* PgPool
    if (!shared) return undefined
    const key = `${LEASE_PREFIX}${run}`
    const failure = (error: unknown) =>
      new StoreError({
        operation: `lease run ${run}`,
        // pg-pool says "timeout exceeded when trying to connect" when every connection is lent: one per live run.
        reason: pool.totalCount >= pool.options.max && pool.idleCount === 0
          ? `this process already executes ${pool.options.max} live run${pool.options.max === 1 ? "" : "s"}, its most (each holds a database connection for its lease); try again when one ends`
          : error instanceof Error ? error.message : String(error)
      })
    let held: Pg.PoolClient | undefined
    let released = false
    /** Why the lease is lost for good, once it is. */
    let lostBecause: string | undefined
    /** How many times its connection closed: each time's deadline is its own. */
    let outages = 0
    /** Why the last attempt to take it again failed, in the time since its connection closed. */
    let lastFailure: string | undefined
    // The pool lends the same connections again: a listener left on one would pile up with every
    // run (each holding its run's runtime) and answer errors of connections it no longer holds.
    const listeners = new Map<Pg.PoolClient, (error: Error) => void>()
    /** The database session of each connection holding the lock (what the run's writes check). */
    const sessions = new WeakMap<Pg.PoolClient, Session>()
    const giveBack = (client: Pg.PoolClient, error?: Error | boolean) => {
      const onError = listeners.get(client)
      if (onError !== undefined) client.removeListener("error", onError)
      listeners.delete(client)
      client.release(error)
    }
    /** A connection of its own with the lock on it, or why not (`RunLeased`: another process holds it). */
    const take = Effect.gen(function*() {
      // Until it is released: an error of this connection is handled here, never thrown at the process.
      const { client, listener } = yield* Effect.tryPromise({ try: () => connectListening(pool, (client) => lost(client)), catch: failure })
      listeners.set(client, listener)
      const locked = yield* Effect.tryPromise({
        try: () => client.query<{ locked: boolean; pid: number; started: string; runs: boolean }>(`select pg_try_advisory_lock(hashtextextended($1, 0)) as locked, ${SESSION},
            to_regclass('runs') is not null as runs, set_config('lock_timeout', $2, false)`,
          [key, String(Duration.toMillis(BARRIER_WAIT))]
        ),
        catch: failure
      }).pipe(Effect.tapError(() => Effect.sync(() => giveBack(client, true))))
      if (locked.rows[0]?.locked !== true) {
        giveBack(client)
        return yield* new RunLeased({ run })
      }
      // Before the run is read: a batch of the process that held the lease before, committing under
      // it (its lease checked, the run's row locked: `LOCK_RUN`), has committed — or it finds the
      // lease not its own, and commits nothing. Without it, a batch whose check came just before
      // the lease changed hands committed after the run was read here. Waited for `BARRIER_WAIT` at
      // most (`lock_timeout`, a setting of this connection, which only ever waits here). A database
      // with no runs yet (a lease's own tests) has none to wait for.
      if (locked.rows[0].runs) {
        yield* Effect.tryPromise({
          try: () => client.query(BARRIER, [run]),
          catch: failure
        }).pipe(Effect.tapError(() => Effect.sync(() => giveBack(client, true))))
      }
      sessions.set(client, { pid: Number(locked.rows[0].pid), started: locked.rows[0].started })
      return client
    })
    const runtime = yield* Effect.runtime<never>()
    /** Once: the lease is lost for good, and the run is told (`onLost`). Not for a lease released meanwhile. */
    const giveUp = (why: string) =>
      Effect.suspend(() => {
        if (lostBecause !== undefined || released) return Effect.void
        lostBecause = why
        return Effect.zipRight(
          Effect.logError(`run ${run} lost its lease (its database connection closed) and ${why}: it stops here, writing nothing more`),
          Effect.sync(() => onLost?.())
        )
      })
    /** Attempts to take the lease again, every `RELEASE_RETRY`, until one has it or the lease is given up (or released). */
    const retake: Effect.Effect<void> = Effect.suspend(() =>
      released || lostBecause !== undefined ? Effect.void : take.pipe(
        Effect.flatMap((client) =>
          Effect.sync(() => {
            // Given up while this attempt was on its way (or released): the lock it took is nobody's,
            // and closing its connection lets it go — not the pool's to lend on, lock and all.
            if (released || lostBecause !== undefined) giveBack(client, true)
            else held = client
          })),
        Effect.catchAll((error) => {
          if (error._tag === "RunLeased") return giveUp("another process has taken it since")
          lastFailure = error.reason
          return Effect.delay(retake, RELEASE_RETRY)
        })
      )
    )
    const lost = (client: Pg.PoolClient) => {
      if (held !== client) return
      held = undefined
      giveBack(client, true)
      if (released || lostBecause !== undefined) return
      const outage = ++outages
      lastFailure = undefined
      // The grace is kept by the clock, not by the attempts: given up at its end whatever an
      // attempt is doing. Decided after an attempt failed, as before, an attempt that took long (a
      // server too busy to answer, a network cut: a connection waits for its connect timeout, 10 s)
      // put the give-up off past the grace — and past the moment another server may take the run over.
      const deadline = Effect.delay(
        Effect.suspend(() =>
          outage === outages && held === undefined
            ? giveUp(
              `it could not be taken again within ${Duration.format(LEASE_GRACE)} (${lastFailure ?? "the database did not answer"}), so another process may take the run over`
            )
            : Effect.void
        ),
        LEASE_GRACE
      )
      Runtime.runFork(runtime)(Effect.zipRight(
        Effect.logWarning(`run ${run}: the database closed its lease's connection; taking it again`),
        Effect.all([deadline, retake], { concurrency: "unbounded", discard: true })
      ))
    }
    yield* Effect.acquireRelease(
      Effect.map(take, (client) => {
        held = client
      }),
      () =>
        Effect.suspend(() => {
          released = true
          const client = held
          held = undefined
          return client === undefined ? Effect.void : Effect.promise(() =>
            client.query("select pg_advisory_unlock(hashtextextended($1, 0))", [key]).then(
              () => giveBack(client),
              (error: Error) => giveBack(client, error)
            ))
        })
    )
    return {
      run,
      backend: () => (lostBecause === undefined && held !== undefined ? sessions.get(held) : undefined),
      lost: () => lostBecause
    } satisfies Lease
  })

/**
 * How long a process taking a run's lease waits for a write committing under the lease before it
 * (`BARRIER`): a batch's last statement and its commit, a few milliseconds. Past it, the lease is
 * not taken (tried again later, as for a blip).
 */
const BARRIER_WAIT = Duration.seconds(5)

/** How often a lost lease is asked for again while the database is away. */
const RELEASE_RETRY = Duration.seconds(1)

/**
 * How long a run whose lease's connection closed goes on while the lease is taken again: past it,
 * the run stops (fails closed). Less than the soonest another server takes a run over by default
 * (two looks `SWARM_TAKEOVER_SECONDS` apart: 10 s), so that one run is not executed twice at once.
 */
export const LEASE_GRACE = Duration.seconds(5)
