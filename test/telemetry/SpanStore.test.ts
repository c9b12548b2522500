/** The in-process span store's ring: the last `capacity` spans, each trace's still held in order, however long a trace grows. */
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { describe, expect, it } from "@effect/vitest"
import { SpanStore } from "../../src/telemetry/SpanStore.js"

const span = (traceId: string, i: number): ReadableSpan =>
  ({
    spanContext: () => ({ traceId, spanId: i.toString(16).padStart(16, "0"), traceFlags: 1 }),
    parentSpanContext: { traceId, spanId: "f".repeat(16), traceFlags: 1 },
    name: `span ${i}`,
    kind: 0,
    startTime: [1, i],
    endTime: [1, i + 1],
    status: { code: 0 },
    attributes: {},
    events: []
  }) as unknown as ReadableSpan

const names = (store: SpanStore, traceId: string) => store.trace(traceId)?.spans.map((s) => s.name)

describe("the span store", () => {
  it("keeps the last spans of a trace far longer than the ring, in order, as the ring moves on", () => {
    const store = new SpanStore(3_000)
    // One trace of 10,000 spans with another's between: the long one is cut from its start.
    for (let i = 0; i < 10_000; i++) {
      store.onEnd(span("long", i))
      if (i % 10 === 0) store.onEnd(span("short", 100_000 + i))
    }
    expect(store.size).toBe(3_000)
    const long = names(store, "long")!
    const short = names(store, "short")!
    expect(long.length + short.length).toBe(3_000)
    expect(long).toEqual(Array.from({ length: long.length }, (_, k) => `span ${10_000 - long.length + k}`))
    expect(short.at(-1)).toBe("span 109990")
    // The short trace is wholly evicted once the long one fills the ring: it is gone, not empty.
    for (let i = 10_000; i < 13_000; i++) store.onEnd(span("long", i))
    expect(store.trace("short")).toBeUndefined()
    expect(names(store, "long")).toEqual(Array.from({ length: 3_000 }, (_, k) => `span ${10_000 + k}`))
  })
})
