/**
 * The answer cache in the database, for a process that has one open and no Redis (a stored
 * `swarm backtest`, `swarm serve`): answers outlive the process, so a second backtest of the same
 * strategy over the same data, or a restarted server, asks the model nothing it already answered.
 * The contract is AnswerCache's (keyed by model, prompt hash and window; each entry kept for its TTL);
 * a row of `llm_answers` (migrations/0011) per key.
 *
 * The process's in-memory cache stays in front (`memory`, `tiered`): a hot key is no database round
 * trip, and a run reads it in place. A miss there is asked of the table, outside the run's world; a
 * row found is put in front for the rest of its life. The database away, failing or slow (no answer
 * within `waitMillis`): a miss (the model is asked) and a write dropped, logged once per outage; never
 * an error, never a wait past `waitMillis`.
 *
 * Bounded: expired rows are swept when the cache is made and every `sweepEvery` writes, and past
 * `maxRows` the rows that expire soonest go first. Expiry is wall-clock (`now`), as in memory.
 */
import { createHash } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { storable } from "../store/Chats.js"
import { makeWithDeadline } from "../store/Database.js"
import { AnswerCache, type CachedAnswer, fromStoredText, type MemoryCache, storedText } from "./AnswerCache.js"

export interface Options {
  /** How long a read or write may take before it counts as a miss (or is dropped). Default 1 s: a model's answer takes longer. */
  readonly waitMillis?: number
  /** The most rows the table keeps; past it, the ones that expire soonest are deleted. Default 50,000. */
  readonly maxRows?: number
  /** Sweep (expired rows, then past `maxRows`) every this many writes. Default 500. */
  readonly sweepEvery?: number
  /** Wall-clock epoch milliseconds; the memory cache's own clock should be the same. Default `Date.now`. */
  readonly now?: () => number
}

export const DEFAULT_MAX_ROWS = 50_000

/** The table's key for a cache key: its sha256 (the key joins its parts with NUL). */
const rowKey = (key: string) => createHash("sha256").update(key, "utf8").digest("hex")

/**
 * The database tier behind `memory` (the runtime's in-memory cache, which it shares). Needs the
 * SQL client only to be made: it is captured, so calls made later (outside any layer) reach it.
 */
export const make = (memory: MemoryCache, options: Options = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const wait = Math.max(1, options.waitMillis ?? 1_000)
    const maxRows = Math.max(1, options.maxRows ?? DEFAULT_MAX_ROWS)
    const sweepEvery = Math.max(1, options.sweepEvery ?? 500)
    const now = options.now ?? Date.now
    let writes = 0
    let failing = false

    // Given up on after `wait`, and ended there by the database too (`Database.withDeadline`): a
    // query given up on is not cancelled from here, so it would run on behind a stalled table,
    // holding its connection, and a write given up on would still land later.
    const deadline = (yield* makeWithDeadline)({ duration: wait, onTimeout: () => new Error(`no answer within ${wait} ms`) })

    const bounded = <A, E>(what: string, effect: Effect.Effect<A, E>): Effect.Effect<Option.Option<A>> =>
      deadline(effect).pipe(
        Effect.tap(() => Effect.sync(() => void (failing = false))),
        Effect.asSome,
        Effect.catchAllCause((cause) =>
          Effect.suspend(() => {
            if (failing) return Effect.succeedNone
            failing = true
            return Effect.as(
              Effect.logWarning(`LLM answer cache: the database ${what} failed: the model is asked instead; logged once until the database answers again`, cause),
              Option.none()
            )
          })
        )
      )

    const sweep = bounded(
      "sweep",
      Effect.gen(function*() {
        yield* sql`delete from llm_answers where expires_at <= ${now()}`
        yield* sql`delete from llm_answers where key in (
          select key from llm_answers order by expires_at desc offset ${maxRows})`
      })
    )

    const get = (key: string): Effect.Effect<CachedAnswer | undefined> =>
      Effect.suspend(() => {
        const front = memory.get(key)
        if (front !== undefined) return Effect.succeed(front)
        const at = now()
        return bounded(
          "read",
          sql<{ answer: string; expiresAt: number }>`select answer, expires_at::float8 as expires_at from llm_answers
            where key = ${rowKey(key)} and expires_at > ${at}`
        ).pipe(
          Effect.map((rows) => {
            const row = Option.getOrUndefined(rows)?.[0]
            const answer = row === undefined ? undefined : Option.getOrUndefined(fromStoredText(row.answer))
            if (answer === undefined || row === undefined) return undefined
            // A miss in front the table answered is a hit: counted on the memory cache itself, so that
            // its counts (the runtime's, /health's) are the whole cache's.
            memory.misses--
            memory.hits++
            memory.set(key, answer, row.expiresAt - at)
            return answer
          }),
          Effect.withSpan("SqlAnswerCache.get")
        )
      })

    const set = (key: string, answer: CachedAnswer, ttlMillis: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (ttlMillis <= 0) return Effect.void
        memory.set(key, answer, ttlMillis)
        const [model = "", promptHash = "", window = ""] = key.split("\u0000")
        const json = storedText(answer)
        const expiresAt = now() + Math.max(1, Math.ceil(ttlMillis))
        const write = bounded(
          "write",
          sql`insert into llm_answers (key, model, prompt_hash, data_window, answer, tokens_in, tokens_out, expires_at)
            values (${rowKey(key)}, ${storable(model)}, ${storable(promptHash)}, ${storable(window)}, ${json},
              ${Math.round(answer.tokensIn)}, ${Math.round(answer.tokensOut)}, ${expiresAt})
            on conflict (key) do update set answer = excluded.answer, tokens_in = excluded.tokens_in,
              tokens_out = excluded.tokens_out, expires_at = excluded.expires_at, created_at = now()`
        )
        return write.pipe(
          Effect.zipRight(Effect.suspend(() => (++writes % sweepEvery === 0 ? sweep : Effect.void))),
          Effect.asVoid,
          Effect.withSpan("SqlAnswerCache.set")
        )
      })

    // What earlier processes left: expired rows go before this one reads any.
    yield* sweep

    return {
      get,
      set,
      stats: Effect.sync(() => memory.stats),
      memory,
      tiered: true
    } satisfies AnswerCache["Type"]
  })
