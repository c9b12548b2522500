/**
 * Where a paper slice's CPU goes (a diagnostic, not a benchmark): bench/edge.ts's paper run of W3's
 * strategy (bench_flip, one symbol) through the same server layers, without SSE subscribers or the
 * RPC fixtures, timed by the process's CPU (process.cpuUsage) per slice as well as by delivery to
 * `OrderPlaced`, optionally profiled (V8's sampling profiler around the measured run).
 *
 *   node --expose-gc --max-semi-space-size=64 --import ./bin/typescript.mjs bench/internal/paperCpu.ts
 *
 * PAPER_MODE=paper (paced, 1,000 slices/s: the bench's) | unpaced (mode paper, no waiting) |
 * stored (StoredRun, mode backtest) | plain (Backtest.run, no store, mode paper) | plainBacktest;
 * PAPER_SLICES (3000), PAPER_WARM (3000), PAPER_ROUNDS (1), PAPER_PROFILE=<file> (the last round),
 * PAPER_INTERVAL_US (50), EDGE_PORT.
 *
 * PAPER_TRACE=alternate: the rounds traced and untraced by turns, the first traced (every round, or
 * none, whatever SWARM_TRACE_SAMPLE_PAPER says), each line saying which (`traced`) — tracing's
 * share of a slice measured in one process, under the same load, rather than across processes.
 */
import { writeFileSync } from "node:fs"
import * as Inspector from "node:inspector"
import { Effect, Layer } from "effect"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { EventBus } from "../../src/bus/EventBus.js"
import * as Server from "../../src/edge/Server.js"
import * as DataSource from "../../src/market/DataSource.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import * as Database from "../../src/store/Database.js"
import * as Store from "../../src/store/Store.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Users from "../../src/store/Users.js"
import * as Sampling from "../../src/telemetry/Sampling.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"
import { syntheticConfig, W3_SEED, w3 } from "./backtestWorkloads.js"
import { forceGc, percentile, progress } from "./report.js"

const MODE = process.env.PAPER_MODE ?? "paper"
const SLICES = Number(process.env.PAPER_SLICES ?? 3_000)
const WARM = Number(process.env.PAPER_WARM ?? 3_000)
const ROUNDS = Number(process.env.PAPER_ROUNDS ?? 1)
const PROFILE = process.env.PAPER_PROFILE
const INTERVAL_US = Number(process.env.PAPER_INTERVAL_US ?? 50)
const PORT = Number(process.env.EDGE_PORT ?? 0)
const ALTERNATE = process.env.PAPER_TRACE === "alternate"
const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const startProfile = async (): Promise<(file: string) => Promise<void>> => {
  const session = new Inspector.Session()
  session.connect()
  const post = (method: string, params?: object) =>
    new Promise<{ readonly profile?: object }>((resolve, reject) => session.post(method, params, (error, result) => (error === null ? resolve(result ?? {}) : reject(error))))
  await post("Profiler.enable")
  await post("Profiler.setSamplingInterval", { interval: INTERVAL_US })
  await post("Profiler.start")
  return async (file) => {
    const { profile } = await post("Profiler.stop")
    session.disconnect()
    writeFileSync(file, JSON.stringify(profile))
    progress(`profile: ${file}`)
  }
}

const oneRun = (owner: string, slices: number, profile: boolean) =>
  Effect.gen(function*() {
    const bus = yield* EventBus
    const { feed, registry, strategy } = w3(1, slices)
    const latencies = new Float64Array(slices)
    const busy = new Float64Array(slices)
    let measured = 0
    let index = 0
    let t0 = 0
    let delivered = 0
    let pending = false
    let runId: string | undefined
    const paced = MODE === "paper"
    const beforeSlice = () =>
      Effect.suspend(() => {
        const now = performance.now()
        if (index > 0) busy[index - 1] = (now - delivered) * 1_000
        if (index === 0) {
          return Effect.sync(() => {
            forceGc()
            t0 = performance.now()
            delivered = t0
            pending = true
            index = 1
          })
        }
        const due = t0 + index
        const wait = paced ? due - now : 0
        return Effect.zipRight(
          wait > 0 ? Effect.sleep(wait) : Effect.void,
          Effect.sync(() => {
            delivered = performance.now()
            pending = true
            index++
          })
        )
      })
    const onEvent = (event: RunEvent, json: string) => {
      if (pending && event._tag === "OrderPlaced") {
        latencies[measured++] = (performance.now() - delivered) * 1_000
        pending = false
      }
      if (runId !== undefined) bus.publish(runId, { seq: event.seq, tag: event._tag, json })
    }
    const stop = profile ? yield* Effect.promise(() => startProfile()) : undefined
    const cpu0 = process.cpuUsage()
    const w0 = performance.now()
    let slicesRun = 0
    if (MODE === "plain" || MODE === "plainBacktest") {
      runId = "plain"
      const result = yield* Backtest.run({ strategy, feed, registry: registry!, mode: MODE === "plain" ? "paper" : "backtest", onEvent, beforeSlice })
      slicesRun = result.counts.slices
    } else {
      const stored = yield* StoredRun.backtest({
        strategy,
        feed,
        dataSource: DataSource.synthetic(syntheticConfig(1, slices, W3_SEED)),
        registry: registry!,
        owner,
        mode: MODE === "stored" ? "backtest" : "paper",
        onCreated: (created) => (runId = created.id),
        onEvent,
        beforeSlice
      }).pipe(Effect.ensuring(Effect.sync(() => runId !== undefined && bus.end(runId))))
      slicesRun = stored.result.counts.slices
    }
    const cpu = process.cpuUsage(cpu0)
    const wall = performance.now() - w0
    if (stop !== undefined) yield* Effect.promise(() => stop(PROFILE!))
    const sorted = latencies.slice(0, measured).sort()
    const busySorted = busy.slice(1, index - 1).sort()
    return {
      mode: MODE,
      slices: slicesRun,
      cpuUsPerSlice: Number(((cpu.user + cpu.system) / slicesRun).toFixed(1)),
      userUs: Number((cpu.user / slicesRun).toFixed(1)),
      sysUs: Number((cpu.system / slicesRun).toFixed(1)),
      wallS: Number((wall / 1000).toFixed(2)),
      p50: Number(percentile(sorted, 0.5).toFixed(1)),
      p99: Number(percentile(sorted, 0.99).toFixed(1)),
      busyP50: Number(percentile(busySorted, 0.5).toFixed(1)),
      busyP99: Number(percentile(busySorted, 0.99).toFixed(1))
    }
  })

const main = Effect.gen(function*() {
  const url = yield* Database.temporary(serverUrl, "swarm_bench")
  const server = Server.layer(Store.layerWith({ url }), { port: PORT, host: "127.0.0.1", logRequests: false }).pipe(
    Layer.provideMerge(Telemetry.layer)
  )
  yield* Effect.gen(function*() {
    const owner = yield* Users.create("paper-cpu", "user")
    if (WARM > 0) yield* oneRun(owner.id, WARM, false)
    for (let r = 0; r < ROUNDS; r++) {
      const run = oneRun(owner.id, SLICES, PROFILE !== undefined && r === ROUNDS - 1)
      const traced = r % 2 === 0
      const out = ALTERNATE
        ? { traced, ...yield* Effect.provideService(run, Sampling.TraceSampling, { paper: traced ? 1 : 0, backtest: traced ? 1 : 0 }) }
        : yield* run
      process.stdout.write(JSON.stringify(out) + "\n")
    }
  }).pipe(Effect.provide(server))
})

Effect.runPromise(Effect.scoped(main)).then(
  () => process.exit(0),
  (error) => {
    progress(`failed: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
)
