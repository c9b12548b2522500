/**
 * Edge benchmark (`npm run bench -- edge`): the whole server (Server.layer, on a temporary
 * database of `DATABASE_URL`'s Postgres server or the local one) on a port of 127.0.0.1, its
 * clients in another process (internal/edgeClients.ts), so the server has one core and they the other.
 *
 * - `rpc_read_p50_ms` / `rpc_read_p99_ms`: 100 concurrent clients, each on its own keep-alive
 *   connection, reading (runs.get, runs.list, strategies.get) over `POST /rpc` (ndjson).
 *   `rpc_read_server_cpu_ms_per_call`: the server process's CPU time over those calls, per call —
 *   the figure to compare on a shared machine, where the latencies say more about the neighbours.
 * - `tick_to_order_p50_us` / `_p99_us` / `_p999_us`: a paper run (StoredRun.backtest in mode
 *   "paper", recorded in the database and published on the server's bus, as RunManager runs it)
 *   paced at 1,000 slices a second of wall-clock time, with an order on every slice; for each
 *   slice, the time from its delivery (its `beforeSlice` returning) to its `OrderPlaced` reaching
 *   `onEvent`. `tick_to_order_p99_us_sse`: the same with 500 SSE subscribers of the run connected
 *   over HTTP and reading everything; `tick_to_order_sse_ratio` the ratio of the two p99s.
 *
 * - `rpc_read_floor_p50_ms` / `_p99_ms` / `_calls_per_sec`: the same clients against a bare
 *   `node:http` handler in the server's process (a canned answer: no auth, no database, no Effect) —
 *   the floor the machine and the clients allow any Node server (`EDGE_RPC_FLOOR=0`: left out).
 *
 * `EDGE_ONLY=rpc|tick` runs one part; `EDGE_RPC_SECONDS`, `EDGE_RPC_CLIENTS`, `EDGE_RPC_PAUSE_MS` tune
 * the reads; `EDGE_RPC_PROFILE=<file>` writes a CPU profile of the server over the measured reads
 * (its sampling's cost is in that round's CPU figure; its start and stop are not);
 * `EDGE_TICK_PROFILE=<file>` writes a CPU profile of the server over the paper run with SSE subscribers
 * (from the first slice to the run's end; `<file>.none` that of the run without subscribers; the
 * server CPU printed for the run leaves out the profile's stop and writing); `EDGE_PORT` sets the server's port (default: any free one).
 *
 * `EDGE_PROBE=1` also counts the slices whose order came only after an event-loop turn (a
 * `setImmediate` queued at delivery ran first): 0 means delivery-to-order is one synchronous
 * stretch, so its tail is GC and the OS taking the core, not other work of the server.
 */
import { spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as Inspector from "node:inspector"
import { PerformanceObserver } from "node:perf_hooks"
import { createInterface } from "node:readline"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Layer, Schema, Scope } from "effect"
import type { RunEvent } from "../schemas/RunEvent.js"
import { Strategy } from "../schemas/Strategy.js"
import { EventBus } from "../src/bus/EventBus.js"
import * as Http from "../src/edge/Http.js"
import * as Server from "../src/edge/Server.js"
import * as DataSource from "../src/market/DataSource.js"
import * as Feed from "../src/market/Feed.js"
import * as ApiKeys from "../src/store/ApiKeys.js"
import * as Database from "../src/store/Database.js"
import * as Store from "../src/store/Store.js"
import * as StoredRun from "../src/store/StoredRun.js"
import * as Users from "../src/store/Users.js"
import * as Sampling from "../src/telemetry/Sampling.js"
import * as Telemetry from "../src/telemetry/Telemetry.js"
import { symbols, syntheticConfig, W3_SEED, w3 } from "./internal/backtestWorkloads.js"
import { nodeArgs } from "./internal/loader.js"
import { emit, forceGc, machine, percentile, progress } from "./internal/report.js"

const RPC_CLIENTS = Number(process.env.EDGE_RPC_CLIENTS ?? 100)
const RPC_SECONDS = Number(process.env.EDGE_RPC_SECONDS ?? 10)
const RPC_USERS = 10
const RPC_RUNS_PER_USER = 3
/** `EDGE_RPC_FLOOR=0` leaves out the harness's floor (`rpc_read_floor_*`: the same clients against a bare node:http handler). */
const RPC_FLOOR = process.env.EDGE_RPC_FLOOR !== "0"
/** A client's think time between calls: an operator's dashboard polls, it does not spin. */
const RPC_PAUSE_MS = Number(process.env.EDGE_RPC_PAUSE_MS ?? 0)
/**
 * `EDGE_RPC_PROFILE=<file>`: a CPU profile of the server (this process) over the measured round
 * only, written to `<file>` (.cpuprofile: Chrome's DevTools and `node --cpu-prof`'s format).
 */
const RPC_PROFILE = process.env.EDGE_RPC_PROFILE === undefined || process.env.EDGE_RPC_PROFILE === "" ? undefined : process.env.EDGE_RPC_PROFILE
/** `EDGE_TICK_PROFILE=<file>`: a CPU profile of the server (this process) over the paper runs (`<file>.none`: without subscribers), sampled every 200 us. */
const TICK_PROFILE = process.env.EDGE_TICK_PROFILE === undefined || process.env.EDGE_TICK_PROFILE === "" ? undefined : process.env.EDGE_TICK_PROFILE
/** The server's port (default 0: any free one), for a machine whose users each keep to their own ports. */
const PORT = Number(process.env.EDGE_PORT ?? 0)

const TICKS_PER_SECOND = 1_000
const TICK_SLICES = Number(process.env.EDGE_SLICES ?? 20_000)
const WARMUP_SLICES = 3_000
const SSE_SUBSCRIBERS = Number(process.env.EDGE_SUBSCRIBERS ?? 500)
const PROBE = process.env.EDGE_PROBE === "1"
/**
 * `EDGE_SSE_RECONNECT=1`: a subscriber disconnected with `overflow` comes back as an EventSource
 * does (after 1 s, with Last-Event-ID), so that the subscribers stay attached for the whole run.
 */
const SSE_RECONNECT = process.env.EDGE_SSE_RECONNECT === "1"

const MACHINE = machine()
const figure = (metric: string, value: number, unit: string, workload: string) =>
  emit({ bench: "edge", metric, value, unit, workload, machine: MACHINE })
const fixed = (value: number, digits = 1) => Number(value.toFixed(digits))

const serverUrl = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL.trim() !== ""
  ? process.env.DATABASE_URL
  : "postgres://postgres@127.0.0.1:5432/postgres"

const clientsScript = join(dirname(fileURLToPath(import.meta.url)), "internal", "edgeClients.ts")

// --- the clients' process --------------------------------------------------------------------------

interface Clients {
  /** The next JSON line the process prints. */
  readonly next: () => Promise<unknown>
  readonly kill: () => void
}

const startClients = (args: ReadonlyArray<string>): Clients => {
  const child = spawn(process.execPath, [...nodeArgs, clientsScript, ...args], { stdio: ["ignore", "pipe", "inherit"] })
  const lines: Array<unknown> = []
  const waiting: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = []
  let exited: Error | undefined
  createInterface({ input: child.stdout }).on("line", (line) => {
    const value: unknown = JSON.parse(line)
    const waiter = waiting.shift()
    if (waiter === undefined) lines.push(value)
    else waiter.resolve(value)
  })
  child.on("exit", (code, signal) => {
    exited = new Error(`edgeClients ${args[0]} exited with ${signal ?? code}`)
    for (const w of waiting.splice(0)) w.reject(exited)
  })
  return {
    next: () =>
      lines.length > 0
        ? Promise.resolve(lines.shift())
        : exited !== undefined
        ? Promise.reject(exited)
        : new Promise((resolve, reject) => waiting.push({ resolve, reject })),
    kill: () => child.kill()
  }
}

const clientsScoped = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(Effect.sync(() => startClients(args)), (c) => Effect.sync(() => c.kill()))

// --- fixtures ------------------------------------------------------------------------------------

const readStrategy = (name: string) =>
  Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: symbols(2),
    agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }],
    sizing: { mode: "percent_of_equity", value: 10 }
  })

/** Users, each with a key, a strategy and a few finished runs. */
const fixtures = Effect.gen(function*() {
  const users: Array<{ key: string; strategy: string; runs: Array<string> }> = []
  for (let u = 0; u < RPC_USERS; u++) {
    const user = yield* Users.create(`bench${u}`, "user")
    const { key } = yield* ApiKeys.issue(user.id, "bench")
    const name = `bench reads ${u}`
    const runs: Array<string> = []
    for (let r = 0; r < RPC_RUNS_PER_USER; r++) {
      const config = syntheticConfig(2, 300, 1_000 + u * 10 + r)
      const stored = yield* StoredRun.backtest({
        strategy: readStrategy(name),
        feed: Feed.synthetic(config),
        dataSource: DataSource.synthetic(config),
        owner: user.id
      })
      runs.push(stored.run)
    }
    users.push({ key, strategy: name, runs })
  }
  return users
})

/** Start V8's CPU profiler on this process; the function returned stops it and writes the profile to a file. */
const startProfile = async (intervalMicros?: number): Promise<(file: string) => Promise<void>> => {
  const session = new Inspector.Session()
  session.connect()
  const post = (method: string, params?: object) =>
    new Promise<{ readonly profile?: object }>((resolve, reject) => session.post(method, params, (error, result) => (error === null ? resolve(result ?? {}) : reject(error))))
  await post("Profiler.enable")
  if (intervalMicros !== undefined) await post("Profiler.setSamplingInterval", { interval: intervalMicros })
  await post("Profiler.start")
  return async (file) => {
    const { profile } = await post("Profiler.stop")
    session.disconnect()
    writeFileSync(file, JSON.stringify(profile))
    progress(`server profile of the measured round: ${file}`)
  }
}

// --- rpc_read ------------------------------------------------------------------------------------

const RpcSummary = Schema.Struct({
  count: Schema.Number,
  p50: Schema.Number,
  p99: Schema.Number,
  p999: Schema.Number,
  max: Schema.Number,
  perSecond: Schema.Number,
  failures: Schema.Number,
  firstFailure: Schema.optional(Schema.String),
  byTag: Schema.Record({ key: Schema.String, value: Schema.Struct({ count: Schema.Number, p50: Schema.Number, p99: Schema.Number }) })
})

const rpcFigures = (base: string, users: ReadonlyArray<{ key: string; strategy: string; runs: Array<string> }>) =>
  Effect.gen(function*() {
    const clients = Array.from({ length: RPC_CLIENTS }, (_, i) => {
      const user = users[i % users.length]!
      return {
        key: user.key,
        calls: [
          ...user.runs.map((run) => ({ tag: "runs.get", payload: { run } })),
          { tag: "runs.list", payload: { limit: 20 } },
          { tag: "strategies.get", payload: { strategy: user.strategy } }
        ]
      }
    })
    const plan = JSON.stringify({ clients, pauseMs: RPC_PAUSE_MS })
    // A short warm-up (JIT, the key cache, the pool's connections), then the measured round.
    for (const [seconds, measured] of [[2, false], [RPC_SECONDS, true]] as const) {
      const profiling = measured && RPC_PROFILE !== undefined ? yield* Effect.promise(() => startProfile()) : undefined
      const cpu0 = process.cpuUsage()
      const summary = yield* Effect.scoped(Effect.flatMap(clientsScoped(["rpc", base, String(seconds), plan]), (c) =>
        Effect.flatMap(Effect.promise(() => c.next()), Schema.decodeUnknown(RpcSummary))))
      // The server's CPU (user + system, this process: the clients are another), whatever else shares the machine.
      const cpu = process.cpuUsage(cpu0)
      const cpuPerCall = (cpu.user + cpu.system) / 1_000 / summary.count
      progress(`rpc ${measured ? "measured" : "warm-up"}: ${JSON.stringify(summary)}; server CPU ${cpuPerCall.toFixed(3)} ms per call`)
      if (profiling !== undefined) yield* Effect.promise(() => profiling(RPC_PROFILE!))
      if (summary.failures > 0) return yield* Effect.dieMessage(`rpc reads failed: ${summary.firstFailure}`)
      if (!measured) continue
      const workload = `${RPC_CLIENTS} concurrent clients in another process (node:http), each on its own keep-alive connection ` +
        `(its own http.Agent, maxSockets 1: 100 operators, not one pool), each looping for ${RPC_SECONDS} s over runs.get of its user's ` +
        `${RPC_RUNS_PER_USER} runs, runs.list (limit 20) and strategies.get, ` +
        (RPC_PAUSE_MS > 0 ? `${RPC_PAUSE_MS} ms between a client's calls` : `back to back (no think time: a closed loop)`) +
        ` — POST /rpc ndjson, one request per HTTP request, bearer keys of ${users.length} users; the full server ` +
        `(Server.layer, with the telemetry of swarm serve: its HTTP and RPC spans into the in-process store) on Postgres (temporary ` +
        `database, pool of ${Database.defaultMaxConnections}); 2 s warm-up; ` +
        `${summary.count} calls, ${Math.round(summary.perSecond)} calls/s; latency per call at the client`
      figure("rpc_read_p50_ms", fixed(summary.p50, 2), "ms", workload)
      figure("rpc_read_p99_ms", fixed(summary.p99, 2), "ms", `${workload} (target <= 5)`)
      figure("rpc_read_calls_per_sec", Math.round(summary.perSecond), "calls/s", workload)
      figure("rpc_read_server_cpu_ms_per_call", fixed(cpuPerCall, 3), "ms", `${workload}; the server process's CPU time (user + system, process.cpuUsage) over the measured round, divided by its calls`)
    }
    if (!RPC_FLOOR) return
    const floor = yield* rpcFloor(plan)
    const floorWorkload = `the clients and plan of rpc_read_p99_ms (${RPC_CLIENTS} clients, keep-alive, closed loop, ${RPC_SECONDS} s after a 2 s ` +
      `warm-up) against a bare node:http handler in the server's process that reads the body, parses it and answers a canned ` +
      `success Exit (no auth, no database, no Effect): the floor this machine and these clients allow any Node server; ` +
      `${floor.count} calls, ${Math.round(floor.perSecond)} calls/s`
    figure("rpc_read_floor_p50_ms", fixed(floor.p50, 2), "ms", floorWorkload)
    figure("rpc_read_floor_p99_ms", fixed(floor.p99, 2), "ms", floorWorkload)
    figure("rpc_read_floor_calls_per_sec", Math.round(floor.perSecond), "calls/s", floorWorkload)
  })

/**
 * The harness's floor: the same clients, with the same plan, against a bare `node:http` handler in
 * this process (where the server runs) that reads each body, parses its JSON line and answers a
 * canned success `Exit` for its id — no auth, no database, no Effect. What this machine and these
 * clients allow any Node server, to read `rpc_read_*` against.
 */
const rpcFloor = (plan: string) =>
  Effect.gen(function*() {
    const answer = (id: unknown) =>
      JSON.stringify({ _tag: "Exit", requestId: id, exit: { _tag: "Success", value: { id: "run_floor", status: "completed" } } }) + "\n"
    const bare = createServer((request, response) => {
      let body = ""
      request.setEncoding("utf8")
      request.on("data", (chunk: string) => (body += chunk))
      request.on("end", () => {
        const line = answer((JSON.parse(body) as { id: unknown }).id)
        response.writeHead(200, { "content-type": "application/ndjson", "content-length": Buffer.byteLength(line) })
        response.end(line)
      })
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        bare.listen(0, "127.0.0.1", () => resume(Effect.succeed((bare.address() as AddressInfo).port)))
      }),
      () => Effect.async<void>((resume) => {
        bare.closeAllConnections()
        bare.close(() => resume(Effect.void))
      })
    )
    const base = `http://127.0.0.1:${port}`
    let floor: typeof RpcSummary.Type | undefined
    for (const [seconds, measured] of [[2, false], [RPC_SECONDS, true]] as const) {
      const cpu0 = process.cpuUsage()
      const summary = yield* Effect.scoped(Effect.flatMap(clientsScoped(["rpc", base, String(seconds), plan]), (c) =>
        Effect.flatMap(Effect.promise(() => c.next()), Schema.decodeUnknown(RpcSummary))))
      const cpu = process.cpuUsage(cpu0)
      progress(`rpc floor ${measured ? "measured" : "warm-up"}: ${JSON.stringify(summary)}; handler CPU ${((cpu.user + cpu.system) / 1_000 / summary.count).toFixed(3)} ms per call`)
      if (measured) floor = summary
    }
    return floor!
  }).pipe(Effect.scoped)

// --- tick_to_order -------------------------------------------------------------------------------

interface TickRun {
  /** Delivery to OrderPlaced, microseconds, ascending. */
  readonly latencies: Float64Array
  readonly slices: number
  /** How late slices were delivered against their schedule, milliseconds, ascending. */
  readonly lateness: Float64Array
  readonly seconds: number
  readonly events: number
  readonly sse?: unknown
}

/**
 * A paper run of W3's strategy (bench_flip: a reversing order on every bar) on one symbol, paced
 * at `TICKS_PER_SECOND` from its first slice, with `subscribers` SSE clients attached first.
 */
const paperRun = (base: string, owner: { id: string; key: string }, slices: number, subscribers: number) =>
  Effect.scoped(Effect.gen(function*() {
    const bus = yield* EventBus
    const scope = yield* Effect.scope
    const { feed, registry, strategy } = w3(1, slices)
    const latencies = new Float64Array(slices)
    const lateness = new Float64Array(slices)
    let measured = 0
    let index = 0
    let t0 = 0
    let delivered = 0
    let pending = false
    let hops = 0
    let runId: string | undefined
    let clients: Clients | undefined
    let profiling: ((file: string) => Promise<void>) | undefined
    let cpu0 = process.cpuUsage()
    /** The collector's pauses while the run goes (from its first slice): what a synchronous delivery-to-order stretch can meet. */
    const pauses: Array<number> = []
    let observing = false
    const gc = new PerformanceObserver((list) => {
      if (observing) for (const entry of list.getEntries()) pauses.push(entry.duration)
    })
    gc.observe({ entryTypes: ["gc"] })
    const interval = 1_000 / TICKS_PER_SECOND

    const attach = Effect.gen(function*() {
      if (subscribers === 0) return
      const c = yield* Scope.extend(clientsScoped(["sse", base, owner.key, runId!, String(subscribers), ...(SSE_RECONNECT ? ["reconnect"] : [])]), scope)
      clients = c
      const ready = yield* Effect.promise(() => c.next())
      progress(`  ${subscribers} subscribers attached: ${JSON.stringify(ready)}`)
    })

    const beforeSlice = () =>
      Effect.suspend(() => {
        if (index === 0) {
          return Effect.zipRight(attach, Effect.promise(async () => {
            if (TICK_PROFILE !== undefined) profiling = await startProfile(200)
            forceGc()
            cpu0 = process.cpuUsage()
            observing = true
            t0 = performance.now()
            delivered = t0
            pending = true
            index = 1
          }))
        }
        const due = t0 + index * interval
        const wait = due - performance.now()
        return Effect.zipRight(
          wait > 0 ? Effect.sleep(wait) : Effect.void,
          Effect.sync(() => {
            delivered = performance.now()
            lateness[index] = Math.max(0, delivered - due)
            pending = true
            index++
            if (PROBE) setImmediate(() => { if (pending) hops++ })
          })
        )
      })

    const onEvent = (event: RunEvent, json: string) => {
      if (pending && event._tag === "OrderPlaced") {
        latencies[measured++] = (performance.now() - delivered) * 1_000
        pending = false
      }
      bus.publish(event.run, { seq: event.seq, tag: event._tag, json })
    }

    const config = syntheticConfig(1, slices, W3_SEED)
    const stored = yield* StoredRun.backtest({
      strategy,
      feed,
      dataSource: DataSource.synthetic(config),
      registry: registry!,
      owner: owner.id,
      mode: "paper",
      onCreated: (created) => (runId = created.id),
      onEvent,
      beforeSlice
    }).pipe(Effect.ensuring(Effect.sync(() => runId !== undefined && bus.end(runId))))
    const seconds = (performance.now() - t0) / 1_000
    observing = false
    gc.disconnect()
    pauses.sort((a, b) => a - b)
    progress(`  the collector while the run went: ${pauses.length} pauses, ${pauses.reduce((a, b) => a + b, 0).toFixed(0)} ms in all, ` +
      `p99 ${(pauses.length === 0 ? 0 : pauses[Math.min(pauses.length - 1, Math.floor(pauses.length * 0.99))]!).toFixed(2)} ms, max ${(pauses.at(-1) ?? 0).toFixed(2)} ms`)
    // Stopping the profiler and writing its profile is no work of the server's: its CPU is left out
    // of the figure below (it runs in one go, the event loop serving nothing meanwhile).
    let profilerMicros = 0
    if (profiling !== undefined) {
      const before = process.cpuUsage()
      yield* Effect.promise(() => profiling!(subscribers > 0 ? TICK_PROFILE! : `${TICK_PROFILE!}.none`))
      const stop = process.cpuUsage(before)
      profilerMicros = stop.user + stop.system
    }
    if (PROBE) progress(`  slices whose order came after an event-loop turn: ${hops}`)
    const sse = clients === undefined ? undefined : yield* Effect.promise(() => clients!.next())
    const cpu = process.cpuUsage(cpu0)
    // The server's CPU from the first slice until its clients have read everything (user + system, this process).
    const serverMicros = cpu.user + cpu.system - profilerMicros
    progress(`  server CPU from the first slice until the clients had read it all: ${(serverMicros / 1_000).toFixed(0)} ms` +
      (sse === undefined ? "" : ` (${((serverMicros * 1_000) / Math.max(1, (sse as { events?: number }).events ?? 1)).toFixed(0)} ns per event per subscriber, the run's own included)`) +
      (profiling === undefined ? "" : `; the profiler's sampling included, its stop (${(profilerMicros / 1_000).toFixed(0)} ms) not`))
    return {
      latencies: latencies.slice(0, measured).sort(),
      slices: stored.result.counts.slices,
      lateness: lateness.slice(1, index).sort(),
      seconds,
      events: stored.result.counts.events,
      ...(sse === undefined ? {} : { sse })
    } satisfies TickRun
  }))

const describeTicks = (run: TickRun) =>
  `${run.slices} slices in ${run.seconds.toFixed(1)} s (${Math.round(run.slices / run.seconds)} slices/s; delivery late by ` +
  `p50 ${percentile(run.lateness, 0.5).toFixed(2)} ms, p99 ${percentile(run.lateness, 0.99).toFixed(2)} ms), ` +
  `${run.latencies.length} orders, ${run.events} events`

const tickFigures = (base: string, owner: { id: string; key: string }) =>
  Effect.gen(function*() {
    progress(`tick_to_order warm-up (${WARMUP_SLICES} slices)`)
    yield* paperRun(base, owner, WARMUP_SLICES, 0)
    progress(`tick_to_order without subscribers (${TICK_SLICES} slices)`)
    const none = yield* paperRun(base, owner, TICK_SLICES, 0)
    progress(`  ${describeTicks(none)}; p99 ${percentile(none.latencies, 0.99).toFixed(1)} us`)
    progress(`tick_to_order with ${SSE_SUBSCRIBERS} SSE subscribers (${TICK_SLICES} slices)`)
    const sse = yield* paperRun(base, owner, TICK_SLICES, SSE_SUBSCRIBERS)
    progress(`  ${describeTicks(sse)}; p99 ${percentile(sse.latencies, 0.99).toFixed(1)} us; clients: ${JSON.stringify(sse.sse)}`)

    const { paper } = yield* Sampling.TraceSampling
    const traced = paper >= 1 ? "every round traced" : paper <= 0 ? "no round traced" : `one round in ${Math.round(1 / paper)} traced`
    const workload = `a paper run (StoredRun.backtest, mode "paper", recorded in Postgres and published on the server's bus as ` +
      `RunManager does; ${traced} (SWARM_TRACE_SAMPLE_PAPER) into the in-process span store, the telemetry of swarm serve) of W3's strategy (bench_flip, fixed quantity 1, long and short: a reversing order on every bar) on 1 ` +
      `symbol of Feed.synthetic (seed ${W3_SEED}), paced by beforeSlice at ${TICKS_PER_SECOND} slices/s of wall-clock time from the ` +
      `first slice (a late slice is not waited for); per slice, performance.now() from beforeSlice returning to the slice's ` +
      `OrderPlaced reaching onEvent; after a ${WARMUP_SLICES}-slice warm-up run`
    const p = (q: number, run: TickRun) => fixed(percentile(run.latencies, q), 1)
    figure("tick_to_order_p50_us", p(0.5, none), "us", `${workload}; no subscribers; ${describeTicks(none)}`)
    figure("tick_to_order_p99_us", p(0.99, none), "us", `${workload}; no subscribers; ${describeTicks(none)} (target <= 250)`)
    figure("tick_to_order_p999_us", p(0.999, none), "us", `${workload}; no subscribers; ${describeTicks(none)}`)
    const sseWorkload = `${workload}; ${SSE_SUBSCRIBERS} SSE subscribers of the run (GET /v1/runs/:id/events, each its own ` +
      `connection, in another process, reading every byte) attached before the first slice` +
      (SSE_RECONNECT ? `, each coming back after an overflow as an EventSource does (1 s, Last-Event-ID)` : `, not coming back after an overflow`) +
      `; ${describeTicks(sse)}; ` +
      `the subscribers: ${JSON.stringify(sse.sse)}`
    figure("tick_to_order_p50_us_sse", p(0.5, sse), "us", sseWorkload)
    figure("tick_to_order_p99_us_sse", p(0.99, sse), "us", sseWorkload)
    const rate = (run: TickRun) => Math.round(run.slices / run.seconds)
    figure(
      "tick_to_order_sse_ratio",
      fixed(percentile(sse.latencies, 0.99) / percentile(none.latencies, 0.99), 3),
      "ratio",
      "tick_to_order_p99_us_sse / tick_to_order_p99_us (target <= 1.1); meaningful only if both runs kept the pace of " +
        `${TICKS_PER_SECOND} slices/s: they ran at ${rate(none)} and ${rate(sse)} slices/s (tick_slices_per_sec_sse)`
    )
    // Delivery-to-order excludes how late a slice was delivered: a run the subscribers slow down
    // shows it here, not in the ratio.
    figure("tick_slices_per_sec_sse", rate(sse), "slices/s", `${sseWorkload} (the pace asked: ${TICKS_PER_SECOND}; without subscribers: ${rate(none)})`)
  })

// --- main ----------------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const url = yield* Database.temporary(serverUrl, "swarm_bench")
  progress(`edge bench on ${Database.maskUrl(url)}`)
  // As `swarm serve` builds it (src/cli/ServeCommand.ts): its telemetry first, so the paper run's
  // rounds are traced by the tracer a server uses (every round by default: SWARM_TRACE_SAMPLE_PAPER),
  // into the in-process span store, and RPC procedures and HTTP requests make their spans.
  const server = Server.layer(Store.layerWith({ url }), { port: PORT, host: "127.0.0.1", logRequests: false }).pipe(
    Layer.provideMerge(Telemetry.layer)
  )
  yield* Effect.gen(function*() {
    const base = yield* Http.baseUrl
    const users = yield* fixtures
    const only = process.env.EDGE_ONLY
    if (only === undefined || only === "rpc") yield* rpcFigures(base, users)
    if (only === undefined || only === "tick") {
      const trader = yield* Users.create("bench-trader", "user")
      const { key } = yield* ApiKeys.issue(trader.id, "bench")
      yield* tickFigures(base, { id: trader.id, key })
    }
  }).pipe(Effect.provide(server))
})

Effect.runPromise(Effect.scoped(main)).then(
  () => process.exit(0),
  (error) => {
    progress(`edge bench failed: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
)
