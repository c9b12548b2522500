/**
 * The cache of model answers, shared by every run of the process: keyed by model, prompt hash and
 * the data window the prompt was built from (a symbol and its bars' time range), each entry kept for
 * its TTL. Hits and misses are counted for `/health` and the benchmark. In memory here, bounded
 * (least recently used goes first); the Redis one (issue 7) and the database one (SqlAnswerCache.ts,
 * with this one in front) keep the same contract.
 *
 * Its TTL is wall-clock time by nature (an answer ages in the world, not in a backtest's virtual
 * time), so it reads the `now` it was made with rather than the run's `Clock`.
 */
import { Context, Effect, Layer, type Option, Schema } from "effect"
import { ToolCall } from "../../schemas/Llm.js"

export interface CachedAnswer {
  readonly content: string
  readonly toolCalls: ReadonlyArray<ToolCall>
  readonly tokensIn: number
  readonly tokensOut: number
}

export interface CacheStats {
  readonly hits: number
  readonly misses: number
  readonly entries: number
}

/** An answer as the caches outside the process keep it (Redis, the database): JSON of its four fields. */
const Stored = Schema.parseJson(Schema.Struct({
  content: Schema.String,
  toolCalls: Schema.Array(ToolCall),
  tokensIn: Schema.Number,
  tokensOut: Schema.Number
}))

/** The stored text of an answer, its four fields only. */
export const storedText = (answer: CachedAnswer): string =>
  Schema.encodeSync(Stored)({ content: answer.content, toolCalls: answer.toolCalls, tokensIn: answer.tokensIn, tokensOut: answer.tokensOut })

/** An answer from its stored text; none when the text is not one (another version's, or damaged). */
export const fromStoredText: (text: string) => Option.Option<CachedAnswer> = Schema.decodeUnknownOption(Stored)

export const keyOf = (model: string, promptHash: string, window: string): string => `${model}\u0000${promptHash}\u0000${window}`

interface Entry {
  readonly answer: CachedAnswer
  readonly expiresAt: number
}

/** The in-memory cache: a `Map` in recency order (a hit moves its entry to the end). */
export class MemoryCache {
  private readonly entries = new Map<string, Entry>()
  hits = 0
  misses = 0

  constructor(private readonly maxEntries = 50_000, private readonly now: () => number = Date.now) {}

  /**
   * The entry `peek` found last, and its key: a cached round peeks at its answer, then records it
   * (`get`) at once — the second look is this one, not the map's. Forgotten by any change.
   */
  private peekedKey: string | undefined = undefined
  private peekedEntry: Entry | undefined = undefined

  get(key: string): CachedAnswer | undefined {
    const entry = key === this.peekedKey ? this.peekedEntry : this.entries.get(key)
    this.peekedKey = this.peekedEntry = undefined
    if (entry === undefined || entry.expiresAt <= this.now()) {
      if (entry !== undefined) this.entries.delete(key)
      this.misses++
      return undefined
    }
    this.hits++
    // Most recently used last, so the first key is the one to evict.
    this.entries.delete(key)
    this.entries.set(key, entry)
    return entry.answer
  }

  /** The live entry for `key`, if any, without counting it or touching its recency (`get` does both). */
  peek(key: string): CachedAnswer | undefined {
    const entry = this.entries.get(key)
    this.peekedKey = key
    this.peekedEntry = entry
    return entry === undefined || entry.expiresAt <= this.now() ? undefined : entry.answer
  }

  set(key: string, answer: CachedAnswer, ttlMillis: number): void {
    this.peekedKey = this.peekedEntry = undefined
    if (ttlMillis <= 0) return
    this.entries.delete(key)
    this.entries.set(key, { answer, expiresAt: this.now() + ttlMillis })
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!)
  }

  get stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.entries.size }
  }
}

export class AnswerCache extends Context.Tag("swarm/AnswerCache")<AnswerCache, {
  readonly get: (key: string) => Effect.Effect<CachedAnswer | undefined>
  readonly set: (key: string, answer: CachedAnswer, ttlMillis: number) => Effect.Effect<void>
  readonly stats: Effect.Effect<CacheStats>
  /** The in-memory cache behind it, when there is one: a run reads it without leaving its world. */
  readonly memory: MemoryCache | undefined
  /**
   * `memory` is only the front of it (the database behind, SqlAnswerCache.ts): a key `memory` lacks
   * is asked of `get`, and an answer is kept with `set`.
   */
  readonly tiered?: boolean
}>() {
  static readonly fromMemory = (cache: MemoryCache): AnswerCache["Type"] => ({
    get: (key) => Effect.sync(() => cache.get(key)),
    set: (key, answer, ttl) => Effect.sync(() => cache.set(key, answer, ttl)),
    stats: Effect.sync(() => cache.stats),
    memory: cache
  })

  static readonly layerMemory = (options?: { readonly maxEntries?: number }) =>
    Layer.sync(AnswerCache, () => AnswerCache.fromMemory(new MemoryCache(options?.maxEntries)))
}
