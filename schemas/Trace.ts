/**
 * Traces as the server's in-process span store gives them out (`traces.get`, `swarm trace`): one
 * traced round of a run is one trace — a tree of finished spans sharing a trace id — with
 * wall-clock timings. Plain data: times are epoch microseconds, attribute values JSON scalars or
 * arrays of them.
 */
import { Schema } from "effect"

const Micros = Schema.Number.pipe(Schema.finite())

export const AttributeValue = Schema.Union(
  Schema.String,
  Schema.Number,
  Schema.Boolean,
  Schema.Array(Schema.Union(Schema.String, Schema.Number, Schema.Boolean, Schema.Null))
)
export type AttributeValue = typeof AttributeValue.Type

export const Attributes = Schema.Record({ key: Schema.String, value: AttributeValue })
export type Attributes = typeof Attributes.Type

/** Something that happened at a moment of a span: a rule or gate the risk officer evaluated, say. */
export const SpanEvent = Schema.Struct({
  name: Schema.String,
  /** Epoch microseconds. */
  at: Micros,
  attributes: Attributes
})
export type SpanEvent = typeof SpanEvent.Type

export const SpanRecord = Schema.Struct({
  traceId: Schema.String,
  spanId: Schema.String,
  /** Absent for the trace's root. */
  parentSpanId: Schema.optional(Schema.String),
  name: Schema.String,
  kind: Schema.Literal("internal", "server", "client", "producer", "consumer"),
  /** Epoch microseconds, wall clock (also in backtests, whose own clock is virtual). */
  start: Micros,
  end: Micros,
  status: Schema.Literal("ok", "error", "unset"),
  /** The error's message when `status` is `error`. */
  error: Schema.optional(Schema.String),
  attributes: Attributes,
  events: Schema.Array(SpanEvent)
})
export type SpanRecord = typeof SpanRecord.Type

/** One traced round (a coordinator cycle: every symbol's round at one timestamp), in short. */
export const TracedRound = Schema.Struct({
  traceId: Schema.String,
  /** The rounds' timestamp (the run's clock: virtual time in a backtest), epoch ms. */
  ts: Schema.Number,
  /** The round ids (`<symbol>@<ts>`). */
  rounds: Schema.Array(Schema.String),
  start: Micros,
  durationMicros: Micros,
  spans: Schema.Int
})
export type TracedRound = typeof TracedRound.Type

export const TraceRecord = Schema.Struct({
  traceId: Schema.String,
  /** Finished spans, in start order. */
  spans: Schema.Array(SpanRecord)
})
export type TraceRecord = typeof TraceRecord.Type

/** What `traces.get` answers: the run's traced rounds the store still holds, and one of them whole. */
export const RunTraces = Schema.Struct({
  run: Schema.String,
  /** The store this answer comes from: which process, how much it keeps. */
  store: Schema.Struct({ description: Schema.String, capacity: Schema.Int, spans: Schema.Int }),
  /** Oldest first. */
  rounds: Schema.Array(TracedRound),
  /** The round asked for (or, without one, the latest traced round); null when the store holds none. */
  trace: Schema.NullOr(TraceRecord)
})
export type RunTraces = typeof RunTraces.Type
