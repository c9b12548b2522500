/**
 * The server side of the RPC contract (schemas/Rpc.ts) for strategies, rules, runs, approvals,
 * the leaderboard and administration. Every handler acts for the `CurrentPrincipal` the `Authenticated` middleware
 * provides and only on what that principal owns (an admin sees every run); a store that fails
 * answers `Unavailable` with the reason, never a defect.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema, Stream } from "effect"
import type { Principal } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import { Forbidden } from "../../schemas/Auth.js"
import {
  AdminRpcs,
  ApprovalRpcs,
  Conflict,
  type ControlHistory,
  CurrentPrincipal,
  InvalidRequest,
  RuleRpcs,
  type RunInfo,
  type RunLatest,
  type RunReport,
  RunRpcs,
  type RunStatusNote,
  SHOWN_TRADES,
  LeaderboardRpcs,
  StrategyRpcs,
  Unavailable
} from "../../schemas/Rpc.js"
import { givenRuleProblem, Rule } from "../../schemas/Rule.js"
import { givenProblem, Strategy } from "../../schemas/Strategy.js"
import { invalidAgentOf } from "../../agents/registry.js"
import * as Tools from "../../agents/system/Tools.js"
import * as LatestCache from "../bus/LatestCache.js"
import * as ApiKeys from "../store/ApiKeys.js"
import * as Audit from "../store/Audit.js"
import * as Compare from "../store/Compare.js"
import * as ControlAudit from "../store/ControlAudit.js"
import * as Leaderboard from "../store/Leaderboard.js"
import * as RecordedLatest from "../store/RecordedLatest.js"
import * as Runs from "../store/Runs.js"
import * as Strategies from "../store/Strategies.js"
import * as Users from "../store/Users.js"
import * as Auth from "./Auth.js"
import * as Follow from "./Follow.js"
import { bearerKey } from "./RpcAuth.js"
import * as RpcFastPath from "./RpcFastPath.js"
import { invalidPayload } from "./RpcPayloads.js"
import { RunEvents } from "./RunEvents.js"
import { RunManager } from "./RunManager.js"
import * as RunStatusFeed from "./RunStatusFeed.js"
import { unavailable } from "./Unavailable.js"

const ownerFilter = (principal: Principal) => (principal.role === "admin" ? undefined : principal.userId)

export const runInfo = (run: Runs.RunSummary): RunInfo => ({
  id: run.id,
  ref: `${run.strategyName}#${run.number}`,
  strategy: run.strategyName,
  strategyVersion: run.strategyVersion,
  number: run.number,
  mode: run.mode,
  status: run.status,
  failure: run.failure,
  metrics: run.metrics,
  // A live run: its events so far (its row counts them only at its end).
  events: run.counts?.events ?? run.recordedEvents ?? run.liveEvents,
  checksum: run.checksum,
  startedAt: run.startedAt,
  finishedAt: run.finishedAt,
  ...(run.initialCash === null ? {} : { initialCash: run.initialCash }),
  ...(run.ownerName === undefined ? {} : { owner: run.ownerName }),
  record: {
    strategyId: run.strategyId,
    owner: run.owner,
    seed: run.seed,
    from: run.from,
    to: run.to,
    counts: run.counts,
    tradingState: run.tradingState
  }
})

/** A run's report (`runs.report`): equity without a snapshot, or with one that does not read, is null, as `runs show` shows it locally. */
export const runReport = (
  run: Runs.RunRecord,
  equity: { readonly points: number; readonly first: number | null; readonly last: number | null; readonly low: number | null; readonly high: number | null } | undefined,
  trades: Runs.TradeEnds,
  control: ControlHistory
): RunReport => ({
  id: run.id,
  ref: `${run.strategyName}#${run.number}`,
  strategy: run.strategyName,
  strategyId: run.strategyId,
  strategyVersion: run.strategyVersion,
  number: run.number,
  owner: run.owner,
  ...(run.ownerName === undefined ? {} : { ownerName: run.ownerName }),
  mode: run.mode,
  status: run.status,
  seed: run.seed,
  eventDetail: run.eventDetail,
  dataSource: run.dataSource,
  dataFingerprint: run.dataFingerprint,
  replayOf: run.replayOf,
  faults: run.faults !== null,
  failure: run.failure,
  metrics: run.metrics,
  counts: run.counts,
  tradingState: run.tradingState,
  from: run.from,
  to: run.to,
  startedAt: run.startedAt,
  finishedAt: run.finishedAt,
  checksum: run.checksum,
  chain: run.chain === null ? null : { count: run.chain.count, head: run.chain.hash },
  equity: equity === undefined || equity.first === null || equity.last === null || equity.low === null || equity.high === null
    ? null
    : { points: equity.points, first: equity.first as Money, last: equity.last as Money, low: equity.low as Money, high: equity.high as Money },
  trades: { count: trades.count, first: trades.first, last: trades.last },
  control
})

const decodeStrategy = Schema.decodeUnknown(Strategy)


const withoutRun = ({ run: _, ...values }: LatestCache.Latest) => values

/** The run id of an audit report's stream (`run:<id>`). */
const runOfStream = (stream: string) => stream.replace(/^(run|control):/, "")

export const StrategyHandlers = StrategyRpcs.toLayer(Effect.gen(function*() {
  const as = <A, E, R>(f: (principal: Principal) => Effect.Effect<A, E, R>) => Effect.flatMap(CurrentPrincipal, f)
  const version = (found: Strategies.Found) => ({
    id: found.id,
    name: found.name,
    version: found.version,
    strategy: found.strategy,
    ...(found.unchanged ? { unchanged: found.unchanged } : {})
  })
  /**
   * A strategy whose agents the registry cannot run, or that a strategy given now is refused for
   * (`givenProblem`: risk limits looser than a hard gate, a rule scoped to a symbol it does not
   * trade, …), is refused, naming the payload's field (`strategy.agents.0.type`,
   * `body.risk.limits.maxDrawdownPct`, `strategy.rules.0.allowSymbols.1`).
   */
  const runnable = (field: string, strategy: Strategy) => {
    const invalid = invalidAgentOf(strategy)
    if (invalid !== undefined) {
      return Effect.fail(new InvalidRequest({ field: `${field}.${invalid.field.replace(/\[(\d+)\]/g, ".$1")}`, reason: invalid.reason }))
    }
    const refused = givenProblem(strategy)
    return refused === undefined ? Effect.void : Effect.fail(new InvalidRequest({ field: [field, ...refused.path].join("."), reason: refused.reason }))
  }
  /**
   * A strategy's version as answered before, when the strategy read is the one it was made of (the
   * store keeps each body's decoding: Strategies.ts) and nothing else of it changed: one answer the
   * fast path encodes once (`RpcFastPath.unchanging`), not once per read.
   */
  const answers = new WeakMap<Strategy, ReturnType<typeof version>>()
  const kept = (found: Strategies.Found) => {
    const known = answers.get(found.strategy)
    if (known !== undefined && known.id === found.id && known.name === found.name && known.version === found.version && known.unchanged === found.unchanged) {
      return known
    }
    const answer = RpcFastPath.unchanging(version(found))
    answers.set(found.strategy, answer)
    return answer
  }
  return {
    "strategies.create": ({ strategy }) =>
      as((p) => Effect.zipRight(runnable("strategy", strategy), unavailable(Effect.map(Strategies.create(p.userId, strategy), version)))),
    "strategies.update": ({ body, ifVersion, strategy }) =>
      as((p) => Effect.zipRight(runnable("body", body), unavailable(Effect.map(Strategies.update(p.userId, strategy, body, ifVersion), version)))),
    "strategies.get": ({ strategy, version: v }) => as((p) => unavailable(Effect.map(Strategies.find(p.userId, strategy, v), kept))),
    "strategies.list": () =>
      as((p) => unavailable(Effect.map(Strategies.list(p.userId), (rows) => rows.map((r) => ({ ...r, id: r.id as string }))))),
    "strategies.delete": ({ strategy }) => as((p) => unavailable(Strategies.remove(p.userId, strategy)))
  }
}))

export const RuleHandlers = RuleRpcs.toLayer(Effect.gen(function*() {
  const as = <A, E, R>(f: (principal: Principal) => Effect.Effect<A, E, R>) => Effect.flatMap(CurrentPrincipal, f)
  /**
   * A new version with the rules changed; the whole strategy is decoded again, so its own checks
   * apply, and `check` then refuses what a rule given now may not be (`rules.put`'s rule scoped to a
   * symbol the strategy does not trade, named `rule.allowSymbols.0`). Only the rule given is
   * checked: one stored before the check came in does not block changes to the others.
   */
  const withRules = (
    principal: Principal,
    ref: string,
    change: (rules: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<unknown>, InvalidRequest>,
    check: (strategy: Strategy) => InvalidRequest | undefined = () => undefined
  ) =>
    unavailable(Effect.gen(function*() {
      // Read, changed and saved holding the strategy: rules put at once all land, each on the other's version.
      const saved = yield* Strategies.modify(principal.userId, ref, (current) => {
        const encoded = Schema.encodeSync(Strategy)(current.strategy)
        return Effect.flatMap(change(encoded.rules ?? []), (rules) =>
          decodeStrategy({ ...encoded, rules }).pipe(
            // As `strategies.create` names a strategy's problem (the strategy's own path: `rules` when
            // it would have more than it may), not the schema's whole tree under `rule`.
            Effect.mapError(invalidPayload),
            Effect.flatMap((strategy) => {
              const refused = check(strategy)
              return refused === undefined ? Effect.succeed(strategy) : Effect.fail(refused)
            })
          ))
      }).pipe(
        // The name does not change, so a rename conflict cannot happen; were it to, it is the request's.
        Effect.catchTag("Conflict", (conflict) => new InvalidRequest({ field: "strategy", reason: conflict.reason }))
      )
      return { id: saved.id, name: saved.name, version: saved.version, strategy: saved.strategy, ...(saved.unchanged ? { unchanged: saved.unchanged } : {}) }
    }))
  return {
    "rules.list": ({ strategy }) => as((p) => unavailable(Effect.map(Strategies.find(p.userId, strategy), (found) => found.strategy.rules))),
    "rules.put": ({ rule, strategy }) =>
      as((p) => {
        const encoded = Schema.encodeSync(Rule)(rule)
        return withRules(
          p,
          strategy,
          (rules) => Effect.succeed([...rules.filter((r) => (r as { id: string }).id !== rule.id), encoded]),
          (decoded) => {
            const problem = givenRuleProblem(rule, decoded.symbols)
            return problem === undefined ? undefined : new InvalidRequest({ field: ["rule", ...problem.path].join("."), reason: problem.reason })
          }
        )
      }),
    "rules.delete": ({ rule, strategy }) =>
      as((p) =>
        withRules(p, strategy, (rules) => {
          const kept = rules.filter((r) => (r as { id: string }).id !== rule)
          return kept.length === rules.length
            ? Effect.fail(new InvalidRequest({ field: "rule", reason: `the strategy has no rule ${rule}` }))
            : Effect.succeed(kept)
        }))
  }
}))

/**
 * What a stream reads when its client connects (`runs.events`, `runs.status`: the run, and its
 * status), under a permit of the followers' reads (`Follow.catchUpReads`), as the SSE route's
 * connections take one (Sse.ts `connectReads`): 500 clients reconnecting at once (a server
 * restarted, a proxy's blip) queued their reads for the pool ahead of the runs' own writes; gated,
 * they take their turns. The permit is let go before the stream starts: a follower's page reads
 * take their own, and none waits for a permit while it holds one.
 */
const connectRead = Follow.catchUpReads.withPermits(1)

/** Finished runs whose last recorded values `runs.get` keeps (a few KB each). */
const FINISHED_KEPT = 1_024

export const RunHandlers = RunRpcs.toLayer(Effect.gen(function*() {
  const manager = yield* RunManager
  const events = yield* RunEvents
  // The server's feed (Server.ts); without one (handlers built alone, in tests), their own.
  const found = yield* Effect.serviceOption(RunStatusFeed.RunStatusFeed)
  const statuses = Option.isSome(found) ? found.value : yield* RunStatusFeed.makeInProcess()
  const auth = yield* Auth.Authenticator
  const recheck = yield* Auth.Recheck
  // The latest values of runs, kept by whichever process executes them (in Redis when configured).
  const cache = Option.getOrUndefined(yield* Effect.serviceOption(LatestCache.LatestCache))
  const as = <A, E, R>(f: (principal: Principal) => Effect.Effect<A, E, R>) => Effect.flatMap(CurrentPrincipal, f)
  /**
   * What the database says a finished run ended with, by run and end (`finishedAt`): read once per
   * end. A run ends once, but for a `stopped` one resumed by name (`swarm resume`), which ends again
   * later with other values: kept by run alone, its first end's were given after its second.
   * Bounded: the oldest goes.
   */
  const finished = new Map<RunId, { readonly at: number; readonly latest: RunLatest | undefined }>()
  /**
   * Where `run` stands now: the cache's values (live, even from another server), else the database's.
   * What the database said of a finished run at this end (`finished`) is answered before the cache is
   * asked: kept only when the cache had nothing for the ended run, it is final (the run recorded its
   * events before its end), and the cache, in Redis, is a round trip at every read of such a run —
   * one older than the cache's day, one run without the run manager (`swarm backtest --store`).
   */
  const latestOf = (run: RunId, status: Runs.RunStatus, finishedAt: Date | null) =>
    Effect.gen(function*() {
      const endedAt = (status === "completed" || status === "failed" || status === "stopped") && finishedAt !== null ? finishedAt.getTime() : undefined
      const kept = finished.get(run)
      if (endedAt !== undefined && kept?.at === endedAt) return kept.latest
      const cached = cache === undefined ? undefined : yield* cache.get(run)
      if (cached !== undefined) return { ...withoutRun(cached), source: "cache" } satisfies RunLatest
      const recorded = yield* RecordedLatest.latest(run)
      const latest = recorded === undefined ? undefined : { ...withoutRun(recorded), source: "database" } satisfies RunLatest
      if (endedAt !== undefined) {
        finished.delete(run)
        if (finished.size >= FINISHED_KEPT) finished.delete(finished.keys().next().value!)
        finished.set(run, { at: endedAt, latest })
      }
      return latest
    })
  return {
    "runs.start": (request) => as((p) => Effect.map(manager.start(p, request), runInfo)),
    "runs.stop": ({ reason, run }) => as((p) => Effect.map(manager.stop(p, run, reason), runInfo)),
    "runs.pause": ({ reason, run }) => as((p) => Effect.map(manager.pause(p, run, reason), runInfo)),
    "runs.resume": ({ reason, run }) => as((p) => Effect.map(manager.resume(p, run, reason), runInfo)),
    "runs.trading": ({ reason, run, state }) => as((p) => manager.trading(p, run, state, reason)),
    // A summary is all `RunInfo` shows (the strategy body is neither read nor decoded), with where the run stands.
    "runs.get": ({ run }) =>
      as((p) =>
        unavailable(Effect.gen(function*() {
          const summary = yield* Runs.getSummary(run, ownerFilter(p))
          const latest = yield* latestOf(summary.id, summary.status, summary.finishedAt)
          // Most runs no operator touched: their row says so, and the log is not read.
          const control = summary.controlCount === 0 ? { count: 0, last: [] } : yield* ControlAudit.history(summary.id)
          // Stuck unfinished in no process here, for a reason that does not pass: said (`runs stop` ends it).
          const notResumable = yield* manager.notResumable(summary.id, summary.status)
          // Left waiting for a slot by a server's start-up (its owner at the cap; on a shared database,
          // any server's): why, and when it goes on.
          const waiting = yield* manager.waiting(summary.id, summary.status)
          return {
            ...runInfo(summary),
            ...(latest === undefined ? {} : { latest }),
            control,
            ...(notResumable === undefined ? {} : { notResumable }),
            ...(waiting === undefined ? {} : { waiting })
          }
        }))),
    // Everything `swarm runs show` prints, bounded whatever the run's size: a few trades from each end.
    "runs.report": ({ run }) =>
      as((p) =>
        unavailable(Effect.gen(function*() {
          const record = yield* Runs.get(run, ownerFilter(p))
          const equity = yield* Runs.equitySummary(record.id)
          const trades = yield* Runs.tradeEnds(record.id, SHOWN_TRADES)
          const control = record.controlCount === 0 ? { count: 0, last: [] } : yield* ControlAudit.history(record.id)
          const latest = yield* latestOf(record.id, record.status, record.finishedAt)
          const notResumable = yield* manager.notResumable(record.id, record.status)
          const waiting = yield* manager.waiting(record.id, record.status)
          const agentRestarts = yield* Runs.agentRestarts(record)
          const tradingChange = yield* Runs.tradingChange(record)
          const llm = Option.getOrNull(yield* Runs.llmUsage(record))
          // Stopped or failed before it completed: its figures up to there, as `runs show` makes them locally.
          const upToStop = yield* Tools.upToStop(record)
          return {
            ...runReport(record, Option.getOrUndefined(equity), trades, control),
            ...(latest === undefined ? {} : { latest }),
            ...(notResumable === undefined ? {} : { notResumable }),
            ...(waiting === undefined ? {} : { waiting }),
            agentRestarts,
            ...(tradingChange === null ? {} : { tradingChange }),
            llm,
            ...(upToStop === undefined ? {} : { upToStop })
          }
        }))),
    "runs.list": ({ before, limit, status, strategy }) =>
      as((p) => {
        const owner = ownerFilter(p)
        return unavailable(Effect.map(
          Runs.list({
            ...(owner === undefined ? {} : { owner }),
            ...(strategy === undefined ? {} : { strategy }),
            ...(status === undefined ? {} : { status: status as Runs.RunStatus }),
            ...(limit === undefined ? {} : { limit }),
            ...(before === undefined ? {} : { before })
          }),
          (rows) => rows.map(runInfo)
        )).pipe(
          // As `runs.get` says it of each: an unfinished run this server cannot resume (its row read
          // only for runs running or paused in no process here: few), or one a start-up left waiting
          // for a slot (this process's memory; on a shared database, for those alone, whether another
          // server took it over since, and for the others, whether another server said it waits there).
          Effect.flatMap((runs) =>
            Effect.forEach(runs, (run) =>
              Effect.gen(function*() {
                const notResumable = yield* manager.notResumable(run.id as RunId, run.status)
                const waiting = yield* manager.waiting(run.id as RunId, run.status)
                return {
                  ...run,
                  ...(notResumable === undefined ? {} : { notResumable }),
                  ...(waiting === undefined ? {} : { waiting })
                }
              }))
          ),
          // A run stopped or failed before it completed: its figures up to there, as `runs list` makes them locally.
          Effect.flatMap((runs) =>
            Effect.forEach(runs, (run) =>
              Effect.map(
                Tools.listedUpToStop({ id: run.id as RunId, metrics: run.metrics, status: run.status as Runs.RunStatus }),
                (upToStop) => upToStop === undefined ? run : { ...run, upToStop }
              ))
          )
        )
      }),
    "runs.compare": ({ a, b }) =>
      as((p) =>
        unavailable(Effect.gen(function*() {
          // The records, not summaries: their event detail is part of the answer, as `runs compare` shows it locally.
          const ra = yield* Runs.get(a, ownerFilter(p))
          const rb = yield* Runs.get(b, ownerFilter(p))
          const first = yield* Compare.firstDecisionDifference(ra.id, rb.id)
          return {
            a: runInfo(ra),
            b: runInfo(rb),
            firstDifference: Option.match(first, {
              onNone: () => null,
              onSome: (d) => ({ ts: d.ts, symbol: d.symbol, matched: d.matched, ...(d.ended === null ? {} : { ended: d.ended }), a: d.a, b: d.b })
            }),
            eventDetail: { a: ra.eventDetail, b: rb.eventDetail }
          }
        }))),
    "runs.verify": ({ run }) =>
      as((p) =>
        unavailable(Effect.map(Audit.verifyRun(run, ownerFilter(p)), (report) =>
          report.ok
            ? {
              ok: true as const,
              run: runOfStream(report.stream),
              entries: report.entries,
              head: report.head,
              ...(report.unchecked === undefined ? {} : { unchecked: report.unchecked }),
              control: report.control ?? 0,
              ...(report.unfinished === undefined ? {} : { unfinished: report.unfinished })
            }
            : {
              ok: false as const,
              run: runOfStream(report.stream),
              position: report.position,
              reason: report.reason,
              ...(report.stream.startsWith("control:") ? { log: "control" as const } : {})
            }))),
    "runs.events": ({ run, since, types }, { headers }) => {
      // The middleware let the request in with this key; a stream may outlast the key (revoked, its
      // user disabled) or the key's right to the run (an admin demoted): `RunNotFound`, as `runs.get` answers then.
      const key = bearerKey(headers["authorization"])
      return Stream.unwrapScoped(as((p) =>
        unavailable(Effect.map(connectRead(Runs.getSummary(run, ownerFilter(p))), (record) => {
          const stream = events.after(record.id as RunId, since ?? 0, types)
          return key === undefined ? stream : Stream.interruptWhen(stream, Auth.runRefusal(auth, key, recheck, { ref: run, owner: record.owner }))
        }))
      ))
    },
    "runs.status": ({ run }, { headers }) => {
      const key = bearerKey(headers["authorization"])
      return Stream.unwrapScoped(as((p) =>
        unavailable(Effect.gen(function*() {
          const { now, record } = yield* connectRead(Effect.gen(function*() {
            const record = yield* Runs.getSummary(run, ownerFilter(p))
            return { record, now: yield* statuses.now(record.id as RunId) }
          }))
          const id = record.id as RunId
          let told: RunStatusNote | undefined
          // Now, then each change (the feed's first is what it read last: said once), up to how it ended.
          const stream = Stream.concat(Stream.fromIterable(Option.toArray(now)), statuses.changes(id)).pipe(
            Stream.filter((note) => !RunStatusFeed.same(note, told)),
            Stream.tap((note) => Effect.sync(() => (told = note))),
            Stream.takeUntil((note) => note.status === "completed" || note.status === "failed" || note.status === "stopped")
          )
          return key === undefined ? stream : Stream.interruptWhen(stream, Auth.runRefusal(auth, key, recheck, { ref: run, owner: record.owner }))
        }))
      ))
    }
  }
}))

export const ApprovalHandlers = ApprovalRpcs.toLayer(Effect.gen(function*() {
  const manager = yield* RunManager
  return {
    "approvals.pending": ({ run }) => Effect.flatMap(CurrentPrincipal, (p) => manager.pending(p, run)),
    "approvals.approve": ({ round, run }) => Effect.flatMap(CurrentPrincipal, (p) => manager.approve(p, run, round)),
    "approvals.reject": ({ reason, round, run }) => Effect.flatMap(CurrentPrincipal, (p) => manager.reject(p, run, round, reason))
  }
}))

export const LeaderboardHandlers = LeaderboardRpcs.toLayer(Effect.gen(function*() {
  const context = yield* Effect.context<SqlClient.SqlClient>()
  return {
    // Each strategy's best completed run, ranked by the rules of schemas/Rpc.ts `LeaderboardEntry`.
    leaderboard: ({ limit, metric, offset }) =>
      Effect.flatMap(CurrentPrincipal, (p) => {
        const owner = ownerFilter(p)
        return unavailable(Leaderboard.best({ metric, limit: limit ?? 20, ...(offset === undefined ? {} : { offset }), ...(owner === undefined ? {} : { owner }) }))
      }).pipe(Effect.provide(context))
  }
}))

const userInfo = (user: { readonly id: string; readonly name: string; readonly role: string; readonly disabledAt: Date | null }) => ({
  id: user.id,
  name: user.name,
  role: user.role,
  disabled: user.disabledAt !== null
})

/** A user by name, else by id. */
const userByRef = (ref: string) => Users.getByName(ref).pipe(Effect.orElse(() => Users.get(ref)))

export const AdminHandlers = AdminRpcs.toLayer(Effect.gen(function*() {
  const context = yield* Effect.context<SqlClient.SqlClient>()
  const manager = yield* RunManager
  const auth = yield* Auth.Authenticator
  /** Admin procedures: anyone else is `Forbidden`. */
  const admin = <A, E, R>(f: (principal: Principal) => Effect.Effect<A, E, R>) =>
    Effect.flatMap(CurrentPrincipal, (p): Effect.Effect<A, E | Forbidden, R> =>
      p.role === "admin" ? f(p) : Effect.fail(new Forbidden({ reason: "an admin procedure" }))).pipe(Effect.provide(context))
  return {
    "admin.users": () => admin(() => unavailable(Effect.map(Users.list(), (users) => users.map(userInfo)))),
    "admin.createUser": ({ name, role }) =>
      admin(() =>
        unavailable(Effect.map(ApiKeys.createUserWithKey(name, role, "created by an admin"), ({ issued, user }) => ({
          user: userInfo(user),
          key: issued.key
        }))).pipe(
          Effect.catchTags({
            UserExists: (e) => new Conflict({ reason: `a user named "${e.name}" exists` }),
            InvalidUserName: (e) => new InvalidRequest({ field: "name", reason: e.reason }),
            InvalidKeyLabel: (e) => new Conflict({ reason: e.reason }),
            UserNotFound: (e) => new Conflict({ reason: `no user ${e.user}` })
          })
        )),
    "admin.issueKey": ({ label, user }) =>
      admin(() =>
        unavailable(Effect.gen(function*() {
          const found = yield* userByRef(user)
          const issued = yield* ApiKeys.issue(found.id, label ?? "")
          return { key: issued.key }
        })).pipe(
          Effect.catchTags({
            UserNotFound: () => new InvalidRequest({ field: "user", reason: `no user ${user}` }),
            InvalidKeyLabel: (e) => new InvalidRequest({ field: "label", reason: e.reason })
          })
        )),
    "admin.keys": ({ user }) =>
      admin(() =>
        unavailable(Effect.flatMap(userByRef(user), (found) => ApiKeys.list(found.id))).pipe(
          Effect.catchTag("UserNotFound", () => new InvalidRequest({ field: "user", reason: `no user ${user}` }))
        )),
    "admin.revokeKey": ({ key }) =>
      admin((principal) =>
        unavailable(ApiKeys.revoke(key, principal.userId)).pipe(
          // Committed: the key is refused from the next request on, here and (through Redis) elsewhere.
          Effect.tap((revoked) => auth.forgetUser(revoked.userId)),
          Effect.catchTags({
            ApiKeyNotFound: () => new InvalidRequest({ field: "key", reason: `no API key ${key} (admin.keys lists a user's keys by id)` }),
            LastAdmin: (e) => new Conflict({ reason: e.message })
          })
        )),
    "admin.setUser": ({ disabled, role, user }) =>
      admin((principal) =>
        unavailable(Effect.flatMap(userByRef(user), (found) => Users.change(found.id, { ...(role === undefined ? {} : { role }), ...(disabled === undefined ? {} : { disabled }) })))
          .pipe(
            // Committed: their keys answer as the user now is from the next request on, here and
            // (through Redis) elsewhere — refused, accepted again, with the new role.
            Effect.tap((changed) => auth.forgetUser(changed.id)),
            // Their keys stop working, and so does their trading: an admin disabling a compromised
            // account expects both. Enabling them resumes nothing: the user does.
            Effect.flatMap((changed) =>
              disabled === true
                ? Effect.map(manager.pauseOwnedBy(principal, changed.id, `user ${changed.name} disabled`), (paused) => ({
                  ...userInfo(changed),
                  paused: paused.map((p) => ({ id: p.run as string, ref: p.ref }))
                }))
                : Effect.succeed(userInfo(changed))
            ),
            Effect.catchTags({
              UserNotFound: () => new InvalidRequest({ field: "user", reason: `no user ${user}` }),
              LastAdmin: (e) => new Conflict({ reason: e.message })
            })
          )),
    "admin.stats": () =>
      admin(() =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const [row] = yield* sql<{ users: number; strategies: number; runs: number; events: number }>`
            select (select count(*)::int from users) as users,
                   (select count(*)::int from strategies where deleted_at is null) as strategies,
                   (select count(*)::int from runs) as runs,
                   (select count(*)::int from run_events) as events`
          return { users: row!.users, strategies: row!.strategies, runs: row!.runs, liveRuns: manager.live(), events: row!.events }
        }).pipe(Effect.mapError((error) => new Unavailable({ reason: error.message }))))
  }
}))
