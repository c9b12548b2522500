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
      processor: new BatchSpanProcessor(new OTLPTraceExporter({ url: `${base(endpoint)}/v1/traces` })),
      reader: new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${base(endpoint)}/v1/metrics` }),
        exportIntervalMillis
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
  const tracer = Layer.unwrapScoped(Effect.gen(function*() {
    const resource = yield* Resource.Resource
    // Closing flushes the exporters (the batch not yet sent), as the SDK's tracer provider did.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => Promise.all(processors.map((p) => p.forceFlush().then(() => p.shutdown())))).pipe(
        Effect.ignoreLogged,
        Effect.timeoutOption("3 seconds")
      )
    )
    return Layer.setTracer(LightTracer.make({
      resource,
      scope: { name: options.serviceName, version: options.serviceVersion },
      store: options.store,
      processors
    }))
  }))
  const metrics = readers.length === 0
    ? Layer.empty
    : Layer.scopedDiscard(Effect.flatMap(Metrics.makeProducer, (producer) => Metrics.registerProducer(flushing(producer), () => readers as [MetricReader, ...Array<MetricReader>])))
  return Layer.mergeAll(tracer, metrics).pipe(
    Layer.provide(Resource.layer({ serviceName: options.serviceName, serviceVersion: options.serviceVersion, attributes: options.attributes }))
  )
}
