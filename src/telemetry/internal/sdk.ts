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
import { ConfigError, Effect, Layer } from "effect"
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
const exporters = (endpoint: string, exportIntervalMillis: number) =>
  Effect.try({
    try: () => ({
      processor: new BatchSpanProcessor(
        new OTLPTraceExporter({ url: `${base(endpoint)}/v1/traces`, timeoutMillis: EXPORT_TIMEOUT }),
        { exportTimeoutMillis: EXPORT_TIMEOUT }
      ),
      reader: new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${base(endpoint)}/v1/metrics`, timeoutMillis: EXPORT_TIMEOUT }),
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
  Layer.unwrapEffect(Effect.map(
    options.endpoint === undefined ? Effect.succeed(undefined) : exporters(options.endpoint, options.exportIntervalMillis),
    (exported) => installed(options, exported)
  ))

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
