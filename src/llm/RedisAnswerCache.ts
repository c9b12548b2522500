/**
 * The answer cache over Redis, shared by every server process on it: a model's answer to a prompt
 * over a data window, asked by a run in one process, answers the same call in another. The
 * contract is AnswerCache's (keyed by model, prompt hash and window; each entry kept for its TTL);
 * an entry is `SET <prefix>llm:<sha256 of the key> <json> PX ttl`.
 *
 * `memory` is undefined: an LLM session reads it through `Outside.run`, outside a backtest's virtual
 * time. Redis away or slow (no answer within `waitMillis`): a miss (the model is asked) and a write
 * dropped, counted and logged once; never an error. `entries` in `stats` counts the answers this
 * process wrote — the keys expire in Redis on their own, and counting them there would scan it.
 */
import { createHash } from "node:crypto"
import { Effect, Layer, Option } from "effect"
import { Redis } from "../bus/Redis.js"
import { AnswerCache, type CachedAnswer, fromStoredText, storedText } from "./AnswerCache.js"

export interface Options {
  /** How long a read or write may take before it counts as a miss (or is dropped). Default 250 ms. */
  readonly waitMillis?: number
}

export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const connection = yield* Redis
    const { client } = connection
    const wait = Math.max(1, options.waitMillis ?? 250)
    const keyOf = (key: string) => `${connection.prefix}llm:${createHash("sha256").update(key, "utf8").digest("hex")}`
    let hits = 0
    let misses = 0
    let written = 0
    const timeout = <A>(effect: Effect.Effect<A, unknown>) =>
      effect.pipe(Effect.timeoutFail({ duration: wait, onTimeout: () => new Error(`no answer within ${wait} ms`) }))

    const get = (key: string): Effect.Effect<CachedAnswer | undefined> => {
      if (!connection.ready()) {
        misses++
        connection.failed("answer cache", 1, new Error("not connected"))
        return Effect.succeed(undefined)
      }
      return timeout(Effect.tryPromise(() => client.get(keyOf(key)))).pipe(
        Effect.map((text) => (text === null ? undefined : Option.getOrUndefined(fromStoredText(text)))),
        Effect.catchAll((error) => Effect.as(Effect.sync(() => connection.failed("answer cache", 1, error)), undefined)),
        Effect.tap((answer) =>
          Effect.sync(() => {
            if (answer === undefined) misses++
            else hits++
          })
        ),
        Effect.withSpan("RedisAnswerCache.get")
      )
    }

    const set = (key: string, answer: CachedAnswer, ttlMillis: number): Effect.Effect<void> => {
      if (ttlMillis <= 0) return Effect.void
      if (!connection.ready()) return Effect.sync(() => connection.failed("answer cache", 1, new Error("not connected")))
      const json = storedText(answer)
      return timeout(Effect.tryPromise(() => client.set(keyOf(key), json, "PX", Math.max(1, Math.ceil(ttlMillis))))).pipe(
        Effect.zipRight(Effect.sync(() => void written++)),
        Effect.catchAll((error) => Effect.sync(() => connection.failed("answer cache", 1, error))),
        Effect.withSpan("RedisAnswerCache.set")
      )
    }

    return {
      get,
      set,
      stats: Effect.sync(() => ({ hits, misses, entries: written })),
      memory: undefined
    } satisfies AnswerCache["Type"]
  })

export const layer = (options: Options = {}): Layer.Layer<AnswerCache, never, Redis> => Layer.effect(AnswerCache, make(options))
