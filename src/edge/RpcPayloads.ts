/**
 * Bad payloads as typed errors. @effect/rpc (0.76) decodes a request's payload itself and answers
 * one that does not decode with a defect (`Die`, the schema's tree as text), and a request naming
 * no procedure with a defect of the whole connection: a client sees an unexpected failure, not an
 * error it can match. This wraps the server's protocol (HTTP or WebSocket): each request's tag is
 * looked up and its payload decoded by its procedure's schema first, and one that names no
 * procedure or does not decode is answered here with the failure `InvalidRequest { field, reason }`
 * — `tag`, or the path of the payload's first problem (`strategy.agents.0.type`, or `payload` for
 * the whole), and why — which every procedure declares (`CheckedPayload`). A request that decodes
 * goes on unchanged; anything that is not a request is @effect/rpc's,
 * but for ids that are not request ids, on which @effect/rpc would fail the whole connection: a
 * request's is answered as a defect (as @effect/rpc answers an id of the wrong type), an ack's or
 * an interrupt's is dropped (it concerns no request). Its serialization (`ndjsonObjects`) drops a
 * line that is not an object, which would fail the WebSocket connection the same way.
 */
import { type Rpc, type RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Either, Layer, ParseResult, Schema } from "effect"
import { CheckedPayload, InvalidRequest } from "../../schemas/Rpc.js"

/** `InvalidRequest` for a payload's decoding error: its first issue's path and message. */
export const invalidPayload = (error: ParseResult.ParseError): InvalidRequest => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  return new InvalidRequest({
    field: issue === undefined || issue.path.length === 0 ? "payload" : issue.path.join("."),
    reason: issue?.message ?? "does not match the procedure's payload"
  })
}

const encodeInvalid = Schema.encodeSync(InvalidRequest)

/** The longest part of a client's text an error quotes back. */
const QUOTED = 100

/** Why a request names no procedure, or its payload does not decode; undefined when it does (or is not ours to judge). */
const check = (rpcs: ReadonlyMap<string, Rpc.AnyWithProps>, message: { readonly tag?: unknown; readonly payload?: unknown }): InvalidRequest | undefined => {
  if (typeof message.tag !== "string") return new InvalidRequest({ field: "tag", reason: "must be a string naming a procedure" })
  const rpc = rpcs.get(message.tag)
  if (rpc === undefined) {
    return new InvalidRequest({ field: "tag", reason: `no procedure is named ${JSON.stringify(message.tag.slice(0, QUOTED))}` })
  }
  let decoded: Either.Either<unknown, ParseResult.ParseError>
  try {
    decoded = Schema.decodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown, never>)(message.payload)
  } catch {
    // A schema that needs an effect to decode: @effect/rpc decodes it itself.
    return undefined
  }
  return Either.isLeft(decoded) ? invalidPayload(decoded.left) : undefined
}

/** Whether @effect/rpc can read `id` as a request id (a bigint, as a string). */
const isRequestId = (id: unknown): boolean => {
  if (typeof id !== "string") return false
  try {
    BigInt(id)
    return true
  } catch {
    return false
  }
}

/** `protocol` with every request's payload checked first (see the module's comment). */
export const checked = <Rpcs extends Rpc.Any, E, R>(group: RpcGroup.RpcGroup<Rpcs>, protocol: Layer.Layer<RpcServer.Protocol, E, R>) =>
  Layer.effect(
    RpcServer.Protocol,
    Effect.map(RpcServer.Protocol, (inner): RpcServer.Protocol["Type"] => ({
      ...inner,
      run: (f) =>
        inner.run((clientId, message) => {
          // An ack or interrupt naming no possible request: @effect/rpc would throw converting its
          // id, failing the whole connection. It concerns no request, so it is dropped.
          if ((message._tag === "Ack" || message._tag === "Interrupt") && !isRequestId(message.requestId)) return Effect.void
          if (message._tag !== "Request") return f(clientId, message)
          // A request id that is not one (`"abc"`) would fail the connection the same way; it is
          // answered as @effect/rpc answers an id of the wrong type.
          if (typeof message.id !== "bigint" && !isRequestId(message.id)) {
            return inner.send(clientId, { _tag: "Defect", defect: `Invalid request id: ${String(message.id).slice(0, QUOTED)}` })
          }
          const invalid = check(group.requests as unknown as ReadonlyMap<string, Rpc.AnyWithProps>, message)
          if (invalid === undefined) return f(clientId, message)
          return inner.send(clientId, {
            _tag: "Exit",
            requestId: String(message.id),
            exit: { _tag: "Failure", cause: { _tag: "Fail", error: encodeInvalid(invalid) } }
          })
        })
    }))
  ).pipe(Layer.provide(protocol))

/** `CheckedPayload`'s server side: the checking happened in the protocol, before any middleware. */
export const CheckedPayloadLive = Layer.succeed(CheckedPayload, CheckedPayload.of(() => Effect.void))

/**
 * ndjson, but a line that is JSON and not an object (`null`, `3`, `[]`) is dropped: @effect/rpc's
 * WebSocket protocol reads each message's `_tag` outside its error handling, so one such line
 * failed the whole connection (and logged it as a server error). It stands for no request.
 */
export const ndjsonObjects = RpcSerialization.RpcSerialization.of({
  ...RpcSerialization.ndjson,
  unsafeMake: () => {
    const parser = RpcSerialization.ndjson.unsafeMake()
    return {
      decode: (bytes) => parser.decode(bytes).filter((message) => typeof message === "object" && message !== null && !Array.isArray(message)),
      encode: (response) => parser.encode(response)
    }
  }
})

export const layerNdjsonObjects = Layer.succeed(RpcSerialization.RpcSerialization, ndjsonObjects)
