/**
 * Swarm's tracer (src/telemetry/LightTracer.ts) ends spans as the OpenTelemetry SDK did: a failure
 * is an ERROR with an `exception` event, an interruption an OK saying so, a success an OK; parents,
 * kinds, attributes (URL secrets redacted, arrays of one type kept) and links reach the span store
 * and a span processor alike; a child of a remote parent that was not sampled is not recorded.
 */
import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Data, Effect, Fiber, Tracer } from "effect"
import * as Telemetry from "../../src/telemetry/Telemetry.js"

class Refused extends Data.TaggedError("Refused")<{ readonly reason: string }> {
  override get message() {
    return `refused: ${this.reason}`
  }
}

describe("Swarm's tracer", () => {
  it.live("statuses, the exception event, parents, kinds, attributes and links, in the store and for span processors", () =>
    Effect.gen(function*() {
      const exporter = new InMemorySpanExporter()
      const { spans, store } = yield* Effect.gen(function*() {
        const telemetry = yield* Telemetry.Telemetry
        yield* Effect.gen(function*() {
          yield* Effect.annotateCurrentSpan({ "url.full": "http://x/v1/runs/r/events?token=sk_secret&since=3", "swarm.rounds": ["A@1", "B@1"], mixed: [1, "a"], big: 12n })
          yield* Effect.withSpan(Effect.void, "ok child", { kind: "client" })
          yield* Effect.ignore(Effect.withSpan(Effect.fail(new Refused({ reason: "no" })), "failed child"))
          const sleeper = yield* Effect.fork(Effect.withSpan(Effect.never, "interrupted child"))
          yield* Effect.sleep("10 millis")
          yield* Fiber.interrupt(sleeper)
          const linked = yield* Effect.makeSpan("other root", { root: true })
          yield* Effect.withSpan(Effect.void, "linked child", { links: [{ _tag: "SpanLink", span: linked, attributes: { why: "because" } }] })
          linked.end(0n, { _tag: "Success", value: undefined } as never)
        }).pipe(Effect.withSpan("root", { kind: "server" }))
        // A remote parent that was not sampled (a traceparent with flags 00): nothing recorded beneath it.
        const remote = Tracer.externalSpan({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", sampled: false })
        yield* Effect.withSpan(Effect.void, "under an unsampled parent", { parent: remote })
        return { spans: exporter.getFinishedSpans(), store: telemetry.store }
      }).pipe(Effect.provide(Telemetry.make({ spanProcessors: [new SimpleSpanProcessor(exporter)] })))

      const byName = new Map(spans.map((s) => [s.name, s]))
      expect([...byName.keys()].sort()).toEqual(["failed child", "interrupted child", "linked child", "ok child", "other root", "root"])
      const root = byName.get("root")!
      expect([root.kind, root.status.code, root.parentSpanContext]).toEqual([1, 1, undefined])
      expect(root.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/)
      expect(root.spanContext().spanId).toMatch(/^[0-9a-f]{16}$/)
      expect(root.attributes).toMatchObject({
        "url.full": "http://x/v1/runs/r/events?token=REDACTED&since=3",
        "swarm.rounds": ["A@1", "B@1"],
        mixed: "[\n  1,\n  \"a\"\n]",
        big: "12"
      })
      const ok = byName.get("ok child")!
      expect([ok.kind, ok.status.code, ok.parentSpanContext?.spanId, ok.spanContext().traceId]).toEqual([2, 1, root.spanContext().spanId, root.spanContext().traceId])
      const failed = byName.get("failed child")!
      expect(failed.status).toEqual({ code: 2, message: "refused: no" })
      const exception = failed.events.find((e) => e.name === "exception")!
      expect(exception.attributes).toMatchObject({ "exception.type": "Refused", "exception.message": "refused: no" })
      expect(String(exception.attributes!["exception.stacktrace"])).toContain("refused: no")
      const interrupted = byName.get("interrupted child")!
      expect([interrupted.status.code, interrupted.attributes["status.interrupted"], interrupted.attributes["span.label"]]).toEqual([1, true, "⚠︎ Interrupted"])
      const linked = byName.get("linked child")!
      expect(linked.links.map((l) => [l.context.spanId, l.attributes])).toEqual([[byName.get("other root")!.spanContext().spanId, { why: "because" }]])

      // The store has what the processor had, as `swarm trace` reads it.
      const trace = store.trace(root.spanContext().traceId)!
      expect(trace.spans.map((s) => [s.name, s.status, s.error ?? null, s.parentSpanId ?? null]).sort()).toEqual([
        ["failed child", "error", "refused: no", root.spanContext().spanId],
        ["interrupted child", "ok", null, root.spanContext().spanId],
        ["linked child", "ok", null, root.spanContext().spanId],
        ["ok child", "ok", null, root.spanContext().spanId],
        ["root", "ok", null, null]
      ])
      const stored = trace.spans.find((s) => s.name === "root")!
      expect(stored.kind).toBe("server")
      expect(stored.end).toBeGreaterThanOrEqual(stored.start)
      expect(stored.attributes["url.full"]).toBe("http://x/v1/runs/r/events?token=REDACTED&since=3")
      expect(store.trace("0af7651916cd43dd8448eb211c80319c")).toBeUndefined()
    }))
})
