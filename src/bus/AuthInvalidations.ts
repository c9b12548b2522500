/**
 * The edge's cached keys, forgotten across processes. A server caches a key's answer for 30 s
 * (edge/AuthLive.ts); when an admin revokes a key, disables or enables a user or changes a role
 * through one server, that server forgets the user's cached answers at once, and with `REDIS_URL`
 * set tells the others, which forget them too.
 *
 * Redis pub/sub: `PUBLISH <prefix>auth:forget {"origin", "user"}` from the server that made the
 * change (after it was committed); every server subscribes to that one channel (one subscriber
 * connection, subscribed again each time it connects) and hands on the users it did not publish
 * itself. At most once, like any pub/sub: a message published while Redis is away, or while a
 * server's subscriber is reconnecting, is lost to that server — counted (`redis_command_failures`
 * on the publisher) — and it sees the change within its cache's 30 s, as without Redis; the
 * procedures that matter ask the database anyway (edge/RpcAuth.ts). Only a user id crosses Redis,
 * never a key nor its hash. Without Redis (`layerMemory`) a process's forgetting is its own.
 */
import { randomUUID } from "node:crypto"
import { Context, Effect, Either, Layer, Schema } from "effect"
import { Redis } from "./Redis.js"

export interface AuthInvalidationsService {
  /** Tell the other processes to forget `userId`'s cached keys (synchronous, never blocks, never fails). */
  readonly publish: (userId: string) => void
  /** Where the users other processes published go (one listener; a later call replaces it). */
  readonly listen: (listener: (userId: string) => void) => void
  readonly kind: "in-process" | "redis"
}

export class AuthInvalidations extends Context.Tag("swarm/bus/AuthInvalidations")<AuthInvalidations, AuthInvalidationsService>() {}

/** One process: nothing to tell, nothing to hear. */
export const layerMemory: Layer.Layer<AuthInvalidations> = Layer.succeed(AuthInvalidations, {
  publish: () => {},
  listen: () => {},
  kind: "in-process"
})

const Published = Schema.parseJson(Schema.Struct({ origin: Schema.String, user: Schema.String }))
const encode = Schema.encodeSync(Published)
const decode = Schema.decodeUnknownEither(Published)

/** The channel of `prefix`'s servers (pub/sub ignores Redis's database number: the prefix keeps deployments apart). */
export const channelOf = (prefix: string) => `${prefix}auth:forget`

/** Through the process's Redis connection; the subscriber connection closes with the layer. */
export const layerRedis: Layer.Layer<AuthInvalidations, never, Redis> = Layer.scoped(
  AuthInvalidations,
  Effect.gen(function*() {
    const redis = yield* Redis
    const channel = channelOf(redis.prefix)
    // This process's messages come back to it from Redis: recognised by their origin, and skipped.
    const origin = randomUUID()
    let listener: ((userId: string) => void) | undefined
    const subscriber = yield* redis.connection("auth")
    const subscribe = () => {
      subscriber.subscribe(channel).catch((error: unknown) => redis.failed("auth subscribe", 1, error))
    }
    // Each (re)connection subscribes again: a subscription made while Redis was away never was.
    subscriber.on("ready", subscribe)
    if (subscriber.status === "ready") subscribe()
    subscriber.on("message", (from: string, message: string) => {
      if (from !== channel) return
      const decoded = decode(message)
      // Another version's, or not ours: nothing to forget.
      if (Either.isLeft(decoded) || decoded.right.origin === origin) return
      listener?.(decoded.right.user)
    })
    return {
      publish: (userId) => {
        redis.client.publish(channel, encode({ origin, user: userId })).catch((error: unknown) => redis.failed("auth publish", 1, error))
      },
      listen: (next) => {
        listener = next
      },
      kind: "redis"
    } satisfies AuthInvalidationsService
  })
)
