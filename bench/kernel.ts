/**
 * Kernel benchmark: tell throughput (one and eight producers), sequential ask latency, spawn and
 * stop rates, and the memory of an idle actor. Every round runs in a fresh `ActorSystem`; each figure
 * is the median of measured rounds that follow discarded warm-up rounds.
 */
import { execFile } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { Effect, Schema } from "effect"
import * as ActorSystem from "../src/actor/ActorSystem.js"
import { Add, type Counter, DefaultCounter, Get } from "./internal/counter.js"
import { emit, machine, median, percentile, progress, spread } from "./internal/report.js"
import { nodeArgs } from "./internal/loader.js"

const TELL_N = 2_000_000
const TELL_WARMUP = 2
const TELL_ROUNDS = 4
const PRODUCERS = 8
const ASK_WARMUP = 20_000
const ASK_N = 100_000
const ASK_ROUNDS = 3
const SPAWN_N = 20_000
const SPAWN_WARMUP_N = 2_000
const SPAWN_ROUNDS = 3
const MEMORY_N = 20_000
const MEMORY_ROUNDS = 2

const MACHINE = machine()
const figure = (metric: string, value: number, unit: string, workload: string) =>
  emit({ bench: "kernel", metric, value, unit, workload, machine: MACHINE })

const now = () => performance.now()
const millions = (value: number) => `${(value / 1e6).toFixed(2)}M`
const integer = (value: number) => String(Math.round(value))
const micros = (value: number) => value.toFixed(1)

/** Run `body` against a fresh system, closed (every remaining actor stopped) when it ends. */
const withSystem = <A, E>(body: (system: ActorSystem.Service) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(ActorSystem.make(), body))

// --- tell ------------------------------------------------------------------------------------------

/**
 * One round: `producers` fibers tell `n` messages in total into a fresh actor, then an `ask` from
 * the timing fiber returns once every `Add` before it has been handled. Returns msg/s.
 */
const tellRound = (producers: number, n: number) =>
  withSystem((system) =>
    Effect.gen(function*() {
      const ref: Counter = yield* system.spawn(DefaultCounter)
      // One message reused by every tell, as a sender relaying a message it holds would: the
      // figure is the kernel's cost, not `Schema.TaggedClass` construction (validated by default).
      const add = new Add({ n: 1 })
      const get = new Get()
      const each = n / producers
      const produce = Effect.gen(function*() {
        for (let i = 0; i < each; i++) yield* ref.tell(add)
      })
      const t0 = now()
      if (producers === 1) yield* produce
      else yield* Effect.forEach(Array.from({ length: producers }), () => produce, { concurrency: "unbounded", discard: true })
      const total = yield* ref.ask(get, { timeout: "60 seconds" })
      const ms = now() - t0
      // Not a timing assertion: a round that lost messages would have measured something else.
      if (total !== n) return yield* Effect.dieMessage(`the counter saw ${total} of ${n} messages`)
      return (n / ms) * 1000
    })
  )

const tellFigure = (metric: string, producers: number) =>
  Effect.gen(function*() {
    const rates: Array<number> = []
    for (let round = 0; round < TELL_WARMUP + TELL_ROUNDS; round++) {
      const rate = yield* tellRound(producers, TELL_N)
      progress(`${metric} ${round < TELL_WARMUP ? "warm-up" : "round"} ${round}: ${millions(rate)} msg/s`)
      if (round >= TELL_WARMUP) rates.push(rate)
    }
    const senders = producers === 1
      ? "1 producer fiber"
      : `${producers} producer fibers forked concurrently (${TELL_N / producers} each)`
    figure(
      metric,
      Math.round(median(rates)),
      "msg/s",
      `${TELL_N} x yield* ref.tell(add) from ${senders} into one actor; add is one Add built once before the ` +
        `loop and reused (no construction in the loop); default mailbox (capacity 1024, backpressure); behavior ` +
        `Effect.succeed(state + n); timed from the first tell until an ask queued behind them returns; fresh ` +
        `system and actor per round; ${TELL_WARMUP} warm-up rounds, then ${spread(rates, millions)} msg/s`
    )
  })

// --- ask -------------------------------------------------------------------------------------------

/** Sequential asks, one in flight, in µs; each `Get` is constructed before its clock starts. */
const askLatencies = (ref: Counter, n: number) =>
  Effect.gen(function*() {
    const latencies = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      const get = new Get()
      const t0 = now()
      yield* ref.ask(get)
      latencies[i] = (now() - t0) * 1000
    }
    return latencies.sort()
  })

const askFigures = withSystem((system) =>
  Effect.gen(function*() {
    const ref: Counter = yield* system.spawn(DefaultCounter)
    yield* askLatencies(ref, ASK_WARMUP)
    const p50s: Array<number> = []
    const p99s: Array<number> = []
    for (let round = 0; round < ASK_ROUNDS; round++) {
      const sorted = yield* askLatencies(ref, ASK_N)
      p50s.push(percentile(sorted, 0.5))
      p99s.push(percentile(sorted, 0.99))
      progress(
        `ask round ${round}: p50 ${micros(percentile(sorted, 0.5))} µs, p99 ${micros(percentile(sorted, 0.99))} µs, ` +
          `p99.9 ${micros(percentile(sorted, 0.999))} µs, max ${integer(sorted[ASK_N - 1]!)} µs`
      )
    }
    const workload = (q: string, values: Array<number>) =>
      `${q} (nearest rank) of ${ASK_N} sequential asks, one in flight, from a fiber outside any actor to one actor ` +
      `(default mailbox; replies with its state via ctx.reply), each timed with performance.now() around ` +
      `yield* ref.ask(get), the Get constructed before the clock starts; ${ASK_WARMUP} warm-up asks, then ` +
      `${spread(values, micros)} µs`
    figure("ask_p50_us", Number(median(p50s).toFixed(2)), "us", workload("p50", p50s))
    figure("ask_p99_us", Number(median(p99s).toFixed(2)), "us", workload("p99", p99s))
  })
)

// --- spawn and stop ----------------------------------------------------------------------------------

/**
 * Spawn `n` idle top-level actors from one fiber, as fast as it can, until the last one answers an
 * ask (an actor is ready to receive when `spawn` returns; it gets a fiber with its first message);
 * then stop them one by one, each `system.stop` returning once its actor has stopped for good.
 */
const spawnStopRound = (n: number) =>
  withSystem((system) =>
    Effect.gen(function*() {
      const refs: Array<Counter> = new Array(n)
      const get = new Get()
      const t0 = now()
      for (let i = 0; i < n; i++) refs[i] = yield* system.spawn(DefaultCounter)
      yield* refs[n - 1]!.ask(get)
      const t1 = now()
      for (let i = 0; i < n; i++) yield* system.stop(refs[i]!)
      const t2 = now()
      const live = yield* system.liveActors
      if (live !== 0) return yield* Effect.dieMessage(`${live} actors still live after stopping all ${n}`)
      return { spawnRate: (n / (t1 - t0)) * 1000, stopRate: (n / (t2 - t1)) * 1000 }
    })
  )

const spawnStopFigures = Effect.gen(function*() {
  const warm = yield* spawnStopRound(SPAWN_WARMUP_N)
  progress(`spawn warm-up: ${integer(warm.spawnRate)} actors/s, stop ${integer(warm.stopRate)} actors/s`)
  const spawnRates: Array<number> = []
  const stopRates: Array<number> = []
  for (let round = 0; round < SPAWN_ROUNDS; round++) {
    const { spawnRate, stopRate } = yield* spawnStopRound(SPAWN_N)
    progress(`spawn round ${round}: ${integer(spawnRate)} actors/s, stop ${integer(stopRate)} actors/s`)
    spawnRates.push(spawnRate)
    stopRates.push(stopRate)
  }
  const rounds = `fresh system per round; 1 warm-up round of ${SPAWN_WARMUP_N} actors, then`
  figure(
    "spawn_rate",
    Math.round(median(spawnRates)),
    "actors/s",
    `${SPAWN_N} idle actors (default mailbox, initial state 0) spawned top-level, sequentially from one fiber ` +
      `with yield* system.spawn, timed until the last one answers an ask; ${rounds} ${spread(spawnRates, integer)} actors/s`
  )
  figure(
    "stop_rate",
    Math.round(median(stopRates)),
    "actors/s",
    `the same ${SPAWN_N} idle actors stopped sequentially from one fiber with yield* system.stop(ref) (each returns ` +
      `once that actor has stopped for good); ${rounds} ${spread(stopRates, integer)} actors/s`
  )
})

// --- memory ------------------------------------------------------------------------------------------

const MemoryProbe = Schema.parseJson(Schema.Struct({ heapPerActor: Schema.Number, rssPerActor: Schema.Number }))
const probePath = join(dirname(fileURLToPath(import.meta.url)), "internal", "idleMemory.ts")

/** One fresh `node --expose-gc` process per round: see `internal/idleMemory.ts` for why. */
const memoryRound = Effect.tryPromise(() =>
  promisify(execFile)(process.execPath, ["--expose-gc", ...nodeArgs, probePath, String(MEMORY_N)], {
    cwd: dirname(dirname(probePath))
  })
).pipe(Effect.flatMap(({ stdout }) => Schema.decodeUnknown(MemoryProbe)(stdout.trim())))

const memoryFigures = Effect.gen(function*() {
  const heap: Array<number> = []
  const rss: Array<number> = []
  for (let round = 0; round < MEMORY_ROUNDS; round++) {
    const { heapPerActor, rssPerActor } = yield* memoryRound
    progress(`memory round ${round}: heap ${integer(heapPerActor)} B/actor, rss ${integer(rssPerActor)} B/actor`)
    heap.push(heapPerActor)
    rss.push(rssPerActor)
  }
  const how = (reading: string) =>
    `${reading} after minus before spawning ${MEMORY_N} idle top-level actors (default mailbox, initial state 0; ` +
    `each answered one ask, so each was activated and went idle again, then 20 ms of quiet), global.gc() before each reading, divided by ${MEMORY_N} ` +
    `(includes the caller's array of refs, 8 B each); each round a fresh node --expose-gc process after 200 warm-up ` +
    `spawns;`
  figure(
    "idle_actor_bytes",
    Math.round(median(heap)),
    "bytes",
    `${how("process.memoryUsage().heapUsed")} ${spread(heap, integer)} bytes`
  )
  figure(
    "idle_actor_rss_bytes",
    Math.round(median(rss)),
    "bytes",
    `${how("process.memoryUsage().rss")} ${spread(rss, integer)} bytes`
  )
})

// Throughput first, on a small heap; the spawn rounds leave hundreds of MB of freed heap behind.
const main = Effect.gen(function*() {
  yield* tellFigure("tell_throughput", 1)
  yield* tellFigure("fanin_throughput", PRODUCERS)
  yield* askFigures
  yield* spawnStopFigures
  yield* memoryFigures
})

Effect.runPromise(main).catch((error: unknown) => {
  progress(`kernel benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  process.exitCode = 1
})
