/**
 * Defining and spawning actors. An actor type is a protocol schema, a state and a behavior; see
 * `Behavior.ts` for the context a behavior gets.
 */
import { Effect } from "effect"
import type { OverflowPolicy } from "../../schemas/Actor.js"
import type { InvalidActorName } from "../../schemas/ActorError.js"
import type { ActorRef, AnyActorRef } from "./ActorRef.js"
import type { ActorSpec, SpawnOptions } from "./Behavior.js"
import { ActorSystem } from "./ActorSystem.js"

export type { ActorContext, ActorSpec, Behavior, MailboxOptions, Replier, SpawnOptions, Timer } from "./Behavior.js"
export { make } from "./Behavior.js"

/** Spawn a top-level actor in the current `ActorSystem`. */
export const spawn = <M, S, R, P extends OverflowPolicy>(
  spec: ActorSpec<M, S, R, P>,
  options?: SpawnOptions
): Effect.Effect<ActorRef<M, P>, InvalidActorName, R | ActorSystem> =>
  Effect.flatMap(ActorSystem, (system) => system.spawn(spec, options))

/** Stop an actor for good and wait until it has. */
export const stop = (ref: AnyActorRef) => Effect.flatMap(ActorSystem, (system) => system.stop(ref))
