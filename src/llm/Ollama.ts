/**
 * The Ollama backend: one attempt at a chat with a model an Ollama server hosts, through the
 * `ollama` client. The call's wall-clock limit and the caller's interruption both abort its HTTP
 * request, and everything the server or the network can do wrong becomes a `BackendError`.
 */
import { type Context, Effect, Layer, Option, ParseResult, Schema, Stream } from "effect"
import { type ChatRequest as WireRequest, type Message as WireMessage, Ollama as Client, type Tool } from "ollama"
import {
  type BackendError,
  LlmRequestFailed,
  LlmTimeout,
  LlmUnavailable,
  type Message,
  type ToolCall
} from "../../schemas/Llm.js"
import { clip } from "../internal/clip.js"
import { shownUrl, splitCredentials } from "../internal/credentials.js"
import { type ChatAnswer, type ChatChunk, type ChatRequest, LanguageModel } from "./LanguageModel.js"

export interface Options {
  /**
   * The server, as the client accepts it (`http://127.0.0.1:11434`). A user and password in it
   * (`http://u:p@proxy`, an auth proxy in front of Ollama) go as a Basic `Authorization` header:
   * fetch refuses a URL with credentials, and the password is never shown.
   */
  readonly host: string
  /** What start-up and `/health` say about it (default `ollama at <host>`, its password masked). */
  readonly description?: string
}

export const make = (options: Options): Context.Tag.Service<LanguageModel> => {
  const { host } = options
  const shown = shownUrl(host)

  const chat = (request: ChatRequest): Effect.Effect<ChatAnswer, BackendError> =>
    attempt(host, request.model, request.timeoutMillis, async (client) => {
      const response = await client.chat({ ...toWire(request), stream: false })
      const part = decodePart(response)
      return {
        content: part.message.content,
        toolCalls: fromWireCalls(part.message.tool_calls),
        tokensIn: part.prompt_eval_count ?? 0,
        tokensOut: part.eval_count ?? 0
      }
    }).pipe(Effect.withSpan("Ollama.chat", { attributes: { model: request.model, host: shown } }))

  const chatStream = (request: ChatRequest): Stream.Stream<ChatChunk, BackendError> =>
    Stream.unwrapScoped(Effect.gen(function*() {
      // The exchange is opened for the stream's scope: its end, failure or interruption aborts the request.
      const exchange = yield* Effect.acquireRelease(
        Effect.try({
          try: () => open(host, request.timeoutMillis),
          catch: (cause) => classify(request.model, request.timeoutMillis, false, cause)
        }),
        (exchange) => Effect.sync(exchange.close)
      )
      const failure = (cause: unknown) => classify(request.model, request.timeoutMillis, exchange.timedOut(), cause)
      const parts = yield* Effect.tryPromise({
        try: () => exchange.client.chat({ ...toWire(request), stream: true }),
        catch: failure
      })
      // Not Stream.fromAsyncIterable: its finalizer awaits `return()`, which waits for a pending read
      // that only the abort above would end.
      const iterator = parts[Symbol.asyncIterator]()
      const next = Effect.tryPromise({ try: () => iterator.next(), catch: (cause) => Option.some(failure(cause)) }).pipe(
        Effect.flatMap((result) =>
          result.done
            ? Effect.fail(Option.none())
            : Effect.try({ try: () => decodePart(result.value), catch: (cause) => Option.some(failure(cause)) })
        )
      )
      const tally = { tokensIn: 0, tokensOut: 0, calls: [] as Array<ToolCall> }
      const text = Stream.repeatEffectOption(next).pipe(
        Stream.mapConcat((part): Array<ChatChunk> => {
          // One by one: spread into a push, a line of some 200,000 calls overflowed the stack.
          for (const call of fromWireCalls(part.message.tool_calls)) tally.calls.push(call)
          if (part.done) {
            tally.tokensIn = part.prompt_eval_count ?? 0
            tally.tokensOut = part.eval_count ?? 0
          }
          return part.message.content === "" ? [] : [{ _tag: "Text", text: part.message.content }]
        })
      )
      // The client ends its iterator only after the `done` line (it throws otherwise), so the tally is final here.
      const end = Stream.suspend(() =>
        Stream.fromIterable<ChatChunk>([
          ...(tally.calls.length > 0 ? [{ _tag: "ToolCalls" as const, calls: tally.calls }] : []),
          { _tag: "Done", tokensIn: tally.tokensIn, tokensOut: tally.tokensOut }
        ])
      )
      return Stream.concat(text, end)
    })).pipe(Stream.withSpan("Ollama.chatStream", { attributes: { model: request.model, host: shown } }))

  return {
    backend: { kind: "ollama", description: options.description ?? `ollama at ${shown}` },
    chat,
    chatStream
  }
}

export const layer = (options: Options): Layer.Layer<LanguageModel> => Layer.succeed(LanguageModel, make(options))

/** The models the server has (`GET /api/tags`). A server that does not answer in time is unavailable. */
export const probe = (
  host: string,
  timeoutMillis = 1_500
): Effect.Effect<ReadonlyArray<string>, LlmUnavailable | LlmRequestFailed> =>
  attempt(host, probeModel, timeoutMillis, async (client) => decodeTags(await client.list()).models.map((m) => m.name)).pipe(
    Effect.catchTag("LlmTimeout", (e) =>
      Effect.fail(new LlmUnavailable({ model: probeModel, reason: `no answer within ${e.millis} ms` }))),
    Effect.withSpan("Ollama.probe", { attributes: { host: shownUrl(host) } })
  )

// The errors name a model; a probe asks about none.
const probeModel = "(any)"

// ---------------------------------------------------------------------------------------------
// One HTTP exchange

interface Exchange {
  readonly client: Client
  readonly timedOut: () => boolean
  /** Stops the timer and aborts the request if it is still open (a no-op once it has completed). */
  readonly close: () => void
}

/**
 * A client whose every request carries this exchange's abort signal. One client per exchange, so
 * that concurrent calls never abort each other (the client's own `abort()` ends all of its streams).
 */
const open = (host: string, timeoutMillis: number): Exchange => {
  const controller = new AbortController()
  const { authorization, url } = splitCredentials(host)
  // Throws on a host that is not a URL, before there is a timer to leak.
  const client = new Client({
    host: url,
    ...(authorization === undefined ? {} : { headers: { Authorization: authorization } }),
    // The client passes its own signal only on streamed requests; ours goes on every one.
    fetch: (input, init) =>
      globalThis.fetch(input, {
        ...init,
        signal: init?.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal
      })
  })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, Math.min(Math.max(timeoutMillis, 1), 2 ** 31 - 1))
  return {
    client,
    timedOut: () => timedOut,
    close: () => {
      clearTimeout(timer)
      controller.abort()
    }
  }
}

/** One request/answer exchange as an Effect: interruption aborts it, the limit makes it an `LlmTimeout`. */
const attempt = <A>(
  host: string,
  model: string,
  timeoutMillis: number,
  run: (client: Client) => Promise<A>
): Effect.Effect<A, BackendError> =>
  Effect.tryPromise({
    try: async (interrupted) => {
      const exchange = open(host, timeoutMillis)
      interrupted.addEventListener("abort", exchange.close, { once: true })
      try {
        return await run(exchange.client)
      } catch (cause) {
        throw classify(model, timeoutMillis, exchange.timedOut(), cause)
      } finally {
        interrupted.removeEventListener("abort", exchange.close)
        exchange.close()
      }
    },
    catch: (cause) => isBackendError(cause) ? cause : classify(model, timeoutMillis, false, cause)
  })

const isBackendError = (u: unknown): u is BackendError =>
  u instanceof LlmUnavailable || u instanceof LlmTimeout || u instanceof LlmRequestFailed

// ---------------------------------------------------------------------------------------------
// Failures

/** An answer that is not what Ollama sends: the server (or what poses as it) is at fault. */
class Malformed {
  constructor(readonly reason: string) {}
}

const malformed = (model: string, reason: string) =>
  new LlmRequestFailed({ model, status: 502, reason: `malformed answer from Ollama: ${reason}` })

/** Network failures carry a system error code somewhere down their `cause` chain. */
const networkReason = (error: unknown, depth = 0): string | undefined => {
  if (depth > 5 || typeof error !== "object" || error === null) return undefined
  const { cause, code, errors, message } = error as { cause?: unknown; code?: unknown; errors?: unknown; message?: unknown }
  // Connecting to `localhost` tries every address and fails with all of their errors, and no message.
  if (Array.isArray(errors) && errors.length > 0) {
    const first = networkReason(errors[0], depth + 1)
    if (first !== undefined) return first
  }
  const inner = networkReason(cause, depth + 1)
  if (inner !== undefined) return inner
  if (typeof code === "string" && /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/.test(code)) {
    return typeof message === "string" && message !== "" ? message : code
  }
  return undefined
}

/** The most of a server's (or the network's) words a failure quotes. */
const REASON = 500

/**
 * What went wrong, as a `BackendError` whose reason is cut to `REASON`: a failure's reason is
 * recorded (`LlmCalled.error`, the chat's `Failed` and its saved message), and a proxy's 2 MB
 * error page used to go there whole.
 */
const classify = (model: string, millis: number, timedOut: boolean, cause: unknown): BackendError => {
  const error = classified(model, millis, timedOut, cause)
  if (error._tag === "LlmTimeout" || error.reason.length <= REASON) return error
  return error._tag === "LlmUnavailable"
    ? new LlmUnavailable({ model: error.model, reason: clip(error.reason, REASON) })
    : new LlmRequestFailed({ model: error.model, status: error.status, reason: clip(error.reason, REASON) })
}

const classified = (model: string, millis: number, timedOut: boolean, cause: unknown): BackendError => {
  if (timedOut) return new LlmTimeout({ model, millis })
  if (isBackendError(cause)) return cause
  if (cause instanceof Malformed) return malformed(model, cause.reason)
  if (cause instanceof Error && cause.name === "ResponseError") {
    const { status_code, error } = cause as Error & { status_code?: unknown; error?: unknown }
    if (typeof status_code === "number" && Number.isInteger(status_code)) {
      return new LlmRequestFailed({ model, status: status_code, reason: typeof error === "string" && error !== "" ? error : cause.message })
    }
  }
  // `response.json()` on a body that is not JSON.
  if (cause instanceof SyntaxError) return malformed(model, cause.message)
  const network = networkReason(cause)
  if (network !== undefined) return new LlmUnavailable({ model, reason: network })
  // fetch rejects with a TypeError for anything it could not send or receive.
  if (cause instanceof TypeError) return new LlmUnavailable({ model, reason: cause.message })
  if (cause instanceof Error) {
    if (cause.name === "AbortError") return new LlmUnavailable({ model, reason: "request aborted" })
    // The client's complaints about a stream that broke off, or came without a body.
    if (/did not receive done|missing body/i.test(cause.message)) return malformed(model, cause.message)
    // Anything else the client throws on a stream is an `{"error": ...}` line: the server failed mid-answer.
    return new LlmRequestFailed({ model, status: 500, reason: cause.message })
  }
  return malformed(model, String(cause))
}

// ---------------------------------------------------------------------------------------------
// The wire

const toWireMessage = (message: Message): WireMessage => ({
  role: message.role,
  content: message.content,
  ...(message.toolCalls !== undefined && message.toolCalls.length > 0
    ? { tool_calls: message.toolCalls.map((call) => ({ function: { name: call.name, arguments: { ...call.arguments } } })) }
    : {}),
  ...(message.toolName !== undefined ? { tool_name: message.toolName } : {})
})

const toWire = (request: ChatRequest): WireRequest => {
  const options = {
    ...(request.maxTokensOut !== undefined ? { num_predict: request.maxTokensOut } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.seed !== undefined ? { seed: request.seed } : {})
  }
  return {
    model: request.model,
    messages: request.messages.map(toWireMessage),
    ...(request.format !== undefined ? { format: request.format } : {}),
    ...(request.tools !== undefined && request.tools.length > 0
      ? {
        tools: request.tools.map((tool): Tool => ({
          type: "function",
          // The client's type spells out a subset of JSON Schema; ours is any JSON Schema object.
          function: { name: tool.name, description: tool.description, parameters: tool.parameters as Tool["function"]["parameters"] }
        }))
      }
      : {}),
    ...(Object.keys(options).length > 0 ? { options } : {})
  }
}

const WireToolCall = Schema.Struct({
  function: Schema.Struct({ name: Schema.String, arguments: Schema.Record({ key: Schema.String, value: Schema.Unknown }) })
})

const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative())

/** The part of a chat answer (or of one line of a streamed one) that is read; the rest is ignored. */
const WirePart = Schema.Struct({
  message: Schema.Struct({
    content: Schema.optionalWith(Schema.String, { default: () => "" }),
    tool_calls: Schema.optional(Schema.NullOr(Schema.Array(WireToolCall)))
  }),
  done: Schema.optional(Schema.Boolean),
  prompt_eval_count: Schema.optional(Count),
  eval_count: Schema.optional(Count)
})
type WirePart = typeof WirePart.Type

const WireTags = Schema.Struct({ models: Schema.Array(Schema.Struct({ name: Schema.String })) })

const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (u: unknown): A => {
    const result = decode(u)
    if (result._tag === "Right") return result.right
    const issue = ParseResult.ArrayFormatter.formatErrorSync(result.left)[0]
    throw new Malformed(issue ? `${issue.path.length > 0 ? issue.path.join(".") + ": " : ""}${issue.message}` : "unexpected shape")
  }
}

const decodePart = decoder(WirePart)
const decodeTags = decoder(WireTags)

const fromWireCalls = (calls: WirePart["message"]["tool_calls"]): Array<ToolCall> =>
  (calls ?? []).map((call) => ({ name: call.function.name, arguments: call.function.arguments }))
