/**
 * What the kernel tells the world about actors: lifecycle events and dead letters. Both are
 * published on streams that run events are built from; nothing undeliverable vanishes silently.
 */
import { Schema } from "effect"
import { ActorId, TerminationReason } from "./Actor.js"

const at = Schema.Number.annotations({ description: "Clock time in milliseconds" })

export class ActorStarted extends Schema.TaggedClass<ActorStarted>()("ActorStarted", {
  actor: ActorId,
  incarnation: Schema.Int,
  at
}) {}

export class ActorCrashed extends Schema.TaggedClass<ActorCrashed>()("ActorCrashed", {
  actor: ActorId,
  incarnation: Schema.Int,
  /** Tag of the message being handled when it crashed, if any. */
  message: Schema.optional(Schema.String),
  cause: Schema.String,
  at
}) {}

export class ActorRestarted extends Schema.TaggedClass<ActorRestarted>()("ActorRestarted", {
  actor: ActorId,
  /** 1 for the first restart since the actor last ran stably. */
  attempt: Schema.Int,
  delayMillis: Schema.Number,
  incarnation: Schema.Int,
  at
}) {}

export class ActorStopped extends Schema.TaggedClass<ActorStopped>()("ActorStopped", {
  actor: ActorId,
  reason: TerminationReason,
  at
}) {}

/**
 * A supervisor gave up on a child: it stopped (halted) its children and handed the failure to its
 * parent. Either past its restart intensity (`restarts` within `periodMillis`), or — `limit:
 * "no_progress"` — the child failed `restarts` times in a row without handling a message in
 * between, which a clock cannot see when the clock is a backtest's bar time.
 */
export class SupervisorEscalated extends Schema.TaggedClass<SupervisorEscalated>()("SupervisorEscalated", {
  supervisor: ActorId,
  child: ActorId,
  restarts: Schema.Int,
  periodMillis: Schema.Number,
  cause: Schema.String,
  at,
  /** `no_progress` when the consecutive-restart limit was reached; absent: the intensity (as logs before it say). */
  limit: Schema.optional(Schema.Literal("no_progress")),
  /** When `child` is a supervisor that escalated itself: the actor whose failures started it. */
  origin: Schema.optional(ActorId)
}) {}

export const LifecycleEvent = Schema.Union(ActorStarted, ActorCrashed, ActorRestarted, ActorStopped, SupervisorEscalated)
export type LifecycleEvent = typeof LifecycleEvent.Type

export const DeadLetterReason = Schema.Literal("stopped", "overflow", "crashed")
export type DeadLetterReason = typeof DeadLetterReason.Type

export class DeadLetter extends Schema.Class<DeadLetter>("DeadLetter")({
  recipient: ActorId,
  sender: Schema.optional(ActorId),
  /** The undelivered message itself (in process) — its `_tag` names it. */
  message: Schema.Unknown,
  reason: DeadLetterReason,
  detail: Schema.optional(Schema.String),
  at
}) {}
