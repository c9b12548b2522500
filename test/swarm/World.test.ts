import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Exit, Random, Schema, Scope, Stream } from "effect"
import * as Actor from "../../src/actor/Actor.js"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import type { LifecycleEvent } from "../../schemas/Lifecycle.js"
import { World, WorldBlocked } from "../../src/swarm/World.js"
import { Add, Boom, Counter, Get, Incarnation } from "../actor/fixtures.js"

const START = Date.UTC(2024, 0, 2)

/** A world with an actor system living in it, and its lifecycle events collected. */
const makeWorld = (seed: string | number = "seed") => {
  const world = Effect.runSync(World.make({ start: START, seed }))
  const scope = Effect.runSync(Scope.make())
  const events: Array<LifecycleEvent> = []
  const system = world.runOrThrow(
    Effect.gen(function*() {
      const system = yield* ActorSystem.make()
      yield* Stream.runForEach(yield* system.lifecycle, (e) => Effect.sync(() => events.push(e))).pipe(Effect.forkScoped)
      return system
    }).pipe(Scope.extend(scope))
  )
  const inSystem = <A, E>(effect: Effect.Effect<A, E, ActorSystem.ActorSystem>) =>
    world.runOrThrow(Effect.provideService(effect, ActorSystem.ActorSystem, system))
  return { world, system, events, inSystem, close: () => world.runOrThrow(Scope.close(scope, Exit.void)) }
}

/** An actor that never answers an ask (it keeps the reply for later and never sends it). */
const Silent = Actor.make({
  protocol: Get,
  initial: 0,
  behavior: (state, message, ctx) => Effect.as(Effect.sync(() => ctx.replyLater(message)), state)
})

describe("the discrete-event world", () => {
  it("messages are handled when the world settles; virtual time does not move", () => {
    const { world, inSystem, close } = makeWorld()
    const counter = inSystem(Actor.spawn(Counter))
    world.start(Effect.forEach([1, 2, 3], (n) => counter.tell(new Add({ n }))))
    expect(inSystem(counter.ask(new Get()))).toBe(6)
    expect(world.now).toBe(START)
    close()
  })

  it("timers fire at their exact virtual times as time is advanced", () => {
    const { world, inSystem, close } = makeWorld()
    class Tick extends Schema.TaggedClass<Tick>()("Tick", {}) {}
    class Times extends Schema.TaggedRequest<Times>()("Times", { failure: Schema.Never, success: Schema.Array(Schema.Number), payload: {} }) {}
    const Ticker = Actor.make({
      protocol: Schema.Union(Tick, Times),
      setup: (ctx) => Effect.as(ctx.scheduleRepeatedly(new Tick(), "1 second"), [] as ReadonlyArray<number>),
      behavior: (times, message, ctx) =>
        message._tag === "Tick"
          ? Effect.map(Clock.currentTimeMillis, (now) => [...times, now - START])
          : Effect.as(ctx.reply(message, times), times)
    })
    const ticker = inSystem(Actor.spawn(Ticker))
    world.advanceTo(START + 3_500)
    expect(inSystem(ticker.ask(new Times()))).toEqual([1000, 2000, 3000])
    expect(world.now).toBe(START + 3_500)
    world.advanceTo(START + 5_000)
    expect(inSystem(ticker.ask(new Times()))).toEqual([1000, 2000, 3000, 4000, 5000])
    close()
  })

  it("a crashed actor is restarted after its backoff in virtual time", () => {
    const { world, inSystem, events, close } = makeWorld()
    const counter = inSystem(Actor.spawn(Counter, { name: "c" }))
    world.start(counter.tell(new Boom({ why: "x" })))
    expect(events.filter((e) => e._tag === "ActorCrashed")).toHaveLength(1)
    expect(events.filter((e) => e._tag === "ActorRestarted")).toHaveLength(0)
    world.advanceTo(START + 9)
    expect(events.filter((e) => e._tag === "ActorRestarted")).toHaveLength(0)
    world.advanceTo(START + 10)
    expect(events.filter((e) => e._tag === "ActorRestarted")).toMatchObject([{ actor: "/user/c", at: START + 10, delayMillis: 10 }])
    expect(inSystem(counter.ask(new Incarnation()))).toBe(2)
    close()
  })

  it("run moves time forward while the effect waits on a timer: an ask times out in virtual time", () => {
    const { world, inSystem, close } = makeWorld()
    const silent = inSystem(Actor.spawn(Silent))
    const exit = world.run(silent.ask(new Get(), { timeout: "2 seconds" }))
    expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("AskTimeout")
    expect(world.now).toBe(START + 2_000)
    close()
  })

  it("ask deadlines are callbacks of the virtual clock: each fires at its own time, an answered ask leaves none", () => {
    const { world, inSystem, close } = makeWorld()
    const silent = inSystem(Actor.spawn(Silent))
    const counter = inSystem(Actor.spawn(Counter))
    expect(inSystem(counter.ask(new Get(), { timeout: "1 second" }))).toBe(0)
    expect(world.clock.pending).toBe(0)
    const timedOut: Array<[string, number]> = []
    const asking = (label: string, timeout: Duration.DurationInput) =>
      Effect.forkDaemon(Effect.flatMap(Effect.exit(silent.ask(new Get(), { timeout })), (exit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          if (Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "AskTimeout") timedOut.push([label, now - START])
        })))
    world.start(asking("long", "3 seconds"))
    world.advanceTo(START + 500)
    // A later ask with an earlier deadline: the timer is armed earlier, not left at the first one.
    world.start(asking("short", "1 second"))
    world.advanceTo(START + 10_000)
    expect(timedOut).toEqual([["short", 1_500], ["long", 3_000]])
    expect(world.clock.pending).toBe(0)
    close()
  })

  it("an effect that waits on something no timer brings is reported, not hung", () => {
    const { world } = makeWorld()
    const never = Effect.flatMap(Deferred.make<void>(), Deferred.await)
    expect(() => world.run(never)).toThrow(WorldBlocked)
  })

  it("the same seed gives the same run, message for message; another seed another run", () => {
    const trace = (seed: string) => {
      const { world, inSystem, close } = makeWorld(seed)
      const log: Array<string> = []
      class Ping extends Schema.TaggedClass<Ping>()("Ping", { hops: Schema.Number }) {}
      const refs: Array<{ tell: (p: Ping) => Effect.Effect<void> }> = []
      const Node = (name: string) =>
        Actor.make({
          protocol: Ping,
          initial: undefined as void,
          behavior: (_s, ping) =>
            Effect.gen(function*() {
              const now = yield* Clock.currentTimeMillis
              const pick = yield* Random.nextIntBetween(0, refs.length)
              log.push(`${now - START} ${name} ${ping.hops} -> ${pick}`)
              if (ping.hops > 0) yield* refs[pick]!.tell(new Ping({ hops: ping.hops - 1 }))
            })
        })
      for (const name of ["a", "b", "c", "d"]) refs.push(inSystem(Actor.spawn(Node(name))))
      for (let t = 0; t < 5; t++) {
        world.advanceTo(START + t * 1_000)
        world.start(Effect.forEach(refs, (ref) => ref.tell(new Ping({ hops: 3 }))))
      }
      close()
      return log
    }
    const first = trace("alpha")
    expect(first).toHaveLength(5 * 4 * 4)
    expect(trace("alpha")).toEqual(first)
    expect(trace("beta")).not.toEqual(first)
  })
})
