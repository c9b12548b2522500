/**
 * Telemetry: which tracer and metric exporters a process uses, and its in-process span store.
 *
 *   OTEL_EXPORTER_OTLP_ENDPOINT set           spans and metrics exported over OTLP/HTTP to that
 *                                             collector (`/v1/traces`, `/v1/metrics` appended), and
 *                                             the span store kept as well
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,       that signal exported to that URL as it is (nothing
 *   OTEL_EXPORTER_OTLP_METRICS_ENDPOINT set   appended), whatever the generic one says; a signal
 *                                             with neither is not exported (as the OpenTelemetry
 *                                             spec has it: each signal goes where it is configured)
 *   none set                                  spans kept only in the in-process store (the last
 *                                             50,000, `SWARM_TRACE_CAPACITY`), which `swarm trace` reads
 *
 * Every span of the process goes through it — the rounds the coordinator traces (see Sampling.ts),
 * RPC procedures, HTTP requests — with wall-clock timings. `SWARM_TRACE_SAMPLE` and
 * `SWARM_TRACE_SAMPLE_PAPER` say which rounds are traced; `OTEL_SERVICE_NAME` names the process
 * (default `swarm`). Start-up prints `info.description`, `/health` reports it.
 */
import { hostname } from "node:os"
import { createRequire } from "node:module"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { HttpClient } from "@effect/platform"
import { Config, ConfigError, Context, Effect, Either, Layer, Option } from "effect"
import { shownUrl } from "../internal/credentials.js"
import type { Destination, ExportState } from "./internal/sdk.js"
import * as Sampling from "./Sampling.js"
import { DEFAULT_CAPACITY, SpanStore } from "./SpanStore.js"

export interface Info {
  /** `otlp`: exported to a collector; `in-process`: kept in this process only. */
  readonly kind: "otlp" | "in-process"
  readonly description: string
  /** With a collector: the URL spans are posted to; absent when they are not exported. */
  readonly traces?: string
  /** With a collector: the URL metrics are posted to; absent when they are not exported. */
  readonly metrics?: string
  /**
   * With a collector: since when (epoch ms) exports to it fail, and the last reason, while they
   * do — absent once one goes through again.
   */
  readonly failingSince?: number
  readonly error?: string
}

export interface Service {
  /** Read afresh each time: exports can start or stop failing. */
  readonly info: Info
  readonly store: SpanStore
  readonly rates: Sampling.Rates
}

export class Telemetry extends Context.Tag("swarm/telemetry/Telemetry")<Telemetry, Service>() {}

export interface Options {
  /** The OTLP/HTTP collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`): `/v1/traces` and `/v1/metrics` appended. */
  readonly endpoint?: string | undefined
  /** Where spans go, as is (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); before `endpoint`. */
  readonly tracesEndpoint?: string | undefined
  /** Where metrics go, as is (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`); before `endpoint`. */
  readonly metricsEndpoint?: string | undefined
  /** Finished spans the in-process store keeps (default 50,000). */
  readonly capacity?: number | undefined
  readonly rates?: Sampling.Rates | undefined
  readonly serviceName?: string | undefined
  /** More span processors (a test's in-memory exporter). */
  readonly spanProcessors?: ReadonlyArray<SpanProcessor> | undefined
  /** More metric readers (a test's in-memory reader). */
  readonly metricReaders?: ReadonlyArray<MetricReader> | undefined
  /** How often metrics go to the collector (default 10 s). */
  readonly exportIntervalMillis?: number | undefined
}

/** Swarm's version (package.json): the service version of spans, and `/health`'s. */
export const version: string = createRequire(import.meta.url)("../../package.json").version

/** Rates in words: "every round", "one in 10,000", "none". */
const rateText = (rate: number) => (rate >= 1 ? "every round" : rate <= 0 ? "no round" : `one round in ${Math.round(1 / rate).toLocaleString("en-US")}`)

const trimmed = (url: string) => url.replace(/\/+$/, "")

/**
 * Where each signal goes, and which setting said so: the signal's own endpoint as it is, else the
 * generic one with the signal's path appended, else nowhere (undefined).
 */
export const destinations = (options: Options): { readonly traces?: Destination; readonly metrics?: Destination } => {
  const of = (own: string | undefined, signal: "TRACES" | "METRICS"): Destination | undefined =>
    own !== undefined
      ? { url: own, setting: `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`, value: own }
      : options.endpoint !== undefined
      ? { url: `${trimmed(options.endpoint)}/v1/${signal.toLowerCase()}`, setting: "OTEL_EXPORTER_OTLP_ENDPOINT", value: options.endpoint }
      : undefined
  const traces = of(options.tracesEndpoint, "TRACES")
  const metrics = of(options.metricsEndpoint, "METRICS")
  return { ...(traces === undefined ? {} : { traces }), ...(metrics === undefined ? {} : { metrics }) }
}

export const describe = (options: Options): Info => {
  const rates = options.rates ?? Sampling.defaultRates
  const capacity = options.capacity ?? DEFAULT_CAPACITY
  const traced = `traces ${rateText(rates.paper)} of paper runs and ${rateText(rates.backtest)} of backtests (SWARM_TRACE_SAMPLE)`
  const { metrics, traces } = destinations(options)
  if (traces === undefined && metrics === undefined) {
    return {
      kind: "in-process",
      description: `telemetry: in-process — the last ${capacity.toLocaleString("en-US")} spans kept in this process (swarm trace <run> reads them), ` +
        `no exporter (set OTEL_EXPORTER_OTLP_ENDPOINT to send traces and metrics to a collector); ${traced}`
    }
  }
  const where = (signal: string, to: Destination | undefined) =>
    to === undefined
      ? `${signal} not exported (no OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT)`
      : `${signal} to ${shownUrl(to.url)}`
  return {
    kind: "otlp",
    description: `telemetry: OTLP/HTTP, ${where("traces", traces)}, ${where("metrics", metrics)}; ` +
      `the last ${capacity.toLocaleString("en-US")} spans in this process for swarm trace; ${traced}`,
    // Shown (start-up, an unauthenticated /health): a password in an endpoint is masked; it goes
    // to the collector as a Basic `Authorization` header (internal/sdk.ts).
    ...(traces === undefined ? {} : { traces: shownUrl(traces.url) }),
    ...(metrics === undefined ? {} : { metrics: shownUrl(metrics.url) })
  }
}

/**
 * The telemetry of `options`: the service, the sampling rates for runs started under it, and the
 * tracer and metric producer installed for as long as the layer lives (its release flushes the
 * exporters). Build it before what it should trace.
 */
export const make = (options: Options = {}): Layer.Layer<Telemetry | Sampling.TraceSampling, ConfigError.ConfigError> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const store = new SpanStore(options.capacity ?? DEFAULT_CAPACITY)
    const rates = options.rates ?? Sampling.defaultRates
    const sdk = yield* Effect.promise(() => import("./internal/sdk.js"))
    const described = describe(options)
    const exports: ExportState = { failingSince: undefined, error: undefined }
    const service: Service = {
      get info(): Info {
        return exports.failingSince === undefined ? described : { ...described, failingSince: exports.failingSince, error: exports.error ?? "" }
      },
      store,
      rates
    }
    return Layer.mergeAll(
      Layer.succeed(Telemetry, service),
      Layer.succeed(Sampling.TraceSampling, rates),
      sdk.layer({
        serviceName: options.serviceName ?? "swarm",
        serviceVersion: version,
        attributes: { "service.instance.id": `${hostname()}/${process.pid}` },
        store,
        ...destinations(options),
        exportIntervalMillis: options.exportIntervalMillis ?? 10_000,
        spanProcessors: options.spanProcessors ?? [],
        metricReaders: options.metricReaders ?? [],
        exports
      })
    )
  }))

const optionalString = (name: string) =>
  Config.string(name).pipe(Config.option, Config.map(Option.filter((s) => s.trim() !== "")), Config.map(Option.getOrUndefined))

/**
 * Why `value` cannot be an OTLP/HTTP endpoint, or undefined when it can: an http(s) URL. The
 * exporter would throw at start-up on some (`notaurl`) and take others (`localhost:4318`, read as
 * a URL of scheme `localhost:`) to send nothing, ever.
 */
export const endpointProblem = (value: string, example = "http://127.0.0.1:4318"): string | undefined => {
  const problem = `not an http(s) URL: ${JSON.stringify(shownUrl(value))} (e.g. ${example})`
  try {
    const url = new URL(value)
    return url.protocol === "http:" || url.protocol === "https:" ? undefined : problem
  } catch {
    return problem
  }
}

/** `name`: unset, or an http(s) URL (`example` is one, for the error). */
const url = (name: string, example: string) =>
  optionalString(name).pipe(
    Config.mapOrFail((value) => {
      const problem = value === undefined ? undefined : endpointProblem(value.trim(), example)
      return problem === undefined ? Either.right(value?.trim()) : Either.left(ConfigError.InvalidData([name], problem))
    })
  )

/** `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL, each signal's path appended. */
const endpoint = url("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
/** `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: where spans go, used as it is. */
const tracesEndpoint = url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
/** `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: where metrics go, used as it is. */
const metricsEndpoint = url("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://127.0.0.1:4318/v1/metrics")

/**
 * A configuration error in a line per setting: `OTEL_EXPORTER_OTLP_ENDPOINT: not an http(s) URL:
 * …`, rather than Effect's `(Invalid data at …)`.
 */
export const explain = (error: ConfigError.ConfigError): string => {
  switch (error._op) {
    case "And":
    case "Or":
      return `${explain(error.left)}; ${explain(error.right)}`
    case "InvalidData":
    case "MissingData":
    case "SourceUnavailable":
    case "Unsupported":
      return error.path.length === 0 ? error.message : `${error.path.join(".")}: ${error.message}`
  }
}

const capacity = Config.integer("SWARM_TRACE_CAPACITY").pipe(
  Config.validate({ message: "must be a positive number of spans", validation: (n) => n > 0 }),
  Config.withDefault(DEFAULT_CAPACITY)
)

/**
 * `OTEL_EXPORTER_OTLP_ENDPOINT` and its signal-specific `…_TRACES_ENDPOINT` and `…_METRICS_ENDPOINT`,
 * `OTEL_SERVICE_NAME`, `SWARM_TRACE_CAPACITY`, the sampling rates.
 */
export const config: Config.Config<Options> = Config.all({
  endpoint,
  tracesEndpoint,
  metricsEndpoint,
  serviceName: optionalString("OTEL_SERVICE_NAME"),
  capacity,
  rates: Sampling.config
})

/** The telemetry the configuration asks for: what `swarm serve` installs. */
export const layer: Layer.Layer<Telemetry | Sampling.TraceSampling, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, make)
)

/**
 * For command-line processes: the sampling rates the configuration asks for (a local `swarm
 * backtest` traces as `SWARM_TRACE_SAMPLE` says), and the tracer and exporters only when a
 * collector is configured — without one, their spans would be kept in a store nobody reads, and
 * the SDK's load time paid for nothing.
 *
 * A command is not refused for its telemetry: each bad setting is said through `warn`, naming it,
 * and only that setting is left out, as if unset — a bad endpoint exports nothing to it (a bad
 * signal-specific one leaves its signal to the generic one, if that is set), a bad rate traces as by
 * default. (It used to be one error for all: a bad `SWARM_TRACE_SAMPLE` turned exporting off.)
 */
export const layerIfExporting = (warn: (line: string) => void): Layer.Layer<Sampling.TraceSampling, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const read = <A>(setting: Config.Config<A>, fallback: A, instead: string) =>
      Effect.catchIf(setting, ConfigError.isConfigError, (error) => Effect.as(Effect.sync(() => warn(`${explain(error)} (${instead})`)), fallback))
    // The endpoints read each on its own, a bad one left out as if unset; what that leaves is
    // said only once all three are known.
    const urls = {
      endpoint: yield* Effect.either(endpoint),
      tracesEndpoint: yield* Effect.either(tracesEndpoint),
      metricsEndpoint: yield* Effect.either(metricsEndpoint)
    }
    const left: Options = {
      endpoint: Either.getOrUndefined(urls.endpoint),
      tracesEndpoint: Either.getOrUndefined(urls.tracesEndpoint),
      metricsEndpoint: Either.getOrUndefined(urls.metricsEndpoint)
    }
    const to = destinations(left)
    const exporting = to.traces !== undefined || to.metrics !== undefined
    const instead = (signals: ReadonlyArray<"traces" | "metrics">) =>
      !exporting
        ? "telemetry off: not exporting"
        : signals.map((signal) => to[signal] === undefined ? `not exporting ${signal}` : `${signal} to ${shownUrl(to[signal]!.url)} instead`).join(", ")
    for (
      const [read, signals] of [
        [urls.endpoint, (["traces", "metrics"] as const).filter((signal) => left[`${signal}Endpoint`] === undefined)],
        [urls.tracesEndpoint, ["traces"]],
        [urls.metricsEndpoint, ["metrics"]]
      ] as const
    ) {
      if (Either.isLeft(read)) warn(`${explain(read.left)} (${signals.length === 0 ? "not used: each signal has its own endpoint" : instead(signals)})`)
    }
    const options: Options = {
      ...left,
      serviceName: yield* optionalString("OTEL_SERVICE_NAME"),
      capacity: yield* read(capacity, DEFAULT_CAPACITY, `keeping the default ${DEFAULT_CAPACITY.toLocaleString("en-US")}`),
      rates: {
        backtest: yield* read(Sampling.backtestRate, Sampling.defaultRates.backtest, `tracing backtests as by default: ${rateText(Sampling.defaultRates.backtest)}`),
        paper: yield* read(Sampling.paperRate, Sampling.defaultRates.paper, `tracing paper runs as by default: ${rateText(Sampling.defaultRates.paper)}`)
      }
    }
    const rates = Layer.succeed(Sampling.TraceSampling, options.rates!)
    // A command that exports no traces sends no trace headers (`traceparent`, `b3`) with its requests:
    // the server's spans would name as their parent a span that exists nowhere.
    const headers = to.traces === undefined ? Layer.locallyScoped(HttpClient.currentTracerPropagation, false) : Layer.empty
    return Layer.mergeAll(rates, headers, exporting ? Layer.discard(make(options)) : Layer.empty)
  }))
