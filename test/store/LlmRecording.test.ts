/**
 * A stored run with LLM analysts: its model calls are recorded events; `replay` answers every one
 * from the recording and calls no model (byte for byte the same run); `resume` after a crash
 * answers the recorded calls from the recording and asks the model only for the rest. On every
 * back-end.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Schema, Stream } from "effect"
import type { AgentId } from "../../schemas/Ids.js"
import type { LlmCall } from "../../schemas/Llm.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import type { ChatRequest, LanguageModel } from "../../src/llm/LanguageModel.js"
import * as LlmRuntime from "../../src/llm/LlmRuntime.js"
import * as DataSource from "../../src/market/DataSource.js"
import * as Feed from "../../src/market/Feed.js"
import * as Chats from "../../src/store/Chats.js"
import * as Runs from "../../src/store/Runs.js"
import * as RecordedLlmCalls from "../../src/store/RecordedLlmCalls.js"
import { PromptReader } from "../../src/llm/RunPrompts.js"
import { sha256Hex } from "../../src/internal/sha256.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { crashAt } from "./fixtures/checks.js"
import { marketConfig, symbolsOf } from "./fixtures/workload.js"

/** A model that is not the offline analyst: it answers by the call's ordinal, so only a recording can repeat it. */
const counting = () => {
  const stats = { calls: 0 }
  const model: LanguageModel["Type"] = {
    backend: { kind: "ollama", description: "scripted ollama" },
    chat: (request: ChatRequest) =>
      Effect.sync(() => {
        const n = ++stats.calls
        const researcher = request.messages[0]!.content.includes("researcher")
        return {
          content: researcher
            ? JSON.stringify({ argument: `point ${n}`, conviction: (n % 7) / 7 })
            : JSON.stringify({ direction: n % 4 === 0 ? "short" : "long", confidence: 0.8, rationale: `call ${n}` }),
          toolCalls: [],
          tokensIn: 40,
          tokensOut: 8
        }
      }),
    chatStream: () => Stream.die("not used")
  }
  return { model, stats }
}

const options = (bars: number, llm: Record<string, unknown> = {}): StoredRun.Options => {
  const config = marketConfig(2, bars)
  return {
    strategy: Schema.decodeUnknownSync(Strategy)({
      name: "llm recording",
      symbols: symbolsOf(2),
      allowShort: true,
      agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "llm_debate" }],
      sizing: { mode: "percent_of_equity", value: 10 },
      llm: { cacheTtlSeconds: 0, ...llm }
    }),
    feed: Feed.synthetic(config),
    dataSource: DataSource.synthetic(config),
    checkpointEvery: 16
  }
}

const collect = (events: Array<RunEvent>) => (event: RunEvent) => void events.push(event)

for (const backend of backends) {
  const live = counting()
  layer(Layer.merge(backend.store, LlmRuntime.layerWith(live.model)), { timeout: startTimeout, excludeTestServices: true })(
    `LLM calls recorded (${backend.name})`,
    (it) => {
      describe("replay and resume", () => {
        it.effect("replay answers every call from the recording: no model call, the same run", () =>
          Effect.gen(function*() {
            const events: Array<RunEvent> = []
            const before = live.stats.calls
            const { result, run } = yield* StoredRun.backtest({ ...options(90), onEvent: collect(events) })
            expect(result.status).toBe("completed")
            const calls = events.filter((e): e is Extract<RunEvent, { _tag: "LlmCalled" }> => e._tag === "LlmCalled")
            // Two symbols from bar 34: bull, bear and judge each round.
            expect(calls.length).toBe(2 * (90 - 33) * 3)
            expect(live.stats.calls - before).toBe(calls.length)
            expect(events[0]).toMatchObject({ _tag: "RunStarted", llm: { backend: "ollama", model: "llama3.2:3b", description: "scripted ollama" } })
            expect(result.counts.orders).toBeGreaterThan(0)

            // Every piece of reasoning is in the reasoning table too, with its role and context.
            const sql = yield* SqlClient.SqlClient
            const reasoning = events.filter((e): e is Extract<RunEvent, { _tag: "ReasoningRecorded" }> => e._tag === "ReasoningRecorded")
            const rows = yield* sql<{ seq: number; kind: string; content: string; context: { role: string; context: unknown } }>`
              select seq, kind, content, context from reasoning where run_id = ${run} order by seq`
            expect(rows.map((row) => [Number(row.seq), row.kind, row.content, row.context.role])).toEqual(
              reasoning.map((e) => [e.seq, e.kind, e.text, e.role])
            )
            expect(rows.find((row) => row.kind === "decision")!.context.context).toMatchObject({ symbol: expect.any(String), bars: expect.any(Array) })

            const during = live.stats.calls
            const replayed = yield* StoredRun.replay(run)
            expect(live.stats.calls).toBe(during)
            expect(replayed.checksum).toBe(result.checksum)
            expect(replayed.result!.counts).toEqual(result.counts)
          }), 60_000)

        it.effect("resume after a crash asks the model only for what the recording lacks", () =>
          Effect.gen(function*() {
            const events: Array<RunEvent> = []
            const original = yield* StoredRun.backtest({ ...options(80), onEvent: collect(events) })
            const calls = events.filter((e): e is Extract<RunEvent, { _tag: "LlmCalled" }> => e._tag === "LlmCalled")
            // Crash halfway through the calls: what came after is gone.
            const at = calls[Math.floor(calls.length / 2)]!.seq
            yield* crashAt(original.run, at)
            const kept = calls.filter((c) => c.seq <= at).map((c): LlmCall => c.call)
            const before = live.stats.calls
            const resumed = yield* StoredRun.resume(original.run)
            expect(resumed.result.status).toBe("completed")
            // The calls after the crash are made again, live (the model gives other answers now: a new run from there).
            expect(live.stats.calls - before).toBe(calls.length - kept.length)
            const replayed = yield* StoredRun.replay(original.run)
            expect(replayed.checksum).toBe(resumed.result.checksum)
            // As stored: each prompt part's text once in the whole run, the calls made after the resume
            // naming the parts recorded before the crash by their hash; every prompt reads back whole.
            const stored = yield* RecordedLlmCalls.read(original.run)
            expect(stored.started?.prompts).toBe("parts")
            const bodied = (p: { readonly text?: string; readonly content?: string }) => p.text !== undefined || p.content !== undefined
            const texts = stored.calls.flatMap((c) => (c.promptParts ?? []).flatMap((p) => (bodied(p) ? [p.hash] : [])))
            expect(new Set(texts).size).toBe(texts.length)
            const after = stored.calls.filter((c) => !kept.some((k) => k.round === c.round && k.step === c.step))
            expect(after.length).toBe(calls.length - kept.length)
            expect(after.some((c) => c.promptParts!.some((p) => !bodied(p) && kept.some((k) => k.promptParts!.some((q) => q.hash === p.hash && bodied(q)))))).toBe(true)
            const reader = new PromptReader()
            for (const call of stored.calls) expect(sha256Hex(reader.read(call) ?? "")).toBe(call.promptHash)
          }), 60_000)

        it.effect("a resumed run's budget is charged what its chat spent meanwhile: the two together stay within it", () =>
          Effect.gen(function*() {
            const limit = 40_000
            const events: Array<RunEvent> = []
            const original = yield* StoredRun.backtest({ ...options(80, { budget: { tokens: limit } }), onEvent: collect(events) })
            // Alone, the run's calls fit with room to spare.
            expect(events.filter((e) => e._tag === "LlmBudgetSpent")).toEqual([])
            const calls = events.filter((e): e is Extract<RunEvent, { _tag: "LlmCalled" }> => e._tag === "LlmCalled")
            yield* crashAt(original.run, calls[Math.floor(calls.length / 2)]!.seq)

            // While no process ran it, its chat spent 30,000 tokens (the server restarted before any
            // question reached the resumed run: nothing but the recording says so).
            const record = yield* Runs.get(original.run)
            const session = yield* Chats.session(record.id, record.owner)
            const chat = 30_000
            yield* Chats.recordCall(session.id, 1, {
              agent: "system" as AgentId,
              step: "answer",
              model: "llama3.2:3b",
              backend: "ollama",
              promptHash: "0".repeat(64),
              tokensIn: chat - 1_000,
              tokensOut: 1_000,
              latencyMillis: 10,
              cache: "off",
              attempts: 1,
              outcome: "ok"
            })

            const resumedEvents: Array<RunEvent> = []
            const resumed = yield* StoredRun.resume(original.run, { onEvent: collect(resumedEvents) })
            expect(resumed.result.status).toBe("completed")
            const spent = resumedEvents.reduce((sum, e) => (e._tag === "LlmCalled" ? sum + e.call.tokensIn + e.call.tokensOut : sum), 0)
            expect(spent + chat).toBeLessThanOrEqual(limit)
            expect(resumedEvents.filter((e) => e._tag === "LlmBudgetSpent")).toHaveLength(1)
          }), 60_000)

        it.effect("a resumed run whose budget had run out refuses from the same point: it makes no call the run would not have", () =>
          Effect.gen(function*() {
            // Spent part way: refused for good once what was charged (48 tokens a call) leaves no room
            // for a call's reservation (its prompt's bytes and maxTokensOut); before that a call waits
            // while others are in flight. Many a smaller call later would fit in what is left.
            const events: Array<RunEvent> = []
            const original = yield* StoredRun.backtest({ ...options(80, { budget: { tokens: 4_500 } }), onEvent: collect(events) })
            const spent = events.find((e) => e._tag === "LlmBudgetSpent")
            expect(spent).toBeDefined()
            const outcomes = (from: ReadonlyArray<RunEvent>, keep: (e: RunEvent) => boolean) =>
              from.flatMap((e) => (e._tag === "LlmCalled" && keep(e) ? [[e.call.agent, e.call.round, e.call.step, e.call.outcome]] : []))
            // Uninterrupted, every call of a later slice is refused (of its own slice, those reserved first were made).
            const later = outcomes(events, (e) => e.at > spent!.at)
            expect(later.length).toBeGreaterThan(4)
            expect(later.filter((c) => c[3] !== "budget")).toEqual([])

            // Crashed a few slices after it: the resume re-executes the refusal from the recording.
            const cut = events.filter((e) => e._tag === "LlmCalled" && e.at > spent!.at)[2]!.seq
            yield* crashAt(original.run, cut)
            const before = live.stats.calls
            const resumedEvents: Array<RunEvent> = []
            const resumed = yield* StoredRun.resume(original.run, { onEvent: collect(resumedEvents) })
            expect(resumed.result.status).toBe("completed")
            // No model call: the calls after the recorded part are refused, as the run's were.
            expect(live.stats.calls).toBe(before)
            expect(outcomes(resumedEvents, (e) => e.seq > cut)).toEqual(outcomes(events, (e) => e.seq > cut))
            expect(resumed.result.llm?.budgetSpent).toBe(original.result.llm?.budgetSpent)
          }), 60_000)
      })
    }
  )
}
