/**
 * The follower's end, where it could lose events: the run ends (`Ended`) while the follower is still
 * catching up with a database that lagged the run by more than the bus's ring holds — no event after
 * the end pulls the missing ones in, so the follower reads the database one last time (and the
 * ring) before it ends. Deterministic: the follower's subscription is held until the test has
 * committed the run's events and ended it. And its early stop: a follower the run overruns is
 * stopped with `overflow` and where to resume, however the run goes on meanwhile. And a live run the
 * bus stops vouching for (another server's, while Redis is away) read from the database until the
 * bus can again, and to its end. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Cause, Chunk, Deferred, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import type { BusEvent, EventBusService, Subscription } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"
import { EventPages } from "../../src/edge/EventPages.js"
import * as Follow from "../../src/edge/Follow.js"
import type * as Runs from "../../src/store/Runs.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { createUsers, eventually, range, simulatedRun } from "./fixtures.js"

/**
 * `bus`, but its subscriptions hand nothing out until `open` is done; `waiting` is done when the
 * follower first waits on one (its database pages and the ring read by then). A look that does not
 * wait (`takeAllWithin(0)`, when the backlog is read) is answered at once.
 */
const heldBus = (bus: EventBusService, open: Deferred.Deferred<void>, waiting: Deferred.Deferred<void>): EventBusService => {
  const hold = <A>(take: Effect.Effect<A>) => Effect.zipRight(Effect.zipRight(Deferred.succeed(waiting, undefined), Deferred.await(open)), take)
  return {
    ...bus,
    subscribe: (run, options) =>
      Effect.map(bus.subscribe(run, options), (inner): Subscription => ({
        take: hold(inner.take),
        takeAll: hold(inner.takeAll),
        takeAllWithin: (millis) => (millis <= 0 ? inner.takeAllWithin(millis) : hold(inner.takeAllWithin(millis)))
      }))
  }
}

/** The publisher's turn is over: the bus has woken (and dropped) its subscribers. */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

for (const backend of backends) {
  const environment = Layer.effectDiscard(Effect.orDie(createUsers)).pipe(Layer.provideMerge(backend.store))
  layer(environment, { timeout: startTimeout, excludeTestServices: true })(`follow (${backend.name})`, (it) => {
    it.scoped("the run ends while the follower catches up with a lagging database: every event still comes, once, in order", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make({ ring: 5 })
        const run = yield* simulatedRun(bus, "alice")
        // 1..20 published; the database has 1..5, the ring 16..20: 6..15 are in neither yet.
        run.publish(1, 20)
        yield* run.commit(5)
        const open = yield* Deferred.make<void>()
        const waiting = yield* Deferred.make<void>()
        const sql = yield* SqlClient.SqlClient
        const follower = yield* Effect.fork(
          Follow.follow({ bus: heldBus(bus, open, waiting), sql }, run.id, 0).pipe(
            Stream.runCollect,
            Effect.map((bursts) => Chunk.toReadonlyArray(bursts).flat())
          )
        )
        // The follower has read 1..5 and found the ring short of 6: it is catching up.
        yield* Deferred.await(waiting)
        // The run ends with nothing more published: its events committed, then `Ended` on the bus.
        yield* run.finish
        yield* Deferred.succeed(open, undefined)
        const events = yield* Fiber.join(follower)
        expect(events.map((e) => e.seq)).toEqual(range(1, 20))
        for (const e of events) expect(e.json).toBe(run.body(e.seq))
      }))

    it.scoped("with types, only those events come, from the database and the bus alike, once, in order, to the run's end", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make({ ring: 5 })
        const run = yield* simulatedRun(bus, "alice")
        // As above: the database has 1..5, the ring 16..20, 6..15 in neither yet; then 21..30 live.
        run.publish(1, 20)
        yield* run.commit(5)
        const open = yield* Deferred.make<void>()
        const waiting = yield* Deferred.make<void>()
        const sql = yield* SqlClient.SqlClient
        const follower = yield* Effect.fork(
          Follow.follow({ bus: heldBus(bus, open, waiting), sql }, run.id, 0, { tags: ["PortfolioUpdated"], pageSize: 2 }).pipe(
            Stream.runCollect,
            Effect.map((bursts) => Chunk.toReadonlyArray(bursts).flat())
          )
        )
        yield* Deferred.await(waiting)
        yield* run.commit(20)
        run.publish(21, 30)
        yield* run.finish
        yield* Deferred.succeed(open, undefined)
        const events = yield* Fiber.join(follower)
        expect(events.map((e) => e.seq)).toEqual(range(1, 30).filter((seq) => seq % 3 === 0))
        for (const e of events) expect([e.tag, e.json]).toEqual(["PortfolioUpdated", run.body(e.seq)])
      }))

    it.scoped("a follower that falls too far behind stops with overflow and where to resume, while the run publishes on", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 2)
        yield* run.commit(2)
        const open = yield* Deferred.make<void>()
        const waiting = yield* Deferred.make<void>()
        const sql = yield* SqlClient.SqlClient
        const follower = yield* Effect.fork(
          Follow.follow({ bus: heldBus(bus, open, waiting), sql }, run.id, 0, { buffer: 3 }).pipe(
            Stream.runCollect,
            Effect.exit
          )
        )
        // It has given 1..2 and waits on its subscription, which the run overruns: dropped at the
        // wake-up after the burst, it is followed by nobody while the run goes on.
        yield* Deferred.await(waiting)
        run.publish(3, 12)
        yield* nextTurn
        expect(bus.subscribers(run.id)).toBe(0)
        run.publish(13, 17)
        yield* nextTurn
        yield* Deferred.succeed(open, undefined)
        // Told, not crashed: the SSE endpoint makes this its `overflow` frame, `runs.events` its `Unavailable`.
        const exit = yield* Fiber.join(follower)
        expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(
          Option.some(expect.objectContaining({ _tag: "FollowStopped", reason: "overflow", lastEventId: 2 }))
        )
      }))

    it.scoped("a fast run overrunning the subscription while the follower reads its history: not an overflow, every event once to the end", () =>
      Effect.gen(function*() {
        const inner = yield* InProcessBus.make()
        const run = yield* simulatedRun(inner, "alice")
        // History: committed before the follower comes.
        run.publish(1, 10)
        yield* run.commit(10)
        let subscriptions = 0
        const sql = yield* SqlClient.SqlClient
        // As the follower subscribes, and before it reads a page, the run publishes (and commits)
        // more than the subscription holds: the bus drops it at its next turn.
        const bus: EventBusService = {
          ...inner,
          subscribe: (id, options) =>
            Effect.tap(inner.subscribe(id, options), () =>
              ++subscriptions > 1 ? Effect.void : Effect.gen(function*() {
                run.publish(11, 20)
                yield* Effect.provideService(run.commit(20), SqlClient.SqlClient, sql)
                yield* nextTurn
              }))
        }
        const follower = yield* Effect.fork(
          Follow.follow({ bus, sql }, run.id, 0, { buffer: 3, pageSize: 4 }).pipe(
            Stream.runCollect,
            Effect.map((bursts) => Chunk.toReadonlyArray(bursts).flat())
          )
        )
        // Past its history, it follows the run on a fresh subscription.
        expect(yield* eventually(() => subscriptions === 2)).toBe(true)
        run.publish(21, 22)
        yield* run.finish
        const events = yield* Fiber.join(follower)
        expect(events.map((e) => e.seq)).toEqual(range(1, 22))
        for (const e of events) expect(e.json).toBe(run.body(e.seq))
      }))

    it.scoped("coalesce: a live run's events come in bursts at least that far apart, the first after a quiet spell at once; every one once, in order", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 1)
        yield* run.commit(1)
        const sql = yield* SqlClient.SqlClient
        const bursts: Array<{ readonly at: number; readonly seqs: ReadonlyArray<number> }> = []
        const follower = yield* Effect.fork(
          Follow.follow({ bus, sql }, run.id, 0, { coalesce: "1 second" }).pipe(
            Stream.runForEach((burst) => Effect.sync(() => bursts.push({ at: performance.now(), seqs: burst.map((e) => e.seq) })))
          )
        )
        expect(yield* eventually(() => bursts.length === 1)).toBe(true)
        // A quiet spell, then one event: it goes out at once, not a coalescing interval later. The
        // interval is a second, so that "at once" (under it: held for the interval, it could come no
        // sooner) leaves a loaded machine a second to deliver it; at 500 ms, with "under 400", it had 400.
        yield* Effect.sleep("1200 millis")
        const sent = performance.now()
        run.publish(2, 2)
        expect(yield* eventually(() => bursts.length === 2)).toBe(true)
        expect(bursts[1]!.seqs).toEqual([2])
        expect(bursts[1]!.at - sent).toBeLessThan(1_000)
        // Then one every 20 ms: they come together, in bursts a second apart.
        for (let seq = 3; seq <= 40; seq++) {
          run.publish(seq, seq)
          yield* Effect.sleep("20 millis")
        }
        yield* run.commit(40)
        yield* run.finish
        yield* Fiber.join(follower).pipe(Effect.timeout("10 seconds"))
        expect(bursts.flatMap((b) => b.seqs)).toEqual(range(1, 40))
        const live = bursts.slice(1)
        expect(live.length).toBeLessThan(10)
        for (let i = 1; i < live.length; i++) expect(live[i]!.at - live[i - 1]!.at).toBeGreaterThanOrEqual(995)
      }))

    it.scoped("every burst with events claims its share of the loop's turn first: the database's pages as much as the live run's", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 25)
        yield* run.commit(25)
        const sql = yield* SqlClient.SqlClient
        let claims = 0
        let given = 0
        const budget = { claim: Effect.sync(() => void claims++) }
        const follower = yield* Effect.fork(
          Follow.follow({ bus, sql }, run.id, 0, { pageSize: 10, budget }).pipe(
            Stream.runForEach((burst) => Effect.sync(() => void (given += burst.length > 0 ? 1 : 0)))
          )
        )
        expect(yield* eventually(() => given >= 3)).toBe(true)
        run.publish(26, 30)
        yield* run.commit(30)
        yield* run.finish
        yield* Fiber.join(follower).pipe(Effect.timeout("10 seconds"))
        // Pages of 10, 10 and 5, then the live burst(s): each claimed, nothing else.
        expect(given).toBeGreaterThanOrEqual(4)
        expect(claims).toBe(given)
      }))

    it.scoped("the followers' reads of the database are bounded: each holds its permit until its page has claimed its share of the turn", () =>
      Effect.gen(function*() {
        // The ring no longer reaches back to the start: the database is read.
        const bus = yield* InProcessBus.make({ ring: 5 })
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 30)
        yield* run.commit(30)
        yield* run.finish
        const sql = yield* SqlClient.SqlClient
        // One permit, counted: followers that asked for it, and those holding it.
        const semaphore = yield* Effect.makeSemaphore(1)
        let asked = 0
        let holding = 0
        const reads: Follow.Options["reads"] = {
          withPermits: (n) => (effect) =>
            Effect.zipRight(
              Effect.sync(() => void asked++),
              semaphore.withPermits(n)(Effect.ensuring(Effect.zipRight(Effect.sync(() => void holding++), effect), Effect.sync(() => void holding--)))
            )
        }
        // The turn is full: claims wait until the test lets them through.
        const open = yield* Deferred.make<void>()
        let claims = 0
        const budget = { claim: Effect.zipRight(Effect.sync(() => void claims++), Deferred.await(open)) }
        const followers = yield* Effect.forEach([0, 0, 0], (since) =>
          Effect.fork(
            Follow.follow({ bus, sql }, run.id, since, { pageSize: 10, budget, reads }).pipe(
              Stream.runCollect,
              Effect.map((bursts) => Chunk.toReadonlyArray(bursts).flat().map((e) => e.seq))
            )
          ))
        // All three want to read; one reads, and waits for its turn with its permit: its page is
        // the only one held meanwhile.
        expect(yield* eventually(() => asked >= 3 && claims >= 1)).toBe(true)
        expect(holding).toBe(1)
        expect(claims).toBe(1)
        yield* Deferred.succeed(open, undefined)
        for (const follower of followers) expect(yield* Fiber.join(follower)).toEqual(range(1, 30))
      }))

    it.scoped("a client back within the ring's reach is given the ring's events, the very ones the live clients were (their frames encoded once), not the database's", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make({ ring: 100 })
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 30)
        yield* run.commit(30)
        const sql = yield* SqlClient.SqlClient
        const ring = bus.recent(run.id, 5)!
        const got: Array<BusEvent> = []
        const follower = yield* Effect.fork(
          Follow.follow({ bus, sql }, run.id, 5, { pageSize: 10 }).pipe(Stream.runForEach((burst) => Effect.sync(() => got.push(...burst))))
        )
        expect(yield* eventually(() => got.length >= 25)).toBe(true)
        yield* run.finish
        yield* Fiber.join(follower).pipe(Effect.timeout("10 seconds"))
        expect(got.map((e) => e.seq)).toEqual(range(6, 30))
        got.forEach((e, i) => expect(e).toBe(ring[i]))
      }))

    it.scoped("a follower starting within the ring but slower than the run does not chase the ring as its backlog: it is told it fell behind", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make({ ring: 1_000 })
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 20)
        yield* run.commit(20)
        const sql = yield* SqlClient.SqlClient
        // The run publishes 5 events for every burst the follower gets (a page of 5): too fast for it.
        let published = 20
        const budget = {
          claim: Effect.sync(() => {
            if (published >= 200) return
            run.publish(published + 1, published + 5)
            published += 5
          })
        }
        const follower = yield* Effect.fork(
          Follow.follow({ bus, sql }, run.id, 0, { buffer: 3, pageSize: 5, budget }).pipe(Stream.runDrain, Effect.either)
        )
        expect(yield* eventually(() => published >= 200 || follower.unsafePoll() !== null)).toBe(true)
        yield* run.finish
        const stopped = yield* Fiber.join(follower)
        expect(stopped._tag === "Left" && stopped.left.reason).toBe("overflow")
      }))

    it.scoped("followers reading the same stretch of the database share its whole pages: read once, the same events (and frames) for all", () =>
      Effect.gen(function*() {
        // The ring no longer reaches back to the start: the database is read.
        const bus = yield* InProcessBus.make({ ring: 5 })
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 30)
        yield* run.commit(30)
        yield* run.finish
        const sql = yield* SqlClient.SqlClient
        let reads = 0
        const counted: Follow.Options["reads"] = { withPermits: () => (effect) => Effect.zipRight(Effect.sync(() => void reads++), effect) }
        const pages = new EventPages(8)
        const followers = yield* Effect.forEach([0, 0, 0], (since) =>
          Effect.fork(
            Follow.follow({ bus, sql }, run.id, since, { pageSize: 10, reads: counted, pages }).pipe(
              Stream.runCollect,
              Effect.map((bursts) => Chunk.toReadonlyArray(bursts).flat())
            )
          ))
        const [a, b, c] = yield* Effect.forEach(followers, Fiber.join)
        expect(a!.map((e) => e.seq)).toEqual(range(1, 30))
        a!.forEach((e, i) => {
          expect(b![i]).toBe(e)
          expect(c![i]).toBe(e)
        })
        // Pages 1..10, 11..20 and 21..30 once; the one after, not whole, by each (once or twice).
        expect(reads).toBeGreaterThanOrEqual(6)
        expect(reads).toBeLessThanOrEqual(9)
      }))

    it.scoped("a follower of a run not live here reads the run's row under a permit of the reads, as its pages", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make({ ring: 5 })
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 12)
        yield* run.commit(12)
        yield* run.finish
        const sql = yield* SqlClient.SqlClient
        // What each read under a permit gave: the pages' rows (arrays), or the run's row.
        const read: Array<unknown> = []
        const recorded: Follow.Options["reads"] = { withPermits: () => (effect) => Effect.tap(effect, (value) => void read.push(value)) }
        const events = yield* Follow.follow({ bus, sql }, run.id, 0, { pageSize: 10, reads: recorded }).pipe(
          Stream.runCollect,
          Effect.map((bursts) => Chunk.toReadonlyArray(bursts).flat())
        )
        expect(events.map((e) => e.seq)).toEqual(range(1, 12))
        expect(read.filter((value) => !Array.isArray(value)).map((value) => (value as Runs.RunSummary).status)).toEqual(["completed"])
        expect(read.filter((value) => Array.isArray(value)).length).toBeGreaterThanOrEqual(2)
      }))

    it.scoped("a follower stopped (overflow) claims its share of the turn before it stops: the herd the bus drops at once is disconnected a few a turn", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 1)
        yield* run.commit(1)
        const open = yield* Deferred.make<void>()
        const waiting = yield* Deferred.make<void>()
        const sql = yield* SqlClient.SqlClient
        const log: Array<string> = []
        const budget = { claim: Effect.sync(() => void log.push("claim")) }
        const follower = yield* Effect.fork(
          Follow.follow({ bus: heldBus(bus, open, waiting), sql }, run.id, 0, { buffer: 2, budget }).pipe(
            Stream.runForEach(() => Effect.sync(() => void log.push("burst"))),
            Effect.either
          )
        )
        // It has given 1 and waits on its subscription, which the run overruns.
        yield* Deferred.await(waiting)
        run.publish(2, 20)
        yield* nextTurn
        yield* Deferred.succeed(open, undefined)
        const stopped = yield* Fiber.join(follower)
        expect(stopped._tag === "Left" && stopped.left.reason).toBe("overflow")
        expect(log).toEqual(["claim", "burst", "claim"])
      }))

    it.scoped("a run ended on the bus whose row still says it runs (stopped without its end, taken over elsewhere): the follower follows on, to the end its row records", () =>
      Effect.gen(function*() {
        const bus = yield* InProcessBus.make()
        const run = yield* simulatedRun(bus, "alice")
        run.publish(1, 5)
        yield* run.commit(5)
        const sql = yield* SqlClient.SqlClient
        const got: Array<number> = []
        const follower = yield* Effect.fork(
          Follow.follow({ bus, sql }, run.id, 0, { poll: "50 millis" }).pipe(Stream.runForEach((burst) => Effect.sync(() => got.push(...burst.map((e) => e.seq)))))
        )
        for (let i = 0; i < 500 && got.length < 5; i++) yield* Effect.sleep("10 millis")
        // Its process lost the database, stopped it and ended it on the bus; its row stayed `running`.
        bus.end(run.id)
        yield* Effect.sleep("300 millis")
        // Before, the follower ended here (`end`, status "running").
        expect(yield* Fiber.poll(follower)).toEqual(Option.none())
        // Another process took it over: what it commits comes, then its end.
        run.publish(6, 9)
        yield* run.finish
        yield* Fiber.join(follower).pipe(Effect.timeout("10 seconds"))
        expect(got).toEqual(range(1, 9))
      }))

    it.scoped("a live run the bus stops vouching for (another server's, with Redis away): the follower reads the database, follows the bus again when it can, and ends when the run's row does", () =>
      Effect.gen(function*() {
        // The run's process, and this one: its bus says the run is live while `vouched`, and gets
        // only the events the test hands it (what came through Redis).
        const there = yield* InProcessBus.make()
        const here = yield* InProcessBus.make()
        let vouched = true
        const bus: EventBusService = { ...here, isLive: () => vouched }
        const run = yield* simulatedRun(there, "alice")
        const through = (from: number, to: number) => {
          for (const seq of range(from, to)) here.publish(run.id, { seq, tag: seq % 3 === 0 ? "PortfolioUpdated" : "DecisionMade", json: run.body(seq) })
        }
        run.publish(1, 5)
        yield* run.commit(5)
        const sql = yield* SqlClient.SqlClient
        const got: Array<number> = []
        const follower = yield* Effect.fork(
          Follow.follow({ bus, sql }, run.id, 0, { poll: "50 millis" }).pipe(Stream.runForEach((burst) => Effect.sync(() => got.push(...burst.map((e) => e.seq)))))
        )
        const until = (done: () => boolean) =>
          Effect.gen(function*() {
            for (let i = 0; i < 500 && !done(); i++) yield* Effect.sleep("10 millis")
            return done()
          })
        expect(yield* until(() => got.length === 5)).toBe(true)
        // The bus can no longer vouch for it: what the run commits comes from the database.
        vouched = false
        run.publish(6, 10)
        yield* run.commit(10)
        expect(yield* until(() => got.length === 10)).toBe(true)
        // Vouched for again: the bus's events come, after the database's, once each.
        vouched = true
        run.publish(11, 14)
        yield* run.commit(14)
        through(9, 14)
        expect(yield* until(() => got.length === 14)).toBe(true)
        // Not vouched for, and the run finishes: its end never reaches this bus, its row says it.
        vouched = false
        run.publish(15, 16)
        yield* run.finish
        yield* Fiber.join(follower).pipe(Effect.timeout("10 seconds"))
        expect(got).toEqual(range(1, 16))
      }))
  })
}
