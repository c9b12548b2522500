/**
 * The consensus coordinator. For every timestamp of the feed it opens one round per symbol, asks
 * every analyst of the roster for its opinions on all of them in one request (batching: see
 * docs/backtest-engine.md), closes the rounds when every analyst has answered or at the deadline,
 * and aggregates each round by weighted vote (src/trading/Consensus.ts): votes, abstentions (no
 * answer, a crash, below the minimum confidence) and dissent are part of every decision. A dead or
 * slow analyst lowers participation; it never stalls the run.
 *
 * A decision whose action differs from the symbol's current target goes to the risk officer, with
 * the bar's close. `hold` (no quorum, too little confidence) keeps the target. If the risk officer
 * does not answer, nothing executes, the run records `ExecutionBlocked`, and the targets are
 * offered again on the symbol's next bar (fail closed, then recover). The first such round also
 * moves the run's trading state to `halted` (`TradingStateChanged`, cause `system`, saying the risk
 * officer is down); the first answer after it moves it back to the state the officer holds — the
 * one it had, unless the officer moved it meanwhile — recorded right after that answer's verdicts.
 * The officer owns the trading state; this halt is the coordinator's, over it, while it cannot ask:
 * what the officer moves under it is recorded when it lifts, after it (`chainedHalts`), so the
 * recorded changes chain. An intent a rule, a gate or
 * the trading state rejected does not become the target either: while the consensus stays, it is
 * judged again on the symbol's next bar, and goes through once what rejected it no longer does
 * (a position slot frees, a new day, a lifted halt). An operator's rejection (or expiry, or the
 * `reject` approval policy's) is an answer to the idea, and holds until the consensus changes.
 * One the halted state alone rejected (the officer says so: `standing`) could only be rejected
 * again while the run stays halted: it is not sent again while no `TradingStateChanged` is
 * recorded since and the consensus stands (the same action, or hold) — those rounds record no
 * decision and no verdict — and is judged on the symbol's next bar once the state changes (an
 * operator lifts the halt) or the consensus does (back to the target, then the refused action
 * again, is judged again). A remainder the halt rejected waits so too. `reducing` is not covered:
 * whether an order reduces depends on the position held, which an answered approval or an order in
 * flight moves. Runs recorded before it (`RunStarted.stateRejections` absent) judge it on every bar.
 *
 * An intent a rule or a gate reduced (a notional cap, the position cap) does set the target, and
 * what was cut off is worked, as a desk works an order: the risk officer says which symbols have a
 * target not reached (`working`), and while their consensus stands — the same action, or `hold` —
 * each of their next bars sends it the remainder (`Remainder`), sized toward the target quantity
 * decided and judged again by the rules and gates, so a notional cap sells in slices bar after bar.
 * The work ends when the position reaches the target (less than one unit left, with whole units),
 * when the consensus changes (a new decision replaces it), or on an operator's rejection. Runs
 * recorded before it (`RunStarted.reducedIntents` absent) treat a reduced intent as done, as they did.
 *
 * Adaptive weights (strategy `consensus.adaptiveWeights.enabled`): every vote (not an abstention:
 * an opinion below `minConfidence` is none) is scored `horizon`
 * bars of its symbol later (the analyst's own horizon) against the realised return — right when
 * long and the close rose by more than 0.1 %, short and it fell by more, flat and it moved less —
 * or, in a run that may not short, flat and it did not rise by more (there flat is also an
 * analyst's call of a fall; runs recorded before `RunStarted.flatScoring` scored it as "moved
 * less", and still do) — into an exponential average per analyst; the analyst's weight is its
 * roster weight × 2·accuracy, kept within the configured floor and ceiling.
 *
 * Outside signals (a TradingView alert) come with the update of the slice they are delivered with;
 * each goes to its symbol's round, so the analysts see it with that bar (AnalystProtocol.ts).
 *
 * Events (the run's event detail, `swarm backtest --events`): `decisions` records the rounds whose decision changed a
 * target — each opinion and the decision in full; `rounds` records every round.
 *
 * Tracing (src/telemetry/Sampling.ts): the coordinator decides, once per timestamp, whether its
 * rounds are traced. A traced cycle is one trace, rooted in a `Coordinator.round` span (the run, the
 * timestamp, the round ids) that every message of the cycle carries: the desk's and the ledger's
 * handling of the bars, each analyst's opinions, an aggregation span per round, the risk officer's
 * verdicts and what the desk and the ledger make of them. An untraced cycle allocates nothing for it.
 */
import { Cause, Effect, Exit, Option } from "effect"
import type { ActorId } from "../schemas/Actor.js"
import { askFailure } from "../schemas/ActorError.js"
import { type RequestOpinions as RequestOpinionsType, requestOpinions, type RoundRequest } from "../schemas/AnalystProtocol.js"
import type { Action, ConsensusConfig, Decision } from "../schemas/Decision.js"
import type { TradingState } from "../schemas/Risk.js"
import type { ExternalSignal } from "../schemas/ExternalSignal.js"
import type { AgentId, RoundId, Symbol, Timestamp } from "../schemas/Ids.js"
import type { Opinion } from "../schemas/Opinion.js"
import { type DeskProtocol, judge, marketOpen, MarketUpdate, type Remainder, type RiskProtocol } from "../schemas/TradingProtocol.js"
import * as Actor from "../src/actor/Actor.js"
import { type ActorRef, askAll } from "../src/actor/ActorRef.js"
import type { RunLog } from "../src/swarm/RunLog.js"
import * as Metrics from "../src/telemetry/Metrics.js"
import type { RoundSampler } from "../src/telemetry/Sampling.js"
import * as Trace from "../src/telemetry/Trace.js"
import * as Consensus from "../src/trading/Consensus.js"
import { copyOpinion } from "./Analyst.js"

const isTimeout = (cause: Cause.Cause<unknown>): boolean =>
  Option.exists(Cause.failureOption(cause), (error) => (error as { readonly _tag?: unknown })._tag === "AskTimeout")

/** Decisions per symbol a round's context carries. */
const RECENT_DECISIONS = 5

/** A return within ±0.1 % counts as flat when scoring an opinion. */
export const FLAT_BAND = 0.001

export interface RosterMember {
  readonly agent: AgentId
  readonly weight: number
  /** Bars ahead its opinions are meant for (adaptive weights score them then). */
  readonly horizon: number
  readonly ref: () => ActorRef<RequestOpinionsType, "backpressure">
}

export interface CoordinatorStats {
  rounds: number
  /** Decisions that changed a target (sent to the risk officer). */
  decisions: number
  /**
   * Whether a slice's rounds are open: asked, aggregated or judged, not done. The run's driver lets
   * virtual time run on after the last slice while they are (src/swarm/Backtest.ts), so that they
   * close at their deadline as every other slice's do when the next one comes.
   */
  open?: boolean
  /**
   * By roster member (its index), the rounds it gave no vote in, by why: no opinion for the round
   * (warming up, or none to give), past the deadline, its answer a failure (a crash, a refusal),
   * below the minimum confidence. Counted when present (a backtest's summary).
   */
  abstained?: ReadonlyArray<Abstained>
}

/** One analyst's abstentions over a run, by why (`CoordinatorStats.abstained`). */
export interface Abstained {
  silent: number
  late: number
  failed: number
  belowMinConfidence: number
  /** Of `silent`, the rounds it gave up on itself at its deadline (an LLM analyst: agents/LlmAnalyst.ts). */
  gaveUp: number
}

export interface CoordinatorOptions {
  readonly log: RunLog
  readonly roster: ReadonlyArray<RosterMember>
  readonly consensus: ConsensusConfig
  readonly events: "decisions" | "rounds"
  /** Send each round the symbol's target and latest decisions (`RoundContext`): for analysts that reason over them. */
  readonly context?: boolean
  readonly judgeTimeoutMillis: number
  readonly risk: () => ActorRef<RiskProtocol, "backpressure">
  readonly desk: () => ActorRef<DeskProtocol, "backpressure">
  readonly stats: CoordinatorStats
  /** Which cycles are traced (src/telemetry/Sampling.ts); without one, none is. */
  readonly sampler?: RoundSampler | undefined
  /**
   * Score a flat vote as "not long" (`Consensus.isCorrect`): a run that may not short, recorded with
   * `RunStarted.flatScoring` (runs recorded before it scored flat as "moved less", and still do).
   */
  readonly flatMeansNotLong?: boolean
  /**
   * While its halt for a risk officer that is down sits over the officer's state, the officer's own
   * moves are recorded when it lifts, right after it (`RunLog.haltOver`), so that the recorded
   * changes chain (`RunStarted.downHalts`: `chained`); off for runs recorded before, which recorded
   * them as they came, each `from` the officer's own state rather than the halt's. A run that ends
   * under the halt settles it at its end (`downHalts`: `settled`; src/swarm/Backtest.ts).
   */
  readonly chainedHalts?: boolean
  /**
   * A decision the trading state alone rejected while `halted` (the officer says so: `standing`) is
   * not sent again while its consensus stands and no `TradingStateChanged` is recorded since: it
   * could only be rejected again (`RunStarted.stateRejections`). Off for runs recorded before, which
   * sent it on every bar.
   */
  readonly standingRejections?: boolean
}

/** The root span of a traced cycle, and the attributes that index it (src/telemetry/SpanStore.ts). */
export const ROUND_SPAN = "Coordinator.round"

interface Scoring {
  readonly due: number
  readonly direction: Opinion["direction"]
  readonly close: number
}

interface SymbolTrack {
  bars: number
  /** Per roster member, opinions waiting to be scored, oldest first. */
  readonly pending: Array<Array<Scoring>>
}

class Coordination {
  /** The target each symbol's last judged decision set (absent: flat). */
  readonly targets = new Map<string, Action>()
  readonly accuracy: Array<Consensus.Accuracy>
  readonly tracks = new Map<string, SymbolTrack>()
  /** Per symbol, the latest decisions that changed its target, oldest first (with `context`). */
  readonly recent = new Map<string, Array<{ readonly ts: Timestamp; readonly action: Action; readonly confidence: number }>>()
  /**
   * Symbols whose decided target the risk officer is still working (it said so: a rule or a gate
   * reduced the intent): their rounds that change nothing send it the remainder to judge again.
   */
  readonly working = new Set<string>()
  /**
   * By symbol, its decision (`action`) or remainder (`action` undefined) the halted state alone
   * rejected (`standingRejections`), and how many `TradingStateChanged` the log had recorded then.
   * While the state has not changed since and the consensus stands, its rounds only repeat it, and
   * are not sent again.
   */
  readonly standing = new Map<string, { readonly action: Action | undefined; readonly changes: number }>()
  /** While the risk officer does not answer: the trading state the run had before it was halted for that. */
  downFrom: TradingState | undefined = undefined

  constructor(size: number) {
    this.accuracy = new Array(size).fill(Consensus.initialAccuracy)
  }
}

/** Give each round the outside signals about its symbol, in the order they came (rare: a slice with signals). */
const withSignals = (rounds: Array<RoundRequest>, signals: ReadonlyArray<ExternalSignal>) => {
  for (let i = 0; i < rounds.length; i++) {
    const round = rounds[i]!
    const mine = signals.filter((signal) => signal.symbol === round.bar.symbol)
    if (mine.length > 0) rounds[i] = { round: round.round, bar: round.bar, signals: mine }
  }
}

export const make = (options: CoordinatorOptions) => {
  const { consensus, log, roster, stats } = options
  const adaptive = consensus.adaptiveWeights
  const everyRound = options.events === "rounds"
  const baseMembers: ReadonlyArray<Consensus.Member> = roster.map((m) => ({ agent: m.agent, weight: m.weight }))
  // Reused across rounds: aggregation reads them synchronously and keeps nothing. A round's answers
  // sit in a slot per roster member (clearing and refilling a Map per round allocated its table).
  const slotOf = new Map<AgentId, number>(roster.map((m, i) => [m.agent, i]))
  const slots: Array<Opinion | undefined> = new Array(roster.length).fill(undefined)
  const opinions = { get: (agent: AgentId): Opinion | undefined => slots[slotOf.get(agent)!] }
  const failed = new Set<AgentId>()
  /** The round being aggregated (one object, refilled per round: aggregation keeps none of it). */
  const input: { -readonly [K in keyof Consensus.Round]: Consensus.Round[K] } = {
    round: "" as RoundId,
    symbol: "" as Symbol,
    ts: 0 as Timestamp,
    roster: [],
    opinions,
    failed
  }

  // The analysts' refs, resolved on the first bar (the run wires them once its tree is up).
  let refs: ReadonlyArray<ActorRef<RequestOpinionsType, "backpressure">> | undefined
  const abstained = stats.abstained as Array<Abstained> | undefined
  const flatMeansNotLong = options.flatMeansNotLong === true
  const analysts = () => (refs ??= roster.map((m) => m.ref()))

  const members = (state: Coordination): ReadonlyArray<Consensus.Member> =>
    adaptive.enabled
      ? roster.map((m, i) => ({ agent: m.agent, weight: Consensus.adaptiveWeight(m.weight, state.accuracy[i]!, adaptive) }))
      : baseMembers

  /** Score the opinions that came due on this bar of the symbol, then queue the new ones. */
  const score = (state: Coordination, symbol: string, close: number) => {
    let track = state.tracks.get(symbol)
    if (track === undefined) state.tracks.set(symbol, (track = { bars: 0, pending: roster.map(() => []) }))
    const index = ++track.bars
    for (let a = 0; a < roster.length; a++) {
      const queue = track.pending[a]!
      while (queue.length > 0 && queue[0]!.due <= index) {
        const due = queue.shift()!
        const correct = Consensus.isCorrect(due.direction, close / due.close - 1, FLAT_BAND, flatMeansNotLong)
        state.accuracy[a] = Consensus.updateAccuracy(state.accuracy[a]!, correct, adaptive.alpha)
      }
      const opinion = slots[a]
      // Votes only: an opinion below minConfidence is an abstention (Consensus.ts), and a quiet
      // "flat at 0.1" scored every bar buried an analyst's weight at the floor.
      if (opinion !== undefined && opinion.confidence >= consensus.minConfidence) {
        queue.push({ due: index + roster[a]!.horizon, direction: opinion.direction, close })
      }
    }
  }

  /** The risk officer did not answer: trading halts, saying why (once, until it answers again). */
  const haltWhileDown = (state: Coordination, ts: Timestamp, why: string) => {
    if (state.downFrom !== undefined) return
    const from = log.tradingState
    // Already halted (a breaker, an operator): nothing more to say, and nothing to restore.
    if (from === "halted") return
    state.downFrom = from
    const transition = { from, to: "halted", cause: "system", at: ts, reason: `the risk officer is down (${why}): nothing executes until it answers again`, actor: null } as const
    if (options.chainedHalts === true) log.haltOver(transition)
    else log.emit("TradingStateChanged", { transition })
  }

  /** The risk officer answered again: trading goes back to its state (the one it had, or where the officer has moved it since). */
  const resumeOnceBack = (state: Coordination, ts: Timestamp) => {
    const had = state.downFrom
    if (had === undefined) return
    state.downFrom = undefined
    if (options.chainedHalts === true) {
      // Back to the state it had, then the officer's moves under the halt, in the order it made them.
      return log.liftHalt({ from: "halted", to: had, cause: "system", at: ts, reason: "the risk officer answers again: trading goes back to its state", actor: null })
    }
    const last = log.lastTransition
    // `system` transitions are this halt's own; anything else is the officer's, which wins.
    const to = last === undefined || last.cause === "system" ? had : last.to
    if (to === "halted") return
    log.emit("TradingStateChanged", {
      transition: { from: "halted", to, cause: "system", at: ts, reason: "the risk officer answers again: trading goes back to its state", actor: null }
    })
  }

  const record = (decision: Decision) => {
    // Opinions are views valid until the analyst's next request; the log gets lasting copies.
    for (const opinion of slots) if (opinion !== undefined) log.emit("OpinionGiven", { opinion: copyOpinion(opinion) })
    log.emit("DecisionMade", { decision })
  }

  /** A round's aggregation (its decision), as a span of the traced cycle. */
  const traceAggregation = (trace: Trace.Trace, round: Consensus.Round, decision: Decision, action: Action, changes: boolean) => {
    const span = trace.child("Consensus.aggregate", {
      "swarm.round": round.round,
      "swarm.symbol": round.symbol,
      "consensus.action": action,
      "consensus.changes_target": changes,
      "consensus.confidence": decision.confidence,
      "consensus.participation": decision.participation,
      "consensus.disagreement": decision.disagreement,
      "consensus.quorum_met": decision.quorumMet,
      "consensus.votes": decision.votes.map((v) => `${v.agent}:${v.direction}@${v.confidence.toFixed(3)}×${v.weight.toFixed(3)}`),
      "consensus.abstentions": decision.abstentions.map((a) => `${a.agent}:${a.reason}`),
      "consensus.dissent": [...decision.dissent]
    })
    span.end()
  }

  const onUpdate = (state: Coordination, update: MarketUpdate, trace: Trace.Trace | undefined) =>
    Effect.gen(function*() {
      const { bars, ts } = update
      yield* options.desk().tell(marketOpen({ ts, bars }))
      const rounds: Array<RoundRequest> = new Array(bars.length)
      // A round's id is `<symbol>@<ts>`: the time written once for all of the timestamp's rounds.
      const at = `@${ts}`
      if (options.context === true) {
        for (let i = 0; i < bars.length; i++) {
          const bar = bars[i]!
          const target = state.targets.get(bar.symbol) ?? "flat"
          rounds[i] = {
            round: (bar.symbol + at) as RoundId,
            bar,
            context: { target: target === "hold" ? "flat" : target, decisions: state.recent.get(bar.symbol) ?? [] }
          }
        }
      } else {
        for (let i = 0; i < bars.length; i++) rounds[i] = { round: (bars[i]!.symbol + at) as RoundId, bar: bars[i]! }
      }
      if (update.signals !== undefined && update.signals.length > 0) withSignals(rounds, update.signals)
      const request = requestOpinions({ ts, rounds })
      const answers = yield* askAll(analysts(), request, { timeout: consensus.deadlineMillis })
      // What the analysts recorded while answering in parallel (their model calls), in a fixed order.
      log.flushDeferred()
      const cursor = new Array<number>(roster.length).fill(0)
      failed.clear()
      // A crash (or a refused request) is a failed answer; silence until the deadline is no answer.
      for (let a = 0; a < roster.length; a++) {
        const answer = answers[a]!
        if (Exit.isFailure(answer) && !isTimeout(answer.cause)) failed.add(roster[a]!.agent)
      }
      const weighted = members(state)
      const changed: Array<Decision> = []
      const closes: Array<number> = []
      let remainders: Array<Remainder> | undefined
      for (let i = 0; i < rounds.length; i++) {
        const { bar, round } = rounds[i]!
        for (let a = 0; a < roster.length; a++) {
          slots[a] = undefined
          const answer = answers[a]!
          if (Exit.isFailure(answer)) {
            if (abstained !== undefined) {
              if (failed.has(roster[a]!.agent)) abstained[a]!.failed++
              else abstained[a]!.late++
            }
            continue
          }
          const opinion = answer.value[cursor[a]!]
          if (opinion !== undefined && opinion.round === round) {
            slots[a] = opinion
            cursor[a]!++
            if (abstained !== undefined && opinion.confidence < consensus.minConfidence) abstained[a]!.belowMinConfidence++
          } else if (abstained !== undefined) abstained[a]!.silent++
        }
        input.round = round
        input.symbol = bar.symbol
        input.ts = ts
        input.roster = weighted
        // The action alone first: most rounds change nothing and need no record.
        const action = Consensus.actionOf(input, consensus)
        let changes = action !== "hold" && action !== (state.targets.get(bar.symbol) ?? "flat")
        // Whether a remainder the halted state rejected stands (its consensus stands too: not sent).
        let remainderStands = false
        const standing = state.standing.size > 0 ? state.standing.get(bar.symbol) : undefined
        if (standing !== undefined) {
          // The halted state's answer stands while no change of state is recorded since, for the
          // same decision (or remainder, while the consensus stands): a round that only repeats it
          // changes nothing. Else it is judged again, or a new consensus replaces it.
          const stands = standing.changes === log.count("TradingStateChanged")
          if (standing.action === undefined) {
            if (stands && !changes) remainderStands = true
            else state.standing.delete(bar.symbol)
          } else if (action !== "hold") {
            if (stands && changes && standing.action === action) changes = false
            else state.standing.delete(bar.symbol)
          }
        }
        // A traced round needs the whole aggregation for its span: made once, for the span and the record.
        const decision = trace !== undefined || changes || everyRound ? Consensus.aggregate(input, consensus) : undefined
        if (trace !== undefined) traceAggregation(trace, input, decision!, action, changes)
        if (decision !== undefined && (changes || everyRound)) {
          record(decision)
          if (changes) {
            changed.push(decision)
            closes.push(bar.close)
          }
        }
        // A target still being worked whose consensus stands (the same action, or no quorum: hold).
        if (!changes && !remainderStands && state.working.size > 0 && state.working.has(bar.symbol)) {
          ;(remainders ??= []).push({ round, symbol: bar.symbol, close: bar.close })
        }
        if (adaptive.enabled) score(state, bar.symbol, bar.close)
      }
      stats.rounds += rounds.length
      trace?.attribute("swarm.decisions", changed.length)
      if (changed.length === 0 && remainders === undefined) return state
      stats.decisions += changed.length
      const judged = yield* Effect.either(
        options.risk().ask(
          judge({ ts: ts as Timestamp, decisions: changed, closes, ...(remainders === undefined ? {} : { remainders }) }),
          { timeout: options.judgeTimeoutMillis }
        )
      )
      if (judged._tag === "Left") {
        const why = askFailure(judged.left)
        trace?.event("execution blocked", { reason: why })
        log.emit("ExecutionBlocked", {
          ts,
          rounds: remainders === undefined ? changed.map((d) => d.round) : [...remainders, ...changed].map((d) => d.round),
          reason: `the risk officer did not answer (${why}): nothing executes until it is back`
        })
        haltWhileDown(state, ts, why)
        return state
      }
      resumeOnceBack(state, ts)
      if (trace !== undefined) {
        trace.attribute("swarm.orders.placed", judged.right.placed)
        trace.attribute("swarm.orders.rejected", judged.right.rejected)
        trace.attribute("swarm.approvals.pending", judged.right.pending)
      }
      const { blocked: notJudged, refused, standing, working } = judged.right
      if (options.standingRejections === true && (standing !== undefined || state.standing.size > 0)) {
        // Counted now: what the officer's verdicts moved is recorded by the time it answers.
        const stands = new Set(standing ?? [])
        const changes = log.count("TradingStateChanged")
        for (const remainder of remainders ?? []) {
          if (stands.has(remainder.round)) state.standing.set(remainder.symbol, { action: undefined, changes })
          else state.standing.delete(remainder.symbol)
        }
        for (const decision of changed) {
          if (stands.has(decision.round)) state.standing.set(decision.symbol, { action: decision.action, changes })
          else state.standing.delete(decision.symbol)
        }
      }
      // The officer says which of the symbols judged have a target left to work (none, in runs recorded before).
      if (working.length > 0 || state.working.size > 0) {
        const still = new Set(working)
        for (const remainder of remainders ?? []) if (!still.has(remainder.round)) state.working.delete(remainder.symbol)
        for (const decision of changed) {
          if (still.has(decision.round)) state.working.add(decision.symbol)
          else state.working.delete(decision.symbol)
        }
      }
      // Rounds not judged or refused keep the old target: their decision is offered again.
      const retried = notJudged.length === 0 && refused.length === 0 ? undefined : new Set([...notJudged, ...refused])
      for (const decision of changed) {
        if (retried === undefined || !retried.has(decision.round)) {
          state.targets.set(decision.symbol, decision.action)
          if (options.context === true) {
            const recent = state.recent.get(decision.symbol) ?? []
            // A fresh array: the rounds already sent hold the old one.
            state.recent.set(decision.symbol, [...recent.slice(-(RECENT_DECISIONS - 1)), { ts, action: decision.action, confidence: decision.confidence }])
          }
        }
      }
      return state
    })

  /** A traced cycle: one trace, whose root span every message of the cycle carries. */
  const traced = (state: Coordination, update: MarketUpdate, self: ActorId) => {
    const started = performance.now()
    const ts = update.ts
    return Trace.within(ROUND_SPAN, {
      root: true,
      attributes: {
        "actor.id": self,
        "actor.name": self.slice(self.lastIndexOf("/") + 1),
        "swarm.run": log.run,
        "swarm.ts": ts,
        "swarm.time": new Date(ts).toISOString(),
        "swarm.rounds": update.bars.map((bar) => `${bar.symbol}@${ts}`),
        "swarm.analysts": roster.length
      }
    }, (trace) =>
      onUpdate(state, update, trace).pipe(
        Effect.ensuring(Effect.sync(() => Metrics.recordRound(performance.now() - started)))
      ))
  }

  const sampler = options.sampler
  const done = Effect.sync(() => {
    stats.open = false
  })
  return Actor.make({
    protocol: MarketUpdate,
    // A message on every bar of a run (src/actor/Behavior.ts).
    busy: true,
    setup: () => Effect.sync(() => new Coordination(roster.length)),
    // Targets and accuracies outlive a crash: a restarted coordinator must not re-send every target.
    onRestart: (state) => Effect.succeed(state),
    behavior: (state, update, context) => {
      stats.open = true
      return Effect.ensuring(sampler !== undefined && sampler.sample() ? traced(state, update, context.id) : onUpdate(state, update, undefined), done)
    }
  })
}
