/**
 * A run no process can resume: its server stopped, and the server after it cannot make its agents
 * (an analyst type removed from the registry since, or params it now refuses). Each start-up and
 * takeover look tried it again, launching it to fail. Now the server says it once, with what ends
 * it, and tries it no more. On every back-end; what needs two servers on one database, on
 * Postgres only.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Exit, FiberRef, HashSet, Layer, Logger, Scope } from "effect"
import { analysts } from "../../agents/registry.js"
import type { EventBusService } from "../../src/bus/EventBus.js"
import { EventBus } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { smaStrategy } from "../store/fixtures/workload.js"
import { createUsers, principals } from "./fixtures.js"

const alice = principals["sk_alice"]

/** This build without the analyst type of the runs below (`smaStrategy`'s). */
const withoutSma = new Map([...analysts].filter(([type]) => type !== "sma_crossover"))

/** A run manager (a server) on `bus`, in a scope of its own (closing it shuts the server down), with what it logs. */
const serverOn = (bus: EventBusService, options: RunManager.Options = {}) =>
  Effect.gen(function*() {
    const logged: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) =>
      void logged.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    )
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(RunManager.layerWith(options).pipe(Layer.provide(Layer.succeed(EventBus, bus))), scope).pipe(
      Effect.locallyWith(FiberRef.currentLoggers, HashSet.add(capture))
    )
    const shutdown = Scope.close(scope, Exit.void)
    yield* Effect.addFinalizer(() => shutdown)
    return { manager: Context.get(context, RunManager.RunManager), shutdown, logged }
  })

/** A paper run of a new strategy of alice's (an `sma_crossover` analyst), well under way: `events` of its events seen. */
const paperRunUnderWay = (bus: InProcessBus.InProcessBusService, manager: RunManager.RunManagerService, name: string, events = 5) =>
  Effect.gen(function*() {
    yield* Strategies.create(alice.userId, smaStrategy(name))
    const run = yield* manager.start(alice, { strategy: name, mode: "paper", data: { _tag: "synthetic", bars: 6_000 }, speed: 20 * 86_400 })
    const follower = yield* bus.subscribe(run.id)
    let seen = 0
    for (let i = 0; i < 100 && seen < events; i++) seen += (yield* follower.takeAllWithin(100)).filter((d) => d._tag === "Event").length
    expect(seen).toBeGreaterThanOrEqual(events)
    return run
  })

const WHY = String.raw`its strategy's agents\[0\]\.type: unknown agent type "sma_crossover"; the registered ones are [^;]*; this build cannot re-execute it`

for (const backend of backends) {
  const environment = Layer.mergeAll(InProcessBus.layerTest(), Layer.effectDiscard(Effect.orDie(createUsers))).pipe(
    Layer.provideMerge(backend.store)
  )
  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`a run no server can resume (${backend.name})`, (it) => {
    it.scoped("a start-up says it once, with what ends it, and launches nothing: its followers are not told it ended", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const run = yield* paperRunUnderWay(bus, a.manager, "type gone")
        yield* a.shutdown
        expect((yield* Runs.get(run.id)).status).toBe("running")

        // The next start is of a build without its analyst type: said once, with what ends it; nothing launched.
        const b = yield* serverOn(bus, { registry: withoutSma })
        const outcomes = yield* b.manager.resumeUnfinished()
        expect(outcomes).toEqual([{ run: run.id, ref: "type gone#1", outcome: "failed", reason: expect.stringMatching(new RegExp(`^${WHY}; not tried again`)) }])
        expect(outcomes[0]!.reason).toContain(`swarm runs stop ${run.id}`)
        expect(b.manager.live()).toBe(0)
        // Not "a run failed" with its cause, nor its followers told it ended: it did not.
        expect(b.logged).toEqual([])
        const follower = yield* bus.subscribe(run.id)
        expect((yield* follower.takeAllWithin(100)).filter((d) => d._tag !== "Event")).toEqual([])

        // Ended by hand (it is no unfinished run for the tests after this one).
        yield* Runs.markEnded(run.id, "stopped", "stopped by the test")
      }), { timeout: 60_000 })
  })
}

const postgres = backends.find((backend) => backend.name === "postgres")

describe.skipIf(postgres === undefined)("a run no server can resume, among servers on one Postgres", () => {
  // A skipped suite is still collected.
  if (postgres === undefined) return
  const environment = Layer.mergeAll(InProcessBus.layerTest(), Layer.effectDiscard(Effect.orDie(createUsers))).pipe(
    Layer.provideMerge(postgres.store)
  )
  layer(environment, { timeout: startTimeout, excludeTestServices: true })("servers", (it) => {
    it.scoped("the takeover says it once and does not try it again", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.InProcessBus
        const a = yield* serverOn(bus)
        const run = yield* paperRunUnderWay(bus, a.manager, "type gone, taken over")
        yield* a.shutdown
        const b = yield* serverOn(bus, { registry: withoutSma, takeover: { every: Duration.millis(100), grace: Duration.zero } })
        // Its looks come every 100 ms: many in two seconds.
        for (let i = 0; i < 40 && !b.logged.some((line) => line.includes(run.id)); i++) yield* Effect.sleep("100 millis")
        yield* Effect.sleep("1500 millis")
        expect(b.logged).toEqual([expect.stringMatching(new RegExp(`^WARN could not take over run ${run.id} \\(type gone, taken over#1\\): ${WHY}; not tried again`))])
        expect(b.manager.live()).toBe(0)
        // Its start-up tried it: its looks do not (before, the first look after it tried again).
        const c = yield* serverOn(bus, { registry: withoutSma })
        expect(yield* c.manager.resumeUnfinished()).toMatchObject([{ run: run.id, outcome: "failed" }])
        expect(yield* c.manager.takeOver()).toEqual([])
        expect(yield* c.manager.takeOver()).toEqual([])
        expect(c.logged).toEqual([])
        yield* c.shutdown

        yield* Runs.markEnded(run.id, "stopped", "stopped by the test")
      }), { timeout: 60_000 })

  })
})
