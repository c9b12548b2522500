/**
 * The HTTP server: one router (@effect/platform's `HttpLayerRouter`, where every route is a layer,
 * so the RPC endpoint and the webhooks join by merging theirs) served by Node on `PORT` (7070).
 * Whatever a handler does not answer itself gets a JSON answer here: an unknown route 404, a
 * defect or an unexpected failure 500 — logged with its cause, never shown to the client.
 *
 *   Http.serve(Layer.mergeAll(Http.routes(), RpcRoute, WebhookRoute)).pipe(Layer.provide(Http.listen({ port })))
 */
import * as Http from "node:http"
import {
  HttpApp,
  HttpIncomingMessage,
  HttpLayerRouter,
  HttpMiddleware,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerRespondable as Respondable,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Cause, Clock, Config, ConfigError, Duration, Effect, Either, FiberRef, Layer, Option } from "effect"
import * as LogFormat from "../telemetry/LogFormat.js"
import { Authenticator } from "./Auth.js"
import * as Health from "./Health.js"
import * as RunStatusFeed from "./RunStatusFeed.js"
import * as Sse from "./Sse.js"

export interface Options {
  /** Default 7070; 0 picks a free port (read it from `HttpServer.HttpServer`'s `address`). */
  readonly port?: number
  /** Default: every interface. */
  readonly host?: string
  /** Log each request (method, path without its query — `?token=` is a key —, status, duration, user: `logRequest`). Default true. */
  readonly logRequests?: boolean
  /** On shutdown, how long requests in flight may take before their connections are closed. Default 2 s. */
  readonly shutdownGrace?: Duration.DurationInput
  readonly sse?: Sse.Options
  readonly health?: Health.Components
  /** Which web pages' origins may call the server from a browser (CORS). Default `"*"`: any. */
  readonly corsOrigins?: CorsOrigins
}

export const DEFAULT_PORT = 7070
export const DEFAULT_SHUTDOWN_GRACE = Duration.seconds(2)

// ---------------------------------------------------------------------------------------------
// Cross-origin requests (CORS)

/**
 * The origins of the web pages that may read the server's answers from a browser: a dashboard
 * served from elsewhere (`http://localhost:3000`, a file opened from disk: origin `null`) reading
 * a run's SSE stream with `EventSource` and `?token=`, or calling `POST /rpc` with `fetch`.
 * `"*"`, any page; `"none"`, no cross-origin answers at all (only pages of the server's own origin,
 * and non-browser clients, which CORS does not concern); or a list of origins.
 *
 * Any page is the default because nothing here trusts where a request comes from: every
 * procedure and stream wants an API key, which a page has only if its user gave it one — there
 * are no cookies a foreign page could ride on (`Access-Control-Allow-Credentials` is never sent).
 * What a foreign page can read without a key is what `curl` can: `/health`, and refusals.
 */
export type CorsOrigins = "*" | "none" | ReadonlyArray<string>

/** How long a browser may keep a preflight's answer, in seconds. */
const CORS_MAX_AGE = 600

/** What `SWARM_CORS_ORIGINS` says, or why it cannot be read. */
export const parseCorsOrigins = (text: string): Either.Either<CorsOrigins, string> => {
  const trimmed = text.trim()
  if (trimmed === "*") return Either.right("*")
  if (trimmed === "" || trimmed.toLowerCase() === "none") return Either.right("none")
  const origins: Array<string> = []
  for (const item of trimmed.split(",").map((part) => part.trim())) {
    if (item === "") return Either.left("has an empty entry: list origins separated by commas")
    if (item === "*") return Either.left(`mixes "*" with origins: "*" alone allows any origin`)
    if (item === "null") {
      origins.push(item)
      continue
    }
    let url: URL
    try {
      url = new URL(item)
    } catch {
      return Either.left(`"${item}" is not an origin: write scheme://host[:port], as http://localhost:3000`)
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return Either.left(`"${item}" is not an http or https origin`)
    }
    // An origin is scheme, host and port only, in the form a browser sends it.
    if (url.origin !== item) return Either.left(`"${item}" is not an origin as browsers send it: did you mean "${url.origin}"?`)
    origins.push(item)
  }
  return Either.right(origins)
}

/** A start-up line: what `corsOrigins` lets browsers do. */
export const describeCors = (origins: CorsOrigins): string =>
  origins === "*"
    ? "cross-origin requests (CORS): web pages of any origin may call the server with a key (SWARM_CORS_ORIGINS narrows it)"
    : origins === "none"
    ? "cross-origin requests (CORS): refused to every web page of another origin (SWARM_CORS_ORIGINS=none)"
    : `cross-origin requests (CORS): web pages of ${origins.join(", ")} may call the server with a key (SWARM_CORS_ORIGINS)`

/**
 * Answer browsers' cross-origin requests as `origins` allows: a preflight (`OPTIONS` with an
 * `Origin`) is a 204 that allows the methods, the headers a page sends (`Authorization`,
 * `Content-Type`, `Last-Event-ID`) and caching it for `CORS_MAX_AGE`; any other request with an
 * allowed `Origin` gets `Access-Control-Allow-Origin` on its answer, whatever the answer (a 401's
 * body is readable, so a page can say why), and `Retry-After` readable on a 429. A request without
 * an `Origin` (a CLI, curl, a same-origin page's GET) is served as if this were not here: `app`
 * as it answers either, the caller picking by the request's `Origin`.
 */
const cors = (origins: CorsOrigins) => {
  if (origins === "none") return <E, R>(app: HttpApp.Default<E, R>) => ({ withOrigin: app, withoutOrigin: app })
  const allowed = origins === "*" ? undefined : new Set(origins)
  const withCors = HttpMiddleware.cors({
    // Any origin: the platform answers `*`; a list: the request's own origin when it is listed.
    ...(allowed === undefined ? {} : { allowedOrigins: (origin: string) => allowed.has(origin) }),
    allowedMethods: ["GET", "HEAD", "POST"],
    // What a page of ours sends: not whatever a preflight asks for.
    allowedHeaders: ["authorization", "content-type", "last-event-id"],
    exposedHeaders: ["retry-after", "www-authenticate"],
    maxAge: CORS_MAX_AGE
  })
  // An answer depends on the request's Origin, whatever it is (none too: no CORS headers then, even
  // with `*`), so caches are told: one must not give a page the answer a CLI's request got.
  const varyOrigin = HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, "vary", "Origin"))
  )
  return <E, R>(app: HttpApp.Default<E, R>) => ({
    withOrigin: Effect.zipRight(varyOrigin, withCors(app)),
    withoutOrigin: Effect.zipRight(varyOrigin, app)
  })
}

/** `SWARM_CORS_ORIGINS`: `*` (the default), `none`, or origins separated by commas. */
const corsConfig: Config.Config<CorsOrigins> = Config.string("SWARM_CORS_ORIGINS").pipe(
  Config.withDefault("*"),
  Config.mapOrFail((text) =>
    Either.mapLeft(parseCorsOrigins(text), (reason) => ConfigError.InvalidData(["SWARM_CORS_ORIGINS"], reason)))
)

/**
 * Where the server listens unless `HOST` says otherwise: this machine only. The first start prints
 * an admin key and serves a demo; a server other machines can reach is asked for (`HOST=0.0.0.0`,
 * as the Docker image does), never had by default.
 */
export const DEFAULT_HOST = "127.0.0.1"

/** `PORT` (default 7070), `HOST` (default 127.0.0.1: this machine only) and `SWARM_CORS_ORIGINS` (default `*`), read once at the edge. */
export const config: Config.Config<{ readonly port: number; readonly host: string; readonly corsOrigins: CorsOrigins }> =
  Config.all({
    port: Config.port("PORT").pipe(Config.withDefault(DEFAULT_PORT)),
    host: Config.string("HOST").pipe(
      Config.withDefault(DEFAULT_HOST),
      Config.mapOrFail((text) =>
        text.trim() === ""
          ? Either.left(ConfigError.InvalidData(["HOST"], `an address to listen on, as 127.0.0.1 (this machine) or 0.0.0.0 (every interface), not ""`))
          : Either.right(text.trim())
      )
    ),
    corsOrigins: corsConfig
  })

/** Addresses that listen on every interface: other machines can reach the server. */
const EVERY_INTERFACE = new Set(["0.0.0.0", "::", "[::]"])
/** Loopback addresses: only this machine can. */
const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"])

/** A start-up line: who can reach the server, by `HOST`. */
export const describeHost = (host: string): string =>
  EVERY_INTERFACE.has(host)
    ? `network: every interface (HOST=${host}): other machines can reach this server; each call needs an API key`
    : LOOPBACK.has(host) || host.startsWith("127.")
    ? `network: this machine only (HOST=${host}); HOST=0.0.0.0 serves other machines`
    : `network: ${host} (HOST)`

/** A request's path without its query string (which may hold a `?token=`). */
const pathOf = (request: HttpServerRequest.HttpServerRequest): string => {
  const q = request.url.indexOf("?")
  return q < 0 ? request.url : request.url.slice(0, q)
}

const json = (status: number, body: Record<string, unknown>) => HttpServerResponse.unsafeJson(body, { status })

const internalError = json(500, { error: "InternalError", reason: "the server failed to answer this request; the failure is logged" })

const tagOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string" ? error._tag : "Error"

/** What a respondable error says, without the platform's messages' URL (its query may hold a `?token=`). */
const reasonOf = (error: unknown): string => {
  if (HttpServerError.isServerError(error) && error._tag === "RequestError") {
    return error.reason === "Decode" ? "the request body cannot be read as sent" : "the request could not be received whole"
  }
  return error instanceof Error && error.message !== "" ? error.message : "the request cannot be answered"
}

/**
 * A request's log line: `POST /rpc 200 runs.get 12.3 ms, user admin` — the duration until its answer
 * (a stream's: until the stream starts), and its user's name when the key it presented is known (`AuthService.holder`: never the key, and
 * never the query, where `?token=` is one). In json or logfmt, the line is the record's message and
 * each part a field of it — `method`, `path`, `status`, `procedures`, `durationMs`, `traceId` (the
 * request's trace, when it is traced: `swarm trace` and a collector find it by that id), `userId`,
 * `user`; pretty keeps to one line a request, without the trace id.
 */
const logRequest = (request: HttpServerRequest.HttpServerRequest, response: HttpServerResponse.HttpServerResponse, started: bigint) =>
  Effect.gen(function*() {
    const path = pathOf(request)
    const procedures = rpcProcedures.get(request)
    const durationMs = Math.round(Number((yield* Clock.currentTimeNanos) - started) / 1e5) / 10
    const span = Option.filter(yield* Effect.option(Effect.currentSpan), (span) => span.sampled)
    const auth = yield* Effect.serviceOption(Authenticator)
    const inBody = rpcAuthorizations.get(request)
    const headers = inBody === undefined ? request.headers : { ...request.headers, authorization: inBody }
    const key = Either.getOrUndefined(Sse.keyOf(headers, searchOf(request)))
    const user = auth._tag === "Some" && auth.value.holder !== undefined && key !== undefined ? yield* auth.value.holder(key) : undefined
    const line = `${request.method} ${path} ${response.status}${procedures === undefined ? "" : ` ${procedures.join(",")}`} ${durationMs} ms` +
      (user === undefined ? "" : `, user ${user.name}`)
    const structured = (yield* FiberRef.get(LogFormat.current)) !== "pretty"
    // A healthcheck every 10 s (Docker's) would be 8,640 lines a day at INFO: /health is DEBUG.
    const log = path === Health.path ? Effect.logDebug(line) : Effect.logInfo(line)
    yield* structured
      ? Effect.annotateLogs(log, {
        method: request.method,
        path,
        status: response.status,
        ...(procedures === undefined ? {} : { procedures: procedures.join(",") }),
        durationMs,
        ...(Option.isSome(span) ? { traceId: span.value.traceId } : {}),
        ...(user === undefined ? {} : { userId: user.userId, user: user.name })
      })
      : log
  })

/** A request's query as the SSE routes read it (`Sse.keyOf`): each name's value, or its values when repeated. */
const searchOf = (request: HttpServerRequest.HttpServerRequest): Record<string, string | ReadonlyArray<string>> => {
  const q = request.url.indexOf("?")
  const search: Record<string, string | Array<string>> = {}
  if (q < 0) return search
  for (const [name, value] of new URLSearchParams(request.url.slice(q + 1))) {
    const before = search[name]
    search[name] = before === undefined ? value : [...(typeof before === "string" ? [before] : before), value]
  }
  return search
}

/**
 * Every route's last line of defence (a global middleware, so unknown routes pass through it too),
 * around the CORS answers and the RPC envelope's check. An interruption (the client went away) is
 * left to the server.
 */
const answerEverything = (logRequests: boolean, origins: CorsOrigins) =>
  HttpLayerRouter.middleware(
    (handler: Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled>) => {
      // In this order, one middleware (the order of several is their layers'): CORS inside, so a
      // preflight is logged; the RPC envelope's check inside CORS, so its refusals get the headers too.
      const apps = cors(origins)(rpcEnvelope(handler))
      return Effect.gen(function*() {
        const started = yield* Clock.currentTimeNanos
        const request = yield* HttpServerRequest.HttpServerRequest
        const app = (request.headers["origin"] === undefined ? apps.withoutOrigin : apps.withOrigin) as typeof handler
        const logFailure = (cause: Cause.Cause<unknown>) =>
          Effect.logError("HTTP: a handler failed", cause).pipe(Effect.annotateLogs({ method: request.method, path: pathOf(request) }))
        const response = yield* app.pipe(
          Effect.catchAllCause((cause): Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled> => {
            if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
            const failure = Cause.failureOption(cause)
            if (Option.isSome(failure) && HttpServerError.isServerError(failure.value) && failure.value._tag === "RouteNotFound") {
              return Effect.succeed(json(404, { error: "NotFound", reason: `no route ${request.method} ${pathOf(request)}` }))
            }
            // An error that knows its answer (a body that does not parse: 400) keeps it, as JSON.
            const respondable = Option.isSome(failure) && Respondable.isRespondable(failure.value) ? failure.value : undefined
            if (respondable !== undefined) {
              return Effect.flatMap(Respondable.toResponse(respondable), (response) =>
                response.status >= 500
                  ? Effect.as(logFailure(cause), internalError)
                  : Effect.succeed(
                    response.body._tag === "Empty"
                      ? json(response.status, { error: tagOf(respondable), reason: reasonOf(respondable) })
                      : response
                  ))
            }
            return Effect.as(logFailure(cause), internalError)
          })
        )
        if (logRequests) yield* logRequest(request, response, started)
        return response
      })
    },
    { global: true }
  )

/** Where Server.ts mounts the RPC endpoint over HTTP, and over WebSocket. */
const RPC_PATH = "/rpc"
export const RPC_WS_PATH = "/rpc/ws"

/** A plain request to the WebSocket endpoint (the platform's upgrade failed on it, a 500). */
const upgradeRequired = () =>
  HttpServerResponse.unsafeJson({
    error: "UpgradeRequired",
    reason: `${RPC_WS_PATH} is the RPC endpoint over WebSocket: connect with a WebSocket client, or POST ndjson to ${RPC_PATH}`
  }, { status: 426, headers: { upgrade: "websocket", connection: "Upgrade" } })

/**
 * The largest RPC body over HTTP, in bytes: far above any request (a strategy, a batch of a few
 * hundred requests), far below what would strain the server, which reads a body whole.
 */
export const MAX_RPC_BODY_BYTES = 8 * 1024 * 1024

const bodyTooLarge = () => json(413, {
  error: "PayloadTooLarge",
  field: "body",
  reason: `is larger than ${MAX_RPC_BODY_BYTES} bytes: send fewer requests per body`,
  limitBytes: MAX_RPC_BODY_BYTES
})

/** Whether reading a body failed on `MaxBodySize` (the platform's stream reader says "maxBytes exceeded"). */
const exceeded = (error: unknown): boolean => {
  const cause = (error as { readonly cause?: unknown }).cause
  return cause instanceof Error && cause.message === "maxBytes exceeded"
}

/** The longest part of a parser's message a refusal quotes. */
const QUOTED = 200

/** Whether `id` is a request id as the protocol writes one: a string `BigInt` reads (@effect/rpc converts it so). */
const isRequestId = (id: unknown): boolean => {
  if (typeof id !== "string") return false
  try {
    BigInt(id)
    return true
  } catch {
    return false
  }
}

/**
 * Why an ndjson RPC body's envelope is bad, or undefined: a line that is not JSON, or the part
 * @effect/rpc takes on trust. Blank lines are skipped (RpcPayloads.ndjsonBody drops them too).
 */
const badEnvelope = (body: string, read?: Read): { readonly field: string; readonly reason: string } | undefined => {
  if (body.trim() === "") return { field: "body", reason: "is empty: send one JSON request per line" }
  const lines = body.split("\n")
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() === "") continue
    let message: unknown
    try {
      message = JSON.parse(lines[i]!)
    } catch (error) {
      // @effect/rpc's parser would throw at it: one `Defect` for the whole body, no line of it run.
      const why = error instanceof Error ? error.message : String(error)
      return { field: "body", reason: `line ${i + 1} is not JSON (${why.slice(0, QUOTED)}): each line of the body is one JSON message` }
    }
    if (typeof message !== "object" || message === null || (message as { _tag?: unknown })._tag !== "Request") continue
    // @effect/rpc converts every request id of the body to a bigint before any runs: one that is
    // none threw there, and the client got the conversion's SyntaxError and no answer at all.
    if (!isRequestId((message as { id?: unknown }).id)) {
      return { field: "id", reason: `line ${i + 1}: a request id must be a whole number, as a string ("1")` }
    }
    const headers = (message as { headers?: unknown }).headers
    const pairs = Array.isArray(headers) &&
      headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === "string" && typeof h[1] === "string")
    if (!pairs) return { field: "headers", reason: `line ${i + 1}: a request's headers must be an array of [name, value] string pairs` }
    const tag = (message as { tag?: unknown }).tag
    if (read !== undefined && typeof tag === "string" && read.procedures.length < 10) read.procedures.push(tag.slice(0, 100))
    if (read !== undefined && read.authorization === undefined) {
      read.authorization = (headers as ReadonlyArray<readonly [string, string]>).find(([name]) => name.toLowerCase() === "authorization")?.[1]
    }
  }
  return undefined
}

/**
 * What `badEnvelope` reads of a body's requests for its log line: the procedures they call, and the
 * first `authorization` header among them (an RPC client sends its key in each request, not as an
 * HTTP header), whose holder the line names — never the key itself.
 */
interface Read {
  readonly procedures: Array<string>
  authorization?: string | undefined
}

/** The procedures an RPC request over HTTP calls, read by `rpcEnvelope`, for its log line (`POST /rpc 200 runs.get`). */
const rpcProcedures = new WeakMap<object, ReadonlyArray<string>>()

/** The `authorization` header an RPC request over HTTP carries in its body (`Read`), for its log line's user. */
const rpcAuthorizations = new WeakMap<object, string>()

/**
 * @effect/rpc (0.76) reads a request's `headers` without decoding them: anything but an array of
 * pairs throws inside the server (a 500). Such a body is refused here, before it gets there; so is
 * one with a line that is not JSON, which @effect/rpc answers with a bare `SyntaxError` defect
 * and none of the body's requests. Either is a 400 naming the line, and no line of the body runs.
 * A body declared (`content-length`) over `MAX_RPC_BODY_BYTES` is a 413 (`PayloadTooLarge`),
 * unread; one sent without a length is read up to the limit and cut off there (the platform's
 * reader destroys the request, so that client sees its connection reset).
 */
const rpcEnvelope = (app: Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled>) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (pathOf(request) === RPC_WS_PATH && request.headers["upgrade"]?.toLowerCase() !== "websocket") return upgradeRequired()
    if (request.method !== "POST" || pathOf(request) !== RPC_PATH) return yield* app
    // A declared length over the limit is refused unread; a body without one is read up to it.
    const length = Number(request.headers["content-length"] ?? 0)
    if (length > MAX_RPC_BODY_BYTES) return bodyTooLarge()
    // Read once: the platform keeps the text (or the failure) for the RPC server.
    const read = yield* Effect.either(HttpIncomingMessage.withMaxBodySize(request.text, Option.some(MAX_RPC_BODY_BYTES)))
    if (Either.isLeft(read) && exceeded(read.left)) return bodyTooLarge()
    const body = Either.getRight(read)
    const seen: Read = { procedures: [] }
    const bad = body._tag === "Some" ? badEnvelope(body.value, seen) : undefined
    if (seen.procedures.length > 0) rpcProcedures.set(request, seen.procedures)
    if (seen.authorization !== undefined) rpcAuthorizations.set(request, seen.authorization)
    if (bad !== undefined) return json(400, { error: "InvalidRequest", field: bad.field, reason: bad.reason })
    return yield* app
  })

/**
 * The routes the edge has so far: `/health` and the SSE events of a run — over the context's run
 * status feed, or one of their own in this process, the same for both: `/health` says which the
 * streams use.
 */
export const routes = (options: Pick<Options, "sse" | "health"> = {}) =>
  Layer.mergeAll(Health.route(options.health), Sse.route(options.sse)).pipe(
    Layer.provide(Layer.unwrapEffect(Effect.map(
      Effect.serviceOption(RunStatusFeed.RunStatusFeed),
      Option.match({ onNone: () => RunStatusFeed.layer, onSome: (feed) => Layer.succeed(RunStatusFeed.RunStatusFeed, feed) })
    )))
  )

/** Serve `routes` (layers that add routes to `HttpLayerRouter.HttpRouter`) on the `HttpServer` provided. */
export const serve = <E, R>(routes: Layer.Layer<never, E, R>, options: Pick<Options, "logRequests" | "corsOrigins"> = {}) =>
  HttpLayerRouter.serve(Layer.mergeAll(routes, answerEverything(options.logRequests ?? true, options.corsOrigins ?? "*")), {
    disableLogger: true,
    disableListenLog: true
  })

/**
 * Node's HTTP server on `port` and `host`. On shutdown it stops accepting at once and gives the
 * requests in flight `shutdownGrace` to finish; then it closes every connection left — an SSE
 * stream never finishes by itself, and its client comes back with `Last-Event-ID` to another
 * server (without this, closing would wait for every dashboard to leave).
 */
export const listen = (options: Pick<Options, "port" | "host" | "shutdownGrace"> = {}) =>
  Layer.unwrapEffect(Effect.sync(() => {
    let server: Http.Server | undefined
    const grace = Duration.toMillis(options.shutdownGrace ?? DEFAULT_SHUTDOWN_GRACE)
    // Runs before the server's own release (which closes it and waits for its connections).
    const closeConnections = Layer.scopedDiscard(Effect.addFinalizer(() =>
      Effect.sync(() => {
        const s = server
        if (s === undefined) return
        s.closeIdleConnections()
        if (grace <= 0) s.closeAllConnections()
        else setTimeout(() => s.closeAllConnections(), grace).unref()
      })
    ))
    return closeConnections.pipe(Layer.provideMerge(NodeHttpServer.layer(() => (server = Http.createServer()), {
      port: options.port ?? DEFAULT_PORT,
      ...(options.host === undefined ? {} : { host: options.host })
    })))
  }))

/**
 * The edge's routes served on `port`: needs the services the routes use (`Authenticator`,
 * `EventBus`, the database) and gives the `HttpServer` (its `address` is the bound one).
 */
export const layer = (options: Options = {}) =>
  serve(routes(options), options).pipe(Layer.provideMerge(listen(options)))

/** `layer` with `PORT`, `HOST` and `SWARM_CORS_ORIGINS` from the configuration. */
export const layerConfig = (options: Omit<Options, "port" | "host" | "corsOrigins"> = {}) =>
  Layer.unwrapEffect(Effect.map(config, ({ corsOrigins, host, port }) =>
    layer({ ...options, port, corsOrigins, ...(host === undefined ? {} : { host }) })))

/** The bound address as a URL base (`http://127.0.0.1:7070`), for start-up lines and tests. */
export const baseUrl = Effect.map(HttpServer.HttpServer, (server) => {
  if (server.address._tag !== "TcpAddress") return `http+unix://${server.address.path}`
  const hostname = server.address.hostname
  // Every interface is reached from here through the loopback; an IPv6 address goes in brackets.
  const host = EVERY_INTERFACE.has(hostname) ? "127.0.0.1" : hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname
  return `http://${host}:${server.address.port}`
})
