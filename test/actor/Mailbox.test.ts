import { describe, expect, it } from "@effect/vitest"
import { expectTypeOf } from "vitest"
import { Deferred, Effect, Fiber, FiberId, Schema } from "effect"
import * as Actor from "../../src/actor/Actor.js"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import { MailboxFull } from "../../schemas/ActorError.js"
import { collect, run, settle } from "../support.js"
import { Get, Hold, Item, recorder } from "./fixtures.js"


type Seen = Array<{ from: string; n: number; sender: string | undefined; seq: number }>
const items = (seen: Seen) => seen.map((s) => s.n)

describe("bounded mailboxes and overflow policies", () => {
  it.effect("backpressure: a sender waits while the mailbox is full and resumes when there is room", () =>
    run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const seen: Seen = []
      const ref = yield* Actor.spawn(recorder(gate, seen, { capacity: 2, overflow: "backpressure" }))
      yield* ref.tell(new Hold())
      yield* settle() // the actor takes Hold and blocks on the gate
      yield* ref.tell(new Item({ from: "t", n: 1 }))
      yield* ref.tell(new Item({ from: "t", n: 2 }))
      const third = yield* ref.tell(new Item({ from: "t", n: 3 })).pipe(Effect.fork)
      yield* settle()
      expect(third.unsafePoll()).toBeNull() // still waiting: the mailbox holds 2
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(third)
      yield* settle(() => seen.length === 3)
      expect(items(seen)).toEqual([1, 2, 3])
    })))

  it.effect("backpressure: an interrupted waiting sender withdraws its message", () =>
    run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const seen: Seen = []
      const ref = yield* Actor.spawn(recorder(gate, seen, { capacity: 1, overflow: "backpressure" }))
      yield* ref.tell(new Hold())
      yield* settle()
      yield* ref.tell(new Item({ from: "t", n: 1 }))
      const waiting = yield* ref.tell(new Item({ from: "t", n: 2 })).pipe(Effect.fork)
      yield* settle()
      yield* Fiber.interrupt(waiting)
      yield* Deferred.succeed(gate, undefined)
      yield* ref.tell(new Item({ from: "t", n: 3 }))
      yield* settle(() => seen.length === 2)
      expect(items(seen)).toEqual([1, 3])
    })))

  it.effect("dropOldest: the oldest queued messages make room and land in dead letters", () =>
    run(Effect.gen(function*() {
      const { deadLetters } = yield* collect
      const gate = yield* Deferred.make<void>()
      const seen: Seen = []
      const ref = yield* Actor.spawn(recorder(gate, seen, { capacity: 2, overflow: "dropOldest" }), { name: "quotes" })
      yield* ref.tell(new Hold())
      yield* settle()
      for (let n = 1; n <= 5; n++) yield* ref.tell(new Item({ from: "feed", n }))
      yield* Deferred.succeed(gate, undefined)
      yield* settle(() => seen.length === 2 && deadLetters.length === 3)
      expect(items(seen)).toEqual([4, 5])
      expect(deadLetters.map((d) => [d.reason, (d.message as Item).n, d.recipient])).toEqual([
        ["overflow", 1, "/user/quotes"],
        ["overflow", 2, "/user/quotes"],
        ["overflow", 3, "/user/quotes"]
      ])
      const system = yield* ActorSystem.ActorSystem
      expect((yield* system.deadLetterCounts).overflow).toBe(3)
    })))

  it.effect("fail: the sender gets a typed MailboxFull and the message goes to dead letters", () =>
    run(Effect.gen(function*() {
      const { deadLetters } = yield* collect
      const gate = yield* Deferred.make<void>()
      const seen: Seen = []
      const ref = yield* Actor.spawn(recorder(gate, seen, { capacity: 2, overflow: "fail" }), { name: "control" })
      yield* ref.tell(new Hold())
      yield* settle()
      yield* ref.tell(new Item({ from: "c", n: 1 }))
      yield* ref.tell(new Item({ from: "c", n: 2 }))
      const error = yield* ref.tell(new Item({ from: "c", n: 3 })).pipe(Effect.flip)
      expect(error).toEqual(new MailboxFull({ actor: ref.id, capacity: 2, policy: "fail" }))
      yield* Deferred.succeed(gate, undefined)
      yield* settle(() => seen.length === 2 && deadLetters.length === 1)
      expect(items(seen)).toEqual([1, 2])
      expect(deadLetters[0]).toMatchObject({ reason: "overflow", recipient: "/user/control", message: { n: 3 } })
    })))

  it.effect("fail: an ask into a full mailbox fails with MailboxFull instead of waiting for its timeout", () =>
    run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const Blocking = Actor.make({
        protocol: Schema.Union(Hold, Get),
        initial: 0,
        mailbox: { capacity: 1, overflow: "fail" },
        behavior: (state, message, ctx) =>
          message._tag === "Hold" ? Effect.as(Deferred.await(gate), state) : Effect.as(ctx.reply(message, state), state)
      })
      const ref = yield* Actor.spawn(Blocking)
      yield* ref.tell(new Hold())
      yield* settle()
      yield* ref.tell(new Hold())
      const error = yield* ref.ask(new Get()).pipe(Effect.flip)
      expect(error._tag).toBe("MailboxFull")
      yield* Deferred.succeed(gate, undefined)
    })))
})

describe("the overflow policy is part of the ref's type", () => {
  it("tell can fail with MailboxFull only on a `fail` mailbox", () => {
    const gate = Deferred.unsafeMake<void>(FiberId.none)
    const failing = Actor.spawn(recorder(gate, [], { capacity: 1, overflow: "fail" }))
    const conflating = Actor.spawn(recorder(gate, [], { capacity: 1, overflow: "dropOldest" }))
    const waiting = Actor.spawn(recorder(gate, []))
    type ErrorOfTell<T> = T extends Effect.Effect<infer Ref, any, any>
      ? Ref extends { tell: (m: any) => Effect.Effect<void, infer E> } ? E : "not a ref"
      : "not an effect"
    expectTypeOf<ErrorOfTell<typeof failing>>().toEqualTypeOf<MailboxFull>()
    expectTypeOf<ErrorOfTell<typeof conflating>>().toEqualTypeOf<never>()
    expectTypeOf<ErrorOfTell<typeof waiting>>().toEqualTypeOf<never>()
  })
})

describe("envelopes", () => {
  it.effect("FIFO per sender: each sender's messages arrive in send order with increasing sequence numbers", () =>
    run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      yield* Deferred.succeed(gate, undefined)
      const seen: Seen = []
      // a small backpressured mailbox makes the senders block and interleave
      const target = yield* Actor.spawn(recorder(gate, seen, { capacity: 4, overflow: "backpressure" }), { name: "sink" })
      class Go extends Schema.TaggedClass<Go>()("Go", { count: Schema.Number }) {}
      const Sender = Actor.make({
        protocol: Go,
        initial: undefined as void,
        behavior: (_s, message, ctx) =>
          Effect.forEach(
            Array.from({ length: message.count }, (_, n) => n),
            (n) => target.tell(new Item({ from: ctx.id, n })),
            { discard: true }
          )
      })
      const senders = yield* Effect.forEach(["a", "b", "c", "d"], (name) => Actor.spawn(Sender, { name }))
      yield* Effect.forEach(senders, (s) => s.tell(new Go({ count: 300 })), { discard: true })
      yield* settle(() => seen.length === 1200, 100_000)
      expect(seen.length).toBe(1200)
      for (const sender of senders) {
        const mine = seen.filter((s) => s.from === sender.id)
        expect(mine.map((s) => s.n)).toEqual(Array.from({ length: 300 }, (_, n) => n))
        expect(mine.every((s) => s.sender === sender.id)).toBe(true)
        expect(mine.every((s, i) => i === 0 || s.seq > mine[i - 1]!.seq)).toBe(true)
      }
      // the senders interleaved (otherwise the test would not exercise concurrent FIFO)
      const switches = seen.filter((s, i) => i > 0 && s.from !== seen[i - 1]!.from).length
      expect(switches).toBeGreaterThan(3)
    })))

  it.effect("a message told from outside any actor has no sender", () =>
    run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      yield* Deferred.succeed(gate, undefined)
      const seen: Seen = []
      const ref = yield* Actor.spawn(recorder(gate, seen))
      yield* ref.tell(new Item({ from: "outside", n: 1 }))
      yield* ref.tell(new Item({ from: "outside", n: 2 }))
      yield* settle(() => seen.length === 2)
      expect(seen.map((s) => s.sender)).toEqual([undefined, undefined])
      expect(seen[1]!.seq).toBeGreaterThan(seen[0]!.seq)
    })))
})
