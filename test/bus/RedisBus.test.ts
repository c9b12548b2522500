/**
 * The Redis bus as followers on other processes rely on it, against a real Redis (two buses with
 * connections of their own are two processes): every event of a run published on one reaches a
 * subscriber on the other, in order, then `Ended`; a late follower finds the recent events and the
 * run's liveness in the stream; a burst goes as a few batched entries; Redis away from the publisher
 * costs Redis only — the events are counted and dropped, the run and its local subscribers go on,
 * and the follower sees a hole it can close from the database (`recent` does not vouch across it),
 * `Ended` all the same when the hole is at the end; a publisher gone without ending its run leaves
 * it not live, its followers not told `Overflow` (which says one fell behind) and served again when
 * the run is resumed elsewhere; a run re-executed from an earlier sequence resets its stream. With
 * the database: a follower on the other process gets every event, the hole closed from the
 * database; with Redis killed, frozen, or back before the run's process, it reads the database
 * meanwhile, follows live again when it can, and ends with the run.
 */
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import type { BusEvent, Delivery, Subscription } from "../../src/bus/EventBus.js"
import * as Redis from "../../src/bus/Redis.js"
import * as RedisBus from "../../src/bus/RedisBus.js"
import * as Follow from "../../src/edge/Follow.js"
import { SqlClient } from "@effect/sql"
import { createUsers, simulatedRun } from "../edge/fixtures.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { cleanUp, connection, downUrl, eventually, freezingRedis, hasRedisServer, privateRedis, redisUrl, runRedis, uniquePrefix } from "./redis.js"

const prefix = uniquePrefix("bus")
afterAll(() => cleanUp(prefix))

const ev = (seq: number): BusEvent => ({ seq, tag: seq % 2 === 0 ? "Even" : "Odd", json: `{"seq":${seq},"text":"a \\"quoted\\" line"}` })
const seqs = (deliveries: ReadonlyArray<Delivery>) => deliveries.map((d) => (d._tag === "Event" ? d.event.seq : d._tag))
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** A bus of a simulated process: a connection of its own. */
const bus = (options: RedisBus.Options = {}, url = redisUrl) =>
  Effect.flatMap(connection(prefix, url), (redis) => RedisBus.make(options).pipe(Effect.provideService(Redis.Redis, redis)))

/** A bus in a scope of its own, to be closed (its process gone) by the test. */
const process_ = (options: RedisBus.Options = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const b = yield* bus(options).pipe(Scope.extend(scope))
    return { bus: b, kill: Scope.close(scope, Exit.void) }
  })

/** Deliveries until a terminal one (at most 10 s). */
const drain = (sub: Subscription) =>
  Effect.gen(function*() {
    const out: Array<Delivery> = []
    for (;;) {
      for (const d of yield* sub.takeAll) {
        out.push(d)
        if (d._tag !== "Event") return out
      }
    }
  }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no terminal delivery within 10 s") }))

/** Deliveries until `count` events came (at most 10 s). */
const takeEvents = (sub: Subscription, count: number) =>
  Effect.gen(function*() {
    const out: Array<Delivery> = []
    while (out.filter((d) => d._tag === "Event").length < count) {
      const ds = yield* sub.takeAll
      out.push(...ds)
      if (ds.some((d) => d._tag !== "Event")) break
    }
    return out
  }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`fewer than ${count} events within 10 s`) }))

let runs = 0
const runId = () => `run_${process.pid}_${++runs}`

/** Redis away from `b`'s process for a moment (its connection dropped): it reconnects by itself. */
const blip = (b: RedisBus.RedisBusService) => Effect.sync(() => b.redis.client.disconnect(true))
/** Until `b`'s connection is back from the last blip. */
const backUp = (b: RedisBus.RedisBusService) =>
  Effect.gen(function*() {
    const before = b.redis.stats().reconnects
    expect(yield* eventually(() => b.redis.stats().reconnects > before && b.redis.ready())).toBe(true)
  })

describe.skipIf(!runRedis)("RedisBus", () => {
  it.scopedLive("a subscriber on another process gets every event of the run, in order, then Ended; one here gets them at once", () =>
    Effect.gen(function*() {
      const a = yield* bus()
      const b = yield* bus()
      const run = runId()
      const remote = yield* b.subscribe(run)
      expect(b.isLive(run)).toBe(false)
      for (let seq = 1; seq <= 10; seq++) a.publish(run, ev(seq))
      const here = yield* a.subscribe(run)
      expect(a.isLive(run)).toBe(true)
      yield* Effect.sleep("20 millis")
      for (let seq = 11; seq <= 20; seq++) a.publish(run, ev(seq))
      expect(yield* eventually(() => b.isLive(run))).toBe(true)
      a.end(run)
      const got = yield* drain(remote)
      expect(seqs(got)).toEqual([...range(1, 20), "Ended"])
      // Byte for byte as published.
      for (const d of got) if (d._tag === "Event") expect(d.event).toEqual(ev(d.event.seq))
      expect(seqs(yield* drain(here))).toEqual([...range(11, 20), "Ended"])
      expect(b.isLive(run)).toBe(false)
      expect(b.received()).toBe(20)
      expect(a.redis.stats().publishFailures).toBe(0)
    }))

  it.scopedLive("a late follower finds the run live and its recent events in the stream", () =>
    Effect.gen(function*() {
      const a = yield* bus()
      const b = yield* bus()
      const run = runId()
      for (let seq = 1; seq <= 50; seq++) a.publish(run, ev(seq))
      yield* Effect.sleep("50 millis")
      const sub = yield* b.subscribe(run)
      expect(b.isLive(run)).toBe(true)
      expect(b.recent(run, 10)?.map((e) => e.seq)).toEqual(range(11, 50))
      expect(b.recent(run, 50)).toEqual([])
      expect(b.recent(run, 10)?.[0]).toEqual(ev(11))
      for (let seq = 51; seq <= 55; seq++) a.publish(run, ev(seq))
      a.end(run)
      expect(seqs(yield* drain(sub))).toEqual([...range(51, 55), "Ended"])
      expect(b.followed()).toBe(0)
    }))

  it.scopedLive("a burst of 5,000 events goes as a few batched entries and arrives whole, in order", () =>
    Effect.gen(function*() {
      const a = yield* bus()
      const b = yield* bus()
      const run = runId()
      const sub = yield* b.subscribe(run, { buffer: 10_000 })
      for (let seq = 1; seq <= 5_000; seq++) a.publish(run, ev(seq))
      a.end(run)
      const got = seqs(yield* drain(sub))
      expect(got).toEqual([...range(1, 5_000), "Ended"])
      const entries = yield* Effect.promise(() => a.redis.client.xlen(`${prefix}run:${run}:events`))
      expect(entries).toBeLessThanOrEqual(Math.ceil(5_000 / RedisBus.defaults.batch) + 1)
    }))

  it.scopedLive("Redis away from the publisher: its events are counted and written again from its ring once Redis is back, before what follows: the follower gets every one, in order", () =>
    Effect.gen(function*() {
      const a = yield* bus()
      const b = yield* bus()
      const run = runId()
      const remote = yield* b.subscribe(run)
      for (let seq = 1; seq <= 5; seq++) a.publish(run, ev(seq))
      expect(seqs(yield* takeEvents(remote, 5))).toEqual(range(1, 5))
      yield* blip(a)
      for (let seq = 6; seq <= 8; seq++) a.publish(run, ev(seq))
      yield* backUp(a)
      for (let seq = 9; seq <= 10; seq++) a.publish(run, ev(seq))
      // Before, the stream lacked 6..8 for good: the follower saw a hole (to close from the database).
      expect(seqs(yield* takeEvents(remote, 5))).toEqual(range(6, 10))
      expect(a.redis.stats().publishFailures).toBe(3)
      expect(b.recent(run, 4)?.map((e) => e.seq)).toEqual(range(5, 10))
      a.end(run)
      expect(seqs(yield* drain(remote))).toEqual(["Ended"])
    }))

  it.scopedLive("Redis away from the publisher for longer than its ring: what its ring has is written again, the rest dropped from Redis only; the follower sees the hole, recent does not vouch across it", () =>
    Effect.gen(function*() {
      // A ring of two: of 6..8, lost from Redis, it no longer has 6 to write again.
      const a = yield* bus({ ring: 2 })
      const b = yield* bus()
      const run = runId()
      const remote = yield* b.subscribe(run)
      for (let seq = 1; seq <= 5; seq++) a.publish(run, ev(seq))
      const here = yield* a.subscribe(run)
      expect(seqs(yield* takeEvents(remote, 5))).toEqual(range(1, 5))
      yield* blip(a)
      for (let seq = 6; seq <= 8; seq++) a.publish(run, ev(seq))
      yield* backUp(a)
      for (let seq = 9; seq <= 10; seq++) a.publish(run, ev(seq))
      // The local subscriber had everything; Redis had all but 6 and 7 (8 written again from the ring).
      expect(seqs(yield* takeEvents(here, 5))).toEqual(range(6, 10))
      expect(seqs(yield* takeEvents(remote, 3))).toEqual([8, 9, 10])
      expect(a.redis.stats().publishFailures).toBe(3)
      expect(b.recent(run, 8)?.map((e) => e.seq)).toEqual([9, 10])
      expect(b.recent(run, 4)).toBeUndefined()
      a.end(run)
      // Every event up to the end reached it through the stream after the hole: Ended.
      expect(seqs(yield* drain(remote))).toEqual(["Ended"])
    }))

  it.scopedLive("events lost just before the end, past the publisher's ring: the follower is told Ended all the same, not Overflow (it did not fall behind; the database has the rest)", () =>
    Effect.gen(function*() {
      // A ring of one: of 6 and 7, lost from Redis, it no longer has 6 to write again.
      const a = yield* bus({ ring: 1 })
      const b = yield* bus()
      const run = runId()
      const remote = yield* b.subscribe(run)
      for (let seq = 1; seq <= 5; seq++) a.publish(run, ev(seq))
      expect(seqs(yield* takeEvents(remote, 5))).toEqual(range(1, 5))
      yield* blip(a)
      a.publish(run, ev(6))
      a.publish(run, ev(7))
      yield* backUp(a)
      a.end(run)
      // 7 written again from the ring; 6 is the database's.
      expect(seqs(yield* drain(remote))).toEqual([7, "Ended"])
    }))

  it.scopedLive("the end lost with the events before it: both written again once Redis is back, the follower told Ended after them", () =>
    Effect.gen(function*() {
      const a = yield* bus()
      const b = yield* bus()
      const run = runId()
      const remote = yield* b.subscribe(run)
      for (let seq = 1; seq <= 5; seq++) a.publish(run, ev(seq))
      expect(seqs(yield* takeEvents(remote, 5))).toEqual(range(1, 5))
      yield* blip(a)
      a.publish(run, ev(6))
      a.end(run)
      yield* backUp(a)
      // Before, nothing more came: the follower waited for the live key to expire (10 s) to read the database.
      expect(seqs(yield* drain(remote))).toEqual([6, "Ended"])
      expect(a.redis.stats().publishFailures).toBe(2)
    }))

  it.scopedLive("the publishing process gone without ending the run: no longer live once its key expires, its followers not told Overflow; resumed elsewhere, it reaches them to its end", () =>
    Effect.gen(function*() {
      const a = yield* process_({ liveTtl: "400 millis" })
      const b = yield* bus({ liveTtl: "400 millis" })
      const run = runId()
      const remote = yield* b.subscribe(run)
      for (let seq = 1; seq <= 3; seq++) a.bus.publish(run, ev(seq))
      expect(seqs(yield* takeEvents(remote, 3))).toEqual([1, 2, 3])
      expect(b.isLive(run)).toBe(true)
      yield* a.kill
      expect(yield* eventually(() => !b.isLive(run))).toBe(true)
      // Given up well past its key's TTL: nothing is delivered, least of all an Overflow.
      yield* Effect.sleep("1 second")
      expect(yield* remote.takeAllWithin(100)).toEqual([])
      expect(b.followed()).toBe(1)
      // Resumed by another process: live again, and its end comes.
      const a2 = yield* bus({ liveTtl: "400 millis" })
      for (let seq = 4; seq <= 6; seq++) a2.publish(run, ev(seq))
      expect(yield* eventually(() => b.isLive(run))).toBe(true)
      a2.end(run)
      expect(seqs(yield* drain(remote))).toEqual([4, 5, 6, "Ended"])
    }))

  it.scopedLive("a run re-executed from an earlier sequence in another process (resumed after a crash) carries on in the same stream", () =>
    Effect.gen(function*() {
      const a = yield* process_()
      const b = yield* bus()
      const run = runId()
      const remote = yield* b.subscribe(run)
      for (let seq = 1; seq <= 10; seq++) a.bus.publish(run, ev(seq))
      expect(seqs(yield* takeEvents(remote, 10))).toEqual(range(1, 10))
      yield* a.kill
      // The database had 1..5: the next process re-executes from 6.
      const a2 = yield* bus()
      for (let seq = 6; seq <= 12; seq++) a2.publish(run, ev(seq))
      yield* Effect.sleep("50 millis")
      // A new follower reads the new life.
      const late = yield* bus()
      yield* late.subscribe(run)
      expect(late.isLive(run)).toBe(true)
      expect(late.recent(run, 5)?.map((e) => e.seq)).toEqual(range(6, 12))
      a2.end(run)
      expect(seqs(yield* drain(remote))).toEqual([11, 12, "Ended"])
      expect(a2.redis.stats().publishFailures).toBe(0)
      // Ended: a follower that comes now reads the database, not the stream's tail.
      const after = yield* bus()
      yield* after.subscribe(run)
      expect(after.isLive(run)).toBe(false)
      expect(after.recent(run, 5)).toEqual([])
    }))

  it.scopedLive("Redis down from the start: publishing never fails or waits, this process's subscribers get everything", () =>
    Effect.gen(function*() {
      const a = yield* bus({}, downUrl)
      const run = runId()
      a.publish(run, ev(1))
      const sub = yield* a.subscribe(run)
      for (let seq = 2; seq <= 100; seq++) a.publish(run, ev(seq))
      a.end(run)
      expect(seqs(yield* drain(sub))).toEqual([...range(2, 100), "Ended"])
      yield* Effect.sleep("20 millis")
      expect(a.redis.stats().publishFailures).toBe(101)
      expect(a.redis.stats().state).not.toBe("ready")
      // A follower through a Redis that is down waits (its database tail covers it), it does not fail.
      const other = yield* a.subscribe("elsewhere")
      expect(yield* other.takeAllWithin(50)).toEqual([])
      expect(a.isLive("elsewhere")).toBe(false)
      expect(a.recent("elsewhere", 0)).toEqual([])
    }))
})

// ---------------------------------------------------------------------------------------------
// With the database: the follower of another process closes the hole from it, and reads it while
// Redis is away

/** A bus as the fixture's simulated run needs it (publish and end). */
const publisher = (b: RedisBus.RedisBusService) => ({ ...b, subscribers: () => 0, runs: () => 0 })

/** A follower of `run` on `b` from the start, its events as they come (`got`), in a fiber that ends with the stream. */
const following = (b: RedisBus.RedisBusService, run: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const got: Array<BusEvent> = []
    const fiber = yield* Follow.follow({ bus: b, sql }, run as RunId, 0, { poll: "100 millis" }).pipe(
      Stream.runForEach((burst) => Effect.sync(() => got.push(...burst))),
      Effect.fork
    )
    return { got, seqs: () => got.map((e) => e.seq), fiber }
  })

/** Until the follower's stream ends (at most 15 s: a follower that never ends fails the test). */
const ended = (fiber: Fiber.RuntimeFiber<void, Follow.FollowStopped>) =>
  Fiber.join(fiber).pipe(Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => new Error("the follower did not end within 15 s") }))

/**
 * A run of process `a` with its first five events, followed from process `b`, both on a Redis of
 * the test's own (to take away): once the follower has all five.
 */
const followedOnPrivateRedis = (options: RedisBus.Options = {}) =>
  Effect.gen(function*() {
    const redis = yield* privateRedis
    const a = yield* bus(options, redis.url)
    const b = yield* bus(options, redis.url)
    const run = yield* simulatedRun(publisher(a), "alice")
    run.publish(1, 5)
    yield* run.commit(5)
    const follower = yield* following(b, run.id)
    expect(yield* eventually(() => follower.got.length === 5)).toBe(true)
    return { redis, a, b, run, follower }
  })

for (const backend of backends) {
  describe.skipIf(!runRedis)(`RedisBus with Follow (${backend.name})`, () => {
    const environment = Layer.effectDiscard(Effect.orDie(createUsers)).pipe(Layer.provideMerge(backend.store))
    layer(environment, { timeout: startTimeout, excludeTestServices: true })("", (it) => {
      it.scoped("a follower on another process gets every event exactly once, the events Redis missed from the database", () =>
        Effect.gen(function*() {
          const a = yield* bus()
          const b = yield* bus()
          const sql = yield* SqlClient.SqlClient
          const run = yield* simulatedRun(publisher(a), "alice")
          run.publish(1, 5)
          yield* run.commit(3)
          const events = yield* Follow.follow({ bus: b, sql }, run.id as RunId, 0, { poll: "100 millis" }).pipe(
            Stream.mapConcat((burst) => burst),
            Stream.runCollect,
            Effect.fork
          )
          yield* Effect.sleep("200 millis")
          yield* blip(a)
          run.publish(6, 8)
          yield* backUp(a)
          yield* run.commit(8)
          run.publish(9, 12)
          yield* Effect.sleep("100 millis")
          yield* run.finish
          const got = [...(yield* Fiber.join(events).pipe(Effect.timeout("20 seconds")))]
          expect(got.map((e) => e.seq)).toEqual(range(1, 12))
          for (const e of got) expect(e.json).toBe(run.body(e.seq))
          expect(a.redis.stats().publishFailures).toBe(3)
          expect(b.received()).toBeGreaterThan(0)
        }), { timeout: 60_000 })

      it.scoped.skipIf(!hasRedisServer)(
        "Redis gone while a run of another process finishes: the follower reads the rest from the database and ends; a new follower ends at once",
        () =>
          Effect.gen(function*() {
            const { b, follower, redis, run } = yield* followedOnPrivateRedis()
            expect(b.isLive(run.id)).toBe(true)
            yield* redis.kill
            // Its events and its end can no longer come through Redis: the bus does not say it is live.
            expect(yield* eventually(() => !b.isLive(run.id))).toBe(true)
            // The run goes on and finishes on the other process: committed, its end lost with Redis.
            run.publish(6, 10)
            yield* run.finish
            yield* ended(follower.fiber)
            expect(follower.seqs()).toEqual(range(1, 10))
            for (const e of follower.got) expect(e.json).toBe(run.body(e.seq))
            // Asked for the finished run while Redis is still away: all of it, and the end.
            const late = yield* following(b, run.id)
            yield* ended(late.fiber)
            expect(late.seqs()).toEqual(range(1, 10))
          }),
        { timeout: 60_000 }
      )

      it.scoped.skipIf(!hasRedisServer)(
        "Redis stops answering (a partition: connections open, no replies): within the live key's TTL the follower reads the database, and ends",
        () =>
          Effect.gen(function*() {
            const { b, follower, redis, run } = yield* followedOnPrivateRedis({ liveTtl: "1 second" })
            yield* redis.freeze
            yield* Effect.addFinalizer(() => redis.thaw)
            expect(b.redis.ready()).toBe(true)
            expect(yield* eventually(() => !b.isLive(run.id))).toBe(true)
            run.publish(6, 10)
            yield* run.finish
            yield* ended(follower.fiber)
            expect(follower.seqs()).toEqual(range(1, 10))
            yield* redis.thaw
          }),
        { timeout: 60_000 }
      )

      it.scoped("events lost from Redis just before the end: the follower reads them from the database and ends, not told it fell behind", () =>
        Effect.gen(function*() {
          const a = yield* bus()
          const b = yield* bus()
          const run = yield* simulatedRun(publisher(a), "alice")
          run.publish(1, 5)
          yield* run.commit(5)
          const follower = yield* following(b, run.id)
          expect(yield* eventually(() => follower.got.length === 5)).toBe(true)
          yield* blip(a)
          run.publish(6, 6)
          yield* backUp(a)
          yield* run.finish
          yield* ended(follower.fiber)
          expect(follower.seqs()).toEqual(range(1, 6))
          expect(a.redis.stats().publishFailures).toBe(1)
        }), { timeout: 60_000 })

      it.scoped("the follower's connections to Redis cut mid-run (CLIENT KILL, a blip; what was in flight dropped): every event once, in order, to the end, through Redis", () =>
        Effect.gen(function*() {
          const proxy = yield* freezingRedis
          const a = yield* bus()
          const b = yield* bus({}, proxy.url)
          const run = yield* simulatedRun(publisher(a), "alice")
          run.publish(1, 5)
          yield* run.commit(5)
          const follower = yield* following(b, run.id)
          expect(yield* eventually(() => follower.got.length === 5)).toBe(true)
          // The follower's process hears nothing while the run goes on, then its connections are cut.
          yield* proxy.freeze
          run.publish(6, 40)
          yield* run.commit(40)
          yield* Effect.sleep("100 millis")
          yield* proxy.cut
          run.publish(41, 45)
          yield* proxy.thaw
          run.publish(46, 50)
          yield* run.commit(50)
          expect(yield* eventually(() => follower.got.length === 50)).toBe(true)
          yield* run.finish
          yield* ended(follower.fiber)
          expect(follower.seqs()).toEqual(range(1, 50))
          for (const e of follower.got) expect(e.json).toBe(run.body(e.seq))
          // The stream resumed from where it was: every event after the first five (read with the
          // run's recent events when it was first followed) came through Redis, none from the database.
          expect(b.received()).toBe(45)
        }), { timeout: 60_000 })

      it.scoped("events lost from Redis, then a quiet run (live, publishing nothing for a while): the follower gets them within the live key's refresh, not at the run's next event", () =>
        Effect.gen(function*() {
          const a = yield* bus({ liveTtl: "1 second" })
          const b = yield* bus({ liveTtl: "1 second" })
          const run = yield* simulatedRun(publisher(a), "alice")
          run.publish(1, 5)
          yield* run.commit(5)
          const follower = yield* following(b, run.id)
          expect(yield* eventually(() => follower.got.length === 5)).toBe(true)
          yield* blip(a)
          run.publish(6, 8)
          yield* backUp(a)
          yield* run.commit(8)
          // Waiting for an approval, or for a paced bar: nothing more comes. Before, the follower
          // waited for the run's next event (minutes, an hour) to see the three it missed.
          expect(yield* eventually(() => follower.got.length === 8, 3_000)).toBe(true)
          expect(b.isLive(run.id)).toBe(true)
          expect(a.redis.stats().publishFailures).toBe(3)
          // Sent again through Redis, once (the first five were read with the run's recent events).
          expect(b.received()).toBe(3)
          run.publish(9, 10)
          yield* run.finish
          yield* ended(follower.fiber)
          expect(follower.seqs()).toEqual(range(1, 10))
          for (const e of follower.got) expect(e.json).toBe(run.body(e.seq))
        }), { timeout: 60_000 })

      it.scoped("events lost from Redis past the publisher's ring, then a quiet run: its last event written again shows the follower the hole, closed from the database", () =>
        Effect.gen(function*() {
          const a = yield* bus({ liveTtl: "1 second", ring: 2 })
          const b = yield* bus({ liveTtl: "1 second" })
          const run = yield* simulatedRun(publisher(a), "alice")
          run.publish(1, 5)
          yield* run.commit(5)
          const follower = yield* following(b, run.id)
          expect(yield* eventually(() => follower.got.length === 5)).toBe(true)
          yield* blip(a)
          run.publish(6, 10)
          yield* run.commit(10)
          yield* backUp(a)
          expect(yield* eventually(() => follower.got.length === 10, 3_000)).toBe(true)
          expect(b.isLive(run.id)).toBe(true)
          expect(b.received()).toBe(1)
          yield* run.finish
          yield* ended(follower.fiber)
          expect(follower.seqs()).toEqual(range(1, 10))
        }), { timeout: 60_000 })

      it.scoped(
        "the run's process gone without ending it: the follower is not told it fell behind; it reads the database, and follows the run again once resumed elsewhere, to its end",
        () =>
          Effect.gen(function*() {
            const a = yield* process_({ liveTtl: "400 millis" })
            const b = yield* bus({ liveTtl: "400 millis" })
            const run = yield* simulatedRun(publisher(a.bus), "alice")
            run.publish(1, 5)
            yield* run.commit(5)
            const follower = yield* following(b, run.id)
            expect(yield* eventually(() => follower.got.length === 5)).toBe(true)
            yield* a.kill
            expect(yield* eventually(() => !b.isLive(run.id))).toBe(true)
            yield* Effect.sleep("1 second")
            expect(follower.fiber.unsafePoll()).toBeNull()
            // Resumed by another process: each event committed, then published; then the run ends.
            const a2 = yield* bus({ liveTtl: "400 millis" })
            const sql = yield* SqlClient.SqlClient
            const before = b.received()
            for (let seq = 6; seq <= 10; seq++) {
              const tag = seq % 3 === 0 ? "PortfolioUpdated" : "DecisionMade"
              yield* Effect.orDie(sql`insert into run_events ${sql.insert({ runId: run.id, seq, tag, at: seq * 1000, hash: "0".repeat(64), body: run.body(seq) })}`)
              a2.publish(run.id, { seq, tag, json: run.body(seq) })
            }
            expect(yield* eventually(() => b.received() > before && b.isLive(run.id))).toBe(true)
            yield* Effect.orDie(sql`update runs set status = 'completed', finished_at = now() where id = ${run.id}`)
            a2.end(run.id)
            yield* ended(follower.fiber)
            expect(follower.seqs()).toEqual(range(1, 10))
            for (const e of follower.got) expect(e.json).toBe(run.body(e.seq))
          }),
        { timeout: 60_000 }
      )

      it.scoped.skipIf(!hasRedisServer)(
        "Redis back before the run's process reconnects: the follower, reading the database meanwhile, follows the run live again, every event once, to its end",
        () =>
          Effect.gen(function*() {
            const { a, b, follower, redis, run } = yield* followedOnPrivateRedis({ liveTtl: "1 second" })
            yield* redis.kill
            // The run goes on: its events, committed, reach the follower from the database.
            run.publish(6, 10)
            yield* run.commit(10)
            expect(yield* eventually(() => follower.got.length === 10)).toBe(true)
            // Redis comes back to the follower's process first (the run's stays away a while longer).
            a.redis.client.disconnect()
            yield* redis.start
            expect(yield* eventually(() => b.redis.ready(), 10_000)).toBe(true)
            // Longer than the live key's TTL with Redis there and no key: the run is not live, and
            // its follower is not told it fell behind.
            yield* Effect.sleep("2 seconds")
            expect(b.isLive(run.id)).toBe(false)
            expect(follower.fiber.unsafePoll()).toBeNull()
            // The run's process is back: live again, the rest through Redis.
            yield* Effect.promise(() => a.redis.client.connect())
            expect(yield* eventually(() => b.isLive(run.id))).toBe(true)
            const before = b.received()
            run.publish(11, 15)
            expect(yield* eventually(() => b.received() >= before + 5 && follower.got.length === 15)).toBe(true)
            yield* run.finish
            yield* ended(follower.fiber)
            expect(follower.seqs()).toEqual(range(1, 15))
            for (const e of follower.got) expect(e.json).toBe(run.body(e.seq))
          }),
        { timeout: 60_000 }
      )
    })
  })
}
