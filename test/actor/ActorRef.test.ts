import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, ParseResult, Schema, TestClock } from "effect"
import * as Actor from "../../src/actor/Actor.js"
import * as ActorRef from "../../src/actor/ActorRef.js"
import { AskTimeout, NoReply } from "../../schemas/ActorError.js"
import { collect, run, settle } from "../support.js"
import { Add, Counter, Get, Ignore, Withdraw } from "./fixtures.js"


describe("tell and ask", () => {
  it.effect("tell delivers in order and ask returns the typed reply", () =>
    run(Effect.gen(function*() {
      const counter = yield* Actor.spawn(Counter, { name: "counter" })
      for (let i = 1; i <= 100; i++) yield* counter.tell(new Add({ n: i }))
      const total: number = yield* counter.ask(new Get())
      expect(total).toBe(5050)
      expect(counter.id).toBe("/user/counter")
    })))

  it.effect("a typed error in the request's schema reaches the asker as a typed failure", () =>
    run(Effect.gen(function*() {
      const account = yield* Actor.spawn(Counter)
      yield* account.tell(new Add({ n: 50 }))
      expect(yield* account.ask(new Withdraw({ amount: 20 }))).toBe(30)
      const error = yield* account.ask(new Withdraw({ amount: 100 })).pipe(Effect.flip)
      expect(error).toEqual({ _tag: "InsufficientFunds", balance: 30, requested: 100 })
      // the failed withdrawal did not change the balance
      expect(yield* account.ask(new Get())).toBe(30)
    })))

  it.effect("an ask with no reply in time fails with AskTimeout (virtual time)", () =>
    run(Effect.gen(function*() {
      const Silent = Actor.make({
        protocol: Get,
        initial: 0,
        behavior: (state, message, ctx) => Effect.as(Effect.sync(() => ctx.replyLater(message)), state)
      })
      const silent = yield* Actor.spawn(Silent, { name: "silent" })
      const fiber = yield* silent.ask(new Get(), { timeout: "2 seconds" }).pipe(Effect.fork)
      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(fiber)
      expect(exit).toEqual(Exit.fail(new AskTimeout({ actor: silent.id, message: "Get", timeoutMillis: 2000 })))
      // the timer fiber keeps working for later asks with other timeouts
      const second = yield* silent.ask(new Get(), { timeout: "10 millis" }).pipe(Effect.fork)
      yield* TestClock.adjust("10 millis")
      expect((yield* Fiber.await(second))._tag).toBe("Failure")
    })))

  it.effect("an earlier deadline wakes the timer that sleeps for a later one", () =>
    run(Effect.gen(function*() {
      const Silent = Actor.make({
        protocol: Get,
        initial: 0,
        behavior: (state, message, ctx) => Effect.as(Effect.sync(() => ctx.replyLater(message)), state)
      })
      const silent = yield* Actor.spawn(Silent)
      const slow = yield* silent.ask(new Get(), { timeout: "1 hour" }).pipe(Effect.fork)
      yield* settle()
      const fast = yield* silent.ask(new Get(), { timeout: "1 second" }).pipe(Effect.fork)
      yield* settle()
      yield* TestClock.adjust("1 second")
      expect(Exit.isFailure(yield* Fiber.await(fast))).toBe(true)
      expect(slow.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(slow)
    })))

  it.effect("a request handled without a reply fails at once with NoReply(unanswered)", () =>
    run(Effect.gen(function*() {
      const counter = yield* Actor.spawn(Counter)
      const error = yield* counter.ask(new Ignore()).pipe(Effect.flip)
      expect(error).toBeInstanceOf(NoReply)
      expect(error).toMatchObject({ reason: "unanswered", message: "Ignore" })
    })))

  it.effect("asking a stopped actor fails with NoReply(stopped) and leaves a dead letter", () =>
    run(Effect.gen(function*() {
      const { deadLetters } = yield* collect
      const counter = yield* Actor.spawn(Counter)
      yield* Actor.stop(counter)
      const error = yield* counter.ask(new Get()).pipe(Effect.flip)
      expect(error).toMatchObject({ _tag: "NoReply", reason: "stopped" })
      yield* counter.tell(new Add({ n: 1 }))
      yield* settle(() => deadLetters.length >= 2)
      expect(deadLetters.map((d) => [d.reason, (d.message as { _tag: string })._tag])).toEqual([["stopped", "Get"], ["stopped", "Add"]])
    })))

  it.effect("an ask whose handler crashes fails at once with NoReply(crashed) naming the cause", () =>
    run(Effect.gen(function*() {
      const Fragile = Actor.make({
        protocol: Get,
        initial: 0,
        behavior: () => Effect.dieMessage("handler exploded")
      })
      const fragile = yield* Actor.spawn(Fragile)
      const error = yield* fragile.ask(new Get()).pipe(Effect.flip)
      expect(error).toMatchObject({ _tag: "NoReply", reason: "crashed" })
      expect((error as NoReply).detail).toContain("handler exploded")
    })))

  it.effect("replyLater answers after other messages were handled", () =>
    run(Effect.gen(function*() {
      class Release extends Schema.TaggedClass<Release>()("Release", {}) {}
      const Deferring = Actor.make({
        protocol: Schema.Union(Get, Release),
        initial: [] as Array<(n: number) => Effect.Effect<void>>,
        behavior: (pending, message, ctx) => {
          if (message._tag === "Get") {
            const replier = ctx.replyLater(message)
            return Effect.succeed([...pending, (n: number) => replier.succeed(n)])
          }
          return Effect.as(Effect.forEach(pending, (reply, i) => reply(i * 10)), [])
        }
      })
      const ref = yield* Actor.spawn(Deferring)
      const a = yield* ref.ask(new Get()).pipe(Effect.fork)
      const b = yield* ref.ask(new Get()).pipe(Effect.fork)
      yield* settle()
      yield* ref.tell(new Release())
      expect(yield* Fiber.join(a)).toBe(0)
      expect(yield* Fiber.join(b)).toBe(10)
    })))

  it.effect("untrusted input is decoded with the protocol: malformed and hostile values are typed ParseErrors", () =>
    run(Effect.gen(function*() {
      const counter = yield* Actor.spawn(Counter)
      yield* ActorRef.tellUnknown(counter, { _tag: "Add", n: 2 })
      const malformed: Array<unknown> = [
        null,
        "Add",
        { _tag: "Add" },
        { _tag: "Add", n: "2" },
        { _tag: "Nope", n: 1 },
        JSON.parse("{\"_tag\":\"Add\",\"n\":{\"constructor\":{\"prototype\":{\"x\":1}}}}")
      ]
      for (const input of malformed) {
        const error = yield* ActorRef.tellUnknown(counter, input).pipe(Effect.flip)
        expect(ParseResult.isParseError(error)).toBe(true)
        expect(ParseResult.TreeFormatter.formatErrorSync(error as ParseResult.ParseError)).not.toContain("    at ")
      }
      // A prototype smuggled in through JSON is not carried into the decoded message.
      const smuggled = JSON.parse("{\"_tag\":\"Add\",\"n\":3,\"__proto__\":{\"polluted\":true}}")
      yield* ActorRef.tellUnknown(counter, smuggled)
      expect(({} as Record<string, unknown>).x).toBeUndefined()
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      expect(yield* counter.ask(new Get())).toBe(5)
    })))

  it.effect("a bad actor name is a typed InvalidActorName naming the reason", () =>
    run(Effect.gen(function*() {
      yield* Actor.spawn(Counter, { name: "dup" })
      const taken = yield* Actor.spawn(Counter, { name: "dup" }).pipe(Effect.flip)
      expect(taken).toMatchObject({ _tag: "InvalidActorName", name: "dup", reason: "is already taken by a sibling" })
      const slash = yield* Actor.spawn(Counter, { name: "a/b" }).pipe(Effect.flip)
      expect(slash.reason).toContain("'/'")
      const empty = yield* Actor.spawn(Counter, { name: "" }).pipe(Effect.flip)
      expect(empty.reason).toContain("empty")
    })))
})

describe("askAll (scatter-gather)", () => {
  const Silent = Actor.make({
    protocol: Get,
    initial: 0,
    behavior: (state, message, ctx) => Effect.as(Effect.sync(() => ctx.replyLater(message)), state)
  })

  it.effect("answers in the order of the refs, each with its own outcome", () =>
    run(Effect.gen(function*() {
      const a = yield* Actor.spawn(Counter)
      const b = yield* Actor.spawn(Counter)
      yield* a.tell(new Add({ n: 1 }))
      yield* b.tell(new Add({ n: 2 }))
      const answers = yield* ActorRef.askAll([b, a, b], new Get())
      expect(answers).toEqual([Exit.succeed(2), Exit.succeed(1), Exit.succeed(2)])
      expect(yield* ActorRef.askAll<Get, Get>([], new Get())).toEqual([])
      // A typed error and a stopped actor are per-answer outcomes, not a failure of the whole.
      yield* Actor.stop(a)
      const mixed = yield* ActorRef.askAll([b, a], new Withdraw({ amount: 5 }))
      expect(mixed[0]).toEqual(Exit.fail({ _tag: "InsufficientFunds", balance: 2, requested: 5 }))
      expect(Exit.isFailure(mixed[1]!) && mixed[1].cause._tag === "Fail" && mixed[1].cause.error instanceof NoReply).toBe(true)
    })))

  it.effect("resumes at the deadline with AskTimeout for the silent ones and the replies of the others", () =>
    run(Effect.gen(function*() {
      const counter = yield* Actor.spawn(Counter)
      const silent = yield* Actor.spawn(Silent, { name: "quiet" })
      const refs: ReadonlyArray<ActorRef.ActorRef<Get>> = [counter as ActorRef.ActorRef<any>, silent]
      const fiber = yield* ActorRef.askAll(refs, new Get(), { timeout: "1 second" }).pipe(Effect.fork)
      yield* TestClock.adjust("999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const answers = yield* Fiber.join(fiber)
      expect(answers[0]).toEqual(Exit.succeed(0))
      expect(answers[1]).toEqual(Exit.fail(new AskTimeout({ actor: silent.id, message: "Get", timeoutMillis: 1000 })))
    })))

  it.effect("interrupting it withdraws the requests; a late reply goes nowhere", () =>
    run(Effect.gen(function*() {
      const silent = yield* Actor.spawn(Silent)
      const fiber = yield* ActorRef.askAll([silent, silent], new Get(), { timeout: "1 hour" }).pipe(Effect.fork)
      yield* settle()
      yield* Fiber.interrupt(fiber)
      // The deadline is gone: moving past it changes nothing and nothing is left waiting.
      yield* TestClock.adjust("2 hours")
      expect((yield* Fiber.await(fiber))._tag).toBe("Failure")
    })))
})
