/**
 * Defining and spawning actors. An actor type is a protocol schema, a state and a behavior; see
 * `Behavior.ts` for the context a behavior gets.
 */
import { Effect } from "effect"
import type { ActorRef, AnyActorRef } from "./ActorRef.js"
import type { ActorSpec, SpawnOptions } from "./Behavior.js"
import { ActorSystem } from "./ActorSystem.js"

export type { ActorContext, ActorSpec, Behavior, Replier, SpawnOptions, Timer } from "./Behavior.js"
export { make } from "./Behavior.js"

/** Spawn a top-level actor in the current `ActorSystem`. */
export const spawn = <M, S, R>(spec: ActorSpec<M, S, R>, options?: SpawnOptions) =>
  Effect.flatMap(ActorSystem, (system) => system.spawn(spec, options)) as Effect.Effect<
    ActorRef<M>,
    import("../../schemas/ActorError.js").InvalidActorName,
    R | ActorSystem
  >

/** Stop an actor for good and wait until it has. */
export const stop = (ref: AnyActorRef) => Effect.flatMap(ActorSystem, (system) => system.stop(ref))
