/**
 * The RPC procedures of strategies, rules, runs and the leaderboard, through an in-memory client
 * (RpcTest: the same handlers and middleware a server mounts, without the transport): a run
 * started over RPC executes in the background and streams its events until it ends; a paper run
 * pauses and resumes; every procedure answers only its owner ("not yours" is "does not exist");
 * no key, a bad key, and bad payloads are typed errors; an event stream ends with `Unauthorized`
 * once its key is revoked, and an admin's of another's run with `RunNotFound` once the admin is
 * demoted. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Rpc, RpcTest } from "@effect/rpc"
import { Chunk, Duration, Effect, Either, Exit, Fiber, Layer, Option, Schema, Stream } from "effect"
import { Principal, Unauthorized } from "../../schemas/Auth.js"
import { AdminRpcs, Conflict, LeaderboardRpcs, RuleRpcs, RunNotFound, RunRpcs, StrategyNotFound, StrategyRpcs } from "../../schemas/Rpc.js"
import { Rule } from "../../schemas/Rule.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import { Authenticator, Recheck } from "../../src/edge/Auth.js"
import * as Follow from "../../src/edge/Follow.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { AdminHandlers, LeaderboardHandlers, RuleHandlers, RunHandlers, StrategyHandlers } from "../../src/edge/RpcHandlers.js"
import * as RunEvents from "../../src/edge/RunEvents.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as Users from "../../src/store/Users.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { symbolsOf } from "../store/fixtures/workload.js"
import { eventually, range, simulatedRun, stubAuth } from "./fixtures.js"

const Group = StrategyRpcs.merge(RuleRpcs, RunRpcs, LeaderboardRpcs, AdminRpcs)

const principals: Record<string, Principal> = {
  "key-alice": new Principal({ userId: "alice", name: "alice", role: "user" }),
  "key-alice-leaked": new Principal({ userId: "alice", name: "alice", role: "user" }),
  "key-bob": new Principal({ userId: "bob", name: "bob", role: "user" }),
  "key-root": new Principal({ userId: "root", name: "root", role: "admin" }),
  "key-ops": new Principal({ userId: "ops", name: "ops", role: "admin" })
}
/** Keys a test has revoked: they no longer authenticate. */
const revokedKeys = new Set<string>()
/** Keys whose admin a test has demoted: they stand for a plain user. */
const demotedKeys = new Set<string>()
const StubAuth = Layer.succeed(Authenticator, stubAuth((key) =>
  principals[key] === undefined || revokedKeys.has(key)
    ? Effect.fail(new Unauthorized({ reason: "unknown key" }))
    : Effect.succeed(demotedKeys.has(key) ? new Principal({ ...principals[key]!, role: "user" }) : principals[key]!)))

const strategyBody = (name: string, symbols = 2) =>
  Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: symbolsOf(symbols),
    agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }],
    sizing: { mode: "percent_of_equity", value: 10 }
  })

/** The store's users behind the stub principals (their strategies and runs reference them). */
const users = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const name of ["alice", "bob"]) yield* sql`insert into users (id, name, role) values (${name}, ${name}, 'user') on conflict do nothing`
  yield* sql`insert into users (id, name, role) values ('root', 'root', 'admin') on conflict do nothing`
}).pipe(Effect.orDie))

/** A client acting with `key`. */
const clientFor = (key: string) => Effect.provide(RpcTest.makeClient(Group, { flatten: true }), clientKey(key))

/** A stream of `run`'s events with `key`: its events as they come, and how it ended. */
const follow = (key: string, run: string) =>
  Effect.gen(function*() {
    const client = yield* clientFor(key)
    const got: Array<number> = []
    const fiber = yield* Effect.fork(Effect.either(Stream.runForEach(client("runs.events", { run }), (e) => Effect.sync(() => got.push(e.seq)))))
    return { got, fiber }
  })

for (const backend of backends) {
  const server = Layer.mergeAll(StrategyHandlers, RuleHandlers, RunHandlers, LeaderboardHandlers, AdminHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(Layer.mergeAll(RunManager.layer, RunEvents.layer)),
    // Streams check their key again every 20 ms, not 15 s.
    Layer.provideMerge(Layer.mergeAll(InProcessBus.layerTest(), StubAuth, Layer.succeed(Recheck, Duration.millis(20)), users)),
    Layer.provideMerge(backend.store)
  )
  layer(server, { timeout: startTimeout, excludeTestServices: true })(`rpc (${backend.name})`, (it) => {
    it.scoped("a strategy created and a run started over RPC: it runs in the background and its events stream until it ends", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        const created = yield* alice("strategies.create", { strategy: strategyBody("rpc crossover") })
        expect(created.version).toBe(1)
        const updated = yield* alice("strategies.update", { strategy: "rpc crossover", body: strategyBody("rpc crossover", 3) })
        expect(updated.version).toBe(2)
        // A body edited from version 1, sent while 2 is the latest: refused, nothing saved.
        const stale = yield* Effect.flip(alice("strategies.update", { strategy: "rpc crossover", body: strategyBody("rpc crossover", 4), ifVersion: 1 }))
        expect(stale._tag === "Conflict" && stale.reason).toBe(
          "strategy rpc crossover is at version 2 now, not 1: it changed since; show it again and redo the change"
        )
        expect(yield* alice("strategies.update", { strategy: "rpc crossover", body: strategyBody("rpc crossover", 3), ifVersion: 2 })).toMatchObject({
          version: 2,
          unchanged: true
        })
        const listed = yield* alice("strategies.list", undefined)
        expect(listed.map((s) => [s.name, s.latestVersion])).toEqual([["rpc crossover", 2]])

        const run = yield* alice("runs.start", { strategy: "rpc crossover", mode: "backtest", data: { _tag: "synthetic", bars: 400 } })
        expect(run.ref).toBe("rpc crossover#1")
        expect(run.strategyVersion).toBe(2)
        const events = yield* alice("runs.events", { run: run.id }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        // Every event once, in order, from RunStarted to RunCompleted.
        expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1))
        expect(events[0]!.tag).toBe("RunStarted")
        expect(events.at(-1)!.tag).toBe("RunCompleted")
        const done = yield* alice("runs.get", { run: run.ref })
        expect(done.status).toBe("completed")
        expect(done.events).toBe(events.length)
        // Resuming the stream from an event gives the rest, exactly.
        const rest = yield* alice("runs.events", { run: run.id, since: 10 }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(rest.map((e) => e.json)).toEqual(events.slice(10).map((e) => e.json))

        const board = yield* alice("leaderboard", { metric: "totalReturn" })
        expect(board.map((b) => b.run)).toEqual([run.id])
      }), { timeout: 120_000 })

    it.scoped("a paper run pauses and resumes; stop ends it; its events arrive live", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        yield* alice("strategies.create", { strategy: strategyBody("rpc paper") })
        // 300 daily bars at 86,400,000x: about 1 ms a bar of wall time.
        const run = yield* alice("runs.start", { strategy: "rpc paper", mode: "paper", data: { _tag: "synthetic", bars: 300 }, speed: 86_400_000 })
        expect(run.mode).toBe("paper")
        const paused = yield* alice("runs.pause", { run: run.id })
        expect(paused.status).toBe("paused")
        expect((yield* Effect.flip(alice("runs.pause", { run: run.id })))._tag).toBe("Conflict")
        // Paused, it stands still (unpaused, its 300 bars would be done in about 0.3 s).
        const lastSeq = alice("runs.events", { run: run.id }).pipe(
          Stream.interruptAfter("300 millis"),
          Stream.runLast,
          Effect.map((last) => (last._tag === "Some" ? last.value.seq : 0))
        )
        const before = yield* lastSeq
        yield* Effect.sleep("600 millis")
        expect(yield* lastSeq).toBe(before)
        expect((yield* alice("runs.get", { run: run.id })).status).toBe("paused")
        // Unfinished, it says the events it has recorded so far, in `runs.get` and `runs.list` alike
        // (before, null until it ended): read between two counts that agree (a batch may still land).
        const sql = yield* SqlClient.SqlClient
        const committed = Effect.map(sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${run.id}`, (rows) => rows[0]!.n)
        let soFar: { readonly n: number; readonly got: number | null; readonly listed: number | null } | undefined
        for (let i = 0; i < 50 && soFar === undefined; i++) {
          const n = yield* committed
          const got = (yield* alice("runs.get", { run: run.id })).events
          const listed = (yield* alice("runs.list", { strategy: "rpc paper" })).find((r) => r.id === run.id)!.events
          if ((yield* committed) === n) soFar = { n, got, listed }
        }
        expect(soFar!.n).toBeGreaterThan(0)
        expect(soFar).toEqual({ n: soFar!.n, got: soFar!.n, listed: soFar!.n })
        const resumed = yield* alice("runs.resume", { run: run.id })
        expect(resumed.status).toBe("running")
        const events = yield* alice("runs.events", { run: run.id }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(events.at(-1)!.tag).toBe("RunCompleted")
        expect(JSON.parse(events[0]!.json).mode).toBe("paper")
        expect((yield* alice("runs.get", { run: run.id })).status).toBe("completed")
        // A finished run cannot be stopped, paused or resumed.
        expect((yield* Effect.flip(alice("runs.stop", { run: run.id })))._tag).toBe("Conflict")

        const slow = yield* alice("runs.start", { strategy: "rpc paper", mode: "paper", data: { _tag: "synthetic", bars: 300 }, speed: 86_400 })
        // Stopped once it has recorded something (stopped at once, on a busy machine it had recorded nothing yet).
        yield* alice("runs.events", { run: slow.id }).pipe(Stream.take(1), Stream.runDrain)
        const stopped = yield* alice("runs.stop", { run: slow.id })
        expect(stopped.status).toBe("stopped")
        // Its row says who stopped it (runs show, the SSE end frame), not "interrupted", and how many events it recorded.
        expect(stopped.failure).toBe("stopped by alice")
        const [recorded] = yield* sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${slow.id}`
        expect(recorded!.n).toBeGreaterThan(0)
        expect(stopped.events).toBe(recorded!.n)
      }), { timeout: 120_000 })

    it.scoped("runs.start past a user's live runs (SWARM_MAX_LIVE_RUNS_PER_USER, 8 by default) is a Conflict naming the cap, over RPC", () =>
      Effect.gen(function*() {
        // An admin too: a run takes as much of the server whoever starts it.
        const root = yield* clientFor("key-root")
        yield* root("strategies.create", { strategy: strategyBody("rpc capped") })
        const start = root("runs.start", { strategy: "rpc capped", mode: "paper", data: { _tag: "synthetic", bars: 300 }, speed: 86_400 })
        const started = yield* Effect.all(Array.from({ length: 8 }, () => start))
        yield* Effect.addFinalizer(() => Effect.forEach(started, (run) => Effect.ignore(root("runs.stop", { run: run.id }))))
        expect(yield* Effect.flip(start)).toMatchObject({
          _tag: "Conflict",
          reason: expect.stringMatching(/^you have 8 live runs \(running or paused\), the most a user may have on this server \(SWARM_MAX_LIVE_RUNS_PER_USER=8\)/)
        })
        expect(yield* root("runs.list", { strategy: "rpc capped" })).toHaveLength(8)
        // On the wire too (this test's client does not encode): a refusal the procedure did not declare was a defect there.
        const exit = Rpc.exitSchema(RunRpcs.requests.get("runs.start")!)
        expect(Schema.encodeSync(exit)(Exit.fail(new Conflict({ reason: "full" })))).toMatchObject({ _tag: "Failure" })
        yield* root("runs.stop", { run: started[0]!.id })
        const again = yield* start
        yield* root("runs.stop", { run: again.id })
      }), { timeout: 120_000 })

    it.scoped("pause, resume and stop sent at once: each answers the state it made, and paused means standing still", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        yield* alice("strategies.create", { strategy: strategyBody("rpc raced") })
        // 5,000 daily bars at about 2 ms each: running for as long as the test needs it.
        const run = yield* alice("runs.start", { strategy: "rpc raced", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 43_200_000 })
        const lastSeq = alice("runs.events", { run: run.id }).pipe(
          Stream.interruptAfter("200 millis"),
          Stream.runLast,
          Effect.map((last) => (last._tag === "Some" ? last.value.seq : 0))
        )
        for (let round = 0; round < 4; round++) {
          // A resume racing a pause left the run marked paused with its gate open: it kept trading,
          // and the next pause was refused as "paused already".
          const answers = yield* Effect.all(
            [0, 1, 2, 3, 4].map((i) => Effect.either(i % 2 === 0 ? alice("runs.pause", { run: run.id }) : alice("runs.resume", { run: run.id }))),
            { concurrency: "unbounded" }
          )
          for (const [i, answer] of answers.entries()) {
            if (answer._tag === "Right") expect(answer.right.status, `round ${round}, call ${i}`).toBe(i % 2 === 0 ? "paused" : "running")
            else expect(answer.left._tag).toBe("Conflict")
          }
          const status = (yield* alice("runs.get", { run: run.id })).status
          if (status === "paused") {
            const before = yield* lastSeq
            yield* Effect.sleep("300 millis")
            expect(yield* lastSeq, `round ${round}: paused, and still going`).toBe(before)
            yield* alice("runs.resume", { run: run.id })
          } else {
            expect(status).toBe("running")
          }
        }
        const [stopped, paused] = yield* Effect.all([
          Effect.either(alice("runs.stop", { run: run.id })),
          Effect.either(alice("runs.pause", { run: run.id }))
        ], { concurrency: "unbounded" })
        expect(stopped._tag === "Right" && stopped.right.status).toBe("stopped")
        // After the stop, a pause is refused (it answered OK, status stopped); before it, it paused.
        if (paused._tag === "Right") expect(paused.right.status).toBe("paused")
        else expect(paused.left._tag).toBe("Conflict")
      }), { timeout: 120_000 })

    it.scoped("isolation: another user's strategies and runs do not exist for them", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        const bob = yield* clientFor("key-bob")
        yield* alice("strategies.create", { strategy: strategyBody("alice only") })
        const run = yield* alice("runs.start", { strategy: "alice only", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
        yield* alice("runs.events", { run: run.id }).pipe(Stream.runDrain)

        // An admin sees the run, with the cash it started with, though not its owner's strategy:
        // what a return is measured from (runs watch), in micros as its metrics have it.
        const root = yield* clientFor("key-root")
        const seen = yield* root("runs.get", { run: run.id })
        expect(seen.initialCash).toBe(100_000_000_000)
        expect(seen.initialCash).toBe(seen.metrics?.initialCash)
        expect((yield* alice("runs.list", {})).find((r) => r.id === run.id)?.initialCash).toBe(100_000_000_000)
        expect((yield* Effect.flip(root("strategies.get", { strategy: "alice only" })))._tag).toBe("StrategyNotFound")

        // The same answer as for a run that does not exist.
        expect(yield* Effect.flip(bob("runs.get", { run: "run_doesnotexist" }))).toEqual(new RunNotFound({ run: "run_doesnotexist" }))
        expect(yield* Effect.flip(bob("runs.get", { run: run.id }))).toEqual(new RunNotFound({ run: run.id }))
        // Its report too (`runs show`): another's run, by id or reference, is answered as a missing one, field for field.
        expect(yield* Effect.flip(bob("runs.report", { run: run.id }))).toEqual(new RunNotFound({ run: run.id }))
        expect(yield* Effect.flip(bob("runs.report", { run: "run_doesnotexist" }))).toEqual(new RunNotFound({ run: "run_doesnotexist" }))
        expect(yield* Effect.flip(bob("runs.report", { run: run.ref }))).toEqual(new RunNotFound({ run: run.ref }))
        expect(yield* Effect.flip(bob("runs.report", { run: "alice only#2" }))).toEqual(new RunNotFound({ run: "alice only#2" }))
        // Its owner and an admin read it: the run's record, equity and trades, a few from each end.
        const report = yield* alice("runs.report", { run: run.ref })
        expect(yield* root("runs.report", { run: run.id })).toEqual(report)
        expect(report).toMatchObject({ id: run.id, ref: run.ref, owner: "alice", ownerName: "alice", status: "completed", faults: false, control: { count: 0, last: [] } })
        expect(report.trades.first.length).toBe(Math.min(3, report.trades.count))
        expect(report.trades.first.length + report.trades.last.length).toBe(Math.min(6, report.trades.count))
        expect(report.checksum).toBe(seen.checksum)
        for (const attempt of [
          bob("runs.stop", { run: run.id }),
          bob("runs.pause", { run: run.ref }),
          bob("runs.resume", { run: run.id }),
          bob("runs.verify", { run: run.id }),
          bob("runs.compare", { a: run.id, b: run.id }),
          Stream.runDrain(bob("runs.events", { run: run.id }))
        ]) {
          expect((yield* Effect.flip(attempt as Effect.Effect<unknown, { readonly _tag: string }>))._tag).toBe("RunNotFound")
        }
        const rule = Schema.decodeUnknownSync(Rule)({ id: "cap", name: "cap", kind: "max_orders_per_day", params: { count: 3 } })
        for (const attempt of [
          bob("strategies.get", { strategy: "alice only" }),
          bob("strategies.update", { strategy: "alice only", body: strategyBody("alice only") }),
          bob("strategies.delete", { strategy: "alice only" }),
          bob("rules.list", { strategy: "alice only" }),
          bob("rules.put", { strategy: "alice only", rule }),
          bob("rules.delete", { strategy: "alice only", rule: rule.id })
        ]) {
          expect((yield* Effect.flip(attempt as Effect.Effect<unknown, { readonly _tag: string }>))._tag).toBe("StrategyNotFound")
        }
        // A version the strategy does not have is said so to its owner; to anyone else it is still no strategy at all.
        expect(yield* Effect.flip(alice("strategies.get", { strategy: "alice only", version: 99 })))
          .toEqual(new StrategyNotFound({ strategy: "alice only", version: 99, latestVersion: 1 }))
        expect((yield* Effect.flip(alice("runs.start", { strategy: "alice only", version: 99, mode: "backtest", data: { _tag: "sample" } }))).message)
          .toBe("strategy alice only has no version 99 (its versions are 1 to 1)")
        expect(yield* Effect.flip(bob("strategies.get", { strategy: "alice only", version: 99 }))).toEqual(new StrategyNotFound({ strategy: "alice only" }))
        // None of it touched alice's strategy.
        expect((yield* alice("strategies.get", { strategy: "alice only" })).version).toBe(1)
        const verified = yield* alice("runs.verify", { run: run.id })
        expect(verified.ok && verified.unchecked).toBeUndefined()
        // A run recorded before runs sealed their inputs: the server says what it could not check, as the local verify does.
        const sql = yield* SqlClient.SqlClient
        yield* sql`update runs set inputs_seal = null where id = ${run.id}`.pipe(Effect.orDie)
        expect(yield* alice("runs.verify", { run: run.id })).toMatchObject({ ok: true, unchecked: expect.stringMatching(/^the run was recorded before runs sealed their inputs: /) })
        expect((yield* Effect.flip(bob("runs.start", { strategy: "alice only", mode: "backtest", data: { _tag: "sample" } })))._tag)
          .toBe("StrategyNotFound")
        expect((yield* bob("runs.list", {})).map((r) => r.id)).not.toContain(run.id)
        expect(yield* bob("strategies.list", undefined)).toEqual([])
        expect((yield* bob("leaderboard", { metric: "sharpe" })).map((b) => b.run)).not.toContain(run.id)
      }), { timeout: 120_000 })

    it.scoped("runs.list pages with `before`: the pages make the whole list with filters, ties included; another's run as a cursor is no run", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        const bob = yield* clientFor("key-bob")
        const root = yield* clientFor("key-root")
        yield* alice("strategies.create", { strategy: strategyBody("rpc paged") })
        const started: Array<string> = []
        for (let i = 0; i < 5; i++) {
          const run = yield* alice("runs.start", { strategy: "rpc paged", mode: "backtest", data: { _tag: "synthetic", bars: 30 } })
          yield* alice("runs.events", { run: run.id }).pipe(Stream.runDrain)
          started.push(run.id)
        }
        // Three of them in one instant, one of those failed since: status filters and ties at once.
        const sql = yield* SqlClient.SqlClient
        yield* sql`update runs set started_at = '2026-02-01 12:00:00.5+00' where id in ${sql.in(started.slice(1, 4))}`.pipe(Effect.orDie)
        yield* sql`update runs set status = 'failed' where id = ${started[2]!}`.pipe(Effect.orDie)
        for (const filter of [{ strategy: "rpc paged" }, { strategy: "rpc paged", status: "completed" as const }]) {
          const whole = (yield* alice("runs.list", filter)).map((r) => r.id)
          expect(whole).toHaveLength(filter.status === undefined ? 5 : 4)
          const paged: Array<string> = []
          let page = yield* alice("runs.list", { ...filter, limit: 2 })
          while (page.length > 0) {
            paged.push(...page.map((r) => r.id))
            page = yield* alice("runs.list", { ...filter, limit: 2, before: page[page.length - 1]!.id })
          }
          expect(paged).toEqual(whole)
        }
        // By `<strategy>#<number>` as by id.
        expect(yield* alice("runs.list", { strategy: "rpc paged", before: "rpc paged#5" }))
          .toEqual(yield* alice("runs.list", { strategy: "rpc paged", before: started[4]! }))

        // Another's run as a cursor: the same answer as a run that does not exist, naming the field.
        const notYours = yield* Effect.flip(bob("runs.list", { before: started[0]! }))
        expect(notYours).toEqual(new RunNotFound({ run: started[0]!, field: "before" }))
        expect(yield* Effect.flip(bob("runs.list", { before: "run_doesnotexist" }))).toEqual(new RunNotFound({ run: "run_doesnotexist", field: "before" }))
        expect(yield* Effect.flip(bob("runs.list", { before: "rpc paged#1", status: "completed" }))).toEqual(new RunNotFound({ run: "rpc paged#1", field: "before" }))
        // An admin's list has everyone's runs: theirs are cursors too.
        const all = (yield* root("runs.list", { strategy: "rpc paged" })).map((r) => r.id)
        expect((yield* root("runs.list", { strategy: "rpc paged", before: all[1]! })).map((r) => r.id)).toEqual(all.slice(2))
        // On the wire too: runs.list declares RunNotFound (a refusal it did not declare was a defect there).
        const exit = Rpc.exitSchema(RunRpcs.requests.get("runs.list")!)
        expect(Schema.encodeSync(exit)(Exit.fail(new RunNotFound({ run: started[0]!, field: "before" })))).toMatchObject({ _tag: "Failure" })
      }), { timeout: 120_000 })

    it.scoped("no key or a bad key is Unauthorized; rules and bad payloads are typed errors", () =>
      Effect.gen(function*() {
        const stranger = yield* clientFor("key-nobody")
        expect((yield* Effect.flip(stranger("strategies.list", undefined)))._tag).toBe("Unauthorized")
        const alice = yield* clientFor("key-alice")
        yield* alice("strategies.create", { strategy: strategyBody("ruled") })
        expect((yield* Effect.flip(alice("strategies.create", { strategy: strategyBody("ruled") })))._tag).toBe("Conflict")
        const withRule = yield* alice("rules.put", {
          strategy: "ruled",
          rule: Schema.decodeUnknownSync(Rule)({ id: "cap", name: "cap", kind: "max_orders_per_day", params: { count: 3 } })
        })
        expect(withRule.version).toBe(2)
        expect((yield* alice("rules.list", { strategy: "ruled" })).map((r) => r.id)).toEqual(["cap"])
        expect((yield* Effect.flip(alice("rules.delete", { strategy: "ruled", rule: "nope" as never })))._tag).toBe("InvalidRequest")
        expect((yield* alice("rules.delete", { strategy: "ruled", rule: "cap" as never })).version).toBe(3)
      }), { timeout: 120_000 })

    it.scoped("a strategy name with an invisible format character, or not in NFC form, is refused; one stored before still resolves", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        yield* alice("strategies.create", { strategy: strategyBody("lookalike") })
        // It listed as a second `lookalike`, and each command resolved the one whose bytes it was given.
        expect(yield* Effect.flip(alice("strategies.create", { strategy: strategyBody("look\u200balike") }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "strategy.name",
          reason: "no invisible format characters (U+200B at position 5): the name would look the same as one without it"
        })
        expect(yield* Effect.flip(alice("strategies.create", { strategy: strategyBody("looka\u0301like") }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "strategy.name",
          reason: expect.stringMatching(/^not in Unicode NFC form: /)
        })
        expect(yield* Effect.flip(alice("strategies.update", { strategy: "lookalike", body: strategyBody("lookalike\u2060") }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "body.name",
          reason: expect.stringMatching(/^no invisible format characters \(U\+2060 at position 10\)/)
        })
        expect((yield* alice("strategies.list", undefined)).filter((s) => s.name.startsWith("look")).map((s) => s.name)).toEqual(["lookalike"])
        // Stored before the check: it loads and resolves by its own name, apart from the other.
        const stored = yield* Strategies.create("alice", strategyBody("look\u200balike"))
        expect((yield* alice("strategies.get", { strategy: "look\u200balike" })).id).toBe(stored.id)
        expect((yield* alice("strategies.get", { strategy: "lookalike" })).id).not.toBe(stored.id)
      }), { timeout: 120_000 })

    it.scoped("concurrent changes of strategies: every rule put at once lands, one create per name wins, a rename race forks nothing, a failed save renames nothing", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        const created = yield* alice("strategies.create", { strategy: strategyBody("busy") })
        const ruleOf = (id: string) => Schema.decodeUnknownSync(Rule)({ id, name: id, kind: "max_orders_per_day", params: { count: 3 } })
        // Before, each put read the same version and the last write won: two of six rules were left.
        const ids = ["r1", "r2", "r3", "r4", "r5", "r6"]
        const puts = yield* Effect.all(ids.map((id) => alice("rules.put", { strategy: "busy", rule: ruleOf(id) })), { concurrency: "unbounded" })
        expect(puts.map((p) => p.version).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7])
        expect((yield* alice("rules.list", { strategy: "busy" })).map((r) => r.id).sort()).toEqual(ids)
        const deletes = yield* Effect.all(ids.slice(0, 3).map((id) => alice("rules.delete", { strategy: "busy", rule: id as never })), { concurrency: "unbounded" })
        expect(deletes.map((d) => d.version).sort((a, b) => a - b)).toEqual([8, 9, 10])
        expect((yield* alice("rules.list", { strategy: "busy" })).map((r) => r.id).sort()).toEqual(ids.slice(3))

        // Twelve creates of one name at once: one strategy, one version, eleven Conflicts.
        const creates = yield* Effect.all(
          Array.from({ length: 12 }, (_, i) => Effect.either(alice("strategies.create", { strategy: { ...strategyBody("contested"), description: `try ${i}` } }))),
          { concurrency: "unbounded" }
        )
        expect(creates.filter((c) => c._tag === "Right").map((c) => c._tag === "Right" && c.right.version)).toEqual([1])
        expect(creates.filter((c) => c._tag === "Left").map((c) => c._tag === "Left" && c.left._tag)).toEqual(Array(11).fill("Conflict"))
        expect((yield* alice("strategies.list", undefined)).filter((s) => s.name === "contested").map((s) => s.latestVersion)).toEqual([1])

        // A rename and an update under the old name at once: both versions of the one strategy, never a new one.
        for (let round = 0; round < 5; round++) {
          const name = `fork ${round}`
          const original = yield* alice("strategies.create", { strategy: strategyBody(name) })
          const both = yield* Effect.all([
            Effect.either(alice("strategies.update", { strategy: original.id, body: strategyBody(`${name} renamed`) })),
            Effect.either(alice("strategies.update", { strategy: original.id, body: strategyBody(name, 3) }))
          ], { concurrency: "unbounded" })
          for (const answer of both) if (answer._tag === "Right") expect(answer.right.id).toBe(original.id)
          const named = (yield* alice("strategies.list", undefined)).filter((s) => s.name.startsWith(name))
          expect(named.map((s) => s.id)).toEqual([original.id])
        }

        // A save the database refuses (U+0000: the edge refuses it first; the store must not half-save it) leaves the name.
        const refused = yield* Effect.either(Strategies.update("alice", created.id, { ...strategyBody("busy renamed"), description: "a\u0000b" }))
        expect(refused._tag).toBe("Left")
        expect((yield* alice("strategies.get", { strategy: created.id })).name).toBe("busy")
        expect((yield* alice("strategies.list", undefined)).map((s) => s.name)).not.toContain("busy renamed")
      }), { timeout: 120_000 })

    it.scoped("starting a run never changes a strategy's versions, and a delete raced with a start never brings the strategy back", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        const bars = { _tag: "synthetic", bars: 30 } as const
        // A run of an older version is a run of that version: it was saved as a new latest (v3, v1's body), undoing v2.
        const v1 = yield* alice("strategies.create", { strategy: strategyBody("versioned") })
        const v2 = yield* alice("strategies.update", { strategy: "versioned", body: strategyBody("versioned", 3) })
        const old = yield* alice("runs.start", { strategy: "versioned", version: 1, mode: "backtest", data: bars })
        expect([old.strategyVersion, v2.version]).toEqual([v1.version, 2])
        const latest = yield* alice("strategies.get", { strategy: "versioned" })
        expect([latest.version, latest.strategy.symbols.length]).toEqual([2, 3])
        yield* alice("runs.events", { run: old.id }).pipe(Stream.runDrain)

        // A delete and a start at once: the delete wins (the start finds no strategy) or the run does
        // (the delete finds it unfinished); never both, and never a strategy of the name under a new id.
        for (let round = 0; round < 6; round++) {
          const name = `doomed ${round}`
          const created = yield* alice("strategies.create", { strategy: strategyBody(name) })
          const [deleted, started] = yield* Effect.all([
            Effect.either(alice("strategies.delete", { strategy: created.id })),
            Effect.either(alice("runs.start", { strategy: created.id, mode: "backtest", data: bars }))
          ], { concurrency: "unbounded" })
          const listed = (yield* alice("strategies.list", undefined)).filter((s) => s.name === name)
          if (deleted._tag === "Right") {
            expect(started._tag === "Left" && started.left._tag, `round ${round}`).toBe("StrategyNotFound")
            expect(listed).toEqual([])
          } else {
            expect(deleted.left._tag, `round ${round}`).toBe("Conflict")
            expect(started._tag, `round ${round}`).toBe("Right")
            expect(listed.map((s) => s.id)).toEqual([created.id])
            if (started._tag === "Right") yield* alice("runs.events", { run: started.right.id }).pipe(Stream.runDrain)
          }
        }
      }), { timeout: 120_000 })

    it.scoped("a strategy whose agents cannot run is refused when saved, naming the agent's field; a run of a stored one says why, no stack", () =>
      Effect.gen(function*() {
        const alice = yield* clientFor("key-alice")
        const withAgents = (name: string, agents: ReadonlyArray<unknown>) =>
          Schema.decodeUnknownSync(Strategy)({ name, symbols: symbolsOf(2), agents, sizing: { mode: "percent_of_equity", value: 10 } })
        const refusals: ReadonlyArray<readonly [agents: ReadonlyArray<unknown>, field: string, reason: RegExp]> = [
          [[{ type: "nope" }], "agents.0.type", /unknown agent type "nope"; the registered ones are sma_crossover, /],
          [[{ type: "sma_crossover" }, { type: "rsi_reversion", params: { period: "x" } }], "agents.1.params.period", /./],
          [[{ type: "sma_crossover", params: { fast: 5, slow: 20, extra: 1 } }], "agents.0.params.extra", /./],
          [[{ type: "sma_crossover", params: { fast: 1, slow: 1e12 } }], "agents.0.params.slow", /^slow must be at most 10000 bars$/]
        ]
        for (const [agents, field, reason] of refusals) {
          const created = yield* Effect.flip(alice("strategies.create", { strategy: withAgents("unrunnable", agents) }))
          expect(created, JSON.stringify(agents)).toMatchObject({ _tag: "InvalidRequest", field: `strategy.${field}`, reason: expect.stringMatching(reason) })
        }
        expect((yield* alice("strategies.list", undefined)).map((s) => s.name)).not.toContain("unrunnable")
        yield* alice("strategies.create", { strategy: withAgents("runnable", [{ type: "sma_crossover" }]) })
        const updated = yield* Effect.flip(alice("strategies.update", { strategy: "runnable", body: withAgents("runnable", [{ type: "nope" }]) }))
        expect(updated).toMatchObject({ _tag: "InvalidRequest", field: "body.agents.0.type" })
        expect((yield* alice("strategies.get", { strategy: "runnable" })).version).toBe(1)

        // Limits looser than a hard gate: refused, naming the limit, rather than clamped unseen.
        const limited = (name: string, limits: object) =>
          Schema.decodeUnknownSync(Strategy)({ name, symbols: symbolsOf(2), agents: [{ type: "sma_crossover" }], risk: { limits } })
        const loose = yield* Effect.flip(alice("strategies.create", { strategy: limited("loose", { maxDrawdownPct: 40 }) }))
        expect(loose).toMatchObject({
          _tag: "InvalidRequest",
          field: "strategy.risk.limits.maxDrawdownPct",
          reason: "40 is looser than the hard gate's 25 %: a strategy may tighten a gate, never loosen it (give at most 25, or leave it out)"
        })
        const thin = yield* Effect.flip(alice("strategies.update", { strategy: "runnable", body: limited("runnable", { minCashReservePct: 5 }) }))
        expect(thin).toMatchObject({ _tag: "InvalidRequest", field: "body.risk.limits.minCashReservePct" })
        expect((yield* alice("strategies.update", { strategy: "runnable", body: limited("runnable", { maxDrawdownPct: 25, minCashReservePct: 15 }) })).version).toBe(2)

        // Look-back windows too large for the symbols: refused when saved, not an out-of-memory server later.
        const huge = Schema.decodeUnknownSync(Strategy)({
          name: "huge",
          symbols: Array.from({ length: 1_000 }, (_, i) => `H${i}`),
          agents: [1, 2].map((n) => ({ type: "bollinger_breakout", name: `bands-${n}`, params: { period: 10_000 } }))
        })
        expect(yield* Effect.flip(alice("strategies.create", { strategy: huge }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "strategy.agents",
          reason: expect.stringMatching(/^the analysts' look-back windows would take 610 MiB over 1000 symbols \(/)
        })

        // More initial cash than the books have room for: refused at the edge (a stored strategy keeps decoding).
        const rich = Schema.decodeUnknownSync(Strategy)({ name: "rich", symbols: symbolsOf(2), agents: [{ type: "sma_crossover" }], initialCash: "5000000000" })
        expect(yield* Effect.flip(alice("strategies.create", { strategy: rich }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "strategy.initialCash",
          reason: expect.stringMatching(/^initial cash must be at most 1000000000: /)
        })

        // A rule scoped to a symbol the strategy does not trade: a typo that disabled the rule unseen.
        const typo = { id: "pos", name: "pos", kind: "max_position_percent", allowSymbols: ["S0", "S00"], params: { percent: 5 } }
        const scoped = Schema.decodeUnknownSync(Strategy)({ name: "scoped", symbols: symbolsOf(2), agents: [{ type: "sma_crossover" }], rules: [typo] })
        expect(yield* Effect.flip(alice("strategies.create", { strategy: scoped }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "strategy.rules.0.allowSymbols.1",
          reason: expect.stringMatching(/^S00 is not a symbol the strategy trades \(S0, S1\): the rule would never apply to it/)
        })
        // rules.put decodes the whole strategy again: the rule given is named as the payload's `rule`.
        const deny = Schema.decodeUnknownSync(Rule)({ id: "deny", name: "deny", kind: "max_orders_per_day", denySymbols: ["S9"], params: { count: 3 } })
        expect(yield* Effect.flip(alice("rules.put", { strategy: "runnable", rule: deny }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "rule.denySymbols.0",
          reason: expect.stringMatching(/^S9 is not a symbol the strategy trades \(S0, S1\): denying it would exclude nothing/)
        })
        // A rule's id or name a terminal would act on: printed by rules list, and in the verdicts `runs watch` shows.
        // And one that looks like another: `max\u200bpos` showed as `maxpos` in `rules list`.
        for (
          const [field, hostile, reason] of [
            ["id", { id: "evil\u001b]0;pwned\u0007" }, /^no control characters \(line breaks, tabs, escapes\) \(U\+001B at position 5\)$/],
            ["name", { name: "N\u001b[31mRED\u009b31m" }, /^no control characters/],
            ["name", { name: "abc\u202e" }, /^no bidirectional formatting characters \(U\+202E at position 4\)/],
            ["id", { id: "max\u200bpos" }, /^no invisible format characters \(U\+200B at position 4\)/],
            ["name", { name: "Cafe\u0301" }, /^not in Unicode NFC form/]
          ] as const
        ) {
          const rule = Schema.decodeUnknownSync(Rule)(Object.assign({ id: "r", name: "r", kind: "max_open_positions", params: { count: 1 } }, hostile))
          expect(yield* Effect.flip(alice("rules.put", { strategy: "runnable", rule }))).toMatchObject({
            _tag: "InvalidRequest",
            field: `rule.${field}`,
            reason: expect.stringMatching(reason)
          })
        }
        expect((yield* alice("strategies.get", { strategy: "runnable" })).version).toBe(2)
        // One rule past the most a strategy may have: the strategy's own field and reason, in one line (it was the schema's whole tree).
        const full = Schema.decodeUnknownSync(Strategy)({
          name: "full",
          symbols: symbolsOf(2),
          agents: [{ type: "sma_crossover" }],
          rules: Array.from({ length: 1_000 }, (_, i) => ({ id: `r${i}`, name: `r${i}`, kind: "max_orders_per_day", params: { count: 3 } }))
        })
        yield* alice("strategies.create", { strategy: full })
        const oneMore = Schema.decodeUnknownSync(Rule)({ id: "more", name: "more", kind: "max_orders_per_day", params: { count: 3 } })
        expect(yield* Effect.flip(alice("rules.put", { strategy: "full", rule: oneMore }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "rules",
          reason: "a strategy has at most 1000 rules"
        })
        // Stored before the check: it still reads, and a put of another rule is not blocked by it.
        yield* Strategies.create("alice", Schema.decodeUnknownSync(Strategy)({ ...Schema.encodeSync(Strategy)(scoped), name: "stored scoped" }))
        expect((yield* alice("strategies.get", { strategy: "stored scoped" })).strategy.rules[0]!.allowSymbols).toEqual(["S0", "S00"])
        const other = Schema.decodeUnknownSync(Rule)({ id: "cap", name: "cap", kind: "max_orders_per_day", allowSymbols: ["S1"], params: { count: 3 } })
        expect((yield* alice("rules.put", { strategy: "stored scoped", rule: other })).version).toBe(2)

        // An adaptive-weight floor above its ceiling pinned every factor to the ceiling.
        const floored = Schema.decodeUnknownSync(Strategy)({
          name: "runnable", symbols: symbolsOf(2), agents: [{ type: "sma_crossover" }], consensus: { adaptiveWeights: { enabled: true, floor: 3, ceiling: 2 } }
        })
        expect(yield* Effect.flip(alice("strategies.update", { strategy: "runnable", body: floored }))).toMatchObject({
          _tag: "InvalidRequest",
          field: "body.consensus.adaptiveWeights.floor",
          reason: "the floor 3 is above the ceiling 2: the weight multiplier stays within [floor, ceiling]"
        })

        // Symbols the data lacks: refused before the run has a row (it was a run, already failed, numbered #1).
        yield* alice("strategies.create", { strategy: Schema.decodeUnknownSync(Strategy)({ name: "elsewhere", symbols: ["ZZZ"], agents: [{ type: "sma_crossover" }] }) })
        const lacking = yield* Effect.flip(alice("runs.start", { strategy: "elsewhere", mode: "backtest", data: { _tag: "sample" } }))
        expect(lacking).toMatchObject({ _tag: "InvalidRequest", reason: expect.stringContaining("no data for ZZZ (the data has ACME, GLOBEX, INITECH)") })
        expect(yield* alice("runs.list", { strategy: "elsewhere" })).toEqual([])

        // Saved before this check (or with an analyst since removed): starting a run says why, and only that.
        yield* Strategies.create("alice", withAgents("stored unrunnable", [{ type: "nope" }]))
        const started = yield* Effect.flip(alice("runs.start", { strategy: "stored unrunnable", mode: "backtest", data: { _tag: "synthetic", bars: 50 } }))
        expect(started).toMatchObject({ _tag: "InvalidRequest", field: "strategy", reason: expect.stringMatching(/^agents\[0\]\.type: unknown agent type "nope"/) })
        expect((started as { reason: string }).reason).not.toMatch(/ at |\.ts:|\n/)
      }), { timeout: 120_000 })

    it.scoped("admin procedures: an admin creates users and keys and reads the platform's figures; anyone else is Forbidden", () =>
      Effect.gen(function*() {
        const root = yield* clientFor("key-root")
        const alice = yield* clientFor("key-alice")
        for (const attempt of [alice("admin.users", undefined), alice("admin.stats", undefined), alice("admin.createUser", { name: "mallory", role: "admin" })]) {
          expect((yield* Effect.flip(attempt as Effect.Effect<unknown, { readonly _tag: string }>))._tag).toBe("Forbidden")
        }
        const created = yield* root("admin.createUser", { name: "carol", role: "user" })
        expect(created.user).toMatchObject({ name: "carol", role: "user", disabled: false })
        expect(created.key).toMatch(/^sk_[A-Za-z0-9_-]{43}$/)
        expect((yield* Effect.flip(root("admin.createUser", { name: "carol", role: "user" })))._tag).toBe("Conflict")
        expect((yield* root("admin.issueKey", { user: "carol" })).key).not.toBe(created.key)
        // A key that cannot be issued takes its user with it: no keyless user is left under the name.
        const sql = yield* SqlClient.SqlClient
        yield* sql`create or replace function refuse_keyless() returns trigger language plpgsql as $$
          begin
            if (select name from users where id = new.user_id) = 'keyless' then raise exception 'refused by the test'; end if;
            return new;
          end $$`
        yield* sql`create trigger refuse_keyless before insert on api_keys for each row execute function refuse_keyless()`
        const refused = yield* Effect.flip(root("admin.createUser", { name: "keyless", role: "user" })).pipe(
          Effect.ensuring(Effect.ignore(sql`drop trigger refuse_keyless on api_keys`))
        )
        expect(refused).toMatchObject({ _tag: "Unavailable", reason: expect.stringContaining("refused by the test") })
        expect(yield* sql`select id from users where name = 'keyless'`).toEqual([])
        expect((yield* Effect.flip(root("admin.issueKey", { user: "nobody-here" })))._tag).toBe("InvalidRequest")
        // Keys are issued by name or id: no one may be named like another's id (the key went to the impostor).
        expect((yield* Effect.flip(Users.create(created.user.id, "user")))._tag).toBe("InvalidUserName")
        expect((yield* root("admin.users", undefined)).map((u) => u.name)).toEqual(expect.arrayContaining(["alice", "bob", "root", "carol"]))
        const stats = yield* root("admin.stats", undefined)
        expect(stats.users).toBeGreaterThanOrEqual(4)
        expect(stats.liveRuns).toBe(0)
      }), { timeout: 60_000 })

    it.scoped("admin procedures: a user's keys listed and revoked, a user made admin, disabled and enabled; the last admin stays", () =>
      Effect.gen(function*() {
        const root = yield* clientFor("key-root")
        const alice = yield* clientFor("key-alice")
        for (const attempt of [alice("admin.keys", { user: "alice" }), alice("admin.revokeKey", { key: "key_0" }), alice("admin.setUser", { user: "alice", role: "admin" })]) {
          expect((yield* Effect.flip(attempt as Effect.Effect<unknown, { readonly _tag: string }>))._tag).toBe("Forbidden")
        }
        const dave = yield* root("admin.createUser", { name: "dave", role: "user" })
        const second = yield* root("admin.issueKey", { user: dave.user.id, label: "laptop" })
        const keys = yield* root("admin.keys", { user: "dave" })
        expect(keys.map((k) => [k.label, k.prefix, k.revokedAt])).toEqual([["created by an admin", dave.key.slice(0, 10), null], ["laptop", second.key.slice(0, 10), null]])
        // A leaked key revoked: it no longer authenticates; the other still does.
        const revoked = yield* root("admin.revokeKey", { key: keys[1]!.id })
        expect(revoked.revokedAt).toBeInstanceOf(Date)
        expect((yield* Effect.flip(ApiKeys.authenticate(second.key)))._tag).toBe("Unauthorized")
        expect((yield* ApiKeys.authenticate(dave.key)).name).toBe("dave")
        expect(yield* Effect.flip(root("admin.revokeKey", { key: "key_nope" }))).toMatchObject({ _tag: "InvalidRequest", field: "key" })
        expect(yield* Effect.flip(root("admin.keys", { user: "nobody-here" }))).toMatchObject({ _tag: "InvalidRequest", field: "user" })
        // Disabled: no key of theirs works; enabled again: the unrevoked one does.
        expect(yield* root("admin.setUser", { user: "dave", disabled: true })).toMatchObject({ name: "dave", disabled: true })
        expect((yield* Effect.flip(ApiKeys.authenticate(dave.key)))._tag).toBe("Unauthorized")
        expect(yield* root("admin.setUser", { user: dave.user.id, disabled: false, role: "admin" })).toMatchObject({ name: "dave", role: "admin", disabled: false })
        expect((yield* ApiKeys.authenticate(dave.key)).role).toBe("admin")
        // Admins demoting each other: the last enabled one is refused, whoever asks. (root's key
        // is the stub authenticator's: here it is in the database too, as a server's admin's is.)
        yield* ApiKeys.issue("root", "root's")
        const sql = yield* SqlClient.SqlClient
        const others = (yield* sql<{ id: string }>`select id from users where role = 'admin' and disabled_at is null and id not in ('root', ${dave.user.id})`)
        for (const { id } of others) yield* root("admin.setUser", { user: id, role: "user" })
        expect(yield* root("admin.setUser", { user: "dave", role: "user" })).toMatchObject({ role: "user" })
        const last = yield* Effect.flip(root("admin.setUser", { user: "root", disabled: true }))
        expect(last).toMatchObject({ _tag: "Conflict", reason: "root is the last enabled admin with an API key: make another user an admin first" })
        expect((yield* Effect.flip(root("admin.setUser", { user: "root", role: "user" })))._tag).toBe("Conflict")
        // Admins no server lets in do not count: the command line's keyless `local`, and one whose keys were all revoked.
        yield* Users.ensureLocal()
        yield* root("admin.createUser", { name: "keyless", role: "admin" })
        const [keylessKey] = yield* root("admin.keys", { user: "keyless" })
        yield* root("admin.revokeKey", { key: keylessKey!.id })
        expect((yield* Effect.flip(root("admin.setUser", { user: "root", role: "user" })))._tag).toBe("Conflict")
        expect(yield* root("admin.setUser", { user: "keyless", disabled: true })).toMatchObject({ disabled: true })
        // Nor may the last such admin's last key be revoked: that too would leave nobody to sign in.
        const [rootKey] = yield* root("admin.keys", { user: "root" })
        const lastKey = yield* Effect.flip(root("admin.revokeKey", { key: rootKey!.id }))
        expect(lastKey).toMatchObject({
          _tag: "Conflict",
          reason: `${rootKey!.id} is the last API key of root, the last enabled admin with one: issue them another key first`
        })
        expect((yield* root("admin.keys", { user: "root" }))[0]!.revokedAt).toBeNull()
        yield* root("admin.issueKey", { user: "root", label: "spare" })
        expect((yield* root("admin.revokeKey", { key: rootKey!.id })).revokedAt).toBeInstanceOf(Date)
        expect((yield* root("admin.users", undefined)).find((u) => u.name === "root")).toMatchObject({ role: "admin", disabled: false })
        for (const { id } of others) yield* root("admin.setUser", { user: id, role: "admin" })
      }), { timeout: 60_000 })

    it.scoped("a stream's connection reads take their turn with the followers' page reads: runs.events and runs.status wait for a permit, their errors unchanged", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const run = yield* simulatedRun(bus, "alice")
        // Live, its events in the bus's ring: a follower gives them with no read of its own.
        run.publish(1, 3)
        yield* run.commit(3)
        // Both permits of the followers' reads taken, as by two followers reading pages meanwhile.
        let held = true
        yield* Effect.acquireRelease(Follow.catchUpReads.take(2), () => (held ? Follow.catchUpReads.release(2) : Effect.void))
        const alice = yield* clientFor("key-alice")
        const bob = yield* clientFor("key-bob")
        const events = yield* follow("key-alice", run.id)
        const status = yield* Effect.fork(Stream.runHead(alice("runs.status", { run: run.id })))
        const notYours = yield* Effect.fork(Effect.either(Stream.runDrain(bob("runs.events", { run: run.id }))))
        const notYourStatus = yield* Effect.fork(Effect.either(Stream.runDrain(bob("runs.status", { run: run.id }))))
        yield* Effect.sleep(Duration.millis(400))
        // The run is not read yet: no event, no status, not even the refusal of another's run.
        expect(events.got).toEqual([])
        for (const fiber of [events.fiber, status, notYours, notYourStatus] as ReadonlyArray<Fiber.Fiber<unknown, unknown>>) expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        held = false
        yield* Follow.catchUpReads.release(2)
        expect(yield* eventually(() => events.got.length === 3)).toBe(true)
        expect(events.got).toEqual(range(1, 3))
        expect(yield* Fiber.join(status)).toMatchObject({ _tag: "Some", value: { status: "running" } })
        // The typed errors as before: another's run is one that does not exist.
        expect(yield* Fiber.join(notYours)).toEqual(Either.left(new RunNotFound({ run: run.id })))
        expect(yield* Fiber.join(notYourStatus)).toEqual(Either.left(new RunNotFound({ run: run.id })))
        yield* run.finish
        expect(yield* Fiber.join(events.fiber)).toMatchObject({ _tag: "Right" })
      }))

    it.scoped("an event stream whose key is revoked ends with Unauthorized; the same user's other key streams on", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 3)
        yield* run.commit(3)
        const leaked = yield* follow("key-alice-leaked", run.id)
        const kept = yield* follow("key-alice", run.id)
        expect(yield* eventually(() => leaked.got.length === 3 && kept.got.length === 3)).toBe(true)

        revokedKeys.add("key-alice-leaked")
        // The set is the module's, shared by every back-end's run of this test: undone when it ends.
        yield* Effect.addFinalizer(() => Effect.sync(() => revokedKeys.delete("key-alice-leaked")))
        const ended = yield* Fiber.join(leaked.fiber)
        expect(ended._tag === "Left" && ended.left).toEqual(new Unauthorized({ reason: "unknown key" }))
        expect(leaked.got).toEqual(range(1, 3))

        run.publish(4, 5)
        yield* run.finish
        expect(yield* Fiber.join(kept.fiber)).toMatchObject({ _tag: "Right" })
        expect(kept.got).toEqual(range(1, 5))
      }))

    it.scoped("an admin's event stream of another's run ends with RunNotFound, as runs.get answers, once the admin is demoted; the owner's streams on", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 3)
        yield* run.commit(3)
        const watching = yield* follow("key-ops", run.id)
        const owning = yield* follow("key-alice", run.id)
        expect(yield* eventually(() => watching.got.length === 3 && owning.got.length === 3)).toBe(true)
        // An admin still: many re-checks later, it streams on.
        yield* Effect.sleep("200 millis")
        run.publish(4, 4)
        expect(yield* eventually(() => watching.got.length === 4 && owning.got.length === 4)).toBe(true)

        demotedKeys.add("key-ops")
        // The set is the module's, shared by every back-end's run of this test: undone when it ends.
        yield* Effect.addFinalizer(() => Effect.sync(() => demotedKeys.delete("key-ops")))
        // Bounded: a stream that does not end fails here, not at the test's timeout.
        const ended = yield* Effect.orDie(Effect.timeout(Fiber.join(watching.fiber), "10 seconds"))
        const asked = yield* Effect.flip((yield* clientFor("key-ops"))("runs.get", { run: run.id }))
        expect(asked).toEqual(new RunNotFound({ run: run.id }))
        expect(ended).toEqual(Either.left(asked))
        expect(watching.got).toEqual(range(1, 4))

        run.publish(5, 5)
        yield* run.finish
        expect(yield* Fiber.join(owning.fiber)).toMatchObject({ _tag: "Right" })
        expect(owning.got).toEqual(range(1, 5))
      }))
  })
}
