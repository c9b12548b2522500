/**
 * Typed failures of talking to an actor. They cross mailboxes and (later) the wire, so each is a
 * tagged error with the fields a caller needs to act on it.
 */
import { Schema } from "effect"
import { ActorId, OverflowPolicy } from "./Actor.js"

/** An `ask` got no reply within its timeout. */
export class AskTimeout extends Schema.TaggedError<AskTimeout>()("AskTimeout", {
  actor: ActorId,
  message: Schema.String,
  timeoutMillis: Schema.Number
}) {}

/** The recipient's mailbox was full and refused the message (policy `fail`, or dropped by `dropOldest` before a reply). */
export class MailboxFull extends Schema.TaggedError<MailboxFull>()("MailboxFull", {
  actor: ActorId,
  capacity: Schema.Number,
  policy: OverflowPolicy
}) {}

/**
 * An `ask` that can never be answered: the actor was stopped, crashed while handling it, or
 * finished handling it without replying.
 */
export class NoReply extends Schema.TaggedError<NoReply>()("NoReply", {
  actor: ActorId,
  message: Schema.String,
  reason: Schema.Literal("stopped", "crashed", "unanswered"),
  detail: Schema.optional(Schema.String)
}) {}

/** A spawn was asked for a name that is empty, contains `/`, or is already taken among the siblings. */
export class InvalidActorName extends Schema.TaggedError<InvalidActorName>()("InvalidActorName", {
  name: Schema.String,
  parent: Schema.String,
  reason: Schema.String
}) {}

export type AskError = AskTimeout | MailboxFull | NoReply

/**
 * An ask that failed, in words (`no answer to Judge within 10000 ms`). Not its `message`: that
 * field of `AskTimeout` and `NoReply` is the message's tag, which said only "Judge".
 */
export const askFailure = (error: AskError): string => {
  switch (error._tag) {
    case "AskTimeout":
      return `no answer to ${error.message} within ${error.timeoutMillis} ms`
    case "NoReply":
      return `${error.message} ${error.reason === "unanswered" ? "was dropped unanswered" : `got no reply: the agent ${error.reason}`}` +
        (error.detail === undefined ? "" : ` (${error.detail})`)
    case "MailboxFull":
      return `its mailbox was full (${error.capacity} messages)`
  }
}
