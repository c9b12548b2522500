/**
 * Forgetting cached keys across processes (src/bus/AuthInvalidations.ts) when Redis loses a message:
 * pub/sub delivers at most once, and a message lost to a server would leave a key revoked elsewhere
 * working there for its cache's 30 s. Two "processes" (each its own connections, one through a proxy
 * the test cuts): a change published while the other's subscriber is away is made up for by
 * forgetting everyone once it is back; a number skipped, or counted and never heard, too; and a
 * change that could not be sent is sent once Redis answers.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Redis as IORedis } from "ioredis"
import { Effect, Layer } from "effect"
import * as AuthInvalidations from "../../src/bus/AuthInvalidations.js"
import * as Redis from "../../src/bus/Redis.js"
import { cleanUp, connection, eventually, freezingRedis, redisUrl, runRedis, uniquePrefix } from "./redis.js"

const prefix = uniquePrefix("auth-forget")
afterAll(() => cleanUp(prefix))

/** A process's invalidations, and what it was told. */
const processUp = (url?: string, options?: AuthInvalidations.Options) =>
  Effect.gen(function*() {
    const redis = yield* connection(prefix, url)
    const context = yield* Layer.build(AuthInvalidations.layerRedisWith(options).pipe(Layer.provide(Layer.succeed(Redis.Redis, redis))))
    const service = context.pipe((c) => c.unsafeMap.get(AuthInvalidations.AuthInvalidations.key) as AuthInvalidations.AuthInvalidationsService)
    const told: Array<AuthInvalidations.Forget> = []
    service.listen((forget) => told.push(forget))
    return { service, told, redis }
  })

/** Subscribers of the channel now (every test's processes are closed with it: none at its start). */
const subscribers = Effect.acquireRelease(Effect.sync(() => new IORedis(redisUrl)), (c) => Effect.sync(() => c.disconnect())).pipe(
  Effect.map((probe) => Effect.promise(() => probe.pubsub("NUMSUB", AuthInvalidations.channelOf(prefix)).then((r) => Number(r[1]))))
)

/** Until `n` processes are subscribed, and a moment more (each reads the counter once subscribed). */
const subscribed = (n: number) =>
  Effect.gen(function*() {
    const count = yield* subscribers
    const until = Date.now() + 5_000
    while ((yield* count) < n && Date.now() < until) yield* Effect.sleep("10 millis")
    expect(yield* count).toBe(n)
    yield* Effect.sleep("100 millis")
  })

const users = (told: ReadonlyArray<AuthInvalidations.Forget>) => told.flatMap((f) => (f._tag === "User" ? [f.userId] : []))
const everyone = (told: ReadonlyArray<AuthInvalidations.Forget>) => told.filter((f) => f._tag === "Everyone").length

describe.skipIf(!runRedis)("auth invalidations across processes (Redis)", () => {
  it.scopedLive("a user forgotten on one process is forgotten on the other, once, and not echoed to itself", () =>
    Effect.gen(function*() {
      const a = yield* processUp()
      const b = yield* processUp()
      yield* subscribed(2)
      const atStart = everyone(b.told)
      a.service.publish("alice")
      expect(yield* eventually(() => users(b.told).length === 1)).toBe(true)
      yield* Effect.sleep("100 millis")
      expect(users(b.told)).toEqual(["alice"])
      expect(users(a.told)).toEqual([])
      // Nothing missed: nobody forgot everyone since.
      expect(everyone(b.told)).toBe(atStart)
    }), { timeout: 20_000 })

  it.scopedLive("a change published while the other's subscriber is cut off: it forgets everyone once it is back", () =>
    Effect.gen(function*() {
      const proxy = yield* freezingRedis
      const a = yield* processUp()
      const b = yield* processUp(proxy.url)
      yield* subscribed(2)
      const atStart = everyone(b.told)
      // B's subscriber hears nothing, and what was held for it is dropped (a CLIENT KILL, a blip).
      yield* proxy.freeze
      a.service.publish("alice")
      yield* Effect.sleep("100 millis")
      yield* proxy.cut
      yield* proxy.thaw
      // Before, B was never told: alice's cached answers stayed there for the cache's 30 s.
      expect(yield* eventually(() => everyone(b.told) === atStart + 1)).toBe(true)
      expect(users(b.told)).toEqual([])
    }), { timeout: 20_000 })

  it.scopedLive("a number skipped (a message lost to this subscriber without a reconnection): everyone is forgotten", () =>
    Effect.gen(function*() {
      const a = yield* processUp()
      const b = yield* processUp()
      yield* subscribed(2)
      const atStart = everyone(b.told)
      a.service.publish("alice")
      expect(yield* eventually(() => users(b.told).length === 1)).toBe(true)
      // A message numbered and never delivered to B.
      yield* Effect.promise(() => a.redis.client.incr(AuthInvalidations.counterOf(prefix)))
      a.service.publish("bob")
      expect(yield* eventually(() => users(b.told).length === 2)).toBe(true)
      expect(users(b.told)).toEqual(["alice", "bob"])
      expect(everyone(b.told)).toBe(atStart + 1)
    }), { timeout: 20_000 })

  it.scopedLive("a number counted and never heard, with nothing after it: the periodic check forgets everyone", () =>
    Effect.gen(function*() {
      const b = yield* processUp(undefined, { check: "100 millis" })
      yield* subscribed(1)
      const atStart = everyone(b.told)
      yield* Effect.promise(() => b.redis.client.incr(AuthInvalidations.counterOf(prefix)))
      expect(yield* eventually(() => everyone(b.told) === atStart + 1, 3_000)).toBe(true)
      // Once: it is accounted for.
      yield* Effect.sleep("500 millis")
      expect(everyone(b.told)).toBe(atStart + 1)
    }), { timeout: 20_000 })

  it.scopedLive("a change made while the publisher cannot reach Redis is sent once it can", () =>
    Effect.gen(function*() {
      const proxy = yield* freezingRedis
      const a = yield* processUp(proxy.url, { retry: "100 millis" })
      const b = yield* processUp()
      yield* subscribed(2)
      // Cut off, and held while it connects again: the publish fails at once (no offline queue).
      yield* proxy.freeze
      yield* proxy.cut
      expect(yield* eventually(() => !a.redis.ready())).toBe(true)
      a.service.publish("alice")
      yield* Effect.sleep("200 millis")
      expect(a.redis.stats().commandFailures).toBeGreaterThan(0)
      // Back: sent now. Before, it was counted and dropped, and B never heard of it.
      yield* proxy.thaw
      expect(yield* eventually(() => users(b.told).length === 1, 5_000)).toBe(true)
      expect(users(b.told)).toEqual(["alice"])
    }), { timeout: 20_000 })
})
