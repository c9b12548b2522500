/**
 * Each request to the server is a trace of its own (`swarm serve` had a span around its whole
 * life, which the server it built inherited, so every request, RPC and SQL statement of the server
 * was one ever-growing trace; serve builds it outside any span now, as this test does), and a run
 * started by a request does not make that request's trace last as long as the run.
 */
import { SpanStatusCode } from "@opentelemetry/api"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import { bootstrap } from "../../src/edge/Bootstrap.js"
import * as Http from "../../src/edge/Http.js"
import * as Server from "../../src/edge/Server.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"
import { eventually, rpcClient } from "../edge/fixtures.js"
import { backends } from "../store/fixtures/backends.js"

const backend = backends[0]!
/** Postgres, when DATABASE_URL names one: a shared database, where a server looks for relayed control requests. */
const shared = backends.filter((b) => b.name === "postgres")

const byTrace = (spans: ReadonlyArray<ReadableSpan>) => {
  const traces = new Map<string, Array<ReadableSpan>>()
  for (const span of spans) {
    const id = span.spanContext().traceId
    traces.set(id, [...(traces.get(id) ?? []), span])
  }
  return traces
}

describe("request traces", () => {
  it.scopedLive("built as swarm serve builds it, the server makes each request a trace of its own", () =>
    Effect.gen(function*() {
      const exporter = new InMemorySpanExporter()
      const server = Server.layer(backend.store, { port: 0, logRequests: false }).pipe(
        Layer.provideMerge(Telemetry.make({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
      )
      // As `swarm serve` builds it: outside any span.
      const context = yield* Layer.build(server)
      yield* Effect.gen(function*() {
        const made = yield* bootstrap()
        if (!made.created) return expect.unreachable("a fresh database")
        const base = yield* Http.baseUrl
        const admin = yield* rpcClient(base, made.key)
        for (let i = 0; i < 3; i++) yield* Effect.promise(() => fetch(`${base}/health`).then((r) => r.text()))
        yield* admin("runs.list", {})
        yield* admin("strategies.create", {
          strategy: Schema.decodeUnknownSync(Strategy)({
            name: "traced requests",
            symbols: ["AAA"],
            agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
            sizing: { mode: "percent_of_equity", value: 10 }
          })
        })
        const run = yield* admin("runs.start", { strategy: "traced requests", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 86_400 * 50 })
        // Let it record a while, then stop it.
        yield* eventually(() => exporter.getFinishedSpans().filter((s) => s.name === "Coordinator.round").length >= 20)
        yield* admin("runs.stop", { run: run.id })
        yield* admin("runs.get", { run: run.id })
      }).pipe(Effect.provide(context))

      const spans = exporter.getFinishedSpans()
      // Each request its own trace: a plain GET with none (its root), the RPC client's calls under their client span.
      const requests = spans.filter((s) => s.name.startsWith("http.server"))
      expect(requests.length).toBe(8)
      expect(new Set(requests.map((s) => s.spanContext().traceId)).size).toBe(requests.length)
      const parentOf = (span: ReadableSpan) => spans.find((p) => p.spanContext().spanId === span.parentSpanContext?.spanId)
      expect(requests.map((s) => [s.name, s.parentSpanContext === undefined ? "root" : parentOf(s)?.name])).toEqual([
        ...Array.from({ length: 3 }, () => ["http.server GET", "root"]),
        ...Array.from({ length: 5 }, () => ["http.server POST", "http.client POST"])
      ])
      // No trace outgrows a request or a round: the run's recording is not the runs.start request's.
      const sizes = [...byTrace(spans).values()].map((t) => [t.length, t[0]!.name] as const).sort((a, b) => b[0] - a[0])
      expect(sizes[0]![0]).toBeLessThan(100)
    }), { timeout: 120_000 })

  it.scopedLive("a refused RPC call's span names its error's type; only a failure of the server's own is an error; a payload that does not decode has its span too", () =>
    Effect.gen(function*() {
      const exporter = new InMemorySpanExporter()
      const server = Server.layer(backend.store, { port: 0, logRequests: false }).pipe(
        Layer.provideMerge(Telemetry.make({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
      )
      const context = yield* Layer.build(server)
      yield* Effect.gen(function*() {
        const made = yield* bootstrap()
        if (!made.created) return expect.unreachable("a fresh database")
        const base = yield* Http.baseUrl
        const admin = yield* rpcClient(base, made.key)
        expect((yield* Effect.flip(admin("runs.get", { run: "run_0123456789ab" })))._tag).toBe("RunNotFound")
        const stranger = yield* rpcClient(base, "sk_not-a-key")
        expect((yield* Effect.flip(stranger("runs.list", {})))._tag).toBe("Unauthorized")
        // A payload no client of the schema would send: refused before @effect/rpc decodes it.
        const line = JSON.stringify({ _tag: "Request", id: "7", tag: "strategies.create", payload: { strategy: { name: 3 } }, headers: [] })
        const answer = yield* Effect.promise(() =>
          fetch(`${base}/rpc`, { method: "POST", body: line + "\n", headers: { "content-type": "application/ndjson", authorization: `Bearer ${made.key}` } }).then((r) => r.text())
        )
        expect(answer).toContain("InvalidRequest")
        // The database refuses a write: Unavailable, the server's own failure.
        const sql = yield* SqlClient.SqlClient
        yield* sql`create or replace function refuse_users() returns trigger language plpgsql as $$
          begin raise exception 'refused by the test'; end $$`
        yield* sql`create trigger refuse_users before insert on users for each row execute function refuse_users()`
        const refused = yield* Effect.flip(admin("admin.createUser", { name: "keyless", role: "user" })).pipe(
          Effect.ensuring(Effect.ignore(sql`drop trigger refuse_users on users`))
        )
        expect(refused._tag).toBe("Unavailable")
        expect(yield* admin("runs.list", {})).toEqual([])
      }).pipe(Effect.provide(context))

      const spans = exporter.getFinishedSpans()
      const one = (name: string) => {
        const found = spans.filter((s) => s.name === name)
        expect(found.map((s) => s.name)).toEqual([name])
        return found[0]!
      }
      const notFound = one("RpcServer.runs.get")
      expect(notFound.attributes["error.type"]).toBe("RunNotFound")
      expect(notFound.status.code).not.toBe(SpanStatusCode.ERROR)
      const lists = spans.filter((s) => s.name === "RpcServer.runs.list")
      expect(lists.map((s) => s.attributes["error.type"])).toEqual(["Unauthorized", undefined])
      expect(lists.every((s) => s.status.code !== SpanStatusCode.ERROR)).toBe(true)
      const invalid = one("RpcServer.strategies.create")
      expect(invalid.attributes).toMatchObject({ "error.type": "InvalidRequest", "swarm.rpc.invalid.field": "strategy.name", requestId: "7" })
      expect(invalid.status.code).not.toBe(SpanStatusCode.ERROR)
      // In its HTTP request's trace, as @effect/rpc's own spans are.
      const http = spans.find((s) => s.spanContext().spanId === invalid.parentSpanContext?.spanId)
      expect(http?.name).toBe("http.server POST")
      const unavailable = one("RpcServer.admin.createUser")
      expect(unavailable.attributes["error.type"]).toBe("Unavailable")
      expect(unavailable.status).toMatchObject({ code: SpanStatusCode.ERROR, message: expect.stringContaining("refused by the test") })
      expect(unavailable.events.find((e) => e.name === "exception")?.attributes?.["exception.type"]).toBe("Unavailable")
    }), { timeout: 120_000 })

  for (const pg of shared) {
    it.scopedLive("a server's background looks on a shared database make no traces: a live run's relayed-request look, four times a second, is untraced", () =>
      Effect.gen(function*() {
        const exporter = new InMemorySpanExporter()
        const server = Server.layer(pg.store, { port: 0, logRequests: false }).pipe(
          Layer.provideMerge(Telemetry.make({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
        )
        const context = yield* Layer.build(server)
        yield* Effect.gen(function*() {
          const made = yield* bootstrap()
          if (!made.created) return expect.unreachable("a fresh database")
          const admin = yield* rpcClient(yield* Http.baseUrl, made.key)
          yield* admin("strategies.create", {
            strategy: Schema.decodeUnknownSync(Strategy)({
              name: "quiet looks",
              symbols: ["AAA"],
              agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
              sizing: { mode: "percent_of_equity", value: 10 }
            })
          })
          // A live run at a bar a second: the server looks for requests relayed for it every 250 ms.
          const run = yield* admin("runs.start", { strategy: "quiet looks", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 86_400 })
          yield* eventually(() => exporter.getFinishedSpans().filter((s) => s.name === "Coordinator.round").length >= 2)
          yield* Effect.sleep("1500 millis")
          yield* admin("runs.stop", { run: run.id })
        }).pipe(Effect.provide(context))

        const names = exporter.getFinishedSpans().map((s) => s.name)
        expect(names).toContain("Coordinator.round")
        expect(names.filter((name) => name.startsWith("ControlRequests."))).toEqual([])
      }), { timeout: 120_000 })
  }
})
