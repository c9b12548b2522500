/**
 * The chat across processes (src/bus/ChatFanout.ts): two system agents, each with its own Redis
 * connection as two server processes have, over one database. A question asked of one streams to a
 * chat watcher of the other, every chunk in order; the asking process's own watcher sees each chunk
 * once (its echo from Redis is skipped). A process cut off from Redis mid-answer (its reader, or the
 * asker's connection) loses no chunk: the reader goes on from where it was, the asker sends what
 * waited once Redis is back. With Redis away the chat goes on in its own process, and the chunks
 * that had to wait are counted.
 */
import { SqlClient } from "@effect/sql"
import { afterAll, describe, expect, layer } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Stream } from "effect"
import * as SystemAgent from "../../agents/system/SystemAgent.js"
import type { ChatChunk } from "../../schemas/Chat.js"
import * as ChatFanout from "../../src/bus/ChatFanout.js"
import * as Redis from "../../src/bus/Redis.js"
import * as LlmRuntime from "../../src/llm/LlmRuntime.js"
import * as Offline from "../../src/llm/Offline.js"
import { seedRun } from "../agents/system/fixtures.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { cleanUp, connection, downUrl, eventually, freezingRedis, runRedis, uniquePrefix } from "./redis.js"

const prefix = uniquePrefix("chat")
afterAll(() => cleanUp(prefix))

const users = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`insert into users (id, name, role) values ('alice', 'alice', 'user') on conflict do nothing`
}).pipe(Effect.orDie))

/** A system agent as one server process has it: its own Redis connection and fan-out, the offline model. */
const processAgent = (url?: string) =>
  Effect.gen(function*() {
    const redis = yield* connection(prefix, url)
    const fanout = yield* Layer.build(ChatFanout.layerRedis.pipe(Layer.provide(Layer.succeed(Redis.Redis, redis))))
    const agent = yield* SystemAgent.make().pipe(Effect.provide(LlmRuntime.layerWith(Offline.make())), Effect.provide(fanout))
    return { agent, redis }
  })

const collect = <E>(stream: Stream.Stream<ChatChunk, E>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

/** A watcher's chunks up to the end of one answer. */
const oneAnswer = <E>(stream: Stream.Stream<ChatChunk, E>) =>
  collect(stream.pipe(Stream.takeUntil((c) => c._tag === "Done" || c._tag === "Failed")))

describe.skipIf(!runRedis)("chat fan-out (Redis)", () => {
  layer(Layer.merge(backends[0]!.store, users.pipe(Layer.provide(backends[0]!.store))), { timeout: startTimeout, excludeTestServices: true })(
    "two processes",
    (it) => {
      it.scoped("an answer asked of one process streams to a watcher of the other, in order; the asker's own watcher sees it once", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice", { label: "fan-out" })
          const a = yield* processAgent()
          const b = yield* processAgent()
          // Both subscribed to Redis (a subscription is made as the connection becomes ready).
          yield* Effect.sleep("200 millis")
          const elsewhere = yield* Effect.fork(Effect.scoped(Effect.flatMap(b.agent.watch(run.id), oneAnswer)))
          const here = yield* Effect.fork(Effect.scoped(Effect.flatMap(a.agent.watch(run.id), oneAnswer)))
          yield* Effect.sleep("50 millis")
          const asked = yield* collect(a.agent.ask(run.id, "Which trades lost money?"))
          expect(asked.at(-1)?._tag).toBe("Done")
          expect(asked.filter((c) => c._tag === "Token").length).toBeGreaterThan(5)
          const seenElsewhere = yield* Fiber.join(elsewhere).pipe(Effect.timeout("10 seconds"))
          const seenHere = yield* Fiber.join(here).pipe(Effect.timeout("10 seconds"))
          expect(seenElsewhere).toEqual(asked)
          expect(seenHere).toEqual(asked)
          expect(a.redis.stats().publishFailures + a.redis.stats().commandFailures).toBe(0)
        }))

      it.scoped("the watcher's process cut off from Redis while an answer streams (CLIENT KILL, a blip): its watcher still gets every chunk, in order, to the end", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice", { label: "fan-out cut" })
          const proxy = yield* freezingRedis
          const a = yield* processAgent()
          const b = yield* processAgent(proxy.url)
          yield* Effect.sleep("200 millis")
          const elsewhere = yield* Effect.fork(Effect.scoped(Effect.flatMap(b.agent.watch(run.id), oneAnswer)))
          yield* Effect.sleep("50 millis")
          // B hears nothing while the answer streams, then its connections are cut: what was held is dropped.
          yield* proxy.freeze
          const asked = yield* collect(a.agent.ask(run.id, "Which trades lost money?"))
          expect(asked.at(-1)?._tag).toBe("Done")
          yield* Effect.sleep("100 millis")
          yield* proxy.cut
          yield* proxy.thaw
          // Before (pub/sub), those chunks were lost to B: its watcher never saw the answer end.
          expect(yield* Fiber.join(elsewhere).pipe(Effect.timeout("10 seconds"))).toEqual(asked)
        }))

      it.scoped("the asker's process cut off from Redis while it answers: its chunks wait, and reach the other's watcher in order once Redis is back", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice", { label: "fan-out publisher cut" })
          const proxy = yield* freezingRedis
          const a = yield* processAgent(proxy.url)
          const b = yield* processAgent()
          yield* Effect.sleep("200 millis")
          const elsewhere = yield* Effect.fork(Effect.scoped(Effect.flatMap(b.agent.watch(run.id), oneAnswer)))
          yield* Effect.sleep("50 millis")
          // Redis away from the asker: every send fails at once (no offline queue).
          yield* proxy.down
          expect(yield* eventually(() => !a.redis.ready())).toBe(true)
          const asked = yield* collect(a.agent.ask(run.id, "What is the Sharpe ratio?"))
          expect(asked.at(-1)?._tag).toBe("Done")
          expect(a.redis.stats().commandFailures).toBeGreaterThan(0)
          yield* proxy.up
          // Before, they were counted and dropped.
          expect(yield* Fiber.join(elsewhere).pipe(Effect.timeout("10 seconds"))).toEqual(asked)
        }))

      it.scoped("Redis away: the chat goes on in its own process, and the publishes that failed are counted", () =>
        Effect.gen(function*() {
          const run = yield* seedRun("alice", { label: "fan-out down" })
          const { agent, redis } = yield* processAgent(downUrl)
          const watched = yield* Effect.fork(Effect.scoped(Effect.flatMap(agent.watch(run.id), oneAnswer)))
          yield* Effect.sleep("50 millis")
          const asked = yield* collect(agent.ask(run.id, "What is the Sharpe ratio?"))
          expect(asked.at(-1)?._tag).toBe("Done")
          expect(yield* Fiber.join(watched).pipe(Effect.timeout("10 seconds"))).toEqual(asked)
          expect(yield* eventually(() => redis.stats().commandFailures >= 1, 2_000)).toBe(true)
        }))
    }
  )
})
