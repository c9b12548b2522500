/**
 * What the edge tests share: a stub `Authenticator` (a fixed map of keys to principals) and the
 * users behind it, a real server on a free port, a small hand-written SSE client over `fetch`, and
 * a simulated live run — events published to the bus as a run would, committed to the database
 * behind them as the recorder would (lagging), so a test decides exactly what each source holds;
 * and a server older than a procedure, answering it as one it does not know.
 */
import * as NodeHttp from "node:http"
import * as Net from "node:net"
import { FetchHttpClient, type HttpLayerRouter } from "@effect/platform"
import { RpcClient, RpcSerialization, RpcTest } from "@effect/rpc"
import { SqlClient } from "@effect/sql"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { Principal, Unauthorized } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import { EventBus, type EventBusService } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as DataSource from "../../src/market/DataSource.js"
import { ApprovalRpcs, RunRpcs, StrategyRpcs, SwarmRpcs } from "../../schemas/Rpc.js"
import { Authenticator, type AuthService } from "../../src/edge/Auth.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { ApprovalHandlers, RunHandlers, StrategyHandlers } from "../../src/edge/RpcHandlers.js"
import * as RunEvents from "../../src/edge/RunEvents.js"
import * as Http from "../../src/edge/Http.js"
import * as RunManager from "../../src/edge/RunManager.js"
import { RunStatusFeed, type RunStatusFeedService } from "../../src/edge/RunStatusFeed.js"
import type * as Sse from "../../src/edge/Sse.js"
import * as Database from "../../src/store/Database.js"
import { migrate } from "../../src/store/Migrations.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import { Strategy } from "../../schemas/Strategy.js"
import { marketConfig, strategy, symbolsOf } from "../store/fixtures/workload.js"

// ---------------------------------------------------------------------------------------------
// A run manager

/**
 * A run manager over `bus` in a scope of its own, shut down with the test: a failed test leaves no
 * run live for the next. `statuses`: the feed it tells of the pauses and resumes it makes.
 */
export const managerOn = (bus: EventBusService, statuses?: RunStatusFeedService) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const services = statuses === undefined
      ? Layer.succeed(EventBus, bus)
      : Layer.merge(Layer.succeed(EventBus, bus), Layer.succeed(RunStatusFeed, statuses))
    const context = yield* Layer.buildWithScope(RunManager.layer.pipe(Layer.provide(services)), scope)
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    return Context.get(context, RunManager.RunManager)
  })

// ---------------------------------------------------------------------------------------------
// Who

export const principals = {
  "sk_alice": new Principal({ userId: "alice", name: "alice", role: "user" }),
  "sk_bob": new Principal({ userId: "bob", name: "bob", role: "user" }),
  "sk_root": new Principal({ userId: "root", name: "root", role: "admin" })
} as const
export type Key = keyof typeof principals

/** A stub authenticator over `authenticate`: no cache, so the database's answer is its answer, and nothing to forget. */
export const stubAuth = (authenticate: AuthService["authenticate"]): AuthService => ({
  authenticate,
  authenticateNow: authenticate,
  forgetUser: () => Effect.void,
  nextChange: () => Effect.never
})

export const stubAuthenticator = Layer.succeed(Authenticator, stubAuth((key) => {
  const principal = (principals as Record<string, Principal>)[key]
  return principal === undefined ? Effect.fail(new Unauthorized({ reason: "unknown or revoked API key" })) : Effect.succeed(principal)
}))

/** The users behind the stub keys (runs reference their owner). */
export const createUsers = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const p of Object.values(principals)) {
    yield* sql`insert into users (id, name, role) values (${p.userId}, ${p.name}, ${p.role}) on conflict (id) do nothing`
  }
})

// ---------------------------------------------------------------------------------------------
// The approvals' procedures in-process

/** The strategy, run and approval procedures. */
export const ApprovalGroup = StrategyRpcs.merge(RunRpcs, ApprovalRpcs)

/** Their handlers over a run manager, an in-process bus and the stub users (created in `store`), on `store`. */
export const approvalHandlers = <A, E, R>(store: Layer.Layer<A, E, R>) =>
  Layer.mergeAll(StrategyHandlers, RunHandlers, ApprovalHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(Layer.mergeAll(RunManager.layer, RunEvents.layer)),
    Layer.provideMerge(Layer.mergeAll(InProcessBus.layer, stubAuthenticator, Layer.effectDiscard(Effect.orDie(createUsers)))),
    Layer.provideMerge(store)
  )

/** `key`'s in-process client of the approvals' procedures, for a context holding their handlers. */
export const approvalClient = (key: Key) => Effect.provide(RpcTest.makeClient(ApprovalGroup, { flatten: true }), clientKey(key))

/** The handlers on the Postgres database at `url`, migrated, for the scope: their context and alice's client. */
export const approvalServerOn = (url: string) =>
  Effect.gen(function*() {
    const store = Layer.effectDiscard(Effect.orDie(migrate)).pipe(Layer.provideMerge(Database.layerWith({ url })))
    const context = yield* Layer.build(approvalHandlers(store))
    const alice = yield* approvalClient("sk_alice").pipe(Effect.provide(context))
    return { alice, context }
  })

// ---------------------------------------------------------------------------------------------
// The server

export interface Server {
  readonly url: string
  /** The bus the server's routes use. */
  readonly bus: InProcessBus.InProcessBusService
}

/**
 * A server on a free port of 127.0.0.1 for the scope, over the test's database and authenticator,
 * with its own in-process bus unless given one.
 */
export const server = (options: {
  readonly sse?: Sse.Options
  readonly bus?: InProcessBus.Options
  /** Which origins browsers may call it from (default: the server's, any). */
  readonly corsOrigins?: Http.CorsOrigins
  /** More routes (a test's own; their handlers may fail with anything). */
  readonly extra?: Layer.Layer<never, never, HttpLayerRouter.HttpRouter | HttpLayerRouter.Request<"Error", unknown>>
  /** The runs' statuses its SSE streams tell (default: the route's own feed). */
  readonly statuses?: RunStatusFeedService
  /** Its bus (default: one of its own, made with `bus`'s options). */
  readonly sharedBus?: InProcessBus.InProcessBusService
} = {}) =>
  Effect.gen(function*() {
    const bus = options.sharedBus ?? (yield* InProcessBus.make(options.bus))
    const routes = Http.routes({ sse: { heartbeat: "1 hour", ...options.sse } })
    const context = yield* Layer.build(
      Http.serve(options.extra === undefined ? routes : Layer.merge(routes, options.extra), {
        logRequests: false,
        ...(options.corsOrigins === undefined ? {} : { corsOrigins: options.corsOrigins })
      }).pipe(
        Layer.provideMerge(Http.listen({ port: 0, host: "127.0.0.1", shutdownGrace: 0 })),
        Layer.provide(Layer.succeed(EventBus, bus)),
        Layer.provide(options.statuses === undefined ? Layer.empty : Layer.succeed(RunStatusFeed, options.statuses))
      )
    )
    const url = yield* Effect.provide(Http.baseUrl, context)
    return { url, bus } satisfies Server
  })

// ---------------------------------------------------------------------------------------------
// A small SSE client

export type SseItem =
  | { readonly type: "event"; readonly id: string | undefined; readonly event: string; readonly data: string }
  | { readonly type: "comment"; readonly text: string }
  | { readonly type: "retry"; readonly millis: number }

/** An open SSE response, read item by item (events, comments, `retry:`). */
export class SseReader {
  private readonly decoder = new TextDecoder()
  private buffer = ""
  private readonly ready: Array<SseItem> = []
  private id: string | undefined = undefined
  private event = ""
  private data: Array<string> | undefined = undefined
  private ended = false

  constructor(
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly controller: AbortController
  ) {}

  /** The next item, or `undefined` once the server has closed the stream. */
  async next(): Promise<SseItem | undefined> {
    while (this.ready.length === 0) {
      if (this.ended) return undefined
      const { done, value } = await this.reader.read()
      if (done) {
        this.ended = true
        continue
      }
      this.buffer += this.decoder.decode(value, { stream: true })
      let nl: number
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const line = this.buffer.slice(0, nl).replace(/\r$/, "")
        this.buffer = this.buffer.slice(nl + 1)
        this.line(line)
      }
    }
    return this.ready.shift()
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data !== undefined) {
        this.ready.push({ type: "event", id: this.id, event: this.event === "" ? "message" : this.event, data: this.data.join("\n") })
      }
      this.id = undefined
      this.event = ""
      this.data = undefined
      return
    }
    if (line.startsWith(":")) {
      this.ready.push({ type: "comment", text: line.slice(1).trim() })
      return
    }
    const colon = line.indexOf(":")
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "")
    if (field === "id") this.id = value
    else if (field === "event") this.event = value
    else if (field === "data") (this.data ??= []).push(value)
    else if (field === "retry") this.ready.push({ type: "retry", millis: Number(value) })
  }

  /** Events (not comments) until `stop` holds for one (included) or the stream ends. */
  async events(stop: (e: Extract<SseItem, { type: "event" }>) => boolean = () => false) {
    const out: Array<Extract<SseItem, { type: "event" }>> = []
    for (;;) {
      const item = await this.next()
      if (item === undefined) return out
      if (item.type !== "event") continue
      out.push(item)
      if (stop(item)) return out
    }
  }

  /** Disconnect. */
  close(): void {
    this.controller.abort()
    this.reader.cancel().catch(() => {})
  }
}

export type Opened =
  | { readonly status: 200; readonly headers: Headers; readonly reader: SseReader }
  | { readonly status: number; readonly headers: Headers; readonly body: unknown }

/** GET an events URL; a 200 is left open for reading, anything else is read as JSON. */
export const open = (url: string, headers: Record<string, string> = {}) =>
  Effect.promise(async (): Promise<Opened> => {
    const controller = new AbortController()
    const response = await fetch(url, { headers, signal: controller.signal })
    if (response.status === 200) {
      return { status: 200, headers: response.headers, reader: new SseReader(response.body!.getReader(), controller) }
    }
    const text = await response.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      // left as text: the test will show it
    }
    return { status: response.status, headers: response.headers, body }
  })

/** Open an events URL that must answer 200; closed with the scope. */
export const connect = (url: string, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.flatMap(open(url, headers), (opened) =>
      "reader" in opened ? Effect.succeed(opened) : Effect.dieMessage(`expected 200, got ${opened.status}: ${JSON.stringify(opened.body)}`)),
    (opened) => Effect.sync(() => opened.reader.close())
  )

/** A client on a raw socket that stopped reading (`rawClient`). */
export interface StalledClient {
  /** Read again, to the end of the connection: how many bytes came in all, and whether the server closed it. */
  readonly drain: () => Promise<{ readonly bytes: number; readonly closed: boolean; readonly text: string }>
}

/**
 * A GET of `url` on a raw socket that reads until `until` has come, then stops reading and keeps
 * the connection open: its receive buffer fills, then the server's send buffer, and the server's
 * writes wait for a drain that does not come. Destroyed with the scope.
 */
export const rawClient = (url: string, headers: Record<string, string>, until: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly socket: Net.Socket; readonly client: StalledClient }>((resume) => {
      const target = new URL(url)
      const socket = Net.connect({ host: target.hostname, port: Number(target.port) })
      const chunks: Array<Buffer> = []
      let bytes = 0
      let closed = false
      let waiting: (() => void) | undefined
      const onData = (chunk: Buffer) => {
        chunks.push(chunk)
        bytes += chunk.length
        if (waiting === undefined && Buffer.concat(chunks).toString("latin1").includes(until)) {
          // Stop reading: nothing more is taken from the kernel until `drain`.
          socket.pause()
          waiting = () => {}
          resume(Effect.succeed({ socket, client }))
        }
      }
      const client: StalledClient = {
        drain: () =>
          new Promise((done) => {
            const finish = () => done({ bytes, closed, text: Buffer.concat(chunks).toString("utf8") })
            if (closed) return finish()
            socket.once("close", finish)
            socket.resume()
          })
      }
      socket.on("data", onData)
      socket.on("error", () => {})
      socket.on("close", () => (closed = true))
      const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
      socket.write(`${lines.join("\r\n")}\r\n\r\n`)
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  ).pipe(Effect.map(({ client }) => client))

export const eventsUrl = (server: Server, run: string, query = "") =>
  `${server.url}/v1/runs/${encodeURIComponent(run)}/events${query === "" ? "" : `?${query}`}`

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

/** An RPC client of a real server at `base` acting with `key`, over HTTP (ndjson), as the CLI is. */
export const rpcClient = (base: string, key: string) =>
  RpcClient.make(SwarmRpcs, { flatten: true }).pipe(
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: `${base}/rpc` }).pipe(
        Layer.provide(FetchHttpClient.layer),
        Layer.provide(RpcSerialization.layerNdjson),
        Layer.merge(clientKey(key))
      )
    )
  )

/** A user `name` made by the admin (key `admin`) of a real server at `base`, through its RPC: with their first key. */
export const createUser = (base: string, admin: string, name: string) =>
  Effect.scoped(Effect.flatMap(rpcClient(base, admin), (client) => client("admin.createUser", { name, role: "user" }))).pipe(Effect.orDie)

/** Until `done()` holds, checking every few milliseconds (at most `attempts` times). */
export const eventually = (done: () => boolean, attempts = 500) =>
  Effect.gen(function*() {
    for (let i = 0; i < attempts && !done(); i++) yield* Effect.sleep("10 millis")
    return done()
  })

// ---------------------------------------------------------------------------------------------
// A simulated live run

export interface SimulatedRun {
  readonly id: RunId
  /** The canonical line of event `seq`. */
  readonly body: (seq: number) => string
  /** Publish events `from..to` on the bus (as the run's event log does, synchronously). */
  readonly publish: (from: number, to: number) => void
  /** Commit events up to `seq` to the database (as the recorder does, behind the run). */
  readonly commit: (seq: number) => Effect.Effect<void, never, SqlClient.SqlClient>
  /** Everything committed, the run's row finished, the bus told. */
  readonly finish: Effect.Effect<void, never, SqlClient.SqlClient>
}

let simulated = 0

/** A `running` run of `owner` whose events the test publishes and commits by hand. */
export const simulatedRun = (bus: InProcessBus.InProcessBusService, owner: string, options: { readonly pad?: number } = {}) =>
  Effect.gen(function*() {
    const s = strategy(1, `simulated ${++simulated}`)
    const saved = yield* Strategies.saveVersion(owner, s)
    const { id } = yield* Runs.create({
      owner,
      strategyId: saved.strategyId,
      strategyVersion: saved.version,
      strategy: s,
      mode: "paper",
      seed: "0",
      dataSource: DataSource.encode(DataSource.synthetic(marketConfig(1, 10))),
      dataFingerprint: "simulated",
      eventDetail: "decisions"
    })
    const pad = "x".repeat(options.pad ?? 0)
    const tagOf = (seq: number) => (seq % 3 === 0 ? "PortfolioUpdated" : "DecisionMade")
    const body = (seq: number) => JSON.stringify({ _tag: tagOf(seq), run: id, seq, at: seq * 1000, pad, text: "a \"quoted\" line\\n" })
    let published = 0
    let committed = 0
    const commit = (seq: number) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        while (committed < Math.min(seq, published)) {
          const to = Math.min(seq, published, committed + 500)
          const rows = Array.from({ length: to - committed }, (_, i) => {
            const n = committed + 1 + i
            return { runId: id, seq: n, tag: tagOf(n), at: n * 1000, hash: "0".repeat(64), body: body(n) }
          })
          yield* sql`insert into run_events ${sql.insert(rows)}`
          committed = to
        }
      }).pipe(Effect.orDie)
    return {
      id,
      body,
      publish: (from, to) => {
        for (let seq = from; seq <= to; seq++) bus.publish(id, { seq, tag: tagOf(seq), json: body(seq) })
        published = Math.max(published, to)
      },
      commit,
      finish: Effect.gen(function*() {
        yield* commit(published)
        const sql = yield* SqlClient.SqlClient
        yield* Effect.orDie(sql`update runs set status = 'completed', finished_at = now() where id = ${id}`)
        bus.end(id)
      })
    } satisfies SimulatedRun
  })

/** The sequence numbers `from..to`. */
export const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)

/** Every order that opens a position is above 5% of equity: each needs an operator. */
export const guarded = (name: string, timeoutSeconds: number) =>
  Schema.decodeUnknownSync(Strategy)({
    name,
    symbols: symbolsOf(1),
    agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
    sizing: { mode: "percent_of_equity", value: 10 },
    risk: { approval: { notionalPctAbove: 5, policy: "pause", timeoutSeconds } }
  })

/** Poll until `get` gives something `done` accepts (a run goes on in the background), at most `looks` looks (20 ms apart). */
export const until = <A, E, R>(get: Effect.Effect<A, E, R>, done: (a: A) => boolean, what: string, looks = 600) =>
  Effect.gen(function*() {
    for (let i = 0; i < looks; i++) {
      const value = yield* get
      if (done(value)) return value
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.dieMessage(`timed out waiting for ${what}`)
  })

// ---------------------------------------------------------------------------------------------
// A server older than a procedure

/** What a server older than a procedure answers a request for it: a typed refusal on `tag`, or (older still) a defect. */
export type OldAnswer = "invalid tag" | "defect"

/**
 * A server that speaks the RPC protocol (HTTP, ndjson) but knows only the procedures of `known`,
 * answering each with its value, as an older server: every other request is answered as a
 * procedure it does not know, as `answer` says. `asked`: the procedures requested, in order.
 */
export const oldServer = (answer: OldAnswer, known: Readonly<Record<string, unknown>>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly base: string; readonly server: NodeHttp.Server; readonly asked: Array<string> }>((resume) => {
      const asked: Array<string> = []
      const server = NodeHttp.createServer((request, response) => {
        let body = ""
        request.on("data", (chunk: Buffer) => (body += chunk.toString()))
        request.on("end", () => {
          response.writeHead(200, { "content-type": "application/ndjson" })
          for (const line of body.split("\n").filter((l) => l.trim() !== "")) {
            const message = JSON.parse(line) as { _tag: string; id: string; tag: string }
            if (message._tag !== "Request") continue
            asked.push(message.tag)
            const exit = message.tag in known
              ? { _tag: "Success", value: known[message.tag] }
              : answer === "invalid tag"
              ? { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "InvalidRequest", field: "tag", reason: `no procedure is named "${message.tag}"` } } }
              : undefined
            response.write(
              exit === undefined
                ? `${JSON.stringify({ _tag: "Defect", defect: `Unknown request tag: ${message.tag}` })}\n`
                : `${JSON.stringify({ _tag: "Exit", requestId: message.id, exit })}\n`
            )
          }
          response.end()
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ base: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server, asked })))
    }),
    ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )
