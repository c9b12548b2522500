/**
 * `runs.trading` on the whole server over HTTP, as the CLI calls it: an operator halts a live paper
 * run and lifts the halt; the command is taken at the run's next bar, recorded there (its
 * `TradingStateChanged`, cause `operator`), audited in the run's control log, and the run replays
 * byte for byte with it. Another user's run is "not found", as one that does not exist; a bad state
 * or reason is `InvalidRequest` naming the field; a finished run is a `Conflict`. On every back-end.
 */
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, Schema, Stream } from "effect"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import { bootstrap } from "../../src/edge/Bootstrap.js"
import * as Http from "../../src/edge/Http.js"
import * as Server from "../../src/edge/Server.js"
import * as ControlAudit from "../../src/store/ControlAudit.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import type { RunId } from "../../schemas/Ids.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { symbolsOf } from "../store/fixtures/workload.js"
import { createUser, guarded, rpcClient, until } from "./fixtures.js"

const strategy = (name: string) =>
  Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: symbolsOf(2),
    agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
    sizing: { mode: "percent_of_equity", value: 10 }
  })

/** One raw RPC request over HTTP (ndjson), as a client that does not check its payload sends it: the answer's exit. */
const raw = (base: string, key: string, tag: string, payload: unknown) =>
  Effect.promise(async () => {
    const line = JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [["authorization", `Bearer ${key}`]] })
    const response = await fetch(`${base}/rpc`, { method: "POST", body: line, headers: { "content-type": "application/ndjson" } })
    const text = await response.text()
    const exit = text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as { _tag: string; exit?: { _tag: string; cause?: { error?: unknown } } })
      .find((m) => m._tag === "Exit")!.exit!
    return exit._tag === "Failure" ? exit.cause!.error as Record<string, unknown> : "success"
  })

for (const backend of backends) {
  /** The first admin's key: made by whichever test comes first (the server and its database are the suite's). */
  let adminKey: string | undefined
  const admin = Effect.gen(function*() {
    if (adminKey !== undefined) return adminKey
    const made = yield* bootstrap()
    if (!made.created) return yield* Effect.dieMessage("the database was not empty")
    adminKey = made.key
    return made.key
  })
  layer(Server.layer(backend.store, { port: 0, logRequests: false }), { timeout: startTimeout, excludeTestServices: true })(
    `runs.trading (${backend.name})`,
    (it) => {
      it.scoped("halts a live paper run and lifts the halt: recorded at a bar, audited, trading goes on, and the run replays byte for byte", () =>
        Effect.gen(function*() {
          const base = yield* Http.baseUrl
          const alice = yield* rpcClient(base, (yield* createUser(base, yield* admin, "alice")).key)
          const bob = yield* rpcClient(base, (yield* createUser(base, yield* admin, "bob")).key)
          yield* alice("strategies.create", { strategy: strategy("operated") })
          // 600 daily bars at 8,640,000x: a bar every 10 ms of wall time.
          const run = yield* alice("runs.start", { strategy: "operated", mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 8_640_000 })

          const halted = yield* alice("runs.trading", { run: run.id, state: "halted", reason: "news pending" })
          expect(halted.status.state).toBe("halted")
          expect(halted.transition).toMatchObject({ from: "active", to: "halted", cause: "operator", actor: "alice", reason: "news pending" })
          // The state machine's word: halted already.
          expect(yield* Effect.flip(alice("runs.trading", { run: run.id, state: "halted" }))).toMatchObject({ _tag: "IllegalTransition", from: "halted", to: "halted" })
          // Not bob's: the same answer as a run that does not exist.
          const notBobs = yield* Effect.flip(bob("runs.trading", { run: run.id, state: "active" }))
          const none = yield* Effect.flip(bob("runs.trading", { run: "run_000000000000", state: "active" }))
          expect(notBobs).toMatchObject({ _tag: "RunNotFound", run: run.id })
          expect(none).toMatchObject({ _tag: "RunNotFound", run: "run_000000000000" })
          // While it runs, its report says it is halted (its row, as of the events committed).
          yield* until(alice("runs.report", { run: run.id }), (r) => r.tradingState === "halted", "the report to say halted")
          const report = yield* alice("runs.report", { run: run.id })
          expect(report.status).toBe("running")
          // With the change that put it there: who, when, why.
          expect(report.tradingChange).toEqual(halted.transition)
          yield* Effect.sleep("500 millis")

          const lifted = yield* alice("runs.trading", { run: run.id, state: "active", reason: "news out" })
          expect(lifted.transition).toMatchObject({ from: "halted", to: "active", cause: "operator", actor: "alice", reason: "news out" })
          expect(lifted.transition.at).toBeGreaterThan(halted.transition.at)
          const active = yield* until(alice("runs.report", { run: run.id }), (r) => r.tradingState === "active", "the report to say active again")
          expect(active.tradingChange).toBeUndefined()

          const events = yield* alice("runs.events", { run: run.id }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
          expect(events.at(-1)!.tag).toBe("RunCompleted")
          const decoded = events.map((e) => JSON.parse(e.json) as RunEvent)
          const operated = decoded.filter((e): e is Extract<RunEvent, { _tag: "TradingStateChanged" }> =>
            e._tag === "TradingStateChanged" && e.transition.cause === "operator"
          )
          expect(operated.map((e) => e.transition)).toEqual([halted.transition, lifted.transition])
          // While halted, nothing was placed; once lifted, trading goes on.
          const placedAt = decoded.filter((e) => e._tag === "OrderPlaced").map((e) => e.seq)
          const [haltSeq, liftSeq] = operated.map((e) => e.seq)
          expect(placedAt.filter((seq) => seq > haltSeq! && seq < liftSeq!)).toEqual([])
          expect(placedAt.filter((seq) => seq > liftSeq!).length).toBeGreaterThan(0)

          // Audited as approvals are: who, what, and why, in the run's control log.
          const control = yield* ControlAudit.history(run.id as RunId)
          expect(control.last.map((a) => [a.action, a.state, a.by.name, a.reason])).toEqual([
            ["trading", "halted", "alice", "news pending"],
            ["trading", "active", "alice", "news out"]
          ])
          const shown = yield* alice("runs.report", { run: run.id })
          expect(shown.control?.count).toBe(2)

          // The operator's commands are inputs of the run: replayed, it reproduces, event for event.
          const replayed = yield* StoredRun.replay(run.id)
          expect(replayed.events).toBe(events.length)
          expect(replayed.checksum).toBe((yield* alice("runs.get", { run: run.id })).checksum)

          // Finished: nothing to move.
          expect(yield* Effect.flip(alice("runs.trading", { run: run.id, state: "halted" }))).toMatchObject({ _tag: "Conflict" })
        }), { timeout: 120_000 })

      it.scoped("a paused run is halted before it is resumed: taken at once at the bar it takes next, it stays paused, trades nothing once resumed, and replays byte for byte", () =>
        Effect.gen(function*() {
          const base = yield* Http.baseUrl
          const dave = yield* rpcClient(base, (yield* createUser(base, yield* admin, "dave")).key)
          yield* dave("strategies.create", { strategy: strategy("paused then halted") })
          const run = yield* dave("runs.start", { strategy: "paused then halted", mode: "paper", data: { _tag: "synthetic", bars: 400 }, speed: 8_640_000 })
          // Once it has traded: halted, it trades no more.
          for (let i = 0; i < 200 && (yield* Runs.events(run.id as RunId, 0, 1, ["OrderPlaced"])).length === 0; i++) yield* Effect.sleep("20 millis")
          yield* dave("runs.pause", { run: run.id })
          const halted = yield* dave("runs.trading", { run: run.id, state: "halted", reason: "something is wrong" })
          expect(halted.transition).toMatchObject({ from: "active", to: "halted", cause: "operator", actor: "dave", reason: "something is wrong" })
          expect((yield* dave("runs.get", { run: run.id })).status).toBe("paused")
          yield* dave("runs.resume", { run: run.id })

          const events = yield* dave("runs.events", { run: run.id }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
          expect(events.at(-1)!.tag).toBe("RunCompleted")
          const decoded = events.map((e) => JSON.parse(e.json) as RunEvent)
          const changed = decoded.find((e) => e._tag === "TradingStateChanged" && e.transition.cause === "operator")!
          expect(changed).toMatchObject({ transition: halted.transition })
          // Halted from the bar it took first after the resume: nothing placed after the halt.
          expect(decoded.filter((e) => e._tag === "OrderPlaced" && e.seq > changed.seq)).toEqual([])
          expect(decoded.filter((e) => e._tag === "OrderPlaced").length).toBeGreaterThan(0)
          expect((yield* ControlAudit.history(run.id as RunId)).last.map((a) => [a.action, a.state ?? null])).toEqual([
            ["pause", null],
            ["trading", "halted"],
            ["resume", null]
          ])
          const replayed = yield* StoredRun.replay(run.id)
          expect(replayed.events).toBe(events.length)
          expect(replayed.checksum).toBe((yield* dave("runs.get", { run: run.id })).checksum)
        }), { timeout: 120_000 })

      it.scoped("a run waiting at an approval is halted at once: the halt refuses the held intent, the run goes on halted, and replays byte for byte", () =>
        Effect.gen(function*() {
          const base = yield* Http.baseUrl
          const erin = yield* rpcClient(base, (yield* createUser(base, yield* admin, "erin")).key)
          yield* erin("strategies.create", { strategy: guarded("held then halted", 60) })
          const run = yield* erin("runs.start", { strategy: "held then halted", mode: "backtest", data: { _tag: "synthetic", bars: 120 } })
          const [held] = yield* until(erin("approvals.pending", { run: run.id }), (p) => p.length > 0, "an approval")
          const started = Date.now()
          const halted = yield* erin("runs.trading", { run: run.id, state: "halted", reason: "not this one" })
          // At once, not at a next bar the run never takes while it waits.
          expect(Date.now() - started).toBeLessThan(10_000)
          expect(halted.transition).toMatchObject({ from: "active", to: "halted", cause: "operator", actor: "erin", reason: "not this one" })
          // The held intent is refused by the halt: an answer to it now says so.
          const late = yield* until(Effect.flip(erin("approvals.approve", { run: run.id, round: held!.round })), (e) => e._tag === "Conflict" && /rejected already/.test(e.reason), "the refusal")
          expect(late).toMatchObject({ _tag: "Conflict", reason: `round ${held!.round} of run ${run.id} was rejected already, by erin` })

          const events = yield* erin("runs.events", { run: run.id }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
          expect(events.at(-1)!.tag).toBe("RunCompleted")
          const decoded = events.map((e) => JSON.parse(e.json) as RunEvent)
          const requested = decoded.find((e) => e._tag === "TradingStateRequested")!
          expect(requested).toMatchObject({ to: "halted", actor: "erin", reason: "not this one", waiting: true })
          const resolved = decoded.find((e): e is Extract<RunEvent, { _tag: "ApprovalResolved" }> => e._tag === "ApprovalResolved" && e.round === held!.round)!
          expect(resolved).toMatchObject({ outcome: "rejected", by: "erin" })
          expect(resolved.reason).toMatch(/halt/)
          // Right after the command and its change, before anything else.
          expect(resolved.seq).toBe(requested.seq + 2)
          expect(decoded.filter((e) => e._tag === "OrderPlaced" && e.seq > requested.seq)).toEqual([])
          expect(decoded.filter((e) => e._tag === "ApprovalRequested" && e.seq > requested.seq)).toEqual([])
          expect((yield* ControlAudit.history(run.id as RunId)).last.map((a) => [a.action, a.state ?? null])).toEqual([["trading", "halted"]])
          const replayed = yield* StoredRun.replay(run.id)
          expect(replayed.events).toBe(events.length)
          expect(replayed.checksum).toBe((yield* erin("runs.get", { run: run.id })).checksum)
        }), { timeout: 120_000 })

      it.scoped("a run waiting at an approval is paused, halted, resumed and stopped at once, each as a run taking bars would be", () =>
        Effect.gen(function*() {
          const base = yield* Http.baseUrl
          const fay = yield* rpcClient(base, (yield* createUser(base, yield* admin, "fay")).key)
          yield* fay("strategies.create", { strategy: guarded("held and operated", 60) })
          const run = yield* fay("runs.start", { strategy: "held and operated", mode: "paper", data: { _tag: "synthetic", bars: 400 }, speed: 8_640_000 })
          const [held] = yield* until(fay("approvals.pending", { run: run.id }), (p) => p.length > 0, "an approval")
          const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
            Effect.gen(function*() {
              const started = Date.now()
              const value = yield* effect
              expect(Date.now() - started).toBeLessThan(10_000)
              return value
            })
          expect((yield* timed(fay("runs.pause", { run: run.id }))).status).toBe("paused")
          // Paused and waiting: halted at once, it stays paused, and the held intent is refused.
          const halted = yield* timed(fay("runs.trading", { run: run.id, state: "halted", reason: "stand still" }))
          expect(halted.transition).toMatchObject({ from: "active", to: "halted", actor: "fay" })
          expect((yield* fay("runs.get", { run: run.id })).status).toBe("paused")
          yield* until(fay("approvals.pending", { run: run.id }), (p) => p.length === 0, "the refusal")
          expect(yield* Effect.flip(fay("approvals.approve", { run: run.id, round: held!.round }))).toMatchObject({ _tag: "Conflict" })
          expect((yield* timed(fay("runs.resume", { run: run.id }))).status).toBe("running")
          // Halted, it takes bars again: a command now is taken at its next bar.
          const reduced = yield* timed(fay("runs.trading", { run: run.id, state: "reducing", reason: "closing out" }))
          expect(reduced.transition).toMatchObject({ from: "halted", to: "reducing" })
          expect((yield* timed(fay("runs.stop", { run: run.id }))).status).toBe("stopped")
          expect((yield* ControlAudit.history(run.id as RunId)).last.map((a) => [a.action, a.state ?? null])).toEqual([
            ["pause", null],
            ["trading", "halted"],
            ["resume", null],
            ["trading", "reducing"],
            ["stop", null]
          ])
          // Reproduced as far as it was recorded (a divergence fails the replay).
          const replayed = yield* StoredRun.replay(run.id)
          expect(replayed.status).toBe("stopped")
          expect(replayed.events).toBe((yield* Runs.events(run.id as RunId, 0, 100_000)).length)

          // Another waiting at an approval, stopped there: at once, its held intent cancelled.
          const other = yield* fay("runs.start", { strategy: "held and operated", mode: "paper", data: { _tag: "synthetic", bars: 400 }, speed: 8_640_000 })
          const [waits] = yield* until(fay("approvals.pending", { run: other.id }), (p) => p.length > 0, "another approval")
          expect((yield* timed(fay("runs.stop", { run: other.id }))).status).toBe("stopped")
          expect(yield* Effect.flip(fay("approvals.approve", { run: other.id, round: waits!.round }))).toMatchObject({ _tag: "Conflict", reason: expect.stringContaining("cancelled") })
        }), { timeout: 120_000 })

      it.scoped("bad input is a typed refusal naming the field: an unknown state, an oversized or blank reason (a pause's, resume's and stop's too); an unknown run is not found", () =>
        Effect.gen(function*() {
          const base = yield* Http.baseUrl
          const key = (yield* createUser(base, yield* admin, "carol")).key
          const carol = yield* rpcClient(base, key)
          yield* carol("strategies.create", { strategy: strategy("carol's") })
          const run = yield* carol("runs.start", { strategy: "carol's", mode: "paper", data: { _tag: "synthetic", bars: 100_000 }, speed: 1 })
          expect(yield* raw(base, key, "runs.trading", { run: run.id, state: "paused" })).toMatchObject({ _tag: "InvalidRequest", field: "state" })
          expect(yield* raw(base, key, "runs.trading", { run: run.id, state: "halted", reason: "x".repeat(501) })).toMatchObject({ _tag: "InvalidRequest", field: "reason" })
          expect(yield* raw(base, key, "runs.trading", { run: run.id, state: "halted", reason: "" })).toMatchObject({ _tag: "InvalidRequest", field: "reason" })
          expect(yield* raw(base, key, "runs.trading", { run: run.id, state: "halted", reason: "   " })).toMatchObject({ _tag: "InvalidRequest", field: "reason" })
          expect(yield* raw(base, key, "runs.trading", { run: "nope#1", state: "halted" })).toMatchObject({ _tag: "RunNotFound", run: "nope#1" })
          // A pause's, resume's or stop's reason likewise.
          for (const tag of ["runs.pause", "runs.resume", "runs.stop"]) {
            for (const reason of ["", "   ", "x".repeat(501), 7]) {
              expect(yield* raw(base, key, tag, { run: run.id, reason })).toMatchObject({ _tag: "InvalidRequest", field: "reason" })
            }
          }
          expect((yield* carol("runs.get", { run: run.id })).status).toBe("running")
          // A paused run holds at its next bar and takes the command there at once: not left waiting for a bar a day away.
          yield* carol("runs.pause", { run: run.id, reason: "news pending" })
          expect((yield* carol("runs.get", { run: run.id })).control?.last.at(-1)).toMatchObject({ action: "pause", reason: "news pending" })
          const halted = yield* carol("runs.trading", { run: run.id, state: "halted" })
          expect(halted.transition).toMatchObject({ from: "active", to: "halted", actor: "carol", reason: "halted by carol" })
          expect((yield* carol("runs.get", { run: run.id })).status).toBe("paused")
          yield* carol("runs.stop", { run: run.id })
        }), { timeout: 120_000 })
    }
  )
}
