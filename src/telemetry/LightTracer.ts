/**
 * The process's tracer: Effect spans as plain objects, timed by the wall clock, with URL secrets
 * redacted (`Trace.redact`). An ended span goes straight to the in-process span store and, when
 * there are any, to OpenTelemetry span processors (the OTLP exporter's, a test's) as the
 * `ReadableSpan` the OpenTelemetry SDK would have made of it — same ids, parents, attributes,
 * events, links, status and exception event, resource and instrumentation scope.
 *
 * Why not the SDK's own spans (through @effect/opentelemetry's tracer): they cost a traced round
 * of a paper run about a third of its time (context objects, a sampler, attribute validation,
 * a span processor chain per span), paid on the path from a tick to its order; and without an
 * exporter, nothing but the span store reads them. Spans are sampled by the round
 * (`Sampling.ts`), so every span made is recorded — but a child of a remote parent that was not
 * sampled (a `traceparent` with flags 00), which is dropped as the SDK's parent-based sampler
 * dropped it.
 */
import { randomFillSync } from "node:crypto"
import type { Attributes, AttributeValue, HrTime, Link, SpanContext } from "@opentelemetry/api"
import type { Resource } from "@opentelemetry/resources"
import type { ReadableSpan, SpanProcessor, TimedEvent } from "@opentelemetry/sdk-trace-base"
import { Cause, type Context, type Exit, Inspectable, type Option, Tracer } from "effect"
import type { SpanStore, Stored } from "./SpanStore.js"
import { exitOf, redact } from "./Trace.js"

const KIND = { internal: 0, server: 1, client: 2, producer: 3, consumer: 4 } as const
const STATUS_OK = 1
const STATUS_ERROR = 2
const SAMPLED = 1

/**
 * Random ids cut from a pool of random hex refilled 4 KiB of randomness at a time: one
 * `randomFillSync` and one hex conversion per 128 span ids, and each id a slice of that text, not
 * a conversion of its own (which was a native call per id on the path from a tick to its order).
 */
const POOL_BYTES = 4096
const pool = Buffer.alloc(POOL_BYTES)
let hexPool = ""
let offset = POOL_BYTES * 2
const ZEROS = "0".repeat(32)
const randomHex = (bytes: number): string => {
  const chars = bytes * 2
  for (;;) {
    if (offset + chars > hexPool.length) {
      randomFillSync(pool)
      hexPool = pool.toString("hex")
      offset = 0
    }
    const hex = hexPool.slice(offset, offset + chars)
    offset += chars
    // All zeros is no id (W3C Trace Context).
    if (hex !== ZEROS.slice(0, chars)) return hex
  }
}

/**
 * Wall-clock epoch microseconds, as a double (exact to the microsecond for the next few centuries):
 * the clock of `Trace.nowNanos`, without a BigInt made and added for every span's start, end and event.
 */
const origin = performance.timeOrigin
const nowMicros = (): number => Math.floor((origin + performance.now()) * 1_000)

const hrTime = (micros: number): HrTime => {
  const seconds = Math.floor(micros / 1_000_000)
  return [seconds, (micros - seconds * 1_000_000) * 1_000]
}

/** An attribute as OpenTelemetry takes it (@effect/opentelemetry's rule: text for what is not a scalar). */
const scalar = (value: unknown): AttributeValue =>
  typeof value === "string" || typeof value === "number" || typeof value === "boolean"
    ? value
    : typeof value === "bigint"
    ? value.toString()
    : Inspectable.toStringUnknown(value)

const homogeneous = (values: ReadonlyArray<unknown>): boolean => {
  let kind: string | undefined
  for (const v of values) {
    if (v === null || v === undefined) continue
    const t = typeof v
    if (t !== "string" && t !== "number" && t !== "boolean") return false
    if (kind === undefined) kind = t
    else if (kind !== t) return false
  }
  return true
}

/** A span attribute: arrays of scalars of one type stay arrays (OpenTelemetry takes them), the rest as `scalar`. */
const spanAttribute = (value: unknown): AttributeValue =>
  Array.isArray(value) && homogeneous(value) ? ([...value] as AttributeValue) : scalar(value)

const eventAttributes = (attributes: Record<string, unknown>): Attributes => {
  const out: Attributes = {}
  for (const key in attributes) out[key] = scalar(attributes[key])
  return out
}

/** Where ended spans go: the span store, and any processors. */
export interface Sink {
  readonly resource: Resource
  readonly scope: { readonly name: string; readonly version?: string }
  readonly store: SpanStore
  /** None: the store alone, which then gets the span without a `ReadableSpan` made of it. */
  readonly processors: ReadonlyArray<SpanProcessor>
}

class LightSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId: string
  readonly traceId: string
  readonly sampled: boolean
  readonly attributes = new Map<string, unknown>()
  readonly events: Array<TimedEvent> = []
  private readonly startMicros: number
  private endMicros = 0
  /** Set once the span has ended. */
  private exit: Exit.Exit<unknown, unknown> | undefined = undefined

  constructor(
    private readonly sink: Sink,
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    readonly links: Array<Tracer.SpanLink>,
    readonly kind: Tracer.SpanKind
  ) {
    this.spanId = randomHex(8)
    const from = parent._tag === "Some" ? parent.value : undefined
    this.traceId = from === undefined ? randomHex(16) : from.traceId
    this.sampled = from === undefined ? true : from.sampled
    this.startMicros = nowMicros()
  }

  /** Made when asked (Effect's span interface has it in nanoseconds): nothing reads it on the hot path. */
  get status(): Tracer.SpanStatus {
    const startTime = BigInt(this.startMicros) * 1_000n
    return this.exit === undefined
      ? { _tag: "Started", startTime }
      : { _tag: "Ended", startTime, endTime: BigInt(this.endMicros) * 1_000n, exit: this.exit }
  }

  attribute(key: string, value: unknown): void {
    this.attributes.set(key, redact(key, value))
  }

  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>): void {
    this.events.push({ name, time: hrTime(nowMicros()), attributes: attributes === undefined ? {} : eventAttributes(attributes), droppedAttributesCount: 0 })
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    this.links.push(...links)
  }

  end(_endTime: bigint, ended: Exit.Exit<unknown, unknown>): void {
    if (this.exit !== undefined) return
    // A span told it failed (`Trace.failSpan`: a refused RPC call, a model call that gave no answer)
    // ends so whatever its effect's exit.
    const exit = exitOf(this, ended)
    const endMicros = nowMicros()
    this.endMicros = endMicros
    this.exit = exit
    if (!this.sampled) return
    const attributes: Attributes = {}
    for (const [key, value] of this.attributes) attributes[key] = spanAttribute(value)
    const status = this.outcome(exit, attributes, endMicros)
    const parent = this.parent._tag === "Some" ? this.parent.value : undefined
    this.sink.store.add({
      traceId: this.traceId,
      spanId: this.spanId,
      parent: parent?.spanId,
      name: this.name,
      kind: KIND[this.kind],
      start: this.startMicros,
      end: endMicros,
      status: status.code,
      error: status.code === STATUS_ERROR ? status.message : undefined,
      attributes,
      events: this.events
    } satisfies Stored)
    if (this.sink.processors.length === 0) return
    const readable = this.readable(endMicros, attributes, status, parent)
    for (const processor of this.sink.processors) processor.onEnd(readable)
  }

  /**
   * The status an exit gives the span, as @effect/opentelemetry's `OtelSpan.end` sets it: OK, or
   * OK with the interruption said in `attributes`, or ERROR with an `exception` event.
   */
  private outcome(exit: Exit.Exit<unknown, unknown>, attributes: Attributes, endMicros: number): { readonly code: number; readonly message?: string } {
    if (exit._tag === "Success") return { code: STATUS_OK }
    if (Cause.isInterruptedOnly(exit.cause)) {
      attributes["span.label"] = "⚠︎ Interrupted"
      attributes["status.interrupted"] = true
      return { code: STATUS_OK, message: Cause.pretty(exit.cause) }
    }
    const error = Cause.prettyErrors(exit.cause)[0]
    if (error === undefined) return { code: STATUS_OK }
    error.stack = Cause.pretty(exit.cause, { renderErrorCause: true })
    const exception: Attributes = {}
    const code = (error as { code?: unknown }).code
    if (code !== undefined && code !== null && code !== "") exception["exception.type"] = String(code)
    else if (error.name) exception["exception.type"] = error.name
    if (error.message) exception["exception.message"] = error.message
    if (error.stack) exception["exception.stacktrace"] = error.stack
    if (exception["exception.type"] !== undefined || exception["exception.message"] !== undefined) {
      this.events.push({ name: "exception", time: hrTime(endMicros), attributes: exception, droppedAttributesCount: 0 })
    }
    return { code: STATUS_ERROR, message: error.message }
  }

  /** The span as the OpenTelemetry SDK would have ended it, for span processors. */
  private readable(endMicros: number, attributes: Attributes, status: { readonly code: number; readonly message?: string }, parent: Tracer.AnySpan | undefined): ReadableSpan {
    const context: SpanContext = { traceId: this.traceId, spanId: this.spanId, traceFlags: SAMPLED }
    const elapsed = endMicros > this.startMicros ? endMicros - this.startMicros : 0
    const links: Array<Link> = this.links.map((link) => ({
      context: { traceId: link.span.traceId, spanId: link.span.spanId, traceFlags: link.span.sampled ? SAMPLED : 0 },
      attributes: eventAttributes(link.attributes),
      droppedAttributesCount: 0
    }))
    return {
      name: this.name,
      kind: KIND[this.kind],
      spanContext: () => context,
      ...(parent === undefined ? {} : { parentSpanContext: { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.sampled ? SAMPLED : 0, isRemote: parent._tag === "ExternalSpan" } }),
      startTime: hrTime(this.startMicros),
      endTime: hrTime(endMicros),
      status,
      attributes,
      links,
      events: this.events,
      duration: hrTime(elapsed),
      ended: true,
      resource: this.sink.resource,
      instrumentationScope: this.sink.scope,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0
    } as ReadableSpan
  }
}

/** The tracer of `sink`. It does not carry spans into OpenTelemetry's context: nothing in the process reads it. */
export const make = (sink: Sink): Tracer.Tracer =>
  Tracer.make({
    span: (name, parent, context, links, _startTime, kind) => new LightSpan(sink, name, parent, context, links.slice(), kind),
    context: (f) => f()
  })
