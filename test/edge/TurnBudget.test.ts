/**
 * The fan-out's share of an event-loop turn (src/edge/TurnBudget.ts): claims past a turn's
 * allowance wait for later turns, in the order they came; an interrupted claim leaves the queue;
 * the allowance shrinks to what fits the budget once the claims' work is seen to take long.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TurnBudget } from "../../src/edge/TurnBudget.js"

/** Counts the loop's turns: `turn()` is the number of `setImmediate` callbacks run so far. */
const turnCounter = () => {
  let turns = 0
  let on = true
  const tick = () => {
    turns++
    if (on) setImmediate(tick)
  }
  setImmediate(tick)
  return { turn: () => turns, stop: () => (on = false) }
}

const busyFor = (millis: number) => {
  const until = performance.now() + millis
  while (performance.now() < until) {
    // The work a granted claim leads to (a write), on the clock.
  }
}

describe("TurnBudget", () => {
  it.live("claims past a turn's allowance wait for a later turn, served in the order they came", () =>
    Effect.gen(function*() {
      const budget = new TurnBudget(1_000)
      const counter = turnCounter()
      const granted: Array<{ readonly claim: number; readonly turn: number }> = []
      const first = budget.allowance
      const claims = 3 * first
      // All claimed in one stretch of one turn.
      const fibers = yield* Effect.forEach(Array.from({ length: claims }, (_, i) => i), (i) =>
        Effect.fork(Effect.zipRight(budget.claim, Effect.sync(() => granted.push({ claim: i, turn: counter.turn() })))))
      yield* Fiber.joinAll(fibers)
      counter.stop()
      expect(granted.map((g) => g.claim)).toEqual(Array.from({ length: claims }, (_, i) => i))
      // The turn's allowance went at once; the rest waited for the loop to come round.
      const turnOf = (claim: number) => granted[claim]!.turn
      expect(new Set(granted.slice(0, first).map((g) => g.turn)).size).toBe(1)
      expect(turnOf(first)).toBeGreaterThan(turnOf(first - 1))
    }))

  it.live("an interrupted claim leaves the queue: the ones after it are served in its place", () =>
    Effect.gen(function*() {
      const budget = new TurnBudget(1_000)
      for (let i = 0; i < budget.allowance; i++) yield* budget.claim
      const order: Array<string> = []
      const a = yield* Effect.fork(Effect.zipRight(budget.claim, Effect.sync(() => order.push("a"))))
      const b = yield* Effect.fork(Effect.zipRight(budget.claim, Effect.sync(() => order.push("b"))))
      const c = yield* Effect.fork(Effect.zipRight(budget.claim, Effect.sync(() => order.push("c"))))
      yield* Effect.yieldNow()
      expect(order).toEqual([])
      yield* Fiber.interrupt(b)
      yield* Fiber.joinAll([a, c])
      expect(order).toEqual(["a", "c"])
    }))

  it.live("once the claims' work is seen to take long, a turn grants only what fits its budget", () =>
    Effect.gen(function*() {
      // Each granted claim's work takes at least 3 ms; the budget is 6 ms a turn.
      const budget = new TurnBudget(6)
      const counter = turnCounter()
      const granted: Array<number> = []
      const fibers = yield* Effect.forEach(Array.from({ length: 60 }, (_, i) => i), () =>
        Effect.fork(Effect.zipRight(budget.claim, Effect.sync(() => {
          granted.push(counter.turn())
          busyFor(3)
        }))))
      yield* Fiber.joinAll(fibers)
      counter.stop()
      // Learnt: at least 3 ms a claim (the turns' other work only adds), so at most 2 a turn.
      expect(budget.allowance).toBeLessThanOrEqual(2)
      const late = granted.slice(30)
      const perTurn = new Map<number, number>()
      for (const turn of late) perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1)
      expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(2)
    }))

  it.live("with a share, a turn with claims is followed by a rest (1 / share − 1 times as long as it took): no claim is granted before it ends", () =>
    Effect.gen(function*() {
      const budget = new TurnBudget(1_000, 1 / 4)
      // A turn whose claims take at least 4 ms.
      yield* budget.claim
      busyFor(4)
      const turnEnd = performance.now()
      // The loop comes round: the turn is measured, the rest begins.
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      const restUntil = budget.restUntil
      expect(restUntil).toBeGreaterThanOrEqual(turnEnd + 3 * 4)
      // Claims now wait for the rest to end.
      const grantedAt: Array<number> = []
      yield* Effect.forEach([0, 1, 2], () => Effect.zipRight(budget.claim, Effect.sync(() => void grantedAt.push(performance.now()))), {
        concurrency: "unbounded"
      })
      expect(grantedAt.length).toBe(3)
      for (const at of grantedAt) expect(at).toBeGreaterThanOrEqual(restUntil)
    }))

  it.live("without a share (1), no rest: the next turn grants at once", () =>
    Effect.gen(function*() {
      const budget = new TurnBudget(1_000)
      yield* budget.claim
      busyFor(4)
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      expect(budget.restUntil).toBe(-Infinity)
    }))
})
