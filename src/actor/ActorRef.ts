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

  /**
   * Whether an incarnation of the actor is up to handle a message now: not crashed and waiting for
   * its restart, nor stopped. (A message sent to an actor that is not waits for its restart.)
   */
  get running(): boolean {
    return this.cell.status === "running"
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

/**
 * Scatter-gather: send one request to several actors at once and wait for every answer or the
 * timeout, whichever comes first — in one suspension, with one deadline, and no fiber per actor
 * (what `Effect.forEach(refs, ask, { concurrency: "unbounded" })` would start). Each answer is
 * an `Exit` in the order of `refs`: the reply, the request's typed error, `NoReply`, `MailboxFull`,
 * or `AskTimeout` for those that had not answered in time. Interrupting it withdraws the requests
 * not yet answered.
 */
export const askAll = <M, Q extends AskableOf<M>>(
  refs: ReadonlyArray<ActorRef<M, any>>,
  message: Q,
  options?: AskOptions
): Effect.Effect<Array<Exit.Exit<Request.Request.Success<Q>, Request.Request.Error<Q> | AskError>>> => {
  type Answer = Exit.Exit<Request.Request.Success<Q>, Request.Request.Error<Q> | AskError>
  if (refs.length === 0) return Effect.succeed([])
  const system = refs[0]!.cell.system
  const timeout = options?.timeout === undefined ? system.askTimeout : Duration.decode(options.timeout)
  const timeoutMillis = Duration.toMillis(timeout)
  return Effect.withFiberRuntime<Array<Answer>>((fiber) => {
    const sender = senderOf(fiber)
    return Effect.async<Array<Answer>>((resume) => {
      const answers = new Array<Answer | undefined>(refs.length).fill(undefined)
      const envelopes = new Array<Envelope>(refs.length)
      const withdraw = new Array<(() => void) | undefined>(refs.length)
      let pending = refs.length
      let done = false
      const finish = () => {
        done = true
        resume(Exit.succeed(answers as Array<Answer>))
      }
      const deadline = system.deadlines.add(system.now() + timeoutMillis, () => {
        if (done) return
        for (let i = 0; i < refs.length; i++) {
          if (answers[i] !== undefined) continue
          envelopes[i]!.reply = undefined
          withdraw[i]?.()
          answers[i] = Exit.fail(new AskTimeout({ actor: refs[i]!.cell.id, message: tagOf(message), timeoutMillis }))
        }
        finish()
      })
      for (let i = 0; i < refs.length; i++) {
        const cell = refs[i]!.cell
        const envelope = new Envelope(message, sender?.id, sender === undefined ? cell.system.externalSeq++ : sender.outSeq++, fiber.currentSpan, undefined)
        envelope.reply = (exit) => {
          if (done) return
          answers[i] = exit as Answer
          if (--pending === 0) {
            system.deadlines.remove(deadline)
            finish()
          }
        }
        envelopes[i] = envelope
        withdraw[i] = cell.deliverAsk(envelope)
      }
      return Effect.sync(() => {
        if (done) return
        done = true
        system.deadlines.remove(deadline)
        for (let i = 0; i < refs.length; i++) {
          if (answers[i] !== undefined) continue
          envelopes[i]!.reply = undefined
          withdraw[i]?.()
        }
      })
    })
  })
}
