/**
 * The command line as an RPC client of a Swarm server: `--server` / `--key` on every command that
 * talks to one, a client of the contract in schemas/Rpc.ts over HTTP (ndjson, so event streams
 * arrive as they happen) with the key on every request, and every way a call can go wrong turned
 * into one `swarm: <field>: <reason>` line — a refusal the input can fix is a `UsageError` (exit
 * 2), a server that cannot be reached or cannot serve is `RemoteFailed` (exit 1). Never a stack.
 */
import { Options } from "@effect/cli"
import { FetchHttpClient, HttpClient } from "@effect/platform"
import { type Rpc, RpcClient, RpcSchema, RpcSerialization } from "@effect/rpc"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { Cause, Duration, Effect, Layer, Option, ParseResult, type Scope, SchemaAST as AST, Stream } from "effect"
import type { Forbidden, Unauthorized } from "../../schemas/Auth.js"
import type { SuggestionNotFound } from "../../schemas/Chat.js"
import type { IllegalTransition } from "../../schemas/Risk.js"
import {
  type ApprovalNotFound,
  type Conflict,
  type InvalidRequest,
  type RiskOfficerDown,
  type RunNotFound,
  type RunUnreadable,
  type StrategyNotFound,
  SwarmRpcs,
  type Unavailable
} from "../../schemas/Rpc.js"
import { clientKey } from "../edge/RpcAuth.js"
import { invalidPayload } from "../edge/RpcPayloads.js"
import { RemoteFailed, UsageError } from "./CliError.js"
import * as RemoteConfig from "./RemoteConfig.js"
import { shown } from "./RunRef.js"
import * as Silence from "./Silence.js"
import type { Wiring } from "./Wiring.js"

/** How long a request (not a stream) may go unanswered: a server that hangs is reported, not waited on forever. */
export const REQUEST_TIMEOUT = Duration.seconds(60)

/**
 * How long a request that reads a whole run may go unanswered (`runs.verify` hashes each of its
 * events, `runs.compare` reads both runs' decisions, `runs.report` and `chat.suggestions` its equity
 * and trades): minutes on a run of years of bars — an audit of 385,319 events took 268 s on Postgres,
 * where `REQUEST_TIMEOUT` gave up on a server that was working. A server that froze meanwhile is
 * still found out within `Silence.LIMIT`: it keeps a request in flight alive (src/edge/RpcKeepAlive.ts).
 */
export const LONG_REQUEST_TIMEOUT = Duration.minutes(30)

// ---------------------------------------------------------------------------------------------
// Flags

export const options = {
  server: Options.text("server").pipe(
    Options.withPseudoName("url"),
    Options.optional,
    Options.withDescription("The Swarm server (http://host:port). Default: SWARM_SERVER, else the server `swarm login` saved.")
  ),
  key: Options.text("key").pipe(
    Options.withPseudoName("key"),
    Options.optional,
    Options.withDescription("The API key (sk_…). Default: SWARM_API_KEY, else the key `swarm login` saved for that server.")
  )
}

export interface Flags {
  readonly server: Option.Option<string>
  readonly key: Option.Option<string>
}

const flagsOf = (flags: Flags): RemoteConfig.Sources["flags"] => ({
  server: Option.getOrUndefined(flags.server),
  key: Option.getOrUndefined(flags.key)
})

/** The server these flags, the environment or the config file name, if any does. */
export const target = (flags: Flags, wiring: Wiring): Effect.Effect<Option.Option<RemoteConfig.Target>, UsageError> =>
  RemoteConfig.target(flagsOf(flags), wiring.environment)

/** For commands that need a server: none configured is bad input, saying how to give one. */
export const requireTarget = (flags: Flags, wiring: Wiring): Effect.Effect<RemoteConfig.Target, UsageError> =>
  Effect.flatMap(target(flags, wiring), Option.match({
    onNone: () =>
      Effect.fail(
        new UsageError({
          field: "--server",
          reason: "no server: give --server <url> (and --key), set SWARM_SERVER and SWARM_API_KEY, or run swarm login --server <url> --key <key>"
        })
      ),
    onSome: Effect.succeed
  }))

// ---------------------------------------------------------------------------------------------
// Errors

/** Every failure a call can have: the procedures' typed errors, the middleware's, the transport's. */
export type ServerError =
  | StrategyNotFound
  | RunNotFound
  | RunUnreadable
  | ApprovalNotFound
  | SuggestionNotFound
  | InvalidRequest
  | Conflict
  | IllegalTransition
  | RiskOfficerDown
  | Unavailable
  | Unauthorized
  | Forbidden
  | RpcClientError

const NETWORK: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "no such host",
  EAI_AGAIN: "the host name cannot be resolved right now",
  ETIMEDOUT: "the connection timed out",
  ECONNRESET: "the connection was reset",
  EHOSTUNREACH: "the host is unreachable",
  ENETUNREACH: "the network is unreachable",
  EPIPE: "the connection was closed",
  UND_ERR_SOCKET: "the connection was closed",
  UND_ERR_CONNECT_TIMEOUT: "the connection timed out",
  UND_ERR_HEADERS_TIMEOUT: "it did not begin to answer in time",
  UND_ERR_BODY_TIMEOUT: "it sent nothing for too long",
  UND_ERR_CLOSED: "the connection was closed",
  UND_ERR_ABORTED: "the request was aborted",
  UND_ERR_HEADERS_OVERFLOW: "its answer's headers were too large",
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: "its answer was not as long as it said",
  UND_ERR_RES_EXCEEDED_MAX_SIZE: "its answer was too large",
  ECONNABORTED: "the connection was aborted",
  ENETDOWN: "the network is down",
  CERT_HAS_EXPIRED: "its TLS certificate has expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "its TLS certificate is self-signed",
  ERR_TLS_CERT_ALTNAME_INVALID: "its TLS certificate is for another host"
}

/** Down the chain of causes (fetch wraps the socket's error twice), the first system error code. */
const codeOf = (error: unknown, depth = 0): string | undefined => {
  if (depth > 8 || error === null || typeof error !== "object") return undefined
  const e = error as { code?: unknown; cause?: unknown; errors?: unknown }
  if (typeof e.code === "string" && e.code !== "") return e.code
  // localhost resolves to both 127.0.0.1 and ::1: Node reports both refusals as one AggregateError.
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const code = codeOf(inner, depth + 1)
      if (code !== undefined) return code
    }
  }
  return codeOf(e.cause, depth + 1)
}

/** The HTTP answer a failure came with, if any: its status, and whether its body broke while it was read. */
const responseOf = (error: unknown, depth = 0): { readonly status: number; readonly broken: boolean; readonly cause: unknown } | undefined => {
  if (depth > 4 || error === null || typeof error !== "object") return undefined
  const e = error as { _tag?: unknown; reason?: unknown; response?: { status?: unknown }; cause?: unknown }
  if (e._tag === "ResponseError" && typeof e.response?.status === "number") return { status: e.response.status, broken: e.reason === "Decode", cause: e.cause }
  return responseOf(e.cause, depth + 1)
}

/** The deepest message of a chain of causes, for what no code names. */
const messageOf = (error: unknown, depth = 0): string => {
  if (depth > 8 || error === null || typeof error !== "object") return String(error)
  const e = error as { message?: unknown; cause?: unknown }
  if (e.cause !== undefined && e.cause !== null && typeof e.cause === "object") return messageOf(e.cause, depth + 1)
  return typeof e.message === "string" ? e.message : String(error)
}

/** What a transport failure says to a person: the server could not be reached, or answered no Swarm answer. */
export const transportReason = (server: string, error: unknown): string => {
  const response = responseOf(error)
  // A refused status never gets to its body (`filterStatusOk`): a 2xx whose body failed is an
  // answer cut off — the server went away (crashed) or the connection broke while it streamed.
  if (response !== undefined && response.broken && response.status >= 200 && response.status < 300) {
    const code = codeOf(response.cause)
    return `the connection to ${server} broke mid-answer${code === undefined ? "" : ` (${NETWORK[code] ?? code.toLowerCase().replace(/_/g, " ")})`}`
  }
  if (response !== undefined) {
    return `${server} answered HTTP ${response.status} at /rpc: is it a Swarm server (the URL without /rpc)?`
  }
  const code = codeOf(error)
  if (code !== undefined) return `cannot reach ${server}: ${NETWORK[code] ?? code.toLowerCase().replace(/_/g, " ")}`
  return `cannot reach ${server}: ${messageOf(error).split("\n")[0]}`
}

/** Who a refusal of the key concerns: where the key came from, so the line says what to fix. */
const keyField = (target: RemoteConfig.Target) => target.keyFrom ?? "--key"

/**
 * One failure of a call as the line it prints. `subject` names what was asked about (a run, a
 * strategy) for the refusals that carry only a reason.
 */
export const translate = (target: RemoteConfig.Target, subject: string) => (error: ServerError): UsageError | RemoteFailed => {
  const on = target.server
  switch (error._tag) {
    case "StrategyNotFound":
      return error.deleted !== undefined
        ? new UsageError({
          field: "strategy",
          reason: `strategy ${shown(error.deleted.name)} (${error.strategy}) on ${on} was deleted: no suggestion can be applied to it ` +
            `(put the rule in another strategy with swarm rules put)`
        })
        : error.version === undefined
        ? new UsageError({ field: "strategy", reason: `no strategy ${shown(error.strategy)} on ${on} (swarm strategies list shows yours)` })
        : new UsageError({
          field: "--strategy-version",
          reason: `strategy ${shown(error.strategy)} on ${on} has no version ${error.version}: its versions are 1 to ${error.latestVersion}`
        })
    case "RunNotFound":
      return new UsageError({
        field: "run",
        reason: error.ambiguous === undefined
          ? `no run ${shown(error.run)} on ${on} (swarm runs list shows yours)`
          : `${shown(error.run)} names ${error.ambiguous.length} runs on ${on} (${error.ambiguous.join(", ")}): give the run's id`
      })
    case "RunUnreadable":
      // Asking again does not help (exit 1, not 3): its record reads again, or `runs stop` ends it.
      return new RemoteFailed({ field: "run", reason: `run ${shown(error.run)} on ${on}: ${error.reason} (swarm runs stop ${error.run} ends it)` })
    case "ApprovalNotFound":
      return new UsageError({
        field: "approval",
        reason: `no pending approval for round ${shown(error.round)} of run ${shown(error.run)} on ${on} (swarm approvals list shows them)`
      })
    case "SuggestionNotFound":
      return new UsageError({
        field: "suggestion",
        reason: `no suggestion ${shown(error.suggestion)} for run ${shown(error.run)} on ${on}: ${error.reason}`
      })
    case "InvalidRequest":
      // A server that names no such procedure is older than this command (as `defectLine` says
      // for servers that answer it with a defect).
      return error.field === "tag"
        ? new RemoteFailed({ field: "server", reason: `${on} does not serve this command (${error.reason}): it is older than this command` })
        : new UsageError({ field: error.field, reason: error.reason })
    case "Conflict":
      return new UsageError({ field: subject, reason: error.reason })
    case "IllegalTransition":
      // The trading state machine's word (`runs trading`): nothing to retry.
      return new UsageError({ field: subject, reason: error.message })
    case "RiskOfficerDown":
      // Fail closed: nothing moved; once the officer is back it can.
      return new RemoteFailed({ field: subject, reason: `run ${shown(error.run)} on ${on}: ${error.reason}`, unavailable: true })
    case "Unauthorized":
      return new UsageError({ field: keyField(target), reason: `${on} refused the API key: ${error.reason}` })
    case "Forbidden":
      return new UsageError({ field: keyField(target), reason: `not allowed on ${on}: ${error.reason}` })
    case "Unavailable":
      // A stream the server cut off because this client read it too slowly: the server is up.
      return new RemoteFailed({
        field: "server",
        reason: error.behind === true
          ? `${on} cut off this ${subject}'s stream: this client read it more slowly than it came (${error.reason})`
          : `${on} cannot do it now: ${error.reason}`,
        unavailable: true
      })
    case "RpcClientError":
      // Unreachable, or the connection broke: maybe not so later. Another server's answer (not
      // Swarm's /rpc) is no outage.
      return new RemoteFailed({
        field: "server",
        reason: transportReason(on, error.cause ?? error),
        unavailable: responseOf(error.cause ?? error)?.broken !== false
      })
  }
}

/**
 * Every procedure's payload schema, known by its annotations object (one per schema, shared by
 * the type side `typeAST` rebuilds each time a request is made): a payload is checked by its type
 * side as the request is made (`make`), then encoded by the whole before it is sent. Procedures
 * without a payload (`Void`, a constant shared with other schemas) are left out.
 */
const payloadAnnotations: ReadonlySet<unknown> = new Set<unknown>(
  Array.from((SwarmRpcs.requests as unknown as ReadonlyMap<string, Rpc.AnyWithProps>).values(), (rpc) => rpc.payloadSchema.ast)
    .filter((ast) => ast._tag !== "VoidKeyword")
    .flatMap((ast) => [ast.annotations, AST.typeAST(ast).annotations])
)

/**
 * A request this client could not make or encode, so never sent: @effect/rpc reports it as a
 * defect (the schema's whole tree), which read as the server failing. It is the input's fault, named as the
 * server would name it (`invalidPayload`: the payload's field and why), exit 2. Told apart from an
 * answer that does not decode by the schema that failed: one of the procedures' payloads.
 */
export const unsent = (defect: unknown): UsageError | undefined => {
  if (!ParseResult.isParseError(defect) || !("ast" in defect.issue) || !payloadAnnotations.has(defect.issue.ast.annotations)) return undefined
  const invalid = invalidPayload(defect)
  return new UsageError({ field: invalid.field, reason: invalid.reason })
}

/**
 * A defect from the other side as a line. A server older than this client answers a procedure it
 * does not serve (approvals, say) with one: that is said plainly, as a server too old. A request
 * that could not be encoded is no defect of the server's (`unsent`).
 */
const defectLine = (target: RemoteConfig.Target, defect: unknown): UsageError | RemoteFailed => {
  const refused = unsent(defect)
  if (refused !== undefined) return refused
  const text = defect instanceof Error ? defect.message : typeof defect === "string" ? defect : JSON.stringify(defect) ?? String(defect)
  const unknown = /^Unknown request tag: (.+)$/.exec(text)
  return new RemoteFailed({
    field: "server",
    reason: unknown !== null
      ? `${target.server} does not serve ${unknown[1]}: it is older than this command`
      : `${target.server} failed: ${text.split("\n")[0]}`
  })
}

/** How a server from before payload checks answered a procedure it does not serve: a defect saying so. */
const UNKNOWN_TAG = /^Unknown request tag: /

/**
 * A request of a procedure a server may be too old to serve, as an option: none when the server
 * does not know it — `InvalidRequest` on field `tag` (servers since they check payloads), or the
 * defect "Unknown request tag" (before) — for the command to fall back on what that server does
 * serve. Every other answer is the request's own.
 */
export const ifServed = <A, E, R>(request: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, E, R> =>
  request.pipe(
    Effect.map(Option.some),
    Effect.catchIf(
      (error) => typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "InvalidRequest" && (error as { field?: unknown }).field === "tag",
      () => Effect.succeedNone
    ),
    Effect.catchSomeDefect((defect) => {
      const text = defect instanceof Error ? defect.message : typeof defect === "string" ? defect : ""
      return UNKNOWN_TAG.test(text) ? Option.some(Effect.succeedNone) : Option.none()
    })
  )

// ---------------------------------------------------------------------------------------------
// The client

export interface Remote {
  readonly target: RemoteConfig.Target
  readonly client: RpcClient.FromGroup<typeof SwarmRpcs, RpcClientError>
  /**
   * A request's failures as lines; no answer within `REQUEST_TIMEOUT` is one too — within
   * `LONG_REQUEST_TIMEOUT` for a request that reads a whole run, `long` saying what it waits
   * for the server to do ("verify the run's audit chain"), for the line to say so.
   */
  readonly call: (subject: string, long?: string) => <A, E extends ServerError, R>(request: Effect.Effect<A, E, R>) => Effect.Effect<A, UsageError | RemoteFailed, R>
  /** A stream's failures as lines; it may last as long as the run it follows. */
  readonly follow: (subject: string) => <A, E extends ServerError, R>(stream: Stream.Stream<A, E, R>) => Stream.Stream<A, UsageError | RemoteFailed, R>
}

/**
 * `client` with its streaming procedures checking their payload when the stream runs, not when it
 * is asked for. @effect/rpc checks a stream's payload (`make`) as the procedure is called, throwing:
 * the throw escaped `follow`, which never got the stream, and the command printed "internal error"
 * (exit 1), where a unary call's is a defect `call` turns into the UsageError `unsent` names (exit 2).
 * Deferred, the throw is the stream's defect, and `follow` says it as `call` does.
 */
const lazyStreams = <C extends object>(client: C): C => {
  const procedures = client as unknown as Record<string, unknown>
  const copy: Record<string, unknown> = { ...procedures }
  for (const rpc of (SwarmRpcs.requests as unknown as ReadonlyMap<string, Rpc.AnyWithProps>).values()) {
    if (!RpcSchema.isStreamSchema(rpc.successSchema)) continue
    const dot = rpc._tag.indexOf(".")
    const prefix = dot === -1 ? undefined : rpc._tag.slice(0, dot)
    const name = dot === -1 ? rpc._tag : rpc._tag.slice(dot + 1)
    const target = prefix === undefined
      ? copy
      : (copy[prefix] = copy[prefix] === procedures[prefix] ? { ...(procedures[prefix] as Record<string, unknown>) } : copy[prefix]) as Record<string, unknown>
    const eager = target[name] as (payload: unknown, options?: { readonly asMailbox?: boolean }) => unknown
    target[name] = (payload: unknown, options?: { readonly asMailbox?: boolean }) =>
      options?.asMailbox === true
        ? Effect.suspend(() => eager(payload, options) as Effect.Effect<unknown>)
        : Stream.suspend(() => eager(payload, options) as Stream.Stream<unknown>)
  }
  return copy as unknown as C
}

/** How the client waits on a server. */
export interface ConnectOptions {
  /** How long an answer (a stream's above all) may bring nothing before the server counts as lost. Default `Silence.LIMIT`. */
  readonly silenceLimit?: Duration.Duration
  /** How long a request may go unanswered. Default `REQUEST_TIMEOUT`. */
  readonly requestTimeout?: Duration.Duration
  /** How long a request that reads a whole run may go unanswered. Default `LONG_REQUEST_TIMEOUT`. */
  readonly longRequestTimeout?: Duration.Duration
}

/**
 * The protocol to `server`: HTTP POSTs to `/rpc`, ndjson, each request with `key`. An answer that
 * brings nothing for `silenceLimit` is cut off as a connection broken (src/cli/Silence.ts): the
 * server keeps a quiet one alive, so that is a server gone.
 */
export const protocol = (server: string, key: string, options: ConnectOptions = {}) =>
  RpcClient.layerProtocolHttp({ url: `${server}/rpc` }).pipe(
    // A proxy's or another program's error page is no ndjson: refused by its status, not mis-parsed.
    Layer.provide(Layer.effect(
      HttpClient.HttpClient,
      Effect.map(HttpClient.HttpClient, (client) =>
        client.pipe(
          HttpClient.filterStatusOk,
          HttpClient.transformResponse(Effect.provideService(FetchHttpClient.Fetch, Silence.fetchWith(options.silenceLimit ?? Silence.LIMIT)))
        ))
    )),
    Layer.provide(FetchHttpClient.layer),
    Layer.provide(RpcSerialization.layerNdjson),
    Layer.merge(clientKey(key))
  )

/** A client of `target` for as long as the scope lasts. A target without a key is bad input, saying how to give one. */
export const connect = (target: RemoteConfig.Target, options: ConnectOptions = {}): Effect.Effect<Remote, UsageError, Scope.Scope> =>
  Effect.gen(function*() {
    const key = target.key
    if (key === undefined) {
      return yield* new UsageError({
        field: "--key",
        reason: `no API key for ${target.server}: give --key, set SWARM_API_KEY, or run swarm login --server ${target.server} --key <key>`
      })
    }
    const client = lazyStreams(yield* RpcClient.make(SwarmRpcs).pipe(Effect.provide(protocol(target.server, key, options))))
    const call: Remote["call"] = (subject, long) => (request) => {
      const limit = long === undefined ? options.requestTimeout ?? REQUEST_TIMEOUT : options.longRequestTimeout ?? LONG_REQUEST_TIMEOUT
      return request.pipe(
        Effect.timeoutFail({
          duration: limit,
          onTimeout: () =>
            new RemoteFailed({
              field: "server",
              reason: `no answer from ${target.server} within ${Duration.format(limit)}${long === undefined ? "" : `, waiting for it to ${long}`}`,
              unavailable: true
            })
        }),
        Effect.mapError((error) => (error._tag === "RemoteFailed" ? error : translate(target, subject)(error as ServerError))),
        Effect.catchAllDefect((defect) => Effect.fail(defectLine(target, defect)))
      )
    }
    const follow: Remote["follow"] = (subject) => (stream) =>
      stream.pipe(
        Stream.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Stream.failCause(cause as Cause.Cause<never>)
            : Stream.fail(Option.match(Cause.failureOption(cause), {
              onSome: translate(target, subject),
              onNone: () => defectLine(target, Cause.squash(cause))
            }))
        )
      )
    return { target, client, call, follow }
  })

/** Run `f` with a client of the server `flags` (or the environment, or the config file) name. */
export const withRemote = (flags: Flags, wiring: Wiring) =>
<A, E, R>(f: (remote: Remote) => Effect.Effect<A, E, R>): Effect.Effect<A, E | UsageError, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.flatMap(Effect.flatMap(requireTarget(flags, wiring), connect), f))
