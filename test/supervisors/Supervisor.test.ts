import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, Schema, TestClock } from "effect"
import * as Actor from "../../src/actor/Actor.js"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import * as Supervisor from "../../supervisors/Supervisor.js"
import { SupervisionPolicy } from "../../schemas/Supervision.js"
import { collect, ofTag, run, settle } from "../support.js"
import { Add, Boom, Counter, CounterProtocol, Get, Incarnation } from "../actor/fixtures.js"


const exponential = { _tag: "exponential", baseMillis: 100, factor: 2, maxMillis: 300 } as const

describe("restarts", () => {
  it.effect("a crashed child is restarted after its backoff; the crashing message goes to dead letters with the cause", () =>
    run(Effect.gen(function*() {
      const { events, deadLetters } = yield* collect
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        intensity: 10,
        period: "1 minute",
        backoff: exponential,
        children: [Supervisor.worker("w", Counter)]
      }, { name: "sup" })
      const w = sup.ref("w")
      yield* w.tell(new Add({ n: 5 }))
      yield* w.tell(new Boom({ why: "bad tick" }))
      const pending = yield* w.ask(new Get()).pipe(Effect.fork)
      yield* settle(() => ofTag(events, "ActorCrashed").length === 1)
      yield* TestClock.adjust("99 millis")
      expect(ofTag(events, "ActorRestarted")).toEqual([]) // still backing off
      expect(pending.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(pending)).toBe(0) // fresh state, and the queued ask survived the restart
      expect(ofTag(events, "ActorCrashed")[0]).toMatchObject({ actor: "/user/sup/w", message: "Boom", cause: "RuntimeException: bad tick" })
      expect(deadLetters).toHaveLength(1)
      expect(deadLetters[0]).toMatchObject({ reason: "crashed", recipient: "/user/sup/w", detail: "RuntimeException: bad tick" })
      expect((deadLetters[0]!.message as Boom).why).toBe("bad tick")

      // consecutive crashes back off exponentially up to the cap: 100, 200, 300, 300 ms
      for (const delay of [200, 300, 300]) {
        yield* w.tell(new Boom({ why: "again" }))
        yield* settle(() => ofTag(events, "ActorCrashed").length === ofTag(events, "ActorRestarted").length + 1)
        yield* TestClock.adjust(delay)
        yield* settle(() => ofTag(events, "ActorCrashed").length === ofTag(events, "ActorRestarted").length)
      }
      expect(ofTag(events, "ActorRestarted").map((e) => [e.attempt, e.delayMillis])).toEqual([[1, 100], [2, 200], [3, 300], [4, 300]])
      expect(yield* w.ask(new Incarnation())).toBe(5)
    })))

  it.effect("messages queued behind the crashing one are handled by the new incarnation", () =>
    run(Effect.gen(function*() {
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        backoff: { _tag: "none" },
        children: [Supervisor.worker("w", Counter)]
      })
      const w = sup.ref("w")
      // all four are queued before the actor runs: the crash must not lose the three behind it
      yield* w.tell(new Boom({ why: "x" }))
      yield* w.tell(new Add({ n: 1 }))
      yield* w.tell(new Add({ n: 2 }))
      expect(yield* w.ask(new Get())).toBe(3)
      expect(yield* w.ask(new Incarnation())).toBe(2)
    })))

  it.effect("onRestart recovers the state instead of starting from the initial one", () =>
    run(Effect.gen(function*() {
      const Durable = Actor.make({
        protocol: CounterProtocol,
        initial: 0,
        behavior: Counter.behavior,
        onRestart: (last) => Effect.succeed(last * 10)
      })
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        backoff: { _tag: "none" },
        children: [Supervisor.worker("d", Durable)]
      })
      const d = sup.ref("d")
      yield* d.tell(new Add({ n: 4 }))
      yield* d.tell(new Boom({ why: "x" }))
      expect(yield* d.ask(new Get())).toBe(40)
    })))
})

describe("strategies", () => {
  const three = (strategy: "one_for_one" | "one_for_all" | "rest_for_one") =>
    Supervisor.start({
      strategy,
      backoff: { _tag: "none" },
      children: [Supervisor.worker("a", Counter), Supervisor.worker("b", Counter), Supervisor.worker("c", Counter)]
    }, { name: strategy })

  const incarnations = (sup: Effect.Effect.Success<ReturnType<typeof three>>) =>
    Effect.forEach(["a", "b", "c"] as const, (name) => sup.ref(name).ask(new Incarnation()))

  it.effect("one_for_one restarts only the failed child", () =>
    run(Effect.gen(function*() {
      const sup = yield* three("one_for_one")
      yield* sup.ref("b").tell(new Boom({ why: "x" }))
      yield* settle()
      expect(yield* incarnations(sup)).toEqual([1, 2, 1])
    })))

  it.effect("one_for_all restarts every child: siblings stopped in reverse order, all started in order", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const sup = yield* three("one_for_all")
      yield* sup.ref("a").tell(new Add({ n: 7 }))
      yield* sup.ref("b").tell(new Boom({ why: "x" }))
      yield* settle(() => ofTag(events, "ActorRestarted").length === 3)
      expect(yield* incarnations(sup)).toEqual([2, 2, 2])
      expect(ofTag(events, "ActorRestarted").map((e) => e.actor)).toEqual(["/user/one_for_all/a", "/user/one_for_all/b", "/user/one_for_all/c"])
      expect(yield* sup.ref("a").ask(new Get())).toBe(0) // the sibling's state was reset too
    })))

  it.effect("rest_for_one restarts the failed child and those started after it", () =>
    run(Effect.gen(function*() {
      const sup = yield* three("rest_for_one")
      yield* sup.ref("b").tell(new Boom({ why: "x" }))
      yield* settle()
      expect(yield* incarnations(sup)).toEqual([1, 2, 2])
      yield* sup.ref("a").tell(new Boom({ why: "x" }))
      yield* settle()
      expect(yield* incarnations(sup)).toEqual([2, 3, 3])
    })))

  it.effect("children start in order and stop in reverse order; nested trees too", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        children: [
          Supervisor.worker("a", Counter),
          Supervisor.supervisor("inner", { strategy: "one_for_all", children: [Supervisor.worker("x", Counter), Supervisor.worker("y", Counter)] }),
          Supervisor.worker("c", Counter)
        ]
      }, { name: "tree" })
      expect(yield* sup.child("inner").ref("y").ask(new Incarnation())).toBe(1)
      expect(ofTag(events, "ActorStarted").map((e) => e.actor)).toEqual([
        "/user/tree",
        "/user/tree/a",
        "/user/tree/inner",
        "/user/tree/inner/x",
        "/user/tree/inner/y",
        "/user/tree/c"
      ])
      yield* sup.stop
      expect(ofTag(events, "ActorStopped").map((e) => e.actor)).toEqual([
        "/user/tree/c",
        "/user/tree/inner/y",
        "/user/tree/inner/x",
        "/user/tree/inner",
        "/user/tree/a",
        "/user/tree"
      ])
      expect(yield* sup.awaitTermination).toBe("stopped")
    })))
})

describe("restart types", () => {
  class Quit extends Schema.TaggedClass<Quit>()("Quit", {}) {}
  const Quitter = Actor.make({
    protocol: Schema.Union(Quit, Boom, Incarnation),
    initial: 0,
    behavior: (state, message, ctx) => {
      switch (message._tag) {
        case "Quit":
          return Effect.as(ctx.stop, state)
        case "Boom":
          return Effect.dieMessage(message.why)
        case "Incarnation":
          return Effect.as(ctx.reply(message, ctx.incarnation), state)
      }
    }
  })
  const trio = Supervisor.start({
    strategy: "one_for_one",
    backoff: { _tag: "none" },
    children: [
      Supervisor.worker("permanent", Quitter, { restart: "permanent" }),
      Supervisor.worker("transient", Quitter, { restart: "transient" }),
      Supervisor.worker("temporary", Quitter, { restart: "temporary" })
    ]
  })

  it.effect("after a crash: permanent and transient are restarted, temporary is not", () =>
    run(Effect.gen(function*() {
      const system = yield* ActorSystem.ActorSystem
      const sup = yield* trio
      for (const name of ["permanent", "transient", "temporary"] as const) yield* sup.ref(name).tell(new Boom({ why: "x" }))
      expect(yield* sup.ref("permanent").ask(new Incarnation())).toBe(2)
      expect(yield* sup.ref("transient").ask(new Incarnation())).toBe(2)
      expect(yield* system.awaitTermination(sup.ref("temporary"))).toBe("failed")
    })))

  it.effect("after a normal stop: only permanent is restarted", () =>
    run(Effect.gen(function*() {
      const system = yield* ActorSystem.ActorSystem
      const sup = yield* trio
      for (const name of ["permanent", "transient", "temporary"] as const) yield* sup.ref(name).tell(new Quit())
      expect(yield* sup.ref("permanent").ask(new Incarnation())).toBe(2)
      expect(yield* system.awaitTermination(sup.ref("transient"))).toBe("stopped")
      expect(yield* system.awaitTermination(sup.ref("temporary"))).toBe("stopped")
    })))

  it.effect("a temporary sibling caught in a one_for_all restart is stopped, not restarted", () =>
    run(Effect.gen(function*() {
      const system = yield* ActorSystem.ActorSystem
      const sup = yield* Supervisor.start({
        strategy: "one_for_all",
        backoff: { _tag: "none" },
        children: [Supervisor.worker("keep", Counter), Supervisor.worker("once", Counter, { restart: "temporary" })]
      })
      yield* sup.ref("keep").tell(new Boom({ why: "x" }))
      expect(yield* system.awaitTermination(sup.ref("once"))).toBe("stopped")
      expect(yield* sup.ref("keep").ask(new Incarnation())).toBe(2)
    })))
})

describe("restart intensity and escalation", () => {
  it.effect("past its intensity a nested supervisor halts its children and escalates; its parent restarts it", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        intensity: 5,
        backoff: { _tag: "none" },
        children: [
          Supervisor.worker("sibling", Counter),
          Supervisor.supervisor("inner", {
            strategy: "one_for_one",
            intensity: 2,
            period: "10 seconds",
            backoff: { _tag: "none" },
            children: [Supervisor.worker("w", Counter)]
          })
        ]
      }, { name: "outer" })
      const w = sup.child("inner").ref("w")
      for (let i = 1; i <= 2; i++) {
        yield* w.tell(new Boom({ why: `crash ${i}` }))
        expect(yield* w.ask(new Incarnation())).toBe(i + 1)
      }
      expect(ofTag(events, "SupervisorEscalated")).toEqual([])
      yield* w.tell(new Boom({ why: "crash 3" }))
      yield* settle(() => ofTag(events, "ActorRestarted").some((e) => e.actor === "/user/outer/inner"))
      expect(ofTag(events, "SupervisorEscalated")).toMatchObject([
        { supervisor: "/user/outer/inner", child: "/user/outer/inner/w", restarts: 3, periodMillis: 10_000, cause: "RuntimeException: crash 3" }
      ])
      // the outer supervisor restarted the inner one (and with it w); the sibling was untouched
      expect(yield* w.ask(new Incarnation())).toBe(4)
      expect(yield* sup.ref("sibling").ask(new Incarnation())).toBe(1)
      // the restarted supervisor starts with a fresh restart history
      yield* w.tell(new Boom({ why: "crash 4" }))
      expect(yield* w.ask(new Incarnation())).toBe(5)
      expect(ofTag(events, "SupervisorEscalated")).toHaveLength(1)
    })))

  it.effect("restarts older than the period do not count", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        intensity: 1,
        period: "1 second",
        backoff: { _tag: "none" },
        children: [Supervisor.worker("w", Counter)]
      })
      const w = sup.ref("w")
      for (let i = 0; i < 3; i++) {
        yield* w.tell(new Boom({ why: "x" }))
        yield* settle(() => ofTag(events, "ActorRestarted").length === i + 1)
        yield* TestClock.adjust("1001 millis")
      }
      expect(yield* w.ask(new Incarnation())).toBe(4)
      expect(ofTag(events, "SupervisorEscalated")).toEqual([])
    })))

  it.effect("a child that fails on every message escalates after maxConsecutiveRestarts, however far apart the failures are", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      // An intensity the clock never reaches: one failure a day.
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        intensity: 50,
        period: "1 minute",
        maxConsecutiveRestarts: 3,
        backoff: { _tag: "none" },
        children: [Supervisor.worker("w", Counter), Supervisor.worker("other", Counter)]
      }, { name: "sup" })
      const w = sup.ref("w")
      for (let i = 1; i <= 3; i++) {
        yield* w.tell(new Boom({ why: `crash ${i}` }))
        yield* settle(() => ofTag(events, "ActorRestarted").length === i)
        yield* TestClock.adjust("1 day")
      }
      expect(ofTag(events, "SupervisorEscalated")).toEqual([])
      yield* w.tell(new Boom({ why: "crash 4" }))
      expect(yield* sup.awaitTermination).toBe("escalated")
      expect(ofTag(events, "SupervisorEscalated")).toMatchObject([
        { supervisor: "/user/sup", child: "/user/sup/w", restarts: 4, limit: "no_progress", cause: "RuntimeException: crash 4" }
      ])
      expect(ofTag(events, "SupervisorEscalated")[0]!.origin).toBeUndefined()
      expect(Option.getOrThrow(yield* sup.escalation)).toMatchObject({ child: "/user/sup/w", limit: "no_progress" })
    })))

  it.effect("a child that handles a message between its failures is restarted every time", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        intensity: 1_000,
        period: "1 minute",
        maxConsecutiveRestarts: 1,
        backoff: { _tag: "none" },
        children: [Supervisor.worker("w", Counter)]
      })
      const w = sup.ref("w")
      for (let i = 1; i <= 10; i++) {
        yield* w.tell(new Boom({ why: `crash ${i}` }))
        yield* w.tell(new Add({ n: 1 }))
        expect(yield* w.ask(new Incarnation())).toBe(i + 1)
      }
      expect(ofTag(events, "SupervisorEscalated")).toEqual([])
      expect(ofTag(events, "ActorRestarted")).toHaveLength(10)
      expect(Option.isNone(yield* sup.escalation)).toBe(true)
    })))

  it.effect("a child whose spec says what progress is: messages it handles before that (a warm-up) do not start its count again", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      // A counter at work only once it has counted to 2; each incarnation counts to 1, then fails.
      const warming = { ...Counter, progress: (n: number) => n >= 2 }
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        intensity: 1_000,
        period: "1 minute",
        maxConsecutiveRestarts: 3,
        backoff: { _tag: "none" },
        children: [Supervisor.worker("w", warming), Supervisor.worker("plain", Counter)]
      }, { name: "warming" })
      // Without a `progress`, the same failures are restarted every time: each came after a message handled.
      const plain = sup.ref("plain")
      for (let i = 1; i <= 6; i++) {
        yield* plain.tell(new Add({ n: 1 }))
        yield* plain.tell(new Boom({ why: `plain ${i}` }))
        expect(yield* plain.ask(new Incarnation())).toBe(i + 1)
      }
      const w = sup.ref("w")
      for (let i = 1; i <= 3; i++) {
        yield* w.tell(new Add({ n: 1 }))
        yield* w.tell(new Boom({ why: `crash ${i}` }))
        expect(yield* w.ask(new Incarnation())).toBe(i + 1)
      }
      expect(ofTag(events, "SupervisorEscalated")).toEqual([])
      yield* w.tell(new Add({ n: 1 }))
      yield* w.tell(new Boom({ why: "crash 4" }))
      expect(yield* sup.awaitTermination).toBe("escalated")
      expect(ofTag(events, "SupervisorEscalated")).toMatchObject([
        { supervisor: "/user/warming", child: "/user/warming/w", restarts: 4, limit: "no_progress", cause: "RuntimeException: crash 4" }
      ])
    })))

  it.effect("a child whose spec says what progress is, once there, is restarted every time", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const warming = { ...Counter, progress: (n: number) => n >= 2 }
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        intensity: 1_000,
        period: "1 minute",
        maxConsecutiveRestarts: 1,
        backoff: { _tag: "none" },
        children: [Supervisor.worker("w", warming)]
      })
      const w = sup.ref("w")
      for (let i = 1; i <= 6; i++) {
        yield* w.tell(new Add({ n: 1 }))
        yield* w.tell(new Add({ n: 1 }))
        yield* w.tell(new Boom({ why: `crash ${i}` }))
        expect(yield* w.ask(new Incarnation())).toBe(i + 1)
      }
      expect(ofTag(events, "SupervisorEscalated")).toEqual([])
    })))

  /** `name`, a supervisor giving up at a child's second failure in a row, over `inner`, which does the same over a counter `w`. */
  const nested = (name: string) => {
    const spec = { strategy: "one_for_one", intensity: 50, maxConsecutiveRestarts: 1, backoff: { _tag: "none" } } as const
    return Supervisor.start({ ...spec, children: [Supervisor.supervisor("inner", { ...spec, children: [Supervisor.worker("w", Counter)] })] }, { name })
  }

  it.effect("a nested supervisor's escalations count as failures in a row; the parent's event names where it began", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const sup = yield* nested("outer")
      const w = sup.child("inner").ref("w")
      // inner: w restarted once, then gives up at the second failure in a row; outer restarts inner
      // (afresh: w's count starts again) once, then gives up at inner's second escalation.
      for (let i = 1; i <= 4; i++) {
        yield* w.tell(new Boom({ why: `crash ${i}` }))
        yield* settle(() => ofTag(events, "ActorCrashed").length === i && (i === 4 || ofTag(events, "ActorRestarted").length === i))
      }
      expect(yield* sup.awaitTermination).toBe("escalated")
      expect(ofTag(events, "SupervisorEscalated")).toMatchObject([
        { supervisor: "/user/outer/inner", child: "/user/outer/inner/w", restarts: 2, limit: "no_progress" },
        { supervisor: "/user/outer/inner", child: "/user/outer/inner/w", restarts: 2, limit: "no_progress" },
        { supervisor: "/user/outer", child: "/user/outer/inner", restarts: 2, limit: "no_progress", origin: "/user/outer/inner/w", cause: "RuntimeException: crash 4" }
      ])
    })))

  it.effect("a nested supervisor's escalations after bursts its children worked between do not add up: the parent restarts it every time", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      const sup = yield* nested("bursts")
      // Five bursts, each after w handled a message: two failures in a row, so inner gives up each
      // time; outer restarts it each time, since w had worked before the burst. Before, outer gave up
      // at the second burst: a supervisor handles no message, so nothing ever reset its count.
      for (let burst = 1; burst <= 5; burst++) {
        const w = sup.child("inner").ref("w")
        yield* w.tell(new Add({ n: 1 }))
        expect(yield* w.ask(new Get())).toBe(1)
        // The second is handled by the incarnation the first's crash started: two in a row.
        yield* w.tell(new Boom({ why: `burst ${burst} a` }))
        yield* w.tell(new Boom({ why: `burst ${burst} b` }))
        yield* settle(() => ofTag(events, "SupervisorEscalated").length === burst)
        expect(ofTag(events, "SupervisorEscalated")).toHaveLength(burst)
      }
      expect(ofTag(events, "SupervisorEscalated").map((e) => e.supervisor)).toEqual(Array(5).fill("/user/bursts/inner"))
      expect(Option.isNone(yield* sup.escalation)).toBe(true)
      // Failing on every message from its restart, it is given up on as before: inner's second escalation in a row.
      const w = sup.child("inner").ref("w")
      yield* w.tell(new Boom({ why: "again a" }))
      yield* w.tell(new Boom({ why: "again b" }))
      expect(yield* sup.awaitTermination).toBe("escalated")
      expect(ofTag(events, "SupervisorEscalated")).toHaveLength(7)
      expect(Option.getOrThrow(yield* sup.escalation)).toMatchObject({ child: "/user/bursts/inner", limit: "no_progress", origin: "/user/bursts/inner/w" })
    })))

  it.effect("a top-level supervisor that escalates is stopped by the guardian and reports it", () =>
    run(Effect.gen(function*() {
      const system = yield* ActorSystem.ActorSystem
      const sup = yield* Supervisor.start({
        strategy: "one_for_one",
        intensity: 1,
        backoff: { _tag: "none" },
        children: [Supervisor.worker("w", Counter), Supervisor.worker("other", Counter)]
      }, { name: "run-1" })
      const w = sup.ref("w")
      yield* w.tell(new Boom({ why: "1" }))
      expect(yield* w.ask(new Incarnation())).toBe(2)
      yield* w.tell(new Boom({ why: "2" }))
      expect(yield* sup.awaitTermination).toBe("escalated")
      expect(yield* system.awaitTermination(sup.ref("other"))).toBe("escalated")
      expect(yield* system.liveActors).toBe(0)
    })))

  it.effect("an actor whose own children keep failing crashes and is restarted by its supervisor", () =>
    run(Effect.gen(function*() {
      const { events } = yield* collect
      class Kill extends Schema.TaggedClass<Kill>()("Kill", {}) {}
      const Parent = Actor.make({
        protocol: Schema.Union(Kill, Incarnation),
        setup: (ctx) => Effect.orDie(ctx.spawn(Counter, { name: "child" })),
        behavior: (child, message, ctx) =>
          message._tag === "Kill"
            ? Effect.as(Effect.orDie(child.tell(new Boom({ why: "child crash" }))), child)
            : Effect.as(ctx.reply(message, ctx.incarnation), child)
      })
      const system = yield* ActorSystem.ActorSystem
      const parent = yield* (yield* ActorSystem.ActorSystem).spawn(Parent, { name: "p" })
      // the system's default per-child intensity is 3 restarts: the 4th crash escalates to the parent
      for (let i = 0; i < 4; i++) {
        yield* parent.tell(new Kill())
        yield* settle(() => ofTag(events, "ActorCrashed").filter((e) => e.actor === "/user/p/child").length === i + 1)
        yield* TestClock.adjust("100 millis") // past the backoff, well within the 5 s period
      }
      yield* settle(() => ofTag(events, "ActorCrashed").some((e) => e.actor === "/user/p"))
      yield* TestClock.adjust("1 second")
      expect(yield* parent.ask(new Incarnation())).toBe(2)
      expect(ofTag(events, "ActorCrashed").find((e) => e.actor === "/user/p")?.cause).toContain("child crash")
      expect(system.lookup("/user/p/child")._tag).toBe("Some") // spawned again by the new incarnation's setup
    })))
})

describe("specs are plain data", () => {
  it("a supervision policy decodes from JSON with defaults, and bad input names the field", () => {
    const policy = Schema.decodeUnknownSync(SupervisionPolicy)(JSON.parse(
      "{\"strategy\":\"rest_for_one\",\"intensity\":2,\"period\":1000,\"backoff\":{\"_tag\":\"fixed\",\"delayMillis\":50}}"
    ))
    expect(policy).toMatchObject({ strategy: "rest_for_one", intensity: 2, period: 1000, backoff: { _tag: "fixed", delayMillis: 50 } })
    expect(Schema.decodeUnknownSync(SupervisionPolicy)({})).toMatchObject({ strategy: "one_for_one", intensity: 3, period: 5000 })
    expect(() => Schema.decodeUnknownSync(SupervisionPolicy)({ strategy: "one_for_none" })).toThrow(/strategy/)
    expect(() => Schema.decodeUnknownSync(SupervisionPolicy)({ intensity: -1 })).toThrow(/intensity/)
    expect(() => Schema.decodeUnknownSync(SupervisionPolicy)({ backoff: { _tag: "exponential", baseMillis: 1, factor: 0.5, maxMillis: 9 } })).toThrow(/factor/)
  })

  it.effect("a decoded policy is a spec once children are added", () =>
    run(Effect.gen(function*() {
      const policy = Schema.decodeUnknownSync(SupervisionPolicy)({ strategy: "one_for_all", backoff: { _tag: "none" } })
      const sup = yield* Supervisor.start({ ...policy, children: [Supervisor.worker("a", Counter), Supervisor.worker("b", Counter)] })
      yield* sup.ref("a").tell(new Boom({ why: "x" }))
      yield* settle()
      expect(yield* sup.ref("b").ask(new Incarnation())).toBe(2)
    })))
})
