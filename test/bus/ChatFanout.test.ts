/**
 * The chat across processes (src/bus/ChatFanout.ts): two system agents, each with its own Redis
 * connection as two server processes have, over one database. A question asked of one streams to a
 * chat watcher of the other, every chunk in order; the asking process's own watcher sees each chunk
 * once (its echo from Redis is skipped). With Redis away the chat goes on in its own process, and
 * the failed publishes are counted.
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
import { cleanUp, connection, downUrl, eventually, runRedis, uniquePrefix } from "./redis.js"

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
