/**
 * LLM analysts in a backtest, against scripted backends (the HTTP one is test/llm/Ollama.test.ts):
 * the offline analyst, parallel calls, structured answers and their retry, a timeout as an
 * abstention, the budget failing closed, the cache, replay from the recording with zero model calls,
 * and the brief's look-ahead.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema, Stream } from "effect"
import type { LlmCall } from "../../schemas/Llm.js"
import { LlmTimeout, LlmUnavailable } from "../../schemas/Llm.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import { AnswerCache, MemoryCache } from "../../src/llm/AnswerCache.js"
import { promptTokensUpperBound, spendsBudget } from "../../src/llm/Budget.js"
import type { ChatAnswer, ChatRequest, LanguageModel } from "../../src/llm/LanguageModel.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Offline from "../../src/llm/Offline.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import { PromptReader } from "../../src/llm/RunPrompts.js"
import { sha256Hex } from "../../src/internal/sha256.js"

const symbols = ["AAA", "BBB"] as const
const market = (bars: number, seed = 11) => Feed.synthetic({ ...Synthetic.defaults, seed, symbols: [...symbols] as never, bars })

const strategy = (agents: ReadonlyArray<unknown>, llm: Record<string, unknown> = {}) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "llm",
    symbols,
    allowShort: true,
    agents,
    sizing: { mode: "percent_of_equity", value: 10 },
    llm: { cacheTtlSeconds: 0, ...llm }
  })

const ofTag = <T extends RunEvent["_tag"]>(events: ReadonlyArray<RunEvent>, tag: T) =>
  events.filter((e): e is Extract<RunEvent, { _tag: T }> => e._tag === tag)

const record = (options: Backtest.Options) =>
  Effect.gen(function*() {
    const events: Array<RunEvent> = []
    const result = yield* Backtest.run({ ...options, onEvent: (event) => void events.push(event) })
    return { result, events }
  })

/** A backend answering with `answer(request)` after `delayMillis` of wall-clock time, counting calls and the most in flight. */
const scripted = (answer: (request: ChatRequest, call: number) => Effect.Effect<ChatAnswer, LlmTimeout | LlmUnavailable>, delayMillis = 0) => {
  const stats = { calls: 0, inFlight: 0, maxInFlight: 0 }
  const model: LanguageModel["Type"] = {
    backend: { kind: "ollama", description: "scripted" },
    chat: (request) =>
      Effect.gen(function*() {
        const call = ++stats.calls
        stats.inFlight++
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight)
        if (delayMillis > 0) yield* Effect.sleep(delayMillis)
        return yield* answer(request, call)
      }).pipe(Effect.ensuring(Effect.sync(() => stats.inFlight--))),
    chatStream: () => Stream.die("not used")
  }
  return { model, stats }
}

/** A model that answers like the offline analyst would, as JSON text: a stand-in for a real one. */
const echoOffline = (request: ChatRequest): Effect.Effect<ChatAnswer> =>
  Effect.succeed({ ...request.offline(), toolCalls: [], tokensIn: 100, tokensOut: 20 })

describe("LLM analysts", () => {
  it.effect("offline: a debate analyst votes with the others, says it is offline, and repeats itself byte for byte", () =>
    Effect.gen(function*() {
      const s = strategy([{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "llm_debate", params: { rounds: 2 } }])
      const first = yield* record({ strategy: s, feed: market(120) })
      const second = yield* record({ strategy: s, feed: market(120) })
      expect(first.result.status).toBe("completed")
      expect(second.result.checksum).toBe(first.result.checksum)
      const started = ofTag(first.events, "RunStarted")[0]!
      expect(started.llm?.backend).toBe("offline")
      const calls = ofTag(first.events, "LlmCalled").map((e) => e.call)
      // Two symbols, from bar 34 on: bull-1, bear-1, bull-2, bear-2 and the judge each round.
      expect(calls.length).toBe(2 * (120 - 33) * 5)
      expect(calls.every((c) => c.backend === "offline" && c.outcome === "ok")).toBe(true)
      expect(new Set(calls.map((c) => c.step))).toEqual(new Set(["bull-1", "bear-1", "bull-2", "bear-2", "judge"]))
      const opinions = ofTag(first.events, "OpinionGiven").map((e) => e.opinion).filter((o) => o.agent === "llm_debate")
      expect(opinions.length).toBeGreaterThan(0)
      expect(opinions.every((o) => o.rationale.startsWith("Offline analyst"))).toBe(true)
      const reasoning = ofTag(first.events, "ReasoningRecorded")
      expect(new Set(reasoning.map((r) => r.kind))).toEqual(new Set(["plan", "analysis", "decision", "reflection"]))
      // Per round: the plan, then bull and bear of each debate round, then the judge's decision.
      const firstRound = reasoning.filter((r) => r.round === reasoning[0]!.round && r.kind !== "reflection")
      expect(firstRound.map((r) => `${r.kind}:${r.role}`)).toEqual(
        ["plan:judge", "analysis:bull", "analysis:bear", "analysis:bull", "analysis:bear", "decision:judge"]
      )
      expect(started.llm?.reasoningRoles).toBe("own")
      // The judge's decision is saved with the brief it saw, and nothing in it is after its bar.
      const decision = reasoning.find((r) => r.kind === "decision")!
      const brief = decision.context as { asOf: string; bars: ReadonlyArray<{ t: string }> }
      expect(Date.parse(brief.asOf)).toBe(Number(decision.round.split("@")[1]))
      expect(brief.bars.every((b) => Date.parse(b.t) <= Date.parse(brief.asOf))).toBe(true)
    }))

  it.effect("a plan is its agent's own (a debate's judge's) in a new run; a re-execution of a run recorded before says analyst, as it was recorded", () =>
    Effect.gen(function*() {
      const s = strategy([{ type: "llm_debate", params: { rounds: 1 } }, { type: "llm_analyst", name: "single" }])
      const plans = (events: ReadonlyArray<RunEvent>) =>
        new Map(ofTag(events, "ReasoningRecorded").filter((r) => r.kind === "plan").map((r) => [r.agent, r.role]))
      const fresh = yield* record({ strategy: s, feed: market(60) })
      expect(plans(fresh.events)).toEqual(new Map([["llm_debate", "judge"], ["single", "analyst"]]))
      // A recording from before (its RunStarted names no reasoningRoles), re-executed from its calls:
      // every plan the analyst's, its RunStarted as it was — the events it recorded, byte for byte.
      const { reasoningRoles: _, ...before } = ofTag(fresh.events, "RunStarted")[0]!.llm!
      const calls = ofTag(fresh.events, "LlmCalled").map((e) => e.call)
      const again = yield* record({ strategy: s, feed: market(60), llm: { model: Offline.make(), recorded: calls, started: before } })
      expect(ofTag(again.events, "RunStarted")[0]!.llm).toEqual(before)
      expect(plans(again.events)).toEqual(new Map([["llm_debate", "analyst"], ["single", "analyst"]]))
      const strip = (events: ReadonlyArray<RunEvent>) =>
        events.map((e) =>
          e._tag === "RunStarted" ? { ...e, llm: before } : e._tag === "ReasoningRecorded" && e.kind === "plan" ? { ...e, role: "analyst" } : e
        )
      // All but the checksum, which covers them.
      expect(again.events.slice(0, -1)).toEqual(strip(fresh.events).slice(0, -1))
      expect({ ...again.events.at(-1)!, checksum: "" }).toEqual({ ...fresh.events.at(-1)!, checksum: "" })
    }))

  it.live("the LLM analysts of a round think in parallel, outside the backtest's virtual time", () =>
    Effect.gen(function*() {
      const { model, stats } = scripted(echoOffline, 30)
      const s = strategy([{ type: "llm_analyst", name: "a" }, { type: "llm_analyst", name: "b" }, { type: "llm_analyst", name: "c" }])
      const { events, result } = yield* record({ strategy: s, feed: market(40), llm: { model, limiter: yield* Effect.makeSemaphore(8) } })
      expect(result.status).toBe("completed")
      expect(stats.calls).toBe(3 * 2 * (40 - 33))
      // Three analysts × two symbols asked together: all six in flight at once.
      expect(stats.maxInFlight).toBe(6)
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls.every((c) => c.outcome === "ok" && c.backend === "ollama" && c.tokensIn === 100)).toBe(true)
      // Logged in a fixed order whatever order they finished in: by agent, round, step, within each slice.
      const slices = new Map<string, Array<string>>()
      for (const c of calls) {
        const ts = c.round!.split("@")[1]!
        slices.set(ts, [...(slices.get(ts) ?? []), `${c.agent}\u0000${c.round}`])
      }
      for (const keys of slices.values()) expect(keys).toEqual([...keys].sort())
    }))

  it.live("a backtest re-run from its recorded answers calls no model and matches bit for bit", () =>
    Effect.gen(function*() {
      let n = 0
      // Answers no offline rule would give: replay must take them from the recording.
      const live = scripted((request) =>
        Effect.succeed({
          content: request.messages[0]!.content.includes("researcher")
            ? JSON.stringify({ argument: `argument ${++n}`, conviction: (n % 10) / 10 })
            : JSON.stringify({ direction: n % 3 === 0 ? "short" : "long", confidence: 0.9, rationale: `judged ${++n}` }),
          toolCalls: [],
          tokensIn: 50,
          tokensOut: 10
        })
      )
      const s = strategy([{ type: "llm_debate" }])
      const original = yield* record({ strategy: s, feed: market(60), llm: { model: live.model } })
      const recorded = ofTag(original.events, "LlmCalled").map((e) => e.call)
      const silent = scripted(() => Effect.fail(new LlmUnavailable({ model: "x", reason: "must not be called" })))
      const replayed = yield* record({ strategy: s, feed: market(60), llm: { model: silent.model, recorded } })
      expect(silent.stats.calls).toBe(0)
      expect(replayed.result.checksum).toBe(original.result.checksum)
      expect(replayed.result.counts.orders).toBe(original.result.counts.orders)
      expect(original.result.counts.orders).toBeGreaterThan(0)
    }))

  it.live("answers at hand are decided in place, and exactly as asking for them would (traced rounds ask)", () =>
    Effect.gen(function*() {
      let n = 0
      const live = scripted((request) =>
        Effect.succeed({
          content: request.messages[0]!.content.includes("researcher")
            ? JSON.stringify({ argument: `point ${++n}`, conviction: (n % 5) / 5 })
            : JSON.stringify({ direction: ++n % 3 === 0 ? "short" : "long", confidence: 0.7, rationale: `judged ${n}` }),
          toolCalls: [],
          tokensIn: 20,
          tokensOut: 5
        })
      )
      const s = strategy([{ type: "llm_debate", params: { rounds: 2 } }, { type: "llm_analyst" }], { cacheTtlSeconds: 600 })
      const cache = AnswerCache.fromMemory(new MemoryCache())
      const original = yield* record({ strategy: s, feed: market(50), llm: { model: live.model, cache } })
      const calls = ofTag(original.events, "LlmCalled").map((e) => e.call)
      const asked = live.stats.calls
      // From the recording: in place (untraced), and through the session's effects (every round traced).
      const inPlace = yield* record({ strategy: s, feed: market(50), llm: { model: live.model, recorded: calls } })
      const traced = yield* record({ strategy: s, feed: market(50), traceRounds: 1, llm: { model: live.model, recorded: calls } })
      expect(inPlace.result.checksum).toBe(original.result.checksum)
      expect(traced.result.checksum).toBe(original.result.checksum)
      // From the cache: the same hits either way.
      const hits = yield* record({ strategy: s, feed: market(50), llm: { model: live.model, cache } })
      const tracedHits = yield* record({ strategy: s, feed: market(50), traceRounds: 1, llm: { model: live.model, cache } })
      expect(tracedHits.result.checksum).toBe(hits.result.checksum)
      expect(ofTag(hits.events, "LlmCalled").every((e) => e.call.cache === "hit")).toBe(true)
      expect(live.stats.calls).toBe(asked)
    }))

  it.live("a paper run gives up at the round's deadline in wall-clock time, recorded so a replay abstains the same", () =>
    Effect.gen(function*() {
      const { model } = scripted(echoOffline, 400)
      const s = Schema.decodeUnknownSync(Strategy)({
        ...Schema.encodeSync(Strategy)(strategy([{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "llm_analyst" }])),
        consensus: { deadlineMillis: 100 }
      })
      const { events, result } = yield* record({ strategy: s, feed: market(36), mode: "paper", llm: { model } })
      expect(result.status).toBe("completed")
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls).toHaveLength(2 * 3)
      expect(calls.every((c) => c.outcome === "timeout" && c.error!.includes("deadline"))).toBe(true)
      const replayed = yield* record({ strategy: s, feed: market(36), mode: "paper", llm: { model, recorded: calls } })
      expect(replayed.result.checksum).toBe(result.checksum)
    }))

  it.live("a model that does not answer in time is an abstention, retried first, and the run goes on", () =>
    Effect.gen(function*() {
      const { model, stats } = scripted(() => Effect.never, 0)
      const s = strategy([{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "llm_analyst" }], { timeoutMillis: 100, retries: 1 })
      const timed = {
        ...model,
        chat: (request: ChatRequest) => model.chat(request).pipe(Effect.timeoutFail({ duration: request.timeoutMillis, onTimeout: () => new LlmTimeout({ model: request.model, millis: request.timeoutMillis }) }))
      }
      const { events, result } = yield* record({ strategy: s, feed: market(36), llm: { model: timed } })
      expect(result.status).toBe("completed")
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls.length).toBe(2 * 3)
      expect(calls.every((c) => c.outcome === "timeout" && c.attempts === 2)).toBe(true)
      expect(stats.calls).toBe(12)
      expect(ofTag(events, "OpinionGiven").some((e) => e.opinion.agent === "llm_analyst")).toBe(false)
    }))

  it.live("an answer that does not decode is shown its error once; twice is an abstention", () =>
    Effect.gen(function*() {
      const prompts: Array<ChatRequest> = []
      const { model } = scripted((request) => {
        prompts.push(request)
        // First answers are nonsense; the retry answers well for AAA only.
        const good = request.messages.length === 4 && request.messages[1]!.content.includes("AAA")
        return Effect.succeed({
          content: good ? JSON.stringify({ direction: "long", confidence: 0.7, rationale: "fixed" }) : `{"direction":"up","confidence":7}`,
          toolCalls: [],
          tokensIn: 10,
          tokensOut: 10
        })
      })
      const s = strategy([{ type: "llm_analyst" }])
      const { events } = yield* record({ strategy: s, feed: market(34), llm: { model, limiter: yield* Effect.makeSemaphore(1) } })
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls.map((c) => [c.round!.split("@")[0], c.outcome, c.attempts])).toEqual([["AAA", "ok", 2], ["BBB", "invalid", 2]])
      expect(calls[1]!.error).toContain("direction")
      const retry = prompts.find((p) => p.messages.length === 4)!
      expect(retry.messages[3]!.content).toContain("could not be used")
      expect(retry.format).toMatchObject({ type: "object", required: expect.arrayContaining(["direction", "confidence", "rationale"]) })
    }))

  it.live("a huge answer that does not decode is quoted back cut short: its retry fits the budget, and the run's model is not spent", () =>
    Effect.gen(function*() {
      const prompts: Array<ChatRequest> = []
      const { model } = scripted((request, call) => {
        prompts.push(request)
        return Effect.succeed({
          content: call === 1 ? "x".repeat(3_000_000) : JSON.stringify({ direction: "long", confidence: 0.6, rationale: "fine" }),
          toolCalls: [],
          tokensIn: 100,
          tokensOut: 20
        })
      })
      const s = strategy([{ type: "llm_analyst" }], { budget: { tokens: 100_000 } })
      const { events } = yield* record({ strategy: s, feed: market(36), llm: { model, limiter: yield* Effect.makeSemaphore(1) } })
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls.length).toBe(2 * 3)
      expect(calls.every((c) => c.outcome === "ok")).toBe(true)
      expect(calls.filter((c) => c.attempts === 2)).toHaveLength(1)
      expect(ofTag(events, "LlmBudgetSpent")).toEqual([])
      const retry = prompts.find((p) => p.messages.length === 4)!
      expect(retry.messages[2]!.content.length).toBeLessThan(2_100)
      expect(retry.messages[2]!.content).toContain("(3000000 characters)")
    }))

  it.effect("a long answer is recorded bounded: a valid one as its schema reads it (the replay sees the same), a bad one cut", () =>
    Effect.gen(function*() {
      const junk = "j".repeat(2_000_000)
      const { model, stats } = scripted((request) =>
        Effect.succeed({
          content: request.messages[1]!.content.includes("AAA")
            ? JSON.stringify({ direction: "long", confidence: 0.6, rationale: "fine", junk })
            : `{"direction":"up","pad":"${junk}"}`,
          toolCalls: [],
          tokensIn: 10,
          tokensOut: 10
        })
      )
      const s = strategy([{ type: "llm_analyst" }])
      const { events, result } = yield* record({ strategy: s, feed: market(34), llm: { model } })
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls.map((c) => [c.round!.split("@")[0], c.outcome])).toEqual([["AAA", "ok"], ["BBB", "invalid"]])
      expect(JSON.parse(calls[0]!.answer!)).toEqual({ direction: "long", confidence: 0.6, rationale: "fine" })
      expect(calls[1]!.answer!.length).toBeLessThan(17_000)
      expect(calls[1]!.answer).toContain("characters)")
      expect(ofTag(events, "OpinionGiven").filter((e) => e.opinion.agent === "llm_analyst").map((e) => e.opinion.direction)).toEqual(["long"])
      // Replayed from what was recorded: no model call, the same run.
      const asked = stats.calls
      const replayed = yield* record({ strategy: s, feed: market(34), llm: { model, recorded: calls } })
      expect(stats.calls).toBe(asked)
      expect(replayed.result.checksum).toBe(result.checksum)
    }))

  it.effect("an answer a database cannot hold (a NUL, a lone surrogate) is refused like any undecodable one", () =>
    Effect.gen(function*() {
      let n = 0
      const { model } = scripted(() =>
        Effect.succeed({
          content: JSON.stringify({ direction: "long", confidence: 0.5, rationale: ++n % 2 === 0 ? "bad\u0000byte" : "lone \ud800 half" }),
          toolCalls: [],
          tokensIn: 1,
          tokensOut: 1
        })
      )
      const { events } = yield* record({ strategy: strategy([{ type: "llm_analyst" }]), feed: market(34), llm: { model } })
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls.map((c) => c.outcome)).toEqual(["invalid", "invalid"])
      expect(calls[0]!.error).toContain("NUL character or a lone surrogate")
    }))

  it.effect("the budget fails closed: never exceeded, the run says so once, LLM analysts abstain after", () =>
    Effect.gen(function*() {
      const s = strategy([{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "llm_analyst" }], { budget: { tokens: 5_000 }, maxTokensOut: 100 })
      const { model } = scripted(echoOffline)
      const { events, result } = yield* record({ strategy: s, feed: market(80), llm: { model } })
      expect(result.status).toBe("completed")
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      const spent = ofTag(events, "LlmBudgetSpent")
      expect(spent.length).toBe(1)
      const charged = calls.reduce((sum, c) => sum + c.tokensIn + c.tokensOut, 0)
      expect(charged).toBeLessThanOrEqual(5_000)
      const firstRefused = calls.findIndex((c) => c.outcome === "budget")
      expect(firstRefused).toBeGreaterThan(0)
      expect(calls.slice(firstRefused).every((c) => c.outcome === "budget")).toBe(true)
      expect(spent[0]!.reason).toContain("budget is spent")
      // The result says so too (the summary's and the result document's source), with the model.
      expect(result.llm).toMatchObject({ backend: "ollama", model: "llama3.2:3b", description: "scripted", budgetSpent: spent[0]!.reason })
      // What its agents used, tallied from the run's model calls as the recorder tallies them.
      expect(result.llm).toMatchObject({
        calls: calls.length,
        refused: calls.length - firstRefused,
        tokensIn: calls.reduce((sum, c) => sum + c.tokensIn, 0),
        tokensOut: calls.reduce((sum, c) => sum + c.tokensOut, 0),
        budget: { tokens: charged, maxTokens: 5_000, exhausted: true }
      })
      // A replay spends the same budget at the same call, and says so at the same place.
      const replayed = yield* record({ strategy: s, feed: market(80), llm: { model, recorded: calls } })
      expect(replayed.result.checksum).toBe(result.checksum)
    }))

  it.live("LLM analysts whose calls do not fit in the budget together, but whose spending does, all speak every round: each call waits its turn", () =>
    Effect.gen(function*() {
      const reservations: Array<number> = []
      const small = (request: ChatRequest) =>
        Effect.sync(() => {
          reservations.push(promptTokensUpperBound(request.messages) + 64)
          return { ...request.offline(), toolCalls: [], tokensIn: 10, tokensOut: 5 }
        })
      const agents = [{ type: "llm_analyst", name: "a" }, { type: "llm_analyst", name: "b" }, { type: "llm_analyst", name: "c" }]
      const rounds = 2 * (40 - 33)
      // What each call reserves (its prompt's upper bound and maxTokensOut), read on a run without a limit.
      yield* record({ strategy: strategy(agents, { maxTokensOut: 64 }), feed: market(40), llm: { model: scripted(small).model } })
      expect(reservations).toHaveLength(3 * rounds)
      // Room for one call in flight, never two; what they all use (15 tokens each) fits beside one.
      const limit = Math.floor(1.5 * Math.max(...reservations))
      expect(2 * Math.min(...reservations)).toBeGreaterThan(limit)
      expect(3 * rounds * 15 + Math.max(...reservations)).toBeLessThanOrEqual(limit)

      const s = strategy(agents, { maxTokensOut: 64, budget: { tokens: limit } })
      const { model, stats } = scripted(small, 5)
      const { events, result } = yield* record({ strategy: s, feed: market(40), events: "rounds", llm: { model } })
      expect(result.status).toBe("completed")
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      // Before, each slice's first call was made and the others refused: "a" alone spoke, every round.
      expect(calls.filter((c) => c.outcome !== "ok")).toEqual([])
      expect(stats.calls).toBe(3 * rounds)
      expect(stats.maxInFlight).toBe(1)
      const opinions = ofTag(events, "OpinionGiven").map((e) => e.opinion.agent)
      for (const agent of ["a", "b", "c"]) expect(opinions.filter((o) => o === agent)).toHaveLength(rounds)
      expect(ofTag(events, "LlmBudgetSpent")).toEqual([])
      // Its replay answers from the recording, waits for nothing, and matches.
      const replayed = yield* record({ strategy: s, feed: market(40), events: "rounds", llm: { model, recorded: calls } })
      expect(replayed.result.checksum).toBe(result.checksum)
      expect(stats.calls).toBe(3 * rounds)
    }))

  it.live("a budget running out mid-slice replays exactly, whichever of the slice's parallel calls was refused first", () =>
    Effect.gen(function*() {
      // AAA's calls answer late, BBB's at once: live, a slice's calls end in another order than the
      // replay (answered from the recording, in the agents' order) ends them.
      // Each call uses about half what it reserves: the budget is spent within the run, and until
      // then calls the reservations of those in flight crowd out wait for them to settle.
      const { model } = scripted((request) =>
        Effect.zipRight(
          request.messages.some((m) => m.content.includes("AAA")) ? Effect.sleep(15) : Effect.void,
          Effect.map(echoOffline(request), (answer) => ({ ...answer, tokensIn: 1_300 }))
        )
      )
      const agents = [{ type: "llm_analyst" }, { type: "llm_debate", name: "debate" }]
      const spentAt = new Set<string>()
      // Runs with a call refused for the reservations of the calls in flight (it waits for them instead).
      let crowded = 0
      // Budgets that run out at different calls of different slices.
      for (let tokens = 3_000; tokens <= 18_000; tokens += 750) {
        const s = strategy(agents, { budget: { tokens }, maxTokensOut: 64 })
        const live = yield* record({ strategy: s, feed: market(40), llm: { model } })
        const spent = ofTag(live.events, "LlmBudgetSpent")
        expect(spent.length).toBeLessThanOrEqual(1)
        if (spent.length === 1) spentAt.add(`${spent[0]!.agent} ${spent[0]!.round}`)
        const calls = ofTag(live.events, "LlmCalled").map((e) => e.call)
        if (calls.some((c) => c.outcome === "budget" && !spendsBudget(c.error))) crowded++
        const replayed = yield* record({ strategy: s, feed: market(40), llm: { model, recorded: calls } })
        const at = replayed.events.findIndex((e, i) => JSON.stringify(e) !== JSON.stringify(live.events[i]))
        expect({ tokens, at }).toEqual({ tokens, at: -1 })
        expect(replayed.result.checksum).toBe(live.result.checksum)
      }
      expect(spentAt.size).toBeGreaterThan(1)
      expect(crowded).toBe(0)
    }), 60_000)

  it.effect("answers are cached by model, prompt and data window: a second run asks no model", () =>
    Effect.gen(function*() {
      const cache = AnswerCache.fromMemory(new MemoryCache())
      const s = strategy([{ type: "llm_analyst" }], { cacheTtlSeconds: 600 })
      const first = scripted(echoOffline)
      yield* record({ strategy: s, feed: market(50), llm: { model: first.model, cache } })
      const second = scripted(echoOffline)
      const { events } = yield* record({ strategy: s, feed: market(50), llm: { model: second.model, cache } })
      expect(first.stats.calls).toBe(2 * 17)
      expect(second.stats.calls).toBe(0)
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls.every((c) => c.cache === "hit" && c.tokensIn === 0)).toBe(true)
      expect(yield* cache.stats).toMatchObject({ hits: 34, misses: 34 })
    }))

  it.effect("look-ahead: the prompt at a bar does not change when the data after it does", () =>
    Effect.gen(function*() {
      const s = strategy([{ type: "llm_analyst" }])
      // Each call's prompt whole, read back from the run's calls (each part's text is in the first call that had it).
      const prompts = (events: ReadonlyArray<RunEvent>) => {
        const reader = new PromptReader()
        return new Map(ofTag(events, "LlmCalled").map((e): [string, LlmCall & { readonly whole: string | undefined }] => [
          e.call.round!,
          { ...e.call, whole: reader.read(e.call) }
        ]))
      }
      const full = market(80)
      const bars = [...full]
      const cut = bars[59]!.ts
      // The same market up to `cut`; after it, every price doubled.
      const changed: Feed.Feed = {
        ...full,
        fingerprint: "changed",
        [Symbol.iterator]: () =>
          bars.map((slice) =>
            slice.ts <= cut
              ? slice
              : { ts: slice.ts, bars: slice.bars.map((b) => ({ ...b, open: b.open * 2, high: b.high * 2, low: b.low * 2, close: b.close * 2 })) }
          )[Symbol.iterator]()
      }
      const a = prompts((yield* record({ strategy: s, feed: full })).events)
      const b = prompts((yield* record({ strategy: s, feed: changed })).events)
      let compared = 0
      for (const [round, call] of a) {
        const ts = Number(round.split("@")[1])
        if (ts <= cut) {
          expect(call.whole).toBeDefined()
          expect(b.get(round)?.whole).toBe(call.whole)
          compared++
        } else {
          expect(b.get(round)?.promptHash).not.toBe(call.promptHash)
        }
      }
      expect(compared).toBe(2 * (60 - 33))
    }))

  it.effect("a prompt's parts are recorded once in a run: each message and format's text the first time, its hash after; every prompt reads back whole", () =>
    Effect.gen(function*() {
      const s = strategy([{ type: "llm_debate", params: { rounds: 1 } }])
      const { events } = yield* record({ strategy: s, feed: market(60) })
      const started = ofTag(events, "RunStarted")[0]!.llm!
      expect(started.prompts).toBe("parts")
      const calls = ofTag(events, "LlmCalled").map((e) => e.call)
      expect(calls.length).toBe(2 * (60 - 33) * 3)
      expect(calls.every((c) => c.prompt === undefined && c.promptParts !== undefined)).toBe(true)
      // Each part's body once in the run, in the first call (in the log's order) that has it: a
      // message as its role and content (its content escaped once in the event), the format as its JSON.
      const texts = new Map<string, number>()
      const seen = new Set<string>()
      for (const call of calls) {
        for (const [i, part] of call.promptParts!.entries()) {
          const last = i === call.promptParts!.length - 1
          if (part.text !== undefined || part.content !== undefined) {
            texts.set(part.hash, (texts.get(part.hash) ?? 0) + 1)
            expect(last ? part.role === undefined && part.content === undefined : part.text === undefined).toBe(true)
            expect(sha256Hex(part.text ?? JSON.stringify({ role: part.role, content: part.content }))).toBe(part.hash)
          } else {
            expect(seen.has(part.hash)).toBe(true)
          }
          seen.add(part.hash)
        }
      }
      expect([...texts.values()].every((n) => n === 1)).toBe(true)
      // The bull and the bear read the same brief, the judge too: the brief's message is there once a round.
      const round = calls[0]!.round
      const ofRound = calls.filter((c) => c.round === round)
      expect(ofRound.map((c) => c.step)).toEqual(["bear-1", "bull-1", "judge"])
      expect(ofRound[0]!.promptParts![1]).toMatchObject({ role: "user", content: expect.stringContaining("Market brief for") })
      expect(ofRound[1]!.promptParts![1]).toEqual({ hash: ofRound[0]!.promptParts![1]!.hash })
      expect(ofRound[2]!.promptParts![1]).toEqual({ hash: ofRound[0]!.promptParts![1]!.hash })
      // A step's system message and format: their text in its first call only.
      const bears = calls.filter((c) => c.step === "bear-1" && c.round!.startsWith("AAA"))
      expect(bears[0]!.promptParts![0]).toMatchObject({ role: "system", content: expect.stringContaining("bear researcher") })
      expect(bears.slice(1).every((c) => Object.keys(c.promptParts![0]!).join() === "hash" && Object.keys(c.promptParts!.at(-1)!).join() === "hash")).toBe(true)
      // Every prompt reads back whole from the calls before it: the text its hash is of.
      const reader = new PromptReader()
      for (const call of calls) {
        const prompt = reader.read(call)
        expect(prompt).toBeDefined()
        expect(sha256Hex(prompt!)).toBe(call.promptHash)
      }
      // The same calls recorded whole (a run from before parts) are more than twice the bytes.
      const whole = yield* record({ strategy: s, feed: market(60), llm: { model: Offline.make(), started: { ...started, prompts: undefined } } })
      const size = (events: ReadonlyArray<RunEvent>) => ofTag(events, "LlmCalled").reduce((n, e) => n + JSON.stringify(e).length, 0)
      expect(size(events) * 2).toBeLessThan(size(whole.events))
    }))

  it.effect("replay from the recording, with no model call, byte for byte: a run with prompts in parts, and one recorded before them (whole prompts)", () =>
    Effect.gen(function*() {
      const s = strategy([{ type: "llm_debate", params: { rounds: 1 } }, { type: "llm_analyst", name: "single" }])
      const live = scripted(echoOffline)
      const fresh = yield* record({ strategy: s, feed: market(50), llm: { model: live.model } })
      expect(live.stats.calls).toBe(2 * (50 - 33) * 4)
      const started = ofTag(fresh.events, "RunStarted")[0]!.llm!
      const { prompts: _, ...before } = started
      // A recording from before parts: its RunStarted says nothing of prompts, each miss keeps its prompt whole.
      const old = yield* record({ strategy: s, feed: market(50), llm: { model: live.model, started: before } })
      expect(ofTag(old.events, "RunStarted")[0]!.llm).toEqual(before)
      const oldCalls = ofTag(old.events, "LlmCalled").map((e) => e.call)
      expect(oldCalls.every((c) => c.prompt !== undefined && c.promptParts === undefined && sha256Hex(c.prompt) === c.promptHash)).toBe(true)
      const reader = new PromptReader()
      expect(oldCalls.every((c) => reader.read(c) === c.prompt)).toBe(true)
      for (const [recording, startedAs] of [[fresh, started], [old, before]] as const) {
        const silent = scripted(() => Effect.fail(new LlmUnavailable({ model: "none", reason: "a replay must not call a model" })))
        const calls = ofTag(recording.events, "LlmCalled").map((e) => e.call)
        const again = yield* record({ strategy: s, feed: market(50), llm: { model: silent.model, recorded: calls, started: startedAs } })
        expect(silent.stats.calls).toBe(0)
        expect(again.result.checksum).toBe(recording.result.checksum)
        expect(again.events.map((e) => JSON.stringify(e))).toEqual(recording.events.map((e) => JSON.stringify(e)))
      }
    }))
})
