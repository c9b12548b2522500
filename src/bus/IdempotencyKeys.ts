/**
 * Keys seen recently, for "have we done this already?" checks that must hold across processes:
 * `claim` takes a key for a while (Redis: `SET key NX PX ttl`, atomic across every process on it;
 * in process: a map of expiry times) and says whether it was free; a key may carry a value (`set`,
 * `get`), so that whoever finds it taken can be told what the first one did.
 *
 * The webhooks keep their alerts' acknowledgements here (Webhooks.ts): once the database has
 * delivered an alert (store/Webhooks.ts `claimAlert`, whose unique key stays the durable guarantee),
 * its key is `set` with the runs it reached, and a repeat — on any process sharing the Redis — is
 * answered from it without a database write. A key missing here (expired, flushed, Redis away)
 * only sends the repeat to the database, which answers it the same way.
 *
 * Redis away: the Redis layer answers from this process instead (a repeat that reaches another
 * process during the outage is not caught here) and counts the failure; it never fails the caller.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { Redis } from "./Redis.js"

export interface IdempotencyKeysService {
  /** Take `key` for `ttlMillis` (holding `value`, default "1"): true when it was free (now taken), false when taken already. */
  readonly claim: (key: string, ttlMillis: number, value?: string) => Effect.Effect<boolean>
  /** Whether `key` is taken now. */
  readonly seen: (key: string) => Effect.Effect<boolean>
  /** The value `key` holds, if it is taken. */
  readonly get: (key: string) => Effect.Effect<string | undefined>
  /** Take `key` for `ttlMillis` holding `value`, whether it was taken or not. */
  readonly set: (key: string, value: string, ttlMillis: number) => Effect.Effect<void>
  /** Let `key` go (the work it guarded failed and may be done again). */
  readonly release: (key: string) => Effect.Effect<void>
  readonly kind: "in-process" | "redis"
}

export class IdempotencyKeys extends Context.Tag("swarm/bus/IdempotencyKeys")<IdempotencyKeys, IdempotencyKeysService>() {}

/**
 * Past this many keys, the expired ones are let go; then again once the keys left have doubled. A
 * sweep walks every key, so sweeping on every put past a fixed size (as before) cost each alert a
 * walk over a day's keys — 1.8 ms a put at 100,000 — where doubling keeps it constant on average.
 */
const SWEEP_OVER = 10_000

/** Keys with their values and expiry times, at the times given (the layer reads the `Clock`). */
export const makeMemory = () => {
  const keys = new Map<string, { readonly until: number; readonly value: string }>()
  const live = (key: string, now: number) => {
    const held = keys.get(key)
    if (held === undefined) return undefined
    if (held.until > now) return held
    keys.delete(key)
    return undefined
  }
  let sweepAt = SWEEP_OVER
  let sweeps = 0
  const put = (key: string, value: string, ttlMillis: number, now: number) => {
    if (keys.size >= sweepAt) {
      for (const [k, held] of keys) if (held.until <= now) keys.delete(k)
      sweepAt = Math.max(SWEEP_OVER, 2 * keys.size)
      sweeps++
    }
    if (ttlMillis > 0) keys.set(key, { until: now + ttlMillis, value })
    else keys.delete(key)
  }
  return {
    claim: (key: string, ttlMillis: number, now: number, value = "1"): boolean => {
      if (live(key, now) !== undefined) return false
      put(key, value, ttlMillis, now)
      return true
    },
    seen: (key: string, now: number): boolean => live(key, now) !== undefined,
    get: (key: string, now: number): string | undefined => live(key, now)?.value,
    set: (key: string, value: string, ttlMillis: number, now: number): void => put(key, value, ttlMillis, now),
    release: (key: string): void => void keys.delete(key),
    size: () => keys.size,
    /** How many times every key was walked for expired ones. */
    sweeps: () => sweeps
  }
}

export const memory = (): IdempotencyKeysService => {
  const keys = makeMemory()
  return {
    kind: "in-process",
    claim: (key, ttl, value) => Effect.map(Clock.currentTimeMillis, (now) => keys.claim(key, ttl, now, value)),
    seen: (key) => Effect.map(Clock.currentTimeMillis, (now) => keys.seen(key, now)),
    get: (key) => Effect.map(Clock.currentTimeMillis, (now) => keys.get(key, now)),
    set: (key, value, ttl) => Effect.map(Clock.currentTimeMillis, (now) => keys.set(key, value, ttl, now)),
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
  const ttlOf = (ttl: number) => Math.max(1, Math.ceil(ttl))
  return {
    kind: "redis",
    claim: (key, ttl, value = "1") =>
      orLocal(
        async () => (await client.set(keyOf(key), value, "PX", ttlOf(ttl), "NX")) === "OK",
        Effect.map(Clock.currentTimeMillis, (now) => fallback.claim(key, ttl, now, value))
      ).pipe(Effect.withSpan("IdempotencyKeys.claim")),
    seen: (key) =>
      orLocal(
        async () => (await client.exists(keyOf(key))) === 1,
        Effect.map(Clock.currentTimeMillis, (now) => fallback.seen(key, now))
      ),
    get: (key) =>
      orLocal(
        async () => (await client.get(keyOf(key))) ?? undefined,
        Effect.map(Clock.currentTimeMillis, (now) => fallback.get(key, now))
      ).pipe(Effect.withSpan("IdempotencyKeys.get")),
    set: (key, value, ttl) =>
      orLocal(
        async () => void (await client.set(keyOf(key), value, "PX", ttlOf(ttl))),
        Effect.map(Clock.currentTimeMillis, (now) => fallback.set(key, value, ttl, now))
      ).pipe(Effect.withSpan("IdempotencyKeys.set")),
    release: (key) =>
      Effect.zipRight(
        Effect.sync(() => fallback.release(key)),
        orLocal(async () => void (await client.del(keyOf(key))), Effect.void)
      )
  } satisfies IdempotencyKeysService
})

export const layerRedis: Layer.Layer<IdempotencyKeys, never, Redis> = Layer.effect(IdempotencyKeys, redis)
