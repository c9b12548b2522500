/** The demo's one metric, kept outside the agents: a message counts as handled once its behavior completes. */
import { Effect, Metric } from "effect"
import type { ActorSpec } from "../actor/Actor.js"
import type { OverflowPolicy } from "../../schemas/Actor.js"

export const messagesHandled = Metric.counter("swarm_demo_messages_handled", {
  description: "messages whose behavior completed (a message that crashed its actor is not counted)"
})

export const counted = <M, S, R, P extends OverflowPolicy>(spec: ActorSpec<M, S, R, P>): ActorSpec<M, S, R, P> => ({
  ...spec,
  behavior: (state, message, context) => Effect.tap(spec.behavior(state, message, context), () => Metric.increment(messagesHandled))
})
