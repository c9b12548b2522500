/**
 * A run's swarm assembled from its strategy: the supervision tree every mode (backtest, paper,
 * replay) starts, and the typed refs to its agents.
 *
 *   run (one_for_one)
 *   ├── analysts (one_for_one): one analyst per roster entry, restarted fresh (they warm up again)
 *   ├── ledger        books survive a restart
 *   ├── desk          pending orders and idempotency survive a restart
 *   ├── risk          the trading state survives a restart; while it is down nothing executes
 *   └── coordinator   targets and accuracies survive a restart
 *
 * Children start in this order, so everything the coordinator talks to exists before the first
 * bar. Both supervisors give up on a child that fails on every message: restarted
 * `CONSECUTIVE_RESTARTS` times in a row without handling one, its next failure escalates — on any
 * clock (a backtest's is bar time, where the restart intensity per minute, kept for bursts on the
 * wall clock of a paper run, never trips on daily bars). An analyst's handling is an opinion given,
 * not a bar folded: restarted, it warms up again, answering with none, and those bars are no sign it
 * works — one that fails on every bar once warmed up is failing on every message
 * (`RunStarted.analystProgress`; runs recorded before counted its warm-up, and restarted it for
 * ever). An analyst that fails now and then gives opinions in between and is restarted every time.
 *
 * What escalation means for the run: the run supervisor giving up ends the run `failed`, its reason
 * naming the agent that kept failing and its error (`gaveUp`). A spine agent (ledger, desk, risk,
 * coordinator) failing on every message does that directly. The analysts' supervisor giving up —
 * one analyst failing on every message — is restarted by the run supervisor with all its analysts
 * (fresh, they warm up again), and its escalations count as failures in a row too: an analyst that
 * still fails on every message ends the run after a few more. A run whose strategy has an analyst
 * that cannot handle a bar is a broken run, not a completed one with a silent abstainer.
 */
import { Effect, Either, Option, Schema } from "effect"
import { type AnalystOf, rosterOf, analysts as defaultRegistry, type LlmContext } from "../../agents/registry.js"
import type { AnyModel } from "../../agents/analysts/Model.js"
import * as Coordinator from "../../agents/Coordinator.js"
import * as ExecutionDesk from "../../agents/ExecutionDesk.js"
import * as LedgerAgent from "../../agents/Ledger.js"
import * as RiskOfficer from "../../agents/RiskOfficer.js"
import type { InvalidAgent, RequestOpinions } from "../../schemas/AnalystProtocol.js"
import type { RunId, Timestamp } from "../../schemas/Ids.js"
import type { AnalystProgress, BreakerChecks } from "../../schemas/RunEvent.js"
import type { Money } from "../../schemas/Money.js"
import type { Strategy } from "../../schemas/Strategy.js"
import { approvalTimeoutMillis } from "../../schemas/Risk.js"
import type { DeskProtocol, FinalBooks, LedgerProtocol, MarketUpdate, RiskProtocol } from "../../schemas/TradingProtocol.js"
import * as Supervisor from "../../supervisors/Supervisor.js"
import type { OverflowPolicy } from "../../schemas/Actor.js"
import type { ActorRef } from "../actor/ActorRef.js"
import type { ActorSpec } from "../actor/Behavior.js"
import type { ActorSystem } from "../actor/ActorSystem.js"
import type { RoundSampler } from "../telemetry/Sampling.js"
import * as Rules from "../trading/Rules.js"
import type { RunLog } from "./RunLog.js"

export interface RunOptions {
  readonly run: RunId
  readonly strategy: Strategy
  /** The run's seed: each analyst's model draws its randomness from it (agents/analysts/Model.ts `Draws`). Default "0". */
  readonly seed?: string
  readonly log: RunLog
  readonly events: "decisions" | "rounds"
  readonly registry?: ReadonlyMap<string, AnyModel>
  readonly onMark?: (ts: Timestamp, equity: Money) => void
  /** The ledger reports the whole book at every marked timestamp (paper runs: agents/Ledger.ts `wholeBook`). */
  readonly wholeBook?: boolean
  readonly faults?: Faults
  /** The run's language-model session, for the LLM analysts of its roster (required when it has any). */
  readonly llm?: Omit<LlmContext, "log" | "deadlineMillis">
  /** Work the remainders of reduced intents (`RunStarted.reducedIntents`); off for runs recorded before it. */
  readonly workRemainders?: boolean
  /**
   * Score a flat opinion as "not long" when the strategy may not short (`RunStarted.flatScoring`:
   * `Consensus.isCorrect`); off for runs recorded before it, which scored it as "moved less".
   */
  readonly flatScoring?: "not_long" | undefined
  /** Which of the coordinator's cycles are traced (src/telemetry/Sampling.ts); none without one. */
  readonly sampler?: RoundSampler | undefined
  /**
   * How the breakers are checked (`RunStarted.breakers`): `fills`, at every mark of the books and
   * after the fills booked at the closes just marked (the ledger tells the risk officer of a
   * crossing); `marks`, at every mark only; undefined, only as intents are judged (runs recorded
   * before, re-executed as they were).
   */
  readonly breakers?: BreakerChecks
  /**
   * What an analyst's progress is to its supervisor (`RunStarted.analystProgress`): `past_warm_up`,
   * an opinion given (the analyst's `progress`: agents/Analyst.ts), so that one failing on every bar
   * once warmed up is given up on; undefined, any bar handled, its warm-up's included (runs
   * recorded before, re-executed as they were).
   */
  readonly analystProgress?: AnalystProgress
  /** Record the risk officer's moves under the coordinator's halt after it lifts (`RunStarted.downHalts`; agents/Coordinator.ts `chainedHalts`). */
  readonly chainedHalts?: boolean
  /**
   * A decision the halted state alone rejected is not sent again until the state changes or the
   * consensus does (`RunStarted.stateRejections`; agents/Coordinator.ts `standingRejections`).
   */
  readonly standingRejections?: boolean
  /**
   * With a volume limit, the order toward a reduced target works on until it is done, not placed
   * again on every bar (`RunStarted.workingOrders`; agents/RiskOfficer.ts and agents/ExecutionDesk.ts
   * `keepWorkingOrders`). Off for runs recorded before it.
   */
  readonly keepWorkingOrders?: boolean
  /**
   * A fractional strategy's buys are cut for cash, and capped by a volume limit, on micro-units
   * whatever the order's quantity (`RunStarted.fractionalCuts`; agents/ExecutionDesk.ts
   * `fractional`). Off for runs recorded before it, which cut a whole number of units in whole units.
   */
  readonly fractionalCuts?: boolean
}

/**
 * Fault injection, for chaos tests and drills: by agent name (`risk`, `ledger`, `desk`,
 * `coordinator`, or an analyst's name), whether the agent crashes on receiving a message — told
 * the message and how many it has received in the run (from 1, restarts included). A crash is a
 * defect like any other: the supervisor restarts the agent and the run's events show it.
 */
export type Faults = Readonly<Record<string, (message: unknown, received: number) => boolean>>

/**
 * Faults as data, so a run can record the ones it was given and a replay inject the same: by agent
 * name, crash on every `every`-th message, or on the messages numbered in `at`.
 */
export const FaultPlan = Schema.Record({
  key: Schema.String,
  value: Schema.Union(
    Schema.Struct({ every: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)) }),
    Schema.Struct({ at: Schema.Array(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))) })
  )
})
export type FaultPlan = typeof FaultPlan.Type

export const faultsOf = (plan: FaultPlan): Faults =>
  Object.fromEntries(
    Object.entries(plan).map(([agent, fault]) => {
      if ("every" in fault) return [agent, (_: unknown, received: number) => received % fault.every === 0]
      const at = new Set(fault.at)
      return [agent, (_: unknown, received: number) => at.has(received)]
    })
  )

export class InjectedFault extends Error {
  constructor(readonly agent: string, readonly received: number) {
    super(`injected fault: ${agent} crashed on message ${received}`)
  }
}

const withFault = <M, S, R, P extends OverflowPolicy>(
  name: string,
  spec: ActorSpec<M, S, R, P>,
  faults: Faults | undefined
): ActorSpec<M, S, R, P> => {
  const crashes = faults?.[name]
  if (crashes === undefined) return spec
  let received = 0
  return {
    ...spec,
    behavior: (state, message, context) => {
      received++
      return crashes(message, received) ? Effect.die(new InjectedFault(name, received)) : spec.behavior(state, message, context)
    }
  }
}

export interface RunningSwarm {
  readonly coordinator: ActorRef<MarketUpdate, "backpressure">
  readonly risk: ActorRef<RiskProtocol, "backpressure">
  readonly ledger: ActorRef<LedgerProtocol, "backpressure">
  readonly desk: ActorRef<DeskProtocol, "backpressure">
  readonly stats: Coordinator.CoordinatorStats
  readonly supervisor: Supervisor.SupervisorRef<any>
  /**
   * The ledger's books as they last stood, closed without asking it (agents/Ledger.ts `onBooks`):
   * the report of a run that ended while its ledger could not be asked — stopped with the rest of
   * the swarm when the run's supervisor gave up. Once, after the run is over; undefined if the
   * ledger never started.
   */
  readonly lastBooks: () => FinalBooks | undefined
  /** What its analysts' progress is (`RunOptions.analystProgress`): what `gaveUp` says they went without. */
  readonly analystProgress: AnalystProgress
}

/**
 * Restarts of one agent (or of the analysts' subtree) in a row, with no message handled between
 * them, before its supervisor gives up: an agent failing on every message ends the run after
 * `CONSECUTIVE_RESTARTS + 1` failures of its own (an analyst: `(CONSECUTIVE_RESTARTS + 1)²`).
 */
export const CONSECUTIVE_RESTARTS = 3

/** How long the risk officer waits for the books, and the coordinator for a verdict (virtual time in backtests). */
const VIEW_TIMEOUT_MILLIS = 5_000
const JUDGE_TIMEOUT_MILLIS = 10_000

/**
 * The longest a slice's rounds can stay open once delivered: the analysts' deadline, then the risk
 * officer's answer, which waits for the books at most its own timeout.
 */
export const roundsOpenAtMost = (strategy: Strategy): number => strategy.consensus.deadlineMillis + JUDGE_TIMEOUT_MILLIS + VIEW_TIMEOUT_MILLIS

/** Resolve the roster against the registry; the first bad entry is the error. */
const resolveRoster = (
  strategy: Strategy,
  registry: ReadonlyMap<string, AnyModel>
): Either.Either<ReadonlyArray<AnalystOf & { readonly weight: number }>, InvalidAgent> =>
  Either.map(rosterOf(strategy, registry), (roster) => roster.map((analyst, i) => ({ ...analyst, weight: strategy.agents[i]!.weight })))

export const start = (options: RunOptions): Effect.Effect<RunningSwarm, InvalidAgent, ActorSystem> =>
  Effect.gen(function*() {
    const { faults, log, strategy } = options
    const roster = yield* resolveRoster(strategy, options.registry ?? defaultRegistry)
    const flatMeansNotLong = options.flatScoring === "not_long" && !strategy.allowShort
    const thinking = roster.some((a) => a.llm)
    const llm: LlmContext | undefined = options.llm === undefined
      ? undefined
      : { ...options.llm, log, deadlineMillis: strategy.consensus.deadlineMillis, flatMeansNotLong }
    if (thinking && llm === undefined) return yield* Effect.die(new Error("a roster with LLM analysts needs the run's language-model session"))
    // Filled once the tree is up: agents reach each other through these, never before the first message.
    const wires: {
      ledger?: ActorRef<LedgerProtocol, "backpressure">
      desk?: ActorRef<DeskProtocol, "backpressure">
      risk?: ActorRef<RiskProtocol, "backpressure">
      analysts?: Map<string, ActorRef<RequestOpinions, "backpressure">>
    } = {}
    const stats: Coordinator.CoordinatorStats = {
      rounds: 0,
      decisions: 0,
      abstained: roster.map(() => ({ silent: 0, late: 0, failed: 0, belowMinConfidence: 0, gaveUp: 0 }))
    }
    let closeBooks: (() => FinalBooks) | undefined
    const ledger = LedgerAgent.make({
      onBooks: (close) => {
        closeBooks = close
      },
      log,
      initialCash: strategy.initialCash,
      symbols: strategy.symbols,
      metrics: strategy.metrics,
      ...(options.onMark === undefined ? {} : { onMark: options.onMark }),
      ...(options.wholeBook === true ? { wholeBook: true } : {}),
      ...(options.breakers === undefined
        ? {}
        : { breakers: { limits: strategy.risk.limits, risk: () => wires.risk!, afterFills: options.breakers === "fills" } })
    })
    const desk = ExecutionDesk.make({
      log,
      execution: strategy.execution,
      ledger: () => wires.ledger!,
      initialCash: strategy.initialCash,
      countsThinBars: options.keepWorkingOrders === true,
      fractional: options.fractionalCuts === true && strategy.sizing.fractional
    })
    const risk = RiskOfficer.make({
      log,
      run: options.run,
      rules: Rules.make(strategy.rules),
      limits: strategy.risk.limits,
      approval: strategy.risk.approval,
      sizing: { ...strategy.sizing, allowShort: strategy.allowShort },
      allowShort: strategy.allowShort,
      execution: strategy.execution,
      approvalTimeoutMillis: approvalTimeoutMillis(strategy.risk.approval),
      viewTimeoutMillis: VIEW_TIMEOUT_MILLIS,
      ledger: () => wires.ledger!,
      desk: () => wires.desk!,
      workRemainders: options.workRemainders === true,
      breakersOnMarks: options.breakers !== undefined,
      keepWorkingOrders: options.keepWorkingOrders === true
    })
    const coordinator = Coordinator.make({
      log,
      roster: roster.map((a) => ({ agent: a.name, weight: a.weight, horizon: a.horizon, ref: () => wires.analysts!.get(a.name)! })),
      consensus: strategy.consensus,
      events: options.events,
      context: thinking,
      judgeTimeoutMillis: JUDGE_TIMEOUT_MILLIS,
      risk: () => wires.risk!,
      desk: () => wires.desk!,
      stats,
      sampler: options.sampler,
      flatMeansNotLong,
      chainedHalts: options.chainedHalts === true,
      standingRejections: options.standingRejections === true
    })
    // A run recorded before analysts said what their progress is counted every bar they handled.
    const progressOf = <S>(spec: ActorSpec<RequestOpinions, S, never, "backpressure">) =>
      options.analystProgress === "past_warm_up" ? spec : { ...spec, progress: undefined }
    const tree = yield* Supervisor.start({
      strategy: "one_for_one",
      intensity: 10,
      period: "1 minute",
      maxConsecutiveRestarts: CONSECUTIVE_RESTARTS,
      children: [
        Supervisor.supervisor("analysts", {
          strategy: "one_for_one",
          intensity: 50,
          period: "1 minute",
          maxConsecutiveRestarts: CONSECUTIVE_RESTARTS,
          children: roster.map((a, i) =>
            Supervisor.worker(
              a.name,
              withFault(a.name, progressOf(a.actor(llm === undefined ? undefined : { ...llm, onDeadline: () => void stats.abstained![i]!.gaveUp++ }, options.seed)), faults)
            )
          )
        }),
        Supervisor.worker("ledger", withFault("ledger", ledger, faults)),
        Supervisor.worker("desk", withFault("desk", desk, faults)),
        Supervisor.worker("risk", withFault("risk", risk, faults)),
        Supervisor.worker("coordinator", withFault("coordinator", coordinator, faults))
      ]
    }, { name: "run" }).pipe(Effect.orDie)
    wires.ledger = tree.ref("ledger")
    wires.desk = tree.ref("desk")
    wires.risk = tree.ref("risk")
    const analystsTree = tree.child("analysts")
    wires.analysts = new Map(roster.map((a) => [a.name, analystsTree.ref(a.name) as ActorRef<RequestOpinions, "backpressure">]))
    return {
      coordinator: tree.ref("coordinator"),
      risk: wires.risk,
      ledger: wires.ledger,
      desk: wires.desk,
      stats,
      supervisor: tree,
      lastBooks: () => closeBooks?.(),
      analystProgress: options.analystProgress
    }
  })

/**
 * Why the run's supervisor gave up, for `RunFailed` and the result: the agent that kept failing
 * (where a nested escalation began), how, and its last error.
 */
export const gaveUp = (swarm: RunningSwarm, at: Timestamp): Effect.Effect<string> =>
  Effect.map(swarm.supervisor.escalation, (escalation) => {
    const when = new Date(at).toISOString()
    if (Option.isNone(escalation)) return `the run's supervisor gave up at ${when}`
    const e = escalation.value
    const failures = e.origin === undefined ? "failures" : "escalations"
    // An analyst's progress is an opinion given, in the runs that say so; an agent's, a message handled.
    const analyst = swarm.analystProgress === "past_warm_up" && (e.origin ?? e.child).startsWith(`${swarm.supervisor.id}/analysts/`)
    const how = e.limit === "no_progress"
      ? `${e.restarts} ${failures} of ${e.child} in a row without ${analyst ? "an opinion given" : "a message handled"}`
      : `${e.restarts} ${failures} of ${e.child} within ${e.periodMillis / 1000} s`
    return `the run's supervisor gave up at ${when}: ${e.origin ?? e.child} kept failing (${how}): ${e.cause}`
  })
