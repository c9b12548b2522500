/**
 * The actor system service: where top-level actors are spawned (under the `/user` guardian), where
 * dead letters and lifecycle events are published, and what stops everything when its scope closes.
 */
import { Context, Duration, Effect, Layer, Option, PubSub, type Scope, Stream } from "effect"
import type { ActorId, OverflowPolicy, TerminationReason } from "../../schemas/Actor.js"
import type { InvalidActorName } from "../../schemas/ActorError.js"
import { type DeadLetter, type DeadLetterReason, type LifecycleEvent } from "../../schemas/Lifecycle.js"
import { type Backoff, defaultBackoff } from "../../schemas/Supervision.js"
import * as BackoffSchedule from "../../supervisors/Backoff.js"
import * as Metrics from "../telemetry/Metrics.js"
import { SupervisorCore } from "../../supervisors/internal/SupervisorCore.js"
import type { ActorRef, AnyActorRef } from "./ActorRef.js"
import type { ActorSpec, SpawnOptions } from "./Behavior.js"
import { spawnCell } from "./internal/cell.js"
import { SystemState } from "./internal/system.js"

export interface Options {
  /** Default timeout of `ask` (5 seconds). */
  readonly askTimeout?: Duration.DurationInput
  /** How long a stopping actor may finish its message before it is interrupted (5 seconds). */
  readonly stopTimeout?: Duration.DurationInput
  /** Per-child restart intensity for top-level actors and for actors' own children (3 in 5 s). */
  readonly intensity?: number
  readonly period?: Duration.DurationInput
  readonly backoff?: Backoff | BackoffSchedule.BackoffSchedule
  /**
   * Called synchronously, in order, with every lifecycle event and dead letter as it happens (before
   * the streams see it): what a run's event log is built from, at the exact (virtual) time.
   */
  readonly observe?: Observer
}

export interface Observer {
  readonly lifecycle?: (event: LifecycleEvent) => void
  readonly deadLetter?: (letter: DeadLetter) => void
}

export interface Service {
  /** Spawn a top-level actor under `/user` (restarted per its restart type, default `permanent`). */
  readonly spawn: <M, S, R, P extends OverflowPolicy>(
    spec: ActorSpec<M, S, R, P>,
    options?: SpawnOptions
  ) => Effect.Effect<ActorRef<M, P>, InvalidActorName, R>
  /** Stop an actor for good (whatever its restart type); waits until it has stopped. */
  readonly stop: (ref: AnyActorRef) => Effect.Effect<void>
  readonly awaitTermination: (ref: AnyActorRef) => Effect.Effect<TerminationReason>
  readonly lookup: (id: string) => Option.Option<AnyActorRef>
  /** Actors spawned and not yet stopped for good. */
  readonly liveActors: Effect.Effect<number>
  readonly deadLetterCounts: Effect.Effect<Readonly<Record<DeadLetterReason, number>>>
  /** Subscribes now (so nothing published after this is missed); the stream ends with the scope. */
  readonly deadLetters: Effect.Effect<Stream.Stream<DeadLetter>, never, Scope.Scope>
  readonly lifecycle: Effect.Effect<Stream.Stream<LifecycleEvent>, never, Scope.Scope>
  /** @internal */
  readonly state: SystemState
  /** @internal */
  readonly guardian: SupervisorCore
}

export class ActorSystem extends Context.Tag("swarm/ActorSystem")<ActorSystem, Service>() {}

export const make = (options: Options = {}): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const deadLetters = yield* PubSub.unbounded<DeadLetter>()
    const lifecycle = yield* PubSub.unbounded<LifecycleEvent>()
    const childPolicy = {
      strategy: "one_for_one",
      intensity: options.intensity ?? 3,
      periodMillis: Duration.toMillis(Duration.decode(options.period ?? "5 seconds")),
      backoff: BackoffSchedule.resolve(options.backoff ?? defaultBackoff),
      intensityPer: "child"
    } as const
    const state = new SystemState(
      yield* Effect.clock,
      Duration.decode(options.askTimeout ?? "5 seconds"),
      Duration.decode(options.stopTimeout ?? "5 seconds"),
      deadLetters,
      lifecycle,
      childPolicy,
      options.observe
    )
    if (state.deadlines.needsFiber) state.deadlines.fiber = yield* Effect.forkDaemon(state.deadlines.run)
    const guardian = yield* SupervisorCore.make({ id: "/user" as ActorId, kind: "guardian", escalate: () => {} }, childPolicy, state)
    // Its actors' counts (messages, restarts, mailboxes, dead letters) are read by telemetry's flush.
    Metrics.register(state)
    yield* Effect.addFinalizer(() =>
      guardian.terminateAll("stopped").pipe(
        Effect.zipRight(Effect.sync(() => Metrics.unregister(state))),
        Effect.zipRight(state.deadlines.close),
        Effect.zipRight(PubSub.shutdown(deadLetters)),
        Effect.zipRight(PubSub.shutdown(lifecycle))
      )
    )
    const service: Service = {
      spawn: (spec, spawnOptions) =>
        Effect.flatMap(Effect.runtime<never>(), (runtime) => spawnCell(state, guardian, "/user", spec, spawnOptions, runtime)),
      stop: (ref) => Effect.suspend(() => (ref.cell.status === "stopped" ? Effect.void : ref.cell.parent.stopChild(ref.cell))),
      awaitTermination: (ref) => ref.cell.awaitTermination,
      lookup: (id) => Option.map(Option.fromNullable(state.registry.get(id)), (cell) => cell.ref),
      liveActors: Effect.sync(() => state.registry.size),
      deadLetterCounts: Effect.sync(() => ({ ...state.deadLetterCounts })),
      deadLetters: Stream.fromPubSub(deadLetters, { scoped: true }),
      lifecycle: Stream.fromPubSub(lifecycle, { scoped: true }),
      state,
      guardian
    }
    return service
  })

export const layer = (options?: Options): Layer.Layer<ActorSystem> => Layer.scoped(ActorSystem, make(options))
