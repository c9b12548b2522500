/**
 * Memory probe for `bench/kernel.ts`, run in a fresh `node --expose-gc` process: in a process that
 * has already freed memory, V8 reuses those pages and the RSS delta of new actors reads near zero or
 * negative. Prints one JSON line `{ heapPerActor, rssPerActor }` for the parent to read.
 */
import { Effect, Scope } from "effect"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import { type Counter, DefaultCounter, Get } from "./counter.js"
import { forceGc } from "./report.js"

const COUNT = Number(process.argv[2] ?? 20_000)
const WARMUP = 200

const probe = Effect.gen(function*() {
  const system = yield* ActorSystem.make()
  // Load and run the spawn path once so lazily created code and caches are not charged to the actors.
  const warm: Array<Counter> = []
  for (let i = 0; i < WARMUP; i++) warm.push(yield* system.spawn(DefaultCounter))
  for (const ref of warm) yield* ref.ask(new Get())
  const refs: Array<Counter> = new Array(COUNT)
  const get = new Get()
  forceGc()
  const before = process.memoryUsage()
  for (let i = 0; i < COUNT; i++) refs[i] = yield* system.spawn(DefaultCounter)
  // Every actor handles one message, so each has been activated (its runtime and context built)
  // and has gone idle again: the figure is for an actor that has worked, not one never touched.
  for (let i = 0; i < COUNT; i++) yield* refs[i]!.ask(get)
  yield* Effect.sleep("20 millis")
  forceGc()
  const after = process.memoryUsage()
  const live = yield* system.liveActors
  if (live !== COUNT + WARMUP) return yield* Effect.dieMessage(`${live} live actors, expected ${COUNT + WARMUP}`)
  process.stdout.write(
    JSON.stringify({
      heapPerActor: (after.heapUsed - before.heapUsed) / COUNT,
      rssPerActor: (after.rss - before.rss) / COUNT
    }) + "\n"
  )
})

// The system's scope is never closed: stopping every actor would take seconds and the process ends here anyway.
Effect.runPromise(Effect.flatMap(Scope.make(), (scope) => Scope.extend(probe, scope))).catch((error: unknown) => {
  process.stderr.write(`idle memory probe failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exitCode = 1
})
