/**
 * The OpenTelemetry SDK behind the telemetry layer, loaded only when a process installs it (the
 * SDK takes a fifth of a second to load, which a `swarm runs list` should not pay): Effect's tracer
 * replaced by Swarm's (LightTracer.ts), whose spans go to the in-process span store and, as the
 * SDK's `ReadableSpan`s, to the span processors (an OTLP/HTTP exporter when an endpoint is set);
 * and Effect's metrics produced to the metric readers (OTLP/HTTP every `exportIntervalMillis`, and
 * any a test gives).
 */
import { Metrics, Resource } from "@effect/opentelemetry"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { type MetricProducer, type MetricReader, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigError, Effect, Layer, Runtime } from "effect"
import * as SwarmMetrics from "../Metrics.js"
import type { SpanStore } from "../SpanStore.js"
import * as LightTracer from "../LightTracer.js"

export interface SdkOptions {
  readonly serviceName: string
  readonly serviceVersion: string
  readonly attributes: Record<string, string>
  readonly store: SpanStore
  /** The OTLP/HTTP base URL (`http://collector:4318`): traces to `/v1/traces`, metrics to `/v1/metrics`. */
  readonly endpoint: string | undefined
  readonly exportIntervalMillis: number
  readonly spanProcessors: ReadonlyArray<SpanProcessor>
  readonly metricReaders: ReadonlyArray<MetricReader>
  /** Where the exports' outcome is kept, for `/health`. */
  readonly exports: ExportState
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

const base = (endpoint: string) => endpoint.replace(/\/+$/, "")

/** Effect's metric producer, flushing what the hot paths counted in place before each collection. */
const flushing = (producer: MetricProducer): MetricProducer => ({
  collect: (options) => {
    SwarmMetrics.flush()
    return producer.collect(options)
  }
})

/**
 * The OTLP exporters of `endpoint`. Their constructors throw on a URL they cannot parse: that is
 * said as the setting's error, not left to crash the process with no word.
 */
const exporters = (endpoint: string, exportIntervalMillis: number, state: ExportState, say: (line: string, failing: boolean) => void) =>
  Effect.try({
    try: () => ({
      processor: new BatchSpanProcessor(
        watched(new OTLPTraceExporter({ url: `${base(endpoint)}/v1/traces`, timeoutMillis: EXPORT_TIMEOUT }), state, "traces", say),
        { exportTimeoutMillis: EXPORT_TIMEOUT }
      ),
      reader: new PeriodicExportingMetricReader({
        exporter: watched(new OTLPMetricExporter({ url: `${base(endpoint)}/v1/metrics`, timeoutMillis: EXPORT_TIMEOUT }), state, "metrics", say),
        exportIntervalMillis,
        exportTimeoutMillis: Math.min(EXPORT_TIMEOUT, exportIntervalMillis)
      })
    }),
    catch: (error) =>
      ConfigError.InvalidData(
        ["OTEL_EXPORTER_OTLP_ENDPOINT"],
        `cannot export to ${JSON.stringify(endpoint)}: ${error instanceof Error ? error.message : String(error)}`
      )
  })

export const layer = (options: SdkOptions): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const say = (line: string, failing: boolean) =>
      void Runtime.runFork(runtime)(failing ? Effect.logWarning(line) : Effect.logInfo(line))
    const exported = options.endpoint === undefined
      ? undefined
      : yield* exporters(options.endpoint, options.exportIntervalMillis, options.exports, say)
    return installed(options, exported)
  }))

const installed = (
  options: SdkOptions,
  exported: { readonly processor: SpanProcessor; readonly reader: MetricReader } | undefined
): Layer.Layer<never> => {
  /** The span processors beside the store: the OTLP exporter's, a test's. */
  const processors: Array<SpanProcessor> = [...options.spanProcessors, ...(exported === undefined ? [] : [exported.processor])]
  const readers: Array<MetricReader> = [...options.metricReaders, ...(exported === undefined ? [] : [exported.reader])]
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
