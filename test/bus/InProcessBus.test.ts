/**
 * The in-process bus as its followers rely on it: every event after the subscription, in order,
 * then `Ended`; a subscriber that stops reading is dropped with `Overflow` while the publisher
 * goes on unhindered; late readers find the recent events in the ring, for a while after the end;
 * and nothing is held for a subscriber that left or a run ended long ago.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Scope, TestClock } from "effect"
import type { BusEvent, Delivery } from "../../src/bus/EventBus.js"
import * as InProcessBus from "../../src/bus/InProcessBus.js"

const ev = (seq: number): BusEvent => ({ seq, tag: seq % 2 === 0 ? "Even" : "Odd", json: `{"seq":${seq}}` })
const seqs = (deliveries: ReadonlyArray<Delivery>) => deliveries.map((d) => (d._tag === "Event" ? d.event.seq : d._tag))

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** The publisher's turn is over: the bus has woken (and dropped) its subscribers. */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Take until a terminal delivery; every delivery, in order. */
const drain = (sub: { readonly take: Effect.Effect<Delivery> }) =>
  Effect.gen(function*() {
    const out: Array<Delivery> = []
    for (;;) {
      const d = yield* sub.take
      out.push(d)
      if (d._tag !== "Event") return out
    }
  })

describe("InProcessBus", () => {
  it.scoped("a subscriber gets every event published after it subscribed, in order, then Ended", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make()
      bus.publish("r", ev(1))
      const sub = yield* bus.subscribe("r")
      expect(bus.isLive("r")).toBe(true)
      for (let seq = 2; seq <= 5; seq++) bus.publish("r", ev(seq))
      bus.end("r")
      expect(bus.isLive("r")).toBe(false)
      expect(seqs(yield* drain(sub))).toEqual([2, 3, 4, 5, "Ended"])
      // Ended stays the answer.
      expect((yield* sub.take)._tag).toBe("Ended")
      // Another run's events do not reach it.
      expect(bus.subscribers("r")).toBe(0)
    }))

  it.scoped("takeAll hands over the whole burst, the terminal delivery last", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make()
      const sub = yield* bus.subscribe("r")
      const waiting = yield* Effect.fork(sub.takeAll)
      yield* Effect.yieldNow()
      bus.publish("r", ev(1))
      expect(seqs(yield* Fiber.join(waiting))).toEqual([1])
      for (let seq = 2; seq <= 4; seq++) bus.publish("r", ev(seq))
      bus.end("r")
      expect(seqs(yield* sub.takeAll)).toEqual([2, 3, 4, "Ended"])
    }))

  it.scoped("a subscriber who stops reading gets Overflow and is dropped; 100k publishes never wait for it", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make()
      const stuck = yield* bus.subscribe("r") // default buffer: 4,096
      const roomy = yield* bus.subscribe("r", { buffer: 200_000 })
      // It reads two, then stops.
      bus.publish("r", ev(1))
      bus.publish("r", ev(2))
      expect(seqs([yield* stuck.take, yield* stuck.take])).toEqual([1, 2])
      // `publish` is a plain function: the whole loop runs without this fiber ever yielding, so no
      // subscriber could have run in between — the publisher cannot have waited for one.
      const started = performance.now()
      for (let seq = 3; seq <= 100_002; seq++) bus.publish("r", ev(seq))
      const millis = performance.now() - started
      expect(bus.subscribers("r")).toBe(1)
      // Dropped with what it had been given; its buffer was let go.
      expect(yield* stuck.take).toEqual({ _tag: "Overflow", lastDelivered: 2 })
      expect(yield* stuck.take).toEqual({ _tag: "Overflow", lastDelivered: 2 })
      // The one that kept up lost nothing.
      const all = yield* roomy.takeAll
      expect(all.length).toBe(100_002)
      expect(seqs(all).every((s, i) => s === i + 1)).toBe(true)
      yield* Effect.logDebug(`100k publishes with a stuck subscriber: ${millis.toFixed(1)} ms`)
    }))

  it.scoped("a dropped subscriber gets Overflow, and only that, however the run goes on after it", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make()
      // Alone: it is dropped at the wake-up after the burst, and the run then publishes to nobody.
      const alone = yield* bus.subscribe("r", { buffer: 3 })
      for (let seq = 1; seq <= 10; seq++) bus.publish("r", ev(seq))
      yield* nextTurn
      expect(bus.subscribers("r")).toBe(0)
      for (let seq = 11; seq <= 15; seq++) bus.publish("r", ev(seq))
      yield* nextTurn
      expect(seqs(yield* alone.takeAll)).toEqual(["Overflow"])
      expect(yield* alone.take).toEqual({ _tag: "Overflow", lastDelivered: 0 })

      // Beside one that keeps up: what all the others have taken is let go, and what comes after
      // the drop is not the dropped one's.
      const dropped = yield* bus.subscribe("s", { buffer: 3 })
      const reader = yield* bus.subscribe("s")
      bus.publish("s", ev(1))
      expect(seqs(yield* dropped.takeAll)).toEqual([1])
      for (let seq = 2; seq <= 10; seq++) bus.publish("s", ev(seq))
      yield* nextTurn
      expect(seqs(yield* reader.takeAll)).toEqual(range(1, 10))
      for (let seq = 11; seq <= 30; seq++) bus.publish("s", ev(seq))
      yield* nextTurn
      expect(seqs(yield* reader.takeAll)).toEqual(range(11, 30))
      expect(seqs(yield* dropped.takeAllWithin(0))).toEqual(["Overflow"])
      expect(yield* dropped.take).toEqual({ _tag: "Overflow", lastDelivered: 1 })
    }))

  it.scoped("a subscription is removed when its scope closes, and an idle run is forgotten with it", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make()
      const scope = yield* Scope.make()
      yield* bus.subscribe("r").pipe(Scope.extend(scope))
      yield* bus.subscribe("r").pipe(Scope.extend(scope))
      expect(bus.subscribers("r")).toBe(2)
      expect(bus.runs()).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(bus.subscribers("r")).toBe(0)
      expect(bus.runs()).toBe(0)
      // Publishing to nobody is fine.
      bus.publish("r", ev(1))
      expect(bus.recent("r", 0)).toEqual([ev(1)])
    }))

  it.scoped("an interrupted take loses nothing", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make()
      const sub = yield* bus.subscribe("r")
      const timed = yield* Effect.fork(Effect.timeoutOption(sub.take, "10 millis"))
      yield* TestClock.adjust("10 millis")
      expect(yield* Fiber.join(timed)).toEqual(Option.none())
      const fiber = yield* Effect.fork(sub.take)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      bus.publish("r", ev(1))
      expect(seqs([yield* sub.take])).toEqual([1])
    }))

  it.effect("the ring: the recent events after a sequence number, or undefined once it no longer reaches back", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make({ ring: 100 })
      expect(bus.recent("unknown", 0)).toEqual([])
      for (let seq = 1; seq <= 250; seq++) bus.publish("r", ev(seq))
      // Holds 151..250.
      expect(bus.recent("r", 150)?.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 151 + i))
      expect(bus.recent("r", 200)?.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 201 + i))
      expect(bus.recent("r", 250)).toEqual([])
      expect(bus.recent("r", 1_000)).toEqual([])
      expect(bus.recent("r", 149)).toBeUndefined()
      expect(bus.recent("r", 0)).toBeUndefined()
      // A run that starts over (re-executed from seq 1) restarts its ring.
      bus.publish("r", ev(1))
      expect(bus.recent("r", 0)).toEqual([ev(1)])
    }))

  it.effect("an ended run's ring is kept for a while, then forgotten; at most maxEnded are kept", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make({ retainEnded: "60 seconds", maxEnded: 2 })
      for (let seq = 1; seq <= 3; seq++) bus.publish("a", ev(seq))
      bus.end("a")
      expect(bus.isLive("a")).toBe(false)
      yield* TestClock.adjust("59 seconds")
      expect(bus.recent("a", 1)?.map((e) => e.seq)).toEqual([2, 3])
      // A late subscriber of an ended run is told at once.
      expect(yield* Effect.scoped(Effect.flatMap(bus.subscribe("a"), (s) => s.take))).toEqual({ _tag: "Ended" })
      yield* TestClock.adjust("1 second")
      expect(bus.runs()).toBe(0)
      expect(bus.recent("a", 1)).toEqual([])

      for (const run of ["b", "c", "d"]) {
        bus.publish(run, ev(1))
        bus.end(run)
      }
      // The oldest went first.
      expect(bus.runs()).toBe(2)
      expect(bus.recent("b", 0)).toEqual([])
      expect(bus.recent("d", 0)).toEqual([ev(1)])
    }))

  it.scoped("a run ended while a subscriber waits wakes it with Ended; a run published again is live again", () =>
    Effect.gen(function*() {
      const bus = yield* InProcessBus.make()
      const sub = yield* bus.subscribe("r")
      const waiting = yield* Effect.fork(sub.take)
      yield* Effect.yieldNow()
      bus.end("r")
      expect(yield* Fiber.join(waiting)).toEqual({ _tag: "Ended" })
      bus.publish("r", ev(7))
      expect(bus.isLive("r")).toBe(true)
      const again = yield* bus.subscribe("r")
      bus.publish("r", ev(8))
      expect(seqs([yield* again.take])).toEqual([8])
    }))
})
