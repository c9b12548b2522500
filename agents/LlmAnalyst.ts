/**
 * The LLM analyst actor: runs one LLM analyst type (agents/analysts/Llm*.ts) for every symbol of a
 * run. Each `RequestOpinions` folds that timestamp's bars into the per-symbol briefs (in order, so
 * nothing after a round's bar is in its brief), then thinks about every round at once — the model
 * calls of a slice run in parallel, under the process-wide cap — and answers with the opinions it
 * reached. A round whose thinking fails (no model, the budget spent, an answer that never decodes)
 * or runs past the round's deadline is an abstention, never a stalled run.
 *
 * Its model calls (`LlmCalled`) and its reasoning (`ReasoningRecorded`, with the brief it saw) go to
 * the run's log deferred, keyed by agent, round and step: the coordinator flushes them in that order
 * once the slice's analysts have answered, so parallel calls log the same way on every run and on
 * its replay (which answers them from the recording, calling no model).
 *
 * Every opinion is scored `horizon` bars of its symbol later against the close, and the verdict
 * recorded as a `reflection`.
 */
import { Effect, type Schema } from "effect"
import { RequestOpinions } from "../schemas/AnalystProtocol.js"
import type { AgentId, RoundId } from "../schemas/Ids.js"
import type { Direction, Opinion } from "../schemas/Opinion.js"
import type { RunEvent } from "../schemas/RunEvent.js"
import * as Actor from "../src/actor/Actor.js"
import { type LlmSession, recordingKey, type RoundSession } from "../src/llm/LlmSession.js"
import * as Outside from "../src/swarm/Outside.js"
import type { RunLog } from "../src/swarm/RunLog.js"
import { traceOpinions } from "./Analyst.js"
import * as Consensus from "../src/trading/Consensus.js"
import { FLAT_BAND } from "./Coordinator.js"
import { BriefTracker, briefJson, INDICATOR_WARMUP, type MarketBrief } from "./analysts/MarketBrief.js"

type ReasoningKind = Extract<RunEvent, { readonly _tag: "ReasoningRecorded" }>["kind"]

/** The bars of a symbol before an LLM analyst's first round about it: a full brief, warm indicators. */
export const warmUpOf = (config: { readonly bars: number }): number => Math.max(config.bars, INDICATOR_WARMUP)

/** What an LLM analyst type decided for a round. */
export interface Judgement {
  readonly direction: Direction
  readonly confidence: number
  readonly rationale: string
}

/** What an LLM analyst type is given to think about one round. */
export interface Thinking<Config> {
  readonly agent: AgentId
  readonly round: RoundId
  readonly brief: MarketBrief
  readonly config: Config
  readonly allowShort: boolean
  /**
   * The run's model calls, for this round: each names `agent` and `round` and a step of its own
   * and one of its type's `answers` (`LlmSession.forRound` refuses any other, crashing the agent).
   */
  readonly session: RoundSession
  /** Record a piece of reasoning (ordered by `order` within the round). */
  readonly reason: (order: number, kind: ReasoningKind, role: string, text: string) => void
}

/**
 * An LLM analyst type: its config (with `model` and `bars`), its horizon, and how it thinks about a
 * round — undefined is an abstention. It must read nothing but the brief and call no model but
 * through the session.
 */
export interface LlmAnalystType<Config extends { readonly bars: number }> {
  readonly type: string
  readonly description: string
  readonly config: Schema.Schema<Config, any, never>
  readonly horizon: (config: Config) => number
  /**
   * The schemas its calls' answers decode as (`Ask.schema`), every one it may ask for. Each is sent
   * to the model as JSON Schema (Ollama's `format`), so each must have one — no `DateFromSelf`, no
   * declaration without a `jsonSchema` annotation: the registry checks them when a strategy names
   * the type (agents/registry.ts), and a round's call asking for another is refused (`LlmStepRefused`).
   */
  readonly answers: ReadonlyArray<Schema.Schema<any, any, never>>
  /** What it is about to do for a round, in a sentence: the round's `plan` entry. */
  readonly plan: (config: Config, brief: MarketBrief) => string
  /** Who in it makes that plan (`judge` for a debate); absent: `analyst`. */
  readonly planRole?: string
  readonly think: (thinking: Thinking<Config>) => Effect.Effect<Judgement | undefined>
  /**
   * Optional: the same thinking, with no effect at all, when every answer it needs is at hand
   * (`LlmSession.peek`: recorded, or in the in-memory cache) — the judgement, `null` to abstain,
   * or `undefined` when a model must be asked (then `think` runs, and nothing was recorded). A
   * cached backtest decides most rounds this way, with no fiber and no deadline timer per round.
   */
  readonly thinkNow?: (thinking: Thinking<Config>) => Judgement | null | undefined
}

export type AnyLlmAnalystType = LlmAnalystType<any>

export interface LlmAnalystOptions {
  readonly name: AgentId
  readonly kind: AnyLlmAnalystType
  readonly config: { readonly bars: number }
  readonly allowShort: boolean
  readonly session: LlmSession
  readonly log: RunLog
  /** The coordinator's deadline for a round: the analyst gives up a little before it. */
  readonly deadlineMillis: number
  /**
   * Whether the deadline is wall-clock time (paper runs). In a backtest it is virtual time, which a
   * model call does not take (the world waits for it): the call's own timeout bounds it instead.
   */
  readonly wallClock: boolean
  /** Record a plan with its type's `planRole` (`LlmContext.ownPlanRole`), else as `analyst`. */
  readonly ownPlanRole: boolean
  /** Reflect on a flat as "not long" (`LlmContext.flatMeansNotLong`, `Consensus.isCorrect`), else as "moved less". */
  readonly flatMeansNotLong?: boolean
  /** Told of each round it gave up on at its deadline (an abstention: a backtest's summary counts them). */
  readonly onDeadline?: () => void
}

/**
 * Abstain once `millis` have passed: on the run's clock, or on the wall clock (a sleep outside the
 * world, so a paper run's virtual-clocked world still gives up in real time).
 */
const withDeadline = (millis: number, wallClock: boolean, onDeadline: (() => void) | undefined) =>
<A>(thinking: Effect.Effect<A | undefined>): Effect.Effect<A | undefined> =>
  wallClock
    ? Effect.raceFirst(
      thinking,
      Outside.run(Effect.sleep(millis)).pipe(Effect.map(() => {
        onDeadline?.()
        return undefined
      }))
    )
    : Effect.timeoutTo(thinking, {
      duration: millis,
      onTimeout: () => {
        onDeadline?.()
        return undefined
      },
      onSuccess: (a) => a
    })

/** The share of the coordinator's deadline an analyst spends thinking before it abstains. */
const DEADLINE_SHARE = 0.9

interface Scoring {
  readonly due: number
  readonly round: RoundId
  readonly direction: Direction
  readonly close: number
}

class SymbolState {
  readonly pending: Array<Scoring> = []
  constructor(readonly tracker: BriefTracker) {}
}

export const make = (
  { allowShort, config, deadlineMillis, flatMeansNotLong, kind, log, name, onDeadline, ownPlanRole, session, wallClock }: LlmAnalystOptions
) => {
  const planRole = ownPlanRole ? kind.planRole ?? "analyst" : "analyst"
  const horizon = kind.horizon(config)
  const answers = new Set<object>(kind.answers)
  const warmup = warmUpOf(config)
  const deadline = Math.max(1, Math.floor(deadlineMillis * DEADLINE_SHARE))

  /** Score the opinions that came due on this bar: a reflection each, in the round that saw it. */
  const reflect = (state: SymbolState, round: RoundId, close: number) => {
    const index = state.tracker.count
    while (state.pending.length > 0 && state.pending[0]!.due <= index) {
      const due = state.pending.shift()!
      const change = close / due.close - 1
      const moved = change > FLAT_BAND ? "rose" : change < -FLAT_BAND ? "fell" : "held"
      // As the coordinator scores the vote (its weight): Consensus.isCorrect.
      const right = Consensus.isCorrect(due.direction, change, FLAT_BAND, flatMeansNotLong === true)
      log.defer(recordingKey(name, round, `~reflection ${due.round}`), "ReasoningRecorded", {
        agent: name,
        round,
        kind: "reflection",
        role: "analyst",
        text: `Said ${due.direction} in round ${due.round} at ${due.close}; ${horizon} bar${horizon === 1 ? "" : "s"} later the close ${moved} to ${close} (${
          (change * 100).toFixed(2)
        }%): ${right ? "right" : "wrong"}.`
      })
    }
  }

  return Actor.make({
    protocol: RequestOpinions,
    // Briefs are rebuilt from the bars on a restart (they warm up again), like any analyst's state.
    setup: () => Effect.sync(() => new Map<string, SymbolState>()),
    // At work once a symbol's brief is warm and a round of it was thought about (as agents/Analyst.ts).
    progress: (symbols) => {
      for (const state of symbols.values()) if (state.tracker.count >= warmup) return true
      return false
    },
    behavior: (symbols, request, context) =>
      Effect.gen(function*() {
        const ready: Array<{ readonly round: RoundId; readonly brief: MarketBrief; readonly state: SymbolState; readonly symbol: Opinion["symbol"] }> = []
        for (const { bar, context: roundContext, round } of request.rounds) {
          let state = symbols.get(bar.symbol)
          if (state === undefined) symbols.set(bar.symbol, (state = new SymbolState(new BriefTracker(config.bars))))
          state.tracker.update(bar)
          reflect(state, round, bar.close)
          if (state.tracker.count >= warmup) ready.push({ round, brief: state.tracker.brief(roundContext), state, symbol: bar.symbol })
        }
        const trace = context.trace
        const opinionOf = (item: (typeof ready)[number], judgement: Judgement | undefined): Opinion | undefined => {
          if (judgement === undefined) return undefined
          const direction = judgement.direction === "short" && !allowShort ? "flat" : judgement.direction
          item.state.pending.push({ due: item.state.tracker.count + horizon, round: item.round, direction, close: item.brief.close })
          return {
            round: item.round,
            agent: name,
            symbol: item.symbol,
            ts: request.ts,
            direction,
            confidence: judgement.confidence,
            horizon,
            rationale: judgement.rationale,
            features: { close: item.brief.close, ...item.brief.indicators }
          }
        }
        const thinkingOf = ({ brief, round }: (typeof ready)[number]): Thinking<typeof config> => {
          const reason = (order: number, reasoning: ReasoningKind, role: string, text: string) =>
            log.defer(
              recordingKey(name, round, `~${String(order).padStart(3, "0")}`),
              "ReasoningRecorded",
              { agent: name, round, kind: reasoning, role, text },
              // The decision carries the brief it was made from, as its JSON was made when its bars came.
              reasoning === "decision" ? { key: "context", value: brief, json: briefJson(brief) } : undefined
            )
          reason(0, "plan", planRole, kind.plan(config, brief))
          return { agent: name, round, brief, config, allowShort, session: session.forRound(name, round, answers), reason }
        }
        // Rounds whose answers are at hand are decided here and now (untraced rounds only: a traced
        // one wants each call's span); the others think in parallel, each against the deadline.
        const results: Array<Opinion | undefined> = new Array(ready.length)
        const asked: Array<number> = []
        const asking: Array<Thinking<typeof config>> = []
        for (let i = 0; i < ready.length; i++) {
          const thinking = thinkingOf(ready[i]!)
          const now = trace === undefined && kind.thinkNow !== undefined ? kind.thinkNow(thinking) : undefined
          if (now === undefined) {
            asked.push(i)
            asking.push(thinking)
          } else {
            results[i] = opinionOf(ready[i]!, now ?? undefined)
          }
        }
        if (asked.length > 0) {
          const thought = yield* Effect.forEach(asking, (thinking) => kind.think(thinking).pipe(withDeadline(deadline, wallClock, onDeadline)), {
            concurrency: "unbounded"
          })
          for (let j = 0; j < asked.length; j++) results[asked[j]!] = opinionOf(ready[asked[j]!]!, thought[j])
        }
        const given = results.filter((o): o is Opinion => o !== undefined)
        if (trace !== undefined) traceOpinions(trace, name, given)
        yield* context.reply(request, given)
        return symbols
      })
  })
}
