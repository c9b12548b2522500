/**
 * The actor kernel's own vocabulary: actor ids, mailbox settings and the `Terminated` message a
 * watcher receives. Agents' protocols are unions of message classes that may include `Terminated`.
 */
import { Schema } from "effect"

/** Path of an actor in its system's tree, e.g. `/user/run-7/analyst-sma`. Stable across restarts. */
export const ActorId = Schema.String.pipe(Schema.brand("ActorId"))
export type ActorId = typeof ActorId.Type

/**
 * What a full mailbox does with one more message:
 * - `backpressure`: the sender waits until there is room (orders, commands);
 * - `dropOldest`: the oldest queued message is dropped to make room (conflation, market data);
 * - `fail`: the sender gets a typed `MailboxFull` (control messages).
 * Every message dropped or refused lands in dead letters.
 */
export const OverflowPolicy = Schema.Literal("backpressure", "dropOldest", "fail")
export type OverflowPolicy = typeof OverflowPolicy.Type

export class MailboxConfig extends Schema.Class<MailboxConfig>("MailboxConfig")({
  capacity: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1 << 24)), { default: () => 1024, exact: true }),
  overflow: Schema.optionalWith(OverflowPolicy, { default: () => "backpressure" as const, exact: true })
}) {}

/** Why an actor stopped for good: it stopped normally, it failed and was not restarted, or its supervisor gave up. */
export const TerminationReason = Schema.Literal("stopped", "failed", "escalated")
export type TerminationReason = typeof TerminationReason.Type

/** Delivered to every watcher when the watched actor stops for good (not on a restart). */
export class Terminated extends Schema.TaggedClass<Terminated>()("Terminated", {
  actor: ActorId,
  reason: TerminationReason
}) {}
