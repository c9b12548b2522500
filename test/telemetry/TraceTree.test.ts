import { describe, expect, it } from "vitest"
import type { SpanRecord } from "../../schemas/Trace.js"
import * as TraceTree from "../../src/telemetry/TraceTree.js"

const span = (spanId: string, name: string, attributes: SpanRecord["attributes"], parentSpanId?: string): SpanRecord => ({
  traceId: "t1",
  spanId,
  ...(parentSpanId === undefined ? {} : { parentSpanId }),
  name,
  kind: "internal",
  start: 1_000,
  end: 2_000,
  status: "ok",
  attributes,
  events: []
})

describe("TraceTree.render", () => {
  it("a model call's line says which step of its agent it is: a debate's bull, bear and judge told apart", () => {
    const chat = (id: string, step: string) =>
      span(id, "chat qwen2.5:7b", {
        "gen_ai.system": "ollama",
        "gen_ai.request.model": "qwen2.5:7b",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 15,
        "swarm.llm.step": step
      }, "root")
    const text = TraceTree.render({
      traceId: "t1",
      spans: [span("root", "Actor.receive RequestOpinions", { "actor.name": "llm_debate" }), chat("a", "bull-1"), chat("b", "bear-1"), chat("c", "judge")]
    })
    const lines = text.split("\n").filter((line) => line.includes("chat qwen2.5:7b"))
    expect(lines.map((line) => /ollama:qwen2\.5:7b {2}(\S+) {2}120 in \/ 15 out tokens/.exec(line)?.[1])).toEqual(["bull-1", "bear-1", "judge"])
  })
})
