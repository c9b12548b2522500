/**
 * A client of the RPC endpoint over WebSocket that stops reading a streamed answer (`runs.events`
 * of a live run) while the run goes on, over the whole server on a real port and on every
 * back-end: the stream whose chunk waits the stall bound for its acknowledgement ends
 * `Unavailable`, its subscription goes, and the connection goes on.
 */
import { createRequire } from "node:module"
import { expect, layer } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Layer } from "effect"
import { EventBus } from "../../src/bus/EventBus.js"
import type { InProcessBusService } from "../../src/bus/InProcessBus.js"
import * as Http from "../../src/edge/Http.js"
import * as RpcBackpressure from "../../src/edge/RpcBackpressure.js"
import * as Server from "../../src/edge/Server.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import type * as Database from "../../src/store/Database.js"
import * as Users from "../../src/store/Users.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { eventually, simulatedRun } from "./fixtures.js"

/** `ws` ships no types here; only this much of it is used. */
interface WebSocketLike {
  on(event: "open", f: () => void): void
  on(event: "message", f: (data: Buffer) => void): void
  send(data: string): void
  terminate(): void
}
const WebSocket = createRequire(import.meta.url)("ws") as new(url: string, options: { readonly headers: Record<string, string> }) => WebSocketLike

/** The whole server on a free port over the test's database, with the in-process bus, its stall bound `stall`: its URL and its in-process bus. */
const serve = (stall: Duration.DurationInput) =>
  Effect.gen(function*() {
    const database = yield* Effect.context<Database.Database>()
    const built = yield* Layer.build(
      Server.layer(Layer.succeedContext(database), { port: 0, host: "127.0.0.1", logRequests: false, shutdownGrace: 0 }).pipe(
        Layer.provide(Layer.succeed(RpcBackpressure.Stall, Duration.decode(stall))),
        // The in-process bus (no REDIS_URL), whose subscribers the test counts; the database is the test's.
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))
      )
    )
    const bus = Context.get(built, EventBus) as InProcessBusService
    expect(typeof bus.subscribers).toBe("function")
    return { base: yield* Effect.provide(Http.baseUrl, built), bus }
  }).pipe(Effect.orDie)

let users = 0

/** A new user and an API key of theirs. */
const user = Effect.gen(function*() {
  const made = yield* Users.create(`slow-${++users}`, "user")
  const { key } = yield* ApiKeys.issue(made.id)
  return { id: made.id, key }
}).pipe(Effect.orDie)

/** The `runs.events` request `id` for `run`, as an ndjson line. */
const eventsRequest = (id: string, run: string) =>
  `${JSON.stringify({ _tag: "Request", id, tag: "runs.events", payload: { run, since: 0 }, headers: [] })}\n`

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`an RPC client that stops reading (${backend.name})`, (it) => {
    it.scoped("over WebSocket, a stream whose chunk waits the stall bound for its acknowledgement ends Unavailable; the connection goes on", () =>
      Effect.gen(function*() {
        const stall = 1_500
        const { base, bus } = yield* serve(`${stall} millis`)
        const owner = yield* user
        const run = yield* simulatedRun(bus, owner.id)
        run.publish(1, 1)
        yield* run.commit(1)
        const lines: Array<Record<string, unknown>> = []
        const socket = new WebSocket(`${base.replace(/^http/, "ws")}${Http.RPC_WS_PATH}`, { headers: { authorization: `Bearer ${owner.key}` } })
        yield* Effect.addFinalizer(() => Effect.sync(() => socket.terminate()))
        socket.on("message", (data) => {
          for (const line of String(data).split("\n")) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>)
        })
        yield* Effect.async<void>((resume) => socket.on("open", () => resume(Effect.void)))
        // Asks, reads its first chunk and never acknowledges it (as a client that stopped reading never does).
        socket.send(eventsRequest("1", run.id))
        expect(yield* eventually(() => lines.some((l) => l._tag === "Chunk"))).toBe(true)
        const asked = performance.now()
        run.publish(2, 100)

        // Ended within the bound, as Unavailable: the stream and its subscription go.
        expect(yield* eventually(() => lines.some((l) => l._tag === "Exit"), 1_000)).toBe(true)
        expect(performance.now() - asked).toBeLessThan(stall * 1.25 + 1_000)
        expect(lines.filter((l) => l._tag === "Exit")).toMatchObject([{
          requestId: "1",
          exit: { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "Unavailable" } } }
        }])
        expect(yield* eventually(() => bus.subscribers(run.id) === 0)).toBe(true)

        // The connection goes on: another request on it is answered.
        socket.send(eventsRequest("2", run.id))
        expect(yield* eventually(() => lines.some((l) => l._tag === "Chunk" && l.requestId === "2"))).toBe(true)
      }), { timeout: 180_000 })
  })
}
