/**
 * Bad payloads as typed errors. @effect/rpc (0.76) decodes a request's payload itself and answers
 * one that does not decode with a defect (`Die`, the schema's tree as text), and a request naming
 * no procedure with a defect of the whole connection: a client sees an unexpected failure, not an
 * error it can match. This wraps the server's protocol (HTTP or WebSocket): each request's tag is
 * looked up and its payload decoded by its procedure's schema first, and one that names no
 * procedure or does not decode is answered here with the failure `InvalidRequest { field, reason }`
 * — `tag`, or the path of the payload's first problem (`strategy.agents.0.type`, or `payload` for
 * the whole), and why — which every procedure declares (`CheckedPayload`). So is one with text no
 * database can keep (U+0000, an unpaired surrogate: src/internal/storableText.ts), wherever it is in
 * the payload. A request that decodes goes on unchanged; anything that is not a request is @effect/rpc's,
 * but for ids that are not request ids, on which @effect/rpc would fail the whole connection: a
 * request's is answered as a defect (as @effect/rpc answers an id of the wrong type), an ack's or
 * an interrupt's is dropped (it concerns no request). Its serialization (`ndjsonObjects`) drops a
 * line that is not an object, which would fail the WebSocket connection the same way, and gives a
 * line that is not JSON to be answered here with a defect saying so, the connection going on.
 *
 * A request whose id is still in flight on its connection (sent, not yet answered) is answered
 * `InvalidRequest { field: "id" }` and goes no further. @effect/rpc keeps a request's answer schema
 * by its id, so the second would replace the first's: the first's answer came out encoded by the
 * other's schema (a defect) and the second's not at all. Once an id's answer is sent it is free again.
 */
import { type Rpc, type RpcGroup, type RpcMessage, RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Either, Layer, Mailbox, ParseResult, Schema } from "effect"
import { CheckedPayload, InvalidRequest } from "../../schemas/Rpc.js"
import { clip, clipAfter, QUOTED } from "../internal/clip.js"
import { findUnstorable } from "../internal/storableText.js"
import { plainly } from "../internal/issues.js"
import { problemsOf } from "../swarm/StrategyFile.js"
import { bearerKey } from "./RpcAuth.js"
import * as RpcSpans from "./RpcSpans.js"

/**
 * `InvalidRequest` for a payload's decoding error: its first issue's path, and what is wrong there
 * — every choice of a union in one line (`expected one of totalReturn, sharpe, …, got "totalreturn"`,
 * where the first issue named only the first), as a strategy file's problems say it (`problemsOf`).
 */
export const invalidPayload = (error: ParseResult.ParseError): InvalidRequest => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const first = problemsOf(error)[0]
  return new InvalidRequest({
    field: issue === undefined || issue.path.length === 0 ? "payload" : clip(issue.path.join("."), QUOTED),
    // The schema's message quotes the value it got: a 50 MB string came back whole.
    reason: issue === undefined ? "does not match the procedure's payload" : first?.message ?? plainly(clipAfter(issue.message, ", actual "))
  })
}

const encodeInvalid = Schema.encodeSync(InvalidRequest)

/** Each procedure's payload decoder, made at its first request rather than at every one. */
const payloadDecoders = new WeakMap<Rpc.AnyWithProps, (payload: unknown) => Either.Either<unknown, ParseResult.ParseError>>()

const payloadDecoder = (rpc: Rpc.AnyWithProps) => {
  let decoder = payloadDecoders.get(rpc)
  if (decoder === undefined) {
    // A field the procedure does not take is refused and named (`limt`), not dropped unseen.
    decoder = Schema.decodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown, never>, { onExcessProperty: "error" })
    payloadDecoders.set(rpc, decoder)
  }
  return decoder
}

/**
 * A request's payload checked by its procedure: why it is refused (an `InvalidRequest`), or what it
 * decodes to (`{ payload }`) — what @effect/rpc's own decoding gives the handler, since a payload
 * that decodes with no field to spare decodes to the same without the check —, or undefined when
 * the check is not ours to make (a schema that needs an effect to decode: @effect/rpc decodes it).
 */
export const checkRequest = (
  rpcs: ReadonlyMap<string, Rpc.AnyWithProps>,
  message: { readonly tag?: unknown; readonly payload?: unknown }
): InvalidRequest | { readonly payload: unknown } | undefined => {
  if (typeof message.tag !== "string") return new InvalidRequest({ field: "tag", reason: "must be a string naming a procedure" })
  const rpc = rpcs.get(message.tag)
  if (rpc === undefined) {
    return new InvalidRequest({ field: "tag", reason: `no procedure is named ${JSON.stringify(message.tag.slice(0, QUOTED))}` })
  }
  let decoded: Either.Either<unknown, ParseResult.ParseError>
  try {
    decoded = payloadDecoder(rpc)(message.payload)
  } catch {
    // A schema that needs an effect to decode: @effect/rpc decodes it itself.
    return undefined
  }
  if (Either.isLeft(decoded)) return invalidPayload(decoded.left)
  const unstorable = findUnstorable(message.payload)
  return unstorable === undefined
    ? { payload: decoded.right }
    : new InvalidRequest({ field: unstorable.path.length === 0 ? "payload" : clip(unstorable.path.join("."), QUOTED), reason: unstorable.reason })
}

/** Why a request names no procedure, or its payload does not decode; undefined when it does (or is not ours to judge). */
const check = (rpcs: ReadonlyMap<string, Rpc.AnyWithProps>, message: { readonly tag?: unknown; readonly payload?: unknown }): InvalidRequest | undefined => {
  const checked = checkRequest(rpcs, message)
  return checked instanceof InvalidRequest ? checked : undefined
}

/** `id` as @effect/rpc reads a request id (a bigint, or one as a string), in its canonical text; undefined when it is none. */
export const requestKey = (id: unknown): string | undefined => {
  if (typeof id === "bigint") return id.toString()
  if (typeof id !== "string") return undefined
  try {
    return BigInt(id).toString()
  } catch {
    return undefined
  }
}

/**
 * Why a request's headers (the transport's, then the line's own, as @effect/rpc joins them) are
 * not usable, or undefined:
 * - anything but `[name, value]` pairs threw inside @effect/rpc (`{}` closed the WebSocket);
 * - two different keys — the connection's `Authorization` header and one in the line — would be
 *   decided by which came last, the line's: a key a proxy never saw. Refused rather than guessed.
 */
export const checkHeaders = (headers: unknown): InvalidRequest | undefined => {
  const pairs = Array.isArray(headers) && headers.every((h) =>
    Array.isArray(h) && h.length === 2 && typeof h[0] === "string" &&
    (typeof h[1] === "string" || (Array.isArray(h[1]) && h[1].every((v) => typeof v === "string"))))
  if (!pairs) return new InvalidRequest({ field: "headers", reason: "must be an array of [name, value] string pairs" })
  const keys = new Set<unknown>()
  for (const [name, value] of headers as ReadonlyArray<readonly [string, unknown]>) {
    // The key itself: `Bearer k` and `bearer  k` are one key.
    if (name.toLowerCase() === "authorization") keys.add(typeof value === "string" ? (bearerKey(value) ?? value) : value)
  }
  return keys.size > 1
    ? new InvalidRequest({ field: "headers.authorization", reason: "two different keys: the connection's Authorization header and the request's own; send one" })
    : undefined
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
      // In the span @effect/rpc would have made for the call, had it seen it (RpcSpans.ts).
      const refuse = (clientId: number, id: string, message: Partial<RpcMessage.RequestEncoded>, invalid: InvalidRequest) =>
        RpcSpans.refused(
          message,
          id,
          typeof message.tag === "string" && rpcs.has(message.tag),
          inner.supportsSpanPropagation,
          invalid,
          inner.send(clientId, { _tag: "Exit", requestId: id, exit: { _tag: "Failure", cause: { _tag: "Fail", error: encodeInvalid(invalid) } } })
        )
      return {
        ...inner,
        disconnects,
        send: (clientId, response, transferables) => {
          if (response._tag === "Exit") settle(clientId, response.requestId)
          // An answer is sent in its call's span: a failure is said there (RpcSpans.ts).
          return response._tag === "Exit" || response._tag === "Defect"
            ? Effect.zipRight(RpcSpans.noteAnswer(response), inner.send(clientId, response, transferables))
            : inner.send(clientId, response, transferables)
        },
        end: (clientId) => {
          inFlight.delete(clientId)
          return inner.end(clientId)
        },
        run: (f) =>
          inner.run((clientId, message) => {
            if ((message as { readonly _tag: string })._tag === NOT_JSON) {
              const reason = (message as unknown as NotJson).reason
              return inner.send(clientId, { _tag: "Defect", defect: `a line is not JSON (${reason}): each line is one JSON message` })
            }
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
            const badHeaders = checkHeaders(message.headers)
            if (badHeaders !== undefined) return refuse(clientId, key, message, badHeaders)
            const ids = inFlight.get(clientId)
            if (ids?.has(key)) {
              return refuse(
                clientId,
                key,
                message,
                new InvalidRequest({ field: "id", reason: `request ${key.slice(0, QUOTED)} is still in flight on this connection; an id is free again once answered` })
              )
            }
            const invalid = check(rpcs, message)
            if (invalid !== undefined) return refuse(clientId, key, message, invalid)
            if (ids === undefined) inFlight.set(clientId, new Set([key]))
            else ids.add(key)
            return f(clientId, message)
          })
      } satisfies RpcServer.Protocol["Type"]
    })
  ).pipe(Layer.provide(protocol))

/** `CheckedPayload`'s server side: the checking happened in the protocol, before any middleware. */
export const CheckedPayloadLive = Layer.succeed(CheckedPayload, CheckedPayload.of(() => Effect.void))

/** What a line that is not JSON decodes to: `checked` answers it with a defect saying why, and the lines after it go on. */
const NOT_JSON = "swarm/NotJson"
interface NotJson {
  readonly _tag: typeof NOT_JSON
  readonly reason: string
}

/** The longest line kept waiting for its newline (@effect/rpc's default): past it the WebSocket is closed (1009). */
const MAX_LINE = 16 * 1024 * 1024

/** One ndjson line into `into`: blank lines skipped, a JSON value that is not an object dropped, text that is not JSON as `NotJson`. */
const decodeLine = (line: string, into: Array<unknown>): void => {
  if (line.trim() === "") return
  let message: unknown
  try {
    message = JSON.parse(line)
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error)
    into.push({ _tag: NOT_JSON, reason: why.slice(0, QUOTED) } satisfies NotJson)
    return
  }
  if (typeof message === "object" && message !== null && !Array.isArray(message)) into.push(message)
}

/** The `_tag`s of what a client sends over @effect/rpc's protocol. */
const MESSAGE_TAGS: ReadonlySet<unknown> = new Set(["Request", "Ack", "Interrupt", "Ping", "Eof"])

/** Whether `text` is one whole message a client sends (a JSON object tagged as one). */
const isMessage = (text: string): boolean => {
  const trimmed = text.trim()
  if (!trimmed.startsWith("{") || !trimmed.endsWith("}")) return false
  try {
    return MESSAGE_TAGS.has((JSON.parse(trimmed) as { readonly _tag?: unknown })._tag)
  } catch {
    return false
  }
}

/** Whether `text` is one whole JSON value (blank is not). */
const parses = (text: string): boolean => {
  if (text.trim() === "") return false
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/**
 * `text` (what a frame left without its newline) as the JSON object it is whole, or undefined:
 * nothing a next frame adds can make a whole object part of another line, so it is read now. Tried
 * only when it looks like one (`{` … `}`), so a line that comes in many frames is not parsed at each.
 */
const wholeObject = (text: string): object | undefined => {
  const trimmed = text.trim()
  if (!trimmed.startsWith("{") || !trimmed.endsWith("}")) return undefined
  try {
    return JSON.parse(trimmed) as object
  } catch {
    return undefined
  }
}

/**
 * ndjson as @effect/rpc writes it, read line by line more forgivingly than its parser:
 * - a line that is JSON and not an object (`null`, `3`, `[]`) is dropped: @effect/rpc's WebSocket
 *   protocol reads each message's `_tag` outside its error handling, so one such line failed the
 *   whole connection (and logged it as a server error). It stands for no request;
 * - a line that is not JSON is answered with a defect saying so (`checked`), and the next lines are
 *   read: @effect/rpc's parser threw without consuming it, so every later frame of the connection
 *   hit the same line again and got the same defect — the connection answered nothing more;
 * - blank lines are skipped (the parser threw at them);
 * - a frame that ends without a newline, on a whole JSON object, is read as that line: a client
 *   that sends one request a frame (`ws.send(JSON.stringify(request))`, as most WebSocket code
 *   does) waited for an answer that never came, its line kept for a newline that never came;
 * - what a frame left waiting for its newline that was never JSON (`hello`, `{"a":NaN}`, a request
 *   cut off) is answered as not JSON once the next frame starts with a whole message, which is then
 *   read on its own: before, every later frame was added to it and the connection answered nothing
 *   more. A frame that is a whole JSON value but not an object (`null`, `[]`) is dropped at once;
 * - a character split between two frames is decoded whole.
 */
export const ndjsonObjects = RpcSerialization.RpcSerialization.of({
  ...RpcSerialization.ndjson,
  unsafeMake: () => {
    const writer = RpcSerialization.ndjson.unsafeMake()
    const decoder = new TextDecoder()
    let buffer = ""
    return {
      decode: (bytes) => {
        const text = typeof bytes === "string" ? bytes : decoder.decode(bytes, { stream: true })
        const items: Array<unknown> = []
        if (buffer.trim() !== "") {
          // What an earlier frame left waiting for its newline, followed by a frame that starts with
          // a whole message of its own (`{"_tag":"Request",…}`): the two make no line together, so
          // what waited was never one (`hello`, `{"a":NaN}`, a cut-off request) — answered as text
          // that is not JSON, and the frame read on its own. (A piece of a line split between frames
          // is never a whole message: a payload's own objects are not tagged `Request`, `Ack`…)
          const cut = text.indexOf("\n")
          const head = cut === -1 ? text : text.slice(0, cut)
          if (isMessage(head) && !parses(buffer + head)) {
            decodeLine(buffer, items)
            buffer = ""
          }
        }
        buffer += text
        let position = 0
        for (let newline = buffer.indexOf("\n"); newline !== -1; newline = buffer.indexOf("\n", position)) {
          decodeLine(buffer.slice(position, newline), items)
          position = newline + 1
        }
        if (position > 0) buffer = buffer.slice(position)
        const whole = buffer.length > 0 ? wholeObject(buffer) : undefined
        if (whole !== undefined) {
          items.push(whole)
          buffer = ""
        } else if (buffer.length > 0 && !buffer.trimStart().startsWith("{") && parses(buffer)) {
          // A whole JSON value that is not an object (`null`, `[]`, `3`): it stands for no request,
          // as such a line does; no frame after it can make it one.
          buffer = ""
        }
        if (buffer.length > MAX_LINE) {
          const bufferSize = buffer.length
          buffer = ""
          throw new RpcSerialization.RpcSerializationError({ reason: "BufferSizeExceeded", maxBufferSize: MAX_LINE, bufferSize })
        }
        return items
      },
      encode: (response) => writer.encode(response)
    }
  }
})

export const layerNdjsonObjects = Layer.succeed(RpcSerialization.RpcSerialization, ndjsonObjects)

/**
 * `ndjsonObjects` for an HTTP body, which @effect/rpc decodes once, whole: its last line counts
 * without a newline after it (`curl -d '{…}'` sends none; a line-buffering parser keeps it for a
 * next chunk that never comes, and the client got an empty answer). Not for a WebSocket, whose
 * frames may split a line.
 */
export const ndjsonBody = RpcSerialization.RpcSerialization.of({
  ...ndjsonObjects,
  unsafeMake: () => {
    const writer = RpcSerialization.ndjson.unsafeMake()
    const decoder = new TextDecoder()
    return {
      decode: (bytes) => bodyMessages(typeof bytes === "string" ? bytes : decoder.decode(bytes)),
      encode: (response) => writer.encode(response)
    }
  }
})

/**
 * The messages of an HTTP body as `ndjsonBody` reads them (a line that is not JSON as `NotJson`,
 * which `checked` answers). An `Eof` line is left out: the body's end is its `Eof` (@effect/rpc's
 * HTTP protocol writes one after the body's messages), and a second ended the client's calls
 * before they answered — a bare 503, logged nowhere.
 */
export const bodyMessages = (body: string): Array<unknown> => {
  const items: Array<unknown> = []
  for (const line of body.split("\n")) decodeLine(line, items)
  return items.some(isEof) ? items.filter((item) => !isEof(item)) : items
}

const isEof = (item: unknown): boolean => (item as { readonly _tag?: unknown })._tag === "Eof"

export const layerNdjsonBody = Layer.succeed(RpcSerialization.RpcSerialization, ndjsonBody)
