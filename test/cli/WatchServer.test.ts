/**
 * `swarm runs watch` against a server: a server that dies mid-answer is said to have broken the
 * connection, not to be something other than a Swarm server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as http from "node:http"
import type * as net from "node:net"
import * as Remote from "../../src/cli/Remote.js"

const target = (server: string, key: string) => ({ server, serverFrom: "--server", key, keyFrom: "--key" })

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
})

