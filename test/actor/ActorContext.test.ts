import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema, Supervisor as FiberSupervisor, TestClock } from "effect"
import * as Actor from "../../src/actor/Actor.js"
import type { ActorRef } from "../../src/actor/ActorRef.js"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import { Terminated } from "../../schemas/Actor.js"
import { collect, ofTag, run, settle } from "../support.js"
import { Add, Counter, Get } from "./fixtures.js"


class Spawn extends Schema.TaggedRequest<Spawn>()("Spawn", { failure: Schema.Never, success: Schema.Unknown, payload: { name: Schema.String } }) {}
class Watch extends Schema.TaggedClass<Watch>()("Watch", { id: Schema.String }) {}
class Deaths extends Schema.TaggedRequest<Deaths>()("Deaths", { failure: Schema.Never, success: Schema.Array(Schema.String), payload: {} }) {}

/** A parent that spawns counters on request and records every `Terminated` it receives. */
const Parent = Actor.make({
  protocol: Schema.Union(Spawn, Watch, Deaths, Terminated),
  initial: { deaths: [] as ReadonlyArray<string> },
  behavior: (state, message, ctx) =>
    Effect.gen(function*() {
      switch (message._tag) {
        case "Spawn": {
          const child = yield* ctx.spawn(Counter, { name: message.name }).pipe(Effect.orDie)
          yield* ctx.watch(child)
          yield* ctx.reply(message, child)
          return state
        }
        case "Watch":
          return state
        case "Deaths":
          yield* ctx.reply(message, state.deaths)
          return state
        case "Terminated":
          return { deaths: [...state.deaths, `${message.actor}:${message.reason}`] }
      }
    })
})

describe("the actor context", () => {
  it.effect("spawns children under the parent's path; stopping the parent stops them first", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const parent = yield* Actor.spawn(Parent, { name: "parent" })
      const a = (yield* parent.ask(new Spawn({ name: "a" }))) as ActorRef<Add | Get>
      const b = (yield* parent.ask(new Spawn({ name: "b" }))) as ActorRef<Add | Get>
      expect([a.id, b.id]).toEqual(["/user/parent/a", "/user/parent/b"])
      yield* a.tell(new Add({ n: 3 }))
      expect(yield* a.ask(new Get())).toBe(3)
      yield* Actor.stop(parent)
      expect(ofTag(events, "ActorStopped").map((e) => e.actor)).toEqual(["/user/parent/b", "/user/parent/a", "/user/parent"])
      const system = yield* ActorSystem.ActorSystem
      expect(yield* system.liveActors).toBe(0)
    })))

  it.effect("death watch: a Terminated message arrives when a watched actor stops, not when it restarts", () =>
    run(Effect.gen(function*() {
      const parent = yield* Actor.spawn(Parent, { name: "watcher" })
      const child = (yield* parent.ask(new Spawn({ name: "c" }))) as ActorRef<Add | Get>
      const other = yield* Actor.spawn(Counter, { name: "other" })
      // watching from the outside: Terminated arrives through the watcher's protocol
      const Outside = Actor.make({
        protocol: Schema.Union(Deaths, Terminated),
        setup: (ctx) => Effect.as(ctx.watch(other), [] as ReadonlyArray<string>),
        behavior: (deaths, message, ctx) =>
          message._tag === "Terminated" ? Effect.succeed([...deaths, message.actor]) : Effect.as(ctx.reply(message, deaths), deaths)
      })
      const outside = yield* Actor.spawn(Outside)
      yield* settle()
      yield* Actor.stop(child)
      yield* Actor.stop(other)
      yield* settle()
      expect(yield* parent.ask(new Deaths())).toEqual(["/user/watcher/c:stopped"])
      expect(yield* outside.ask(new Deaths())).toEqual(["/user/other"])
    })))

  it.effect("watching an actor that already stopped delivers Terminated at once", () =>
    run(Effect.gen(function*() {
      const gone = yield* Actor.spawn(Counter)
      yield* Actor.stop(gone)
      const Late = Actor.make({
        protocol: Schema.Union(Deaths, Terminated),
        setup: (ctx) => Effect.as(ctx.watch(gone), [] as ReadonlyArray<string>),
        behavior: (deaths, message, ctx) =>
          message._tag === "Terminated" ? Effect.succeed([...deaths, message.reason]) : Effect.as(ctx.reply(message, deaths), deaths)
      })
      const late = yield* Actor.spawn(Late)
      yield* settle()
      expect(yield* late.ask(new Deaths())).toEqual(["stopped"])
    })))

  it.effect("watch with a mapping delivers a message of the watcher's own protocol", () =>
    run(Effect.gen(function*() {
      class Lost extends Schema.TaggedClass<Lost>()("Lost", { who: Schema.String }) {}
      const target = yield* Actor.spawn(Counter)
      const Mapper = Actor.make({
        protocol: Schema.Union(Lost, Deaths),
        setup: (ctx) => Effect.as(ctx.watch(target, (t) => new Lost({ who: t.actor })), [] as ReadonlyArray<string>),
        behavior: (lost, message, ctx) =>
          message._tag === "Lost" ? Effect.succeed([...lost, message.who]) : Effect.as(ctx.reply(message, lost), lost)
      })
      const mapper = yield* Actor.spawn(Mapper)
      yield* settle()
      yield* Actor.stop(target)
      yield* settle()
      expect(yield* mapper.ask(new Deaths())).toEqual([target.id])
    })))

  it.effect("timers: messages scheduled to self arrive on Clock time (TestClock) and stop with the actor", () =>
    run(Effect.gen(function*() {
      class Tick extends Schema.TaggedClass<Tick>()("Tick", {}) {}
      class Once extends Schema.TaggedClass<Once>()("Once", {}) {}
      const Ticker = Actor.make({
        protocol: Schema.Union(Tick, Once, Get),
        setup: (ctx) =>
          Effect.gen(function*() {
            yield* ctx.scheduleRepeatedly(new Tick(), "1 second")
            yield* ctx.schedule(new Once(), "2500 millis")
            return { ticks: 0, once: 0 }
          }),
        behavior: (state, message, ctx) => {
          switch (message._tag) {
            case "Tick":
              return Effect.succeed({ ...state, ticks: state.ticks + 1 })
            case "Once":
              return Effect.succeed({ ...state, once: state.once + 1 })
            case "Get":
              return Effect.as(ctx.reply(message, state.ticks * 100 + state.once), state)
          }
        }
      })
      const ticker = yield* Actor.spawn(Ticker)
      yield* settle()
      expect(yield* ticker.ask(new Get())).toBe(0)
      yield* TestClock.adjust("999 millis")
      expect(yield* ticker.ask(new Get())).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(yield* ticker.ask(new Get())).toBe(100)
      yield* TestClock.adjust("2 seconds")
      expect(yield* ticker.ask(new Get())).toBe(301)
      const system = yield* ActorSystem.ActorSystem
      yield* Actor.stop(ticker)
      const before = (yield* system.deadLetterCounts).stopped
      yield* TestClock.adjust("10 seconds")
      expect((yield* system.deadLetterCounts).stopped).toBe(before) // the timers died with the actor
    })))

  it.effect("an actor can stop itself; a transient one is then not restarted", () =>
    run(Effect.gen(function*() {
      class Quit extends Schema.TaggedClass<Quit>()("Quit", {}) {}
      const Quitter = Actor.make({
        protocol: Schema.Union(Quit, Get),
        initial: 0,
        behavior: (state, message, ctx) =>
          message._tag === "Quit" ? Effect.as(ctx.stop, state) : Effect.as(ctx.reply(message, state), state)
      })
      const system = yield* ActorSystem.ActorSystem
      const ref = yield* Actor.spawn(Quitter, { restart: "transient" })
      yield* ref.tell(new Quit())
      expect(yield* system.awaitTermination(ref)).toBe("stopped")
      expect((yield* ref.ask(new Get()).pipe(Effect.flip))._tag).toBe("NoReply")
    })))

  it.effect("a handler runs in a span whose parent is the sender's span, across two actors", () =>
    Effect.gen(function*() {
      const spans: Array<{ name: string; spanId: string; traceId: string; parent: string | undefined }> = []
      const tracer = yield* Effect.tracer
      const recording = {
        ...tracer,
        span: (...args: Parameters<typeof tracer.span>) => {
          const span = tracer.span(...args)
          const parent = span.parent._tag === "Some" ? span.parent.value.spanId : undefined
          spans.push({ name: span.name, spanId: span.spanId, traceId: span.traceId, parent })
          return span
        }
      }
      yield* Effect.gen(function*() {
        class Forward extends Schema.TaggedClass<Forward>()("Forward", {}) {}
        const last = yield* Actor.spawn(Counter, { name: "last" })
        const Relay = Actor.make({
          protocol: Forward,
          initial: undefined as void,
          behavior: () => Effect.orDie(last.tell(new Add({ n: 1 }))).pipe(Effect.withSpan("relay.work"))
        })
        const relay = yield* Actor.spawn(Relay, { name: "relay" })
        yield* relay.tell(new Forward()).pipe(Effect.withSpan("round"))
        yield* settle(() => spans.some((s) => s.name === "Actor.receive Add"))
      }).pipe(Effect.scoped, Effect.provide(ActorSystem.layer()), Effect.withTracer(recording))
      const byName = (name: string) => spans.find((s) => s.name === name)!
      const round = byName("round")
      const relayReceive = byName("Actor.receive Forward")
      const work = byName("relay.work")
      const lastReceive = byName("Actor.receive Add")
      expect(relayReceive.parent).toBe(round.spanId)
      expect(work.parent).toBe(relayReceive.spanId)
      expect(lastReceive.parent).toBe(work.spanId)
      expect(new Set([round, relayReceive, work, lastReceive].map((s) => s.traceId)).size).toBe(1)
    }))

  it.effect("a traced message's span is the handler's only while it runs, and ends with its failure", () =>
    Effect.gen(function*() {
      const ended: Array<{ name: string; spanId: string; exit: string }> = []
      const tracer = yield* Effect.tracer
      const recording = {
        ...tracer,
        span: (...args: Parameters<typeof tracer.span>) => {
          const span = tracer.span(...args)
          const end = span.end.bind(span)
          span.end = (time, exit) => {
            ended.push({ name: span.name, spanId: span.spanId, exit: exit._tag })
            end(time, exit)
          }
          return span
        }
      }
      class Note extends Schema.TaggedClass<Note>()("Note", { fail: Schema.Boolean }) {}
      class Seen extends Schema.TaggedRequest<Seen>()("Seen", { failure: Schema.Never, success: Schema.Array(Schema.String), payload: {} }) {}
      const seen: Array<string> = []
      yield* Effect.gen(function*() {
        const Noter = Actor.make({
          protocol: Schema.Union(Note, Seen),
          initial: undefined as void,
          behavior: (state, message, ctx) =>
            message._tag === "Seen"
              ? ctx.reply(message, seen)
              : Effect.flatMap(Effect.option(Effect.currentSpan), (span) => {
                seen.push(span._tag === "Some" ? span.value.name : "none")
                return message.fail ? Effect.dieMessage("refused") : Effect.as(Effect.void, state)
              })
        })
        const ref = yield* Actor.spawn(Noter, { name: "noter" })
        // Traced, then untraced in the same activation: the second handler must not run in the first's span.
        yield* ref.tell(new Note({ fail: false })).pipe(Effect.withSpan("round"))
        yield* ref.tell(new Note({ fail: false }))
        yield* ref.tell(new Note({ fail: true })).pipe(Effect.withSpan("failing round"))
        yield* settle(() => ended.filter((s) => s.name === "Actor.receive Note").length === 2)
      }).pipe(Effect.scoped, Effect.provide(ActorSystem.layer()), Effect.withTracer(recording))
      expect(seen).toEqual(["Actor.receive Note", "none", "Actor.receive Note"])
      expect(ended.filter((s) => s.name === "Actor.receive Note").map((s) => s.exit)).toEqual(["Success", "Failure"])
    }))

  it.effect("an idle actor holds no fiber; the next message starts one and its state is intact", () =>
    Effect.gen(function*() {
      const tracker = yield* FiberSupervisor.track
      const running = Effect.map(tracker.value, (fibers) => fibers.filter((f) => f.unsafePoll() === null).length)
      yield* Effect.gen(function*() {
        // The system's own fibers, including the ask-deadline timer, which the first ask arms.
        const warm = yield* Actor.spawn(Counter)
        yield* warm.ask(new Get())
        yield* settle(() => false, 20)
        const baseline = yield* running
        const counter = yield* Actor.spawn(Counter)
        expect(yield* running).toBe(baseline) // spawned, no fiber yet
        yield* counter.tell(new Add({ n: 2 }))
        expect(yield* counter.ask(new Get())).toBe(2)
        yield* settle(() => false, 20)
        expect(yield* running).toBe(baseline) // drained and idle again
        // many messages in a burst are handled by one activation, in order
        for (let n = 1; n <= 1000; n++) yield* counter.tell(new Add({ n }))
        expect(yield* running).toBe(baseline + 1)
        expect(yield* counter.ask(new Get())).toBe(2 + 500500)
        yield* settle(() => false, 20)
        expect(yield* running).toBe(baseline)
      }).pipe(Effect.scoped, Effect.provide(ActorSystem.layer()), Effect.supervised(tracker))
    }))

  it.effect("a message told while the actor is passivating is neither lost nor handled twice", () =>
    run(Effect.gen(function*() {
      const counter = yield* Actor.spawn(Counter)
      for (let round = 1; round <= 200; round++) {
        yield* counter.tell(new Add({ n: 1 }))
        // vary how many scheduler turns pass, so sends land before, during and after passivation
        for (let i = 0; i < round % 4; i++) yield* Effect.yieldNow()
      }
      expect(yield* counter.ask(new Get())).toBe(200)
    })))

  it.effect("10,000 actors spawned and stopped leave nothing running", () =>
    Effect.gen(function*() {
      const tracker = yield* FiberSupervisor.track
      const liveAfterStop = yield* Effect.gen(function*() {
        const system = yield* ActorSystem.ActorSystem
        const baseline = (yield* tracker.value).length // the system's own fibers
        const refs = yield* Effect.forEach(Array.from({ length: 10_000 }, (_, i) => i), (i) => Actor.spawn(Counter, { name: `n${i}` }))
        yield* Effect.forEach(refs, (ref, i) => ref.tell(new Add({ n: i })), { discard: true })
        expect(yield* refs[9_999]!.ask(new Get())).toBe(9_999)
        expect(yield* system.liveActors).toBe(10_000)
        yield* Effect.forEach(refs, (ref) => Actor.stop(ref), { discard: true })
        expect(yield* system.liveActors).toBe(0)
        yield* settle(() => false, 50)
        return (yield* tracker.value).filter((f) => f.unsafePoll() === null).length - baseline
      }).pipe(Effect.scoped, Effect.provide(ActorSystem.layer()), Effect.supervised(tracker))
      expect(liveAfterStop).toBe(0)
      yield* settle(() => false, 50)
      const stillRunning = (yield* tracker.value).filter((f) => f.unsafePoll() === null)
      expect(stillRunning.map((f) => f.id())).toEqual([]) // the system's own fibers ended with its scope

    }))
})
