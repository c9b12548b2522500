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
 *
 * A request whose id is still in flight on its connection (sent, not yet answered) is answered
 * `InvalidRequest { field: "id" }` and goes no further. @effect/rpc keeps a request's answer schema
 * by its id, so the second would replace the first's: the first's answer came out encoded by the
 * other's schema (a defect) and the second's not at all. Once an id's answer is sent it is free again.
 */
import { type Rpc, type RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Either, Layer, Mailbox, ParseResult, Schema } from "effect"
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

/** `id` as @effect/rpc reads a request id (a bigint, or one as a string), in its canonical text; undefined when it is none. */
const requestKey = (id: unknown): string | undefined => {
  if (typeof id === "bigint") return id.toString()
  if (typeof id !== "string") return undefined
  try {
    return BigInt(id).toString()
  } catch {
    return undefined
  }
}

/** `protocol` with every request's payload checked first (see the module's comment). */
export const checked = <Rpcs extends Rpc.Any, E, R>(group: RpcGroup.RpcGroup<Rpcs>, protocol: Layer.Layer<RpcServer.Protocol, E, R>) =>
  Layer.scoped(
    RpcServer.Protocol,
    Effect.gen(function*() {
      const inner = yield* RpcServer.Protocol
      const rpcs = group.requests as unknown as ReadonlyMap<string, Rpc.AnyWithProps>
      /** Per client, the ids of the requests passed on and not answered yet. */
      const inFlight = new Map<number, Set<string>>()
      const settle = (clientId: number, key: string) => {
        const ids = inFlight.get(clientId)
        if (ids !== undefined && ids.delete(key) && ids.size === 0) inFlight.delete(clientId)
      }
      // The server's disconnects, passed on once this side has forgotten the client's ids: a
      // client gone with requests in flight gets no answers, so nothing else would.
      const disconnects = yield* Mailbox.make<number>()
      yield* inner.disconnects.take.pipe(
        Effect.flatMap((clientId) => {
          inFlight.delete(clientId)
          return disconnects.offer(clientId)
        }),
        Effect.forever,
        Effect.ignore,
        Effect.ensuring(disconnects.end),
        Effect.forkScoped
      )
      const refuse = (clientId: number, id: string, invalid: InvalidRequest) =>
        inner.send(clientId, { _tag: "Exit", requestId: id, exit: { _tag: "Failure", cause: { _tag: "Fail", error: encodeInvalid(invalid) } } })
      return {
        ...inner,
        disconnects,
        send: (clientId, response, transferables) => {
          if (response._tag === "Exit") settle(clientId, response.requestId)
          return inner.send(clientId, response, transferables)
        },
        end: (clientId) => {
          inFlight.delete(clientId)
          return inner.end(clientId)
        },
        run: (f) =>
          inner.run((clientId, message) => {
            // An ack or interrupt naming no possible request: @effect/rpc would throw converting its
            // id, failing the whole connection. It concerns no request, so it is dropped.
            if ((message._tag === "Ack" || message._tag === "Interrupt") && requestKey(message.requestId) === undefined) return Effect.void
            if (message._tag !== "Request") return f(clientId, message)
            // A request id that is not one (`"abc"`) would fail the connection the same way; it is
            // answered as @effect/rpc answers an id of the wrong type.
            const key = requestKey(message.id)
            if (key === undefined) {
              return inner.send(clientId, { _tag: "Defect", defect: `Invalid request id: ${String(message.id).slice(0, QUOTED)}` })
            }
            const ids = inFlight.get(clientId)
            if (ids?.has(key)) {
              return refuse(
                clientId,
                key,
                new InvalidRequest({ field: "id", reason: `request ${key.slice(0, QUOTED)} is still in flight on this connection; an id is free again once answered` })
              )
            }
            const invalid = check(rpcs, message)
            if (invalid !== undefined) return refuse(clientId, key, invalid)
            if (ids === undefined) inFlight.set(clientId, new Set([key]))
            else ids.add(key)
            return f(clientId, message)
          })
      } satisfies RpcServer.Protocol["Type"]
    })
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

/**
 * `ndjsonObjects` for an HTTP body, which @effect/rpc decodes once, whole: its last line counts
 * without a newline after it (`curl -d '{…}'` sends none; the line-buffering parser kept it for a
 * next chunk that never comes, and the client got an empty answer), and blank lines are skipped
 * (the parser threw at them: one defect for the whole body). Not for a WebSocket, whose frames
 * may split a line.
 */
export const ndjsonBody = RpcSerialization.RpcSerialization.of({
  ...ndjsonObjects,
  unsafeMake: () => {
    const parser = ndjsonObjects.unsafeMake()
    const decoder = new TextDecoder()
    return {
      decode: (bytes) => {
        const text = typeof bytes === "string" ? bytes : decoder.decode(bytes)
        const lines = text.split("\n").filter((line) => line.trim() !== "")
        return lines.length === 0 ? [] : parser.decode(lines.join("\n") + "\n")
      },
      encode: (response) => parser.encode(response)
    }
  }
})

export const layerNdjsonBody = Layer.succeed(RpcSerialization.RpcSerialization, ndjsonBody)
