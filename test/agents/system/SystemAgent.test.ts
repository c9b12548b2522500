/**
 * The system agent against the store, with a fake Ollama (test/llm/FakeOllama.ts) or the offline
 * backend: tool calling (the call runs the tool with the model's arguments, its result goes back to
 * the model, the final answer streams token by token and is recorded), hostile tool arguments
 * answered as errors, the tool rounds capped, a model failing or timing out mid-answer (a `Failed`
 * chunk, recorded), a crash (the agent restarts and answers the next), the offline answers from the
 * tools' sentences, order within a run's chat and its watchers, a full queue refused. On every
 * back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, Either, Exit, Fiber, Layer, Option, Schema, Scope, Stream } from "effect"
import type { ReceivedChat } from "../../llm/FakeOllama.js"
import * as FakeOllama from "../../llm/FakeOllama.js"
import type * as DecisionExplanation from "../../../agents/system/DecisionExplanation.js"
import { REASONING_TEXT } from "../../../agents/system/DecisionExplanation.js"
import * as AnalystScores from "../../../agents/system/AnalystScores.js"
import type { AnalystScoresView } from "../../../agents/system/AnalystScores.js"
import { FLAT_BAND } from "../../../agents/Coordinator.js"
import type { RiskChecksView } from "../../../agents/system/RiskChecks.js"
import type { RunStatusView } from "../../../agents/system/RunStatus.js"
import * as SystemAgent from "../../../agents/system/SystemAgent.js"
import * as Tools from "../../../agents/system/Tools.js"
import * as TradeAnalysis from "../../../agents/system/TradeAnalysis.js"
import { toolNames } from "../../../agents/system/ToolSpecs.js"
import type { ChatChunk } from "../../../schemas/Chat.js"
import type { AgentId, RunId } from "../../../schemas/Ids.js"
import { defaultLlmConfig, type LlmCall, LlmUnavailable, type Message } from "../../../schemas/Llm.js"
import type { Decision } from "../../../schemas/Decision.js"
import type { Verdict } from "../../../schemas/Verdict.js"
import { agentName, Strategy } from "../../../schemas/Strategy.js"
import { isCorrect } from "../../../src/trading/Consensus.js"
import type { Trade } from "../../../schemas/Trade.js"
import { sha256Hex } from "../../../src/internal/sha256.js"
import type { ChatRequest, LanguageModel } from "../../../src/llm/LanguageModel.js"
import { Budget } from "../../../src/llm/Budget.js"
import * as LlmRuntime from "../../../src/llm/LlmRuntime.js"
import * as Offline from "../../../src/llm/Offline.js"
import * as Ollama from "../../../src/llm/Ollama.js"
import { chatPromptOfParts, chatRestJson, partsOf } from "../../../src/llm/RunPrompts.js"
import * as Chats from "../../../src/store/Chats.js"
import * as Runs from "../../../src/store/Runs.js"
import * as StoredRun from "../../../src/store/StoredRun.js"
import { eventually } from "../../edge/fixtures.js"
import { backends, startTimeout } from "../../store/fixtures/backends.js"
import { stored } from "../../store/fixtures/workload.js"
import { seedRun as seedRunOf, TRADES } from "./fixtures.js"

// ---------------------------------------------------------------------------------------------
// A run to chat about

/** A run of `owner` whose closed trades are `trades` (fixtures.ts `seedRun`). */
const seedRun = (owner: string, trades: ReadonlyArray<Trade> = TRADES, llm?: Record<string, unknown>) =>
  seedRunOf(owner, { label: "chat test", trades, ...(llm === undefined ? {} : { llm }) })

const users = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const name of ["alice", "bob"]) yield* sql`insert into users (id, name, role) values (${name}, ${name}, 'user') on conflict do nothing`
}).pipe(Effect.orDie))

// ---------------------------------------------------------------------------------------------
// Helpers

/** A system agent for the test's scope over the context's database, answering with `model`. */
const agentWith = (model: LanguageModel["Type"], options: SystemAgent.Options = {}) =>
  SystemAgent.make(options).pipe(Effect.provide(LlmRuntime.layerWith(model)))

const ollamaAgent = (fake: FakeOllama.FakeOllama, options: SystemAgent.Options = {}) => agentWith(Ollama.make({ host: fake.url }), options)

const collect = <E>(stream: Stream.Stream<ChatChunk, E>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

const textOf = (chunks: ReadonlyArray<ChatChunk>) => chunks.flatMap((c) => (c._tag === "Token" ? [c.text] : [])).join("")

const ofTag = <T extends ChatChunk["_tag"]>(chunks: ReadonlyArray<ChatChunk>, tag: T) =>
  chunks.filter((c): c is Extract<ChatChunk, { _tag: T }> => c._tag === tag)

const historyOf = (run: RunId) =>
  Effect.gen(function*() {
    const session = yield* Chats.find(run)
    if (session._tag === "None") return { messages: [], calls: [] }
    return { messages: yield* Chats.history(session.value.id), calls: yield* Chats.calls(session.value.id) }
  }).pipe(Effect.orDie)

const hasToolResult = (request: ReceivedChat) => (request.messages ?? []).some((m) => m.role === "tool")

/** The tool messages the model was sent. */
const toolMessages = (request: ReceivedChat) =>
  (request.messages ?? []).filter((m) => m.role === "tool") as Array<{ role: string; content: string; tool_name?: string }>

for (const backend of backends) {
  layer(Layer.merge(backend.store, users.pipe(Layer.provide(backend.store))), { timeout: startTimeout, excludeTestServices: true })(
    `system agent (${backend.name})`,
    (it) => {
      it.effect("a stored trade that does not decode is a CorruptRecord whose reason is one line naming the field", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const sql = yield* SqlClient.SqlClient
          const body = JSON.stringify({ _tag: "TradeClosed", run: run.id, seq: 2, at: TRADES[1]!.exitTs, trade: { ...TRADES[1]!, quantity: "many" } })
          yield* sql`update run_events set body = ${body} where run_id = ${run.id} and seq = 2`
          const error = yield* Effect.flip(Tools.trades(run.id))
          expect(error).toMatchObject({ _tag: "CorruptRecord", table: "run_events", key: `${run.id}#2`, column: "body" })
          expect(error._tag === "CorruptRecord" && error.reason).toMatch(/^trade\.quantity: /)
          expect(error._tag === "CorruptRecord" && error.reason).not.toContain("\n")
        }))

      it.scoped("a tool call runs the tool with the model's arguments and its result goes back; the answer streams and is recorded", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const final = "MSFT lost 300.00 over 6 trades, while AAPL made 600.00."
          const fake = yield* FakeOllama.start((request) =>
            hasToolResult(request)
              ? { chunks: FakeOllama.pieces(final), tokensIn: 900, tokensOut: 14 }
              : { content: "", toolCalls: [{ name: "analyse_trades", arguments: { symbol: "msft" } }], tokensIn: 700, tokensOut: 20 }
          )
          const agent = yield* ollamaAgent(fake)
          const chunks = yield* collect(agent.ask(run.id, "Why did MSFT lose money?"))

          expect(chunks.map((c) => c._tag)).toEqual(["Asked", "ToolUsed", ...FakeOllama.pieces(final).map(() => "Token"), "Done"])
          expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i))
          const question = chunks[0]!.question
          expect(chunks.every((c) => c.question === question)).toBe(true)
          const [used] = ofTag(chunks, "ToolUsed")
          expect(used).toMatchObject({ tool: "analyse_trades", ok: true, arguments: { symbol: "msft" } })
          expect(used!.summary).toBe("6 trades: 0 won, 6 lost, total P&L -300.00")
          expect(textOf(chunks)).toBe(final)
          const done = ofTag(chunks, "Done")[0]!
          expect(done).toMatchObject({ backend: "ollama", model: "llama3.2:3b", tokensIn: 1_600, tokensOut: 34 })

          // What the model was sent: the tools, who it is and the run, then the tool's result.
          expect(fake.requests).toHaveLength(2)
          const first = fake.requests[0]!
          expect(first.tools?.map((t) => t.function.name)).toEqual(toolNames)
          expect(first.messages?.[0]?.role).toBe("system")
          expect(first.messages?.[0]?.content).toContain(`${run.name}#${run.number}`)
          expect(first.messages?.at(-1)).toEqual({ role: "user", content: "Why did MSFT lose money?" })
          const second = fake.requests[1]!
          const assistant = second.messages!.find((m) => m.role === "assistant")!
          expect(assistant.tool_calls).toEqual([{ function: { name: "analyse_trades", arguments: { symbol: "msft" } } }])
          const [result] = toolMessages(second)
          expect(result!.tool_name).toBe("analyse_trades")
          const analysis = JSON.parse(result!.content) as TradeAnalysis.TradeAnalysis
          expect(analysis.overall.trades).toBe(6)
          expect(analysis.overall.totalPnl).toBe(-300_000_000)
          expect(analysis.bySymbol.map((b) => b.key)).toEqual(["MSFT"])

          // Recorded: the question, the tool turn, the tool's result, the answer — and both model calls.
          const { calls, messages } = yield* historyOf(run.id)
          expect(messages.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
          expect(messages[0]!.seq).toBe(question)
          expect(messages[1]!.toolCalls).toEqual([{ name: "analyse_trades", arguments: { symbol: "msft" } }])
          expect(messages[2]!.content).toBe(result!.content)
          expect(messages[3]).toMatchObject({ seq: done.message, content: final, backend: "ollama", error: null, tokensIn: 1_600, tokensOut: 34 })
          expect(calls.map((c) => [c.call.agent, c.call.round, c.call.outcome, c.question])).toEqual([
            ["system", undefined, "ok", question],
            ["system", undefined, "ok", question]
          ])
          expect(calls[1]!.call.answer).toBe(final)
          expect(calls[0]!.call.tokensIn).toBe(700)

          // The next question carries the chat so far.
          fake.setHandler(() => ({ content: "Yes." }))
          yield* collect(agent.ask(run.id, "Is that all?"))
          const third = fake.requests[2]!.messages!
          expect(third.filter((m) => m.role !== "system").map((m) => [m.role, m.content])).toEqual([
            ["user", "Why did MSFT lose money?"],
            ["assistant", final],
            ["user", "Is that all?"]
          ])
        }), { timeout: 60_000 })

      it.scoped("hostile tool arguments are refused back to the model, never a crash, and stored cut short", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const huge = "A".repeat(200_000)
          const fake = yield* FakeOllama.start((request) =>
            hasToolResult(request)
              ? { content: "Sorry, I could not use the tools.\u0000" }
              : {
                content: "",
                toolCalls: [
                  { name: "drop_tables", arguments: {} },
                  { name: "analyse_trades", arguments: { symbol: huge } },
                  { name: "analyse_trades", arguments: { __proto__: { polluted: true }, constructor: "x" } as Record<string, unknown> },
                  { name: "calculate_metrics", arguments: { from: "2024-13-45" } },
                  { name: "explain_decision", arguments: { round: "AAPL@1", order: "x" } },
                  { name: "compare_runs", arguments: { other: "'; drop table runs; --" } },
                  { name: "analyse_trades", arguments: { timeZone: "Mars/Olympus_Mons", top: 1e9 } }
                ]
              }
          )
          const agent = yield* ollamaAgent(fake)
          const chunks = yield* collect(agent.ask(run.id, "Break yourself"))
          expect(chunks.at(-1)!._tag).toBe("Done")
          const used = ofTag(chunks, "ToolUsed")
          expect(used.map((u) => [u.tool, u.ok])).toEqual([
            ["drop_tables", false],
            ["analyse_trades", false],
            ["analyse_trades", false],
            ["calculate_metrics", false],
            ["explain_decision", false],
            ["compare_runs", false],
            ["analyse_trades", false]
          ])
          for (const u of used) {
            expect(u.summary.startsWith("refused: ")).toBe(true)
            expect(u.summary.length).toBeLessThanOrEqual(160)
            expect(JSON.stringify(u.arguments).length).toBeLessThan(1_000)
          }
          expect(used[0]!.summary).toContain("is not a tool")
          // Each refusal went back to the model, naming the field and why.
          const results = toolMessages(fake.requests[1]!).map((m) => JSON.parse(m.content) as { error: string; field: string })
          expect(results.map((r) => [r.error, r.field])).toEqual([
            ["ToolCallRejected", "name"],
            ["ToolCallRejected", "symbol"],
            ["ToolCallRejected", "constructor"],
            ["ToolCallRejected", "from"],
            ["ToolCallRejected", "order"],
            ["ToolCallRejected", "other"],
            ["ToolCallRejected", "top"]
          ])
          // The model is not sent its 200 KB argument back (nor charged for it): its calls go back cut, as stored.
          expect(JSON.stringify(fake.requests[1]!.messages).length).toBeLessThan(20_000)
          // The answer's NUL is stored as U+FFFD; the huge argument is stored cut.
          const { messages } = yield* historyOf(run.id)
          expect(messages.at(-1)!.content).toBe("Sorry, I could not use the tools.\uFFFD")
          expect(JSON.stringify(messages[1]!.toolCalls).length).toBeLessThan(5_000)
          expect(messages.filter((m) => m.role === "tool")).toHaveLength(7)
          // And so is the model call's record of them (docs/llm.md: cut as they are stored).
          const { calls } = yield* historyOf(run.id)
          expect(calls[0]!.call.answer!.length).toBeLessThan(5_000)
          expect(calls[0]!.call.answer).toContain("_truncated")
        }), { timeout: 60_000 })

      it.scoped("tool arguments nested past any sense are refused, and the call is still recorded with its tokens", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 } })
          const depth = 50_000
          // Sent as raw ndjson: the fake's own JSON.stringify would overflow on it, as the agent's did.
          const line = (message: unknown, done: boolean, counts = {}) =>
            `{"model":"llama3.2:3b","created_at":"2025-01-01T00:00:00Z","message":${message},"done":${done}${
              Object.entries(counts).map(([k, v]) => `,"${k}":${v}`).join("")
            }}\n`
          const deepJson = `${"[".repeat(depth)}${"]".repeat(depth)}`
          const fake = yield* FakeOllama.start((request) =>
            hasToolResult(request)
              ? { content: "I could not use that.", tokensIn: 900, tokensOut: 5 }
              : {
                raw: line(`{"role":"assistant","content":"","tool_calls":[{"function":{"name":"analyse_trades","arguments":{"x":${deepJson}}}}]}`, false) +
                  line(`{"role":"assistant","content":""}`, true, { prompt_eval_count: 700, eval_count: 20 })
              }
          )
          const agent = yield* ollamaAgent(fake)
          const chunks = yield* collect(agent.ask(run.id, "Analyse this"))
          expect(chunks.at(-1)!._tag).toBe("Done")
          expect(ofTag(chunks, "ToolUsed").map((u) => [u.tool, u.ok])).toEqual([["analyse_trades", false]])
          expect(textOf(chunks)).toBe("I could not use that.")
          const { calls, messages } = yield* historyOf(run.id)
          // Both calls recorded, the first with its tokens (what the budget counts) and its arguments refused, not stored.
          expect(calls.map((c) => [c.call.outcome, c.call.tokensIn, c.call.tokensOut])).toEqual([["ok", 700, 20], ["ok", 900, 5]])
          expect(calls[0]!.call.answer!.length).toBeLessThan(1_000)
          expect(calls[0]!.call.answer).toContain("nested deeper than")
          expect(JSON.stringify(messages[1]!.toolCalls)).toContain("nested deeper than")
        }), { timeout: 60_000 })

      it.scoped("a model asking for thousands of tool calls at once has the first 8 run, and only those recorded", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const many = Array.from({ length: 10_000 }, () => ({ name: "calculate_metrics", arguments: {} }))
          const fake = yield* FakeOllama.start((request) => (hasToolResult(request) ? { content: "Done." } : { content: "", toolCalls: many }))
          const agent = yield* ollamaAgent(fake)
          const chunks = yield* collect(agent.ask(run.id, "Metrics, lots of them"))
          expect(chunks.at(-1)!._tag).toBe("Done")
          expect(ofTag(chunks, "ToolUsed")).toHaveLength(8)
          const { calls } = yield* historyOf(run.id)
          const recorded = JSON.parse(calls[0]!.call.answer!) as { toolCalls: Array<unknown>; ignoredCalls: number }
          expect(recorded.toolCalls).toHaveLength(8)
          expect(recorded.ignoredCalls).toBe(9_992)
        }), { timeout: 60_000 })

      it.scoped("a model that keeps calling tools is asked without them after 4 rounds", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const fake = yield* FakeOllama.start((request) =>
            request.tools === undefined
              ? { content: "Enough tools: MSFT lost." }
              : { content: "", toolCalls: [{ name: "calculate_metrics", arguments: {} }] }
          )
          const agent = yield* ollamaAgent(fake)
          const chunks = yield* collect(agent.ask(run.id, "Tell me everything"))
          expect(fake.requests.map((r) => r.tools === undefined)).toEqual([false, false, false, false, true])
          expect(ofTag(chunks, "ToolUsed")).toHaveLength(SystemAgent.MAX_TOOL_ROUNDS)
          expect(textOf(chunks)).toBe("Enough tools: MSFT lost.")
          expect(chunks.at(-1)!._tag).toBe("Done")
        }), { timeout: 60_000 })

      it.scoped("a model failing mid-answer, or too slow, ends the stream with Failed, recorded as such", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice", TRADES, { timeoutMillis: 400, retries: 0 })
          const fake = yield* FakeOllama.start(() => ({ chunks: ["MSFT ", "lost "], streamError: "model runner crashed" }))
          const agent = yield* ollamaAgent(fake)
          const broken = yield* collect(agent.ask(run.id, "What happened to MSFT?"))
          const failed = broken.at(-1)!
          expect(failed._tag).toBe("Failed")
          expect(textOf(broken)).toBe("MSFT lost ")
          if (failed._tag !== "Failed") return
          expect(failed.error).toBe("LlmRequestFailed")
          expect(failed.reason).toContain("model runner crashed")

          fake.setHandler(() => ({ delayMillis: 3_000, content: "too late" }))
          const slow = yield* collect(agent.ask(run.id, "And AAPL?"))
          expect(slow.map((c) => c._tag)).toEqual(["Asked", "Failed"])
          expect(slow[1]).toMatchObject({ error: "LlmTimeout" })

          const { calls, messages } = yield* historyOf(run.id)
          const answers = messages.filter((m) => m.role === "assistant")
          expect(answers.map((m) => [m.content, m.error !== null])).toEqual([["MSFT lost ", true], ["", true]])
          expect(answers[0]!.seq).toBe(failed.message)
          expect(calls.map((c) => c.call.outcome)).toEqual(["error", "timeout"])
          // Neither broken answer is given to the model as history.
          fake.setHandler(() => ({ content: "ok" }))
          yield* collect(agent.ask(run.id, "Again?"))
          expect(fake.requests.at(-1)!.messages!.filter((m) => m.role !== "system").map((m) => [m.role, m.content])).toEqual([
            ["user", "What happened to MSFT?"],
            ["user", "And AAPL?"],
            ["user", "Again?"]
          ])
        }), { timeout: 60_000 })

      it.scoped("a crash mid-answer ends it with Failed; the agent is restarted and answers the next question", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          let crash = true
          const offline = Offline.make()
          const model: LanguageModel["Type"] = {
            backend: { kind: "ollama", description: "crashing" },
            chat: () => Effect.fail(new LlmUnavailable({ model: "x", reason: "not used" })),
            chatStream: (request) => (crash ? Stream.die(new Error("boom")) : offline.chatStream({ ...request, offline: () => ({ content: "Back again." }) }))
          }
          const agent = yield* agentWith(model)
          const first = yield* collect(agent.ask(run.id, "First?"))
          expect(first.map((c) => c._tag)).toEqual(["Asked", "Failed"])
          expect(first[1]).toMatchObject({ error: "Crashed" })
          crash = false
          const second = yield* collect(agent.ask(run.id, "Second?"))
          expect(second.at(-1)!._tag).toBe("Done")
          expect(textOf(second)).toBe("Back again.")
          const { messages } = yield* historyOf(run.id)
          expect(messages.map((m) => [m.role, m.error === null])).toEqual([
            ["user", true],
            ["assistant", false],
            ["user", true],
            ["assistant", true]
          ])
        }), { timeout: 60_000 })

      it.scoped("offline: a question about losing trades is answered from analyse_trades, in sentences, word by word", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const agent = yield* agentWith(Offline.make())
          expect(agent.backend.kind).toBe("offline")
          const chunks = yield* collect(agent.ask(run.id, "Which trades lost money?"))
          const expected = TradeAnalysis.describeTradeAnalysis(TradeAnalysis.analyseTrades(TRADES))
          expect(ofTag(chunks, "ToolUsed").map((u) => [u.tool, u.ok])).toEqual([["analyse_trades", true]])
          expect(textOf(chunks)).toBe(expected)
          expect(ofTag(chunks, "Token").length).toBe(Offline.words(expected).length)
          expect(chunks.at(-1)).toMatchObject({ _tag: "Done", backend: "offline", tokensIn: 0, tokensOut: 0 })

          const unroutable = yield* collect(agent.ask(run.id, "What's the weather like?"))
          expect(ofTag(unroutable, "ToolUsed")).toEqual([])
          expect(textOf(unroutable)).toBe(SystemAgent.CAPABILITIES)

          const rules = yield* collect(agent.ask(run.id, "Can you suggest some rules?"))
          expect(ofTag(rules, "ToolUsed")[0]).toMatchObject({ tool: "suggest_rules", ok: true })
          expect(textOf(rules)).toContain("Stop opening positions in MSFT")
          expect(textOf(rules)).toMatch(/chat\.applyRule: 1\. suggested-stop-msft\.5\.[0-9a-f]{8};/)

          const { calls } = yield* historyOf(run.id)
          expect(calls.map((c) => [c.call.backend, c.call.outcome])).toEqual([["offline", "ok"], ["offline", "ok"], ["offline", "ok"]])
        }), { timeout: 60_000 })

      it.scoped("the chat spends the run's LLM budget: what the run spent counts, and a call that would pass it is not made", () =>
        Effect.gen(function*() {
          const fake = yield* FakeOllama.start(() => ({ content: "From the model.", tokensIn: 800, tokensOut: 30 }))
          const agent = yield* ollamaAgent(fake)

          // A budget the run's own calls have (all but) spent: the model is not asked.
          const spent = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 } })
          const expected = TradeAnalysis.describeTradeAnalysis(TradeAnalysis.analyseTrades(TRADES))
          const sql = yield* SqlClient.SqlClient
          const call = { agent: "llm_analyst", step: "analyst", model: "llama3.2:3b", backend: "ollama", promptHash: "0".repeat(64), tokensIn: 48_000, tokensOut: 1_500, latencyMillis: 5, cache: "miss", attempts: 1, outcome: "ok" }
          const seq = TRADES.length + 1
          const body = JSON.stringify({ _tag: "LlmCalled", run: spent.id, seq, at: 0, call })
          yield* sql`insert into run_events ${sql.insert({ runId: spent.id, seq, tag: "LlmCalled", at: 0, hash: "0".repeat(64), body })}`.pipe(Effect.orDie)

          const chunks = yield* collect(agent.ask(spent.id, "Which trades lost money?"))
          expect(fake.requests).toHaveLength(0)
          expect(textOf(chunks)).toMatch(/^The run's language-model budget is spent \(run \S+'s LLM tokens budget is spent \(49500 of 50000; the call needed up to \d+\)\), so I answer without the model\. /)
          // The rest of the answer as the offline agent gives it: from the tools, in sentences.
          expect(ofTag(chunks, "ToolUsed").map((u) => [u.tool, u.ok])).toEqual([["analyse_trades", true]])
          expect(textOf(chunks).endsWith(expected)).toBe(true)
          expect(chunks.at(-1)).toMatchObject({ _tag: "Done", backend: "offline", tokensIn: 0, tokensOut: 0 })
          const { calls, messages } = yield* historyOf(spent.id)
          expect(calls.map((c) => [c.call.backend, c.call.outcome, c.call.attempts])).toEqual([["ollama", "budget", 0], ["offline", "ok", 1]])
          expect(calls[0]!.call.error).toContain("budget is spent")
          expect(messages.at(-1)).toMatchObject({ role: "assistant", backend: "offline", error: null })

          // The same budget, nothing spent: the model answers, and what it used is charged to the chat.
          const fresh = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000, pricePerMillionIn: 1, pricePerMillionOut: 2 } })
          const answered = yield* collect(agent.ask(fresh.id, "Which trades lost money?"))
          expect(textOf(answered)).toBe("From the model.")
          expect(answered.at(-1)).toMatchObject({ _tag: "Done", backend: "ollama" })
          const session = yield* Chats.find(fresh.id).pipe(Effect.orDie)
          expect(session._tag).toBe("Some")
          if (session._tag !== "Some") return
          expect(yield* Chats.spent(session.value.id).pipe(Effect.orDie)).toEqual({ tokens: 830, cost: (800 * 1 + 30 * 2) / 1_000_000 })
          expect((yield* historyOf(fresh.id)).calls.map((c) => c.call.cost)).toEqual([(800 * 1 + 30 * 2) / 1_000_000])
        }), { timeout: 60_000 })

      it.scoped("a chat's calls store their prompts in parts: its bytes grow with the conversation, not its square, and every prompt reads back whole", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // Each question: a tool call, then a long answer, which the next questions carry as history.
          const fake = yield* FakeOllama.start((request) =>
            hasToolResult(request)
              ? { content: `Answer to ${request.messages!.at(-3)!.content}: ${"the trades say so. ".repeat(50)}` }
              : { content: "", toolCalls: [{ name: "analyse_trades", arguments: { symbol: "msft" } }] }
          )
          const ollama = Ollama.make({ host: fake.url })
          const sent: Array<ChatRequest> = []
          const model: LanguageModel["Type"] = { ...ollama, chatStream: (request) => (sent.push(request), ollama.chatStream(request)) }
          const agent = yield* agentWith(model)
          const chatOf = (questions: number) =>
            Effect.gen(function*() {
              sent.length = 0
              const run = yield* seedRun("alice")
              for (let i = 1; i <= questions; i++) yield* collect(agent.ask(run.id, `Question ${i}: which trades lost money?`))
              const session = (yield* Chats.find(run.id).pipe(Effect.orDie)).pipe(Option.getOrThrow)
              const [row] = yield* sql<{ bytes: number }>`
                select sum(octet_length(body::text))::int as bytes from chat_llm_calls where session_id = ${session.id}`
              const calls = yield* Chats.calls(session.id).pipe(Effect.orDie)
              // Each call's prompt as it was sent (what whole prompts were: the same text, hashed).
              expect(calls).toHaveLength(2 * questions)
              expect(calls.map((c) => c.call.prompt)).toEqual(sent.map((request) =>
                JSON.stringify({
                  model: request.model,
                  messages: request.messages,
                  ...(request.tools === undefined ? {} : { tools: request.tools.map((t) => t.name) })
                })
              ))
              expect(calls.every((c) => sha256Hex(c.call.prompt!) === c.call.promptHash && c.call.promptParts === undefined)).toBe(true)
              return row!.bytes
            })
          const once = yield* chatOf(4)
          const twice = yield* chatOf(8)
          // In parts, 21 then 41 KB. Whole prompts: 50 then 135 KB (each call kept all the chat before it).
          expect(twice / once).toBeLessThan(2.2)
        }), { timeout: 60_000 })

      it.scoped("a chat's calls stored before parts (whole prompts) still read; a writer that missed the others' calls reads their parts first", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const session = yield* Chats.session(run.id, "alice").pipe(Effect.orDie)
          const system: Message = { role: "system", content: "You are the system agent." }
          const callOf = (step: string, messages: ReadonlyArray<Message>, whole: boolean): LlmCall => {
            const jsons = messages.map((message) => ({ message, json: JSON.stringify(message) }))
            const rest = chatRestJson(["analyse_trades"])
            const prompt = chatPromptOfParts("m", [...jsons.map((m) => m.json), rest])
            return {
              agent: "system" as AgentId,
              step,
              model: "m",
              backend: "ollama",
              promptHash: sha256Hex(prompt),
              ...(whole ? { prompt } : { promptParts: partsOf(jsons, rest) }),
              tokensIn: 1,
              tokensOut: 1,
              latencyMillis: 0,
              cache: "off",
              attempts: 1,
              outcome: "ok"
            }
          }
          const conversation = [system, { role: "user", content: "one" }, { role: "tool", content: "{}", toolName: "analyse_trades" }] as const
          const made = [
            callOf("q1-1", conversation.slice(0, 2), true),
            callOf("q1-2", conversation, false),
            callOf("q1-3", [...conversation, { role: "user", content: "two" }], false),
            callOf("q1-4", [...conversation, { role: "user", content: "three" }], false)
          ]
          const mine = new Chats.SessionPrompts()
          yield* Chats.recordCall(session.id, 1, made[0]!, mine).pipe(Effect.orDie)
          yield* Chats.recordCall(session.id, 1, made[1]!, mine).pipe(Effect.orDie)
          // Another process's writer, which has not seen them: it stores only what they did not.
          yield* Chats.recordCall(session.id, 1, made[2]!, new Chats.SessionPrompts()).pipe(Effect.orDie)
          // And this one, whose memory is behind the session's calls now: it reads them again.
          yield* Chats.recordCall(session.id, 1, made[3]!, mine).pipe(Effect.orDie)
          const sql = yield* SqlClient.SqlClient
          const stored = yield* sql<{ body: LlmCall }>`select body from chat_llm_calls where session_id = ${session.id} order by seq`
          const bodies = (i: number) => stored[i]!.body.promptParts!.filter((p) => p.content !== undefined || p.text !== undefined).length
          expect(stored[0]!.body.prompt).toBe(made[0]!.prompt)
          expect([1, 2, 3].map(bodies)).toEqual([4, 1, 1])
          const read = yield* Chats.calls(session.id).pipe(Effect.orDie)
          expect(read.map((c) => sha256Hex(c.call.prompt!))).toEqual(made.map((c) => c.promptHash))
        }))

      it.scoped("a model call the database would not record is still charged: the next question cannot spend it again", () =>
        Effect.gen(function*() {
          // A backend that claims huge counts: each call is charged its whole reservation.
          const fake = yield* FakeOllama.start(() => ({ content: "From the model.", tokensIn: 1_000_000, tokensOut: 30 }))
          const agent = yield* ollamaAgent(fake)
          const sql = yield* SqlClient.SqlClient
          // What one question's call reserves, measured on a run of its own.
          const probe = yield* seedRun("alice", TRADES, { budget: { tokens: 1_000_000 } })
          yield* collect(agent.ask(probe.id, "Which trades lost money?"))
          const probed = yield* Chats.find(probe.id).pipe(Effect.orDie)
          if (probed._tag !== "Some") return expect.unreachable()
          const reservation = (yield* Chats.spent(probed.value.id).pipe(Effect.orDie)).tokens
          expect(fake.requests).toHaveLength(1)
          // Room for one such call and a half: the first is made, a second would pass the limit.
          const run = yield* seedRun("alice", TRADES, { budget: { tokens: Math.floor(reservation * 1.5) } })
          yield* sql`create or replace function refuse_chat_calls() returns trigger language plpgsql as $$
            begin raise exception 'refused by the test'; end $$`
          yield* sql`create trigger refuse_chat_calls before insert on chat_llm_calls for each row execute function refuse_chat_calls()`
          const dropped = sql`drop trigger if exists refuse_chat_calls on chat_llm_calls`
          yield* Effect.addFinalizer(() => Effect.ignore(dropped))
          const first = yield* collect(agent.ask(run.id, "Which trades lost money?")).pipe(Effect.either)
          expect(fake.requests).toHaveLength(2)
          expect(JSON.stringify(first)).toContain("cannot record a chat's model call")
          yield* dropped
          // Before, nothing recorded meant nothing spent: the model was asked again, past the limit.
          const second = yield* collect(agent.ask(run.id, "And which won?"))
          expect(fake.requests).toHaveLength(2)
          expect(textOf(second)).toMatch(/^The run's language-model budget is spent /)
        }), { timeout: 60_000 })

      it.scoped("a run executing in this process: the chat spends its live budget, the very one its agents spend", () =>
        Effect.gen(function*() {
          const fake = yield* FakeOllama.start(() => ({ content: "From the model.", tokensIn: 800, tokensOut: 30 }))
          const runtime = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(Ollama.make({ host: fake.url })))
          const agent = yield* SystemAgent.make().pipe(Effect.provideService(LlmRuntime.LlmRuntime, runtime))

          // Its agents have spent all but 500 tokens, none of it recorded yet: the model is not asked.
          const spent = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 } })
          const almost = new Budget(spent.id, spent.strategy.llm!.budget)
          almost.charge(49_500, 0)
          const withdraw = runtime.budgets.register(almost)
          const refused = yield* collect(agent.ask(spent.id, "Which trades lost money?"))
          withdraw()
          expect(fake.requests).toHaveLength(0)
          expect(textOf(refused)).toMatch(/^The run's language-model budget is spent \(run \S+'s LLM tokens budget is spent \(49500 of 50000;/)
          expect(refused.at(-1)).toMatchObject({ _tag: "Done", backend: "offline" })
          // The chat's call, tool specs and all, did not fit; a smaller call of the run's agents still
          // does. Before, the chat's refusal was the budget's for good: its agents abstained from then on.
          expect(Either.isRight(almost.reserve(200, 200))).toBe(true)

          // Room left: the answer is charged to the run's live budget, where its agents see it.
          const roomy = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 } })
          const live = new Budget(roomy.id, roomy.strategy.llm!.budget)
          live.charge(1_000, 0)
          runtime.budgets.register(live)
          const answered = yield* collect(agent.ask(roomy.id, "Which trades lost money?"))
          expect(textOf(answered)).toBe("From the model.")
          expect(live.tokens).toBe(1_000 + 830)
        }), { timeout: 60_000 })

      it.scoped("a chat call its run's agents' calls in flight leave no room for waits for them, up to its timeout", () =>
        Effect.gen(function*() {
          const fake = yield* FakeOllama.start(() => ({ content: "From the model.", tokensIn: 800, tokensOut: 30 }))
          const runtime = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(Ollama.make({ host: fake.url })))
          const agent = yield* SystemAgent.make().pipe(Effect.provideService(LlmRuntime.LlmRuntime, runtime))

          // The run's agents have 49,000 tokens reserved in flight: nothing is spent, but the chat's call does not fit beside them.
          const run = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 }, timeoutMillis: 5_000 })
          const live = new Budget(run.id, run.strategy.llm!.budget)
          const agents = live.reserve(49_000, 0)
          if (Either.isLeft(agents)) return expect.unreachable()
          runtime.budgets.register(live)
          const asking = yield* Effect.fork(collect(agent.ask(run.id, "Which trades lost money?")))
          yield* Effect.sleep("300 millis")
          expect(fake.requests).toHaveLength(0)
          // Their calls settle at what they used: the chat's is made. Before, it was refused at once and answered offline.
          live.settle(agents.right, 900, 0)
          const answered = yield* Fiber.join(asking)
          expect(textOf(answered)).toBe("From the model.")
          expect(fake.requests).toHaveLength(1)
          expect(live.tokens).toBe(900 + 830)

          // Room that never comes: at its timeout it answers without the model, and says why.
          const stuck = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 }, timeoutMillis: 300 })
          const crowded = new Budget(stuck.id, stuck.strategy.llm!.budget)
          if (Either.isLeft(crowded.reserve(49_000, 0))) return expect.unreachable()
          runtime.budgets.register(crowded)
          const refused = yield* collect(agent.ask(stuck.id, "Which trades lost money?"))
          expect(fake.requests).toHaveLength(1)
          expect(textOf(refused)).toMatch(/^The run's language-model budget has no room for this answer while its agents' calls are in flight \(/)
          expect(refused.at(-1)).toMatchObject({ _tag: "Done", backend: "offline" })
          // Its refusal is its alone: the run's agents go on with what is left.
          expect(crowded.exhausted).toBe(false)
        }), { timeout: 60_000 })

      it.scoped("a chat call cut off by the agent stopping gives its reservation back, charged: its run's agents do not wait on it", () =>
        Effect.gen(function*() {
          // A model that streams slowly: the call is in flight when the agent stops.
          const fake = yield* FakeOllama.start(() => ({ chunks: FakeOllama.pieces("one two three four five six seven eight"), chunkDelayMillis: 2_000 }))
          const runtime = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(Ollama.make({ host: fake.url })))
          const run = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 } })
          const live = new Budget(run.id, run.strategy.llm!.budget)
          runtime.budgets.register(live)
          const scope = yield* Scope.make()
          const agent = yield* SystemAgent.make().pipe(Effect.provideService(LlmRuntime.LlmRuntime, runtime), Scope.extend(scope))
          const asking = yield* Effect.fork(Effect.either(collect(agent.ask(run.id, "Which trades lost money?"))))
          expect(yield* eventually(() => fake.requests.length === 1)).toBe(true)
          expect(live.remaining).toBeLessThan(50_000 - defaultLlmConfig.maxTokensOut)
          yield* Scope.close(scope, Exit.void)
          yield* Fiber.join(asking)
          // Nothing is held in flight any more: charged in full (the model may have used it), not kept reserved.
          expect(live.remaining).toBe(50_000 - live.tokens)
          expect(live.tokens).toBeGreaterThan(defaultLlmConfig.maxTokensOut)
          // So a call of the run's agents that fits what is left is made at once.
          const next = live.reserve(50_000 - live.tokens - 1, 0)
          expect(Either.isRight(next)).toBe(true)
        }), { timeout: 60_000 })

      it.scoped("a chat call that fails is charged its reservation: it may have used tokens the model never reported", () =>
        Effect.gen(function*() {
          const fake = yield* FakeOllama.start(() => ({ content: "Half an", streamError: "the model crashed" }))
          const agent = yield* ollamaAgent(fake)
          const run = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 } })
          const chunks = yield* collect(agent.ask(run.id, "Which trades lost money?"))
          expect(chunks.at(-1)).toMatchObject({ _tag: "Failed" })
          const { calls } = yield* historyOf(run.id)
          expect(calls.map((c) => [c.call.outcome, c.call.tokensOut])).toEqual([["error", 0]])
          // Its reservation: the prompt's upper bound (tool specs included) and the longest answer it could have given.
          const reserved = calls[0]!.call.tokensIn
          expect(reserved).toBeGreaterThan(defaultLlmConfig.maxTokensOut)
          const session = yield* Chats.find(run.id).pipe(Effect.orDie)
          if (session._tag !== "Some") return expect.fail("no chat session")
          expect(yield* Chats.spent(session.value.id).pipe(Effect.orDie)).toEqual({ tokens: reserved, cost: 0 })
        }), { timeout: 60_000 })

      it.scoped("a chat call the model never answered (an error status) is charged nothing and recorded with no tokens", () =>
        Effect.gen(function*() {
          const fake = yield* FakeOllama.start(() => ({ status: 500, error: "llama runner process has terminated" }))
          const agent = yield* ollamaAgent(fake)
          const run = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 }, retries: 0 })
          const chunks = yield* collect(agent.ask(run.id, "Which trades lost money?"))
          expect(chunks.at(-1)).toMatchObject({ _tag: "Failed", error: "LlmRequestFailed" })
          const { calls } = yield* historyOf(run.id)
          expect(calls.map((c) => [c.call.outcome, c.call.tokensIn, c.call.tokensOut])).toEqual([["error", 0, 0]])
          const session = yield* Chats.find(run.id).pipe(Effect.orDie)
          if (session._tag !== "Some") return expect.fail("no chat session")
          expect(yield* Chats.spent(session.value.id).pipe(Effect.orDie)).toEqual({ tokens: 0, cost: 0 })
        }), { timeout: 60_000 })

      it.scoped("a model's bogus token counts are recorded as charged, within the reservation: the chat's budget survives them", () =>
        Effect.gen(function*() {
          const fake = yield* FakeOllama.start(() => ({ content: "From the model.", tokensIn: 9e15, tokensOut: 9e15 }))
          const agent = yield* ollamaAgent(fake)
          const run = yield* seedRun("alice", TRADES, { budget: { tokens: 50_000 } })
          const first = yield* collect(agent.ask(run.id, "Which trades lost money?"))
          const done = first.at(-1)!
          if (done._tag !== "Done") return expect.fail(`expected Done, got ${done._tag}`)
          const { calls, messages } = yield* historyOf(run.id)
          const call = calls[0]!.call
          // Charged at its reservation: the prompt's upper bound in, its longest answer's room the rest.
          expect(call.tokensIn + call.tokensOut).toBeGreaterThan(defaultLlmConfig.maxTokensOut)
          expect(call.tokensIn + call.tokensOut).toBeLessThan(50_000)
          expect([done.tokensIn, done.tokensOut]).toEqual([call.tokensIn, call.tokensOut])
          expect(messages.at(-1)).toMatchObject({ tokensIn: call.tokensIn, tokensOut: call.tokensOut })
          const session = yield* Chats.find(run.id).pipe(Effect.orDie)
          if (session._tag !== "Some") return expect.fail("no chat session")
          expect((yield* Chats.spent(session.value.id).pipe(Effect.orDie)).tokens).toBe(call.tokensIn + call.tokensOut)

          // The next question is still answered by the model.
          fake.setHandler(() => ({ content: "Still here.", tokensIn: 700, tokensOut: 3 }))
          const second = yield* collect(agent.ask(run.id, "Anything else?"))
          expect(textOf(second)).toBe("Still here.")
          expect(second.at(-1)).toMatchObject({ _tag: "Done", backend: "ollama", tokensIn: 700, tokensOut: 3 })
        }), { timeout: 60_000 })

      it.scoped("offline, on a recorded backtest: each analyst's votes, dissent and hit rate, as the run's own events and bars give them", () =>
        Effect.gen(function*() {
          const options = stored(2, 300, { owner: "bob", name: "chat analysts" })
          const strategy = Schema.decodeUnknownSync(Strategy)({
            ...Schema.encodeSync(Strategy)(options.strategy),
            agents: [
              { type: "sma_crossover", params: { fast: 5, slow: 20 } },
              { type: "rsi_reversion" },
              { type: "macd_momentum" }
            ]
          })
          const done = yield* StoredRun.backtest({ ...options, strategy }).pipe(Effect.provide(LlmRuntime.layerOffline), Effect.orDie)
          const sql = yield* SqlClient.SqlClient
          // The oracle: every recorded decision and opinion, scored against the bars of the run's feed read afresh.
          const bodies = (tag: string) =>
            Effect.orDie(sql<{ body: string }>`select body from run_events where run_id = ${done.run} and tag = ${tag} order by seq`)
          const decisions = (yield* bodies("DecisionMade")).map((r) => (JSON.parse(r.body) as { decision: Decision }).decision)
          const horizons = new Map<string, number>()
          for (const r of yield* bodies("OpinionGiven")) {
            const o = (JSON.parse(r.body) as { opinion: { agent: string; horizon: number } }).opinion
            horizons.set(o.agent, o.horizon)
          }
          const closes = new Map<string, Array<number>>()
          const at = new Map<string, number>()
          for (const slice of options.feed) {
            for (const bar of slice.bars) {
              const series = closes.get(bar.symbol) ?? []
              at.set(`${bar.symbol}@${slice.ts}`, series.length)
              series.push(bar.close)
              closes.set(bar.symbol, series)
            }
          }
          const expected = strategy.agents.map(agentName).map((agent) => {
            let votes = 0, dissented = 0, scored = 0, correct = 0, abstained = 0
            for (const d of decisions) {
              abstained += d.abstentions.filter((a) => a.agent === agent).length
              const vote = d.votes.find((v) => v.agent === agent)
              if (vote === undefined) continue
              votes++
              if (d.dissent.includes(vote.agent)) dissented++
              const i = at.get(`${d.symbol}@${d.ts}`)!
              const series = closes.get(d.symbol)!
              const later = series[i + horizons.get(agent)!]
              if (later === undefined) continue
              scored++
              if (isCorrect(vote.direction, later / series[i]! - 1, FLAT_BAND, !strategy.allowShort)) correct++
            }
            return { agent, votes, dissented, scored, correct, abstained }
          })
          expect(decisions.length).toBeGreaterThan(20)
          expect(expected.every((e) => e.scored > 0)).toBe(true)
          expect(expected.some((e) => e.dissented > 0)).toBe(true)

          const agent = yield* agentWith(Offline.make())
          const answer = yield* collect(agent.ask(done.run, "Which analyst is the most accurate?"))
          expect(ofTag(answer, "ToolUsed")[0]).toMatchObject({ tool: "analyst_scores", ok: true, arguments: {} })
          expect(textOf(answer)).toMatch(new RegExp(`^Over ${decisions.length} rounds with a recorded decision; the run records the rounds that changed a target`))
          const record = yield* Effect.orDie(Runs.get(done.run))
          const whole = yield* Effect.orDie(Tools.run({ tool: "analyst_scores", args: {} }, record))
          const view = whole.result as AnalystScoresView
          expect(view.rounds).toBe(decisions.length)
          expect(view.analysts.map((a) => ({
            agent: a.agent,
            votes: a.votes,
            dissented: a.dissented,
            scored: a.scored,
            correct: a.correct,
            abstained: a.abstentions.belowMinConfidence + a.abstentions.noAnswer + a.abstentions.failed
          }))).toEqual(expected)
          // One analyst of one symbol, named in the question; the latest rounds only, saying how many there are.
          const symbol = decisions[0]!.symbol
          const one = yield* collect(agent.ask(done.run, `How accurate is rsi_reversion on ${symbol}?`))
          expect(ofTag(one, "ToolUsed")[0]).toMatchObject({ tool: "analyst_scores", ok: true, arguments: { agent: "rsi_reversion", symbol } })
          expect(textOf(one)).toContain("By analyst: rsi_reversion: ")
          const latest = yield* Effect.orDie(Tools.analystScores(record, undefined, undefined, 10))
          expect([latest.rounds, latest.roundsInRun]).toEqual([10, decisions.length])
          expect(latest.analysts[0]!.votes).toBe(decisions.slice(-10).filter((d) => d.votes.some((v) => v.agent === "sma_crossover")).length)
          expect(AnalystScores.describeAnalystScores(latest)).toContain(`Over 10 rounds with a recorded decision (the latest of its ${decisions.length});`)
        }), { timeout: 60_000 })

      it.scoped("offline, on recorded backtests: a round explained (or the latest), where the run stands, the metrics, a comparison with another run", () =>
        Effect.gen(function*() {
          const options = stored(2, 300, { owner: "bob", name: "chat backtest" })
          const one = yield* StoredRun.backtest(options).pipe(Effect.provide(LlmRuntime.layerOffline), Effect.orDie)
          const two = yield* StoredRun.backtest(options).pipe(Effect.provide(LlmRuntime.layerOffline), Effect.orDie)
          expect(two.number).toBe(2)
          const sql = yield* SqlClient.SqlClient
          const [decided] = yield* Effect.orDie(sql<{ roundId: string }>`
            select round_id from decisions where run_id = ${two.run} order by seq limit 1`)
          const agent = yield* agentWith(Offline.make())

          const explained = yield* collect(agent.ask(two.run, `Explain round ${decided!.roundId}`))
          expect(ofTag(explained, "ToolUsed")[0]).toMatchObject({ tool: "explain_decision", ok: true, arguments: { round: decided!.roundId } })
          expect(textOf(explained).startsWith(`Round ${decided!.roundId}`)).toBe(true)
          expect(textOf(explained)).toContain("The coordinator decided")

          // By order: the round that placed it.
          const [placed] = yield* Effect.orDie(sql<{ orderId: string; roundId: string }>`
            select order_id, round_id from orders where run_id = ${two.run} order by seq limit 1`)
          const record = yield* Effect.orDie(Runs.get(two.run))
          const byOrder = yield* Effect.orDie(Tools.run({ tool: "explain_decision", args: { order: placed!.orderId as never } }, record))
          expect(byOrder.sentences.startsWith(`Round ${placed!.roundId}`)).toBe(true)
          expect(byOrder.sentences).toContain(`Order ${placed!.orderId} to`)
          const noOrder = yield* Effect.orDie(Tools.run({ tool: "explain_decision", args: { order: "S9@1" as never } }, record))
          expect(noOrder.sentences).toContain("No order \"S9@1\" was placed")

          // A run with an LLM debate: the round's explanation carries what its bull, bear and judge argued.
          const debated = yield* StoredRun.backtest({
            ...options,
            strategy: Schema.decodeUnknownSync(Strategy)({
              ...Schema.encodeSync(Strategy)(options.strategy),
              name: "chat debate",
              agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "llm_debate", params: { model: "qwen2.5:7b", rounds: 1 } }]
            })
          }).pipe(Effect.provide(LlmRuntime.layerOffline), Effect.orDie)
          const [argued] = yield* Effect.orDie(sql<{ roundId: string }>`
            select round_id from reasoning where run_id = ${debated.run} and kind = 'decision' order by seq limit 1`)
          const debate = yield* Effect.orDie(Tools.run({ tool: "explain_decision", args: { round: argued!.roundId as never } }, yield* Effect.orDie(Runs.get(debated.run))))
          const reasoning = (debate.result as DecisionExplanation.RoundFound).reasoning
          expect(reasoning.map((r) => `${r.role} ${r.kind}`)).toEqual(["judge plan", "bull analysis", "bear analysis", "judge decision"])
          expect(reasoning.every((r) => r.agent === "llm_debate" && r.text.length > 0 && r.text.length <= REASONING_TEXT)).toBe(true)
          expect(debate.sentences).toContain("The LLM agents reasoned: llm_debate's judge (plan): \"")
          // Its model use, as `runs show` reads it, in where the run stands.
          const usage = Option.getOrThrow(yield* Effect.orDie(Runs.llmUsage(yield* Effect.orDie(Runs.get(debated.run)))))
          const spending = yield* collect(agent.ask(debated.run, "How many tokens have we used?"))
          expect(ofTag(spending, "ToolUsed")[0]).toMatchObject({ tool: "run_status", ok: true, arguments: {} })
          expect(usage.calls).toBeGreaterThan(0)
          expect(textOf(spending)).toContain(`Its LLM agents (${usage.backend} ${usage.model}: ${usage.description}) made ${usage.calls.toLocaleString("en-US")} model calls`)
          expect(textOf(spending)).toContain(`using ${usage.budget.tokens.toLocaleString("en-US")} tokens of the ${usage.budget.maxTokens.toLocaleString("en-US")} its budget allows`)

          const missing = yield* collect(agent.ask(two.run, "explain round S0@1"))
          expect(textOf(missing)).toContain("No events are recorded for round")

          // No round named: the run's most recent decision, its last sell order of a symbol.
          const [lastDecided] = yield* Effect.orDie(sql<{ roundId: string }>`
            select round_id from decisions where run_id = ${two.run} order by seq desc limit 1`)
          const latest = yield* collect(agent.ask(two.run, "Explain the last decision"))
          expect(ofTag(latest, "ToolUsed")[0]).toMatchObject({ tool: "explain_decision", ok: true, arguments: { last: "decision" } })
          expect(textOf(latest).startsWith(`The last decision recorded is round ${lastDecided!.roundId}. Round ${lastDecided!.roundId} (`)).toBe(true)
          const [firstSell] = yield* Effect.orDie(sql<{ symbol: string }>`
            select symbol from orders where run_id = ${two.run} and side = 'sell' order by seq limit 1`)
          const [lastSell] = yield* Effect.orDie(sql<{ orderId: string }>`
            select order_id from orders where run_id = ${two.run} and side = 'sell' and symbol = ${firstSell!.symbol} order by seq desc limit 1`)
          const sold = yield* collect(agent.ask(two.run, `Why did we sell ${firstSell!.symbol.toLowerCase()}?`))
          expect(ofTag(sold, "ToolUsed")[0]).toMatchObject({
            tool: "explain_decision",
            ok: true,
            arguments: { last: "order", symbol: firstSell!.symbol, side: "sell" }
          })
          expect(textOf(sold).startsWith(`The last sell order for ${firstSell!.symbol} is ${lastSell!.orderId}. Round `)).toBe(true)
          expect(textOf(sold)).toContain(`Order ${lastSell!.orderId} to sell`)
          // Where it stands: its row and its book as its last events say.
          const status = yield* collect(agent.ask(two.run, "How are we doing?"))
          expect(ofTag(status, "ToolUsed")[0]).toMatchObject({ tool: "run_status", ok: true, arguments: {} })
          expect(textOf(status)).toMatch(/^The run is completed \(backtest\), trading active\. At its end, as of the bar of .*: equity [\d,.]+/)
          // What it did, counted from its events (the tool counts its tables' rows).
          const tags = yield* Effect.orDie(sql<{ tag: string; outcome: string | null; n: number }>`
            select tag, case when tag = 'VerdictGiven' then (body::jsonb)->'verdict'->>'outcome' end as outcome, count(*)::int as n
            from run_events where run_id = ${two.run} group by 1, 2`)
          const n = (tag: string, outcome: string | null = null) => Number(tags.find((t) => t.tag === tag && t.outcome === outcome)?.n ?? 0)
          const activity = (yield* Effect.orDie(Tools.run({ tool: "run_status", args: {} }, record))).result as RunStatusView
          expect(activity.activity).toEqual({
            decisions: n("DecisionMade"),
            approved: n("VerdictGiven", "approved"),
            reduced: n("VerdictGiven", "reduced"),
            rejected: n("VerdictGiven", "rejected"),
            orders: n("OrderPlaced"),
            fills: n("OrderFilled"),
            pendingApprovals: 0
          })
          expect(activity.activity!.orders).toBeGreaterThan(0)
          expect(textOf(status)).toContain(`In all: ${n("DecisionMade")} decisions; the risk officer approved ${n("VerdictGiven", "approved")} intents`)
          const [held] = yield* Effect.orDie(sql<{ symbol: string; quantity: number }>`
            select symbol, quantity from positions p where run_id = ${two.run}
              and seq = (select max(seq) from positions where run_id = p.run_id and symbol = p.symbol) and quantity <> 0
            order by symbol limit 1`)
          const oneSymbol = yield* Effect.orDie(Tools.run({ tool: "run_status", args: { symbol: held!.symbol as never } }, record))
          expect((oneSymbol.result as RunStatusView).positions).toMatchObject([{ symbol: held!.symbol, quantity: Math.abs(held!.quantity) }])
          expect(oneSymbol.summary).toMatch(/^completed, trading active, equity [\d,.]+, 1 open position$/)
          // The last intent the risk officer rejected: a run with room for one open position of its three symbols.
          const capped = stored(3, 200, { owner: "bob", name: "chat rejections" })
          const rejecting = yield* StoredRun.backtest({
            ...capped,
            strategy: Schema.decodeUnknownSync(Strategy)({
              ...Schema.encodeSync(Strategy)(capped.strategy),
              rules: [{ id: "one", name: "One position", kind: "max_open_positions", priority: 1, params: { count: 1 } }]
            })
          }).pipe(Effect.provide(LlmRuntime.layerOffline), Effect.orDie)
          const [lastRejected] = yield* Effect.orDie(sql<{ roundId: string }>`
            select round_id from verdicts where run_id = ${rejecting.run} and outcome = 'rejected' order by seq desc limit 1`)
          expect(lastRejected).toBeDefined()
          const refused = yield* collect(agent.ask(rejecting.run, "Why was the order rejected?"))
          expect(ofTag(refused, "ToolUsed")[0]).toMatchObject({ tool: "explain_decision", ok: true, arguments: { last: "rejection" } })
          expect(textOf(refused)).toContain(`The last intent rejected was judged in round ${lastRejected!.roundId}. Round ${lastRejected!.roundId} (`)
          expect(textOf(refused)).toContain("rejected")
          // Which check rejected them: the rule, as many times as the run's verdicts say it acted.
          const checks = yield* collect(agent.ask(rejecting.run, "Which rule rejected the most orders?"))
          expect(ofTag(checks, "ToolUsed")[0]).toMatchObject({ tool: "risk_checks", ok: true, arguments: {} })
          const verdicts = (yield* Effect.orDie(sql<{ body: string }>`
            select body from run_events where run_id = ${rejecting.run} and tag = 'VerdictGiven' order by seq`)).map((r) => (JSON.parse(r.body) as { verdict: Verdict }).verdict)
          const byRule = verdicts.filter((v) => v.outcome === "rejected" && v.rules.some((o) => o.rule === "one" && o.result === "reject"))
          expect(byRule.length).toBeGreaterThan(0)
          const view = (yield* Effect.orDie(Tools.run({ tool: "risk_checks", args: {} }, yield* Effect.orDie(Runs.get(rejecting.run))))).result as RiskChecksView
          expect(view.verdicts).toEqual({
            approved: verdicts.filter((v) => v.outcome === "approved").length,
            reduced: verdicts.filter((v) => v.outcome === "reduced").length,
            rejected: verdicts.filter((v) => v.outcome === "rejected").length,
            needsApproval: 0
          })
          expect(view.checks[0]).toMatchObject({ check: "one", kind: "rule", rejected: byRule.length, lastReason: byRule.at(-1)!.rules.find((o) => o.rule === "one")!.reason })
          expect(view.rules).toMatchObject([{ id: "one", kind: "max_open_positions", params: { count: 1 }, scope: "every symbol", active: true }])
          expect(textOf(checks)).toContain(`What acted: rule one (max_open_positions) rejected ${byRule.length} (last: "`)
          expect(textOf(checks)).toContain("Its 1 rule, in the order they are checked: one (\"One position\"): max_open_positions count 1, every symbol, priority 1.")
          // Only the latest verdicts read on a long run, saying so.
          const latestActed = yield* Effect.orDie(Tools.riskChecks(yield* Effect.orDie(Runs.get(rejecting.run)), undefined, 2))
          expect([latestActed.read, latestActed.readOf]).toEqual([2, verdicts.filter((v) => v.outcome !== "approved").length])
          const noneRefused = yield* Effect.orDie(Tools.run({ tool: "explain_decision", args: { last: "rejection" } }, record))
          expect(noneRefused.sentences).toBe("The risk officer has rejected no intent in this run yet.")

          // A run whose analyst crashed: said, with its restarts (the run's agent_restarts totals).
          const crashing = yield* StoredRun.backtest(stored(2, 150, { owner: "bob", name: "chat crashes", faults: { sma_crossover: { every: 60 } } })).pipe(
            Effect.provide(LlmRuntime.layerOffline),
            Effect.orDie
          )
          const crashed = yield* collect(agent.ask(crashing.run, "Did an analyst crash?"))
          expect(ofTag(crashed, "ToolUsed")[0]).toMatchObject({ tool: "run_status", ok: true })
          expect(textOf(crashed)).toMatch(/ Agents that crashed: \S+ \(sma_crossover\) \d+ times?, restarted \d+ times?/)
          const none = yield* Effect.orDie(Tools.run({ tool: "explain_decision", args: { last: "order", symbol: "NOPE" as never, side: "buy" } }, record))
          expect(none.result).toMatchObject({ _tag: "NoneYet", last: "order", symbol: "NOPE", side: "buy" })
          expect(none.sentences).toBe("The run has placed no buy order for \"NOPE\" yet.")

          const metrics = yield* collect(agent.ask(two.run, "What is the Sharpe ratio?"))
          expect(ofTag(metrics, "ToolUsed")[0]).toMatchObject({ tool: "calculate_metrics", ok: true })
          expect(textOf(metrics)).toContain("Over the whole run")

          const compared = yield* collect(agent.ask(two.run, "compare with run 1"))
          expect(ofTag(compared, "ToolUsed")[0]).toMatchObject({ tool: "compare_runs", ok: true, arguments: { other: "1" } })
          expect(textOf(compared)).toContain("They made the same decisions throughout.")
          expect(textOf(compared)).toContain("chat backtest#1")
          // By the strategy's name, which holds a space, written in another case.
          const byName = yield* collect(agent.ask(two.run, "How does this run compare with Chat Backtest#1?"))
          expect(ofTag(byName, "ToolUsed")[0]).toMatchObject({ tool: "compare_runs", ok: true, arguments: { other: "chat backtest#1" } })
          expect(textOf(byName)).toContain("They made the same decisions throughout.")
          void one
        }), { timeout: 120_000 })

      it.scoped("one run's questions are answered in order; its watchers see every chunk, a late one the answer from its start", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const fake = yield* FakeOllama.start((request) => ({
            chunks: FakeOllama.pieces(`Answer to ${request.messages!.at(-1)!.content}`),
            chunkDelayMillis: 20
          }))
          const agent = yield* ollamaAgent(fake)
          const watched = yield* agent.watch(run.id)
          let answered = 0
          const watching = yield* Effect.fork(collect(watched.pipe(Stream.takeUntil((c) => c._tag === "Done" && ++answered === 2))))
          const [a, b] = yield* Effect.all([collect(agent.ask(run.id, "one two")), collect(agent.ask(run.id, "three four"))], {
            concurrency: "unbounded"
          })
          expect(textOf(a)).toBe("Answer to one two")
          expect(textOf(b)).toBe("Answer to three four")
          const seen = yield* Fiber.join(watching)
          // Every chunk of both answers, one answer after the other.
          const first = a[0]!.question < b[0]!.question ? a : b
          const second = first === a ? b : a
          expect(seen).toEqual([...first, ...second])

          // A watcher arriving mid-answer gets it from its start.
          fake.setHandler(() => ({ chunks: ["slow ", "and ", "steady"], chunkDelayMillis: 150 }))
          const asking = yield* Effect.fork(collect(agent.ask(run.id, "slowly?")))
          yield* Effect.sleep("200 millis")
          const late = yield* Effect.scoped(Effect.flatMap(agent.watch(run.id), (stream) => collect(stream.pipe(Stream.takeUntil((c) => c._tag === "Done")))))
          const asked = yield* Fiber.join(asking)
          expect(late).toEqual(asked)
        }), { timeout: 60_000 })

      it.scoped("a model that streams without end is cut at its answer bound: the request let go, the answer saved with a note", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice", TRADES, { maxTokensOut: 64, timeoutMillis: 5_000, retries: 0, budget: { tokens: 50_000 } })
          const fake = yield* FakeOllama.start(() => ({ chunks: ["Once upon a time "], endless: "la ".repeat(50) }))
          const agent = yield* ollamaAgent(fake)
          const chunks = yield* collect(agent.ask(run.id, "Tell me a story"))
          const bound = SystemAgent.answerBound(64)
          expect(bound).toBe(64 * 16)
          const done = chunks.at(-1)!
          expect(done._tag).toBe("Done")
          // The model was hung up on at the bound, not left to stream until the timeout.
          yield* fake.awaitDisconnects(1)
          const text = textOf(chunks)
          const [taken, note] = [text.slice(0, bound), text.slice(bound)]
          expect(taken.startsWith("Once upon a time la la ")).toBe(true)
          expect(note).toContain("answer cut here")
          expect(note.length).toBeLessThan(200)

          // Saved whole (note included) as a complete answer; the call recorded with what was taken, charged its reservation.
          const { calls, messages } = yield* historyOf(run.id)
          expect(messages.at(-1)).toMatchObject({ role: "assistant", content: text, error: null })
          expect(calls.map((c) => [c.call.outcome, c.call.answer])).toEqual([["ok", taken]])
          expect(calls[0]!.call.error).toContain(`cut at ${bound} characters`)
          expect(calls[0]!.call.tokensOut).toBe(64)
          if (done._tag === "Done") expect(done.tokensOut).toBe(64)
        }), { timeout: 60_000 })

      it("an answer's bound follows maxTokensOut, within an absolute cap", () => {
        expect(SystemAgent.answerBound(512)).toBe(8_192)
        expect(SystemAgent.answerBound(32_768)).toBe(200_000)
      })

      it.scoped("stopped with an answer in flight (the server shuts down), it cuts the answer at once: recorded as interrupted, the asker told", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const pieces = Array.from({ length: 200 }, (_, i) => `piece${i} `)
          const fake = yield* FakeOllama.start(() => ({ chunks: pieces, chunkDelayMillis: 50 }))
          const scope = yield* Scope.make()
          const agent = yield* ollamaAgent(fake).pipe(Scope.extend(scope))
          const got: Array<ChatChunk> = []
          const asking = yield* Effect.fork(Stream.runForEach(agent.ask(run.id, "How did MSFT do?"), (c) => Effect.sync(() => got.push(c))))
          expect(yield* eventually(() => got.filter((c) => c._tag === "Token").length >= 3)).toBe(true)
          const started = Date.now()
          yield* Scope.close(scope, Exit.void)
          const stopped = Date.now() - started
          // The kernel's default would let the answer run 5 s, to cut it all the same.
          expect(stopped).toBeLessThan(2_000)
          yield* Fiber.await(asking)
          expect(got.at(-1)).toMatchObject({ _tag: "Failed", error: "Interrupted" })
          const { messages } = yield* historyOf(run.id)
          const answer = messages.filter((m) => m.role === "assistant").at(-1)!
          expect(answer.error).toContain("stopped before the answer was complete")
          expect(answer.content.length).toBeGreaterThan(0)
          expect(answer.content.length).toBeLessThan(pieces.join("").length)
        }), { timeout: 60_000 })

      it.scoped("a session with a full queue refuses the next question, typed", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice")
          const fake = yield* FakeOllama.start(() => ({ delayMillis: 600, content: "done" }))
          const agent = yield* ollamaAgent(fake, { queue: 1 })
          const chunks = yield* Stream.toPull(agent.ask(run.id, "first"))
          expect(Chunk.toReadonlyArray(yield* chunks)[0]!._tag).toBe("Asked")
          const second = yield* Effect.fork(collect(agent.ask(run.id, "second")))
          yield* Effect.sleep("100 millis")
          const refused = yield* Effect.flip(collect(agent.ask(run.id, "third")))
          expect(refused._tag).toBe("SystemAgentUnavailable")
          expect(refused.reason).toContain("questions waiting")
          expect((yield* Fiber.join(second)).at(-1)!._tag).toBe("Done")
        }), { timeout: 60_000 })
    }
  )
}
