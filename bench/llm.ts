/**
 * LLM benchmark (`npm run bench -- llm`), issue 6:
 *
 * - `cached_decisions_per_sec`: a backtest whose one `llm_analyst` is answered entirely from the
 *   answer cache. A first run fills a shared in-memory cache from an instant in-process model; the
 *   timed runs are the same backtest again, every call a hit (checked: zero model calls, every
 *   `LlmCalled` a hit). Also its bars/s and events/s, and `cached_llm_share`: how much of such a
 *   run is the LLM analyst, against the same run with one classic analyst instead.
 * - `parallel_round_ms`: a slice of one symbol with three LLM analysts, each asking the real Ollama
 *   backend (src/llm/Ollama.ts) on the test suite's loopback fake of Ollama's HTTP API
 *   (test/llm/FakeOllama.ts) answering in 200 ms: the three calls run in parallel, so a slice
 *   takes about 200 ms, not 600.
 *
 * Sizes from the environment: LLM_SYMBOLS, LLM_BARS, LLM_ROUNDS (cached), LLM_ROUND_BARS,
 * LLM_MODEL_MS (parallel round); LLM_PARTS=cached or round runs one part only; LLM_CPU_PROFILE=<file>
 * profiles one more cached run (node:inspector) into that `.cpuprofile`, after the timed ones.
 */
import { mkdir, writeFile } from "node:fs/promises"
import * as Inspector from "node:inspector"
import * as os from "node:os"
import { dirname } from "node:path"
import { Effect, Schema, Stream } from "effect"
import * as FakeOllama from "../test/llm/FakeOllama.js"
import type { LlmCall } from "../schemas/Llm.js"
import { LlmUnavailable } from "../schemas/Llm.js"
import type { RunEvent } from "../schemas/RunEvent.js"
import { Strategy } from "../schemas/Strategy.js"
import { INDICATOR_WARMUP } from "../agents/analysts/MarketBrief.js"
import { AnswerCache, MemoryCache } from "../src/llm/AnswerCache.js"
import type { ChatAnswer, ChatRequest, LanguageModel } from "../src/llm/LanguageModel.js"
import * as Ollama from "../src/llm/Ollama.js"
import * as Feed from "../src/market/Feed.js"
import * as Backtest from "../src/swarm/Backtest.js"
import { describeCounts, symbols, syntheticConfig, timedRun } from "./internal/backtestWorkloads.js"
import { emit, type Figure, forceGc, machine, median, percentile, progress, spread } from "./internal/report.js"

// 100 symbols a slice, as W1: the engine's cost per slice is spread over as many decisions as there.
const SYMBOLS = Number(process.env.LLM_SYMBOLS ?? 100)
const BARS = Number(process.env.LLM_BARS ?? 250)
const ROUNDS = Number(process.env.LLM_ROUNDS ?? 3)
const SEED = 20_240_606

const ROUND_BARS = Number(process.env.LLM_ROUND_BARS ?? 50)
const ROUND_WARMUP_BARS = INDICATOR_WARMUP + 3
const MODEL_MILLIS = Number(process.env.LLM_MODEL_MS ?? 200)
const PERMITS = 4
const ANALYSTS = ["analyst_a", "analyst_b", "analyst_c"]

/** `LLM_PARTS=cached` or `round`: only that part (default both). */
const PARTS = new Set((process.env.LLM_PARTS ?? "cached,round").split(","))
/** A path: write a CPU profile (node:inspector, `.cpuprofile`) of one more cached run there, after the timed ones. */
const PROFILE = process.env.LLM_CPU_PROFILE

const MACHINE = machine()
/** A figure, with the target where it sets one. */
const figure = (metric: string, value: number, unit: string, workload: string, target?: string) => {
  const line: Figure & { readonly target?: string } = { bench: "llm", metric, value, unit, ...(target === undefined ? {} : { target }), workload, machine: MACHINE }
  emit(line)
}
/** The 1-minute load average: this machine is shared, and a loaded one stretches wall times. */
const load = () => os.loadavg()[0]!.toFixed(2)

const integer = (value: number) => String(Math.round(value))
const fixed = (value: number, digits = 1) => Number(value.toFixed(digits))
const decodeStrategy = Schema.decodeUnknownSync(Strategy)

const llmCalls = (events: ReadonlyArray<RunEvent>): Array<LlmCall> =>
  events.flatMap((event) => (event._tag === "LlmCalled" ? [event.call] : []))

// --- cached decisions ------------------------------------------------------------------------------

const CACHE_TTL_SECONDS = 3_600

const cachedStrategy = (symbolCount: number) =>
  decodeStrategy({
    name: "LLM bench: one cached llm_analyst",
    symbols: symbols(symbolCount),
    agents: [{ type: "llm_analyst" }],
    sizing: { mode: "percent_of_equity", value: 0.8 },
    // The largest token budget: the fill run makes one real call per round, and a budget spent would make it abstain.
    llm: { cacheTtlSeconds: CACHE_TTL_SECONDS, budget: { tokens: 1_000_000_000 } }
  })

/**
 * The same market and sizing with one classic analyst (sma_crossover) instead of the LLM analyst:
 * what the engine costs without it, for the LLM analyst's share of a cached run.
 */
const baselineStrategy = (symbolCount: number) =>
  decodeStrategy({
    name: "LLM bench baseline: one sma_crossover",
    symbols: symbols(symbolCount),
    agents: [{ type: "sma_crossover" }],
    sizing: { mode: "percent_of_equity", value: 0.8 }
  })

/** A model that answers at once, in process, what the offline analyst would: valid JSON, varied by the brief. */
const instantModel = () => {
  const stats = { calls: 0 }
  const model: LanguageModel["Type"] = {
    backend: { kind: "ollama", description: "bench: instant in-process model" },
    chat: (request: ChatRequest) =>
      Effect.sync((): ChatAnswer => {
        stats.calls++
        return { ...request.offline(), toolCalls: [], tokensIn: 100, tokensOut: 20 }
      }),
    chatStream: () => Stream.die("not used")
  }
  return { model, stats }
}

/** A model that must not be asked: every call is counted and fails. */
const silentModel = () => {
  const stats = { calls: 0 }
  const model: LanguageModel["Type"] = {
    // The same backend kind as the model that filled the cache: it is part of the cache key.
    backend: { kind: "ollama", description: "bench: no model (every answer must come from the cache)" },
    chat: (request) =>
      Effect.suspend(() => {
        stats.calls++
        return Effect.fail(new LlmUnavailable({ model: request.model, reason: "the benchmark's cached run must not call a model" }))
      }),
    chatStream: () => Stream.die("not used")
  }
  return { model, stats }
}

interface CachedRun {
  readonly seconds: number
  /** The process's CPU time (user + system, all threads) during the run: less sensitive than wall time to a loaded machine. */
  readonly cpuSeconds: number
  readonly result: Backtest.Result
  /** `LlmCalled` events, and those answered from the cache. */
  readonly calls: number
  readonly hits: number
  readonly modelCalls: number
}

const cachedRun = (label: string, cache: AnswerCache["Type"], fill: boolean) =>
  Effect.gen(function*() {
    const { model, stats } = fill ? instantModel() : silentModel()
    let calls = 0
    let hits = 0
    const cpu = process.cpuUsage()
    const { result, seconds } = yield* timedRun(label, {
      strategy: cachedStrategy(SYMBOLS),
      feed: Feed.synthetic(syntheticConfig(SYMBOLS, BARS, SEED)),
      llm: { model, cache },
      onEvent: (event) => {
        if (event._tag !== "LlmCalled") return
        calls++
        if (event.call.cache === "hit" && event.call.outcome === "ok") hits++
      }
    })
    const { system, user } = process.cpuUsage(cpu)
    return { seconds, cpuSeconds: (user + system) / 1e6, result, calls, hits, modelCalls: stats.calls } satisfies CachedRun
  })

const cachedFigures = Effect.gen(function*() {
  const loadBefore = load()
  const expected = SYMBOLS * Math.max(0, BARS - (INDICATOR_WARMUP - 1))
  const memory = new MemoryCache(expected + 1_000)
  const cache = AnswerCache.fromMemory(memory)

  const filled = yield* cachedRun("fill", cache, true)
  progress(
    `llm fill (${SYMBOLS} x ${BARS} bars): ${filled.seconds.toFixed(2)} s, ${filled.modelCalls} model calls, ` +
      `${memory.stats.entries} cache entries; ${describeCounts(filled.result)}`
  )
  if (filled.modelCalls !== expected || filled.calls !== expected || memory.stats.entries !== expected) {
    return yield* Effect.dieMessage(
      `the fill run made ${filled.modelCalls} model calls and ${filled.calls} LlmCalled events and left ${memory.stats.entries} cache entries; expected ${expected} of each`
    )
  }

  // A hit is logged as one (no prompt, no tokens), so a cached run's checksum is not the fill run's;
  // its trading is: the same answers, the same decisions and orders. Every cached run is the same run.
  let reference: Backtest.Result | undefined
  const check = (run: CachedRun, label: string) => {
    reference ??= run.result
    const same = run.result.checksum === reference.checksum && run.result.counts.decisions === filled.result.counts.decisions &&
      run.result.counts.orders === filled.result.counts.orders
    return run.modelCalls === 0 && run.calls === expected && run.hits === expected && same
      ? Effect.void
      : Effect.dieMessage(
        `${label}: ${run.modelCalls} model calls, ${run.hits} cache hits of ${run.calls} LlmCalled events (expected 0 calls and ` +
          `${expected} hits); ${run.result.counts.decisions} decisions and ${run.result.counts.orders} orders (the fill run: ` +
          `${filled.result.counts.decisions} and ${filled.result.counts.orders}); checksum ${run.result.checksum === reference.checksum ? "same as" : "differs from"} the first cached run's`
      )
  }

  const warm = yield* cachedRun("cached warm-up", cache, false)
  yield* check(warm, "cached warm-up")
  progress(`llm cached warm-up: ${warm.seconds.toFixed(2)} s, ${integer(warm.hits / warm.seconds)} decisions/s`)

  const runs: Array<CachedRun> = []
  for (let round = 0; round < ROUNDS; round++) {
    forceGc()
    const hitsBefore = memory.hits
    const missesBefore = memory.misses
    const run = yield* cachedRun(`cached round ${round}`, cache, false)
    yield* check(run, `cached round ${round}`)
    if (memory.hits - hitsBefore !== expected || memory.misses !== missesBefore) {
      return yield* Effect.dieMessage(`cached round ${round}: the cache counted ${memory.hits - hitsBefore} hits and ${memory.misses - missesBefore} misses`)
    }
    runs.push(run)
    progress(
      `llm cached round ${round}: ${run.seconds.toFixed(2)} s (cpu ${run.cpuSeconds.toFixed(2)} s), ${integer(run.hits / run.seconds)} decisions/s, ` +
        `${integer(run.result.counts.bars / run.seconds)} bars/s, ${integer(run.result.counts.events / run.seconds)} events/s`
    )
  }
  if (PROFILE !== undefined) {
    forceGc()
    const run = yield* profiled(PROFILE, cachedRun("cached, profiled", cache, false))
    yield* check(run, "cached, profiled")
    progress(`llm cached run under the profiler: ${run.seconds.toFixed(2)} s, ${integer(run.hits / run.seconds)} decisions/s; profile in ${PROFILE}`)
  }

  // The engine without the LLM analyst: the same market, one sma_crossover.
  const feed = () => Feed.synthetic(syntheticConfig(SYMBOLS, BARS, SEED))
  yield* timedRun("baseline warm-up", { strategy: baselineStrategy(SYMBOLS), feed: feed() })
  const baseline: Array<number> = []
  let baselineCounts = ""
  for (let round = 0; round < ROUNDS; round++) {
    forceGc()
    const { result, seconds } = yield* timedRun(`baseline round ${round}`, { strategy: baselineStrategy(SYMBOLS), feed: feed() })
    baseline.push(seconds)
    baselineCounts = describeCounts(result)
    progress(`llm baseline round ${round}: ${seconds.toFixed(3)} s, ${integer(result.counts.bars / seconds)} bars/s`)
  }

  const decisions = runs.map((r) => r.hits / r.seconds)
  const bars = runs.map((r) => r.result.counts.bars / r.seconds)
  const events = runs.map((r) => r.result.counts.events / r.seconds)
  const cachedSeconds = median(runs.map((r) => r.seconds))
  const share = 1 - median(baseline) / cachedSeconds
  const counts = describeCounts(runs[runs.length - 1]!.result)
  const workload =
    `${SYMBOLS} symbols x ${BARS} daily bars (${SYMBOLS * BARS} bars) of Feed.synthetic (Synthetic.defaults, seed ${SEED}, ` +
    `generated inside the timed run); strategy: one llm_analyst (default params: 20-bar brief, horizon 5, warm-up ` +
    `${INDICATOR_WARMUP} bars), llm.cacheTtlSeconds ${CACHE_TTL_SECONDS}, token budget 1e9, sizing percent_of_equity 0.8 %, ` +
    `default consensus, risk and execution, long only, events "decisions"; a first run (${filled.seconds.toFixed(2)} s, not ` +
    `timed) filled a shared AnswerCache.fromMemory(MemoryCache) with ${expected} answers from an instant in-process model ` +
    `(backend kind "ollama"; it answers the offline analyst's judgement as JSON); each timed run is the same backtest with a ` +
    `model that fails if asked: 0 model calls, ${expected} LlmCalled events all cache "hit" and outcome "ok", the cache ` +
    `counting ${expected} hits and no miss, the same decisions and orders as the fill run and the same checksum every run ` +
    `(all checked); a decision here is one LLM analyst opinion for one round (one cache hit), not the run's "decisions" ` +
    `count; Backtest.run timed from the call to its result; per run: ${counts}; median CPU time (user + system, all ` +
    `threads) ${median(runs.map((r) => r.cpuSeconds)).toFixed(2)} s a run; load average ${loadBefore} before the fill, ${load()} ` +
    `at the end; 1 warm-up run, then `
  figure("cached_decisions_per_sec", Math.round(median(decisions)), "decisions/s", `${workload}${spread(decisions, integer)} decisions/s`, ">= 100000")
  figure("cached_bars_per_sec", Math.round(median(bars)), "bars/s", `the runs of cached_decisions_per_sec: ${spread(bars, integer)} bars/s`)
  figure("cached_events_per_sec", Math.round(median(events)), "events/s", `the runs of cached_decisions_per_sec: ${spread(events, integer)} events/s`)
  figure(
    "cached_llm_share",
    fixed(share, 3),
    "ratio",
    `the share of a cached run's wall time that the LLM analyst adds: 1 - (baseline run time / cached run time), medians ` +
      `(${median(baseline).toFixed(3)} s / ${cachedSeconds.toFixed(3)} s); baseline: the same market, sizing and settings with one ` +
      `sma_crossover (default params) instead of the llm_analyst, 1 warm-up run, then ${ROUNDS} rounds; per run: ${baselineCounts}`
  )
})

/** Run `effect` under V8's sampling profiler and write its profile to `path`. */
const profiled = <A, E>(path: string, effect: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const session = new Inspector.Session()
      session.connect()
      const post = (method: string, params?: object) =>
        new Promise<any>((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))))
      await post("Profiler.enable")
      await post("Profiler.setSamplingInterval", { interval: 200 })
      await post("Profiler.start")
      return { session, post }
    }),
    () => effect,
    ({ post, session }) =>
      Effect.promise(async () => {
        const { profile } = await post("Profiler.stop")
        await mkdir(dirname(path), { recursive: true })
        await writeFile(path, JSON.stringify(profile))
        session.disconnect()
      })
  )

// --- a parallel round ------------------------------------------------------------------------------

const JUDGEMENT = JSON.stringify({
  direction: "long",
  confidence: 0.6,
  rationale: "The close is above SMA(10) and SMA(30), and the 5-bar change is positive."
})

const roundStrategy = () =>
  decodeStrategy({
    name: "LLM bench: three analysts, one symbol",
    symbols: symbols(1),
    agents: ANALYSTS.map((name) => ({ type: "llm_analyst", name })),
    sizing: { mode: "percent_of_equity", value: 10 },
    // No cache: every round asks the model.
    llm: { cacheTtlSeconds: 0, timeoutMillis: 20_000 }
  })

interface RoundRun {
  /** Wall time of each slice whose analysts asked the model, ms, in slice order. */
  readonly asking: Array<number>
  readonly calls: ReadonlyArray<LlmCall>
  readonly result: Backtest.Result
}

const roundRun = (host: string, bars: number, limiter: Effect.Semaphore) =>
  Effect.gen(function*() {
    const starts: Array<{ readonly ts: number; readonly at: number }> = []
    const events: Array<RunEvent> = []
    const result = yield* Backtest.run({
      strategy: roundStrategy(),
      feed: Feed.synthetic(syntheticConfig(1, bars, SEED)),
      llm: { model: Ollama.make({ host }), limiter },
      beforeSlice: (ts) => Effect.sync(() => void starts.push({ ts, at: performance.now() })),
      onEvent: (event) => {
        if (event._tag === "LlmCalled") events.push(event)
      }
    })
    const ended = performance.now()
    const calls = llmCalls(events)
    const askedAt = new Set(calls.map((c) => Number(c.round!.split("@")[1])))
    const asking: Array<number> = []
    starts.forEach(({ at, ts }, i) => {
      if (askedAt.has(ts)) asking.push((starts[i + 1]?.at ?? ended) - at)
    })
    return { asking, calls, result } satisfies RoundRun
  })

const roundFigures = Effect.scoped(Effect.gen(function*() {
  const loadBefore = load()
  // The test suite's fake Ollama (the real HTTP API, as the `ollama` client speaks it), answering every chat after MODEL_MILLIS.
  const stats = { chats: 0, inFlight: 0, maxInFlight: 0 }
  const server = yield* FakeOllama.start(async () => {
    stats.chats++
    stats.maxInFlight = Math.max(stats.maxInFlight, ++stats.inFlight)
    await new Promise((resolve) => setTimeout(resolve, MODEL_MILLIS))
    stats.inFlight--
    return { content: JUDGEMENT, tokensIn: 400, tokensOut: 40 }
  })
  const limiter = yield* Effect.makeSemaphore(PERMITS)
  const expectedCalls = (bars: number) => ANALYSTS.length * Math.max(0, bars - (INDICATOR_WARMUP - 1))
  const check = (run: RoundRun, bars: number, label: string) =>
    run.calls.length === expectedCalls(bars) && run.calls.every((c) => c.outcome === "ok" && c.backend === "ollama" && c.cache === "off")
      ? Effect.void
      : Effect.dieMessage(
        `${label}: ${run.calls.length} LlmCalled events (expected ${expectedCalls(bars)}), outcomes ` +
          `${[...new Set(run.calls.map((c) => c.outcome))].join(", ")}; first error: ${run.calls.find((c) => c.error !== undefined)?.error ?? "none"}`
      )

  const warm = yield* roundRun(server.url, ROUND_WARMUP_BARS, limiter)
  yield* check(warm, ROUND_WARMUP_BARS, "parallel round warm-up")
  progress(`llm parallel round warm-up (${ROUND_WARMUP_BARS} bars): slices that asked took ${warm.asking.map((ms) => ms.toFixed(0)).join(", ")} ms`)

  const chatsBefore = stats.chats
  stats.maxInFlight = 0
  const run = yield* roundRun(server.url, ROUND_BARS, limiter)
  yield* check(run, ROUND_BARS, "parallel round")
  const chats = stats.chats - chatsBefore
  const sorted = Float64Array.from(run.asking).sort()
  const p50 = percentile(sorted, 0.5)
  const max = sorted[sorted.length - 1]!
  const latencies = Float64Array.from(run.calls.map((c) => c.latencyMillis)).sort()
  progress(
    `llm parallel round: ${run.asking.length} slices that asked, p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms; ` +
      `${chats} chats, at most ${stats.maxInFlight} in flight; call latency p50 ${percentile(latencies, 0.5)} ms`
  )
  const workload =
    `one symbol x ${ROUND_BARS} daily bars of Feed.synthetic (seed ${SEED}); strategy: three llm_analyst entries (${ANALYSTS.join(", ")}), ` +
    `llm.cacheTtlSeconds 0 (every round asks), timeoutMillis 20000; the real Ollama backend (src/llm/Ollama.ts, the ollama ` +
    `client over HTTP, one client per call) against a loopback fake Ollama (test/llm/FakeOllama.ts: POST /api/chat ` +
    `answering a valid judgement after ${MODEL_MILLIS} ms); limiter of ${PERMITS} permits; the wall time of each slice whose ` +
    `analysts asked (bars ${INDICATOR_WARMUP}..${ROUND_BARS} of the symbol: ${run.asking.length} slices, ${run.calls.length} calls, ` +
    `${chats} chats served, at most ${stats.maxInFlight} in flight), from its delivery to the next slice's ` +
    `(the last one's to the end of the run); after a warm-up run of ${ROUND_WARMUP_BARS} bars; ${describeCounts(run.result)}; ` +
    `the calls' own latency p50 ${percentile(latencies, 0.5)} ms, max ${latencies[latencies.length - 1]} ms; load average ` +
    `${loadBefore} before, ${load()} after`
  figure("parallel_round_ms", fixed(p50), "ms", `${workload}; median over the slices`, `about ${MODEL_MILLIS} (one model answer, not ${ANALYSTS.length * MODEL_MILLIS})`)
  figure("parallel_round_max_ms", fixed(max), "ms", `the slices of parallel_round_ms: the slowest`)
}))

const main = Effect.gen(function*() {
  if (PARTS.has("cached")) yield* cachedFigures
  if (PARTS.has("round")) yield* roundFigures
})

Effect.runPromise(main).catch((error: unknown) => {
  progress(`llm benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  process.exitCode = 1
})
