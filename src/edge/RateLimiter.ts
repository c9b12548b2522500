/**
 * A rate limit by key (the webhooks use one per strategy): a token bucket of `capacity` tokens
 * refilled at `perSecond`, each request taking one. The buckets are the `TokenBucket` service's
 * (src/bus/TokenBucket.ts): with Redis configured, one bucket per key for every server process
 * together; otherwise this process's own, which live and die with it.
 */
import { Clock, Context, Effect, Layer, Option } from "effect"
import * as TokenBucket from "../bus/TokenBucket.js"

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
  /** Whose limit this is, keeping its buckets apart from other limits' on the same keys. Default `rate`. */
  readonly name?: string
}

/** The limit over `buckets` (its keys are `<name>:<key>`). */
export const fromBuckets = (buckets: TokenBucket.TokenBucketService, options: Options): RateLimiterService => {
  const bucket: TokenBucket.Bucket = { capacity: options.capacity, perSecond: options.perSecond }
  const name = options.name ?? "rate"
  return { take: (key) => buckets.take(`${name}:${key}`, bucket) }
}

/** The in-process token buckets: exact for one process. */
export const make = (options: Options): RateLimiterService => {
  const buckets = TokenBucket.makeMemory()
  const bucket: TokenBucket.Bucket = { capacity: options.capacity, perSecond: options.perSecond }
  return { take: (key) => Effect.map(Clock.currentTimeMillis, (now) => buckets.take(key, bucket, now)) }
}

/**
 * The limit over the context's `TokenBucket` when it has one (the server's: shared through Redis
 * when `REDIS_URL` is set), else over buckets of its own in this process.
 */
export const layerMemory = (options: Options) =>
  Layer.effect(
    RateLimiter,
    Effect.map(Effect.serviceOption(TokenBucket.TokenBucket), (buckets) =>
      Option.match(buckets, { onNone: () => make(options), onSome: (shared) => fromBuckets(shared, options) }))
  )
