/**
 * The in-process span store: the last `capacity` finished spans of this process (a ring — the
 * oldest go first). It is an OpenTelemetry `SpanProcessor`, so it sees what an exporter sees;
 * `swarm trace` reads it through `traces.get`: a trace's spans, and the traced rounds of each run,
 * found by the round's root span (the coordinator's, which names its run, timestamp and rounds).
 *
 * Keeping a span is one write into the ring: the span itself (Swarm's tracer gives its spans as
 * they are, LightTracer.ts), not a copy, and no index. A traced paper run ends a dozen spans a
 * round on the path from a tick to its order, and a span's attributes converted, a record made and
 * an index by trace and by run kept up (and taken down as the ring moved on) cost more than the
 * rest of the span; the reads (`swarm trace`, the trace RPCs) are rare, so they scan the ring and
 * make the records then — a few milliseconds for a full store.
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

/** A finished span as the store keeps it: what the ring's scans read, and its record, made when read. */
export interface Stored {
  readonly traceId: string
  /** Undefined for a trace's root. */
  readonly parentSpanId: string | undefined
  /** Epoch microseconds. */
  readonly startMicros: number
  readonly endMicros: number
  /** One attribute, as `record` would give it (a root's run, timestamp and rounds). */
  attributeOf(key: string): unknown
  /** The span as `traces.get` answers it. */
  record(): SpanRecord
}

const micros = (time: HrTime): number => time[0] * 1e6 + time[1] / 1e3

const KINDS = ["internal", "server", "client", "producer", "consumer"] as const
const STATUSES = ["unset", "ok", "error"] as const

/** A kind or a status code as `traces.get` names it. */
export const kindName = (kind: number): SpanRecord["kind"] => KINDS[kind] ?? "internal"
export const statusName = (code: number): SpanRecord["status"] => STATUSES[code] ?? "unset"

const value = (v: unknown): AttributeValue =>
  typeof v === "string" || typeof v === "number" || typeof v === "boolean"
    ? v
    : Array.isArray(v)
    ? v.map((x) => (typeof x === "string" || typeof x === "number" || typeof x === "boolean" ? x : null))
    : String(v)

/** Attributes as `traces.get` answers them: undefined ones left out, arrays of scalars, the rest as text. */
export const attributesOf = (attributes: Readonly<Record<string, unknown>> | undefined): Attributes => {
  const out: Record<string, AttributeValue> = {}
  if (attributes !== undefined) for (const key in attributes) if (attributes[key] !== undefined) out[key] = value(attributes[key])
  return out
}

/** A span of the OpenTelemetry SDK (or any `ReadableSpan`) as the store keeps it. */
class FromReadable implements Stored {
  readonly traceId: string
  readonly parentSpanId: string | undefined
  readonly startMicros: number
  readonly endMicros: number
  constructor(private readonly span: ReadableSpan) {
    this.traceId = span.spanContext().traceId
    this.parentSpanId = span.parentSpanContext?.spanId
    this.startMicros = micros(span.startTime)
    this.endMicros = micros(span.endTime)
  }
  attributeOf(key: string): unknown {
    return this.span.attributes[key]
  }
  record(): SpanRecord {
    const s = this.span
    return {
      traceId: this.traceId,
      spanId: s.spanContext().spanId,
      ...(this.parentSpanId === undefined ? {} : { parentSpanId: this.parentSpanId }),
      name: s.name,
      kind: kindName(s.kind),
      start: this.startMicros,
      end: this.endMicros,
      status: statusName(s.status.code),
      ...(s.status.code === 2 && s.status.message !== undefined ? { error: s.status.message } : {}),
      attributes: attributesOf(s.attributes),
      events: s.events.map((e: TimedEvent) => ({ name: e.name, at: micros(e.time), attributes: attributesOf(e.attributes) }))
    }
  }
}

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
  /** Where the next span goes: once the ring is full, the oldest span's place. */
  private next = 0
  private count = 0

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
    this.add(new FromReadable(span))
  }

  /** Keep a finished span (what `onEnd` keeps of an OpenTelemetry span; Swarm's own tracer's spans as they are). */
  add(stored: Stored): void {
    this.ring[this.next] = stored
    this.next = this.next + 1 === this.capacity ? 0 : this.next + 1
    if (this.count < this.capacity) this.count++
  }

  forceFlush(): Promise<void> {
    return Promise.resolve()
  }

  shutdown(): Promise<void> {
    return Promise.resolve()
  }

  // --- reading ------------------------------------------------------------------------------------

  /** Each span held, oldest (first ended) first. */
  private each(f: (stored: Stored) => void): void {
    const first = this.count < this.capacity ? 0 : this.next
    for (let i = 0; i < this.count; i++) {
      const at = first + i
      f(this.ring[at < this.capacity ? at : at - this.capacity]!)
    }
  }

  /** A trace's spans still held, in start order. */
  trace(traceId: string): TraceRecord | undefined {
    const spans: Array<Stored> = []
    this.each((stored) => {
      if (stored.traceId === traceId) spans.push(stored)
    })
    if (spans.length === 0) return undefined
    // Stable: spans that started together stay in the order they ended.
    return { traceId, spans: spans.sort((a, b) => a.startMicros - b.startMicros).map((s) => s.record()) }
  }

  /**
   * The traced rounds of `run` still held, oldest first (in the order their roots ended): a trace
   * whose root the ring has let go is no longer listed.
   */
  rounds(run: string): Array<TracedRound> {
    const roots = new Map<string, Stored>()
    this.each((stored) => {
      if (stored.parentSpanId === undefined && stored.attributeOf(ROUND_ATTRIBUTES.run) === run) roots.set(stored.traceId, stored)
    })
    if (roots.size === 0) return []
    const spans = new Map<string, number>()
    this.each((stored) => {
      if (roots.has(stored.traceId)) spans.set(stored.traceId, (spans.get(stored.traceId) ?? 0) + 1)
    })
    return [...roots.values()].map((root) => {
      const rounds = root.attributeOf(ROUND_ATTRIBUTES.rounds)
      return {
        traceId: root.traceId,
        ts: Number(root.attributeOf(ROUND_ATTRIBUTES.ts) ?? 0),
        rounds: Array.isArray(rounds) ? rounds.map(String) : [],
        start: root.startMicros,
        durationMicros: root.endMicros - root.startMicros,
        spans: spans.get(root.traceId) ?? 0
      }
    })
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
