/**
 * The server as any client meets it, on a real port (0: a free one, read back from the server):
 * `/health` says which back-ends are in use; an unknown route is a JSON 404; a handler that dies
 * or fails unexpectedly is a JSON 500 that shows nothing of the failure (which is logged instead),
 * an error that knows its status (a body that does not parse) keeps it, and the server goes on.
 */
import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Layer, Logger, LogLevel, Schema } from "effect"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as Redis from "../../src/bus/Redis.js"
import * as RedisBus from "../../src/bus/RedisBus.js"
import * as Http from "../../src/edge/Http.js"
import * as os from "node:os"
import * as Health from "../../src/edge/Health.js"
import * as RunStatusFeed from "../../src/edge/RunStatusFeed.js"
import { SpanStore } from "../../src/telemetry/SpanStore.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"
import { DatabaseInfo } from "../../src/store/Database.js"
import * as Migrations from "../../src/store/Migrations.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { bearer, connect, createUsers, eventsUrl, server, simulatedRun, stubAuthenticator } from "./fixtures.js"
import { Principal } from "../../schemas/Auth.js"
import { Authenticator, type AuthService } from "../../src/edge/Auth.js"
import * as LogFormat from "../../src/telemetry/LogFormat.js"
import { Redis as IORedis } from "ioredis"
import { cleanUp, freezingRedis, redisUrl, runRedis, uniquePrefix } from "../bus/redis.js"

const get = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    return { status: response.status, type: response.headers.get("content-type"), text, json: (): unknown => JSON.parse(text) }
  })

class Secret extends Schema.TaggedError<Secret>()("Secret", { detail: Schema.String }) {}

/** Routes that go wrong in every way a handler can. */
const broken = Layer.mergeAll(
  HttpLayerRouter.add("GET", "/test/die", Effect.die(new Error("boom: the secret stack"))),
  HttpLayerRouter.add("GET", "/test/throw", Effect.sync((): HttpServerResponse.HttpServerResponse => {
    throw new TypeError("cannot read properties of undefined (reading 'secret')")
  })),
  HttpLayerRouter.add("GET", "/test/fail", Effect.fail(new Secret({ detail: "the secret detail" }))),
  HttpLayerRouter.add("GET", "/test/ok", HttpServerResponse.text("fine")),
  // A body that is not JSON fails with the platform's RequestError, which knows its answer (400).
  HttpLayerRouter.add("POST", "/test/json", Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.map(request.json, (body) => HttpServerResponse.unsafeJson({ got: body }))))
)

for (const backend of backends) {
  layer(Layer.merge(backend.store, stubAuthenticator), { timeout: startTimeout, excludeTestServices: true })(`HTTP (${backend.name})`, (it) => {
    it.scoped("GET /health: ok, and which database, bus, run status feed, model and telemetry are in use", () =>
      Effect.gen(function*() {
        const srv = yield* server()
        expect(srv.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
        expect(srv.url).not.toBe("http://127.0.0.1:0")
        const info = yield* DatabaseInfo
        const answer = yield* get(`${srv.url}/health`)
        expect(answer.status).toBe(200)
        expect(answer.type).toBe("application/json")
        const report = Schema.decodeUnknownSync(Health.HealthReport)(answer.json())
        expect(report).toEqual({
          status: "ok",
          instance: { host: os.hostname(), pid: process.pid, version: Telemetry.version, uptimeSeconds: expect.any(Number), liveRuns: 0 },
          database: { kind: backend.name, description: info.description, schema: { migration: Migrations.latest, buildLatest: Migrations.latest } },
          bus: { kind: "in-process" },
          statusFeed: { kind: "in-process", description: expect.stringContaining("in this process"), followed: 0 },
          model: { kind: "offline", description: expect.any(String) },
          telemetry: { kind: "in-process", description: expect.any(String) }
        })
        expect(report.model.description).toContain("no language model configured yet")
        expect(report.telemetry.description).toContain("no exporter configured yet")
        // A password is never shown.
        expect(answer.text).not.toMatch(/:[^:@/]+@/)
      }))

    it.scoped("GET /health: the status feed the SSE streams use, and how many runs they follow through it", () =>
      Effect.gen(function*() {
        yield* Effect.orDie(createUsers)
        const feed = yield* RunStatusFeed.makeInProcess({ poll: "1 hour" })
        const srv = yield* server({ statuses: feed })
        const statusFeed = () => Effect.map(get(`${srv.url}/health`), (answer) => (answer.json() as Health.HealthReport).statusFeed)
        expect(yield* statusFeed()).toEqual({ kind: "in-process", description: feed.description, followed: 0 })
        expect(feed.description).toContain("within 1h")
        const run = yield* simulatedRun(srv.bus, "alice")
        run.publish(1, 1)
        const watching = yield* connect(eventsUrl(srv, run.id), bearer("sk_alice"))
        expect((yield* Effect.promise(() => watching.reader.events((e) => e.event === "status")))[0]!.data).toBe(`{"status":"running"}`)
        expect((yield* statusFeed()).followed).toBe(1)
      }))

    it.scoped.skipIf(!runRedis)("GET /health: a server whose status feed is Redis says so, with the hints it read from other servers", () =>
      Effect.gen(function*() {
        // The feed is no matter of the database's: once is enough.
        if (backend.name !== "embedded") return
        const prefix = uniquePrefix("health-feed")
        yield* Effect.addFinalizer(() => Effect.promise(() => cleanUp(prefix)))
        const redis = Redis.layerWith({ url: redisUrl, prefix })
        const context = yield* Layer.build(
          Http.serve(Http.routes({ sse: { heartbeat: "1 hour" } }), { logRequests: false }).pipe(
            Layer.provideMerge(Http.listen({ port: 0, host: "127.0.0.1", shutdownGrace: 0 })),
            Layer.provide(Layer.merge(RedisBus.layer, RunStatusFeed.layerRedis)),
            Layer.provide(redis)
          )
        )
        const url = yield* Effect.provide(Http.baseUrl, context)
        const report = (yield* get(`${url}/health`)).json() as Health.HealthReport
        expect(report.statusFeed).toEqual({ kind: "redis", description: expect.stringContaining(`Redis (${prefix}runs:status)`), followed: 0, received: 0 })
        // Another server's hint.
        const other = yield* Effect.acquireRelease(
          Effect.sync(() => new IORedis(redisUrl)),
          (client) => Effect.sync(() => client.disconnect())
        )
        yield* Effect.promise(() => other.publish(RunStatusFeed.channelOf(prefix), JSON.stringify({ origin: "another", run: "run_x" })))
        let received = 0
        for (let i = 0; i < 100 && received === 0; i++) {
          yield* Effect.sleep("20 millis")
          received = ((yield* get(`${url}/health`)).json() as Health.HealthReport).statusFeed.received ?? 0
        }
        expect(received).toBe(1)
      }))

    it.scoped("GET /health: degraded, still 200, while the telemetry collector fails — saying why; ok again once it answers", () =>
      Effect.gen(function*() {
        let failing: { failingSince: number; error: string } | undefined = { failingSince: Date.now(), error: "traces: connect ECONNREFUSED" }
        const telemetry: Telemetry.Service = {
          get info(): Telemetry.Info {
            return { ...Telemetry.describe({ endpoint: "http://127.0.0.1:1" }), ...failing }
          },
          store: new SpanStore(10),
          rates: { backtest: 0, paper: 1 }
        }
        const srv = yield* server().pipe(Effect.provideService(Telemetry.Telemetry, telemetry))
        const degraded = yield* get(`${srv.url}/health`)
        expect(degraded.status).toBe(200)
        expect(degraded.json()).toMatchObject({
          status: "degraded",
          reasons: ["telemetry: exports to the collector fail (traces: connect ECONNREFUSED)"],
          telemetry: { kind: "otlp", failingSince: failing.failingSince }
        })
        failing = undefined
        const ok = yield* get(`${srv.url}/health`)
        expect([ok.status, (ok.json() as { status: string }).status, "reasons" in (ok.json() as object)]).toEqual([200, "ok", false])
      }))

    it.scoped.skipIf(!runRedis)("GET /health: degraded while Redis is frozen (its connection up, nothing answering) on a server that publishes nothing; quick all the same; ok once it answers", () =>
      Effect.gen(function*() {
        // The bus is no matter of the database's: once is enough.
        if (backend.name !== "embedded") return
        const frozen = yield* freezingRedis
        const prefix = uniquePrefix("health-frozen")
        yield* Effect.addFinalizer(() => Effect.promise(() => cleanUp(prefix)))
        const context = yield* Layer.build(
          Http.serve(Http.routes({ sse: { heartbeat: "1 hour" } }), { logRequests: false }).pipe(
            Layer.provideMerge(Http.listen({ port: 0, host: "127.0.0.1", shutdownGrace: 0 })),
            Layer.provide(RedisBus.layer),
            Layer.provide(Redis.layerWith({ url: frozen.url, prefix, pingTimeoutMillis: 300 }))
          )
        )
        const url = yield* Effect.provide(Http.baseUrl, context)
        const health = get(`${url}/health`).pipe(Effect.map((answer) => ({ status: answer.status, report: answer.json() as Health.HealthReport })))
        expect((yield* health).report).toMatchObject({ status: "ok", bus: { kind: "redis", redis: { state: "ready" } } })
        yield* frozen.freeze
        // A follower publishes nothing: before, nothing failed, and /health said ok for as long as Redis was frozen.
        yield* Effect.sleep("1 second")
        const degraded = yield* health
        expect(degraded.status).toBe(200)
        expect(degraded.report).toMatchObject({
          status: "degraded",
          reasons: ["bus: Redis does not answer (no answer to PING within 300 ms): falling back to this process"],
          bus: { kind: "redis", redis: { state: "ready", failingSince: expect.any(Number) } }
        })
        // Asked again at once: the PING's answer is kept, not waited for again. An ask that waited
        // for a PING takes its 300 ms at least; the quickest of three asks shows none did, with room
        // for a loaded machine's slow request.
        const asks: Array<number> = []
        for (let i = 0; i < 3; i++) {
          const started = Date.now()
          expect((yield* health).report.status).toBe("degraded")
          asks.push(Date.now() - started)
        }
        expect(Math.min(...asks)).toBeLessThan(300)
        yield* frozen.thaw
        let report = (yield* health).report
        for (let i = 0; i < 100 && report.status !== "ok"; i++) {
          yield* Effect.sleep("100 millis")
          report = (yield* health).report
        }
        expect(report.status).toBe("ok")
      }), { timeout: 30_000 })

    it.scoped("request log lines: /health at DEBUG (a healthcheck every 10 s is no INFO line), an RPC call with its procedures, each with its duration", () =>
      Effect.gen(function*() {
        const logged: Array<{ level: string; message: string }> = []
        const recorder = Logger.make(({ logLevel, message }) => {
          logged.push({ level: logLevel.label, message: (Array.isArray(message) ? message : [message]).map(String).join(" ") })
        })
        const rpc = HttpLayerRouter.add("POST", "/rpc", HttpServerResponse.text("ok"))
        const context = yield* Layer.build(
          Http.serve(Layer.merge(Http.routes(), rpc), { logRequests: true }).pipe(
            Layer.provideMerge(Http.listen({ port: 0, host: "127.0.0.1", shutdownGrace: 0 })),
            Layer.provide(InProcessBus.layer)
          )
        ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, recorder)), Effect.provide(Logger.minimumLogLevel(LogLevel.All)))
        const url = yield* Effect.provide(Http.baseUrl, context)
        yield* get(`${url}/health`)
        const call = (tag: string, id: string) => JSON.stringify({ _tag: "Request", id, tag, payload: {}, headers: [] })
        yield* get(`${url}/rpc`, { method: "POST", body: `${call("runs.get", "1")}\n${call("runs.list", "2")}\n` })
        const lines = logged.filter((l) => /^(GET|POST) \//.test(l.message))
        expect(lines).toEqual([
          { level: "DEBUG", message: expect.stringMatching(/^GET \/health 200 \d+(\.\d)? ms$/) },
          { level: "INFO", message: expect.stringMatching(/^POST \/rpc 200 runs\.get,runs\.list \d+(\.\d)? ms$/) }
        ])
      }))

    it.scoped("json or logfmt: a request's line has its fields — method, path, status, duration, trace id, user — and never its key or query", () =>
      Effect.gen(function*() {
        const logged: Array<{ message: string; annotations: Record<string, unknown> }> = []
        const recorder = Logger.make(({ annotations, message }) => {
          logged.push({ message: (Array.isArray(message) ? message : [message]).map(String).join(" "), annotations: Object.fromEntries(annotations) })
        })
        const key = "sk_" + "k".repeat(43)
        const principal = new Principal({ userId: "u_1", name: "alice", role: "user" })
        const auth: AuthService = {
          authenticate: () => Effect.succeed(principal),
          authenticateNow: () => Effect.succeed(principal),
          forgetUser: () => Effect.void,
          nextChange: () => Effect.never,
          holder: (presented) => Effect.succeed(presented === key ? principal : undefined)
        }
        const context = yield* Layer.build(
          Http.serve(HttpLayerRouter.add("GET", "/test/ok", HttpServerResponse.text("fine")), { logRequests: true }).pipe(
            Layer.provideMerge(Http.listen({ port: 0, host: "127.0.0.1", shutdownGrace: 0 }))
          )
        ).pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, recorder)),
          Effect.provide(Layer.locallyScoped(LogFormat.current, "json")),
          Effect.provideService(Authenticator, auth)
        )
        const url = yield* Effect.provide(Http.baseUrl, context)
        yield* get(`${url}/test/ok?token=${key}&x=1`)
        yield* get(`${url}/test/ok`, { headers: { authorization: `Bearer ${key}` } })
        yield* get(`${url}/nope?token=sk_unknown`)
        const lines = logged.filter((l) => /^GET \//.test(l.message))
        expect(lines).toHaveLength(3)
        for (const line of lines.slice(0, 2)) {
          expect(line.message).toMatch(/^GET \/test\/ok 200 \d+(\.\d)? ms, user alice$/)
          expect(line.annotations).toEqual({
            method: "GET",
            path: "/test/ok",
            status: 200,
            durationMs: expect.any(Number),
            traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
            userId: "u_1",
            user: "alice"
          })
        }
        expect(lines[2]!.annotations).toMatchObject({ path: "/nope", status: 404 })
        expect(lines[2]!.annotations).not.toHaveProperty("user")
        expect(JSON.stringify(logged)).not.toMatch(/sk_|token/)
      }))

    it.scoped("an unknown route or method is a JSON 404 naming the path, never echoing its query", () =>
      Effect.gen(function*() {
        const srv = yield* server()
        for (const [method, path] of [["GET", "/nope"], ["GET", "/v1/runs"], ["POST", "/health"], ["DELETE", "/v1/runs/x/events"]] as const) {
          const answer = yield* get(`${srv.url}${path}?token=sk_secret`, { method })
          expect(answer.status, `${method} ${path}`).toBe(404)
          expect(answer.type).toBe("application/json")
          expect(answer.json()).toEqual({ error: "NotFound", reason: `no route ${method} ${path}` })
          expect(answer.text).not.toContain("sk_secret")
        }
      }))

    it.scoped("a handler that dies, throws or fails unexpectedly: a JSON 500 without the failure, which is logged; the server goes on", () =>
      Effect.gen(function*() {
        const logged: Array<string> = []
        const recorder = Logger.make(({ cause, message }) => {
          logged.push(`${String(message)} ${Cause.pretty(cause)}`)
        })
        const srv = yield* server({ extra: broken }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, recorder)))
        for (const path of ["/test/die", "/test/throw", "/test/fail"]) {
          const answer = yield* get(`${srv.url}${path}`)
          expect(answer.status, path).toBe(500)
          expect(answer.type).toBe("application/json")
          expect(answer.json()).toEqual({
            error: "InternalError",
            reason: "the server failed to answer this request; the failure is logged"
          })
        }
        expect(logged.filter((l) => l.includes("a handler failed")).length).toBe(3)
        expect(logged.join("\n")).toContain("boom: the secret stack")
        expect(logged.join("\n")).toContain("the secret detail")
        const ok = yield* get(`${srv.url}/test/ok`)
        expect(ok).toMatchObject({ status: 200, text: "fine" })
        // Bad input is not a 500: an error that knows its status keeps it, with a JSON body.
        const bad = yield* get(`${srv.url}/test/json?token=sk_secret`, { method: "POST", body: "{not json" })
        expect(bad.status).toBe(400)
        expect(bad.json()).toEqual({ error: "RequestError", reason: "the request body cannot be read as sent" })
        expect(bad.text).not.toContain("sk_secret")
        const good = yield* get(`${srv.url}/test/json`, { method: "POST", body: "[1]" })
        expect(good.json()).toEqual({ got: [1] })
      }))
  })
}
