/**
 * The actor every kernel benchmark drives: a counter whose `Add` adds to its state and whose `Get`
 * replies with it. Shared by `bench/kernel.ts` and its fresh-process memory probe.
 */
import { Effect, Schema } from "effect"
import * as Actor from "../../src/actor/Actor.js"
import type { ActorRef } from "../../src/actor/ActorRef.js"

export class Add extends Schema.TaggedClass<Add>()("Add", { n: Schema.Number }) {}
export class Get extends Schema.TaggedRequest<Get>()("Get", { failure: Schema.Never, success: Schema.Number, payload: {} }) {}

export type Counter = ActorRef<Add | Get, "backpressure">

/** No `mailbox` settings: what an actor gets by default (capacity 1024, backpressure). */
export const DefaultCounter = Actor.make({
  protocol: Schema.Union(Add, Get),
  initial: 0,
  behavior: (state, message, context) =>
    message._tag === "Add" ? Effect.succeed(state + message.n) : Effect.as(context.reply(message, state), state)
})
