/**
 * Keys seen recently, for "have we done this already?" checks that must hold across processes:
 * `claim` takes a key for a while (Redis: `SET key NX PX ttl`, atomic across every process on it;
 * in process: a map of expiry times) and says whether it was free.
 *
 * The webhooks do NOT use it for their alerts: an alert's key is claimed in the database, in the
 * transaction that delivers it (store/Webhooks.ts `claimAlert`: a unique key that survives restarts
 * and releases the key when no run could take the alert, and that answers a repeat with the runs
 * the first one reached). The database stays the truth there; a pre-check here could only answer a
 * repeat without those runs, so it is not wired in. This service is for keys whose loss costs a
 * repeat, not a wrong answer.
 *
 * Redis away: the Redis layer claims in this process instead (a repeat that reaches another process
 * during the outage is not caught) and counts the failure; it never fails the caller.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { Redis } from "./Redis.js"

export interface IdempotencyKeysService {
  /** Take `key` for `ttlMillis`: true when it was free (now taken), false when taken already. */
  readonly claim: (key: string, ttlMillis: number) => Effect.Effect<boolean>
  /** Whether `key` is taken now. */
  readonly seen: (key: string) => Effect.Effect<boolean>
  /** Let `key` go (the work it guarded failed and may be done again). */
  readonly release: (key: string) => Effect.Effect<void>
  readonly kind: "in-process" | "redis"
}

export class IdempotencyKeys extends Context.Tag("swarm/bus/IdempotencyKeys")<IdempotencyKeys, IdempotencyKeysService>() {}

/** Past this many keys, the expired ones are let go. */
const SWEEP_OVER = 10_000

/** Keys with their expiry times, at the times given (the layer reads the `Clock`). */
export const makeMemory = () => {
  const keys = new Map<string, number>()
  const live = (key: string, now: number) => {
    const until = keys.get(key)
    if (until === undefined) return false
    if (until > now) return true
    keys.delete(key)
    return false
  }
  return {
    claim: (key: string, ttlMillis: number, now: number): boolean => {
      if (live(key, now)) return false
      if (keys.size >= SWEEP_OVER) for (const [k, until] of keys) if (until <= now) keys.delete(k)
      if (ttlMillis > 0) keys.set(key, now + ttlMillis)
      return true
    },
    seen: (key: string, now: number): boolean => live(key, now),
    release: (key: string): void => void keys.delete(key),
    size: () => keys.size
  }
}

export const memory = (): IdempotencyKeysService => {
  const keys = makeMemory()
  return {
    kind: "in-process",
    claim: (key, ttl) => Effect.map(Clock.currentTimeMillis, (now) => keys.claim(key, ttl, now)),
    seen: (key) => Effect.map(Clock.currentTimeMillis, (now) => keys.seen(key, now)),
    release: (key) => Effect.sync(() => keys.release(key))
  }
}

export const layerMemory: Layer.Layer<IdempotencyKeys> = Layer.sync(IdempotencyKeys, memory)

const REDIS_WAIT_MILLIS = 500

/** The keys in Redis (`<prefix>idem:<key>`), shared by every process on it. */
export const redis = Effect.gen(function*() {
  const connection = yield* Redis
  const { client } = connection
  const fallback = makeMemory()
  const keyOf = (key: string) => `${connection.prefix}idem:${key}`
  /** `command` against Redis, or `local` (counted) when Redis cannot answer in time. */
  const orLocal = <A>(command: () => Promise<A>, local: Effect.Effect<A>): Effect.Effect<A> =>
    connection.ready()
      ? Effect.tryPromise(command).pipe(
        Effect.timeoutFail({ duration: REDIS_WAIT_MILLIS, onTimeout: () => new Error(`no answer within ${REDIS_WAIT_MILLIS} ms`) }),
        Effect.catchAll((error) =>
          Effect.zipRight(Effect.sync(() => connection.failed("idempotency key", 1, error instanceof Error && error.cause !== undefined ? error.cause : error)), local)
        )
      )
      : Effect.zipRight(Effect.sync(() => connection.failed("idempotency key", 1, new Error("not connected"))), local)
  return {
    kind: "redis",
    claim: (key, ttl) =>
      orLocal(
        async () => (await client.set(keyOf(key), "1", "PX", Math.max(1, Math.ceil(ttl)), "NX")) === "OK",
        Effect.map(Clock.currentTimeMillis, (now) => fallback.claim(key, ttl, now))
      ).pipe(Effect.withSpan("IdempotencyKeys.claim")),
    seen: (key) =>
      orLocal(
        async () => (await client.exists(keyOf(key))) === 1,
        Effect.map(Clock.currentTimeMillis, (now) => fallback.seen(key, now))
      ),
    release: (key) =>
      Effect.zipRight(
        Effect.sync(() => fallback.release(key)),
        orLocal(async () => void (await client.del(keyOf(key))), Effect.void)
      )
  } satisfies IdempotencyKeysService
})

export const layerRedis: Layer.Layer<IdempotencyKeys, never, Redis> = Layer.effect(IdempotencyKeys, redis)
