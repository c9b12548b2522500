/**
 * Work an agent needs done outside its run's world — a model's answer over HTTP — which takes
 * wall-clock time the world's virtual clock knows nothing about. In a backtest the world provides
 * it (src/swarm/World.ts): the work runs on the real runtime and the driver waits for it before
 * moving virtual time. A paper run has no world and no `Outside`: the work simply runs.
 */
import { Context, Effect } from "effect"

export class Outside extends Context.Tag("swarm/Outside")<Outside, {
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
}>() {}

/** Run `effect` outside the world if there is one, else here. */
export const run = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.flatMap(Effect.serviceOption(Outside), (outside) => outside._tag === "Some" ? outside.value.run(effect) : effect)
