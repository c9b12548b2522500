/**
 * One call over `POST /rpc` answered without @effect/rpc's server machinery. A body that holds
 * exactly one request, for a procedure that answers once (not a stream), whose id, headers and
 * payload pass the checks of RpcPayloads.ts, is the common case by far (the CLI, a dashboard's
 * poll, `bench/edge.ts`); for it @effect/rpc (0.76) made a client with a mailbox, decoded the
 * payload a second time, forked the call in a runtime of its own, encoded the answer through four
 * protocol layers (RpcPayloads, RpcStopping, RpcKeepAlive, RpcBackpressure) and took it back out
 * of the mailbox — a fifth to a quarter of a `runs.get`'s server CPU (bench/rpcCost.ts, bench/edge.ts).
 * Here the same call is run and answered as
 * @effect/rpc and those layers would answer it, byte for byte:
 *
 * - the handler is called with the payload @effect/rpc would decode and the headers it would join
 *   (the HTTP request's, then the line's own), under the procedure's middlewares (`Authenticated`),
 *   in a span `RpcServer.<procedure>` with the `requestId` attribute, a child of the HTTP request's;
 * - its success or failure is sent as an `Exit` encoded as the procedure's exit schema encodes it (a
 *   success by its success schema alone, which writes the same without checking the value twice), a defect as
 *   a `Defect` message (fatal defects, @effect/rpc's default), an answer the schema cannot encode
 *   as the `Die` exit @effect/rpc sends then; a failure is said on the span (RpcSpans.ts), and an
 *   interruption by the server stopping is `Unavailable` (RpcStopping.ts);
 * - an answer not ready within `RpcKeepAlive.Interval` is streamed, a `Pong` line first and one each
 *   interval after until the answer (RpcKeepAlive.ts), its writes bounded by `RpcBackpressure.Stall`
 *   (a client that reads nothing for so long is told `Unavailable` and its call interrupted).
 *
 * Everything else — several requests in one body, a stream, a line that is not a request, a
 * request any check refuses, a WebSocket — goes the regular way, which answers it as before.
 * test/edge/RpcFastPath.test.ts sends each case both ways and compares the bytes.
 */
import { Headers, type HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Rpc, type RpcGroup, RpcSchema, RpcServer } from "@effect/rpc"
import { constPong, type FromServerEncoded } from "@effect/rpc/RpcMessage"
import { Cause, Context, Deferred, Effect, Either, Exit, Fiber, FiberId, ParseResult, Schedule, Schema, Stream } from "effect"
import * as RpcBackpressure from "./RpcBackpressure.js"
import * as RpcKeepAlive from "./RpcKeepAlive.js"
import * as RpcPayloads from "./RpcPayloads.js"
import * as RpcSpans from "./RpcSpans.js"
import * as RpcStopping from "./RpcStopping.js"
import * as WriteStall from "./WriteStall.js"

/**
 * Whether the fast path is taken (`on`, read at each request), and how many calls it took. On by
 * default; a test turns it off to send the same call the regular way and compare.
 */
export class Switch extends Context.Reference<Switch>()("swarm/edge/RpcFastPath/Switch", {
  defaultValue: (): { on: boolean; taken: number } => ({ on: true, taken: 0 })
}) {}

/** An answer for a request to the endpoint, or undefined: the regular way answers it. */
export type Single = (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse | undefined>

/** @effect/rpc's HTTP protocol's content type for ndjson (`RpcSerialization.ndjson`). */
const CONTENT_TYPE = "application/ndjson"

const encoder = new TextEncoder()
/** As @effect/rpc's ndjson serialization writes one message. */
const line = (message: FromServerEncoded): Uint8Array => encoder.encode(JSON.stringify(message) + "\n")
const pongLine = line(constPong)

const encodeDefect = Schema.encodeSync(Schema.Defect)

/** Told to the request fiber by the keep-alive's beat: the answer is late, stream it. */
const SLOW = Symbol("slow")

/** A call in flight. */
interface Call {
  readonly requestId: string
  /** Whether a beat has passed since it started. */
  seen: boolean
  /** Its answer, or `SLOW` when the beat came first. */
  readonly first: Deferred.Deferred<Uint8Array | typeof SLOW>
  /** Its answer, once `first` was `SLOW`. */
  late: Deferred.Deferred<Uint8Array> | undefined
  fiber: Fiber.RuntimeFiber<void> | undefined
}

/** As @effect/rpc's server applies a procedure's middlewares (RpcServer.ts, `applyMiddleware`). */
const applyMiddleware = (
  rpc: Rpc.AnyWithProps,
  context: Context.Context<never>,
  clientId: number,
  payload: unknown,
  headers: Headers.Headers,
  handler: Effect.Effect<any, any>
): Effect.Effect<any, any> => {
  if (rpc.middlewares.size === 0) return handler
  const options = { rpc, payload, headers, clientId }
  for (const tag of rpc.middlewares) {
    const middleware = Context.unsafeGet(context, tag as any) as any
    if (tag.wrap) {
      handler = middleware({ ...options, next: handler })
    } else if (tag.optional) {
      const previous = handler
      handler = Effect.matchEffect(middleware(options) as Effect.Effect<unknown, unknown>, {
        onFailure: () => previous,
        onSuccess: tag.provides !== undefined ? (value) => Effect.provideService(previous, tag.provides as any, value) : () => previous
      })
    } else {
      handler = tag.provides !== undefined
        ? Effect.provideServiceEffect(handler, tag.provides as any, middleware(options))
        : Effect.zipRight(middleware(options) as Effect.Effect<unknown, unknown>, handler)
    }
  }
  return handler
}

/**
 * The fast path for `group`'s procedures, over the handlers and middlewares of the context (the
 * same the RPC server is given). Its calls in flight when its scope closes (the server stopping)
 * are interrupted, and answered `Unavailable`.
 */
export const make = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>) =>
  Effect.gen(function*() {
    const context = (yield* Effect.context<Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>>()) as Context.Context<never>
    const rpcs = group.requests as unknown as ReadonlyMap<string, Rpc.AnyWithProps>
    const toggle = yield* Switch
    const interval = yield* RpcKeepAlive.Interval
    const stall = yield* RpcBackpressure.Stall
    const calls = new Set<Call>()
    let stopping = false
    // Negative, so that no id is one @effect/rpc gives its own clients (from 0 up).
    let nextClientId = -1

    // The keep-alive's beat (RpcKeepAlive.ts): a call in flight since the beat before is answered as a stream.
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(
      Effect.sleep(interval),
      Effect.sync(() => {
        for (const call of calls) {
          if (!call.seen) {
            call.seen = true
            continue
          }
          if (call.late !== undefined) continue
          call.late = Deferred.unsafeMake<Uint8Array>(FiberId.none)
          Deferred.unsafeDone(call.first, Exit.succeed(SLOW))
        }
      })
    )))
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        stopping = true
        const fibers = [...calls].flatMap((call) => (call.fiber === undefined ? [] : [call.fiber]))
        // Interrupted as @effect/rpc interrupts its calls when its scope closes: not the client's doing.
        return Effect.forEach(fibers, (fiber) => Fiber.interruptAs(fiber, RpcServer.fiberIdTransientInterrupt), { discard: true })
      })
    )

    const single: Single = (request) =>
      Effect.flatMap(Effect.either(request.text), (text) => {
        if (!toggle.on || stopping || Either.isLeft(text)) return Effect.succeed(undefined)
        const messages = RpcPayloads.bodyMessages(text.right)
        if (messages.length !== 1) return Effect.succeed(undefined)
        const message = messages[0] as { readonly _tag?: unknown; readonly id?: unknown; readonly tag?: unknown; readonly headers?: unknown; readonly payload?: unknown }
        if (message._tag !== "Request") return Effect.succeed(undefined)
        const requestId = RpcPayloads.requestKey(message.id)
        if (requestId === undefined) return Effect.succeed(undefined)
        // As @effect/rpc's HTTP protocol joins them: the request's, then the line's own.
        const joined = Object.entries(request.headers).concat(message.headers as any)
        if (RpcPayloads.checkHeaders(joined) !== undefined) return Effect.succeed(undefined)
        const checked = RpcPayloads.checkRequest(rpcs, message)
        if (checked === undefined || !("payload" in checked) || checked instanceof Error) return Effect.succeed(undefined)
        const rpc = rpcs.get(message.tag as string)!
        const entry = context.unsafeMap.get(rpc.key) as Rpc.Handler<string> | undefined
        if (entry === undefined || RpcSchema.isStreamSchema(rpc.successSchema)) return Effect.succeed(undefined)
        toggle.taken++
        return answer(request, rpc, entry, requestId, checked.payload, Headers.fromInput(joined as any))
      })

    const answer = (
      request: HttpServerRequest.HttpServerRequest,
      rpc: Rpc.AnyWithProps,
      entry: Rpc.Handler<string>,
      requestId: string,
      payload: unknown,
      headers: Headers.Headers
    ): Effect.Effect<HttpServerResponse.HttpServerResponse | undefined> => {
      const clientId = nextClientId--
      let result: ReturnType<Rpc.Handler<string>["handler"]>
      let handler: Effect.Effect<any, any>
      try {
        result = entry.handler(payload, { clientId, headers })
        handler = applyMiddleware(rpc, context, clientId, payload, headers, (Rpc.isWrapper(result) ? result.value : result) as Effect.Effect<any, any>)
      } catch (defect) {
        // A handler that throws making its effect: @effect/rpc answers the connection's `Defect`.
        return Effect.succeed(HttpServerResponse.uint8Array(line({ _tag: "Defect", defect: encodeDefect(defect) }), { contentType: CONTENT_TYPE }))
      }
      const uninterruptible = Rpc.isWrapper(result) && result.uninterruptible
      const call: Call = { requestId, seen: false, first: Deferred.unsafeMake(FiberId.none), late: undefined, fiber: undefined }
      const deliver = (bytes: Uint8Array) =>
        Effect.sync(() => {
          calls.delete(call)
          if (call.late !== undefined) Deferred.unsafeDone(call.late, Exit.succeed(bytes))
          else Deferred.unsafeDone(call.first, Exit.succeed(bytes))
        })
      // As @effect/rpc sends an answer (checked, answered, then written), in the call's span.
      const send = (response: FromServerEncoded) =>
        Effect.zipRight(RpcSpans.noteAnswer(response), deliver(line(RpcStopping.answerOf(response))))
      const schemas = schemasOf(rpc)
      const sendExit = (exit: Exit.Exit<unknown, unknown>) => {
        // A success by the procedure's success schema alone: what the exit schema writes of it
        // (`{ _tag: "Success", value }`), without its check of the whole value as a type first
        // (half the encoding's CPU). Anything else, or a value that does not encode, by the exit schema.
        if (Exit.isSuccess(exit)) {
          const value = encodeSuccess(schemas, exit.value)
          if (value !== undefined) return send({ _tag: "Exit", requestId, exit: { _tag: "Success", value: value.encoded } as any })
        }
        const encoded = encodeWith(schemas.exit, exit, entry.context)
        return Effect.matchCauseEffect(encoded, {
          onSuccess: (value) => send({ _tag: "Exit", requestId, exit: value as any }),
          // An answer its schema cannot encode: the `Die` exit @effect/rpc sends then.
          onFailure: (cause) => {
            const defect = Cause.squash(Cause.map(cause, ParseResult.TreeFormatter.formatErrorSync))
            return Effect.matchCauseEffect(encodeWith(schemas.defect, defect, entry.context), {
              onSuccess: (encodedDefect) => send({ _tag: "Exit", requestId, exit: { _tag: "Failure", cause: { _tag: "Die", defect: encodedDefect } } }),
              onFailure: (cause) => send({ _tag: "Defect", defect: encodeDefect(Cause.squash(cause)) })
            })
          }
        })
      }
      let effect: Effect.Effect<void> = Effect.matchCauseEffect(uninterruptible ? handler : Effect.interruptible(handler), {
        onSuccess: (value) => sendExit(Exit.succeed(value)),
        onFailure: (cause) =>
          Cause.isDie(cause) && !Cause.isInterrupted(cause)
            ? send({ _tag: "Defect", defect: encodeDefect(Cause.squash(cause)) })
            : sendExit(Exit.failCause(cause))
      })
      effect = Effect.withSpan(effect, `RpcServer.${rpc._tag}`, { captureStackTrace: false, attributes: { requestId } })
      // The handler's context over the request's, as @effect/rpc runs a call.
      effect = Effect.uninterruptible(Effect.mapInputContext(effect, (current) => Context.merge(entry.context, current)))
      // A call that ends without an answer (interrupted before it ran): answered as @effect/rpc answers it then.
      effect = Effect.ensuring(effect, Effect.suspend(() => calls.has(call) ? sendExit(Exit.interrupt(FiberId.none)) : Effect.void))
      calls.add(call)
      return Effect.flatMap(Effect.fork(effect), (fiber) => {
        call.fiber = fiber
        return Effect.map(Deferred.await(call.first), (first) => {
          if (first !== SLOW) return HttpServerResponse.uint8Array(first, { contentType: CONTENT_TYPE })
          return slowAnswer(request, call, fiber)
        })
      })
    }

    /** A call's answer that did not come within a beat: a `Pong` now and each interval, then the answer. */
    const slowAnswer = (request: HttpServerRequest.HttpServerRequest, call: Call, fiber: Fiber.RuntimeFiber<void>) => {
      let answered = false
      const answer = Stream.fromEffect(Effect.map(Deferred.await(call.late!), (bytes) => {
        answered = true
        return bytes
      }))
      const beats = Stream.fromSchedule(Schedule.spaced(interval)).pipe(Stream.as(pongLine))
      const items = Stream.concat(Stream.make(pongLine), Stream.merge(beats, answer, { haltStrategy: "right" }))
      const res = WriteStall.nodeResponse(request)
      return HttpServerResponse.stream(
        WriteStall.bounded(res, stall, items, {
          bytes: (bytes) => bytes,
          stalled: (stalledMillis) =>
            Effect.gen(function*() {
              yield* Effect.logInfo("RPC over HTTP: a write waited too long for the client to read; the connection is ended").pipe(
                Effect.annotateLogs({ requests: answered ? 0 : 1, stalledMillis })
              )
              if (answered) return undefined
              // Interrupted as for a client gone: its own answer is not sent.
              calls.delete(call)
              yield* Fiber.interruptAsFork(fiber, RpcServer.fiberIdClientInterrupt)
              return line(RpcBackpressure.unavailableExit(call.requestId, RpcBackpressure.stalledReason(stall, "connection")))
            })
        }),
        { contentType: CONTENT_TYPE }
      )
    }

    return single
  })

/**
 * Answers their handler keeps and gives again, never changed (`unchanging`): a `strategies.get`'s
 * strategy version, whose encoding cost ten times the rest of the call. Each is encoded once per
 * procedure and that encoding reused; the regular way encodes it every time, to the same bytes.
 */
const unchangingAnswers = new WeakSet<object>()

/** `answer`, marked as never to change: the fast path encodes it once. The caller must not change it, nor anything it holds. */
export const unchanging = <A extends object>(answer: A): A => {
  unchangingAnswers.add(answer)
  return answer
}

/** A procedure's answer's encoders: its success's, its exit's and its defect's; and its `unchanging` answers' encodings. */
interface Encoders {
  readonly success: Encoder
  readonly exit: Encoder
  readonly defect: Encoder
  readonly encoded: WeakMap<object, { readonly encoded: unknown }>
}
interface Encoder {
  readonly now: (value: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly effect: (value: unknown) => Effect.Effect<unknown, ParseResult.ParseError, unknown>
}
const encoder_ = (schema: Schema.Schema<unknown, unknown, unknown>): Encoder => ({
  now: Schema.encodeUnknownEither(schema as Schema.Schema<unknown, unknown, never>),
  effect: Schema.encodeUnknown(schema)
})
const encoders = new WeakMap<Rpc.AnyWithProps, Encoders>()
const schemasOf = (rpc: Rpc.AnyWithProps): Encoders => {
  let found = encoders.get(rpc)
  if (found === undefined) {
    found = {
      success: encoder_(rpc.successSchema as any),
      exit: encoder_(Rpc.exitSchema(rpc as any) as any),
      defect: encoder_(rpc.defectSchema as any),
      encoded: new WeakMap()
    }
    encoders.set(rpc, found)
  }
  return found
}

/** `value` encoded at once, or undefined: it does not encode, or its schema needs an effect. */
const encodeNow = (encoder: Encoder, value: unknown): { readonly encoded: unknown } | undefined => {
  try {
    const encoded = encoder.now(value)
    return Either.isRight(encoded) ? { encoded: encoded.right } : undefined
  } catch {
    return undefined
  }
}

/** A success encoded by the procedure's success schema, at once, or undefined (`encodeNow`); an `unchanging` one once. */
const encodeSuccess = (schemas: Encoders, value: unknown): { readonly encoded: unknown } | undefined => {
  if (typeof value !== "object" || value === null || !unchangingAnswers.has(value)) return encodeNow(schemas.success, value)
  const known = schemas.encoded.get(value)
  if (known !== undefined) return known
  const encoded = encodeNow(schemas.success, value)
  if (encoded !== undefined) schemas.encoded.set(value, encoded)
  return encoded
}

/** `value` encoded: at once when the schema needs no effect, else as @effect/rpc encodes it (in the handler's context). */
const encodeWith = (encoder: Encoder, value: unknown, context: Context.Context<never>): Effect.Effect<unknown, ParseResult.ParseError> => {
  try {
    return Either.match(encoder.now(value), { onLeft: Effect.fail, onRight: Effect.succeed })
  } catch {
    return Effect.provide(encoder.effect(value), context) as Effect.Effect<unknown, ParseResult.ParseError>
  }
}
