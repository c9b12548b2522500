/**
 * The OpenTelemetry SDK behind the telemetry layer, loaded only when a process installs it (the
 * SDK takes a fifth of a second to load, which a `swarm runs list` should not pay): Effect's tracer
 * replaced by Swarm's (LightTracer.ts), whose spans go to the in-process span store and, as the
 * SDK's `ReadableSpan`s, to the span processors (an OTLP/HTTP exporter when traces have a URL);
 * and Effect's metrics produced to the metric readers (OTLP/HTTP every `exportIntervalMillis` when
 * metrics have a URL, and any a test gives).
 */
import { Metrics, Resource } from "@effect/opentelemetry"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { type MetricProducer, type MetricReader, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigError, Effect, Layer, Runtime } from "effect"
import { shownUrl, splitCredentials } from "../../internal/credentials.js"
import * as SwarmMetrics from "../Metrics.js"
import type { SpanStore } from "../SpanStore.js"
import * as LightTracer from "../LightTracer.js"

export interface SdkOptions {
  readonly serviceName: string
  readonly serviceVersion: string
  readonly attributes: Record<string, string>
  readonly store: SpanStore
  /** Where spans are posted; none: not exported. */
  readonly traces?: Destination | undefined
  /** Where metrics are posted; none: not exported. */
  readonly metrics?: Destination | undefined
  readonly exportIntervalMillis: number
  readonly spanProcessors: ReadonlyArray<SpanProcessor>
  readonly metricReaders: ReadonlyArray<MetricReader>
  /** Where the exports' outcome is kept, for `/health`. */
  readonly exports: ExportState
}

/** Where a signal is posted: its `url`, and the `setting` (and its `value`) that said so, for errors. */
export interface Destination {
  readonly url: string
  readonly setting: string
  readonly value: string
}

/**
 * Whether exports to the collector go through: `failingSince` (epoch ms) and the last `error`
 * while they fail, cleared by the next export that succeeds.
 */
export interface ExportState {
  failingSince: number | undefined
  error: string | undefined
}

interface Exporting<T> {
  export(items: T, done: (result: { code: number; error?: Error }) => void): void
}

/**
 * `exporter`, its outcomes noted in `state`: a failure starts an outage (said once, with why), a
 * success ends it (said too). The SDK itself only reports them to its diagnostic logger, off by
 * default, so a collector that is down was silent.
 */
const watched = <T, E extends Exporting<T>>(exporter: E, state: ExportState, what: string, say: (line: string, failing: boolean) => void): E => {
  const original = exporter.export.bind(exporter)
  exporter.export = (items, done) =>
    original(items, (result) => {
      // ExportResultCode.SUCCESS is 0.
      if (result.code === 0) {
        if (state.failingSince !== undefined) {
          say(`telemetry: exports to the collector go through again after ${Math.round((Date.now() - state.failingSince) / 1000)} s`, false)
        }
        state.failingSince = undefined
        state.error = undefined
      } else {
        const error = `${what}: ${result.error?.message ?? "export failed"}`
        if (state.failingSince === undefined) {
          state.failingSince = Date.now()
          say(`telemetry: exports to the collector fail (${error}); retrying with each batch`, true)
        }
        state.error = error
      }
      done(result)
    })
  return exporter
}

/**
 * How long one export may take, its retries included (the SDK's default is 10 s, and 30 s for the
 * batch): past it the request is dropped, so a hung collector holds no socket open for longer.
 */
export const EXPORT_TIMEOUT = 2_000

/** How long closing the layer waits for the last exports, all of them together. */
export const FLUSH_TIMEOUT = 2_500

/** Effect's metric producer, flushing what the hot paths counted in place before each collection. */
const flushing = (producer: MetricProducer): MetricProducer => ({
  collect: (options) => {
    SwarmMetrics.flush()
    return producer.collect(options)
  }
})

/**
 * The exporters' HTTP agent: Node's keep-alive agent, as the SDK's default, but each of its sockets
 * with an `error` listener of its own for as long as it lives. Node's client takes its listener off
 * a socket once the response has ended and the request's body is written, and the agent puts its
 * own on a tick later (Node's `responseKeepAlive` says so in a TODO). A collector that answers (a
 * 404) before reading a large batch and resets the connection fails the body's last write in that
 * gap: the socket's `ECONNRESET` or `EPIPE` had no listener and killed the process — a `swarm
 * backtest` exporting every round died of it. The export's outcome is known from the response
 * already and reported as any failed export is (ExportState, the log), so the late error is dropped.
 */
const agentFactory = async (protocol: string) => {
  // Imported here, not at the top: the SDK's advice, so that an instrumentation of `http` sees it.
  const { Agent } = protocol === "https:" ? await import("node:https") : await import("node:http")
  const agent = new Agent({ keepAlive: true })
  const connect = agent.createConnection.bind(agent)
  agent.createConnection = (options, callback) => {
    const socket = connect(options, callback)
    socket?.on("error", () => {})
    return socket
  }
  return agent
}

/**
 * The OTLP exporter of a signal, at `to`. The constructors throw on a URL they cannot parse: that
 * is said as the setting's error, not left to crash the process with no word.
 */
const exporter = <A>(to: Destination, make: (url: string, headers: Record<string, string>) => A) =>
  Effect.try({
    try: () => {
      // A user and password in the URL go as a Basic header, the URL without them: the exporter
      // would otherwise carry them in a URL it may log, and fetch-based transports refuse one.
      const { authorization, url } = splitCredentials(to.url)
      return make(url, authorization === undefined ? {} : { Authorization: authorization })
    },
    catch: (error) =>
      ConfigError.InvalidData(
        [to.setting],
        `cannot export to ${JSON.stringify(shownUrl(to.value))}: ${error instanceof Error ? error.message : String(error)}`
      )
  })

/** The span processor and the metric reader exporting to where `options` say, each where set. */
const exporters = (options: SdkOptions, say: (line: string, failing: boolean) => void) =>
  Effect.gen(function*() {
    const traces = options.traces === undefined ? undefined : yield* exporter(options.traces, (url, headers) =>
      new BatchSpanProcessor(
        watched(new OTLPTraceExporter({ url, headers, timeoutMillis: EXPORT_TIMEOUT, httpAgentOptions: agentFactory }), options.exports, "traces", say),
        { exportTimeoutMillis: EXPORT_TIMEOUT }
      ))
    const metrics = options.metrics === undefined ? undefined : yield* exporter(options.metrics, (url, headers) =>
      new PeriodicExportingMetricReader({
        exporter: watched(new OTLPMetricExporter({ url, headers, timeoutMillis: EXPORT_TIMEOUT, httpAgentOptions: agentFactory }), options.exports, "metrics", say),
        exportIntervalMillis: options.exportIntervalMillis,
        exportTimeoutMillis: Math.min(EXPORT_TIMEOUT, options.exportIntervalMillis)
      }))
    return { processors: traces === undefined ? [] : [traces], readers: metrics === undefined ? [] : [metrics] }
  })

export const layer = (options: SdkOptions): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const say = (line: string, failing: boolean) =>
      void Runtime.runFork(runtime)(failing ? Effect.logWarning(line) : Effect.logInfo(line))
    return installed(options, yield* exporters(options, say))
  }))

const installed = (
  options: SdkOptions,
  exported: { readonly processors: ReadonlyArray<SpanProcessor>; readonly readers: ReadonlyArray<MetricReader> }
): Layer.Layer<never> => {
  /** The span processors beside the store: the OTLP exporter's, a test's. */
  const processors: Array<SpanProcessor> = [...options.spanProcessors, ...exported.processors]
  const readers: Array<MetricReader> = [...options.metricReaders, ...exported.readers]
  return Layer.unwrapScoped(Effect.gen(function*() {
    const resource = yield* Resource.Resource
    if (readers.length > 0) {
      const producer = flushing(yield* Metrics.makeProducer)
      for (const reader of readers) reader.setMetricProducer(producer)
    }
    // Closing flushes the exporters (the batch not yet sent, the last metrics), as the SDK's
    // providers did: all at once and within FLUSH_TIMEOUT, so that a collector that is down or
    // never answers delays a command's exit or a server's shutdown by that much at most.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() =>
        Promise.allSettled([
          ...processors.map((p) => p.forceFlush().then(() => p.shutdown())),
          ...readers.map((r) => r.shutdown())
        ])
      ).pipe(
        // A finalizer is uninterruptible: without this the timeout could not cut the wait short.
        Effect.interruptible,
        Effect.timeoutOption(FLUSH_TIMEOUT),
        Effect.asVoid
      )
    )
    return Layer.setTracer(LightTracer.make({
      resource,
      scope: { name: options.serviceName, version: options.serviceVersion },
      store: options.store,
      processors
    }))
  })).pipe(
    Layer.provide(Resource.layer({ serviceName: options.serviceName, serviceVersion: options.serviceVersion, attributes: options.attributes }))
  )
}
