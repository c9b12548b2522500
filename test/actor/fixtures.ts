/** Small protocols the kernel tests share. */
import { Deferred, Effect, Schema } from "effect"
import * as Actor from "../../src/actor/Actor.js"
import { type OverflowPolicy, Terminated } from "../../schemas/Actor.js"

export class Add extends Schema.TaggedClass<Add>()("Add", { n: Schema.Number }) {}
export class Boom extends Schema.TaggedClass<Boom>()("Boom", { why: Schema.String }) {}
export class Get extends Schema.TaggedRequest<Get>()("Get", { failure: Schema.Never, success: Schema.Number, payload: {} }) {}
export class Incarnation extends Schema.TaggedRequest<Incarnation>()("Incarnation", {
  failure: Schema.Never,
  success: Schema.Number,
  payload: {}
}) {}
export class Withdraw extends Schema.TaggedRequest<Withdraw>()("Withdraw", {
  failure: Schema.TaggedStruct("InsufficientFunds", { balance: Schema.Number, requested: Schema.Number }),
  success: Schema.Number,
  payload: { amount: Schema.Number }
}) {}
export class Ignore extends Schema.TaggedRequest<Ignore>()("Ignore", { failure: Schema.Never, success: Schema.Void, payload: {} }) {}

export const CounterProtocol = Schema.Union(Add, Boom, Get, Incarnation, Withdraw, Ignore, Terminated)

/** A counter that can crash on demand and answers its incarnation number. */
export const Counter = Actor.make({
  protocol: CounterProtocol,
  initial: 0,
  behavior: (state, message, ctx) => {
    switch (message._tag) {
      case "Add":
        return Effect.succeed(state + message.n)
      case "Boom":
        return Effect.dieMessage(message.why)
      case "Get":
        return Effect.as(ctx.reply(message, state), state)
      case "Incarnation":
        return Effect.as(ctx.reply(message, ctx.incarnation), state)
      case "Withdraw":
        return message.amount > state
          ? Effect.as(ctx.fail(message, { _tag: "InsufficientFunds", balance: state, requested: message.amount }), state)
          : Effect.as(ctx.reply(message, state - message.amount), state - message.amount)
      case "Ignore":
        return Effect.succeed(state)
      case "Terminated":
        return Effect.succeed(state)
    }
  }
})

export class Hold extends Schema.TaggedClass<Hold>()("Hold", {}) {}
export class Item extends Schema.TaggedClass<Item>()("Item", { from: Schema.String, n: Schema.Number }) {}

/**
 * A recorder whose first `Hold` blocks until `gate` opens — so a test can fill its mailbox —
 * and that records every `Item` (with its envelope's sender) in `seen`.
 */
export const recorder = <P extends OverflowPolicy = "backpressure">(
  gate: Deferred.Deferred<void>,
  seen: Array<{ from: string; n: number; sender: string | undefined; seq: number }>,
  mailbox?: { capacity: number; overflow: P }
) =>
  Actor.make({
    protocol: Schema.Union(Hold, Item),
    initial: undefined as void,
    mailbox,
    behavior: (_state, message, ctx) =>
      message._tag === "Hold"
        ? Deferred.await(gate)
        : Effect.sync(() => {
          seen.push({ from: message.from, n: message.n, sender: ctx.sender, seq: ctx.seq })
        })
  })
