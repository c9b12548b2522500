/**
 * How an actor is described: its protocol (a Schema union of message classes), how its state is
 * made, and its behavior `(state, message, context) => Effect<state>`. Expected failures are values
 * the behavior handles; a defect crashes the actor and reaches its supervisor.
 */
import type { Cause, Duration, Effect, Exit, Request, Schema } from "effect"
import type { ActorId, OverflowPolicy, Terminated } from "../../schemas/Actor.js"
import type { InvalidActorName } from "../../schemas/ActorError.js"
import type { RestartType } from "../../schemas/Supervision.js"
import type { Trace } from "../telemetry/Trace.js"
import type { ActorRef, AnyActorRef } from "./ActorRef.js"

/** A request of protocol `M` that can be asked (a `Schema.TaggedRequest` class in the union). */
export type AskableOf<M> = Extract<M, Request.Request<any, any>>

export interface Replier<A, E> {
  readonly succeed: (value: A) => Effect.Effect<void>
  readonly fail: (error: E) => Effect.Effect<void>
  readonly complete: (exit: Exit.Exit<A, E>) => Effect.Effect<void>
}

export interface Timer {
  readonly cancel: Effect.Effect<void>
}

export interface SpawnOptions {
  /** Unique among siblings; generated when absent. */
  readonly name?: string
  /** How the parent's supervisor treats this child when it ends (default `permanent`). */
  readonly restart?: RestartType
}

/** What a behavior can do besides computing its next state. Valid for the incarnation it was given to. */
export interface ActorContext<M> {
  readonly self: ActorRef<M>
  readonly id: ActorId
  /** 1 for the first start, +1 for every restart. */
  readonly incarnation: number
  /** The sender of the message being handled (undefined outside any actor). */
  readonly sender: ActorId | undefined
  /** The sender's sequence number of the message being handled: increasing per sender (FIFO). */
  readonly seq: number
  /**
   * The span the message is handled in, to annotate with what the behavior decides — only when the
   * message came with a trace context (a traced round's); undefined otherwise, so an untraced
   * message costs the behavior one check. Valid while the message is handled.
   */
  readonly trace: Trace | undefined
  /** Spawn a child; children stop before their parent and are stopped when it restarts. */
  readonly spawn: <M2, S2, R2, P2 extends OverflowPolicy>(
    spec: ActorSpec<M2, S2, R2, P2>,
    options?: SpawnOptions
  ) => Effect.Effect<ActorRef<M2, P2>, InvalidActorName, R2>
  /**
   * Watch another actor: when it stops for good, `Terminated` (or `map(Terminated)`) arrives here.
   * Without `map`, `Terminated` must be part of this actor's protocol.
   */
  readonly watch: (
    ref: AnyActorRef,
    ...map: [Terminated] extends [M] ? [map?: (terminated: Terminated) => M] : [map: (terminated: Terminated) => M]
  ) => Effect.Effect<void>
  readonly unwatch: (ref: AnyActorRef) => Effect.Effect<void>
  /** Send `message` to self after `delay` of `Clock` time (virtual under `TestClock`). */
  readonly schedule: (message: M, delay: Duration.DurationInput) => Effect.Effect<Timer>
  /** Send `message` to self every `interval` of `Clock` time until cancelled or restarted. */
  readonly scheduleRepeatedly: (message: M, interval: Duration.DurationInput) => Effect.Effect<Timer>
  /** Stop this actor once the current message is handled. */
  readonly stop: Effect.Effect<void>
  /** Answer the request being handled. */
  readonly reply: <Q extends AskableOf<M>>(request: Q, value: Request.Request.Success<Q>) => Effect.Effect<void>
  /** Answer the request being handled with its typed error. */
  readonly fail: <Q extends AskableOf<M>>(request: Q, error: Request.Request.Error<Q>) => Effect.Effect<void>
  /** Run `effect` and answer the request with its outcome (its failure is the typed reply error). */
  readonly respond: <Q extends AskableOf<M>, R>(
    request: Q,
    effect: Effect.Effect<Request.Request.Success<Q>, Request.Request.Error<Q>, R>
  ) => Effect.Effect<void, never, R>
  /** Keep the request open past this message and answer it later. */
  readonly replyLater: <Q extends AskableOf<M>>(
    request: Q
  ) => Replier<Request.Request.Success<Q>, Request.Request.Error<Q>>
}

export type Behavior<S, M, R = never> = (state: S, message: M, context: ActorContext<M>) => Effect.Effect<S, never, R>

/** Mailbox settings; the overflow policy is also a type, so `tell` can fail only where it may. */
export interface MailboxOptions<P extends OverflowPolicy> {
  /** Default 1024. */
  readonly capacity?: number
  /** Default `backpressure`. */
  readonly overflow?: P
}

interface ActorSpecBase<M, S, R, P extends OverflowPolicy> {
  readonly protocol: Schema.Schema<M, any, never>
  readonly behavior: Behavior<S, M, R>
  /** The state of a restarted incarnation; without it a restart begins from the initial state. */
  readonly onRestart?: (lastState: S, cause: Cause.Cause<unknown>, context: ActorContext<M>) => Effect.Effect<S, never, R>
  readonly mailbox?: MailboxOptions<P>
  /**
   * Whether the incarnation has made progress, asked with its state after each message it handled
   * until it says so; without it every message handled is progress. A supervisor's
   * `maxConsecutiveRestarts` counts restarts in a row without progress: an actor that handles some
   * messages after every (re)start before it can fail — an analyst warming up its indicators — says
   * here what real work is, so that failing on every message once it gets there still counts as
   * failing on every message.
   */
  readonly progress?: (state: S) => boolean
  /**
   * An actor that gets a message on nearly every step of its work (a run's trading spine: a
   * message a bar). Its activation stays parked when the mailbox empties, and the next message
   * resumes it, instead of ending and forking a fiber for the next one: about 1 µs a wake-up
   * against 4 for a fiber here, several times a bar in a backtest. An idle one holds that
   * suspended fiber; without `busy` an idle actor holds none (a few hundred bytes, spawned by the
   * thousand). Messages are handled in the same order, on the same scheduler turns, either way.
   */
  readonly busy?: boolean
}

/** An actor type: `initial` state, or `setup` run at every (re)start (spawn children, watch, start timers). */
export type ActorSpec<M, S, R = never, P extends OverflowPolicy = OverflowPolicy> = ActorSpecBase<M, S, R, P> &
  (
    | { readonly initial: S; readonly setup?: undefined }
    | { readonly setup: (context: ActorContext<M>) => Effect.Effect<S, never, R>; readonly initial?: undefined }
  )

/**
 * Identity helper that lets TypeScript infer `M` from the protocol, `S` from the initial state and
 * the overflow policy from the mailbox settings (`backpressure` when none is given).
 */
export const make = <M, S, R = never, const P extends OverflowPolicy = "backpressure">(
  spec: ActorSpec<M, S, R, P>
): ActorSpec<M, S, R, P> => spec
