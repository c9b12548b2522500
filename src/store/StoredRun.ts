/**
 * Runs the database keeps: a new backtest (its strategy saved as a version, a numbered `runs` row,
 * every event and the rows it feeds written while it goes, results and chain head at the end), the
 * resumption of a run whose process died, and the replay of a recorded run.
 *
 * Resume and replay re-execute the run from its recorded inputs — strategy, data source (whose
 * fingerprint must not have changed), seed, event detail and injected faults, and the outside
 * signals it received (its `SignalReceived` events, at the same slices, and its `SignalNotApplied`
 * ones, at its end) — and compare every event with the recording (`Replay.Comparator`). A run is a function of those inputs, so its agents'
 * state (indicator windows, adaptive weights, the risk officer's marks, the ledger) is rebuilt
 * exactly rather than serialised; resume then goes on recording after the last committed event, so
 * nothing is lost or written twice, and a recording that the re-execution does not reproduce
 * (changed code, changed data) stops the resume with the first divergence instead of grafting a
 * different run onto it. Checkpoints (the feed's cursor and the books, committed with the events
 * they follow) are written every `checkpointEvery` slices; resume checks the books it rebuilds
 * against the last one.
 */
import { createHash } from "node:crypto"
import type { SqlClient } from "@effect/sql"
import { Cause, Deferred, Duration, Effect, Either, Exit, Fiber, Option, Schema } from "effect"
import type { AnyModel } from "../../agents/analysts/Model.js"
import { analysts, rosterOf } from "../../agents/registry.js"
import type { InvalidAgent } from "../../schemas/AnalystProtocol.js"
import type { ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { RunId, StrategyId, Timestamp } from "../../schemas/Ids.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import * as DataSource from "../market/DataSource.js"
import type { Feed } from "../market/Feed.js"
import * as Backtest from "../swarm/Backtest.js"
import * as Run from "../swarm/Run.js"
import { Comparator, type Divergence, firstDifference } from "./Replay.js"
import * as LlmRuntime from "../llm/LlmRuntime.js"
import * as Chats from "./Chats.js"
import * as RecordedLlmCalls from "./RecordedLlmCalls.js"
import * as RecordedSignals from "./RecordedSignals.js"
import * as RecordedTrading from "./RecordedTrading.js"
import * as RecordedStart from "./RecordedStart.js"
import * as RunRecorder from "./RunRecorder.js"
import * as Audit from "./Audit.js"
import * as Database from "./Database.js"
import { type Lease, type LeaseNotHeld, notHeld } from "./Lease.js"
import type { PgPool } from "./Pool.js"
import * as Runs from "./Runs.js"
import { CorruptRecord, type StoreError } from "./StoreError.js"
import { oneLineOf } from "../internal/issues.js"
import * as Strategies from "./Strategies.js"
import * as Users from "./Users.js"
import * as WebhookStore from "./Webhooks.js"

/** Slices between checkpoints by default (a backtest pauses every 256 slices; checkpoints fall on those pauses). */
export const DEFAULT_CHECKPOINT_EVERY = 2_560

/** A re-execution that does not give the recorded events: where and how it first differs. */
export class RunDiverged extends Schema.TaggedError<RunDiverged>()("RunDiverged", {
  run: Schema.String,
  seq: Schema.Number,
  round: Schema.NullOr(Schema.String),
  agent: Schema.NullOr(Schema.String),
  field: Schema.String,
  expected: Schema.String,
  actual: Schema.String,
  /**
   * A replay's recording that does not verify (`Audit.verifyRun`): why. The divergence is then
   * the recording's (its rows were changed), not the re-execution's.
   */
  tampered: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `run ${this.run} diverges at event ${this.seq}` +
      (this.round === null ? "" : `, round ${this.round}`) +
      (this.agent === null ? "" : `, agent ${this.agent}`) +
      `: ${this.field} was ${this.expected}, now ${this.actual}` +
      (this.tampered === undefined ? "" : ` (the recording itself does not verify: ${this.tampered})`)
  }
}

/**
 * A replay's recorded inputs (strategy snapshot, seed, faults…) do not verify (`Audit.verifyInputs`):
 * the recording was altered after the run, and re-executing it from them would blame the code.
 */
export class RecordingAltered extends Schema.TaggedError<RecordingAltered>()("RecordingAltered", {
  run: Schema.String,
  position: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `run ${this.run}'s recording was altered (swarm audit verify fails at entry ${this.position}): ${this.reason}`
  }
}

/** Resume was asked of a run that has nothing to resume. */
/**
 * A stored run whose strategy names an agent this build cannot make (an analyst type removed or
 * renamed since it ran, params it now refuses): it cannot be replayed or resumed here. Not a bad
 * strategy file of the caller's: the run's own, named, with the agent and why. A refusal of the
 * input (the run named), exit 2, as an unknown run is: nothing was executed, nothing went wrong.
 */
export class NotReexecutable extends Schema.TaggedError<NotReexecutable>()("NotReexecutable", {
  run: Schema.String,
  ref: Schema.String,
  /** The agent's name in the run's roster. */
  agent: Schema.String,
  /** Where in the run's strategy: `agents[i].type`, `agents[i].params…`, or `agents` for the roster as a whole. */
  field: Schema.String,
  reason: Schema.String
}) {
  /** Why, without the run's name (for a line that names it already). */
  get why(): string {
    return `its strategy's agent ${this.agent}, ${this.field}: ${this.reason}; this build cannot re-execute it`
  }

  override get message(): string {
    return `run ${this.run} (${this.ref}): ${this.why}`
  }
}

/**
 * Whether this build can make the run's agents, checked before anything is read or written: a
 * resume that failed at its swarm's start had marked the run failed, for good — one a later build
 * with the analyst type could have gone on with.
 */
const reexecutable = (run: Runs.RunRecord, registry: ReadonlyMap<string, AnyModel> | undefined) => {
  const cannot = notReexecutable(run, registry)
  return cannot === undefined ? Effect.void : Effect.fail(cannot)
}

/**
 * Why this build cannot make the run's agents (`NotReexecutable`), or undefined when it can: a
 * server's registry is fixed for its process's life, so a run it cannot make now it never can —
 * until a build that has the type starts.
 */
export const notReexecutable = (run: Runs.RunRecord, registry?: ReadonlyMap<string, AnyModel>): NotReexecutable | undefined =>
  Either.match(rosterOf(run.strategy, registry ?? analysts), {
    onLeft: (error: InvalidAgent) => new NotReexecutable({ run: run.id, ref: `${run.strategyName}#${run.number}`, agent: error.agent, field: error.field, reason: error.reason }),
    onRight: () => undefined
  })

/** A resume's failure that does not go away by itself (`lastingFailure`). */
export type LastingFailure = NotReexecutable | DataSource.DataChanged | CorruptRecord

/**
 * Why a resume failed, when the reason does not go away by itself — its strategy this build cannot
 * make, its data gone, changed or unparsable, a row of its record that does not decode — so that
 * retrying is waiting for someone to act (and `runs stop` may end it); undefined for a failure that
 * may pass (the database failing, the lease held by another process) or that ended the run itself
 * (a divergence marks it `failed`).
 */
export const lastingFailure = (cause: Cause.Cause<unknown>): LastingFailure | undefined =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => undefined,
    onSome: (error) =>
      error instanceof NotReexecutable || error instanceof DataSource.DataChanged || error instanceof CorruptRecord ? error : undefined
  })

export class NotResumable extends Schema.TaggedError<NotResumable>()("NotResumable", {
  run: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `run ${this.run} cannot be resumed: ${this.reason}`
  }
}

const divergedError = (run: RunId, d: Divergence) =>
  new RunDiverged({ run, seq: d.seq, round: d.round, agent: d.agent, field: d.field, expected: d.expected, actual: d.actual })

/**
 * A replay's divergence, with the recording's audit (`Audit.verifyRun`): a recording whose rows
 * were changed, deleted or reordered diverges too, and must not send anyone hunting for
 * non-determinism in the code.
 */
const withRecordingChecked = (error: RunDiverged) =>
  Audit.verifyRun(error.run).pipe(
    Effect.map((report) => (report.ok ? error : new RunDiverged({ ...error, tampered: `entry ${report.position}: ${report.reason}` }))),
    // The audit cannot be read: the divergence as it is.
    Effect.orElseSucceed(() => error),
    Effect.flatMap(Effect.fail)
  )

/** What every stored execution shares with a plain backtest. */
interface Common {
  /** Every event as the run gives it, committed or not (a backtest's `--out`, its progress). */
  readonly onEvent?: Backtest.Options["onEvent"]
  /**
   * Every event once the database holds it, in order (`RunRecorder.Options.onCommitted`): what a
   * server shows the run's followers. On a resume, the events it reproduces (committed before)
   * are told once the comparison has matched them.
   */
  readonly onCommitted?: (event: RunEvent, json: string) => void
  /** Extra flow control between slices (every 16): an operator's pause waits here. */
  readonly pace?: (progress: Backtest.Progress) => Effect.Effect<void>
  /** Paper runs: wait for each slice's moment (see `Backtest.Options.beforeSlice`). */
  readonly beforeSlice?: Backtest.Options["beforeSlice"]
  /**
   * A resume whose LLM agents started on another backend than this process answers them with
   * (`llmSwitch`): told before it goes on. Default: a warning in the process's log (a server's).
   */
  readonly onLlmSwitch?: (message: string) => Effect.Effect<void>
  readonly onProgress?: Backtest.Options["onProgress"]
  readonly approver?: Backtest.Options["approver"]
  readonly registry?: ReadonlyMap<string, AnyModel>
  readonly recorder?: RunRecorder.Options
  /** Slices between checkpoints. */
  readonly checkpointEvery?: number
  /** Outside signals as they come (a live paper run's webhooks); a resume adds them after the recorded ones. */
  readonly signals?: Backtest.Options["signals"]
  /** The outside signals left when the run ends (a live paper run's inbox, closed): recorded as not applied. */
  readonly leftoverSignals?: Backtest.Options["leftoverSignals"]
  /** Operators' trading-state commands as they come (a live run's); a resume adds them after the recorded ones. */
  readonly trading?: Backtest.Options["trading"]
  /**
   * Where an operator's pause holds the run, taking its trading-state commands meanwhile
   * (`Backtest.Options.hold`): not while a resume re-executes what its recording holds — a run
   * resumed paused catches up first, then holds where it stood.
   */
  readonly hold?: Backtest.Options["hold"]
  /**
   * Operators' trading-state commands for the run while it waits for an operator's answer
   * (`Backtest.Options.waiting`): a resume gives the recorded ones back first.
   */
  readonly waiting?: Backtest.Options["waiting"]
  /**
   * Asked when the run is interrupted: true leaves it `running` (or `paused`) for the next start
   * to resume — a server shutting down — rather than `stopped` by an operator. What it recorded is
   * committed either way.
   */
  readonly suspended?: () => boolean
  /** Asked when the run is interrupted and not suspended: why it was stopped (`stopped by alice`); unset, "interrupted". */
  readonly stopReason?: () => string | undefined
  /**
   * Told once the run holds its lease: from then on it runs in this process (a resume: not
   * elsewhere). With the lease (none on the embedded database), which every write of the run's
   * row checks — its owner's too (a pause, a held approval's bookkeeping: `Runs.setStatus`).
   */
  readonly onLeased?: (lease: Lease | undefined) => void
}

export interface Options extends Common {
  readonly strategy: Backtest.Options["strategy"]
  readonly feed: Feed
  /** Where the feed's bars come from: what resume and replay re-open. */
  readonly dataSource: DataSource.DataSource
  readonly seed?: string
  readonly events?: Backtest.EventDetail
  /** Crashes to inject (drills, chaos tests): recorded with the run and replayed. */
  readonly faults?: Run.FaultPlan
  /** Default: the local operator. */
  readonly owner?: string
  /**
   * The stored version `strategy` is (a run started from the strategy's record, as the server
   * starts them): the run is of that version, and no version is saved. Without it, `strategy` is
   * saved as the owner's latest version of its name if it differs from it (a file's strategy).
   */
  readonly version?: { readonly id: StrategyId; readonly version: number }
  /** Default `backtest`; a paper run is the same execution paced by `beforeSlice`. */
  readonly mode?: "backtest" | "paper"
  /** Paper runs: the pace, kept with the run so a restarted server resumes it at that pace. */
  readonly speed?: number
  /** Told the run's id and number once its row exists, before it executes. */
  readonly onCreated?: (created: Runs.Created) => void
  /**
   * Record the run as a Swarm before a change of how runs trade did (`{}`: before
   * `RunStarted.reducedIntents`): for tests of how such recordings replay and resume.
   */
  readonly recordedStart?: Backtest.Options["recordedStart"]
}

export interface Stored {
  readonly result: Backtest.Result
  readonly run: RunId
  readonly number: number
  readonly strategyId: StrategyId
  readonly strategyVersion: number
}

interface Execution extends Common {
  readonly run: RunId
  readonly strategy: Backtest.Options["strategy"]
  readonly strategyRef: { readonly id: StrategyId; readonly version: number }
  readonly feed: Feed
  readonly seed: string
  readonly events: Backtest.EventDetail
  readonly faults: Run.FaultPlan | undefined
  readonly mode?: "backtest" | "paper"
  /** Compare events up to this sequence number with the recording (resume: the last committed one). */
  readonly compareUntil?: number
  /** Whether the run's lease is held already, in a scope around the execution (a new run's). */
  readonly leased?: boolean
  /** Done when a lease held already (`leased`) was lost to another process (`Runs.lease`'s `onLost`). */
  readonly leaseLost?: Deferred.Deferred<void>
  /** The lease held already (`leased`), which the run's writes check (none on the embedded database). */
  readonly lease?: Lease
  /** A resume: the run's status and last event when its inputs were read, before its lease. */
  readonly readAt?: { readonly status: Runs.RunStatus; readonly seq: number }
  /** The chain so far, when recording goes on from a committed prefix. */
  readonly from?: { readonly count: number; readonly hash: string }
  /** The last checkpoint recorded: the books rebuilt at its cursor must be the ones it holds. */
  readonly checkpoint?: RunRecorder.CheckpointState
  /** The signals the recording received, delivered again at their slices. */
  readonly recordedSignals?: RecordedSignals.BySlice
  /** The signals the recording did not apply (it reached its end), given back at the end. */
  readonly recordedNotApplied?: ReadonlyArray<ExternalSignal>
  /** The operators' trading-state commands the recording took, given again at their slices (and events). */
  readonly recordedTrading?: RecordedTrading.Recorded
  /** Language models for LLM analysts (with the recording's calls, on a resume). */
  readonly llm: Backtest.LlmOptions
  /** How the recording trades, as its `RunStarted` said (a resume of a run that recorded it). */
  readonly recordedStart?: Backtest.Options["recordedStart"]
}

/**
 * A run interrupted before `execute` has its own handler in place (while it reads its inputs, takes
 * its lease or makes its recorder) is `stopped` all the same, unless it is being suspended (a
 * server shutting down: it goes on at the next start). `markEnded` leaves a row that already ended
 * as it is, so a run `execute` marked already is not marked twice.
 *
 * Under the run's lease, as every write of its row: `held`, the one this process holds already (a
 * new run's), else taken for the write (a resume's, interrupted before it took it or after it let
 * it go). A run another process holds (it took the run over meanwhile) or that this one lost is
 * theirs: nothing is written — before, its row said `stopped` while it ran there.
 */
const stoppedIfInterrupted = (run: RunId, options: Pick<Options, "suspended" | "stopReason">, held?: { readonly lease: Lease | undefined }) =>
  Effect.onInterrupt(() =>
    options.suspended?.() === true ? Effect.void : Effect.ignore(
      held === undefined
        ? Effect.scoped(Effect.flatMap(Runs.lease(run), (lease) => Runs.markEndedLeased(lease, run, "stopped", stopReasonOf(options))))
        : Runs.markEndedLeased(held.lease, run, "stopped", stopReasonOf(options))
    ))

/** Why an interrupted run is `stopped`, for its row (and the SSE `end` frame, `runs show`). */
const stopReasonOf = (options: Pick<Options, "stopReason">): string => options.stopReason?.() ?? "interrupted"

/** Execute a stored run, recording every event not compared, and finish its row. */
const execute = (x: Execution) =>
  Effect.gen(function*() {
    // Held while the run executes: another process resuming unfinished runs leaves this one alone.
    // A new run holds it already (`backtest`); a resumed one that cannot have it is left for the next start.
    // Lost to another process (it took the run over while this one could not take its lease
    // again): the run stops here at once, writing nothing more, and its row is the other's.
    const leaseLost = x.leaseLost ?? (yield* Deferred.make<void>())
    const lease = x.leased ? x.lease : yield* Runs.lease(x.run, () => Deferred.unsafeDone(leaseLost, Exit.void))
    // What a resume read before its lease is stale if another process ran the run meanwhile and
    // has let it go since (suspended, stopped, finished): it is left as another process's, and
    // the next look at unfinished runs reads it again.
    if (x.readAt !== undefined) {
      const now = yield* Runs.stateOf(x.run)
      if (now === undefined || now.status !== x.readAt.status || now.seq !== Number(x.readAt.seq)) return yield* new Runs.RunLeased({ run: x.run })
    }
    x.onLeased?.(lease)
    const recorder = yield* RunRecorder.make(x.run, {
      ...x.recorder,
      ...(lease === undefined ? {} : { lease }),
      ...(x.from === undefined ? {} : { from: x.from }),
      ...(x.onCommitted === undefined ? {} : { onCommitted: (event: RunEvent, json: string) => tell(event, json) })
    })
    // The run calls `pace` from its own loop: it gets the database from here — the pool's too, so
    // that a `Database.withDeadline` there (`asRecorded`) is ended by the server as well, not only
    // given up on here (it takes the server's statement timeout on a shared database only).
    const database = yield* Effect.context<SqlClient.SqlClient | PgPool>()
    const comparator = x.compareUntil === undefined || x.compareUntil === 0 ? undefined : new Comparator(x.run, x.compareUntil)
    const every = x.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY
    let checkpointSlices = 0
    let checkpointSeq = x.from?.count ?? 0
    const extra = x.onEvent
    // "store: cannot record run …", not "store: store: cannot …": the field says where, the reason what.
    const toBacktestError = (error: StoreError) => new Backtest.BacktestError({ field: "store", reason: `cannot ${error.operation}: ${error.reason}` })
    let diverged: Divergence | undefined
    /** Whether the last checkpoint was compared with the rebuilt books (a resume must not skip it). */
    let checkpointChecked = x.checkpoint === undefined
    let lastSeq = 0
    /** Events reproduced on a resume, told to `onCommitted` once the comparison has matched them. */
    let reproduced: Array<readonly [RunEvent, string]> = []
    /** Events committed after them, held while some of those are not told yet (in order, always). */
    let after: Array<readonly [RunEvent, string]> = []
    const tell = (event: RunEvent, json: string) => {
      if (reproduced.length > 0) after.push([event, json])
      else x.onCommitted!(event, json)
    }
    const tellMatched = () => {
      if (x.onCommitted === undefined || comparator === undefined || reproduced.length === 0) return
      let i = 0
      while (i < reproduced.length && reproduced[i]![0].seq <= comparator.matched) x.onCommitted(...reproduced[i++]!)
      reproduced = i === reproduced.length ? [] : reproduced.slice(i)
      if (reproduced.length === 0 && after.length > 0) {
        const held = after
        after = []
        for (const [event, json] of held) x.onCommitted(event, json)
      }
    }
    /**
     * The live source's leftovers, recorded as not applied where the recording can take them: not
     * by a re-execution that fails inside the recorded part, or before the slice of its last
     * checkpoint, or diverged — events there are compared or dropped, not recorded, and the run
     * ends with its recording as it was. The source is then not asked: its owner closes it (a
     * server's run manager, when the execution ends, and says what it held).
     */
    const liveLeftovers = x.leftoverSignals === undefined ? undefined : (events: number): ReadonlyArray<ExternalSignal> =>
      diverged !== undefined || !checkpointChecked || events < (x.compareUntil ?? 0) ? [] : x.leftoverSignals!(events)
    /** The progress of the last pause: where a suspended run stands, if nothing happened since. */
    let lastPace: Backtest.Progress | undefined
    /**
     * Whether a resume is still re-executing what its recording holds (up to its last event and its
     * last checkpoint): nothing there waits — not for its moment (`beforeSlice`), nor at an
     * operator's pause (`pace`). A run resumed paused catches up first, then waits where it stood:
     * waiting at its first re-executed slice, it never reached the intent it had left waiting for
     * an operator, and an answer to that was refused ("its run is ending").
     */
    const catchingUp = () => (comparator !== undefined && lastSeq < x.compareUntil!) || !checkpointChecked
    /** Whether the lease is given up (`onLost` may be told a moment after its writes are refused). */
    const leaseGivenUp = Effect.map(Deferred.isDone(leaseLost), (done) => done || lease?.lost() !== undefined)
    /** Refused a moment before the run was told (`LeaseNotHeld`, the lease given up): lost all the same. */
    const lostAllTheSame = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Runs.RunLeased, R> =>
      Effect.catchAll(effect, (error) => Effect.flatMap(leaseGivenUp, (lost) => Effect.fail(lost ? new Runs.RunLeased({ run: x.run }) : error)))
    /** The run's main loop until the lease is given up, then `RunLeased`: it stops there, whatever it is doing. */
    const whileLeased = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Runs.RunLeased, R> =>
      lostAllTheSame(Effect.raceFirst(effect, Effect.zipRight(Deferred.await(leaseLost), Effect.fail(new Runs.RunLeased({ run: x.run })))))
    /**
     * The run's end (`effect`: its last batch, the write of its row) until the lease is given up,
     * then `RunLeased`, as in its main loop: each write is tried again for half a minute on a
     * database that refuses, past the give-up, from which another server may take the run over.
     * A stop does not cut the end short (the caller is not interruptible there), so the end and
     * the watch run in fibers of their own: an interrupted fiber signals its children, even where
     * it cannot be interrupted itself — raced as children, a stop at the end cut its last batch.
     */
    const endWhileLeased = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Runs.RunLeased, R> =>
      lostAllTheSame(Effect.gen(function*() {
        const outcome = yield* Deferred.make<A, E | Runs.RunLeased>()
        const ending = yield* Effect.forkDaemon(Effect.interruptible(Effect.flatMap(Effect.exit(effect), (exit) => Deferred.done(outcome, exit))))
        const watching = yield* Effect.forkDaemon(
          Effect.interruptible(Effect.zipRight(Deferred.await(leaseLost), Deferred.fail(outcome, new Runs.RunLeased({ run: x.run }))))
        )
        const exit = yield* Effect.exit(Deferred.await(outcome))
        yield* Fiber.interrupt(watching)
        // Done, or stopped where it stood once the lease was given up (nothing it does lands then).
        yield* Fiber.interrupt(ending)
        return yield* exit
      }))
    /** How the run's end is recorded when it stops with an error or is interrupted (the lease lost aside). */
    const ended = (cause: Cause.Cause<unknown>): Effect.Effect<LeaseNotHeld | StoreError | undefined, never, SqlClient.SqlClient> => {
      const interrupted = Cause.isInterruptedOnly(cause)
      if (interrupted && x.suspended?.() === true) {
        // Suspended between slices (a paper run waits there): nothing happened since the last
        // pause, so the books are those of that pause — a checkpoint of exactly where it stands,
        // even when no event came since the last one (a quiet stretch): the resume goes on from
        // its cursor, and a cursor left behind would have it wait for every bar since again and
        // take the next alert weeks of bars back. Same last event, later cursor: it replaces the
        // checkpoint before (RunRecorder keys them by their last event). Not before the resume
        // has reached the recording's own checkpoint, whose cursor is further on.
        const at = lastPace
        const recordedOn = x.compareUntil === undefined || lastSeq >= x.compareUntil
        const standsAt = Math.max(checkpointSlices, x.checkpoint?.cursor.slices ?? 0)
        if (at !== undefined && recordedOn && checkpointChecked && at.events === lastSeq && (at.events > checkpointSeq || at.slices > standsAt)) {
          recorder.checkpoint(at)
        }
        return Effect.as(Effect.ignore(recorder.flush), undefined)
      }
      // The row says the run ended even when the rest of its events cannot be written: a run
      // whose recording failed is failed, for that reason (not left `running` in no process).
      // Under its lease only: a process that lost it (or cannot prove it holds it) writes nothing.
      return Effect.flatMap(Effect.exit(recorder.flush), (flushed) =>
        (Exit.isFailure(flushed)
          ? Runs.markEndedLeased(lease, x.run, "failed", failureOf(interrupted ? flushed.cause : cause))
          : Runs.markEndedLeased(lease, x.run, interrupted ? "stopped" : "failed", interrupted ? stopReasonOf(x) : failureOf(cause))
        ).pipe(Effect.as(undefined), Effect.catchAll(Effect.succeed)))
    }
    /** Why the end of a run that failed could not be written to its row (`ended`), once it could not. */
    let unrecorded: LeaseNotHeld | StoreError | undefined
    const unrecordedEnd = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | EndNotRecorded, R> =>
      Effect.mapErrorCause(effect, (cause): Cause.Cause<E | EndNotRecorded> =>
        unrecorded === undefined || Cause.isInterruptedOnly(cause)
          ? cause
          : Cause.fail(new EndNotRecorded({ run: x.run, failure: failureOf(cause), why: unrecorded.message })))
    const running = Backtest.run({
      strategy: x.strategy,
      feed: x.feed,
      seed: x.seed,
      runId: x.run,
      events: x.events,
      strategyRef: x.strategyRef,
      ...(x.faults === undefined ? {} : { faults: Run.faultsOf(x.faults) }),
      ...(x.registry === undefined ? {} : { registry: x.registry }),
      ...(x.approver === undefined ? {} : { approver: x.approver }),
      ...(x.onProgress === undefined ? {} : { onProgress: x.onProgress }),
      // A resumed paper run catches up with its recording as fast as it can: only what it has not
      // recorded yet waits for its moment. The recording goes as far as its last checkpoint, which
      // may stand past its last event (a run suspended in a quiet stretch): the slices up to it
      // were waited for already, and pacing them again would send the run back in time.
      ...(x.beforeSlice === undefined ? {} : {
        beforeSlice: (ts: Timestamp) => (catchingUp() ? Effect.void : x.beforeSlice!(ts))
      }),
      ...(x.mode === undefined ? {} : { mode: x.mode }),
      ...(x.recordedStart === undefined ? {} : { recordedStart: x.recordedStart }),
      // What the recording holds was traced as it happened: the catch-up is not traced again.
      untracedWhile: catchingUp,
      llm: x.llm,
      ...signalsOption(RecordedSignals.source(x.recordedSignals ?? new Map(), x.signals, x.compareUntil ?? 0, x.checkpoint?.cursor.ts)),
      ...leftoversOption(RecordedSignals.leftovers(x.recordedNotApplied ?? [], liveLeftovers, x.compareUntil ?? 0)),
      ...tradingOption(RecordedTrading.source(x.recordedTrading?.slices ?? new Map(), x.trading, x.compareUntil ?? 0, x.checkpoint?.cursor.ts)),
      ...(x.hold === undefined ? {} : { hold: (ts: Timestamp) => (catchingUp() ? undefined : x.hold!(ts)) }),
      ...waitingOption(RecordedTrading.waitingSource(
        x.recordedTrading?.waiting ?? new Map(),
        // Not listened for while the recording is re-executed: what it took there is given back at its event.
        x.waiting === undefined ? undefined : { take: x.waiting.take, arrival: Effect.suspend(() => (catchingUp() ? Effect.never : x.waiting!.arrival)) },
        x.compareUntil ?? 0
      )),
      onEvent: (event, json) => {
        lastSeq = event.seq
        if (comparator !== undefined && comparator.covers(event.seq)) {
          comparator.sink(event, json)
          recorder.track(event)
          if (x.onCommitted !== undefined) reproduced.push([event, json])
        } else if (!checkpointChecked && event.seq > x.checkpoint!.cursor.events) {
          // Before the slice of the recording's last checkpoint, which may stand past its last
          // event (a quiet stretch) and vouches that no event came after its `cursor.events` up to
          // there: an event here is a divergence, which the check at that slice (or at the run's
          // end) reports. It is not recorded: a run that does not reproduce is not grafted on.
        } else {
          recorder.sink(event, json)
        }
        extra?.(event, json)
      },
      pace: (progress) =>
        Effect.gen(function*() {
          lastPace = progress
          if (comparator !== undefined) {
            const divergence = yield* comparator.check.pipe(Effect.mapError(toBacktestError))
            if (divergence !== undefined) {
              diverged = divergence
              return yield* new Backtest.BacktestError({ field: "replay", reason: divergedError(x.run, divergence).message })
            }
            tellMatched()
          }
          const recorded = x.checkpoint
          if (recorded !== undefined && !checkpointChecked && progress.slices >= recorded.cursor.slices) {
            checkpointChecked = true
            const rebuilt = { ...recorder.snapshot(progress), chain: recorded.chain }
            // Checkpoints fall on pauses: one the run passes without pausing at it was not written by this run.
            const difference = progress.slices === recorded.cursor.slices
              ? firstDifference(recorded, rebuilt)
              : { field: "cursor.slices", expected: recorded.cursor.slices, actual: progress.slices }
            if (difference !== undefined) {
              diverged = {
                seq: progress.events,
                round: null,
                agent: null,
                expectedTag: null,
                actualTag: null,
                field: `checkpoint.${difference.field}`,
                expected: JSON.stringify(difference.expected) ?? "(nothing)",
                actual: JSON.stringify(difference.actual) ?? "(nothing)"
              }
              return yield* new Backtest.BacktestError({ field: "resume", reason: "the books differ from the checkpoint" })
            }
          }
          // Not before the recording's checkpoint is checked: events re-executed up to it are not recorded.
          if (checkpointChecked && progress.slices - checkpointSlices >= every && progress.events > checkpointSeq) {
            recorder.checkpoint(progress)
            checkpointSlices = progress.slices
            checkpointSeq = progress.events
          }
          yield* recorder.pace.pipe(Effect.mapError(toBacktestError))
          if (x.pace !== undefined && !catchingUp()) yield* x.pace(progress)
        }).pipe(Effect.provide(database))
    }).pipe(
      Effect.catchTag("BacktestError", (error): Effect.Effect<never, Backtest.BacktestError | RunDiverged> =>
        diverged === undefined ? Effect.fail(error) : Effect.fail(divergedError(x.run, diverged))),
      // The lease lost to another process stops the run here, whatever it is doing.
      whileLeased,
      // What was recorded stays (it is true as far as it goes); the run says why it stopped.
      // Another process runs it now, from what was committed: nothing more is written here, not
      // the events in hand, nor an end in its row — nor tried once the lease is given up while
      // they are being written.
      Effect.onError((cause) =>
        Effect.flatMap(leaseGivenUp, (lost) =>
          lost ? Effect.void : endWhileLeased(ended(cause)).pipe(
            Effect.orElseSucceed(() => (lease === undefined ? undefined : notHeld(lease, false))),
            Effect.map((why) => {
              unrecorded = why
            })
          ))),
      // A failure whose end its row could not take (the database away, or the lease lost meanwhile)
      // is said as such: the row still says the run goes on, and it does — taken over elsewhere,
      // or resumed at the next start — so "a run failed" would be the wrong news.
      unrecordedEnd
    )
    // Once the run has ended by itself (its last event is recorded), a stop or a shutdown that
    // comes is too late, and waits for its row to be finished — from the moment the driver returns,
    // with no step between. Interrupted there, the recorder's last batch was cut off mid-commit (its
    // followers never told) while the row was marked `stopped`, its chain count taken short of the
    // events the batch then committed: a false tamper report.
    // Its end is raced against the lease all the same (`endWhileLeased`): given up meanwhile, the
    // run stops there, as in its main loop, writing nothing more.
    //
    // Given up once its row's end was committed — the commit's answer lost with its connection, and
    // the lease's connection with it (a database restarting): tried again, refused, given up — the
    // run said `RunLeased` (going on elsewhere) for a run whose row says it completed, and nobody
    // takes over a run that completed. So the row is asked (bounded: the database may be away): if
    // it holds this end, the run ended so here too.
    let finishing: Runs.Finish | undefined
    const asRecorded = <A>(result: A) => (leased: Runs.RunLeased) =>
      finishing === undefined ? Effect.fail(leased) : Runs.endedAs(x.run, finishing).pipe(
        Database.withDeadline({ duration: END_READ_WAIT, onTimeout: () => "no answer" }),
        Effect.provide(database),
        Effect.orElseSucceed(() => false),
        Effect.flatMap((recorded) => (recorded ? Effect.succeed(result) : Effect.fail(leased)))
      )
    return yield* Effect.uninterruptibleMask((restore) => Effect.flatMap(restore(running), (result) => endWhileLeased(Effect.gen(function*() {
      if (!checkpointChecked) {
        const error = divergedError(x.run, {
          seq: result.counts.events,
          round: null,
          agent: null,
          expectedTag: null,
          actualTag: null,
          field: "checkpoint.cursor.slices",
          expected: String(x.checkpoint!.cursor.slices),
          actual: `${result.counts.slices} (the run ended before it)`
        })
        // As on any failure: what was recorded stays, and the run says why it stopped.
        yield* Effect.ignore(recorder.flush)
        yield* Runs.markEndedLeased(lease, x.run, "failed", error.message)
        return yield* error
      }
      if (comparator !== undefined) {
        const divergence = yield* comparator.finish
        if (divergence !== undefined) {
          const error = divergedError(x.run, divergence)
          yield* Runs.markEndedLeased(lease, x.run, "failed", error.message)
          return yield* error
        }
        tellMatched()
      }
      // The last events failed to write: the run is not whole, and its row says so.
      yield* recorder.flush.pipe(Effect.tapErrorCause((cause) => Effect.ignore(Runs.markEndedLeased(lease, x.run, "failed", failureOf(cause)))))
      finishing = {
        status: result.status,
        ...(result.failure === undefined ? {} : { failure: result.failure }),
        checksum: result.checksum,
        metrics: result.metrics,
        counts: result.counts,
        tradingState: result.tradingState,
        from: result.from,
        to: result.to,
        chain: recorder.head()
      }
      yield* Runs.finish(x.run, finishing, lease)
      return result
    })).pipe(Effect.catchTag("RunLeased", asRecorded(result)))))
  }).pipe(Effect.scoped)

/** How long a run whose lease was given up as it ended waits for its row to say how it ended. */
const END_READ_WAIT = Duration.seconds(2)

/**
 * A run that stopped here for a failure whose end its row could not take: the database was away,
 * or this process no longer held the run's lease (`Runs.LeaseNotHeld`). Its row still says it
 * runs, and it goes on — in the process holding its lease, or resumed by a takeover or the next
 * start, from what was committed.
 */
export class EndNotRecorded extends Schema.TaggedError<EndNotRecorded>()("EndNotRecorded", {
  run: Schema.String,
  failure: Schema.String,
  why: Schema.String
}) {
  override get message(): string {
    return `run ${this.run} stopped here (${this.failure}), and its end was not recorded (${this.why}): its row still says it runs, for a takeover or the next start to go on with`
  }
}

/** The driver's `signals` option, left out when there is no source (no per-slice call at all). */
const signalsOption = (signals: Backtest.Options["signals"] | undefined) => (signals === undefined ? {} : { signals })

const leftoversOption = (leftoverSignals: Backtest.Options["leftoverSignals"] | undefined) =>
  leftoverSignals === undefined ? {} : { leftoverSignals }

/** The driver's `trading` option, left out when there is no source. */
const tradingOption = (trading: Backtest.Options["trading"] | undefined) => (trading === undefined ? {} : { trading })

/** The driver's `waiting` option, left out when there is no source. */
const waitingOption = (waiting: Backtest.Options["waiting"] | undefined) => (waiting === undefined ? {} : { waiting })

/** Why an execution failed, in one line: what a run's row and the server's start-up report say. */
export const failureOf = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  // Said after the run's name (`could not resume run … (…): …`): not named twice.
  if (error instanceof NotReexecutable) return error.why
  return error instanceof Error ? error.message : String(error)
}

/**
 * The approver of a re-execution: the recorded answer for every approval the recording resolved
 * (an operator's decision is an input of the run, like its bars), then `live` — the operator of a
 * resumed run — for those it did not.
 */
const recordedApprover = (run: RunId, live: Backtest.Options["approver"]) =>
  Effect.map(Runs.resolvedApprovals(run), (recorded): Backtest.Options["approver"] => {
    if (recorded.size === 0) return live
    return (request) => {
      const answer = recorded.get(request.round)
      if (answer !== undefined) {
        return Effect.succeed({ approved: answer.outcome === "approved", expired: answer.outcome === "expired", by: answer.by, reason: answer.reason })
      }
      return live === undefined
        ? Effect.fail(
          new Backtest.BacktestError({
            field: "risk.approval",
            reason: `round ${request.round} was still waiting for an operator where the recording of run ${run} ends`
          })
        )
        : live(request)
    }
  })

/** A new backtest, recorded as it runs. */
export const backtest = (options: Options) =>
  Effect.gen(function*() {
    // The roster and the symbols first: a run the engine would refuse at its start records nothing.
    yield* rosterOf(options.strategy, options.registry ?? analysts)
    yield* Backtest.checkSymbols(options.strategy, options.feed)
    const owner = options.owner ?? (yield* Users.ensureLocal())
    const saved = options.version === undefined
      ? yield* Strategies.saveVersion(owner, options.strategy)
      : { strategyId: options.version.id, version: options.version.version }
    const seed = options.seed ?? "0"
    const events = options.events ?? "decisions"
    // Leased before its row is written: a run this process cannot lease (every connection for
    // leases held by a live run, or the database refusing more) is refused with nothing written.
    // Leased after, it was answered as started, then ended `failed` some ten seconds later.
    const id = Runs.newRunId()
    const leaseLost = yield* Deferred.make<void>()
    const lease = yield* Runs.lease(id, () => Deferred.unsafeDone(leaseLost, Exit.void))
    const created = yield* Runs.create({
      id,
      owner,
      strategyId: saved.strategyId,
      strategyVersion: saved.version,
      strategy: options.strategy,
      mode: options.mode ?? "backtest",
      seed,
      dataSource: DataSource.encode(options.dataSource),
      dataFingerprint: options.feed.fingerprint,
      eventDetail: events,
      ...(options.faults === undefined ? {} : { faults: options.faults }),
      ...(options.speed === undefined ? {} : { speed: options.speed })
    })
    options.onCreated?.(created)
    const result = yield* Effect.flatMap(LlmRuntime.runOptions(), (llm) =>
      execute({
        llm,
        ...options,
        run: created.id,
        leased: true,
        leaseLost,
        ...(lease === undefined ? {} : { lease }),
        strategyRef: { id: saved.strategyId, version: saved.version },
        seed,
        events,
        faults: options.faults
      })).pipe(stoppedIfInterrupted(created.id, options, { lease }))
    return { result, run: created.id, number: created.number, strategyId: saved.strategyId, strategyVersion: saved.version } satisfies Stored
  }).pipe(Effect.scoped, Effect.withSpan("StoredRun.backtest"))

/** A recorded run's data source, decoded: a column that does not decode is a `CorruptRecord`. */
const sourceOf = (run: Runs.RunRecord) =>
  DataSource.decode(run.dataSource).pipe(
    Effect.mapError((error) =>
      new CorruptRecord({ table: "runs", key: run.id, column: "data_source", reason: oneLineOf(error) })
    )
  )

/** The inputs of a recorded run, re-opened: its data must be what it was. */
const inputsOf = (run: Runs.RunRecord) =>
  Effect.gen(function*() {
    const source = yield* sourceOf(run)
    const feed = yield* DataSource.open(source, run.dataFingerprint)
    const events = run.eventDetail === "rounds" ? "rounds" as const : "decisions" as const
    return { feed, events }
  })

export interface Resumed {
  readonly result: Backtest.Result
  readonly run: RunId
  /** Events that were already recorded (compared, not written again). */
  readonly recorded: number
  /** Its LLM agents started with one backend and this process answers them with another (`llmSwitch`). */
  readonly llmSwitched?: string
}

/**
 * A resumed run whose LLM agents started with one backend (Ollama) and that this process answers
 * with another (the offline model: no Ollama here), or the other way round: said, never silent.
 * Its `RunStarted` keeps the backend it started with (the recording is reproduced as it was); each
 * `LlmCalled` event names the backend that answered it.
 */
export const llmSwitch = (started: Backtest.LlmOptions["started"], live: Backtest.LlmOptions["model"]): string | undefined =>
  started === undefined || started.backend === live.backend.kind
    ? undefined
    : `its LLM agents started on ${started.backend}, and from here on ${live.backend.kind} answers them (${live.backend.description}); each LlmCalled event names the backend that answered it`

/**
 * Resume an unfinished run (its process died): re-execute it, check it against what was recorded
 * up to the last committed event, and record the rest.
 */
/** Whether a run with this status can be resumed: unfinished, or `stopped` (interrupted on purpose: only when asked by name; `resumeAll` leaves it). */
export const resumable = (status: Runs.RunStatus): boolean => status === "running" || status === "paused" || status === "stopped"

export const resume = (ref: string, options: Common & { readonly owner?: string } = {}) =>
  Effect.gen(function*() {
    const run = yield* Runs.get(ref, options.owner)
    if (!resumable(run.status)) {
      return yield* new NotResumable({ run: run.id, reason: `it is ${run.status}` })
    }
    yield* reexecutable(run, options.registry)
    const { llmSwitched, recorded, result } = yield* resumed(run, options).pipe(stoppedIfInterrupted(run.id, options))
    return { result, run: run.id, recorded, ...(llmSwitched === undefined ? {} : { llmSwitched }) } satisfies Resumed
  }).pipe(Effect.withSpan("StoredRun.resume"))

/** `resume`'s re-execution of a run found resumable, and the number of events it had recorded. */
/** `signals` as a source that gives `pending` once, with what is left when the run ends first. */
const oneShot = (pending: ReadonlyArray<ExternalSignal>): Pick<Common, "signals" | "leftoverSignals"> => {
  if (pending.length === 0) return {}
  let left = pending
  const take = (): ReadonlyArray<ExternalSignal> => {
    const out = left
    left = NO_SIGNALS
    return out
  }
  return { signals: take, leftoverSignals: take }
}
const NO_SIGNALS: ReadonlyArray<ExternalSignal> = []

const resumed = (run: Runs.RunRecord, options: Common) =>
  Effect.gen(function*() {
    const { events, feed } = yield* inputsOf(run)
    const approver = yield* recordedApprover(run.id, options.approver)
    const head = yield* Runs.lastEvent(run.id)
    const checkpoint = yield* Runs.lastCheckpoint(run.id)
    const recordedSignals = yield* RecordedSignals.read(run.id)
    const recordedNotApplied = yield* RecordedSignals.readNotApplied(run.id)
    const recordedTrading = yield* RecordedTrading.read(run.id)
    const recordedCalls = yield* RecordedLlmCalls.read(run.id)
    // A run recorded before a change of how runs trade goes on trading as it did.
    const recordedStart = yield* RecordedStart.read(run.id)
    // What its chat spent meanwhile is charged to its live budget from the start (docs/llm.md).
    const llm = yield* LlmRuntime.runOptions({ recorded: recordedCalls.calls, started: recordedCalls.started, chatSpent: yield* Chats.spentOnRun(run.id) })
    const llmSwitched = llmSwitch(recordedCalls.started, llm.model)
    if (llmSwitched !== undefined) {
      yield* (options.onLlmSwitch ?? ((message) => Effect.logWarning(`resumed run ${run.id}: ${message}`)))(llmSwitched)
    }
    // A stopped run's intents that were waiting when it stopped (cancelled then) are asked again.
    yield* Runs.reopenCancelledApprovals(run.id)
    // A paper run resumed with no live source of its own (`swarm resume`, not a server's): the
    // alerts delivered to it and not yet taken enter it as they would have, or are recorded as not
    // applied when it ends first — never left answered 202 and nowhere in its events.
    const outside = run.mode === "paper" && options.signals === undefined ? oneShot(yield* WebhookStore.pendingOf(run)) : {}
    // Checkpoints are committed with the events they follow, so the last one is never past the last event.
    const result = yield* execute({
      llm,
      ...options,
      ...outside,
      ...(recordedStart === undefined ? {} : { recordedStart }),
      ...(approver === undefined ? {} : { approver }),
      run: run.id,
      strategy: run.strategy,
      strategyRef: { id: run.strategyId, version: run.strategyVersion },
      feed,
      seed: run.seed,
      events,
      mode: run.mode === "paper" ? "paper" : "backtest",
      faults: run.faults ?? undefined,
      recordedStart,
      recordedSignals,
      recordedNotApplied,
      recordedTrading,
      compareUntil: Option.match(head, { onNone: () => 0, onSome: (h) => h.seq }),
      readAt: { status: run.status, seq: Option.match(head, { onNone: () => 0, onSome: (h) => h.seq }) },
      ...Option.match(head, { onNone: () => ({}), onSome: (h) => ({ from: { count: h.seq, hash: h.hash } }) }),
      ...Option.match(checkpoint, { onNone: () => ({}), onSome: (c) => ({ checkpoint: c.state }) })
    })
    return { result, recorded: Option.match(head, { onNone: () => 0, onSome: (h) => h.seq }), llmSwitched }
  })

/**
 * Resume every unfinished run (`running` or `paused`) that no process is running, oldest first:
 * each run with what it gave or why it could not go on. Runs leased by another live process are
 * left out.
 */
export const resumeAll = (options: Common = {}) =>
  Effect.gen(function*() {
    const runs = yield* Runs.unfinished()
    const outcomes = yield* Effect.forEach(runs, (run) => Effect.map(Effect.either(resume(run.id, options)), (outcome) => ({ run: run.id, outcome })))
    return outcomes.filter(({ outcome }) => !(Either.isLeft(outcome) && outcome.left._tag === "RunLeased"))
  })

export interface Replayed {
  readonly run: RunId
  readonly events: number
  readonly checksum: string
  /** What the re-execution gave: none when it failed with an error, as the recorded run did (`failure`). */
  readonly result: Backtest.Result | undefined
  /**
   * The recorded run failed, and the re-execution failed the same way after the same events: why
   * (the failure its row records).
   */
  readonly failure?: string
  /**
   * The recorded run's status. A `stopped`, `running` or `paused` run is reproduced as far as it was
   * recorded (`events`): it never finished.
   */
  readonly status: Runs.RunStatus
}

/**
 * Replay a recorded run: re-execute it from its recorded inputs, in memory (nothing is written),
 * and compare every event with the recording. A run that does not reproduce fails with the first
 * divergence (`RunDiverged`). A run that failed with an error (a `BacktestError`: a held intent
 * with no operator, its data refused) is compared as far as it went: its replay must give every
 * recorded event, then fail with the same error — a failed recording is checked like any other.
 */
/**
 * What a replay is doing before its first bar, which for a big recording takes a while: checking
 * that the recording's inputs are as the run had them (`checking`), then reading the recording, its
 * data and what came from outside (`reading`). Its bars are told by `onProgress`.
 */
export type ReplayPhase = "checking" | "reading"

export const replay = (
  ref: string,
  options: Pick<Common, "registry" | "onProgress"> & { readonly owner?: string; readonly onPhase?: (phase: ReplayPhase) => void } = {}
) =>
  Effect.gen(function*() {
    const run = yield* Runs.get(ref, options.owner)
    yield* reexecutable(run, options.registry)
    // Inputs changed after the run would make it "not reproduce": the recording is what changed.
    // (Columns that do not decode at all are said to first, naming the column.)
    yield* sourceOf(run)
    options.onPhase?.("checking")
    const inputs = yield* Audit.verifyInputs(run)
    if (!inputs.ok) return yield* new RecordingAltered({ run: run.id, position: inputs.position, reason: inputs.reason })
    options.onPhase?.("reading")
    const { events, feed } = yield* inputsOf(run)
    // A stopped run's recording ends where it was stopped (mid-slice, perhaps), and an unfinished
    // one's (`running`: its process died, or it is still going; `paused`) where it has got to: it
    // is reproduced up to there, and its checksum is that of those events. What an unfinished run
    // does next is not recorded yet, and is no divergence.
    const end = run.status === "stopped" || run.status === "running" || run.status === "paused"
      ? Option.match(yield* Runs.lastEvent(run.id), { onNone: () => 0, onSome: (h) => h.seq })
      : undefined
    // A failed run may have failed with an error, which leaves no result (and no checksum) behind:
    // its checksum is then that of its events, hashed as they come.
    const prefix = end === undefined && run.status !== "failed" ? undefined : createHash("sha256")
    const comparator = new Comparator(run.id, end)
    const approver = yield* recordedApprover(run.id, undefined)
    const signals = RecordedSignals.source(yield* RecordedSignals.read(run.id), undefined)
    const leftovers = RecordedSignals.leftovers(yield* RecordedSignals.readNotApplied(run.id), undefined)
    const recordedTrading = yield* RecordedTrading.read(run.id)
    const trading = RecordedTrading.source(recordedTrading.slices, undefined)
    const waiting = RecordedTrading.waitingSource(recordedTrading.waiting, undefined)
    const recordedCalls = yield* RecordedLlmCalls.read(run.id)
    // Every model call answered from the recording; none made.
    const llm = yield* LlmRuntime.runOptions({ recorded: recordedCalls.calls, started: recordedCalls.started, replay: true })
    // Traded as it was recorded (a run from before a change of how runs trade, the old way).
    const recordedStart = yield* RecordedStart.read(run.id)
    const database = yield* Effect.context<SqlClient.SqlClient>()
    let diverged: Divergence | undefined
    /** The replay's own machinery failed (the recording could not be read): not the run's failure. */
    let ownFailure = false
    const outcome = yield* Backtest.run({
      strategy: run.strategy,
      feed,
      seed: run.seed,
      runId: run.id,
      events,
      mode: run.mode === "paper" ? "paper" : "backtest",
      strategyRef: { id: run.strategyId, version: run.strategyVersion },
      ...(recordedStart === undefined ? {} : { recordedStart }),
      ...(run.faults === null ? {} : { faults: Run.faultsOf(run.faults) }),
      ...(options.registry === undefined ? {} : { registry: options.registry }),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      ...(approver === undefined ? {} : { approver }),
      ...signalsOption(signals),
      ...leftoversOption(leftovers),
      ...tradingOption(trading),
      ...waitingOption(waiting),
      llm,
      ...(end === undefined ? {} : { endAfter: end }),
      onEvent: prefix === undefined ? comparator.sink : (event, json) => {
        if (end === undefined || event.seq <= end) prefix.update(`${json}\n`)
        comparator.sink(event, json)
      },
      pace: () =>
        comparator.check.pipe(
          Effect.mapError((error) => new Backtest.BacktestError({ field: "store", reason: error.message })),
          Effect.flatMap((divergence) => {
            if (divergence === undefined) return Effect.void
            diverged = divergence
            return Effect.fail(new Backtest.BacktestError({ field: "replay", reason: "diverged" }))
          }),
          Effect.tapError(() => Effect.sync(() => {
            ownFailure = true
          })),
          Effect.provide(database)
        )
    }).pipe(
      Effect.map((result) => ({ result, failure: undefined })),
      Effect.catchTag("BacktestError", (error): Effect.Effect<{ result: undefined; failure: string }, Backtest.BacktestError | RunDiverged> => {
        if (diverged !== undefined) return Effect.fail(divergedError(run.id, diverged))
        // The recording failed too: what it recorded up to its failure is compared below, and
        // the failure must be its own. An error of the replay's own (reading the recording) is not.
        if (run.status === "failed" && !ownFailure) return Effect.succeed({ result: undefined, failure: error.message })
        return Effect.fail(error)
      }),
      Effect.catchTag("RunDiverged", withRecordingChecked)
    )
    const divergence = yield* comparator.finish
    if (divergence !== undefined) return yield* withRecordingChecked(divergedError(run.id, failedHere(run, divergence)))
    const { failure, result } = outcome
    if (failure !== undefined) {
      if (failure !== run.failure) {
        // Every recorded event came again, then the re-execution failed otherwise than the run did.
        return yield* withRecordingChecked(divergedError(run.id, {
          seq: comparator.matched + 1,
          round: null,
          agent: null,
          expectedTag: null,
          actualTag: null,
          field: "failure",
          expected: JSON.stringify(run.failure),
          actual: JSON.stringify(failure)
        }))
      }
      return { run: run.id, events: comparator.matched, checksum: prefix!.digest("hex"), result, failure, status: run.status } satisfies Replayed
    }
    if (end !== undefined) return { run: run.id, events: end, checksum: prefix!.digest("hex"), result, status: run.status } satisfies Replayed
    return {
      run: run.id,
      events: result.counts.events,
      checksum: result.checksum,
      result,
      ...(result.status === "failed" && result.failure !== undefined ? { failure: result.failure } : {}),
      status: run.status
    } satisfies Replayed
  }).pipe(Effect.withSpan("StoredRun.replay"))

/**
 * A divergence past the end of a failed run's recording (the re-execution went on where the run
 * failed): says so, and why the run failed, rather than only that no such event was recorded.
 */
const failedHere = (run: Runs.RunRecord, d: Divergence): Divergence =>
  run.status === "failed" && d.expectedTag === null && d.actualTag !== null && run.failure !== null
    ? { ...d, expected: `(no such event recorded: the run failed there: ${run.failure})` }
    : d
