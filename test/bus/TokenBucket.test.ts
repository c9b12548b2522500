/**
 * Token buckets as a shared limit relies on them: a burst of `capacity`, then one per refill; the
 * in-process buckets on the `Clock`; the Redis buckets one per key for every process (two
 * connections are two processes) — exactly `capacity` of many concurrent takes succeed, from both
 * together; a bucket's shape keeps it apart from another's; Redis down answers from this process,
 * counted, never an error. And the webhook rate limiter over them keeps its API and behaviour.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as Redis from "../../src/bus/Redis.js"
import * as TokenBucket from "../../src/bus/TokenBucket.js"
import * as RateLimiter from "../../src/edge/RateLimiter.js"
import { cleanUp, connection, downUrl, runRedis, uniquePrefix } from "./redis.js"

const prefix = uniquePrefix("bucket")
afterAll(() => cleanUp(prefix))

/** The Redis buckets of a simulated process (a connection of its own). */
const redisBuckets = (url?: string) => Effect.flatMap(connection(prefix, url), (redis) => TokenBucket.redis.pipe(Effect.provideService(Redis.Redis, redis)))

const taken = (waits: ReadonlyArray<number>) => waits.filter((w) => w === 0).length

describe("TokenBucket (in process)", () => {
  it("a flood of new keys: refilled buckets are forgotten, drained ones kept, and the buckets walked only as they double", () => {
    const buckets = TokenBucket.makeMemory()
    const shape = { capacity: 2, perSecond: 1 }
    // A drained key, then 60,000 new keys at once, none of whose buckets has refilled yet.
    buckets.take("drained", shape, 0)
    buckets.take("drained", shape, 0)
    for (let i = 0; i < 60_000; i++) buckets.take(`new-${i}`, shape, 0)
    expect(buckets.take("drained", shape, 0)).toBe(1_000)
    expect(buckets.held().prunes).toBeLessThanOrEqual(3) // at 10,000, 20,000 and 40,000: not once per key past 10,000
    // Ten seconds on, those have refilled: the next prune (the buckets having doubled) forgets them,
    // keeping only the new keys' buckets, each a token short.
    for (let i = 0; i < 20_000; i++) buckets.take(`later-${i}`, shape, 10_000)
    expect(buckets.held().prunes).toBe(4)
    expect(buckets.held().buckets).toBeLessThanOrEqual(20_000)
  })

  it.effect("a burst of capacity, then one token per 1/perSecond; a refilled bucket lends again", () =>
    Effect.gen(function*() {
      const buckets = TokenBucket.memory()
      const shape = { capacity: 3, perSecond: 2 }
      const waits = yield* Effect.forEach([1, 2, 3, 4], () => buckets.take("k", shape))
      expect(waits.slice(0, 3)).toEqual([0, 0, 0])
      expect(waits[3]).toBe(500)
      // Another key has its own bucket.
      expect(yield* buckets.take("other", shape)).toBe(0)
      yield* TestClock.adjust("500 millis")
      expect(yield* buckets.take("k", shape)).toBe(0)
      expect(yield* buckets.take("k", shape)).toBe(500)
      yield* TestClock.adjust("10 seconds")
      expect(taken(yield* Effect.forEach([1, 2, 3, 4], () => buckets.take("k", shape)))).toBe(3)
    }))

  it.effect("a cost takes several tokens; one more than there are waits for the missing part", () =>
    Effect.gen(function*() {
      const buckets = TokenBucket.memory()
      const shape = { capacity: 10, perSecond: 1 }
      expect(yield* buckets.take("k", shape, 7)).toBe(0)
      expect(yield* buckets.take("k", shape, 5)).toBe(2_000)
      expect(yield* buckets.take("k", shape, 3)).toBe(0)
    }))

  it.effect("the rate limiter over the context's buckets keeps its API: 0 or the milliseconds to wait", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.RateLimiter
      const waits = yield* Effect.forEach([1, 2, 3], () => limiter.take("strategy"))
      expect(waits).toEqual([0, 0, 1_000])
      // The limit's buckets are named: the same key of another limit is another bucket.
      const buckets = yield* TokenBucket.TokenBucket
      expect(yield* buckets.take("strategy", { capacity: 2, perSecond: 1 })).toBe(0)
    }).pipe(
      Effect.provide(RateLimiter.layerMemory({ capacity: 2, perSecond: 1, name: "webhook" })),
      Effect.provide(TokenBucket.layerMemory)
    ))
})

describe.skipIf(!runRedis)("TokenBucket (Redis)", () => {
  it.scopedLive("two processes share one bucket: of 40 concurrent takes from both, exactly capacity succeed", () =>
    Effect.gen(function*() {
      const one = yield* redisBuckets()
      const two = yield* redisBuckets()
      expect(one.kind).toBe("redis")
      const shape = { capacity: 25, perSecond: 0.001 }
      const key = "shared"
      const waits = yield* Effect.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? one : two).take(key, shape)),
        { concurrency: "unbounded" }
      )
      expect(taken(waits)).toBe(25)
      // The refused ones are told how long: about one token's refill (1,000 s here).
      for (const wait of waits.filter((w) => w > 0)) expect(wait).toBeGreaterThan(990_000)
    }))

  it.scopedLive("the bucket refills from Redis's clock for both processes", () =>
    Effect.gen(function*() {
      const one = yield* redisBuckets()
      const two = yield* redisBuckets()
      const shape = { capacity: 2, perSecond: 20 }
      expect(yield* one.take("refill", shape)).toBe(0)
      expect(yield* two.take("refill", shape)).toBe(0)
      const wait = yield* one.take("refill", shape)
      expect(wait).toBeGreaterThan(0)
      expect(wait).toBeLessThanOrEqual(50)
      yield* Effect.sleep(`${wait + 20} millis`)
      expect(yield* two.take("refill", shape)).toBe(0)
    }))

  it.scopedLive("a bucket's shape is part of its key; a cost larger than the capacity takes the whole bucket", () =>
    Effect.gen(function*() {
      const one = yield* redisBuckets()
      expect(yield* one.take("k", { capacity: 1, perSecond: 0.001 })).toBe(0)
      expect(yield* one.take("k", { capacity: 1, perSecond: 0.001 })).toBeGreaterThan(0)
      expect(yield* one.take("k", { capacity: 5, perSecond: 0.001 }, 9)).toBe(0)
      expect(yield* one.take("k", { capacity: 5, perSecond: 0.001 })).toBeGreaterThan(0)
    }))

  it.scopedLive("the webhook rate limiter over Redis buckets: one limit for both processes", () =>
    Effect.gen(function*() {
      const limitOf = (buckets: TokenBucket.TokenBucketService) => RateLimiter.fromBuckets(buckets, { capacity: 30, perSecond: 0.001, name: "webhook" })
      const one = limitOf(yield* redisBuckets())
      const two = limitOf(yield* redisBuckets())
      const waits = yield* Effect.forEach(Array.from({ length: 48 }, (_, i) => i), (i) => (i % 2 === 0 ? one : two).take("strategy_1"))
      expect(taken(waits)).toBe(30)
    }))

  it.scopedLive("Redis down: the take answers from this process (counted), never fails", () =>
    Effect.gen(function*() {
      const redis = yield* connection(prefix, downUrl)
      const buckets = yield* TokenBucket.redis.pipe(Effect.provideService(Redis.Redis, redis))
      const shape = { capacity: 2, perSecond: 0.001 }
      const waits = yield* Effect.forEach([1, 2, 3], () => buckets.take("k", shape))
      expect(taken(waits)).toBe(2)
      expect(redis.stats().commandFailures).toBe(3)
    }))
})
