/**
 * What `swarm runs list | show | compare` print: tables for people (cli-table3, as the backtest
 * summary), and JSON documents for programs with the conventions of the `--json` result document
 * (ISO 8601 times, money as exact decimal strings). Pure functions over what the store returns.
 */
import Table from "cli-table3"
import { Option, Schema } from "effect"
import type { RunId, StrategyId, Timestamp } from "../../schemas/Ids.js"
import type { Metrics, MetricsConfig } from "../../schemas/Metrics.js"
import {
  AgentRestarts,
  type CompareAnswer,
  type ControlAction,
  ControlHistory,
  LlmUsage,
  type RunInfo,
  type RunLatest,
  type RunReport,
  SHOWN_TRADES as SHOWN_TRADES_OF_REPORT,
  type UpToStop
} from "../../schemas/Rpc.js"
import { type Money, MoneyFromDecimal } from "../../schemas/Money.js"
import { StateTransition } from "../../schemas/Risk.js"
import type { Decision, DecisionDifference } from "../store/Compare.js"
import type { RunRecord, RunSummary, TradeEnds } from "../store/Runs.js"
import { toJson } from "./Flags.js"
import { visible } from "./Io.js"
import * as MetricSettings from "./MetricSettings.js"
import { IsoTime, MetricsJson, TradeJson, tradeJson } from "./ResultDocument.js"
import { count, llmLines, metricRows, money, percent, price, ratio, restartLines, roundText, time, tradesTable, unbounded } from "./Summary.js"

const DASH = "—"

/** How `runs list` names a run and every command accepts it: `<strategy name>#<number>`. */
export const refOf = (run: Pick<RunSummary, "strategyName" | "number">): string => `${run.strategyName}#${run.number}`

/** A wall-clock instant (when a run started), UTC to the second. */
export const wallTime = (date: Date): string => `${date.toISOString().slice(0, 19).replace("T", " ")}Z`

export const table = (head: ReadonlyArray<string>, align: ReadonlyArray<"left" | "right">) =>
  new Table({ head: [...head], colAligns: [...align], style: { head: [], border: [], compact: true } })

// ---------------------------------------------------------------------------------------------
// JSON documents

export const RunJson = Schema.Struct({
  id: Schema.String,
  /** `<strategy>#<number>`. */
  ref: Schema.String,
  strategy: Schema.String,
  strategyId: Schema.String,
  strategyVersion: Schema.Int,
  number: Schema.Int,
  /** The owner's user id. */
  owner: Schema.String,
  /** The owner's user name (`local` for the command line's runs); absent when no user has the id, or from a server older than it. */
  ownerName: Schema.optional(Schema.String),
  mode: Schema.String,
  status: Schema.String,
  seed: Schema.String,
  /** Absent (null) until the run has ended. */
  period: Schema.NullOr(Schema.Struct({ from: IsoTime, to: IsoTime })),
  metrics: Schema.NullOr(MetricsJson),
  counts: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.Number })),
  tradingState: Schema.NullOr(Schema.String),
  checksum: Schema.NullOr(Schema.String),
  failure: Schema.NullOr(Schema.String),
  startedAt: Schema.Date,
  finishedAt: Schema.NullOr(Schema.Date),
  /**
   * A server's list only (`runs.list`'s, as `runs.get` says it): why the answering server cannot
   * resume the run, unfinished and in no process there. Absent otherwise, and always of the local
   * database, which cannot know.
   */
  notResumable: Schema.optional(Schema.String),
  /**
   * A server's list only (`runs.list`'s, as `runs.get` says it): why the run waits, unfinished, for
   * a slot among its owner's live runs on the answering server, and when it goes on. Absent
   * otherwise, and always of the local database, which cannot know.
   */
  waiting: Schema.optional(Schema.String)
})

export const EquityJson = Schema.Struct({
  /** Portfolio snapshots recorded (one after each fill). */
  points: Schema.Int,
  first: MoneyFromDecimal,
  last: MoneyFromDecimal,
  low: MoneyFromDecimal,
  high: MoneyFromDecimal
})

/**
 * A run stopped or failed before it completed (its `metrics` null): its figures up to where it
 * stopped (`through`: the last bar marked), rebuilt from its data and fills; or why they cannot be.
 */
export const UpToStopJson = Schema.Union(
  Schema.Struct({ through: Schema.NullOr(IsoTime), metrics: MetricsJson }),
  Schema.Struct({ unavailable: Schema.String, trades: Schema.Int })
)

export const RunShowJson = Schema.Struct({
  ...RunJson.fields,
  eventDetail: Schema.String,
  dataSource: Schema.Unknown,
  dataFingerprint: Schema.String,
  replayOf: Schema.NullOr(Schema.String),
  /** The event chain as the run recorded it when it ended: its length and last hash. */
  chain: Schema.NullOr(Schema.Struct({ count: Schema.Int, head: Schema.String })),
  equity: Schema.NullOr(EquityJson),
  /** The first and the last few closed trades (not overlapping), and how many there are. */
  trades: Schema.Struct({ count: Schema.Int, first: Schema.Array(TradeJson), last: Schema.Array(TradeJson) }),
  /** Who paused, resumed, stopped, approved or rejected the run, and when: how many did, and the latest ten. */
  control: Schema.optional(ControlHistory),
  /** Its agents that crashed — how often each was restarted, and the first line of its last crash's cause — those restarted most first (a server older than it: absent). */
  agentRestarts: Schema.optional(Schema.Array(AgentRestarts)),
  /** The change that put it in its trading state — who or what, when (the bar's time), why — when that is not `active` (a server older than it: absent). */
  tradingChange: Schema.optional(Schema.Struct({ ...StateTransition.fields, at: IsoTime })),
  /** What its LLM agents used: backend, model calls, cache hits, tokens, cost, and its budget; null without LLM agents (a server older than it: absent). */
  llm: Schema.optional(Schema.NullOr(LlmUsage)),
  /**
   * A run stopped or failed before it completed (its `metrics` null): its figures up to where it
   * stopped (`through`: the last bar marked), rebuilt from its data and fills; or why they cannot be.
   * Absent for any other run, and from a server older than `runs.report`'s `upToStop`.
   */
  upToStop: Schema.optional(UpToStopJson)
})

const DecisionJson = Schema.Struct({ round: Schema.String, seq: Schema.Int, action: Schema.String, confidence: Schema.Number })

export const CompareJson = Schema.Struct({
  a: RunJson,
  b: RunJson,
  /** b − a for each numeric metric: fractions and ratios as numbers, money as decimals; null when either is missing. */
  difference: Schema.Record({ key: Schema.String, value: Schema.NullOr(Schema.Union(Schema.Number, Schema.String)) }),
  /**
   * Whether both runs' figures were computed with the same settings (`metrics.config`: risk-free
   * rate, periods a year): otherwise their Sharpe, Sortino (and, for the periods, volatility) are
   * not on the same basis. Null when either has no metrics.
   */
  sameMetricSettings: Schema.NullOr(Schema.Boolean),
  decisions: Schema.Struct({
    /** Whether both runs recorded the same detail (`decisions` or `rounds`): otherwise their decision rows are not alike. */
    sameEventDetail: Schema.Boolean,
    /** Where they first differ; null when they made the same decisions. */
    firstDifference: Schema.NullOr(Schema.Struct({
      ts: IsoTime,
      symbol: Schema.String,
      a: Schema.NullOr(DecisionJson),
      b: Schema.NullOr(DecisionJson),
      /** Decisions alike before it. */
      matched: Schema.Int,
      /** The run that had not got here (it ended earlier, or is running and has not got here yet): no difference of decisions; null when neither. */
      ended: Schema.NullOr(Schema.Literal("a", "b"))
    }))
  })
})


/** What a run's JSON document is made of: a summary of the local database's, or a server's report of it. */
type RunFields = Pick<
  RunSummary,
  | "id"
  | "strategyName"
  | "strategyId"
  | "strategyVersion"
  | "number"
  | "owner"
  | "ownerName"
  | "mode"
  | "status"
  | "seed"
  | "from"
  | "to"
  | "metrics"
  | "counts"
  | "tradingState"
  | "checksum"
  | "failure"
  | "startedAt"
  | "finishedAt"
>

export const runJson = (run: RunFields): typeof RunJson.Type => ({
  id: run.id,
  ref: refOf(run),
  strategy: run.strategyName,
  strategyId: run.strategyId,
  strategyVersion: run.strategyVersion,
  number: run.number,
  owner: run.owner,
  ...(run.ownerName === undefined ? {} : { ownerName: run.ownerName }),
  mode: run.mode,
  status: run.status,
  seed: run.seed,
  period: run.from === null || run.to === null ? null : { from: run.from as Timestamp, to: run.to as Timestamp },
  metrics: run.metrics,
  counts: run.counts,
  tradingState: run.tradingState,
  checksum: run.checksum,
  failure: run.failure,
  startedAt: run.startedAt,
  finishedAt: run.finishedAt
})

/**
 * A server's run (`RunInfo`) as the local database's document of it (`RunJson`), when the server
 * sends the rest of its record (`record`); none from a server older than that.
 */
export const runJsonOfInfo = (info: RunInfo): typeof RunJson.Type | undefined => {
  const fields = runFieldsOfInfo(info)
  return fields === undefined ? undefined : {
    ...runJson(fields),
    ...(info.notResumable === undefined ? {} : { notResumable: info.notResumable }),
    ...(info.waiting === undefined ? {} : { waiting: info.waiting })
  }
}

/** A server's run (`RunInfo`) as the local database's record of it, when the server sends the rest of it (`record`). */
const runFieldsOfInfo = (info: RunInfo): RunFields | undefined =>
  info.record === undefined ? undefined : ({
    id: info.id as RunId,
    strategyName: info.strategy,
    strategyId: info.record.strategyId as StrategyId,
    strategyVersion: info.strategyVersion,
    number: info.number,
    owner: info.record.owner,
    ...(info.owner === undefined ? {} : { ownerName: info.owner }),
    mode: info.mode as RunRecord["mode"],
    status: info.status as RunRecord["status"],
    seed: info.record.seed,
    from: info.record.from,
    to: info.record.to,
    metrics: info.metrics,
    counts: info.record.counts === null ? null : { ...info.record.counts },
    tradingState: info.record.tradingState,
    checksum: info.checksum,
    failure: info.failure,
    startedAt: info.startedAt,
    finishedAt: info.finishedAt
  })

// ---------------------------------------------------------------------------------------------
// runs list

/**
 * A run as `runs list --json` prints it: its record, and of a run stopped or failed before it
 * completed (`metrics` null), its figures up to where it stopped as `runs show --json` has them
 * (`upToStop`), which the table marks `*`.
 */
export const RunListJson = Schema.Struct({
  ...RunJson.fields,
  /** As `RunShowJson`'s: absent for any other run (and from a server older than `runs.list`'s `upToStop`). */
  upToStop: Schema.optional(UpToStopJson)
})

export const listJson = (runs: ReadonlyArray<RunSummary>, partials: ReadonlyMap<string, PartialMetrics> = new Map()): string =>
  toJson(
    Schema.Array(RunListJson),
    runs.map((run) => {
      const partial = run.metrics === null ? partials.get(run.id) : undefined
      return { ...runJson(run), ...(partial === undefined ? {} : { upToStop: upToStopJson(partial) }) }
    })
  )

/** Figures up to where a run stopped, or why none, as the JSON documents have them. */
export const upToStopJson = (partial: PartialMetrics): typeof UpToStopJson.Type =>
  partial._tag === "upTo"
    ? { through: partial.through as Timestamp | null, metrics: partial.metrics }
    : { unavailable: partial.reason, trades: partial.trades }

const period = (run: Pick<RunSummary, "from" | "to">): string =>
  run.from === null || run.to === null ? DASH : `${time(run.from)} → ${time(run.to)}`

/** Who owns a run, as people know them: their user name (`local` for the command line's), the id only when no user has it. */
export const ownerOf = (run: { readonly owner: string; readonly ownerName?: string | null | undefined }): string => run.ownerName ?? run.owner

/**
 * `next`: the command line of the next page, when more runs follow than these. A list of several
 * users' runs (a database a server keeps) has an owner column, as a server's list does
 * (RemoteView.runsTable): two users' runs may have the same `<strategy>#<number>`.
 */
/**
 * A run's status in `runs list`, local and from a server alike: a live run that is not trading
 * freely says so (`running, halted`, `paused, reducing`) — its row says its trading state as of its
 * last event committed — so that an operator scanning the list sees which runs a breaker or an
 * operator stopped trading. A run that ended says its status alone (`runs show` has its state).
 */
export const statusCell = (status: string, tradingState: string | null | undefined): string =>
  (status === "running" || status === "paused") && (tradingState === "halted" || tradingState === "reducing")
    ? `${status}, ${tradingState}`
    : status

export const renderList = (
  runs: ReadonlyArray<RunSummary>,
  next: string | undefined,
  /** Of the runs stopped or failed before they completed: their figures up to where they stopped, or why none. */
  partials: ReadonlyMap<string, PartialMetrics> = new Map()
): string => {
  if (runs.length === 0) return "no runs\n"
  let marked = false
  const owners = new Set(runs.map((run) => run.owner)).size > 1
  const t = table(
    ["run", ...(owners ? ["owner"] : []), "id", "status", "mode", "period", "return", "Sharpe", "max DD", "trades", "started"],
    ["left", ...(owners ? ["left" as const] : []), "left", "left", "left", "left", "right", "right", "right", "right", "left"]
  )
  for (const run of runs) {
    const figures = listedFigures(run.metrics, partials.get(run.id))
    if (figures.marked) marked = true
    t.push([
      refOf(run),
      ...(owners ? [ownerOf(run)] : []),
      run.id,
      statusCell(run.status, run.tradingState),
      run.mode,
      period(run),
      ...figures.cells,
      wallTime(run.startedAt)
    ])
  }
  return `${t.toString()}\n${marked ? UP_TO_STOP_NOTE : ""}${next === undefined ? "" : `more runs follow; the next page: ${next}\n`}`
}

/**
 * The figure cells of a `runs list` row — return, Sharpe, max DD, trades — on the local database
 * and from a server (RemoteView.runsTable) alike: a completed run's metrics; a run stopped or
 * failed before it completed, its figures up to where it stopped, each marked `*` (`marked`: the
 * table then ends with `UP_TO_STOP_NOTE`), or when they cannot be made, the trades it closed.
 */
export const listedFigures = (
  metrics: Metrics | null,
  partial: PartialMetrics | undefined
): { readonly cells: ReadonlyArray<string>; readonly marked: boolean } => {
  const upTo = metrics === null && partial?._tag === "upTo"
  const m = metrics ?? (partial?._tag === "upTo" ? partial.metrics : null)
  const mark = (text: string) => (upTo ? `${text}*` : text)
  return {
    cells: [
      m === null ? DASH : mark(percent(m.totalReturn, { sign: true })),
      m === null ? DASH : mark(ratio(m.sharpe)),
      m === null ? DASH : mark(percent(m.maxDrawdown)),
      m === null ? (partial?._tag === "none" ? count(partial.trades) : DASH) : mark(count(m.tradeCount))
    ],
    marked: upTo
  }
}

/** Under a `runs list` table with figures marked `*` (`listedFigures`): what the mark means. */
export const UP_TO_STOP_NOTE = "* up to where the run stopped or failed: rebuilt from its data and fills (swarm runs show has them all)\n"

// ---------------------------------------------------------------------------------------------
// runs show

/** How many trades `runs show` lists from each end (a server's `runs.report` sends as many). */
export const SHOWN_TRADES = SHOWN_TRADES_OF_REPORT

export interface Equity {
  readonly points: number
  readonly first: number | null
  readonly last: number | null
  readonly low: number | null
  readonly high: number | null
}

/**
 * What `runs show` says of the run itself: its record as the local database keeps it, or as a
 * server's `runs.report` sends it. `faults` is not null when faults were injected into it.
 */
export type ShownRun =
  & RunFields
  & Pick<RunRecord, "dataFingerprint" | "dataSource" | "eventDetail" | "replayOf" | "chain">
  & { readonly faults: unknown }

export interface Shown {
  readonly run: ShownRun
  readonly equity: Option.Option<Equity>
  /** Its closed trades, in closing order: how many, and the first and last `SHOWN_TRADES` (not overlapping). */
  readonly trades: TradeEnds
  /** Its operators' actions (`ControlAudit.history`). */
  readonly control?: ControlHistory
  /** Where it stands: what only a server knows (its latest-values cache), from `runs.report`; the text says it, `--json` keeps to the record. */
  readonly latest?: RunLatest
  /** An unfinished run the server cannot resume: why (`runs.report`'s `notResumable`); the text says it. */
  readonly notResumable?: string
  /** An unfinished run the server's start-up left waiting for a slot (its owner at the cap): why (`runs.report`'s `waiting`); the text says it. */
  readonly waiting?: string
  /**
   * Read from the local database, not a server: whether a process runs an unfinished run, or a
   * server can resume it, is not known (the text says so rather than saying nothing).
   */
  readonly local?: boolean
  /** Its agents that crashed (`Runs.agentRestarts`). */
  readonly agentRestarts?: ReadonlyArray<AgentRestarts>
  /** The change that put it in its trading state, when that is not `active` (`Runs.tradingChange`). */
  readonly tradingChange?: StateTransition
  /** What its LLM agents used (`Runs.llmUsage`): null for a run without any. */
  readonly llm?: LlmUsage | null
  /**
   * A run stopped or failed before it completed (no metrics of its own): its figures up to where
   * it stopped, rebuilt from its data and fills (`Tools.metrics`), or why they cannot be.
   */
  readonly partial?: PartialMetrics
}

/** The figures of a run that ended before it completed, as far as it got; or why there are none (`runs.report`'s `upToStop`). */
export type PartialMetrics = UpToStop

/** A server's report of a run (`runs.report`) as `runs show` shows it: the same report as of a run of the local database. */
export const shownOf = (report: RunReport): Shown => ({
  run: {
    id: report.id as RunId,
    strategyId: report.strategyId as StrategyId,
    strategyName: report.strategy,
    strategyVersion: report.strategyVersion,
    number: report.number,
    owner: report.owner,
    ...(report.ownerName === undefined ? {} : { ownerName: report.ownerName }),
    mode: report.mode as RunRecord["mode"],
    status: report.status as RunRecord["status"],
    seed: report.seed,
    dataFingerprint: report.dataFingerprint,
    failure: report.failure,
    checksum: report.checksum,
    metrics: report.metrics,
    counts: report.counts === null ? null : { ...report.counts },
    tradingState: report.tradingState,
    from: report.from,
    to: report.to,
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    dataSource: report.dataSource,
    eventDetail: report.eventDetail,
    replayOf: report.replayOf as RunId | null,
    chain: report.chain === null ? null : { count: report.chain.count, hash: report.chain.head },
    faults: report.faults ? true : null
  },
  equity: Option.fromNullable(report.equity),
  trades: report.trades,
  control: report.control,
  ...(report.latest === undefined ? {} : { latest: report.latest }),
  ...(report.notResumable === undefined ? {} : { notResumable: report.notResumable }),
  ...(report.waiting === undefined ? {} : { waiting: report.waiting }),
  ...(report.agentRestarts === undefined ? {} : { agentRestarts: report.agentRestarts }),
  ...(report.tradingChange === undefined ? {} : { tradingChange: report.tradingChange }),
  ...(report.llm === undefined ? {} : { llm: report.llm }),
  ...(report.upToStop === undefined ? {} : { partial: report.upToStop })
})

const equityOf = (equity: Option.Option<Equity>): typeof EquityJson.Type | null =>
  Option.match(equity, {
    onNone: () => null,
    onSome: (e) =>
      e.first === null || e.last === null || e.low === null || e.high === null
        ? null
        : { points: e.points, first: e.first as Money, last: e.last as Money, low: e.low as Money, high: e.high as Money }
  })

export const showJson = ({ agentRestarts, control, equity, llm, partial, run, tradingChange, trades }: Shown): string =>
  toJson(RunShowJson, {
    ...runJson(run),
    eventDetail: run.eventDetail,
    dataSource: run.dataSource,
    dataFingerprint: run.dataFingerprint,
    replayOf: run.replayOf,
    chain: run.chain === null ? null : { count: run.chain.count, head: run.chain.hash },
    equity: equityOf(equity),
    trades: { count: trades.count, first: trades.first.map(tradeJson), last: trades.last.map(tradeJson) },
    ...(control === undefined ? {} : { control }),
    ...(agentRestarts === undefined ? {} : { agentRestarts }),
    ...(tradingChange === undefined ? {} : { tradingChange }),
    ...(llm === undefined ? {} : { llm }),
    ...(partial === undefined ? {} : { upToStop: upToStopJson(partial) })
  })

const DONE: Record<ControlAction["action"], string> = {
  pause: "paused",
  resume: "resumed",
  stop: "stopped",
  approve: "approved",
  reject: "rejected",
  trading: "trading moved"
}

/**
 * One operator action: `paused by alice at 2026-12-05 20:40:01Z`, an answer with its round (and
 * reason), a trading-state command with the state (`trading moved to halted by alice …: news`).
 */
const controlText = (action: ControlAction): string =>
  `${DONE[action.action]}${action.round === undefined ? "" : ` round ${action.round}`}${action.state === undefined ? "" : ` to ${action.state}`} by ${action.by.name} at ${wallTime(action.at)}` +
  (action.reason === undefined ? "" : `: ${visible(action.reason)}`)

/** `runs show`'s lines on who controlled the run (its control log), the latest first shown last. */
export const controlLines = (control: ControlHistory): Array<string> => {
  if (control.count === 0) return ["control   no operator actions"]
  const head = control.count === 1
    ? "1 operator action"
    : control.count > control.last.length
    ? `${count(control.count)} operator actions, the last ${control.last.length}`
    : `${control.count} operator actions`
  return [`control   ${head}:`, ...control.last.map((action) => `          ${controlText(action)}`)]
}

const ENDED_STATUSES: ReadonlyArray<string> = ["completed", "failed", "stopped"]

/** The quotes `runs show` lists (by symbol); the rest are counted. */
const QUOTES_SHOWN = 8

const positionsText = (open: number) => `${count(open)} open position${open === 1 ? "" : "s"}`

/**
 * Where the run stands (a server's latest values: `runs.get`'s, `runs.report`'s): its equity and cash, and the quotes it last
 * saw. The values are the book after the run's last fill, marked at that fill's prices: for a live
 * run that is where it stands now; for one that ended it is not its final equity (its metrics'
 * is, marked at its end), so it is labelled as what it is, and never "live".
 */
export const latestLines = (run: {
  readonly status: string
  readonly metrics: Metrics | null
  readonly latest?: RunLatest | undefined
}): Array<string> => {
  const latest = run.latest
  if (latest === undefined) return []
  const p = latest.portfolio
  // A server's book lists open positions only; one older than that may list flat ones too.
  const open = p === undefined ? 0 : p.positions.filter((position) => position.quantity !== 0).length
  const quotes = Object.entries(latest.quotes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const quoteLines = quotes.length === 0 ? [] : [
    `${ENDED_STATUSES.includes(run.status) ? "last seen" : "quotes   "} ${quotes.slice(0, QUOTES_SHOWN).map(([symbol, q]) => `${symbol} ${price(q.price)}`).join(", ")}${
      quotes.length > QUOTES_SHOWN ? ` and ${count(quotes.length - QUOTES_SHOWN)} more` : ""
    }`
  ]
  if (!ENDED_STATUSES.includes(run.status)) {
    const from = latest.source === "cache" ? "live" : "as recorded"
    return [
      `now       ${p === undefined ? DASH : `equity ${money(p.equity)}, cash ${money(p.cash)}, ${positionsText(open)}`} at ${time(latest.at)} (event ${
        count(latest.seq)
      }, ${from})`,
      ...quoteLines
    ]
  }
  if (p === undefined) return quoteLines
  const book = `cash ${money(p.cash)}, ${positionsText(open)}`
  return [
    ...(run.metrics === null
      ? [`last fill equity ${money(p.equity)} marked at that fill's prices, ${book}, at ${time(latest.at)} (event ${count(latest.seq)}): not its final equity`]
      : [`final     equity ${money(run.metrics.finalEquity)} (its metrics), ${book} since its last fill at ${time(latest.at)} (event ${count(latest.seq)})`]),
    ...quoteLines
  ]
}

/** A stored data source in a few words: its files and window, or the synthetic market. */
export const describeSource = (source: unknown): string => {
  const s = source as { _tag?: unknown; paths?: unknown; from?: unknown; to?: unknown; symbols?: unknown }
  if (s?._tag === "csv" && Array.isArray(s.paths)) {
    const window = typeof s.from === "number" || typeof s.to === "number"
      ? `, ${typeof s.from === "number" ? time(s.from) : "the start"} → ${typeof s.to === "number" ? time(s.to) : "the end"}`
      : ""
    const symbols = Array.isArray(s.symbols) ? ` (${s.symbols.join(", ")})` : ""
    return `CSV ${s.paths.join(", ")}${symbols}${window}`
  }
  if (s?._tag === "synthetic") return "the synthetic market"
  return JSON.stringify(source)
}

const COUNT_ORDER = ["bars", "slices", "rounds", "decisions", "orders", "fills", "rejected", "restarts", "events"]

const countsLine = (counts: Record<string, number>): string =>
  [...COUNT_ORDER.filter((k) => k in counts), ...Object.keys(counts).filter((k) => !COUNT_ORDER.includes(k))]
    .map((k) => `${count(counts[k]!)} ${k}`)
    .join(", ")

const duration = (from: Date, to: Date): string => {
  const s = (to.getTime() - from.getTime()) / 1000
  return s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`
}

/**
 * Under a run's status, when the server says it cannot resume it (`notResumable`): why, and what
 * ends it. (`runs show`, of `runs.report` and of an older server's `runs.get`.)
 */
export const notResumableLines = (run: string, notResumable: string | undefined): ReadonlyArray<string> =>
  notResumable === undefined ? [] : [
    `          not resumable by this server: ${notResumable}`,
    `          (a server that can resume it does, or runs it already; if none does, \`swarm runs stop ${run}\` ends it)`
  ]

/**
 * Under a run's status, when the server's start-up left it waiting for a slot (`waiting`): why, and
 * when it goes on (the server's reason says both). (`runs show`, of `runs.report` and `runs.get`.)
 */
export const waitingLines = (waiting: string | undefined): ReadonlyArray<string> =>
  waiting === undefined ? [] : [`          waiting for a slot on the server, not failed: ${waiting}`]

/**
 * Under an unfinished run's status in `runs show --local` (or with no server configured): the
 * database alone cannot tell whether a process runs it, or whether a server can resume it.
 */
export const localUnfinished = (run: Pick<RunFields, "id" | "mode">): string =>
  run.mode === "paper"
    ? "          (read from the database, which cannot tell whether a server runs it or can resume it: a server's swarm runs show says)"
    // `swarm resume` leases the run first: one a process runs is left to it, said so.
    : `          (read from the database, which cannot tell whether a process runs it: swarm resume ${run.id} goes on with it if none does)`

/** Why a run has no metrics of its own: only a completed run is measured at its end. */
const noMetricsLine = (status: string): string =>
  status === "stopped"
    ? "metrics: none: the run was stopped before it completed"
    : status === "failed"
    ? "metrics: none: the run failed before it completed"
    : "metrics: none yet (the run has not completed)"

/** The trading line's change: `halted since the bar of 2022-05-06 by operator alice: news pending`. */
const tradingChangeText = (change: StateTransition): string =>
  ` since the bar of ${time(change.at)}, by ${change.cause === "operator" && change.actor !== null ? `operator ${change.actor}` : change.cause.replaceAll("_", " ")}: ${change.reason}`

export const renderShow = ({ agentRestarts, control, equity, latest, llm, local, notResumable, partial, run, tradingChange, trades, waiting }: Shown): string => {
  const lines: Array<string> = [
    `run       ${run.id} (${refOf(run)})`,
    `strategy  ${run.strategyName}, version ${run.strategyVersion} (${run.strategyId}), owner ${ownerOf(run)}`,
    `mode      ${run.mode}, seed ${run.seed}, event detail ${run.eventDetail}${run.faults === null ? "" : ", with injected faults"}`,
    `data      ${describeSource(run.dataSource)}`,
    ...(llm === undefined || llm === null ? [] : llmLines(llm)),
    `status    ${run.status}${run.failure === null ? "" : `: ${run.failure}`}`,
    ...notResumableLines(run.id, notResumable),
    ...waitingLines(waiting),
    ...(local === true && (run.status === "running" || run.status === "paused") ? [localUnfinished(run)] : []),
    `period    ${period(run)}`,
    `started   ${wallTime(run.startedAt)}${
      run.finishedAt === null ? "" : `, ended ${wallTime(run.finishedAt)} (${duration(run.startedAt, run.finishedAt)})`
    }`,
    ""
  ]
  const how = run.status === "failed" ? "failed" : "was stopped"
  if (run.metrics === null && partial?._tag === "upTo") {
    lines.push(
      `metrics: up to where it stopped — the run ${how} before it completed; ${
        partial.through === null ? "it had marked no bar" : `its bars are marked up to ${time(partial.through)}`
      } (its equity at every bar's close rebuilt from its data and fills)`
    )
    const metrics = table(["metric", "value"], ["left", "left"])
    for (const row of metricRows(partial.metrics)) metrics.push([...row])
    lines.push(metrics.toString(), "")
  } else if (run.metrics === null) {
    lines.push(
      partial?._tag === "none"
        ? `${noMetricsLine(run.status)} (its figures up to there cannot be made: ${partial.reason}; ${count(partial.trades)} trades closed)`
        : noMetricsLine(run.status),
      ""
    )
  } else {
    const metrics = table(["metric", "value"], ["left", "left"])
    for (const row of metricRows(run.metrics)) metrics.push([...row])
    lines.push(metrics.toString(), "")
  }
  const e = equityOf(equity)
  lines.push(
    e === null
      ? "equity    no snapshots"
      : `equity    ${count(e.points)} snapshots, taken after fills: first ${money(e.first)}, last ${money(e.last)}, low ${money(e.low)}, high ${money(e.high)}`,
    ...latestLines({ status: run.status, metrics: run.metrics, latest }),
    ""
  )
  if (trades.count === 0) lines.push("trades: none closed", "")
  else {
    const { count: n, first, last } = trades
    const gap = n > first.length + last.length
    lines.push(
      !gap
        ? `${n === 1 ? "1 trade" : `all ${n} trades`}`
        : `first ${first.length} and last ${last.length} of ${count(n)} trades`,
      tradesTable([...first, ...(gap ? [undefined] : []), ...last]),
      ""
    )
  }
  lines.push(
    `trading   ${run.tradingState ?? DASH}${tradingChange === undefined ? "" : tradingChangeText(tradingChange)}`,
    `counts    ${run.counts === null ? DASH : countsLine(run.counts)}`,
    ...(agentRestarts === undefined ? [] : restartLines(agentRestarts)),
    `checksum  ${run.checksum ?? DASH}`,
    `chain     ${run.chain === null ? "not closed (the run has not ended)" : `${count(run.chain.count)} events, head ${run.chain.hash}`}`,
    ...(control === undefined ? [] : controlLines(control))
  )
  return `${lines.join("\n")}\n`
}

// ---------------------------------------------------------------------------------------------
// runs compare

export interface Compared {
  readonly a: RunFields & { readonly eventDetail: string }
  readonly b: RunFields & { readonly eventDetail: string }
  readonly difference: Option.Option<DecisionDifference>
}

/**
 * A server's `runs.compare` answer as the local database's comparison of the same runs, when the
 * server sends all it is made of (the runs' records, their event detail, the differing decisions);
 * none from a server older than that.
 */
export const comparedOf = (answer: CompareAnswer): Compared | undefined => {
  const a = runFieldsOfInfo(answer.a)
  const b = runFieldsOfInfo(answer.b)
  const d = answer.firstDifference
  if (a === undefined || b === undefined || answer.eventDetail === undefined) return undefined
  if (d !== null && (d.a === undefined || d.b === undefined || d.matched === undefined)) return undefined
  return {
    a: { ...a, eventDetail: answer.eventDetail.a },
    b: { ...b, eventDetail: answer.eventDetail.b },
    difference: d === null ? Option.none() : Option.some({
      ts: d.ts,
      symbol: d.symbol,
      a: d.a ?? null,
      b: d.b ?? null,
      matched: d.matched!,
      ended: d.ended ?? null
    })
  }
}

export type Kind = "fraction" | "ratio" | "money" | "count"

/** The metrics compared, with how their difference reads. */
export const COMPARED: ReadonlyArray<readonly [keyof Metrics, string, Kind]> = [
  ["totalReturn", "total return", "fraction"],
  ["cagr", "CAGR", "fraction"],
  ["annualVolatility", "volatility", "fraction"],
  ["sharpe", "Sharpe", "ratio"],
  ["sortino", "Sortino", "ratio"],
  ["calmar", "Calmar", "ratio"],
  ["maxDrawdown", "max drawdown", "fraction"],
  ["maxDrawdownDays", "max drawdown days", "count"],
  ["longestDrawdownDays", "longest drawdown days", "count"],
  ["winRate", "win rate", "fraction"],
  ["profitFactor", "profit factor", "ratio"],
  ["exposure", "exposure", "fraction"],
  ["tradeCount", "trades", "count"],
  ["initialCash", "initial cash", "money"],
  ["grossProfit", "gross profit", "money"],
  ["grossLoss", "gross loss", "money"],
  ["finalEquity", "final equity", "money"]
]

export const valueOf = (m: Metrics | null, key: keyof Metrics): number | null => {
  const v = m === null ? null : m[key]
  return typeof v === "number" ? v : null
}

/** A metric of a run as `runs compare` shows it: `shownValue`, and an unbounded one as such (`unbounded`). */
export const shownMetric = (m: Metrics | null, key: keyof Metrics, kind: Kind): string =>
  (m === null ? undefined : unbounded(m, key)) ?? shownValue(valueOf(m, key), kind)

export const shownValue = (v: number | null, kind: Kind): string =>
  v === null
    ? DASH
    : kind === "fraction"
    ? percent(v)
    : kind === "ratio"
    ? ratio(v)
    : kind === "money"
    ? money(v as Money)
    : count(v)

export const shownDifference = (a: number | null, b: number | null, kind: Kind): string => {
  if (a === null || b === null) return DASH
  const d = b - a
  if (d === 0) return "="
  const sign = d > 0 ? "+" : "−"
  const abs = Math.abs(d)
  return kind === "fraction"
    ? `${sign}${(abs * 100).toFixed(2)} pp`
    : kind === "ratio"
    ? `${sign}${abs.toFixed(2)}`
    : kind === "money"
    ? `${sign}${money(abs as Money)}`
    : `${sign}${count(abs)}`
}

/**
 * The compared metrics' rows (`runs compare`, of the local database's runs or a server's): the
 * settings the figures were computed with first, then each figure and b − a — a figure the
 * settings' difference changes is marked, its difference not the runs' alone.
 */
export const metricRowsCompared = (t: ReturnType<typeof table>, a: Metrics | null, b: Metrics | null): void => {
  // A document that says no settings (hand-made; every run's metrics carry theirs) is a dash.
  const ca = a?.config
  const cb = b?.config
  const settings = (c: MetricsConfig | undefined) => (c === undefined ? DASH : MetricSettings.text(c))
  const alike = ca === undefined || cb === undefined ? DASH : MetricSettings.same(ca, cb) ? "=" : "not the same basis"
  t.push(["metric settings", settings(ca), settings(cb), alike])
  for (const [key, label, kind] of COMPARED) {
    const x = valueOf(a, key)
    const y = valueOf(b, key)
    const differs = ca !== undefined && cb !== undefined && MetricSettings.changes(key, ca, cb)
    t.push([differs ? `${label} *` : label, shownMetric(a, key, kind), shownMetric(b, key, kind), shownDifference(x, y, kind)])
  }
}

/**
 * A run's side of the first differing decision. No row is not "no decision": at the default event
 * detail (`decisions`) only the decisions that changed a target are recorded, so a round that held
 * leaves none; with `rounds` every decision is, so there was none.
 */
export const decisionText = (d: Decision | null, eventDetail: string): string =>
  d !== null
    ? `${d.action} (confidence ${d.confidence.toFixed(2)}, round ${roundText(d.round)}, event ${d.seq})`
    : eventDetail === "rounds"
    ? "no decision recorded (at event detail rounds every decision is: none was made here)"
    : `no decision recorded: a hold, or a round not recorded at this event detail (${eventDetail}: only decisions that changed a target are kept)`

export const compareJson = ({ a, b, difference }: Compared): string => {
  const diff: Record<string, number | string | null> = {}
  for (const [key, , kind] of COMPARED) {
    const x = valueOf(a.metrics, key)
    const y = valueOf(b.metrics, key)
    diff[key] = x === null || y === null ? null : kind === "money" ? Schema.encodeSync(MoneyFromDecimal)((y - x) as Money) : y - x
  }
  return toJson(CompareJson, {
    a: runJson(a),
    b: runJson(b),
    difference: diff,
    sameMetricSettings: a.metrics?.config === undefined || b.metrics?.config === undefined
      ? null
      : MetricSettings.same(a.metrics.config, b.metrics.config),
    decisions: {
      sameEventDetail: a.eventDetail === b.eventDetail,
      firstDifference: Option.match(difference, {
        onNone: () => null,
        onSome: (d) => ({ ts: d.ts as Timestamp, symbol: d.symbol, a: d.a, b: d.b, matched: d.matched, ended: d.ended })
      })
    }
  })
}

/**
 * Two runs alike as far as one of them goes (`ended`, schemas/Rpc.ts `runs.compare`): that one
 * ended earlier, or is still going and has not decided that far yet — where it has got to, not a
 * difference of decisions, and said so.
 */
export const shorterLine = (
  shorter: { readonly label: string; readonly status: string },
  longer: { readonly label: string },
  at: { readonly ts: number; readonly symbol: string; readonly matched?: number | undefined }
): string => {
  const alike = at.matched === undefined ? "" : ` (${count(at.matched)} alike)`
  return shorter.status === "running" || shorter.status === "paused"
    ? `decisions: the same so far${alike}; ${shorter.label} has no decision yet from ${time(at.ts)} ${at.symbol} on: it is still ${shorter.status}`
    : `decisions: the same until ${shorter.label} ended${alike}; ${longer.label} decided on from ${time(at.ts)} ${at.symbol}`
}

export const renderCompare = ({ a, b, difference }: Compared): string => {
  const t = table(["", `a: ${refOf(a)}`, `b: ${refOf(b)}`, "b − a"], ["left", "right", "right", "right"])
  t.push(["run", a.id, b.id, ""])
  t.push(["status", a.status, b.status, a.status === b.status ? "=" : "differ"])
  t.push(["period", period(a), period(b), a.from === b.from && a.to === b.to ? "=" : "differ"])
  t.push(["seed", a.seed, b.seed, a.seed === b.seed ? "=" : "differ"])
  metricRowsCompared(t, a.metrics, b.metrics)
  const short = (c: string | null) => (c === null ? DASH : `${c.slice(0, 12)}…`)
  t.push(["checksum", short(a.checksum), short(b.checksum), a.checksum !== null && a.checksum === b.checksum ? "=" : "differ"])
  const lines = [t.toString(), ""]
  const basis = MetricSettings.compareNoteOf(a.metrics, b.metrics)
  if (basis !== undefined) lines.push(basis)
  if (a.eventDetail !== b.eventDetail) {
    lines.push(
      `note: a recorded ${a.eventDetail}, b ${b.eventDetail}: with "decisions" only the decisions that changed a target are kept, so the runs' decisions are not alike`
    )
  }
  lines.push(
    Option.match(difference, {
      onNone: () => "decisions: the same throughout",
      onSome: (d) => {
        const label = (side: "a" | "b") => `${side} (${refOf(side === "a" ? a : b)})`
        if (d.ended !== null) {
          return shorterLine({ label: label(d.ended), status: (d.ended === "a" ? a : b).status }, { label: label(d.ended === "a" ? "b" : "a") }, d)
        }
        return [
          `first differing decision: ${time(d.ts)} ${d.symbol}, after ${count(d.matched)} alike`,
          `  a  ${decisionText(d.a, a.eventDetail)}`,
          `  b  ${decisionText(d.b, b.eventDetail)}`
        ].join("\n")
      }
    })
  )
  return `${lines.join("\n")}\n`
}
