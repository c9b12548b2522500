/**
 * `GET /v1/runs/:id/chat` and a dashboard that stops reading its chat stream but keeps the
 * connection open, over a real server on a free port and on every back-end: once a write has
 * waited the stall bound, the client is disconnected and its watcher let go, while the answer and
 * another watcher go on. (The chat's answers themselves: Chat.test.ts.)
 */
import { HttpLayerRouter } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer } from "effect"
import { Feed, SystemAgent } from "../../agents/system/SystemAgent.js"
import type { ChatChunk, ChatPosition } from "../../schemas/Chat.js"
import type { RunId } from "../../schemas/Ids.js"
import { Authenticator } from "../../src/edge/Auth.js"
import * as ChatSse from "../../src/edge/ChatSse.js"
import * as WriteStall from "../../src/edge/WriteStall.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { bearer, connect, createUsers, eventually, rawClient, server, simulatedRun, stubAuthenticator } from "./fixtures.js"

/** The chat route over `feed` (the system agent's fan-out of chunks to watchers), the stall bound `stall`, and how many watchers it holds. */
const chatRoute = (
  deps: { readonly auth: Authenticator["Type"]; readonly sql: SqlClient.SqlClient },
  feed: Feed,
  stall: Duration.DurationInput,
  watching: { count: number }
) =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function*() {
      const agent = {
        follow: (run: RunId, after: ChatPosition | undefined) =>
          Effect.acquireRelease(Effect.sync(() => watching.count++), () => Effect.sync(() => watching.count--)).pipe(
            Effect.zipRight(feed.follow(run, after))
          )
      } as unknown as SystemAgent["Type"]
      yield* router.add("GET", ChatSse.path, ChatSse.handler({ ...deps, agent }, { heartbeat: "1 hour", stall }))
    })
  )

const chatUrl = (base: string, run: string) => `${base}/v1/runs/${encodeURIComponent(run)}/chat`

for (const backend of backends) {
  const environment = Layer.effectDiscard(Effect.orDie(createUsers)).pipe(
    Layer.provideMerge(backend.store),
    Layer.merge(stubAuthenticator)
  )

  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`SSE chat, a client that stops reading (${backend.name})`, (it) => {
    it.scoped("keeps its connection open: it is disconnected once a write has waited the stall bound, its watcher let go; the answer and another watcher go on", () =>
      Effect.gen(function*() {
        // Long enough that a reading client on a loaded machine is not taken for a stalled one (at
        // load 17, 1.5 s cut the reading watcher off too, at 4,001 of 10,000 chunks).
        const stall = 3_000
        // A buffer far larger than the answer: only the stalled write can let the watcher go.
        const feed = new Feed(1_000_000)
        const watching = { count: 0 }
        const srv = yield* server({ extra: chatRoute({ auth: yield* Authenticator, sql: yield* SqlClient.SqlClient }, feed, `${stall} millis`, watching) })
        const run = yield* simulatedRun(srv.bus, "alice")
        const token = (index: number): ChatChunk => ({ _tag: "Token", question: 1, index, text: `${index} ${"x".repeat(4_000)}` })
        feed.publish(run.id, { _tag: "Asked", question: 1, index: 0, run: run.id, content: "tell me everything" })

        const reading = yield* connect(chatUrl(srv.url, run.id), bearer("sk_alice"))
        expect((yield* Effect.promise(() => reading.reader.events((e) => e.id === "1.0"))).map((e) => e.event)).toEqual(["question"])
        // A raw socket: it reads up to the question, then stops reading and keeps the connection open.
        const stalled = yield* rawClient(chatUrl(srv.url, run.id), bearer("sk_alice"), "id: 1.0\n")
        expect(yield* eventually(() => watching.count === 2)).toBe(true)

        // An answer far longer than the socket's buffers hold (about 40 MB), while the other watcher reads.
        const total = 10_000
        const read = yield* Effect.fork(Effect.promise(() => reading.reader.events((e) => e.id === `1.${total}`)))
        for (let index = 1; index <= total; index += 250) {
          for (let i = index; i < index + 250 && i <= total; i++) feed.publish(run.id, token(i))
          yield* Effect.sleep("2 millis")
        }
        const published = performance.now()
        expect((yield* Fiber.join(read)).length).toBe(total)

        // Cut off: its watcher goes within the bound (and the notice's grace), and its socket is closed.
        expect(yield* eventually(() => watching.count === 1, 500)).toBe(true)
        expect(performance.now() - published).toBeLessThan(stall * 1.25 + Duration.toMillis(WriteStall.STALL_GRACE) + 1_000)
        const rest = yield* Effect.promise(() => stalled.drain())
        expect(rest.closed).toBe(true)
        expect(rest.bytes).toBeGreaterThan(0)

        // The other watcher goes on.
        feed.publish(run.id, token(total + 1))
        expect((yield* Effect.promise(() => reading.reader.events((e) => e.id === `1.${total + 1}`))).map((e) => e.id)).toEqual([`1.${total + 1}`])
      }))
  })
}
