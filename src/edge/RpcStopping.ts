/**
 * A call cut off by the server stopping is answered `Unavailable`, not with a raw interruption.
 * When its scope closes, @effect/rpc (0.76) interrupts every request still in flight — a
 * `runs.events` stream that `swarm runs watch` follows, a `chat.send` whose answer is streaming —
 * and answers each with its exit: a cause that is only an interruption, which a client can match
 * against no error of the procedure (the CLI printed Effect's `Interrupt` cause as JSON). Every
 * procedure declares `Unavailable` ("the server could not do it for a reason of its own: retry
 * later", through the `Authenticated` middleware), and that is what such an exit becomes here, in
 * the server's protocol, as it goes out. A request the client itself interrupted (its own exit,
 * which it no longer waits for) goes out unchanged, as does any other answer.
 */
import { RpcServer } from "@effect/rpc"
import type { FromServerEncoded } from "@effect/rpc/RpcMessage"
import { Effect, Layer, Schema } from "effect"
import { Unavailable } from "../../schemas/Rpc.js"

/** What a call cut off by the server stopping is told. */
export const STOPPING = "the server stopped before it answered: retry once it is back"

type CauseEncoded = Schema.CauseEncoded<unknown, unknown>
type FiberIdEncoded = Schema.FiberIdEncoded

/** @effect/rpc's fiber id for an interruption the client asked for (RpcServer.fiberIdClientInterrupt). */
const CLIENT_INTERRUPT = -499

const byClient = (id: FiberIdEncoded): boolean =>
  id._tag === "Runtime" ? id.id === CLIENT_INTERRUPT : id._tag === "Composite" && (byClient(id.left) || byClient(id.right))

/** Whether `cause` holds interruptions and nothing else (no failure, no defect), none of them the client's. */
const interruptedOnly = (cause: CauseEncoded): boolean => {
  let interrupts = 0
  const only = (c: CauseEncoded): boolean => {
    switch (c._tag) {
      case "Empty":
        return true
      case "Interrupt":
        interrupts++
        return !byClient(c.fiberId)
      case "Sequential":
      case "Parallel":
        return only(c.left) && only(c.right)
      default:
        return false
    }
  }
  return only(cause) && interrupts > 0
}

const stopped = { _tag: "Failure", cause: { _tag: "Fail", error: Schema.encodeSync(Unavailable)(new Unavailable({ reason: STOPPING })) } } as const

/** The answer to send instead of `response`: the same, unless it is an exit that is only the server's interruption. */
export const answerOf = (response: FromServerEncoded): FromServerEncoded =>
  response._tag === "Exit" && response.exit._tag === "Failure" && interruptedOnly(response.exit.cause as CauseEncoded)
    ? { ...response, exit: stopped }
    : response

/** `protocol`, its interrupted exits answered as the module's comment says. */
export const answered = <E, R>(protocol: Layer.Layer<RpcServer.Protocol, E, R>) =>
  Layer.effect(
    RpcServer.Protocol,
    Effect.map(RpcServer.Protocol, (inner) =>
      RpcServer.Protocol.of({
        ...inner,
        send: (clientId, response, transferables) => inner.send(clientId, answerOf(response), transferables)
      }))
  ).pipe(Layer.provide(protocol))
