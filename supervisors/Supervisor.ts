/**
 * Supervision trees as plain data: a strategy, a restart intensity (at most `intensity` restarts in
 * `period`), a backoff between restarts, and ordered children — actors or nested supervisors.
 * Children start in order and stop in reverse order; past its intensity a supervisor halts its
 * children and escalates to its parent. With `maxConsecutiveRestarts` it also escalates when one
 * child keeps failing — that many restarts in a row with no message handled in between — which the
 * intensity, counted on the clock, misses when the clock is a backtest's bar time.
 */
import { type Cause, Deferred, Duration, Effect, Exit, FiberId, Option, type Runtime } from "effect"
import type { ActorId, OverflowPolicy, TerminationReason } from "../schemas/Actor.js"
import { InvalidActorName } from "../schemas/ActorError.js"
import { ActorRestarted, ActorStarted, ActorStopped, type SupervisorEscalated } from "../schemas/Lifecycle.js"
import { type Backoff, defaultBackoff, type RestartType, type Strategy } from "../schemas/Supervision.js"
import type { ActorRef } from "../src/actor/ActorRef.js"
import type { ActorSpec } from "../src/actor/Behavior.js"
import { ActorSystem } from "../src/actor/ActorSystem.js"
import { ActorCell, validateName, withoutSpan } from "../src/actor/internal/cell.js"
import { type Node, type RestartInfo, Supervised } from "../src/actor/internal/node.js"
import type { SystemState } from "../src/actor/internal/system.js"
import * as BackoffSchedule from "./Backoff.js"
import { SupervisorCore } from "./internal/SupervisorCore.js"

export interface WorkerChild<Name extends string, M, S, R, P extends OverflowPolicy = OverflowPolicy> {
  readonly _tag: "worker"
  readonly name: Name
  readonly restart: RestartType
  readonly actor: ActorSpec<M, S, R, P>
}

export interface SupervisorChild<Name extends string, C extends Children, R> {
  readonly _tag: "supervisor"
  readonly name: Name
  readonly restart: RestartType
  readonly spec: Spec<C>
  /** Phantom: the services the subtree needs. */
  readonly _R?: (_: never) => R
}

export type ChildSpec = WorkerChild<string, any, any, any, any> | SupervisorChild<string, any, any>
export type Children = ReadonlyArray<ChildSpec>

export interface Spec<C extends Children> {
  readonly strategy: Strategy
  /** Restarts allowed within `period` before escalating (default 3). */
  readonly intensity?: number
  /** Default 5 seconds. */
  readonly period?: Duration.DurationInput
  /**
   * Restarts of one child in a row, with no message handled by it in between, before escalating
   * (default: no such limit). A message handled is progress unless the child's actor says what
   * progress is (`ActorSpec.progress`: an analyst, a bar past its warm-up). A nested supervisor
   * handles no messages itself: each of its escalations counts, until it is restarted afresh with
   * its parent.
   */
  readonly maxConsecutiveRestarts?: number
  /** Default: exponential from 10 ms, doubling, capped at 5 s. */
  readonly backoff?: Backoff | BackoffSchedule.BackoffSchedule
  readonly children: C
}

/** Services required by every actor of a spec. */
export type ServicesOf<C extends Children> = C[number] extends infer X
  ? X extends WorkerChild<any, any, any, infer R, any> ? R : X extends SupervisorChild<any, any, infer R> ? R : never
  : never

type WorkerNames<C extends Children> = Extract<C[number], { readonly _tag: "worker" }>["name"]
type SupervisorNames<C extends Children> = Extract<C[number], { readonly _tag: "supervisor" }>["name"]
type RefOf<C extends Children, K> = Extract<C[number], { readonly _tag: "worker"; readonly name: K }> extends
  WorkerChild<any, infer M, any, any, infer P> ? ActorRef<M, P> : never
type ChildrenOf<C extends Children, K> = Extract<C[number], { readonly _tag: "supervisor"; readonly name: K }> extends
  SupervisorChild<any, infer CC, any> ? CC : never

export const worker = <const Name extends string, M, S, R, P extends OverflowPolicy>(
  name: Name,
  actor: ActorSpec<M, S, R, P>,
  options?: { readonly restart?: RestartType }
): WorkerChild<Name, M, S, R, P> => ({ _tag: "worker", name, restart: options?.restart ?? "permanent", actor })

export const supervisor = <const Name extends string, const C extends Children>(
  name: Name,
  spec: Spec<C>,
  options?: { readonly restart?: RestartType }
): SupervisorChild<Name, C, ServicesOf<C>> => ({ _tag: "supervisor", name, restart: options?.restart ?? "permanent", spec })

/** A running supervisor. Refs are looked up by child name and stay valid across restarts. */
export interface SupervisorRef<C extends Children> {
  readonly id: ActorId
  readonly ref: <K extends WorkerNames<C>>(name: K) => RefOf<C, K>
  readonly child: <K extends SupervisorNames<C>>(name: K) => SupervisorRef<ChildrenOf<C, K>>
  /** Stop the whole subtree for good (children in reverse start order). */
  readonly stop: Effect.Effect<void>
  /** Completes when the supervisor has stopped for good, with why (`escalated` when it gave up). */
  readonly awaitTermination: Effect.Effect<TerminationReason>
  /** The last time it gave up: on which child, how, with what cause (and where a nested escalation began). */
  readonly escalation: Effect.Effect<Option.Option<SupervisorEscalated>>
}

/**
 * Start a supervision tree under the system's guardian. By default it is `temporary` there: if it
 * escalates, the guardian stops it and `awaitTermination` reports `escalated`.
 */
export const start = <const C extends Children>(
  spec: Spec<C>,
  options?: { readonly name?: string; readonly restart?: RestartType }
): Effect.Effect<SupervisorRef<C>, InvalidActorName, ServicesOf<C> | ActorSystem> =>
  Effect.gen(function*() {
    const system = yield* ActorSystem
    const runtime = withoutSpan(yield* Effect.runtime<never>())
    const name = options?.name ?? system.state.nextName()
    const invalid = validateName(name, system.guardian.children)
    if (invalid !== undefined) return yield* new InvalidActorName({ name, parent: "/user", reason: invalid })
    const node = yield* SupervisorNode.make(system.state, system.guardian, `/user/${name}` as ActorId, name, spec, options?.restart ?? "temporary", runtime)
    system.guardian.addStarted(node)
    yield* node.start()
    return node.handle() as SupervisorRef<C>
  })

class SupervisorNode extends Supervised implements Node {
  private readonly nodes = new Map<string, Node>()
  private terminated = Deferred.unsafeMake<TerminationReason>(FiberId.none)

  private constructor(
    readonly system: SystemState,
    readonly parent: SupervisorCore,
    readonly id: ActorId,
    readonly name: string,
    readonly spec: Spec<Children>,
    readonly restartType: RestartType,
    private readonly runtime: Runtime.Runtime<never>,
    private core: SupervisorCore
  ) {
    super()
  }

  static make(
    system: SystemState,
    parent: SupervisorCore,
    id: ActorId,
    name: string,
    spec: Spec<Children>,
    restartType: RestartType,
    runtime: Runtime.Runtime<never>
  ): Effect.Effect<SupervisorNode, InvalidActorName> {
    return Effect.gen(function*() {
      const seen = new Set<string>()
      for (const child of spec.children) {
        const invalid = validateName(child.name, seen)
        if (invalid !== undefined) return yield* new InvalidActorName({ name: child.name, parent: id, reason: invalid })
        seen.add(child.name)
      }
      let node: SupervisorNode | undefined
      const owner = { id, kind: "supervisor" as const, escalate: (cause: Cause.Cause<unknown>, origin: ActorId) => node!.escalate(cause, origin) }
      const core = yield* SupervisorCore.make(owner, {
        strategy: spec.strategy,
        intensity: spec.intensity ?? 3,
        periodMillis: Duration.toMillis(Duration.decode(spec.period ?? "5 seconds")),
        backoff: BackoffSchedule.resolve(spec.backoff ?? defaultBackoff),
        intensityPer: "supervisor",
        maxConsecutiveRestarts: spec.maxConsecutiveRestarts
      }, system)
      node = new SupervisorNode(system, parent, id, name, spec, restartType, runtime, core)
      return node
    })
  }

  /** (Re)create children whose cells stopped for good, then start all of them in order. */
  start(restart?: RestartInfo): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      self.incarnation++
      self.status = "running"
      self.startedAt = self.system.now()
      self.progressed = false
      const ordered: Array<Node> = []
      for (const child of self.spec.children) {
        let node = self.nodes.get(child.name)
        if (node === undefined || node.status === "stopped") {
          node = yield* self.makeChild(child)
          self.nodes.set(child.name, node)
        }
        ordered.push(node)
      }
      const at = self.system.now()
      self.system.publish(
        restart === undefined
          ? new ActorStarted({ actor: self.id, incarnation: self.incarnation, at }, true)
          : new ActorRestarted({ actor: self.id, attempt: restart.attempt, delayMillis: restart.delayMillis, incarnation: self.incarnation, at }, true)
      )
      yield* self.core.start(ordered, restart)
    })
  }

  private makeChild(child: ChildSpec): Effect.Effect<Node> {
    const id = `${this.id}/${child.name}` as ActorId
    if (child._tag === "supervisor") {
      return SupervisorNode.make(this.system, this.core, id, child.name, child.spec, child.restart, this.runtime).pipe(Effect.orDie)
    }
    return Effect.sync(() => {
      const cell = new ActorCell(this.system, id, child.name, child.actor, child.restart, this.core, this.runtime)
      this.system.registry.set(id, cell)
      return cell
    })
  }

  halt(): Effect.Effect<void> {
    return this.core.haltAll
  }

  terminate(reason: TerminationReason): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.status === "stopped") return Effect.void
      this.status = "stopped"
      return this.core.terminateAll(reason).pipe(
        Effect.zipRight(Effect.sync(() => {
          this.system.publish(new ActorStopped({ actor: this.id, reason, at: this.system.now() }, true))
          Deferred.unsafeDone(this.terminated, Exit.succeed(reason))
        }))
      )
    })
  }

  private escalate(cause: Cause.Cause<unknown>, origin: ActorId): void {
    this.origin = origin
    // Its progress is its children's: one that failed had handled messages first (SupervisorCore).
    this.progressed = this.core.progressed
    this.parent.notifyExit(this, this.incarnation, true, cause, true)
  }

  handle(): SupervisorRef<Children> {
    const lookup = (name: string): Node => {
      const node = this.nodes.get(name)
      if (node === undefined) throw new Error(`${this.id} has no child named ${name}`)
      return node
    }
    return {
      id: this.id,
      ref: (name) => (lookup(name) as ActorCell<any, any>).ref as never,
      child: (name) => (lookup(name) as SupervisorNode).handle(),
      stop: Effect.suspend(() => (this.status === "stopped" ? Effect.void : this.parent.stopChild(this))),
      awaitTermination: Deferred.await(this.terminated),
      escalation: Effect.sync(() => Option.fromNullable(this.core.escalated))
    }
  }
}
