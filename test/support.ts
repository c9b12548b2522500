/** Shared helpers for kernel tests: a system per test, event collectors, waiting without wall-clock time. */
import { Effect, type Scope, Stream } from "effect"
import * as ActorSystem from "../src/actor/ActorSystem.js"
import type { DeadLetter, LifecycleEvent } from "../schemas/Lifecycle.js"

/** Run a test body in a fresh actor system (on the test's TestClock), closed when the body ends. */
export const run = <A, E>(effect: Effect.Effect<A, E, ActorSystem.ActorSystem | Scope.Scope>) =>
  effect.pipe(Effect.scoped, Effect.provide(ActorSystem.layer()))

/** Let forked fibers run: yields the current fiber until `done()` holds (bounded, no wall-clock time). */
export const settle = (done: () => boolean = () => false, rounds = 200) =>
  Effect.gen(function*() {
    for (let i = 0; i < rounds && !done(); i++) yield* Effect.yieldNow()
  })

/** Collect the system's lifecycle events and dead letters into arrays from now on. */
export const collect = Effect.gen(function*() {
  const system = yield* ActorSystem.ActorSystem
  const events: Array<LifecycleEvent> = []
  const deadLetters: Array<DeadLetter> = []
  yield* Stream.runForEach(yield* system.lifecycle, (e) => Effect.sync(() => events.push(e))).pipe(Effect.forkScoped)
  yield* Stream.runForEach(yield* system.deadLetters, (d) => Effect.sync(() => deadLetters.push(d))).pipe(Effect.forkScoped)
  return { events, deadLetters, system }
})

export const ofTag = <T extends LifecycleEvent["_tag"]>(events: ReadonlyArray<LifecycleEvent>, tag: T) =>
  events.filter((e): e is Extract<LifecycleEvent, { _tag: T }> => e._tag === tag)
