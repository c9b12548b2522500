/**
 * `REDIS_URL` as an operator writes it: unset or empty is no Redis (the in-process services), a
 * Redis URL is taken, anything else is a configuration error naming the variable and why — at
 * start-up, not at the first event. The connection never prints a password, and a Redis that does
 * not answer leaves start-up going (degraded), saying so in its state.
 */
import { describe, expect, it } from "@effect/vitest"
import { Redis as IORedis } from "ioredis"
import { ConfigProvider, Effect, Either, Logger, Option } from "effect"
import * as Redis from "../../src/bus/Redis.js"
import { downUrl, eventually, freezingRedis, hasRedisServer, privateRedis, redisUrl, runRedis } from "./redis.js"

const read = (env: Record<string, string>) =>
  Effect.withConfigProvider(Effect.either(Redis.config), ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("Redis configuration", () => {
  it.effect("unset or empty: none; a redis:// or rediss:// URL: taken, with the key prefix", () =>
    Effect.gen(function*() {
      expect(yield* read({})).toEqual(Either.right(Option.none()))
      expect(yield* read({ REDIS_URL: "  " })).toEqual(Either.right(Option.none()))
      expect(yield* read({ REDIS_URL: "redis://127.0.0.1:6379/2" })).toEqual(
        Either.right(Option.some({ url: "redis://127.0.0.1:6379/2", prefix: "swarm:" }))
      )
      expect(yield* read({ REDIS_URL: "rediss://u:p@cache.example:6380", REDIS_PREFIX: "prod:" })).toEqual(
        Either.right(Option.some({ url: "rediss://u:p@cache.example:6380", prefix: "prod:" }))
      )
    }))

  it.effect("malformed: a ConfigError that names REDIS_URL and says why, never the password", () =>
    Effect.gen(function*() {
      for (const [raw, why] of [
        ["localhost:6379", "redis://"],
        ["http://127.0.0.1:6379", "scheme"],
        ["redis://user:s3cret@host:6379/x", "database"],
        ["not a url at all", "not a URL"]
      ] as const) {
        const result = yield* read({ REDIS_URL: raw })
        expect(Either.isLeft(result)).toBe(true)
        const text = String(Either.getLeft(result).pipe(Option.getOrThrow))
        expect(text).toContain("REDIS_URL")
        expect(text).toContain(why)
        expect(text).not.toContain("s3cret")
      }
    }))

  it("a URL fit to print has its password masked", () => {
    expect(Redis.maskUrl("redis://user:s3cret@host:6379/0")).toBe("redis://user:***@host:6379/0")
    expect(Redis.maskUrl("redis://host:6379")).toBe("redis://host:6379")
  })

  it.scopedLive("a Redis that does not answer: start-up goes on, degraded and reconnecting, and says so", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const capture = Logger.make(({ message }) => {
        warnings.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      })
      const redis = yield* Redis.make({ url: downUrl, connectTimeoutMillis: 300 }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      expect(redis.ready()).toBe(false)
      expect(redis.stats().state).not.toBe("ready")
      expect(Redis.describe(Option.some(redis))).toContain("not answering yet")
      expect(Redis.describe(Option.none())).toContain("in-process")
      // The start-up line says why, as the connection reported it (not that an unknown error occurred).
      const startUp = warnings.find((line) => line.includes("does not answer"))
      expect(startUp).toContain(`Redis at ${downUrl} does not answer (connect ECONNREFUSED 127.0.0.1:1)`)
      expect(warnings.join("\n")).not.toMatch(/unknown error|Connection is closed/i)
      // One line for one failure (it used to be said twice: "Redis is unavailable", then this).
      expect(warnings).toEqual([startUp])
    }))

  it.scopedLive.skipIf(!runRedis)("a database Redis does not have (REDIS_URL=…/99): refused at start-up, naming REDIS_URL — never database 0", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.make(({ message }) => {
        lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      })
      const url = `${redisUrl.replace(/\/\d*$/, "")}/99`
      const result = yield* Effect.either(Redis.make({ url, connectTimeoutMillis: 2_000 })).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(Either.isLeft(result)).toBe(true)
      const error = Either.getLeft(result).pipe(Option.getOrThrow)
      expect(error._op === "InvalidData" && error.path).toEqual(["REDIS_URL"])
      expect(error.message).toContain("has no database 99")
      expect(error.message).toContain("DB index is out of range")
      yield* Effect.sleep("300 millis")
      expect(lines.join("\n")).not.toMatch(/Redis is back|falling back/)
    }))

  it.scopedLive.skipIf(!runRedis)("a frozen Redis (its connection up, nothing answering) fails the PING within its timeout, said once; answering again ends it", () =>
    Effect.gen(function*() {
      const frozen = yield* freezingRedis
      const lines: Array<string> = []
      const capture = Logger.make(({ message }) => {
        lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      })
      const redis = yield* Redis.make({ url: frozen.url, prefix: "frozen-test:", connectTimeoutMillis: 2_000, pingTimeoutMillis: 300 }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(yield* redis.ping).toBeUndefined()
      yield* frozen.freeze
      // Nothing published, nothing failed: the connection says ready, and only the PING finds out.
      yield* Effect.sleep(Redis.PING_FRESH)
      expect(redis.stats()).toMatchObject({ state: "ready", commandFailures: 0 })
      expect(redis.stats().failingSince).toBeUndefined()
      const started = Date.now()
      expect(yield* redis.ping).toBe("no answer to PING within 300 ms")
      // Bounded by its timeout, and kept a moment: asked again at once, it is not waited for again.
      expect(yield* redis.ping).toBe("no answer to PING within 300 ms")
      expect(Date.now() - started).toBeLessThan(1_000)
      expect(redis.stats()).toMatchObject({ state: "ready", commandFailures: 1, failingSince: expect.any(Number) })
      expect(lines.filter((l) => l.startsWith("Redis ping failed (no answer to PING within 300 ms)"))).toHaveLength(1)
      yield* frozen.thaw
      expect(yield* eventually(() => lines.some((l) => l.startsWith("Redis takes commands again after")), 10_000)).toBe(true)
      yield* Effect.sleep(Redis.PING_FRESH)
      expect(yield* redis.ping).toBeUndefined()
      expect(redis.stats().failingSince).toBeUndefined()
    }))

  it.scopedLive.skipIf(!hasRedisServer)("an outage of refused commands is said to end when a write goes through; a later one is said too", () =>
    Effect.gen(function*() {
      const server = yield* privateRedis
      const lines: Array<string> = []
      const capture = Logger.make(({ message }) => {
        lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      })
      const redis = yield* Redis.make({ url: server.url, prefix: "outage-test:", connectTimeoutMillis: 2_000 }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      const admin = yield* Effect.acquireRelease(Effect.sync(() => new IORedis(server.url)), (c) => Effect.sync(() => c.disconnect()))
      // Redis up but refusing writes: a command fails, as a caller reports it.
      yield* Effect.promise(() => admin.config("SET", "maxmemory-policy", "noeviction").then(() => admin.config("SET", "maxmemory", "1")))
      const refused = yield* Effect.promise(() => redis.client.set("outage-test:k", "v").then(() => undefined, (error: Error) => error))
      expect(refused?.message).toMatch(/OOM/)
      redis.failed("latest values", 1, refused)
      expect(lines.filter((l) => l.includes("failed (OOM"))).toHaveLength(1)
      // /health says so, though the connection is up.
      expect(redis.stats()).toMatchObject({ state: "ready", failingSince: expect.any(Number) })
      // Writes taken again: said, though the connection never dropped.
      yield* Effect.promise(() => admin.config("SET", "maxmemory", "0"))
      expect(yield* eventually(() => lines.some((l) => l.startsWith("Redis takes commands again after")), 5_000)).toBe(true)
      expect(redis.stats().failingSince).toBeUndefined()
      // A later outage, the connection going this time, is said too (it went unsaid after one of commands).
      yield* server.kill
      expect(yield* eventually(() => lines.some((l) => l.startsWith("Redis is unavailable")), 5_000)).toBe(true)
      yield* server.start
      expect(yield* eventually(() => lines.some((l) => l.startsWith("Redis is back after")), 10_000)).toBe(true)
    }))
})
