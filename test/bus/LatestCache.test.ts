/**
 * The latest portfolio and quotes of a run as a fast read relies on them: a portfolio snapshot
 * gives the portfolio and its marks, a later fill its market price, other events nothing; in
 * process, and through Redis from the process that runs it to another (written behind, so the run
 * never waits); Redis down leaves the run's own process answering, never an error.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { RunEvent } from "../../schemas/RunEvent.js"
import * as LatestCache from "../../src/bus/LatestCache.js"
import * as Redis from "../../src/bus/Redis.js"
import { cleanUp, connection, downUrl, eventually, runRedis, uniquePrefix } from "./redis.js"

const prefix = uniquePrefix("latest")
afterAll(() => cleanUp(prefix))

const portfolio = (run: string, seq: number, ts: number, mark: number): RunEvent =>
  ({
    _tag: "PortfolioUpdated",
    run,
    seq,
    at: ts,
    snapshot: {
      ts,
      cash: 5_000_000_000,
      equity: 10_000_000_000,
      grossExposure: 5_000_000_000,
      netExposure: 5_000_000_000,
      realizedPnl: 0,
      unrealizedPnl: 12_000_000,
      positions: [
        { symbol: "AAPL", quantity: 10, averagePrice: 100, realizedPnl: 0, markPrice: mark, marketValue: mark * 10_000_000, unrealizedPnl: 0 }
      ]
    }
  }) as unknown as RunEvent

const fill = (run: string, seq: number, ts: number, symbol: string, marketPrice: number): RunEvent =>
  ({
    _tag: "OrderFilled",
    run,
    seq,
    at: ts,
    fill: { id: `f${seq}`, orderId: `o${seq}`, symbol, side: "buy", quantity: 1, price: marketPrice, marketPrice, slippageBps: 0, notional: 0, commission: 0, ts }
  }) as unknown as RunEvent

const other = (run: string, seq: number): RunEvent => ({ _tag: "RunFailed", run, seq, at: 0, reason: "x" }) as unknown as RunEvent

const redisCache = (url?: string) =>
  Effect.flatMap(connection(prefix, url), (redis) => LatestCache.redis({ flushMillis: 10 }).pipe(Effect.provideService(Redis.Redis, redis)))

describe("LatestCache (in process)", () => {
  it.effect("a snapshot gives the portfolio and its marks; a later fill its price; other events nothing", () =>
    Effect.gen(function*() {
      const cache = LatestCache.memory()
      expect(yield* cache.get("r")).toBeUndefined()
      cache.observe(portfolio("r", 3, 1_000, 101.5))
      cache.observe(fill("r", 4, 2_000, "MSFT", 300))
      cache.observe(other("r", 5))
      const latest = yield* cache.get("r")
      expect(latest?.seq).toBe(4)
      expect(latest?.portfolio?.equity).toBe(10_000_000_000)
      expect(latest?.quotes).toEqual({
        AAPL: { price: 101.5, ts: 1_000, source: "mark" },
        MSFT: { price: 300, ts: 2_000, source: "fill" }
      })
      // A fill older than the quote it would replace does not go back in time.
      cache.observe(fill("r", 6, 500, "AAPL", 90))
      expect((yield* cache.get("r"))?.quotes["AAPL"]?.price).toBe(101.5)
    }))
})

/** A snapshot whose fills changed the positions `changed` lists (symbol, quantity, mark): the totals are the whole book's. */
const changedPositions = (run: string, seq: number, grossExposure: number, changed: ReadonlyArray<readonly [string, number, number]>): RunEvent =>
  ({
    _tag: "PortfolioUpdated",
    run,
    seq,
    at: seq,
    snapshot: {
      ts: seq,
      cash: 1_000_000_000,
      equity: 1_000_000_000 + grossExposure,
      grossExposure,
      netExposure: grossExposure,
      realizedPnl: 0,
      unrealizedPnl: 0,
      positions: changed.map(([symbol, quantity, mark]) => ({
        symbol,
        quantity,
        averagePrice: quantity === 0 ? 0 : 100,
        realizedPnl: 0,
        markPrice: mark,
        marketValue: quantity * mark * 1_000_000,
        unrealizedPnl: 0
      }))
    }
  }) as unknown as RunEvent

describe("LatestCache: the portfolio is the whole book", () => {
  it.effect("a snapshot listing only the positions its fills changed keeps every other open position; a flat one closes its symbol's", () =>
    Effect.gen(function*() {
      const cache = LatestCache.memory()
      cache.observe(changedPositions("b", 1, 1_000_000_000, [["MSFT", 10, 100]]))
      cache.observe(changedPositions("b", 2, 3_000_000_000, [["AAPL", 10, 100], ["NVDA", 10, 100]]))
      // The last fills changed MSFT only: AAPL and NVDA are still held.
      cache.observe(changedPositions("b", 3, 3_100_000_000, [["MSFT", 11, 100]]))
      const held = (yield* cache.get("b"))!.portfolio!
      expect(held.grossExposure).toBe(3_100_000_000)
      expect(held.positions.map((p) => [p.symbol, p.quantity])).toEqual([["AAPL", 10], ["MSFT", 11], ["NVDA", 10]])
      // AAPL closed, MSFT's position reported again: the book is NVDA and MSFT.
      cache.observe(changedPositions("b", 4, 2_000_000_000, [["AAPL", 0, 105], ["MSFT", 10, 101]]))
      const after = (yield* cache.get("b"))!.portfolio!
      expect(after.positions.map((p) => [p.symbol, p.quantity, p.markPrice])).toEqual([["MSFT", 10, 101], ["NVDA", 10, 100]])
      expect((yield* cache.get("b"))?.quotes["AAPL"]).toEqual({ price: 105, ts: 4, source: "mark" })
      // A fill after the snapshot leaves the book as it was.
      cache.observe(fill("b", 5, 5, "NVDA", 99))
      expect((yield* cache.get("b"))!.portfolio!.positions).toEqual(after.positions)
    }))

  it("folding a run's recorded events gives the same book as observing them", () => {
    const events = [
      changedPositions("f", 1, 0, [["C", 5, 10]]),
      changedPositions("f", 2, 0, [["A", -3, 20], ["B", 2, 30]]),
      changedPositions("f", 3, 0, [["C", 0, 11]]),
      changedPositions("f", 4, 0, [["B", 4, 31]])
    ]
    expect(LatestCache.fold(events)?.portfolio?.positions.map((p) => [p.symbol, p.quantity])).toEqual([["A", -3], ["B", 4]])
  })
})

describe.skipIf(!runRedis)("LatestCache (Redis)", () => {
  it.scopedLive("written behind by the process that runs it, read by another", () =>
    Effect.gen(function*() {
      const runner = yield* redisCache()
      const reader = yield* redisCache()
      runner.observe(portfolio("r1", 1, 1_000, 100))
      runner.observe(portfolio("r1", 2, 2_000, 102))
      // The runner answers at once from its own values.
      expect((yield* runner.get("r1"))?.seq).toBe(2)
      let seen: LatestCache.Latest | undefined
      for (let i = 0; i < 300 && seen?.seq !== 2; i++) {
        seen = yield* reader.get("r1")
        if (seen?.seq !== 2) yield* Effect.sleep("10 millis")
      }
      expect(seen?.quotes["AAPL"]).toEqual({ price: 102, ts: 2_000, source: "mark" })
      expect(seen?.portfolio?.positions[0]?.markPrice).toBe(102)
      expect(yield* reader.get("nothing")).toBeUndefined()
    }))

  it.scopedLive("values Redis refused are written again once it takes them: another server does not keep the old ones", () =>
    Effect.gen(function*() {
      const redis = yield* connection(prefix)
      // Redis answering but refusing writes (out of memory, say), until `refusing` is cleared.
      let refusing = true
      const client = new Proxy(redis.client, {
        get: (target, property) => {
          if (property === "pipeline" && refusing) {
            return () => {
              let commands = 0
              const pipeline = {
                set: () => (commands++, pipeline),
                exec: () => Promise.resolve(Array.from({ length: commands }, () => [new Error("OOM command not allowed when used memory > 'maxmemory'"), null]))
              }
              return pipeline
            }
          }
          const value = Reflect.get(target, property, target)
          return typeof value === "function" ? value.bind(target) : value
        }
      })
      const runner = yield* LatestCache.redis({ flushMillis: 5 }).pipe(Effect.provideService(Redis.Redis, { ...redis, client }))
      const reader = yield* redisCache()
      runner.observe(portfolio("r3", 1, 1_000, 100))
      runner.observe(portfolio("r3", 2, 2_000, 104))
      expect(yield* eventually(() => redis.stats().commandFailures >= 1, 2_000)).toBe(true)
      expect(yield* reader.get("r3")).toBeUndefined()
      refusing = false
      let seen: LatestCache.Latest | undefined
      for (let i = 0; i < 300 && seen?.seq !== 2; i++) {
        seen = yield* reader.get("r3")
        if (seen?.seq !== 2) yield* Effect.sleep("10 millis")
      }
      expect(seen?.quotes["AAPL"]?.price).toBe(104)
    }))

  it.scopedLive("Redis down: the run's own process still answers, writes are counted, nothing fails", () =>
    Effect.gen(function*() {
      const redis = yield* connection(prefix, downUrl)
      const cache = yield* LatestCache.redis({ flushMillis: 5 }).pipe(Effect.provideService(Redis.Redis, redis))
      cache.observe(portfolio("r2", 1, 1_000, 100))
      expect((yield* cache.get("r2"))?.seq).toBe(1)
      expect(yield* cache.get("elsewhere")).toBeUndefined()
      expect(yield* eventually(() => redis.stats().commandFailures >= 1, 2_000)).toBe(true)
    }))
})
