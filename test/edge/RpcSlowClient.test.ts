/**
 * A client of the RPC endpoint that stops reading a streamed answer (`runs.events` of a live run)
 * while the run goes on, over the whole server on a real port and on every back-end. Over
 * WebSocket: the stream whose chunk waits the stall bound for its acknowledgement ends
 * `Unavailable`, its subscription goes, and the connection goes on. Over HTTP (ndjson): the server
 * holds a bounded amount for it (its subscription overflows rather than the server queueing the
 * run), the run and another reader go on, and once a write has waited the stall bound it is told
 * `Unavailable` and disconnected.
 */
import { createRequire } from "node:module"
import * as Net from "node:net"
import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Fiber, Layer, Stream } from "effect"
import { EventBus } from "../../src/bus/EventBus.js"
import type { InProcessBusService } from "../../src/bus/InProcessBus.js"
import * as Http from "../../src/edge/Http.js"
import * as RpcBackpressure from "../../src/edge/RpcBackpressure.js"
import * as Server from "../../src/edge/Server.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import type * as Database from "../../src/store/Database.js"
import * as Users from "../../src/store/Users.js"
import * as WriteStall from "../../src/edge/WriteStall.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { eventually, rpcClient, simulatedRun } from "./fixtures.js"

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

interface Drained {
  readonly closed: boolean
  readonly lines: ReadonlyArray<Record<string, unknown>>
  readonly ended: boolean
}

/** The `runs.events` request `id` for `run`, as an ndjson line. */
/** A WebSocket connection to the RPC endpoint with `key`, open, and every message line it gets, parsed, in order; closed with the scope. */
const openSocket = (base: string, key: string) =>
  Effect.gen(function*() {
    const lines: Array<Record<string, unknown>> = []
    const socket = new WebSocket(`${base.replace(/^http/, "ws")}${Http.RPC_WS_PATH}`, { headers: { authorization: `Bearer ${key}` } })
    yield* Effect.addFinalizer(() => Effect.sync(() => socket.terminate()))
    socket.on("message", (data) => {
      for (const line of String(data).split("\n")) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>)
    })
    yield* Effect.async<void>((resume) => socket.on("open", () => resume(Effect.void)))
    return { lines, socket }
  })

const eventsRequest = (id: string, run: string) =>
  `${JSON.stringify({ _tag: "Request", id, tag: "runs.events", payload: { run, since: 0 }, headers: [] })}\n`

/** The `chat.follow` request `id` for `run` after `after`, as an ndjson line. */
const chatFollowRequest = (id: string, run: string, after: string) =>
  `${JSON.stringify({ _tag: "Request", id, tag: "chat.follow", payload: { run, after }, headers: [] })}\n`

/** What a stream of a run's events, and a chat's, cut off for a slow client says of the way back. */
const eventsWayBack = /ask again from the last event it got \(runs\.events with since\)$/
const chatWayBack = /read on with chat\.follow after the last chunk it got \(after: its <question>\.<index>\); chat\.history has every answer$/

/**
 * An HTTP client of `POST /rpc` on a raw socket that reads until its first chunk, then stops reading
 * (it keeps the connection open); `drain` reads again, to the connection's close: the lines it got,
 * and whether the response ended (its last chunk, the empty one, came) rather than being cut off.
 */
const stalledPost = (base: string, key: string, body: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly socket: Net.Socket; readonly drain: () => Promise<Drained> }>((resume) => {
      const target = new URL(`${base}/rpc`)
      const socket = Net.connect({ host: target.hostname, port: Number(target.port) })
      const chunks: Array<Buffer> = []
      let closed = false
      let paused = false
      // The response is chunked: each piece the server writes is a chunk of its own, whole ndjson lines.
      const lines = () =>
        Buffer.concat(chunks).toString("utf8").split(/\r?\n/).filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>)
      const drain = () =>
        new Promise<Drained>((done) => {
          const finish = () => done({ closed, lines: lines(), ended: Buffer.concat(chunks).toString("latin1").endsWith("\r\n0\r\n\r\n") })
          if (closed) return finish()
          socket.once("close", finish)
          socket.resume()
        })
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk)
        if (!paused && Buffer.concat(chunks).toString("latin1").includes(`"_tag":"Chunk"`)) {
          paused = true
          socket.pause()
          resume(Effect.succeed({ socket, drain }))
        }
      })
      socket.on("error", () => {})
      socket.on("close", () => (closed = true))
      socket.write(
        `POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nAuthorization: Bearer ${key}\r\n` +
          `Content-Type: application/ndjson\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
      )
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

describe("what a stream cut off for a slow client is told", () => {
  it("each stream's own way back: a run's events from their last event, a chat's answer with chat.follow, anything else asked again", () => {
    const stall = Duration.seconds(30)
    for (const how of ["connection", "acknowledgement"] as const) {
      expect(RpcBackpressure.stalledReason(stall, how, "runs.events")).toMatch(eventsWayBack)
      for (const chat of ["chat.follow", "chat.send"]) {
        const reason = RpcBackpressure.stalledReason(stall, how, chat)
        expect(reason).toMatch(chatWayBack)
        expect(reason).not.toContain("event")
      }
      for (const other of ["runs.status", "runs.get", undefined]) expect(RpcBackpressure.stalledReason(stall, how, other)).toMatch(/30s.*: ask again$/)
    }
    expect(RpcBackpressure.stalledReason(stall, "connection", "chat.follow")).toBe(
      "this client read nothing for 30s while its connection was full, and is disconnected: " +
        "read on with chat.follow after the last chunk it got (after: its <question>.<index>); chat.history has every answer"
    )
  })
})

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
        const { lines, socket } = yield* openSocket(base, owner.key)
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
          exit: { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "Unavailable", behind: true, reason: expect.stringMatching(eventsWayBack) } } }
        }])
        expect(yield* eventually(() => bus.subscribers(run.id) === 0)).toBe(true)

        // The connection goes on: another request on it is answered.
        socket.send(eventsRequest("2", run.id))
        expect(yield* eventually(() => lines.some((l) => l._tag === "Chunk" && l.requestId === "2"))).toBe(true)
      }), { timeout: 180_000 })

    it.scoped("over WebSocket, a chat stream cut off so is told to read on with chat.follow after its last chunk, not from a run's event", () =>
      Effect.gen(function*() {
        const stall = 1_500
        const { base, bus } = yield* serve(`${stall} millis`)
        const owner = yield* user
        const run = yield* simulatedRun(bus, owner.id)
        const { lines, socket } = yield* openSocket(base, owner.key)
        // A position this server does not hold: its first chunk (`Missed`) at once, never acknowledged.
        socket.send(chatFollowRequest("1", run.id, "1.0"))
        expect(yield* eventually(() => lines.some((l) => l._tag === "Chunk"))).toBe(true)
        expect(yield* eventually(() => lines.some((l) => l._tag === "Exit"), 1_000)).toBe(true)
        const [exit] = lines.filter((l) => l._tag === "Exit")
        expect(exit).toMatchObject({
          requestId: "1",
          exit: { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "Unavailable", behind: true, reason: expect.stringMatching(chatWayBack) } } }
        })
        expect(JSON.stringify(exit)).not.toContain("event")
      }), { timeout: 180_000 })

    it.scoped("over HTTP, the server holds a bounded amount for a client that stops reading while the run goes on", () =>
      Effect.gen(function*() {
        // Longer than the test: only the socket's backpressure can bound what the server holds.
        const { base, bus } = yield* serve("10 minutes")
        const owner = yield* user
        const run = yield* simulatedRun(bus, owner.id, { pad: 1_000 })
        run.publish(1, 1)
        yield* run.commit(1)
        const stalled = yield* stalledPost(base, owner.key, eventsRequest("1", run.id))
        expect(yield* eventually(() => bus.subscribers(run.id) === 1)).toBe(true)

        // About 45 MB of events in bursts of 1,000, as a busy run publishes them.
        const total = 40_000
        const before = process.memoryUsage().arrayBuffers
        let most = 0
        for (let seq = 2; seq <= total; seq += 1_000) {
          run.publish(seq, Math.min(total, seq + 999))
          yield* Effect.sleep("10 millis")
          most = Math.max(most, process.memoryUsage().arrayBuffers - before)
        }
        // Its subscription overflowed (it fell more than its buffer behind the run) and went: the
        // server did not pull the run into a queue of its own for it.
        expect(yield* eventually(() => bus.subscribers(run.id) === 0)).toBe(true)
        // What it encoded for it meanwhile (its answers, as bytes) is a fraction of the run.
        expect(most).toBeLessThan(20_000_000)
        // Reading again, it gets what was on its way, then why its stream ended and where to resume.
        const rest = yield* Effect.promise(() => stalled.drain())
        expect(rest.closed).toBe(true)
        expect(rest.lines.filter((line) => line._tag === "Exit")).toMatchObject([{
          requestId: "1",
          exit: { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "Unavailable", behind: true, reason: expect.stringContaining("fell behind the run") } } }
        }])
      }), { timeout: 180_000 })

    it.scoped("over HTTP, a client that keeps up gets every event of a run and its end, under a short stall bound", () =>
      Effect.gen(function*() {
        const { base, bus } = yield* serve("3 seconds")
        const owner = yield* user
        const run = yield* simulatedRun(bus, owner.id, { pad: 200 })
        run.publish(1, 1)
        yield* run.commit(1)
        // Fewer events than a subscription holds: only a stall could end its stream early.
        const total = 3_000
        const reader = yield* rpcClient(base, owner.key)
        const read = yield* Effect.fork(Stream.runCollect(reader("runs.events", { run: run.id, since: 0 })))
        expect(yield* eventually(() => bus.subscribers(run.id) === 1)).toBe(true)
        for (let seq = 2; seq <= total; seq += 100) {
          run.publish(seq, Math.min(total, seq + 99))
          yield* Effect.sleep("50 millis")
        }
        yield* run.finish
        const events = [...yield* Fiber.join(read)]
        expect(events.map((event) => event.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1))
      }), { timeout: 180_000 })

    it.scoped("over HTTP, a client whose write waits the stall bound is told Unavailable and disconnected, its subscription gone", () =>
      Effect.gen(function*() {
        const stall = 1_500
        const { base, bus } = yield* serve(`${stall} millis`)
        const owner = yield* user
        // Large events, and fewer than a subscription holds: only the stalled write can end the stream.
        const run = yield* simulatedRun(bus, owner.id, { pad: 16_000 })
        run.publish(1, 1)
        yield* run.commit(1)
        // With a chat stream in the same body, which the notice ends too, saying its own way back.
        const stalled = yield* stalledPost(base, owner.key, eventsRequest("1", run.id) + chatFollowRequest("2", run.id, "1.0"))
        expect(yield* eventually(() => bus.subscribers(run.id) === 1)).toBe(true)
        // About 6 MB: more than the socket's buffers take.
        run.publish(2, 400)
        const published = performance.now()

        // Cut off within the bound: its stream and subscription go.
        expect(yield* eventually(() => bus.subscribers(run.id) === 0, 1_000)).toBe(true)
        expect(performance.now() - published).toBeLessThan(stall * 1.25 + 1_000)
        // Reading again within the notice's grace, it gets what was on its way, then the notice, and the connection ends.
        const rest = yield* Effect.promise(() => stalled.drain())
        expect(rest.closed).toBe(true)
        const exits = rest.lines.filter((line) => line._tag === "Exit")
        const unavailable = (wayBack: RegExp) => ({
          _tag: "Failure",
          cause: { _tag: "Fail", error: { _tag: "Unavailable", behind: true, reason: expect.stringMatching(wayBack) } }
        })
        expect([...exits].sort((a, b) => String(a.requestId).localeCompare(String(b.requestId)))).toMatchObject([
          { requestId: "1", exit: unavailable(new RegExp(`disconnected: ${eventsWayBack.source}`)) },
          { requestId: "2", exit: unavailable(new RegExp(`disconnected: ${chatWayBack.source}`)) }
        ])
        expect(rest.lines.slice(-2)).toEqual(exits)
        expect(rest.lines.some((line) => line._tag === "Chunk")).toBe(true)
        // Its answers ended with the notice: the response ended whole (its last, empty chunk), not destroyed after the grace.
        expect(rest.ended).toBe(true)
        expect(Duration.toMillis(WriteStall.STALL_GRACE)).toBeGreaterThan(0)
      }), { timeout: 180_000 })
  })
}
