/**
 * A slow RPC client over WebSocket holds the server for a bounded time. @effect/rpc (0.76) sends a
 * streamed answer's next chunk (`runs.events`, `runs.status`, `chat.send`) once the client
 * acknowledged the last (`Ack`), so what it buffers for a client is bounded — but it waits for
 * the `Ack` for ever: a client that stops reading held the request's fiber and its stream (a run's
 * follower, its subscription overflowed, never let go). `acked` ends a streamed answer whose chunk
 * has waited `Stall` (`WriteStall.WRITE_STALL`, 30 s) for its acknowledgement: the client is told
 * `Unavailable` and the request interrupted as the client would, its stream and subscription with
 * it. The connection stays (its other requests go on); what is queued on it meanwhile is a few
 * lines at most (the notice, keep-alives). A client that reads again asks again: `swarm runs
 * watch` follows the run again from the last event it saw (RemoteRuns.ts).
 *
 * Over HTTP (ndjson) the same client is not bounded yet: @effect/rpc's HTTP protocol queues a
 * connection's answers in a `Mailbox` with no capacity and no acknowledgements, so a streamed
 * answer is pulled as fast as it is produced whatever the client reads.
 */
import { RpcServer } from "@effect/rpc"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import { Context, Duration, Effect, Layer, Schedule, Schema } from "effect"
import { Unavailable } from "../../schemas/Rpc.js"
import * as WriteStall from "./WriteStall.js"

/** How long a streamed chunk's acknowledgement may wait for the client: `WriteStall.WRITE_STALL` unless a test gives another. */
export class Stall extends Context.Reference<Stall>()("swarm/edge/RpcBackpressure/Stall", {
  defaultValue: (): Duration.Duration => WriteStall.WRITE_STALL
}) {}

/** What a request cut off for a client that stopped reading is told. */
export const stalledReason = (stall: Duration.Duration, how: "connection" | "acknowledgement"): string =>
  how === "connection"
    ? `this client read nothing for ${Duration.format(stall)} while its connection was full, and is disconnected: ` +
      "ask again (a run's events: from the last event it got)"
    : `this client acknowledged nothing of this stream for ${Duration.format(stall)}, and the stream is ended: ` +
      "ask again (a run's events: from the last event it got)"

const encodeUnavailable = Schema.encodeSync(Unavailable)

/** The answer that ends request `requestId` with `Unavailable { reason }`. */
export const unavailableExit = (requestId: string, reason: string): FromServerEncoded => ({
  _tag: "Exit",
  requestId,
  exit: { _tag: "Failure", cause: { _tag: "Fail", error: encodeUnavailable(new Unavailable({ reason })) } }
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
            yield* inner.send(clientId, unavailableExit(requestId, stalledReason(stall, "acknowledgement")))
            // Interrupted as the client would: its stream and subscription go; its own answer is not sent.
            if (deliver !== undefined) yield* deliver(clientId, { _tag: "Interrupt", requestId })
          }
          if (requests.size === 0) waiting.delete(clientId)
        }
        for (const clientId of cut.keys()) if (!live.has(clientId)) cut.delete(clientId)
      })
      yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(Duration.millis(Math.max(1, stallMillis / 4)))))

      return RpcServer.Protocol.of({
        ...inner,
        run: (f) => {
          deliver = f
          return inner.run((clientId, message) => {
            if (message._tag === "Ack") waiting.get(clientId)?.delete(message.requestId)
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
