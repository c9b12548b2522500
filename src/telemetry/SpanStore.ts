/**
 * The in-process span store: the last `capacity` finished spans of this process (a ring — the
 * oldest go first), grouped by trace, with the traced rounds of each run indexed by the round's
 * root span (the coordinator's, which names its run, timestamp and rounds). It is an OpenTelemetry
 * `SpanProcessor`, so it sees what an exporter sees; `swarm trace` reads it through `traces.get`.
 *
 * A finished span is kept as a few fields (its attributes and events by reference): a span of a
 * traced round costs a few hundred bytes here, and only traced rounds make them.
 */
import type { Context as OtelContext, HrTime } from "@opentelemetry/api"
import type { ReadableSpan, Span as OtelSpan, SpanProcessor, TimedEvent } from "@opentelemetry/sdk-trace-base"
import type { Attributes, AttributeValue, RunTraces, SpanRecord, TracedRound, TraceRecord } from "../../schemas/Trace.js"

/** The default capacity: 50,000 spans — a few thousand traced rounds. */
export const DEFAULT_CAPACITY = 50_000

/** The attributes of a round's root span (agents/Coordinator.ts). */
export const ROUND_ATTRIBUTES = {
  run: "swarm.run",
  ts: "swarm.ts",
  rounds: "swarm.rounds"
} as const

/** A finished span as the store keeps it. */
export interface Stored {
  readonly traceId: string
  readonly spanId: string
  readonly parent: string | undefined
  readonly name: string
  readonly kind: number
  /** Epoch microseconds. */
  readonly start: number
  readonly end: number
  readonly status: number
  readonly error: string | undefined
  readonly attributes: Readonly<Record<string, unknown>>
  readonly events: ReadonlyArray<TimedEvent>
}

interface Root {
  readonly span: Stored
  readonly ts: number
  readonly rounds: ReadonlyArray<string>
}

const micros = (time: HrTime): number => time[0] * 1e6 + time[1] / 1e3

const KINDS = ["internal", "server", "client", "producer", "consumer"] as const
const STATUSES = ["unset", "ok", "error"] as const

const value = (v: unknown): AttributeValue =>
  typeof v === "string" || typeof v === "number" || typeof v === "boolean"
    ? v
    : Array.isArray(v)
    ? v.map((x) => (typeof x === "string" || typeof x === "number" || typeof x === "boolean" ? x : null))
    : String(v)

const attributesOf = (attributes: Readonly<Record<string, unknown>> | undefined): Attributes => {
  const out: Record<string, AttributeValue> = {}
  if (attributes !== undefined) for (const key in attributes) if (attributes[key] !== undefined) out[key] = value(attributes[key])
  return out
}

const recordOf = (s: Stored): SpanRecord => ({
  traceId: s.traceId,
  spanId: s.spanId,
  ...(s.parent === undefined ? {} : { parentSpanId: s.parent }),
  name: s.name,
  kind: KINDS[s.kind] ?? "internal",
  start: s.start,
  end: s.end,
  status: STATUSES[s.status] ?? "unset",
  ...(s.error === undefined ? {} : { error: s.error }),
  attributes: attributesOf(s.attributes),
  events: s.events.map((e) => ({ name: e.name, at: micros(e.time), attributes: attributesOf(e.attributes) }))
})

/** A trace's spans in the ring, in the order they ended, from `head` on (those before it are gone). */
interface TraceSpans {
  items: Array<Stored>
  head: number
}

const sizeOf = (spans: TraceSpans | undefined): number => spans === undefined ? 0 : spans.items.length - spans.head

/**
 * A time as `traces.get` takes one: epoch milliseconds, or an ISO-8601 date or date-time (a date
 * alone is its midnight UTC). Nothing else: `Date.parse` alone reads much more (`FOO@2022-02-25`
 * as that day), which let any name before a date find the day's round.
 */
const timeOf = (text: string): number | undefined => {
  if (/^\d{1,16}$/.test(text)) return Number(text)
  if (!/^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2})?)?$/.test(text)) return undefined
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? undefined : ms
}

export class SpanStore implements SpanProcessor {
  private readonly ring: Array<Stored | undefined>
  private head = 0
  private count = 0
  /** Each trace's spans still in the ring, in the order they ended. */
  private readonly traces = new Map<string, TraceSpans>()
  /** Per run, its traced rounds by trace id, in the order their roots ended. */
  private readonly runs = new Map<string, Map<string, Root>>()

  constructor(readonly capacity: number = DEFAULT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`span store capacity must be a positive integer, got ${capacity}`)
    this.ring = new Array(capacity)
  }

  /** Finished spans held. */
  get size(): number {
    return this.count
  }

  // --- SpanProcessor ----------------------------------------------------------------------------

  onStart(_span: OtelSpan, _context: OtelContext): void {}

  onEnd(span: ReadableSpan): void {
    const context = span.spanContext()
    this.add({
      traceId: context.traceId,
      spanId: context.spanId,
      parent: span.parentSpanContext?.spanId,
      name: span.name,
      kind: span.kind,
      start: micros(span.startTime),
      end: micros(span.endTime),
      status: span.status.code,
      error: span.status.code === 2 ? span.status.message : undefined,
      attributes: span.attributes,
      events: span.events
    })
  }

  /** Keep a finished span (what `onEnd` keeps of an OpenTelemetry span; what Swarm's own tracer gives). */
  add(stored: Stored): void {
    if (this.count === this.capacity) this.evict()
    this.ring[(this.head + this.count) % this.capacity] = stored
    this.count++
    let spans = this.traces.get(stored.traceId)
    if (spans === undefined) this.traces.set(stored.traceId, (spans = { items: [], head: 0 }))
    spans.items.push(stored)
    const run = stored.parent === undefined ? stored.attributes[ROUND_ATTRIBUTES.run] : undefined
    if (typeof run === "string") {
      const rounds = stored.attributes[ROUND_ATTRIBUTES.rounds]
      let ofRun = this.runs.get(run)
      if (ofRun === undefined) this.runs.set(run, (ofRun = new Map()))
      ofRun.set(stored.traceId, {
        span: stored,
        ts: Number(stored.attributes[ROUND_ATTRIBUTES.ts] ?? 0),
        rounds: Array.isArray(rounds) ? rounds.map(String) : []
      })
    }
  }

  forceFlush(): Promise<void> {
    return Promise.resolve()
  }

  shutdown(): Promise<void> {
    return Promise.resolve()
  }

  // --- reading ------------------------------------------------------------------------------------

  /** Drop the oldest span; a trace that loses its root is no longer listed under its run. */
  private evict(): void {
    const oldest = this.ring[this.head]!
    this.ring[this.head] = undefined
    this.head = (this.head + 1) % this.capacity
    this.count--
    const spans = this.traces.get(oldest.traceId)
    if (spans !== undefined) {
      // Both are in end order, so the ring's oldest is its trace's first: dropped by moving the
      // trace's head, not searched for and spliced out — which cost a long trace's length (a
      // shift too, past V8's in-place trimming) on every span ended.
      if (spans.items[spans.head] === oldest) {
        spans.items[spans.head++] = undefined as never
        if (spans.head >= 1_024 && spans.head * 2 >= spans.items.length) {
          spans.items = spans.items.slice(spans.head)
          spans.head = 0
        }
      } else {
        const i = spans.items.indexOf(oldest, spans.head)
        if (i >= 0) spans.items.splice(i, 1)
      }
      if (spans.items.length === spans.head) this.traces.delete(oldest.traceId)
    }
    if (oldest.parent === undefined) {
      const run = oldest.attributes[ROUND_ATTRIBUTES.run]
      if (typeof run === "string") {
        const ofRun = this.runs.get(run)
        ofRun?.delete(oldest.traceId)
        if (ofRun !== undefined && ofRun.size === 0) this.runs.delete(run)
      }
    }
  }

  /** A trace's spans still held, in start order. */
  trace(traceId: string): TraceRecord | undefined {
    const spans = this.traces.get(traceId)
    if (spans === undefined) return undefined
    return { traceId, spans: spans.items.slice(spans.head).sort((a, b) => a.start - b.start).map(recordOf) }
  }

  /** The traced rounds of `run` still held, oldest first. */
  rounds(run: string): Array<TracedRound> {
    const ofRun = this.runs.get(run)
    if (ofRun === undefined) return []
    return [...ofRun.values()].map((root) => ({
      traceId: root.span.traceId,
      ts: root.ts,
      rounds: root.rounds,
      start: root.span.start,
      durationMicros: root.span.end - root.span.start,
      spans: sizeOf(this.traces.get(root.span.traceId))
    }))
  }

  /**
   * What `traces.get` answers for `run`: its traced rounds, and the trace of `round` — a round id
   * (`AAPL@1704067200000`), a timestamp (epoch ms or ISO-8601) or a trace id — or, without one,
   * the latest; `trace` is null when none matches.
   */
  query(run: string, round: string | undefined, description: string): RunTraces {
    const rounds = this.rounds(run)
    let chosen: TracedRound | undefined
    if (round === undefined) chosen = rounds[rounds.length - 1]
    else {
      const ts = timeOf(round)
      // `<symbol>@<time>`: that symbol's round at that time (`GLOBEX@2022-02-25`, as the CLI prints rounds).
      const at = round.lastIndexOf("@")
      const named = at > 0 ? timeOf(round.slice(at + 1)) : undefined
      const id = named === undefined ? undefined : `${round.slice(0, at)}@${named}`
      chosen = rounds.find((r) =>
        r.traceId === round || r.rounds.includes(round) || (id !== undefined && r.rounds.includes(id)) || (ts !== undefined && r.ts === ts)
      )
    }
    const trace = chosen === undefined ? undefined : this.trace(chosen.traceId)
    return {
      run,
      store: { description, capacity: this.capacity, spans: this.count },
      rounds,
      trace: trace ?? null
    }
  }
}
