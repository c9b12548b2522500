/**
 * Writes a run to the database as it happens, without the run ever waiting for a round trip.
 *
 * The recorder is a `RunLog` sink: for each event it appends, synchronously and in memory, the
 * event's row (its canonical JSON line and its link of the run's hash chain) and the rows of the
 * tables the event feeds (rounds, opinions, decisions, verdicts, orders, fills, trades, equity
 * snapshots, positions, approvals), and adds it to the run's totals per agent (`SUMMED`: restarts,
 * model calls). A writer fiber takes whatever has accumulated and writes it in
 * one transaction (group commit) with `COPY … FROM STDIN` — or multi-row inserts where the server
 * cannot copy — waking when rows arrive and, while a batch is small, waiting a few milliseconds
 * for more. A backtest gives the event loop a turn every few hundred slices, which is when the
 * writer sends; the database works on it (on the other core) while the run goes on. `pace` is the
 * flow control: it waits only while the backlog is past a high-water mark, so a database slower
 * than the run bounds the memory instead of growing it.
 *
 * The run's row says its trading state as of its last event committed (`trading_state`, set in the
 * batch's transaction by its first batch and by each that changes it), so that `runs show` of a
 * live run says it is halted, wherever it runs; its end sets it once more (`Runs.finish`).
 *
 * The hash chain: every event's `hash` is SHA-256 of the previous event's hash, `"\n"` and the
 * event's canonical JSON line (64 zeros before the first), so the event log is the run's audit
 * log: changing, deleting or reordering any of its rows breaks the chain (`Audit.ts` verifies it).
 */
import { Deferred, Duration, Effect, Exit, type Scope } from "effect"
import type * as Pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import type { RunId } from "../../schemas/Ids.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { sha256Hex } from "../internal/sha256.js"
import { causeLine, llmTallyOf } from "../swarm/AgentTally.js"
import { checkLeaseOn, fenceOn, type Lease, retryLeased } from "./Lease.js"
import { connectListening, PgPool, type PoolService } from "./Pool.js"
import { StoreError } from "./StoreError.js"
import * as Transient from "./Transient.js"

/** The hash before a chain's first link. */
export const GENESIS = "0".repeat(64)

/** `SHA-256(prev ‖ "\n" ‖ entry)`, hex. */
export const linkHash = (prev: string, entry: string): string => sha256Hex(`${prev}\n${entry}`)

export interface Options {
  /** Rows in one batch before the writer stops waiting for more. */
  readonly batchRows?: number
  /** How long a small batch waits for more rows. */
  readonly groupMillis?: number
  /** Rows buffered (not yet committed) past which `pace` waits. */
  readonly highWater?: number
  /**
   * Characters of event lines buffered past which `pace` waits too: rows alone let an LLM run's
   * backlog (2.5 KB an event, its reasoning besides) reach hundreds of megabytes, all lost to a kill.
   */
  readonly highWaterChars?: number
  /**
   * Told each event once its batch is committed, in sequence order, before `flush` returns: what
   * a live run's followers see (the server's bus), so that no one is shown an event the database
   * may still lose — a process killed before the commit re-executes that part on resume, and what
   * it gives again may differ.
   */
  readonly onCommitted?: (event: RunEvent, json: string) => void
  /**
   * The run's lease (`Runs.lease`), checked by every batch in its transaction: a process that no
   * longer holds it commits nothing more (another process may be running the run), and a batch
   * waits, as for a database blip, while the lease is being taken again.
   */
  readonly lease?: Lease
}

export interface Recorder {
  /** The `RunLog` sink. Synchronous; never blocks. */
  readonly sink: (event: RunEvent, json: string) => void
  /** Waits while the backlog is past the high-water mark; fails once a write has failed for good. */
  readonly pace: Effect.Effect<void, StoreError>
  /** Waits until every event so far is committed. */
  readonly flush: Effect.Effect<void, StoreError>
  /** Rows buffered or being written. */
  readonly backlog: () => number
  /** The chain so far: events linked and the last hash. */
  readonly head: () => { readonly count: number; readonly hash: string }
  /** Events committed so far. */
  readonly written: () => number
  /**
   * Record a checkpoint at a slice boundary — the feed's cursor and the books as the events so far
   * left them — committed with those events. Resume continues after the last committed event and
   * checks the books it rebuilds against the last checkpoint.
   */
  readonly checkpoint: (cursor: Cursor) => void
  /** What a checkpoint at `cursor` would record. */
  readonly snapshot: (cursor: Cursor) => CheckpointState
  /** Follow an event that is not written (resume compares the recorded ones): checkpoints stay whole. */
  readonly track: (event: RunEvent) => void
}

/** Where the run stood in its feed at a checkpoint. */
export interface Cursor {
  readonly slices: number
  readonly bars: number
  readonly ts: number
  /** The last event's sequence number. */
  readonly events: number
}

/** A checkpoint's `state`: the cursor, the chain's head, and the books. */
export interface CheckpointState {
  readonly cursor: Cursor
  readonly chain: { readonly count: number; readonly hash: string }
  readonly tradingState: string
  /** The last portfolio snapshot's totals (micros), or null before the first fill. */
  readonly books: {
    readonly ts: number
    readonly cash: number
    readonly equity: number
    readonly realizedPnl: number
  } | null
  /** Every position ever held, as last reported (flat ones with quantity 0). */
  readonly positions: ReadonlyArray<{ readonly symbol: string; readonly quantity: number; readonly averagePrice: number }>
  /** Approvals requested and not resolved. */
  readonly pendingApprovals: ReadonlyArray<string>
}

export type Value = string | number | null

/** Every table the recorder appends to, with its columns in the order rows give them. Insert order respects the foreign keys. */
export const TABLES = {
  run_events: ["run_id", "seq", "tag", "at", "hash", "body"],
  rounds: ["run_id", "round_id", "symbol", "ts"],
  opinions: ["run_id", "round_id", "agent", "seq", "direction", "confidence"],
  decisions: ["run_id", "round_id", "seq", "symbol", "ts", "action", "confidence"],
  verdicts: ["run_id", "seq", "round_id", "symbol", "outcome", "quantity"],
  orders: ["run_id", "order_id", "idempotency_key", "seq", "round_id", "symbol", "side", "quantity", "decided_at"],
  fills: ["run_id", "fill_id", "order_id", "seq", "symbol", "side", "quantity", "price", "notional", "commission", "ts"],
  trades: ["run_id", "seq", "symbol", "side", "entry_ts", "exit_ts", "pnl"],
  equity_snapshots: ["run_id", "seq", "ts", "cash", "equity", "gross_exposure", "realized_pnl", "unrealized_pnl"],
  positions: ["run_id", "seq", "symbol", "quantity", "average_price", "realized_pnl", "mark_price", "market_value", "unrealized_pnl"],
  checkpoints: ["run_id", "seq", "ts", "state"],
  reasoning: ["run_id", "round_id", "agent", "seq", "kind", "content", "context"],
  agent_restarts: ["run_id", "agent", "crashes", "restarts", "last_seq", "last_cause"],
  llm_usage: [
    "run_id",
    "agent",
    "backend",
    "model",
    "calls",
    "cache_hits",
    "refused",
    "failed",
    "budget_spent",
    "tokens_in",
    "tokens_out",
    "cost_nanos"
  ],
  approvals: [
    "run_id",
    "round_id",
    "symbol",
    "quantity",
    "reasons",
    "intent",
    "status",
    "requested_seq",
    "expires_at",
    "resolved_seq",
    "resolved_by",
    "reason"
  ]
} as const
export type TableName = keyof typeof TABLES
const NAMES = Object.keys(TABLES) as ReadonlyArray<TableName>

/** The tables an event's projection feeds (every table the recorder writes but `run_events` and `checkpoints`). */
export type ProjectedTable = Exclude<TableName, "run_events" | "checkpoints">

/**
 * The tables of totals: a row per run and key (its first `key` columns), each event adding its row
 * to it — its counts summed; its `latest` columns, when the event gives them (the first not null),
 * replacing the row's. What `runs show` reads of a run of millions of events: a row per agent.
 */
export const SUMMED = {
  agent_restarts: { key: 2, latest: ["last_seq", "last_cause"] },
  llm_usage: { key: 4, latest: [] }
} as const satisfies Partial<Record<ProjectedTable, { readonly key: number; readonly latest: ReadonlyArray<string> }>>
export type SummedTable = keyof typeof SUMMED
export const SUMMED_TABLES = Object.keys(SUMMED) as ReadonlyArray<SummedTable>
export const isSummed = (table: TableName): table is SummedTable => table in SUMMED

/** Rows of a table of totals, summed by key as events give them: the recorder's per batch, `Audit`'s per run. */
export class Sums {
  private readonly rows = new Map<string, Array<Value>>()
  /** Each key's last event that added to it. */
  readonly lastSeq = new Map<string, number>()

  constructor(readonly table: SummedTable) {}

  get size(): number {
    return this.rows.size
  }

  /** Add an event's row; true when it is a key not seen before. */
  add(values: ReadonlyArray<Value>, seq: number): boolean {
    const { key, latest } = SUMMED[this.table]
    const columns: ReadonlyArray<string> = TABLES[this.table]
    const id = JSON.stringify(values.slice(0, key))
    this.lastSeq.set(id, seq)
    const row = this.rows.get(id)
    if (row === undefined) {
      this.rows.set(id, [...values])
      return true
    }
    const replaces = latest.length > 0 && values[columns.indexOf(latest[0]!)] !== null
    for (let i = key; i < columns.length; i++) {
      if ((latest as ReadonlyArray<string>).includes(columns[i]!)) {
        if (replaces) row[i] = values[i]!
      } else row[i] = (row[i] as number) + (values[i] as number)
    }
    return false
  }

  entries(): ReadonlyArray<readonly [string, ReadonlyArray<Value>]> {
    return [...this.rows]
  }

  values(): Array<ReadonlyArray<Value>> {
    return [...this.rows.values()]
  }
}

const emptySums = (): Record<SummedTable, Sums> => ({ agent_restarts: new Sums("agent_restarts"), llm_usage: new Sums("llm_usage") })

/** A call's cost in billionths of the currency: summed exactly, in any order. */
/**
 * The rows `event` gives the tables it feeds, each told to `row` (a round's once per event that
 * names it: the recorder keeps the first). One function for the recorder and for `Audit.verifyRun`,
 * which checks every stored row against the event it came from.
 */
export const project = (event: RunEvent, row: (table: ProjectedTable, values: ReadonlyArray<Value>) => void): void => {
  const r = event.run
  const seq = event.seq
  switch (event._tag) {
    case "OpinionGiven": {
      const o = event.opinion
      row("rounds", [r, o.round, o.symbol, o.ts])
      row("opinions", [r, o.round, o.agent, seq, o.direction, o.confidence])
      break
    }
    case "DecisionMade": {
      const d = event.decision
      row("rounds", [r, d.round, d.symbol, d.ts])
      row("decisions", [r, d.round, seq, d.symbol, d.ts, d.action, d.confidence])
      break
    }
    case "VerdictGiven": {
      const v = event.verdict
      row("verdicts", [r, seq, v.intent.round, v.intent.symbol, v.outcome, v.quantity])
      break
    }
    case "ApprovalRequested":
      row("approvals", [
        r,
        event.round,
        event.intent.symbol,
        event.quantity,
        JSON.stringify(event.reasons),
        JSON.stringify(event.intent),
        "pending",
        seq,
        event.expiresAt,
        null,
        null,
        null
      ])
      break
    case "ApprovalResolved":
      row("approvals", [r, event.round, "", 0, "[]", "{}", event.outcome, seq, 0, seq, event.by, event.reason])
      break
    case "OrderPlaced": {
      const o = event.order
      row("orders", [r, o.id, o.idempotencyKey, seq, o.round, o.symbol, o.side, o.quantity, o.decidedAt])
      break
    }
    case "OrderFilled": {
      const f = event.fill
      row("fills", [r, f.id, f.orderId, seq, f.symbol, f.side, f.quantity, f.price, f.notional, f.commission, f.ts])
      break
    }
    case "TradeClosed": {
      const t = event.trade
      row("trades", [r, seq, t.symbol, t.side, t.entryTs, t.exitTs, t.pnl])
      break
    }
    case "AgentLifecycle": {
      const e = event.event
      if (e._tag === "ActorCrashed") row("agent_restarts", [r, e.actor, 1, 0, seq, causeLine(e.cause)])
      else if (e._tag === "ActorRestarted") row("agent_restarts", [r, e.actor, 0, 1, null, null])
      break
    }
    case "LlmCalled": {
      const t = llmTallyOf(event.call)
      row("llm_usage", [r, t.agent, t.backend, t.model, t.calls, t.cacheHits, t.refused, t.failed, t.budgetSpent, t.tokensIn, t.tokensOut, t.costNanos])
      break
    }
    case "ReasoningRecorded":
      // The role (bull, bear, judge…) and the context the agent saw (the brief) go together.
      row("reasoning", [r, event.round, event.agent, seq, event.kind, event.text, JSON.stringify({ role: event.role, context: event.context ?? null })])
      break
    case "PortfolioUpdated": {
      const s = event.snapshot
      row("equity_snapshots", [r, seq, s.ts, s.cash, s.equity, s.grossExposure, s.realizedPnl, s.unrealizedPnl])
      for (const p of s.positions) {
        row("positions", [r, seq, p.symbol, p.quantity, p.averagePrice, p.realizedPnl, p.markPrice, p.marketValue, p.unrealizedPnl])
      }
      break
    }
  }
}

type Batch = Record<TableName, Array<ReadonlyArray<Value>>>
const emptyBatch = (): Batch => ({
  run_events: [],
  rounds: [],
  opinions: [],
  decisions: [],
  verdicts: [],
  orders: [],
  fills: [],
  trades: [],
  equity_snapshots: [],
  positions: [],
  checkpoints: [],
  reasoning: [],
  agent_restarts: [],
  llm_usage: [],
  approvals: []
})

/**
 * A recorder for one run whose `runs` row exists; `from` continues a chain (a resumed run). Its
 * writer lives in `scope`; closing the scope stops it (call `flush` first to keep what is buffered).
 */
export const make = (
  run: RunId,
  options: Options & { readonly from?: { readonly count: number; readonly hash: string } } = {}
): Effect.Effect<Recorder, never, PgPool | Scope.Scope> =>
  Effect.gen(function*() {
    const service = yield* PgPool
    const batchRows = options.batchRows ?? 20_000
    const groupMillis = options.groupMillis ?? 5
    const highWater = options.highWater ?? 300_000
    const highWaterChars = options.highWaterChars ?? 32 * 1024 * 1024

    const onCommitted = options.onCommitted
    let pending = emptyBatch()
    /** The totals of `pending`'s events, by key (`SUMMED`): a row each in the batch. */
    let pendingSums = emptySums()
    /** The events of `pending`, for `onCommitted` (kept only when there is one). */
    let pendingCommits: Array<readonly [RunEvent, string]> = []
    let pendingRows = 0
    let pendingEvents = 0
    let inFlightRows = 0
    /** Characters of the event lines pending and in flight (their projections' rows are about as many again). */
    let pendingChars = 0
    let inFlightChars = 0
    let written = 0
    let chainCount = options.from?.count ?? 0
    let chainHash = options.from?.hash ?? GENESIS
    let failure: StoreError | undefined
    /** Completed when rows arrive while the writer sleeps. */
    let work = yield* Deferred.make<void>()
    let idle = true
    /** Completed after each batch: what `pace` and `flush` wait on. */
    let progress = yield* Deferred.make<void>()
    /**
     * Rounds already given a row, in this batch and the one before: a round's events come from one
     * coordinator turn, so they never span more than two batches, and the sets stay small.
     */
    let rounds = new Set<string>()
    let roundsBefore = new Set<string>()

    const push = (table: TableName, row: ReadonlyArray<Value>) => {
      pending[table].push(row)
      pendingRows++
    }
    /** Rows are pending: make sure the writer is not asleep on them (once per wake-up, not per row). */
    const wake = () => {
      if (idle) {
        idle = false
        Deferred.unsafeDone(work, Exit.void)
      }
    }
    const round = (run_id: string, id: string, symbol: string, ts: number) => {
      if (rounds.has(id) || roundsBefore.has(id)) return
      rounds.add(id)
      push("rounds", [run_id, id, symbol, ts])
    }

    // What a checkpoint records, kept up to date from the events.
    let tradingState = "active"
    /** The trading state the run's row says, as this recorder last committed it (`undefined`: not yet). */
    let rowState: string | undefined
    let books: CheckpointState["books"] = null
    const positions = new Map<string, { readonly symbol: string; readonly quantity: number; readonly averagePrice: number }>()
    const pendingApprovals = new Set<string>()

    /** Keep what a checkpoint records up to date (also for events compared, not written, on resume). */
    const track = (event: RunEvent): void => {
      switch (event._tag) {
        case "ApprovalRequested":
          pendingApprovals.add(event.round)
          break
        case "ApprovalResolved":
          pendingApprovals.delete(event.round)
          break
        case "PortfolioUpdated": {
          const s = event.snapshot
          books = { ts: s.ts, cash: s.cash, equity: s.equity, realizedPnl: s.realizedPnl }
          for (const p of s.positions) positions.set(p.symbol, { symbol: p.symbol, quantity: p.quantity, averagePrice: p.averagePrice })
          break
        }
        case "TradingStateChanged":
          tradingState = event.transition.to
          break
      }
    }

    /** A projection's row: pending, and a round once (`round`). */
    const projected = (seq: number) => (table: ProjectedTable, row: ReadonlyArray<Value>) => {
      if (table === "rounds") round(row[0] as string, row[1] as string, row[2] as string, row[3] as number)
      else if (isSummed(table)) {
        if (pendingSums[table].add(row, seq)) pendingRows++
      } else push(table, row)
    }

    const sink = (event: RunEvent, json: string): void => {
      track(event)
      const r = event.run
      const seq = event.seq
      chainHash = linkHash(chainHash, json)
      chainCount++
      push("run_events", [r, seq, event._tag, event.at, chainHash, json])
      pendingEvents++
      pendingChars += json.length
      if (onCommitted !== undefined) pendingCommits.push([event, json])
      project(event, projected(seq))
      wake()
    }

    const writeBatch = (batch: Batch, state: string | undefined) => {
      let tries = 0
      return Effect.tryPromise({ try: (signal) => commit(service, batch, state === undefined ? undefined : { run, state }, tries++ > 0, options.lease, signal), catch: (error) => error }).pipe(
        // A dropped connection, or a database restarting, is worth more tries for half a minute (the
        // transaction rolled back, all or nothing; the run meanwhile waits at its backlog's bound).
        // A batch the database refuses for what it holds is not, nor one whose lease is lost.
        (attempts) => retryLeased(attempts, options.lease, (error) => Transient.transient(error) || limited(error)),
        Effect.mapError((error) => new StoreError({ operation: `record run ${run}`, reason: error instanceof Error ? error.message : String(error) }))
      )
    }

    const announce = Effect.suspend(() => {
      const done = progress
      return Effect.flatMap(Deferred.make<void>(), (next) => {
        progress = next
        return Deferred.succeed(done, undefined)
      })
    })

    const writer = Effect.gen(function*() {
      for (;;) {
        if (pendingRows === 0) {
          idle = true
          yield* Deferred.await(work)
          work = yield* Deferred.make<void>()
        }
        if (pendingRows < batchRows) yield* Effect.sleep(Duration.millis(groupMillis))
        const batch = pending
        for (const table of SUMMED_TABLES) batch[table] = pendingSums[table].values()
        pendingSums = emptySums()
        const events = pendingEvents
        const committed = pendingCommits
        // The state as of the batch's last event (every event so far is in it): the row's, when it changed.
        const state = tradingState === rowState ? undefined : tradingState
        inFlightRows = pendingRows
        inFlightChars = pendingChars
        pending = emptyBatch()
        pendingCommits = []
        roundsBefore = rounds
        rounds = new Set()
        pendingRows = 0
        pendingEvents = 0
        pendingChars = 0
        const exit = yield* Effect.exit(writeBatch(batch, state))
        inFlightRows = 0
        inFlightChars = 0
        if (Exit.isFailure(exit)) {
          failure = exit.cause._tag === "Fail" ? exit.cause.error : new StoreError({ operation: `record run ${run}`, reason: String(exit.cause) })
          yield* announce
          return
        }
        if (state !== undefined) rowState = state
        written += events
        // Before `announce`: once `flush` returns, every event so far has been told.
        if (onCommitted !== undefined) for (const [event, json] of committed) onCommitted(event, json)
        yield* announce
      }
    })
    yield* Effect.forkScoped(writer)

    const backlog = () => pendingRows + inFlightRows
    const waitWhile = (condition: () => boolean): Effect.Effect<void, StoreError> =>
      Effect.suspend(function loop(): Effect.Effect<void, StoreError> {
        if (failure !== undefined) return Effect.fail(failure)
        if (!condition()) return Effect.void
        return Effect.flatMap(Deferred.await(progress), loop)
      })

    const snapshot = (cursor: Cursor): CheckpointState => ({
        cursor,
        chain: { count: chainCount, hash: chainHash },
        tradingState,
        books,
        positions: [...positions.values()].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0)),
        pendingApprovals: [...pendingApprovals]
      })
    const checkpoint = (cursor: Cursor): void => {
      push("checkpoints", [run, cursor.events, cursor.ts, JSON.stringify(snapshot(cursor))])
      // A checkpoint may be the last row of a run that then waits (a paper run between bars, one
      // suspended by a shutdown): a flush must not wait on a writer that never heard of it.
      wake()
    }

    return {
      sink,
      track,
      snapshot,
      checkpoint,
      pace: waitWhile(() => backlog() > highWater || pendingChars + inFlightChars > highWaterChars),
      flush: waitWhile(() => backlog() > 0),
      backlog,
      head: () => ({ count: chainCount, hash: chainHash }),
      written: () => written
    } satisfies Recorder
  })

// ---------------------------------------------------------------------------------------------
// Writing a batch

/**
 * Limits of a batch's transaction on Postgres, in milliseconds (`set local`): a statement held up
 * behind a lock, one that runs on and on, or the transaction left open between statements (its
 * process stalled while it holds the run's row, `fenceOn`) is ended by the server, and the batch
 * is tried again as after a blip. Unbounded, a batch waited as long as the lock was held — its
 * lease lost meanwhile, and taken over.
 */
const LIMITS = { statement: 30_000, lock: 5_000, idle: 30_000 } as const
const SET_LIMITS = `select set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true),
  set_config('idle_in_transaction_session_timeout', $3, true)`

/** Whether `error` is a statement of a batch ended by its limits (`LIMITS`): worth another try. */
const limited = (error: unknown): boolean => {
  const code = typeof error === "object" && error !== null ? (error as { readonly code?: unknown }).code : undefined
  return code === "57014" || code === "55P03"
}

/** A batch's writer was interrupted: the batch stops where it stands, and is not committed. */
const interrupted = (signal: AbortSignal): void => {
  if (signal.aborted) throw new Error("the batch was interrupted: not committed")
}

/**
 * One transaction: every table's rows, all or nothing. `again` is a retry: the try before may have
 * failed after Postgres committed (the connection lost while the acknowledgement of `commit` was on
 * its way), and writing the batch twice would meet its own rows' keys and fail the run. A batch is
 * whole or absent, so its first event says which; a batch of no events holds only upserts.
 *
 * Under `lease`, the lease is checked at the start (nothing is sent for a run no longer this
 * process's) and again as the batch commits (`fenceOn`): a batch held up meanwhile (behind a lock,
 * a server too busy) while the lease went to another process commits nothing. Interrupted
 * (`signal`: its run stopped, or gone on elsewhere), a batch is not committed either: its promise
 * is not awaited any more, and went on to commit what nobody was told of — on Postgres its
 * connection is closed at once, the statement under way with it, and the server rolls it back;
 * the embedded database's one connection is kept (its reopening failed the next query), and the
 * batch rolled back once its statement under way has ended.
 */
const commit = async (
  { copy, pool, shared }: Pick<PoolService, "copy" | "pool" | "shared">,
  batch: Batch,
  row: { readonly run: RunId; readonly state: string } | undefined,
  again: boolean,
  lease: Lease | undefined,
  signal: AbortSignal
): Promise<void> => {
  // The connection is closed only if it cannot be trusted: when the rollback failed too (a dropped
  // connection). A statement the server refused (a row it cannot store) leaves it sound once rolled
  // back — and the embedded database has one connection, whose reopening failed the next query.
  let broken: Error | undefined
  // A checked-out client has no listener of the pool's: its connection dying (the server
  // restarting, a pg_terminate_backend) would be an 'error' event nobody hears, thrown at the
  // process — which crashed the server. Heard here, it fails the query in flight and the client is
  // not reused.
  const { client, listener } = await connectListening(pool, (_, error) => {
    broken ??= error
  })
  const onAbort = () => {
    broken ??= new Error("the batch was interrupted: its connection closed")
    void client.end()
  }
  if (shared) signal.addEventListener("abort", onAbort, { once: true })
  try {
    interrupted(signal)
    await client.query("begin")
    if (shared) await client.query(SET_LIMITS, [String(LIMITS.statement), String(LIMITS.lock), String(LIMITS.idle)])
    // Not the run's any more (lost, or not provable): nothing is written, nor taken for this
    // process's own (a retried batch's first event may be the other process's by now).
    await checkLeaseOn(client, lease)
    const first = batch.run_events[0]
    if (again && first !== undefined) {
      const landed = await client.query("select 1 from run_events where run_id = $1 and seq = $2", [first[0], first[1]])
      if (landed.rows.length > 0) {
        await client.query("rollback")
        return
      }
    }
    for (const name of NAMES) {
      const rows = batch[name]
      if (rows.length === 0) continue
      interrupted(signal)
      if (name === "approvals") await upsertApprovals(client, rows)
      else if (name === "checkpoints") await upsertCheckpoints(client, rows)
      else if (isSummed(name)) await addSums(client, name, rows)
      else if (copy) await copyRows(client, name, rows)
      else await insertRows(client, name, rows)
    }
    await fenceOn(client, lease)
    // The run's trading state as of the batch's last event, when it changed (`runs show` of a live
    // run): after the fence, whose lock on the run's row it then holds already.
    if (row !== undefined) await client.query("update runs set trading_state = $1 where id = $2", [row.state, row.run])
    interrupted(signal)
    await client.query("commit")
  } catch (error) {
    const failure = error instanceof Error ? error : new Error(String(error))
    await client.query("rollback").catch((rollback: unknown) => {
      broken = rollback instanceof Error ? rollback : failure
    })
    throw failure
  } finally {
    signal.removeEventListener("abort", onAbort)
    client.off("error", listener)
    client.release(broken)
  }
}

/** COPY's text format: `\N` is null; backslash, newline, carriage return and tab are escaped. */
const field = (value: Value): string => {
  if (value === null) return "\\N"
  if (typeof value === "number") return String(value)
  return /[\\\n\r\t]/.test(value) ? value.replace(/[\\\n\r\t]/g, escapeChar) : value
}
const escapeChar = (c: string): string => (c === "\\" ? "\\\\" : c === "\n" ? "\\n" : c === "\r" ? "\\r" : "\\t")

/** Text is sent in chunks of about this many characters. */
const COPY_CHUNK = 1 << 20

const copyRows = (client: Pg.PoolClient, name: TableName, rows: ReadonlyArray<ReadonlyArray<Value>>): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const stream = client.query(copyFrom(`copy ${name} (${TABLES[name].join(", ")}) from stdin`))
    stream.on("error", reject)
    stream.on("finish", () => resolve())
    let text = ""
    for (const row of rows) {
      let line = field(row[0]!)
      for (let i = 1; i < row.length; i++) line += "\t" + field(row[i]!)
      text += line + "\n"
      if (text.length >= COPY_CHUNK) {
        stream.write(text)
        text = ""
      }
    }
    stream.end(text)
  })

/** Postgres takes at most 65,535 parameters a statement; stay well under. */
const MAX_PARAMS = 30_000

const insertRows = async (
  client: Pick<Pg.PoolClient, "query">,
  name: TableName,
  rows: ReadonlyArray<ReadonlyArray<Value>>,
  suffix = "",
  alias = ""
): Promise<void> => {
  const columns = TABLES[name]
  const chunk = Math.floor(MAX_PARAMS / columns.length)
  for (let start = 0; start < rows.length; start += chunk) {
    const part = rows.slice(start, start + chunk)
    const params: Array<Value> = []
    const tuples: Array<string> = []
    for (const row of part) {
      const marks: Array<string> = []
      for (const value of row) {
        params.push(value)
        marks.push(`$${params.length}`)
      }
      tuples.push(`(${marks.join(",")})`)
    }
    await client.query(`insert into ${name}${alias} (${columns.join(", ")}) values ${tuples.join(",")}${suffix}`, params)
  }
}

/**
 * Checkpoints are keyed by their last event, and a run may stand further on with no event since
 * its last checkpoint: the checkpoint of a run suspended in a quiet stretch (`StoredRun`) has the
 * seq of the one before and a later cursor. The later one replaces it — the cursor only moves
 * forward, and the books at the same seq are the same — and so does the later of two in one batch
 * (one statement cannot update a row twice). Few rows: plain statements.
 */
const upsertCheckpoints = async (client: Pg.PoolClient, rows: ReadonlyArray<ReadonlyArray<Value>>): Promise<void> => {
  const bySeq = new Map<Value, ReadonlyArray<Value>>()
  for (const row of rows) bySeq.set(row[1]!, row)
  await insertRows(client, "checkpoints", [...bySeq.values()], " on conflict (run_id, seq) do update set ts = excluded.ts, state = excluded.state, created_at = now()")
}

/**
 * Totals (`SUMMED`), one row per key in `rows`: added to the row a batch before made, or inserted.
 * Few rows (an agent's, a model's): plain statements.
 */
export const addSums = async (client: Pick<Pg.PoolClient, "query">, name: SummedTable, rows: ReadonlyArray<ReadonlyArray<Value>>): Promise<void> => {
  const { key, latest } = SUMMED[name]
  const columns = TABLES[name]
  const set = columns.slice(key).map((column) =>
    !(latest as ReadonlyArray<string>).includes(column)
      ? `${column} = t.${column} + excluded.${column}`
      : `${column} = case when excluded.${latest[0]} is null then t.${column} else excluded.${column} end`
  )
  await insertRows(client, name, rows, ` on conflict (${columns.slice(0, key).join(", ")}) do update set ${set.join(", ")}`, " as t")
}

/**
 * A request inserts its approval; a resolution updates it (the request may be in an earlier batch,
 * or earlier in this one). Few rows: plain statements.
 */
const upsertApprovals = async (client: Pg.PoolClient, rows: ReadonlyArray<ReadonlyArray<Value>>): Promise<void> => {
  for (const row of rows) {
    if (row[9] === null) {
      await insertRows(client, "approvals", [row])
    } else {
      await client.query(
        "update approvals set status = $3, resolved_seq = $4, resolved_by = $5, reason = $6 where run_id = $1 and round_id = $2",
        [row[0], row[1], row[6], row[9], row[10], row[11]]
      )
    }
  }
}
