/**
 * An actor cell: the identity, mailbox and state of one actor, and the fiber of its current
 * incarnation. The supervisor restarts the cell (a new fiber, fresh or recovered state, same
 * mailbox and ref) or terminates it (mailbox into dead letters, watchers told).
 */
import { Cause, Context, Deferred, Duration, Effect, Exit, Fiber, FiberId, Scope, Tracer } from "effect"
import { type ActorId, type OverflowPolicy, Terminated, type TerminationReason } from "../../../schemas/Actor.js"
import { InvalidActorName, MailboxFull, NoReply } from "../../../schemas/ActorError.js"
import { ActorCrashed, ActorRestarted, ActorStarted, ActorStopped } from "../../../schemas/Lifecycle.js"
import type { RestartType } from "../../../schemas/Supervision.js"
import { type CorePolicy, type Owner, SupervisorCore } from "../../../supervisors/internal/SupervisorCore.js"
import { ActorRef, type AnyActorRef } from "../ActorRef.js"
import type { ActorContext, ActorSpec, Replier, SpawnOptions, Timer } from "../Behavior.js"
import { Envelope, tagOf } from "../Envelope.js"
import { Mailbox, Offer } from "../Mailbox.js"
import { CurrentActor } from "./current.js"
import type { Node, NodeStatus, RestartInfo } from "./node.js"
import { renderCause } from "./renderCause.js"
import type { SystemState } from "./system.js"

type TerminatedMapper = ((terminated: Terminated) => unknown) | undefined

const DEFAULT_CAPACITY = 1024

export class ActorCell<M, S> implements Node {
  status: NodeStatus = "running"
  incarnation = 0
  startedAt = 0
  backoffState: unknown = undefined
  attempt = 0
  restarts: Array<number> = []
  /** This actor's outgoing message counter (the `seq` of envelopes it sends). */
  outSeq = 0
  state: S = undefined as S
  readonly mailbox: Mailbox
  readonly ref: ActorRef<M>
  /** The envelope being handled: dead-lettered with the cause if the handler crashes. */
  current: Envelope | undefined = undefined
  private fiber: Fiber.RuntimeFiber<void, unknown> | undefined = undefined
  private stopFlag = false
  private halting = false
  private escalation: Cause.Cause<unknown> | undefined = undefined
  private lastCause: Cause.Cause<unknown> | undefined = undefined
  private childCore: SupervisorCore | undefined = undefined
  private scope: Scope.CloseableScope | undefined = undefined
  watchers: Map<ActorCell<any, any>, TerminatedMapper> | undefined = undefined
  private watching: Set<ActorCell<any, any>> | undefined = undefined
  private terminated: Deferred.Deferred<TerminationReason> | undefined = undefined
  private terminationReason: TerminationReason | undefined = undefined
  private context: ActorContext<M> | undefined = undefined
  private parkEffect: Effect.Effect<void> | undefined = undefined

  constructor(
    readonly system: SystemState,
    readonly id: ActorId,
    readonly name: string,
    readonly spec: ActorSpec<M, S, any, any>,
    readonly restartType: RestartType,
    readonly parent: SupervisorCore,
    /** The services the actor was spawned with (without the spawner's span). */
    private readonly env: Context.Context<never>
  ) {
    const capacity = spec.mailbox?.capacity ?? DEFAULT_CAPACITY
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`mailbox capacity must be a positive integer, got ${capacity}`)
    this.mailbox = new Mailbox(capacity, spec.mailbox?.overflow ?? "backpressure", (dropped) => {
      this.system.deadLetter(this.id, dropped, "overflow", "dropped oldest")
      this.answer(dropped, Exit.fail(this.mailboxFull()))
    })
    this.ref = new ActorRef(this)
  }

  // --- delivery -------------------------------------------------------------------------------

  /** A `tell`: accepted, refused (policy `fail`), dead (stopped) or waiting for room (`backpressure`). */
  deliver(envelope: Envelope): Effect.Effect<void, MailboxFull> {
    switch (this.mailbox.offer(envelope)) {
      case Offer.Accepted:
        this.mailbox.wake(Effect.void)
        return Effect.void
      case Offer.Closed:
        this.system.deadLetter(this.id, envelope, "stopped")
        return Effect.void
      case Offer.Refused:
        this.system.deadLetter(this.id, envelope, "overflow", "mailbox full")
        return Effect.fail(this.mailboxFull())
      case Offer.MustWait:
        return Effect.async<void>((resume) => {
          const waiter = this.mailbox.enqueueWaiter(envelope, () => resume(Effect.void))
          return Effect.sync(() => {
            this.mailbox.removeWaiter(waiter)
          })
        })
    }
  }

  /** An `ask` (inside its `Effect.async`): failures are answered at once; returns a withdraw for interruption. */
  deliverAsk(envelope: Envelope): (() => void) | undefined {
    switch (this.mailbox.offer(envelope)) {
      case Offer.Accepted:
        this.mailbox.wake(Effect.void)
        return undefined
      case Offer.Closed:
        this.system.deadLetter(this.id, envelope, "stopped")
        this.answer(envelope, Exit.fail(this.noReply(envelope, "stopped")))
        return undefined
      case Offer.Refused:
        this.system.deadLetter(this.id, envelope, "overflow", "mailbox full")
        this.answer(envelope, Exit.fail(this.mailboxFull()))
        return undefined
      case Offer.MustWait: {
        const waiter = this.mailbox.enqueueWaiter(envelope, () => {})
        return () => {
          this.mailbox.removeWaiter(waiter)
        }
      }
    }
  }

  /** `Terminated` and other system messages bypass the capacity (never the closed state). */
  deliverSystem(message: unknown, sender: ActorId): void {
    if (this.mailbox.offerSystem(new Envelope(message, sender, 0, undefined, undefined))) this.mailbox.wake(Effect.void)
  }

  answer(envelope: Envelope, exit: Exit.Exit<unknown, unknown>): void {
    envelope.answered = true
    const reply = envelope.reply
    if (reply !== undefined) {
      envelope.reply = undefined
      reply(exit)
    }
  }

  private mailboxFull(): MailboxFull {
    return new MailboxFull({ actor: this.id, capacity: this.mailbox.capacity, policy: this.mailbox.policy })
  }

  private noReply(envelope: Envelope, reason: NoReply["reason"], detail?: string): NoReply {
    return new NoReply({ actor: this.id, message: tagOf(envelope.message), reason, detail })
  }

  // --- the incarnation --------------------------------------------------------------------------

  start(restart?: RestartInfo): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.incarnation++
      this.status = "running"
      this.stopFlag = false
      this.halting = false
      this.escalation = undefined
      this.startedAt = this.system.now()
      const incarnation = this.incarnation
      const program = this.run(restart).pipe(
        Effect.onExit((exit) => this.onIncarnationExit(exit, incarnation)),
        Effect.locally(CurrentActor, this),
        // The spawn-time services replace whatever the starting fiber (spawner or supervisor) had.
        Effect.mapInputContext(() => this.env as Context.Context<unknown>)
      ) as Effect.Effect<void, unknown>
      return Effect.map(Effect.forkDaemon(program), (fiber) => {
        this.fiber = fiber
        const at = this.system.now()
        this.system.publish(
          restart === undefined
            ? new ActorStarted({ actor: this.id, incarnation, at }, true)
            : new ActorRestarted({ actor: this.id, attempt: restart.attempt, delayMillis: restart.delayMillis, incarnation, at }, true)
        )
      })
    })
  }

  /** The actor loop: drain the mailbox one envelope at a time, park when it is empty. */
  private run(restart: RestartInfo | undefined): Effect.Effect<void, unknown, unknown> {
    const cell = this
    const spec = this.spec
    const context = this.contextFor()
    return Effect.gen(function*() {
      if (cell.stopFlag) return
      if (restart !== undefined && spec.onRestart !== undefined) {
        cell.state = yield* spec.onRestart(cell.state, cell.lastCause ?? Cause.empty, context)
      } else if (spec.setup !== undefined) {
        cell.state = yield* spec.setup(context)
      } else {
        cell.state = spec.initial as S
      }
      const mailbox = cell.mailbox
      while (true) {
        if (cell.escalation !== undefined) return yield* Effect.failCause(cell.escalation)
        if (cell.stopFlag) return
        const envelope = mailbox.poll()
        if (envelope === undefined) {
          yield* (cell.parkEffect ??= cell.makePark())
          continue
        }
        cell.current = envelope
        const next = spec.behavior(cell.state, envelope.message as M, context)
        // A behavior that answers with an already-completed effect (`Effect.succeed`) skips a fiber step.
        if (envelope.span === undefined && Exit.isExit(next) && Exit.isSuccess(next)) cell.state = next.value as S
        else cell.state = yield* (envelope.span === undefined ? next : cell.traced(next, envelope))
        cell.current = undefined
        if (envelope.reply !== undefined && !envelope.answered) {
          cell.answer(envelope, Exit.fail(cell.noReply(envelope, "unanswered")))
        }
      }
    })
  }

  /** The handler runs in a span whose parent is the sender's span: one trace across actors. */
  private traced<A, E, R>(effect: Effect.Effect<A, E, R>, envelope: Envelope): Effect.Effect<A, E, R> {
    return Effect.withSpan(effect, `Actor.receive ${tagOf(envelope.message)}`, {
      parent: envelope.span,
      kind: "consumer",
      attributes: {
        "actor.id": this.id,
        "message.type": tagOf(envelope.message),
        "message.seq": envelope.seq,
        "message.sender": envelope.sender ?? "external"
      }
    })
  }

  private makePark(): Effect.Effect<void> {
    const mailbox = this.mailbox
    const unpark = Effect.sync(() => mailbox.unpark())
    return Effect.async<void>((resume) => {
      mailbox.park(resume)
      return unpark
    })
  }

  private onIncarnationExit(exit: Exit.Exit<void, unknown>, incarnation: number): Effect.Effect<void> {
    return Effect.sync(() => {
      if (incarnation === this.incarnation) this.fiber = undefined
      const current = this.current
      this.current = undefined
      if (Exit.isSuccess(exit)) {
        if (!this.halting) this.parent.notifyExit(this, incarnation, false, Cause.empty)
        return
      }
      const cause = exit.cause
      const interrupted = Cause.isInterruptedOnly(cause)
      const detail = renderCause(cause)
      if (current !== undefined) {
        this.system.deadLetter(this.id, current, interrupted ? "stopped" : "crashed", detail)
        if (current.reply !== undefined) this.answer(current, Exit.fail(this.noReply(current, interrupted ? "stopped" : "crashed", detail)))
      }
      if (interrupted && this.halting) return
      this.lastCause = cause
      this.system.publish(
        new ActorCrashed({
          actor: this.id,
          incarnation,
          message: current === undefined ? undefined : tagOf(current.message),
          cause: detail,
          at: this.system.now()
        }, true)
      )
      if (!this.halting) this.parent.notifyExit(this, incarnation, true, cause)
    })
  }

  /** End the incarnation after the message in hand (interrupting it past the stop timeout), then its children, timers and watches. */
  halt(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.halting = true
      this.stopFlag = true
      const fiber = this.fiber
      const ended = fiber === undefined ? Effect.void : Effect.suspend(() => {
        this.mailbox.wake(Effect.void)
        return Fiber.await(fiber).pipe(
          Effect.timeout(this.system.stopTimeout),
          Effect.catchAll(() => Fiber.interrupt(fiber)),
          Effect.asVoid
        )
      })
      return Effect.zipRight(ended, this.releaseIncarnation())
    })
  }

  private releaseIncarnation(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.watching !== undefined) {
        for (const target of this.watching) target.watchers?.delete(this)
        this.watching = undefined
      }
      const core = this.childCore
      const scope = this.scope
      this.childCore = undefined
      this.scope = undefined
      return Effect.zipRight(
        core === undefined ? Effect.void : core.terminateAll("stopped"),
        scope === undefined ? Effect.void : Scope.close(scope, Exit.void)
      )
    })
  }

  terminate(reason: TerminationReason): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.terminationReason !== undefined) return
      this.status = "stopped"
      this.terminationReason = reason
      for (const envelope of this.mailbox.close()) {
        this.system.deadLetter(this.id, envelope, "stopped")
        if (envelope.reply !== undefined) this.answer(envelope, Exit.fail(this.noReply(envelope, "stopped")))
      }
      this.system.registry.delete(this.id)
      if (this.watchers !== undefined) {
        const terminated = new Terminated({ actor: this.id, reason }, true)
        for (const [watcher, map] of this.watchers) {
          watcher.watching?.delete(this)
          watcher.deliverSystem(map === undefined ? terminated : map(terminated), this.id)
        }
        this.watchers = undefined
      }
      this.system.publish(new ActorStopped({ actor: this.id, reason, at: this.system.now() }, true))
      if (this.terminated !== undefined) Deferred.unsafeDone(this.terminated, Exit.succeed(reason))
    })
  }

  readonly awaitTermination: Effect.Effect<TerminationReason> = Effect.suspend(() =>
    this.terminationReason !== undefined
      ? Effect.succeed(this.terminationReason)
      : Deferred.await(this.terminated ??= Deferred.unsafeMake<TerminationReason>(FiberId.none))
  )

  /** A child's supervisor gave up: crash this actor before its next message. */
  escalate(cause: Cause.Cause<unknown>): void {
    this.escalation = cause
    this.mailbox.wake(Effect.void)
  }

  // --- the behavior's context ----------------------------------------------------------------------

  private contextFor(): ActorContext<M> {
    if (this.context !== undefined) return this.context
    const cell = this
    const answerCurrent = (request: unknown, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const envelope = cell.current
        if (envelope === undefined || envelope.message !== request) {
          return Effect.dieMessage(`${cell.id}: ${tagOf(request)} is not the message being handled; use replyLater`)
        }
        cell.answer(envelope, exit)
        return Effect.void
      })
    const context: ActorContext<M> = {
      self: this.ref,
      id: this.id,
      get incarnation() {
        return cell.incarnation
      },
      get sender() {
        return cell.current?.sender
      },
      get seq() {
        return cell.current?.seq ?? -1
      },
      spawn: (spec, options) =>
        Effect.flatMap(Effect.context<never>(), (services) =>
          Effect.flatMap(cell.ensureChildCore(), (core) => spawnCell(cell.system, core, cell.id, spec, options, services))),
      watch: (ref: AnyActorRef, map?: TerminatedMapper) =>
        Effect.sync(() => {
          const target = ref.cell
          if (target === cell) return
          if (target.status === "stopped") {
            const terminated = new Terminated({ actor: target.id, reason: target.terminationReason ?? "stopped" }, true)
            cell.deliverSystem(map === undefined ? terminated : map(terminated), target.id)
            return
          }
          ;(target.watchers ??= new Map()).set(cell, map)
          ;(cell.watching ??= new Set()).add(target)
        }),
      unwatch: (ref) =>
        Effect.sync(() => {
          ref.cell.watchers?.delete(cell)
          cell.watching?.delete(ref.cell)
        }),
      schedule: (message, delay) =>
        cell.forkTimer(Effect.zipRight(Effect.sleep(delay), Effect.ignore(cell.ref.tell(message)))),
      scheduleRepeatedly: (message, interval) =>
        cell.forkTimer(Effect.forever(Effect.zipRight(Effect.sleep(interval), Effect.ignore(cell.ref.tell(message))))),
      stop: Effect.sync(() => {
        cell.stopFlag = true
      }),
      reply: (request, value) => answerCurrent(request, Exit.succeed(value)),
      fail: (request, error) => answerCurrent(request, Exit.fail(error)),
      respond: (request, effect) =>
        Effect.matchEffect(effect, {
          onFailure: (error) => answerCurrent(request, Exit.fail(error)),
          onSuccess: (value) => answerCurrent(request, Exit.succeed(value))
        }),
      replyLater: <Q>(request: Q) => {
        const envelope = cell.current
        if (envelope === undefined || envelope.message !== request) {
          throw new Error(`${cell.id}: replyLater(${tagOf(request)}) outside the handling of that message`)
        }
        envelope.answered = true
        const complete = (exit: Exit.Exit<any, any>) => Effect.sync(() => cell.answer(envelope, exit))
        return {
          succeed: (value) => complete(Exit.succeed(value)),
          fail: (error) => complete(Exit.fail(error)),
          complete
        } as Replier<any, any>
      }
    }
    this.context = context
    return context
  }

  /** Timers live in the incarnation's scope: a restart or stop cancels them. */
  private forkTimer(effect: Effect.Effect<void>): Effect.Effect<Timer> {
    return Effect.suspend(() =>
      Effect.flatMap(this.scope === undefined ? Scope.make() : Effect.succeed(this.scope), (scope) => {
        this.scope = scope
        return Effect.map(Effect.forkIn(effect, scope), (fiber): Timer => ({ cancel: Fiber.interrupt(fiber).pipe(Effect.asVoid) }))
      })
    )
  }

  private ensureChildCore(): Effect.Effect<SupervisorCore> {
    if (this.childCore !== undefined) return Effect.succeed(this.childCore)
    const owner: Owner = { id: this.id, kind: "actor", escalate: (cause) => this.escalate(cause) }
    return Effect.map(SupervisorCore.make(owner, this.system.childPolicy, this.system), (core) => (this.childCore = core))
  }
}

/** Create, register and start a cell as a child of `core` (a one_for_one core: guardian or actor). */
export const spawnCell = <M, S, R, P extends OverflowPolicy>(
  system: SystemState,
  core: SupervisorCore,
  parentId: string,
  spec: ActorSpec<M, S, R, P>,
  options: SpawnOptions | undefined,
  services: Context.Context<never>
): Effect.Effect<ActorRef<M, P>, InvalidActorName> =>
  Effect.suspend(() => {
    const name = options?.name ?? system.nextName()
    const invalid = validateName(name, core)
    if (invalid !== undefined) return Effect.fail(new InvalidActorName({ name, parent: parentId, reason: invalid }))
    const cell = new ActorCell<M, S>(
      system,
      `${parentId}/${name}` as ActorId,
      name,
      spec,
      options?.restart ?? "permanent",
      core,
      withoutSpan(services)
    )
    system.registry.set(cell.id, cell)
    core.addStarted(cell)
    return Effect.as(cell.start(), cell.ref as ActorRef<M, P>)
  })

export const validateName = (name: string, core: SupervisorCore): string | undefined =>
  name.length === 0
    ? "must not be empty"
    : name.includes("/")
    ? "must not contain '/'"
    : name.length > 200
    ? "must be at most 200 characters"
    : core.children.has(name)
    ? "is already taken by a sibling"
    : undefined

/** An actor's messages must not inherit the span that happened to be current when it was spawned. */
export const withoutSpan = (services: Context.Context<never>): Context.Context<never> =>
  Context.omit(Tracer.ParentSpan)(services) as Context.Context<never>

export type { CorePolicy }
export const durationMillis = (input: Duration.DurationInput): number => Duration.toMillis(Duration.decode(input))
