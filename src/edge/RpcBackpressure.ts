/**
 * A slow RPC client over WebSocket holds the server for a bounded time. @effect/rpc (0.76) sends a
 * streamed answer's next chunk (`runs.events`, `runs.status`, `chat.send`) once the client
 * acknowledged the last (`Ack`), so what it buffers for a client is bounded — but it waits for
 * the `Ack` for ever: a client that stops reading held the request's fiber and its stream (a run's
 * follower, its subscription overflowed, never let go). `acked` ends a streamed answer whose chunk
 * has waited `Stall` (`WriteStall.WRITE_STALL`, 30 s) for its acknowledgement: the client is told
 * `Unavailable` and the request interrupted as the client would, its stream and subscription with
 * it. The connection stays (its other requests go on); what is queued on it meanwhile is a few
 * lines at most (the notice, keep-alives). A client that reads again asks again, as the notice
 * says for its stream (`resumeHint`): `swarm runs watch` follows the run again from the last event
 * it saw (RemoteRuns.ts), `swarm chat ask` reads on with `chat.follow` after the last chunk it had.
 *
 * Over HTTP (ndjson) there are no acknowledgements, and @effect/rpc's HTTP protocol queues a
 * connection's answers in a `Mailbox` with no capacity: a streamed answer was pulled as fast as it
 * was produced whatever the client read, the server buffering the rest of the run for it.
 * `layerProtocolHttpRouter` bounds it at the socket instead: an answer for a client whose socket
 * is full waits for it to drain, so what the server holds for it is what the socket holds and the
 * handler's own bound (a run's follower overflows: `Unavailable`, where it stopped, and its
 * subscription goes); and a write that waits `Stall` ends the response as SSE's are ended
 * (WriteStall.ts), its notice `Unavailable` for each request the client was not sent the end of.
 */
import { HttpBody, HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import { Context, Duration, Effect, identity, Layer, Mailbox, Option, Schedule, Schema } from "effect"
import type * as NodeHttp from "node:http"
import { Unavailable } from "../../schemas/Rpc.js"
import * as WriteStall from "./WriteStall.js"

/**
 * How long a stream may wait for its client — a chunk for its acknowledgement (WebSocket), a write
 * for the socket to drain (HTTP): `WriteStall.WRITE_STALL` unless a test gives another.
 */
export class Stall extends Context.Reference<Stall>()("swarm/edge/RpcBackpressure/Stall", {
  defaultValue: (): Duration.Duration => WriteStall.WRITE_STALL
}) {}

/**
 * How a client whose request of `procedure` was cut off gets back what it had not read: each stream
 * resumes its own way — a run's events from the last event it got (`since`), a chat's answer with
 * `chat.follow` after the last chunk it got (`after`: `chat.send` too, whose answer goes on and is
 * recorded; docs/rpc.md "Chat, followed and resumed") — and anything else is asked again.
 */
export const resumeHint = (procedure: string | undefined): string => {
  switch (procedure) {
    case "runs.events":
      return "ask again from the last event it got (runs.events with since)"
    case "chat.send":
    case "chat.follow":
      return "read on with chat.follow after the last chunk it got (after: its <question>.<index>); chat.history has every answer"
    default:
      return "ask again"
  }
}

/** What a request of `procedure` (its tag: `runs.events`, `chat.follow`, …) cut off for a client that stopped reading is told. */
export const stalledReason = (stall: Duration.Duration, how: "connection" | "acknowledgement", procedure?: string): string =>
  how === "connection"
    ? `this client read nothing for ${Duration.format(stall)} while its connection was full, and is disconnected: ${resumeHint(procedure)}`
    : `this client acknowledged nothing of this stream for ${Duration.format(stall)}, and the stream is ended: ${resumeHint(procedure)}`

const encodeUnavailable = Schema.encodeSync(Unavailable)

/** The answer that ends request `requestId`, whose client fell behind, with `Unavailable { reason, behind }`. */
export const unavailableExit = (requestId: string, reason: string): FromServerEncoded => ({
  _tag: "Exit",
  requestId,
  exit: { _tag: "Failure", cause: { _tag: "Fail", error: encodeUnavailable(new Unavailable({ reason, behind: true })) } }
})

// ---------------------------------------------------------------------------------------------
// WebSocket

/**
 * `protocol` (one whose clients acknowledge each chunk: `supportsAck`), a streamed answer whose
 * chunk has waited `Stall` for its acknowledgement ended as the module's comment says.
 */
export const acked = <E, R>(protocol: Layer.Layer<RpcServer.Protocol, E, R>) =>
  Layer.scoped(
    RpcServer.Protocol,
    Effect.gen(function*() {
      const inner = yield* RpcServer.Protocol
      const stall = yield* Stall
      const stallMillis = Duration.toMillis(stall)
      if (!inner.supportsAck || !Number.isFinite(stallMillis)) return inner
      /** By connection, by request: when its last chunk went out unacknowledged. */
      const waiting = new Map<number, Map<string, number>>()
      /** By connection: requests cut off, whose answers are no longer sent. */
      const cut = new Map<number, Set<string>>()
      /** By connection, by request not yet answered whole: its procedure, whose way back its notice says. */
      const procedures = new Map<number, Map<string, string>>()
      let deliver: ((clientId: number, message: FromClientEncoded) => Effect.Effect<void>) | undefined

      const sweep = Effect.gen(function*() {
        const live = yield* inner.clientIds
        const now = performance.now()
        for (const [clientId, requests] of waiting) {
          if (!live.has(clientId)) {
            waiting.delete(clientId)
            cut.delete(clientId)
            continue
          }
          for (const [requestId, since] of requests) {
            if (now - since < stallMillis) continue
            requests.delete(requestId)
            let gone = cut.get(clientId)
            if (gone === undefined) cut.set(clientId, (gone = new Set()))
            gone.add(requestId)
            yield* Effect.logInfo("RPC: a stream's chunk waited too long for the client's acknowledgement; the stream is ended").pipe(
              Effect.annotateLogs({ clientId, requestId, stalledMillis: Math.round(now - since) })
            )
            yield* inner.send(clientId, unavailableExit(requestId, stalledReason(stall, "acknowledgement", procedures.get(clientId)?.get(requestId))))
            procedures.get(clientId)?.delete(requestId)
            // Interrupted as the client would: its stream and subscription go; its own answer is not sent.
            if (deliver !== undefined) yield* deliver(clientId, { _tag: "Interrupt", requestId })
          }
          if (requests.size === 0) waiting.delete(clientId)
        }
        for (const clientId of cut.keys()) if (!live.has(clientId)) cut.delete(clientId)
        for (const clientId of procedures.keys()) if (!live.has(clientId)) procedures.delete(clientId)
      })
      yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(Duration.millis(Math.max(1, stallMillis / 4)))))

      return RpcServer.Protocol.of({
        ...inner,
        run: (f) => {
          deliver = f
          return inner.run((clientId, message) => {
            if (message._tag === "Ack") waiting.get(clientId)?.delete(message.requestId)
            else if (message._tag === "Request") {
              let requests = procedures.get(clientId)
              if (requests === undefined) procedures.set(clientId, (requests = new Map()))
              requests.set(String(message.id), message.tag)
            }
            return f(clientId, message)
          })
        },
        send: (clientId, response, transferables) =>
          Effect.suspend(() => {
            if (response._tag === "Chunk" || response._tag === "Exit") {
              const gone = cut.get(clientId)
              if (gone?.has(response.requestId)) {
                if (response._tag === "Exit") gone.delete(response.requestId)
                return Effect.void
              }
              if (response._tag === "Exit") {
                waiting.get(clientId)?.delete(response.requestId)
                procedures.get(clientId)?.delete(response.requestId)
              } else {
                let requests = waiting.get(clientId)
                if (requests === undefined) waiting.set(clientId, (requests = new Map()))
                requests.set(response.requestId, performance.now())
              }
            }
            return inner.send(clientId, response, transferables)
          })
      })
    })
  ).pipe(Layer.provide(protocol))

// ---------------------------------------------------------------------------------------------
// HTTP (ndjson)

/** One HTTP request to the endpoint, which @effect/rpc makes a client (a connection) of its own. */
interface Connection {
  /** Node's response, whose socket its answers wait for (none on another platform: they do not wait). */
  readonly res: NodeHttp.ServerResponse | undefined
  /** @effect/rpc's id for it, known from its first message. */
  clientId: number | undefined
  /** Its requests whose end (`Exit`) it has not been sent, the ones a notice ends, with their procedures (what the notice says, `resumeHint`). */
  readonly open: Map<string, string>
  /** Cut off for a stalled write: what the server still says is not sent. */
  cut: boolean
  /** Opened when its socket drains (or closes). */
  readonly drained: Effect.Latch
}

/** The request being read, for the protocol's `run`, which the endpoint calls in the request's own fiber. */
class CurrentConnection extends Context.Tag("swarm/edge/RpcBackpressure/CurrentConnection")<CurrentConnection, Connection>() {}

/**
 * Until `connection`'s socket has room (drained, or closed). One listener per connection, not one
 * per waiting answer: the requests of one body all wait on the same socket.
 */
const room = (connection: Connection): Effect.Effect<void> =>
  Effect.suspend(() => {
    const res = connection.res
    if (res === undefined || !res.writableNeedDrain || res.destroyed) return Effect.void
    connection.drained.unsafeClose()
    return connection.drained.await
  })

/**
 * The RPC endpoint over HTTP at `path` (`RpcServer.layerProtocolHttpRouter`'s protocol and route),
 * a client that stops reading bounded as the module's comment says. A request's chunks and end
 * wait for its socket to drain before they are handed to @effect/rpc's queue, so the queue holds
 * at most one message per request in flight (and the keep-alive's `Pong`s, which wait for nothing:
 * one beat serves every connection). The response is `WriteStall.bounded` by `Stall`: once a write
 * has waited that long, each request of the connection not yet sent its end is told `Unavailable`
 * (queued behind what the client has not read) and interrupted as the client would, its stream and
 * subscription with it, and the connection destroyed `WriteStall.STALL_GRACE` later.
 */
export const layerProtocolHttpRouter = <R = never>(options: {
  readonly path: HttpLayerRouter.PathInput
  /** A way to answer a request whole before the protocol sees it (RpcFastPath.ts), or none: undefined from it, the regular way. */
  readonly single?: Effect.Effect<
    (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse | undefined>,
    never,
    R
  >
}) =>
  Layer.scoped(
    RpcServer.Protocol,
    Effect.gen(function*() {
      const router = yield* HttpLayerRouter.HttpRouter
      const stall = yield* Stall
      const single = options.single === undefined ? undefined : yield* options.single
      const parser = (yield* RpcSerialization.RpcSerialization).unsafeMake()
      const { httpApp, protocol: inner } = yield* RpcServer.makeProtocolWithHttpApp
      const connections = new Map<number, Connection>()
      // The endpoint's disconnections, and the connections cut off here.
      const disconnects = yield* Mailbox.make<number>()
      yield* inner.disconnects.take.pipe(
        Effect.flatMap((clientId) => disconnects.offer(clientId)),
        Effect.forever,
        Effect.ignore,
        Effect.ensuring(disconnects.end),
        Effect.forkScoped
      )
      const encoder = new TextEncoder()
      const encode = (message: FromServerEncoded): Uint8Array => {
        const encoded = parser.encode(message)
        return typeof encoded === "string" ? encoder.encode(encoded) : encoded ?? new Uint8Array(0)
      }

      /** A write of `connection` waited `Stall`: its notice, its requests interrupted. */
      const stalled = (connection: Connection, stalledMillis: number) =>
        Effect.gen(function*() {
          connection.cut = true
          // Its answers end here, whatever its requests do now (what was queued is not written: the
          // notice says where the client is), and with them the response once the client reads.
          if (connection.clientId !== undefined) yield* inner.end(connection.clientId)
          const requests = [...connection.open]
          connection.open.clear()
          yield* Effect.logInfo("RPC over HTTP: a write waited too long for the client to read; the connection is ended").pipe(
            Effect.annotateLogs({ clientId: connection.clientId, requests: requests.length, stalledMillis })
          )
          if (requests.length === 0) return undefined
          // Its requests interrupted as for a client gone: @effect/rpc takes no `Interrupt` from an
          // HTTP client once its body is read (its `Eof`), only its disconnection.
          if (connection.clientId !== undefined) yield* disconnects.offer(connection.clientId)
          const lines = requests.map(([requestId, procedure]) => encode(unavailableExit(requestId, stalledReason(stall, "connection", procedure))))
          const notice = new Uint8Array(lines.reduce((n, line) => n + line.length, 0))
          lines.reduce((offset, line) => (notice.set(line, offset), offset + line.length), 0)
          return notice
        })

      const app = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (single !== undefined) {
          const whole = yield* single(request)
          if (whole !== undefined) return whole
        }
        const res = WriteStall.nodeResponse(request)
        const drained = Effect.unsafeMakeLatch(true)
        const connection: Connection = { res, clientId: undefined, open: new Map(), cut: false, drained }
        if (res !== undefined) {
          res.on("drain", () => drained.unsafeOpen())
          res.once("close", () => drained.unsafeOpen())
        }
        yield* Effect.addFinalizer(() => Effect.sync(() => connection.clientId !== undefined && connections.delete(connection.clientId)))
        const response = yield* Effect.provideService(httpApp, CurrentConnection, connection)
        if (response.body._tag !== "Stream") return response
        return HttpServerResponse.setBody(
          response,
          HttpBody.stream(
            // Every message of the body was read by now, so the connection has its id: `stalled` can end its answers.
            WriteStall.bounded(res, stall, response.body.stream, {
              bytes: identity,
              stalled: (millis) => stalled(connection, millis),
              endsItems: connection.clientId !== undefined
            }),
            response.body.contentType
          )
        )
      })
      yield* router.add("POST", options.path, app)

      return RpcServer.Protocol.of({
        ...inner,
        disconnects,
        run: (f) =>
          inner.run((clientId, message) =>
            Effect.flatMap(Effect.serviceOption(CurrentConnection), (found) => {
              if (Option.isSome(found)) {
                const connection = found.value
                if (connection.clientId === undefined) {
                  connection.clientId = clientId
                  connections.set(clientId, connection)
                }
                if (message._tag === "Request") connection.open.set(String(message.id), message.tag)
              }
              return f(clientId, message)
            })
          ),
        send: (clientId, response, transferables) =>
          Effect.suspend(() => {
            const connection = connections.get(clientId)
            if (connection === undefined || (response._tag !== "Chunk" && response._tag !== "Exit")) {
              return inner.send(clientId, response, transferables)
            }
            // Cut off: the notice ended its requests, and what is not written is not (WriteStall.bounded).
            if (connection.cut) return Effect.void
            return Effect.zipRight(
              room(connection),
              Effect.suspend(() => {
                if (connection.cut) return Effect.void
                if (response._tag === "Exit") connection.open.delete(response.requestId)
                return inner.send(clientId, response, transferables)
              })
            )
          })
      })
    })
  )
