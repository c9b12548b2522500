/**
 * Seen keys as a "done already?" check relies on them: the first claim of a key wins, every other
 * (from any process: two connections are two processes) loses until the key expires or is
 * released; a key's value (what the first one did) is read by the other process; in process on the
 * `Clock`; Redis down answers from this process, counted.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as IdempotencyKeys from "../../src/bus/IdempotencyKeys.js"
import * as Redis from "../../src/bus/Redis.js"
import { cleanUp, connection, downUrl, runRedis, uniquePrefix } from "./redis.js"

const prefix = uniquePrefix("idem")
afterAll(() => cleanUp(prefix))

const redisKeys = (url?: string) => Effect.flatMap(connection(prefix, url), (redis) => IdempotencyKeys.redis.pipe(Effect.provideService(Redis.Redis, redis)))

describe("IdempotencyKeys (in process)", () => {
  it("expired keys are let go, and a day's live keys are not walked on every claim", () => {
    const keys = IdempotencyKeys.makeMemory()
    // 20,000 keys for a second, then 100,000 for a day, the first lot expired by then.
    for (let i = 0; i < 20_000; i++) keys.claim(`short-${i}`, 1_000, 0)
    for (let i = 0; i < 100_000; i++) keys.claim(`day-${i}`, 86_400_000, 2_000)
    expect(keys.size()).toBeLessThan(110_000)
    expect(keys.claim("short-1", 1_000, 2_000)).toBe(true) // expired: free again
    expect(keys.claim("day-1", 1_000, 2_000)).toBe(false) // live: taken
    // Walked each time the keys doubled: a handful of times, not once per claim past 10,000 (110,000 before).
    expect(keys.sweeps()).toBeLessThanOrEqual(8)
  })

  it.effect("the first claim wins until the key expires; a released key can be claimed again", () =>
    Effect.gen(function*() {
      const keys = IdempotencyKeys.memory()
      expect(yield* keys.claim("a", 1_000)).toBe(true)
      expect(yield* keys.claim("a", 1_000)).toBe(false)
      expect(yield* keys.seen("a")).toBe(true)
      expect(yield* keys.seen("b")).toBe(false)
      yield* TestClock.adjust("999 millis")
      expect(yield* keys.claim("a", 1_000)).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(yield* keys.seen("a")).toBe(false)
      expect(yield* keys.claim("a", 1_000)).toBe(true)
      yield* keys.release("a")
      expect(yield* keys.claim("a", 1_000)).toBe(true)
    }))

  it.effect("a key holds a value: what the first one did, for whoever finds it taken, until it expires", () =>
    Effect.gen(function*() {
      const keys = IdempotencyKeys.memory()
      expect(yield* keys.get("k")).toBeUndefined()
      expect(yield* keys.claim("k", 1_000, "pending")).toBe(true)
      expect(yield* keys.get("k")).toBe("pending")
      yield* keys.set("k", "done", 2_000)
      expect(yield* keys.get("k")).toBe("done")
      expect(yield* keys.claim("k", 1_000)).toBe(false)
      yield* TestClock.adjust("2 seconds")
      expect(yield* keys.get("k")).toBeUndefined()
      yield* keys.set("fresh", "v", 1_000)
      expect(yield* keys.seen("fresh")).toBe(true)
    }))
})

describe.skipIf(!runRedis)("IdempotencyKeys (Redis)", () => {
  it.scopedLive("one key, two processes, 20 concurrent claims: exactly one wins", () =>
    Effect.gen(function*() {
      const one = yield* redisKeys()
      const two = yield* redisKeys()
      expect(one.kind).toBe("redis")
      const won = yield* Effect.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? one : two).claim("alert:1", 60_000)),
        { concurrency: "unbounded" }
      )
      expect(won.filter(Boolean)).toHaveLength(1)
      expect(yield* two.seen("alert:1")).toBe(true)
      expect(yield* one.seen("alert:2")).toBe(false)
    }))

  it.scopedLive("a claim lasts its TTL; a released key is free for the other process at once", () =>
    Effect.gen(function*() {
      const one = yield* redisKeys()
      const two = yield* redisKeys()
      expect(yield* one.claim("short", 100)).toBe(true)
      expect(yield* two.claim("short", 100)).toBe(false)
      yield* Effect.sleep("150 millis")
      expect(yield* two.claim("short", 100)).toBe(true)
      expect(yield* one.claim("held", 60_000)).toBe(true)
      yield* one.release("held")
      expect(yield* two.claim("held", 60_000)).toBe(true)
    }))

  it.scopedLive("a value set by one process is read by the other, for its TTL", () =>
    Effect.gen(function*() {
      const one = yield* redisKeys()
      const two = yield* redisKeys()
      yield* one.set("ack", "{\"runs\":[\"r1\"]}", 150)
      expect(yield* two.get("ack")).toBe("{\"runs\":[\"r1\"]}")
      expect(yield* two.claim("ack", 60_000)).toBe(false)
      expect(yield* two.get("nothing")).toBeUndefined()
      yield* Effect.sleep("200 millis")
      expect(yield* two.get("ack")).toBeUndefined()
    }))

  it.scopedLive("Redis down: claims and values are answered in this process (counted), never an error", () =>
    Effect.gen(function*() {
      const redis = yield* connection(prefix, downUrl)
      const keys = yield* IdempotencyKeys.redis.pipe(Effect.provideService(Redis.Redis, redis))
      expect(yield* keys.claim("k", 60_000)).toBe(true)
      expect(yield* keys.claim("k", 60_000)).toBe(false)
      expect(yield* keys.seen("k")).toBe(true)
      expect(redis.stats().commandFailures).toBe(3)
      yield* keys.set("v", "remembered", 60_000)
      expect(yield* keys.get("v")).toBe("remembered")
      expect(redis.stats().commandFailures).toBe(5)
    }))
})
