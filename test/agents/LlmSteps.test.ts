/**
 * An LLM analyst's calls are recorded by agent, round and step, and a replay answers each from
 * there: a call that repeats its round's step, or names no round, would record a run that no replay
 * reproduces. It is refused (`LlmStepRefused`, the agent's crash naming agent, round and step), and
 * the run that holds it still replays byte for byte.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Schema, Stream } from "effect"
import { llmAnalysts } from "../../agents/registry.js"
import type { LlmAnalystType, Thinking } from "../../agents/LlmAnalyst.js"
import { briefMessage, configFields, JudgementAnswer } from "../../agents/analysts/internal/llm.js"
import { offlineJudgement } from "../../agents/analysts/LlmSingle.js"
import { windowOf } from "../../agents/analysts/MarketBrief.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Strategy } from "../../schemas/Strategy.js"
import type { LanguageModel } from "../../src/llm/LanguageModel.js"
import { recordingKey } from "../../src/llm/LlmSession.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"

const Config = Schema.Struct({
  ...configFields,
  mistake: Schema.Literal("repeatStep", "noRound", "otherRound", "peekTwice", "undeclared")
})
type Config = typeof Config.Type

const askOf = (t: Thinking<Config>, step: string, text: string) => ({
  agent: t.agent,
  round: t.config.mistake === "otherRound" ? `${t.round}x` as typeof t.round : t.round,
  step,
  schema: JudgementAnswer,
  window: windowOf(t.brief),
  offline: () => offlineJudgement(t.brief, t.allowShort),
  messages: [{ role: "system" as const, content: text }, { role: "user" as const, content: briefMessage(t.brief) }]
})

/** An analyst type making the mistakes a researcher might. */
const careless: LlmAnalystType<Config> = {
  type: "careless_llm",
  description: "asks in ways a run cannot record",
  config: Config,
  horizon: (config) => config.horizon,
  answers: [JudgementAnswer],
  plan: () => "ask twice",
  think: (t) =>
    Effect.gen(function*() {
      if (t.config.mistake === "noRound") {
        // As an agent built without the type checker, or cast around it, might.
        const { round: _, ...roundless } = askOf(t, "one", "first")
        return (yield* t.session.generate(roundless as never)).value as JudgementAnswer | undefined
      }
      if (t.config.mistake === "undeclared") {
        // An answer schema its type does not declare (whose JSON Schema the registry did not check).
        const Other = Schema.Struct({ direction: Schema.Literal("long", "flat"), confidence: Schema.Number, rationale: Schema.String })
        return (yield* t.session.generate({ ...askOf(t, "one", "first"), schema: Other, offline: () => ({ direction: "flat" as const, confidence: 0.5, rationale: "x" }) })).value
      }
      const first = yield* t.session.generate(askOf(t, "one", "first"))
      const second = yield* t.session.generate(askOf(t, "one", t.config.mistake === "peekTwice" ? "first" : "second"))
      return second.value ?? first.value
    }),
  thinkNow: (t) => {
    if (t.config.mistake !== "peekTwice") return undefined
    const one = t.session.peek(askOf(t, "one", "first"))
    // The same prompt twice: both answers are at hand once the first run cached it.
    const two = t.session.peek(askOf(t, "one", "first"))
    if (one === undefined || two === undefined) return undefined
    one.commit()
    two.commit()
    return two.value ?? null
  }
}

;(llmAnalysts as Map<string, unknown>).set(careless.type, careless)
afterAll(() => void (llmAnalysts as Map<string, unknown>).delete(careless.type))

const model: LanguageModel["Type"] = {
  backend: { kind: "ollama", description: "scripted" },
  chat: (request) => Effect.succeed({ ...request.offline(), toolCalls: [], tokensIn: 100, tokensOut: 20 }),
  chatStream: () => Stream.die("not used")
}

const strategy = (mistake: Config["mistake"]) =>
  Schema.decodeUnknownSync(Strategy)({
    name: "careless",
    symbols: ["AAA", "BBB"],
    allowShort: true,
    agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }, { type: "careless_llm", name: "careless", params: { mistake } }],
    sizing: { mode: "percent_of_equity", value: 10 },
    llm: { cacheTtlSeconds: 600 }
  })

const market = () => Feed.synthetic({ ...Synthetic.defaults, seed: 11, symbols: ["AAA", "BBB"] as never, bars: 40 })

const record = (options: Backtest.Options) =>
  Effect.gen(function*() {
    const events: Array<RunEvent> = []
    const result = yield* Backtest.run({ ...options, onEvent: (event) => void events.push(event) })
    return { result, events }
  })

const crashes = (events: ReadonlyArray<RunEvent>) =>
  events.flatMap((e) => e._tag === "AgentLifecycle" && e.event._tag === "ActorCrashed" ? [e.event] : [])

const calls = (events: ReadonlyArray<RunEvent>) => events.flatMap((e) => (e._tag === "LlmCalled" ? [e.call] : []))

describe("an LLM analyst's calls, each at a step of its own", () => {
  it.effect.each([
    ["repeatStep", `step "one" of round`, "the round already asked for this step"],
    ["noRound", `step "one"`, "the call names no round"],
    ["otherRound", `step "one" of round`, "but names agent careless, round"],
    ["undeclared", `step "one" of round`, "the call's answer schema is none of its type's `answers`"]
  ] as const)("%s: refused as the agent's bug, naming agent, round and step; the run replays byte for byte", ([mistake, where, why]) =>
    Effect.gen(function*() {
      const s = strategy(mistake)
      const original = yield* record({ strategy: s, feed: market(), llm: { model } })
      expect(original.result.status).toBe("completed")
      const crashed = crashes(original.events).filter((c) => c.actor.endsWith("/careless"))
      expect(crashed.length).toBeGreaterThan(0)
      const cause = (crashed[0] as { readonly cause?: string }).cause ?? ""
      expect(cause).toContain("LlmStepRefused")
      expect(cause).toContain(`agent careless, ${where}`)
      expect(cause).toContain(why)
      // What was recorded has one call per key: a replay answers each from there, the same.
      const recorded = calls(original.events)
      const keys = recorded.map((c) => recordingKey(c.agent, c.round, c.step))
      expect(new Set(keys).size).toBe(keys.length)
      const replayed = yield* record({ strategy: s, feed: market(), llm: { model, recorded } })
      expect(replayed.result.checksum).toBe(original.result.checksum)
    }))

  it.effect("committing two answers at hand for one step is refused too", () =>
    Effect.gen(function*() {
      const s = strategy("peekTwice")
      // The first run asks (thinkNow finds nothing at hand); the second finds every answer cached.
      const cache = (yield* Effect.promise(() => import("../../src/llm/AnswerCache.js")))
      const answers = cache.AnswerCache.fromMemory(new cache.MemoryCache())
      yield* record({ strategy: s, feed: market(), llm: { model, cache: answers } })
      const again = yield* record({ strategy: s, feed: market(), llm: { model, cache: answers } })
      // Decided in place, from the cache: no call asked of the model.
      expect(calls(again.events).every((c) => c.cache === "hit")).toBe(true)
      const cause = (crashes(again.events).find((c) => c.actor.endsWith("/careless")) as { readonly cause?: string } | undefined)?.cause ?? ""
      expect(cause).toContain("LlmStepRefused")
      expect(cause).toContain("the round already asked for this step")
    }))
})
