/**
 * The system agent's tools against the store: a decoded tool call (ToolSpecs.ts) run for one run —
 * its trades, metrics (the run's own, or computed over a period), a round or order explained from
 * its events, rule suggestions for its strategy, a comparison with another run of the same owner.
 * Each gives the result the model is shown, a one-line summary for the operator's screen and the
 * plain sentences the offline agent answers with. The analysis itself is the pure core beside this
 * file; here is only what to read, and as little of it as the question needs.
 */
import { createHash } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import type { RuleSuggestion } from "../../schemas/Chat.js"
import { UpToStop } from "../../schemas/Rpc.js"
import type { RunId, Timestamp } from "../../schemas/Ids.js"
import type { Metrics } from "../../schemas/Metrics.js"
import type { Fill } from "../../schemas/Order.js"
import { Rule } from "../../schemas/Rule.js"
import { DecisionMade, OpinionGiven, OrderFilled, RunEvent, TradeClosed, VerdictGiven } from "../../schemas/RunEvent.js"
import type { Strategy } from "../../schemas/Strategy.js"
import type { Trade } from "../../schemas/Trade.js"
import { oneLineOf } from "../../src/internal/issues.js"
import * as DataSource from "../../src/market/DataSource.js"
import type { Feed, Slice } from "../../src/market/Feed.js"
import * as Compare from "../../src/store/Compare.js"
import * as RecordedLatest from "../../src/store/RecordedLatest.js"
import * as Runs from "../../src/store/Runs.js"
import { decodedByText } from "../../src/store/DecodedText.js"
import { CorruptRecord, type StoreError, storeError } from "../../src/store/StoreError.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as MetricsCore from "../../src/trading/Metrics.js"
import { agentName } from "../../schemas/Strategy.js"
import * as AnalystScores from "./AnalystScores.js"
import * as DecisionExplanation from "./DecisionExplanation.js"
import * as RiskChecks from "./RiskChecks.js"
import * as Format from "./internal/Format.js"
import * as PeriodMetrics from "./PeriodMetrics.js"
import * as RuleSuggestions from "./RuleSuggestions.js"
import * as RunStatus from "./RunStatus.js"
import * as ToolSpecs from "./ToolSpecs.js"
import * as TradeAnalysis from "./TradeAnalysis.js"

/** What running a tool gives. */
export interface ToolOutcome {
  readonly tool: ToolSpecs.ToolName
  /** The arguments as they were understood, encoded (dates as ISO text). */
  readonly arguments: Record<string, unknown>
  /** What the model is shown (JSON). */
  readonly result: unknown
  /** One line for the operator's screen. */
  readonly summary: string
  /** Plain sentences: the offline agent's answer. */
  readonly sentences: string
}

const ARGS = {
  analyse_trades: ToolSpecs.AnalyseTradesArgs,
  calculate_metrics: ToolSpecs.CalculateMetricsArgs,
  explain_decision: ToolSpecs.ExplainDecisionArgs,
  suggest_rules: ToolSpecs.SuggestRulesArgs,
  compare_runs: ToolSpecs.CompareRunsArgs,
  run_status: ToolSpecs.RunStatusArgs,
  analyst_scores: ToolSpecs.AnalystScoresArgs,
  risk_checks: ToolSpecs.RiskChecksArgs
} as const

/** A decoded request's arguments as JSON, the way a model writes them. */
export const encodedArguments = (request: ToolSpecs.ToolRequest): Record<string, unknown> =>
  Schema.encodeSync(ARGS[request.tool] as unknown as Schema.Schema<unknown, Record<string, unknown>>)(request.args)

// ---------------------------------------------------------------------------------------------
// Reading

const corrupt = (table: string, key: string) => (error: ParseResult.ParseError) =>
  new CorruptRecord({ table, key, column: "body", reason: oneLineOf(error) })

const decodeTrade = Schema.decodeUnknown(Schema.parseJson(TradeClosed))
const decodeEvent = Schema.decodeUnknown(Schema.parseJson(RunEvent))
const decodeVerdict = Schema.decodeUnknown(Schema.parseJson(VerdictGiven))

export interface TradeFilter {
  readonly symbol?: string | undefined
  /** Exits at or after `from`, before `to` (epoch ms). */
  readonly from?: number | undefined
  readonly to?: number | undefined
}

/** The trades (alias `t`) of `run` the filter names. */
const selecting = (sql: SqlClient.SqlClient, run: RunId, filter: TradeFilter) =>
  sql`t.run_id = ${run}
      ${filter.symbol === undefined ? sql`` : sql`and upper(t.symbol) = ${filter.symbol.toUpperCase()}`}
      ${filter.from === undefined ? sql`` : sql`and t.exit_ts >= ${filter.from}`}
      ${filter.to === undefined ? sql`` : sql`and t.exit_ts < ${filter.to}`}`

/** The run's closed trades (in closing order), only those the filter names: selected in the database. */
export const trades = Effect.fn("Tools.trades")(function*(run: RunId, filter: TradeFilter = {}) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ seq: number; body: string }>`
    select e.seq, e.body from trades t join run_events e on e.run_id = t.run_id and e.seq = t.seq
    where ${selecting(sql, run, filter)}
    order by t.seq`
  const out: Array<Trade> = []
  for (const row of rows) out.push((yield* decodeTrade(row.body).pipe(Effect.mapError(corrupt("run_events", `${run}#${row.seq}`)))).trade)
  return TradeAnalysis.selectTrades(out, filter)
}, storeError("read a run's trades"))

export interface TradesWithEntries {
  readonly trades: ReadonlyArray<Trade>
  /** The order that opened each trade, for the trades whose entry fill and order are recorded (all of a recorded run's). */
  readonly entries: ReadonlyMap<Trade, TradeAnalysis.Entry>
}

/**
 * `trades`, each with the order that opened it: what the risk officer's rules judged, and when.
 * A trade's entry is the fill of its symbol and side at its entry time (a reversal's one fill
 * closes one trade and opens the next), and the fill names its order. Orders are counted per UTC
 * day of their decision in the order they were placed, over the whole run, as the risk officer
 * counts them for `max_orders_per_day` (every order placed counts, risk-reducing ones too); the
 * order's verdict says how large a share of equity its position was (`positionPercentOf`).
 */
export const tradesWithEntries = Effect.fn("Tools.tradesWithEntries")(function*(run: RunId, filter: TradeFilter = {}) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{
    seq: number
    body: string
    decidedAt: number | null
    nthOfDay: number | null
    ordersOfDay: number | null
    quantity: number | null
    verdictSeq: number | null
    verdict: string | null
  }>`
    with counted as (
      select order_id, round_id, quantity, decided_at,
        row_number() over (partition by floor(decided_at / 86400000.0) order by seq) as nth_of_day,
        count(*) over (partition by floor(decided_at / 86400000.0)) as orders_of_day
      from orders where run_id = ${run}
    )
    select e.seq, e.body, o.decided_at, o.nth_of_day, o.orders_of_day, o.quantity, v.seq as verdict_seq, ve.body as verdict
    from trades t
      join run_events e on e.run_id = t.run_id and e.seq = t.seq
      left join fills f on f.run_id = t.run_id and f.symbol = t.symbol and f.ts = t.entry_ts
        and f.side = case when t.side = 'long' then 'buy' else 'sell' end
      left join counted o on o.order_id = f.order_id
      left join verdicts v on v.run_id = t.run_id and v.round_id = o.round_id and v.outcome <> 'rejected'
      left join run_events ve on ve.run_id = v.run_id and ve.seq = v.seq
    where ${selecting(sql, run, filter)}
    order by t.seq, f.seq, v.seq desc`
  const out: Array<Trade> = []
  const entries = new Map<Trade, TradeAnalysis.Entry>()
  let last: number | undefined
  for (const row of rows) {
    // Two fills of a symbol and side at one time: the first opened the trade. (Its round's verdict, the last.)
    if (row.seq === last) continue
    last = row.seq
    const trade = (yield* decodeTrade(row.body).pipe(Effect.mapError(corrupt("run_events", `${run}#${row.seq}`)))).trade
    out.push(trade)
    if (row.decidedAt === null) continue
    const verdict = row.verdict === null
      ? null
      : (yield* decodeVerdict(row.verdict).pipe(Effect.mapError(corrupt("run_events", `${run}#${row.verdictSeq}`)))).verdict
    entries.set(trade, {
      decidedAt: row.decidedAt as Timestamp,
      nthOfDay: row.nthOfDay!,
      ordersOfDay: row.ordersOfDay!,
      positionPercent: verdict === null ? null : TradeAnalysis.positionPercentOf(verdict, row.quantity!)
    })
  }
  return { trades: TradeAnalysis.selectTrades(out, filter), entries } satisfies TradesWithEntries
}, storeError("read a run's trades"))

/** Events that may mention a round or an order (DecisionExplanation reads these). */
const ROUND_TAGS = [
  "OpinionGiven",
  "DecisionMade",
  "VerdictGiven",
  "ApprovalRequested",
  "ApprovalResolved",
  "OrderPlaced",
  "OrderFilled",
  "OrderCancelled",
  "ExecutionBlocked"
] as const

/**
 * Every event the explanation of `round` needs, and no more: those that name the round (or an order
 * it placed), the trades its fills opened or closed, and — when nothing names it — the decisions
 * nearest in time on its symbol, to offer instead.
 */
const roundEvents = (run: RunId, round: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const mentioning = (text: string) =>
      sql<{ seq: number; body: string }>`
        select seq, body from run_events where run_id = ${run} and tag in ${sql.in(ROUND_TAGS)}
          and strpos(body, ${JSON.stringify(text)}) > 0
        order by seq`
    const rows = [...(yield* mentioning(round))]
    const events: Array<RunEvent> = []
    const decode = (row: { seq: number; body: string }) => decodeEvent(row.body).pipe(Effect.mapError(corrupt("run_events", `${run}#${row.seq}`)))
    for (const row of rows) events.push(yield* decode(row))
    // Orders whose id is not the round's own: their fills and cancellations name the order only.
    const seen = new Set(rows.map((r) => r.seq))
    for (const event of [...events]) {
      if (event._tag !== "OrderPlaced" || event.order.id === round) continue
      for (const row of yield* mentioning(event.order.id)) {
        if (seen.has(row.seq)) continue
        seen.add(row.seq)
        events.push(yield* decode(row))
      }
    }
    // The LLM agents' reasoning in the round: by the reasoning table's round (the brief in such an
    // event's body may name other rounds, and is long: not searched).
    const reasoned = yield* sql<{ seq: number; body: string }>`
      select e.seq, e.body from reasoning r join run_events e on e.run_id = r.run_id and e.seq = r.seq
      where r.run_id = ${run} and r.round_id = ${round}
      order by r.seq`
    for (const row of reasoned) events.push(yield* decode(row))
    const at = round.lastIndexOf("@")
    const symbol = at > 0 ? round.slice(0, at) : ""
    const fillTimes = events.flatMap((e) => (e._tag === "OrderFilled" ? [e.fill.ts] : []))
    if (fillTimes.length > 0) {
      const closed = yield* sql<{ seq: number; body: string }>`
        select e.seq, e.body from trades t join run_events e on e.run_id = t.run_id and e.seq = t.seq
        where t.run_id = ${run} and t.symbol = ${symbol} and (t.entry_ts in ${sql.in(fillTimes)} or t.exit_ts in ${sql.in(fillTimes)})
        order by t.seq`
      for (const row of closed) events.push(yield* decode(row))
    }
    if (events.length === 0 && symbol !== "") {
      const ts = Number(round.slice(at + 1))
      const near = yield* sql<{ seq: number; body: string }>`
        select e.seq, e.body from decisions d join run_events e on e.run_id = d.run_id and e.seq = d.seq
        where d.run_id = ${run} and d.symbol = ${symbol}
        order by ${Number.isSafeInteger(ts) ? sql`abs(d.ts - ${ts})` : sql`d.ts`}, d.ts limit 3`
      for (const row of near) events.push(yield* decode(row))
    }
    return events.sort((a, b) => a.seq - b.seq)
  })

// ---------------------------------------------------------------------------------------------
// Metrics

/** The figures of the trades alone: no curve needed. */
export type TradeFigures = ReturnType<typeof MetricsCore.tradeStats>

/**
 * What `calculate_metrics` answers. `run`: the figures the run recorded when it ended (no period, or
 * a period holding the whole of a completed run). `bars`: computed over the period from the run's
 * equity at every bar's close — rebuilt from its data and fills, checked against what it recorded —
 * with the definitions of its own figures, as far as the run has gone. `trades`: that curve cannot
 * be rebuilt (`unavailable` says why), so only the trade figures, which need no curve, are given.
 */
export type MetricsResult =
  | { readonly basis: "run"; readonly from: number | null; readonly to: number | null; readonly metrics: Metrics }
  | {
    readonly basis: "bars"
    readonly from: number | null
    readonly to: number | null
    /**
     * A run without results (going on, or stopped or failed on the way): its status, and its last
     * bar marked for certain (null: none yet), where the figures stop. Null for a run that ended.
     */
    readonly incomplete: { readonly status: Runs.RunStatus; readonly through: number | null } | null
    readonly metrics: Metrics
  }
  | {
    readonly basis: "trades"
    readonly from: number | null
    readonly to: number | null
    readonly unavailable: string
    readonly trades: TradeFigures
  }

const decodeFill = Schema.decodeUnknown(Schema.parseJson(OrderFilled))

/** The run's fills in the order they were booked. */
const fillsOf = (run: RunId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ seq: number; body: string }>`
      select e.seq, e.body from fills f join run_events e on e.run_id = f.run_id and e.seq = f.seq
      where f.run_id = ${run} order by f.seq`
    const out: Array<Fill> = []
    for (const row of rows) out.push((yield* decodeFill(row.body).pipe(Effect.mapError(corrupt("run_events", `${run}#${row.seq}`)))).fill)
    return out
  })

/** The equity the run recorded at its fills: the last snapshot of each time. */
const recordedEquityOf = (run: RunId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ ts: number; equity: number }>`select ts, equity from equity_snapshots where run_id = ${run} order by seq`
    const byTs = new Map<number, number>()
    for (const row of rows) byTs.set(row.ts, row.equity)
    return byTs
  })

/** How far a run has marked its bar times for certain. */
type Marked =
  /** It ended (completed, or failed with its results): every bar time up to `to`. */
  | { readonly ended: true; readonly to: number }
  /**
   * It goes on, or was stopped or failed on the way: its events are committed in order, so every
   * bar time before the one its last event belongs to is done (that one may be in mid-record), and
   * so is every one up to its last checkpoint (which may stand past its last event).
   */
  | { readonly ended: false; readonly lastEventAt: number; readonly checkpointTs: number }

const markedOf = (run: Runs.RunRecord) =>
  Effect.gen(function*() {
    if (run.to !== null) return { ended: true, to: run.to } satisfies Marked
    const sql = yield* SqlClient.SqlClient
    const [last] = yield* sql<{ at: number }>`select at from run_events where run_id = ${run.id} order by seq desc limit 1`
    const [checkpoint] = yield* sql<{ ts: number }>`select ts from checkpoints where run_id = ${run.id} order by seq desc limit 1`
    return {
      ended: false,
      lastEventAt: last?.at ?? Number.NEGATIVE_INFINITY,
      checkpointTs: checkpoint?.ts ?? Number.NEGATIVE_INFINITY
    } satisfies Marked
  })

/** The run's bar times as the run was given them (its symbols' bars only), as far as it has marked them. */
function* runSlices(feed: Feed, symbols: ReadonlyArray<string>, marked: Marked): Generator<Slice> {
  const wanted = new Set(symbols)
  let held: Slice | undefined
  for (const raw of feed) {
    const slice = raw.bars.every((bar) => wanted.has(bar.symbol))
      ? raw
      : { ts: raw.ts, bars: raw.bars.filter((bar) => wanted.has(bar.symbol)) }
    if (slice.bars.length === 0) continue
    if (marked.ended) {
      if (slice.ts > marked.to) return
      yield slice
      continue
    }
    if (held !== undefined) {
      if (held.ts <= marked.checkpointTs || slice.ts <= marked.lastEventAt) yield held
      else return
    }
    held = slice
  }
  if (held !== undefined && !marked.ended && held.ts <= marked.checkpointTs) yield held
}

/** The run's feed opened again, as it read it (its fingerprint checked) — or why it cannot be. */
const openFeed = (run: Runs.RunRecord) =>
  DataSource.decode(run.dataSource).pipe(
    Effect.mapError(() => "the run's data source is not one that can be opened again"),
    Effect.flatMap((source) => Effect.mapError(DataSource.open(source, run.dataFingerprint), (error) => error.message))
  )

/** Whether [from, to) holds every bar of a run that ended. */
const holdsRun = (run: Runs.RunRecord, from: number | undefined, to: number | undefined): boolean =>
  run.from !== null && run.to !== null && (from === undefined || from <= run.from) && (to === undefined || to > run.to)

/**
 * The run's metrics, or those of a period of it, with the run's own definitions (docs/metrics.md).
 * A run records its equity only at its fills, so a period's figures come from its equity at every
 * bar's close, rebuilt from its data and fills (`PeriodMetrics`); a period holding the whole of a
 * completed run is its own figures. When the curve cannot be rebuilt (the data files changed or
 * went), only the trade figures are given, with the reason: never figures of another curve.
 */
export const metrics = Effect.fn("Tools.metrics")(function*(run: Runs.RunRecord, from?: number, to?: number) {
  if (run.metrics !== null && ((from === undefined && to === undefined) || (run.status === "completed" && holdsRun(run, from, to)))) {
    return { basis: "run", from: from ?? null, to: to ?? null, metrics: run.metrics } satisfies MetricsResult
  }
  const marked = yield* markedOf(run)
  const feed = yield* Effect.either(openFeed(run))
  if (Either.isLeft(feed)) {
    const closed = yield* trades(run.id, { from, to })
    return {
      basis: "trades",
      from: from ?? null,
      to: to ?? null,
      unavailable: feed.left,
      trades: MetricsCore.tradeStats(closed)
    } satisfies MetricsResult
  }
  const fills = yield* fillsOf(run.id)
  const recordedEquity = yield* recordedEquityOf(run.id)
  const curve = PeriodMetrics.periodCurve({
    initialCash: run.strategy.initialCash,
    symbols: run.strategy.symbols,
    slices: runSlices(feed.right, run.strategy.symbols, marked),
    fills,
    config: run.strategy.metrics,
    from,
    to,
    recordedEquity,
    recordedMetrics: run.status === "completed" ? run.metrics : null
  })
  // A run that has not ended: its trades as far as its bars are marked (a trade closes at a bar time).
  const through = marked.ended || Either.isLeft(curve) ? undefined : curve.right.lastTs
  const closed = through === null
    ? []
    : yield* trades(run.id, { from, to: through === undefined ? to : Math.min(to ?? Infinity, through + 1) })
  if (Either.isLeft(curve)) {
    return {
      basis: "trades",
      from: from ?? null,
      to: to ?? null,
      unavailable: `they do not rebuild it: ${curve.left.reason}`,
      trades: MetricsCore.tradeStats(closed)
    } satisfies MetricsResult
  }
  return {
    basis: "bars",
    from: from ?? null,
    to: to ?? null,
    incomplete: through === undefined ? null : { status: run.status, through },
    metrics: curve.right.metrics(closed)
  } satisfies MetricsResult
}, storeError("compute a run's metrics"))

/** A run stopped or failed before it completed: no metrics of its own. */
const endedShort = (run: Pick<Runs.RunSummary, "metrics" | "status">) => run.metrics === null && (run.status === "stopped" || run.status === "failed")

/** Kept figures, with the run's last event when they were made (`events`): its figures while it has no other. */
const KeptUpToStop = Schema.Struct({ events: Schema.Int, figures: UpToStop })
const encodeKept = Schema.encodeSync(KeptUpToStop)
/** Kept figures by their text, as run metrics are (a list is polled). */
const decodeKept = decodedByText(KeptUpToStop, 256)

/**
 * The figures a reader kept for the run (`Runs.keptUpToStop`), if they are still its figures — made
 * at its last event: a stopped run resumed by name records on —, and its last event now. A kept
 * text that does not decode (edited by hand) is as none kept, and they are rebuilt.
 */
const keptFor = (run: RunId) =>
  Effect.flatMap(Runs.keptUpToStop(run), ({ kept, lastSeq }) =>
    kept === undefined
      ? Effect.succeed({ figures: undefined, lastSeq })
      : decodeKept(kept).pipe(
        Effect.map((k) => ({ figures: k.events === lastSeq ? k.figures : undefined, lastSeq })),
        Effect.orElseSucceed(() => ({ figures: undefined, lastSeq }))
      ))

/**
 * The figures rebuilt (`metrics`), kept in the run's row when they are figures, with the last event
 * there was before they were read (`lastSeq`): rebuilding them reads the run's whole feed. Why there
 * are none (`none`: its data changed or went) is not kept: that may pass, and finding it reads no feed.
 */
const rebuilt = (run: Runs.RunRecord, lastSeq: number) =>
  Effect.flatMap(metrics(run), (result): Effect.Effect<UpToStop | undefined, StoreError, SqlClient.SqlClient> => {
    if (result.basis === "trades") return Effect.succeed({ _tag: "none", reason: result.unavailable, trades: result.trades.tradeCount })
    if (result.basis !== "bars") return Effect.succeed(undefined)
    const figures: UpToStop = { _tag: "upTo", through: result.incomplete?.through ?? null, metrics: result.metrics }
    // Kept if the database will: a reader that cannot keep them still has them.
    return Effect.as(Effect.ignore(Runs.keepUpToStop(run.id as RunId, JSON.stringify(encodeKept({ events: lastSeq, figures })))), figures)
  })

/**
 * A run stopped or failed before it completed (no metrics of its own): its figures up to where it
 * stopped, as `metrics` rebuilds them — once: the first reader keeps them in the run's row, and
 * every later one (any server, any restart) reads them there while the run has recorded nothing
 * since (a stopped run resumed by name records on: they are made again) — or why they cannot be. Undefined for
 * any other run. What `swarm runs show` and `runs list` say of such a run, locally and from a
 * server (`runs.report`, `runs.list`).
 */
export const upToStop = (run: Runs.RunRecord) =>
  !endedShort(run)
    ? Effect.succeed(undefined)
    : Effect.flatMap(keptFor(run.id as RunId), (kept) => kept.figures !== undefined ? Effect.succeed(kept.figures) : rebuilt(run, kept.lastSeq))

/**
 * `upToStop` of a listed run (`runs list`, locally and from a server's `runs.list`), reading its
 * record only when its figures are not kept yet: one whose figures cannot be made (its record does
 * not read, the database fails) has none, and its row stays as it was rather than the list unread.
 */
export const listedUpToStop = (run: Pick<Runs.RunSummary, "id" | "metrics" | "status">) =>
  !endedShort(run)
    ? Effect.succeed(undefined)
    : Effect.flatMap(keptFor(run.id as RunId), (kept) =>
      kept.figures !== undefined ? Effect.succeed(kept.figures) : Effect.flatMap(Runs.get(run.id), (record) => rebuilt(record, kept.lastSeq))).pipe(
      Effect.orElseSucceed(() => undefined)
    )

const figure = (x: number | null, f: (x: number) => string): string => (x === null ? "n/a" : f(x))

const describeTrades = (m: TradeFigures): string =>
  m.tradeCount === 0
    ? "No trade closed."
    : `${Format.count(m.tradeCount, "trade")}: ${m.winningTrades} won, ${m.losingTrades} lost (win rate ${
      figure(m.winRate, Format.percent)
    }), profit factor ${figure(m.profitFactor, Format.decimal)}, gross profit ${Format.pnl(m.grossProfit)}, gross loss ${
      Format.pnl(m.grossLoss)
    }.`

const DAY_MS = 86_400_000

/**
 * A period as it was asked: its end is exclusive, so one at a midnight (a date asked for: "to
 * 2023-06-30" ends as 2023-07-01 begins) is "through" the day before it, and one at another time
 * "until" it; an end or a start at a midnight is shown as its date.
 */
const periodText = (from: number | null, to: number | null): string => {
  const start = from === null ? "From the start" : `From ${from % DAY_MS === 0 ? Format.time(from).slice(0, 10) : Format.time(from)}`
  const end = to === null ? "to the end" : to % DAY_MS === 0 ? `through ${Format.time(to - DAY_MS).slice(0, 10)}` : `until ${Format.time(to)}`
  return `${start} ${end}`
}

/** A few plain sentences about a run's metrics, saying what they were computed from. */
export const describeMetrics = (result: MetricsResult): string => {
  const whole = result.from === null && result.to === null
  const period = whole ? "Over the whole run" : periodText(result.from, result.to)
  if (result.basis === "trades") {
    return `${period}: no return, risk or drawdown figure can be given. They need the run's equity at every bar's close, ` +
      `rebuilt from its data and fills, and ${result.unavailable}. ${describeTrades(result.trades)}`
  }
  const m = result.metrics
  const span = m.startTs === null
    ? result.basis === "bars" ? "no bar of the run in it" : "no equity was recorded"
    : `${Format.count(m.bars, "bar")} over ${Format.count(m.days, "day")}`
  const basis = result.basis === "run"
    ? whole ? "" : ", which holds the whole run: its own figures, recorded when it ended"
    : ", from the equity at every bar's close, rebuilt from the run's data and fills"
  const incomplete = result.basis === "bars" ? result.incomplete : null
  const reach = incomplete === null
    ? ""
    : ` ${incomplete.status === "running" || incomplete.status === "paused" ? "The run is still going" : `The run was ${incomplete.status} before its end`}: ${
      incomplete.through === null ? "it has not marked a bar yet" : `its bars are marked up to ${Format.time(incomplete.through)}, and the figures stop there`
    }.`
  const sentences = [
    `${period} (${span}${basis}): total return ${figure(m.totalReturn, Format.percent)}, CAGR ${
      figure(m.cagr, Format.percent)
    }, final equity ${Format.money(m.finalEquity)} from ${Format.money(m.initialCash)}${whole || result.basis === "run" ? "" : " at its start"}.`,
    `Risk: annual volatility ${figure(m.annualVolatility, Format.percent)}, Sharpe ${figure(m.sharpe, Format.decimal)}, Sortino ${
      figure(m.sortino, Format.decimal)
    }, Calmar ${figure(m.calmar, Format.decimal)}, max drawdown ${Format.percent(m.maxDrawdown)}${
      m.maxDrawdownPeakTs === null
        ? ""
        : ` (from ${Format.time(m.maxDrawdownPeakTs)} to ${Format.time(m.maxDrawdownTroughTs!)}, ${
          m.maxDrawdownRecoveryTs === null ? "not recovered" : `recovered ${Format.time(m.maxDrawdownRecoveryTs)}`
        })`
    }, exposure ${figure(m.exposure, Format.percent)}.`,
    describeTrades(m)
  ]
  return sentences.join(" ") + reach
}

const metricsLine = (m: Metrics): string =>
  `total return ${figure(m.totalReturn, Format.percent)}, Sharpe ${figure(m.sharpe, Format.decimal)}, max drawdown ${
    Format.percent(m.maxDrawdown)
  }, ${Format.count(m.tradeCount, "trade")}`

/** The operator's one line about a `calculate_metrics` answer. */
const metricsResultLine = (result: MetricsResult): string =>
  result.basis === "trades"
    ? `return and risk unavailable (the run's bars cannot be rebuilt), ${Format.count(result.trades.tradeCount, "trade")}`
    : metricsLine(result.metrics)

// ---------------------------------------------------------------------------------------------
// Suggestions

const encodeRule = Schema.encodeSync(Rule)

/** `<rule id>.<min trades>.<first 8 hex of the rule's SHA-256>`: names this rule, made from these trades. */
export const suggestionId = (rule: Rule, minTrades: number): string =>
  `${rule.id}.${minTrades}.${createHash("sha256").update(JSON.stringify(encodeRule(rule))).digest("hex").slice(0, 8)}`

/** The minimum trade count a suggestion id was made with, or undefined for an id no suggestion has. */
export const minTradesOf = (id: string): number | undefined => {
  const match = /\.(\d{1,4})\.[0-9a-f]{8}$/.exec(id)
  if (match === null) return undefined
  const n = Number(match[1])
  return n >= 1 && n <= 1_000 ? n : undefined
}

export interface Suggested {
  /** The strategy's latest version (what a suggestion is applied to); undefined when it was deleted. */
  readonly strategy: Strategies.Found | undefined
  readonly minTrades: number
  readonly suggestions: ReadonlyArray<RuleSuggestion>
  readonly skipped: ReadonlyArray<RuleSuggestions.Skipped>
}

/**
 * Rules against the run's losing patterns, for its strategy's latest version (whose rules tell what
 * is already limited, and whose rule ids the suggestions avoid); the run's own strategy when the
 * strategy was deleted. Trades are measured as the rules judged their entry orders: when decided,
 * among the day's orders, as a share of equity then.
 */
export const suggestions = Effect.fn("Tools.suggestions")(function*(run: Runs.RunRecord, minTrades?: number) {
  const latest = yield* Strategies.find(run.owner, run.strategyId).pipe(
    Effect.map(Option.some),
    Effect.catchTag("StrategyNotFound", () => Effect.succeed(Option.none<Strategies.Found>()))
  )
  const strategy: Strategy = Option.match(latest, { onNone: () => run.strategy, onSome: (found) => found.strategy })
  // Hours and weekdays as the rules will judge them: when the entry was decided (not when it filled).
  const { entries, trades: closed } = yield* tradesWithEntries(run.id)
  const analysis = TradeAnalysis.analyseTrades(closed, { entries, clock: "decision" })
  const result = RuleSuggestions.suggestRules(analysis, strategy, minTrades === undefined ? {} : { minTrades })
  return {
    strategy: Option.getOrUndefined(latest),
    minTrades: result.minTrades,
    suggestions: result.suggestions.map((s): RuleSuggestion => ({
      id: suggestionId(s.rule, result.minTrades),
      rule: s.rule,
      pattern: s.pattern,
      reason: s.reason,
      evidence: s.evidence
    })),
    skipped: result.skipped
  } satisfies Suggested
})

// ---------------------------------------------------------------------------------------------
// Where a run stands

/** Where `run` stands now (`symbol`: only its position), from its row and its recorded events. */
export const runStatus = Effect.fn("Tools.runStatus")(function*(run: Runs.RunRecord, symbol?: string) {
  const latest = yield* RecordedLatest.latest(run.id)
  return RunStatus.runStatusView({
    status: run.status,
    mode: run.mode,
    failure: run.failure,
    tradingState: run.tradingState,
    lastChange: yield* Runs.tradingChange(run),
    initialCash: run.initialCash,
    latest,
    agentRestarts: yield* Runs.agentRestarts(run),
    activity: yield* activityOf(run.id, symbol),
    llm: Option.getOrNull(yield* Runs.llmUsage(run)),
    ...(symbol === undefined ? {} : { symbol })
  })
})

/** What `run` has done so far (of `symbol`, when given): counts of its recorded rows. */
const activityOf = (run: RunId, symbol: string | undefined) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const of = symbol === undefined ? sql`` : sql`and upper(symbol) = ${symbol.toUpperCase()}`
    const [row] = yield* sql<{ decisions: number; approved: number; reduced: number; rejected: number; orders: number; fills: number; pending: number }>`
      select
        (select count(*) from decisions where run_id = ${run} ${of})::int as decisions,
        (select count(*) from verdicts where run_id = ${run} and outcome = 'approved' ${of})::int as approved,
        (select count(*) from verdicts where run_id = ${run} and outcome = 'reduced' ${of})::int as reduced,
        (select count(*) from verdicts where run_id = ${run} and outcome = 'rejected' ${of})::int as rejected,
        (select count(*) from orders where run_id = ${run} ${of})::int as orders,
        (select count(*) from fills where run_id = ${run} ${of})::int as fills,
        (select count(*) from approvals where run_id = ${run} and status = 'pending' ${of})::int as pending`
    return {
      decisions: Number(row?.decisions ?? 0),
      approved: Number(row?.approved ?? 0),
      reduced: Number(row?.reduced ?? 0),
      rejected: Number(row?.rejected ?? 0),
      orders: Number(row?.orders ?? 0),
      fills: Number(row?.fills ?? 0),
      pendingApprovals: Number(row?.pending ?? 0)
    } satisfies RunStatus.Activity
  })

// ---------------------------------------------------------------------------------------------
// How the analysts did

/** The latest rounds with a decision `analyst_scores` reads; a longer run's answer says it read only these. */
export const MAX_SCORED_ROUNDS = 5_000
const ROUND_CHUNK = 1_000

const decodeDecision = Schema.decodeUnknown(Schema.parseJson(DecisionMade))
const decodeOpinion = Schema.decodeUnknown(Schema.parseJson(OpinionGiven))

/**
 * Each bar's close by symbol, as the run was given its bars and as far as it marked them: the
 * return over `horizon` bars after a bar (undefined past the last bar marked, or for a bar not there).
 */
const returnsOf = (slices: Iterable<Slice>, symbols: ReadonlySet<string>) => {
  const series = new Map<string, { ts: Array<number>; close: Array<number> }>()
  for (const slice of slices) {
    for (const bar of slice.bars) {
      if (!symbols.has(bar.symbol)) continue
      let s = series.get(bar.symbol)
      if (s === undefined) series.set(bar.symbol, (s = { ts: [], close: [] }))
      s.ts.push(slice.ts)
      s.close.push(bar.close)
    }
  }
  return (symbol: string, ts: number, horizon: number): number | undefined => {
    const s = series.get(symbol)
    if (s === undefined) return undefined
    let lo = 0
    let hi = s.ts.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (s.ts[mid]! < ts) lo = mid + 1
      else if (s.ts[mid]! > ts) hi = mid - 1
      else return mid + horizon < s.ts.length ? s.close[mid + horizon]! / s.close[mid]! - 1 : undefined
    }
    return undefined
  }
}

/**
 * How `run`'s analysts did over its latest `maxRounds` rounds with a recorded decision (of
 * `symbol`, when given; `agent`: that analyst only): the decisions' votes, abstentions and dissent,
 * the opinions behind them, and each vote scored against the run's own bars, read again.
 */
export const analystScores = Effect.fn("Tools.analystScores")(function*(
  run: Runs.RunRecord,
  agent?: string,
  symbol?: string,
  maxRounds: number = MAX_SCORED_ROUNDS
) {
  const sql = yield* SqlClient.SqlClient
  const bySymbol = symbol === undefined ? sql`` : sql`and upper(d.symbol) = ${symbol.toUpperCase()}`
  const [counted] = yield* sql<{ total: number }>`select count(*)::int as total from decisions d where d.run_id = ${run.id} ${bySymbol}`
  const total = Number(counted?.total ?? 0)
  const rows = yield* sql<{ seq: number; body: string }>`
    select e.seq, e.body from decisions d join run_events e on e.run_id = d.run_id and e.seq = d.seq
    where d.run_id = ${run.id} ${bySymbol}
    order by d.seq desc limit ${maxRounds}`
  const decisions = []
  for (const row of [...rows].reverse()) {
    decisions.push((yield* decodeDecision(row.body).pipe(Effect.mapError(corrupt("run_events", `${run.id}#${row.seq}`)))).decision)
  }
  const opinions: Array<AnalystScores.OpinionRow> = []
  /** Each analyst's newest opinion read: its event gives the analyst's horizon. */
  const newest = new Map<string, number>()
  const rounds = decisions.map((d) => d.round)
  for (let i = 0; i < rounds.length; i += ROUND_CHUNK) {
    const part = yield* sql<{ roundId: string; agent: string; seq: number | string; direction: string; confidence: number }>`
      select round_id, agent, seq, direction, confidence from opinions
      where run_id = ${run.id} and round_id in ${sql.in(rounds.slice(i, i + ROUND_CHUNK))}`
    for (const o of part) {
      if (o.direction !== "long" && o.direction !== "short" && o.direction !== "flat") continue
      opinions.push({ round: o.roundId, agent: o.agent, direction: o.direction, confidence: Number(o.confidence) })
      if (Number(o.seq) > (newest.get(o.agent) ?? 0)) newest.set(o.agent, Number(o.seq))
    }
  }
  // Each analyst's horizon, as its newest opinion read gives it (a type's horizon follows from its params).
  const roster = run.strategy.agents.map(agentName)
  const horizons = new Map<string, number>()
  for (const [name, seq] of newest) {
    const [event] = yield* sql<{ body: string }>`select body from run_events where run_id = ${run.id} and seq = ${seq}`
    if (event === undefined) continue
    const given = yield* decodeOpinion(event.body).pipe(Effect.mapError(corrupt("run_events", `${run.id}#${seq}`)))
    horizons.set(name, given.opinion.horizon)
  }
  const input = {
    roster,
    opinions,
    decisions,
    horizons,
    flatMeansNotLong: !run.strategy.allowShort,
    eventDetail: run.eventDetail,
    roundsInRun: total > decisions.length ? total : undefined,
    symbol,
    agent
  }
  if (decisions.length === 0) return AnalystScores.analystScores({ ...input, returnAfter: null })
  const feed = yield* Effect.either(openFeed(run))
  if (Either.isLeft(feed)) return AnalystScores.analystScores({ ...input, returnAfter: null, unscored: feed.left })
  const marked = yield* markedOf(run)
  const symbols = new Set(decisions.map((d) => d.symbol))
  return AnalystScores.analystScores({ ...input, returnAfter: returnsOf(runSlices(feed.right, run.strategy.symbols, marked), symbols) })
}, storeError("score a run's analysts"))

// ---------------------------------------------------------------------------------------------
// The risk officer's checks

/** The latest verdicts that did not simply approve `risk_checks` reads to say which checks acted. */
export const MAX_ACTED_VERDICTS = 5_000

/**
 * `run`'s verdicts by outcome, which rules and gates rejected or reduced intents (over its latest
 * `maxActed` verdicts that did not simply approve), its strategy's rules and its limits (of
 * `symbol`'s verdicts, when given).
 */
export const riskChecks = Effect.fn("Tools.riskChecks")(function*(run: Runs.RunRecord, symbol?: string, maxActed: number = MAX_ACTED_VERDICTS) {
  const sql = yield* SqlClient.SqlClient
  const of = symbol === undefined ? sql`` : sql`and upper(v.symbol) = ${symbol.toUpperCase()}`
  const counted = yield* sql<{ outcome: string; n: number }>`
    select v.outcome, count(*)::int as n from verdicts v where v.run_id = ${run.id} ${of} group by v.outcome`
  const n = (outcome: string) => Number(counted.find((c) => c.outcome === outcome)?.n ?? 0)
  const rows = yield* sql<{ seq: number; body: string }>`
    select e.seq, e.body from verdicts v join run_events e on e.run_id = v.run_id and e.seq = v.seq
    where v.run_id = ${run.id} and v.outcome <> 'approved' ${of}
    order by v.seq desc limit ${maxActed}`
  const acted = []
  for (const row of [...rows].reverse()) {
    acted.push((yield* decodeVerdict(row.body).pipe(Effect.mapError(corrupt("run_events", `${run.id}#${row.seq}`)))).verdict)
  }
  return RiskChecks.riskChecks({
    symbol,
    verdicts: { approved: n("approved"), reduced: n("reduced"), rejected: n("rejected"), needsApproval: n("needs_approval") },
    acted,
    actedInRun: n("reduced") + n("rejected") + n("needs_approval"),
    rules: run.strategy.rules,
    limits: run.strategy.risk.limits,
    allowShort: run.strategy.allowShort
  })
}, storeError("read a run's verdicts"))

// ---------------------------------------------------------------------------------------------
// Comparing

const briefOf = (run: Runs.RunSummary) => ({
  id: run.id,
  ref: `${run.strategyName}#${run.number}`,
  strategyVersion: run.strategyVersion,
  status: run.status,
  mode: run.mode,
  metrics: run.metrics
})

/** `3` (a run number of the same strategy) as `<strategy>#3`; a run id or `<strategy>#<n>` as given. */
const otherRef = (run: Runs.RunRecord, reference: string): string => (/^\d+$/.test(reference) ? `${run.strategyName}#${reference}` : reference)

// ---------------------------------------------------------------------------------------------
// Running a tool

const trimmed = (text: string, max = 160): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

/** Runs a decoded tool call for `run` (its ownership checked by the caller). */
export const run = Effect.fn("Tools.run")(function*(request: ToolSpecs.ToolRequest, record: Runs.RunRecord) {
  const args = encodedArguments(request)
  const done = (result: unknown, summary: string, sentences: string): ToolOutcome => ({
    tool: request.tool,
    arguments: args,
    result,
    summary: trimmed(summary),
    sentences
  })
  switch (request.tool) {
    case "analyse_trades": {
      const a = request.args
      const selected = yield* tradesWithEntries(record.id, { symbol: a.symbol, from: a.from, to: a.to })
      const analysis = TradeAnalysis.analyseTrades(selected.trades, {
        ...(a.top === undefined ? {} : { top: a.top }),
        ...(a.timeZone === undefined ? {} : { timeZone: a.timeZone }),
        entries: selected.entries
      })
      const o = analysis.overall
      const summary = o.trades === 0
        ? "no closed trades in this selection"
        : `${Format.count(o.trades, "trade")}: ${o.wins} won, ${o.losses} lost, total P&L ${Format.pnl(o.totalPnl)}`
      return done(analysis, summary, TradeAnalysis.describeTradeAnalysis(analysis))
    }
    case "calculate_metrics": {
      const result = yield* metrics(record, request.args.from, request.args.to)
      return done(result, metricsResultLine(result), describeMetrics(result))
    }
    case "explain_decision": {
      const { last, order, round, side, symbol } = request.args
      let explanation: DecisionExplanation.OrderExplanation
      /** For `last`: which order or round it found, said before the round's explanation. */
      let lead = ""
      if (round !== undefined) {
        explanation = DecisionExplanation.explainRound(yield* roundEvents(record.id, round), round)
      } else if (order !== undefined) {
        const sql = yield* SqlClient.SqlClient
        const [placed] = yield* sql<{ roundId: string }>`
          select round_id from orders where run_id = ${record.id} and order_id = ${order} limit 1`
        explanation = DecisionExplanation.explainOrder(placed === undefined ? [] : yield* roundEvents(record.id, placed.roundId), order)
      } else {
        // The newest by the run's sequence: what it recorded last (a run still going: what is committed so far).
        const sql = yield* SqlClient.SqlClient
        const bySymbol = symbol === undefined ? sql`` : sql`and upper(symbol) = ${symbol.toUpperCase()}`
        const of = `${side === undefined ? "" : `${side} `}${last}${symbol === undefined ? "" : ` for ${symbol}`}`
        if (last === "order") {
          const [placed] = yield* sql<{ roundId: string; orderId: string }>`
            select round_id, order_id from orders where run_id = ${record.id} ${bySymbol}
              ${side === undefined ? sql`` : sql`and side = ${side}`}
            order by seq desc limit 1`
          explanation = placed === undefined
            ? DecisionExplanation.noneYet("order", symbol, side)
            : DecisionExplanation.explainOrder(yield* roundEvents(record.id, placed.roundId), placed.orderId)
          if (placed !== undefined) lead = `The last ${of} is ${placed.orderId}.`
        } else if (last === "rejection") {
          // A verdict that rejected its intent (a rule, a gate, the trading state): the round it judged.
          const [rejected] = yield* sql<{ roundId: string }>`
            select round_id from verdicts where run_id = ${record.id} and outcome = 'rejected' ${bySymbol} order by seq desc limit 1`
          explanation = rejected === undefined
            ? DecisionExplanation.noneYet("rejection", symbol)
            : DecisionExplanation.explainRound(yield* roundEvents(record.id, rejected.roundId), rejected.roundId)
          if (rejected !== undefined) lead = `The last intent rejected${symbol === undefined ? "" : ` for ${symbol}`} was judged in round ${rejected.roundId}.`
        } else {
          const [decided] = yield* sql<{ roundId: string }>`
            select round_id from decisions where run_id = ${record.id} ${bySymbol} order by seq desc limit 1`
          explanation = decided === undefined
            ? DecisionExplanation.noneYet("decision", symbol)
            : DecisionExplanation.explainRound(yield* roundEvents(record.id, decided.roundId), decided.roundId)
          if (decided !== undefined) lead = `The last ${of} recorded is round ${decided.roundId}.`
        }
      }
      const summary = explanation._tag === "RoundFound"
        ? `round ${explanation.round}: ${explanation.decision?.action ?? "no decision"}${
          explanation.verdict === null ? "" : `, ${explanation.verdict.outcome}`
        }, ${Format.count(explanation.orders.length, "order")}`
        : explanation.reason
      const sentences = DecisionExplanation.describeRound(explanation)
      return done(explanation, summary, lead === "" ? sentences : `${lead} ${sentences}`)
    }
    case "suggest_rules": {
      const suggested = yield* suggestions(record, request.args.minTrades)
      const view = {
        minTrades: suggested.minTrades,
        strategyVersion: suggested.strategy?.version ?? null,
        ...(suggested.strategy === undefined ? { strategyDeleted: true } : {}),
        suggestions: suggested.suggestions.map((s) => ({ id: s.id, rule: encodeRule(s.rule), reason: s.reason, evidence: s.evidence })),
        skipped: suggested.skipped
      }
      const sentences = RuleSuggestions.describeSuggestions({
        minTrades: suggested.minTrades,
        suggestions: suggested.suggestions.map((s) => ({ rule: s.rule, pattern: s.pattern, reason: s.reason, evidence: s.evidence })),
        skipped: suggested.skipped
      }) + (suggested.suggestions.length === 0
        ? ""
        : suggested.strategy === undefined
        ? " The run's strategy was deleted, so none of them can be applied."
        : ` To apply one, give its id to chat.applyRule: ${suggested.suggestions.map((s, i) => `${i + 1}. ${s.id}`).join("; ")}.`)
      const summary = suggested.suggestions.length === 0
        ? "no rule to suggest"
        : `${Format.count(suggested.suggestions.length, "rule")} suggested: ${suggested.suggestions.map((s) => s.rule.id).join(", ")}`
      return done(view, summary, sentences)
    }
    case "compare_runs": {
      const ref = otherRef(record, request.args.other)
      const other = yield* Runs.getSummary(ref, record.owner).pipe(
        Effect.map(Option.some),
        Effect.catchTag("RunNotFound", () => Effect.succeed(Option.none<Runs.RunSummary>()))
      )
      if (Option.isNone(other)) {
        const reason = `There is no run ${JSON.stringify(trimmed(ref, 80))} of yours to compare with.`
        return done({ found: false, other: ref, reason }, reason, reason)
      }
      const b = other.value
      const difference = yield* Compare.firstDecisionDifference(record.id, b.id)
      const a = briefOf(record)
      const result = { found: true, a, b: briefOf(b), firstDifference: Option.getOrNull(difference) }
      const side = (name: string, m: Metrics | null) => `${name}: ${m === null ? "no metrics yet (unfinished)" : metricsLine(m)}`
      const first = Option.match(difference, {
        onNone: () => "They made the same decisions throughout.",
        onSome: (d) =>
          `They first decided differently on ${d.symbol} at ${Format.time(d.ts)} (${d.a === null ? "no decision" : d.a.action} in ${a.ref}, ${
            d.b === null ? "no decision" : d.b.action
          } in ${result.b.ref}), after ${Format.count(d.matched, "decision")} in common.`
      })
      const sentences = `${side(a.ref, a.metrics)}. ${side(result.b.ref, b.metrics)}. ${first}`
      return done(result, `${a.ref} vs ${result.b.ref}: ${Option.isNone(difference) ? "same decisions" : "decisions differ"}`, sentences)
    }
    case "analyst_scores": {
      const view = yield* analystScores(record, request.args.agent, request.args.symbol)
      const best = view.mostAccurate === null ? undefined : view.analysts.find((a) => a.agent === view.mostAccurate)
      const summary = view.rounds === 0
        ? "no decision recorded yet"
        : `${Format.count(view.analysts.length, "analyst")} over ${Format.count(view.rounds, "round")}` +
          (best === undefined ? "" : `; most accurate ${best.agent} (${Format.percent(best.hitRate!)})`)
      return done(view, summary, AnalystScores.describeAnalystScores(view))
    }
    case "risk_checks": {
      const view = yield* riskChecks(record, request.args.symbol)
      const top = view.checks[0]
      const summary = `${view.verdicts.rejected} rejected, ${view.verdicts.reduced} reduced` +
        (top === undefined ? "" : `; most often ${top.label} (${top.rejected + top.reduced})`) + `; ${Format.count(view.rules.length, "rule")}`
      return done(view, summary, RiskChecks.describeRiskChecks(view))
    }
    case "run_status": {
      const view = yield* runStatus(record, request.args.symbol)
      const summary = `${view.status}${view.tradingState === null ? "" : `, trading ${view.tradingState}`}` +
        (view.book === null ? ", no fill yet" : `, equity ${Format.money(view.book.equity)}, ${Format.count(view.positions.length, "open position")}`)
      return done(view, summary, RunStatus.describeRunStatus(view))
    }
  }
})

// ---------------------------------------------------------------------------------------------
// What the model is shown

/** The longest tool result a model is given, in characters of JSON. */
export const MAX_RESULT_CHARS = 8_000

/** Arrays cut to `keep` items, with a note of how many were left out. */
const cutArrays = (value: unknown, keep: number): unknown => {
  if (Array.isArray(value)) {
    const kept = value.slice(0, keep).map((v) => cutArrays(v, keep))
    return value.length > keep ? [...kept, `… ${value.length - keep} more`] : kept
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [key, v] of Object.entries(value)) out[key] = cutArrays(v, keep)
    return out
  }
  return value
}

/**
 * A result as compact JSON of at most `max` characters: long lists are shortened (the first items
 * kept: the pure core orders them worst first, largest first) until it fits.
 */
export const compactJson = (value: unknown, max = MAX_RESULT_CHARS): string => {
  let text = JSON.stringify(value) ?? "null"
  for (const keep of [20, 10, 5, 3, 1]) {
    if (text.length <= max) return text
    text = JSON.stringify(cutArrays(value, keep)) ?? "null"
  }
  return text.length <= max ? text : JSON.stringify({ truncated: true, json: text.slice(0, max - 40) })
}
