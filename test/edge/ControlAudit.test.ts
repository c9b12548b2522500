/**
 * Every operator action on a run that took effect — pause, resume, stop, approve, reject — is an
 * entry of the run's control log (`control:<run>` in the chained audit log): who (user id and
 * name), what, when, and the round and reason where there is one; an action refused (a pause of a
 * paused run, an answer to a round answered already, someone else's run) is not. None of it enters
 * the run's event log, which replays byte for byte. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as Audit from "../../src/store/Audit.js"
import * as ControlAudit from "../../src/store/ControlAudit.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { createUsers, guarded, managerOn, principals, until } from "./fixtures.js"

const alice = principals["sk_alice"]
const bob = principals["sk_bob"]
const root = principals["sk_root"]

/** The run's control log as stored: each entry's kind and parsed text, in order. */
const controlLog = (run: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ kind: string; entry: string }>`select kind, entry from audit_log where stream = ${`control:${run}`} order by position`).pipe(
    Effect.map((rows) => rows.map((row): Record<string, unknown> => ({ kind: row.kind, ...JSON.parse(row.entry) as Record<string, unknown> })))
  )

const usersLayer = Layer.effectDiscard(Effect.orDie(createUsers))

for (const backend of backends) {
  const environment = Layer.mergeAll(InProcessBus.layerTest(), usersLayer).pipe(Layer.provideMerge(backend.store))
  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`the control log of a run (${backend.name})`, (it) => {
    it.scoped("pause, resume, stop, approve and reject are logged once each, with who and when; refused ones are not; the run's events say none of it", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        yield* Strategies.create(alice.userId, guarded("audited control", 600))
        const manager = yield* managerOn(bus)
        const run = yield* manager.start(alice, { strategy: "audited control", mode: "backtest", data: { _tag: "synthetic", bars: 60 } })
        const [first] = yield* until(manager.pending(alice, run.id), (p) => p.length > 0, "the first approval")
        const before = Date.now()

        // An admin pauses alice's run; a second pause is refused, and bob cannot see the run at all.
        expect((yield* manager.pause(root, run.id)).status).toBe("paused")
        expect(yield* Effect.flip(manager.pause(alice, run.id))).toMatchObject({ _tag: "Conflict" })
        expect(yield* Effect.flip(manager.resume(bob, run.id))).toMatchObject({ _tag: "RunNotFound" })
        yield* manager.reject(alice, run.id, first!.round, "too big for a Friday")
        expect(yield* Effect.flip(manager.approve(alice, run.id, first!.round))).toMatchObject({ _tag: "Conflict" })
        expect((yield* manager.resume(alice, run.id)).status).toBe("running")
        expect(yield* Effect.flip(manager.resume(alice, run.id))).toMatchObject({ _tag: "Conflict" })
        const [second] = yield* until(manager.pending(alice, run.id), (p) => p.length > 0 && p[0]!.round !== first!.round, "a second approval")
        yield* manager.approve(root, run.id, second!.round)
        expect((yield* manager.stop(alice, run.id)).status).toBe("stopped")
        expect(yield* Effect.flip(manager.stop(alice, run.id))).toMatchObject({ _tag: "Conflict" })

        const log = yield* controlLog(run.id)
        expect(log).toEqual([
          { kind: "pause", action: "pause", run: run.id, by: { id: "root", name: "root" }, at: expect.any(String) },
          { kind: "reject", action: "reject", run: run.id, by: { id: "alice", name: "alice" }, at: expect.any(String), round: first!.round, reason: "too big for a Friday" },
          { kind: "resume", action: "resume", run: run.id, by: { id: "alice", name: "alice" }, at: expect.any(String) },
          { kind: "approve", action: "approve", run: run.id, by: { id: "root", name: "root" }, at: expect.any(String), round: second!.round },
          { kind: "stop", action: "stop", run: run.id, by: { id: "alice", name: "alice" }, at: expect.any(String) }
        ])
        // Wall-clock times, in order.
        const times = log.map((entry) => Date.parse(entry.at as string))
        expect(times[0]).toBeGreaterThanOrEqual(before - 1_000)
        expect(times[4]).toBeLessThanOrEqual(Date.now())
        expect([...times].sort((a, b) => a - b)).toEqual(times)

        // The run's events carry none of it (the answers are the run's own `ApprovalResolved`, as before).
        const events = yield* Runs.events(run.id as RunId)
        expect(events.filter((e) => e.body.includes("\"by\":{") || e.body.includes("\"at\":\"20"))).toEqual([])

        const report = yield* Audit.verifyRun(run.id)
        expect(report).toMatchObject({ ok: true, control: 5 })
        expect(yield* ControlAudit.history(run.id as RunId, 2)).toMatchObject({
          count: 5,
          last: [{ action: "approve", by: { name: "root" } }, { action: "stop", by: { name: "alice" } }]
        })
      }), { timeout: 60_000 })
  })
}
