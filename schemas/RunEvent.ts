/**
 * Everything a run does, as one tagged union: what dashboards stream (SSE), what the store persists
 * and what a replay compares. Each event carries its run, a per-run sequence number (1, 2, 3, … with
 * no gap: `Last-Event-ID` resumes from it) and the virtual (or, in paper runs, wall) time it
 * happened. Plain structs, JSON-friendly (money in micros, no NaN).
 */
import { Schema } from "effect"
import { Decision } from "./Decision.js"
import { ExternalSignal } from "./ExternalSignal.js"
import { AgentId, OrderId, RoundId, RunId, StrategyId, Symbol, Timestamp } from "./Ids.js"
import { LifecycleEvent } from "./Lifecycle.js"
import { Backend, LlmCall } from "./Llm.js"
import { Metrics } from "./Metrics.js"
import { Opinion } from "./Opinion.js"
import { Fill, Order, OrderIntent } from "./Order.js"
import { PortfolioSnapshot } from "./Portfolio.js"
import { StateTransition, TradingState } from "./Risk.js"
import { Trade } from "./Trade.js"
import { Verdict } from "./Verdict.js"

export const RunMode = Schema.Literal("backtest", "paper", "replay")
export type RunMode = typeof RunMode.Type

const meta = {
  run: RunId,
  seq: Schema.Int.pipe(Schema.positive()),
  at: Timestamp
}

const event = <Tag extends string, Fields extends Schema.Struct.Fields>(tag: Tag, fields: Fields) =>
  Schema.TaggedStruct(tag, { ...meta, ...fields })

export const RunStarted = event("RunStarted", {
  strategy: StrategyId,
  strategyVersion: Schema.Int.pipe(Schema.positive()),
  mode: RunMode,
  seed: Schema.String,
  symbols: Schema.Array(Symbol),
  /** A fingerprint of the input data (files and their hashes, or the synthetic market's seed). */
  dataFingerprint: Schema.String,
  /**
   * `worked`: what a rule or a gate cut off an intent (a reduced verdict) is ordered on the
   * symbol's next bars, judged again each time, until the position reaches the decided target or
   * the consensus changes (agents/RiskOfficer.ts). Absent — every run recorded before it — a reduced
   * intent was done once its cut order was placed, as those runs recorded: their replay and resume
   * do so again, and reproduce them byte for byte.
   */
  reducedIntents: Schema.optional(Schema.Literal("worked")),
  /**
   * `not_long`: adaptive weights score a flat opinion of a run that may not short as "not long" —
   * right unless the close rose by more than the flat band (src/trading/Consensus.ts `isCorrect`),
   * and LLM analysts reflect on it so. Absent — runs recorded before it — a flat was right only when
   * the close moved less than the band either way, as those runs recorded: their replay and resume
   * score it so again.
   */
  flatScoring: Schema.optional(Schema.Literal("not_long")),
  /**
   * `closed`: when the data ends while the last slice's rounds wait for an analyst, virtual time
   * runs on to their deadline and they close, decided and judged, as every other slice's do.
   * Absent — runs recorded before it — they were dropped unclosed, as those runs recorded.
   */
  lastRounds: Schema.optional(Schema.Literal("closed")),
  /**
   * `fills`: the daily loss breaker and the drawdown halt are checked whenever the ledger marks the
   * books at a bar's closes and again when it books fills at the closes it marked (`same_close`), so
   * the trading state moves on the bar whose marks — or whose own fills' slippage and commission —
   * take equity past a limit, an intent judged there or not (docs/backtest-engine.md).
   * `marks` — runs recorded before `fills` — at the marks only: a loss made by a bar's same-close
   * fills was seen at the next bar's marks (a bar late), or, on daily data, never by the daily loss
   * breaker (the next day started from the equity after them). Absent — every run recorded before
   * both — they are checked only as intents are judged. A recording is re-executed as it says (its
   * replay and resume check them so again, and reproduce it byte for byte).
   */
  breakers: Schema.optional(Schema.Literal("marks", "fills")),
  /**
   * `past_warm_up`: an analyst's supervisor counts its failures in a row until it gives an opinion,
   * not until it handles a bar: one that fails on every bar once warmed up (after every restart it
   * warms up again) is given up on, and the run ends failed naming it, as one failing on every bar
   * does (src/swarm/Run.ts). Absent — every run recorded before it — the bars of its warm-up started
   * the count again: it was restarted for ever and the run completed, as those runs recorded: their
   * replay and resume count so again, and reproduce them byte for byte.
   */
  analystProgress: Schema.optional(Schema.Literal("past_warm_up")),
  /**
   * `chained`: while the coordinator's halt for a risk officer that is down sits over the officer's
   * state, the officer's own moves (a breaker on the marks, a new day) are recorded when the halt
   * lifts, right after it, so every `TradingStateChanged` starts where the one before ended. Absent
   * — every run recorded before it — they were recorded as they came, each `from` the officer's own
   * state, not the halt's: their replay and resume record them so again, byte for byte.
   * `settled`: chained, and a run that ends under the halt records, at its end, the halt lifting and
   * the officer's moves under it, so that the run ends in the officer's state. `chained` alone —
   * runs recorded before that — ended under the halt `halted`, those moves unrecorded, and still do.
   */
  downHalts: Schema.optional(Schema.Literal("chained", "settled")),
  /**
   * `standing`: a decision the trading state alone rejected while `halted` is not judged again while
   * the run stays halted (no `TradingStateChanged` since) and its consensus stands: its rounds record
   * no new decision and no new verdict, and it is judged again on the symbol's next bar once the state
   * changes (an operator lifts the halt). Absent — every run recorded before it — it was judged, and
   * rejected, again on every bar, as those runs recorded: their replay and resume do so again.
   */
  stateRejections: Schema.optional(Schema.Literal("standing")),
  /**
   * `kept`: with a volume limit (`execution.maxVolumePercent`), the order placed toward a target a
   * rule or a gate cut works on at the desk until it is done (filled, cut for cash, cancelled), not
   * sized and placed again as a new order on every bar it works: one order, one commission
   * minimum, one count toward the day's orders; and an order the end of the data cancels says
   * whether bars of its symbol came that traded too little to fill any of it. Recorded only by
   * runs whose strategy sets the limit (without it no order works for bars: the others behave the
   * same either way, and record as they did). Absent — those runs recorded before it — the
   * remainder was placed again on every bar, replacing the working order, as those runs recorded:
   * their replay and resume do so again, and reproduce them byte for byte.
   */
  workingOrders: Schema.optional(Schema.Literal("kept")),
  /**
   * `micro`: a fractional strategy's buy cut to the cash at hand, and its part of a bar under a
   * volume limit, are on micro-units whatever the order's quantity — an order that comes to a whole
   * number of units is not cut, nor capped, in whole units (src/trading/FillModel.ts `wholeUnits`).
   * Recorded only by runs whose strategy sizes fractional units (a strategy of whole units orders
   * whole units, cut in whole units either way: it records as it did). Absent — those runs recorded
   * before it — such an order was cut in whole units, as those runs recorded: their replay and
   * resume do so again, and reproduce them byte for byte.
   */
  fractionalCuts: Schema.optional(Schema.Literal("micro")),
  /**
   * The language model the run's LLM agents use, when it has any: never silent about an offline
   * model standing in for Ollama.
   */
  llm: Schema.optional(Schema.Struct({
    backend: Backend,
    model: Schema.String,
    description: Schema.String,
    /**
     * `own`: each `plan` entry is recorded with the role that plans in its agent (a debate's
     * `judge`). Absent — every run recorded before it — every `plan` is the `analyst`'s, as those
     * runs recorded it: their replay and resume record it so again, and reproduce them byte for byte.
     */
    reasoningRoles: Schema.optional(Schema.Literal("own")),
    /**
     * `parts`: a call's prompt is recorded as `promptParts`, each message and format once in the run
     * (the text the first time its hash comes, the hash alone after). Absent — every run recorded
     * before it — each miss keeps its whole prompt inline (`prompt`): their replay and resume record
     * it so again, and reproduce them byte for byte.
     */
    prompts: Schema.optional(Schema.Literal("parts")),
    /**
     * `uncharged`: a call the model never answered (the backend failed, timed out, or the round's
     * deadline came first) is recorded with no tokens and charged none: its reservation is
     * released. Absent — every run recorded before it — such a call was charged (and recorded)
     * at all it reserved, which moved the budget's refusals: their replay and resume charge so
     * again, and reproduce them byte for byte.
     */
    failedCalls: Schema.optional(Schema.Literal("uncharged"))
  }))
})

/**
 * How a run checks its breakers (`RunStarted.breakers`): `fills` (new runs), at every mark and after
 * same-close fills; `marks`, at every mark only; undefined, only as intents are judged (runs recorded before).
 */
export type BreakerChecks = (typeof RunStarted.Type)["breakers"]

/** What an analyst's progress is (`RunStarted.analystProgress`); undefined: any bar handled (runs recorded before). */
export type AnalystProgress = (typeof RunStarted.Type)["analystProgress"]

/**
 * An outside signal (a TradingView alert) delivered to the run with the slice of time `ts`, before
 * that slice's bars: an input of the run, recorded so that a replay or a resume delivers it again
 * at the same slice.
 */
export const SignalReceived = event("SignalReceived", { ts: Timestamp, signal: ExternalSignal })

/**
 * An outside signal the run took and never applied: it came too late for any slice of the run
 * (an alert sent while the last bar waited on an approval), or it waited for a bar of its symbol
 * that never came. Recorded with the run's last slice time `ts`, before the run's end, so that an
 * alert answered "delivered" is never lost without a trace — and, an input of the run like
 * `SignalReceived`, given again by a replay or a resume.
 */
export const SignalNotApplied = event("SignalNotApplied", { ts: Timestamp, signal: ExternalSignal, reason: Schema.String })

/**
 * An operator's command to move the trading state (`runs.trading`), taken right before the slice
 * of time `ts` and carried out there by the risk officer: an input of the run, recorded so that a
 * replay or a resume gives it again at the same slice (a run waiting for an operator's answer takes
 * it at once: `waiting`). What it did follows it: a
 * `TradingStateChanged` of cause `operator` when the state moved; nothing when the state machine
 * refused it, or the risk officer was down (fail closed).
 */
export const TradingStateRequested = event("TradingStateRequested", {
  ts: Timestamp,
  to: TradingState,
  actor: Schema.String.pipe(Schema.minLength(1)),
  reason: Schema.String.pipe(Schema.minLength(1)),
  /**
   * Taken while the run waited for an operator's answer to a held intent at slice `ts` (after the
   * slice's bars, not before them): a re-execution gives it back there, at the same event. Absent:
   * taken right before the slice. A command that tightens the state there (halt, reduce) refuses
   * the held intents (agents/RiskOfficer.ts). Runs recorded before it never took one: their replay
   * and resume, given none, do as they did.
   */
  waiting: Schema.optional(Schema.Literal(true))
})

export const OpinionGiven = event("OpinionGiven", { opinion: Opinion })
export const DecisionMade = event("DecisionMade", { decision: Decision })
export const VerdictGiven = event("VerdictGiven", { verdict: Verdict })

export const ApprovalRequested = event("ApprovalRequested", {
  round: RoundId,
  intent: OrderIntent,
  quantity: Schema.Number,
  reasons: Schema.Array(Schema.String),
  /** When it is rejected if nobody decided. */
  expiresAt: Timestamp
})

export const ApprovalResolved = event("ApprovalResolved", {
  round: RoundId,
  outcome: Schema.Literal("approved", "rejected", "expired"),
  /** An operator, or the strategy's backtest policy. */
  by: Schema.String,
  reason: Schema.String
})

export const OrderPlaced = event("OrderPlaced", { order: Order })

/**
 * An order that will not fill (any more): replaced by a newer order for its symbol, superseded by a
 * new decision, refused by the fill model, or left when the data ended. With a volume limit
 * (`ExecutionConfig.maxVolumePercent`; absent without one) it says how much of the order had filled
 * (`filled`, 0 when none had: above 0, the order was partially filled) and how much is cancelled
 * (`unfilled`).
 */
export const OrderCancelled = event("OrderCancelled", {
  order: OrderId,
  symbol: Symbol,
  reason: Schema.String,
  filled: Schema.optional(Schema.Number.pipe(Schema.nonNegative(), Schema.finite())),
  unfilled: Schema.optional(Schema.Number.pipe(Schema.nonNegative(), Schema.finite()))
})

/**
 * Decisions that changed a target (or remainders of reduced intents being worked, `remainderOf`)
 * but did not reach the execution desk because nothing could judge them — the risk officer did not
 * answer (crashed, restarting, stopped), could not see the books, or could not size them. Fail
 * closed: nothing executes; the coordinator offers the same targets again on the next bar.
 */
export const ExecutionBlocked = event("ExecutionBlocked", {
  ts: Timestamp,
  rounds: Schema.Array(RoundId),
  reason: Schema.String
})
export const OrderFilled = event("OrderFilled", { fill: Fill })
export const TradeClosed = event("TradeClosed", { trade: Trade })
export const PortfolioUpdated = event("PortfolioUpdated", { snapshot: PortfolioSnapshot })
export const TradingStateChanged = event("TradingStateChanged", { transition: StateTransition })

/** An agent started, crashed (with the cause), was restarted (attempt, delay), stopped or escalated. */
export const AgentLifecycle = event("AgentLifecycle", { event: LifecycleEvent })

export const DeadLetterRecorded = event("DeadLetterRecorded", {
  recipient: Schema.String,
  sender: Schema.optional(Schema.String),
  /** The undelivered message's type. */
  message: Schema.String,
  reason: Schema.Literal("stopped", "overflow", "crashed"),
  detail: Schema.optional(Schema.String)
})

/**
 * One call an LLM agent made to a model (or was answered from the cache, or refused by the budget):
 * what a replay answers from, without calling any model. Recorded right after the analysts of a
 * slice have answered, ordered by agent, round and step (the calls themselves ran in parallel).
 */
export const LlmCalled = event("LlmCalled", { call: LlmCall })

/**
 * An LLM agent's reasoning in a round, with the context it saw (the market brief): `analysis` (a
 * researcher's argument), `decision` (the judgement that became its opinion), `reflection` (the
 * opinion scored against what the market did over its horizon), `plan`.
 */
export const ReasoningRecorded = event("ReasoningRecorded", {
  agent: AgentId,
  round: RoundId,
  kind: Schema.Literal("plan", "analysis", "decision", "reflection"),
  /** Who in the agent reasoned (`bull`, `bear`, `judge`, `analyst`). */
  role: Schema.String,
  text: Schema.String,
  context: Schema.optional(Schema.Unknown)
})

/** The run's LLM budget refused a call: from now on its LLM agents abstain rather than exceed it. */
export const LlmBudgetSpent = event("LlmBudgetSpent", {
  /** The agent and round of the first call refused. */
  agent: AgentId,
  round: Schema.optional(RoundId),
  /** What was spent of which limit, and what the call needed. */
  reason: Schema.String
})

export const RunCompleted = event("RunCompleted", {
  metrics: Metrics,
  /** SHA-256 over the canonical JSON of every event before this one, in order. */
  checksum: Schema.String
})

export const RunFailed = event("RunFailed", { reason: Schema.String })

export const RunEvent = Schema.Union(
  RunStarted,
  SignalReceived,
  SignalNotApplied,
  TradingStateRequested,
  OpinionGiven,
  DecisionMade,
  VerdictGiven,
  ApprovalRequested,
  ApprovalResolved,
  OrderPlaced,
  OrderCancelled,
  ExecutionBlocked,
  OrderFilled,
  TradeClosed,
  PortfolioUpdated,
  TradingStateChanged,
  AgentLifecycle,
  DeadLetterRecorded,
  LlmCalled,
  ReasoningRecorded,
  LlmBudgetSpent,
  RunCompleted,
  RunFailed
)
export type RunEvent = typeof RunEvent.Type
export type RunEventTag = RunEvent["_tag"]
