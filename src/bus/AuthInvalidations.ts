/**
 * The edge's cached keys, forgotten across processes. A server caches a key's answer for 30 s
 * (edge/AuthLive.ts); when an admin revokes a key, disables or enables a user or changes a role
 * through one server, that server forgets the user's cached answers at once, and with `REDIS_URL`
 * set tells the others, which forget them too.
 *
 * Redis pub/sub, numbered: the server that made the change (after it was committed) runs one script
 * that increments `<prefix>auth:forget:seq` and publishes `{"seq", "origin", "user"}` on
 * `<prefix>auth:forget` with that number; every server subscribes to that channel (one subscriber
 * connection, subscribed again each time it connects) and hands on the users it did not publish
 * itself. Pub/sub delivers at most once — a message published while a server's subscriber is away
 * (reconnecting, killed with `CLIENT KILL`, across a network blip) is lost to it — and a lost
 * message here would leave a revoked key working on that server for its cache's 30 s. So a server
 * that may have missed one forgets every cached answer (`Everyone`: each key is looked up again at
 * its next request), which costs a lookup per key and never a wrong answer:
 * - its subscriber connected again (anything may have been published meanwhile);
 * - a message's number is not the next one (one between was lost), or is lower (Redis restarted);
 * - the counter, read every `check` (5 s), is past the last number heard and was already at the
 *   last check (a message counted and never delivered: a subscriber connection silently dead).
 * The publisher keeps a change it could not send (Redis away) and sends it when Redis answers again
 * (tried every second): the other servers are told once it is possible, not only after their TTL.
 * Only a user id crosses Redis, never a key nor its hash. Without Redis (`layerMemory`) a process's
 * forgetting is its own.
 */
import { randomUUID } from "node:crypto"
import { Context, Duration, Effect, Either, Layer, Schema } from "effect"
import { Redis } from "./Redis.js"

/** What another process says to forget: one user's cached answers, or every one (something may have been missed). */
export type Forget =
  | { readonly _tag: "User"; readonly userId: string }
  | { readonly _tag: "Everyone"; readonly reason: string }

export interface AuthInvalidationsService {
  /** Tell the other processes to forget `userId`'s cached keys (synchronous, never blocks, never fails). */
  readonly publish: (userId: string) => void
  /** Where what other processes say goes (one listener; a later call replaces it). */
  readonly listen: (listener: (forget: Forget) => void) => void
  readonly kind: "in-process" | "redis"
}

export class AuthInvalidations extends Context.Tag("swarm/bus/AuthInvalidations")<AuthInvalidations, AuthInvalidationsService>() {}

/** One process: nothing to tell, nothing to hear. */
export const layerMemory: Layer.Layer<AuthInvalidations> = Layer.succeed(AuthInvalidations, {
  publish: () => {},
  listen: () => {},
  kind: "in-process"
})

// `seq` optional: a message of a version before it is still heard (and one of this version is heard
// by that version, which ignores the field).
const Published = Schema.parseJson(Schema.Struct({ seq: Schema.optional(Schema.Int), origin: Schema.String, user: Schema.String }))
const encode = Schema.encodeSync(Published)
const decode = Schema.decodeUnknownEither(Published)

/** The channel of `prefix`'s servers (pub/sub ignores Redis's database number: the prefix keeps deployments apart). */
export const channelOf = (prefix: string) => `${prefix}auth:forget`

/** The counter of the messages published on the channel. */
export const counterOf = (prefix: string) => `${prefix}auth:forget:seq`

/** Numbered and published at once: no message without a number, no number without a message. */
const PUBLISH_SCRIPT = `local n = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], '{"seq":' .. n .. ',' .. string.sub(ARGV[2], 2))
return n`

export interface Options {
  /** How often the counter is read to find a message lost without a reconnection. Default 5 s. */
  readonly check?: Duration.DurationInput
  /** How often a change that could not be sent is tried again. Default 1 s. */
  readonly retry?: Duration.DurationInput
}

export const defaults = { check: Duration.seconds(5), retry: Duration.seconds(1) } as const

/** Through the process's Redis connection; the subscriber connection closes with the layer. */
export const layerRedisWith = (options: Options = {}): Layer.Layer<AuthInvalidations, never, Redis> =>
  Layer.scoped(
    AuthInvalidations,
    Effect.gen(function*() {
      const redis = yield* Redis
      const channel = channelOf(redis.prefix)
      const counter = counterOf(redis.prefix)
      const checkMillis = Math.max(10, Duration.toMillis(options.check ?? defaults.check))
      const retryMillis = Math.max(10, Duration.toMillis(options.retry ?? defaults.retry))
      // This process's messages come back to it from Redis: recognised by their origin, and skipped.
      const origin = randomUUID()
      let listener: ((forget: Forget) => void) | undefined
      const tell = (forget: Forget) => listener?.(forget)
      /** The highest number heard (or read from the counter); undefined before the first connection's read. */
      let heard: number | undefined = undefined
      /** The counter as the last check read it: a number up to it not heard by the next check was lost. */
      let counted: number | undefined = undefined
      let closed = false
      const subscriber = yield* redis.connection("auth")

      /** Where the counter stands now: what is heard from here on follows it. */
      const readCounter = () =>
        redis.client.get(counter).then((value) => {
          const at = value === null ? 0 : Number(value)
          heard = Math.max(heard ?? 0, Number.isSafeInteger(at) ? at : 0)
          counted = undefined
        }, (error: unknown) => redis.failed("auth counter", 1, error))

      const onReady = () => {
        subscriber.subscribe(channel).then(
          () => {
            // Whatever was published while it was not subscribed is lost to it (the first time too:
            // a server that started while Redis was away may have cached answers meanwhile).
            tell({ _tag: "Everyone", reason: "the subscriber connected (again)" })
            return readCounter()
          },
          (error: unknown) => redis.failed("auth subscribe", 1, error)
        )
      }
      // Each (re)connection subscribes again: a subscription made while Redis was away never was.
      subscriber.on("ready", onReady)
      if (subscriber.status === "ready") onReady()
      subscriber.on("message", (from: string, message: string) => {
        if (from !== channel) return
        const decoded = decode(message)
        // Another version's, or not ours: nothing to forget.
        if (Either.isLeft(decoded)) return
        const { origin: sender, seq, user } = decoded.right
        if (seq !== undefined) {
          if (heard !== undefined && seq > heard + 1) tell({ _tag: "Everyone", reason: `messages ${heard + 1} to ${seq - 1} were lost` })
          heard = Math.max(heard ?? seq, seq)
        }
        if (sender !== origin) tell({ _tag: "User", userId: user })
      })

      // The counter, every `check`: a number counted at the last check and still not heard was lost.
      const check = setInterval(() => {
        if (closed || subscriber.status !== "ready" || !redis.ready()) return
        redis.client.get(counter).then((value) => {
          const at = value === null ? 0 : Number(value)
          if (!Number.isSafeInteger(at)) return
          if (heard === undefined) {
            // The read after subscribing failed: subscribed since, whatever comes from here on is heard.
            heard = at
          } else if (counted !== undefined && heard < counted) {
            tell({ _tag: "Everyone", reason: `messages ${heard + 1} to ${counted} were counted and never heard` })
            heard = counted
          } else if (at < heard) {
            // Started over without this subscriber reconnecting (flushed): numbers go on from there.
            tell({ _tag: "Everyone", reason: "the counter started over" })
            heard = at
          }
          counted = at
        }, (error: unknown) => redis.failed("auth counter", 1, error))
      }, checkMillis)
      check.unref?.()

      /** Changes not sent yet (Redis away), in order: sent when it answers again. */
      const unsent = new Set<string>()
      let retrying: ReturnType<typeof setTimeout> | undefined = undefined
      const send = (userId: string) => {
        unsent.delete(userId)
        redis.client.eval(PUBLISH_SCRIPT, 1, counter, channel, encode({ origin, user: userId })).catch((error: unknown) => {
          redis.failed("auth publish", 1, error)
          if (closed) return
          unsent.add(userId)
          if (retrying === undefined) {
            retrying = setTimeout(retry, retryMillis)
            retrying.unref?.()
          }
        })
      }
      const retry = () => {
        retrying = undefined
        if (closed) return
        if (!redis.ready()) {
          retrying = setTimeout(retry, retryMillis)
          retrying.unref?.()
          return
        }
        for (const userId of [...unsent]) send(userId)
      }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          closed = true
          clearInterval(check)
          if (retrying !== undefined) clearTimeout(retrying)
          subscriber.off("ready", onReady)
        })
      )
      return {
        publish: send,
        listen: (next) => {
          listener = next
        },
        kind: "redis"
      } satisfies AuthInvalidationsService
    })
  )

export const layerRedis: Layer.Layer<AuthInvalidations, never, Redis> = layerRedisWith()
