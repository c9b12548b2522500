/**
 * The engine shared by every supervising thing — the system's guardian, a `Supervisor`, an actor
 * with children: an ordered set of children and one fiber that handles their exits one at a time,
 * applying the restart strategy, the restart intensity and the backoff schedule.
 */
import { Cause, Deferred, Effect, Fiber, Queue, ScheduleDecision, ScheduleIntervals } from "effect"
import type { ActorId, TerminationReason } from "../../schemas/Actor.js"
import { SupervisorEscalated } from "../../schemas/Lifecycle.js"
import type { Strategy } from "../../schemas/Supervision.js"
import type { Node, RestartInfo } from "../../src/actor/internal/node.js"
import type { SystemState } from "../../src/actor/internal/system.js"
import { renderCause } from "../../src/actor/internal/renderCause.js"
import type { BackoffSchedule } from "../Backoff.js"

export interface Owner {
  readonly id: ActorId
  /**
   * `guardian`: gives up on the one child that exceeded its intensity, never on itself.
   * `actor`: children belong to one incarnation; giving up stops them and crashes the actor.
   * `supervisor`: giving up halts the children (kept for a restart) and fails the supervisor.
   */
  readonly kind: "guardian" | "actor" | "supervisor"
  /** `origin`: the actor whose failures made this core give up (for a nested one, where it started). */
  escalate(cause: Cause.Cause<unknown>, origin: ActorId): void
}

export interface CorePolicy {
  readonly strategy: Strategy
  readonly intensity: number
  readonly periodMillis: number
  readonly backoff: BackoffSchedule
  /** Erlang counts restarts per supervisor; the guardian and actors count them per child (as Akka does). */
  readonly intensityPer: "supervisor" | "child"
  /**
   * Restarts of one child in a row, with no message handled by it in between, before giving up;
   * `undefined`: no such limit. The intensity counts restarts on the clock, and a clock cannot tell
   * a child that fails on every message from one that fails now and then when messages come a day
   * apart (a backtest's bar time) or the backoff spaces the restarts out.
   */
  readonly maxConsecutiveRestarts?: number | undefined
}

type Event =
  | {
    readonly _tag: "Exit"
    readonly node: Node
    readonly incarnation: number
    readonly crashed: boolean
    readonly cause: Cause.Cause<unknown>
    readonly escalated: boolean
  }
  | { readonly _tag: "RestartDue"; readonly nodes: ReadonlyArray<Node>; readonly info: RestartInfo }
  | { readonly _tag: "Start"; readonly nodes: ReadonlyArray<Node>; readonly restart: RestartInfo | undefined; readonly done: Deferred.Deferred<void> }
  | { readonly _tag: "Stop"; readonly node: Node; readonly done: Deferred.Deferred<void> }
  | { readonly _tag: "HaltAll"; readonly done: Deferred.Deferred<void> }
  | { readonly _tag: "TerminateAll"; readonly reason: TerminationReason; readonly done: Deferred.Deferred<void> }

export class SupervisorCore {
  /** Children in start order (a Map keeps insertion order and deletes in O(1)). */
  readonly children = new Map<string, Node>()
  private readonly events: Queue.Queue<Event>
  private readonly delayed = new Set<Fiber.RuntimeFiber<void>>()
  private restartLog: Array<number> = []
  private closed = false
  /** Why this core gave up, once it has (what its owner reports to whoever asks why it stopped). */
  escalated: SupervisorEscalated | undefined = undefined
  /**
   * Whether a child that failed in this incarnation of the core had handled a message first: the
   * subtree made progress before its failures. A nested supervisor reports it to its parent as its
   * own progress when it gives up (it handles no message itself), so its escalations in a row start
   * again after a burst of failures its children had worked between — four bursts far apart are not
   * one child failing on every message.
   */
  progressed = false

  private constructor(
    readonly owner: Owner,
    readonly policy: CorePolicy,
    readonly system: SystemState,
    events: Queue.Queue<Event>
  ) {
    this.events = events
  }

  /** Create a core and fork its event loop (a daemon: it ends with `terminateAll`). */
  static make(owner: Owner, policy: CorePolicy, system: SystemState): Effect.Effect<SupervisorCore> {
    return Effect.gen(function*() {
      const core = new SupervisorCore(owner, policy, system, yield* Queue.unbounded<Event>())
      yield* Effect.forkDaemon(core.loop())
      return core
    })
  }

  /** Called from the exiting child's fiber: hand the exit to the supervisor's own fiber. */
  notifyExit(node: Node, incarnation: number, crashed: boolean, cause: Cause.Cause<unknown>, escalated = false): void {
    this.events.unsafeOffer({ _tag: "Exit", node, incarnation, crashed, cause, escalated })
  }

  /** Register a child of a one_for_one core directly (no other child's restart depends on it). */
  addStarted(node: Node): void {
    this.children.set(node.name, node)
  }

  start(nodes: ReadonlyArray<Node>, restart?: RestartInfo): Effect.Effect<void> {
    return this.request((done) => ({ _tag: "Start", nodes, restart, done }))
  }

  stopChild(node: Node): Effect.Effect<void> {
    return this.request((done) => ({ _tag: "Stop", node, done }))
  }

  readonly haltAll: Effect.Effect<void> = Effect.suspend(() => this.request((done) => ({ _tag: "HaltAll", done })))

  terminateAll(reason: TerminationReason): Effect.Effect<void> {
    return this.request((done) => ({ _tag: "TerminateAll", reason, done }))
  }

  private request(make: (done: Deferred.Deferred<void>) => Event): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.closed) return Effect.void
      return Effect.flatMap(Deferred.make<void>(), (done) =>
        Effect.zipRight(Queue.offer(this.events, make(done)), Deferred.await(done)))
    })
  }

  private loop(): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      while (!self.closed) {
        const event = yield* Queue.take(self.events)
        yield* self.handle(event)
      }
    })
  }

  private handle(event: Event): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      switch (event._tag) {
        case "Exit":
          return yield* self.onExit(event.node, event.incarnation, event.crashed, event.cause, event.escalated)
        case "RestartDue":
          for (const node of event.nodes) {
            if (node.status === "restarting" && self.children.get(node.name) === node) yield* node.start(event.info)
          }
          return
        case "Start":
          if (event.restart !== undefined) {
            // A restarted supervisor starts afresh, as Erlang's new process would: no history.
            self.restartLog = []
            self.progressed = false
            for (const node of event.nodes) node.consecutive = 0
          }
          for (const node of event.nodes) {
            self.children.set(node.name, node)
            yield* node.start(event.restart)
          }
          return yield* Deferred.succeed(event.done, undefined)
        case "Stop": {
          const node = event.node
          if (self.children.get(node.name) === node) {
            self.children.delete(node.name)
            node.status = "stopping"
            yield* node.halt()
            yield* node.terminate("stopped")
          }
          return yield* Deferred.succeed(event.done, undefined)
        }
        case "HaltAll":
          yield* self.haltChildren([...self.children.values()])
          return yield* Deferred.succeed(event.done, undefined)
        case "TerminateAll":
          yield* self.terminateChildren(event.reason)
          self.closed = true
          for (const fiber of self.delayed) yield* Fiber.interrupt(fiber)
          return yield* Deferred.succeed(event.done, undefined)
      }
    })
  }

  private onExit(
    node: Node,
    incarnation: number,
    crashed: boolean,
    cause: Cause.Cause<unknown>,
    escalated: boolean
  ): Effect.Effect<void> {
    const self = this
    const policy = this.policy
    return Effect.gen(function*() {
      // A stale exit (an incarnation already replaced, or one we are halting ourselves) is ignored.
      if (node.status !== "running" || node.incarnation !== incarnation || self.children.get(node.name) !== node) return
      if (node.progressed) self.progressed = true
      const restart = node.restartType === "permanent" || (node.restartType === "transient" && crashed)
      if (!restart) {
        self.children.delete(node.name)
        node.status = "stopping"
        yield* node.halt()
        return yield* node.terminate(escalated ? "escalated" : crashed ? "failed" : "stopped")
      }

      const now = self.system.now()
      const log = policy.intensityPer === "child" ? node.restarts : self.restartLog
      while (log.length > 0 && log[0]! <= now - policy.periodMillis) log.shift()
      if (now - node.startedAt >= policy.periodMillis) {
        node.backoffState = undefined
        node.attempt = 0
      }
      const [backoffState, , decision] = yield* policy.backoff.step(
        now,
        cause,
        node.backoffState === undefined ? policy.backoff.initial : node.backoffState
      )
      if (log.length >= policy.intensity || ScheduleDecision.isDone(decision)) {
        return yield* self.giveUp(node, log.length + 1, cause, undefined)
      }
      // A child that handled a message since it last started was making progress: its failures
      // in a row start again from this one.
      if (node.progressed) node.consecutive = 0
      const limit = policy.maxConsecutiveRestarts
      if (limit !== undefined && node.consecutive >= limit) {
        return yield* self.giveUp(node, node.consecutive + 1, cause, "no_progress")
      }
      node.consecutive++
      log.push(now)
      node.backoffState = backoffState
      node.attempt++
      const delayMillis = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)

      const all = [...self.children.values()]
      const group = policy.strategy === "one_for_one"
        ? [node]
        : policy.strategy === "one_for_all"
        ? all
        : all.slice(all.indexOf(node))
      yield* self.haltChildren(group)
      // Erlang: a temporary sibling caught in a group restart is stopped, not restarted.
      const restarting: Array<Node> = []
      for (const member of group) {
        if (member !== node && member.restartType === "temporary") {
          self.children.delete(member.name)
          yield* member.terminate("stopped")
        } else {
          restarting.push(member)
        }
      }
      const due: Event = { _tag: "RestartDue", nodes: restarting, info: { attempt: node.attempt, delayMillis } }
      if (delayMillis === 0) return yield* Queue.offer(self.events, due)
      const fiber = yield* Effect.forkDaemon(
        Effect.sleep(delayMillis).pipe(Effect.zipRight(Queue.offer(self.events, due)), Effect.asVoid)
      )
      self.delayed.add(fiber)
      fiber.addObserver(() => self.delayed.delete(fiber))
    })
  }

  /** Restart intensity (or the consecutive limit) exceeded: publish it, then per owner kind stop or halt, and hand the failure up. */
  private giveUp(node: Node, restarts: number, cause: Cause.Cause<unknown>, limit: "no_progress" | undefined): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      const origin = node.origin ?? node.id
      const escalated = new SupervisorEscalated({
        supervisor: self.owner.id,
        child: node.id,
        restarts,
        periodMillis: self.policy.periodMillis,
        cause: renderCause(cause),
        at: self.system.now(),
        ...(limit === undefined ? {} : { limit }),
        ...(node.origin === undefined ? {} : { origin: node.origin })
      }, true)
      self.escalated = escalated
      self.system.publish(escalated)
      switch (self.owner.kind) {
        case "guardian":
          self.children.delete(node.name)
          node.status = "stopping"
          yield* node.halt()
          return yield* node.terminate("escalated")
        case "actor":
          yield* self.terminateChildren("escalated")
          return self.owner.escalate(cause, origin)
        case "supervisor":
          yield* self.haltChildren([...self.children.values()])
          return self.owner.escalate(cause, origin)
      }
    })
  }

  /** Halt in reverse start order; halted children stay, marked `restarting`. */
  private haltChildren(nodes: ReadonlyArray<Node>): Effect.Effect<void> {
    return Effect.gen(function*() {
      for (let i = nodes.length - 1; i >= 0; i--) {
        const node = nodes[i]!
        if (node.status === "stopped") continue
        node.status = "restarting"
        yield* node.halt()
      }
    })
  }

  private terminateChildren(reason: TerminationReason): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      const nodes = [...self.children.values()]
      self.children.clear()
      for (let i = nodes.length - 1; i >= 0; i--) {
        const node = nodes[i]!
        if (node.status === "stopped") continue
        node.status = "stopping"
        yield* node.halt()
        yield* node.terminate(reason)
      }
    })
  }
}

