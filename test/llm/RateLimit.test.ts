/**
 * The models' rate limit (`LLM_RATE_PER_SECOND`): every LLM call of every run takes a token from
 * the model's bucket first, so runs together — and, with the buckets in Redis, processes together
 * (test/bus/TokenBucket.test.ts shares one bucket across connections) — stay within it. On
 * TestClock: the calls made by any moment never exceed the bucket's allowance.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Fiber, Schema, Stream, TestClock } from "effect"
import type { AgentId, RoundId, RunId } from "../../schemas/Ids.js"
import { defaultLlmConfig } from "../../schemas/Llm.js"
import * as TokenBucket from "../../src/bus/TokenBucket.js"
import type { LanguageModel } from "../../src/llm/LanguageModel.js"
import * as LlmRuntime from "../../src/llm/LlmRuntime.js"
import { LlmSession } from "../../src/llm/LlmSession.js"

const Answer = Schema.Struct({ ok: Schema.Boolean })

describe("the models' rate limit", () => {
  it.effect("two runs sharing one bucket of 10 calls a second make 1, then one more every 100 ms", () =>
    Effect.gen(function*() {
      const made: Array<number> = []
      const model: LanguageModel["Type"] = {
        backend: { kind: "ollama", description: "scripted" },
        chat: () =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            made.push(now)
            return { content: `{"ok":true}`, toolCalls: [], tokensIn: 1, tokensOut: 1 }
          }),
        chatStream: () => Stream.die("not used")
      }
      const rate = { buckets: TokenBucket.memory(), bucket: { perSecond: 10, capacity: 1 } }
      const session = (run: string) =>
        new LlmSession({ run: run as RunId, config: { ...defaultLlmConfig, cacheTtlSeconds: 0 }, model, rate })
      const ask = (s: LlmSession, i: number) =>
        s.generate({
          agent: "a" as AgentId,
          round: `R@${i}` as RoundId,
          step: "analyst",
          messages: [{ role: "user", content: `question ${i}` }],
          schema: Answer,
          window: "w",
          offline: () => ({ ok: false })
        })
      const [one, two] = [session("run-1"), session("run-2")]
      const fiber = yield* Effect.fork(
        Effect.all([...Array.from({ length: 5 }, (_, i) => ask(one, i)), ...Array.from({ length: 5 }, (_, i) => ask(two, i))], {
          concurrency: "unbounded"
        })
      )
      // Let every call get as far as it can at time 0.
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      expect(made).toHaveLength(1)
      for (let step = 1; step <= 9; step++) {
        yield* TestClock.adjust(100)
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
        expect(made.length).toBe(1 + step)
      }
      const answers = yield* Fiber.join(fiber)
      expect(made).toHaveLength(10)
      expect(answers.every((a) => a.value?.ok === true)).toBe(true)
      // Never two calls closer than the refill of one token.
      const sorted = [...made].sort((a, b) => a - b)
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]! - sorted[i - 1]!).toBeGreaterThanOrEqual(100)
    }))

  it.effect("LLM_RATE_PER_SECOND and LLM_RATE_BURST configure it; a bad value is an error naming the variable", () =>
    Effect.gen(function*() {
      const withEnv = (env: Record<string, string>) =>
        Effect.withConfigProvider(LlmRuntime.fromConfig, ConfigProvider.fromMap(new Map(Object.entries({ SWARM_LLM: "offline", ...env }))))
      expect((yield* withEnv({})).rate).toBeUndefined()
      expect((yield* withEnv({ LLM_RATE_PER_SECOND: "2.5" })).rate?.bucket).toEqual({ perSecond: 2.5, capacity: 3 })
      expect((yield* withEnv({ LLM_RATE_PER_SECOND: "20", LLM_RATE_BURST: "5" })).rate?.bucket).toEqual({ perSecond: 20, capacity: 5 })
      const bad = yield* Effect.flip(withEnv({ LLM_RATE_PER_SECOND: "-1" }))
      expect(String(bad)).toContain("LLM_RATE_PER_SECOND")
    }))
})
