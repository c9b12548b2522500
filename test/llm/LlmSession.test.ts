/**
 * An LLM session's calls and the budget's room: a call that only the calls in flight leave no room
 * for waits for them, bounded by its own timeout and by the round's deadline (an interruption), and
 * is then refused alone; one that what is settled leaves no room for is refused at once. On the
 * TestClock: a wait is on the Clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schema, Stream, TestClock } from "effect"
import type { AgentId, RoundId, RunId } from "../../schemas/Ids.js"
import { defaultLlmConfig, type LlmCall, LlmRequestFailed } from "../../schemas/Llm.js"
import { refusalOf, spendsBudget } from "../../src/llm/Budget.js"
import type { LanguageModel } from "../../src/llm/LanguageModel.js"
import { type Ask, LlmSession } from "../../src/llm/LlmSession.js"

const Answer = Schema.Struct({ ok: Schema.Boolean })

/** A call of `agent`'s whose prompt is `size` characters long (its reservation: about that, plus 96 tokens). */
const ask = (agent: string, size = 400): Ask<typeof Answer.Type, typeof Answer.Encoded> => ({
  agent: agent as AgentId,
  round: "AAA@1" as RoundId,
  step: "analyst",
  messages: [{ role: "user", content: `${agent}:${"x".repeat(size)}` }],
  schema: Answer,
  window: "AAA",
  offline: () => ({ ok: true })
})

/** A model that answers at once, with `used` tokens in, but keeps the calls of agent `slow` until `release`. */
const model = (release: Deferred.Deferred<void>, used = 10): LanguageModel["Type"] => ({
  backend: { kind: "ollama", description: "scripted" },
  chat: (request) =>
    Effect.zipRight(
      request.messages[0]!.content.startsWith("slow:") ? Deferred.await(release) : Effect.void,
      Effect.succeed({ content: JSON.stringify({ ok: true }), toolCalls: [], tokensIn: used, tokensOut: 5 })
    ),
  chatStream: () => Stream.die("not used")
})

const sessionOf = (release: Deferred.Deferred<void>, tokens: number, timeoutMillis = 20_000, used?: number) => {
  const calls: Array<LlmCall> = []
  const spent: Array<LlmCall> = []
  const session = new LlmSession({
    run: "run_session" as RunId,
    config: { ...defaultLlmConfig, cacheTtlSeconds: 0, maxTokensOut: 64, timeoutMillis, budget: { tokens, pricePerMillionIn: 0, pricePerMillionOut: 0 } },
    model: model(release, used),
    onCall: (call) => void calls.push(call),
    onBudgetSpent: (call) => void spent.push(call)
  })
  return { session, calls, spent, callOf: (agent: string) => calls.find((c) => c.agent === agent) }
}

/** As an LLM analyst bounds its thinking: abstain once the round's deadline passes (agents/LlmAnalyst.ts). */
const withDeadline = <A>(thinking: Effect.Effect<A>) =>
  Effect.timeoutTo(thinking, { duration: "1 second", onTimeout: () => undefined, onSuccess: (a: A) => a })

describe("LlmSession and the budget's room", () => {
  it.effect("a call the calls in flight crowd out waits for them, and is made once they settle", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      // Room for one call's reservation (about 500) at a time.
      const { callOf, session } = sessionOf(release, 800)
      const slow = yield* Effect.fork(session.generate(ask("slow")))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(withDeadline(session.generate(ask("waiting"))))
      yield* TestClock.adjust("500 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* Deferred.succeed(release, undefined)
      expect((yield* Fiber.join(slow)).value).toEqual({ ok: true })
      expect((yield* Fiber.join(waiting))?.value).toEqual({ ok: true })
      expect(callOf("waiting")).toMatchObject({ outcome: "ok", tokensIn: 10, tokensOut: 5 })
      expect(session.budget.tokens).toBe(30)
    }))

  it.effect("a waiting call whose room never comes is refused at the round's deadline, alone: recorded, the budget not spent", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const { callOf, session, spent } = sessionOf(release, 800)
      const slow = yield* Effect.fork(session.generate(ask("slow")))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(withDeadline(session.generate(ask("waiting"))))
      yield* TestClock.adjust("999 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      // The agent abstains; the call is recorded as the budget refused it, not as a timeout.
      expect(yield* Fiber.join(waiting)).toBeUndefined()
      const refused = callOf("waiting")!
      expect(refused).toMatchObject({ outcome: "budget", tokensIn: 0, tokensOut: 0, attempts: 0 })
      expect(refused.error).toMatch(/budget has no room for the call while others are in flight \(0 spent and \d+ reserved of 800;/)
      expect(refusalOf(refused.error!)?.reserved).toBeGreaterThan(0)
      expect(spendsBudget(refused.error)).toBe(false)
      expect(spent).toEqual([])
      expect(session.budget.exhausted).toBe(false)
      // It holds nothing: the call in flight settles, and the next call is made.
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(slow)
      expect((yield* session.generate(ask("next"))).value).toEqual({ ok: true })
      expect(session.budget.tokens).toBe(30)
    }))

  it.effect("a waiting call is refused alike when its own timeout comes before the round's deadline", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const { callOf, session, spent } = sessionOf(release, 800, 300)
      yield* Effect.fork(session.generate(ask("slow")))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(withDeadline(session.generate(ask("waiting"))))
      yield* TestClock.adjust("300 millis")
      expect((yield* Fiber.join(waiting))?.value).toBeUndefined()
      expect(callOf("waiting")).toMatchObject({ outcome: "budget", tokensIn: 0 })
      expect(spendsBudget(callOf("waiting")!.error)).toBe(false)
      expect(spent).toEqual([])
      expect(session.budget.exhausted).toBe(false)
    }))

  it.effect("a call that what is settled leaves no room for is refused at once, and spends the budget, as before", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      // Each call is charged its whole reservation (about 500): after one, another does not fit in 1,000.
      const { callOf, session, spent } = sessionOf(release, 1_000, 20_000, 1_000)
      expect((yield* session.generate(ask("first"))).value).toEqual({ ok: true })
      // A small call in flight; the next cannot fit in what is settled, whatever that one uses.
      yield* Effect.fork(session.generate(ask("slow", 4)))
      yield* Effect.yieldNow()
      // No clock moves: were it waiting, this would never end.
      const refused = yield* session.generate(ask("second"))
      expect(refused.value).toBeUndefined()
      expect(callOf("second")).toMatchObject({ outcome: "budget", tokensIn: 0 })
      expect(callOf("second")!.error).toMatch(/budget is spent \(\d+ of 1000;/)
      expect(spent.map((c) => c.agent)).toEqual(["second"])
      expect(session.budget.exhausted).toBe(true)
    }))

  it.effect("interrupted while asking again, a call is recorded with what both its answers were charged", () =>
    Effect.gen(function*() {
      const never = yield* Deferred.make<void>()
      const calls: Array<LlmCall> = []
      const session = new LlmSession({
        run: "run_session" as RunId,
        config: { ...defaultLlmConfig, cacheTtlSeconds: 0, maxTokensOut: 64 },
        model: {
          backend: { kind: "ollama", description: "scripted" },
          // An answer that does not decode; asked again (shown its error), no answer before the deadline.
          chat: (request) =>
            request.messages.length > 1
              ? Effect.zipRight(Deferred.await(never), Effect.die("unreachable"))
              : Effect.succeed({ content: "up, I think", toolCalls: [], tokensIn: 100, tokensOut: 5 }),
          chatStream: () => Stream.die("not used")
        },
        onCall: (call) => void calls.push(call)
      })
      const thinking = yield* Effect.fork(withDeadline(session.generate(ask("analyst"))))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(thinking)).toBeUndefined()
      const [call] = calls
      expect(call).toMatchObject({ outcome: "timeout", attempts: 2, tokensOut: 5 })
      // The first answer's 105 tokens and the retry's whole reservation, as the budget was charged:
      // a resume charges the recorded call, and must charge what the run did.
      expect(call!.tokensIn).toBeGreaterThan(100)
      expect(call!.tokensIn + call!.tokensOut).toBe(session.budget.tokens)
    }))

  describe("a call the model never answered", () => {
    /** A session whose model fails every call with an HTTP 500, as an Ollama whose runner died does. */
    const failing = (failedCalls: "uncharged" | undefined, timeoutMillis = 20_000) => {
      const calls: Array<LlmCall> = []
      const session = new LlmSession({
        run: "run_session" as RunId,
        config: { ...defaultLlmConfig, cacheTtlSeconds: 0, retries: 0, maxTokensOut: 64, timeoutMillis, budget: { tokens: 2_100, pricePerMillionIn: 1, pricePerMillionOut: 1 } },
        model: {
          backend: { kind: "ollama", description: "scripted" },
          chat: (request) => Effect.fail(new LlmRequestFailed({ model: request.model, status: 500, reason: "llama runner process has terminated" })),
          chatStream: () => Stream.die("not used")
        },
        ...(failedCalls === undefined ? {} : { failedCalls }),
        onCall: (call) => void calls.push(call)
      })
      return { session, calls }
    }

    it.effect("used no tokens: recorded with none, the budget charged none, and the next call is made (failedCalls: uncharged)", () =>
      Effect.gen(function*() {
        const { calls, session } = failing("uncharged")
        // Each call reserves about 500 of 2,100: charged so, the fifth would be refused.
        for (let i = 0; i < 8; i++) expect((yield* session.generate({ ...ask("analyst"), step: `s${i}` })).value).toBeUndefined()
        expect(calls.map((c) => c.outcome)).toEqual(Array(8).fill("error"))
        expect(calls.every((c) => c.tokensIn === 0 && c.tokensOut === 0 && c.cost === 0 && c.attempts === 1)).toBe(true)
        expect(session.budget.tokens).toBe(0)
        expect(session.budget.cost).toBe(0)
        expect(session.budget.remaining).toBe(2_100)
        expect(session.budget.exhausted).toBe(false)
      }))

    it.effect("interrupted by the round's deadline, it used none either, and holds no reservation (failedCalls: uncharged)", () =>
      Effect.gen(function*() {
        const never = yield* Deferred.make<void>()
        const calls: Array<LlmCall> = []
        const session = new LlmSession({
          run: "run_session" as RunId,
          config: { ...defaultLlmConfig, cacheTtlSeconds: 0, maxTokensOut: 64, budget: { tokens: 2_000, pricePerMillionIn: 0, pricePerMillionOut: 0 } },
          model: {
            backend: { kind: "ollama", description: "scripted" },
            chat: () => Effect.zipRight(Deferred.await(never), Effect.die("unreachable")),
            chatStream: () => Stream.die("not used")
          },
          failedCalls: "uncharged",
          onCall: (call) => void calls.push(call)
        })
        const thinking = yield* Effect.fork(withDeadline(session.generate(ask("analyst"))))
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(thinking)).toBeUndefined()
        expect(calls[0]).toMatchObject({ outcome: "timeout", tokensIn: 0, tokensOut: 0, attempts: 1 })
        expect(session.budget.tokens).toBe(0)
        expect(session.budget.remaining).toBe(2_000)
      }))

    it.effect("a run recorded before failedCalls charges it all it reserved, as it did, and its budget runs out so again", () =>
      Effect.gen(function*() {
        const { calls, session } = failing(undefined)
        for (let i = 0; i < 5; i++) yield* session.generate({ ...ask("analyst"), step: `s${i}` })
        expect(calls.slice(0, 4).every((c) => c.outcome === "error" && c.tokensIn > 400)).toBe(true)
        expect(session.budget.tokens).toBe(calls.slice(0, 4).reduce((sum, c) => sum + c.tokensIn, 0))
        expect(calls[4]).toMatchObject({ outcome: "budget", tokensIn: 0 })
        expect(session.budget.exhausted).toBe(true)
      }))
  })
})
