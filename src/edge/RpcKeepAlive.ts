/**
 * A keep-alive on the RPC endpoint's HTTP answers: while a request of a connection is in flight, a
 * `Pong` line every `Interval`. A `runs.events` stream of a paused or quiet run (or a `chat.send`
 * whose model thinks) carries nothing for minutes; a client's HTTP stack then took it for a dead
 * server (Node's fetch gives up on a body silent for 300 s) and `swarm runs watch` said it had lost
 * a server that was up all along. @effect/rpc's clients skip a `Pong` they did not ask for (its
 * socket protocol answers pings with one), so the line keeps the answer alive and is seen by no
 * caller; the CLI in turn takes an answer silent for several intervals for a lost server
 * (src/cli/Silence.ts). The WebSocket endpoint needs none: its clients ping.
 */
import { RpcServer } from "@effect/rpc"
import { constPong } from "@effect/rpc/RpcMessage"
import { Context, Duration, Effect, Fiber, Layer } from "effect"

/** How often a connection with a request in flight hears from the server, at least. */
export const INTERVAL = Duration.seconds(15)

/** `INTERVAL` unless a test gives a shorter one. */
export class Interval extends Context.Reference<Interval>()("swarm/edge/RpcKeepAlive/Interval", {
  defaultValue: (): Duration.Duration => INTERVAL
}) {}

/** `protocol`, each connection with a request in flight sent a `Pong` every `Interval` until it ends. */
export const keptAlive = <E, R>(protocol: Layer.Layer<RpcServer.Protocol, E, R>) =>
  Layer.scoped(
    RpcServer.Protocol,
    Effect.gen(function*() {
      const inner = yield* RpcServer.Protocol
      const interval = yield* Interval
      const scope = yield* Effect.scope
      /** The keep-alive of each connection that has had a request, until the connection is gone. */
      const beating = new Map<number, Fiber.RuntimeFiber<void>>()
      const stop = (clientId: number) =>
        Effect.suspend(() => {
          const fiber = beating.get(clientId)
          if (fiber === undefined) return Effect.void
          beating.delete(clientId)
          return Fiber.interrupt(fiber)
        })
      const beat = (clientId: number) =>
        Effect.gen(function*() {
          while (true) {
            yield* Effect.sleep(interval)
            // The connection's answer was closed (its requests answered, or its client gone).
            if (!(yield* inner.clientIds).has(clientId)) break
            yield* inner.send(clientId, constPong)
          }
        }).pipe(Effect.ensuring(Effect.sync(() => beating.delete(clientId))))
      return {
        ...inner,
        end: (clientId) => Effect.zipRight(stop(clientId), inner.end(clientId)),
        run: (f) =>
          inner.run((clientId, message) =>
            message._tag !== "Request" || beating.has(clientId)
              ? f(clientId, message)
              : Effect.zipRight(
                Effect.tap(Effect.forkIn(beat(clientId), scope), (fiber) => Effect.sync(() => beating.set(clientId, fiber))),
                f(clientId, message)
              )
          )
      } satisfies RpcServer.Protocol["Type"]
    })
  ).pipe(Layer.provide(protocol))
