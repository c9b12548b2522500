/**
 * LLM analysts over HTTP: backtests whose analysts talk to a loopback server speaking Ollama's API
 * (FakeOllama) through the real Ollama backend — structured answers sent and decoded, the retry
 * that shows the model its error, a slow model as an abstention, the budget counted from the
 * server's token counts, the cache, a replay making zero HTTP calls, and the offline fallback when
 * no server answers.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import type { Message } from "../../schemas/Llm.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import { AnswerCache, MemoryCache } from "../../src/llm/AnswerCache.js"
import * as Backends from "../../src/llm/Backends.js"
import { type Budget, LiveBudgets, promptTokensUpperBound } from "../../src/llm/Budget.js"
import { LanguageModel } from "../../src/llm/LanguageModel.js"
import * as Ollama from "../../src/llm/Ollama.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import * as FakeOllama from "./FakeOllama.js"

const symbols = ["AAA", "BBB"] as const
const BARS = 40
/** Rounds an LLM analyst is asked: two symbols, from their 34th bar. */
const ROUNDS = 2 * (BARS - 33)
const market = () => Feed.synthetic({ ...Synthetic.defaults, seed: 5, symbols: [...symbols] as never, bars: BARS })

const strategy = (llm: Record<string, unknown> = {}) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "over http",
    symbols,
    allowShort: true,
    agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "llm_analyst", params: { model: "qwen2.5:7b" } }],
    sizing: { mode: "percent_of_equity", value: 10 },
    llm: { cacheTtlSeconds: 0, retries: 0, ...llm }
  })

const judgement = (direction: string) => JSON.stringify({ direction, confidence: 0.8, rationale: `the brief says ${direction}` })

const backtest = (options: Omit<Backtest.Options, "feed">) =>
  Effect.gen(function*() {
    const events: Array<RunEvent> = []
    const result = yield* Backtest.run({ ...options, feed: market(), onEvent: (event) => void events.push(event) })
    return { result, events, calls: events.flatMap((e) => (e._tag === "LlmCalled" ? [e.call] : [])) }
  })

describe("LLM analysts against Ollama's HTTP API", () => {
  it.scoped("structured answers: the schema is sent as format, a bad answer is shown its error once, then it abstains", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start((request) => {
        const retry = (request.messages?.length ?? 0) > 2
        const aaa = request.messages?.[1]?.content.includes("AAA") ?? false
        // AAA: nonsense, then a good answer when shown its error; BBB: nonsense twice.
        return { content: retry && aaa ? judgement("long") : "I think it goes up!", tokensIn: 300, tokensOut: 20 }
      })
      const model = Ollama.make({ host: fake.url })
      const { calls, events, result } = yield* backtest({ strategy: strategy(), llm: { model } })
      expect(result.status).toBe("completed")
      expect(fake.calls()).toBe(2 * ROUNDS)
      const first = fake.requests[0]!
      expect(first.model).toBe("qwen2.5:7b")
      expect(first.format).toMatchObject({ type: "object", required: ["direction", "confidence", "rationale"] })
      expect(first.options).toMatchObject({ num_predict: 512, temperature: 0 })
      expect(calls.filter((c) => c.round!.startsWith("AAA")).every((c) => c.outcome === "ok" && c.attempts === 2)).toBe(true)
      expect(calls.filter((c) => c.round!.startsWith("BBB")).every((c) => c.outcome === "invalid" && c.error!.includes("not JSON"))).toBe(true)
      // Tokens as the server counted them, both answers of the call.
      expect(calls[0]).toMatchObject({ tokensIn: 600, tokensOut: 40, backend: "ollama", model: "qwen2.5:7b" })
      const opinions = events.flatMap((e) => (e._tag === "OpinionGiven" && e.opinion.agent === "llm_analyst" ? [e.opinion] : []))
      expect(opinions.every((o) => o.symbol === "AAA" && o.rationale === "the brief says long")).toBe(true)
    }))

  it.scoped("an answer with a field far past its limit: its reason quotes a little of it, in the record and in the retry", () =>
    Effect.gen(function*() {
      const huge = JSON.stringify({ direction: "long", confidence: 0.5, rationale: "y".repeat(300_000) })
      const fake = yield* FakeOllama.start(() => ({ content: huge, tokensIn: 300, tokensOut: 20 }))
      const { calls, result } = yield* backtest({ strategy: strategy(), llm: { model: Ollama.make({ host: fake.url }) } })
      expect(result.status).toBe("completed")
      expect(calls).toHaveLength(ROUNDS)
      for (const call of calls) {
        expect(call).toMatchObject({ outcome: "invalid", attempts: 2 })
        expect(call.error).toContain("rationale: Expected a string at most 2000 character(s) long, actual")
        expect(call.error).toContain("(300002 characters)")
        expect(call.error!.length).toBeLessThan(1_000)
        expect(call.answer!.length).toBeLessThan(17_000)
      }
      // The retry shows the model its answer up to 2,000 characters, and why, in a few hundred.
      const retry = fake.requests.find((r) => (r.messages?.length ?? 0) > 2)!
      const [answer, why] = retry.messages!.slice(-2)
      expect(answer!.content.length).toBeLessThan(2_100)
      expect(why!.content).toContain("Your answer could not be used: rationale:")
      expect(why!.content.length).toBeLessThan(1_000)
    }))

  it.scoped("a direction that is none of the three: the retry names all three, not only the first, and every field that was wrong", () =>
    Effect.gen(function*() {
      // "down" for a direction and a confidence that is text: shown both problems, and the three
      // directions together (the first alone, `Expected "long"`, steered the model to long).
      const fake = yield* FakeOllama.start((request) =>
        (request.messages?.length ?? 0) > 2
          ? { content: judgement("short") }
          : { content: JSON.stringify({ direction: "down", confidence: "high", rationale: "it falls" }) }
      )
      const { calls, result } = yield* backtest({ strategy: strategy(), llm: { model: Ollama.make({ host: fake.url }) } })
      expect(result.status).toBe("completed")
      expect(calls.every((c) => c.outcome === "ok" && c.attempts === 2)).toBe(true)
      const retry = fake.requests.find((r) => (r.messages?.length ?? 0) > 2)!
      const why = retry.messages!.at(-1)!.content
      expect(why).toContain(`direction: Expected "long" | "short" | "flat", actual "down"`)
      expect(why).toContain(`confidence: Expected number, actual "high"`)
    }))

  it.scoped("a model slower than the call's limit: the request is aborted, the round abstains, the run goes on", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ content: judgement("long"), delayMillis: 5_000 }))
      const { calls, result } = yield* backtest({ strategy: strategy({ timeoutMillis: 150 }), llm: { model: Ollama.make({ host: fake.url }) } })
      expect(result.status).toBe("completed")
      expect(calls).toHaveLength(ROUNDS)
      expect(calls.every((c) => c.outcome === "timeout" && c.error!.includes("150 ms"))).toBe(true)
      yield* fake.awaitDisconnects(ROUNDS)
    }))

  it.scoped("the budget is counted from the server's tokens and never exceeded", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ content: judgement("short"), tokensIn: 900, tokensOut: 30 }))
      const { calls, events } = yield* backtest({
        strategy: strategy({ budget: { tokens: 8_000 }, maxTokensOut: 64 }),
        llm: { model: Ollama.make({ host: fake.url }) }
      })
      const made = calls.filter((c) => c.outcome === "ok")
      expect(made.length).toBeGreaterThan(0)
      expect(made.length).toBeLessThan(ROUNDS)
      expect(made.reduce((sum, c) => sum + c.tokensIn + c.tokensOut, 0)).toBeLessThanOrEqual(8_000)
      expect(fake.calls()).toBe(made.length)
      expect(events.filter((e) => e._tag === "LlmBudgetSpent")).toHaveLength(1)
    }))

  it.scoped("a server that answers 500: each failed call is recorded with no tokens and charged none, counted as failed; the budget outlasts them", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ status: 500, error: "llama runner process has terminated" }))
      const model = Ollama.make({ host: fake.url })
      // Room for about four calls' reservations: charged them, the run's LLM agents would abstain from the fifth on.
      const s = strategy({ budget: { tokens: 8_000 }, maxTokensOut: 64 })
      const { calls, events, result } = yield* backtest({ strategy: s, llm: { model } })
      expect(result.status).toBe("completed")
      const started = events[0]
      expect(started?._tag === "RunStarted" && started.llm?.failedCalls).toBe("uncharged")
      expect(calls).toHaveLength(ROUNDS)
      expect(calls.every((c) => c.outcome === "error" && c.tokensIn === 0 && c.tokensOut === 0 && c.attempts === 1)).toBe(true)
      expect(fake.calls()).toBe(ROUNDS)
      expect(events.filter((e) => e._tag === "LlmBudgetSpent")).toHaveLength(0)
      expect(result.llm).toMatchObject({ calls: ROUNDS, failed: ROUNDS, tokensIn: 0, tokensOut: 0, budget: { tokens: 0, exhausted: false } })

      // A run recorded before (its RunStarted says nothing of failed calls), resumed: charged as it was,
      // each failed call at its reservation, until its budget refuses them.
      const old = { backend: "ollama" as const, model: "qwen2.5:7b", description: "old", reasoningRoles: "own" as const, prompts: "parts" as const }
      const before = yield* backtest({ strategy: s, llm: { model, started: old } })
      expect(before.events[0]?._tag === "RunStarted" && before.events[0].llm).toEqual(old)
      const failed = before.calls.filter((c) => c.outcome === "error")
      expect(failed.length).toBeGreaterThan(0)
      expect(failed.every((c) => c.tokensIn > 64)).toBe(true)
      expect(before.calls.some((c) => c.outcome === "budget")).toBe(true)
      expect(before.result.llm?.budgetSpent).toBeDefined()
    }))

  it.scoped("a call only the calls in flight leave no room for waits for them to settle: every call is made, the budget is not spent", () =>
    Effect.gen(function*() {
      // What a call reserves: its prompt's upper bound and maxTokensOut. A first run, unlimited, to read them.
      const fake = yield* FakeOllama.start(() => ({ content: judgement("long"), tokensIn: 10, tokensOut: 5 }))
      const model = Ollama.make({ host: fake.url })
      yield* backtest({ strategy: strategy({ maxTokensOut: 64 }), llm: { model } })
      const reservations = fake.requests.map((r) => promptTokensUpperBound((r.messages ?? []) as ReadonlyArray<Message>) + 64)
      // Room for one call in flight, not two; what each uses (15 tokens) leaves room for all of them.
      const limit = Math.floor(1.5 * Math.max(...reservations))
      expect(2 * Math.min(...reservations)).toBeGreaterThan(limit)
      const { calls, events, result } = yield* backtest({ strategy: strategy({ maxTokensOut: 64, budget: { tokens: limit } }), llm: { model } })
      expect(result.status).toBe("completed")
      // Before, each slice's second call (AAA's and BBB's are asked together) was refused.
      expect(calls.map((c) => c.outcome)).toEqual(new Array(ROUNDS).fill("ok"))
      expect(fake.calls()).toBe(2 * ROUNDS)
      expect(events.filter((e) => e._tag === "LlmBudgetSpent")).toHaveLength(0)
      expect(result.llm?.budgetSpent).toBeUndefined()
    }))

  it.scoped("while it runs, its budget is the process's live one: what its chat spends there, its agents cannot", () =>
    Effect.gen(function*() {
      const run = "bt-live-budget" as RunId
      const fake = yield* FakeOllama.start(() => ({ content: judgement("short"), tokensIn: 900, tokensOut: 30 }))
      const options = { runId: run, strategy: strategy({ budget: { tokens: 8_000 }, maxTokensOut: 64 }) }

      // Nobody else spends: the agents make several calls.
      const alone = yield* backtest({ ...options, llm: { model: Ollama.make({ host: fake.url }), budgets: new LiveBudgets() } })
      const aloneOk = alone.calls.filter((c) => c.outcome === "ok").length

      // The chat (as the system agent does) spends all that is not reserved while the first calls are out.
      const budgets = new LiveBudgets()
      let live: Budget | undefined
      let chatSpent = 0
      const chatty = yield* FakeOllama.start(() => {
        if (live === undefined) {
          live = budgets.get(run)
          const reserved = live!.reserve(live!.remaining, 0)
          if (reserved._tag === "Right") chatSpent = live!.settle(reserved.right, reserved.right.tokens, 0).tokens
        }
        return { content: judgement("short"), tokensIn: 900, tokensOut: 30 }
      })
      const shared = yield* backtest({ ...options, llm: { model: Ollama.make({ host: chatty.url }), budgets } })
      expect(live).toBeDefined()
      expect(chatSpent).toBeGreaterThan(0)
      const made = shared.calls.filter((c) => c.outcome === "ok")
      expect(made.length).toBeLessThan(aloneOk)
      expect(chatty.calls()).toBe(made.length)
      expect(shared.calls.filter((c) => c.outcome === "budget").length).toBeGreaterThan(0)
      expect(shared.events.filter((e) => e._tag === "LlmBudgetSpent")).toHaveLength(1)
      // One budget: the chat's spending and the agents' together, within the limit.
      expect(live!.tokens).toBe(chatSpent + made.reduce((sum, c) => sum + c.tokensIn + c.tokensOut, 0))
      expect(live!.tokens).toBeLessThanOrEqual(8_000)
      // Ended, the run's budget is live no more.
      expect(budgets.get(run)).toBeUndefined()
    }))

  it.scoped("while its chat's call is in flight, the run's calls it crowds out wait for it to settle, the backtest's virtual time standing still", () =>
    Effect.gen(function*() {
      const run = "bt-chat-in-flight" as RunId
      const fake = yield* FakeOllama.start(() => ({ content: judgement("short"), tokensIn: 900, tokensOut: 30 }))
      let held = 0
      // As the system agent does, on the server's runtime: the chat reserves all but 500 tokens as the
      // run starts, and its answer settles at 100 tokens a while later (wall-clock).
      const budgets = new (class extends LiveBudgets {
        override register(budget: Budget, chat?: { readonly tokens: number; readonly cost: number }) {
          const withdraw = super.register(budget, chat)
          const reserved = budget.reserve(budget.remaining - 500, 0)
          if (reserved._tag === "Right") {
            held = reserved.right.tokens
            setTimeout(() => budget.settle(reserved.right, 100, 0), 300)
          }
          return withdraw
        }
      })()
      const { calls, events, result } = yield* backtest({
        runId: run,
        strategy: strategy({ budget: { tokens: 20_000 }, maxTokensOut: 64 }),
        llm: { model: Ollama.make({ host: fake.url }), budgets }
      })
      expect(result.status).toBe("completed")
      expect(held).toBe(19_500)
      // Before, the first slice's calls were refused at once ("no room … while others are in flight").
      expect(calls.map((c) => c.outcome)).toEqual(new Array(ROUNDS).fill("ok"))
      expect(fake.calls()).toBe(ROUNDS)
      expect(events.filter((e) => e._tag === "LlmBudgetSpent")).toHaveLength(0)
    }))

  it.scoped("the cache answers a second run; its replay makes no HTTP call at all", () =>
    Effect.gen(function*() {
      const fake = yield* FakeOllama.start(() => ({ content: judgement("long"), tokensIn: 100, tokensOut: 10 }))
      const model = Ollama.make({ host: fake.url })
      const cache = AnswerCache.fromMemory(new MemoryCache())
      const s = strategy({ cacheTtlSeconds: 60 })
      const first = yield* backtest({ strategy: s, llm: { model, cache } })
      expect(fake.calls()).toBe(ROUNDS)
      const second = yield* backtest({ strategy: s, llm: { model, cache } })
      expect(fake.calls()).toBe(ROUNDS)
      expect(second.calls.every((c) => c.cache === "hit")).toBe(true)
      expect(second.result.counts.orders).toBe(first.result.counts.orders)
      const replayed = yield* backtest({ strategy: s, llm: { model, recorded: first.calls } })
      expect(fake.calls()).toBe(ROUNDS)
      expect(replayed.result.checksum).toBe(first.result.checksum)
    }))

  it.scoped("no server at the host: start-up picks the offline analyst, and the run says so", () =>
    Effect.gen(function*() {
      const selected = yield* Backends.select({ host: yield* FakeOllama.unusedUrl })
      expect(selected.info.kind).toBe("offline")
      const model = yield* Effect.provide(LanguageModel, selected.layer)
      const { calls, events } = yield* backtest({ strategy: strategy(), llm: { model } })
      const started = events[0]!
      expect(started._tag === "RunStarted" && started.llm).toMatchObject({ backend: "offline", description: expect.stringContaining("offline: no Ollama at") })
      expect(calls.every((c) => c.backend === "offline" && c.outcome === "ok")).toBe(true)
    }))
})
