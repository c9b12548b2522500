/**
 * Where an RPC read's server CPU goes (`npm run bench -- rpcCost`): the server built as
 * bench/edge.ts builds it (Server.layer with the telemetry of `swarm serve`, on a temporary
 * database of `DATABASE_URL`'s Postgres server or the local one), called from this process, one
 * call at a time, beside the same call with parts of it taken away:
 *
 *   effect.noop        `Runtime.runPromise` of `Effect.void` in the server's runtime
 *   sql.pool           `select 1` on the server's pg pool, no Effect
 *   sql.effect         `select 1` through the server's `SqlClient` (@effect/sql-pg, its span)
 *   store.getSummary   `Runs.getSummary`: what `runs.get` reads, without HTTP or RPC
 *   schema.decodeMetrics  a run's stored metrics decoded by their schema, as `runs.get` reads them
 *   schema.encodeRunInfo  `runs.get`'s answer encoded by its schema, as @effect/rpc sends it
 *   http.plain         a request to a bare `node:http` server of this process: sockets and HTTP parsing
 *   rpc.minimal        a call to a bare @effect/rpc server over HTTP (HttpLayerRouter, ndjson), one
 *                      procedure answering a constant: what @effect/platform and @effect/rpc cost alone
 *   http.notFound      our server, an unknown route: the router and our middlewares
 *   rpc.unauthorized   our server, `runs.get` without a key: the RPC endpoint up to the refusal
 *   rpc.runsGetWebSocket  `runs.get` with a key over the WebSocket endpoint, one socket for every call:
 *                      the same procedure, middleware and answer without an HTTP request and an
 *                      @effect/rpc client made for each call
 *   rpc.runsGet        our server, `runs.get` with a key over `POST /rpc`, as the CLI and bench/edge.ts call it
 *
 * Each figure is CPU time (user + system, `process.cpuUsage`, this process: client and server) per
 * call, the median of `RPC_COST_ROUNDS` rounds of `RPC_COST_CALLS` calls, the parts interleaved
 * round by round so that a neighbour's load falls on all of them alike; with the time V8's GC
 * paused the process per call (`gc` performance entries) in the workload text.
 * `EDGE_PORT` (default: any free one; the two bare servers take the next two) sets the ports;
 * `RPC_COST_PARTS` (names, comma-separated) measures only those parts.
 */
import * as NodeHttp from "node:http"
import { createRequire } from "node:module"
import type { AddressInfo } from "node:net"
import { PerformanceObserver } from "node:perf_hooks"
import { HttpLayerRouter } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Rpc, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Runtime, Schema } from "effect"
import { Metrics } from "../schemas/Metrics.js"
import { RunInfo } from "../schemas/Rpc.js"
import { Strategy } from "../schemas/Strategy.js"
import * as Http from "../src/edge/Http.js"
import * as Server from "../src/edge/Server.js"
import * as DataSource from "../src/market/DataSource.js"
import * as Feed from "../src/market/Feed.js"
import * as ApiKeys from "../src/store/ApiKeys.js"
import * as Database from "../src/store/Database.js"
import { PgPool } from "../src/store/Pool.js"
import * as Runs from "../src/store/Runs.js"
import * as Store from "../src/store/Store.js"
import * as StoredRun from "../src/store/StoredRun.js"
import * as Users from "../src/store/Users.js"
import * as Telemetry from "../src/telemetry/Telemetry.js"
import { symbols, syntheticConfig } from "./internal/backtestWorkloads.js"
import { emit, machine, median, progress } from "./internal/report.js"

const CALLS = Number(process.env.RPC_COST_CALLS ?? 200)
const ROUNDS = Number(process.env.RPC_COST_ROUNDS ?? 7)
const WARMUP_CALLS = 300
const PORT = Number(process.env.EDGE_PORT ?? 0)
/** `RPC_COST_PARTS=rpc.runsGet,rpc.minimal`: only those parts (default: every one), for a quicker A/B of one change. */
const ONLY = (process.env.RPC_COST_PARTS ?? "").split(",").map((name) => name.trim()).filter((name) => name !== "")

const serverUrl = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL.trim() !== ""
  ? process.env.DATABASE_URL
  : "postgres://postgres@127.0.0.1:5432/postgres"

const MACHINE = machine()

/** One keep-alive connection per server, as one operator's CLI or dashboard has. */
const requester = (base: string) => {
  const agent = new NodeHttp.Agent({ keepAlive: true, maxSockets: 1 })
  return (method: string, path: string, body?: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const headers = body === undefined ? {} : { "content-type": "application/ndjson", "content-length": String(Buffer.byteLength(body)) }
      const request = NodeHttp.request(new URL(path, base), { method, agent, headers }, (response) => {
        let text = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => (text += chunk))
        response.on("end", () => resolve(text))
        response.on("error", reject)
      })
      request.on("error", reject)
      request.end(body)
    })
}

let requestId = 0
const rpcLine = (tag: string, payload: unknown, key?: string) =>
  JSON.stringify({ _tag: "Request", id: String(++requestId), tag, payload, headers: key === undefined ? [] : [["authorization", `Bearer ${key}`]] }) + "\n"

/** The `ws` package (the platform's WebSocket), as test/edge/Fuzz.test.ts reaches it: not a dependency of ours. */
interface WebSocketLike {
  once(event: "open", listener: () => void): void
  on(event: "message", listener: (data: unknown) => void): void
  send(data: string): void
  close(): void
}
const WebSocket = createRequire(import.meta.url)("ws") as new(url: string) => WebSocketLike

/**
 * One WebSocket to the RPC endpoint (`/rpc/ws`, ndjson), kept open for the scope: a function that
 * sends a request line and resolves with its `Exit` line, answering the server's pings meanwhile.
 */
const webSocketCaller = (url: string) =>
  Effect.acquireRelease(
    Effect.async<WebSocketLike>((resume) => {
      const socket = new WebSocket(url)
      socket.once("open", () => resume(Effect.succeed(socket)))
    }),
    (socket) => Effect.sync(() => socket.close())
  ).pipe(Effect.map((socket) => {
    const waiting = new Map<string, (line: string) => void>()
    socket.on("message", (data) => {
      for (const line of String(data).split("\n")) {
        if (line.trim() === "") continue
        const message = JSON.parse(line) as { readonly _tag: string; readonly requestId?: string }
        if (message._tag === "Ping") socket.send(`{"_tag":"Pong"}\n`)
        if (message._tag !== "Exit" || message.requestId === undefined) continue
        waiting.get(message.requestId)?.(line)
        waiting.delete(message.requestId)
      }
    })
    return (line: string) =>
      new Promise<string>((resolve) => {
        waiting.set((JSON.parse(line) as { readonly id: string }).id, resolve)
        socket.send(line)
      })
  }))

/** A bare @effect/rpc server over HTTP: one procedure answering a constant. */
class Bare extends RpcGroup.make(
  Rpc.make("get", { payload: { run: Schema.String }, success: Schema.Struct({ id: Schema.String, n: Schema.Number, tags: Schema.Array(Schema.String) }) })
) {}

const bareRpc = (port: number) =>
  HttpLayerRouter.serve(
    RpcServer.layer(Bare).pipe(
      Layer.provide(Bare.toLayer({ get: ({ run }) => Effect.succeed({ id: run, n: 1, tags: ["a", "b"] }) })),
      Layer.provide(RpcServer.layerProtocolHttpRouter({ path: "/rpc" })),
      Layer.provide(RpcSerialization.layerNdjson)
    ),
    { disableLogger: true, disableListenLog: true }
  ).pipe(Layer.provide(NodeHttpServer.layer(() => NodeHttp.createServer(), { port, host: "127.0.0.1" })))

/** A bare node:http server answering every request with a small JSON body. */
const plainHttp = (port: number) =>
  Effect.acquireRelease(
    Effect.async<NodeHttp.Server>((resume) => {
      const server = NodeHttp.createServer((request, response) => {
        request.resume()
        request.on("end", () => {
          response.writeHead(200, { "content-type": "application/json" })
          response.end(`{"ok":true}`)
        })
      })
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

const fixture = Effect.gen(function*() {
  const user = yield* Users.create("cost", "user")
  const { key } = yield* ApiKeys.issue(user.id, "cost")
  const config = syntheticConfig(2, 300, 1_000)
  const strategy = Schema.decodeUnknownSync(Strategy)({
    name: "cost reads",
    symbols: symbols(2),
    agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }],
    sizing: { mode: "percent_of_equity", value: 10 }
  })
  const stored = yield* StoredRun.backtest({ strategy, feed: Feed.synthetic(config), dataSource: DataSource.synthetic(config), owner: user.id })
  return { user: user.id, key, run: stored.run }
})

/** GC pause time (ms) reported since the last call of the function returned. */
const gcPauses = () => {
  let total = 0
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) total += entry.duration
  })
  observer.observe({ entryTypes: ["gc"] })
  return {
    take: () => {
      const t = total
      total = 0
      return t
    },
    stop: () => observer.disconnect()
  }
}

const main = Effect.gen(function*() {
  const url = yield* Database.temporary(serverUrl, "swarm_bench")
  progress(`rpc cost bench on ${Database.maskUrl(url)}`)
  const server = Server.layer(Store.layerWith({ url }), { port: PORT, host: "127.0.0.1", logRequests: false }).pipe(
    Layer.provideMerge(Telemetry.layer)
  )
  yield* Effect.gen(function*() {
    const base = yield* Http.baseUrl
    const runtime = yield* Effect.runtime<SqlClient.SqlClient>()
    const sql = yield* SqlClient.SqlClient
    const { pool } = yield* PgPool
    const { key, run, user } = yield* fixture
    const plain = yield* plainHttp(PORT === 0 ? 0 : PORT + 1)
    const plainBase = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`
    const bareContext = yield* Layer.build(bareRpc(PORT === 0 ? 0 : PORT + 2))
    const bareBase = yield* Http.baseUrl.pipe(Effect.provide(bareContext))

    const ours = requester(base)
    const plainRequest = requester(plainBase)
    const bareRequest = requester(bareBase)
    const runPromise = Runtime.runPromise(runtime)
    const checked = yield* Effect.promise(() => ours("POST", "/rpc", rpcLine("runs.get", { run }, key)))
    if (!checked.includes(`"_tag":"Success"`)) return yield* Effect.dieMessage(`runs.get failed: ${checked.slice(0, 300)}`)
    const answer = Schema.decodeUnknownSync(RunInfo)((JSON.parse(checked.split("\n")[0]!) as { exit: { value: unknown } }).exit.value)
    const encodeRunInfo = Schema.encode(RunInfo)
    const rawMetrics = (yield* sql<{ metrics: unknown }>`select metrics from runs where id = ${run}`)[0]!.metrics
    const decodeMetrics = Schema.decodeUnknown(Metrics)
    const wsCall = yield* webSocketCaller(`${base.replace(/^http/, "ws")}${Http.RPC_WS_PATH}`)
    const viaWebSocket = (payload: { readonly run: string }) => wsCall(rpcLine("runs.get", payload, key))
    const every: ReadonlyArray<readonly [string, () => Promise<unknown>]> = [
      ["effect.noop", () => runPromise(Effect.void)],
      ["sql.pool", () => pool.query("select 1")],
      ["sql.effect", () => runPromise(sql`select 1`)],
      ["store.getSummary", () => runPromise(Runs.getSummary(run, user))],
      ["schema.decodeMetrics", () => runPromise(decodeMetrics(rawMetrics))],
      ["schema.encodeRunInfo", () => runPromise(encodeRunInfo(answer))],
      ["http.plain", () => plainRequest("POST", "/", rpcLine("get", { run }))],
      ["rpc.minimal", () => bareRequest("POST", "/rpc", rpcLine("get", { run }))],
      ["http.notFound", () => ours("GET", "/nope")],
      ["rpc.unauthorized", () => ours("POST", "/rpc", rpcLine("runs.get", { run }))],
      ["rpc.runsGetWebSocket", () => viaWebSocket({ run })],
      ["rpc.runsGet", () => ours("POST", "/rpc", rpcLine("runs.get", { run }, key))]
    ]
    const parts = ONLY.length === 0 ? every : every.filter(([name]) => ONLY.includes(name))

    const cpu = new Map<string, Array<number>>(parts.map(([name]) => [name, []]))
    const gc = new Map<string, number>(parts.map(([name]) => [name, 0]))
    const pauses = gcPauses()
    yield* Effect.promise(async () => {
      for (const [, call] of parts) for (let i = 0; i < WARMUP_CALLS; i++) await call()
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, call] of parts) {
          pauses.take()
          const before = process.cpuUsage()
          for (let i = 0; i < CALLS; i++) await call()
          const used = process.cpuUsage(before)
          cpu.get(name)!.push((used.user + used.system) / CALLS)
          gc.set(name, gc.get(name)! + pauses.take())
        }
        progress(`round ${round + 1}/${ROUNDS}: ${parts.map(([name]) => `${name} ${cpu.get(name)!.at(-1)!.toFixed(0)} us`).join(", ")}`)
      }
    })
    pauses.stop()
    for (const [name] of parts) {
      const values = cpu.get(name)!
      emit({
        bench: "rpcCost",
        metric: `${name}_cpu_us_per_call`,
        value: Math.round(median(values)),
        unit: "us",
        workload: `${name}: one call at a time from this process (client and server CPU, process.cpuUsage), median of ${ROUNDS} rounds ` +
          `of ${CALLS} calls (range ${Math.round(Math.min(...values))}-${Math.round(Math.max(...values))} us), the parts interleaved round ` +
          `by round, after ${WARMUP_CALLS} warm-up calls each; GC paused the process ${(gc.get(name)! * 1_000 / (ROUNDS * CALLS)).toFixed(0)} us per call; ` +
          `the server as bench/edge.ts builds it (Server.layer with Telemetry.layer, Postgres, temporary database)`,
        machine: MACHINE
      })
    }
  }).pipe(Effect.provide(server))
})

Effect.runPromise(Effect.scoped(main)).then(
  () => process.exit(0),
  (error) => {
    progress(`rpc cost bench failed: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
)
