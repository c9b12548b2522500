/**
 * The `Authenticator` on the database: API keys checked by `ApiKeys`, behind a small in-memory
 * cache from a key's hash to its answer, so that a burst of requests with one key — an SSE
 * reconnect storm, a dashboard's polling — costs one database lookup, not one per request.
 *
 * A change to a key's or a user's standing made through this process (`admin.revokeKey`,
 * `admin.setUser`: disabled, enabled, a new role) is seen at once: the admin handler calls
 * `forgetUser`, which drops every cached answer of that user's keys, and every cached refusal (a
 * refusal does not say whose key it was, and re-enabling a user must work at once too). With
 * `REDIS_URL` set, the other servers are told through Redis (`AuthInvalidations.ts`) and forget as
 * well, within the moment the message takes. A server that may have missed such a message (its
 * subscriber reconnected, a number skipped: AuthInvalidations.ts) forgets every cached answer. Without
 * Redis — or while Redis is away from the server that made the change — another server still sees
 * the change within the cache's 30 s (TTL) for the reads; every procedure that changes something, and administration, asks the database every time
 * (`RpcAuth.ts` `fromDatabase`). A database failure is never cached.
 *
 * Forgetting is by generation, not by walking the cache: each answer remembers the generation its
 * lookup began in, and one older than the last forgetting of its user (of refusals, for a refusal)
 * is looked up again. So a lookup that read the database just before the change and answered just
 * after it is not kept either.
 */
import { SqlClient } from "@effect/sql"
import { Cache, Clock, Context, Deferred, Duration, Effect, FiberId, Layer } from "effect"
import type { Principal, Unauthorized } from "../../schemas/Auth.js"
import { Unavailable } from "../../schemas/Rpc.js"
import { AuthInvalidations } from "../bus/AuthInvalidations.js"
import * as ApiKeys from "../store/ApiKeys.js"
import type { StoreError } from "../store/StoreError.js"
import { Authenticator, type AuthService } from "./Auth.js"

/** How long an answer is reused: the longest a change made through another process takes to be seen here without Redis. */
export const TTL = Duration.seconds(30)

/** `TTL` unless a test gives a shorter one (`AuthenticatorLive` reads it: a whole server's tests see at once a change it is not told of). */
export class Ttl extends Context.Reference<Ttl>()("swarm/edge/AuthLive/Ttl", {
  defaultValue: (): Duration.Duration => TTL
}) {}

/** Answers kept at most (the least recently used go first): bounds the memory a flood of distinct keys can take. */
export const CAPACITY = 10_000

/**
 * A cached answer: the key's principal, or the refusal; and the generation its lookup began in
 * (see `make`). A failure of the database is no answer, and is not cached.
 */
interface Answer {
  readonly principal: Principal | undefined
  readonly refusal: Unauthorized | undefined
  readonly generation: number
}

export interface Options {
  readonly ttl?: Duration.DurationInput
  readonly capacity?: number
  /** Told of each `forgetUser` here, to tell the other processes (the Redis bus); not of a `forgotten` told by them. */
  readonly publish?: (userId: string) => void
}

/** The authenticator, and how to forget a user when another process says so (without telling anyone again). */
export interface Made extends AuthService {
  readonly forgotten: (userId: string) => Effect.Effect<void>
  /**
   * Another process may have changed anyone's standing and its word was lost (AuthInvalidations.ts):
   * every cached answer is looked up again at its next use.
   */
  readonly forgottenEveryone: Effect.Effect<void>
}

/**
 * An authenticator over `lookup` (a key's hash → its principal), cached. Time is Effect's `Clock`,
 * so a test's `TestClock` moves it. Concurrent requests for one uncached hash share one lookup.
 */
export const make = <R>(
  lookup: (keyHash: string) => Effect.Effect<Principal, Unauthorized | StoreError, R>,
  options: Options = {}
): Effect.Effect<Made, never, R> =>
  Effect.gen(function*() {
    const ttl = Duration.decode(options.ttl ?? TTL)
    const context = yield* Effect.context<R>()
    /**
     * The generation: one more at each forgetting. `users`: the generation of each user's last
     * forgetting, and when (kept while an answer from before it may still be cached: the TTL);
     * `refusals`: of the last forgetting of anyone (every refusal goes then).
     */
    let generation = 0
    let refusals = 0
    /** The generation of the last forgetting of everyone (another process may have changed anyone). */
    let everyone = 0
    const users = new Map<string, { readonly generation: number; readonly at: number }>()
    /** Completed at the next forgetting, then replaced: what the streams re-checking their key wait on. */
    let next = Deferred.unsafeMake<void>(FiberId.none)
    const answer = (keyHash: string): Effect.Effect<Answer, StoreError> =>
      Effect.suspend(() => {
        // Read before the database is: a change committed and forgotten after this may not be in what it reads.
        const began = generation
        return lookup(keyHash).pipe(
          Effect.map((principal): Answer => ({ principal, refusal: undefined, generation: began })),
          Effect.catchTag("Unauthorized", (refusal) => Effect.succeed<Answer>({ principal: undefined, refusal, generation: began })),
          Effect.provide(context)
        )
      })
    const stale = (cached: Answer): boolean =>
      cached.principal === undefined
        ? cached.generation < refusals
        : cached.generation < Math.max(everyone, users.get(cached.principal.userId)?.generation ?? 0)
    const cache = yield* Cache.makeWith({
      capacity: options.capacity ?? CAPACITY,
      lookup: answer,
      // Only answers are cached; a failing database is asked again by the next request.
      timeToLive: (exit) => exit._tag === "Success" ? ttl : Duration.zero
    })
    /** The cached answer, unless a forgetting since its lookup began made it stale: then a new one. */
    const current = (keyHash: string): Effect.Effect<Answer, StoreError> =>
      Effect.flatMap(cache.get(keyHash), (cached) =>
        stale(cached)
          // Only this answer: a newer one another caller has put meanwhile stays.
          ? Effect.zipRight(cache.invalidateWhen(keyHash, (value) => value === cached), current(keyHash))
          : Effect.succeed(cached))
    const unavailable = (keyHash: string | undefined) => (error: StoreError) =>
      // Out of the cache at once (a zero time to live still lasts until the clock moves).
      (keyHash === undefined ? Effect.void : cache.invalidate(keyHash)).pipe(
        Effect.zipRight(Effect.logError("authentication: the database failed").pipe(Effect.annotateLogs({ reason: error.reason }))),
        Effect.zipRight(Effect.fail(new Unavailable({ reason: "cannot check the API key now: the database is unavailable; retry later" })))
      )
    const settle = (found: Answer): Effect.Effect<Principal, Unauthorized> =>
      found.principal === undefined ? Effect.fail(found.refusal ?? ApiKeys.refused()) : Effect.succeed(found.principal)

    /**
     * The answer the cache holds for `keyHash`, complete and fresh (neither expired nor stale), or
     * undefined: a lookup under way, a failure of the database, or nothing.
     */
    const cachedAnswer = (keyHash: string): Effect.Effect<Answer | undefined> =>
      Effect.match(cache.getOptionComplete(keyHash), {
        onFailure: () => undefined,
        onSuccess: (cached) => (cached._tag === "None" || stale(cached.value) ? undefined : cached.value)
      })

    // Every request's: Effect.fnUntraced and its span, since Effect.fn makes an Error per call (its span's stack).
    const authenticate = Effect.fnUntraced(function*(key: string) {
      // A malformed key is refused before it is hashed or takes a place in the cache.
      if (!ApiKeys.wellFormed(key)) return yield* ApiKeys.refused()
      const keyHash = ApiKeys.hashKey(key)
      // Most requests: an answer the cache holds. There is no lookup to protect then, so no fiber
      // of its own (below) — a fiber per request was most of what authenticating one cost.
      const cached = yield* cachedAnswer(keyHash)
      if (cached !== undefined) return yield* settle(cached)
      // Concurrent callers with one key wait on the first caller's lookup, and the cache ends that
      // lookup for all of them when its caller is interrupted (an RPC stream ending while it
      // re-checks its key; a client going away mid-request): another caller, an SSE stream
      // re-checking the same key, would be interrupted too, and close without its notice. So the
      // lookup runs to its end in a fiber of its own, while its caller may still go at once.
      const found = yield* current(keyHash).pipe(
        Effect.uninterruptible,
        Effect.disconnect,
        Effect.catchTag("StoreError", unavailable(keyHash))
      )
      return yield* settle(found)
    }, Effect.withSpan("Authenticator.authenticate"))

    const authenticateNow = Effect.fn("Authenticator.authenticateNow")(function*(key: string) {
      if (!ApiKeys.wellFormed(key)) return yield* ApiKeys.refused()
      const keyHash = ApiKeys.hashKey(key)
      // The database's answer, whatever is cached; the cache is given it (this process's other
      // requests with the key see a change another process made, at once too). A failing database
      // leaves the cache as it was: the caller is `Unavailable`, never let through on a cached answer.
      const found = yield* answer(keyHash).pipe(Effect.catchTag("StoreError", unavailable(undefined)))
      yield* cache.set(keyHash, found)
      return yield* settle(found)
    })

    /** A forgetting: one more generation; `user`'s answers (every one's: undefined) and every refusal are stale. */
    const forget = (userId: string | undefined) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          generation++
          refusals = generation
          if (userId === undefined) everyone = generation
          else users.set(userId, { generation, at: now })
          // An answer from before a forgetting is gone a TTL after its lookup ended (a lookup under way
          // then ends soon after it): twice the TTL on, so is the need to remember what made it stale.
          for (const [user, forgot] of users) if (forgot.at <= now - 2 * Duration.toMillis(ttl)) users.delete(user)
          const woken = next
          next = Deferred.unsafeMake<void>(FiberId.none)
          return woken
        })).pipe(Effect.flatMap((woken) => Deferred.succeed(woken, undefined)), Effect.asVoid)

    const forgotten = (userId: string) => forget(userId)

    const forgetUser = (userId: string) =>
      Effect.zipRight(forgotten(userId), Effect.sync(() => options.publish?.(userId)))

    const holder = (key: string): Effect.Effect<Principal | undefined> =>
      !ApiKeys.wellFormed(key)
        ? Effect.succeed(undefined)
        : Effect.map(cache.getOptionComplete(ApiKeys.hashKey(key)), (cached) =>
          cached._tag === "None" || stale(cached.value) ? undefined : cached.value.principal)

    return {
      authenticate,
      authenticateNow,
      holder,
      forgetUser,
      nextChange: () => Deferred.await(next),
      forgotten,
      forgottenEveryone: forget(undefined)
    } satisfies Made
  })

/**
 * The authenticator the server uses, telling the other processes of what it forgets and hearing
 * theirs (`AuthInvalidations`: Redis, or nobody). A database that cannot answer is `Unavailable`
 * (503 over HTTP), never `Unauthorized`, which would make a client throw away a good key.
 */
export const AuthenticatorLive: Layer.Layer<Authenticator, never, SqlClient.SqlClient | AuthInvalidations> = Layer.effect(
  Authenticator,
  Effect.gen(function*() {
    const ttl = yield* Ttl
    const invalidations = yield* AuthInvalidations
    const made = yield* make(ApiKeys.authenticateHash, { ttl, publish: invalidations.publish })
    invalidations.listen((forget) => Effect.runSync(forget._tag === "User" ? made.forgotten(forget.userId) : made.forgottenEveryone))
    return made
  })
)
