/**
 * `swarm runs watch` against a real server (Server.layer on a free port, over a database that
 * outlives it): it follows a run through the server stopping and starting again, from the last
 * event it saw — no gap, no duplicate — and gives up, saying how to go on, when the server stays
 * away; it says what no event says (paused, stopped) in its frame, and a paper run's approvals
 * expire when the server says, in wall-clock time. And a server that dies mid-answer is said to
 * have broken the connection, not to be something other than a Swarm server.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Chunk, Duration, Effect, Exit, Fiber, Layer, Option, Schema, Scope, Stream } from "effect"
import * as http from "node:http"
import { createRequire } from "node:module"
import type * as net from "node:net"
import { Strategy } from "../../schemas/Strategy.js"
import * as Io from "../../src/cli/Io.js"
import * as Remote from "../../src/cli/Remote.js"
import * as RemoteRuns from "../../src/cli/RemoteRuns.js"
import { bootstrap } from "../../src/edge/Bootstrap.js"
import * as Http from "../../src/edge/Http.js"
import * as RpcKeepAlive from "../../src/edge/RpcKeepAlive.js"
import { RunManager } from "../../src/edge/RunManager.js"
import * as Server from "../../src/edge/Server.js"
import type * as Database from "../../src/store/Database.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { symbolsOf } from "../store/fixtures/workload.js"

/** `ws` ships no types here; only this much of it is used. */
interface WebSocketLike {
  on(event: "open", f: () => void): void
  on(event: "message", f: (data: Buffer) => void): void
  send(data: string): void
  terminate(): void
}
const WebSocket = createRequire(import.meta.url)("ws") as new(url: string, options: { readonly headers: Record<string, string> }) => WebSocketLike

/** Poll `done` every 20 ms for at most `seconds`. */
const waitFor = (done: () => boolean, seconds = 30) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds * 50 && !done(); i++) yield* Effect.sleep("20 millis")
    return done()
  })

const target = (server: string, key: string) => ({ server, serverFrom: "--server", key, keyFrom: "--key" })

/** A terminal `columns` × `rows` that keeps what was drawn on it. */
const fakeScreen = (columns: number, rows: number) => {
  let written = ""
  const screen = { columns, rows, write: (text: string) => ((written += text), true) } as unknown as NodeJS.WriteStream
  /** The last frame drawn: what follows the last "clear below". */
  const last = () => (written.split("\u001b[J").at(-1) ?? "").replace("\u001b[?25h", "")
  /** Every frame drawn, in order. */
  const frames = () => written.split("\u001b[J").slice(1).map((frame) => frame.replace("\u001b[?25h", ""))
  return { screen, last, frames }
}

for (const backend of backends) {
  // One database for this back-end's tests (an embedded one takes 10–30 s to start): each test
  // starts servers of its own over it, and a strategy and a run of its own in it, under the admin
  // the first test to run bootstraps. (Server.layer resumes and takes over nothing by itself: the
  // run the first test leaves unfinished stays as it is.)
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`runs watch against a server (${backend.name})`, (it) => {
    /** The database, as a layer that does not own it: each server over it leaves it open. */
    const shared = Effect.map(Effect.context<Database.Database>(), (context) => Layer.succeedContext(context))
    let adminKey: string | undefined
    /** The admin's key: bootstrapped once, on the empty database, by the first test that runs. */
    const admin = Effect.gen(function*() {
      if (adminKey !== undefined) return adminKey
      const made = yield* bootstrap()
      if (!made.created) return yield* Effect.dieMessage("the first start made no admin")
      return (adminKey = made.key)
    })

    it.scoped("follows a run through the server stopping and starting again, and gives up when it stays away", () =>
      Effect.gen(function*() {
        // The database outlives each server over it, as a real one does a restart.
        const store = yield* shared
        const up = (port: number) =>
          Effect.gen(function*() {
            const scope = yield* Scope.make()
            const context = yield* Layer.buildWithScope(Server.layer(store, { port, logRequests: false }), scope)
            return { scope, context, base: yield* Effect.provide(Http.baseUrl, context) }
          })
        const first = yield* up(0)
        const key = yield* admin
        const port = Number(new URL(first.base).port)

        const remote = yield* Remote.connect(target(first.base, key))
        yield* remote.client.strategies.create({
          strategy: Schema.decodeUnknownSync(Strategy)({
            name: "restarted",
            symbols: symbolsOf(1),
            initialCash: "250000",
            agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }]
          })
        })
        // Daily bars, ten a second: the run goes on long after each restart.
        const run = yield* remote.client.runs.start({ strategy: "restarted", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 864_000 })

        const captured = Io.capture()
        const seqs = () => captured.stdout().split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as { seq: number }).seq)
        const watching = yield* RemoteRuns.watch(captured.io, remote, run.id, { since: 0, keep: 5, json: true, giveUpAfter: Duration.seconds(4) }).pipe(
          Effect.exit,
          Effect.fork
        )
        expect(yield* waitFor(() => seqs().length >= 5)).toBe(true)

        yield* Scope.close(first.scope, Exit.void)
        expect(yield* waitFor(() => captured.stderr().includes("reconnecting"))).toBe(true)
        const lostAt = seqs().at(-1)!
        expect(captured.stderr()).toContain(
          `lost ${first.base} (the server stopped before it answered: retry once it is back); reconnecting from event #${lostAt}…`
        )

        const second = yield* up(port)
        yield* Effect.provide(Effect.flatMap(RunManager, (manager) => manager.resumeUnfinished()), second.context)
        expect(yield* waitFor(() => seqs().length >= lostAt + 5)).toBe(true)
        expect(captured.stderr()).toContain(`back on ${first.base}: following run ${run.id} again from event #${lostAt + 1}`)

        // Away for good: it gives up, saying how to go on from the last event it saw.
        yield* Scope.close(second.scope, Exit.void)
        const exit = yield* Fiber.join(watching)
        const last = seqs().at(-1)!
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isSuccess(exit)) return
        expect(JSON.stringify(exit.cause)).toMatch(new RegExp(`lost ${first.base} for \\d+s[^"]*: swarm runs watch ${run.id} --since ${last} goes on`))
        // Every event once, in order, none missed across the restart.
        expect(seqs()).toEqual(Array.from({ length: last }, (_, i) => i + 1))
      }), { timeout: 180_000 })

    it.scoped("a paused run's quiet stream is kept alive: no 'lost' while the server is up, however long the run says nothing", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        // A keep-alive every 100 ms, and a client that takes 600 ms of silence for a lost server:
        // the 15 s and 60 s of a real one, shrunk.
        const context = yield* Layer.buildWithScope(
          Server.layer(yield* shared, { port: 0, logRequests: false }).pipe(Layer.provide(Layer.succeed(RpcKeepAlive.Interval, Duration.millis(100)))),
          scope
        )
        const key = yield* admin
        const remote = yield* Remote.connect(target(yield* Effect.provide(Http.baseUrl, context), key), { silenceLimit: Duration.millis(600) })
        yield* remote.client.strategies.create({
          strategy: Schema.decodeUnknownSync(Strategy)({ name: "quiet", symbols: symbolsOf(1), agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }] })
        })
        const run = yield* remote.client.runs.start({ strategy: "quiet", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 864_000 })
        yield* remote.client.runs.pause({ run: run.id })

        const captured = Io.capture()
        const watching = yield* RemoteRuns.watch(captured.io, remote, run.id, { since: 0, keep: 5, json: true }).pipe(Effect.exit, Effect.fork)
        // A raw WebSocket client that never pings (as one written in Python or Go may not) hears the
        // keep-alive too: before, a quiet stream over WebSocket carried nothing, and proxies that cut
        // idle connections after 30 or 60 s cut it.
        const heard: Array<string> = []
        const socket = new WebSocket(`${(yield* Effect.provide(Http.baseUrl, context)).replace(/^http/, "ws")}${Http.RPC_WS_PATH}`, {
          headers: { authorization: `Bearer ${key}` }
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => socket.terminate()))
        socket.on("message", (data) => heard.push(String(data)))
        socket.on("open", () => socket.send(JSON.stringify({ _tag: "Request", id: "1", tag: "runs.events", payload: { run: run.id, since: 0 }, headers: [] })))
        // Paused, the run says nothing: several silence limits go by.
        yield* Effect.sleep("3 seconds")
        expect(captured.stderr()).not.toContain("lost")
        expect(heard.join("").split("\n").filter((line) => line.includes(`"_tag":"Pong"`)).length, heard.join("").slice(0, 2_000)).toBeGreaterThan(2)
        yield* remote.client.runs.stop({ run: run.id })
        expect(Exit.isSuccess(yield* Fiber.join(watching))).toBe(true)
        expect(captured.stderr()).not.toContain("lost")
      }), { timeout: 180_000 })

    it.scoped("a paused run watched from its last event so far is followed, not said to have nothing after it", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const context = yield* Layer.buildWithScope(Server.layer(yield* shared, { port: 0, logRequests: false }), scope)
        const remote = yield* Remote.connect(target(yield* Effect.provide(Http.baseUrl, context), yield* admin))
        yield* remote.client.strategies.create({
          strategy: Schema.decodeUnknownSync(Strategy)({ name: "watched so far", symbols: symbolsOf(1), agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }] })
        })
        const run = yield* remote.client.runs.start({ strategy: "watched so far", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 864_000 })
        let soFar = 0
        for (let i = 0; i < 500 && soFar === 0; i++) {
          soFar = (yield* remote.client.runs.get({ run: run.id })).events ?? 0
          if (soFar === 0) yield* Effect.sleep("20 millis")
        }
        yield* remote.client.runs.pause({ run: run.id })
        // Paused: its events so far stand still (a batch under way may land first).
        let since = -1
        while (since !== soFar) {
          since = soFar
          yield* Effect.sleep("300 millis")
          soFar = (yield* remote.client.runs.get({ run: run.id })).events!
        }
        const captured = Io.capture()
        const seqs = () => captured.stdout().split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as { seq: number }).seq)
        const watching = yield* RemoteRuns.watch(captured.io, remote, run.id, { since, keep: 5, json: true }).pipe(Effect.exit, Effect.fork)
        // Before, the count so far was taken for the run's last event: "no events after #…", and the watch ended.
        yield* Effect.sleep("500 millis")
        expect(captured.stderr()).not.toContain("no events after")
        expect(Option.isNone(yield* Fiber.poll(watching))).toBe(true)
        yield* remote.client.runs.resume({ run: run.id })
        expect(yield* waitFor(() => seqs().length >= 3)).toBe(true)
        expect(seqs().slice(0, 3)).toEqual([since + 1, since + 2, since + 3])
        yield* remote.client.runs.stop({ run: run.id })
        expect(Exit.isSuccess(yield* Fiber.join(watching))).toBe(true)
      }), { timeout: 180_000 })

    it.scoped("a run that ended says so from its first frame, while its events replay from the first", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const context = yield* Layer.buildWithScope(Server.layer(yield* shared, { port: 0, logRequests: false }), scope)
        const key = yield* admin
        const remote = yield* Remote.connect(target(yield* Effect.provide(Http.baseUrl, context), key))
        yield* remote.client.strategies.create({
          strategy: Schema.decodeUnknownSync(Strategy)({ name: "ended", symbols: symbolsOf(2), agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }] })
        })
        const completed = yield* remote.client.runs.start({ strategy: "ended", mode: "backtest", data: { _tag: "synthetic", bars: 300 } })
        const stopped = yield* remote.client.runs.start({ strategy: "ended", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 864_000 })
        // Twenty of its events, read as they come (runs.get counts a run's events only once it has
        // ended, so polling it for them waited out the whole loop, a minute and more, every time).
        const first = yield* remote.client.runs.events({ run: stopped.id }).pipe(Stream.take(20), Stream.runCollect, Effect.timeout("30 seconds"))
        expect(Chunk.size(first)).toBe(20)
        yield* remote.client.runs.stop({ run: stopped.id })
        for (let i = 0; i < 1_500 && (yield* remote.client.runs.get({ run: completed.id })).status !== "completed"; i++) yield* Effect.sleep("20 millis")

        for (const [run, mode, status] of [[completed.id, "backtest", "completed"], [stopped.id, "paper", "stopped"]] as const) {
          const { screen, frames } = fakeScreen(100, 40)
          const exit = yield* RemoteRuns.watch({ ...Io.capture().io, screen }, remote, run, { since: 0, keep: 5, json: false }).pipe(Effect.exit)
          expect(Exit.isSuccess(exit)).toBe(true)
          // Every frame, the first (drawn before any event came) too: never "starting" or "running".
          const heads = frames().map((frame) => frame.split("\n")[0])
          expect(heads.length).toBeGreaterThan(1)
          for (const head of heads) expect(head).toMatch(new RegExp(`^run ${run} \\(${mode}\\) {2}${status} {2}event #\\d+`))
        }
      }), { timeout: 180_000 })

    it.scoped("its frame says a paper run's approvals expire when the server says, that the run is paused, and how it was stopped", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const context = yield* Layer.buildWithScope(Server.layer(yield* shared, { port: 0, logRequests: false }), scope)
        const key = yield* admin
        const remote = yield* Remote.connect(target(yield* Effect.provide(Http.baseUrl, context), key))
        // Every order that opens a position is above 5% of equity: each waits for an operator, for an hour.
        yield* remote.client.strategies.create({
          strategy: Schema.decodeUnknownSync(Strategy)({
            name: "guarded",
            symbols: symbolsOf(1),
            agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }],
            sizing: { mode: "percent_of_equity", value: 10 },
            risk: { approval: { notionalPctAbove: 5, policy: "pause", timeoutSeconds: 3_600 } }
          })
        })
        const run = yield* remote.client.runs.start({ strategy: "guarded", mode: "paper", data: { _tag: "synthetic", bars: 5_000 }, speed: 8_640_000 })
        const { last, screen } = fakeScreen(100, 40)
        const io = { ...Io.capture().io, screen }
        const watching = yield* RemoteRuns.watch(io, remote, run.id, { since: 0, keep: 5, json: false }).pipe(Effect.exit, Effect.fork)

        const [pending] = yield* Effect.gen(function*() {
          for (let i = 0; i < 1_500; i++) {
            const found = yield* remote.client.approvals.pending({ run: run.id })
            if (found.length > 0) return found
            yield* Effect.sleep("20 millis")
          }
          return []
        })
        if (pending === undefined) return expect.fail("no approval was asked")
        const wall = `expires ${new Date(pending.expiresAt).toISOString().slice(0, 19).replace("T", " ")}Z`
        expect(yield* waitFor(() => last().includes(wall), 10)).toBe(true)
        expect(last()).toContain(`  ${pending.round}  `)

        yield* remote.client.runs.pause({ run: run.id })
        // Who paused it and when, from the run's control log.
        expect(yield* waitFor(() => /^run \S+ \(paper\) {2}paused by \S+ at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ {2}/.test(last()), 10)).toBe(true)

        yield* remote.client.runs.stop({ run: run.id })
        const exit = yield* Fiber.join(watching)
        expect(Exit.isSuccess(exit)).toBe(true)
        const final = last()
        expect(final).toMatch(/^run \S+ \(paper\) {2}stopped {2}event #\d+/)
        expect(final).toContain("approvals: none pending (1 cancelled: the run was stopped before anyone answered)")
        expect(final).not.toContain(pending.round)
      }), { timeout: 180_000 })

    it.scoped("piped, it says a pause and a resume made elsewhere as they happen (the server tells them), by whom and when", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const context = yield* Layer.buildWithScope(Server.layer(yield* shared, { port: 0, logRequests: false }), scope)
        const key = yield* admin
        const remote = yield* Remote.connect(target(yield* Effect.provide(Http.baseUrl, context), key))
        yield* remote.client.strategies.create({
          strategy: Schema.decodeUnknownSync(Strategy)({
            name: "watched pauses",
            symbols: symbolsOf(1),
            agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }],
            sizing: { mode: "percent_of_equity", value: 10 }
          })
        })
        const run = yield* remote.client.runs.start({ strategy: "watched pauses", mode: "paper", data: { _tag: "synthetic", bars: 100_000 }, speed: 86_400 })
        const captured = Io.capture()
        const watching = yield* RemoteRuns.watch(captured.io, remote, run.id, { since: 0, keep: 5, json: false }).pipe(Effect.exit, Effect.fork)
        const lines = () => captured.stdout().split("\n")
        expect(yield* waitFor(() => lines().some((l) => l.startsWith(`watching run ${run.id}`)), 10)).toBe(true)
        yield* Effect.sleep("300 millis")
        // Not read every few seconds: told by the server as it happens (the status poll is 3 s apart).
        yield* remote.client.runs.pause({ run: run.id })
        const paused = new RegExp(`^run ${run.id} paused by \\S+ at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ after event #\\d+`)
        expect(yield* waitFor(() => lines().some((l) => paused.test(l)), 1.5), captured.stdout()).toBe(true)
        yield* remote.client.runs.resume({ run: run.id })
        const resumed = new RegExp(`^run ${run.id} resumed by \\S+ at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`)
        expect(yield* waitFor(() => lines().some((l) => resumed.test(l)), 1.5), captured.stdout()).toBe(true)
        // The server's stream of it (runs.status): now, then each change, ending with how the run ended.
        const statuses = yield* remote.client.runs.status({ run: run.id }).pipe(Stream.runCollect, Effect.fork)
        yield* Effect.sleep("300 millis")
        yield* remote.client.runs.stop({ run: run.id })
        expect(Exit.isSuccess(yield* Fiber.join(watching))).toBe(true)
        const told = Chunk.toReadonlyArray(yield* Fiber.join(statuses).pipe(Effect.timeout("10 seconds")))
        expect(told.map((n) => n.status)).toEqual(["running", "stopped"])
        expect(told[0]).toMatchObject({ by: { name: "admin" } })
        // Each said once.
        expect(lines().filter((l) => paused.test(l) || resumed.test(l))).toHaveLength(2)
      }), { timeout: 60_000 })
  })
}

describe("a server that dies mid-answer", () => {
  it.scopedLive("is said to have broken the connection mid-answer, not to be something other than a Swarm server", () =>
    Effect.gen(function*() {
      const server = http.createServer((_, res) => {
        res.writeHead(200, { "content-type": "application/ndjson" })
        res.write("{\"_tag\":\"Chu")
        setTimeout(() => res.socket?.destroy(), 50)
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => server.close())
      )
      const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
      const remote = yield* Remote.connect(target(base, "sk_test"))
      const error = yield* Effect.flip(remote.client.runs.get({ run: "run_1" }).pipe(remote.call("run")))
      expect(error.reason).toMatch(new RegExp(`^the connection to ${base} broke mid-answer`))
      expect(error.reason).not.toContain("HTTP 200")
    }))

  it.scopedLive("that stops talking mid-stream is lost once its answer brings nothing for the silence limit, said in words", () =>
    Effect.gen(function*() {
      // Answers, then says nothing more: a frozen server, or one whose machine went away.
      const server = http.createServer((_, res) => {
        res.writeHead(200, { "content-type": "application/ndjson" })
        res.flushHeaders()
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => server.closeAllConnections()).pipe(Effect.zipRight(Effect.sync(() => server.close())))
      )
      const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
      const remote = yield* Remote.connect(target(base, "sk_test"), { silenceLimit: Duration.millis(300) })
      const error = yield* Effect.flip(Stream.runDrain(remote.client.runs.events({ run: "run_1" }).pipe(remote.follow("run"))))
      expect(error.reason).toBe(`the connection to ${base} broke mid-answer (it sent nothing for too long)`)
    }))
})

