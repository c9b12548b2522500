/**
 * Spans made synchronously from code that must stay cheap when nothing is traced: the actor kernel
 * (a span per message only when the message came with a trace context) and agents annotating the
 * round they handle. A `Trace` is a span and the tracer that made it; `Trace.current` is the
 * fiber's own span, or undefined — an unsampled round, where nothing is allocated at all.
 *
 * Spans measure wall-clock time (`nowNanos`), never the fiber's `Clock`: a backtest's world runs on
 * a virtual clock that stands still while a slice is handled, so its spans would all last zero.
 */
import { Context, Effect, Exit, FiberRef, Hash, Option, Tracer } from "effect"

/** Epoch nanoseconds from a monotonic source: `Date.now()` once, then `process.hrtime`. */
const epochOrigin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint()

/** Wall-clock epoch nanoseconds. */
export const nowNanos = (): bigint => epochOrigin + process.hrtime.bigint()

/** Spans told they failed (`failSpan`), with their failure. */
const failures = new WeakMap<Tracer.Span, { readonly error: unknown }>()

/**
 * End `span` as failed with `error` (status ERROR, an `exception` event), whatever the exit it is
 * ended with: for work that never fails, whose failure is a value (a model call that gave no answer
 * is an abstention; a refused RPC call an answer sent), and would otherwise end its span OK. The
 * span's tracer asks `exitOf` as it ends the span (LightTracer.ts).
 */
export const failSpan = (span: Tracer.Span, error: unknown): void => {
  if (span.status._tag === "Started") failures.set(span, { error })
}

/** `exit`, unless `span` was told it failed (`failSpan`). */
export const exitOf = (span: Tracer.Span, exit: Exit.Exit<unknown, unknown>): Exit.Exit<unknown, unknown> => {
  const failure = failures.get(span)
  return failure === undefined ? exit : Exit.fail(failure.error)
}

/**
 * Where a span may keep an event whose attributes are made only if the span is read (Swarm's
 * tracer: LightTracer.ts). `Trace.event` with a function uses it, and calls the function at once
 * for any other span.
 */
export const deferEvent: unique symbol = Symbol.for("swarm/telemetry/Trace/deferEvent")

interface Deferring {
  readonly [deferEvent]?: (name: string, attributes: () => Readonly<Record<string, unknown>>) => void
}

export class Trace {
  constructor(readonly tracer: Tracer.Tracer, readonly span: Tracer.Span) {}

  /** End the span as failed with `error`, whatever the exit it is ended with (`failSpan`). */
  fail(error: unknown): void {
    failSpan(this.span, error)
  }

  /** A child span started now, linked to `links` (spans of other traces it relates to); the caller ends it (`end`). */
  child(
    name: string,
    attributes?: Readonly<Record<string, unknown>>,
    kind: Tracer.SpanKind = "internal",
    links: ReadonlyArray<Tracer.SpanLink> = []
  ): Trace {
    const span = this.tracer.span(name, Option.some(this.span), Context.empty(), links, nowNanos(), kind)
    if (attributes !== undefined) for (const key in attributes) span.attribute(key, attributes[key])
    return new Trace(this.tracer, span)
  }

  attribute(key: string, value: unknown): void {
    this.span.attribute(key, value)
  }

  /**
   * Something that happened now, as a span event (a rule the risk officer evaluated, say). Its
   * attributes may be a function of values that do not change: made only if the trace is read
   * (`swarm trace`, an exporter), not on the path of the round.
   */
  event(name: string, attributes?: Record<string, unknown> | (() => Record<string, unknown>)): void {
    if (typeof attributes !== "function") return this.span.event(name, nowNanos(), attributes)
    const defer = (this.span as Deferring)[deferEvent]
    if (defer !== undefined) defer.call(this.span, name, attributes)
    else this.span.event(name, nowNanos(), attributes())
  }

  end(exit: Exit.Exit<unknown, unknown> = Exit.void): void {
    this.span.end(nowNanos(), exitOf(this.span, exit))
  }
}

/** The running fiber's span as a `Trace`; undefined when there is none (or it came from outside the process). */
export const current: Effect.Effect<Trace | undefined> = Effect.withFiberRuntime((fiber) => {
  const span = fiber.currentSpan
  return Effect.succeed(span === undefined || span._tag !== "Span" ? undefined : new Trace(fiber.currentTracer, span))
})

export interface StartOptions {
  readonly attributes?: Readonly<Record<string, unknown>> | undefined
  readonly kind?: Tracer.SpanKind | undefined
  /** The parent; default the fiber's span. */
  readonly parent?: Tracer.AnySpan | undefined
  /** Start a new trace whatever the fiber's span. */
  readonly root?: boolean | undefined
}

/**
 * The prototype of the contexts `withParent` makes: Effect's own (`Context.unsafeMake`'s), but each
 * context hashed by a number of its own. Setting a context in a fiber (`FiberRef.set`) first asks
 * whether it equals the one there; a context's hash is its size, so the previous message's (the
 * same services, another span) hashed the same and was compared service by service, after
 * `Hash.cached` redefined the new one's hash on it. A context with a span of its own equals no
 * other context, so a hash of its own is the truth, and the comparison ends at the hashes.
 */
const SpanContext = Object.create(Object.getPrototypeOf(Context.empty()), {
  [Hash.symbol]: {
    value(this: { readonly hashed: number }) {
      return this.hashed
    }
  }
})
let contexts = 0

/**
 * `context` with `span` as the parent span: `Context.add`, but its services copied with `forEach`
 * rather than through `new Map(map)`'s iterator, which made an entry pair and an iterator result
 * for each of the thirty-odd services a server's actors run with — half the cost, on every traced
 * message of a paper run — and hashed as `SpanContext` says. `span` must be one no other context
 * was made with.
 */
export const withParent = <R>(context: Context.Context<R>, span: Tracer.AnySpan): Context.Context<R> => {
  const services = new Map<string, unknown>()
  context.unsafeMap.forEach((service, key) => services.set(key, service))
  services.set(Tracer.ParentSpan.key, span)
  const made = Object.create(SpanContext)
  made.unsafeMap = services
  made.hashed = Hash.number(++contexts)
  return made
}

/**
 * Run `f` in a new span, which is the fiber's span while it runs (what it sends carries it) and is
 * ended with its exit. With tracing disabled on the fiber, `f` gets undefined and no span is made.
 *
 * One uninterruptible region sets the span in the fiber's context, runs `f` (interruptible, its
 * exit caught), ends the span and puts the context back — what `Effect.withParentSpan` and
 * `Effect.onExit` did in two regions and twice the fiber steps, on every traced round.
 */
export const within = <A, E, R>(
  name: string,
  options: StartOptions,
  f: (trace: Trace | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime<A, E, R>((fiber) => {
    if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return f(undefined)
    const tracer = fiber.currentTracer
    const parent = options.root === true ? Option.none() : Option.fromNullable(options.parent ?? fiber.currentSpan)
    const span = tracer.span(name, parent, Context.empty(), [], nowNanos(), options.kind ?? "internal")
    const attributes = options.attributes
    if (attributes !== undefined) for (const key in attributes) span.attribute(key, attributes[key])
    const outer = fiber.getFiberRef(FiberRef.currentContext)
    return Effect.uninterruptibleMask((restore) =>
      FiberRef.set(FiberRef.currentContext, withParent(outer, span)).pipe(
        Effect.zipRight(Effect.exit(restore(f(new Trace(tracer, span))))),
        Effect.flatMap((exit) => {
          span.end(nowNanos(), exitOf(span, exit))
          return Effect.zipRight(FiberRef.set(FiberRef.currentContext, outer), exit)
        })
      )
    )
  })

/**
 * Query parameters whose values are secrets: an SSE client's `?token=` API key, and anything
 * named like a credential (`access_token`, `api_key`, `secret`…), read as the server reads a name
 * — percent-decoded and in any case — so that `?%74oken=` is a token too.
 */
const SECRET_NAME = /token|key|secret|password|passwd|auth|credential|signature/i

const decodedName = (name: string): string => {
  try {
    return decodeURIComponent(name.replace(/\+/g, " "))
  } catch {
    return name
  }
}

/** A query string (without its `?`) with the values of its secret parameters replaced by `REDACTED`. */
const redactQuery = (query: string): string =>
  query.split("&").map((pair) => {
    const equals = pair.indexOf("=")
    const name = equals < 0 ? pair : pair.slice(0, equals)
    return SECRET_NAME.test(decodedName(name)) ? `${name}=REDACTED` : pair
  }).join("&")

/** What a span attribute may not carry as is: URLs keep their shape, not their keys (`url.full`, `url.query`). */
export const redact = (key: string, value: unknown): unknown => {
  if (typeof value !== "string") return value
  if (key === "url.query") {
    const mark = value.startsWith("?") ? "?" : ""
    return mark + redactQuery(value.slice(mark.length))
  }
  if (key !== "url.full") return value
  const question = value.indexOf("?")
  if (question < 0) return value
  const hash = value.indexOf("#", question)
  const end = hash < 0 ? value.length : hash
  return `${value.slice(0, question + 1)}${redactQuery(value.slice(question + 1, end))}${value.slice(end)}`
}
