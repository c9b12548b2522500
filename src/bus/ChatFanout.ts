/**
 * The chat's chunks across processes. The system agent that answers a question runs in the process
 * the question was asked of, and its chunks go to that process's chat watchers (SSE) at once; with
 * `REDIS_URL` set they are also sent through Redis, so a dashboard watching the run's chat on another
 * server sees the answer too, token by token.
 *
 * A Redis Stream, not pub/sub: every chunk is an entry of `<prefix>chat` (`XADD … MAXLEN ~ 10000`,
 * fields `o` origin, `r` run, `c` the chunk's JSON) and every process reads the stream from where it
 * is (one blocking `XREAD` connection), handing on the chunks it did not send itself. Pub/sub
 * delivered at most once: a chunk published while a server's subscriber was reconnecting (a blip, a
 * `CLIENT KILL`) was lost to it, and its watchers saw an answer with words missing, or never saw it
 * end. A reader that reconnects goes on after the last entry it read, and a chunk that could not be
 * sent (Redis away) waits, in order with the ones after it, until Redis takes it (at most
 * `maxQueued`: past that the oldest are dropped and counted, and a watcher elsewhere may miss them —
 * what an answer said is in `chat.history` whatever happened). Without Redis (`layerMemory`) a
 * process's chat is its own.
 */
import { randomUUID } from "node:crypto"
import { Context, Effect, Either, Layer, Metric, Schema } from "effect"
import { ChatChunk } from "../../schemas/Chat.js"
import { Redis } from "./Redis.js"

export interface ChatFanoutService {
  /** Send a chunk of `run`'s chat to the other processes (synchronous, never blocks, never fails). */
  readonly publish: (run: string, chunk: ChatChunk) => void
  /** Where the chunks other processes sent go (one listener; a later call replaces it). */
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

const encode = Schema.encodeSync(Schema.parseJson(ChatChunk))
const decode = Schema.decodeUnknownEither(Schema.parseJson(ChatChunk))

/** The stream of `prefix`'s servers. */
export const streamOf = (prefix: string) => `${prefix}chat`

export interface Options {
  /** Entries the stream keeps, about (a reader away for longer than it takes to write them misses some). Default 10,000. */
  readonly keep?: number
  /** Chunks kept while Redis is away, to send once it is back. Default 10,000. */
  readonly maxQueued?: number
}

export const defaults = { keep: 10_000, maxQueued: 10_000 } as const

type RawEntries = ReadonlyArray<readonly [string, ReadonlyArray<string>]>
const isEntries = (value: unknown): value is RawEntries =>
  Array.isArray(value) && value.every((e) => Array.isArray(e) && typeof e[0] === "string" && Array.isArray(e[1]))

/** Through the process's Redis connections; the reader closes with the layer. */
export const layerRedisWith = (options: Options = {}): Layer.Layer<ChatFanout, never, Redis> =>
  Layer.scoped(
    ChatFanout,
    Effect.gen(function*() {
      const redis = yield* Redis
      const { client } = redis
      const key = streamOf(redis.prefix)
      const keep = Math.max(100, Math.trunc(options.keep ?? defaults.keep))
      const maxQueued = Math.max(1, Math.trunc(options.maxQueued ?? defaults.maxQueued))
      // This process's chunks come back to it from Redis: recognised by their origin, and skipped.
      const origin = randomUUID()
      let listener: ((run: string, chunk: ChatChunk) => void) | undefined
      let closed = false
      const reader = yield* redis.connection("chat", { commandTimeout: undefined })

      // -----------------------------------------------------------------------------------------
      // Sending: in order; what Redis did not take waits, with what follows it, until it does.

      const queue: Array<readonly [string, string]> = []
      let sending = false
      /** Dropped from the queue's front (`maxQueued`) while a batch from it was being sent. */
      let droppedMeanwhile = 0
      let retry: ReturnType<typeof setTimeout> | undefined = undefined
      const later = () => {
        if (retry !== undefined || closed) return
        retry = setTimeout(() => {
          retry = undefined
          send()
        }, 250)
        retry.unref?.()
      }
      const send = () => {
        if (sending || closed || queue.length === 0) return
        if (!redis.ready()) return later()
        sending = true
        droppedMeanwhile = 0
        const batch = queue.slice(0, 256)
        const pipeline = client.pipeline()
        for (const [run, json] of batch) pipeline.xadd(key, "MAXLEN", "~", keep, "*", "o", origin, "r", run, "c", json)
        pipeline.exec().then(
          (results) => {
            sending = false
            // Taken up to the first refused: the rest is sent again, in order.
            const taken = (results ?? []).findIndex(([error]) => error !== null)
            const done = taken === -1 ? batch.length : taken
            // Those dropped meanwhile were the front: of the batch, at most `done - dropped` are still there.
            queue.splice(0, Math.max(0, done - droppedMeanwhile))
            if (done < batch.length) {
              redis.failed("chat publish", batch.length - done, results?.[done]?.[0])
              return later()
            }
            send()
          },
          (error: unknown) => {
            sending = false
            redis.failed("chat publish", batch.length, error)
            later()
          }
        )
      }

      // -----------------------------------------------------------------------------------------
      // Reading: from the last entry read, whatever happened to the connection meanwhile.

      /** The id read up to; undefined until the stream's end was first found (chunks before it are not ours to show). */
      let cursor: string | undefined = undefined
      let wake: (() => void) | undefined = undefined
      const sleep = (millis: number) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, millis)
          wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      const readLoop = async () => {
        let failures = 0
        while (!closed) {
          if (reader.status !== "ready") {
            await sleep(100)
            continue
          }
          try {
            if (cursor === undefined) {
              const last = await reader.xrevrange(key, "+", "-", "COUNT", 1)
              cursor = isEntries(last) && last[0] !== undefined ? last[0][0] : "0-0"
            }
            const reply: unknown = await reader.call("XREAD", "COUNT", 1_000, "BLOCK", 2_000, "STREAMS", key, cursor)
            failures = 0
            if (!Array.isArray(reply)) continue
            for (const stream of reply) {
              if (!Array.isArray(stream) || !isEntries(stream[1])) continue
              for (const [id, fields] of stream[1]) {
                cursor = id
                const field = (name: string) => {
                  const at = fields.indexOf(name)
                  return at >= 0 && at % 2 === 0 ? fields[at + 1] : undefined
                }
                const from = field("o")
                const run = field("r")
                if (from === origin || run === undefined) continue
                const decoded = decode(field("c"))
                if (Either.isLeft(decoded)) {
                  undecodable.unsafeUpdate(1, [])
                  continue
                }
                listener?.(run, decoded.right)
              }
            }
          } catch (error) {
            if (closed) return
            redis.failed("chat read", 1, error)
            await sleep(Math.min(2_000, 100 * 2 ** Math.min(failures++, 5)))
          }
        }
      }
      const loop = readLoop()
      const onReady = () => send()
      client.on("ready", onReady)
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          closed = true
          client.off("ready", onReady)
          if (retry !== undefined) clearTimeout(retry)
          wake?.()
          reader.disconnect()
          await Promise.race([loop, new Promise((resolve) => setTimeout(resolve, 1_000))])
        })
      )

      return {
        publish: (run, chunk) => {
          queue.push([run, encode(chunk)])
          // Said (and counted) once per chunk that has to wait for Redis.
          if (!redis.ready()) redis.failed("chat publish", 1, new Error("not connected"))
          if (queue.length > maxQueued) {
            const dropped = queue.length - maxQueued
            queue.splice(0, dropped)
            if (sending) droppedMeanwhile += dropped
            redis.failed("chat publish", dropped, new Error(`more than ${maxQueued} chat chunks waiting for Redis`))
          }
          send()
        },
        listen: (next) => {
          listener = next
        },
        kind: "redis"
      } satisfies ChatFanoutService
    })
  )

export const layerRedis: Layer.Layer<ChatFanout, never, Redis> = layerRedisWith()
