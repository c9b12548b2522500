/**
 * A keep-alive on the RPC endpoint's answers (HTTP and WebSocket): while a request of a connection is in flight, a
 * `Pong` line every `Interval`. A `runs.events` stream of a paused or quiet run (or a `chat.send`
 * whose model thinks) carries nothing for minutes; a client's HTTP stack then took it for a dead
 * server (Node's fetch gives up on a body silent for 300 s) and `swarm runs watch` said it had lost
 * a server that was up all along. @effect/rpc's clients skip a `Pong` they did not ask for (its
 * socket protocol answers pings with one), so the line keeps the answer alive and is seen by no
 * caller; the CLI in turn takes an answer silent for several intervals for a lost server
 * (src/cli/Silence.ts). The WebSocket endpoint has it too: @effect/rpc's clients ping there, but a
 * client written by hand may not, and a proxy cuts a WebSocket idle for 30 or 60 s.
 */
import { RpcServer } from "@effect/rpc"
import { constPong } from "@effect/rpc/RpcMessage"
import { Context, Duration, Effect, Layer } from "effect"

/** How often a connection with a request in flight hears from the server, at least. */
export const INTERVAL = Duration.seconds(15)

/** `INTERVAL` unless a test gives a shorter one. */
export class Interval extends Context.Reference<Interval>()("swarm/edge/RpcKeepAlive/Interval", {
  defaultValue: (): Duration.Duration => INTERVAL
}) {}

/**
 * `protocol`, each connection with a request in flight sent a `Pong` every `Interval` until it ends.
 * One beat for them all: a fiber (and a timer) per request cost the endpoint about a quarter of its
 * calls a second, every HTTP request being a connection of its own. At each beat, a connection with
 * a request in flight since the beat before hears a `Pong`; so a quiet answer hears one within two
 * intervals of its start, then every interval.
 */
export const keptAlive = <E, R>(protocol: Layer.Layer<RpcServer.Protocol, E, R>) =>
  Layer.scoped(
    RpcServer.Protocol,
    Effect.gen(function*() {
      const inner = yield* RpcServer.Protocol
      const interval = yield* Interval
      /** Connections with a request in flight, and whether a beat has passed since their first. */
      const inFlight = new Map<number, boolean>()
      const beat = Effect.gen(function*() {
        const live = yield* inner.clientIds
        for (const [clientId, seen] of inFlight) {
          // The connection's answer was closed (its requests answered, or its client gone).
          if (!live.has(clientId)) inFlight.delete(clientId)
          else if (!seen) inFlight.set(clientId, true)
          else yield* inner.send(clientId, constPong)
        }
      })
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(interval), beat)))
      return {
        ...inner,
        end: (clientId) => Effect.zipRight(Effect.sync(() => inFlight.delete(clientId)), inner.end(clientId)),
        run: (f) =>
          inner.run((clientId, message) => {
            if (message._tag === "Request" && !inFlight.has(clientId)) inFlight.set(clientId, false)
            return f(clientId, message)
          })
      } satisfies RpcServer.Protocol["Type"]
    })
  ).pipe(Layer.provide(protocol))
