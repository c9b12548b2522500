/**
 * `OTEL_EXPORTER_OTLP_ENDPOINT` set: traces and metrics go over OTLP/HTTP to the collector
 * (`/v1/traces`, `/v1/metrics`; here a loopback receiver standing in for it), flushed when the
 * telemetry layer closes; a signal-specific endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
 * posted to as it is; the configuration says which telemetry is in use.
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Schema } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { TraceSampling } from "../../src/telemetry/Sampling.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"

interface Received {
  readonly path: string
  readonly type: string
  readonly bytes: number
  readonly body: string
}

/** A loopback OTLP/HTTP receiver for the scope: what was posted where. */
const receiver = Effect.map(
  Effect.acquireRelease(
    Effect.async<{ readonly server: Server; readonly received: Array<Received> }>((resume) => {
      const received: Array<Received> = []
      const server = createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          const body = Buffer.concat(chunks)
          received.push({ path: req.url ?? "", type: String(req.headers["content-type"]), bytes: body.length, body: body.toString("utf8") })
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, received })))
    }),
    ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  ),
  ({ received, server }) => ({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received })
)

const strategy = Schema.decodeUnknownSync(Strategy)({
  name: "exported",
  symbols: ["AAA"],
  allowShort: true,
  agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
  sizing: { mode: "percent_of_equity", value: 10 }
})

describe("OTLP export", () => {
  it.scopedLive("with a collector configured, spans and metrics are posted to it; the store keeps them too", () =>
    Effect.gen(function*() {
      const collector = yield* receiver
      const environment = ConfigProvider.fromMap(new Map([
        ["OTEL_EXPORTER_OTLP_ENDPOINT", `${collector.url}/`],
        ["SWARM_TRACE_SAMPLE", "0.5"]
      ]))
      const kept = yield* Effect.gen(function*() {
        const telemetry = yield* Telemetry.Telemetry
        expect(telemetry.info.kind).toBe("otlp")
        expect(telemetry.info.description).toContain(`OTLP/HTTP, traces to ${collector.url}/v1/traces, metrics to ${collector.url}/v1/metrics;`)
        expect(telemetry.info).toMatchObject({ traces: `${collector.url}/v1/traces`, metrics: `${collector.url}/v1/metrics` })
        expect(telemetry.info.description).toContain("one round in 2 of backtests")
        expect(yield* TraceSampling).toEqual({ paper: 1, backtest: 0.5 })
        const result = yield* Backtest.run({ strategy, feed: Feed.synthetic({ ...Synthetic.defaults, seed: 3, symbols: ["AAA"] as never, bars: 30 }) })
        return telemetry.store.rounds(result.runId).length
      }).pipe(Effect.provide(Telemetry.layer.pipe(Layer.provide(Layer.setConfigProvider(environment)))))
      expect(kept).toBe(15)
      // Closing the layer flushed the batch of spans and the metrics.
      const traces = collector.received.filter((r) => r.path === "/v1/traces")
      const metrics = collector.received.filter((r) => r.path === "/v1/metrics")
      expect(traces.length).toBeGreaterThan(0)
      expect(metrics.length).toBeGreaterThan(0)
      expect([...traces, ...metrics].every((r) => r.bytes > 0)).toBe(true)
      // OTLP/JSON: the service's resource, and each round's spans under its root, with their attributes and events.
      expect(traces.every((r) => r.type.startsWith("application/json"))).toBe(true)
      const batches = traces.flatMap((r) => JSON.parse(r.body).resourceSpans as Array<any>)
      expect(batches[0].resource.attributes).toEqual(expect.arrayContaining([{ key: "service.name", value: { stringValue: "swarm" } }]))
      const spans = batches.flatMap((b) => b.scopeSpans.flatMap((s: any) => s.spans as Array<any>))
      const roots = spans.filter((span) => span.name === "Coordinator.round")
      expect(roots).toHaveLength(15)
      const root = roots[0]
      expect(root.parentSpanId ?? "").toBe("")
      expect(root.traceId).toMatch(/^[0-9a-f]{32}$/)
      expect(root.attributes).toEqual(expect.arrayContaining([{ key: "swarm.rounds", value: { arrayValue: { values: [{ stringValue: expect.stringMatching(/^AAA@\d+$/) }] } } }]))
      const children = spans.filter((span) => span.traceId === root.traceId && span.parentSpanId === root.spanId)
      expect(children.length).toBeGreaterThan(0)
      expect(children.some((span) => span.name.startsWith("Actor.receive "))).toBe(true)
      expect(spans.every((span) => span.status.code === 1 && BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano))).toBe(true)
      const opinions = spans.flatMap((span) => (span.events as Array<any>).filter((e) => e.name === "opinion"))
      expect(opinions.length).toBeGreaterThan(0)
      expect(opinions[0].attributes.length).toBeGreaterThan(0)
    }))

  it.scopedLive("with OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone, spans are posted to that URL as it is, and metrics nowhere", () =>
    Effect.gen(function*() {
      const collector = yield* receiver
      const traces = `${collector.url}/otlp/custom-traces`
      const environment = ConfigProvider.fromMap(new Map([
        ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces],
        ["SWARM_TRACE_SAMPLE", "1"]
      ]))
      yield* Effect.gen(function*() {
        const telemetry = yield* Telemetry.Telemetry
        expect(telemetry.info).toMatchObject({ kind: "otlp", traces })
        expect(telemetry.info.metrics).toBeUndefined()
        yield* Backtest.run({ strategy, feed: Feed.synthetic({ ...Synthetic.defaults, seed: 3, symbols: ["AAA"] as never, bars: 10 }) })
      }).pipe(Effect.provide(Telemetry.layer.pipe(Layer.provide(Layer.setConfigProvider(environment)))))
      expect(collector.received.length).toBeGreaterThan(0)
      expect(new Set(collector.received.map((r) => r.path))).toEqual(new Set(["/otlp/custom-traces"]))
      const spans = collector.received
        .flatMap((r) => JSON.parse(r.body).resourceSpans as Array<any>)
        .flatMap((b) => b.scopeSpans.flatMap((s: any) => s.spans as Array<any>))
      expect(spans.filter((span) => span.name === "Coordinator.round")).toHaveLength(10)
    }))

  it.effect("without one, the in-process store only; a bad rate is a configuration error naming it", () =>
    Effect.gen(function*() {
      const info = yield* Effect.map(Telemetry.Telemetry, (t) => t.info).pipe(
        Effect.provide(Telemetry.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))))
      )
      expect(info.kind).toBe("in-process")
      expect(info.description).toContain("every round of paper runs and no round of backtests")
      const bad = yield* Effect.flip(Effect.map(Telemetry.Telemetry, (t) => t.info).pipe(
        Effect.provide(Telemetry.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["SWARM_TRACE_SAMPLE", "2"]]))))))
      ))
      expect(String(bad)).toContain("SWARM_TRACE_SAMPLE")
    }))
})
