/**
 * The LLM answer cache over Redis as the LLM session relies on it: an answer set by one process is
 * a hit in another until its TTL; a miss is undefined; hits and misses are counted; it has no
 * `memory` (the session goes through `Outside.run`); Redis down is a miss, never an error.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Redis from "../../src/bus/Redis.js"
import { keyOf } from "../../src/llm/AnswerCache.js"
import * as RedisAnswerCache from "../../src/llm/RedisAnswerCache.js"
import { cleanUp, connection, downUrl, runRedis, uniquePrefix } from "../bus/redis.js"

const prefix = uniquePrefix("llm")
afterAll(() => cleanUp(prefix))

const cacheOf = (url?: string) => Effect.flatMap(connection(prefix, url), (redis) => RedisAnswerCache.make().pipe(Effect.provideService(Redis.Redis, redis)))

const answer = { content: "long AAPL: momentum", toolCalls: [], tokensIn: 120, tokensOut: 18 }

describe.skipIf(!runRedis)("RedisAnswerCache", () => {
  it.scopedLive("an answer set by one process is a hit in another until its TTL", () =>
    Effect.gen(function*() {
      const one = yield* cacheOf()
      const two = yield* cacheOf()
      expect(one.memory).toBeUndefined()
      const key = keyOf("llama3", "abc123", "AAPL:1-2")
      expect(yield* two.get(key)).toBeUndefined()
      yield* one.set(key, answer, 200)
      expect(yield* two.get(key)).toEqual(answer)
      expect(yield* two.stats).toEqual({ hits: 1, misses: 1, entries: 0 })
      expect((yield* one.stats).entries).toBe(1)
      yield* Effect.sleep("250 millis")
      expect(yield* two.get(key)).toBeUndefined()
    }))

  it.scopedLive("Redis down: a miss and a dropped write, counted, never an error", () =>
    Effect.gen(function*() {
      const redis = yield* connection(prefix, downUrl)
      const cache = yield* RedisAnswerCache.make().pipe(Effect.provideService(Redis.Redis, redis))
      yield* cache.set("k", answer, 60_000)
      expect(yield* cache.get("k")).toBeUndefined()
      expect((yield* cache.stats).misses).toBe(1)
      expect(redis.stats().commandFailures).toBe(2)
    }))
})
