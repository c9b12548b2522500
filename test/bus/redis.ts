/**
 * The Redis the bus tests run against: `REDIS_URL`, else the one on 127.0.0.1:6379 (CI has it).
 * Each test file gets a key prefix of its own and removes its keys when it ends. Without a
 * reachable Redis the Redis suites are skipped, saying so — except under CI, where Redis must be
 * there and its absence fails them.
 */
import { Redis as IORedis } from "ioredis"
import { Effect } from "effect"
import * as Redis from "../../src/bus/Redis.js"

export const redisUrl = process.env.REDIS_URL?.trim() || "redis://127.0.0.1:6379"

/** Whether a Redis answers PING at `url` within a second. */
export const probe = async (url: string): Promise<boolean> => {
  const client = new IORedis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 })
  client.on("error", () => {})
  try {
    await client.connect()
    return (await client.ping()) === "PONG"
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

export const reachable = await probe(redisUrl)

/** Run the Redis suites: Redis answers, or CI says it must. */
export const runRedis = reachable || process.env.CI !== undefined

if (!runRedis) {
  console.warn(`Redis suites skipped: no Redis answers at ${Redis.maskUrl(redisUrl)} (set REDIS_URL, or start redis-server; under CI they run and fail)`)
}

/** A key prefix no other test run shares. */
export const uniquePrefix = (name: string) => `swarm-test:${name}:${process.pid}:${Math.random().toString(36).slice(2, 10)}:`

/** Every key under `prefix`, deleted. */
export const cleanUp = async (prefix: string, url = redisUrl): Promise<void> => {
  const client = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
  client.on("error", () => {})
  try {
    await client.connect()
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1_000)
      cursor = next
      if (keys.length > 0) await client.del(...keys)
    } while (cursor !== "0")
  } catch {
    // nothing to clean without Redis
  } finally {
    client.disconnect()
  }
}

/** A connection under `prefix` for the scope (one per simulated process). */
export const connection = (prefix: string, url = redisUrl) => Redis.make({ url, prefix, connectTimeoutMillis: 2_000 })

export const layer = (prefix: string, url = redisUrl) => Redis.layerWith({ url, prefix })

/** A port nothing listens on: a Redis that is down. */
export const downUrl = "redis://127.0.0.1:1"

/** Until `done()` holds, checking every 10 ms (at most `millis`). */
export const eventually = (done: () => boolean, millis = 5_000) =>
  Effect.gen(function*() {
    const until = Date.now() + millis
    while (!done() && Date.now() < until) yield* Effect.sleep("10 millis")
    return done()
  })
