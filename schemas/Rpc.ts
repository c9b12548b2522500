/**
 * The RPC contract of the edge: every procedure an operator's client (the `swarm` CLI, a
 * dashboard, a script) can call, with its payload, its answer and its typed errors. Defined here,
 * in schemas/, so the server and every client share one definition. Every procedure needs an API
 * key (the `Authenticated` middleware: bearer header) and acts only on what the principal owns —
 * "not yours" is the same `…NotFound` as "does not exist"; admin procedures need the admin role.
 */
import { Rpc, RpcGroup, RpcMiddleware } from "@effect/rpc"
import { Context, Schema, SchemaAST } from "effect"
import { ApiKey, Forbidden, Principal, Unauthorized, UserName } from "./Auth.js"
import { ChatChunk, ChatFollowed, ChatHistory, RuleSuggestions, SuggestionNotFound } from "./Chat.js"
import { Metrics, MetricsConfig } from "./Metrics.js"
import { Money } from "./Money.js"
import { IllegalTransition, StateTransition, TradingState, TradingStatus } from "./Risk.js"
import { RunEvent, type RunEventTag } from "./RunEvent.js"
import { LatestValues } from "./Portfolio.js"
import { Rule, RuleId } from "./Rule.js"
import { Strategy } from "./Strategy.js"
import { Trade } from "./Trade.js"
import { RunTraces } from "./Trace.js"

// ---------------------------------------------------------------------------------------------
// Authentication

/** The principal a request is made for, provided to every handler by `Authenticated`. */
export class CurrentPrincipal extends Context.Tag("swarm/rpc/CurrentPrincipal")<CurrentPrincipal, Principal>() {}


// ---------------------------------------------------------------------------------------------
// Shared shapes and errors

/** A bad payload: one that does not decode (see `CheckedPayload`) or refers to something inconsistent — the field and why. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  field: Schema.String,
  reason: Schema.String
}) {}

/** A conflicting change: a name taken, a run not in a state that allows the operation. */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", {
  reason: Schema.String
}) {}

/**
 * No such strategy of the caller's — or, with `version`, the strategy is there but not at that
 * version (it has versions 1 to `latestVersion`); or, with `deleted`, the strategy a run ran was
 * deleted since (`chat.applyRule`: there is no strategy to make a new version of), named as it was
 * last called, since its caller never typed its id.
 */
export class StrategyNotFound extends Schema.TaggedError<StrategyNotFound>()("StrategyNotFound", {
  strategy: Schema.String,
  version: Schema.optional(Schema.Int),
  latestVersion: Schema.optional(Schema.Int),
  deleted: Schema.optional(Schema.Struct({ name: Schema.String }))
}) {
  override get message(): string {
    return this.deleted !== undefined
      ? `strategy ${this.deleted.name} (${this.strategy}) was deleted`
      : this.version === undefined
      ? `no strategy ${this.strategy}`
      : `strategy ${this.strategy} has no version ${this.version} (its versions are 1 to ${this.latestVersion})`
  }
}

/** No such run — or not one the asker may see: both get the same answer. */
export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", {
  run: Schema.String,
  /**
   * A `<strategy>#<number>` that names more than one run the caller may see (an admin's, across
   * owners; or a deleted strategy's run and its namesake's): their ids, newest first. Unset: none.
   */
  ambiguous: Schema.optional(Schema.Array(Schema.String)),
  /**
   * The payload's field that named the run, when it is not the run acted on (`runs.list`'s cursor,
   * `before`). Unset: the procedure's run. Older clients pass over it.
   */
  field: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const head = this.field === undefined ? "" : `${this.field}: `
    return this.ambiguous === undefined
      ? `${head}no run ${this.run}`
      : `${head}${this.run} names ${this.ambiguous.length} runs (${this.ambiguous.join(", ")}): give the run's id`
  }
}

export class ApprovalNotFound extends Schema.TaggedError<ApprovalNotFound>()("ApprovalNotFound", {
  run: Schema.String,
  round: Schema.String
}) {}

/**
 * The run's stored record cannot be read (its row edited by hand, written by another version):
 * `reason` names the column, the field in it and what is wrong, in one line. Not a passing failure
 * — asking again gets the same answer until the record reads — and nothing a server could resume:
 * `runs.stop` ends such a run. (`approvals.*`; servers before it answered `Unavailable`.)
 */
export class RunUnreadable extends Schema.TaggedError<RunUnreadable>()("RunUnreadable", {
  run: Schema.String,
  reason: Schema.String
}) {}

/**
 * The server could not do it for a reason of its own (the database is down): retry later. A stream
 * ended because its client fell too far behind it (read too slowly: its subscription overflowed,
 * or a write to it waited too long) says `behind`: the server is up, and asking again from the
 * last item got goes on at once (older servers: absent).
 */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  reason: Schema.String,
  behind: Schema.optional(Schema.Literal(true))
}) {}

/**
 * Reads the bearer key of every request; a request without a valid one is `Unauthorized`, and one
 * the server cannot check (its database down) is `Unavailable` — never a refusal that would make a
 * client throw away a good key.
 */
export class Authenticated extends RpcMiddleware.Tag<Authenticated>()("Authenticated", {
  provides: CurrentPrincipal,
  failure: Schema.Union(Unauthorized, Unavailable),
  requiredForClient: true
}) {}

const Ref = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))
const Limit = Schema.Int.pipe(Schema.between(1, 1_000))
/** How many ranks a page of a ranking skips. */
const Offset = Schema.Int.pipe(Schema.between(0, 1_000_000))
const Seq = Schema.Int.pipe(Schema.between(0, Number.MAX_SAFE_INTEGER))

/** Every event type a run records (schemas/RunEvent.ts), in its order. */
export const EVENT_TYPES: ReadonlyArray<RunEventTag> = RunEvent.members.map((member) =>
  (SchemaAST.getPropertySignatures(member.ast).find((field) => field.name === "_tag")!.type as SchemaAST.Literal).literal as RunEventTag
)

/** One of `EVENT_TYPES`: what `runs.events` may be narrowed to, refused as `swarm runs events --type` refuses it. */
export const EventType = Schema.String.pipe(
  Schema.filter((type) => (EVENT_TYPES as ReadonlyArray<string>).includes(type), {
    // What was sent comes first: the list grows with the event types, and a long reason is clipped.
    message: (issue) => `${JSON.stringify(String(issue.actual).slice(0, 64))} is not an event type (expected one of ${EVENT_TYPES.join(", ")})`
  })
)

// ---------------------------------------------------------------------------------------------
// Strategies and rules

export const StrategySummary = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  latestVersion: Schema.Int,
  runs: Schema.Int,
  createdAt: Schema.DateFromString
})
export type StrategySummary = typeof StrategySummary.Type

export const StrategyVersion = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  version: Schema.Int,
  strategy: Strategy,
  /** An update (or a rule put) that changed nothing: `version` is the latest as it was, no version was made. */
  unchanged: Schema.optional(Schema.Literal(true))
})
export type StrategyVersion = typeof StrategyVersion.Type

export class StrategyRpcs extends RpcGroup.make(
  /** Refused (`InvalidRequest`) when an agent's type is not registered or its params do not decode. */
  Rpc.make("strategies.create", { payload: { strategy: Strategy }, success: StrategyVersion, error: Schema.Union(Conflict, InvalidRequest, Unavailable) }),
  /**
   * A new version; the runs that ran an older one keep it. Its agents are checked as `create`'s.
   * With `ifVersion`, only while that is still the latest version (`Conflict` otherwise): a body
   * edited from version N does not drop what another change (a rule added) made N+1 meanwhile.
   */
  Rpc.make("strategies.update", {
    payload: { strategy: Ref, body: Strategy, ifVersion: Schema.optional(Schema.Int.pipe(Schema.positive())) },
    success: StrategyVersion,
    error: Schema.Union(StrategyNotFound, Conflict, InvalidRequest, Unavailable)
  }),
  Rpc.make("strategies.get", {
    payload: { strategy: Ref, version: Schema.optional(Schema.Int.pipe(Schema.positive())) },
    success: StrategyVersion,
    error: Schema.Union(StrategyNotFound, Unavailable)
  }),
  Rpc.make("strategies.list", { success: Schema.Array(StrategySummary), error: Unavailable }),
  Rpc.make("strategies.delete", { payload: { strategy: Ref }, error: Schema.Union(StrategyNotFound, Conflict, Unavailable) })
).middleware(Authenticated) {}

export class RuleRpcs extends RpcGroup.make(
  Rpc.make("rules.list", { payload: { strategy: Ref }, success: Schema.Array(Rule), error: Schema.Union(StrategyNotFound, Unavailable) }),
  /** Adds or replaces a rule (by id): a new strategy version. */
  Rpc.make("rules.put", { payload: { strategy: Ref, rule: Rule }, success: StrategyVersion, error: Schema.Union(StrategyNotFound, InvalidRequest, Unavailable) }),
  Rpc.make("rules.delete", {
    payload: { strategy: Ref, rule: RuleId },
    success: StrategyVersion,
    error: Schema.Union(StrategyNotFound, InvalidRequest, Unavailable)
  })
).middleware(Authenticated) {}

// ---------------------------------------------------------------------------------------------
// Runs

export const RunMode = Schema.Literal("backtest", "paper")

/** Where a run stands: `running` and `paused` are unfinished, the others final. */
export const RunStatus = Schema.Literal("running", "paused", "completed", "failed", "stopped")

/** Where a run's bars come from, as the server sees it: its own sample data or the synthetic market. */
export const RunData = Schema.Union(
  Schema.TaggedStruct("sample", {}),
  Schema.TaggedStruct("synthetic", {
    bars: Schema.Int.pipe(Schema.between(1, 1_000_000)),
    seed: Schema.optional(Schema.Int)
  })
)
export type RunData = typeof RunData.Type

export const StartRun = Schema.Struct({
  strategy: Ref,
  version: Schema.optional(Schema.Int.pipe(Schema.positive())),
  mode: RunMode,
  data: RunData,
  seed: Schema.optional(Schema.String.pipe(Schema.pattern(/^\d{1,16}$/))),
  /** Paper runs: how many times faster than the bars' own spacing they are replayed (default 1). */
  speed: Schema.optional(Schema.Number.pipe(Schema.between(0.001, 1_000_000_000)))
})

/**
 * Where a run stands now (`runs.get`): its latest portfolio snapshot and quotes — from the latest-values
 * cache, which the process executing the run keeps current (in Redis, readable by every server, when
 * configured), or else from the events the database has recorded.
 */
export const RunLatest = Schema.Struct({
  ...LatestValues.fields,
  source: Schema.Literal("cache", "database")
})
export type RunLatest = typeof RunLatest.Type

/** An operator's action on a run, as its control log (`control:<run>` in the audit log) records it. */
export const ControlAction = Schema.Struct({
  action: Schema.Literal("pause", "resume", "stop", "approve", "reject", "trading"),
  by: Schema.Struct({ id: Schema.String, name: Schema.String }),
  at: Schema.DateFromString,
  /** Approvals: the round answered. */
  round: Schema.optional(Schema.String),
  /** A rejection's reason; a pause's when it was not its own call (`user <name> disabled`); a trading-state command's. */
  reason: Schema.optional(Schema.String),
  /** A trading-state command (`runs.trading`): the state it moved the run to (servers before it: no such action). */
  state: Schema.optional(TradingState)
})
export type ControlAction = typeof ControlAction.Type

/**
 * A run's status as its followers are told it while it goes on (SSE `event: status`: no run event —
 * a pause is an operator's wall-clock action the run does not see at a bar, and its event log
 * replays byte for byte): running or paused, and the action of its control log that left it so —
 * who (`by`), why (`reason`: a pause that was not its operator's own call, `user <name> disabled`),
 * since when (`at`, ISO 8601, wall clock). A run never paused nor resumed says its status alone.
 */
export const RunStatusNote = Schema.Struct({
  status: Schema.Literal("running", "paused", "completed", "failed", "stopped"),
  by: Schema.optional(Schema.Struct({ id: Schema.String, name: Schema.String })),
  reason: Schema.optional(Schema.String),
  at: Schema.optional(Schema.String)
})
export type RunStatusNote = typeof RunStatusNote.Type

/** Who paused, resumed, stopped, approved or rejected a run: how many did, and the latest few (oldest first). */
export const ControlHistory = Schema.Struct({ count: Schema.Int, last: Schema.Array(ControlAction) })
export type ControlHistory = typeof ControlHistory.Type

/**
 * A run stopped or failed before it completed has no metrics of its own (only a completed run is
 * measured at its end): its figures up to where it stopped (`upTo`: `through` is the last bar it
 * marked, epoch ms, null when it marked none), rebuilt from its data and fills — or, when they
 * cannot be (its data files changed or went), why not and how many trades it closed (`none`).
 */
export const UpToStop = Schema.Union(
  Schema.TaggedStruct("upTo", { through: Schema.NullOr(Schema.Number), metrics: Metrics }),
  Schema.TaggedStruct("none", { reason: Schema.String, trades: Schema.Int })
)
export type UpToStop = typeof UpToStop.Type

export const RunInfo = Schema.Struct({
  id: Schema.String,
  ref: Schema.String,
  strategy: Schema.String,
  strategyVersion: Schema.Int,
  number: Schema.Int,
  mode: Schema.String,
  status: Schema.String,
  failure: Schema.NullOr(Schema.String),
  metrics: Schema.NullOr(Metrics),
  /**
   * The events it recorded, once it has ended (completed, failed or stopped); while it goes on
   * (running or paused), those committed so far (older servers: null while it goes on).
   */
  events: Schema.NullOr(Schema.Int),
  checksum: Schema.NullOr(Schema.String),
  startedAt: Schema.DateFromString,
  finishedAt: Schema.NullOr(Schema.DateFromString),
  /** The cash the run started with, in micros as `metrics` has it: its return is measured from it (older servers: absent). */
  initialCash: Schema.optional(Money),
  /** `runs.get` only, when the run has a portfolio or a quote yet (older servers: absent). */
  latest: Schema.optional(RunLatest),
  /** The name of the run's owner: an admin's list has every user's (older servers: absent). */
  owner: Schema.optional(Schema.String),
  /** `runs.get` only: its operators' actions, the latest ten (older servers: absent). */
  control: Schema.optional(ControlHistory),
  /** `runs.get` and `runs.list` (older servers: `runs.get` only): as `RunReport`'s. */
  notResumable: Schema.optional(Schema.String),
  /** `runs.get` and `runs.list` (older servers: `runs.get` only): as `RunReport`'s. */
  waiting: Schema.optional(Schema.String),
  /**
   * The rest of the run's record that `swarm runs list --json` prints of a run of the local
   * database, so that a server's runs print the same document (older servers: absent). `owner`
   * is the owner's user id; `from` and `to` the time its bars spanned (epoch ms), once it has ended.
   */
  record: Schema.optional(Schema.Struct({
    strategyId: Schema.String,
    owner: Schema.String,
    seed: Schema.String,
    from: Schema.NullOr(Schema.Number),
    to: Schema.NullOr(Schema.Number),
    counts: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.Number })),
    tradingState: Schema.NullOr(Schema.String)
  })),
  /** `runs.list` only, of a run stopped or failed before it completed: as `RunReport`'s (older servers: absent). */
  upToStop: Schema.optional(UpToStop)
})
export type RunInfo = typeof RunInfo.Type

/**
 * An agent of a run that crashed: how often, how often its supervisor restarted it, and the first
 * line of its last crash's cause — what `runs show` names instead of a bare count of restarts.
 */
export const AgentRestarts = Schema.Struct({
  /** As the strategy names it: an analyst's name (`analyst-2`), or a spine agent's role (`risk`, `ledger`, `desk`, `coordinator`). */
  agent: Schema.String,
  /** Its actor (`/user/run/analysts/analyst-2`). */
  actor: Schema.String,
  /** An analyst's type (`rsi_reversion`); null for the spine's agents. */
  type: Schema.NullOr(Schema.String),
  restarts: Schema.Int,
  crashes: Schema.Int,
  /** The first line of its last crash's cause (at most 300 characters); null if it never crashed. */
  lastCause: Schema.NullOr(Schema.String),
  /** The event that recorded that crash. */
  lastCrashSeq: Schema.NullOr(Schema.Int)
})
export type AgentRestarts = typeof AgentRestarts.Type

/** Model calls as a run recorded them (its `LlmCalled` events), summed: all of a run's, or one agent's on one backend and model. */
export const LlmCallTotals = Schema.Struct({
  /** Every call asked: answered by the model, from the cache, or refused. */
  calls: Schema.Int,
  cacheHits: Schema.Int,
  /** Not made: they could have taken the run past its budget. */
  refused: Schema.Int,
  /** Made and not answered usably (timeout, error, an answer that did not decode). */
  failed: Schema.Int,
  tokensIn: Schema.Int,
  tokensOut: Schema.Int,
  /** In the strategy's currency, when its budget prices tokens (0 when not). */
  cost: Schema.Number
})
export type LlmCallTotals = typeof LlmCallTotals.Type

/** What a run's LLM agents used and what its budget allowed: `runs show`'s `llm`, for a run with LLM agents. */
export const LlmUsage = Schema.Struct({
  /** The language model its `RunStarted` named: `ollama`, `offline` (a deterministic stand-in) or `recorded`. */
  backend: Schema.String,
  model: Schema.String,
  description: Schema.String,
  ...LlmCallTotals.fields,
  budget: Schema.Struct({
    /** Tokens in and out together, spent of its limit. */
    tokens: Schema.Int,
    maxTokens: Schema.Int,
    cost: Schema.Number,
    /** Absent from a strategy that does not limit cost. */
    maxCost: Schema.NullOr(Schema.Number),
    /** Whether a call was refused once the budget was spent: its LLM agents abstained from then on. */
    exhausted: Schema.Boolean
  }),
  /** By agent, backend and model. */
  agents: Schema.Array(Schema.Struct({ agent: Schema.String, backend: Schema.String, model: Schema.String, ...LlmCallTotals.fields }))
})
export type LlmUsage = typeof LlmUsage.Type

/** How many closed trades `runs.report` sends from each end of a run's list (the rest are counted, never sent). */
export const SHOWN_TRADES = 3

/**
 * A run as `swarm runs show` reports it (`runs.report`): its record, its equity and its closed
 * trades — how many, and the first and last `SHOWN_TRADES` (not overlapping: `last` is empty while
 * `first` holds them all), never the whole list, which may run to hundreds of thousands — and who
 * controlled it. Money in micros, as `RunInfo`'s.
 */
export const RunReport = Schema.Struct({
  id: Schema.String,
  ref: Schema.String,
  strategy: Schema.String,
  strategyId: Schema.String,
  strategyVersion: Schema.Int,
  number: Schema.Int,
  /** The owner's user id; `ownerName` their name (absent when no user row has the id). */
  owner: Schema.String,
  ownerName: Schema.optional(Schema.String),
  mode: Schema.String,
  status: Schema.String,
  seed: Schema.String,
  /** `decisions` or `rounds`: what the run recorded of its decisions. */
  eventDetail: Schema.String,
  /** Where its bars came from, as it recorded them (files and their hashes, or the synthetic market's settings). */
  dataSource: Schema.Unknown,
  dataFingerprint: Schema.String,
  replayOf: Schema.NullOr(Schema.String),
  /** Whether faults were injected into it (a test of its supervision). */
  faults: Schema.Boolean,
  failure: Schema.NullOr(Schema.String),
  metrics: Schema.NullOr(Metrics),
  /** What it counted (bars, rounds, orders, fills, events…), once it has ended. */
  counts: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.Number })),
  /**
   * Its trading state (`active`, `reducing`, `halted`) as of its last event committed, while it
   * runs too; null for a run that recorded nothing yet (or, still going, began under a server
   * older than this: it says it once the state changes).
   */
  tradingState: Schema.NullOr(Schema.String),
  /** The time its bars spanned (epoch ms), once it has ended. */
  from: Schema.NullOr(Schema.Number),
  to: Schema.NullOr(Schema.Number),
  startedAt: Schema.DateFromString,
  finishedAt: Schema.NullOr(Schema.DateFromString),
  checksum: Schema.NullOr(Schema.String),
  /** Its event chain as it recorded it when it ended: its length and last hash. */
  chain: Schema.NullOr(Schema.Struct({ count: Schema.Int, head: Schema.String })),
  /** Its portfolio snapshots (one after each fill): how many, the first, the last and the extremes; null with none. */
  equity: Schema.NullOr(Schema.Struct({ points: Schema.Int, first: Money, last: Money, low: Money, high: Money })),
  trades: Schema.Struct({ count: Schema.Int, first: Schema.Array(Trade), last: Schema.Array(Trade) }),
  control: ControlHistory,
  /** Where it stands, as `runs.get`'s `latest`: its latest portfolio snapshot and quotes, when it has any. */
  latest: Schema.optional(RunLatest),
  /**
   * An unfinished run not live in the answering server whose strategy that server cannot make (an
   * analyst type its build lacks, params it now refuses): why. It cannot resume it (another server
   * whose build can may be running it); held by no live process, \`runs.stop\` ends it (older servers: absent).
   */
  notResumable: Schema.optional(Schema.String),
  /**
   * An unfinished run a server's start-up left waiting for a slot (its owner had the most live runs
   * a user may have there): why, and when it goes on, as that server says it — whether the answering
   * server is that one or, on a shared database, any other (a server of an older build says it only of
   * runs waiting there). Not failed: it is resumed there as soon as one of its owner's runs ends, else
   * at the next start (older servers: absent).
   */
  waiting: Schema.optional(Schema.String),
  /** Its agents that crashed, those restarted most first (older servers: absent). */
  agentRestarts: Schema.optional(Schema.Array(AgentRestarts)),
  /** The change that put it in its trading state — who or what, when, why — when that is not `active` (older servers: absent). */
  tradingChange: Schema.optional(StateTransition),
  /** What its LLM agents used; null for a run without any (older servers: absent). */
  llm: Schema.optional(Schema.NullOr(LlmUsage)),
  /** A run stopped or failed before it completed: its figures up to where it stopped, or why none (absent for other runs, and from older servers). */
  upToStop: Schema.optional(UpToStop)
})
export type RunReport = typeof RunReport.Type

/** One event of a run as streamed: its sequence number, tag and canonical JSON line. */
export const StreamedEvent = Schema.Struct({ seq: Schema.Int, tag: Schema.String, json: Schema.String })

/** What verifying a run's audit chain found. */
export const AuditReport = Schema.Union(
  Schema.Struct({
    ok: Schema.Literal(true),
    run: Schema.String,
    entries: Schema.Int,
    head: Schema.String,
    /** What could not be checked (a run recorded before runs sealed their inputs), when something could not. */
    unchecked: Schema.optional(Schema.String),
    /** The entries of the run's control log (who paused, resumed, stopped, approved or rejected it, and when) verified with it (older servers: absent). */
    control: Schema.optional(Schema.Int),
    /** The run had not ended (its status then): the chain is verified up to the `entries` it had when the verification began. */
    unfinished: Schema.optional(Schema.Literal("running", "paused"))
  }),
  Schema.Struct({
    ok: Schema.Literal(false),
    run: Schema.String,
    position: Schema.Int,
    reason: Schema.String,
    /** `control` when the break is in the run's control log (`position` is that log's entry); absent for its events. */
    log: Schema.optional(Schema.Literal("control"))
  })
)
export type AuditReport = typeof AuditReport.Type

/** A run's decision at a (time, symbol), as `runs.compare` sends it. */
export const CompareDecision = Schema.Struct({
  /** The round it closed. */
  round: Schema.String,
  /** Its `DecisionMade` event's sequence number in its run. */
  seq: Schema.Int,
  action: Schema.String,
  confidence: Schema.Number
})
export type CompareDecision = typeof CompareDecision.Type

/** What `runs.compare` answers. */
export const CompareAnswer = Schema.Struct({
  a: RunInfo,
  b: RunInfo,
  /**
   * The first (time, symbol) the runs did not decide alike, or null. `ended` names the run that
   * had not got there (it ended earlier, or is running and has not got there yet): no
   * difference of decisions. `matched`: the decisions alike before it. `a` and `b`: what each
   * decided there, null for a run that recorded no decision there. All optional: an older
   * server sends none of them (and older clients pass over them).
   */
  firstDifference: Schema.NullOr(Schema.Struct({
    ts: Schema.Number,
    symbol: Schema.String,
    matched: Schema.optional(Schema.Int),
    ended: Schema.optional(Schema.Literal("a", "b")),
    a: Schema.optional(Schema.NullOr(CompareDecision)),
    b: Schema.optional(Schema.NullOr(CompareDecision))
  })),
  /**
   * What each run recorded of its decisions (`decisions` or `rounds`, as `RunReport.eventDetail`):
   * runs that recorded different details do not keep alike decision rows (older servers: absent).
   */
  eventDetail: Schema.optional(Schema.Struct({ a: Schema.String, b: Schema.String }))
})
export type CompareAnswer = typeof CompareAnswer.Type

/**
 * What an operator's trading-state command (`runs.trading`) did: the run's trading state as its
 * risk officer holds it now, and the change it made (cause `operator`, the caller as its actor).
 */
export const TradingChange = Schema.Struct({
  run: Schema.String,
  status: TradingStatus,
  transition: StateTransition
})
export type TradingChange = typeof TradingChange.Type

/**
 * The run's risk officer is down — crashed and not restarted yet, or the run halted over it until it
 * answers again — so nothing moved its trading state (fail closed): `reason` says which. Try again
 * once it is back (the run's events say when: `ActorRestarted`, then a `TradingStateChanged` of cause `system`).
 */
export class RiskOfficerDown extends Schema.TaggedError<RiskOfficerDown>()("RiskOfficerDown", {
  run: Schema.String,
  reason: Schema.String
}) {}

/** What `runs.trading` may answer instead of a `TradingChange` (also relayed between server processes, whole). */
export const TradingError = Schema.Union(RunNotFound, Conflict, InvalidRequest, IllegalTransition, RiskOfficerDown, Unavailable)
export type TradingError = typeof TradingError.Type

/** Why an operator moves a run's trading state: kept in its events and its control log. */
export const TradingReason = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500))

/** Why an operator stops, pauses or resumes a run: kept in its control log. */
export const OperatorReason = TradingReason.pipe(Schema.filter((text) => text.trim() !== "" || "must say why, not be blank"))

export class RunRpcs extends RpcGroup.make(
  // Conflict: the caller has the most live runs a user may have on the server (SWARM_MAX_LIVE_RUNS_PER_USER).
  Rpc.make("runs.start", { payload: StartRun, success: RunInfo, error: Schema.Union(StrategyNotFound, InvalidRequest, Conflict, Unavailable) }),
  // `reason`: why, kept in the run's control log (`runs show`, `runs watch`, the SSE stream's
  // `event: status`); a stop's also ends the run's row (`stopped by <caller>: <reason>`).
  // Servers before it refuse the field (a payload field the procedure does not take).
  Rpc.make("runs.stop", { payload: { run: Ref, reason: Schema.optional(OperatorReason) }, success: RunInfo, error: Schema.Union(RunNotFound, Conflict, Unavailable) }),
  Rpc.make("runs.pause", { payload: { run: Ref, reason: Schema.optional(OperatorReason) }, success: RunInfo, error: Schema.Union(RunNotFound, Conflict, Unavailable) }),
  Rpc.make("runs.resume", { payload: { run: Ref, reason: Schema.optional(OperatorReason) }, success: RunInfo, error: Schema.Union(RunNotFound, Conflict, Unavailable) }),
  Rpc.make("runs.get", { payload: { run: Ref }, success: RunInfo, error: Schema.Union(RunNotFound, Unavailable) }),
  /**
   * Move a live run's trading state, as its risk officer does (nautilus_trader's `active` →
   * `reducing` → `halted`): `halted` stops every order, `reducing` lets only risk-reducing ones
   * through, `active` lifts either — the only way a halt is lifted. Taken right before the run's
   * next bar and recorded there (its `TradingStateChanged`, cause `operator`), so a replay gives it
   * back at the same place; answered once taken. `reason` (default: `<state> by <caller>`) goes
   * into the event and the run's control log. `IllegalTransition`: the state machine refuses it
   * (`active` on an active run). `Conflict`: the run is not live (finished, or held by no live
   * server process). `RiskOfficerDown`: nothing moved, fail closed. A paused run holds at the bar
   * it takes next and takes the command there at once (it stays paused).
   * A run executing in another server process sharing the database is moved there (relayed), and
   * its answer is the caller's, whole.
   */
  Rpc.make("runs.trading", {
    payload: { run: Ref, state: TradingState, reason: Schema.optional(TradingReason) },
    success: TradingChange,
    error: TradingError
  }),
  /**
   * What `swarm runs show` prints of a run (`RunReport`): `runs.get`'s and its record, equity,
   * closed trades (a few from each end) and control log. Servers before it answer
   * `InvalidRequest` on field `tag` (older ones a defect, "Unknown request tag"): the CLI then
   * shows `runs.get`'s answer.
   */
  Rpc.make("runs.report", { payload: { run: Ref }, success: RunReport, error: Schema.Union(RunNotFound, Unavailable) }),
  /**
   * The caller's runs (an admin's: everyone's), newest first — by start time, then number, then
   * id — at most `limit` (default 50). `before`, a run (its id, or `<strategy>#<number>`), is a
   * cursor: only the runs after it in that order, so the next page is `before` the last run of
   * this one (its `id`). It combines with `strategy` and `status`, and need not match them. A
   * `before` that names no run of the caller's — or another user's — is the same `RunNotFound`,
   * with `field: "before"`; one that is no reference at all (empty, over 200 characters) is
   * `InvalidRequest` naming `before`.
   */
  Rpc.make("runs.list", {
    payload: { strategy: Schema.optional(Ref), status: Schema.optional(RunStatus), limit: Schema.optional(Limit), before: Schema.optional(Ref) },
    success: Schema.Array(RunInfo),
    error: Schema.Union(RunNotFound, Unavailable)
  }),
  /**
   * Two runs of the caller's side by side (another's is `RunNotFound`, as one that does not exist),
   * with what `swarm runs compare` prints of them on the local database: their records
   * (`RunInfo.record`), the event detail each recorded and the decisions where they first differ.
   */
  Rpc.make("runs.compare", {
    payload: { a: Ref, b: Ref },
    success: CompareAnswer,
    error: Schema.Union(RunNotFound, Unavailable)
  }),
  /**
   * Re-hash the run's event chain on the server (as `swarm audit verify` does locally): intact, with
   * its length and head; or the first position that does not verify, and why.
   */
  Rpc.make("runs.verify", { payload: { run: Ref }, success: AuditReport, error: Schema.Union(RunNotFound, Unavailable) }),
  /**
   * The run's events after `since`, then live until the run ends (no gap, no duplicate). The key is
   * checked again while it streams: `Unauthorized` ends it once the key is revoked or its user
   * disabled, `RunNotFound` (what `runs.get` answers then) once its user may no longer see the run —
   * an admin demoted, watching another's.
   */
  Rpc.make("runs.events", {
    payload: {
      run: Ref,
      since: Schema.optional(Seq),
      /** Only events of these types, picked on the server (none, or empty: every event). */
      types: Schema.optional(Schema.Array(EventType))
    },
    success: StreamedEvent,
    error: Schema.Union(RunNotFound, Unavailable, Unauthorized),
    stream: true
  }),
  /**
   * The run's status (`RunStatusNote`: running or paused, by whom, why, since when — no run event),
   * now, then each time it changes, as the SSE stream's `event: status` says it; the last is how it
   * ended (`completed`, `failed`, `stopped`), and the stream ends with it. The key is checked again
   * while it streams, as for `runs.events`. Servers before it: no such procedure.
   */
  Rpc.make("runs.status", {
    payload: { run: Ref },
    success: RunStatusNote,
    error: Schema.Union(RunNotFound, Unavailable, Unauthorized),
    stream: true
  })
).middleware(Authenticated) {}

// ---------------------------------------------------------------------------------------------
// Approvals, leaderboard, admin

/**
 * An order intent a live run holds for an operator (the strategy's approval policy `pause`): the
 * run waits at it until someone approves or rejects it, or until `expiresAt` (wall-clock epoch ms,
 * the strategy's `risk.approval.timeoutSeconds` after it was asked), when it is rejected as expired.
 */
export const PendingApproval = Schema.Struct({
  run: Schema.String,
  /** `<strategy>#<number>`. */
  ref: Schema.String,
  round: Schema.String,
  symbol: Schema.String,
  side: Schema.String,
  quantity: Schema.Number,
  /** The last price the decision knew: quantity × price is the notional at stake. */
  referencePrice: Schema.Number,
  reasons: Schema.Array(Schema.String),
  requestedAt: Schema.Number,
  expiresAt: Schema.Number,
  /** The name of the run's owner: an admin's list has every user's (servers before it: absent). */
  owner: Schema.optional(Schema.String)
})
export type PendingApproval = typeof PendingApproval.Type

export class ApprovalRpcs extends RpcGroup.make(
  // `RunNotFound` for a run that is none of the caller's (or does not exist), and for a
  // `<strategy>#<n>` naming several runs (`ambiguous`); approving one is `ApprovalNotFound`.
  Rpc.make("approvals.pending", {
    payload: { run: Schema.optional(Ref) },
    success: Schema.Array(PendingApproval),
    error: Schema.Union(RunNotFound, RunUnreadable, Unavailable)
  }),
  Rpc.make("approvals.approve", { payload: { run: Ref, round: Ref }, error: Schema.Union(ApprovalNotFound, RunNotFound, RunUnreadable, Conflict, Unavailable) }),
  Rpc.make("approvals.reject", {
    payload: { run: Ref, round: Ref, reason: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500)) },
    error: Schema.Union(ApprovalNotFound, RunNotFound, RunUnreadable, Conflict, Unavailable)
  })
).middleware(Authenticated) {}

export const LeaderboardMetric = Schema.Literal("totalReturn", "sharpe", "sortino", "calmar", "maxDrawdown", "winRate", "profitFactor")
export type LeaderboardMetric = typeof LeaderboardMetric.Type

/**
 * One strategy's best completed run by the metric asked for (docs/metrics.md defines each). The
 * board lists the strategies (the caller's; an admin's: everyone's) best first — the highest
 * value, the lowest for `maxDrawdown` — by these rules:
 *
 * - A figure that is null because it is unbounded in the good direction ranks above every finite
 *   value, with `value` null: `profitFactor` with at least one winning trade and no losing one,
 *   `sortino` with no day below the target while the equity moved (`annualVolatility` > 0),
 *   `calmar` with no drawdown and a positive CAGR. Of such runs the larger gross profit
 *   (`profitFactor`), total return (`sortino`) or CAGR (`calmar`) is first.
 * - A figure that is null for want of data is not ranked: `sharpe` with fewer than two days or
 *   no volatility, `profitFactor` with break-even trades only, `winRate` with no trade, `calmar`
 *   without a CAGR.
 * - A run that never traded (no closed trade, and no position held at any mark) is ranked on
 *   `totalReturn` only (its 0 is what doing nothing earned); its drawdown of 0 and its ratios
 *   measure no risk taken, so it is not ranked on the others.
 * - Ties: a strategy's earlier run first; between strategies, by strategy name, then owner.
 *
 * So `value` is null only for an unbounded figure: a listed run is always ranked.
 */
export const LeaderboardEntry = Schema.Struct({
  strategy: Schema.String,
  run: Schema.String,
  value: Schema.NullOr(Schema.Number),
  /** `<strategy>#<number>`, as `swarm runs show` takes it (servers before it: absent). */
  ref: Schema.optional(Schema.String),
  /** The name of the strategy's owner: in an admin's board, two users' strategies may share a name (servers before it: absent). */
  owner: Schema.optional(Schema.String),
  /**
   * The settings the run's figures were computed with (its strategy's `metrics`: risk-free rate,
   * periods a year): runs ranked by Sharpe or Sortino with different ones are not on the same
   * basis (servers before it: absent).
   */
  metricsConfig: Schema.optional(MetricsConfig)
})
export type LeaderboardEntry = typeof LeaderboardEntry.Type

export class LeaderboardRpcs extends RpcGroup.make(
  /**
   * The strategies ranked by `metric`, best first: `limit` of them (default 20) from rank
   * `offset + 1` (the next page: `offset` plus the page's length).
   */
  Rpc.make("leaderboard", {
    payload: { metric: LeaderboardMetric, limit: Schema.optional(Limit), offset: Schema.optional(Offset) },
    success: Schema.Array(LeaderboardEntry),
    error: Unavailable
  })
).middleware(Authenticated) {}

export const UserInfo = Schema.Struct({ id: Schema.String, name: Schema.String, role: Schema.String, disabled: Schema.Boolean })

/**
 * `admin.setUser`'s answer: the user as changed and, when it disabled them, their paper runs it
 * paused (`id`, `ref` as `strategy#number`) — none when none was running. Older servers: absent.
 */
export const ChangedUser = Schema.Struct({
  ...UserInfo.fields,
  paused: Schema.optional(Schema.Array(Schema.Struct({ id: Schema.String, ref: Schema.String })))
})

export class AdminRpcs extends RpcGroup.make(
  Rpc.make("admin.users", { success: Schema.Array(UserInfo), error: Schema.Union(Forbidden, Unavailable) }),
  Rpc.make("admin.createUser", {
    payload: { name: UserName, role: Schema.Literal("admin", "user") },
    success: Schema.Struct({ user: UserInfo, key: Schema.String }),
    error: Schema.Union(Forbidden, Conflict, InvalidRequest, Unavailable)
  }),
  Rpc.make("admin.issueKey", {
    payload: { user: Ref, label: Schema.optional(Schema.String.pipe(Schema.maxLength(100))) },
    success: Schema.Struct({ key: Schema.String }),
    error: Schema.Union(Forbidden, InvalidRequest, Unavailable)
  }),
  Rpc.make("admin.stats", {
    success: Schema.Struct({ users: Schema.Int, strategies: Schema.Int, runs: Schema.Int, liveRuns: Schema.Int, events: Schema.Int }),
    error: Schema.Union(Forbidden, Unavailable)
  }),
  /** A user's API keys (by the user's name or id), revoked ones too, oldest first: never a key or its hash. */
  Rpc.make("admin.keys", {
    payload: { user: Ref },
    success: Schema.Array(ApiKey),
    error: Schema.Union(Forbidden, InvalidRequest, Unavailable)
  }),
  /**
   * Revoke an API key by its id (`key_…`, as `admin.keys` lists them): it stops working within 30 s.
   * `Conflict` for the last unrevoked key of the last enabled admin who has one.
   */
  Rpc.make("admin.revokeKey", {
    payload: { key: Ref },
    success: ApiKey,
    error: Schema.Union(Forbidden, InvalidRequest, Conflict, Unavailable)
  }),
  /**
   * Change a user's role, or disable (their keys stop working within 30 s; what they own stays) or
   * enable them. The last enabled admin can be neither demoted nor disabled (`Conflict`). Disabling
   * pauses each of the user's running paper runs, as the admin, with `user <name> disabled` in its
   * control log, and says which (`paused`); their backtests finish. Enabling resumes none (the user
   * does). Disabling a disabled user again pauses what still runs.
   */
  Rpc.make("admin.setUser", {
    payload: { user: Ref, role: Schema.optional(Schema.Literal("admin", "user")), disabled: Schema.optional(Schema.Boolean) },
    success: ChangedUser,
    error: Schema.Union(Forbidden, Conflict, InvalidRequest, Unavailable)
  })
).middleware(Authenticated) {}

// ---------------------------------------------------------------------------------------------
// Webhooks: the owner's procedures (the endpoint itself and its alert schema: Webhook.ts)

/**
 * A strategy's webhook: its path (on this server's base URL) and, when just made or rotated, the
 * secret — shown this once (only its hash is kept) — else null; the prefix tells secrets apart.
 */
export const WebhookSecret = Schema.Struct({
  strategy: Schema.String,
  path: Schema.String,
  secret: Schema.NullOr(Schema.String),
  prefix: Schema.String,
  createdAt: Schema.DateFromString
})
export type WebhookSecret = typeof WebhookSecret.Type

export class WebhookRpcs extends RpcGroup.make(
  /** The strategy's webhook, its secret made on the first ask (and shown then only). */
  Rpc.make("webhooks.secret", { payload: { strategy: Ref }, success: WebhookSecret, error: Schema.Union(StrategyNotFound, Unavailable) }),
  /** A new secret; the old one stops working at once. */
  Rpc.make("webhooks.rotate", { payload: { strategy: Ref }, success: WebhookSecret, error: Schema.Union(StrategyNotFound, Unavailable) })
).middleware(Authenticated) {}

// ---------------------------------------------------------------------------------------------
// Chat with the system agent (issue 6; shapes in Chat.ts)

/**
 * `message` is bounded (1 to 4,000 characters, see `ChatQuestion`) by the handler, with that
 * schema, rather than here: @effect/rpc 0.76 turns a payload its schema refuses into a defect on
 * both sides (the client dies encoding it, the server answers a `Defect`), and bad input must be a
 * typed `InvalidRequest` naming the field.
 */
export class ChatRpcs extends RpcGroup.make(
  /**
   * Ask the system agent about a run: the answer as it is produced — `Asked` (the question,
   * recorded), `Token`s, `ToolUsed` for each tool it ran, then `Done` (recorded as a message) or
   * `Failed` (the model failed mid-answer: recorded as such). One session per run; questions to a
   * run are answered in order. The key is checked again while it streams: `Unauthorized` cuts it
   * short once the key is revoked or its user disabled, `RunNotFound` once its user may no longer
   * see the run (an admin demoted); the answer is still recorded. Cut off, it is read on with
   * `chat.follow` after the last chunk had (each chunk says its `question` and `index`).
   */
  Rpc.make("chat.send", {
    payload: { run: Ref, message: Schema.String },
    success: ChatChunk,
    error: Schema.Union(RunNotFound, InvalidRequest, Unavailable, Unauthorized),
    stream: true
  }),
  /**
   * Follow the run's chat: every answer's chunks as they come, whoever asked, until the client goes
   * away — as `GET /v1/runs/:id/chat` streams them (one answer for a run that does not exist or is
   * not the caller's, the key checked again while it streams, as `chat.send`). A stream cut off
   * (the connection dropped, or `Unavailable { behind }`: the client read it too slowly) resumes
   * with `after`, the position of the last chunk it had (`<question>.<index>`, each chunk's
   * `question` and `index`): the rest of that answer and every answer since, none missed and none
   * twice, as long as the server holds them (10 minutes after an answer ends), then live; `Missed`
   * first where it no longer does (`chat.history` has every answer). Without `after`: the answer in
   * progress from its start, then live. A malformed `after` is `InvalidRequest` naming it.
   */
  Rpc.make("chat.follow", {
    payload: { run: Ref, after: Schema.optional(Schema.String) },
    success: ChatFollowed,
    error: Schema.Union(RunNotFound, InvalidRequest, Unavailable, Unauthorized),
    stream: true
  }),
  /**
   * The run's chat: its latest `limit` messages (default 200), oldest first; with `before`, the
   * latest of those numbered below it (the page before one whose first message is `before`).
   */
  Rpc.make("chat.history", {
    payload: { run: Ref, limit: Schema.optional(Limit), before: Schema.optional(Schema.Int.pipe(Schema.positive())) },
    success: ChatHistory,
    error: Schema.Union(RunNotFound, Unavailable)
  }),
  /** Rules that would have kept the run out of its losing patterns, each with the id `chat.applyRule` takes. */
  Rpc.make("chat.suggestions", {
    payload: { run: Ref, minTrades: Schema.optional(Schema.Int.pipe(Schema.between(1, 1_000))) },
    success: RuleSuggestions,
    error: Schema.Union(RunNotFound, Unavailable)
  }),
  /** Add a suggested rule to the run's strategy: a new version (audited), which the next run uses. */
  Rpc.make("chat.applyRule", {
    payload: { run: Ref, suggestion: Ref },
    success: StrategyVersion,
    error: Schema.Union(RunNotFound, SuggestionNotFound, StrategyNotFound, InvalidRequest, Conflict, Unavailable)
  })
).middleware(Authenticated) {}

// ---------------------------------------------------------------------------------------------
// Traces (issue 7; shapes in Trace.ts)

export class TraceRpcs extends RpcGroup.make(
  /**
   * The traced rounds of a run that this server's in-process span store holds, and one of them
   * whole: `round` (a round id, a timestamp, or a trace id), else the latest. `trace` is null
   * when the store holds none that matches (rounds untraced, evicted, or run by another server).
   */
  Rpc.make("traces.get", { payload: { run: Ref, round: Schema.optional(Ref) }, success: RunTraces, error: Schema.Union(RunNotFound, Unavailable) })
).middleware(Authenticated) {}

/**
 * A payload that does not decode: every procedure can answer it, as `InvalidRequest` naming the
 * field (its path in the payload, `payload` for the whole) and the schema's reason. The server
 * checks each request's payload before @effect/rpc sees it (src/edge/RpcPayloads.ts); this
 * middleware does nothing else — it is how every procedure's error type, on both sides, says so.
 */
export class CheckedPayload extends RpcMiddleware.Tag<CheckedPayload>()("CheckedPayload", {
  failure: InvalidRequest
}) {}

/** Everything the server serves. */
export const SwarmRpcs = StrategyRpcs.merge(RuleRpcs, RunRpcs, ApprovalRpcs, LeaderboardRpcs, AdminRpcs, WebhookRpcs, ChatRpcs, TraceRpcs)
  .middleware(CheckedPayload)
