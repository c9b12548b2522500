import { Context, type Fiber } from "effect"
import type { ActorCell } from "./cell.js"

/**
 * The actor whose activation is running, carried in the fiber's context (so fibers it forks
 * inherit it); senders read it to sign envelopes. A context entry rather than a FiberRef: the cell's
 * runtime already sets the context, so marking the fiber costs nothing more.
 */
export class CurrentActor extends Context.Tag("swarm/CurrentActor")<CurrentActor, ActorCell<any, any>>() {}

export const senderOf = (fiber: Fiber.RuntimeFiber<any, any>): ActorCell<any, any> | undefined =>
  fiber.currentContext.unsafeMap.get(CurrentActor.key)
