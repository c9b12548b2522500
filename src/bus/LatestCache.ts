/**
 * The latest portfolio snapshot and quotes of each run, for reads that want "where is it now"
 * without replaying its events: kept as the run's events go by (`observe`, called by the run
 * manager where it publishes them) and read with `get` — by `runs.get`, which so answers with a
 * run's live values on any server (RpcHandlers.ts; the database's when the cache has none). The
 * portfolio is the last snapshot's totals with every open position (snapshots list only the
 * positions their fills changed: the book is their merge, a flat position dropped). The
 * quotes are the last prices the run saw per symbol: the marks of its portfolio snapshots (each
 * bar) and the market prices of its fills (the run has no quote event of its own).
 *
 * `observe` is synchronous and cheap — it runs in the run's loop, between a tick and its order — so
 * the Redis layer writes behind: each run's latest values are written at most every `flushMillis`
 * (`SET <prefix>latest:<run> json PX ttl`, pipelined), from any process that runs it, readable
 * from every process. In process, a bounded map. Redis away: `get` answers what this process
 * knows, writes are dropped and counted; the run never notices.
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { LatestValues, type Position, Quote } from "../../schemas/Portfolio.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import { Redis } from "./Redis.js"

export { Quote }

/** A run's latest values (schemas/Portfolio.ts `LatestValues`), with the run they are of. */
export const Latest = Schema.Struct({
  run: Schema.String,
  ...LatestValues.fields
})
export type Latest = typeof Latest.Type

export interface LatestCacheService {
  /** An event of a run went by: keep what it says about the run's portfolio and prices (synchronous, never blocks). */
  readonly observe: (event: RunEvent) => void
  /** The latest values of `run`, if known. */
  readonly get: (run: string) => Effect.Effect<Latest | undefined>
  /** Replace the latest values of a run. */
  readonly set: (latest: Latest) => Effect.Effect<void>
  readonly kind: "in-process" | "redis"
}

export class LatestCache extends Context.Tag("swarm/bus/LatestCache")<LatestCache, LatestCacheService>() {}

const bySymbol = (a: Position, b: Position) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0)

/**
 * The open positions after a snapshot: `held` (the book so far, open positions by symbol) with the
 * positions `changed` lists in place of theirs, a flat one (quantity 0) closing its symbol's. A
 * snapshot lists only the positions its fills changed (agents/Ledger.ts), so taking its list as
 * the book would forget every other open position. One pass over both lists (`held` is sorted by
 * symbol, and so is the book).
 */
export const mergePositions = (held: ReadonlyArray<Position>, changed: ReadonlyArray<Position>): ReadonlyArray<Position> => {
  const updates = [...new Map(changed.map((p) => [p.symbol, p])).values()].sort(bySymbol)
  const book: Array<Position> = []
  let i = 0
  let j = 0
  while (i < held.length || j < updates.length) {
    const h = held[i]
    const u = updates[j]
    if (u === undefined || (h !== undefined && h.symbol < u.symbol)) {
      book.push(h!)
      i++
    } else {
      if (h?.symbol === u.symbol) i++
      if (u.quantity !== 0) book.push(u)
      j++
    }
  }
  return book
}

/** The latest values after `event`, or `undefined` when the event says nothing about them. */
export const next = (previous: Latest | undefined, event: RunEvent): Latest | undefined => {
  switch (event._tag) {
    case "PortfolioUpdated": {
      const { snapshot } = event
      const quotes: Record<string, Quote> = { ...previous?.quotes }
      for (const position of snapshot.positions) {
        if (position.markPrice > 0) quotes[position.symbol] = { price: position.markPrice, ts: snapshot.ts, source: "mark" }
      }
      // Totals are the whole book's; the positions are the book's open ones, each as last reported.
      const positions = mergePositions(previous?.portfolio?.positions ?? [], snapshot.positions)
      return { run: event.run, seq: event.seq, at: event.at, portfolio: { ...snapshot, positions }, quotes }
    }
    case "OrderFilled": {
      const { fill } = event
      const known = previous?.quotes[fill.symbol]
      if (known !== undefined && known.ts > fill.ts) return undefined
      return {
        run: event.run,
        seq: event.seq,
        at: event.at,
        ...(previous?.portfolio === undefined ? {} : { portfolio: previous.portfolio }),
        quotes: { ...previous?.quotes, [fill.symbol]: { price: fill.marketPrice, ts: fill.ts, source: "fill" } }
      }
    }
    default:
      return undefined
  }
}

/** The latest values after `events` (in order), from none: what a run's recorded events say. */
export const fold = (events: Iterable<RunEvent>): Latest | undefined => {
  let latest: Latest | undefined = undefined
  for (const event of events) latest = next(latest, event) ?? latest
  return latest
}

/** A map of runs' latest values, the least recently updated forgotten past `maxRuns`. */
class Held {
  private readonly runs = new Map<string, Latest>()
  constructor(private readonly maxRuns: number) {}

  get(run: string): Latest | undefined {
    return this.runs.get(run)
  }

  put(latest: Latest): void {
    this.runs.delete(latest.run)
    this.runs.set(latest.run, latest)
    if (this.runs.size > this.maxRuns) this.runs.delete(this.runs.keys().next().value!)
  }

  /** `event` applied; the new values, or undefined when nothing changed. */
  observe(event: RunEvent): Latest | undefined {
    const updated = next(this.runs.get(event.run), event)
    if (updated !== undefined) this.put(updated)
    return updated
  }
}

export interface Options {
  /** Runs kept in this process. Default 1,000. */
  readonly maxRuns?: number
  /** Redis: how often a run's latest values are written at most. Default 250 ms. */
  readonly flushMillis?: number
  /** Redis: how long a run's latest values are kept after their last write. Default 1 day. */
  readonly ttlMillis?: number
}

export const defaults = { maxRuns: 1_000, flushMillis: 250, ttlMillis: 86_400_000 } as const

export const memory = (options: Options = {}): LatestCacheService => {
  const held = new Held(options.maxRuns ?? defaults.maxRuns)
  return {
    kind: "in-process",
    observe: (event) => void held.observe(event),
    get: (run) => Effect.sync(() => held.get(run)),
    set: (latest) => Effect.sync(() => held.put(latest))
  }
}

export const layerMemory = (options: Options = {}): Layer.Layer<LatestCache> => Layer.sync(LatestCache, () => memory(options))

const REDIS_WAIT_MILLIS = 500

/** How soon values Redis did not take are written again. */
const RETRY_MILLIS = 1_000

const decode = Schema.decodeUnknownOption(Schema.parseJson(Latest))

/** The latest values in Redis (`<prefix>latest:<run>`), written behind, readable from every process. */
export const redis = (options: Options = {}) =>
  Effect.gen(function*() {
    const connection = yield* Redis
    const { client } = connection
    const held = new Held(options.maxRuns ?? defaults.maxRuns)
    const flushMillis = Math.max(1, options.flushMillis ?? defaults.flushMillis)
    const ttl = Math.max(1, options.ttlMillis ?? defaults.ttlMillis)
    const keyOf = (run: string) => `${connection.prefix}latest:${run}`
    const dirty = new Map<string, Latest>()
    let timer: ReturnType<typeof setTimeout> | undefined = undefined
    let closed = false

    /**
     * Values Redis did not take go back to be written again (unless a newer one came meanwhile),
     * a second on: a run's last values lost to a refused write or a dropped connection stayed in
     * Redis as they were before it, for a day, for every other server to show.
     */
    const retry = (failed: ReadonlyArray<Latest>) => {
      if (closed) return
      for (const latest of failed) if (!dirty.has(latest.run)) dirty.set(latest.run, latest)
      if (timer === undefined) {
        timer = setTimeout(flush, Math.max(flushMillis, RETRY_MILLIS))
        timer.unref?.()
      }
    }
    const flush = () => {
      timer = undefined
      if (dirty.size === 0) return
      const batch = [...dirty.values()]
      dirty.clear()
      if (!connection.ready()) {
        connection.failed("latest values", batch.length, new Error("not connected"))
        return retry(batch)
      }
      const pipeline = client.pipeline()
      for (const latest of batch) pipeline.set(keyOf(latest.run), JSON.stringify(latest), "PX", ttl)
      pipeline.exec().then(
        (results) => {
          const failed = batch.filter((_, i) => results?.[i]?.[0] != null)
          if (failed.length === 0) return
          connection.failed("latest values", failed.length, results!.find(([error]) => error !== null)![0])
          retry(failed)
        },
        (error) => {
          connection.failed("latest values", batch.length, error)
          retry(batch)
        }
      )
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        if (timer !== undefined) clearTimeout(timer)
        flush()
      })
    )

    const write = (latest: Latest) => {
      dirty.set(latest.run, latest)
      if (timer === undefined && !closed) {
        timer = setTimeout(flush, flushMillis)
        timer.unref?.()
      }
    }

    return {
      kind: "redis",
      observe: (event) => {
        const updated = held.observe(event)
        if (updated !== undefined) write(updated)
      },
      get: (run) => {
        // This process runs it (or did): its own values are the freshest.
        const own = held.get(run)
        if (own !== undefined) return Effect.succeed(own)
        if (!connection.ready()) return Effect.succeed(undefined)
        return Effect.tryPromise(() => client.get(keyOf(run))).pipe(
          Effect.timeoutFail({ duration: REDIS_WAIT_MILLIS, onTimeout: () => new Error(`no answer within ${REDIS_WAIT_MILLIS} ms`) }),
          Effect.map((text) => (text === null ? undefined : Option.getOrUndefined(decode(text)))),
          Effect.catchAll((error) => Effect.as(Effect.sync(() => connection.failed("latest values", 1, error)), undefined)),
          Effect.withSpan("LatestCache.get")
        )
      },
      set: (latest) =>
        Effect.sync(() => {
          held.put(latest)
          write(latest)
        })
    } satisfies LatestCacheService
  })

export const layerRedis = (options: Options = {}): Layer.Layer<LatestCache, never, Redis> => Layer.scoped(LatestCache, redis(options))
