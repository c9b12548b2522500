/**
 * Verifying the audit chains. A run's chain is its event log (written by `RunRecorder`): every
 * event's hash must be SHA-256 of the previous event's hash and the event's canonical JSON line,
 * sequence numbers must run 1, 2, 3… with no gap, and the chain must end where the run said it
 * ended (its recorded length and head), so changing, deleting (anywhere, the last rows included)
 * or reordering rows is detected. A completed run's events must also re-hash to its checksum.
 * What is read from a run's event rows besides their hashed text — the `tag` and `at` columns,
 * which the SSE stream and the reports serve — must say what the text says, and what the `runs`
 * row says of the run — its status, metrics, checksum and counts, which `runs show`, `runs
 * compare` and the leaderboard show — must be what its hashed events say, and so must the totals
 * per agent (restarts, model calls) that `runs show` reads instead of the events.
 * Changes outside runs (strategy versions) are chained per stream in `audit_log`, verified the
 * same way; so is who controlled a run (its control log, `ControlAudit`), which `verifyRun` checks
 * after its events.
 *
 * Verification reads a page at a time: a run of millions of events verifies in bounded memory.
 * A run's reads share one read-only snapshot of the database (REPEATABLE READ): a run still
 * running keeps committing events and their rows while it is verified, and a page of events read
 * before a commit and the rows read after it would not say the same thing — the rows past the
 * events read would look added. In the snapshot a live run verifies up to the events it had when
 * the verification began, and says so (`unfinished`). On the embedded PGlite (one connection) the
 * snapshot holds the connection: the run's recorder waits for the verification to end.
 */
import { createHash } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, Either, Option, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { Metrics } from "../../schemas/Metrics.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import { firstDifference } from "./Replay.js"
import { GENESIS, isSummed, linkHash, project, type ProjectedTable, SUMMED, SUMMED_TABLES, type SummedTable, Sums, TABLES, type Value } from "./RunRecorder.js"
import * as ControlAudit from "./ControlAudit.js"
import * as Runs from "./Runs.js"
import { storeError } from "./StoreError.js"
import { transaction } from "./Transaction.js"
import { canonical } from "./Strategies.js"

const PAGE = 5_000

export type AuditReport =
  | {
    readonly ok: true
    /** `run:<id>` or an `audit_log` stream. */
    readonly stream: string
    readonly entries: number
    readonly head: string
    /** What could not be checked (a run recorded before its inputs were sealed), when something could not. */
    readonly unchecked?: string
    /** A run's: the entries of its control log (`ControlAudit`) verified with it. */
    readonly control?: number
    /**
     * A run's that had not ended (running or paused) when it was verified: its status then. The
     * chain is verified up to the `entries` it had then; the events it records later are not.
     */
    readonly unfinished?: "running" | "paused"
  }
  | {
    readonly ok: false
    readonly stream: string
    /** The first position (a run's: event sequence number) that does not verify. */
    readonly position: number
    readonly reason: string
  }

interface Link {
  readonly position: number
  readonly kind: string
  readonly entry: string
  readonly hash: string
  /** Only `audit_log` rows name their previous hash; a run's events follow the one before. */
  readonly prevHash?: string
  /** A run's event rows: their `at` column. */
  readonly at?: number | string
}

const fail = (stream: string, position: number, reason: string): AuditReport => ({ ok: false, stream, position, reason })

/** Walk a chain page by page; `page(after)` gives the links after a position, in order. */
const walk = <E, R>(
  stream: string,
  page: (after: number) => Effect.Effect<ReadonlyArray<Link>, E, R>,
  head: { readonly count: number; readonly hash: string } | undefined,
  /** Checks of a verified link beyond its hash: why it does not verify, or undefined. */
  onLink?: (link: Link) => string | undefined,
  /** The links `page` gives at most: fewer, and the chain has ended. */
  pageSize = PAGE
) =>
  Effect.gen(function*() {
    let expected = 1
    let prev = GENESIS
    for (;;) {
      const links = yield* page(expected - 1)
      for (const link of links) {
        if (link.position !== expected) {
          return fail(stream, expected, `entry ${expected} is missing: the chain goes from ${expected - 1} to ${link.position} (deleted)`)
        }
        if (link.prevHash !== undefined && link.prevHash !== prev) {
          return fail(stream, expected, `entry ${expected} (${link.kind}) does not follow entry ${expected - 1} (reordered or replaced)`)
        }
        if (linkHash(prev, link.entry) !== link.hash) {
          return fail(
            stream,
            expected,
            `entry ${expected} (${link.kind}) does not verify: its content was changed, or it does not follow entry ${expected - 1} (reordered)`
          )
        }
        const wrong = onLink?.(link)
        if (wrong !== undefined) return fail(stream, expected, wrong)
        prev = link.hash
        expected++
      }
      if (links.length < pageSize) break
    }
    const entries = expected - 1
    if (head !== undefined) {
      if (entries < head.count) {
        return fail(stream, entries + 1, `the chain ends at entry ${entries} but ${head.count} were recorded (deleted at the end)`)
      }
      if (entries > head.count) return fail(stream, head.count + 1, `the chain goes on past the ${head.count} entries recorded (added)`)
      if (prev !== head.hash) return fail(stream, entries, "the chain's last hash is not the head that was recorded")
    }
    return { ok: true, stream, entries, head: prev } satisfies AuditReport
  })

/** Verify an `audit_log` stream; `head` is where it must end, when known. */
export const verifyStream = Effect.fn("Audit.verifyStream")(function*(
  stream: string,
  head?: { readonly count: number; readonly hash: string },
  onLink?: (link: Link) => string | undefined
) {
  const sql = yield* SqlClient.SqlClient
  return yield* walk(
    stream,
    (after) =>
      sql<Link>`select position, kind, entry, prev_hash, hash from audit_log
        where stream = ${stream} and position > ${after} order by position limit ${PAGE}`,
    head,
    onLink
  )
}, storeError("verify the audit chain"))

/**
 * Verify a run's control log (`ControlAudit`: who paused, resumed, stopped, approved or rejected
 * it, and when) against the length and head its row recorded; each entry must be an operator's
 * action on this run, its `kind` column what its text says.
 */
export const verifyControl = Effect.fn("Audit.verifyControl")(function*(run: RunId) {
  const head = yield* ControlAudit.headOf(run)
  const runJson = JSON.stringify(run)
  return yield* verifyStream(ControlAudit.streamOf(run), head, (link) => {
    let entry: { readonly action?: unknown; readonly run?: unknown } | undefined
    try {
      entry = JSON.parse(link.entry) as typeof entry
    } catch {
      return `entry ${link.position} is not JSON: it was changed`
    }
    if (JSON.stringify(entry?.run) !== runJson) return `entry ${link.position} (${link.kind}) is not an action on this run: it was moved from another run's log`
    if (!ControlAudit.ACTIONS.includes(entry?.action as ControlAudit.Action) || entry?.action !== link.kind) {
      return `entry ${link.position}'s kind (${link.kind}) is not what it says (${String(entry?.action)}): it was changed`
    }
    return undefined
  })
})

/** Verify a strategy's chain of versions, which must end at its latest version and recorded head. */
export const verifyStrategy = Effect.fn("Audit.verifyStrategy")(function*(strategy: string) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ latestVersion: number; auditHead: string | null }>`
    select latest_version, audit_head from strategies where id = ${strategy}`.pipe(storeError("read a strategy"))
  const stream = `strategy:${strategy}`
  if (row === undefined) return fail(stream, 1, "no such strategy")
  return yield* verifyStream(stream, row.auditHead === null ? { count: 0, hash: GENESIS } : { count: row.latestVersion, hash: row.auditHead })
})

/**
 * Verify a run (by id or `<strategy>#<number>`; an owner, when given, must own it): its event chain
 * against the head it recorded when it ended, and a completed run's events against its checksum.
 * An unfinished run's chain is verified as far as it goes.
 */
export const verifyRun = Effect.fn("Audit.verifyRun")(function*(ref: string, owner?: string, hooks?: Hooks) {
  return yield* inSnapshot(Effect.gen(function*() {
    const run = yield* Runs.get(ref, owner)
    const events = yield* verifyEvents(run, hooks)
    if (!events.ok) return events
    // Then who controlled it: reported at the control log's entry, under its stream.
    const control = yield* verifyControl(run.id as RunId)
    if (!control.ok) return { ...control, reason: `the run's control log (who paused, resumed, stopped, approved or rejected it): ${control.reason}` }
    const unfinished = run.status === "running" || run.status === "paused" ? { unfinished: run.status } : {}
    return { ...events, control: control.entries, ...unfinished } satisfies AuditReport
  }))
})

/** For tests: what happens between a verification's reads (a live run's recorder committing there). */
export interface Hooks {
  /** After the pages of events the tables are held to, before the rows past them are looked for. */
  readonly afterEventPages?: Effect.Effect<void>
  /** The events (and each table's rows) read at a time when the tables are held to them: `PAGE` unless said (a test's small pages). */
  readonly pageSize?: number
}

/**
 * `effect` in one read-only REPEATABLE READ transaction: every query of it sees the database as
 * its first one did, whatever commits meanwhile. Inside a transaction already (a caller's), in
 * that one: its isolation was set by its first query.
 */
const inSnapshot = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const outer = yield* Effect.serviceOption(SqlClient.TransactionConnection)
    if (Option.isSome(outer)) return yield* effect
    return yield* transaction(sql, Effect.zipRight(sql`set transaction isolation level repeatable read, read only`, effect))
  }).pipe(storeError("read the run in one snapshot"))

/** A run's events, the tables they feed, its inputs and (completed) its end. */
const verifyEvents = (run: Runs.RunRecord, hooks: Hooks | undefined) =>
  Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const stream = `run:${run.id}`
  // The checksum covers every event before `RunCompleted`, each line followed by "\n".
  const checksum = createHash("sha256")
  let completed: { readonly position: number; readonly entry: string } | undefined
  const counted = { orders: 0, fills: 0 }
  const runJson = JSON.stringify(run.id)
  const page = hooks?.pageSize ?? PAGE
  const projection = yield* projectionCheck(run.id as RunId, stream, page)
  const report = yield* walk(
    stream,
    (after) =>
      Effect.zipRight(
        projection.endPage(after),
        sql<Link>`select seq as position, tag as kind, at, body as entry, hash from run_events
          where run_id = ${run.id as RunId} and seq > ${after} order by seq limit ${page}`
      ),
    run.chain ?? undefined,
    (link) => {
      // Canonical JSON begins with these four fields (src/swarm/RunLog.ts).
      const prefix = `{"_tag":${JSON.stringify(link.kind)},"run":${runJson},"seq":${link.position},"at":${link.at},`
      if (!link.entry.startsWith(prefix) && link.entry !== `${prefix.slice(0, -1)}}`) {
        return `entry ${link.position}'s columns (tag ${link.kind}, at ${link.at}) are not what its event says: they were changed`
      }
      if (link.kind === "RunCompleted") completed = { position: link.position, entry: link.entry }
      else if (completed === undefined) checksum.update(link.entry).update("\n")
      if (link.kind === "OrderPlaced") counted.orders++
      else if (link.kind === "OrderFilled") counted.fills++
      projection.event(link.entry)
      return undefined
    },
    page
  ).pipe(storeError("verify the run's events"))
  if (!report.ok) return report
  const projected = yield* projection.finish(report.entries, hooks)
  if (projected !== undefined) return projected
  const inputs = yield* verifyInputs(run)
  if (!inputs.ok) return inputs
  if (run.status !== "completed") return inputs.unchecked === undefined ? report : { ...report, unchecked: inputs.unchecked }
  const checked = yield* verifyCompleted(run, report, stream, completed, checksum, counted)
  return checked.ok && inputs.unchecked !== undefined ? { ...checked, unchecked: inputs.unchecked } : checked
  }).pipe(Effect.scoped)

// --- the tables the events feed -------------------------------------------------------------------

/** The tables with a row per event (or several: a snapshot's positions), found by its `seq`. */
const BY_SEQ = ["opinions", "decisions", "verdicts", "orders", "fills", "trades", "equity_snapshots", "positions", "reasoning"] as const

/** Columns holding JSON (`jsonb`): compared as values, their keys in any order. */
const JSON_COLUMNS = new Set(["reasons", "intent", "context"])

/** A row as comparable text: its values in column order, JSON columns as values, every object's keys sorted. */
const rowKey = (table: ProjectedTable, values: ReadonlyArray<unknown>): string =>
  keysSorted(JSON.stringify(values.map((value, i) => (JSON_COLUMNS.has(TABLES[table][i]!) && typeof value === "string" ? JSON.parse(value) : value))))

/**
 * A run's rows of every `BY_SEQ` table in `seq` order, each read through a cursor of the snapshot a
 * page at a time (`through`), alongside the event pages. Several of these tables have no index on
 * `seq` (opinions, decisions, orders, fills: their keys are rounds and orders): a page's rows found
 * by `seq between` scanned all of the run's rows of the table, page after page (a probe's run of
 * 385,319 events: 284,332 opinions scanned for each of its 78 pages), work that grew with the
 * square of the run. A cursor sorts them once, and adds nothing to the recorder's writes, as an
 * index on each table would. Closed when the verification ends, in a caller's transaction too.
 */
const rowCursors = (run: RunId, page: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const id = ++cursorsOpened
    const name = (table: ProjectedTable) => `audit_${id}_${table}`
    // DECLARE takes no parameters: the run id as a literal (standard strings: only ' is special).
    const literal = `'${run.replaceAll("'", "''")}'`
    yield* Effect.acquireRelease(
      Effect.forEach(BY_SEQ, (table) =>
        sql.unsafe(
          `declare ${name(table)} no scroll cursor for select seq, json_build_array(${TABLES[table].join(", ")})::text as row ` +
            `from ${table} where run_id = ${literal} order by seq`
        ), { discard: true }),
      () => Effect.ignore(Effect.forEach(BY_SEQ, (table) => sql.unsafe(`close ${name(table)}`), { discard: true }))
    )
    const buffered = new Map<ProjectedTable, { rows: Array<readonly [number, string]>; done: boolean }>(
      BY_SEQ.map((table) => [table, { rows: [], done: false }])
    )
    /** The rows of `table` with a `seq` up to `last` not taken yet (every one left, `last` undefined): their seq, their comparable text. */
    const through = (table: (typeof BY_SEQ)[number], last?: number) =>
      Effect.gen(function*() {
        const b = buffered.get(table)!
        while (!b.done && (b.rows.length === 0 || last === undefined || b.rows.at(-1)![0] <= last)) {
          const rows = yield* sql.unsafe<{ seq: number | string; row: string }>(`fetch forward ${page} from ${name(table)}`)
          if (rows.length < page) b.done = true
          for (const { row, seq } of rows) b.rows.push([Number(seq), keysSorted(row)])
        }
        if (last === undefined) return b.rows.splice(0)
        const past = b.rows.findIndex(([seq]) => seq > last)
        return past < 0 ? b.rows.splice(0) : b.rows.splice(0, past)
      })
    return { through }
  })

let cursorsOpened = 0

/** A run's stored rows of `table` (`where`, more conditions on `$2`, `$3`), as `json_build_array` of their columns gives them. */
const storedRows = (table: ProjectedTable, run: RunId, where = "", params: ReadonlyArray<number> = []) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ row: string }>(`select json_build_array(${TABLES[table].join(", ")})::text as row from ${table} where run_id = $1 ${where}`, [run, ...params]))

/** Where two rows of `table` first differ: `table.column is …; the event says …`. */
const columnDifference = (table: ProjectedTable, stored: string, expected: string): string => {
  const a = JSON.parse(stored) as Array<unknown>
  const b = JSON.parse(expected) as Array<unknown>
  const i = TABLES[table].findIndex((_, i) => JSON.stringify(a[i]) !== JSON.stringify(b[i]))
  return i < 0 ? "" : `: ${table}.${TABLES[table][i]} is ${JSON.stringify(a[i])}, the event says ${JSON.stringify(b[i])}`
}

/**
 * Every row of the tables a run's events feed (decisions, orders, fills, equity, positions…) against
 * the event it came from, as the recorder made it (`RunRecorder.project`): those tables are what
 * `runs show`, `runs compare`, the leaderboard and the chat agent read, and a row changed there
 * (an equity ten times over, an order's quantity) changed what they say with the event chain
 * intact. A row that is not its event's, missing or added is reported at that event. Checkpoints
 * are not events' rows: a resume checks each against the books it rebuilds.
 *
 * Fed the events as the chain's walk reads them (`event`, then `endPage` before the next page), so
 * that their bodies are read once: a page of 5,000 bodies takes Postgres 0.3–1.2 s, and a second
 * pass over them was half of a verification. The events are the truth the rows are held to, so a
 * broken chain is what is reported when there is one; the first row that is not what its verified
 * event says is kept until the walk has ended (`finish`).
 */
const projectionCheck = (run: RunId, stream: string, page: number) =>
  Effect.gen(function*() {
    /** Each round's row, and the first event that names it. */
    const rounds = new Map<string, readonly [string, number]>()
    const approvals = new Map<string, { requested?: ReadonlyArray<Value>; resolved?: ReadonlyArray<Value> }>()
    /** The totals the events add up to (a row per agent): held to the stored rows once every event is read. */
    const sums: Record<SummedTable, Sums> = { agent_restarts: new Sums("agent_restarts"), llm_usage: new Sums("llm_usage") }
    const cursors = yield* rowCursors(run, page)
    /** The page's rows the events give, by table. */
    let expected = new Map<ProjectedTable, Array<readonly [number, string]>>()
    /** The first row found not to be what its event says: nothing more is compared after it. */
    let wrong: AuditReport | undefined
    /** The events whose rows were compared (the last page's last event). */
    let checked = 0
    /** A verified event of the chain, in order. */
    const event = (body: string): void => {
      if (wrong !== undefined) return
      const event = JSON.parse(body) as RunEvent
      project(event, (table, values) => {
        if (table === "rounds") {
          if (!rounds.has(values[1] as string)) rounds.set(values[1] as string, [rowKey(table, values), event.seq])
        } else if (isSummed(table)) {
          sums[table].add(values, event.seq)
        } else if (table === "approvals") {
          const entry = approvals.get(values[1] as string) ?? {}
          approvals.set(values[1] as string, values[9] === null ? { ...entry, requested: values } : { ...entry, resolved: values })
        } else {
          const rows = expected.get(table) ?? []
          rows.push([event.seq, rowKey(table, values)])
          expected.set(table, rows)
        }
      })
    }
    /** The rows of the events up to `last` (every one given by then) against the stored rows up to it. */
    const endPage = (last: number) =>
      Effect.gen(function*() {
        if (wrong !== undefined || last <= checked) return
        for (const table of BY_SEQ) {
          const mismatch = firstMismatch(table, expected.get(table) ?? [], yield* cursors.through(table, last))
          if (mismatch !== undefined) {
            wrong = fail(stream, mismatch.position, mismatch.reason)
            return
          }
        }
        expected = new Map()
        checked = last
      })
    /** Once the chain verified to its end `after`: the first row found wrong, or the rest of the tables held to the events. */
    const finish = (after: number, hooks: Hooks | undefined) =>
      Effect.gen(function*() {
        yield* endPage(after)
        if (wrong !== undefined) return wrong
        if (hooks?.afterEventPages !== undefined) yield* hooks.afterEventPages
        // Rows past the last event: added (a live run's later rows are past the snapshot).
        for (const table of BY_SEQ) {
          const [extra] = yield* cursors.through(table)
          if (extra !== undefined) return fail(stream, extra[0], `${table} has a row for event ${extra[0]}, past the run's last event: it was added`)
        }
        const storedRounds = new Map((yield* storedRows("rounds", run)).map(({ row }) => [(JSON.parse(row) as Array<string>)[1]!, keysSorted(row)]))
        for (const [round, [key, seq]] of rounds) {
          const stored = storedRounds.get(round)
          if (stored !== key) {
            return fail(stream, seq, `the rounds row of round ${round} is not what its events say${stored === undefined ? ": it was deleted" : columnDifference("rounds", stored, key)}`)
          }
        }
        // A row no event names is reported after the last event.
        for (const round of storedRounds.keys()) if (!rounds.has(round)) return fail(stream, after, `rounds has a row for round ${round}, which no event names: it was added`)
        const approval = yield* verifyApprovals(run, approvals, after)
        if (approval !== undefined) return fail(stream, approval.position, approval.reason)
        for (const table of SUMMED_TABLES) {
          const totals = yield* verifySums(run, sums[table], after)
          if (totals !== undefined) return fail(stream, totals.position, totals.reason)
        }
        return undefined
      }).pipe(storeError("verify the tables the run's events feed"))
    return { event, endPage: (last: number) => endPage(last).pipe(storeError("verify the tables the run's events feed")), finish }
  })

/** The first row of a page of `table` that is not what the events give, by event: the stored rows against the expected. */
const firstMismatch = (
  table: ProjectedTable,
  expected: ReadonlyArray<readonly [number, string]>,
  stored: ReadonlyArray<readonly [number, string]>
): { readonly position: number; readonly reason: string } | undefined => {
  const order = (a: readonly [number, string], b: readonly [number, string]) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)
  const want = [...expected].sort(order)
  const have = [...stored].sort(order)
  for (let i = 0; i < Math.max(want.length, have.length); i++) {
    const w = want[i]
    const h = have[i]
    if (w !== undefined && h !== undefined && w[1] === h[1]) continue
    if (w !== undefined && (h === undefined || w[0] < h[0])) {
      return { position: w[0], reason: `${table} lacks the row of event ${w[0]}: it was deleted or changed` }
    }
    if (h !== undefined && (w === undefined || h[0] < w[0])) {
      return { position: h[0], reason: `${table} has a row for event ${h[0]} that no event gives: it was added or changed` }
    }
    return { position: w![0], reason: `the ${table} row of event ${w![0]} is not what the event says${columnDifference(table, h![1], w![1])}` }
  }
  return undefined
}

/**
 * A table of totals (`RunRecorder.SUMMED`: a row per agent) against what the events add up to. A
 * row that is not what they say is reported at the last event that added to it; one no event
 * gives, after the last event.
 */
const verifySums = (run: RunId, expected: Sums, lastEvent: number) =>
  Effect.gen(function*() {
    const table = expected.table
    const key = SUMMED[table].key
    const stored = new Map((yield* storedRows(table, run)).map(({ row }) => [JSON.stringify((JSON.parse(row) as Array<Value>).slice(0, key)), keysSorted(row)]))
    for (const [id, values] of expected.entries()) {
      const want = rowKey(table, values)
      const have = stored.get(id)
      if (have !== want) {
        const at = expected.lastSeq.get(id) ?? lastEvent
        return { position: at, reason: `the ${table} row of ${id} is not what the run's events add up to${have === undefined ? ": it was deleted" : columnDifference(table, have, want)}` }
      }
    }
    for (const id of stored.keys()) {
      if (!expected.lastSeq.has(id)) return { position: lastEvent, reason: `${table} has a row of ${id}, which no event gives: it was added` }
    }
    return undefined
  })

/**
 * A run's approvals against its events: each as its request made it, and as its resolution
 * (recorded) answered it. One the events leave unresolved is `pending`, or `cancelled` by the run's
 * end (a stop, a failure: written by the server, not an event).
 */
const verifyApprovals = (
  run: RunId,
  expected: ReadonlyMap<string, { requested?: ReadonlyArray<Value>; resolved?: ReadonlyArray<Value> }>,
  lastEvent: number
) =>
  Effect.gen(function*() {
    const stored = new Map((yield* storedRows("approvals", run)).map(({ row }) => {
      const values = JSON.parse(row) as Array<Value>
      return [values[1] as string, values] as const
    }))
    for (const [round, { requested, resolved }] of expected) {
      if (requested === undefined) continue
      const at = requested[7] as number
      const have = stored.get(round)
      if (have === undefined) return { position: at, reason: `approvals lacks round ${round}, requested at event ${at}: it was deleted` }
      const want: Array<Value> = [...requested]
      if (resolved !== undefined) [want[6], want[9], want[10], want[11]] = [resolved[6]!, resolved[9]!, resolved[10]!, resolved[11]!]
      else if (have[6] === "cancelled") [want[6], want[9], want[10], want[11]] = [have[6], have[9]!, have[10]!, have[11]!]
      const key = rowKey("approvals", want)
      const haveKey = keysSorted(JSON.stringify(have))
      if (key !== haveKey) {
        return { position: resolved === undefined ? at : resolved[9] as number, reason: `the approvals row of round ${round} is not what its events say${columnDifference("approvals", haveKey, key)}` }
      }
    }
    for (const round of stored.keys()) {
      if (expected.get(round)?.requested === undefined) return { position: lastEvent, reason: `approvals has a row for round ${round}, which no event requested: it was added` }
    }
    return undefined
  })

/** A completed run's end: its `RunCompleted` event, and what its row says of it. */
const verifyCompleted = (
  run: Runs.RunRecord,
  report: AuditReport & { readonly ok: true },
  stream: string,
  completed: { readonly position: number; readonly entry: string } | undefined,
  checksum: ReturnType<typeof createHash>,
  counted: { readonly orders: number; readonly fills: number }
) =>
  Effect.sync((): AuditReport => {
  if (completed === undefined) return fail(stream, report.entries, "the run is marked completed but its events do not end with RunCompleted")
  const ended = Either.getOrUndefined(decodeCompleted(completed.entry))
  const at = completed.position
  if (ended === undefined) return fail(stream, at, "the RunCompleted event does not decode")
  if (run.checksum !== ended.checksum) {
    return fail(stream, at, `the run's checksum ${String(run.checksum).slice(0, 12)}… is not the one its RunCompleted event records (${ended.checksum.slice(0, 12)}…)`)
  }
  if (checksum.digest("hex") !== run.checksum) {
    return fail(stream, 1, `the events do not re-hash to the run's checksum ${run.checksum.slice(0, 12)}…`)
  }
  if (run.metrics === null || canonicalMetrics(run.metrics) !== canonicalMetrics(ended.metrics)) {
    return fail(stream, at, "the run's metrics are not the ones its RunCompleted event records: they were changed")
  }
  const counts = run.counts
  for (const [name, value] of [["events", report.entries], ["orders", counted.orders], ["fills", counted.fills]] as const) {
    if (counts?.[name] !== value) {
      return fail(stream, at, `the run's count of ${name} (${counts?.[name] ?? "none"}) is not what its events hold (${value}): it was changed`)
    }
  }
  return report
  })

const decodeStrategy = Schema.decodeUnknownEither(Strategy)
const decodeStarted = Schema.decodeUnknownEither(
  Schema.parseJson(Schema.Struct({ strategy: Schema.String, strategyVersion: Schema.Number, mode: Schema.String, seed: Schema.String, dataFingerprint: Schema.String }))
)

/**
 * Verify a run's recorded inputs — what a replay or a resume re-executes it from — against what
 * vouches for them: its `RunStarted` event (hashed in its chain: the strategy and version, mode,
 * seed and data fingerprint), its strategy's chain of versions (the snapshot must be the version
 * the run names, as that chain records it), and the seal of its inputs made when it was created
 * (`Runs.inputsSeal`: the rest — data source, event detail, faults, pace). A run recorded before
 * runs were sealed has none: `unchecked` says what could not be checked for it. Reported at entry
 * 1, the event that starts the run.
 */
export const verifyInputs = Effect.fn("Audit.verifyInputs")(function*(run: Runs.RunRecord) {
  const sql = yield* SqlClient.SqlClient
  const stream = `run:${run.id}`
  const changed = (what: string) => fail(stream, 1, `the run's ${what}: its recorded inputs were changed after it ran`)
  const [first] = yield* sql<{ tag: string; body: string; hash: string }>`
    select tag, body, hash from run_events where run_id = ${run.id as RunId} and seq = 1`
  // A run that died before its first event was committed has none.
  if (first !== undefined) {
    if (linkHash(GENESIS, first.body) !== first.hash) return fail(stream, 1, "entry 1 does not verify: its content was changed")
    const started = Either.getOrUndefined(decodeStarted(first.body))
    if (first.tag !== "RunStarted" || started === undefined) return fail(stream, 1, "the run's first event is not a RunStarted event that decodes")
    const recorded: ReadonlyArray<readonly [string, unknown, unknown]> = [
      ["strategy", started.strategy, run.strategyId],
      ["strategy version", started.strategyVersion, run.strategyVersion],
      ["mode", started.mode, run.mode],
      ["seed", started.seed, run.seed],
      ["data fingerprint", started.dataFingerprint, run.dataFingerprint]
    ]
    for (const [name, expected, actual] of recorded) {
      if (expected !== actual) return changed(`${name} is ${JSON.stringify(actual)}, not ${JSON.stringify(expected)} as its RunStarted event records`)
    }
  }
  // The snapshot against the version it names, as its strategy's chain records it; both read with
  // today's schema, so a field added since (with its default) is no difference.
  const strategyChain = yield* verifyStrategy(run.strategyId)
  if (!strategyChain.ok) {
    return fail(stream, 1, `its strategy's chain of versions (${strategyChain.stream}) does not verify at entry ${strategyChain.position}: ${strategyChain.reason}`)
  }
  const [saved] = yield* sql<{ entry: string }>`select entry from audit_log
    where stream = ${`strategy:${run.strategyId}`} and kind = 'StrategyVersionSaved' and (entry::jsonb ->> 'version')::int = ${run.strategyVersion}`
  const version = saved === undefined ? undefined : Either.getOrUndefined(decodeStrategy((JSON.parse(saved.entry) as { body: unknown }).body))
  if (version === undefined) return fail(stream, 1, `version ${run.strategyVersion} of its strategy is not in the strategy's chain of versions`)
  // Keys in one order: a `jsonb` column keeps an object's keys in its own order (shorter first),
  // not the order the strategy listed them in (an agent's `params`: `{rounds, bars}` reads back
  // `{bars, rounds}`), which the chain's text copy keeps.
  const expected = keysSorted(canonical(version))
  const actual = keysSorted(canonical(run.strategy))
  if (expected !== actual) {
    const d = firstDifference(JSON.parse(expected), JSON.parse(actual))
    return changed(
      `strategy snapshot is not version ${run.strategyVersion} as its strategy's chain records it` +
        (d === undefined ? "" : ` (${d.field} was ${JSON.stringify(d.expected) ?? "(nothing)"}, now ${JSON.stringify(d.actual) ?? "(nothing)"})`)
    )
  }
  const [row] = yield* sql<{ seal: Record<string, string> | null; now: Record<string, string> }>`
    select inputs_seal as seal, ${Runs.inputsSeal(sql)} as now from runs where id = ${run.id}`
  if (row?.seal == null) {
    return {
      ok: true as const,
      unchecked: "the run was recorded before runs sealed their inputs: its data source, event detail, faults and pace cannot be checked"
    }
  }
  for (const [name, column] of Runs.INPUTS) {
    if (row.seal[column] !== row.now[column]) return changed(`${name} is not what it was when the run was created (it no longer matches the run's seal)`)
  }
  return { ok: true as const, unchecked: undefined }
}, storeError("verify the run's inputs"))

/** JSON text with every object's keys in code-unit order, at every depth. */
const keysSorted = (json: string): string =>
  JSON.stringify(JSON.parse(json), (_, value: unknown) =>
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value)

/** What a `RunCompleted` event's line says of the run's end. */
const decodeCompleted = Schema.decodeEither(Schema.parseJson(Schema.Struct({ metrics: Metrics, checksum: Schema.String })))

const canonicalMetrics = (metrics: Metrics): string => JSON.stringify(Schema.encodeSync(Metrics)(metrics))
