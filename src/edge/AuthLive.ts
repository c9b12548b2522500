/**
 * The `Authenticator` on the database: API keys checked by `ApiKeys`, behind a small in-memory
 * cache from a key's hash to its answer, so that a burst of requests with one key — an SSE
 * reconnect storm, a dashboard's polling — costs one database lookup, not one per request.
 *
 * The price is staleness, bounded by the time to live (30 s): a key revoked, a user disabled or a
 * role changed is seen by this process within 30 s, not at once. Refusals are cached as long,
 * so re-enabling a user also takes up to 30 s. A database failure is never cached.
 */
import { SqlClient } from "@effect/sql"
import { Cache, Cause, Context, Duration, Effect, Exit, Layer, Option } from "effect"
import type { Principal, Unauthorized } from "../../schemas/Auth.js"
import { Unavailable } from "../../schemas/Rpc.js"
import * as ApiKeys from "../store/ApiKeys.js"
import type { StoreError } from "../store/StoreError.js"
import { Authenticator, type AuthService } from "./Auth.js"

/** How long an answer is reused: the longest a revocation takes to be seen. */
export const TTL = Duration.seconds(30)

/** `TTL` unless a test gives a shorter one (`AuthenticatorLive` reads it: a whole server's tests see a revocation at once). */
export class Ttl extends Context.Reference<Ttl>()("swarm/edge/AuthLive/Ttl", {
  defaultValue: (): Duration.Duration => TTL
}) {}

/** Answers kept at most (the least recently used go first): bounds the memory a flood of distinct keys can take. */
export const CAPACITY = 10_000

/** A principal or a refusal — not a failure of the database. */
const isAnswer = (exit: Exit.Exit<Principal, Unauthorized | StoreError>): boolean =>
  Exit.isSuccess(exit) || Option.exists(Cause.failureOption(exit.cause), (error) => error._tag === "Unauthorized")

export interface Options {
  readonly ttl?: Duration.DurationInput
  readonly capacity?: number
}

/**
 * An authenticator over `lookup` (a key's hash → its principal), cached. Time is Effect's `Clock`,
 * so a test's `TestClock` moves it. Concurrent requests for one uncached hash share one lookup.
 */
export const make = <R>(
  lookup: (keyHash: string) => Effect.Effect<Principal, Unauthorized | StoreError, R>,
  options: Options = {}
): Effect.Effect<AuthService, never, R> =>
  Effect.gen(function*() {
    const ttl = Duration.decode(options.ttl ?? TTL)
    const cache = yield* Cache.makeWith({
      capacity: options.capacity ?? CAPACITY,
      lookup,
      // Only answers are cached; a failing database is asked again by the next request.
      timeToLive: (exit) => isAnswer(exit) ? ttl : Duration.zero
    })
    const authenticate = Effect.fn("Authenticator.authenticate")(function*(key: string) {
      // A malformed key is refused before it is hashed or takes a place in the cache.
      if (!ApiKeys.wellFormed(key)) return yield* ApiKeys.refused()
      const keyHash = ApiKeys.hashKey(key)
      // Concurrent callers with one key wait on the first caller's lookup, and the cache ends that
      // lookup for all of them when its caller is interrupted (an RPC stream ending while it
      // re-checks its key; a client going away mid-request): another caller, an SSE stream
      // re-checking the same key, would be interrupted too, and close without its notice. So the
      // lookup runs to its end in a fiber of its own, while its caller may still go at once.
      return yield* cache.get(keyHash).pipe(
        Effect.uninterruptible,
        Effect.disconnect,
        Effect.catchTag("StoreError", (error) =>
          // Out of the cache at once (a zero time to live still lasts until the clock moves).
          cache.invalidate(keyHash).pipe(
            Effect.zipRight(Effect.logError("authentication: the database failed").pipe(Effect.annotateLogs({ reason: error.reason }))),
            Effect.zipRight(Effect.fail(new Unavailable({ reason: "cannot check the API key now: the database is unavailable; retry later" })))
          ))
      )
    })
    return { authenticate } satisfies AuthService
  })

/**
 * The authenticator the server uses. A database that cannot answer is `Unavailable` (503 over
 * HTTP), never `Unauthorized`, which would make a client throw away a good key.
 */
export const AuthenticatorLive: Layer.Layer<Authenticator, never, SqlClient.SqlClient> = Layer.effect(
  Authenticator,
  Effect.flatMap(Ttl, (ttl) => make(ApiKeys.authenticateHash, { ttl }))
)
