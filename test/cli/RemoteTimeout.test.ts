/**
 * How long the CLI waits on a server's answer: a request that reads a whole run (an audit verify,
 * a compare of big runs) takes minutes on a run of years of bars, and must not be cut off at the
 * 60 s of an ordinary request while the server works on it — yet a server that never answers is
 * still reported, saying what was waited for. A stub server stands in for a slow one: it keeps the
 * answer alive as a Swarm server does (a `Pong` line now and then) and answers after `delay`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as http from "node:http"
import type * as net from "node:net"
import * as Remote from "../../src/cli/Remote.js"

const target = (server: string) => ({ server, serverFrom: "--server", key: "sk_test", keyFrom: "--key" })

/** A server that answers every request with `RunNotFound` after `delay` ms (never, if undefined), a `Pong` every 50 ms meanwhile. */
const slowServer = (delay: number | undefined) =>
  Effect.gen(function*() {
    const server = http.createServer((req, res) => {
      let body = ""
      req.on("data", (chunk: Buffer) => (body += chunk.toString()))
      req.on("end", () => {
        const request = JSON.parse(body.split("\n")[0]!) as { readonly id: string }
        res.writeHead(200, { "content-type": "application/ndjson" })
        res.write(`${JSON.stringify({ _tag: "Pong" })}\n`)
        const beat = setInterval(() => res.write(`${JSON.stringify({ _tag: "Pong" })}\n`), 50)
        res.on("close", () => clearInterval(beat))
        if (delay === undefined) return
        setTimeout(() => {
          clearInterval(beat)
          res.end(
            `${
              JSON.stringify({
                _tag: "Exit",
                requestId: request.id,
                exit: { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "RunNotFound", run: "run_1" } } }
              })
            }\n`
          )
        }, delay)
      })
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
      () => Effect.sync(() => server.closeAllConnections()).pipe(Effect.zipRight(Effect.sync(() => server.close())))
    )
    return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  })

/** 300 ms for an ordinary request, 3 s for one that reads a whole run: the 60 s and 30 min of the real ones, shrunk. */
const limits = { requestTimeout: Duration.millis(300), longRequestTimeout: Duration.seconds(3) }

describe("the CLI's wait on a server's answer", () => {
  it.scopedLive("an ordinary request unanswered within its limit is reported as no answer", () =>
    Effect.gen(function*() {
      const base = yield* slowServer(1_200)
      const remote = yield* Remote.connect(target(base), limits)
      const error = yield* Effect.flip(remote.client.runs.get({ run: "run_1" }).pipe(remote.call("run")))
      expect(error._tag).toBe("RemoteFailed")
      expect(error.reason).toBe(`no answer from ${base} within 300ms`)
    }))

  it.scopedLive("a request that reads a whole run waits past the ordinary limit for a server that is working, and gets its answer", () =>
    Effect.gen(function*() {
      const base = yield* slowServer(1_200)
      const remote = yield* Remote.connect(target(base), limits)
      const error = yield* Effect.flip(remote.client.runs.verify({ run: "run_1" }).pipe(remote.call("run", "verify the run's audit chain")))
      // The server's own answer (no such run), not a timeout.
      expect(error._tag).toBe("UsageError")
      expect(error.reason).toBe(`no run "run_1" on ${base} (swarm runs list shows yours)`)
    }))

  it.scopedLive("a request that reads a whole run is still given up on, saying what was waited for, when it never ends", () =>
    Effect.gen(function*() {
      const base = yield* slowServer(undefined)
      const remote = yield* Remote.connect(target(base), limits)
      const started = Date.now()
      const error = yield* Effect.flip(remote.client.runs.verify({ run: "run_1" }).pipe(remote.call("run", "verify the run's audit chain")))
      expect(error._tag).toBe("RemoteFailed")
      expect(error.reason).toBe(`no answer from ${base} within 3s, waiting for it to verify the run's audit chain`)
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_900)
    }), { timeout: 20_000 })
})
