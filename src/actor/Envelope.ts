/**
 * What travels through a mailbox: the message plus who sent it, the sender's sequence number, the
 * sender's span (so the handler's span is its child) and, for an `ask`, the reply channel.
 */
import type { Exit, Tracer } from "effect"
import type { ActorId } from "../../schemas/Actor.js"

/** Completes the asker's pending effect; called at most once. */
export type ReplyChannel = (exit: Exit.Exit<unknown, unknown>) => void

export class Envelope {
  /** Set once the reply was sent or handed to a `Replier`; unanswered asks fail with `NoReply`. */
  answered = false
  constructor(
    readonly message: unknown,
    readonly sender: ActorId | undefined,
    /** The sender's own outgoing message counter: strictly increasing in send order. */
    readonly seq: number,
    readonly span: Tracer.AnySpan | undefined,
    public reply: ReplyChannel | undefined
  ) {}
}

/** The `_tag` of a message, for dead letters, spans and errors. */
export const tagOf = (message: unknown): string =>
  typeof message === "object" && message !== null && "_tag" in message && typeof message._tag === "string"
    ? message._tag
    : typeof message
