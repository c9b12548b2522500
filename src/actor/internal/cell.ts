/**
 * An actor cell: the identity, mailbox and state of one actor. An actor holds a fiber only while it
 * has work: a delivery to an idle actor starts an activation (a fiber, from the runtime the actor
 * was spawned in) that drains the mailbox and ends when it stays empty — as Akka's dispatcher runs
 * actors — so an idle actor costs a few hundred bytes and spawning one forks nothing. A `busy`
 * actor's activation parks on the empty mailbox instead of ending, and the next delivery resumes it.
 * The supervisor restarts the cell (fresh or recovered state, same mailbox and ref) or terminates
 * it (mailbox into dead letters, watchers told).
 */
import { Cause, Context, Deferred, Duration, Effect, Exit, Fiber, FiberId, FiberRef, Option, Runtime, Scope, Tracer } from "effect"
import { type ActorId, type OverflowPolicy, Terminated, type TerminationReason } from "../../../schemas/Actor.js"
import { InvalidActorName, MailboxFull, NoReply } from "../../../schemas/ActorError.js"
import { ActorCrashed, ActorRestarted, ActorStarted, ActorStopped } from "../../../schemas/Lifecycle.js"
import type { RestartType } from "../../../schemas/Supervision.js"
import * as Metrics from "../../telemetry/Metrics.js"
import { nowNanos, Trace, withParent } from "../../telemetry/Trace.js"
import { type Owner, SupervisorCore } from "../../../supervisors/internal/SupervisorCore.js"
import { ActorRef } from "../ActorRef.js"
import type { ActorContext, ActorSpec, SpawnOptions, Timer } from "../Behavior.js"
import { Envelope, tagOf } from "../Envelope.js"
import { Mailbox, Offer } from "../Mailbox.js"
import { makeContext } from "./context.js"
import { CurrentActor } from "./current.js"
import { type Node, type RestartInfo, Supervised } from "./node.js"
import { renderCause } from "./renderCause.js"
import type { SystemState } from "./system.js"

type TerminatedMapper = ((terminated: Terminated) => unknown) | undefined

/** How an activation ended without failing: the mailbox stayed empty, or the actor must stop. */
const enum Outcome {
  Idle = 0,
  Stopped = 1
}

const DEFAULT_CAPACITY = 1024

/** What a parked activation is resumed with (`ActorCell.parked`): go on draining, or end. */
const GO_ON: Exit.Exit<boolean> = Exit.succeed(true)
const RETIRE: Exit.Exit<boolean> = Exit.succeed(false)

export class ActorCell<M, S> extends Supervised implements Node {
  /** This actor's outgoing message counter (the `seq` of envelopes it sends). */
  outSeq = 0
  state: S = undefined as S
  readonly mailbox: Mailbox
  readonly ref: ActorRef<M>
  /** The envelope being handled: dead-lettered with the cause if the handler crashes. */
  current: Envelope | undefined = undefined
  /** The span the current message is handled in: only for a message that came with a trace context. */
  trace: Trace | undefined = undefined
  /**
   * The activation's own context, while the fiber's holds the span of the last traced message
   * (`traced`): put back before a message that came without a trace context.
   */
  private untraced: Context.Context<never> | undefined = undefined
  /** Messages handled and restarts since telemetry last read them (src/telemetry/Metrics.ts). */
  handledSinceFlush = 0
  restartsSinceFlush = 0
  /** The running activation, if any; `activations` numbers them so a late exit is recognised. */
  private activation: Fiber.RuntimeFiber<Outcome, unknown> | undefined = undefined
  /**
   * A `busy` actor's activation parked on an empty mailbox: resumed with `true` to drain it again,
   * `false` to end (the incarnation is over; the cell no longer counts it as its activation).
   */
  private parked: ((exit: Exit.Exit<boolean>) => void) | undefined = undefined
  private activations = 0
  /** Set when the incarnation ended (crash, stop) until the supervisor starts the next one. */
  private suspended = true
  private stopFlag = false
  private halting = false
  private escalation: Cause.Cause<unknown> | undefined = undefined
  private lastCause: Cause.Cause<unknown> | undefined = undefined
  private childCore: SupervisorCore | undefined = undefined
  private scope: Scope.CloseableScope | undefined = undefined
  watchers: Map<ActorCell<any, any>, TerminatedMapper> | undefined = undefined
  watching: Set<ActorCell<any, any>> | undefined = undefined
  private terminated: Deferred.Deferred<TerminationReason> | undefined = undefined
  terminationReason: TerminationReason | undefined = undefined
  private context: ActorContext<M> | undefined = undefined
  private runtime: Runtime.Runtime<never> | undefined = undefined

  constructor(
    readonly system: SystemState,
    readonly id: ActorId,
    readonly name: string,
    readonly spec: ActorSpec<M, S, any, any>,
    readonly restartType: RestartType,
    readonly parent: SupervisorCore,
    /** The runtime the actor was spawned in: its services, `Clock`, `Random`, log settings. */
    private readonly spawnedIn: Runtime.Runtime<never>
  ) {
    super()
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
        this.wake()
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
        this.wake()
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
    if (this.mailbox.offerSystem(new Envelope(message, sender, 0, undefined, undefined))) this.wake()
  }

  /** There is work: start an activation if none runs, or resume the parked one. */
  private wake(): void {
    if (this.activation === undefined) this.activate(undefined)
    else if (this.parked !== undefined && !this.suspended && !this.stopFlag) {
      const resume = this.parked
      this.parked = undefined
      resume(GO_ON)
    }
  }

  /** End a parked activation: the cell forgets it now, and it ends on its next turn without touching the cell. */
  private retireParked(): void {
    const resume = this.parked
    if (resume === undefined) return
    this.parked = undefined
    this.activation = undefined
    resume(RETIRE)
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
    return Effect.sync(() => {
      this.incarnation++
      this.status = "running"
      this.suspended = false
      this.stopFlag = false
      this.halting = false
      this.escalation = undefined
      this.progressed = false
      this.startedAt = this.system.now()
      if (restart !== undefined) this.restartsSinceFlush++
      const at = this.startedAt
      this.system.publish(
        restart === undefined
          ? new ActorStarted({ actor: this.id, incarnation: this.incarnation, at }, true)
          : new ActorRestarted({ actor: this.id, attempt: restart.attempt, delayMillis: restart.delayMillis, incarnation: this.incarnation, at }, true)
      )
      const spec = this.spec
      if (restart !== undefined && spec.onRestart !== undefined) return this.activate("restart")
      if (spec.setup !== undefined) return this.activate("setup")
      this.state = spec.initial as S
      if (this.mailbox.size > 0) this.activate(undefined)
    })
  }

  /** Start a fiber that runs `init` (if any) and drains the mailbox. Never while suspended or stopping. */
  private activate(init: "setup" | "restart" | undefined): void {
    if (this.suspended || this.stopFlag) return
    const runtime = this.runtime ??= Runtime.make({
      context: Context.add(this.spawnedIn.context, CurrentActor, this),
      fiberRefs: this.spawnedIn.fiberRefs,
      runtimeFlags: this.spawnedIn.runtimeFlags
    })
    const activation = ++this.activations
    const incarnation = this.incarnation
    // `immediate: false`: the activation is scheduled, never run on the sender's stack. Its end is
    // observed synchronously (an `onExit` finalizer cost a region and a step per activation).
    const fiber = Runtime.runFork(runtime)(this.drain(init) as Effect.Effect<Outcome, unknown>, { immediate: false })
    this.activation = fiber
    fiber.addObserver((exit) => this.onActivationExit(exit, activation, incarnation))
  }

  /** One activation: handle envelopes until the mailbox stays empty (idle) or the actor must stop. */
  private drain(init: "setup" | "restart" | undefined): Effect.Effect<Outcome, unknown, unknown> {
    const cell = this
    const spec = this.spec
    const context = this.contextFor()
    return Effect.gen(function*() {
      cell.untraced = undefined
      if (init === "restart") cell.state = yield* spec.onRestart!(cell.state, cell.lastCause ?? Cause.empty, context)
      else if (init === "setup") cell.state = yield* spec.setup!(context)
      const mailbox = cell.mailbox
      /** Whether the last message handled was an ask. */
      let answered = false
      while (true) {
        if (cell.escalation !== undefined) return yield* Effect.failCause(cell.escalation)
        if (cell.stopFlag) {
          cell.activation = undefined
          return Outcome.Stopped
        }
        let envelope = mailbox.poll()
        if (envelope === undefined) {
          if (answered) {
            // Stay one scheduler turn after an ask: its sender, answered a moment ago, usually asks
            // again now (ask ping-pong), and keeping this fiber is cheaper than starting the next
            // one. After a tell, staying costs a turn for nothing: a sender that does not wait has
            // sent what it had (a backtest's slice, the tell benchmark).
            answered = false
            yield* Effect.yieldNow()
            envelope = mailbox.poll()
          }
          if (envelope === undefined) {
            if (cell.escalation !== undefined || cell.stopFlag) continue
            if (spec.busy === true) {
              // Parked until the next message (`wake`), or retired (`retireParked`).
              if (yield* Effect.async<boolean>((resume) => {
                cell.parked = resume
              })) continue
              return Outcome.Idle
            }
            cell.activation = undefined
            return Outcome.Idle
          }
        }
        answered = envelope.reply !== undefined
        cell.current = envelope
        cell.handledSinceFlush++
        if (envelope.span === undefined) {
          if (cell.untraced !== undefined) {
            yield* FiberRef.set(FiberRef.currentContext, cell.untraced)
            cell.untraced = undefined
          }
          const next = spec.behavior(cell.state, envelope.message as M, context)
          // A behavior that answers with an already-completed effect (`Effect.succeed`) skips a fiber step.
          if (Exit.isExit(next) && Exit.isSuccess(next)) cell.state = next.value as S
          else cell.state = yield* next
        } else {
          cell.state = yield* cell.traced(envelope, context)
        }
        cell.current = undefined
        // Once it has made progress, the incarnation has: the spec's `progress` is not asked again.
        if (!cell.progressed) cell.progressed = spec.progress === undefined || spec.progress(cell.state)
        if (envelope.reply !== undefined && !envelope.answered) {
          cell.answer(envelope, Exit.fail(cell.noReply(envelope, "unanswered")))
        }
      }
    })
  }

  /**
   * The handler runs in a span whose parent is the sender's span: one trace across actors. Made
   * before the behavior is called, so that the behavior can read it (`context.trace`) to annotate
   * what it decides; only messages that came with a trace context (a traced round's) get one.
   *
   * The span is the fiber's parent span while the behavior runs (what it sends, and the spans it
   * makes, are its children): set in the activation fiber's context, around `Effect.exit`, rather
   * than with `Effect.withParentSpan` and `Effect.onExit`, whose regions (an acquire-use-release of
   * the fiber's context, an uninterruptible mask) cost every message of a paper run's traced rounds
   * more steps than its handler. The context is not put back after the handler: the next traced
   * message replaces the span, and only one that came without a trace context needs the
   * activation's own context back (`untraced`, in `drain`) — one context made and set per traced
   * message instead of two. An activation interrupted meanwhile ends the span as it ends
   * (`onActivationExit`).
   */
  private traced(envelope: Envelope, context: ActorContext<M>): Effect.Effect<S, unknown, unknown> {
    const cell = this
    return Effect.withFiberRuntime((fiber) => {
      const behave = () => cell.spec.behavior(cell.state, envelope.message as M, context) as Effect.Effect<S, unknown, unknown>
      if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return behave()
      const tag = tagOf(envelope.message)
      const tracer = fiber.currentTracer
      const span = tracer.span(`Actor.receive ${tag}`, Option.some(envelope.span!), Context.empty(), [], nowNanos(), "consumer")
      span.attribute("actor.id", cell.id)
      span.attribute("actor.name", cell.name)
      span.attribute("message.type", tag)
      span.attribute("message.seq", envelope.seq)
      span.attribute("message.sender", envelope.sender ?? "external")
      cell.trace = new Trace(tracer, span)
      const untraced = cell.untraced ??= fiber.getFiberRef(FiberRef.currentContext)
      return FiberRef.set(FiberRef.currentContext, withParent(untraced, span)).pipe(
        Effect.zipRight(Effect.exit(behave())),
        Effect.flatMap((exit) => {
          cell.trace = undefined
          span.end(nowNanos(), exit)
          return exit
        })
      )
    })
  }

  private onActivationExit(exit: Exit.Exit<Outcome, unknown>, activation: number, incarnation: number): void {
    {
      // A traced message whose handling was interrupted (`traced`): its span ends with the activation.
      const trace = this.trace
      if (trace !== undefined) {
        this.trace = undefined
        trace.span.end(nowNanos(), exit)
      }
      if (activation === this.activations) this.activation = undefined
      if (Exit.isSuccess(exit)) {
        if (exit.value === Outcome.Stopped && !this.halting && incarnation === this.incarnation) {
          this.suspended = true
          this.parent.notifyExit(this, incarnation, false, Cause.empty)
        }
        return
      }
      const current = this.current
      this.current = undefined
      this.suspended = true
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
    }
  }

  /**
   * End the incarnation after the message in hand (interrupting it past the stop timeout), then
   * its children, timers and watches. An idle actor has nothing running: only the release is left.
   */
  halt(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.halting = true
      this.stopFlag = true
      this.suspended = true
      // A parked activation is an idle one: nothing to wait for.
      this.retireParked()
      const fiber = this.activation
      if (fiber === undefined) return this.releaseIncarnation()
      const deadlines = this.system.deadlines
      const deadline = deadlines.add(this.system.now() + Duration.toMillis(this.system.stopTimeout), () => {
        fiber.unsafeInterruptAsFork(FiberId.none)
      })
      return Fiber.await(fiber).pipe(
        Effect.zipRight(Effect.sync(() => deadlines.remove(deadline))),
        Effect.zipRight(this.releaseIncarnation())
      )
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
      this.retireParked()
      for (const envelope of this.mailbox.close()) {
        this.system.deadLetter(this.id, envelope, "stopped")
        if (envelope.reply !== undefined) this.answer(envelope, Exit.fail(this.noReply(envelope, "stopped")))
      }
      this.system.registry.delete(this.id)
      Metrics.retire(this)
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
    // An idle actor is woken to fail with the cause, like one that was busy.
    this.wake()
  }

  // --- the behavior's context ----------------------------------------------------------------------

  private contextFor(): ActorContext<M> {
    return this.context ??= makeContext(this)
  }

  /** `ctx.stop`: end this incarnation once the message in hand is handled. */
  requestStop(): void {
    this.stopFlag = true
  }

  spawnChild<M2, S2, R2, P2 extends OverflowPolicy>(
    spec: ActorSpec<M2, S2, R2, P2>,
    options: SpawnOptions | undefined,
    runtime: Runtime.Runtime<never>
  ): Effect.Effect<ActorRef<M2, P2>, InvalidActorName> {
    return Effect.flatMap(this.ensureChildCore(), (core) => spawnCell(this.system, core, this.id, spec, options, runtime))
  }

  /** Timers live in the incarnation's scope: a restart or stop cancels them. */
  forkTimer(effect: Effect.Effect<void>): Effect.Effect<Timer> {
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
  runtime: Runtime.Runtime<never>
): Effect.Effect<ActorRef<M, P>, InvalidActorName> =>
  Effect.suspend(() => {
    const name = options?.name ?? system.nextName()
    const invalid = validateName(name, core.children)
    if (invalid !== undefined) return Effect.fail(new InvalidActorName({ name, parent: parentId, reason: invalid }))
    const cell = new ActorCell<M, S>(
      system,
      `${parentId}/${name}` as ActorId,
      name,
      spec,
      options?.restart ?? "permanent",
      core,
      withoutSpan(runtime)
    )
    system.registry.set(cell.id, cell)
    core.addStarted(cell)
    return Effect.as(cell.start(), cell.ref as ActorRef<M, P>)
  })

/** Why `name` cannot name a new child among `siblings` (names already taken), or undefined. */
export const validateName = (name: string, siblings: { has(name: string): boolean }): string | undefined =>
  name.length === 0
    ? "must not be empty"
    : name.includes("/")
    ? "must not contain '/'"
    : name.length > 200
    ? "must be at most 200 characters"
    : siblings.has(name)
    ? "is already taken by a sibling"
    : undefined

/** An actor's messages must not inherit the span that happened to be current when it was spawned. */
export const withoutSpan = (runtime: Runtime.Runtime<never>): Runtime.Runtime<never> =>
  Runtime.make({
    context: Context.omit(Tracer.ParentSpan)(runtime.context) as Context.Context<never>,
    fiberRefs: runtime.fiberRefs,
    runtimeFlags: runtime.runtimeFlags
  })

