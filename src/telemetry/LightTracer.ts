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
import { Cause, type Context, Exit, Inspectable, type Option, Tracer } from "effect"
import type { SpanRecord } from "../../schemas/Trace.js"
import { attributesOf, kindName, type SpanStore, statusName, type Stored } from "./SpanStore.js"
import { deferEvent, exitOf, redact } from "./Trace.js"

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

/** A span attribute: arrays of scalars of one type stay arrays (a copy: OpenTelemetry takes them), the rest as `scalar`. */
const spanAttribute = (value: unknown): AttributeValue =>
  typeof value === "string" || typeof value === "number" || typeof value === "boolean"
    ? value
    : Array.isArray(value) && homogeneous(value)
    ? ([...value] as AttributeValue)
    : scalar(value)

const eventAttributes = (attributes: Readonly<Record<string, unknown>>): Attributes => {
  const out: Attributes = {}
  for (const key in attributes) out[key] = scalar(attributes[key])
  return out
}

/** Whether every attribute is a scalar already (nothing to convert, nothing that could change later). */
const scalars = (attributes: Readonly<Record<string, unknown>>): boolean => {
  for (const key in attributes) {
    const t = typeof attributes[key]
    if (t !== "string" && t !== "number" && t !== "boolean") return false
  }
  return true
}

/** Where ended spans go: the span store, and any processors. */
export interface Sink {
  readonly resource: Resource
  readonly scope: { readonly name: string; readonly version?: string }
  readonly store: SpanStore
  /** None: the store alone, which then gets the span without a `ReadableSpan` made of it. */
  readonly processors: ReadonlyArray<SpanProcessor>
}

/**
 * An event as a span keeps it: its time (epoch microseconds) and its attributes — scalars as given,
 * or converted when given (`eventAttributes`), or made only when the span is read (`Trace.deferEvent`).
 */
interface Kept {
  readonly name: string
  readonly at: number
  readonly attributes: Readonly<Record<string, unknown>> | (() => Readonly<Record<string, unknown>>)
}

const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({})
const NO_LINKS: ReadonlyArray<Tracer.SpanLink> = Object.freeze([])

const timed = (event: Kept): TimedEvent => ({
  name: event.name,
  time: hrTime(event.at),
  attributes: eventAttributes(typeof event.attributes === "function" ? event.attributes() : event.attributes),
  droppedAttributesCount: 0
})

/**
 * A span, which is also what the span store keeps of it once ended (`Stored`): its attributes
 * converted as they are set (so ending one converts nothing), its record for `traces.get` and its
 * `ReadableSpan` for processors made from it when asked.
 */
class LightSpan implements Tracer.Span, Stored {
  readonly _tag = "Span"
  readonly spanId: string
  readonly traceId: string
  readonly sampled: boolean
  readonly parentSpanId: string | undefined
  readonly startMicros: number
  endMicros = 0
  links: Array<Tracer.SpanLink>
  /**
   * Its attributes in the order set, key then value, values as OpenTelemetry takes them
   * (`spanAttribute`), URL secrets redacted (`Trace.redact`): two pushes, where a property added
   * to an object of one of many shapes took V8's slow path, and a Map more memory kept in the ring.
   * A key set again is there twice; the object made of them (`attributeObject`) keeps the last value.
   */
  private readonly attrs: Array<string | AttributeValue> = []
  private readonly kept: Array<Kept> = []
  private ended = false
  /** Once ended: the exit of a failure; a success is `Exit.void` (nothing reads its value, and the ring would keep it alive). */
  private exit: Exit.Exit<unknown, unknown> | undefined = undefined
  private code = STATUS_OK
  private error: string | undefined = undefined

  constructor(
    private readonly sink: Sink,
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    readonly kind: Tracer.SpanKind
  ) {
    this.spanId = randomHex(8)
    const from = parent._tag === "Some" ? parent.value : undefined
    this.traceId = from === undefined ? randomHex(16) : from.traceId
    this.sampled = from === undefined ? true : from.sampled
    this.parentSpanId = from?.spanId
    this.links = links.length === 0 ? NO_LINKS as Array<Tracer.SpanLink> : links.slice()
    this.startMicros = nowMicros()
  }

  /** Made when asked (Effect's span interface has it in nanoseconds): nothing reads it on the hot path. */
  get status(): Tracer.SpanStatus {
    const startTime = BigInt(this.startMicros) * 1_000n
    return this.exit === undefined
      ? { _tag: "Started", startTime }
      : { _tag: "Ended", startTime, endTime: BigInt(this.endMicros) * 1_000n, exit: this.exit }
  }

  /** Made when asked (Effect's span interface has a map): Swarm's code sets attributes, it does not read them. */
  get attributes(): ReadonlyMap<string, unknown> {
    return new Map(Object.entries(this.attributeObject()))
  }

  private attributeObject(): Attributes {
    const out: Attributes = {}
    const attrs = this.attrs
    for (let i = 0; i < attrs.length; i += 2) out[attrs[i] as string] = attrs[i + 1]
    return out
  }

  /** An ended span takes no more (as OpenTelemetry's SDK): what was recorded of it stays what it was. */
  attribute(key: string, value: unknown): void {
    if (!this.ended) this.attrs.push(key, spanAttribute(redact(key, value)))
  }

  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>): void {
    if (this.ended) return
    this.kept.push({ name, at: nowMicros(), attributes: attributes === undefined ? EMPTY : scalars(attributes) ? attributes : eventAttributes(attributes) })
  }

  /** An event whose attributes are made only if the span is read (`Trace.deferEvent`). */
  [deferEvent](name: string, attributes: () => Readonly<Record<string, unknown>>): void {
    if (!this.ended) this.kept.push({ name, at: nowMicros(), attributes })
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    this.links = [...this.links, ...links]
  }

  end(_endTime: bigint, ended: Exit.Exit<unknown, unknown>): void {
    if (this.ended) return
    // A span told it failed (`Trace.failSpan`: a refused RPC call, a model call that gave no answer)
    // ends so whatever its effect's exit.
    const exit = exitOf(this, ended)
    this.endMicros = nowMicros()
    this.ended = true
    if (exit._tag === "Success") this.exit = Exit.void
    else {
      this.exit = exit
      this.outcome(exit.cause)
    }
    if (!this.sampled) return
    this.sink.store.add(this)
    if (this.sink.processors.length === 0) return
    const readable = this.readable()
    for (const processor of this.sink.processors) processor.onEnd(readable)
  }

  /**
   * The status a failure gives the span, as @effect/opentelemetry's `OtelSpan.end` sets it: OK with
   * the interruption said in its attributes, or ERROR with an `exception` event.
   */
  private outcome(cause: Cause.Cause<unknown>): void {
    if (Cause.isInterruptedOnly(cause)) {
      this.attrs.push("span.label", "⚠︎ Interrupted", "status.interrupted", true)
      this.error = Cause.pretty(cause)
      return
    }
    const error = Cause.prettyErrors(cause)[0]
    if (error === undefined) return
    error.stack = Cause.pretty(cause, { renderErrorCause: true })
    const exception: Attributes = {}
    const code = (error as { code?: unknown }).code
    if (code !== undefined && code !== null && code !== "") exception["exception.type"] = String(code)
    else if (error.name) exception["exception.type"] = error.name
    if (error.message) exception["exception.message"] = error.message
    if (error.stack) exception["exception.stacktrace"] = error.stack
    if (exception["exception.type"] !== undefined || exception["exception.message"] !== undefined) {
      this.kept.push({ name: "exception", at: this.endMicros, attributes: exception })
    }
    this.code = STATUS_ERROR
    this.error = error.message
  }

  // --- Stored: what the span store reads ----------------------------------------------------------

  attributeOf(key: string): unknown {
    const attrs = this.attrs
    for (let i = attrs.length - 2; i >= 0; i -= 2) if (attrs[i] === key) return attrs[i + 1]
    return undefined
  }

  record(): SpanRecord {
    return {
      traceId: this.traceId,
      spanId: this.spanId,
      ...(this.parentSpanId === undefined ? {} : { parentSpanId: this.parentSpanId }),
      name: this.name,
      kind: kindName(KIND[this.kind]),
      start: this.startMicros,
      end: this.endMicros,
      status: statusName(this.code),
      ...(this.code === STATUS_ERROR && this.error !== undefined ? { error: this.error } : {}),
      attributes: attributesOf(this.attributeObject()),
      events: this.kept.map((event) => {
        const { attributes, name, time } = timed(event)
        return { name, at: micros(time), attributes: attributesOf(attributes) }
      })
    }
  }

  /** The span as the OpenTelemetry SDK would have ended it, for span processors. */
  private readable(): ReadableSpan {
    const context: SpanContext = { traceId: this.traceId, spanId: this.spanId, traceFlags: SAMPLED }
    const elapsed = this.endMicros > this.startMicros ? this.endMicros - this.startMicros : 0
    const links: Array<Link> = this.links.map((link) => ({
      context: { traceId: link.span.traceId, spanId: link.span.spanId, traceFlags: link.span.sampled ? SAMPLED : 0 },
      attributes: eventAttributes(link.attributes),
      droppedAttributesCount: 0
    }))
    const parent = this.parent._tag === "Some" ? this.parent.value : undefined
    return {
      name: this.name,
      kind: KIND[this.kind],
      spanContext: () => context,
      ...(parent === undefined ? {} : { parentSpanContext: { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.sampled ? SAMPLED : 0, isRemote: parent._tag === "ExternalSpan" } }),
      startTime: hrTime(this.startMicros),
      endTime: hrTime(this.endMicros),
      status: this.code === STATUS_ERROR ? { code: STATUS_ERROR, message: this.error } : this.error === undefined ? { code: STATUS_OK } : { code: STATUS_OK, message: this.error },
      attributes: this.attributeObject(),
      links,
      events: this.kept.map(timed),
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

const micros = (time: HrTime): number => time[0] * 1e6 + time[1] / 1e3

/** The tracer of `sink`. It does not carry spans into OpenTelemetry's context: nothing in the process reads it. */
export const make = (sink: Sink): Tracer.Tracer =>
  Tracer.make({
    span: (name, parent, context, links, _startTime, kind) => new LightSpan(sink, name, parent, context, links, kind),
    context: (f) => f()
  })
