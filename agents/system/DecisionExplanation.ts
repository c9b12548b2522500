/**
 * The system agent's `explain_decision` tool, pure: everything a run's events say about one round —
 * the analysts' opinions and the LLM agents' reasoning behind them, the coordinator's decision, the risk officer's verdict with every rule and
 * gate, the approval asked and its answer, the order, its fills and the trades they opened or closed.
 * A round (or order) with no events is a tagged "not found" result, not a throw.
 */
import type { Abstention, Action, Vote } from "../../schemas/Decision.js"
import type { AgentId, FillId, OrderId, RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import type { Direction } from "../../schemas/Opinion.js"
import type { IntentReason, Side } from "../../schemas/Order.js"
import type { TradingState } from "../../schemas/Risk.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import type { Trade } from "../../schemas/Trade.js"
import type { GateOutcome, RuleOutcome, VerdictOutcome } from "../../schemas/Verdict.js"
import * as Format from "./internal/Format.js"

// ---------------------------------------------------------------------------------------------
// Result

export interface OpinionView {
  readonly agent: AgentId
  readonly direction: Direction
  readonly confidence: number
  readonly horizon: number
  readonly rationale: string
  readonly features: { readonly [name: string]: number }
}

/** An LLM agent's reasoning in the round (`ReasoningRecorded`), without the brief it saw. */
export interface ReasoningView {
  readonly agent: AgentId
  readonly kind: "plan" | "analysis" | "decision" | "reflection"
  /** Who in the agent reasoned: `bull`, `bear`, `judge`, `analyst`. */
  readonly role: string
  /** At most `REASONING_TEXT` characters: the whole is in the run's events. */
  readonly text: string
}

/** The most of one reasoning entry's text an explanation carries (a model reads it back in the chat). */
export const REASONING_TEXT = 1_000

export interface DecisionView {
  readonly action: Action
  /** The aggregated confidence: winner's score ÷ voting weight. */
  readonly confidence: number
  readonly quorumMet: boolean
  readonly participation: number
  readonly disagreement: number
  readonly votes: ReadonlyArray<Vote>
  /** Voters whose direction differs from the action. */
  readonly dissent: ReadonlyArray<AgentId>
  readonly abstentions: ReadonlyArray<Abstention>
}

export interface VerdictView {
  readonly outcome: VerdictOutcome
  readonly side: Side
  /** What the intent did to the position (`open`, `increase`, `reduce`, `close`, `reverse`). */
  readonly intent: IntentReason
  /** The quantity sizing asked for and the quantity the verdict let through (0 when rejected). */
  readonly requestedQuantity: number
  readonly quantity: number
  readonly currentQuantity: number
  readonly targetQuantity: number
  /** The round whose decision set the target, when the intent is what an earlier reduced one left (worked on a later bar). */
  readonly remainderOf: RoundId | null
  readonly referencePrice: number
  readonly state: TradingState
  readonly reasons: ReadonlyArray<string>
  /** What a run without a human does with it (`needs_approval` only). */
  readonly policy: string | null
  /** Every rule in priority order (skipped ones included) and every gate in evaluation order. */
  readonly rules: ReadonlyArray<RuleOutcome>
  readonly gates: ReadonlyArray<GateOutcome>
}

export interface ApprovalView {
  readonly requestedAt: Timestamp
  readonly quantity: number
  readonly reasons: ReadonlyArray<string>
  readonly expiresAt: Timestamp
  /** Null while nobody has decided. */
  readonly resolution: {
    readonly outcome: "approved" | "rejected" | "expired"
    readonly by: string
    readonly reason: string
    readonly at: Timestamp
  } | null
}

export interface FillView {
  readonly id: FillId
  readonly quantity: number
  readonly price: number
  readonly marketPrice: number
  readonly slippageBps: number
  readonly notional: Money
  readonly commission: Money
  readonly ts: Timestamp
}

export interface OrderView {
  readonly id: OrderId
  readonly side: Side
  readonly quantity: number
  readonly placedAt: Timestamp
  readonly fillTiming: string
  readonly fills: ReadonlyArray<FillView>
  readonly filledQuantity: number
  readonly cancelled: { readonly reason: string; readonly at: Timestamp } | null
}

/** A closed trade one of the round's fills opened or closed (matched by symbol and fill time). */
export interface TradeLink {
  readonly role: "opened" | "closed"
  readonly trade: Trade
}

export interface RoundFound {
  readonly _tag: "RoundFound"
  readonly round: RoundId
  readonly symbol: Symbol | null
  /** The bar the round decided on. */
  readonly ts: Timestamp | null
  readonly opinions: ReadonlyArray<OpinionView>
  /** The LLM agents' reasoning in the round, in the order it was recorded. */
  readonly reasoning: ReadonlyArray<ReasoningView>
  readonly decision: DecisionView | null
  readonly verdict: VerdictView | null
  readonly approval: ApprovalView | null
  readonly orders: ReadonlyArray<OrderView>
  /** The round reached no verdict because nothing could judge it (the risk officer was down). */
  readonly blocked: ReadonlyArray<{ readonly reason: string; readonly at: Timestamp }>
  readonly trades: ReadonlyArray<TradeLink>
}

/** A recorded round near the one asked for, to offer instead. */
export interface NearbyRound {
  readonly round: RoundId
  readonly ts: Timestamp
  readonly action: Action
}

export interface RoundNotFound {
  readonly _tag: "RoundNotFound"
  readonly round: string
  readonly reason: string
  /** Up to three recorded rounds of the same symbol, nearest in time first. */
  readonly nearby: ReadonlyArray<NearbyRound>
}

export interface OrderNotFound {
  readonly _tag: "OrderNotFound"
  readonly order: string
  readonly reason: string
}

/** The most recent decision or order was asked for (`last`), and the run has none (of that symbol, side) yet. */
export interface NoneYet {
  readonly _tag: "NoneYet"
  readonly last: "decision" | "order" | "rejection"
  readonly symbol: string | null
  readonly side: Side | null
  readonly reason: string
}

export type RoundExplanation = RoundFound | RoundNotFound
export type OrderExplanation = RoundFound | RoundNotFound | OrderNotFound | NoneYet

// ---------------------------------------------------------------------------------------------
// Explaining

/** Why a round can be missing: by default a run records only the rounds that changed a target. */
const UNRECORDED = "By default a run records only the rounds whose decision changed a target (event detail \"decisions\"); " +
  "a run started with --events rounds records every round."

const SYMBOL = /^[A-Za-z0-9^][A-Za-z0-9.\-_:/^=]{0,31}$/

/** `<symbol>@<bar time ms>`, as the coordinator names rounds. */
const parseRound = (round: string): { readonly symbol: string; readonly ts: number | null } | null => {
  const at = round.lastIndexOf("@")
  if (at <= 0) return null
  const ts = /^-?\d{1,16}$/.test(round.slice(at + 1)) ? Number(round.slice(at + 1)) : null
  return { symbol: round.slice(0, at), ts }
}

const shown = (text: string): string => JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text)

const nearbyRounds = (events: ReadonlyArray<RunEvent>, round: string): ReadonlyArray<NearbyRound> => {
  const parsed = parseRound(round)
  if (parsed === null) return []
  const target = parsed.ts
  const found: Array<NearbyRound> = []
  for (const e of events) {
    if (e._tag === "DecisionMade" && e.decision.symbol === parsed.symbol) {
      found.push({ round: e.decision.round, ts: e.decision.ts, action: e.decision.action })
    }
  }
  const distance = (r: NearbyRound) => (target === null ? 0 : Math.abs(r.ts - target))
  return found.sort((a, b) => distance(a) - distance(b) || a.ts - b.ts).slice(0, 3)
}

/** Everything the events say about `round`, or `RoundNotFound` (with recorded rounds nearby) when they say nothing. */
export const explainRound = (events: ReadonlyArray<RunEvent>, round: string): RoundExplanation => {
  const opinions: Array<OpinionView> = []
  const reasoning: Array<ReasoningView> = []
  let decision: DecisionView | null = null
  let symbol: Symbol | null = null
  let ts: Timestamp | null = null
  let verdict: VerdictView | null = null
  let approval: { -readonly [K in keyof ApprovalView]: ApprovalView[K] } | null = null
  const orders = new Map<string, OrderView & { fills: Array<FillView>; filledQuantity: number; cancelled: OrderView["cancelled"] }>()
  const blocked: Array<{ reason: string; at: Timestamp }> = []
  const closed: Array<Trade> = []

  for (const e of events) {
    switch (e._tag) {
      case "OpinionGiven":
        if (e.opinion.round === round) {
          const o = e.opinion
          opinions.push({
            agent: o.agent,
            direction: o.direction,
            confidence: o.confidence,
            horizon: o.horizon,
            rationale: o.rationale,
            features: o.features
          })
          symbol ??= o.symbol
          ts ??= o.ts
        }
        break
      case "DecisionMade":
        // A round has one decision; should a log hold two, the first stands, as it did in the run.
        if (e.decision.round === round && decision === null) {
          const d = e.decision
          decision = {
            action: d.action,
            confidence: d.confidence,
            quorumMet: d.quorumMet,
            participation: d.participation,
            disagreement: d.disagreement,
            votes: d.votes,
            dissent: d.dissent,
            abstentions: d.abstentions
          }
          symbol = d.symbol
          ts = d.ts
        }
        break
      case "VerdictGiven":
        if (e.verdict.intent.round === round && verdict === null) {
          const v = e.verdict
          verdict = {
            outcome: v.outcome,
            side: v.intent.side,
            intent: v.intent.reason,
            requestedQuantity: v.intent.quantity,
            quantity: v.quantity,
            currentQuantity: v.intent.currentQuantity,
            targetQuantity: v.intent.targetQuantity,
            remainderOf: v.intent.remainderOf ?? null,
            referencePrice: v.intent.referencePrice,
            state: v.state,
            reasons: v.reasons,
            policy: v.outcome === "needs_approval" ? v.policy : null,
            rules: v.rules,
            gates: v.gates
          }
          symbol ??= v.intent.symbol
          ts ??= v.intent.ts
        }
        break
      case "ApprovalRequested":
        if (e.round === round) {
          approval = { requestedAt: e.at, quantity: e.quantity, reasons: e.reasons, expiresAt: e.expiresAt, resolution: null }
          symbol ??= e.intent.symbol
          ts ??= e.intent.ts
        }
        break
      case "ApprovalResolved":
        if (e.round === round && approval !== null) {
          approval.resolution = { outcome: e.outcome, by: e.by, reason: e.reason, at: e.at }
        }
        break
      case "OrderPlaced":
        if (e.order.round === round && !orders.has(e.order.id)) {
          const o = e.order
          orders.set(o.id, {
            id: o.id,
            side: o.side,
            quantity: o.quantity,
            placedAt: e.at,
            fillTiming: o.fillTiming,
            fills: [],
            filledQuantity: 0,
            cancelled: null
          })
          symbol ??= o.symbol
          ts ??= o.decidedAt
        }
        break
      case "OrderFilled": {
        const order = orders.get(e.fill.orderId)
        if (order !== undefined) {
          const f = e.fill
          order.fills.push({
            id: f.id,
            quantity: f.quantity,
            price: f.price,
            marketPrice: f.marketPrice,
            slippageBps: f.slippageBps,
            notional: f.notional,
            commission: f.commission,
            ts: f.ts
          })
          order.filledQuantity += f.quantity
        }
        break
      }
      case "OrderCancelled": {
        const order = orders.get(e.order)
        if (order !== undefined) order.cancelled = { reason: e.reason, at: e.at }
        break
      }
      case "ExecutionBlocked":
        if (e.rounds.includes(round as RoundId)) blocked.push({ reason: e.reason, at: e.at })
        break
      case "TradeClosed":
        closed.push(e.trade)
        break
      case "ReasoningRecorded":
        if (e.round === round) {
          const text = e.text.length > REASONING_TEXT ? `${e.text.slice(0, REASONING_TEXT - 1)}…` : e.text
          reasoning.push({ agent: e.agent, kind: e.kind, role: e.role, text })
        }
        break
      default:
        break
    }
  }

  const found = opinions.length > 0 || decision !== null || verdict !== null || approval !== null || orders.size > 0 ||
    blocked.length > 0 || reasoning.length > 0
  if (!found) {
    const nearby = nearbyRounds(events, round)
    return {
      _tag: "RoundNotFound",
      round,
      reason: `No events are recorded for round ${shown(round)}. ${UNRECORDED}${
        nearby.length > 0 ? ` Recorded rounds nearby: ${nearby.map((n) => n.round).join(", ")}.` : ""
      }`,
      nearby
    }
  }

  // A round only an ExecutionBlocked event mentions still has its symbol and bar time in its id.
  const parsed = parseRound(round)
  if (parsed !== null && SYMBOL.test(parsed.symbol)) {
    symbol ??= parsed.symbol as Symbol
    if (parsed.ts !== null) ts ??= parsed.ts as Timestamp
  }

  const fills = Array.from(orders.values()).flatMap((o) => o.fills)
  const trades: Array<TradeLink> = []
  for (const trade of closed) {
    if (symbol === null || trade.symbol !== symbol) continue
    if (fills.some((f) => f.ts === trade.entryTs)) trades.push({ role: "opened", trade })
    if (fills.some((f) => f.ts === trade.exitTs)) trades.push({ role: "closed", trade })
  }

  return {
    _tag: "RoundFound",
    round: round as RoundId,
    symbol,
    ts,
    opinions,
    reasoning,
    decision,
    verdict,
    approval,
    orders: Array.from(orders.values()),
    blocked,
    trades
  }
}

/** What `last` found nothing for: no decision recorded, no order placed, no intent rejected, of `symbol` and `side` when given. */
export const noneYet = (last: NoneYet["last"], symbol?: string, side?: Side): NoneYet => {
  const of = symbol === undefined ? "" : ` for ${shown(symbol)}`
  return {
    _tag: "NoneYet",
    last,
    symbol: symbol ?? null,
    side: side ?? null,
    reason: last === "order"
      ? `The run has placed no ${side === undefined ? "" : `${side} `}order${of} yet.`
      : last === "rejection"
      ? `The risk officer has rejected no intent${of} in this run yet.`
      : `The run has recorded no decision${of} yet. ${UNRECORDED}`
  }
}

/** The round that placed order `order`, explained; `OrderNotFound` when no such order was placed. */
export const explainOrder = (events: ReadonlyArray<RunEvent>, order: string): OrderExplanation => {
  for (const e of events) {
    if (e._tag === "OrderPlaced" && e.order.id === order) return explainRound(events, e.order.round)
  }
  return {
    _tag: "OrderNotFound",
    order,
    reason: `No order ${shown(order)} was placed in this run (order ids are the rounds that placed them, e.g. AAPL@1709301600000).`
  }
}

// ---------------------------------------------------------------------------------------------
// Sentences

const verb: { readonly [K in Side]: string } = { buy: "buy", sell: "sell" }

const opinionText = (o: OpinionView): string =>
  `${o.agent} said ${o.direction} at ${Format.decimal(o.confidence)}${o.rationale.trim() === "" ? "" : ` (${Format.quote(o.rationale)})`}`

const reasoningText = (r: ReasoningView): string => `${r.agent}'s ${r.role} (${r.kind}): ${Format.quote(r.text)}`

const abstentionText = (a: Abstention): string =>
  `${a.agent} (${a.reason === "no_answer" ? "no opinion: none given, or none in time" : a.reason === "failed" ? "failed" : "below the minimum confidence"})`

const decisionText = (d: DecisionView): string => {
  const parts = [
    `The coordinator decided ${d.action} with confidence ${Format.decimal(d.confidence)} (${
      d.quorumMet ? "quorum met" : "quorum not met"
    }, participation ${Format.percent(d.participation)})`
  ]
  if (d.dissent.length > 0) {
    parts.push(`${Format.list(d.dissent)} dissented (disagreement ${Format.percent(d.disagreement)})`)
  }
  if (d.abstentions.length > 0) parts.push(`${Format.list(d.abstentions.map(abstentionText))} abstained`)
  return `${parts.join("; ")}.`
}

const verdictText = (v: VerdictView): string => {
  const what = `${verb[v.side]} of ${Format.decimal(v.requestedQuantity, 6)}${
    v.remainderOf === null ? "" : ` (what was left of the target decided in round ${v.remainderOf})`
  }`
  const head = v.outcome === "approved"
    ? `The risk officer approved the ${what}`
    : v.outcome === "reduced"
    ? `The risk officer reduced the ${what} to ${Format.decimal(v.quantity, 6)}`
    : v.outcome === "rejected"
    ? `The risk officer rejected the ${what}`
    : `The risk officer asked a human to approve the ${what} (${Format.decimal(v.quantity, 6)} if approved; without one the policy is ${v.policy})`
  const acted = [
    ...v.rules.filter((r) => r.result === "reduce" || r.result === "reject").map((r) =>
      `rule ${r.name} (${r.rule}) ${r.result === "reduce" ? "reduced" : "rejected"} it: ${r.reason}`
    ),
    ...v.gates.filter((g) => g.result !== "pass").map((g) =>
      `gate ${g.gate} ${g.result === "reduce" ? "reduced" : "rejected"} it: ${g.reason}`
    )
  ]
  const passed = v.rules.filter((r) => r.result === "pass").length + v.gates.filter((g) => g.result === "pass").length
  const skipped = v.rules.filter((r) => r.result === "skipped").length
  const rest = `${Format.count(passed, "other check")} passed${skipped > 0 ? `, ${Format.count(skipped, "rule")} did not apply` : ""}`
  const stateNote = v.state === "active" ? "" : ` Trading was ${v.state}.`
  if (acted.length === 0 && v.outcome !== "approved") {
    return `${head}: ${v.reasons.join("; ")}; ${rest}.${stateNote}`
  }
  return `${head}${acted.length > 0 ? `: ${acted.join("; ")}` : ""}; ${rest}.${stateNote}`
}

const approvalText = (a: ApprovalView): string => {
  const asked = `Approval was requested for ${Format.decimal(a.quantity, 6)} (${a.reasons.join("; ")})`
  if (a.resolution === null) return `${asked} and is still open (it expires ${Format.time(a.expiresAt)}).`
  const r = a.resolution
  return `${asked}; it was ${r.outcome} by ${r.by}${r.reason.trim() === "" ? "" : ` (${Format.quote(r.reason)})`}.`
}

const orderText = (o: OrderView): string => {
  const placed = `Order ${o.id} to ${verb[o.side]} ${Format.decimal(o.quantity, 6)} was placed ${Format.time(o.placedAt)}`
  const fills = o.fills.length === 0
    ? o.cancelled === null ? "; it has not filled" : ""
    : `; it filled ${o.fills.map((f) => `${Format.decimal(f.quantity, 6)} at ${Format.decimal(f.price, 6)} on ${Format.time(f.ts)} (commission ${Format.money(f.commission)})`).join(", ")}`
  const cancelled = o.cancelled === null ? "" : `; it was cancelled: ${o.cancelled.reason}`
  return `${placed}${fills}${cancelled}.`
}

/** A few plain sentences for an operator, for when no model phrases the result. */
export const describeRound = (result: OrderExplanation): string => {
  if (result._tag !== "RoundFound") return result.reason
  const sentences: Array<string> = []
  const where = [result.symbol, result.ts === null ? null : `bar of ${Format.time(result.ts)}`].filter((x) => x !== null)
  sentences.push(`Round ${result.round}${where.length > 0 ? ` (${where.join(", ")})` : ""}.`)
  if (result.opinions.length > 0) {
    sentences.push(`${Format.count(result.opinions.length, "analyst")} gave an opinion: ${result.opinions.map(opinionText).join("; ")}.`)
  } else if (result.decision !== null) {
    sentences.push("No opinion is recorded for it.")
  }
  if (result.reasoning.length > 0) sentences.push(`The LLM agents reasoned: ${result.reasoning.map(reasoningText).join("; ")}.`)
  if (result.decision !== null) sentences.push(decisionText(result.decision))
  if (result.verdict !== null) sentences.push(verdictText(result.verdict))
  else if (result.decision !== null && result.blocked.length === 0 && result.orders.length === 0) {
    sentences.push("No verdict is recorded: the decision asked for no order (it kept the target, or sizing found nothing to change).")
  }
  for (const b of result.blocked) sentences.push(`Execution was blocked ${Format.time(b.at)}: ${b.reason}.`)
  if (result.approval !== null) sentences.push(approvalText(result.approval))
  for (const o of result.orders) sentences.push(orderText(o))
  for (const t of result.trades) {
    sentences.push(
      t.role === "opened"
        ? `It opened a ${t.trade.side} trade that closed ${Format.time(t.trade.exitTs)} with P&L ${Format.pnl(t.trade.pnl)}.`
        : `It closed a ${t.trade.side} trade opened ${Format.time(t.trade.entryTs)}, with P&L ${Format.pnl(t.trade.pnl)}.`
    )
  }
  return sentences.join(" ")
}
