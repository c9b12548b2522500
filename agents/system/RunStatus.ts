/**
 * The system agent's `run_status` tool, pure: where a run stands now — its status, its trading state
 * with the last change of it (who or what made it, and why), and its book as of its last recorded
 * event (cash, equity, exposure, P&L, each open position with its mark) — and the plain sentences
 * an operator reads when no model phrases it. An operator chatting about a live run asks "how are we
 * doing?" and "why are we halted?" before anything else; the other tools look back over trades,
 * metrics and rounds, this one at now.
 */
import type { LatestValues } from "../../schemas/Portfolio.js"
import type { StateTransition } from "../../schemas/Risk.js"
import type { AgentRestarts, LlmUsage } from "../../schemas/Rpc.js"
import * as Format from "./internal/Format.js"

export interface PositionView {
  readonly symbol: string
  readonly side: "long" | "short"
  /** Units held (positive, short or long). */
  readonly quantity: number
  readonly averagePrice: number
  readonly markPrice: number
  /** Micros; negative for a short. */
  readonly marketValue: number
  readonly unrealizedPnl: number
  readonly realizedPnl: number
}

/** What the run has done so far (of one symbol, when one was asked about), from its recorded rows. */
export interface Activity {
  /** Rounds with a recorded decision (the run's event detail says which: those that changed a target, or all). */
  readonly decisions: number
  /** The risk officer's verdicts, by outcome. */
  readonly approved: number
  readonly reduced: number
  readonly rejected: number
  readonly orders: number
  readonly fills: number
  /** Intents waiting for an operator's approval now. */
  readonly pendingApprovals: number
}

export interface RunStatusView {
  readonly status: string
  readonly mode: string
  /** Why it failed, for a failed run. */
  readonly failure: string | null
  /** As its row says it (null: a run recorded before rows said it while running, or with nothing recorded yet). */
  readonly tradingState: string | null
  /** The last change of the trading state, when it is not `active` (the change that put it there). */
  readonly lastChange: StateTransition | null
  /** The cash it started with (micros), when known. */
  readonly initialCash: number | null
  /** The bar time and event its book is as of; null before its first fill. */
  readonly asOf: { readonly ts: number; readonly seq: number } | null
  /** Micros; null before its first fill (its book is then its starting cash). */
  readonly book: {
    readonly cash: number
    readonly equity: number
    readonly grossExposure: number
    readonly netExposure: number
    readonly realizedPnl: number
    readonly unrealizedPnl: number
  } | null
  /** The open positions (of `symbol` only, when asked), largest market value first. */
  readonly positions: ReadonlyArray<PositionView>
  /** The symbol asked about, if one was. */
  readonly symbol: string | null
  /** Its agents that crashed (an analyst, the risk officer…), those restarted most first: is anything broken. */
  readonly crashed: ReadonlyArray<{ readonly agent: string; readonly crashes: number; readonly restarts: number; readonly lastCause: string | null }>
  /** What it has done so far; null when not read. */
  readonly activity: Activity | null
  /** What its LLM agents used of their model and budget; null for a run without LLM agents. */
  readonly llm: LlmUsage | null
}

/** The view of a run's record and latest values (`symbol`: only its position). */
export const runStatusView = (
  input: Pick<RunStatusView, "status" | "mode" | "failure" | "tradingState" | "lastChange" | "initialCash"> & {
    readonly latest: LatestValues | undefined
    readonly agentRestarts?: ReadonlyArray<AgentRestarts>
    readonly activity?: Activity
    readonly llm?: LlmUsage | null
    readonly symbol?: string
  }
): RunStatusView => {
  const portfolio = input.latest?.portfolio
  const wanted = input.symbol?.toUpperCase()
  const positions = (portfolio?.positions ?? [])
    .filter((p) => p.quantity !== 0 && (wanted === undefined || p.symbol.toUpperCase() === wanted))
    .map((p): PositionView => ({
      symbol: p.symbol,
      side: p.quantity > 0 ? "long" : "short",
      quantity: Math.abs(p.quantity),
      averagePrice: p.averagePrice,
      markPrice: p.markPrice,
      marketValue: p.marketValue,
      unrealizedPnl: p.unrealizedPnl,
      realizedPnl: p.realizedPnl
    }))
    .sort((a, b) => Math.abs(b.marketValue) - Math.abs(a.marketValue) || (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0))
  return {
    status: input.status,
    mode: input.mode,
    failure: input.failure,
    tradingState: input.tradingState,
    lastChange: input.tradingState === null || input.tradingState === "active" ? null : input.lastChange,
    initialCash: input.initialCash,
    asOf: portfolio === undefined || input.latest === undefined ? null : { ts: portfolio.ts, seq: input.latest.seq },
    book: portfolio === undefined
      ? null
      : {
        cash: portfolio.cash,
        equity: portfolio.equity,
        grossExposure: portfolio.grossExposure,
        netExposure: portfolio.netExposure,
        realizedPnl: portfolio.realizedPnl,
        unrealizedPnl: portfolio.unrealizedPnl
      },
    positions,
    symbol: input.symbol ?? null,
    crashed: (input.agentRestarts ?? []).filter((a) => a.crashes > 0).map((a) => ({
      agent: a.type === null ? a.agent : `${a.agent} (${a.type})`,
      crashes: a.crashes,
      restarts: a.restarts,
      lastCause: a.lastCause
    })),
    activity: input.activity ?? null,
    llm: input.llm ?? null
  }
}

const CAUSES: { readonly [cause: string]: string } = {
  daily_loss_breaker: "the daily loss breaker",
  drawdown_halt: "the maximum drawdown halt",
  new_trading_day: "a new trading day",
  operator: "an operator",
  system: "the system"
}

const changeText = (change: StateTransition): string => {
  const who = change.cause === "operator" && change.actor !== null ? `operator ${change.actor}` : CAUSES[change.cause] ?? change.cause
  return `${who} moved it from ${change.from} to ${change.to} at ${Format.time(change.at)} (${Format.quote(change.reason)})`
}

const positionText = (p: PositionView): string =>
  `${p.symbol} ${p.side} ${Format.decimal(p.quantity, 6)} at ${Format.decimal(p.averagePrice, 6)} (mark ${Format.decimal(p.markPrice, 6)}, ` +
  `value ${Format.money(p.marketValue)}, unrealized ${Format.pnl(p.unrealizedPnl)})`

/** At most this many positions are named in the sentences (the result has them all). */
const POSITIONS_SHOWN = 10

/** A few plain sentences for an operator, for when no model phrases the result. */
export const describeRunStatus = (view: RunStatusView): string => {
  const sentences: Array<string> = []
  const live = view.status === "running" || view.status === "paused"
  const state = view.tradingState === null ? "" : `, trading ${view.tradingState}`
  sentences.push(`The run is ${view.status} (${view.mode})${view.failure === null ? "" : `: ${view.failure}`}${state}.`)
  if (view.lastChange !== null) sentences.push(`Its trading is ${view.lastChange.to}: ${changeText(view.lastChange)}.`)
  if (view.crashed.length > 0) {
    const crash = (a: RunStatusView["crashed"][number]) =>
      `${a.agent} ${Format.count(a.crashes, "time")}, restarted ${Format.count(a.restarts, "time")}${a.lastCause === null ? "" : `, last ${Format.quote(a.lastCause, 120)}`}`
    sentences.push(`Agents that crashed: ${view.crashed.map(crash).join("; ")}.`)
  }
  if (view.book === null || view.asOf === null) {
    if (view.activity !== null && view.activity.decisions > 0) sentences.push(activityText(view.activity, view.symbol, live))
    sentences.push(
      `It has no fill yet${live ? "" : " in its whole run"}: its book is its starting cash` +
        `${view.initialCash === null ? "" : ` (${Format.money(view.initialCash)})`}.`
    )
    if (view.llm !== null && view.symbol === null) sentences.push(llmText(view.llm, live))
    return sentences.join(" ")
  }
  const b = view.book
  const growth = view.initialCash === null || view.initialCash === 0 ? "" : `, ${Format.pnl(b.equity - view.initialCash)} (${signedPercent(b.equity / view.initialCash - 1)}) since its start`
  sentences.push(
    `${live ? "As of" : "At its end, as of"} the bar of ${Format.time(view.asOf.ts)}: equity ${Format.money(b.equity)}${growth}; cash ${Format.money(b.cash)}; ` +
      `realized P&L ${Format.pnl(b.realizedPnl)}, unrealized ${Format.pnl(b.unrealizedPnl)}; gross exposure ${Format.money(b.grossExposure)}.`
  )
  if (view.activity !== null) sentences.push(activityText(view.activity, view.symbol, live))
  const shown = view.positions.slice(0, POSITIONS_SHOWN)
  if (view.symbol !== null && view.positions.length === 0) sentences.push(`No open position in ${view.symbol}.`)
  else if (view.positions.length === 0) sentences.push("No open position.")
  else {
    sentences.push(
      `${Format.count(view.positions.length, "open position")}: ${shown.map(positionText).join("; ")}` +
        `${view.positions.length > shown.length ? `; and ${view.positions.length - shown.length} more` : ""}.`
    )
  }
  if (view.llm !== null && view.symbol === null) sentences.push(llmText(view.llm, live))
  return sentences.join(" ")
}

/** "So far: 144 decisions; the risk officer approved 120 intents, reduced 3 and rejected 21; 123 orders placed, 120 filled; 1 approval pending." */
const activityText = (a: Activity, symbol: string | null, live: boolean): string => {
  const judged = a.approved + a.reduced + a.rejected
  const verdicts = judged === 0
    ? "no intent went to the risk officer"
    : `the risk officer approved ${Format.count(a.approved, "intent")}, reduced ${a.reduced} and rejected ${a.rejected}`
  const pending = a.pendingApprovals === 0 ? "" : `; ${Format.count(a.pendingApprovals, "approval")} pending (swarm approvals list)`
  return `${live ? "So far" : "In all"}${symbol === null ? "" : ` on ${symbol}`}: ${Format.count(a.decisions, "decision")}; ${verdicts}; ` +
    `${Format.count(a.orders, "order")} placed, ${a.fills === 1 ? "1 fill" : `${a.fills} fills`}${pending}.`
}

/** "Its LLM agents (ollama llama3.2:3b): 2,170 calls, 1,500 from the cache …; 120,000 tokens of the 1,000,000 its budget allows (12%)." */
const llmText = (u: LlmUsage, live: boolean): string => {
  const parts = [
    u.cacheHits > 0 ? `${Format.integer(u.cacheHits)} answered from the cache` : "",
    u.failed > 0 ? `${Format.integer(u.failed)} failed (the agent abstained)` : "",
    u.refused > 0 ? `${Format.integer(u.refused)} refused by the budget` : ""
  ].filter((p) => p !== "")
  const b = u.budget
  const cost = b.maxCost === null ? (b.cost > 0 ? `, cost ${Format.decimal(b.cost, 4)}` : "") : `, cost ${Format.decimal(b.cost, 4)} of ${Format.decimal(b.maxCost, 4)}`
  const share = b.maxTokens > 0 ? ` (${Format.percent(b.tokens / b.maxTokens)})` : ""
  const spent = b.exhausted
    ? ` Its budget is spent: its LLM agents abstain${live ? " from now on" : "ed once it was"}, and the consensus goes on without them.`
    : ""
  return `Its LLM agents (${u.backend} ${u.model}: ${u.description}) made ${Format.integer(u.calls)} model call${u.calls === 1 ? "" : "s"}` +
    `${parts.length === 0 ? "" : ` (${Format.list(parts)})`}, using ${Format.integer(b.tokens)} tokens of the ` +
    `${Format.integer(b.maxTokens)} its budget allows${share}${cost}.${spent}`
}

const signedPercent = (fraction: number): string => (fraction > 0 ? `+${Format.percent(fraction)}` : Format.percent(fraction))
