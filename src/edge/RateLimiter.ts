/**
 * A rate limit by key (the webhooks use one per strategy): a token bucket of `capacity` tokens
 * refilled at `perSecond`, each request taking one. Behind a Tag so that several processes can
 * share one through Redis later (DESIGN.md: rate limits are Redis or in-process); `layerMemory` is
 * the in-process default, whose buckets live and die with the process.
 */
import { Clock, Context, Effect, Layer } from "effect"

export interface RateLimiterService {
  /** Take a token for `key`: 0 when one was there, else how many milliseconds until there is one. */
  readonly take: (key: string) => Effect.Effect<number>
}

export class RateLimiter extends Context.Tag("swarm/edge/RateLimiter")<RateLimiter, RateLimiterService>() {}

export interface Options {
  /** The burst a key may send at once. */
  readonly capacity: number
  /** Tokens given back per second. */
  readonly perSecond: number
}

interface Bucket {
  tokens: number
  at: number
}

/** Past this many keys, buckets that have refilled are forgotten (a full bucket is what a new key gets). */
const PRUNE_OVER = 10_000

/** The in-process token buckets: exact for one process. */
export const make = (options: Options): RateLimiterService => {
  const capacity = Math.max(1, options.capacity)
  const perMilli = Math.max(1e-9, options.perSecond) / 1000
  const buckets = new Map<string, Bucket>()
  const refill = (bucket: Bucket, now: number) => {
    bucket.tokens = Math.min(capacity, bucket.tokens + Math.max(0, now - bucket.at) * perMilli)
    bucket.at = now
  }
  return {
    take: (key) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        let bucket = buckets.get(key)
        if (bucket === undefined) {
          if (buckets.size >= PRUNE_OVER) {
            for (const [k, b] of buckets) {
              refill(b, now)
              if (b.tokens >= capacity) buckets.delete(k)
            }
          }
          buckets.set(key, (bucket = { tokens: capacity, at: now }))
        }
        refill(bucket, now)
        if (bucket.tokens >= 1) {
          bucket.tokens -= 1
          return 0
        }
        return Math.ceil((1 - bucket.tokens) / perMilli)
      })
  }
}

export const layerMemory = (options: Options) => Layer.sync(RateLimiter, () => make(options))
