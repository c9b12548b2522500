/**
 * A typed handle on an actor, stable across its restarts. `tell` is fire-and-forget; `ask` sends a
 * request and waits for its typed reply, with a timeout.
 */
import { Duration, Effect, Exit, type Request, Schema } from "effect"
import type { ActorId, OverflowPolicy } from "../../schemas/Actor.js"
import type { AskError, MailboxFull } from "../../schemas/ActorError.js"
import { AskTimeout } from "../../schemas/ActorError.js"
import type { AskableOf } from "./Behavior.js"
import { Envelope, tagOf } from "./Envelope.js"
import type { ActorCell } from "./internal/cell.js"
import { senderOf } from "./internal/current.js"

export interface AskOptions {
  /** Defaults to the system's ask timeout (5 seconds unless configured). */
  readonly timeout?: Duration.DurationInput
}

/** Only a `fail` mailbox refuses a `tell`; under `backpressure` and `dropOldest` it cannot fail. */
export type TellError<P extends OverflowPolicy> = P extends "fail" ? MailboxFull : never

export class ActorRef<M, P extends OverflowPolicy = OverflowPolicy> {
  /** @internal */
  constructor(readonly cell: ActorCell<M, any>) {}

  get id(): ActorId {
    return this.cell.id
  }

  get protocol(): Schema.Schema<M, any, never> {
    return this.cell.spec.protocol
  }

  /** Fire and forget. Fails only when the mailbox's policy is `fail` and it is full. */
  tell(message: M): Effect.Effect<void, TellError<P>> {
    const cell = this.cell
    return Effect.withFiberRuntime((fiber) => {
      const sender = senderOf(fiber)
      return cell.deliver(
        new Envelope(message, sender?.id, sender === undefined ? cell.system.externalSeq++ : sender.outSeq++, fiber.currentSpan, undefined)
      ) as Effect.Effect<void, TellError<P>>
    })
  }

  /** Request/response: the reply type comes from the request's schema; no reply in time is `AskTimeout`. */
  ask<Q extends AskableOf<M>>(
    message: Q,
    options?: AskOptions
  ): Effect.Effect<Request.Request.Success<Q>, Request.Request.Error<Q> | AskError> {
    const cell = this.cell
    const timeout = options?.timeout === undefined ? cell.system.askTimeout : Duration.decode(options.timeout)
    const timeoutMillis = Duration.toMillis(timeout)
    return Effect.withFiberRuntime<unknown, unknown>((fiber) => {
      const sender = senderOf(fiber)
      const envelope = new Envelope(
        message,
        sender?.id,
        sender === undefined ? cell.system.externalSeq++ : sender.outSeq++,
        fiber.currentSpan,
        undefined
      )
      return Effect.async<unknown, unknown>((resume) => {
        const deadlines = cell.system.deadlines
        let withdraw: (() => void) | undefined
        const deadline = deadlines.add(cell.system.now() + timeoutMillis, () => {
          if (envelope.reply === undefined) return
          envelope.reply = undefined
          withdraw?.()
          resume(Exit.fail(new AskTimeout({ actor: cell.id, message: tagOf(message), timeoutMillis })))
        })
        envelope.reply = (exit) => {
          deadlines.remove(deadline)
          resume(exit)
        }
        withdraw = cell.deliverAsk(envelope)
        return Effect.sync(() => {
          envelope.reply = undefined
          deadlines.remove(deadline)
          withdraw?.()
        })
      })
    }) as Effect.Effect<Request.Request.Success<Q>, Request.Request.Error<Q> | AskError>
  }
}

/** A ref of any protocol, for APIs that only need identity (watch, stop, lookup). */
export type AnyActorRef = ActorRef<any, any>

/** Decode an untrusted value with the actor's protocol, then tell it: bad input is a typed `ParseError`. */
export const tellUnknown = <M, P extends OverflowPolicy>(ref: ActorRef<M, P>, input: unknown) =>
  Effect.flatMap(Schema.decodeUnknown(ref.protocol)(input), (message) => ref.tell(message))
