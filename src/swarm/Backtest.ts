/**
 * A backtest: a strategy's swarm replaying a feed on a virtual clock, as fast as the machine
 * allows. The same agents as a paper run (agents/), scheduled on the run's `World`.
 */
import { createHash } from "node:crypto"
import { Cause, Effect, Either, Exit, Fiber, Option, Schema, Scope } from "effect"
import type { InvalidAgent } from "../../schemas/AnalystProtocol.js"
import type { AnyModel } from "../../agents/analysts/Model.js"
import type { RoundId, RunId, Timestamp } from "../../schemas/Ids.js"
import type { Metrics } from "../../schemas/Metrics.js"
import type { OrderIntent } from "../../schemas/Order.js"
import type { PortfolioSnapshot } from "../../schemas/Portfolio.js"
import type { IllegalTransition, StateTransition, TradingState, TradingStatus } from "../../schemas/Risk.js"
import type { AnalystProgress, BreakerChecks, RunEvent } from "../../schemas/RunEvent.js"
import type { AgentRestarts, LlmUsage } from "../../schemas/Rpc.js"
import { agentName, Strategy as StrategySchema, type Strategy } from "../../schemas/Strategy.js"
import type { StrategyId } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import { CloseBooks, DataEnded, GetTradingStatus, marketUpdate, ResolveApproval, SetTradingState } from "../../schemas/TradingProtocol.js"
import * as ActorSystem from "../actor/ActorSystem.js"
import * as MetricsOf from "../trading/Metrics.js"
import * as AgentTally from "./AgentTally.js"
import * as Run from "./Run.js"
import { RunLog } from "./RunLog.js"
import { World } from "./World.js"
import type { Trade } from "../../schemas/Trade.js"
import { canonicalSignal, type ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { Feed, Slice } from "../market/Feed.js"
import { type AnalystOf, usesLlm } from "../../agents/registry.js"
import { defaultLlmConfig, type LlmCall } from "../../schemas/Llm.js"
import type { AnswerCache } from "../llm/AnswerCache.js"
import type { LiveBudgets } from "../llm/Budget.js"
import type { LanguageModel } from "../llm/LanguageModel.js"
import { LlmSession, type RateLimit, recordingKey } from "../llm/LlmSession.js"
import * as Offline from "../llm/Offline.js"
import { PromptLedger } from "../llm/RunPrompts.js"
import * as Sampling from "../telemetry/Sampling.js"

/** How much of each round the event log records (see docs/backtest-engine.md). */
export const EventDetail = Schema.Literal("decisions", "rounds")
export type EventDetail = typeof EventDetail.Type

export interface Progress {
  /** Bars and slices replayed so far. */
  readonly bars: number
  readonly slices: number
  /** The virtual time reached. */
  readonly ts: Timestamp
  /** Mark-to-market equity at `ts`, micros. */
  readonly equity: number
  readonly orders: number
  /** Events logged so far (the last one's sequence number). */
  readonly events: number
}

/** An intent the strategy's approval policy `pause` holds until someone decides. */
export interface ApprovalRequest {
  readonly round: string
  /** When the run's clock says it expires (virtual time in a backtest). */
  readonly expiresAt: number
  readonly intent: OrderIntent
  readonly quantity: number
  readonly reasons: ReadonlyArray<string>
}

export interface ApprovalAnswer {
  readonly approved: boolean
  /** Nobody decided in time: a rejection recorded as `expired`. */
  readonly expired?: boolean
  /** Who decided (an operator's name). */
  readonly by: string
  readonly reason: string
}

/**
 * An operator's command to move the run's trading state (`runs.trading`): taken right before a
 * slice is delivered, recorded (`TradingStateRequested`: an input of the run, which a re-execution
 * gives back at the same slice, `RecordedTrading`) and sent to the risk officer (`SetTradingState`)
 * at that slice's time, so that its `TradingStateChanged` — cause `operator`, the actor and the
 * reason — lands before the slice's own events.
 */
export interface TradingCommand {
  readonly to: TradingState
  readonly actor: string
  readonly reason: string
  /** Told how it went, once (a live operator waits for it); the commands a re-execution gives back have none. */
  readonly answer?: (outcome: TradingOutcome) => void
}

/**
 * What became of a `TradingCommand`: the state moved; refused by the state machine (resuming a run
 * that is active); or not sent, fail closed, because the risk officer is down — crashed and not yet
 * restarted, or the run halted over it until it answers again — and the state stays as it is.
 */
export type TradingOutcome =
  | { readonly _tag: "Moved"; readonly status: TradingStatus; readonly transition: StateTransition }
  | { readonly _tag: "Refused"; readonly error: IllegalTransition }
  | { readonly _tag: "Down"; readonly reason: string }

export interface Options {
  readonly strategy: Strategy
  readonly feed: Feed
  /** Seeds the run's `Random`; part of the run's identity. Default "0". */
  readonly seed?: string
  /** Default: derived from the strategy, the data fingerprint and the seed (same inputs, same id). */
  readonly runId?: RunId
  /** `decisions` (default): rounds whose decision changed the target, in full; `rounds`: every round's opinions and decision. */
  readonly events?: EventDetail
  /** Called with every event and its canonical JSON (the line the checksum covers), in sequence order. */
  readonly onEvent?: (event: RunEvent, json: string) => void
  /** Called every few hundred slices and once at the end. */
  readonly onProgress?: (progress: Progress) => void
  /** Asked when an intent needs approval under the `pause` policy; without it such a run fails with `ApprovalRequired`. */
  readonly approver?: (request: ApprovalRequest) => Effect.Effect<ApprovalAnswer, BacktestError>
  /** The analyst types strategies can name; default the registry of agents/registry.ts. */
  readonly registry?: ReadonlyMap<string, AnyModel>
  /** Crash agents on purpose (chaos tests, drills): see `Run.Faults`. */
  readonly faults?: Run.Faults
  /**
   * A re-execution (replay, resume): what the recording's `RunStarted` said of how the run behaves,
   * said again and done so — each behaviour a run recorded before it does not name is re-executed
   * the old way: `{}` for a run recorded before all six (a reduced intent done once its cut order is
   * placed; a flat scored as "moved less"; the last slice's open rounds dropped; the breakers
   * checked only as intents are judged; an analyst's warm-up bars counted as progress; the risk
   * officer's moves under the coordinator's halt recorded as they came); `breakers: "marks"` for one
   * recorded before same-close fills were checked (the breakers at the marks only); `downHalts:
   * "chained"` for one recorded before a run ending under the coordinator's halt settled it (ended
   * halted, the officer's moves under it unrecorded); no `stateRejections` for one recorded before a
   * decision the halted state rejected stood (judged again on every bar); no `workingOrders` for one
   * recorded before the order toward a reduced target was kept working under a volume limit (placed
   * again on every bar); no `fractionalCuts` for one recorded before a fractional strategy's order of
   * a whole number of units was cut on micro-units (cut in whole units). Absent: a new run, which
   * behaves as runs do now and says so.
   */
  readonly recordedStart?: {
    readonly reducedIntents?: "worked" | undefined
    readonly flatScoring?: "not_long" | undefined
    readonly lastRounds?: "closed" | undefined
    readonly breakers?: BreakerChecks
    readonly analystProgress?: AnalystProgress
    readonly downHalts?: "chained" | "settled" | undefined
    readonly stateRejections?: "standing" | undefined
    readonly workingOrders?: "kept" | undefined
    readonly fractionalCuts?: "micro" | undefined
  }
  /** The stored strategy and version the run records in `RunStarted`; default the strategy's name, version 1. */
  readonly strategyRef?: { readonly id: StrategyId; readonly version: number }
  /**
   * Flow control for what consumes the events (the store): run between slices, every 16 slices,
   * with the progress so far; it may wait; a failure stops the run with that error.
   */
  readonly pace?: (progress: Progress) => Effect.Effect<void, BacktestError>
  /**
   * Called before each slice is delivered, with its time: a paper run waits here for the slice's
   * wall-clock moment. The agents see the same messages either way; only the pacing differs.
   */
  readonly beforeSlice?: (ts: Timestamp) => Effect.Effect<void>
  /** What `RunStarted` calls the run: a backtest (default) or a paper run (a paced feed). */
  readonly mode?: "backtest" | "paper"
  /**
   * Outside signals (TradingView alerts): asked right before each slice is delivered, with its time
   * and the number of events logged so far. Each signal returned goes with the first slice, from
   * this one on, that has a bar of its symbol, and is recorded then (`SignalReceived`, before the
   * slice's own events): a replay gives the recorded ones back at the same slices. Return the same
   * empty array when there is nothing (it is asked on every slice).
   */
  readonly signals?: (ts: Timestamp, events: number) => ReadonlyArray<ExternalSignal>
  /**
   * The outside signals left when the run ends: asked once, with the number of events logged so
   * far — a live run's inbox, closed, or what the recording says was left. Each is recorded as
   * `SignalNotApplied`, after those that waited in vain for a bar of their symbol: before
   * `RunCompleted` or `RunFailed` when the data ran out or an agent ended the run, and as the
   * run's last events when it failed with an error (a `BacktestError` at any slice, an agent type
   * it cannot start) — a signal the run took is never dropped without a trace. Not asked when the
   * run is interrupted: a stopped run's log ends where it was stopped (its replay must reproduce
   * it) and a suspended one goes on; the caller closes its source itself.
   */
  readonly leftoverSignals?: (events: number) => ReadonlyArray<ExternalSignal>
  /**
   * Operators' trading-state commands (`TradingCommand`): asked right before each slice is
   * delivered, with its time and the number of events logged so far; each is carried out then, in
   * order. Return the same empty array when there is none (it is asked on every slice).
   */
  readonly trading?: (ts: Timestamp, events: number) => ReadonlyArray<TradingCommand>
  /**
   * Where a run an operator paused stands (a live run's): asked at each slice right after its
   * trading-state commands, before its market data and signals. Undefined (almost always: it is
   * asked at every slice) lets the slice go on; else an Effect that waits until the run goes on
   * (with no command) or operators' commands come (with them), which are carried out there, at
   * this slice, as those taken before it were — a paused run's commands are taken at once, at the
   * bar it takes next, and recorded exactly as they would be once it goes on (a re-execution gives
   * them back at that slice, with the others: nothing else happens in between). Asked again until
   * it says undefined.
   */
  readonly hold?: (ts: Timestamp) => Effect.Effect<ReadonlyArray<TradingCommand>> | undefined
  /**
   * Operators' trading-state commands for a run waiting for an operator's answer to a held intent:
   * `take` is asked, with the slice's time and the number of events
   * logged so far, before each answer is awaited and whenever `arrival` is done (a command came);
   * each command it gives is carried out at once, at that slice, recorded `waiting` — a halt or a
   * reduce refuses the held intents there (agents/RiskOfficer.ts). A re-execution gives each
   * recorded one back at its event (`RecordedTrading.waitingSource`). Without it, a waiting run
   * takes no command until its next slice. No flag in `RunStarted` gates it: it is an input, and a
   * run recorded before it has none to give back (its held intents are refused only by such a command).
   */
  readonly waiting?: {
    readonly take: (ts: Timestamp, events: number) => ReadonlyArray<TradingCommand>
    /** Done once a command may be there to take (never, for a re-execution's recorded ones alone). */
    readonly arrival: Effect.Effect<void>
  }
  /** Language models for the strategy's LLM analysts; default the offline model, no cache. */
  readonly llm?: LlmOptions
  /**
   * End the run after the slice in which its log reaches this many events, failed (the replay of a
   * stopped run, whose recording ends there: what comes after would be compared with nothing).
   */
  readonly endAfter?: number
  /**
   * The fraction of the run's cycles (a timestamp's rounds) traced, 0 to 1 (src/telemetry/Sampling.ts);
   * default the process's `TraceSampling` rate for the mode (every round of a paper run, none of a backtest).
   */
  readonly traceRounds?: number
  /**
   * While it says true, no cycle is traced: a resume re-executing what its recording holds, whose
   * rounds were traced when they happened (traced again, they were duplicates stamped with the
   * wall-clock time of the catch-up, thousands of them, pushing the live rounds out of the span store).
   */
  readonly untracedWhile?: () => boolean
}

export interface LlmOptions {
  readonly model: LanguageModel["Type"]
  readonly cache?: AnswerCache["Type"]
  /** The process-wide cap on calls in flight. */
  readonly limiter?: Effect.Semaphore
  /** The rate limit every process together respects (`LLM_RATE_PER_SECOND`). */
  readonly rate?: RateLimit
  /** The process's live budgets: the run's is registered there while it runs, for its chat to spend too. */
  readonly budgets?: LiveBudgets
  /**
   * What the run's chat had spent before this execution (a resume: the chat may have gone on while
   * no process ran the run), charged to the run's budget as it is registered, once.
   */
  readonly chatSpent?: { readonly tokens: number; readonly cost: number }
  /** The calls an earlier execution of the run recorded (replay, resume): answered from them, no model call. */
  readonly recorded?: ReadonlyArray<LlmCall>
  /**
   * What the recording's `RunStarted` said of its language model (replay, resume): said again, so the
   * re-execution's first event is the recording's whatever backend answers it now.
   */
  readonly started?: {
    readonly backend: LlmCall["backend"]
    readonly model: string
    readonly description: string
    readonly reasoningRoles?: "own" | undefined
    readonly prompts?: "parts" | undefined
    readonly failedCalls?: "uncharged" | undefined
  }
}

export interface Result {
  readonly runId: RunId
  readonly status: "completed" | "failed"
  /** Why a failed run failed. */
  readonly failure?: string
  readonly metrics: Metrics
  /** Closed round trips, in closing order. */
  readonly trades: ReadonlyArray<Trade>
  /** The final books, marked at the last prices. */
  readonly portfolio: PortfolioSnapshot
  readonly tradingState: TradingState
  /** SHA-256 (hex) over the canonical JSON lines of every event before `RunCompleted`. */
  readonly checksum: string
  readonly counts: {
    readonly bars: number
    readonly slices: number
    readonly rounds: number
    readonly decisions: number
    readonly orders: number
    readonly fills: number
    readonly rejected: number
    readonly restarts: number
    readonly events: number
  }
  /** Its agents that crashed: how often each was restarted, and its last crash's cause, those restarted most first. */
  readonly agentRestarts: ReadonlyArray<AgentRestarts>
  /**
   * Its analysts that gave no vote in some rounds, in roster order, with why: no opinion for the
   * round (warming up, or none to give), past the deadline, a failed answer (a crash), below the
   * minimum confidence. Counted, not recorded: the same whatever the event detail.
   */
  readonly abstentions: ReadonlyArray<Abstentions>
  readonly from: Timestamp
  readonly to: Timestamp
  /**
   * A run with LLM agents: which language model answered (its `RunStarted` said so) and, when the
   * budget ran out, why (its `LlmBudgetSpent`) — from then on its LLM agents abstained.
   */
  readonly llm?: LlmUsage & { readonly budgetSpent?: string }
}

/** A run that cannot start or cannot go on: which field or input, and why. */
export class BacktestError extends Schema.TaggedError<BacktestError>()("BacktestError", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.field}: ${this.reason}`
  }
}

/** The most symbols an error lists (W2's data has a hundred). */
const LISTED = 10

const listed = (symbols: ReadonlyArray<string>): string =>
  symbols.length <= LISTED ? symbols.join(", ") : `${symbols.slice(0, LISTED).join(", ")} and ${symbols.length - LISTED} more`

/**
 * Every symbol of the strategy is in the feed, or a `BacktestError` saying which are not and what
 * the data has. Callers that record runs check it before recording anything: bad input is no run.
 * The feed is usually already cut to the strategy's symbols, so what the data has comes from
 * `available`, not from `symbols`.
 */
export const checkSymbols = (strategy: Pick<Strategy, "symbols">, feed: Pick<Feed, "symbols" | "available">): Either.Either<void, BacktestError> => {
  const delivered = new Set<string>(feed.symbols)
  const missing = strategy.symbols.filter((symbol) => !delivered.has(symbol))
  if (missing.length === 0) return Either.void
  const data = feed.available ?? feed.symbols
  const held = new Set<string>(data)
  const absent = missing.filter((symbol) => !held.has(symbol))
  return Either.left(
    new BacktestError({
      field: "symbols",
      reason: absent.length > 0
        ? `no data for ${listed(absent)} (the data has ${data.length === 0 ? "no symbols" : listed(data)})`
        : `no data for ${listed(missing)} in the period (the data has bars of them outside it)`
    })
  )
}

/**
 * The symbols the data holds that the strategy does not trade, sorted: the run never sees them, so
 * the caller says so (a file named after its symbol, `prices.csv`, is symbol "prices", not the one meant).
 */
export const untraded = (strategy: Pick<Strategy, "symbols">, feed: Pick<Feed, "symbols" | "available">): ReadonlyArray<string> => {
  const traded = new Set<string>(strategy.symbols)
  return (feed.available ?? feed.symbols).filter((symbol) => !traded.has(symbol))
}

/**
 * The analysts that cannot warm up on some of the data, in roster order, each in a sentence: those
 * whose warm-up (`AnalystOf.warmUp`: the bars of a symbol before its first opinion) is longer than
 * the bars the feed has of a symbol, when the feed says how many (`Feed.barsBySymbol`). Not an
 * error — the run is what it is — but an analyst that will never give an opinion there runs
 * silently otherwise (an SMA crossover of slow period 10,000 on 500 bars), so the caller says so
 * before it starts. Measures each analyst's warm-up (agents/registry.ts `warmUpOf`), once.
 */
export const unwarmed = (
  roster: ReadonlyArray<Pick<AnalystOf, "name" | "warmUp">>,
  feed: Pick<Feed, "barsBySymbol">
): ReadonlyArray<string> => {
  const counts = feed.barsBySymbol
  if (counts === undefined || counts.size === 0) return []
  const warnings: Array<string> = []
  for (const analyst of roster) {
    const warmUp = analyst.warmUp()
    if (warmUp === undefined) continue
    const short = [...counts].filter(([, bars]) => bars < warmUp)
    if (short.length === 0) continue
    const most = Math.max(...short.map(([, bars]) => bars))
    const same = short.every(([, bars]) => bars === most)
    const which = short.length < counts.size ? "them" : counts.size === 1 ? short[0]![0] : "any of its symbols"
    warnings.push(
      `${analyst.name} needs ${warmUp.toLocaleString("en-US")} bars of a symbol before its first opinion, and the data has ` +
        `${same ? "" : "at most "}${most.toLocaleString("en-US")} of ${listed(short.map(([symbol]) => symbol))}: ` +
        `it will give no opinion on ${which} in this run`
    )
  }
  return warnings
}

/**
 * `bt-` and 12 hex digits of SHA-256 over the strategy, the data fingerprint, the seed and — when
 * not the default `decisions` — the events' detail, which changes the event log and its checksum
 * (left out for the default, so run ids from before it counted stay as they were).
 */
export const runIdOf = (strategy: Strategy, fingerprint: string, seed: string, events: EventDetail = "decisions"): RunId => {
  const hash = createHash("sha256").update(JSON.stringify(Schema.encodeSync(StrategySchema)(strategy))).update("\0").update(fingerprint).update("\0").update(seed)
  if (events !== "decisions") hash.update("\0").update(events)
  return `bt-${hash.digest("hex").slice(0, 12)}` as RunId
}

/** How often (in slices) the driver reports progress. */
const PROGRESS_EVERY = 256
/**
 * How often (in slices) the driver calls `pace` and looks at the time: deterministic points, so a
 * consumer that checkpoints or compares there does it at the same slices on every run.
 */
const PACE_EVERY = 16
/**
 * The longest the driver keeps the event loop to itself: the process stays responsive (a server's
 * requests, Ctrl-C) and the store's writer gets a turn for each of its round trips.
 */
const YIELD_MILLIS = 4

const yieldToEventLoop = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * Run a backtest to its end (docs/backtest-engine.md): the swarm is started in a fresh `World`,
 * each slice of the feed is delivered at its virtual time and the world settles before the next
 * one. Bad strategy agents are `InvalidAgent`; anything else that stops a run from starting (no
 * data for a symbol, an empty period) is `BacktestError`. A run that cannot go on — its
 * supervision tree gives up, an intent needs approval and no operator is attached — ends with
 * status `failed`, its log with `RunFailed`.
 */
/** An analyst's rounds without a vote over a run, by why (`Result.abstentions`). */
export interface Abstentions {
  /** Its name in the run (`agents[i].name`, or its type). */
  readonly agent: string
  readonly type: string
  /** The rounds it was asked in: every round of the run. */
  readonly rounds: number
  /** No opinion for the round: warming up, or none to give. */
  readonly silent: number
  /** No answer by the round's deadline. */
  readonly late: number
  /** Its answer a failure: a crash, a refusal. */
  readonly failed: number
  readonly belowMinConfidence: number
}

const abstentionsOf = (strategy: Strategy, stats: Run.RunningSwarm["stats"]): ReadonlyArray<Abstentions> =>
  (stats.abstained ?? []).flatMap((a, i) => {
    const agent = strategy.agents[i]!
    // A round an analyst gave up on at its own deadline came back without an opinion: past the deadline, not silent.
    const gaveUp = Math.min(a.gaveUp, a.silent)
    return a.silent + a.late + a.failed + a.belowMinConfidence === 0 ? [] : [{
      agent: agentName(agent),
      type: agent.type,
      rounds: stats.rounds,
      silent: a.silent - gaveUp,
      late: a.late + gaveUp,
      failed: a.failed,
      belowMinConfidence: a.belowMinConfidence
    }]
  })

export const run = (options: Options): Effect.Effect<Result, BacktestError | InvalidAgent> =>
  Effect.gen(function*() {
    const { feed, strategy } = options
    yield* checkSymbols(strategy, feed)
    const wanted = new Set<string>(strategy.symbols)
    const filter = feed.symbols.length === strategy.symbols.length
      ? undefined
      : (slice: Slice): Slice | undefined => {
        const bars = slice.bars.filter((bar) => wanted.has(bar.symbol))
        return bars.length === 0 ? undefined : { ts: slice.ts, bars }
      }
    const iterator = feed[Symbol.iterator]()
    const nextSlice = (): Slice | undefined => {
      for (;;) {
        const next = iterator.next()
        if (next.done === true) return undefined
        const slice = filter === undefined ? next.value : filter(next.value)
        if (slice !== undefined) return slice
      }
    }
    let slice = nextSlice()
    if (slice === undefined) {
      return yield* new BacktestError({ field: "data", reason: "no bars of the strategy's symbols in the period" })
    }
    const seed = options.seed ?? "0"
    const runId = options.runId ?? runIdOf(strategy, feed.fingerprint, seed, options.events)
    const from = slice.ts
    const world = yield* World.make({ start: from, seed })
    const log = new RunLog(runId, () => world.now)
    if (options.onEvent !== undefined) log.subscribe(options.onEvent)

    let restarts = 0
    const restartCounter = new AgentTally.RestartCounter()
    log.subscribe((event) => {
      if (event._tag !== "AgentLifecycle") return
      const e = event.event
      if (e._tag === "ActorCrashed") restartCounter.crashed(e.actor, event.seq, e.cause)
      else if (e._tag === "ActorRestarted") restartCounter.restarted(e.actor)
    })
    let observing = true
    const scope = yield* Scope.make()
    const system = world.runOrThrow(
      Scope.extend(
        ActorSystem.make({
          observe: {
            lifecycle: (event) => {
              if (!observing) return
              if (event._tag === "ActorRestarted") restarts++
              log.emit("AgentLifecycle", { event })
            },
            deadLetter: (letter) => {
              if (!observing) return
              const message = letter.message as { readonly _tag?: unknown } | null
              log.emit("DeadLetterRecorded", {
                recipient: letter.recipient,
                ...(letter.sender === undefined ? {} : { sender: letter.sender }),
                message: typeof message?._tag === "string" ? message._tag : typeof message,
                reason: letter.reason,
                ...(letter.detail === undefined ? {} : { detail: letter.detail })
              })
            }
          }
        }),
        scope
      )
    )
    const closeWorld = Effect.sync(() => {
      observing = false
      // The run has ended (completed, failed or stopped): whatever its agents do while the world
      // closes is no event of it.
      log.seal()
      world.runOrThrow(Scope.close(scope, Exit.void))
    })

    const llmOptions = usesLlm(strategy.agents) ? options.llm ?? { model: Offline.make() } : undefined
    const llmConfig = strategy.llm ?? defaultLlmConfig
    // What `RunStarted` says of the language model: the recording's (replay, resume), else this run's,
    // with every recording option a new run takes.
    const llm = llmOptions === undefined ? undefined : llmOptions.started ?? {
      backend: llmOptions.model.backend.kind,
      model: llmConfig.model,
      description: llmOptions.model.backend.description,
      reasoningRoles: "own" as const,
      prompts: "parts" as const,
      failedCalls: "uncharged" as const
    }
    // Each prompt's parts once in the run (`llm.prompts: "parts"`), decided in the log's order.
    const prompts = new PromptLedger()
    const session = llmOptions === undefined ? undefined : new LlmSession({
      run: runId,
      config: llmConfig,
      model: llmOptions.model,
      cache: llmOptions.cache,
      limiter: llmOptions.limiter,
      rate: llmOptions.rate,
      recording: llmOptions.recorded === undefined
        ? undefined
        : new Map(llmOptions.recorded.map((call) => [recordingKey(call.agent, call.round, call.step), call])),
      seed: seedNumber(seed),
      promptParts: llm?.prompts === "parts",
      ...(llm?.failedCalls === undefined ? {} : { failedCalls: llm.failedCalls }),
      onCall: (call) => log.defer(recordingKey(call.agent, call.round, call.step), "LlmCalled", () => ({ call: prompts.record(call) })),
      onBudgetSpent: (call) => {
        // A refused call answered from the recording (a resume re-executing its recorded part) is
        // the run's refusal too: from here its budget refuses every call, as it did when the call
        // was made — a live call after the recorded part must not find room the run never gave.
        session!.budget.refuseAs(call.error)
        // Once: in the first slice with refused calls, after the first of them in the log's order.
        log.deferFirst("LlmBudgetSpent", `${recordingKey(call.agent, call.round, call.step)}\u0000~budget`, "LlmBudgetSpent", {
          agent: call.agent,
          ...(call.round === undefined ? {} : { round: call.round }),
          reason: call.error ?? "the LLM budget is spent"
        })
      }
    })

    let budgetSpent: string | undefined
    const llmCounter = new AgentTally.LlmCounter()
    if (session !== undefined) {
      log.subscribe((event) => {
        if (event._tag === "LlmCalled") llmCounter.called(event.call)
        else if (event._tag === "LlmBudgetSpent") budgetSpent ??= event.reason
      })
    }
    const withdrawBudget = session === undefined ? undefined : llmOptions?.budgets?.register(session.budget, llmOptions.chatSpent)


    const reducedIntents = options.recordedStart === undefined ? "worked" as const : options.recordedStart.reducedIntents
    const flatScoring = options.recordedStart === undefined ? "not_long" as const : options.recordedStart.flatScoring
    const lastRounds = options.recordedStart === undefined ? "closed" as const : options.recordedStart.lastRounds
    // New runs check their breakers at every mark and after same-close fills; a re-execution does as its recording did.
    const breakers: BreakerChecks = options.recordedStart === undefined ? "fills" : options.recordedStart.breakers
    // New runs give up on an analyst that fails on every bar once warmed up; a re-execution does as its recording did.
    const analystProgress: AnalystProgress = options.recordedStart === undefined ? "past_warm_up" : options.recordedStart.analystProgress
    // New runs record the officer's moves under the coordinator's halt after it lifts, or at their
    // end if it never does (`settled`); a re-execution as its recording did.
    const downHalts = options.recordedStart === undefined ? "settled" as const : options.recordedStart.downHalts
    // New runs send a decision the halted state rejected once, until the state or the consensus changes.
    const stateRejections = options.recordedStart === undefined ? "standing" as const : options.recordedStart.stateRejections
    // New runs with a volume limit keep the order toward a reduced target working (runs without one
    // have no order working for bars, and record nothing new); a re-execution does as its recording did.
    const workingOrders = options.recordedStart === undefined
      ? strategy.execution.maxVolumePercent === undefined ? undefined : "kept" as const
      : options.recordedStart.workingOrders
    // New runs of a fractional strategy cut its orders on micro-units whatever their quantity (a
    // strategy of whole units cuts whole units either way, and records nothing new); a re-execution as recorded.
    const fractionalCuts = options.recordedStart === undefined
      ? strategy.sizing.fractional ? "micro" as const : undefined
      : options.recordedStart.fractionalCuts
    /**
     * A run ending under the coordinator's halt (`downHalts: "settled"`): the halt ends with it, and
     * the officer's moves under it are recorded, so that the run ends in the officer's state (RunLog.settleHalt).
     */
    const settleHalt = (ts: Timestamp) => {
      if (downHalts === "settled") {
        log.settleHalt(ts, "the run ends under the halt for a risk officer that was down: the halt ends with it, and trading ends in the officer's state")
      }
    }

    /** Signals waiting for a bar of their symbol (data with gaps). */
    let held: Array<ExternalSignal> | undefined
    /** The time of the slice in hand: the first bar's before the first slice, the last's after it. */
    let at = from
    let leftoversRecorded = false
    /**
     * The signals the run took and will never apply — held ones, then `leftoverSignals` — recorded
     * as `SignalNotApplied` at `ts`; once, however the run ends. One reason for both kinds: a replay
     * gives them all back through `leftoverSignals` (the held ones never entered its `signals`), and
     * must write the same bytes.
     */
    const recordLeftovers = (ts: Timestamp) => {
      if (leftoversRecorded) return
      leftoversRecorded = true
      for (const signal of (held ?? []).concat(options.leftoverSignals?.(log.size) ?? [])) {
        log.emit("SignalNotApplied", { ts, signal: canonicalSignal(signal), reason: `the run ended before a bar of ${signal.symbol} could take it` })
      }
      held = undefined
    }

    return yield* Effect.gen(function*() {
      log.emit("RunStarted", {
        strategy: options.strategyRef?.id ?? strategy.name as StrategyId,
        strategyVersion: options.strategyRef?.version ?? 1,
        mode: options.mode ?? "backtest",
        seed,
        symbols: strategy.symbols,
        dataFingerprint: feed.fingerprint,
        ...(reducedIntents === undefined ? {} : { reducedIntents }),
        ...(flatScoring === undefined ? {} : { flatScoring }),
        ...(lastRounds === undefined ? {} : { lastRounds }),
        ...(breakers === undefined ? {} : { breakers }),
        ...(analystProgress === undefined ? {} : { analystProgress }),
        ...(downHalts === undefined ? {} : { downHalts }),
        ...(stateRejections === undefined ? {} : { stateRejections }),
        ...(workingOrders === undefined ? {} : { workingOrders }),
        ...(fractionalCuts === undefined ? {} : { fractionalCuts }),
        ...(llm === undefined ? {} : { llm })
      })
      let equity: number = strategy.initialCash
      const rates = yield* Sampling.TraceSampling
      const sampled = Sampling.sampler(options.traceRounds ?? (options.mode === "paper" ? rates.paper : rates.backtest))
      const untracedWhile = options.untracedWhile
      const sampler: Sampling.RoundSampler | undefined = sampled === undefined || untracedWhile === undefined
        ? sampled
        : { sample: () => !untracedWhile() && sampled.sample() }
      const started = world.run(
        Run.start({
          run: runId,
          strategy,
          seed,
          log,
          events: options.events ?? "decisions",
          workRemainders: reducedIntents === "worked",
          ...(flatScoring === undefined ? {} : { flatScoring }),
          ...(options.registry === undefined ? {} : { registry: options.registry }),
          ...(options.faults === undefined ? {} : { faults: options.faults }),
          ...(session === undefined ? {} : { llm: { session, wallClock: options.mode === "paper", ownPlanRole: llm?.reasoningRoles === "own" } }),
          ...(sampler === undefined ? {} : { sampler }),
          ...(breakers === undefined ? {} : { breakers }),
          ...(analystProgress === undefined ? {} : { analystProgress }),
          ...(downHalts === undefined ? {} : { chainedHalts: true }),
          ...(stateRejections === undefined ? {} : { standingRejections: true }),
          ...(workingOrders === undefined ? {} : { keepWorkingOrders: true }),
          ...(fractionalCuts === undefined ? {} : { fractionalCuts: true }),
          // Watched live: equity and positions move with the market between fills (agents/Ledger.ts).
          ...(options.mode === "paper" ? { wholeBook: true } : {}),
          onMark: (_, e) => {
            equity = e
          }
        }).pipe(Effect.provideService(ActorSystem.ActorSystem, system))
      )
      if (Exit.isFailure(started)) {
        const failure = Cause.failureOption(started.cause)
        if (failure._tag === "Some") return yield* Effect.fail(failure.value)
        return yield* Effect.die(Cause.squash(started.cause))
      }
      const swarm = started.value
      const ended = world.start(swarm.supervisor.awaitTermination)

      let slices = 0
      let bars = 0
      let to = from
      let failure: string | undefined
      /** The run's supervisor gave up: its agents are stopped (see `Run.gaveUp`). */
      let escalated = false
      /**
       * Whether the supervision tree has given up; if so, the failure says on which agent and why,
       * and — its agents stopped, nothing trades any more — the trading state goes to `halted`.
       */
      const gaveUp = (ts: Timestamp) =>
        Effect.gen(function*() {
          const exit = ended.poll()
          if (exit === undefined) return false
          if (Exit.isSuccess(exit) && exit.value === "escalated") {
            escalated = true
            failure = yield* Run.gaveUp(swarm, ts)
            // What the officer moved under the coordinator's halt is owed before the run's own halt
            // (with nothing owed, the coordinator's halt stands for it: the officer is given up on).
            if (log.owedUnderHalt > 0) settleHalt(ts)
            const from = log.tradingState
            if (from !== "halted") {
              log.emit("TradingStateChanged", { transition: { from, to: "halted", cause: "system", at: ts, reason: failure, actor: null } })
            }
          } else {
            failure = `the run's supervisor gave up (${Exit.isSuccess(exit) ? exit.value : "interrupted"}) at ${new Date(ts).toISOString()}`
          }
          return true
        })
      let yielded = performance.now()
      // A paper run waits for every slice anyway: pausing at each costs nothing, and lets a server
      // shutting down checkpoint exactly where the run stands (see StoredRun's `suspended`).
      const paceEvery = options.mode === "paper" ? 1 : PACE_EVERY
      const progress = (): Progress => ({ bars, slices, ts: to, equity, orders: log.count("OrderPlaced"), events: log.size })
      /** The signals that go with `slice`, recorded; undefined when none do (almost every slice). */
      const delivered = (slice: Slice): ReadonlyArray<ExternalSignal> | undefined => {
        const drained = options.signals!(slice.ts, log.size)
        if (drained.length === 0 && held === undefined) return undefined
        const candidates = held === undefined ? drained : held.concat(drained)
        held = undefined
        const out: Array<ExternalSignal> = []
        for (const signal of candidates) {
          if (slice.bars.some((bar) => bar.symbol === signal.symbol)) out.push(canonicalSignal(signal))
          else (held ??= []).push(signal)
        }
        for (const signal of out) log.emit("SignalReceived", { ts: slice.ts, signal })
        return out.length === 0 ? undefined : out
      }
      /** Carry out an operator's command at the slice in hand (`TradingCommand`). */
      const operate = (command: TradingCommand): TradingOutcome => {
        // The coordinator's halt over a risk officer that did not answer: it lifts once the officer
        // answers a judgement again, not on an operator's word.
        const last = log.lastTransition
        if (last !== undefined && last.cause === "system" && last.to === "halted") {
          return { _tag: "Down", reason: `the run is halted while its risk officer is down (${last.reason}): the trading state stays halted until the officer answers again` }
        }
        if (!swarm.risk.running) {
          return { _tag: "Down", reason: "the run's risk officer is down (restarting): nothing moves the trading state until it is back" }
        }
        const from = log.tradingState
        // Unchecked: the edge checked the command, and the state machine refuses an empty actor or
        // reason as an `IllegalTransition` — a command must never throw inside the run's loop.
        const exit = world.run(swarm.risk.ask(new SetTradingState({ to: command.to, actor: command.actor, reason: command.reason }, true)))
        if (Exit.isSuccess(exit)) {
          const status = exit.value
          return {
            _tag: "Moved",
            status,
            transition: { from, to: status.state, cause: "operator", at: status.since, reason: status.reason, actor: status.actor }
          }
        }
        const failure = Cause.failureOption(exit.cause)
        if (failure._tag === "None") return { _tag: "Down", reason: `the run's risk officer did not answer: ${Cause.pretty(exit.cause).split("\n")[0]}` }
        const error = failure.value
        return error._tag === "IllegalTransition"
          ? { _tag: "Refused", error }
          : { _tag: "Down", reason: `the run's risk officer did not answer (${error._tag}): the trading state was not moved` }
      }
      /** Record and carry out operators' commands at the slice of time `ts`, in order, each answered as it is. */
      const take = (ts: Timestamp, commands: ReadonlyArray<TradingCommand>, waiting = false) => {
        for (const command of commands) {
          log.emit("TradingStateRequested", { ts, to: command.to, actor: command.actor, reason: command.reason, ...(waiting ? { waiting: true as const } : {}) })
          const outcome = operate(command)
          command.answer?.(outcome)
        }
      }
      const waiting = options.waiting
      /** Take the commands that came for a run waiting for an operator's answer (`Options.waiting`): whether there were any. */
      const takeWaiting = (ts: Timestamp): boolean => {
        if (waiting === undefined) return false
        let any = false
        for (let commands = waiting.take(ts, log.size); commands.length > 0; commands = waiting.take(ts, log.size)) {
          take(ts, commands, true)
          any = true
        }
        return any
      }
      /**
       * The operator's answer to held intent `round` (its approver's fiber), taking the commands
       * that come meanwhile at once, at slice `ts`: none when one of them refused the intent (a halt
       * or a reduce, agents/RiskOfficer.ts), and its approver is no longer waited for.
       */
      const answerOf = (ts: Timestamp, round: RoundId, asked: Fiber.RuntimeFiber<ApprovalAnswer, BacktestError>) =>
        Effect.gen(function*() {
          // Listened for while a command that comes may be taken (a re-execution's recorded part takes none).
          let listening = waiting !== undefined
          let arrived = false
          while (true) {
            const took = takeWaiting(ts)
            // Told something came and nothing was there to take: not listened for again (no busy loop).
            if (arrived && !took) listening = false
            arrived = false
            if (!log.pendingApprovals.has(round)) {
              yield* Fiber.interrupt(asked)
              return Option.none<ApprovalAnswer>()
            }
            if (!listening) return Option.some(yield* Fiber.join(asked))
            const next = yield* Effect.raceFirst(Effect.asSome(Fiber.join(asked)), Effect.as(waiting!.arrival, Option.none<ApprovalAnswer>()))
            if (Option.isSome(next)) return next
            arrived = true
          }
        })
      while (slice !== undefined) {
        if (options.beforeSlice !== undefined) yield* options.beforeSlice(slice.ts)
        world.advanceTo(slice.ts)
        at = slice.ts
        if (options.trading !== undefined) take(slice.ts, options.trading(slice.ts, log.size))
        if (options.hold !== undefined) {
          for (let held = options.hold(slice.ts); held !== undefined; held = options.hold(slice.ts)) take(slice.ts, yield* held)
        }
        const signals = options.signals === undefined ? undefined : delivered(slice)
        world.start(swarm.coordinator.tell(
          signals === undefined
            ? marketUpdate({ ts: slice.ts, bars: slice.bars })
            : marketUpdate({ ts: slice.ts, bars: slice.bars, signals })
        ))
        // LLM analysts' model calls run outside the world, in wall-clock time: the slice waits for them.
        if (world.waitingOutside) yield* world.awaitOutside
        // The slice has settled: trading-state changes held for its end are recorded (RunLog.holdTransition).
        log.endSlice()
        while (log.pendingApprovals.size > 0) {
          // A replay whose recording ends here (a run stopped, or not finished, while its intents
          // waited for an operator): nobody answered them, and the replay ends where it does.
          if (options.endAfter !== undefined && log.size >= options.endAfter) break
          if (options.approver === undefined) {
            // The run cannot go on: it fails as any run does, its log ending with `RunFailed`.
            const [first] = log.pendingApprovals.values()
            failure = `risk.approval.policy: round ${first!.round} needs approval (${first!.reasons.join("; ")}) ` +
              `and the policy is "pause", but no operator is attached to this run`
            break
          }
          // Every intent the slice holds is put to the operator at once (each with its own timeout),
          // not one after the other; each is resolved once it and every one requested before it are
          // answered, so the run is the same whichever answer came first.
          // Commands that came as the slice held its intents first: a halt refuses them before anyone is asked.
          takeWaiting(slice.ts)
          if (log.pendingApprovals.size === 0) break
          const requests = [...log.pendingApprovals.values()]
          const asked = yield* Effect.forEach(requests, (request) => Effect.fork(options.approver!(request)))
          for (const [i, request] of requests.entries()) {
            const answered = yield* answerOf(slice.ts, request.round, asked[i]!)
            if (Option.isNone(answered)) continue
            const answer = answered.value
            world.start(swarm.risk.tell(new ResolveApproval({
                round: request.round,
                approved: answer.approved,
                by: answer.by,
                reason: answer.reason,
                expired: answer.expired === true && !answer.approved
              }, true)))
          }
        }
        log.endSlice()
        slices++
        bars += slice.bars.length
        to = slice.ts
        if (failure !== undefined) break
        if (log.stopped !== undefined) {
          failure = log.stopped
          break
        }
        if (options.endAfter !== undefined && log.size >= options.endAfter) {
          failure = `the recording ends at event ${options.endAfter}: the run was stopped there`
          break
        }
        if (yield* gaveUp(slice.ts)) break
        if (slices % paceEvery === 0) {
          if (slices % PROGRESS_EVERY === 0) options.onProgress?.(progress())
          const now = performance.now()
          if (now - yielded >= YIELD_MILLIS) {
            yield* yieldToEventLoop
            yielded = performance.now()
          }
          if (options.pace !== undefined) yield* options.pace(progress())
        }
        slice = nextSlice()
      }
      world.settle()
      // The last slice's rounds close at their deadline too — an analyst still thinking when the
      // data ends — as every other slice's do when time moves on to the next (`lastRounds`).
      if (lastRounds === "closed" && failure === undefined && log.stopped === undefined && swarm.stats.open === true) {
        world.advanceWhile(() => swarm.stats.open === true, to + Run.roundsOpenAtMost(strategy))
      }
      log.endSlice()
      // Stopped by an agent, or given up on by the supervisor, while the last slice settled.
      if (failure === undefined && log.stopped !== undefined) failure = log.stopped
      if (failure === undefined) yield* gaveUp(to)
      options.onProgress?.(progress())

      // Run to the end of its data: orders still waiting for a bar never get one.
      if (failure === undefined) world.run(swarm.desk.tell(new DataEnded({ ts: to }, true)))
      // A run an agent stopped still has its books (as they last stood): its report shows them.
      // So does one that failed otherwise — its supervisor gave up and stopped every agent, the
      // ledger with them; no operator for an intent — though the ledger is not asked: read where
      // it left them, the books after the last message it handled (its own crash keeps those).
      const final = failure === undefined || failure === log.stopped ? world.run(swarm.ledger.ask(new CloseBooks({}, true))) : undefined
      // A run that went on to its end says the trading state its events say (the risk officer's, or
      // `halted` while the coordinator found the officer down); one stopped early, the officer's.
      const status = failure !== undefined && failure === log.stopped ? world.run(swarm.risk.ask(new GetTradingStatus({}, true))) : undefined
      const books = final !== undefined && Exit.isSuccess(final)
        ? final.value
        : swarm.lastBooks() ?? {
          metrics: MetricsOf.compute({ curve: [], trades: [], initialCash: strategy.initialCash, config: strategy.metrics }),
          trades: [],
          snapshot: emptySnapshot(strategy, to)
        }
      if (failure === undefined && (final === undefined || Exit.isFailure(final))) failure = "the ledger did not close its books"
      // A replay whose recording ends here (a run stopped) records nothing the run did not; a run
      // its supervisor gave up on ends halted for that (`gaveUp` settled what was owed).
      if (!escalated && (options.endAfter === undefined || log.size < options.endAfter)) settleHalt(to)
      recordLeftovers(to)
      let checksum: string
      if (failure === undefined) {
        checksum = log.checksum()
        log.emit("RunCompleted", { metrics: books.metrics, checksum })
      } else {
        log.emit("RunFailed", { reason: failure })
        checksum = log.checksum()
      }
      const result: Result = {
        runId,
        status: failure === undefined ? "completed" : "failed",
        ...(failure === undefined ? {} : { failure }),
        metrics: books.metrics,
        trades: books.trades,
        portfolio: books.snapshot,
        tradingState: failure === undefined || escalated
          ? log.tradingState
          : status !== undefined && Exit.isSuccess(status) ? status.value.state : "halted",
        checksum,
        counts: {
          bars,
          slices,
          rounds: swarm.stats.rounds,
          decisions: swarm.stats.decisions,
          orders: log.count("OrderPlaced"),
          fills: log.count("OrderFilled"),
          rejected: log.rejected,
          restarts,
          events: log.size
        },
        agentRestarts: AgentTally.restartsOf(restartCounter.tallies(), strategy),
        abstentions: abstentionsOf(strategy, swarm.stats),
        from,
        to,
        ...(llm === undefined
          ? {}
          : { llm: { ...AgentTally.llmUsageOf(llm, llmCounter.tallies(), llmConfig.budget), ...(budgetSpent === undefined ? {} : { budgetSpent }) } })
      }
      return result
    }).pipe(
      // Failed with an error (not interrupted): the signals it held or had waiting are recorded
      // before the log is sealed, as at a failure its agents made — the alert answered 202 is
      // said not to be applied, and the live source (a paper run's inbox) takes no more.
      Effect.onError((cause) => (Cause.isInterruptedOnly(cause) ? Effect.void : Effect.sync(() => recordLeftovers(at)))),
      Effect.ensuring(Effect.zipRight(Effect.sync(() => withdrawBudget?.()), closeWorld))
    )
  })

/** The run's seed as the 32-bit integer a model's sampler takes. */
const seedNumber = (seed: string): number => createHash("sha256").update(seed).digest().readUInt32BE(0)

const emptySnapshot = (strategy: Strategy, ts: Timestamp): PortfolioSnapshot => ({
  ts,
  cash: strategy.initialCash,
  equity: strategy.initialCash,
  grossExposure: 0 as Money,
  netExposure: 0 as Money,
  realizedPnl: 0 as Money,
  unrealizedPnl: 0 as Money,
  positions: []
})
