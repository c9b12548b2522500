/**
 * Token buckets by key — `capacity` tokens, refilled at `perSecond`, a request taking `cost` — so
 * that a limit holds for every process together (a model's or a vendor's calls, a strategy's
 * webhook alerts). `layerMemory` keeps the buckets in this process (exact for one process, and
 * driven by the `Clock`, so `TestClock` moves it); `layerRedis` keeps them in Redis and takes a
 * token with one Lua script — refill and take are atomic across processes and read Redis's own
 * clock, so processes with skewed clocks still share one bucket.
 *
 * Redis away: the Redis layer answers from an in-process bucket of the same shape (each process
 * then enforces the limit on its own, so the fleet together may exceed it for the outage) and
 * counts the failure; it never fails the caller or waits long for Redis.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { Redis } from "./Redis.js"

export interface Bucket {
  /** The burst a key may spend at once (at least 1). */
  readonly capacity: number
  /** Tokens given back per second (> 0). */
  readonly perSecond: number
}

export interface TokenBucketService {
  /**
   * Take `cost` (default 1) tokens from `key`'s bucket: 0 when they were there (and are taken),
   * else how many milliseconds until they would be (nothing is taken).
   */
  readonly take: (key: string, bucket: Bucket, cost?: number) => Effect.Effect<number>
  readonly kind: "in-process" | "redis"
}

export class TokenBucket extends Context.Tag("swarm/bus/TokenBucket")<TokenBucket, TokenBucketService>() {}

const normalise = (bucket: Bucket, cost: number | undefined) => {
  const capacity = Math.max(1, bucket.capacity)
  const perSecond = Math.max(1e-6, bucket.perSecond)
  return { capacity, perSecond, cost: Math.min(capacity, Math.max(0, cost ?? 1)) }
}

interface Held {
  tokens: number
  at: number
  readonly capacity: number
  readonly perMilli: number
}

/**
 * Past this many keys, buckets that have refilled are forgotten (a full bucket is what a new key
 * gets); then again once the buckets left have doubled, so that a flood of new keys does not walk
 * them all for each one (IdempotencyKeys.ts does the same).
 */
const PRUNE_OVER = 10_000

/** Buckets of this process, at the times `take` is given. */
export const makeMemory = (): {
  readonly take: (key: string, bucket: Bucket, now: number, cost?: number) => number
  /** Buckets held, and how many times they were all walked to forget the refilled ones. */
  readonly held: () => { readonly buckets: number; readonly prunes: number }
} => {
  const buckets = new Map<string, Held>()
  let pruneAt = PRUNE_OVER
  let prunes = 0
  const refill = (held: Held, now: number) => {
    held.tokens = Math.min(held.capacity, held.tokens + Math.max(0, now - held.at) * held.perMilli)
    held.at = now
  }
  return {
    take: (key, bucket, now, costIn) => {
      const { capacity, cost, perSecond } = normalise(bucket, costIn)
      const perMilli = perSecond / 1000
      let held = buckets.get(key)
      // A bucket whose shape changed starts afresh with the new shape.
      if (held !== undefined && (held.capacity !== capacity || held.perMilli !== perMilli)) {
        buckets.delete(key)
        held = undefined
      }
      if (held === undefined) {
        if (buckets.size >= pruneAt) {
          for (const [k, b] of buckets) {
            refill(b, now)
            if (b.tokens >= b.capacity) buckets.delete(k)
          }
          pruneAt = Math.max(PRUNE_OVER, 2 * buckets.size)
          prunes++
        }
        buckets.set(key, (held = { tokens: capacity, at: now, capacity, perMilli }))
      }
      refill(held, now)
      if (held.tokens >= cost) {
        held.tokens -= cost
        return 0
      }
      return Math.ceil((cost - held.tokens) / perMilli)
    },
    held: () => ({ buckets: buckets.size, prunes })
  }
}

/** The in-process token buckets, on the `Clock`. */
export const memory = (): TokenBucketService => {
  const buckets = makeMemory()
  return {
    kind: "in-process",
    take: (key, bucket, cost) => Effect.map(Clock.currentTimeMillis, (now) => buckets.take(key, bucket, now, cost))
  }
}

export const layerMemory: Layer.Layer<TokenBucket> = Layer.sync(TokenBucket, memory)

/**
 * KEYS[1] the bucket (a hash: tokens, at); ARGV capacity, tokens per millisecond, cost. Refill
 * from Redis's clock, take if there is enough, keep the key only as long as it takes to refill
 * (a full bucket is what a missing key means). Returns the wait in milliseconds, 0 when taken.
 */
const SCRIPT = `
local capacity = tonumber(ARGV[1])
local perMilli = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1])
local at = tonumber(held[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
if now > at then tokens = math.min(capacity, tokens + (now - at) * perMilli) end
if tokens > capacity then tokens = capacity end
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) / perMilli)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / perMilli) + 1000)
return wait
`

/** How long a take waits for Redis before answering from this process. */
const REDIS_WAIT_MILLIS = 500

type WithScript = { swarmTokenBucket: (key: string, capacity: string, perMilli: string, cost: string) => Promise<number> }

/** The buckets in Redis (`<prefix>bucket:<key>`), shared by every process on it. */
export const redis = Effect.gen(function*() {
  const connection = yield* Redis
  const client = connection.client as typeof connection.client & WithScript
  if (typeof client.swarmTokenBucket !== "function") client.defineCommand("swarmTokenBucket", { numberOfKeys: 1, lua: SCRIPT })
  const fallback = makeMemory()
  const take = (key: string, bucket: Bucket, costIn?: number): Effect.Effect<number> => {
    const { capacity, cost, perSecond } = normalise(bucket, costIn)
    const local = Effect.map(Clock.currentTimeMillis, (now) => fallback.take(key, bucket, now, cost))
    if (!connection.ready()) {
      return Effect.zipRight(Effect.sync(() => connection.failed("rate limit", 1, new Error("not connected"))), local)
    }
    // The shape is part of the key: two limits with different shapes on one key never share a bucket.
    const redisKey = `${connection.prefix}bucket:${capacity}/${perSecond}:${key}`
    return Effect.tryPromise(() => client.swarmTokenBucket(redisKey, String(capacity), String(perSecond / 1000), String(cost))).pipe(
      Effect.timeoutFail({ duration: REDIS_WAIT_MILLIS, onTimeout: () => new Error(`no answer within ${REDIS_WAIT_MILLIS} ms`) }),
      Effect.map((wait) => Math.max(0, Number(wait))),
      Effect.catchAll((error) =>
        Effect.zipRight(Effect.sync(() => connection.failed("rate limit", 1, error instanceof Error && error.cause !== undefined ? error.cause : error)), local)
      ),
      Effect.withSpan("TokenBucket.take", { attributes: { key } })
    )
  }
  return { kind: "redis", take } satisfies TokenBucketService
})

export const layerRedis: Layer.Layer<TokenBucket, never, Redis> = Layer.effect(TokenBucket, redis)
