/**
 * `POST /rpc` with one call that answers once is answered by RpcFastPath.ts, byte for byte as the
 * regular way (@effect/rpc's server behind the protocol layers) answers it: each case is sent with
 * the fast path off, then on, and the two answers (status, content type, body) compared — on the
 * whole server, on every back-end, for a success, a typed failure, the refusals of a key, and the
 * bodies the fast path leaves to the regular way (bad payloads, unknown procedures, hostile bodies,
 * several requests, a stream); and on a server of test procedures for what the real ones never
 * do on demand: a defect, an answer its schema cannot encode, a slow answer (kept alive), spans,
 * and a call cut off by the server stopping.
 */
import { FetchHttpClient } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Rpc, RpcClient, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Logger, Option, Schema, Scope, Stream, Tracer } from "effect"
import { SwarmRpcs } from "../../schemas/Rpc.js"
import { Strategy } from "../../schemas/Strategy.js"
import { bootstrap } from "../../src/edge/Bootstrap.js"
import * as Http from "../../src/edge/Http.js"
import { clientKey } from "../../src/edge/RpcAuth.js"
import * as RpcBackpressure from "../../src/edge/RpcBackpressure.js"
import * as RpcFastPath from "../../src/edge/RpcFastPath.js"
import * as RpcKeepAlive from "../../src/edge/RpcKeepAlive.js"
import * as RpcPayloads from "../../src/edge/RpcPayloads.js"
import { STOPPING } from "../../src/edge/RpcStopping.js"
import * as RpcStopping from "../../src/edge/RpcStopping.js"
import * as Server from "../../src/edge/Server.js"
import { exitOf } from "../../src/telemetry/Trace.js"
import { backends } from "../store/fixtures/backends.js"
import { symbolsOf } from "../store/fixtures/workload.js"
import { eventually } from "./fixtures.js"

interface Answer {
  readonly status: number
  readonly contentType: string | null
  readonly body: string
}

const post = (base: string, body: string, headers: Record<string, string> = {}): Promise<Answer> =>
  fetch(`${base}/rpc`, { method: "POST", headers: { "content-type": "application/ndjson", ...headers }, body }).then(async (response) => ({
    status: response.status,
    contentType: response.headers.get("content-type"),
    body: await response.text()
  }))

/** `body` sent the regular way, then the fast way: both answers, and whether the fast path took it. */
const bothWays = (toggle: { on: boolean; taken: number }, base: string, body: string, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    toggle.on = false
    const regular = await post(base, body, headers)
    toggle.on = true
    const before = toggle.taken
    const fast = await post(base, body, headers)
    return { regular, fast, taken: toggle.taken > before }
  })

const request = (tag: string, payload: unknown, headers: ReadonlyArray<readonly [string, string]> = [], id = "1") =>
  JSON.stringify({ _tag: "Request", id, tag, payload, headers })

for (const backend of backends) {
  describe(`POST /rpc, one call, fast and regular alike (${backend.name})`, () => {
    it.scopedLive("every answer is the same bytes both ways; the fast path takes only single calls that answer once", () =>
      Effect.gen(function*() {
        const toggle = { on: true, taken: 0 }
        // Each request's log line, its duration left out.
        const logged: Array<string> = []
        const logger = Logger.make(({ message }) => {
          const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
          if (text.startsWith("POST /rpc")) logged.push(text.replace(/ [\d.]+ ms/, " … ms"))
        })
        const context = yield* Layer.build(
          Server.layer(backend.store, { port: 0 }).pipe(
            Layer.provide(Layer.succeed(RpcFastPath.Switch, toggle)),
            Layer.provide(Logger.replace(Logger.defaultLogger, logger))
          )
        )
        const made = yield* Effect.provide(bootstrap(), context)
        if (!made.created) return expect.fail("the first start made no admin")
        const key = made.key
        const base = yield* Effect.provide(Http.baseUrl, context)
        const client = yield* RpcClient.make(SwarmRpcs, { flatten: true }).pipe(
          Effect.provide(Layer.mergeAll(
            RpcClient.layerProtocolHttp({ url: `${base}/rpc` }).pipe(Layer.provide(FetchHttpClient.layer), Layer.provide(RpcSerialization.layerNdjson)),
            clientKey(key)
          ))
        )
        const fastStrategy = Schema.decodeUnknownSync(Strategy)({ name: "fast", symbols: symbolsOf(1), agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }] })
        const saved = yield* client("strategies.create", { strategy: fastStrategy })
        const run = yield* client("runs.start", { strategy: "fast", mode: "backtest", data: { _tag: "synthetic", bars: 200 } })
        for (let i = 0; i < 500 && (yield* client("runs.get", { run: run.id })).status !== "completed"; i++) yield* Effect.sleep("20 millis")
        const bearer: ReadonlyArray<readonly [string, string]> = [["authorization", `Bearer ${key}`]]

        const cases: ReadonlyArray<{ readonly what: string; readonly body: string; readonly headers?: Record<string, string>; readonly fast: boolean; readonly answered?: boolean; readonly unordered?: boolean }> = [
          { what: "runs.get, its key in the line", body: request("runs.get", { run: run.id }, bearer), fast: true },
          { what: "runs.get, its key an HTTP header", body: request("runs.get", { run: run.id }), headers: { authorization: `Bearer ${key}` }, fast: true },
          { what: "runs.get, blank lines about it", body: `\n${request("runs.get", { run: run.id }, bearer)}\n\n`, fast: true },
          { what: "runs.get, an id as the client may write it", body: request("runs.get", { run: run.id }, bearer, "007"), fast: true },
          { what: "strategies.list", body: request("strategies.list", {}, bearer), fast: true },
          { what: "strategies.get", body: request("strategies.get", { strategy: "fast" }, bearer), fast: true },
          { what: "strategies.get again: its answer kept, encoded once", body: request("strategies.get", { strategy: "fast", version: 1 }, bearer), fast: true },
          { what: "runs.report", body: request("runs.report", { run: run.id }, bearer), fast: true },
          { what: "a typed failure: an unknown run", body: request("runs.get", { run: "no-such-run" }, bearer), fast: true },
          { what: "no key", body: request("runs.get", { run: run.id }), fast: true },
          { what: "a bad key", body: request("runs.get", { run: run.id }, [["authorization", "Bearer sk_nobody"]]), fast: true },
          { what: "a key that is no bearer key", body: request("runs.get", { run: run.id }, [["authorization", "Basic abc"]]), fast: true },
          { what: "a bad payload", body: request("runs.get", { run: 5 }, bearer), fast: false },
          { what: "a field the procedure does not take", body: request("runs.get", { run: run.id, limt: 1 }, bearer), fast: false },
          { what: "text no database keeps", body: request("strategies.get", { strategy: "a\u0000b" }, bearer), fast: false },
          { what: "an unknown procedure", body: request("runs.nothing", {}, bearer), fast: false },
          { what: "a tag that is no string", body: JSON.stringify({ _tag: "Request", id: "1", tag: 5, payload: {}, headers: bearer }), fast: false },
          { what: "two keys", body: request("runs.get", { run: run.id }, bearer), headers: { authorization: "Bearer sk_other" }, fast: false },
          { what: "headers that are no pairs", body: JSON.stringify({ _tag: "Request", id: "1", tag: "runs.get", payload: { run: run.id }, headers: {} }), fast: false },
          { what: "an id that is none", body: request("runs.get", { run: run.id }, bearer, "abc"), fast: false },
          { what: "a body that is not JSON", body: "{\"_tag\":\"Request\",", fast: false },
          { what: "an empty body", body: "", fast: false },
          { what: "a line that is no object", body: "null", fast: false },
          { what: "a Ping", body: JSON.stringify({ _tag: "Ping" }), fast: false },
          // The body's end is its Eof: one of the client's own is left out (before, it ended the call unanswered, a 503 logged nowhere).
          { what: "a request and an Eof", body: `${request("runs.get", { run: run.id }, bearer)}\n${JSON.stringify({ _tag: "Eof" })}`, fast: true, answered: true },
          { what: "an Eof, then a request", body: `${JSON.stringify({ _tag: "Eof" })}\n${request("runs.get", { run: run.id }, bearer)}`, fast: true, answered: true },
          {
            what: "two requests in one body",
            body: `${request("runs.get", { run: run.id }, bearer)}\n${request("strategies.list", {}, bearer, "2")}`,
            fast: false,
            unordered: true
          },
          { what: "a stream: runs.events of a finished run", body: request("runs.events", { run: run.id }, bearer), fast: false }
        ]
        for (const c of cases) {
          logged.length = 0
          const { fast, regular, taken } = yield* bothWays(toggle, base, c.body, c.headers)
          // Several requests are answered as each finishes: in either order, both ways.
          const lines = (answer: Answer) => c.unordered === true ? { ...answer, body: answer.body.split("\n").sort().join("\n") } : answer
          expect(lines(fast), c.what).toEqual(lines(regular))
          expect(taken, `${c.what}: taken by the fast path`).toBe(c.fast)
          // Its request's log line too (`POST /rpc 200 runs.get … ms, user admin`).
          expect(yield* eventually(() => logged.length >= 2, 500), c.what).toBe(true)
          if (c.answered === true) {
            expect(regular.status, c.what).toBe(200)
            expect(JSON.parse(regular.body), c.what).toMatchObject({ _tag: "Exit", exit: { _tag: "Success" } })
          }
          expect(logged[1], c.what).toEqual(logged[0])
        }
        logged.length = 0
        yield* Effect.promise(() => post(base, request("runs.get", { run: run.id }, bearer)))
        expect(yield* eventually(() => logged.length >= 1)).toBe(true)
        expect(logged[0]).toBe("POST /rpc 200 runs.get … ms, user admin")
        // What the fast path answers, as it should be (not only as the regular way has it).
        const got = yield* Effect.promise(() => post(base, request("runs.get", { run: run.id }, bearer, "007")))
        expect(got.status).toBe(200)
        expect(got.contentType).toBe("application/ndjson")
        expect(JSON.parse(got.body)).toMatchObject({ _tag: "Exit", requestId: "7", exit: { _tag: "Success", value: { id: run.id, status: "completed" } } })
        const refused = yield* Effect.promise(() => post(base, request("runs.get", { run: run.id })))
        expect(JSON.parse(refused.body)).toMatchObject({ exit: { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "Unauthorized" } } } })

        // A body over the limit, declared: refused unread either way.
        const big = request("runs.get", { run: "x".repeat(Http.MAX_RPC_BODY_BYTES) }, bearer)
        const oversized = yield* bothWays(toggle, base, big)
        expect(oversized.fast).toEqual(oversized.regular)
        expect(oversized.fast.status).toBe(413)
        expect(oversized.taken).toBe(false)

        // The client the CLI uses reads the fast path's answers.
        expect((yield* client("runs.get", { run: run.id })).id).toBe(run.id)

        // A kept answer goes when what it says changes: a new version, a new name.
        const fastGet = () => Effect.promise(() => post(base, request("strategies.get", { strategy: saved.id }, bearer)))
        expect(JSON.parse((yield* fastGet()).body).exit.value).toMatchObject({ name: "fast", version: 1 })
        yield* client("strategies.update", { strategy: "fast", body: { ...fastStrategy, symbols: symbolsOf(2) } })
        expect(JSON.parse((yield* fastGet()).body).exit.value).toMatchObject({ name: "fast", version: 2, strategy: { symbols: symbolsOf(2) } })
        const sql = yield* Effect.provide(SqlClient.SqlClient, context)
        yield* sql`update strategies set name = 'renamed' where id = ${saved.id}`
        expect(JSON.parse((yield* fastGet()).body).exit.value).toMatchObject({ name: "renamed", version: 2 })
      }), { timeout: 120_000 })
  })
}

// ---------------------------------------------------------------------------------------------
// Test procedures: what the real ones never do on demand

class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

class TestRpcs extends RpcGroup.make(
  Rpc.make("ok", { payload: { n: Schema.Number }, success: Schema.Struct({ n: Schema.Number }) }),
  Rpc.make("fails", { error: Refused }),
  Rpc.make("dies"),
  Rpc.make("badAnswer", { success: Schema.Number }),
  Rpc.make("slow", { payload: { millis: Schema.Number }, success: Schema.String }),
  Rpc.make("hangs"),
  Rpc.make("ticks", { success: Schema.Number, stream: true })
) {}

let hung = 0
let cutOff = 0
const testHandlers = TestRpcs.toLayer({
  ok: ({ n }) => Effect.succeed({ n }),
  fails: () => Effect.fail(new Refused({ reason: "no" })),
  dies: () => Effect.die(new Error("boom")),
  badAnswer: () => Effect.succeed("not a number" as unknown as number),
  slow: ({ millis }) => Effect.as(Effect.sleep(Duration.millis(millis)), "done"),
  hangs: () => Effect.zipRight(Effect.sync(() => hung++), Effect.never).pipe(Effect.onInterrupt(() => Effect.sync(() => cutOff++))),
  ticks: () => Stream.make(1, 2, 3)
})

/** The endpoint as Server.ts mounts it, over the test procedures, with a keep-alive of `interval`. */
const testServer = (toggle: { on: boolean; taken: number }, tracer: Tracer.Tracer, interval: Duration.Duration) =>
  Http.serve(
    RpcServer.layer(TestRpcs).pipe(Layer.provide(RpcPayloads.checked(
      TestRpcs,
      RpcStopping.answered(RpcKeepAlive.keptAlive(
        RpcBackpressure.layerProtocolHttpRouter({ path: "/rpc", single: RpcFastPath.make(TestRpcs) }).pipe(Layer.provide(RpcPayloads.layerNdjsonBody))
      ))
    ))),
    { logRequests: false }
  ).pipe(
    Layer.provide(testHandlers),
    Layer.provideMerge(Http.listen({ port: 0 })),
    Layer.provide(Layer.mergeAll(
      Layer.succeed(RpcFastPath.Switch, toggle),
      Layer.succeed(RpcKeepAlive.Interval, interval),
      Layer.setTracer(tracer)
    ))
  )

/** A tracer that keeps every span it makes. */
const keeping = Effect.map(Effect.tracer, (native) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (...args) => {
      const span = native.span(...args)
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  return { spans, tracer }
})

/** What a call's `RpcServer.<procedure>` span says: its name, attributes, parent's name, how it ended. */
const describeSpan = (span: Tracer.Span) => ({
  name: span.name,
  attributes: Object.fromEntries((span as unknown as { attributes: Map<string, unknown> }).attributes),
  parent: Option.map(span.parent, (parent) => (parent._tag === "Span" ? parent.name : "external")),
  ended: span.status._tag === "Ended" ? exitOf(span, span.status.exit)._tag : "running"
})

describe("POST /rpc, one call, fast and regular alike (test procedures)", () => {
  it.scopedLive("a defect, an answer its schema cannot encode, a typed failure and a success: the same bytes and spans", () =>
    Effect.gen(function*() {
      const toggle = { on: true, taken: 0 }
      const { spans, tracer } = yield* keeping
      const context = yield* Layer.build(testServer(toggle, tracer, RpcKeepAlive.INTERVAL))
      const base = yield* Effect.provide(Http.baseUrl, context)
      for (const [tag, payload] of [["ok", { n: 3 }], ["fails", null], ["dies", null], ["badAnswer", null]] as const) {
        spans.length = 0
        toggle.on = false
        const regular = yield* Effect.promise(() => post(base, request(tag, payload, [], "12")))
        const regularSpans = spans.filter((s) => s.name.startsWith("RpcServer.")).map(describeSpan)
        spans.length = 0
        toggle.on = true
        const before = toggle.taken
        const fast = yield* Effect.promise(() => post(base, request(tag, payload, [], "12")))
        const fastSpans = spans.filter((s) => s.name.startsWith("RpcServer.")).map(describeSpan)
        expect(fast, tag).toEqual(regular)
        expect(toggle.taken, tag).toBe(before + 1)
        expect(fastSpans, tag).toEqual(regularSpans)
        expect(fastSpans.length, tag).toBe(1)
      }
      // A stream goes the regular way.
      const ticks = yield* bothWays(toggle, base, request("ticks", null))
      expect(ticks.fast).toEqual(ticks.regular)
      expect(ticks.taken).toBe(false)
      const died = yield* Effect.promise(() => post(base, request("dies", null)))
      expect(JSON.parse(died.body)).toMatchObject({ _tag: "Defect" })
      const badAnswer = yield* Effect.promise(() => post(base, request("badAnswer", null)))
      expect(JSON.parse(badAnswer.body)).toMatchObject({ _tag: "Exit", exit: { _tag: "Failure", cause: { _tag: "Die" } } })
    }))

  it.scopedLive("an answer slower than the keep-alive's interval is streamed: Pong lines, then the same answer", () =>
    Effect.gen(function*() {
      const toggle = { on: true, taken: 0 }
      const { tracer } = yield* keeping
      const context = yield* Layer.build(testServer(toggle, tracer, Duration.millis(100)))
      const base = yield* Effect.provide(Http.baseUrl, context)
      const { fast, regular, taken } = yield* bothWays(toggle, base, request("slow", { millis: 450 }))
      expect(taken).toBe(true)
      const lines = (answer: Answer) => answer.body.split("\n").filter((l) => l !== "")
      for (const answer of [fast, regular]) {
        expect(answer.status).toBe(200)
        expect(lines(answer).slice(0, -1).length).toBeGreaterThanOrEqual(1)
        expect(new Set(lines(answer).slice(0, -1))).toEqual(new Set([JSON.stringify({ _tag: "Pong" })]))
      }
      expect(lines(fast).at(-1)).toEqual(lines(regular).at(-1))
      expect(fast.contentType).toEqual(regular.contentType)
      // A quick one is whole, with no Pong.
      const quick = yield* bothWays(toggle, base, request("slow", { millis: 1 }))
      expect(quick.fast).toEqual(quick.regular)
    }))

  it.scopedLive("a call whose client goes away is interrupted", () =>
    Effect.gen(function*() {
      const toggle = { on: true, taken: 0 }
      const { tracer } = yield* keeping
      const context = yield* Layer.build(testServer(toggle, tracer, RpcKeepAlive.INTERVAL))
      const base = yield* Effect.provide(Http.baseUrl, context)
      for (const on of [false, true]) {
        toggle.on = on
        const [before, cutBefore, takenBefore] = [hung, cutOff, toggle.taken]
        const abort = new AbortController()
        const sent = fetch(`${base}/rpc`, { method: "POST", body: request("hangs", null), signal: abort.signal }).catch(() => undefined)
        while (hung === before) yield* Effect.sleep("5 millis")
        abort.abort()
        yield* Effect.promise(() => sent)
        expect(yield* eventually(() => cutOff > cutBefore), `fast path ${on}`).toBe(true)
        expect(toggle.taken - takenBefore, `fast path ${on}`).toBe(on ? 1 : 0)
      }
    }))

  it.scopedLive("a call in flight when the server stops is answered Unavailable", () =>
    Effect.gen(function*() {
      const toggle = { on: true, taken: 0 }
      const { tracer } = yield* keeping
      for (const on of [false, true]) {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(testServer(toggle, tracer, RpcKeepAlive.INTERVAL), scope)
        const base = yield* Effect.provide(Http.baseUrl, context)
        toggle.on = on
        const before = hung
        const answer = yield* Effect.fork(Effect.promise(() => post(base, request("hangs", null, [], "5"))))
        while (hung === before) yield* Effect.sleep("5 millis")
        yield* Scope.close(scope, Exit.void)
        const got = yield* Fiber.join(answer)
        expect(got.status, `fast path ${on}`).toBe(200)
        expect(JSON.parse(got.body), `fast path ${on}`).toEqual({
          _tag: "Exit",
          requestId: "5",
          exit: { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "Unavailable", reason: STOPPING } } }
        })
      }
    }))
})
