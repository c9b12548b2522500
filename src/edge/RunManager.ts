/**
 * The runs a server process executes: started from the RPC edge, each in a fiber of the manager's
 * scope, recorded by the store as it goes and published on the event bus (SSE and RPC streams
 * follow it there) as the store commits it. Operators stop, pause and resume them; a paper run is the same execution paced
 * in wall-clock time — each slice waits for its moment, at the requested speed. A pause or resume
 * is no run event: its followers learn it from the run's row and control log (RunStatusFeed.ts),
 * told at once by the manager that made it.
 *
 * Approvals: under the strategy's approval policy `pause`, a run that needs a human waits at the
 * intent; the manager lists it (`pending`), takes the operator's answer (`approve`, `reject`) or,
 * after the strategy's timeout, rejects it as expired. The answer is recorded in the run's events,
 * so a replay or a resume answers it the same way without anyone. An intent still waiting when its
 * run ends (stopped, failed, completed) is `cancelled` in the approvals table (`Runs.markEnded`,
 * `Runs.finish`), and answering it then is a `Conflict` saying the run ended before anyone did.
 *
 * Shutting down (the manager's scope closing) suspends the live runs: what they recorded is
 * committed, their status stays `running` or `paused`, and `resumeUnfinished` — the next start —
 * goes on with them, at their pace, under this manager; `suspended` then says which they were. A
 * user's runs past the cap of live runs a user may have here (`Options.maxLiveRunsPerUser`) wait,
 * unfinished, and go on here as soon as one of that user's runs ends (`waiting` says why). On
 * a shared database, another manager still running takes them over sooner (`takeOver`, every
 * `Options.takeover.every`), as it does the runs of a process that died; and every server says they
 * wait, and why, as this one does (`WaitingRuns`: said again every few seconds, believed a while
 * after the last word). An operator's `stop` ends a run for good.
 * Only a run that ended is ended on the bus: a suspended one's followers wait for it to go on.
 *
 * A run whose strategy this server cannot make (an analyst type its build lacks) is not launched:
 * start-up or a takeover look says why once, and this process does not try it again (its registry
 * cannot change under it). One whose resume failed for another lasting reason (its data file gone
 * or changed, its record not decoding) is tried again by takeover looks every few minutes. Held by
 * no live process, either is ended by `stop` in its row (`stopInRow`), since no agents are
 * there to interrupt; `notResumable` says why for `runs show`.
 */
import { fileURLToPath } from "node:url"
import type { SqlClient } from "@effect/sql"
import { Cause, Clock, Config, ConfigError, Context, Deferred, Duration, Effect, Either, ExecutionStrategy, Exit, Fiber, Layer, Option, Predicate, Queue, Schema, Scope } from "effect"
import { Principal } from "../../schemas/Auth.js"
import type { ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { RunId, StrategyId, Symbol } from "../../schemas/Ids.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { NoPaperRun, RateLimited } from "../../schemas/Webhook.js"
import { CAPACITY as SignalInboxCapacity, SignalInbox } from "./SignalInbox.js"
import { CAPACITY as TradingInboxCapacity, type Queued, TradingInbox } from "./TradingInbox.js"
import {
  ApprovalNotFound,
  Conflict,
  InvalidRequest,
  type PendingApproval,
  type RunData,
  RunNotFound,
  RiskOfficerDown,
  RunUnreadable,
  type StartRun,
  TradingChange,
  TradingError,
  StrategyNotFound,
  Unavailable
} from "../../schemas/Rpc.js"
import { EventBus } from "../bus/EventBus.js"
import { LatestCache } from "../bus/LatestCache.js"
import { RunStatusFeed } from "./RunStatusFeed.js"
import * as DataSource from "../market/DataSource.js"
import * as Synthetic from "../market/Synthetic.js"
import type { Strategy } from "../../schemas/Strategy.js"
import type { AnyModel } from "../../agents/analysts/Model.js"
import * as ControlAudit from "../store/ControlAudit.js"
import * as ControlRequests from "../store/ControlRequests.js"
import * as Database from "../store/Database.js"
import { type Lease, LeaseNotHeld, notHeld, retryLeased } from "../store/Lease.js"
import { PgPool } from "../store/Pool.js"
import * as Runs from "../store/Runs.js"
import * as Strategies from "../store/Strategies.js"
import * as StoredRun from "../store/StoredRun.js"
import { StoreError, storeError } from "../store/StoreError.js"
import * as Users from "../store/Users.js"
import * as WaitingRuns from "../store/WaitingRuns.js"
import * as WebhookStore from "../store/Webhooks.js"
import type * as Backtest from "../swarm/Backtest.js"
import { approvalTimeoutMillis, DEFAULT_APPROVAL_TIMEOUT_SECONDS, type IllegalTransition, type TradingState } from "../../schemas/Risk.js"
import { unavailable } from "./Unavailable.js"

/** The sample data shipped with Swarm (data/), for runs started on `{ _tag: "sample" }`. */
const SAMPLE = fileURLToPath(new URL("../../data", import.meta.url))

interface Live {
  readonly run: RunId
  readonly owner: string
  readonly mode: "backtest" | "paper"
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  /** Open while the run may go on; closed while an operator has it paused. */
  readonly gate: Effect.Latch
  /** The gate's opposite: open while an operator has it paused (what a paper run's wait for a bar's moment breaks off at). */
  readonly held: Effect.Latch
  /** Held by stop, pause and resume: one change of the run's state at a time. */
  readonly lock: Effect.Semaphore
  paused: boolean
  /** A paper run's outside signals (webhooks) waiting for its next slice. */
  readonly inbox: SignalInbox | undefined
  /** Whether its strategy has a `tradingview` analyst: the only agent that reads those signals. */
  readonly readsAlerts: boolean
  /** Operators' trading-state commands waiting for its next slice (`runs.trading`). */
  readonly trading: TradingInbox
  /** Say why it is being stopped (`stopped by alice`), before interrupting it: its row keeps the reason. */
  readonly stoppedBy: (reason: string) => void
}

/** Whether a strategy has an analyst that reads TradingView alerts (agents/analysts: `tradingview`). */
const readsAlerts = (strategy: Strategy): boolean => strategy.agents.some((agent) => agent.type === "tradingview")

/** An intent a live run holds for an operator. */
interface Waiting {
  /** When it was asked, among the others: a slice's intents are asked in the same millisecond. */
  readonly order: number
  readonly owner: string
  /** Replaced when its expiry moves on (the run paused: `countdown`). */
  info: PendingApproval
  readonly answer: Deferred.Deferred<Backtest.ApprovalAnswer>
}

/** How often a held intent's countdown looks whether its run is paused (`countdown`). */
const EXPIRY_TICK_MILLIS = 200

/** How much of a held intent's waiting a crash may lose: how long it waited is saved this often (`countdown`). */
const WAITED_SAVED_EVERY_MILLIS = 1_000

/**
 * How long an operator's answer to a held intent waits for its run to record it (`ApprovalResolved`
 * committed) before the operator is told it was applied (`decide`). Longer than the lease's grace
 * (`Runs.LEASE_GRACE`): a recording waiting for the lease to be taken again ends within it, recorded
 * or refused. The run commits every few milliseconds: past this the database is slow or away.
 */
const APPROVAL_RECORD_WAIT_MILLIS = 10_000

/** How many answered intents a server remembers how they were resolved (`decided`): the rest are read from the store. */
const DECIDED_KEPT = 10_000

/** The answer to a second answer of a held intent. */
const alreadyResolved = (run: string, round: string, how?: Runs.ResolvedApproval) =>
  new Conflict({
    reason: how === undefined
      ? `round ${round} of run ${run} was resolved already`
      : how.outcome === "expired"
      ? `round ${round} of run ${run} expired already (${how.reason})`
      : how.outcome === "cancelled"
      ? `round ${round} of run ${run} was cancelled: ${how.reason}`
      : `round ${round} of run ${run} was ${how.outcome} already, by ${how.by}`
  })

/** How long a server waits before trying again to take over a run whose takeover failed here (its data gone, say). */
const TAKEOVER_RETRY_MILLIS = 5 * 60_000

/**
 * On a shared database, how often a server says again which runs wait for a slot there
 * (`WaitingRuns.say`: one statement for them all, only while some do), so that every server says
 * they wait (`waiting`).
 */
const WAITING_SAID_EVERY = Duration.seconds(5)

/**
 * How long after a server last said a run waits for a slot there the other servers believe it
 * (`WaitingRuns.reasonOf`): what bounds a word a server that died left behind. A server that stops
 * takes its word back as it shuts down, and one that resumes the run (the waiting server, or another
 * taking it over) as it does; a word over a run some process holds the lease of is never believed.
 * A server that dies cannot take its word back: its runs are said to wait for this long at most
 * after its last word (none at all once a server with takeover on has taken them over). Six of its
 * words long (`WAITING_SAID_EVERY`): a database slow for a while does not have the run said running,
 * then waiting again.
 */
export const WAITING_BELIEVED = Duration.seconds(30)

/** Why this process could not resume an unfinished run, for a reason that does not go away by itself (`StoredRun.lastingFailure`). */
interface Unresumable {
  /** Why, without the run's name. */
  readonly why: string
  /** What would have the run resumed, besides a stop ending it. */
  readonly remedy: string
  /**
   * Whether a takeover look tries it again (every `TAKEOVER_RETRY`): not a strategy this build
   * cannot make (its registry is fixed for the process's life); data gone may come back.
   */
  readonly retried: boolean
}

const unbuildableOf = (cannot: StoredRun.NotReexecutable): Unresumable => ({
  why: cannot.why,
  remedy: "a server whose build can make its agents resumes it",
  retried: false
})

const lastingOf = (failure: StoredRun.LastingFailure): Unresumable =>
  failure._tag === "NotReexecutable"
    ? unbuildableOf(failure)
    : failure._tag === "DataChanged"
    ? { why: failure.message, remedy: "once its data reads as the run read it, the next start or takeover look resumes it", retried: true }
    : { why: `its record cannot be read: ${failure.message}`, remedy: "once its record reads again, the next start or takeover look resumes it", retried: true }

/**
 * Control through any process (several servers on one Postgres): how long a process waits for the
 * process executing a run to take a relayed request (`ControlRequests`) before it answers that no
 * live process holds the run; how much longer for the answer once it was taken (a stop waits for
 * the run to record its end); how often the requester looks for the answer; how often a process
 * with live runs looks for requests for them; how long requests are kept.
 */
/**
 * How long `runs.trading` waits for the run to take its command at its next slice: a paper run's
 * bars come at their pace. Not taken by then, it is taken back and the caller told so.
 */
const TRADING_WAIT_MILLIS = 30_000

/** How much longer than `TRADING_WAIT` a relayed `runs.trading` waits for its holder's answer: the holder's own wait ends first. */
const TRADING_RELAY_MARGIN_MILLIS = 10_000

const decodeTradingChange = Schema.decodeUnknownEither(Schema.parseJson(TradingChange))
const decodeTradingError = Schema.decodeUnknownEither(Schema.parseJson(TradingError))
const encodeTradingChange = Schema.encodeSync(TradingChange)
const encodeTradingError = Schema.encodeSync(TradingError)

const RELAY_TAKE_WAIT_MILLIS = 3_000
const RELAY_ANSWER_WAIT_MILLIS = 30_000
const RELAY_POLL_MILLIS = 100
const RELAY_SERVE_EVERY_MILLIS = 250
const RELAY_KEPT_SECONDS = 3_600
const RELAY_CLEANUP_EVERY = 240
/**
 * How long one of the relay's polling queries may take (the requests open for this process's runs,
 * one taken, the old ones deleted; an answer looked for, a request abandoned), ended there by the
 * database too (`Database.withDeadline`): each is one indexed statement. Behind a lock (the table's,
 * or a request's row), one held its pool connection for as long as the lock was held, the loop
 * looking for requests stuck meanwhile, and a requester's wait with it past its own bound.
 */
const RELAY_QUERY_WAIT = Duration.seconds(2)

/** A relay's polling query, bounded by `RELAY_QUERY_WAIT`: past it, a `StoreError` saying so. */
const relayQuery = (operation: string) => <A, E, R>(query: Effect.Effect<A, E, R>) =>
  storeError(operation)(Database.withDeadline({
    duration: RELAY_QUERY_WAIT,
    onTimeout: () => new StoreError({ operation, reason: `no answer within ${Duration.format(RELAY_QUERY_WAIT)}` })
  })(query))

/**
 * A background look that finds nothing most of the time (the relayed requests four times a second,
 * the leases every takeover look), not traced: as root traces of their own they made some 350,000
 * traces a day per server, and pushed the decisions' traces out of the in-process store `swarm
 * trace` reads. What a look finds to do (a request carried out, a run taken over) is traced.
 */
const untraced = <A, E, R>(look: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Effect.withTracerEnabled(look, false)

/** A strategy snapshot's approval timeout, from its `risk.approval` as stored (the default when it says none). */
const timeoutOf = (approval: unknown): number =>
  Predicate.hasProperty(approval, "timeoutSeconds") && typeof approval.timeoutSeconds === "number"
    ? Math.round(approval.timeoutSeconds * 1000)
    : DEFAULT_APPROVAL_TIMEOUT_SECONDS * 1000

/** Paper runs checkpoint at every pause of the driver (16 slices): a restart re-executes little. */
const PAPER_CHECKPOINT_EVERY = 16

/**
 * How many live runs (running or paused) a user may have in one server process when
 * `SWARM_MAX_LIVE_RUNS_PER_USER` does not say. Every live run holds its feed, its agents and its
 * books in memory: without a cap one user's many starts took the whole server's (1.1 GB).
 */
export const DEFAULT_MAX_LIVE_RUNS_PER_USER = 8

/** What `SWARM_MAX_LIVE_RUNS_PER_USER` says (a whole number, at least 1), or why it cannot be read. */
export const parseMaxLiveRuns = (text: string): Either.Either<number, string> => {
  const trimmed = text.trim()
  const n = /^\d{1,9}$/.test(trimmed) ? Number(trimmed) : Number.NaN
  return Number.isInteger(n) && n >= 1
    ? Either.right(n)
    : Either.left(`must be a whole number of runs, at least 1 (default ${DEFAULT_MAX_LIVE_RUNS_PER_USER}), not ${JSON.stringify(clipped(text))}`)
}

const clipped = (text: string) => (text.length > 40 ? `${text.slice(0, 40)}…` : text)

/** `SWARM_MAX_LIVE_RUNS_PER_USER`, or `DEFAULT_MAX_LIVE_RUNS_PER_USER` when unset; a bad value names the variable and why. */
export const maxLiveRunsConfig: Config.Config<number> = Config.string("SWARM_MAX_LIVE_RUNS_PER_USER").pipe(
  Config.option,
  Config.mapOrFail(Option.match({
    onNone: () => Either.right(DEFAULT_MAX_LIVE_RUNS_PER_USER),
    onSome: (text) => Either.mapLeft(parseMaxLiveRuns(text), (reason) => ConfigError.InvalidData(["SWARM_MAX_LIVE_RUNS_PER_USER"], reason))
  }))
)

/** A start-up line: how many live runs a user may have. */
export const describeMaxLiveRuns = (max: number): string =>
  `live runs: at most ${max} per user, running or paused, in this server process (SWARM_MAX_LIVE_RUNS_PER_USER)`

/**
 * How often (seconds) a server on a shared database looks for the runs of a server that stopped,
 * to take them over (`takeOver`), when `SWARM_TAKEOVER_SECONDS` does not say.
 */
export const DEFAULT_TAKEOVER_SECONDS = 10

/** The most `SWARM_TAKEOVER_SECONDS` may say: an hour. */
const MAX_TAKEOVER_SECONDS = 3_600

/**
 * How young a run's row may be and not be taken over: a run being started is left to its starter,
 * whatever its lease says at that moment (`takeOver`).
 */
export const DEFAULT_TAKEOVER_GRACE = Duration.seconds(30)

/** What `SWARM_TAKEOVER_SECONDS` says (a whole number of seconds, 0 for off), or why it cannot be read. */
export const parseTakeoverSeconds = (text: string): Either.Either<number, string> => {
  const trimmed = text.trim()
  const n = /^\d{1,9}$/.test(trimmed) ? Number(trimmed) : Number.NaN
  return Number.isInteger(n) && n <= MAX_TAKEOVER_SECONDS
    ? Either.right(n)
    : Either.left(
      `must be a whole number of seconds from 0 (off) to ${MAX_TAKEOVER_SECONDS} (default ${DEFAULT_TAKEOVER_SECONDS}), not ${JSON.stringify(clipped(text))}`
    )
}

/** `SWARM_TAKEOVER_SECONDS`, or `DEFAULT_TAKEOVER_SECONDS` when unset; a bad value names the variable and why. */
export const takeoverConfig: Config.Config<number> = Config.string("SWARM_TAKEOVER_SECONDS").pipe(
  Config.option,
  Config.mapOrFail(Option.match({
    onNone: () => Either.right(DEFAULT_TAKEOVER_SECONDS),
    onSome: (text) => Either.mapLeft(parseTakeoverSeconds(text), (reason) => ConfigError.InvalidData(["SWARM_TAKEOVER_SECONDS"], reason))
  }))
)

/** A start-up line: whether and how often this server takes over the runs of a server that stopped. */
export const describeTakeover = (seconds: number, shared: boolean): string =>
  !shared
    ? "takeover: none, the embedded database serves this one process (SWARM_TAKEOVER_SECONDS is for servers sharing a Postgres)"
    : seconds === 0
    ? "takeover: off (SWARM_TAKEOVER_SECONDS=0): the runs of a server that stops wait for a server to start"
    : `takeover: every ${seconds} s, this server looks for runs whose server stopped and takes them over (SWARM_TAKEOVER_SECONDS)`

export interface Options {
  /** The most live runs (running or paused) one user may have here; `DEFAULT_MAX_LIVE_RUNS_PER_USER` when absent. */
  readonly maxLiveRunsPerUser?: number
  /**
   * Look for runs to take over (`takeOver`) every `every`, on a shared database; never when absent
   * (or on the embedded database). `grace`: `DEFAULT_TAKEOVER_GRACE` when absent.
   */
  readonly takeover?: {
    readonly every: Duration.DurationInput
    readonly grace?: Duration.DurationInput
    /** How long before a run whose takeover failed here is tried again: `TAKEOVER_RETRY` (5 minutes) when absent. */
    readonly retry?: Duration.DurationInput
  }
  /**
   * The agent types this server can make (agents/registry.ts's `analysts` when absent): a test's
   * server of a build that lacks one.
   */
  readonly registry?: ReadonlyMap<string, AnyModel>
}

export interface RunManagerService {
  /**
   * Start a run of one of the principal's strategies; answers once its row exists (it runs on). A
   * `Conflict` when the principal has the most live runs a user may have here (`Options`), admins
   * too: a run takes as much of the server whoever starts it.
   */
  readonly start: (
    principal: Principal,
    request: typeof StartRun.Type
  ) => Effect.Effect<Runs.RunRecord, StrategyNotFound | InvalidRequest | Conflict | Unavailable>
  /**
   * End a run of the principal's (an admin's: anyone's); someone else's is `RunNotFound`, as one
   * that does not exist. One that no server can resume is ended in its row, whatever is wrong
   * with it (`stopInRow`), the operator's `reason` kept there as a live run's stop keeps it. The run as its row says it after (`Runs.locate`: read whatever
   * its row holds); as `pause` and `resume`.
   */
  /** `reason`: the operator's why, in the run's control log (a stop's also in its row: `stopped by <name>: <reason>`). */
  readonly stop: (principal: Principal, ref: string, reason?: string) => Effect.Effect<Runs.RunSummary, RunNotFound | Conflict | Unavailable>
  readonly pause: (principal: Principal, ref: string, reason?: string) => Effect.Effect<Runs.RunSummary, RunNotFound | Conflict | Unavailable>
  readonly resume: (principal: Principal, ref: string, reason?: string) => Effect.Effect<Runs.RunSummary, RunNotFound | Conflict | Unavailable>
  /**
   * Pause every paper run of user `owner` that is running, wherever it runs (here, relayed to the
   * process executing it, or, in no live process, in its row: the next start or takeover takes it
   * back paused), as `principal` with `reason` in each run's control log — an admin disabling the
   * user. The runs it paused; one paused, ended or deleted meanwhile is passed over. Backtests and
   * replays go on: they trade no live book. `Unavailable` when one could not be paused: asking
   * again pauses those still running.
   */
  readonly pauseOwnedBy: (principal: Principal, owner: string, reason: string) => Effect.Effect<ReadonlyArray<PausedRun>, Unavailable>
  /** Intents waiting for an operator, of the principal's runs (an admin's: every run's), oldest first. */
  readonly pending: (principal: Principal, ref?: string) => Effect.Effect<ReadonlyArray<PendingApproval>, RunNotFound | RunUnreadable | Unavailable>
  readonly approve: (
    principal: Principal,
    ref: string,
    round: string
  ) => Effect.Effect<void, ApprovalNotFound | RunNotFound | RunUnreadable | Conflict | Unavailable>
  readonly reject: (
    principal: Principal,
    ref: string,
    round: string,
    reason: string
  ) => Effect.Effect<void, ApprovalNotFound | RunNotFound | RunUnreadable | Conflict | Unavailable>
  /**
   * Move the trading state of a live run of the principal's (an admin's: anyone's) — `runs.trading`:
   * the command is taken right before the run's next slice and carried out there by its risk
   * officer (recorded there, replayed there), and answered then; audited in the run's control log
   * once it took effect. Someone else's run is `RunNotFound`, as one that does not exist. A paused
   * run holds at the bar it takes next and takes it there at once (`launch`'s `hold`). One
   * executing in another process (a shared database) is moved there, relayed as `stop` is: its
   * answer there, whole (the change, or the typed error with its fields), is the caller's.
   */
  readonly trading: (
    principal: Principal,
    ref: string,
    state: TradingState,
    reason?: string
  ) => Effect.Effect<TradingChange, RunNotFound | Conflict | InvalidRequest | IllegalTransition | RiskOfficerDown | Unavailable>
  /**
   * Take over the unfinished runs no live process holds (this server's last shutdown, or a crash),
   * each at the pace it was started with and in the state (running, paused) it was left in: what
   * became of each. Oldest first, up to the cap of live runs a user may have here
   * (`Options.maxLiveRunsPerUser`), as a start keeps to it: a user's runs past it are `waiting` —
   * unfinished, their rows untouched — and each goes on here as soon as one of that user's runs ends
   * here (a stop, a run completing), oldest first, the freed slot kept for it meanwhile (a start of
   * theirs is refused until it has gone on); else at the next start. A stop ends one waiting.
   */
  readonly resumeUnfinished: () => Effect.Effect<ReadonlyArray<Resumption>, Unavailable>
  /**
   * One look, on a shared database, for unfinished runs whose process has stopped (died, or shut
   * down) while this one goes on: each run no process holds the lease of, seen so by this look and
   * the one before and older than the grace (`Options.takeover`), is resumed here as
   * `resumeUnfinished` does — but for one whose owner has the most live runs a user may have here
   * (`Options.maxLiveRunsPerUser`), left to a server with room and tried again here after the retry. What became of each one tried (none on the embedded database). The
   * manager does it every `Options.takeover.every`, logging each.
   */
  readonly takeOver: () => Effect.Effect<ReadonlyArray<Resumption>, Unavailable>
  /**
   * The symbols the strategy's paper runs live here that read alerts (have a `tradingview`
   * analyst) trade (none: no such run).
   */
  readonly paperSymbols: (strategy: StrategyId) => ReadonlyArray<Symbol>
  /** The strategy's paper runs live here with no `tradingview` analyst: alerts would reach nothing in them. */
  readonly paperRunsIgnoringAlerts: (strategy: StrategyId) => ReadonlyArray<RunId>
  /**
   * Queue an outside signal (a webhook's alert) for every paper run of `strategy` live here that
   * trades its symbol and reads alerts: it enters each run with the run's next slice, recorded there. The runs it
   * went to; `NoPaperRun` when there is none, `RateLimited` when one has a full backlog.
   */
  readonly deliver: (strategy: StrategyId, signal: ExternalSignal) => Effect.Effect<ReadonlyArray<RunId>, NoPaperRun | RateLimited>
  /**
   * As `deliver`, in two steps: the signal is held in each run's inbox (counted against its
   * backlog, not taken by a slice) until `settle(true)` queues it, or `settle(false)` drops it — for
   * a delivery that is real only once a transaction commits.
   */
  readonly stage: (strategy: StrategyId, signal: ExternalSignal) => Effect.Effect<Staged, NoPaperRun | RateLimited>
  /**
   * Why this server cannot resume run `run` (`StoredRun.notReexecutable`: its strategy names an
   * agent this build cannot make; or what its last resume here met that does not pass by itself:
   * its data gone or changed, its record not decoding — learnt then, nothing re-read now), when it
   * is unfinished and not live here; undefined otherwise (its row is read only then). What
   * `runs.get` and `runs.report` say of a run stuck `running` (`runs stop` ends it).
   */
  readonly notResumable: (run: RunId, status: string) => Effect.Effect<string | undefined, Unavailable>
  /**
   * Why run `run` waits for a slot (its owner's live runs at the cap when a start-up's
   * `resumeUnfinished` came to it), when it is unfinished and waits so; undefined otherwise. Waiting
   * here: as this server's memory says (on a shared database, unless another server took it over
   * meanwhile). On a shared database, waiting on another server: as that server last said it
   * (`WaitingRuns`), believed for `WAITING_BELIEVED` after and never while a process holds the run's
   * lease — so that every server says the same of it, whichever one a load balancer asks. What
   * `runs.get`, `runs.report` and `runs.list` say of it (`waiting`).
   */
  readonly waiting: (run: RunId, status: string) => Effect.Effect<string | undefined, Unavailable>
  /** Runs executing in this process. */
  readonly live: () => number
  /** The runs the shutdown suspended (left `running` or `paused` for the next start), in the order they stopped; none before it. */
  readonly suspended: () => ReadonlyArray<Suspended>
}

/** A run a shutdown suspended. */
export interface Suspended {
  readonly run: RunId
  readonly ref: string
  /** Paused by an operator when the server stopped: the next start takes it back paused. */
  readonly paused: boolean
}

/**
 * What a server stopping says of the runs it suspended (`swarm: stopping: …`). `shared`: on a
 * database other servers may share (Postgres). Whether one is running, and with takeover on, is not
 * known here (its setting is its own; a server of `SWARM_TAKEOVER_SECONDS=0` takes nothing over),
 * so a takeover is said as the possibility it is, with its pace: within two of that server's looks.
 */
export const describeSuspended = (runs: ReadonlyArray<Suspended>, shared = false): string => {
  if (runs.length === 0) return "stopping: no run was live"
  const refs = runs.map((r) => (r.paused ? `${r.ref} (paused)` : r.ref)).join(", ")
  const them = runs.length === 1 ? "it" : "them"
  const next = shared
    ? `the next start resumes ${them}, or a server running on this database with takeover on takes ${them} over (within about twice its SWARM_TAKEOVER_SECONDS)`
    : `the next start resumes ${them}`
  return `stopping: ${runs.length} run${runs.length === 1 ? "" : "s"} suspended (${refs}); ${next}` +
    (runs.some((r) => r.paused) ? " (a paused run stays paused)" : "")
}

/** A signal staged in the inboxes of `runs` (`RunManagerService.stage`). */
export interface Staged {
  readonly runs: ReadonlyArray<RunId>
  /** Queue it for the runs' next slices (`true`), or drop it (`false`); once. */
  readonly settle: (delivered: boolean) => void
}

/**
 * A run `resumeUnfinished` (or `takeOver`) took over, or why it could not: `left` when another
 * live process runs it (it holds the run's lease), which is no failure; `waiting` (start-up only)
 * when its owner has the most live runs a user may have here — no failure either: it stays
 * unfinished, and goes on here when a run of theirs ends (`reason` says so).
 */
export interface Resumption {
  readonly run: RunId
  readonly ref: string
  readonly outcome: "resumed" | "failed" | "left" | "waiting"
  readonly reason?: string
  /**
   * Resumed paused because its owner is disabled (their name): it stays paused until they are
   * enabled and resume it (or an admin does), whatever its row said.
   */
  readonly ownerDisabled?: string
}

/** What a start-up says of a run it resumed, or could not (`swarm serve`'s line, without its newline). */
export const describeResumption = (o: Resumption): string =>
  o.outcome === "resumed"
    ? `resumed run ${o.run} (${o.ref})` +
      (o.ownerDisabled === undefined ? "" : `, paused: its owner ${o.ownerDisabled} is disabled (it stays paused until they are enabled and resume it)`)
    // Another server sharing the database runs it: no failure, the normal case of several servers.
    : o.outcome === "left"
    ? `left run ${o.run} (${o.ref}) to the process running it`
    : o.outcome === "waiting"
    ? `run ${o.run} (${o.ref}) waits for a slot: ${o.reason}`
    : `could not resume run ${o.run} (${o.ref}): ${o.reason}`

/** A run `pauseOwnedBy` paused. */
export interface PausedRun {
  readonly run: RunId
  readonly ref: string
}

/**
 * Who a run's control log names when a resume finds a running run of a disabled user (their
 * disabling could not pause it: its process had stopped, say) and pauses it: the server itself.
 */
const SERVER = new Principal({ userId: "swarm", name: "swarm", role: "admin" })

export class RunManager extends Context.Tag("swarm/edge/RunManager")<RunManager, RunManagerService>() {}

/**
 * A write of a live run's row by the process executing it (an operator's pause or resume), under the
 * run's `lease` held here, as the run's own writes are (`retryLeased`): it waits while the lease is
 * being taken again, and is refused before it asks for a connection once the lease is given up —
 * before, it was tried again for half a minute on a database refusing connections, the lease long
 * given up and the run stopped. Lost (given up, or not held by the database's word): a `Conflict`
 * saying why, nothing written — the run stops here, and goes on in the server that takes it over.
 * Still being taken again when the write's tries run out: `Unavailable`.
 */
export const leaseChecked = <A, E, R>(
  run: RunId,
  lease: Lease | undefined,
  write: Effect.Effect<A, E | LeaseNotHeld, R>
): Effect.Effect<A, Exclude<E, LeaseNotHeld> | Conflict | Unavailable, R> =>
  retryLeased(write, lease).pipe(
    Effect.catchIf(
      (error): error is LeaseNotHeld => error instanceof LeaseNotHeld,
      (error) => Effect.fail(error.retaking ? new Unavailable({ reason: error.message }) : leaseLost(run, error.reason))
    )
  ) as Effect.Effect<A, Exclude<E, LeaseNotHeld> | Conflict | Unavailable, R>

/**
 * Whether `lease` is held now by this process's word (its session has it: not being taken again,
 * nor given up), without asking the database — for an answer the run writes under it a moment later
 * (`decide`). `LeaseNotHeld` otherwise, `retaking` while it is taken again.
 */
const leaseHeldNow = (lease: Lease): Effect.Effect<void, LeaseNotHeld> =>
  Effect.suspend(() => lease.backend() !== undefined && lease.lost() === undefined ? Effect.void : Effect.fail(notHeld(lease, false)!))

/** What an operator is told of a run whose lease this server no longer holds (`why`): nothing was changed. */
const leaseLost = (run: RunId, why: string) =>
  new Conflict({
    reason: `run ${run} is no longer this server's to change: it does not hold the run's lease (${why}). Nothing was changed; ` +
      `the run stops here and goes on in the server that takes it over (ask again to reach that one)`
  })

/** The data source of a run request, for the strategy's symbols. */
const dataSourceOf = (data: RunData, strategy: Strategy, seed: number): DataSource.DataSource =>
  data._tag === "sample"
    ? DataSource.csv([SAMPLE], { symbols: strategy.symbols })
    : DataSource.synthetic({
      ...Synthetic.defaults,
      seed: data.seed ?? seed,
      symbols: strategy.symbols as unknown as readonly [Symbol, ...Array<Symbol>],
      bars: data.bars
    })

/** A slot freed for `owner`'s runs waiting here, while `resumeWaiting`'s turn holds it (`kept`) and before a resumed run takes it. */
interface KeptSlot {
  readonly owner: string
  kept: boolean
}

/** The run manager, with at most `options.maxLiveRunsPerUser` live runs a user. */
export const layerWith = (options: Options = {}) => Layer.scoped(
  RunManager,
  Effect.gen(function*() {
    const maxLivePerUser = options.maxLiveRunsPerUser ?? DEFAULT_MAX_LIVE_RUNS_PER_USER
    const bus = yield* EventBus
    // The latest portfolio and quotes of each run, for fast reads (in Redis when configured); optional.
    const latest = Option.getOrUndefined(yield* Effect.serviceOption(LatestCache))
    // The followers' news of a run paused or resumed (SSE `event: status`): told at once; optional.
    const statuses = Option.getOrUndefined(yield* Effect.serviceOption(RunStatusFeed))
    const statusChanged = (run: string) => statuses?.changed(run)
    const context = yield* Effect.context<SqlClient.SqlClient | PgPool>()
    const live = new Map<RunId, Live>()
    /**
     * The unfinished runs start-up left waiting for a slot here (`resumeUnfinished`: their owner at
     * the cap), oldest first, and why: each goes on as soon as a run of its owner's ends here
     * (`freed`, `resumeWaiting`). Forgotten once it is resumed, ends, goes to another server, or its
     * resume fails (the next start or takeover look tries it then, as any other).
     */
    const awaitingSlot = new Map<RunId, { readonly owner: string; readonly ref: string; readonly reason: string }>()
    /** Owners a live run of whose ended here while a run of theirs waits for a slot (`awaitingSlot`). */
    const freed = yield* Queue.unbounded<string>()
    /**
     * Each owner's slots freed while runs of theirs wait for one (one per `freed` entry), kept for
     * those runs until `resumeWaiting` has been through them: counted as live (`liveOwnedBy`), so
     * that a start meanwhile cannot take the slot the oldest waiting run is owed.
     */
    const reserved = new Map<string, number>()
    const reserve = (owner: string, delta: 1 | -1) => {
      const n = (reserved.get(owner) ?? 0) + delta
      if (n <= 0) reserved.delete(owner)
      else reserved.set(owner, n)
    }
    // Other processes may execute runs on this database (a Postgres server): control and approvals
    // of their runs are relayed to them (`ControlRequests`). The embedded one serves one process.
    const relays = (yield* PgPool).shared
    /**
     * Say on every server (a shared database: `WaitingRuns`) that runs wait for a slot here, or no
     * longer do; nothing on the embedded database, whose one process's memory says it. Bounded as a
     * relay's look is (`RELAY_QUERY_WAIT`).
     */
    const waitingWord = (write: Effect.Effect<void, StoreError, SqlClient.SqlClient>, operation: string) =>
      relays ? relayQuery(operation)(write).pipe(Effect.provide(context)) : Effect.void
    /**
     * As `waitingWord`, a database that cannot take it logged, not the caller's failure (a resume, a
     * stop): the next of `sayingWaiting`'s words says it again, and a word not taken back is
     * believed no longer than `WAITING_BELIEVED`.
     */
    const waitingWordLogged = (write: Effect.Effect<void, StoreError, SqlClient.SqlClient>, operation: string) =>
      waitingWord(write, operation).pipe(Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.interrupt
          : Effect.logWarning(`could not ${operation}: the other servers may say otherwise of them for a while`, cause)
      ))
    const sayWaiting = (runs: ReadonlyArray<WaitingRuns.Waiting>) => waitingWordLogged(WaitingRuns.say(runs), "say which runs wait for a slot here")
    const unsayWaiting = (runs: ReadonlyArray<RunId>) => waitingWordLogged(WaitingRuns.forget(runs), "say which runs no longer wait for a slot here")
    const waiting = new Map<string, Waiting>()
    /**
     * The lease each live run holds here (`StoredRun`'s `onLeased`; none on the embedded database,
     * nor before a resume has taken it): what its owner's writes of its row check — a pause, a
     * resume, a held intent's bookkeeping — so that a server that lost the run to another writes
     * nothing more to it.
     */
    const leases = new Map<RunId, Lease>()
    /**
     * How the intents answered here lately were resolved, the oldest dropped past `DECIDED_KEPT`:
     * a second answer is told what became of the first while the run's recorder may not have
     * written it yet (after that, the approvals table says).
     */
    const decided = new Map<string, Runs.ResolvedApproval>()
    /**
     * Operators' answers handed to their runs and not yet recorded by them: each done once its run
     * has committed the intent's `ApprovalResolved` (`onCommitted`), for `decide` to answer then.
     */
    const recording = new Map<string, Deferred.Deferred<void>>()
    // Runs live in a scope of their own, closed after `suspending` is set (finalizers run last
    // added first): a shutdown interrupts them as suspended, not stopped.
    const runs = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    let suspending = false
    yield* Effect.addFinalizer(() => Effect.sync(() => (suspending = true)))
    /** Each live run's `<strategy>#<number>`, for saying which runs a shutdown suspended. */
    const refs = new Map<RunId, string>()
    const suspendedRuns: Array<Suspended> = []

    /** Whether a run's fiber ended without ending the run: suspended by the shutdown, or running elsewhere. */
    const goesOn = (exit: Exit.Exit<unknown, unknown>): boolean =>
      Exit.isFailure(exit) &&
      ((suspending && Cause.isInterruptedOnly(exit.cause)) ||
        Option.exists(Cause.failureOption(exit.cause), (error) => Predicate.isTagged(error, "RunLeased")))

    const ownerOf = (principal: Principal) => (principal.role === "admin" ? undefined : principal.userId)
    const keyOf = (run: string, round: string) => `${run}\u0000${round}`

    /**
     * How long a held intent's bookkeeping may take; the database ends it there too
     * (`Database.withDeadline`): given up on, a write behind a lock would otherwise run on, holding a
     * connection, and land later, over a newer one.
     */
    const bookkeepingDeadline = Database.withDeadline({ duration: Duration.seconds(2), onTimeout: () => "timed out after 2 s" })

    /** A held intent's bookkeeping in the store: a database that cannot take it is logged, not the run's failure. */
    const bookkeeping = <A, E>(write: Effect.Effect<A, E, SqlClient.SqlClient>, run: RunId, round: string) =>
      write.pipe(
        bookkeepingDeadline,
        Effect.catchAllCause((cause) =>
          Effect.logWarning("could not save a held approval's times: other servers list it with times of their own", cause).pipe(
            Effect.annotateLogs({ run, round })
          )),
        Effect.provide(context)
      )

    /**
     * Say how long a held intent has waited (`Runs.saveApprovalWaited`); a database that cannot say it
     * is logged, not the run's failure. Under the run's lease, but for the last save of a wait the
     * run's end interrupted (`unleased`): the run's scope lets its lease go as the wait's fiber is
     * interrupted, so that save would race the release and be refused — and a server stopping
     * gracefully must leave what was waited for its next start. It only ever raises the figure
     * (`greatest`), to what this process saw waited.
     */
    const saveWaited = (run: RunId, round: string, waited: number, unleased = false) =>
      Runs.saveApprovalWaited(run, round, waited, unleased ? undefined : leases.get(run)).pipe(
        bookkeepingDeadline,
        Effect.catchAllCause((cause) =>
          Effect.logWarning("could not save how long an approval waited: a restart would give it that much longer", cause).pipe(
            Effect.annotateLogs({ run, round })
          )),
        Effect.provide(context)
      )

    /**
     * Until a held intent has waited `timeoutMillis` of its run going, `waitedBefore` of it already
     * (before a restart). While an operator has the run paused its market stands still, and so does
     * the countdown: the intent grows no staler, and an operator who pauses to think it over does
     * not lose it. The expiry `approvals.pending` shows moves on by the time paused. Looked at every
     * `EXPIRY_TICK`.
     *
     * How long it has waited is saved (`approval_waits`) every `WAITED_SAVED_EVERY` of waiting, when
     * the run is paused, and when the wait is cut short unanswered (the server shutting down, the
     * run stopped): a restarted server goes on with what is left — a server that restarts often
     * never lets an intent wait for ever. A suspended run's market stands still too, so the time
     * the server was down does not count; a crash loses what it waited since the last save: about
     * `WAITED_SAVED_EVERY`, give or take a tick and the write.
     */
    const countdown = (run: RunId, round: string, key: string, timeoutMillis: number, waitedBefore: number, answer: Deferred.Deferred<Backtest.ApprovalAnswer>) =>
      Effect.suspend(() => {
        let waited = waitedBefore
        let saved = waitedBefore
        let last: number | undefined
        let wasPaused = false
        const paused = () => live.get(run)?.paused === true
        const save = (unleased = false) => {
          if (waited <= saved) return Effect.void
          saved = waited
          return saveWaited(run, round, waited, unleased)
        }
        return Effect.gen(function*() {
          last = yield* Clock.currentTimeMillis
          while (waited < timeoutMillis) {
            yield* Effect.sleep(Duration.millis(Math.min(timeoutMillis - waited, EXPIRY_TICK_MILLIS)))
            const now = yield* Clock.currentTimeMillis
            const elapsed = now - last
            last = now
            if (paused()) {
              const item = waiting.get(key)
              if (item !== undefined) item.info = { ...item.info, expiresAt: item.info.expiresAt + elapsed }
              wasPaused = true
              yield* save()
            } else {
              if (wasPaused) {
                // Resumed: the expiry other processes list moved on by the time paused.
                wasPaused = false
                const item = waiting.get(key)
                if (item !== undefined) yield* bookkeeping(Runs.saveApprovalExpiry(run, round, item.info.expiresAt, leases.get(run)), run, round)
              }
              waited += elapsed
              if (waited - saved >= WAITED_SAVED_EVERY_MILLIS && waited < timeoutMillis) yield* save()
            }
          }
        }).pipe(Effect.onInterrupt(() =>
          Effect.gen(function*() {
            if (yield* Deferred.isDone(answer)) return
            if (last !== undefined && !paused()) waited = Math.min(timeoutMillis, waited + (yield* Clock.currentTimeMillis) - last)
            yield* save(true)
          })
        ))
      })

    /** Held intents asked so far (their `order`). */
    let asked = 0
    /** The operator of a live run: its held intents wait here for an answer or their expiry. */
    const approverOf = (run: RunId, ref: string, owner: string, timeoutMillis: number): Backtest.Options["approver"] => (request) =>
      Effect.gen(function*() {
        // Asked again after a restart: what it waited before counts.
        const waitedBefore = yield* Runs.approvalWaited(run, request.round).pipe(
          Effect.catchAllCause((cause) =>
            Effect.as(
              Effect.logWarning("could not read how long an approval waited before: it gets its whole timeout", cause).pipe(
                Effect.annotateLogs({ run, round: request.round })
              ),
              0
            )),
          Effect.provide(context)
        )
        const now = yield* Clock.currentTimeMillis
        const answer = yield* Deferred.make<Backtest.ApprovalAnswer>()
        const key = keyOf(run, request.round)
        waiting.set(key, {
          order: asked++,
          owner,
          answer,
          info: {
            run,
            ref,
            round: request.round,
            symbol: request.intent.symbol,
            side: request.intent.side,
            quantity: request.quantity,
            referencePrice: request.intent.referencePrice,
            reasons: request.reasons,
            requestedAt: now - waitedBefore,
            expiresAt: now + Math.max(0, timeoutMillis - waitedBefore)
          }
        })
        // Said in the store, for other processes' lists (`heldElsewhere`): within the wait, so that
        // an interruption (a stop) while it is written still takes the intent out of `waiting`.
        const held = waiting.get(key)!.info
        const hold = bookkeeping(Runs.holdApproval(run, request.round, { waitedMillis: waitedBefore, requestedAt: held.requestedAt, expiresAt: held.expiresAt }, leases.get(run)), run, request.round)
        const expired: Backtest.ApprovalAnswer = {
          approved: false,
          expired: true,
          by: "expiry",
          reason: `nobody decided within ${timeoutMillis / 1000} s (risk.approval.timeoutSeconds)`
        }
        return yield* Effect.raceFirst(Effect.zipRight(hold, Deferred.await(answer)), Effect.as(countdown(run, request.round, key, timeoutMillis, waitedBefore, answer), expired)).pipe(
          Effect.tap((a) =>
            Effect.sync(() => {
              decided.delete(key)
              decided.set(key, { outcome: a.approved ? "approved" : a.expired === true ? "expired" : "rejected", by: a.by, reason: a.reason })
              if (decided.size > DECIDED_KEPT) decided.delete(decided.keys().next().value!)
            })
          ),
          Effect.ensuring(Effect.sync(() => waiting.delete(key)))
        )
      })

    /**
     * Why a run failed before its row existed, for the client: the failure's own message (an
     * `InvalidAgent`: `agents[0].type: unknown agent type …`), never the cause's rendering, which
     * carries stack traces and source paths. An unexpected one is logged here in full.
     */
    const startFailure = (cause: Cause.Cause<unknown>): Effect.Effect<never, InvalidRequest | StrategyNotFound | Unavailable> => {
      const failure = Cause.failureOption(cause)
      // The strategy deleted while the run was being created (`Runs.create`): as if it had been before.
      if (Option.isSome(failure) && failure.value instanceof StrategyNotFound) return Effect.fail(failure.value)
      // The database failed, not the request: the caller may try again (`Unavailable`, as any procedure says it).
      if (Option.isSome(failure) && failure.value instanceof StoreError) return Effect.fail(new Unavailable({ reason: failure.value.message }))
      return Effect.flatMap(
        Option.match(failure, {
          onSome: (error) =>
            Effect.succeed(
              Predicate.hasProperty(error, "message") && typeof error.message === "string" && error.message !== ""
                ? error.message
                : "the run could not start"
            ),
          onNone: () => Effect.as(Effect.logError("a run failed to start", cause), "the run could not start (the server logged why)")
        }),
        (reason) => Effect.fail(new InvalidRequest({ field: "strategy", reason }))
      )
    }

    /**
     * However a run's execution ends, its inbox takes nothing more (`deliver` then finds no run). The
     * run recorded what it could as `SignalNotApplied` (`leftoverSignals`); what is still queued is
     * what its log could not take — stopped by an operator, or a resume that failed while it
     * re-executed its recording — and is said here, in the server's log. Not when the run goes on
     * (suspended, leased by another process, or a resume that failed before it began, its row still
     * `running`): its alerts are put back in its inbox when it is resumed.
     */
    const closeInbox = (inbox: SignalInbox | undefined, exit: Exit.Exit<unknown, unknown>, created: Deferred.Deferred<RunId>) =>
      Effect.gen(function*() {
        const left = inbox?.close() ?? []
        if (left.length === 0 || goesOn(exit)) return
        const run = (yield* Deferred.isDone(created)) ? yield* Deferred.await(created) : undefined
        if (run !== undefined) {
          // Unreadable: said all the same.
          const status = yield* Runs.get(run).pipe(Effect.map((record) => record.status), Effect.orElseSucceed(() => undefined))
          if (status === "running" || status === "paused") return
        }
        yield* Effect.logWarning(`${left.length} alert(s) delivered to the run were never applied: it ended before taking them`).pipe(
          Effect.annotateLogs({ ...(run === undefined ? {} : { run }), alerts: left.map((signal) => signal.alertId).join(", ") })
        )
      })

    /** Execute a stored run (new or resumed) in the manager's scope; answers once its row is known. */
    const launch = <E>(
      start: (hooks: {
        readonly gate: Effect.Latch
        readonly hold: Backtest.Options["hold"]
        readonly beforeSlice?: Backtest.Options["beforeSlice"]
        readonly onCommitted: (event: RunEvent, json: string) => void
        readonly suspended: () => boolean
        readonly stopReason: () => string | undefined
        readonly checkpointEvery?: number
        readonly signals?: Backtest.Options["signals"]
        readonly leftoverSignals?: Backtest.Options["leftoverSignals"]
        readonly trading: Backtest.Options["trading"]
        readonly waiting: Backtest.Options["waiting"]
        readonly onLeased: (lease: Lease | undefined) => void
      }) => Effect.Effect<unknown, E, SqlClient.SqlClient | PgPool>,
      options: {
        readonly mode: "backtest" | "paper"
        readonly speed: number
        readonly paused: boolean
        readonly owner: string
        readonly known?: RunId
        readonly strategy: { readonly id: StrategyId; readonly symbols: ReadonlyArray<Symbol>; readonly readsAlerts: boolean }
        /** Signals to put in a paper run's inbox first (a resumed run's, undelivered when its process stopped). */
        readonly pending?: ReadonlyArray<ExternalSignal>
        /**
         * A resume: whether it has not touched the run's row yet (it fails before its lease, reading
         * the run's inputs): a failure then leaves the run unfinished, for a later attempt or a stop.
         */
        readonly untouched?: () => boolean
      },
      created: Deferred.Deferred<RunId>
    ) =>
      // From the fork to the run's registration, whatever the caller does: a caller going away (a
      // client that aborts `runs.start`) once the run's row existed left a run executing that no
      // stop, pause or webhook could reach and whose followers were never told it ended. The wait is
      // bounded: the run's row is made, or its execution ends (a server stopping interrupts it).
      Effect.uninterruptible(Effect.gen(function*() {
        const gate = yield* Effect.makeLatch(!options.paused)
        const held = yield* Effect.makeLatch(options.paused)
        /** The run's entry in `live`, once it has one: what a pause and a resume change. */
        let entry: Live | undefined
        const paused = () => entry?.paused ?? options.paused
        /**
         * What was left of a paper run's wait for its next bar's moment when a pause broke it off:
         * waited once it is resumed (its market stands still while it is paused).
         */
        let rest: number | undefined
        const inbox = options.mode === "paper" ? new SignalInbox(options.strategy.id, options.strategy.symbols) : undefined
        for (const signal of options.pending ?? []) inbox?.offer(signal)
        const trading = new TradingInbox()
        let previous: number | undefined
        let stoppedBy: string | undefined
        let lease: Lease | undefined
        const execution = start({
          gate,
          // An operator's pause holds the run here, at its next slice, right after its trading-state
          // commands: it takes those as they come (a halt before resuming, say), at that slice, and
          // nothing else — no market data, no alert — until it is resumed.
          hold: () => {
            if (paused()) return Effect.map(Effect.raceFirst(gate.await, trading.arrival), trading.drain)
            if (rest === undefined) return undefined
            const left = rest
            return Effect.gen(function*() {
              const start = yield* Clock.currentTimeMillis
              const slept = yield* Effect.raceFirst(Effect.as(Effect.sleep(Duration.millis(left)), true), Effect.as(Effect.raceFirst(trading.arrival, held.await), false))
              const waited = (yield* Clock.currentTimeMillis) - start
              rest = slept || waited >= left ? undefined : left - waited
              return trading.drain()
            })
          },
          trading: trading.drain,
          // Waiting for an operator's answer to a held intent, the run takes its commands at once
          // (a halt refuses the intent): an operator halting such a run is not left waiting for the answer.
          waiting: { take: trading.drain, arrival: trading.arrival },
          onLeased: (held) => {
            lease = held
            if (held !== undefined) leases.set(held.run, held)
          },
          // Published once committed, not as the run gives them: a follower must never see under
          // a sequence number an event the database could still lose (a process killed before the
          // recorder's commit re-executes that part on resume, and what it gives again may differ
          // — SSE promises no gap and no duplicate). The recorder commits every few milliseconds.
          onCommitted: (event, json) => {
            bus.publish(event.run, { seq: event.seq, tag: event._tag, json })
            latest?.observe(event)
            if (event._tag === "ApprovalResolved") {
              const recorded = recording.get(keyOf(event.run, event.round))
              if (recorded !== undefined) Deferred.unsafeDone(recorded, Exit.void)
            }
          },
          suspended: () => suspending,
          stopReason: () => stoppedBy,
          ...(options.mode === "paper"
            ? {
              checkpointEvery: PAPER_CHECKPOINT_EVERY,
              signals: inbox!.drain,
              // When the run ends, what its inbox still holds is recorded as not applied, and the
              // inbox takes nothing more (`deliver` then finds no run): an alert answered 202 is
              // either applied or said not to be, in the run's events.
              leftoverSignals: inbox!.close,
              // Paused while it waited for the slice's moment, the wait breaks off: the run goes to
              // its hold at the slice (`hold`), taking no market data nor alert until it is resumed,
              // and then waits what was left of the moment.
              beforeSlice: (ts: number) =>
                Effect.suspend(() => {
                  const wait = previous === undefined ? 0 : Math.max(0, (ts - previous) / options.speed)
                  previous = ts
                  if (wait <= 0) return Effect.void
                  return Effect.gen(function*() {
                    const start = yield* Clock.currentTimeMillis
                    const slept = yield* Effect.raceFirst(Effect.as(Effect.sleep(Duration.millis(wait)), true), Effect.as(held.await, false))
                    if (!slept) rest = Math.max(0, wait - ((yield* Clock.currentTimeMillis) - start))
                  })
                })
            }
            : {})
        }).pipe(Effect.provide(context))
        const fiber = yield* Effect.forkIn(
          // Its row says why it failed; the server's log says it too, with the whole cause. (Before
          // its row, the failure is the caller's answer: `startFailure`.) Interruptible: `stop`.
          Effect.interruptible(Effect.tapErrorCause(Effect.onExit(execution, (exit) => Effect.zipRight(Effect.sync(() => endTrading(trading)), Effect.provide(closeInbox(inbox, exit, created), context))), (cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.void
              : Deferred.poll(created).pipe(Effect.flatMap(Option.match({
                onNone: () => Effect.void,
                onSome: Effect.flatMap((run) =>
                  // Not a failure: another process runs it (a second server's start-up finds it unfinished).
                  Option.exists(Cause.failureOption(cause), (error) => Predicate.isTagged(error, "RunLeased"))
                    ? Effect.logInfo("the run is running in another process: left to it").pipe(Effect.annotateLogs("run", run))
                    // Stopped here, its end not recorded (the database away, or its lease lost): not "a run
                    // failed" — its row says it runs, and it goes on elsewhere or at the next start.
                    : Option.exists(Cause.failureOption(cause), (error) => Predicate.isTagged(error, "EndNotRecorded"))
                    ? Effect.logWarning(StoredRun.failureOf(cause)).pipe(Effect.annotateLogs("run", run))
                    // A resume that failed before its lease, for a reason (not a defect): its resumer
                    // says why (start-up's line; a takeover's warning, once per reason). Said here
                    // too, it was a stack trace at every attempt — every 5 minutes for a run whose data is gone.
                    : options.untouched?.() === true && !Cause.isDie(cause)
                    ? Effect.void
                    // A reason that does not pass by itself (its data gone, its record not decoding):
                    // what the run's row says, without the stack of an expected failure.
                    : StoredRun.lastingFailure(cause) !== undefined
                    ? Effect.logWarning(`a run failed: ${StoredRun.failureOf(cause)}`).pipe(Effect.annotateLogs("run", run))
                    : Effect.logWarning("a run failed", cause).pipe(Effect.annotateLogs("run", run)))
              }))))),
          runs
        )
        // The row exists, or the execution failed before it did. Decided in a fiber of its own: an
        // interrupted fiber signals its children, which the racers would be, whatever this region
        // is; and they are interruptible, so that the loser is interrupted rather than awaited (the
        // execution's end is the whole run's).
        const id = yield* Fiber.join(yield* Effect.forkDaemon(Effect.raceFirst(
          Effect.interruptible(Deferred.await(created)),
          Effect.interruptible(Effect.flatMap(Fiber.await(fiber), (exit) =>
            Exit.isFailure(exit)
              ? startFailure(exit.cause)
              : Deferred.await(created)))
        )))
        entry = { run: id, owner: options.owner, mode: options.mode, fiber, gate, held, lock: yield* Effect.makeSemaphore(1), paused: options.paused, inbox, readsAlerts: options.strategy.readsAlerts, trading, stoppedBy: (reason) => {
          stoppedBy = reason
        } }
        live.set(id, entry)
        fiber.addObserver((exit) => {
          const entry = live.get(id)
          live.delete(id)
          // A slot of its owner's freed: a run of theirs waiting for one goes on (not while shutting
          // down), the slot kept for it meanwhile.
          if (!suspending && [...awaitingSlot.values()].some((waiting) => waiting.owner === options.owner)) {
            reserve(options.owner, 1)
            Queue.unsafeOffer(freed, options.owner)
          }
          if (lease !== undefined && leases.get(id) === lease) leases.delete(id)
          if (suspending && Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) {
            suspendedRuns.push({ run: id, ref: refs.get(id) ?? id, paused: entry?.paused ?? false })
          }
          refs.delete(id)
          // Its followers (here, and through Redis on other servers) are told it ended only when it
          // did: a run suspended by the shutdown goes on at the next start, and one leased by another
          // process goes on there.
          // A resume that failed before its lease (not interrupted: a stop then ends its row) did not end it either.
          const untouched = Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause) && options.untouched?.() === true
          if (!goesOn(exit) && !untouched) bus.end(id)
        })
        return id
      }))

    /**
     * Starts of each user past their check and not yet in `live`: counted with the live runs, so
     * that two starts at once cannot both take the last slot (the check and the count's increment
     * are one synchronous step; the slot is the run's once `live` has it).
     */
    const starting = new Map<string, number>()
    /** The owner's live runs here, with the starts past their check and the slots kept for their waiting runs (`reserved`). */
    const liveOwnedBy = (owner: string) => {
      let n = (starting.get(owner) ?? 0) + (reserved.get(owner) ?? 0)
      for (const entry of live.values()) if (entry.owner === owner) n++
      return n
    }
    const slot = (owner: string) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          const n = liveOwnedBy(owner)
          if (n >= maxLivePerUser) {
            const kept = reserved.get(owner) ?? 0
            const held = n - kept
            return Effect.fail(
              new Conflict({
                reason: `you have ${held} live run${held === 1 ? "" : "s"} (running or paused)` +
                  (kept === 0 ? "" : ` and ${kept} slot${kept === 1 ? "" : "s"} freed for your runs waiting here to be resumed, which go first`) +
                  `, the most a user may have on this server (SWARM_MAX_LIVE_RUNS_PER_USER=${maxLivePerUser}): stop one first (runs.list, then runs.stop)`
              })
            )
          }
          starting.set(owner, (starting.get(owner) ?? 0) + 1)
          return Effect.void
        }),
        () =>
          Effect.sync(() => {
            const n = (starting.get(owner) ?? 1) - 1
            if (n === 0) starting.delete(owner)
            else starting.set(owner, n)
          })
      )

    const start: RunManagerService["start"] = (principal, request) =>
      Effect.zipRight(enabled(principal), startEnabled(principal, request))

    const startEnabled: RunManagerService["start"] = (principal, request) =>
      unavailable(Effect.scoped(Effect.gen(function*() {
        const found = yield* Strategies.find(principal.userId, request.strategy, request.version)
        // Before the data is opened: a refused start costs nothing.
        yield* slot(principal.userId)
        // As a number, as the CLI reads it: "07" is the seed 7.
        const seed = request.seed === undefined ? "0" : String(BigInt(request.seed))
        const source = dataSourceOf(request.data, found.strategy, Number(seed))
        const feed = yield* DataSource.open(source).pipe(
          Effect.mapError((error) => new InvalidRequest({ field: "data", reason: error.reason }))
        )
        const created = yield* Deferred.make<RunId>()
        const mode = request.mode
        const speed = request.speed ?? 1
        const timeout = approvalTimeoutMillis(found.strategy.risk.approval)
        let approver: Backtest.Options["approver"]
        const id = yield* launch((hooks) =>
          StoredRun.backtest({
            strategy: found.strategy,
            feed,
            dataSource: source,
            seed,
            owner: principal.userId,
            version: { id: found.id, version: found.version },
            mode,
            ...(mode === "paper" ? { speed } : {}),
            onCreated: (c) => {
              approver = approverOf(c.id, `${found.name}#${c.number}`, principal.userId, timeout)
              refs.set(c.id, `${found.name}#${c.number}`)
              Deferred.unsafeDone(created, Exit.succeed(c.id))
            },
            approver: (request) => approver!(request),
            ...(options.registry === undefined ? {} : { registry: options.registry }),
            ...hooks
          }), { mode, speed, paused: false, owner: principal.userId, strategy: { id: found.id, symbols: found.strategy.symbols, readsAlerts: readsAlerts(found.strategy) } }, created)
        return yield* Runs.get(id).pipe(
          Effect.catchTag("RunNotFound", () => new Unavailable({ reason: `run ${id} was created but cannot be read back` }))
        )
      }))).pipe(Effect.provide(context))

    /**
     * One run at a time is resumed here (start-up, takeover looks): a run resumed twice at once in
     * this process would have its second attempt's end take the first's entry out of `live`.
     */
    const resuming = yield* Effect.makeSemaphore(1)

    /**
     * The unfinished runs this process could not resume for a reason that does not go away by
     * itself (`StoredRun.lastingFailure`), and why, as its last attempt learnt it: its strategy
     * this build cannot make (`retried: false` — the registry is this process's for its whole
     * life, so a retry could only fail the same way: said once, not tried again), or its data
     * gone or changed, its record not decoding (tried again by takeover looks every
     * `TAKEOVER_RETRY`: a file may come back). Held by no live process, `stop` ends such a run
     * here (`stopInRow`); `notResumable` says why. Forgotten when it is resumed, ends, or
     * its next attempt fails for a passing reason.
     */
    const unresumable = new Map<RunId, Unresumable>()

    /**
     * Why this server cannot resume `record` (unfinished, not live here), as far as it knows
     * without reading anything: its registry's word on the strategy, else what its last attempt learnt.
     */
    const unresumableOf = (record: Runs.RunRecord): Unresumable | undefined => {
      const cannot = StoredRun.notReexecutable(record, options.registry)
      return cannot === undefined ? unresumable.get(record.id) : unbuildableOf(cannot)
    }

    /**
     * Why this server cannot resume unfinished run `id` (not live here), reading its row now: as
     * `unresumableOf`, and a row that does not decode (its strategy column edited by hand, say)
     * is such a reason itself — every server's resume reads it first. Deleted: none.
     */
    const unresumableNow = (id: RunId) =>
      Runs.get(id).pipe(
        Effect.map(unresumableOf),
        Effect.catchTags({ CorruptRecord: (error) => Effect.succeed(lastingOf(error)), RunNotFound: () => Effect.succeed(undefined) })
      )

    /** What a start-up or a takeover says of a run it could not resume for a lasting reason: why, and what ends it. */
    const unresumableReason = (run: RunId, cannot: Unresumable) =>
      cannot.retried
        ? `${cannot.why} (${cannot.remedy}, or \`swarm runs stop ${run}\` ends it)`
        : `${cannot.why}; not tried again by this server (${cannot.remedy}, or \`swarm runs stop ${run}\` ends it)`

    /**
     * Resume one unfinished run here (not live here: the caller looked), at its pace and in the
     * state it was left in: what became of it, or nothing when it ended or went since it was listed.
     * `cap`: whether its owner's cap of live runs here holds it back — a takeover's run is left to a
     * server with room (`failed`, tried again after the retry), start-up's waits here for a slot
     * (`waiting`, in `awaitingSlot`); a run no longer waiting is forgotten there.
     */
    const resumeOne = (id: RunId, listedAs?: string, cap?: "takeover" | "startup", turn?: KeptSlot) =>
      Effect.tap(resumeOneCapped(id, listedAs, cap, turn), (outcome) =>
        Effect.suspend(() => {
          if (outcome?.outcome === "waiting") return Effect.void
          const waited = awaitingSlot.delete(id)
          // No longer waiting here, or going on here (it may have waited on another server): said
          // so on every server (`waiting`) — a resume's lease already has them not believe it.
          return waited || outcome?.outcome === "resumed" ? unsayWaiting([id]) : Effect.void
        }))

    /**
     * Why a run start-up came to waits for a slot here (`resumeOne`'s `waiting`). On a shared
     * database every server says it as this one does (`waiting`), so it names no server "this" one
     * but says "the server where it waits".
     */
    const waitingReason = (run: RunId, live: number) => {
      const [on, there] = relays ? ["the server where it waits", "there"] : ["this server", "here"]
      return `its owner has ${live} live run${live === 1 ? "" : "s"} on ${on}, the most a user may have ${there} ` +
        `(SWARM_MAX_LIVE_RUNS_PER_USER=${maxLivePerUser}): it waits, unfinished, and is resumed ${there} as soon as one of their runs ends, ` +
        `else at the next start${relays ? ", or sooner by a server on this database with takeover on and room for it" : ""} (\`swarm runs stop ${run}\` ends it)`
    }

    const resumeOneCapped = (id: RunId, listedAs: string | undefined, cap: "takeover" | "startup" | undefined, turn: KeptSlot | undefined) =>
      Effect.gen(function*() {
        const read = yield* Effect.either(Runs.get(id))
        // Its row does not decode (edited by hand, written by another version): said, not skipped
        // unsaid, and no reason for the other runs not to be resumed.
        if (Either.isLeft(read) && read.left._tag === "CorruptRecord") {
          return { run: id, ref: listedAs ?? id, outcome: "failed", reason: `its record cannot be read: ${read.left.message}` } satisfies Resumption
        }
        const found = Either.getRight(read)
        // Deleted since it was listed; or ended meanwhile (a stopped run must not be resumed here).
        if (found._tag === "None" || (found.value.status !== "running" && found.value.status !== "paused")) return undefined
        const record = found.value
        const ref = `${record.strategyName}#${record.number}`
        // Not launched at all: nothing to lease, nothing to re-read, and its followers are not told
        // it ended (it did not: a build that can make its agents goes on with it).
        const unbuildable = StoredRun.notReexecutable(record, options.registry)
        if (unbuildable !== undefined) {
          const cannot = unbuildableOf(unbuildable)
          unresumable.set(record.id, cannot)
          return { run: record.id, ref, outcome: "failed", reason: unresumableReason(record.id, cannot) } satisfies Resumption
        }
        const mode = record.mode === "paper" ? "paper" as const : "backtest" as const
        // A disabled user's paper run is taken back paused, whatever its row says (their disabling
        // could not reach it): nothing automatic sets it trading again.
        const ownerDisabled = mode === "paper" && record.ownerDisabled ? record.ownerName ?? record.owner : undefined
        const created = yield* Deferred.make<RunId>()
        refs.set(record.id, ref)
        const approver = approverOf(record.id, ref, record.owner, approvalTimeoutMillis(record.strategy.risk.approval))
        // A paper run's inbox as its process left it: the alerts delivered to it and not yet taken.
        // Its recorded alerts not decoding is this run's lasting failure, not every other run's.
        const inbox = mode === "paper"
          ? yield* WebhookStore.pendingOf(record).pipe(
            Effect.map(Either.right),
            Effect.catchTag("CorruptRecord", (error) => Effect.succeed(Either.left(error)))
          )
          : Either.right([])
        if (Either.isLeft(inbox)) {
          const cannot = lastingOf(inbox.left)
          unresumable.set(record.id, cannot)
          return { run: record.id, ref, outcome: "failed", reason: unresumableReason(record.id, cannot) } satisfies Resumption
        }
        const pending = inbox.right
        // A takeover respects the cap of live runs a user may have here, as a start does: a server
        // that died left its runs to whichever server has room, not all to the first to look. The
        // check and the slot's reservation are one synchronous step (`slot`), the slot the run's once `live` has it.
        // A waiting run's turn (`resumeWaiting`) brings the slot kept for it (`reserved`), which becomes its own.
        if (cap !== undefined) {
          const full = yield* Effect.sync(() => {
            const kept = turn?.kept === true && turn.owner === record.owner
            const n = liveOwnedBy(record.owner) - (kept ? 1 : 0)
            if (n >= maxLivePerUser) return n
            if (kept) {
              turn.kept = false
              reserve(record.owner, -1)
            }
            starting.set(record.owner, (starting.get(record.owner) ?? 0) + 1)
            return undefined
          })
          if (full !== undefined) {
            refs.delete(record.id)
            if (cap === "startup") {
              const reason = waitingReason(record.id, full)
              awaitingSlot.set(record.id, { owner: record.owner, ref, reason })
              // Said at once on every server (`waiting`), not only at the next of `sayingWaiting`'s words.
              yield* sayWaiting([{ run: record.id, reason }])
              return { run: record.id, ref, outcome: "waiting", reason } satisfies Resumption
            }
            return {
              run: record.id,
              ref,
              outcome: "failed",
              reason: `its owner has ${full} live run${full === 1 ? "" : "s"} on this server, the most a user may have here ` +
                `(SWARM_MAX_LIVE_RUNS_PER_USER=${maxLivePerUser}): left to a server with room (this one looks again in a few minutes)`
            } satisfies Resumption
          }
        }
        const unreserve = cap !== undefined
          ? Effect.sync(() => {
            const n = (starting.get(record.owner) ?? 1) - 1
            if (n === 0) starting.delete(record.owner)
            else starting.set(record.owner, n)
          })
          : Effect.void
        // The lease is taken before the run's first event: another live process's run fails fast here.
        const leased = yield* Deferred.make<void>()
        // How the execution ended, whenever it does: what a failure says of the run is learnt then.
        const ended = yield* Deferred.make<Exit.Exit<unknown, unknown>>()
        let isLeased = false
        const launched = yield* Effect.either(launch((hooks) =>
          Effect.zipRight(
            Deferred.succeed(created, record.id),
            StoredRun.resume(record.id, {
              ...hooks,
              approver,
              onLeased: (lease) => {
                hooks.onLeased(lease)
                isLeased = true
                Deferred.unsafeDone(leased, Exit.void)
              },
              ...(options.registry === undefined ? {} : { registry: options.registry })
            }).pipe(Effect.onExit((exit) => Effect.sync(() => {
              // Not while it is being suspended or stopped: an interruption says nothing of it.
              if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) {
                unresumable.delete(record.id)
              } else {
                const lasting = StoredRun.lastingFailure(exit.cause)
                if (lasting === undefined) unresumable.delete(record.id)
                else unresumable.set(record.id, lastingOf(lasting))
              }
              Deferred.unsafeDone(ended, Exit.succeed(exit))
            })))
          ), {
            mode,
            speed: record.speed ?? 1,
            paused: record.status === "paused" || ownerDisabled !== undefined,
            owner: record.owner,
            strategy: { id: record.strategyId, symbols: record.strategy.symbols, readsAlerts: readsAlerts(record.strategy) },
            pending,
            // Failed before its lease (its data gone, the database failing): its row is as it was,
            // and its followers are not told it ended — it did not.
            untouched: () => !isLeased
          }, created)).pipe(Effect.ensuring(unreserve))
        if (Either.isLeft(launched)) {
          refs.delete(record.id)
          const error = launched.left
          return { run: record.id, ref, outcome: "failed", reason: error._tag === "StrategyNotFound" ? `no strategy ${error.strategy}` : error.reason } satisfies Resumption
        }
        // A resume that cannot go on (leased elsewhere, diverged, its data gone) ends at once: say
        // why. Whether another process holds it is known once the lease is taken or refused
        // (reading the run's inputs first may take longer than a moment); a divergence, within a
        // moment after. Awaited on the execution itself, not its `live` entry: one that failed
        // before `launch` returned has none.
        const early = yield* Effect.raceFirst(Effect.asSome(Deferred.await(ended)), Effect.as(Deferred.await(leased), Option.none())).pipe(
          Effect.timeoutTo({ duration: Duration.seconds(15), onSuccess: (outcome) => outcome, onTimeout: () => Option.none() }),
          Effect.flatMap((outcome) => Option.isSome(outcome) ? Effect.succeed(outcome) : Deferred.await(ended).pipe(Effect.timeoutOption(Duration.millis(50))))
        )
        if (early._tag === "Some" && Exit.isFailure(early.value)) {
          const cause = early.value.cause
          // Taken by another process between the look and the lease: no failure, it runs there.
          if (Option.exists(Cause.failureOption(cause), (error) => Predicate.isTagged(error, "RunLeased"))) {
            return { run: record.id, ref, outcome: "left", reason: "another process runs it" } satisfies Resumption
          }
          const lasting = StoredRun.lastingFailure(cause)
          return {
            run: record.id,
            ref,
            outcome: "failed",
            reason: lasting === undefined ? StoredRun.failureOf(cause) : unresumableReason(record.id, lastingOf(lasting))
          } satisfies Resumption
        }
        if (ownerDisabled === undefined) return { run: record.id, ref, outcome: "resumed" } satisfies Resumption
        // Held here now (its lease taken): its row says paused as the run is, and its control log why.
        if (record.status === "running") {
          const lease = leases.get(record.id)
          yield* audited(leaseChecked(record.id, lease, ControlAudit.record(record.id, "pause", SERVER, { reason: `user ${ownerDisabled} disabled` }, Runs.setStatus(record.id, "paused", lease))))
          statusChanged(record.id)
        }
        return { run: record.id, ref, outcome: "resumed", ownerDisabled } satisfies Resumption
      })

    /**
     * Whether run `id` waits for a slot here, and why: as `awaitingSlot` says, but for a run whose
     * lease a session holds meanwhile on a shared database — another server took it over (or this
     * one's resume of it has begun, which says what became of it) — forgotten.
     */
    const waitingHere = (id: RunId) =>
      Effect.gen(function*() {
        const waiting = awaitingSlot.get(id)
        if (waiting === undefined || live.has(id)) return undefined
        if (relays && (yield* ControlRequests.holderOf(id)) !== undefined) {
          if (awaitingSlot.get(id) === waiting) awaitingSlot.delete(id)
          return undefined
        }
        return waiting
      })

    /**
     * The runs waiting for a slot here (`awaitingSlot`) go on, oldest first, as soon as a run of their
     * owner's ends here (`freed`), while the owner has room — said in the server's log. One whose
     * resume fails is said and forgotten: the next start or a takeover look tries it, as any other's.
     * A look the database fails leaves them waiting, for the next run of theirs that ends.
     */
    const resumeWaiting = Effect.forever(Effect.gen(function*() {
      const owner = yield* Queue.take(freed)
      // The slot kept for this turn (`reserved`, counted in `liveOwnedBy`): the first run resumed takes it.
      const turn: KeptSlot = { owner, kept: true }
      yield* resuming.withPermits(1)(Effect.gen(function*() {
        for (const [id, waiting] of [...awaitingSlot]) {
          if (suspending || liveOwnedBy(owner) - (turn.kept ? 1 : 0) >= maxLivePerUser) return
          if (waiting.owner !== owner || awaitingSlot.get(id) !== waiting || live.has(id)) continue
          const outcome = yield* resumeOne(id, waiting.ref, "startup", turn)
          if (outcome === undefined) continue
          const named = `run ${outcome.run} (${outcome.ref}), which waited for a slot`
          if (outcome.outcome === "resumed") {
            failedTakeovers.delete(outcome.run)
            yield* Effect.logInfo(
              `resumed ${named}: one of its owner's runs ended` +
                (outcome.ownerDisabled === undefined ? "" : `, paused: its owner ${outcome.ownerDisabled} is disabled`)
            )
          } else if (outcome.outcome === "failed") {
            failedTakeovers.set(outcome.run, { at: yield* Clock.currentTimeMillis, reason: outcome.reason ?? "" })
            yield* Effect.logWarning(`could not resume ${named}: ${outcome.reason}`)
          } else if (outcome.outcome === "left") {
            yield* Effect.logInfo(`left ${named} to the process running it`)
          }
        }
      })).pipe(
        // No run took this turn's kept slot (none resumed, or none waits any more): it is anyone's again.
        Effect.ensuring(Effect.sync(() => {
          if (turn.kept) reserve(owner, -1)
        })),
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.failCause(cause)
            : Effect.logWarning("could not resume the runs waiting for a slot: they wait for the next run of their owner's to end, or the next start", cause)
        )
      )
    })).pipe(Effect.provide(context))

    /**
     * On a shared database, every `WAITING_SAID_EVERY` while runs wait for a slot here, say again
     * that they do (`WaitingRuns.say`), so that the other servers go on believing it
     * (`WAITING_BELIEVED`): a word that stops coming — this server died — stops being believed. A
     * database that cannot take it is said once, until it can again.
     */
    const sayingWaiting = Effect.gen(function*() {
      let failing = false
      while (true) {
        yield* Effect.sleep(WAITING_SAID_EVERY)
        if (suspending || awaitingSlot.size === 0) continue
        const said = yield* Effect.exit(untraced(waitingWord(WaitingRuns.say([...awaitingSlot].map(([run, waiting]) => ({ run, reason: waiting.reason }))), "say which runs wait for a slot here")))
        if (Exit.isSuccess(said)) {
          if (failing) yield* Effect.logInfo("which runs wait for a slot here can be said to the other servers again")
          failing = false
        } else if (!failing && !Cause.isInterruptedOnly(said.cause)) {
          failing = true
          yield* Effect.logWarning(
            `could not say which runs wait for a slot here (said once until it can be said again): the other servers stop saying they wait ${Duration.format(WAITING_BELIEVED)} after the last word`,
            said.cause
          )
        }
      }
    })

    /** Which unfinished runs another process holds (their lease), on a shared database; none on the embedded one. */
    const heldElsewhere = Effect.gen(function*() {
      const { shared } = yield* PgPool
      if (!shared) return new Set<RunId>()
      return new Set((yield* Runs.unfinishedLeases()).filter((state) => state.held && !live.has(state.id)).map((state) => state.id))
    })

    /**
     * The runs a resume failed here (start-up, a takeover), when and why: a takeover tries them
     * again only after `TAKEOVER_RETRY`, and says it again only if the reason changes — start-up
     * said it already.
     */
    const failedTakeovers = new Map<RunId, { readonly at: number; readonly reason: string }>()

    const resumeUnfinished: RunManagerService["resumeUnfinished"] = () =>
      unavailable(resuming.withPermits(1)(Effect.gen(function*() {
        const unfinished = yield* Runs.unfinished()
        // Looked at first, in one query: a run another live process holds is left to it, with no
        // resume launched to be refused.
        const held = yield* heldElsewhere
        const outcomes: Array<Resumption> = []
        for (const summary of unfinished) {
          if (live.has(summary.id)) continue
          if (held.has(summary.id)) {
            outcomes.push({ run: summary.id, ref: `${summary.strategyName}#${summary.number}`, outcome: "left", reason: "another process runs it" })
            continue
          }
          // Oldest first, up to its owner's cap (as a start keeps to it): the rest wait for a slot here.
          const outcome = yield* resumeOne(summary.id, `${summary.strategyName}#${summary.number}`, "startup")
          if (outcome === undefined) continue
          if (outcome.outcome === "failed") failedTakeovers.set(outcome.run, { at: yield* Clock.currentTimeMillis, reason: outcome.reason ?? "" })
          else failedTakeovers.delete(outcome.run)
          outcomes.push(outcome)
        }
        return outcomes
      }))).pipe(Effect.provide(context))

    const takeoverGrace = Duration.toMillis(Duration.decode(options.takeover?.grace ?? DEFAULT_TAKEOVER_GRACE))
    const takeoverRetry = options.takeover?.retry === undefined ? TAKEOVER_RETRY_MILLIS : Duration.toMillis(Duration.decode(options.takeover.retry))
    /** The runs the last look saw free (no lease held, not live here, old enough): the next takes those it sees free again. */
    let seenFree = new Set<RunId>()

    const takeOver: RunManagerService["takeOver"] = () =>
      unavailable(Effect.gen(function*() {
        const { leases, shared } = yield* PgPool
        if (!shared || suspending) return []
        // One query for every unfinished run's lease: a run another live process holds costs nothing more.
        const states = yield* untraced(Runs.unfinishedLeases())
        const free = new Set(states.filter((state) => !state.held && !live.has(state.id) && state.ageMillis >= takeoverGrace).map((state) => state.id))
        // Free twice in a row, a look apart: not a holder between two leases (its connection lost,
        // taking it again), nor a run being started.
        const confirmed = [...free].filter((id) => seenFree.has(id))
        seenFree = free
        // Ended or deleted since (stopped, say): forgotten.
        const unfinished = new Set(states.map((state) => state.id))
        for (const id of unresumable.keys()) if (!unfinished.has(id)) unresumable.delete(id)
        // Waiting for a slot here, and ended since or taken over by another server: no longer waiting.
        const heldThere = new Set(states.filter((state) => state.held && !live.has(state.id)).map((state) => state.id))
        for (const id of awaitingSlot.keys()) if (!unfinished.has(id) || heldThere.has(id)) awaitingSlot.delete(id)
        if (confirmed.length === 0) return []
        const now = yield* Clock.currentTimeMillis
        return yield* resuming.withPermits(1)(Effect.gen(function*() {
          const outcomes: Array<Resumption> = []
          for (const id of confirmed) {
            // Said once already (start-up, or an earlier look): this process can never make it.
            // Waiting for a slot here: it goes on here as soon as one frees (`resumeWaiting`), said once by start-up.
            if (suspending || live.has(id) || awaitingSlot.has(id) || unresumable.get(id)?.retried === false) continue
            const failed = failedTakeovers.get(id)
            if (failed !== undefined && now - failed.at < takeoverRetry) continue
            // Every lease connection of this process is lent: another server may take it.
            if (leases.totalCount >= (leases.options.max ?? 10) && leases.idleCount === 0) break
            const outcome = yield* resumeOne(id, undefined, "takeover")
            if (outcome === undefined) continue
            if (outcome.outcome === "failed") {
              const said = failed?.reason === outcome.reason
              failedTakeovers.set(id, { at: now, reason: outcome.reason ?? "" })
              // Said once per reason: a run that cannot be resumed is not said again every few minutes.
              if (said) continue
            } else {
              failedTakeovers.delete(id)
            }
            outcomes.push(outcome)
          }
          return outcomes
        }))
      })).pipe(Effect.provide(context))

    /**
     * The caller's run as this process holds it; one running or paused in another process (a
     * shared database only) is `elsewhere`.
     */
    const liveOf = (principal: Principal, ref: string, relay: boolean, waitingToo = false) =>
      unavailable(Effect.gen(function*() {
        // Whatever its row holds: a run whose strategy does not decode is still answered as it stands.
        const record = yield* Runs.locate(ref, ownerOf(principal))
        const entry = live.get(record.id)
        if (entry === undefined) {
          // Waiting for a slot here: no process executes it to carry anything out (`runs stop` ends
          // it; a pause or resume, `waitingToo`, is written in its row: `changeWaiting`).
          const waiting = record.status === "running" || record.status === "paused" ? yield* waitingHere(record.id) : undefined
          if (waiting !== undefined && waitingToo) return { record, entry: undefined, waiting: true }
          if (waiting !== undefined) return yield* new Conflict({ reason: `run ${record.id} is waiting for a slot here, not executing: ${waiting.reason}` })
          if (relay && relays && (record.status === "running" || record.status === "paused")) return { record, entry: undefined }
          const cannot = record.status === "running" || record.status === "paused" ? yield* unresumableNow(record.id) : undefined
          return yield* new Conflict({
            reason: `run ${record.id} is ${record.status}${record.status === "running" ? " in no live process here" : ""}` +
              (cannot === undefined ? "" : `, and this server cannot resume it: ${cannot.why} (runs stop ends it)`)
          })
        }
        return { record, entry }
      }))

    /**
     * Why nobody answered a relayed request: no live process holds the run. `cannot`: this server
     * cannot resume it (`unresumable`) — waiting for a takeover here could be waiting for ever.
     */
    const noHolder = (what: string, cannot: Unresumable | undefined) =>
      new Conflict({
        reason: `${what} is held by no live process: no server took the request within ${RELAY_TAKE_WAIT_MILLIS / 1000} s ` +
          (cannot === undefined
            ? `(its process may have stopped: a server running with takeover on takes the run over within about twice SWARM_TAKEOVER_SECONDS, else the next start resumes it; try again then)`
            : `(its process stopped, and this server cannot resume it: ${cannot.why}; ${cannot.remedy}, or runs stop ends it)`)
      })

    /**
     * Carry out a request through the process that executes its run: written to the database, taken
     * there (`serveRequests`), answered with what it answered there. Nobody took it within
     * `RELAY_TAKE_WAIT`: a `Conflict` saying no live process holds the run, and nobody will carry it
     * out after (abandoned, as it is when the caller goes away while nobody has taken it).
     */
    const relayed = (
      request: ControlRequests.NewRequest,
      what: string,
      cannot: Effect.Effect<Unresumable | undefined, StoreError, SqlClient.SqlClient> = Effect.succeed(undefined),
      answerWaitMillis = RELAY_ANSWER_WAIT_MILLIS
    ) =>
      unavailable(Effect.gen(function*() {
        // A server of a build before the action took it and never answered (a `trading` waited 43 s
        // for `Unavailable`): refused at once, saying why and what to do. A run held by no session
        // (its process gone, or retaking its lease) is asked as ever, for its next holder.
        const needs = ControlRequests.PROTOCOL_OF[request.action]
        if (needs > 1) {
          const holder = yield* ControlRequests.holderOf(request.run)
          if (holder !== undefined && holder.protocol < needs) return yield* olderHolder(request)
        }
        const id = yield* ControlRequests.ask(request)
        const abandon = Effect.ignore(relayQuery("abandon a control request")(ControlRequests.abandon(id)))
        return yield* Effect.gen(function*() {
          const start = yield* Clock.currentTimeMillis
          while (true) {
            yield* Effect.sleep(Duration.millis(RELAY_POLL_MILLIS))
            // A look that timed out is a look that found nothing yet: the wait is bounded as a whole.
            const now = yield* storeError("read a control request's answer")(
              Database.withDeadline({ duration: RELAY_QUERY_WAIT, onTimeout: () => undefined })(ControlRequests.answerOf(id))
            ).pipe(Effect.catchIf((error) => error === undefined, () => Effect.succeed(undefined)))
            if (now === undefined) continue
            if (now.answer !== undefined) return now.answer
            const waited = (yield* Clock.currentTimeMillis) - start
            if (!now.taken && waited >= RELAY_TAKE_WAIT_MILLIS) {
              if (yield* relayQuery("abandon a control request")(ControlRequests.abandon(id))) return yield* noHolder(what, yield* cannot)
            } else if (waited >= RELAY_TAKE_WAIT_MILLIS + answerWaitMillis) {
              return yield* new Unavailable({
                reason: `the process executing run ${request.run} took the request (${request.action}) and has not answered within ` +
                  `${(RELAY_TAKE_WAIT_MILLIS + answerWaitMillis) / 1000} s: look at the run before trying again`
              })
            }
          }
        }).pipe(Effect.onInterrupt(() => abandon))
      })).pipe(Effect.provide(context))

    /** What a caller is told when the server executing the run is of a build that cannot take `request` relayed: nothing was done. */
    const olderHolder = (request: ControlRequests.NewRequest) =>
      new Conflict({
        reason: request.action === "trading"
          ? `run ${request.run} executes in a server of an older version, which cannot take a trading-state command from another ` +
            `server (it would never answer): nothing was moved. Send runs.trading to that server itself, or pause the run (any ` +
            `server relays a pause, and a paused run trades nothing) until that server runs this version`
          : `run ${request.run} executes in a server of an older version, which cannot take ${request.action} from another server: ` +
            `nothing was done. Send it to that server itself, or try again once it runs this version`
      })

    /** The typed error a relayed request was answered with, as the process executing the run gave it. */
    const relayedFailure = (answer: ControlRequests.Answer, ref: string, round?: string) => {
      switch (answer.answer) {
        case "Conflict":
          return new Conflict({ reason: answer.reason ?? "" })
        case "RunNotFound":
          return new RunNotFound({ run: ref })
        case "ApprovalNotFound":
          return new ApprovalNotFound({ run: ref, round: round ?? "" })
        default:
          return new Unavailable({ reason: answer.reason ?? `the process executing the run answered ${answer.answer}` })
      }
    }

    /**
     * A relayed `runs.trading`'s answer, as its holder wrote it in full (`tradingAnswerOf`): the
     * change, or the typed error with its fields; one without its result (it could not be read back)
     * as the other relayed requests' are.
     */
    const relayedTrading = (answer: ControlRequests.Answer, ref: string): Effect.Effect<TradingChange, TradingError> => {
      if (answer.result !== undefined && answer.result !== null) {
        if (answer.answer === "done") {
          const change = decodeTradingChange(answer.result)
          if (Either.isRight(change)) return Effect.succeed(change.right)
        } else {
          const error = decodeTradingError(answer.result)
          // Not found there (deleted meanwhile, say): named as the caller named it, as here.
          if (Either.isRight(error)) return Effect.fail(error.right._tag === "RunNotFound" ? new RunNotFound({ run: ref }) : error.right)
        }
      }
      if (answer.answer === "done") {
        return Effect.fail(new Unavailable({ reason: "the process executing the run moved its trading state, and its answer cannot be read here: look at the run's events" }))
      }
      return Effect.fail(relayedFailure(answer, ref) as TradingError)
    }

    /** What a relayed `runs.trading` answers, from how it was carried out here: with the whole answer in `result`. */
    const tradingAnswerOf = (exit: Exit.Exit<TradingChange, TradingError>): ControlRequests.Answer => {
      if (Exit.isSuccess(exit)) return { answer: "done", reason: null, result: JSON.stringify(encodeTradingChange(exit.value)) }
      const failure = Cause.failureOption(exit.cause)
      if (Option.isNone(failure)) return answerOfExit(exit)
      const error = failure.value
      return {
        answer: error._tag,
        reason: "reason" in error ? error.reason : error.message,
        result: JSON.stringify(encodeTradingError(error))
      }
    }

    /** What a relayed request answers, from how it was carried out here. */
    const answerOfExit = (exit: Exit.Exit<unknown, unknown>): ControlRequests.Answer => {
      if (Exit.isSuccess(exit)) return { answer: "done", reason: null }
      const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
      if (Predicate.hasProperty(failure, "_tag") && typeof failure._tag === "string") {
        return { answer: failure._tag, reason: Predicate.hasProperty(failure, "reason") && typeof failure.reason === "string" ? failure.reason : null }
      }
      return { answer: "Unavailable", reason: "the process executing the run could not carry out the request (its log says why)" }
    }

    /**
     * Audit an action that already took effect (a stop, an answer the run took): a database that
     * fails the entry is said in the server's log — the caller is not told the action failed, since
     * it did not (and tried again, it would be refused as done already).
     */
    const audited = (entry: Effect.Effect<boolean, StoreError | Unavailable | Conflict, SqlClient.SqlClient>) =>
      entry.pipe(
        Effect.catchAllCause((cause) => Effect.logError("an operator's action took effect but could not be written to the run's control log", cause)),
        Effect.asVoid
      )

    /**
     * `change` of a live run's state, one at a time per run: a pause, a resume and a stop sent at
     * once each see the state the one before left (a resume's gate opening after a pause had
     * closed it left a run marked paused that kept trading). A run that ended while waiting is a
     * `Conflict`, as if it had ended before.
     */
    const changing = (
      principal: Principal,
      ref: string,
      action: "stop" | "pause" | "resume",
      relay: boolean,
      change: (entry: Live, record: Runs.RunSummary) => Effect.Effect<Runs.RunSummary, Conflict | RunNotFound | Unavailable, SqlClient.SqlClient>,
      reason?: string
    ): Effect.Effect<Runs.RunSummary, Conflict | RunNotFound | Unavailable> =>
      Effect.flatMap(liveOf(principal, ref, relay, action !== "stop"), ({ entry, record, ...found }) =>
        ("waiting" in found && action !== "stop"
          ? Effect.flatMap(changeWaiting(principal, record, action, reason), Option.match({
            // Resumed meanwhile (its turn came): changed as any live run.
            onNone: () => changing(principal, ref, action, relay, change, reason),
            onSome: Effect.succeed
          }))
          : entry === undefined
          // Live in another process: carried out there, as this principal.
          ? Effect.flatMap(relayed({ run: record.id, action, principal, ...(reason === undefined ? {} : { reason }) }, `run ${record.id}`, unresumableNow(record.id)), (answer) =>
            answer.answer === "done"
              ? unavailable(Runs.locate(record.id))
              : Effect.fail(relayedFailure(answer, ref) as Conflict | RunNotFound | Unavailable)).pipe(Effect.provide(context))
          : entry.lock.withPermits(1)(Effect.suspend((): Effect.Effect<Runs.RunSummary, Conflict | RunNotFound | Unavailable, SqlClient.SqlClient> =>
          live.get(record.id) === entry
            // Whole, whatever the caller does: a pause whose caller went away between closing the
            // gate and writing the row left a held run the row said was running, and that answered
            // a pause "paused already" and a resume "not paused".
            ? Effect.uninterruptible(change(entry, record))
            : Effect.flatMap(unavailable(Runs.locate(record.id)), (now) => Effect.fail(new Conflict({ reason: `run ${record.id} is ${now.status}` })))
          ))).pipe(
            // Done, here or by the process executing it (relayed): its followers here are told at
            // once, and (Redis) everywhere — not `poll` later.
            Effect.tap(() => statusChanged(record.id))
          )).pipe(Effect.provide(context))

    /**
     * A pause or resume of a run waiting for a slot here (`awaitingSlot`): no agents to tell, so its
     * row says it, under its lease, audited as a live run's change is, and it keeps its place among
     * the waiting runs. Its turn resumes it as its row then says: paused, it takes its slot (paused
     * runs count toward the cap, as live ones do) and trades nothing until resumed. None when it no
     * longer waits here (its turn came, a takeover elsewhere): the caller changes it as a live run.
     */
    const changeWaiting = (principal: Principal, record: Runs.RunSummary, action: "pause" | "resume", reason: string | undefined) =>
      unavailable(resuming.withPermits(1)(Effect.scoped(Effect.gen(function*() {
        if (live.has(record.id) || !awaitingSlot.has(record.id)) return Option.none<Runs.RunSummary>()
        const leased = yield* Effect.either(Runs.lease(record.id))
        if (Either.isLeft(leased)) {
          if (leased.left._tag === "RunLeased") return Option.none<Runs.RunSummary>()
          return yield* leased.left
        }
        // As its row says now, under the lease: a second pause is refused as a live run's is.
        const now = yield* Runs.locate(record.id)
        if (now.status !== "running" && now.status !== "paused") return yield* new Conflict({ reason: `run ${record.id} is ${now.status}` })
        if (action === "pause" && now.status === "paused") return yield* new Conflict({ reason: `run ${record.id} is paused already` })
        if (action === "resume" && now.status === "running") return yield* new Conflict({ reason: `run ${record.id} is not paused` })
        yield* leaseChecked(
          record.id,
          leased.right,
          ControlAudit.record(record.id, action, principal, reason === undefined ? {} : { reason }, Runs.setStatus(record.id, action === "pause" ? "paused" : "running", leased.right))
        )
        yield* Effect.logInfo(`${action === "pause" ? "paused" : "resumed"} run ${record.id} (${record.strategyName}#${record.number}), waiting for a slot, by ${principal.name}`)
        return Option.some(yield* Runs.locate(record.id))
      })))).pipe(Effect.provide(context))

    const stopWith = (principal: Principal, ref: string, relay: boolean, reason?: string) =>
      changing(principal, ref, "stop", relay, (entry, record) =>
        Effect.gen(function*() {
          // From the stop on, no alert is taken: while the run records its end, one answered 202
          // would be lost.
          entry.inbox?.shut()
          entry.stoppedBy(`stopped by ${principal.name}${reason === undefined ? "" : `: ${reason}`}`)
          yield* Fiber.interrupt(entry.fiber)
          // The run recorded its end as it stopped (`Runs.markEnded`): the stop is audited once its row says `stopped`.
          yield* audited(ControlAudit.record(record.id, "stop", principal, reason === undefined ? {} : { reason }))
          return yield* unavailable(Runs.locate(record.id))
        }), reason)

    /** `reason`: why, in the control log: the operator's, or the server's when the pause is not the principal's own call (`pauseOwnedBy`). */
    const pauseWith = (principal: Principal, ref: string, relay: boolean, reason?: string) =>
      changing(principal, ref, "pause", relay, (entry, record) =>
        Effect.gen(function*() {
          if (entry.paused) return yield* new Conflict({ reason: `run ${record.id} is paused already` })
          entry.paused = true
          yield* entry.gate.close
          yield* entry.held.open
          const lease = leases.get(record.id)
          yield* unavailable(leaseChecked(record.id, lease, ControlAudit.record(record.id, "pause", principal, reason === undefined ? {} : { reason }, Runs.setStatus(record.id, "paused", lease))))
          return yield* unavailable(Runs.locate(record.id))
        }), reason)

    const resumeWith = (principal: Principal, ref: string, relay: boolean, reason?: string) =>
      changing(principal, ref, "resume", relay, (entry, record) =>
        Effect.gen(function*() {
          if (!entry.paused) return yield* new Conflict({ reason: `run ${record.id} is not paused` })
          const lease = leases.get(record.id)
          yield* unavailable(leaseChecked(record.id, lease, ControlAudit.record(record.id, "resume", principal, reason === undefined ? {} : { reason }, Runs.setStatus(record.id, "running", lease))))
          // Once its row says so: a resume the database refused leaves the run held (its hold looks at this).
          entry.paused = false
          yield* entry.held.close
          yield* entry.gate.open
          return yield* unavailable(Runs.locate(record.id))
        }), reason)

    /**
     * Whether the principal's user is enabled, as the database says now, before a run is started or
     * resumed: the edge asks the database for those requests' keys (`RpcAuth.ts`), and this holds
     * whatever the principal came from (an admin disabled a compromised account to stop its
     * trading). A principal with no user row (tests' stubs) is let through.
     */
    const enabled = (principal: Principal) =>
      unavailable(Users.get(principal.userId)).pipe(
        Effect.flatMap((user) => user.disabledAt === null ? Effect.void : Effect.fail(new Conflict({ reason: `user ${user.name} is disabled: an admin enables them first` }))),
        Effect.catchTag("UserNotFound", () => Effect.void),
        Effect.provide(context)
      )

    /**
     * Stop an unfinished run that no live process holds and that this server cannot resume for a
     * lasting reason (`unresumable`: its strategy it cannot make, its data gone or changed, its
     * record not decoding), or that waits for a slot here (`awaitingSlot`) — `held` says which, for
     * its row and control log (`why`) and the server's log (`said`): with no agents to interrupt,
     * its row is ended here as a live run's stop ends it — `stopped`, its event chain's length and last hash taken from what it recorded (so
     * `audit verify` holds it to them), its waiting approvals cancelled — and the control log says
     * who stopped it and why no agents were there. Its events end where its process left them:
     * no event records a stop (a live run's neither), and the `SignalNotApplied` of alerts waiting
     * in its inbox are the driver's to give (at its last slice's time, which only its agents'
     * re-execution knows), so those are said in the server's log and left delivered, not taken: a
     * build that has its agents, resuming it by name (`swarm resume`), gives them to it. The run's
     * lease is held meanwhile, and this process's resumes wait: nobody launches it while it is
     * ended. None when another live process holds it (its lease): the stop is theirs to carry out.
     * `operatorReason` (`runs stop --reason`): said first, as a live run's stop says it, then why no
     * agents were there to stop — in its row (`stopped by <name>: <reason>; held by no live process…`)
     * and its control log alike.
     */
    const stopInRow = (
      principal: Principal,
      record: Runs.RunSummary,
      held: { readonly why: string; readonly said: string },
      operatorReason?: string
    ) =>
      unavailable(resuming.withPermits(1)(Effect.scoped(Effect.gen(function*() {
        if (live.has(record.id)) return Option.none<Runs.RunSummary>()
        const leased = yield* Effect.either(Runs.lease(record.id))
        if (Either.isLeft(leased)) {
          if (leased.left._tag === "RunLeased") return Option.none<Runs.RunSummary>()
          return yield* leased.left
        }
        const reason = `${operatorReason === undefined ? "" : `${operatorReason}; `}${held.why}`
        // Under the lease taken here: should its connection go meanwhile and another server take
        // the run over, the stop writes nothing (`LeaseNotHeld`), and is carried out there instead.
        const ended = yield* ControlAudit.record(record.id, "stop", principal, { reason }, Runs.markEndedLeased(leased.right, record.id, "stopped", `stopped by ${principal.name}: ${reason}`)).pipe(
          Effect.either
        )
        if (Either.isLeft(ended)) {
          if (ended.left._tag === "LeaseNotHeld") return Option.none<Runs.RunSummary>()
          return yield* ended.left
        }
        const now = yield* Runs.locate(record.id)
        // Ended or deleted meanwhile (`record` locks its row: nothing changes it after): as if before.
        if (!ended.right) return yield* new Conflict({ reason: `run ${record.id} is ${now.status}` })
        unresumable.delete(record.id)
        awaitingSlot.delete(record.id)
        // Ended: no server's word that it waits is kept for it (one a server that died left, say).
        yield* unsayWaiting([record.id])
        yield* Effect.logInfo(
          `stopped run ${record.id} (${record.strategyName}#${record.number}), ${held.said}, by ${principal.name}` +
            `${operatorReason === undefined ? "" : ` (${operatorReason})`}`
        )
        // The run's recorded alerts not decoding (why it could not be resumed, maybe): said, and the stop stands.
        const left = now.mode === "paper"
          ? yield* WebhookStore.pendingOf(now).pipe(Effect.catchTag("CorruptRecord", (error) =>
            Effect.as(Effect.logWarning(`the alerts delivered to the run cannot be listed: ${error.message}`).pipe(Effect.annotateLogs("run", record.id)), [])))
          : []
        if (left.length > 0) {
          yield* Effect.logWarning(`${left.length} alert(s) delivered to the run were never applied: it was stopped before taking them`).pipe(
            Effect.annotateLogs({ run: record.id, alerts: left.map((signal) => signal.alertId).join(", ") })
          )
        }
        // Its followers (here, and through Redis on other servers) waited for it to go on: it ended.
        bus.end(record.id)
        return Option.some(now)
      })))).pipe(Effect.provide(context))

    const stop: RunManagerService["stop"] = (principal, ref, reason) => stopAny(principal, ref, true, reason)
    /** `relay`: a run live in another process is stopped there (false: a request relayed here, carried out here or refused). */
    const stopAny = (principal: Principal, ref: string, relay: boolean, reason?: string) =>
      Effect.gen(function*() {
        // Found whatever its row holds (`Runs.locate`): a run whose strategy does not decode is
        // the operator's to end too. Someone else's run is `RunNotFound` here, as a missing one.
        const record = yield* unavailable(Runs.locate(ref, ownerOf(principal)))
        // Live here, ended, or one this server has no lasting reason not to resume (its process
        // stopped: a takeover or the next start resumes it; its last attempt here met a database
        // that failed): as ever.
        const unheld = !live.has(record.id) && (record.status === "running" || record.status === "paused")
        const cannot = unheld ? yield* unavailable(unresumableNow(record.id)) : undefined
        // Waiting for a slot here: no agents of it to interrupt either.
        const waiting = unheld && cannot === undefined ? yield* unavailable(waitingHere(record.id)) : undefined
        const held = cannot !== undefined
          ? { why: `held by no live process, and this server cannot resume it: ${cannot.why}`, said: `which this server cannot resume (${cannot.why})` }
          : waiting !== undefined
          ? {
            why: `held by no live process: it was waiting here for a slot among its owner's live runs (SWARM_MAX_LIVE_RUNS_PER_USER=${maxLivePerUser})`,
            said: "which waited for a slot"
          }
          : undefined
        if (held === undefined) return yield* stopWith(principal, ref, relay, reason)
        const stopped = yield* stopInRow(principal, record, held, reason)
        return Option.isSome(stopped) ? stopped.value : yield* stopWith(principal, ref, relay, reason)
      }).pipe(Effect.provide(context))
    const pause: RunManagerService["pause"] = (principal, ref, reason) => pauseWith(principal, ref, true, reason)
    const resume: RunManagerService["resume"] = (principal, ref, reason) => Effect.zipRight(enabled(principal), resumeWith(principal, ref, true, reason))

    /** Pause run `id` for `pauseOwnedBy`: whether it was paused by this call. */
    const pauseOne = (principal: Principal, id: RunId, elsewhere: boolean, reason: string): Effect.Effect<boolean, Unavailable> =>
      (live.has(id) || elsewhere
        ? Effect.as(pauseWith(principal, id, elsewhere, reason), true)
        // In no live process: in its row, holding this process's resumes (`resuming`), so that none
        // launches it meanwhile from the row it read before, and the run's lease, so that no other
        // server takes it over meanwhile (its row said `paused` while it ran there). Taken by
        // another server since the look: the pause is relayed to it.
        : resuming.withPermits(1)(Effect.suspend(() =>
          live.has(id)
            ? Effect.as(pauseWith(principal, id, false, reason), true)
            : unavailable(Effect.scoped(Effect.flatMap(Effect.either(Runs.lease(id)), (lease) =>
              Either.isLeft(lease)
                ? lease.left._tag === "RunLeased" ? Effect.succeed(false) : Effect.fail(lease.left)
                : Effect.as(leaseChecked(id, lease.right, ControlAudit.record(id, "pause", principal, { reason }, Runs.setStatus(id, "paused", lease.right))), true)
            ))).pipe(
              Effect.provide(context),
              Effect.flatMap((done) => done ? Effect.succeed(true) : Effect.as(pauseWith(principal, id, true, reason), true))
            )
        ))).pipe(
          // Paused, ended or deleted meanwhile; or its process stopped between the look and the relay
          // (its next resume finds its owner disabled and takes it back paused: `resumeOne`).
          Effect.catchTags({ Conflict: () => Effect.succeed(false), RunNotFound: () => Effect.succeed(false) }),
          // Paused in its row alone (in no live process): its followers are told too.
          Effect.tap((paused) => paused && statusChanged(id))
        )

    const pauseOwnedBy: RunManagerService["pauseOwnedBy"] = (principal, owner, reason) =>
      Effect.gen(function*() {
        // No cursor given: no run to be missing.
        const listed = Runs.list({ owner, status: "running", limit: 10_000 }).pipe(Effect.catchTag("RunNotFound", Effect.die))
        const running = (yield* unavailable(listed)).filter((run) => run.mode === "paper")
        if (running.length === 0) return []
        const held = yield* unavailable(heldElsewhere)
        const paused: Array<PausedRun> = []
        for (const run of running) {
          if (yield* pauseOne(principal, run.id, held.has(run.id), reason)) paused.push({ run: run.id, ref: `${run.strategyName}#${run.number}` })
        }
        return paused
      }).pipe(Effect.provide(context))

    const visible = (principal: Principal, item: Waiting) => principal.role === "admin" || item.owner === principal.userId

    /**
     * The approvals pending in the principal's runs (an admin's: every run's) live in no run here,
     * as `pending` lists its own: their wall-clock times are their holder's (`Runs.holdApproval`);
     * a paused run's intent expires its timeout's remainder from now, as its holder moves it on.
     */
    const approvalsHeldElsewhere = (principal: Principal, run: RunId | undefined) =>
      Effect.gen(function*() {
        const rows = yield* unavailable(Runs.pendingApprovals({ ...(run === undefined ? {} : { run }), owner: ownerOf(principal), except: [...live.keys()] }))
        const now = yield* Clock.currentTimeMillis
        return rows.map((row): Pick<Waiting, "order" | "owner" | "info"> => {
          const timeout = timeoutOf(row.approval)
          const waited = row.waitedMillis ?? 0
          const left = now + Math.max(0, timeout - waited)
          return {
            order: 0,
            owner: row.owner,
            info: {
              run: row.run,
              ref: row.ref,
              round: row.round,
              symbol: row.symbol,
              side: row.intent.side ?? "",
              quantity: row.quantity,
              referencePrice: row.intent.referencePrice ?? 0,
              reasons: row.reasons,
              requestedAt: row.requestedAt ?? now - waited,
              expiresAt: row.status === "paused" ? left : row.expiresAt ?? left
            }
          }
        })
      })

    /**
     * The run `ref` names, for its approvals: as its row says it, whatever the row holds (a run live
     * here answers its approvals from memory). One not live here whose record does not decode is
     * `RunUnreadable`, saying why — no server can resume it, so nothing of it can wait for an answer
     * — not `Unavailable`, which says to ask again.
     */
    const findForApprovals = (principal: Principal, ref: string) =>
      Effect.gen(function*() {
        const run = yield* unavailable(Runs.locate(ref, ownerOf(principal)))
        if (live.has(run.id)) return run
        yield* unavailable(Runs.get(run.id).pipe(
          Effect.catchTags({
            CorruptRecord: (error) => Effect.fail(new RunUnreadable({ run: run.id, reason: `its record cannot be read: ${error.message}` })),
            // Deleted since: as it was found (what follows finds nothing of it).
            RunNotFound: () => Effect.void
          })
        ))
        return run
      })

    const pending: RunManagerService["pending"] = (principal, ref) =>
      Effect.gen(function*() {
        // Someone else's run is `RunNotFound`, as one that does not exist: a mistyped run is said
        // so, not answered "nothing pending" (an operator would wait on it). So is a name that
        // names several runs.
        const only = ref === undefined ? undefined : (yield* findForApprovals(principal, ref)).id as string
        const here = [...waiting.values()].filter((item) => visible(principal, item) && (only === undefined || item.info.run === only))
        // Held in other processes (a shared database): as the approvals table and their holders say them.
        const elsewhere = relays && (only === undefined || !live.has(only as RunId)) ? yield* approvalsHeldElsewhere(principal, only as RunId | undefined) : []
        const items = [...here, ...elsewhere].sort((a, b) => a.info.requestedAt - b.info.requestedAt || a.order - b.order)
        // Whose run each is (an admin's list has everyone's): the principal's own name, else the owner's.
        const names = new Map<string, string>([[principal.userId, principal.name]])
        for (const item of items) {
          if (names.has(item.owner)) continue
          const owner = yield* unavailable(Users.get(item.owner)).pipe(Effect.catchTag("UserNotFound", () => Effect.succeed(undefined)))
          if (owner !== undefined) names.set(item.owner, owner.name)
        }
        return items.map((item) => {
          const owner = names.get(item.owner)
          return owner === undefined ? item.info : { ...item.info, owner }
        })
      }).pipe(Effect.provide(context))

    /**
     * An answer handed to its run is applied once the run has recorded it (`ApprovalResolved`
     * committed, under its lease): the operator is told so only then. Its lease given up before —
     * after the check in `decide`, before the recorder's next batch — the run stops without it: a
     * `Conflict` saying nothing was applied, to ask again (the server that takes the run over asks
     * the intent again). Before, the operator was told it was applied, and it was not. The run ended
     * otherwise meanwhile: a `Conflict` too; not recorded within `APPROVAL_RECORD_WAIT`: `Unavailable`.
     */
    const awaitRecorded = (run: RunId, round: string, recorded: Deferred.Deferred<void>, execution: Fiber.RuntimeFiber<unknown, unknown>, lease: Lease | undefined) =>
      Effect.raceFirst(Deferred.await(recorded), Effect.asVoid(Fiber.await(execution))).pipe(
        Effect.timeoutOption(Duration.millis(APPROVAL_RECORD_WAIT_MILLIS)),
        Effect.flatMap((ended) => Effect.flatMap(Deferred.isDone(recorded), (done): Effect.Effect<void, Conflict | Unavailable> => {
          if (done) return Effect.void
          if (Option.isNone(ended)) {
            return Effect.fail(new Unavailable({
              reason: `run ${run} took the answer to round ${round} and has not recorded it within ${APPROVAL_RECORD_WAIT_MILLIS / 1000} s ` +
                `(its database is slow or away): look at the run's approvals before answering again`
            }))
          }
          const lost = lease?.lost()
          return Effect.fail(lost !== undefined ? leaseLost(run, lost) : new Conflict({
            reason: `round ${round} of run ${run} was not answered: its run ended before it recorded the answer. Nothing was applied; ` +
              `ask again if the intent is still waiting (approvals.pending)`
          }))
        }))
      )

    const decide = (principal: Principal, ref: string, round: string, answer: Backtest.ApprovalAnswer, relay: boolean) =>
      Effect.gen(function*() {
        const notFound = new ApprovalNotFound({ run: ref, round })
        const record = yield* findForApprovals(principal, ref).pipe(Effect.catchTag("RunNotFound", (error) => Effect.fail(error.ambiguous === undefined ? notFound : error)))
        const key = keyOf(record.id, round)
        // Only while the run's lease is held here: the run records the answer (`ApprovalResolved`)
        // under it. Given up already — the run held at the intent not yet told, or told while it
        // waits, either way it writes nothing more — the answer was taken, the operator told it was,
        // and the run stopped without it. Being taken again: waited for, as a pause is
        // (`leaseChecked`); given up meanwhile, the operator is told so (`Conflict`), nothing taken.
        const lease = leases.get(record.id)
        if (lease !== undefined && waiting.has(key)) yield* leaseChecked(record.id, lease, leaseHeldNow(lease))
        const item = waiting.get(key)
        if (item !== undefined && visible(principal, item)) {
          const execution = live.get(record.id)?.fiber
          const recorded = yield* Deferred.make<void>()
          // Before the run is handed the answer: it may record it before this fiber goes on.
          const own = !recording.has(key)
          if (own) recording.set(key, recorded)
          const taken = yield* Deferred.succeed(item.answer, answer).pipe(
            Effect.tap((taken) => (taken && own && execution !== undefined ? awaitRecorded(record.id, round, recorded, execution, lease) : Effect.void)),
            Effect.ensuring(Effect.sync(() => {
              if (recording.get(key) === recorded) recording.delete(key)
            }))
          )
          if (taken) {
            // Audited where it took effect: here, also when another process relayed it (`carryOut`).
            yield* audited(ControlAudit.record(record.id, answer.approved ? "approve" : "reject", principal, answer.approved ? { round } : { round, reason: answer.reason }))
            return
          }
        }
        // Answered before (expired, or decided by someone else, a moment or long ago): say how. The
        // table first: an answer the run ended before recording was cancelled there, whatever this
        // server remembers of it; the memory serves while the recorder has not written it yet.
        const before = (yield* unavailable(Runs.resolvedApproval(record.id, round))) ?? decided.get(key)
        if (before !== undefined) return yield* alreadyResolved(record.id, round, before)
        if (item !== undefined && visible(principal, item)) return yield* alreadyResolved(record.id, round)
        // Recorded as waiting, and nothing waits here: its run is ending (a stop's cancellation not
        // yet written) or runs in another process. It exists, and it is the caller's: not "not found".
        if (yield* unavailable(Runs.approvalPending(record.id, round))) {
          if (relay && relays && !live.has(record.id) && (record.status === "running" || record.status === "paused")) {
            // Held in another process, which answers it as this principal.
            const relayedAnswer = yield* relayed({
              run: record.id,
              action: answer.approved ? "approve" : "reject",
              round,
              reason: answer.reason,
              principal
            }, `round ${round} of run ${record.id}`)
            if (relayedAnswer.answer === "done") return
            return yield* Effect.fail(relayedFailure(relayedAnswer, ref, round) as ApprovalNotFound | RunNotFound | Conflict | Unavailable)
          }
          return yield* new Conflict({
            reason: live.has(record.id)
              ? `round ${round} of run ${record.id} is not waiting for an answer here at the moment: its run is ending, or re-executing its recording after a restart (try again in a moment)`
              : `round ${round} of run ${record.id} waits in no live process here: its run ended, or runs in another process`
          })
        }
        return yield* notFound
      }).pipe(Effect.provide(context))

    /** A run's execution ended: the commands it never took are answered so (`trading`). */
    const endTrading = (inbox: TradingInbox) => {
      for (const command of inbox.close()) command.ended()
    }

    const trading: RunManagerService["trading"] = (principal, ref, state, reason) => tradingWith(principal, ref, state, reason, true)

    /** `relay`: a run executing in another process is moved there (`relayed`), as this principal; false: carrying out a relayed request. */
    const tradingWith = (principal: Principal, ref: string, state: TradingState, reason: string | undefined, relay: boolean) =>
      Effect.gen(function*() {
        const text = (reason ?? `${state} by ${principal.name}`).trim()
        if (text === "") return yield* new InvalidRequest({ field: "reason", reason: "must say why, not be blank" })
        const { entry, record } = yield* liveOf(principal, ref, relay)
        // Halting is always allowed (it only takes risk away); loosening is not for a disabled
        // user, as resuming a run is not.
        if (state !== "halted") yield* enabled(principal)
        if (entry === undefined) {
          // Executing in another process: carried out there, as this principal, and answered with
          // what it answered there — the change made, or the typed error with its fields. Waited
          // for a little longer than that process waits for the run's next bar.
          const answer = yield* relayed(
            { run: record.id, action: "trading", state, reason: text, principal },
            `run ${record.id}`,
            unresumableNow(record.id),
            TRADING_WAIT_MILLIS + TRADING_RELAY_MARGIN_MILLIS
          )
          return yield* relayedTrading(answer, ref)
        }
        // A paused run holds at its next bar and takes the command there at once (`launch`'s
        // `hold`): the same answer, at that bar's time, and it stays paused.
        const answered = yield* Deferred.make<Backtest.TradingOutcome | { readonly _tag: "Ended" }>()
        const command: Queued = {
          to: state,
          actor: principal.name,
          reason: text,
          answer: (outcome) => Deferred.unsafeDone(answered, Exit.succeed(outcome)),
          ended: () => Deferred.unsafeDone(answered, Exit.succeed({ _tag: "Ended" }))
        }
        if (!entry.trading.offer(command)) {
          return yield* new Conflict({ reason: `run ${record.id} is ending, or has ${TradingInboxCapacity} trading-state commands waiting for its next bar` })
        }
        /** Audited once it took effect, whatever the caller does meanwhile. */
        const audit = (outcome: Backtest.TradingOutcome | { readonly _tag: "Ended" }) =>
          outcome._tag === "Moved"
            ? audited(ControlAudit.record(record.id, "trading", principal, { state: outcome.transition.to, reason: text }))
            : Effect.void
        const outcome = yield* Deferred.await(answered).pipe(
          Effect.timeoutOption(Duration.millis(TRADING_WAIT_MILLIS)),
          Effect.onInterrupt(() =>
            // Gone before the run took it: taken back. Taken already: it moved the state, and is audited.
            entry.trading.withdraw(command) ? Effect.void : Effect.forkDaemon(Effect.flatMap(Deferred.await(answered), audit).pipe(Effect.provide(context)))
          )
        )
        if (Option.isNone(outcome)) {
          if (entry.trading.withdraw(command)) {
            return yield* new Conflict({
              reason: `run ${record.id} took no bar within ${TRADING_WAIT_MILLIS / 1000} s (a paper run takes its bars at their pace): nothing moved; try again`
            })
          }
        }
        const done = Option.isSome(outcome) ? outcome.value : yield* Deferred.await(answered)
        yield* audit(done)
        switch (done._tag) {
          case "Moved":
            return { run: record.id, status: done.status, transition: done.transition } satisfies TradingChange
          case "Refused":
            return yield* done.error
          case "Down":
            return yield* new RiskOfficerDown({ run: record.id, reason: done.reason })
          case "Ended":
            return yield* new Conflict({ reason: `run ${record.id} ended before its next bar: its trading state was not moved` })
        }
      }).pipe(Effect.provide(context))

    const approve: RunManagerService["approve"] = (principal, ref, round) =>
      decide(principal, ref, round, { approved: true, by: principal.name, reason: "approved by an operator" }, true)

    const reject: RunManagerService["reject"] = (principal, ref, round, reason) =>
      decide(principal, ref, round, { approved: false, by: principal.name, reason }, true)

    /** Carry out here a request relayed by another process for a run live here, as its principal: its answer. */
    const carryOut = (request: ControlRequests.Request): Effect.Effect<ControlRequests.Answer> => {
      const { principal, run } = request
      const answered = (effect: Effect.Effect<unknown, unknown>) => Effect.map(Effect.exit(effect), answerOfExit)
      switch (request.action) {
        case "stop":
          // A run waiting here for a slot is stopped in its row, as a caller here would stop it.
          return answered(stopAny(principal, run, false, request.reason))
        case "pause":
          return answered(pauseWith(principal, run, false, request.reason))
        case "resume":
          return answered(resumeWith(principal, run, false, request.reason))
        case "approve":
          return answered(decide(principal, run, request.round ?? "", { approved: true, by: principal.name, reason: "approved by an operator" }, false))
        case "reject":
          return answered(decide(principal, run, request.round ?? "", { approved: false, by: principal.name, reason: request.reason ?? "rejected by an operator" }, false))
        case "trading":
          return Effect.map(
            Effect.exit(
              request.state === undefined
                ? Effect.fail(new InvalidRequest({ field: "state", reason: "a relayed trading-state command names no state" }))
                : tradingWith(principal, run, request.state, request.reason, false)
            ),
            tradingAnswerOf
          )
        default:
          // Written by a newer server this one does not know the action of: said so, not left untaken.
          return Effect.succeed({ answer: "Unavailable", reason: `the process executing the run does not know the action ${String(request.action)} (an older version)` })
      }
    }

    /**
     * Every `RELAY_SERVE_EVERY`, while runs are live here or wait here for a slot (`awaitingSlot`):
     * the requests other processes relayed for them (one indexed query), each taken, carried out and
     * answered (in a fiber of its own: a stop waits for its run to record its end) — a waiting run's
     * pause, resume and stop as a caller here has them, in its row. A request whose run is neither
     * any more is left to its new holder, or to its requester's wait. Requests older than
     * `RELAY_KEPT` are deleted.
     */
    const serveRequests = Effect.gen(function*() {
      let rounds = 0
      /** Whether the last look failed: a database away is said once, not four times a second. */
      let failing = false
      while (true) {
        yield* Effect.sleep(Duration.millis(RELAY_SERVE_EVERY_MILLIS))
        yield* Effect.gen(function*() {
          if (++rounds % RELAY_CLEANUP_EVERY === 0) yield* untraced(relayQuery("delete old control requests")(ControlRequests.cleanUp(RELAY_KEPT_SECONDS)))
          if (live.size === 0 && awaitingSlot.size === 0) return
          const served = [...live.keys(), ...awaitingSlot.keys()]
          for (const request of yield* untraced(relayQuery("read the control requests")(ControlRequests.openFor(served)))) {
            // Waiting here, as its lease says (`waitingHere`): one another server took over since is
            // that server's to answer — taken here, it would be refused as in no live process.
            const here = live.has(request.run) || (awaitingSlot.has(request.run) && (yield* relayQuery("look up a waiting run's holder")(waitingHere(request.run))) !== undefined)
            if (!here || !(yield* relayQuery("take a control request")(ControlRequests.take(request.id)))) continue
            yield* Effect.fork(Effect.flatMap(carryOut(request), (answer) =>
              Effect.catchAllCause(ControlRequests.answer(request.id, answer), (cause) =>
                Effect.logWarning("could not answer a relayed control request", cause).pipe(Effect.annotateLogs({ run: request.run, action: request.action })))))
          }
          if (failing) yield* Effect.logInfo("the control requests relayed by other processes can be read again")
          failing = false
        }).pipe(Effect.catchAllCause((cause) =>
          failing ? Effect.void : Effect.zipRight(
            Effect.sync(() => (failing = true)),
            Effect.logWarning("could not read the control requests relayed by other processes (said once until they can be read again)", cause)
          )
        ))
      }
    }).pipe(Effect.provide(context))
    // Interruptible whatever builds the manager (an `acquireRelease` builds it uninterruptibly): the
    // shutdown interrupts it.
    if (relays) yield* Effect.forkScoped(Effect.interruptible(serveRequests))
    if (relays) {
      // The shutdown takes back what this server said of the runs waiting here (`sayingWaiting`,
      // interrupted first: its finalizer runs before this one): they wait for the next start or a
      // takeover now, as the runs it suspends, and every server says so at once, not only once
      // the word is past `WAITING_BELIEVED`.
      yield* Effect.addFinalizer(() => Effect.suspend(() => unsayWaiting([...awaitingSlot.keys()])))
      yield* Effect.forkScoped(Effect.interruptible(sayingWaiting))
    }
    // Interrupted before the live runs are suspended (its finalizer runs first): no resume starts meanwhile.
    yield* Effect.forkScoped(Effect.interruptible(resumeWaiting))

    const paperRuns = (strategy: StrategyId) =>
      [...live.values()].filter((entry) => entry.inbox?.strategy === strategy && !entry.inbox.closed)

    const paperSymbols: RunManagerService["paperSymbols"] = (strategy) => [
      ...new Set(paperRuns(strategy).filter((entry) => entry.readsAlerts).flatMap((entry) => entry.inbox!.symbols))
    ]

    const paperRunsIgnoringAlerts: RunManagerService["paperRunsIgnoringAlerts"] = (strategy) =>
      paperRuns(strategy).filter((entry) => !entry.readsAlerts).map((entry) => entry.run)

    const stage: RunManagerService["stage"] = (strategy, signal) =>
      Effect.suspend((): Effect.Effect<Staged, NoPaperRun | RateLimited> => {
        // A run without a `tradingview` analyst would record the alert and never read it.
        const targets = paperRuns(strategy).filter((entry) => entry.readsAlerts && entry.inbox!.symbols.includes(signal.symbol))
        if (targets.length === 0) {
          return Effect.fail(new NoPaperRun({ strategy, reason: `no paper run of strategy ${strategy} trading ${signal.symbol} is running` }))
        }
        // All or none: a run that could not take it must not leave the others with it.
        if (targets.some((entry) => entry.inbox!.size >= SignalInboxCapacity)) {
          return Effect.fail(
            new RateLimited({ strategy, retryAfterSeconds: 60, reason: `a paper run of the strategy has ${SignalInboxCapacity} alerts waiting (is it paused?)` })
          )
        }
        const inboxes = targets.map((entry) => entry.inbox!)
        for (const inbox of inboxes) inbox.stage(signal)
        let settled = false
        return Effect.succeed({
          runs: targets.map((entry) => entry.run),
          settle: (delivered) => {
            if (settled) return
            settled = true
            for (const inbox of inboxes) {
              if (delivered) inbox.confirm(signal)
              else inbox.cancel(signal)
            }
          }
        } satisfies Staged)
      })

    const deliver: RunManagerService["deliver"] = (strategy, signal) =>
      Effect.map(stage(strategy, signal), (staged) => {
        staged.settle(true)
        return staged.runs
      })

    /**
     * A look for runs to take over, said in the server's log: each run taken over, each that could
     * not be. A look the database fails is said once, until one succeeds again.
     */
    let looksFailing = false
    const sweep = takeOver().pipe(
      Effect.tap((outcomes) =>
        Effect.forEach(outcomes, (o) =>
          o.outcome === "resumed"
            ? Effect.logInfo(
              `took over run ${o.run} (${o.ref}) from a process that stopped` +
                (o.ownerDisabled === undefined ? "" : `, paused: its owner ${o.ownerDisabled} is disabled`)
            )
            : o.outcome === "failed"
            ? Effect.logWarning(`could not take over run ${o.run} (${o.ref}): ${o.reason}`)
            : Effect.void, { discard: true })),
      Effect.zipLeft(Effect.sync(() => (looksFailing = false))),
      Effect.catchTag("Unavailable", (error) =>
        looksFailing ? Effect.void : Effect.zipRight(
          Effect.sync(() => (looksFailing = true)),
          Effect.logWarning(`cannot look for runs to take over: ${error.reason}`)
        )),
      // The looks go on whatever one of them met.
      Effect.catchAllDefect((defect) => Effect.logError("a look for runs to take over failed", Cause.die(defect)))
    )

    if (options.takeover !== undefined && (yield* PgPool.pipe(Effect.provide(context))).shared) {
      // Interrupted first when the manager closes (its finalizer is the last added): no takeover
      // starts while the live runs are being suspended.
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(options.takeover.every), sweep)))
    }

    return {
      start,
      stop,
      pause,
      resume,
      pauseOwnedBy,
      trading,
      pending,
      approve,
      reject,
      resumeUnfinished,
      takeOver,
      paperSymbols,
      paperRunsIgnoringAlerts,
      stage,
      deliver,
      notResumable: (run, status) =>
        (status !== "running" && status !== "paused") || live.has(run)
          ? Effect.succeed(undefined)
          // Deleted meanwhile: nothing to say. A row that does not decode: that is why.
          : unavailable(unresumableNow(run)).pipe(Effect.map((cannot) => cannot?.why), Effect.provide(context)),
      waiting: (run, status) =>
        status !== "running" && status !== "paused"
          ? Effect.succeed(undefined)
          : unavailable(Effect.gen(function*() {
            const here = yield* waitingHere(run)
            if (here !== undefined || !relays || live.has(run)) return here?.reason
            // Waiting on another server, as it last said it (not believed while a process holds the run).
            return yield* WaitingRuns.reasonOf(run, WAITING_BELIEVED)
          })).pipe(Effect.provide(context)),
      live: () => live.size,
      suspended: () => suspendedRuns.slice()
    } satisfies RunManagerService
  })
)

/** The run manager with the defaults (`layerWith` for other limits). */
export const layer = layerWith()
