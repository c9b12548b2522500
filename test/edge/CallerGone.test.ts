/**
 * A caller that goes away mid-call (a client aborting its request interrupts the handler) leaves
 * the run manager as a finished call would, or as no call: `runs.start` interrupted at any moment
 * leaves no run that executes out of reach (the moment is searched for: each start is interrupted
 * after a growing delay), and `runs.pause` / `runs.resume` cut off while they write the run's row
 * (held by a lock) leave the run held exactly when its row says paused; a webhook alert whose
 * sender goes away once it is in the run's inbox is recorded taken.
 */
import { expect, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Either, Exit, Fiber, Layer, Schema } from "effect"
import { canonicalSignal, type ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { RunId, StrategyId, Timestamp } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as RecordedSignals from "../../src/store/RecordedSignals.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as WebhookStore from "../../src/store/Webhooks.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy, symbolsOf } from "../store/fixtures/workload.js"
import { createUsers, managerOn, principals } from "./fixtures.js"

const alice = principals["sk_alice"]
const usersLayer = Layer.effectDiscard(Effect.orDie(createUsers))

/** Wall-clock microseconds (a timer: `Effect.sleep` rounds to milliseconds). */
const pause = (micros: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, micros / 1_000)))

/** The webhook handler's delivery of `signal` (src/edge/Webhooks.ts): staged in the runs' inboxes until its claim commits. */
const stagedIn = (manager: RunManager.RunManagerService, strategy: StrategyId, signal: ExternalSignal) =>
  Effect.map(manager.stage(strategy, signal), (staged) => ({ runs: staged.runs, signal, settle: staged.settle }))

/** The alerts `run` has taken, as its events record them, once it has taken `count` (or after 5 s), and half a second more. */
const takenBy = (run: RunId, count: number) =>
  Effect.gen(function*() {
    const read = Effect.map(RecordedSignals.read(run), (taken) => [...taken.values()].flat().map((s) => s.alertId))
    for (let i = 0; i < 50 && (yield* read).length < count; i++) yield* Effect.sleep("100 millis")
    // A while longer: a second delivery would be taken by now.
    yield* Effect.sleep("500 millis")
    return yield* read
  })

/** A live paper run of a new strategy of alice's with a tradingview analyst, and an alert for it. */
const alertedRun = (manager: RunManager.RunManagerService, name: string, alertId: string) =>
  Effect.gen(function*() {
    const created = yield* Strategies.create(alice.userId, Schema.decodeUnknownSync(Strategy)({
      name,
      symbols: symbolsOf(2),
      agents: [{ type: "tradingview", params: { validity: 50 } }],
      sizing: { mode: "percent_of_equity", value: 10 }
    }))
    const run = yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })
    const symbol = symbolsOf(2)[0]!
    const signal = canonicalSignal({ source: "tradingview", symbol, ticker: symbol, action: "buy", price: 51 as never, alertId, receivedAt: Date.now() as Timestamp })
    return { created, run, signal }
  })

for (const backend of backends) {
  const environment = Layer.mergeAll(InProcessBus.layerTest(), usersLayer).pipe(Layer.provideMerge(backend.store))
  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`a caller gone mid-call (${backend.name})`, (it) => {
    it.scoped("runs.start interrupted at any moment: every run it made is live here, and a stop ends it and its followers", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const manager = yield* managerOn(bus)
        const strategy = yield* Strategies.create(alice.userId, smaStrategy("gone at start"))
        let cut = 0
        let reached = 0
        for (let delay = 0; delay <= 40_000; delay += 500) {
          const starting = yield* Effect.fork(
            manager.start(alice, { strategy: "gone at start", mode: "paper", data: { _tag: "synthetic", bars: 600 }, speed: 20 * 86_400 })
          )
          yield* pause(delay)
          if (Exit.isInterrupted(yield* Fiber.interrupt(starting))) cut++
          // What the start made executes here: reachable, and a stop ends it for its followers too.
          const made = yield* Runs.list({ strategy: strategy.id, status: "running" })
          expect([delay, manager.live()]).toEqual([delay, made.length])
          for (const run of made) {
            const follower = yield* bus.subscribe(run.id)
            expect((yield* manager.stop(alice, run.id)).status).toBe("stopped")
            let ended = false
            for (let i = 0; i < 200 && !ended; i++) ended = (yield* follower.takeAllWithin(50)).some((d) => d._tag !== "Event")
            expect(ended).toBe(true)
            reached++
          }
        }
        expect(cut).toBeGreaterThan(0)
        expect(reached).toBeGreaterThan(0)
        expect(manager.live()).toBe(0)
      }), { timeout: 180_000 })

    it.scoped("runs.pause and runs.resume cut off while their row is written: the run is held exactly when its row says paused", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const bus = yield* InProcessBus.InProcessBus
        const manager = yield* managerOn(bus)
        yield* Strategies.create(alice.userId, smaStrategy("gone at pause"))
        const run = yield* manager.start(alice, { strategy: "gone at pause", mode: "paper", data: { _tag: "synthetic", bars: 6_000 }, speed: 20 * 86_400 })
        const status = (answer: Either.Either<{ readonly status: string }, { readonly _tag: string }>) =>
          Either.isLeft(answer) ? answer.left._tag : answer.right.status
        // Every write of a run's status takes half a second or so (a slow disk, a busy server): a
        // call is cut off while it waits on it. Dropped with the test.
        yield* Effect.acquireRelease(
          Effect.orDie(Effect.zipRight(
            sql.unsafe(`create or replace function swarm_test_slow_status() returns trigger language plpgsql as $$
              begin perform count(*) from generate_series(1, 1500000); return new; end $$`),
            sql.unsafe(`create trigger swarm_test_slow_status before update of status on runs
              for each row when (new.status in ('running', 'paused')) execute function swarm_test_slow_status()`)
          )),
          () => Effect.ignore(sql.unsafe(`drop trigger if exists swarm_test_slow_status on runs`))
        )
        /** `call`, cut off while it writes the run's row. */
        const cutOff = (call: typeof manager.pause) =>
          Effect.gen(function*() {
            const changing = yield* Effect.fork(call(alice, run.id))
            yield* pause(60_000)
            yield* Fiber.interrupt(changing)
            // Whatever the database still does of the write, it has done.
            yield* Effect.sleep("1 second")
            return (yield* Runs.get(run.id)).status
          }).pipe(Effect.orDie)

        // Running: a pause cut off. A pause again is "paused already" exactly when the row says paused.
        const afterPause = yield* cutOff(manager.pause)
        expect([afterPause, status(yield* Effect.either(manager.pause(alice, run.id)))]).toEqual(
          [afterPause, afterPause === "paused" ? "Conflict" : "paused"]
        )
        // Paused now, either way: a resume cut off. A resume again is "not paused" exactly when the row says running.
        const afterResume = yield* cutOff(manager.resume)
        expect([afterResume, status(yield* Effect.either(manager.resume(alice, run.id)))]).toEqual(
          [afterResume, afterResume === "running" ? "Conflict" : "running"]
        )
        // Running again: a live run that a stop ends.
        expect((yield* Runs.get(run.id)).status).toBe("running")
        expect((yield* manager.stop(alice, run.id)).status).toBe("stopped")
      }), { timeout: 60_000 })

    it.scoped("a webhook alert whose sender goes away once it is delivered is recorded taken: the sender's retry is a duplicate", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const manager = yield* managerOn(bus)
        const { created, run, signal } = yield* alertedRun(manager, "alerted", "alert-1")
        // The webhook handler's delivery (src/edge/Webhooks.ts), saying when it has put the signal in the run's inbox.
        const delivered = yield* Deferred.make<void>()
        const deliver = Effect.tap(stagedIn(manager, created.id, signal), () => Deferred.succeed(delivered, void 0))
        const first = yield* Effect.fork(WebhookStore.claimAlert(created.id, signal.alertId, deliver))
        yield* Deferred.await(delivered)
        // The sender goes away now (a client abort interrupts the handler), and sends it again.
        yield* Fiber.interrupt(first)
        const again = yield* WebhookStore.claimAlert(created.id, signal.alertId, stagedIn(manager, created.id, signal))
        expect(again).toEqual({ duplicate: true, runs: [run.id] })
        expect(yield* takenBy(run.id, 1)).toEqual(["alert-1"])
        expect((yield* manager.stop(alice, run.id)).status).toBe("stopped")
      }), { timeout: 60_000 })

    it.scoped("a webhook alert whose claim fails to commit after its delivery is not taken: the key is free, and the sender's retry is the one delivery", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const sql = yield* SqlClient.SqlClient
        const manager = yield* managerOn(bus)
        const { created, run, signal } = yield* alertedRun(manager, "alerted, commit fails", "doomed-1")
        // The database refuses the claim at its commit (a deferred check), after the alert was put in the run's inbox.
        yield* sql.unsafe(`create function refuse_doomed() returns trigger language plpgsql as $$
          begin if new.alert_key like 'doomed%' then raise exception 'refused at commit'; end if; return new; end $$`)
        yield* sql.unsafe(`create constraint trigger refuse_doomed after update on webhook_alerts deferrable initially deferred
          for each row execute function refuse_doomed()`)
        const refused = yield* Effect.flip(WebhookStore.claimAlert(created.id, signal.alertId, stagedIn(manager, created.id, signal)))
        expect([refused._tag, refused.reason]).toEqual(["StoreError", expect.stringContaining("refused at commit")])
        expect(yield* takenBy(run.id, 1)).toEqual([])
        // The sender retries once the database takes it: delivered, once.
        yield* sql.unsafe(`drop trigger refuse_doomed on webhook_alerts`)
        yield* sql.unsafe(`drop function refuse_doomed()`)
        expect(yield* WebhookStore.claimAlert(created.id, signal.alertId, stagedIn(manager, created.id, signal))).toEqual({ duplicate: false, runs: [run.id] })
        expect(yield* takenBy(run.id, 1)).toEqual(["doomed-1"])
        expect((yield* manager.stop(alice, run.id)).status).toBe("stopped")
      }), { timeout: 60_000 })
  })
}
