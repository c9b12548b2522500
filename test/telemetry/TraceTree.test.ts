import { describe, expect, it } from "vitest"
import type { SpanRecord } from "../../schemas/Trace.js"
import * as TraceCommand from "../../src/cli/TraceCommand.js"
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

describe("TraceTree.render, a stack trace", () => {
  const stack = "Error: ledger refused the booking\n    at Ledger.apply (src/trading/Ledger.ts:10:5)\n    at Actor.receive (src/actor/Actor.ts:20:7)\n"
  const failed: SpanRecord = {
    ...span("root", "Actor.receive Book", { "actor.name": "ledger" }),
    status: "error",
    error: stack,
    events: [{
      name: "exception",
      at: 1_900,
      attributes: { "exception.type": "Error", "exception.stacktrace": stack, "exception.message": "ledger refused the booking" }
    }]
  }
  const trace = (spans: ReadonlyArray<SpanRecord>) => ({ traceId: "t1", spans })

  it("is indented under its event, within the tree's rails, its one-line attributes on the event's line", () => {
    for (const events of ["checks", "all"] as const) {
      const lines = TraceTree.render(trace([failed, span("kid", "Actor.receive Snapshot", { "actor.name": "auditor" }, "root")]), { events }).split("\n")
      expect(lines.slice(1, 4)).toEqual([
        "│  · exception: exception.type=Error exception.message=ledger refused the booking exception.stacktrace=Error: ledger refused the booking",
        "│          at Ledger.apply (src/trading/Ledger.ts:10:5)",
        "│          at Actor.receive (src/actor/Actor.ts:20:7)"
      ])
      expect(lines[4]).toMatch(/^└─ Actor\.receive Snapshot {2}auditor +\+0\.00 ms {2}1\.00 ms$/)
    }
    // A span with no children: no rail, the same indentation.
    const alone = TraceTree.render(trace([failed]), { events: "all" }).split("\n")
    expect(alone.slice(1, 4)).toEqual([
      "   · exception: exception.type=Error exception.message=ledger refused the booking exception.stacktrace=Error: ledger refused the booking",
      "           at Ledger.apply (src/trading/Ledger.ts:10:5)",
      "           at Actor.receive (src/actor/Actor.ts:20:7)"
    ])
    expect(alone[4]).toBe("")
    // As `swarm trace --events` prints it.
    const printed = TraceCommand.view({
      run: "run_1",
      store: { description: "in-process", capacity: 50_000, spans: 1 },
      rounds: [{ traceId: "t1", ts: 0, rounds: ["AAA@0"], start: 1_000, durationMicros: 1_000, spans: 1 }],
      trace: trace([failed])
    }, undefined, "all")
    expect(printed).toContain(`\n${alone.slice(1, 4).join("\n")}\n`)
  })
})

describe("swarm trace's view: rounds as the command line prints them", () => {
  const at = Date.UTC(2022, 1, 25) // GLOBEX@1645747200000, a daily bar
  const intraday = Date.UTC(2022, 1, 25, 14, 30)
  const root: SpanRecord = {
    ...span("root", "Coordinator.round", {
      "swarm.run": "run_1",
      "swarm.time": new Date(at).toISOString(),
      "swarm.rounds": [`ACME@${at}`, `GLOBEX@${at}`]
    }),
    end: 3_000
  }
  const opinions: SpanRecord = {
    ...span("op", "Actor.receive RequestOpinions", { "actor.name": "sma_crossover", "swarm.opinions": 1 }, "root"),
    events: [{ name: "opinion", at: 1_500, attributes: { "swarm.round": `GLOBEX@${at}`, "opinion.direction": "long", "opinion.confidence": 0.8 } }]
  }
  const fill: SpanRecord = {
    ...span("fill", "ExecutionDesk.fill", { "actor.name": "desk", "swarm.round": `GLOBEX@${at}`, "swarm.ts": at }, "root"),
    events: [{ name: "order filled", at: 1_800, attributes: { "swarm.round": `GLOBEX@${at}`, "fill.price": "101.5" } }]
  }
  const answer = {
    run: "run_1",
    store: { description: "in-process", capacity: 50_000, spans: 3 },
    rounds: [
      { traceId: "t0", ts: intraday, rounds: [`ACME@${intraday}`], start: 500, durationMicros: 1_000, spans: 2 },
      { traceId: "t1", ts: at, rounds: [`ACME@${at}`, `GLOBEX@${at}`], start: 1_000, durationMicros: 2_000, spans: 3 }
    ],
    trace: { traceId: "t1", spans: [root, opinions, fill] }
  }

  it("in the listing, the tree's lines, its spans' and events' round attributes; the ids nowhere", () => {
    const printed = TraceCommand.view(answer, undefined, "all")
    const out = printed.split("\n")
    expect(out.slice(1, 3)).toEqual([
      "2022-02-25 14:30:00Z  ACME@2022-02-25 14:30:00Z  2 spans  1.00 ms  trace t0",
      "2022-02-25  ACME@2022-02-25 GLOBEX@2022-02-25  3 spans  2.00 ms  trace t1"
    ])
    expect(out[3]).toBe("")
    expect(out[4]).toMatch(/^Coordinator\.round {2}run_1 {2}2022-02-25 {2}ACME@2022-02-25 GLOBEX@2022-02-25 +\+0\.00 ms {2}2\.00 ms$/)
    expect(out).toContainEqual(expect.stringMatching(/^├─ Actor\.receive RequestOpinions {2}sma_crossover {2}1 opinion +\+/))
    expect(out).toContainEqual("│     · opinion GLOBEX@2022-02-25: long 0.80")
    expect(out).toContainEqual(expect.stringMatching(/^└─ ExecutionDesk\.fill {2}desk {2}GLOBEX@2022-02-25 +\+/))
    expect(out).toContainEqual("      · order filled: swarm.round=GLOBEX@2022-02-25 fill.price=101.5")
    expect(printed).not.toMatch(/@\d{13}/)
  })

  it("a round that is no id of a bar's time is printed as it is", () => {
    const odd = { ...answer, rounds: [{ ...answer.rounds[0]!, rounds: ["manual"] }, answer.rounds[1]!] }
    expect(TraceCommand.view(odd, undefined, "checks").split("\n")[1]).toBe("2022-02-25 14:30:00Z  manual  2 spans  1.00 ms  trace t0")
  })
})
