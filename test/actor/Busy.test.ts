import { describe, expect, it } from "@effect/vitest"
import { Effect, type Fiber, Schema, TestClock } from "effect"
import * as Actor from "../../src/actor/Actor.js"
import type { ActorRef } from "../../src/actor/ActorRef.js"
import { collect, ofTag, run, settle } from "../support.js"
import { Add, Boom, Get } from "./fixtures.js"

/** Answers the fiber that handles it, so a test can tell whether two messages shared an activation. */
class Which extends Schema.TaggedRequest<Which>()("Which", { failure: Schema.Never, success: Schema.Unknown, payload: {} }) {}

const counting = (busy: boolean) =>
  Actor.make({
    protocol: Schema.Union(Add, Boom, Get, Which),
    initial: 0,
    busy,
    behavior: (state, message, ctx) => {
      switch (message._tag) {
        case "Add":
          return Effect.succeed(state + message.n)
        case "Boom":
          return Effect.dieMessage(message.why)
        case "Get":
          return Effect.as(ctx.reply(message, state), state)
        case "Which":
          return Effect.withFiberRuntime((fiber) => Effect.as(ctx.reply(message, fiber), state))
      }
    }
  })

const busyCounter = counting(true)

/** Ask `Which`, then let the actor go idle (its mailbox empty, every scheduled turn taken). */
const handler = (ref: ActorRef<Add | Boom | Get | Which>) =>
  Effect.gen(function*() {
    const fiber = (yield* ref.ask(new Which())) as Fiber.RuntimeFiber<unknown, unknown>
    yield* settle()
    return fiber
  })

describe("busy actors", () => {
  it.effect("a busy actor's activation parks when its mailbox empties, and the next message resumes it", () =>
    run(Effect.gen(function*() {
      const busy = yield* Actor.spawn(busyCounter, { name: "busy" })
      const first = yield* handler(busy)
      const second = yield* handler(busy)
      expect(second.id()).toEqual(first.id())
      // Without `busy`, each activation is a fiber of its own that ends when the mailbox empties.
      const plain = yield* Actor.spawn(counting(false), { name: "plain" })
      const a = yield* handler(plain)
      const b = yield* handler(plain)
      expect(b.id()).not.toEqual(a.id())
      expect(a.unsafePoll()).not.toBeNull()
    })))

  it.effect("stopping a parked busy actor ends its fiber", () =>
    run(Effect.gen(function*() {
      const busy = yield* Actor.spawn(busyCounter, { name: "busy" })
      const parked = yield* handler(busy)
      expect(parked.unsafePoll()).toBeNull()
      yield* Actor.stop(busy)
      yield* settle(() => parked.unsafePoll() !== null)
      expect(parked.unsafePoll()).not.toBeNull()
    })))

  it.effect("a busy actor that crashed is restarted with a fresh activation, and messages after are handled once each", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const busy = yield* Actor.spawn(busyCounter, { name: "busy" })
      yield* busy.tell(new Add({ n: 2 }))
      const before = yield* handler(busy)
      yield* busy.tell(new Boom({ why: "on purpose" }))
      // Messages sent while it waits for its restart (the backoff, in virtual time) are kept for it.
      yield* settle(() => ofTag(events, "ActorCrashed").length > 0)
      for (let i = 0; i < 10; i++) yield* busy.tell(new Add({ n: 1 }))
      yield* TestClock.adjust("10 seconds")
      yield* settle(() => ofTag(events, "ActorRestarted").length > 0)
      expect(yield* busy.ask(new Get())).toBe(10)
      const after = yield* handler(busy)
      expect(after.id()).not.toEqual(before.id())
      yield* busy.tell(new Add({ n: 5 }))
      expect(yield* busy.ask(new Get())).toBe(15)
      expect((yield* handler(busy)).id()).toEqual(after.id())
    })))
})
