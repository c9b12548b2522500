/**
 * What `swarm runs watch` shows of a run, as a pure fold over its events: equity and cash, open
 * positions, the last decisions and verdicts, the approvals waiting for an operator, and how the
 * run ended. `step` folds one event in; `frame` draws the model for a terminal (redrawn in place);
 * `line` is the one line an event prints when the output is no terminal (a pipe, a log, a test).
 */
import type { Timestamp } from "../../schemas/Ids.js"
import type { Metrics } from "../../schemas/Metrics.js"
import type { Money } from "../../schemas/Money.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { count, money, percent, price, quantity, ratio, time } from "./Summary.js"

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

export interface PendingSeen {
  readonly round: string
  readonly symbol: string
  readonly side: string
  readonly quantity: number
  readonly reasons: ReadonlyArray<string>
  readonly expiresAt: number
}

export type Status = "starting" | "running" | "completed" | "failed"

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
  failure: undefined
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
            expiresAt: event.expiresAt
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

/** Whether the run has ended, as far as its events tell (a stopped run just stops sending). */
export const ended = (model: Model): boolean => model.status === "completed" || model.status === "failed"

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

const eventText = (event: RunEvent): string | undefined => {
  switch (event._tag) {
    case "RunStarted":
      return `started: ${event.mode} run of ${event.strategy} v${event.strategyVersion}, seed ${event.seed}, ${event.symbols.join(" ")}`
    case "SignalReceived": {
      const s = event.signal
      return `signal ${s.source} ${s.symbol} ${s.action} @ ${price(s.price)} (alert ${s.alertId.slice(0, 16)})`
    }
    case "SignalNotApplied":
      return `signal ${event.signal.source} ${event.signal.symbol} ${event.signal.action} not applied (alert ${event.signal.alertId.slice(0, 16)}): ${event.reason}`
    case "DecisionMade": {
      const d = event.decision
      return `decision ${d.symbol} ${d.action} (confidence ${confidence(d.confidence)})`
    }
    case "VerdictGiven": {
      const v = event.verdict
      const what = `${v.intent.symbol} ${v.intent.side} ${quantity(v.intent.quantity)}`
      switch (v.outcome) {
        case "approved":
          return `verdict ${what}: approved`
        case "reduced":
          return `verdict ${what}: reduced to ${quantity(v.quantity)}: ${v.reasons[0]}`
        case "rejected":
          return `verdict ${what}: rejected: ${v.reasons[0]}`
        case "needs_approval":
          return `verdict ${what}: needs approval (${v.policy}): ${v.reasons[0]}`
      }
      return undefined
    }
    case "ApprovalRequested":
      return `approval needed: round ${event.round}: ${event.intent.symbol} ${event.intent.side} ${quantity(event.quantity)} (${
        event.reasons.join("; ")
      }), expires ${time(event.expiresAt)}`
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

/** The line an event prints without a terminal, or `undefined` for events that only feed the view. */
export const line = (event: RunEvent): string | undefined => {
  const text = eventText(event)
  return text === undefined ? undefined : `#${event.seq} ${time(event.at as Timestamp)} ${text}`
}

// ---------------------------------------------------------------------------------------------
// A frame for a terminal

const cut = (text: string, width: number) => (text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text)

const columns = (rows: ReadonlyArray<ReadonlyArray<string>>, right: ReadonlyArray<boolean>): ReadonlyArray<string> => {
  const widths = rows.reduce<Array<number>>((w, row) => row.map((cell, i) => Math.max(w[i] ?? 0, cell.length)), [])
  return rows.map((row) => row.map((cell, i) => (right[i] === true ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ").trimEnd())
}

/**
 * The view as lines for a terminal `width` columns wide: a header, the account, positions,
 * decisions, verdicts and pending approvals. Pure, so what the terminal shows is tested as text.
 */
export const frame = (model: Model, width = 100): ReadonlyArray<string> => {
  const out: Array<string> = []
  const status = model.status === "failed" ? `failed: ${model.failure ?? ""}` : model.status
  out.push(`run ${model.run}${model.mode === undefined ? "" : ` (${model.mode})`}  ${status}  event #${model.seq}${model.at === undefined ? "" : `  ${time(model.at)}`}`)
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
  out.push("")
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
  out.push("")
  if (model.pending.length === 0) out.push("approvals: none pending")
  else {
    out.push(`approvals pending (swarm approvals approve|reject ${model.run} <round>)`)
    out.push(...columns(
      model.pending.map((p) => [p.round, p.symbol, `${p.side} ${quantity(p.quantity)}`, `expires ${time(p.expiresAt)}`, p.reasons.join("; ")]),
      [false, false, true, false, false]
    ).map((l) => `  ${l}`))
  }
  return out.map((l) => cut(l, width))
}
