/**
 * What `swarm runs watch` shows of a run, as a pure fold over its events: equity and cash, open
 * positions, the last decisions and verdicts, the approvals waiting for an operator, and how the
 * run ended. `step` folds one event in; `frame` draws the model for a terminal (redrawn in place);
 * `line` is the one line an event prints when the output is no terminal (a pipe, a log, a test).
 */
import { Duration } from "effect"
import type { Timestamp } from "../../schemas/Ids.js"
import type { Metrics } from "../../schemas/Metrics.js"
import type { ControlHistory } from "../../schemas/Rpc.js"
import type { Money } from "../../schemas/Money.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { count, money, percent, price, quantity, ratio, time } from "./Summary.js"
import { visible } from "./Io.js"

/** How many decisions and verdicts the view keeps by default. */
export const KEEP = 5

export interface Holding {
  readonly symbol: string
  readonly quantity: number
  readonly averagePrice: number
  readonly markPrice: number
  readonly unrealizedPnl: Money
}

export interface DecisionSeen {
  readonly seq: number
  readonly ts: number
  readonly round: string
  readonly symbol: string
  readonly action: string
  readonly confidence: number
}

export interface VerdictSeen {
  readonly seq: number
  readonly ts: number
  readonly round: string
  readonly symbol: string
  readonly side: string
  /** What was asked, and what passed (0 when rejected). */
  readonly asked: number
  readonly quantity: number
  readonly outcome: string
  /** The first reason given, if any. */
  readonly reason: string | undefined
}

/**
 * When an approval expires. An event's `expiresAt` is on the run's clock (the bar's time plus the
 * strategy's timeout): the true expiry of a backtest's, but not of a paper run's, which expires in
 * wall-clock time — that only the server's approvals list says (`wall`); until it has, a paper
 * run's is shown as its timeout after it was asked (`after`).
 */
export type Expiry =
  | { readonly clock: "run"; readonly at: number }
  | { readonly clock: "wall"; readonly at: number }
  | { readonly clock: "after"; readonly millis: number }

/** An approval's expiry as its event can tell it, in a run of `mode`. */
export const expiryOf = (event: Extract<RunEvent, { _tag: "ApprovalRequested" }>, mode: string | undefined): Expiry =>
  mode === "paper" ? { clock: "after", millis: Math.max(0, event.expiresAt - event.at) } : { clock: "run", at: event.expiresAt }

const expiryText = (expiry: Expiry): string =>
  expiry.clock === "run"
    ? `expires ${time(expiry.at)}`
    : expiry.clock === "wall"
    ? `expires ${new Date(expiry.at).toISOString().slice(0, 19).replace("T", " ")}Z`
    : `expires ${Duration.format(Duration.millis(expiry.millis))} after it was asked`

export interface PendingSeen {
  readonly round: string
  readonly symbol: string
  readonly side: string
  readonly quantity: number
  readonly reasons: ReadonlyArray<string>
  readonly expires: Expiry
}

/** `paused` and `stopped` come from the server (`runs.get`), not from events: pausing and stopping record none. */
export type Status = "starting" | "running" | "paused" | "completed" | "failed" | "stopped"

export interface Model {
  readonly run: string
  readonly keep: number
  readonly status: Status
  readonly mode: string | undefined
  readonly symbols: ReadonlyArray<string>
  /** The last event's sequence number: where to resume from. */
  readonly seq: number
  /** The last event's time (virtual in backtests). */
  readonly at: number | undefined
  readonly cash: Money | undefined
  readonly equity: Money | undefined
  /**
   * The run's initial cash (its strategy version's, or its metrics' once it completed): the return
   * so far is measured from it. Unknown, no return is shown — never one measured from a later equity.
   */
  readonly initialCash: Money | undefined
  readonly realizedPnl: Money | undefined
  readonly positions: ReadonlyArray<Holding>
  readonly decisions: ReadonlyArray<DecisionSeen>
  readonly verdicts: ReadonlyArray<VerdictSeen>
  readonly pending: ReadonlyArray<PendingSeen>
  readonly fills: number
  readonly trades: number
  readonly tradingState: string
  readonly metrics: Metrics | undefined
  readonly checksum: string | undefined
  readonly failure: string | undefined
  /** The approvals still pending when the run was stopped: cancelled with it. */
  readonly cancelled: number
  /** What the view says above the account while it is true (the server lost, reconnecting). */
  readonly note: string | undefined
  /** While paused: who paused it and when, as its control log says (`runs.get`'s `control`): `alice at 2026-12-06 03:12:04Z`. */
  readonly pausedBy?: string | undefined
}

export const initial = (run: string, keep: number = KEEP, initialCash?: Money): Model => ({
  run,
  keep,
  status: "starting",
  mode: undefined,
  symbols: [],
  seq: 0,
  at: undefined,
  cash: undefined,
  equity: undefined,
  initialCash,
  realizedPnl: undefined,
  positions: [],
  decisions: [],
  verdicts: [],
  pending: [],
  fills: 0,
  trades: 0,
  tradingState: "active",
  metrics: undefined,
  checksum: undefined,
  failure: undefined,
  cancelled: 0,
  note: undefined
})

const last = <A>(items: ReadonlyArray<A>, item: A, keep: number): ReadonlyArray<A> =>
  keep <= 0 ? [] : items.length < keep ? [...items, item] : [...items.slice(items.length - keep + 1), item]

/** Fold one event into the view. Events at or before the model's sequence number were seen already and change nothing. */
export const step = (model: Model, event: RunEvent): Model => {
  if (event.seq <= model.seq) return model
  const next: Model = { ...model, seq: event.seq, at: event.at, status: model.status === "starting" ? "running" : model.status }
  switch (event._tag) {
    case "RunStarted":
      return { ...next, mode: event.mode, symbols: event.symbols }
    case "PortfolioUpdated": {
      // A snapshot lists only the positions its fills changed (agents/Ledger.ts): the view keeps
      // the latest of each symbol, and forgets one when it is flat.
      const s = event.snapshot
      const changed = new Map(s.positions.map((p) => [p.symbol as string, p]))
      const kept = model.positions.filter((p) => !changed.has(p.symbol))
      const updated = s.positions.filter((p) => p.quantity !== 0).map((p): Holding => ({
        symbol: p.symbol,
        quantity: p.quantity,
        averagePrice: p.averagePrice,
        markPrice: p.markPrice,
        unrealizedPnl: p.unrealizedPnl
      }))
      return {
        ...next,
        cash: s.cash,
        equity: s.equity,
        realizedPnl: s.realizedPnl,
        positions: [...kept, ...updated].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0))
      }
    }
    case "DecisionMade": {
      const d = event.decision
      return {
        ...next,
        decisions: last(model.decisions, { seq: event.seq, ts: d.ts, round: d.round, symbol: d.symbol, action: d.action, confidence: d.confidence }, model.keep)
      }
    }
    case "VerdictGiven": {
      const v = event.verdict
      return {
        ...next,
        verdicts: last(model.verdicts, {
          seq: event.seq,
          ts: v.intent.ts,
          round: v.intent.round,
          symbol: v.intent.symbol,
          side: v.intent.side,
          asked: v.intent.quantity,
          quantity: v.quantity,
          outcome: v.outcome,
          reason: v.reasons[0]
        }, model.keep)
      }
    }
    case "ApprovalRequested":
      return {
        ...next,
        pending: [
          ...model.pending.filter((p) => p.round !== event.round),
          {
            round: event.round,
            symbol: event.intent.symbol,
            side: event.intent.side,
            quantity: event.quantity,
            reasons: event.reasons,
            expires: expiryOf(event, model.mode)
          }
        ]
      }
    case "ApprovalResolved":
      return { ...next, pending: model.pending.filter((p) => p.round !== event.round) }
    case "OrderFilled":
      return { ...next, fills: model.fills + 1 }
    case "TradeClosed":
      return { ...next, trades: model.trades + 1 }
    case "TradingStateChanged":
      return { ...next, tradingState: event.transition.to }
    case "RunCompleted":
      // The metrics' final equity is the book marked at the run's end; the last snapshot is as of its last fill.
      return {
        ...next,
        status: "completed",
        metrics: event.metrics,
        checksum: event.checksum,
        pending: [],
        equity: event.metrics.finalEquity,
        initialCash: model.initialCash ?? event.metrics.initialCash
      }
    case "RunFailed":
      return { ...next, status: "failed", failure: event.reason, pending: [] }
    default:
      return next
  }
}

/** The wall-clock expiries the server gives (round → epoch ms) put on the approvals pending. */
export const withExpiries = (model: Model, expiries: ReadonlyMap<string, number>): Model =>
  model.pending.some((p) => expiries.has(p.round))
    ? {
      ...model,
      pending: model.pending.map((p) => {
        const at = expiries.get(p.round)
        return at === undefined ? p : { ...p, expires: { clock: "wall", at } }
      })
    }
    : model

/**
 * Who last took `action` on the run, and when, from its control log's latest entries (`runs.get`'s
 * `control`): `alice at 2026-12-06 03:12:04Z`, with the reason when one was given (`--reason`), or
 * when it was not their own call (`swarm at … (user bob disabled)`); undefined when the entries do
 * not say (an older server).
 */
export const lastBy = (control: ControlHistory | undefined, action: "pause" | "resume"): string | undefined => {
  const entry = control?.last.findLast((e) => e.action === action)
  return entry === undefined ? undefined : `${entry.by.name} at ${entry.at.toISOString().slice(0, 19).replace("T", " ")}Z${entry.reason === undefined ? "" : ` (${visible(entry.reason)})`}`
}

/** Whether the run has ended, as far as its events tell (a stopped run just stops sending). */
export const ended = (model: Model): boolean => model.status === "completed" || model.status === "failed" || model.status === "stopped"

/**
 * The run's status as the server tells it (`runs.get`), for what no event says: paused, resumed,
 * stopped (its pending approvals cancelled with it), or ended while the stream was away. A view
 * whose events said the run ended keeps what they said.
 */
export const withStatus = (model: Model, status: string, failure?: string | null, control?: ControlHistory): Model => {
  // An ended run stays so; said again (a run known ended from the start, replayed), its end is applied again.
  if (ended(model) && model.status !== status) return model
  switch (status) {
    case "paused":
      return { ...model, status: "paused", pausedBy: lastBy(control, "pause") }
    case "running":
      return model.status === "paused" ? { ...model, status: "running", pausedBy: undefined } : model
    case "stopped":
      return { ...model, status: "stopped", cancelled: model.pending.length, pending: [] }
    case "failed":
      return { ...model, status: "failed", failure: failure ?? model.failure, pending: [] }
    case "completed":
      return { ...model, status: "completed", pending: [] }
    default:
      return model
  }
}

// ---------------------------------------------------------------------------------------------
// Lines, one per meaningful event

const confidence = (c: number) => c.toFixed(2)

const signedMoney = (m: Money) => (m > 0 ? `+${money(m)}` : money(m))

const lifecycleLine = (event: Extract<RunEvent, { _tag: "AgentLifecycle" }>["event"]): string | undefined => {
  switch (event._tag) {
    case "ActorCrashed":
      return `agent ${event.actor} crashed: ${event.cause.split("\n")[0]}`
    case "ActorRestarted":
      return `agent ${event.actor} restarted (attempt ${event.attempt})`
    case "SupervisorEscalated":
      return `supervisor ${event.supervisor} escalated after ${event.restarts} restarts of ${event.child}: ${event.cause.split("\n")[0]}`
    default:
      // Starts and stops are the run's ordinary life: no line each.
      return undefined
  }
}

const eventText = (event: RunEvent, context: LineContext): string | undefined => {
  switch (event._tag) {
    case "RunStarted":
      // The strategy by its name, as runs list and runs show name it (the event has only its id: without the name, that).
      return `started: ${event.mode} run of ${context.strategy ?? event.strategy} v${event.strategyVersion}, seed ${event.seed}, ${event.symbols.join(" ")}`
    case "SignalReceived": {
      const s = event.signal
      return `signal ${s.source} ${s.symbol} ${s.action} @ ${price(s.price)} (alert ${s.alertId.slice(0, 16)})`
    }
    case "SignalNotApplied":
      return `signal ${event.signal.source} ${event.signal.symbol} ${event.signal.action} not applied (alert ${event.signal.alertId.slice(0, 16)}): ${event.reason}`
    case "TradingStateRequested":
      return `trading ${event.to} asked by ${event.actor}: ${event.reason}`
    case "DecisionMade": {
      const d = event.decision
      return `decision ${d.symbol} ${d.action} (confidence ${confidence(d.confidence)})`
    }
    case "VerdictGiven": {
      const v = event.verdict
      // A reduced intent's remainder, worked on a later bar: no decision of its own precedes it.
      const what = `${v.intent.symbol} ${v.intent.side} ${quantity(v.intent.quantity)}${v.intent.remainderOf === undefined ? "" : " (the rest of a reduced intent)"}`
      switch (v.outcome) {
        case "approved":
          return `verdict ${what}: approved`
        case "reduced":
          return `verdict ${what}: reduced to ${quantity(v.quantity)}: ${v.reasons[0]}`
        case "rejected":
          return `verdict ${what}: rejected: ${v.reasons[0]}`
        case "needs_approval":
          // The quantity asked about may be reduced already (a gate): the one the approval shows.
          return `verdict ${what}: ${v.quantity === v.intent.quantity ? "" : `reduced to ${quantity(v.quantity)}, `}needs approval (${v.policy}): ${v.reasons[0]}`
      }
      return undefined
    }
    case "ApprovalRequested":
      return `approval needed: round ${event.round}: ${event.intent.symbol} ${event.intent.side} ${quantity(event.quantity)} (${
        event.reasons.join("; ")
      }), ${expiryText(context.expiry ?? expiryOf(event, context.mode))}`
    case "ApprovalResolved":
      return `approval ${event.outcome}: round ${event.round}, by ${event.by}${event.reason === "" ? "" : `: ${event.reason}`}`
    case "OrderCancelled":
      return `order cancelled: ${event.symbol}: ${event.reason}`
    case "ExecutionBlocked":
      return `execution blocked: ${event.reason}`
    case "OrderFilled": {
      const f = event.fill
      return `fill ${f.symbol} ${f.side} ${quantity(f.quantity)} @ ${price(f.price)}`
    }
    case "TradeClosed": {
      const t = event.trade
      return `trade closed ${t.symbol} ${t.side} ${quantity(t.quantity)}: ${signedMoney(t.pnl)}`
    }
    case "TradingStateChanged": {
      const t = event.transition
      return `trading ${t.from} → ${t.to} (${t.cause}): ${t.reason}`
    }
    case "AgentLifecycle":
      return lifecycleLine(event.event)
    case "DeadLetterRecorded":
      return `dead letter: ${event.message} to ${event.recipient} (${event.reason})`
    case "RunCompleted": {
      const m = event.metrics
      return `completed: return ${percent(m.totalReturn, { sign: true })}, Sharpe ${ratio(m.sharpe)}, max drawdown ${percent(m.maxDrawdown)}, ${
        count(m.tradeCount)
      } trades, checksum ${event.checksum.slice(0, 12)}…`
    }
    case "RunFailed":
      return `failed: ${event.reason}`
    // Opinions, placed orders and portfolio snapshots come by the hundred: the view shows their sum.
    case "OpinionGiven":
    case "OrderPlaced":
    case "PortfolioUpdated":
      return undefined
  }
}

/** What a line needs besides its event: the run's mode, its strategy's name, and an approval's expiry when the server gave it. */
export interface LineContext {
  readonly mode?: string | undefined
  /** The name of the run's strategy (its record's), which RunStarted names; without it, the strategy's id the event has. */
  readonly strategy?: string | undefined
  readonly expiry?: Expiry | undefined
}

/** The line an event prints without a terminal, or `undefined` for events that only feed the view. */
export const line = (event: RunEvent, context: LineContext = {}): string | undefined => {
  const text = eventText(event, context)
  return text === undefined ? undefined : visible(`#${event.seq} ${time(event.at as Timestamp)} ${text}`)
}

// ---------------------------------------------------------------------------------------------
// A frame for a terminal

const cut = (text: string, width: number) => (text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text)

const columns = (rows: ReadonlyArray<ReadonlyArray<string>>, right: ReadonlyArray<boolean>): ReadonlyArray<string> => {
  const widths = rows.reduce<Array<number>>((w, row) => row.map((cell, i) => Math.max(w[i] ?? 0, cell.length)), [])
  return rows.map((row) => row.map((cell, i) => (right[i] === true ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ").trimEnd())
}

const headLines = (model: Model): Array<string> => {
  const out: Array<string> = []
  const status = model.status === "failed"
    ? `failed: ${model.failure ?? ""}`
    : model.status === "paused" && model.pausedBy !== undefined
    ? `paused by ${visible(model.pausedBy)}`
    : model.status
  out.push(`run ${model.run}${model.mode === undefined ? "" : ` (${model.mode})`}  ${status}  event #${model.seq}${model.at === undefined ? "" : `  ${time(model.at)}`}`)
  if (model.note !== undefined) out.push(model.note)
  const ret = model.equity !== undefined && model.initialCash !== undefined && model.initialCash > 0
    ? `  ${percent(model.equity / model.initialCash - 1, { sign: true })}`
    : ""
  out.push(
    `equity ${model.equity === undefined ? "—" : money(model.equity)}${ret}  cash ${model.cash === undefined ? "—" : money(model.cash)}  ` +
      `realized ${model.realizedPnl === undefined ? "—" : signedMoney(model.realizedPnl)}  fills ${count(model.fills)}  trades ${count(model.trades)}  trading ${model.tradingState}`
  )
  if (model.metrics !== undefined) {
    const m = model.metrics
    out.push(`result: return ${percent(m.totalReturn, { sign: true })}, Sharpe ${ratio(m.sharpe)}, max drawdown ${percent(m.maxDrawdown)}, checksum ${(model.checksum ?? "").slice(0, 12)}…`)
  }
  return out
}

const approvalLines = (model: Model): Array<string> => {
  const out: Array<string> = []
  if (model.pending.length === 0) {
    out.push(
      model.cancelled === 0
        ? "approvals: none pending"
        : `approvals: none pending (${count(model.cancelled)} cancelled: the run was stopped before anyone answered)`
    )
  }
  else {
    out.push(`approvals pending (swarm approvals approve|reject ${model.run} <round>)`)
    out.push(...columns(
      model.pending.map((p) => [p.round, p.symbol, `${p.side} ${quantity(p.quantity)}`, expiryText(p.expires), p.reasons.join("; ")]),
      [false, false, true, false, false]
    ).map((l) => `  ${l}`))
  }
  return out
}

const activityLines = (model: Model): Array<string> => {
  const out: Array<string> = []
  out.push(model.positions.length === 0 ? "positions: none" : "positions")
  if (model.positions.length > 0) {
    out.push(...columns(
      [["symbol", "quantity", "avg price", "mark", "unrealized"], ...model.positions.map((p) => [
        p.symbol,
        quantity(p.quantity),
        price(p.averagePrice),
        price(p.markPrice),
        signedMoney(p.unrealizedPnl)
      ])],
      [false, true, true, true, true]
    ).map((l) => `  ${l}`))
  }
  out.push("")
  out.push(model.decisions.length === 0 ? "decisions: none yet" : `last ${model.decisions.length === 1 ? "decision" : `${model.decisions.length} decisions`}`)
  out.push(...columns(
    model.decisions.map((d) => [`#${d.seq}`, time(d.ts), d.symbol, d.action, confidence(d.confidence)]),
    [true, false, false, false, true]
  ).map((l) => `  ${l}`))
  out.push(model.verdicts.length === 0 ? "verdicts: none yet" : `last ${model.verdicts.length === 1 ? "verdict" : `${model.verdicts.length} verdicts`}`)
  out.push(...columns(
    model.verdicts.map((v) => [
      `#${v.seq}`,
      time(v.ts),
      v.symbol,
      `${v.side} ${quantity(v.asked)}`,
      v.outcome === "reduced" ? `reduced to ${quantity(v.quantity)}` : v.outcome,
      v.outcome === "approved" ? "" : v.reason ?? ""
    ]),
    [true, false, false, true, false, false]
  ).map((l) => `  ${l}`))
  return out
}

/**
 * The view as lines for a terminal `width` columns wide and at most `height` lines high: a header,
 * the account, the approvals pending (first, as what an operator must act on), then positions,
 * decisions and verdicts. What does not fit is cut from the end, and the cut is said in the last
 * line; the header, the account and the approvals go first. Pure, so what the terminal shows is
 * tested as text.
 */
export const frame = (model: Model, width = 100, height = Infinity): ReadonlyArray<string> => {
  const all = [...headLines(model), "", ...approvalLines(model), "", ...activityLines(model)]
  const lines = all.length <= height ? all : [...all.slice(0, Math.max(0, height - 1)), `… ${count(all.length - Math.max(0, height - 1))} more lines: a taller terminal shows them`]
  // What the server sent (a rule's name in a verdict, an alert's reason) as a terminal should show it.
  return lines.map((l) => cut(visible(l), width))
}
