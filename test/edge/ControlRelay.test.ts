/**
 * Control through any server process: two run managers on one Postgres database (two `swarm serve`
 * processes behind a load balancer), a run live in the first, controlled and its approvals listed
 * and answered through the second — relayed through the database (`ControlRequests`) to the process
 * executing the run, which answers as it would have answered the caller itself. Someone else's run
 * is `RunNotFound` as it is on one process; a run no live process holds is a `Conflict` saying so
 * within the relay's wait. Needs `DATABASE_URL` (the embedded database serves one process and
 * relays nothing); skipped, saying so, without it.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import Pg from "pg"
import type { RunId } from "../../schemas/Ids.js"
import { RunNotFound } from "../../schemas/Rpc.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { EventBus, type EventBusService } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as ControlAudit from "../../src/store/ControlAudit.js"
import * as ControlRequests from "../../src/store/ControlRequests.js"
import { PgPool } from "../../src/store/Pool.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { serverUrl } from "../store/fresh.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { createUsers, guarded, principals, until } from "./fixtures.js"

const alice = principals["sk_alice"]
const bob = principals["sk_bob"]
const root = principals["sk_root"]

if (serverUrl === undefined) console.warn("ControlRelay skipped: DATABASE_URL is not set (two processes need a Postgres server)")

/** A run manager (one server process's) in a scope of its own: closing it is the process shutting down. */
const managerOn = (bus: EventBusService, options: RunManager.Options = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(RunManager.layerWith(options).pipe(Layer.provide(Layer.succeed(EventBus, bus))), scope)
    // Shut down with the test, whatever it did: a failed test leaves no run live for the next one.
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    return { manager: Context.get(context, RunManager.RunManager), shutdown: Scope.close(scope, Exit.void) }
  })

/** A slow paper run: it waits between slices most of the time. */
const slowPaperRun = (manager: RunManager.RunManagerService, strategy: string) =>
  manager.start(alice, { strategy, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })

/**
 * Two paper runs of a new strategy of alice's, left by a process that stopped, resumed by `a`, a
 * process with a cap of one live run a user: the first goes on there (`live`), the second waits
 * there for a slot (`waiting`).
 */
const waitingIn = (bus: EventBusService, name: string) =>
  Effect.gen(function*() {
    yield* Strategies.create(alice.userId, smaStrategy(name))
    const first = yield* managerOn(bus)
    const started = [yield* slowPaperRun(first.manager, name), yield* slowPaperRun(first.manager, name)]
    yield* first.shutdown
    const a = yield* managerOn(bus, { maxLiveRunsPerUser: 1 })
    const outcomes = (yield* a.manager.resumeUnfinished()).filter((o) => started.some((r) => r.id === o.run))
    expect(outcomes.map((o) => o.outcome)).toEqual(["resumed", "waiting"])
    return { a, live: outcomes[0]!.run as RunId, waiting: outcomes[1]!.run as RunId }
  })

const usersLayer = Layer.effectDiscard(Effect.orDie(createUsers))
const postgres = backends.find((backend) => backend.name === "postgres")

describe.skipIf(postgres === undefined)("control through another process", () => {
  const environment = Layer.mergeAll(InProcessBus.layerTest(), usersLayer).pipe(Layer.provideMerge(postgres?.store ?? backends[0]!.store))
  layer(environment, { timeout: startTimeout, excludeTestServices: true })("two run managers on one Postgres", (it) => {
    it.scoped("a run live in one process is paused, resumed and stopped through the other, with the same answers", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, smaStrategy("relayed control"))
        const a = yield* managerOn(bus)
        const b = yield* managerOn(bus)
        const run = yield* slowPaperRun(a.manager, "relayed control")
        expect(b.manager.live()).toBe(0)

        const paused = yield* b.manager.pause(alice, run.id)
        expect(paused.status).toBe("paused")
        // Held where it runs: a's own answer says so.
        expect(Exit.isFailure(yield* Effect.exit(a.manager.pause(alice, run.id)))).toBe(true)
        // The owner's typed error, relayed as it is.
        const again = yield* Effect.flip(b.manager.pause(alice, `relayed control#${run.number}`))
        expect(again).toMatchObject({ _tag: "Conflict", reason: `run ${run.id} is paused already` })

        // Someone else's run: not found, on this process as on one (never relayed).
        expect(yield* Effect.flip(b.manager.resume(bob, run.id))).toMatchObject({ _tag: "RunNotFound", run: run.id })
        // Nor carried out when a request reaches its holder in bob's name: the holder checks as it always does.
        const forged = yield* ControlRequests.ask({ run: run.id, action: "resume", principal: bob })
        const answered = yield* until(ControlRequests.answerOf(forged), (now) => now.answer !== undefined, "the forged request's answer")
        expect(answered.answer).toEqual({ answer: "RunNotFound", reason: null })
        expect((yield* Runs.get(run.id)).status).toBe("paused")

        expect((yield* b.manager.resume(alice, run.id)).status).toBe("running")
        expect(yield* Effect.flip(b.manager.resume(alice, run.id))).toMatchObject({ _tag: "Conflict", reason: `run ${run.id} is not paused` })
        // An admin controls anyone's run from anywhere; an operator's reasons go with the requests.
        expect((yield* b.manager.pause(root, run.id, "news pending")).status).toBe("paused")
        expect((yield* b.manager.resume(root, run.id, "news out")).status).toBe("running")

        const stopped = yield* b.manager.stop(alice, run.id, "end of the test")
        expect(stopped.status).toBe("stopped")
        // Stopped by its holder, in the caller's name, with their reason.
        expect(stopped.failure).toBe("stopped by alice: end of the test")
        expect(a.manager.live()).toBe(0)
        // Ended: each process says so at once.
        expect(yield* Effect.flip(b.manager.stop(alice, run.id))).toMatchObject({ _tag: "Conflict", reason: `run ${run.id} is stopped` })
        // Each relayed action that took effect is in the run's control log once, in its requester's name; none refused is.
        expect((yield* ControlAudit.history(run.id as RunId)).last.map((a) => [a.action, a.by.id, a.reason ?? null])).toEqual([
          ["pause", "alice", null],
          ["resume", "alice", null],
          ["pause", "root", "news pending"],
          ["resume", "root", "news out"],
          ["stop", "alice", "end of the test"]
        ])
        yield* b.shutdown
        yield* a.shutdown
      }), { timeout: 60_000 })

    it.scoped("a run live in one process: its trading state halted and lifted through the other, answered, recorded and audited as there", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, smaStrategy("relayed trading"))
        const a = yield* managerOn(bus)
        const b = yield* managerOn(bus)
        const run = yield* slowPaperRun(a.manager, "relayed trading")

        // Carried out by the process executing the run, answered with the change it made.
        const halted = yield* b.manager.trading(alice, `relayed trading#${run.number}`, "halted", "news pending")
        expect(halted.run).toBe(run.id)
        expect(halted.status).toMatchObject({ state: "halted", cause: "operator", actor: "alice", reason: "news pending" })
        expect(halted.transition).toMatchObject({ from: "active", to: "halted", cause: "operator", actor: "alice", reason: "news pending" })
        expect(halted.transition.at).toBe(halted.status.since)
        // The state machine's refusal, relayed whole: the typed error with its fields, as the holder gives it.
        const local = yield* Effect.flip(a.manager.trading(alice, run.id, "halted", "again"))
        const remote = yield* Effect.flip(b.manager.trading(alice, run.id, "halted", "again"))
        expect(local._tag).toBe("IllegalTransition")
        expect(remote).toEqual(local)
        expect(remote).toMatchObject({ from: "halted", to: "halted", cause: "operator" })
        // Someone else's run: not found, on this process as on one (never relayed).
        expect(yield* Effect.flip(b.manager.trading(bob, run.id, "active"))).toEqual(new RunNotFound({ run: run.id }))
        // Nor carried out when a request reaches its holder in bob's name.
        const forged = yield* ControlRequests.ask({ run: run.id, action: "trading", state: "active", reason: "forged", principal: bob })
        const answered = yield* until(ControlRequests.answerOf(forged), (now) => now.answer !== undefined, "the forged request's answer")
        expect(answered.answer).toMatchObject({ answer: "RunNotFound" })

        // The default reason names the caller, as on the holder.
        const lifted = yield* b.manager.trading(alice, run.id, "active")
        expect(lifted.transition).toMatchObject({ from: "halted", to: "active", cause: "operator", actor: "alice", reason: "active by alice" })
        expect(lifted.transition.at).toBeGreaterThan(halted.transition.at)
        // An admin moves anyone's run from anywhere.
        const reduced = yield* b.manager.trading(root, run.id, "reducing", "desk review")
        expect(reduced.transition).toMatchObject({ from: "active", to: "reducing", actor: "root" })

        // In the run's events, as the holder recorded them at its bars; and in its control log, in the requesters' names.
        // (Committed by the holder's recorder within moments of its answer.)
        const operatedOf = Effect.map(Runs.events(run.id, 0, 10_000, ["TradingStateChanged"]), (events) =>
          events.map((e) => JSON.parse(e.body) as RunEvent).flatMap((e) => (e._tag === "TradingStateChanged" && e.transition.cause === "operator" ? [e.transition] : [])))
        const operated = yield* until(operatedOf, (transitions) => transitions.length >= 3, "the operator's transitions committed")
        expect(operated).toEqual([halted.transition, lifted.transition, reduced.transition])
        expect((yield* ControlAudit.history(run.id as RunId)).last.map((e) => [e.action, e.by.id, e.state, e.reason])).toEqual([
          ["trading", "alice", "halted", "news pending"],
          ["trading", "alice", "active", "active by alice"],
          ["trading", "root", "reducing", "desk review"]
        ])
        // Paused where it runs: held at its next bar, it takes a command relayed to it at once, and stays paused.
        yield* b.manager.pause(alice, run.id)
        const held = yield* b.manager.trading(alice, run.id, "halted", "paused, then halted")
        expect(held.transition).toMatchObject({ from: "reducing", to: "halted", actor: "alice", reason: "paused, then halted" })
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        yield* b.manager.stop(alice, run.id)
        // Ended: nothing to move, said at once.
        expect(yield* Effect.flip(b.manager.trading(alice, run.id, "halted"))).toMatchObject({ _tag: "Conflict", reason: `run ${run.id} is stopped` })
        yield* b.shutdown
        yield* a.shutdown
      }), { timeout: 60_000 })

    it.scoped("a user disabled through one process: their run live in the other is paused there, as the admin, with the reason", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, smaStrategy("paused for a disabled owner"))
        const a = yield* managerOn(bus)
        const b = yield* managerOn(bus)
        const run = yield* slowPaperRun(a.manager, "paused for a disabled owner")
        // What `admin.setUser { disabled: true }` does through b, after the user's row says disabled.
        expect(yield* b.manager.pauseOwnedBy(root, alice.userId, "user alice disabled")).toEqual([{ run: run.id, ref: `paused for a disabled owner#${run.number}` }])
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        // Paused where it runs: a's own answer says so.
        expect(yield* Effect.flip(a.manager.pause(root, run.id))).toMatchObject({ _tag: "Conflict", reason: `run ${run.id} is paused already` })
        expect((yield* ControlAudit.history(run.id as RunId)).last.map((e) => [e.action, e.by.id, e.reason])).toEqual([["pause", "root", "user alice disabled"]])
        yield* a.manager.stop(root, run.id)
        yield* b.shutdown
        yield* a.shutdown
      }), { timeout: 60_000 })

    it.scoped("a run waiting for a slot in one process is paused, resumed and stopped through the other, as there", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const { a, live, waiting } = yield* waitingIn(bus, "waiting elsewhere")
        const b = yield* managerOn(bus)
        // Before, each was relayed to a process that took only its live runs' requests: a Conflict
        // after the relay's wait, saying no live process held the run.
        expect((yield* b.manager.pause(alice, waiting, "not yet")).status).toBe("paused")
        expect(yield* Effect.flip(b.manager.pause(alice, waiting))).toMatchObject({ _tag: "Conflict", reason: `run ${waiting} is paused already` })
        expect((yield* b.manager.resume(alice, waiting)).status).toBe("running")
        // Still waiting there, not launched: a trading-state command is refused as there, saying why.
        expect(yield* Effect.flip(b.manager.trading(alice, waiting, "halted", "test"))).toMatchObject({
          _tag: "Conflict",
          reason: expect.stringContaining(`run ${waiting} is waiting for a slot here, not executing`)
        })
        const stopped = yield* b.manager.stop(alice, waiting, "not needed")
        expect(stopped.status).toBe("stopped")
        expect(stopped.failure).toMatch(/^stopped by alice: not needed; held by no live process: it was waiting here for a slot/)
        expect((yield* ControlAudit.history(waiting)).last.map((entry) => [entry.action, entry.by.id, entry.reason ?? null])).toEqual([
          ["pause", "alice", "not yet"],
          ["resume", "alice", null],
          ["stop", "alice", expect.stringMatching(/^not needed; held by no live process/)]
        ])
        // Its slot was never taken: the live run goes on there alone.
        expect(a.manager.live()).toBe(1)
        yield* a.manager.stop(alice, live)
        yield* b.shutdown
        yield* a.shutdown
      }), { timeout: 60_000 })

    it.scoped("a run that waited for a slot in one process and was taken over by another: relayed requests are the new holder's", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const { a, live, waiting } = yield* waitingIn(bus, "waiting then taken over")
        // Another server, with room, takes it over (free at two looks in a row): a still lists it as waiting there.
        const c = yield* managerOn(bus, { takeover: { every: Duration.hours(1), grace: Duration.zero } })
        expect(yield* c.manager.takeOver()).toEqual([])
        expect((yield* c.manager.takeOver()).map((o) => [o.run, o.outcome])).toEqual([[waiting, "resumed"]])
        const b = yield* managerOn(bus)
        // Both a and c look for its requests; taken by a, each was refused as in no live process
        // there (one in two, as they raced). Five in a row: every one answered by c.
        for (let i = 0; i < 5; i++) {
          const action = i % 2 === 0 ? "pause" : "resume"
          const changed = yield* (action === "pause" ? b.manager.pause(alice, waiting) : b.manager.resume(alice, waiting))
          expect(changed.status).toBe(action === "pause" ? "paused" : "running")
        }
        yield* b.manager.stop(alice, waiting)
        yield* a.manager.stop(alice, live)
        yield* b.shutdown
        yield* c.shutdown
        yield* a.shutdown
      }), { timeout: 60_000 })

    it.scoped("a run no live process holds: a Conflict saying so within the wait, and the request is not carried out later", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, smaStrategy("held by nobody"))
        const a = yield* managerOn(bus)
        const run = yield* slowPaperRun(a.manager, "held by nobody")
        // Its process stopped: the run stays `running`, for the next start.
        yield* a.shutdown
        const b = yield* managerOn(bus)
        const started = Date.now()
        const refused = yield* Effect.flip(b.manager.stop(alice, run.id))
        expect(refused._tag).toBe("Conflict")
        expect(refused).toMatchObject({ reason: expect.stringMatching(new RegExp(`run ${run.id} is held by no live process.*the next start resumes it`)) })
        expect(Date.now() - started).toBeLessThan(10_000)
        // Given up: a holder that comes later finds nothing to do.
        expect(yield* ControlRequests.openFor([run.id])).toEqual([])
        const resumed = yield* managerOn(bus)
        expect((yield* resumed.manager.resumeUnfinished()).map((r) => r.outcome)).toEqual(["resumed"])
        yield* Effect.sleep("600 millis")
        expect((yield* Runs.get(run.id)).status).toBe("running")
        yield* resumed.manager.stop(alice, run.id)
        yield* resumed.shutdown
        yield* b.shutdown
      }), { timeout: 60_000 })

    it.scoped("an approval held in one process is listed and answered through the other; the run goes on", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, guarded("guarded elsewhere", 30))
        const a = yield* managerOn(bus)
        const b = yield* managerOn(bus)
        const run = yield* a.manager.start(alice, { strategy: "guarded elsewhere", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })

        const [held] = yield* until(a.manager.pending(alice), (p) => p.length > 0, "the first approval")
        // Listed by the other process with the same fields (its wall-clock times too), to whom may see it.
        // Once the run's recorder has committed it and the holding process has written when it
        // asked (a few milliseconds; until then the other process's list reckons the times from the
        // wait, which a loaded machine puts some milliseconds off).
        const listed = yield* until(b.manager.pending(alice), (p) => p.length > 0 && p[0]!.requestedAt === held!.requestedAt, "the approval listed elsewhere")
        expect(listed).toEqual([held])
        expect(listed[0]!.expiresAt - listed[0]!.requestedAt).toBe(30_000)
        expect(yield* b.manager.pending(alice, `guarded elsewhere#${run.number}`)).toEqual([held])
        expect(yield* b.manager.pending(bob)).toEqual([])
        expect(yield* Effect.flip(b.manager.pending(bob, run.id))).toMatchObject({ _tag: "RunNotFound" })
        expect((yield* b.manager.pending(root)).map((p) => [p.round, p.owner])).toEqual([[held!.round, "alice"]])
        // Not bob's: no such approval, as on the holder.
        expect(yield* Effect.flip(b.manager.approve(bob, run.id, held!.round))).toMatchObject({ _tag: "ApprovalNotFound" })

        yield* b.manager.approve(alice, run.id, held!.round)
        // The holder took the answer: the run went on past it.
        yield* until(Runs.resolvedApproval(run.id, held!.round), (how) => how !== undefined, "the approval recorded")
        expect(yield* Runs.resolvedApproval(run.id, held!.round)).toEqual({ outcome: "approved", by: "alice", reason: "approved by an operator" })
        const again = yield* Effect.flip(b.manager.approve(alice, run.id, held!.round))
        expect(again).toMatchObject({ _tag: "Conflict", reason: `round ${held!.round} of run ${run.id} was approved already, by alice` })

        const [second] = yield* until(b.manager.pending(alice), (p) => p.length > 0 && p[0]!.round !== held!.round, "a second approval")
        yield* b.manager.reject(alice, run.id, second!.round, "too big for a Friday")
        yield* until(Runs.resolvedApproval(run.id, second!.round), (how) => how !== undefined, "the rejection recorded")
        expect(yield* Runs.resolvedApproval(run.id, second!.round)).toEqual({ outcome: "rejected", by: "alice", reason: "too big for a Friday" })
        // An unknown round of the run: not found, answered by the holder or the table.
        expect(yield* Effect.flip(b.manager.approve(alice, run.id, "no-such-round"))).toMatchObject({ _tag: "ApprovalNotFound" })

        // The rest answered through b as they come, until the run ends.
        const done = yield* until(
          Effect.gen(function*() {
            for (const next of yield* b.manager.pending(alice)) yield* Effect.ignore(b.manager.approve(alice, run.id, next.round))
            return yield* Runs.get(run.id)
          }),
          (r) => r.status !== "running",
          "the run to end"
        )
        expect(done.status).toBe("completed")
        yield* b.shutdown
        yield* a.shutdown
      }), { timeout: 90_000 })

    it.scoped("a paused run's approval is listed elsewhere with its expiry moved on, and answered through the other process", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, guarded("guarded paused", 30))
        const a = yield* managerOn(bus)
        const b = yield* managerOn(bus)
        const run = yield* a.manager.start(alice, { strategy: "guarded paused", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
        const [held] = yield* until(a.manager.pending(alice), (p) => p.length > 0, "the first approval")
        yield* b.manager.pause(alice, run.id)
        yield* Effect.sleep("1200 millis")
        const [onA] = yield* a.manager.pending(alice, run.id)
        const [onB] = yield* b.manager.pending(alice, run.id)
        // Paused, the intent grows no staler: both lists moved its expiry on, about alike.
        expect(onA!.expiresAt).toBeGreaterThan(held!.expiresAt + 800)
        expect(Math.abs(onB!.expiresAt - onA!.expiresAt)).toBeLessThan(600)
        yield* b.manager.reject(alice, run.id, held!.round, "not while paused")
        yield* b.manager.resume(alice, run.id)
        yield* until(Runs.resolvedApproval(run.id, held!.round), (how) => how !== undefined, "the rejection recorded")
        expect(yield* Runs.resolvedApproval(run.id, held!.round)).toEqual({ outcome: "rejected", by: "alice", reason: "not while paused" })
        yield* b.manager.stop(alice, run.id)
        expect((yield* ControlAudit.history(run.id as RunId)).last.map((a) => [a.action, a.by.name, a.round ?? null, a.reason ?? null])).toEqual([
          ["pause", "alice", null, null],
          ["reject", "alice", held!.round, "not while paused"],
          ["resume", "alice", null, null],
          ["stop", "alice", null, null]
        ])
        yield* b.shutdown
        yield* a.shutdown
      }), { timeout: 60_000 })

    it.scoped("a run held by a server of an older version, which takes a relayed trading command and never answers: refused at once, saying so", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, smaStrategy("held by an old server"))
        const a = yield* managerOn(bus)
        const run = yield* slowPaperRun(a.manager, "held by an old server")
        yield* a.shutdown
        // A server of a build before relayed trading commands takes the run: its lease session says
        // no relay protocol, and it takes every request for its runs — a trading one it never answers.
        const old = new Pg.Client({ connectionString: (yield* PgPool).pool.options.connectionString!, application_name: "swarm leases" })
        yield* Effect.promise(() => old.connect())
        yield* Effect.promise(() => old.query("select pg_advisory_lock(hashtextextended($1, 0))", [`swarm-run:${run.id}`]))
        const takes = yield* Effect.fork(Effect.repeat(
          Effect.promise(() => old.query("update control_requests set taken_at = now() where run_id = $1 and taken_at is null and answered_at is null", [run.id])),
          Schedule.spaced("100 millis")
        ))
        expect(yield* ControlRequests.holderOf(run.id)).toEqual({ protocol: 1 })

        const b = yield* managerOn(bus)
        const started = Date.now()
        const refused = yield* Effect.flip(b.manager.trading(alice, run.id, "halted", "news pending"))
        expect(refused).toMatchObject({ _tag: "Conflict", reason: expect.stringContaining(`run ${run.id} executes in a server of an older version`) })
        expect(refused).toMatchObject({ reason: expect.stringContaining("pause the run") })
        expect(Date.now() - started).toBeLessThan(3_000)
        // Nothing asked of it: nothing it could take and leave unanswered.
        expect(yield* ControlRequests.openFor([run.id])).toEqual([])

        // Upgraded: the run goes on in a server of this version, whose lease session says so, and the command is relayed there.
        yield* Fiber.interrupt(takes)
        yield* Effect.promise(() => old.end())
        const upgraded = yield* managerOn(bus)
        expect((yield* upgraded.manager.resumeUnfinished()).map((r) => r.outcome)).toEqual(["resumed"])
        expect(yield* ControlRequests.holderOf(run.id)).toEqual({ protocol: ControlRequests.RELAY_PROTOCOL })
        const halted = yield* b.manager.trading(alice, run.id, "halted", "news pending")
        expect(halted.transition).toMatchObject({ from: "active", to: "halted", actor: "alice" })
        yield* upgraded.manager.stop(alice, run.id)
        yield* upgraded.shutdown
        yield* b.shutdown
      }), { timeout: 60_000 })

    it.scoped("a run whose risk officer is down where it executes: runs.trading through the other process answers RiskOfficerDown with its fields, and nothing moves", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, smaStrategy("officer down elsewhere"))
        const a = yield* managerOn(bus)
        // A bar a day of wall-clock time: it takes its first (which decides nothing: its analyst warms up) and waits a day.
        const run = yield* a.manager.start(alice, { strategy: "officer down elsewhere", mode: "paper", data: { _tag: "synthetic", bars: 60 }, speed: 1 })
        yield* a.shutdown
        // Taken back with its risk officer crashing on the first message it gets: the operator's command.
        const sql = yield* SqlClient.SqlClient
        yield* sql`update runs set faults = ${JSON.stringify({ risk: { at: [1] } })} where id = ${run.id}`
        const holder = yield* managerOn(bus)
        expect((yield* holder.manager.resumeUnfinished()).map((r) => r.outcome)).toEqual(["resumed"])
        const b = yield* managerOn(bus)
        // Paused, it takes the command at once at the bar it takes next.
        expect((yield* b.manager.pause(alice, run.id)).status).toBe("paused")
        const down = yield* Effect.flip(b.manager.trading(alice, run.id, "halted", "news pending"))
        // The holder's typed error, whole: its tag and its fields.
        expect(down).toMatchObject({ _tag: "RiskOfficerDown", run: run.id, reason: expect.stringContaining("did not answer") })
        // Fail closed: the command is recorded, nothing moved, and nothing is audited as done.
        const events = yield* until(Runs.events(run.id, 0, 10_000, ["TradingStateRequested", "TradingStateChanged"]), (e) => e.length > 0, "the recorded command")
        expect(events.map((e) => e.tag)).toEqual(["TradingStateRequested"])
        expect((yield* ControlAudit.history(run.id as RunId)).last.map((a) => a.action)).toEqual(["pause"])
        // Still down (its restart waits for the run's clock, which a paused run's does not move): said so, as there.
        const restarting = yield* Effect.flip(b.manager.trading(alice, run.id, "halted", "news pending"))
        expect(restarting).toMatchObject({ _tag: "RiskOfficerDown", run: run.id, reason: expect.stringContaining("restarting") })
        expect(yield* Effect.flip(holder.manager.trading(alice, run.id, "halted", "news pending"))).toEqual(restarting)
        expect((yield* Runs.get(run.id)).status).toBe("paused")
        yield* holder.manager.stop(alice, run.id)
        yield* holder.shutdown
        yield* b.shutdown
      }), { timeout: 60_000 })
  })
})
