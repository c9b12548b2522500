/**
 * The OpenTelemetry SDK behind the telemetry layer, loaded only when a process installs it (the
 * SDK takes a fifth of a second to load, which a `swarm runs list` should not pay): a tracer
 * provider feeding the in-process span store (and an OTLP/HTTP exporter when an endpoint is set),
 * Effect's tracer replaced by a wall-clock one over it, and Effect's metrics produced to the metric
 * readers (OTLP/HTTP every `exportIntervalMillis`, and any a test gives).
 */
import { Metrics, NodeSdk, Resource, Tracer as OtelTracer } from "@effect/opentelemetry"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { type MetricProducer, type MetricReader, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer } from "effect"
import * as SwarmMetrics from "../Metrics.js"
import type { SpanStore } from "../SpanStore.js"
import { wallClock } from "../Trace.js"

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

export const layer = (options: SdkOptions): Layer.Layer<never> => {
  const processors: Array<SpanProcessor> = [options.store, ...options.spanProcessors]
  const readers: Array<MetricReader> = [...options.metricReaders]
  if (options.endpoint !== undefined) {
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${base(options.endpoint)}/v1/traces` })))
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${base(options.endpoint)}/v1/metrics` }),
        exportIntervalMillis: options.exportIntervalMillis
      })
    )
  }
  const tracer = Layer.unwrapEffect(Effect.map(OtelTracer.make, (otel) => Layer.setTracer(wallClock(otel)))).pipe(
    Layer.provide(OtelTracer.layerTracer),
    Layer.provide(NodeSdk.layerTracerProvider(processors as [SpanProcessor, ...Array<SpanProcessor>]))
  )
  const metrics = readers.length === 0
    ? Layer.empty
    : Layer.scopedDiscard(Effect.flatMap(Metrics.makeProducer, (producer) => Metrics.registerProducer(flushing(producer), () => readers as [MetricReader, ...Array<MetricReader>])))
  return Layer.mergeAll(tracer, metrics).pipe(
    Layer.provide(Resource.layer({ serviceName: options.serviceName, serviceVersion: options.serviceVersion, attributes: options.attributes }))
  )
}
