/**
 * The chat's chunks across processes. The system agent that answers a question runs in the process
 * the question was asked of, and its chunks go to that process's chat watchers (SSE) at once; with
 * `REDIS_URL` set they are also published, so a dashboard watching the run's chat on another server
 * sees the answer too, token by token.
 *
 * Redis pub/sub: each chunk is `PUBLISH <prefix>chat:<run> {"origin", "chunk"}` from the answering
 * process; every process listens to `<prefix>chat:*` (one subscriber connection, subscribed again
 * each time it connects) and hands on the chunks it did not publish itself. At most once, like any
 * live feed here: a chunk published while Redis is away is counted and lost to the other servers
 * (not to this one's watchers), and what an answer said is in `chat.history` whatever happened.
 * Without Redis (`layerMemory`) a process's chat is its own.
 */
import { randomUUID } from "node:crypto"
import { Context, Effect, Either, Layer, Metric, Schema } from "effect"
import { ChatChunk } from "../../schemas/Chat.js"
import { Redis } from "./Redis.js"

export interface ChatFanoutService {
  /** Send a chunk of `run`'s chat to the other processes (synchronous, never blocks, never fails). */
  readonly publish: (run: string, chunk: ChatChunk) => void
  /** Where the chunks other processes published go (one listener; a later call replaces it). */
  readonly listen: (listener: (run: string, chunk: ChatChunk) => void) => void
  readonly kind: "in-process" | "redis"
}

export class ChatFanout extends Context.Tag("swarm/bus/ChatFanout")<ChatFanout, ChatFanoutService>() {}

/** Chunks from another process that did not decode (another version, or not ours): dropped. */
export const undecodable = Metric.counter("swarm_chat_fanout_undecodable", {
  description: "chat chunks received from Redis that did not decode; dropped"
})

/** One process: nothing to send to, nothing to hear. */
export const layerMemory: Layer.Layer<ChatFanout> = Layer.succeed(ChatFanout, {
  publish: () => {},
  listen: () => {},
  kind: "in-process"
})

const Published = Schema.parseJson(Schema.Struct({ origin: Schema.String, chunk: ChatChunk }))
const encode = Schema.encodeSync(Published)
const decode = Schema.decodeUnknownEither(Published)

/** Through the process's Redis connection; the subscriber connection closes with the layer. */
export const layerRedis: Layer.Layer<ChatFanout, never, Redis> = Layer.scoped(
  ChatFanout,
  Effect.gen(function*() {
    const redis = yield* Redis
    const channels = `${redis.prefix}chat:`
    const pattern = `${channels}*`
    // This process's chunks come back to it from Redis: recognised by their origin, and skipped.
    const origin = randomUUID()
    let listener: ((run: string, chunk: ChatChunk) => void) | undefined
    const subscriber = yield* redis.connection("chat")
    const subscribe = () => {
      subscriber.psubscribe(pattern).catch((error: unknown) => redis.failed("chat subscribe", 1, error))
    }
    // Each (re)connection subscribes again: a subscription made while Redis was away never was.
    subscriber.on("ready", subscribe)
    if (subscriber.status === "ready") subscribe()
    subscriber.on("pmessage", (_pattern: string, channel: string, message: string) => {
      const decoded = decode(message)
      if (Either.isLeft(decoded)) {
        undecodable.unsafeUpdate(1, [])
        return
      }
      if (decoded.right.origin === origin || !channel.startsWith(channels)) return
      listener?.(channel.slice(channels.length), decoded.right.chunk)
    })
    return {
      publish: (run, chunk) => {
        redis.client.publish(`${channels}${run}`, encode({ origin, chunk })).catch((error: unknown) => redis.failed("chat publish", 1, error))
      },
      listen: (next) => {
        listener = next
      },
      kind: "redis"
    } satisfies ChatFanoutService
  })
)
