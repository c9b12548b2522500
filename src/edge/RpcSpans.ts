/**
 * What an RPC call's server span says of how it ended. @effect/rpc's `RpcServer.<procedure>` span
 * wraps the sending of the answer, so it ends OK whatever the answer: a refused call (an unknown
 * run, a bad key) or a failed one (the database down) was found only by the handler's inner spans.
 * Each failure's span gets `error.type`, its typed error's tag (`RunNotFound`, `Unauthorized`,
 * `Unavailable`), and — as OpenTelemetry's RPC conventions say — status ERROR only for a failure of
 * the server's own (`Unavailable`, `RunUnreadable`, a defect): a refusal the client caused (not
 * found, invalid, unauthenticated, forbidden, a conflict) leaves the status unset for an SRE to count
 * by `error.type`, not alert on. A request refused before @effect/rpc sees it (its payload does not
 * decode: RpcPayloads.ts) gets the span @effect/rpc would have made, the same way.
 */
import type { FromServerEncoded, RequestEncoded } from "@effect/rpc/RpcMessage"
import { Context, Effect, type Tracer } from "effect"
import type { InvalidRequest } from "../../schemas/Rpc.js"
import { failSpan } from "../telemetry/Trace.js"

/** @effect/rpc's name for a call's span: `RpcServer.<procedure>` (its default `spanPrefix`). */
const PREFIX = "RpcServer."

/** Failures that are the server's own doing, not the caller's: its span is an error. */
const SERVER_CAUSED: ReadonlySet<string> = new Set(["Unavailable", "RunUnreadable"])

/** How an answer says its call failed: the error's tag, whether the server caused it, and a line for the span's status. */
export interface Failed {
  readonly type: string
  readonly server: boolean
  readonly message: string
}

const describe = (value: unknown): string => {
  if (typeof value === "string") return value
  const reason = (value as { readonly reason?: unknown; readonly message?: unknown } | null)?.reason ??
    (value as { readonly message?: unknown } | null)?.message
  return typeof reason === "string" ? reason : JSON.stringify(value) ?? String(value)
}

/** The first failure or defect of an encoded cause (depth-first, left first); undefined for an interruption or none. */
const firstFailure = (cause: unknown, depth = 0): Failed | undefined => {
  if (depth > 32 || typeof cause !== "object" || cause === null) return undefined
  const c = cause as { readonly _tag?: unknown; readonly error?: unknown; readonly defect?: unknown; readonly left?: unknown; readonly right?: unknown }
  switch (c._tag) {
    case "Fail": {
      const tag = (c.error as { readonly _tag?: unknown } | null)?._tag
      const type = typeof tag === "string" ? tag : "_OTHER"
      return { type, server: SERVER_CAUSED.has(type), message: `${type}: ${describe(c.error)}` }
    }
    case "Die":
      return { type: "Defect", server: true, message: describe(c.defect) }
    case "Sequential":
    case "Parallel":
      return firstFailure(c.left, depth + 1) ?? firstFailure(c.right, depth + 1)
    default:
      return undefined
  }
}

/** How `response` says its call failed; undefined for a success, a chunk, an interruption. */
export const failureOf = (response: FromServerEncoded): Failed | undefined => {
  if (response._tag === "Defect") return { type: "Defect", server: true, message: describe(response.defect) }
  if (response._tag !== "Exit" || response.exit._tag !== "Failure") return undefined
  return firstFailure(response.exit.cause)
}

/** Say on `span` that its call failed as `failed` (see the module's comment). */
const mark = (span: Tracer.Span, failed: Failed): void => {
  span.attribute("error.type", failed.type)
  if (failed.server) failSpan(span, Object.assign(new Error(failed.message), { name: failed.type }))
}

/**
 * Before `response` is sent: a failure is said on the call's `RpcServer.<procedure>` span, the
 * fiber's span while @effect/rpc sends its answer. Anything sent outside such a span is left alone.
 */
export const noteAnswer = (response: FromServerEncoded): Effect.Effect<void> =>
  response._tag !== "Exit" && response._tag !== "Defect"
    ? Effect.void
    : Effect.withFiberRuntime((fiber) => {
      const span = fiber.currentSpan
      if (span === undefined || span._tag !== "Span" || !span.name.startsWith(PREFIX)) return Effect.void
      const failed = failureOf(response)
      if (failed !== undefined) mark(span, failed)
      return Effect.void
    })

/**
 * `answer` (the refusal of `request`, which @effect/rpc never saw) in the span @effect/rpc would
 * have made for the call — under the client's span when the transport carries it, linked to the
 * fiber's (the HTTP request's) — named after the procedure, or `RpcServer.unknown` for a tag that
 * names none, and marked as refused by `invalid`.
 */
export const refused = <A, E, R>(
  request: Partial<Pick<RequestEncoded, "tag" | "traceId" | "spanId" | "sampled">>,
  requestId: string,
  known: boolean,
  propagation: boolean,
  invalid: InvalidRequest,
  answer: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => {
    const current = fiber.currentSpan
    const remote = propagation && typeof request.spanId === "string" && typeof request.traceId === "string"
    return Effect.withSpan(
      Effect.zipRight(
        Effect.withFiberRuntime<void>((inner) => {
          const span = inner.currentSpan
          if (span !== undefined && span._tag === "Span") mark(span, { type: invalid._tag, server: false, message: invalid.reason })
          return Effect.void
        }),
        answer
      ),
      `${PREFIX}${known && typeof request.tag === "string" ? request.tag : "unknown"}`,
      {
        captureStackTrace: false,
        attributes: { requestId, "swarm.rpc.invalid.field": invalid.field },
        ...(remote
          ? {
            parent: {
              _tag: "ExternalSpan",
              traceId: request.traceId!,
              spanId: request.spanId!,
              sampled: request.sampled !== false,
              context: Context.empty()
            } satisfies Tracer.ExternalSpan
          }
          : {}),
        ...(propagation && current !== undefined ? { links: [{ _tag: "SpanLink", span: current, attributes: {} }] } : {})
      }
    )
  })
