/**
 * `runs.get` says where a run stands: its latest portfolio and quotes from the latest-values cache,
 * which the process executing the run keeps current — so a server that is not executing it (the
 * cache in Redis, written by another process) answers with the live values — and from the events
 * the database has recorded when the cache has none. A run with nothing to say has no `latest`; a
 * recorded line that does not decode is passed over, never an error. On every back-end.
 */
import { RpcTest } from "@effect/rpc"
import { SqlClient } from "@effect/sql"
import { afterAll, describe, expect, layer } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Layer, Stream } from "effect"
import type { PortfolioSnapshot } from "../../schemas/Portfolio.js"
import { RunRpcs } from "../../schemas/Rpc.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import * as LatestCache from "../../src/bus/LatestCache.js"
import * as Redis from "../../src/bus/Redis.js"
import { AuthenticatedLive, clientKey } from "../../src/edge/RpcAuth.js"
import { RunHandlers } from "../../src/edge/RpcHandlers.js"
import * as RunEvents from "../../src/edge/RunEvents.js"
import * as RunManager from "../../src/edge/RunManager.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { cleanUp, connection, layer as redisLayer, runRedis, uniquePrefix } from "../bus/redis.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { stored, strategy } from "../store/fixtures/workload.js"
import { createUsers, simulatedRun, stubAuthenticator } from "./fixtures.js"

const prefix = uniquePrefix("runlatest")
afterAll(() => cleanUp(prefix))

const client = Effect.provide(RpcTest.makeClient(RunRpcs, { flatten: true }), clientKey("sk_alice"))

/** The last portfolio snapshot a run recorded, and its event's sequence number. */
const lastRecordedPortfolio = (run: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ body: string }>`
      select body from run_events where run_id = ${run} and tag = 'PortfolioUpdated' order by seq desc limit 1`
    const event = JSON.parse(row!.body) as { seq: number; snapshot: PortfolioSnapshot }
    return event
  })

/** The open positions the recorded fills add up to (symbol and quantity, by symbol): the run's book. */
const bookOfFills = (run: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ symbol: string; side: string; quantity: number }>`
      select symbol, side, quantity from fills where run_id = ${run} order by seq`
    const held = new Map<string, number>()
    for (const row of rows) held.set(row.symbol, (held.get(row.symbol) ?? 0) + (row.side === "buy" ? 1 : -1) * Number(row.quantity))
    return [...held].map(([symbol, quantity]) => [symbol, Math.round(quantity * 1e6) / 1e6] as const)
      .filter(([, quantity]) => quantity !== 0)
      .sort(([a], [b]) => (a < b ? -1 : 1))
  })

/** What a book is compared by: each position's symbol, quantity, average price and realized P&L. */
const bookOf = (positions: ReadonlyArray<PortfolioSnapshot["positions"][number]>) =>
  positions.filter((p) => p.quantity !== 0)
    .map((p) => ({ symbol: p.symbol, quantity: p.quantity, averagePrice: p.averagePrice, realizedPnl: p.realizedPnl }))
    .sort((a, b) => (a.symbol < b.symbol ? -1 : 1))

/** The snapshot's totals, without its positions. */
const totalsOf = ({ positions: _, ...totals }: PortfolioSnapshot) => totals

/** Values no recorded event has: only the cache can have given them. */
const liveValues = (run: string, seq: number): LatestCache.Latest => ({
  run,
  seq,
  at: 1_700_000_000_000,
  portfolio: {
    ts: 1_700_000_000_000,
    cash: 1_000_000,
    equity: 3_000_000,
    grossExposure: 2_000_000,
    netExposure: 2_000_000,
    realizedPnl: 0,
    unrealizedPnl: 5,
    positions: [{ symbol: "S0", quantity: 2, averagePrice: 1, realizedPnl: 0, markPrice: 1.000_002_5, marketValue: 2_000_005, unrealizedPnl: 5 }]
  } as unknown as PortfolioSnapshot,
  quotes: { S0: { price: 1.000_002_5, ts: 1_700_000_000_000, source: "mark" } }
})

const usersLayer = Layer.effectDiscard(Effect.orDie(createUsers))

/** How often the cache was asked for each run's values (`countedMemory`). */
const cacheReads = new Map<string, number>()

/** The in-process cache, counting its reads (`cacheReads`). */
const countedMemory = Layer.sync(LatestCache.LatestCache, () => {
  const inner = LatestCache.memory()
  return {
    ...inner,
    get: (run: string) => Effect.suspend(() => {
      cacheReads.set(run, (cacheReads.get(run) ?? 0) + 1)
      return inner.get(run)
    })
  }
})

/** The RPC handlers of runs over `cache`, the test's database and an in-process bus. */
const handlersWith = <E, R>(cache: Layer.Layer<LatestCache.LatestCache, E, R>, store: (typeof backends)[number]["store"]) =>
  Layer.mergeAll(RunHandlers, AuthenticatedLive).pipe(
    Layer.provideMerge(Layer.mergeAll(RunManager.layer, RunEvents.layer)),
    Layer.provideMerge(Layer.mergeAll(InProcessBus.layer, cache, stubAuthenticator, usersLayer)),
    Layer.provideMerge(store)
  )

for (const backend of backends) {
  layer(handlersWith(countedMemory, backend.store), { timeout: startTimeout, excludeTestServices: true })(
    `runs.get: where a run stands (${backend.name})`,
    (it) => {
      it.scoped("a run this process executed: the cache's values, its last snapshot's totals and the whole book; the cache's values win over the database's", () =>
        Effect.gen(function*() {
          const rpc = yield* client
          yield* Strategies.create("alice", strategy(3, "latest executed"))
          const run = yield* rpc("runs.start", { strategy: "latest executed", mode: "backtest", data: { _tag: "synthetic", bars: 120 } })
          yield* rpc("runs.events", { run: run.id }).pipe(Stream.runCollect, Effect.map(Chunk.size))
          const last = yield* lastRecordedPortfolio(run.id)
          const book = yield* bookOfFills(run.id)
          // The case that matters: the last snapshot lists fewer positions than the run holds.
          expect(book.length).toBeGreaterThan(last.snapshot.positions.filter((p) => p.quantity !== 0).length)
          const got = yield* rpc("runs.get", { run: run.ref })
          expect(got.status).toBe("completed")
          expect(got.latest?.source).toBe("cache")
          expect(totalsOf(got.latest!.portfolio!)).toEqual(totalsOf(last.snapshot))
          expect(got.latest!.portfolio!.positions.map((p) => [p.symbol, p.quantity])).toEqual(book)
          expect(got.latest!.seq).toBeGreaterThanOrEqual(last.seq)
          for (const position of last.snapshot.positions.filter((p) => p.markPrice > 0)) {
            expect(got.latest?.quotes[position.symbol]?.price).toBe(position.markPrice)
          }
          // Values the database has not recorded (a live run's, ahead of its recorder): the cache's are given.
          const cache = yield* LatestCache.LatestCache
          const { run: _, ...ahead } = liveValues(run.id, 1_000_000)
          yield* cache.set(liveValues(run.id, 1_000_000))
          expect((yield* rpc("runs.get", { run: run.id })).latest).toEqual({ ...ahead, source: "cache" })
        }), { timeout: 120_000 })

      it.scoped("a run the cache does not know (executed elsewhere, cache flushed): its last recorded snapshot's totals, the whole book and the fills after, from the database", () =>
        Effect.gen(function*() {
          const rpc = yield* client
          const done = yield* StoredRun.backtest(stored(3, 120, { name: "latest elsewhere", owner: "alice" }))
          const last = yield* lastRecordedPortfolio(done.run)
          const final = bookOf(done.result.portfolio.positions)
          // The case that matters: the last snapshot lists fewer positions than the run ended with.
          expect(final.length).toBeGreaterThan(last.snapshot.positions.filter((p) => p.quantity !== 0).length)
          const got = yield* rpc("runs.get", { run: done.run })
          expect(got.latest?.source).toBe("database")
          expect(totalsOf(got.latest!.portfolio!)).toEqual(totalsOf(last.snapshot))
          // The book the run ended with (its result's), each position as last reported.
          expect(bookOf(got.latest!.portfolio!.positions)).toEqual(final)
          expect(got.latest!.portfolio!.positions.length).toBe(final.length)
          expect(got.latest!.seq).toBeGreaterThanOrEqual(last.seq)
          const marked = last.snapshot.positions.filter((p) => p.markPrice > 0)
          for (const position of marked) expect(got.latest?.quotes[position.symbol]).toMatchObject({ price: position.markPrice })
          // A finished run's values never change: read from the database once, then kept — and the
          // cache, which had none for it, not asked again (in Redis, a round trip at every read).
          const sql = yield* SqlClient.SqlClient
          yield* sql`delete from run_events where run_id = ${done.run} and tag in ('PortfolioUpdated', 'OrderFilled')`.pipe(Effect.orDie)
          expect((yield* rpc("runs.get", { run: done.run })).latest).toEqual(got.latest)
          expect(cacheReads.get(done.run)).toBe(1)

          // Nothing recorded that says where it stands (its lines do not decode as such events): no `latest`, no error.
          const bus = yield* InProcessBus.make()
          const simulated = yield* simulatedRun(bus, "alice")
          simulated.publish(1, 9)
          yield* simulated.commit(9)
          const nothing = yield* rpc("runs.get", { run: simulated.id })
          expect(nothing.status).toBe("running")
          expect(nothing.latest).toBeUndefined()
          // Another user's run is still not theirs.
          const bobs = yield* Effect.provide(RpcTest.makeClient(RunRpcs, { flatten: true }), clientKey("sk_bob"))
          expect((yield* Effect.flip(bobs("runs.get", { run: done.run })))._tag).toBe("RunNotFound")
        }), { timeout: 120_000 })

      it.scoped("a stopped run resumed by name (swarm resume) and ended again: its values now, not those kept from its first end", () =>
        Effect.gen(function*() {
          const rpc = yield* client
          // Stopped part of the way (interrupted, as `runs stop` does): its row says `stopped`.
          const reached = yield* Deferred.make<void>()
          let paced = 0
          const first = yield* Effect.fork(StoredRun.backtest(stored(3, 400, {
            name: "latest resumed",
            owner: "alice",
            pace: () => (++paced >= 4 ? Effect.zipRight(Deferred.succeed(reached, undefined), Effect.never) : Effect.void)
          })))
          yield* Deferred.await(reached)
          yield* Fiber.interrupt(first)
          const sql = yield* SqlClient.SqlClient
          const [row] = yield* sql<{ id: string }>`
            select r.id from runs r join strategies s on s.id = r.strategy_id where s.name = 'latest resumed'`.pipe(Effect.orDie)
          const stopped = yield* rpc("runs.get", { run: row!.id })
          expect(stopped.status).toBe("stopped")
          expect(stopped.latest?.source).toBe("database")
          // Resumed by name and finished: what it ended with is its new end's, not the first's.
          const resumed = yield* StoredRun.resume(row!.id)
          const ended = yield* rpc("runs.get", { run: row!.id })
          expect(ended.status).toBe("completed")
          const last = yield* lastRecordedPortfolio(row!.id)
          expect(last.seq).toBeGreaterThan(stopped.latest!.seq)
          expect(ended.latest!.seq).toBeGreaterThanOrEqual(last.seq)
          expect(bookOf(ended.latest!.portfolio!.positions)).toEqual(bookOf(resumed.result.portfolio.positions))
        }), { timeout: 120_000 })
    }
  )
}

describe.skipIf(!runRedis)("runs.get with the cache in Redis", () => {
  const reader = LatestCache.layerRedis({ flushMillis: 10 }).pipe(Layer.provide(redisLayer(prefix)))
  layer(handlersWith(reader, backends[0]!.store), { timeout: startTimeout, excludeTestServices: true })("another process executes the run", (it) => {
    it.scoped("the live values the executing process writes to Redis are what this server answers (none before they come)", () =>
      Effect.gen(function*() {
        const rpc = yield* client
        // A running run of which this process executes nothing, and the process that does.
        const bus = yield* InProcessBus.make()
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 3)
        yield* run.commit(3)
        expect((yield* rpc("runs.get", { run: run.id })).latest).toBeUndefined()
        const writer = yield* Effect.flatMap(connection(prefix), (redis) =>
          LatestCache.redis({ flushMillis: 10 }).pipe(Effect.provideService(Redis.Redis, redis)))
        yield* writer.set(liveValues(run.id, 4))
        let latest = (yield* rpc("runs.get", { run: run.id })).latest
        for (let i = 0; i < 200 && latest === undefined; i++) {
          yield* Effect.sleep("10 millis")
          latest = (yield* rpc("runs.get", { run: run.id })).latest
        }
        expect(latest).toMatchObject({ source: "cache", seq: 4, quotes: { S0: { price: 1.000_002_5, source: "mark" } } })
        expect(latest?.portfolio?.equity).toBe(3_000_000)
      }), { timeout: 60_000 })
  })
})
