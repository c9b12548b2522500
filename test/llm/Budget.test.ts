/**
 * The LLM budget's reservations: a refusal is remembered (every later call refused), but one the
 * calls in flight made (their reservations, not what was settled, left no room) and a
 * tentative call's — the corrective retry of an answer that did not decode — are refused alone.
 * A call the calls in flight crowd out may wait for them to settle, in line, up to its deadline.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, TestClock } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { Budget, refusalOf, spendsBudget } from "../../src/llm/Budget.js"

const budget = () => new Budget("run_budget" as RunId, { tokens: 1_000, pricePerMillionIn: 0, pricePerMillionOut: 0 })

describe("Budget.reserve", () => {
  it("remembers a refusal: a call that fits afterwards is refused too", () => {
    const b = budget()
    expect(Either.isLeft(b.reserve(2_000, 100))).toBe(true)
    expect(b.exhausted).toBe(true)
    expect(Either.isLeft(b.reserve(10, 10))).toBe(true)
  })

  it("refuses alone a call that only the calls in flight leave no room for; spent is what was settled", () => {
    const b = budget()
    const first = b.reserve(300, 100)
    const second = b.reserve(300, 100)
    if (Either.isLeft(first) || Either.isLeft(second)) return expect.unreachable()
    // 800 reserved: a third call of 400 would pass 1,000 only with them.
    const third = b.reserve(300, 100)
    if (Either.isRight(third)) return expect.unreachable()
    expect(third.left).toMatchObject({ spent: 0, reserved: 800, needed: 400, max: 1_000 })
    expect(third.left.message).toBe(
      "run run_budget's LLM tokens budget has no room for the call while others are in flight (0 spent and 800 reserved of 1000; the call needed up to 400)"
    )
    expect(b.exhausted).toBe(false)
    // They used far less than they reserved: the next call fits.
    b.settle(first.right, 50, 10)
    b.settle(second.right, 50, 10)
    expect(Either.isRight(b.reserve(300, 100))).toBe(true)
    // Settled spending that leaves no room spends the budget, and says what was spent.
    const c = budget()
    const big = c.reserve(500, 100)
    if (Either.isLeft(big)) return expect.unreachable()
    c.settle(big.right, 500, 100)
    const refused = c.reserve(300, 200)
    if (Either.isRight(refused)) return expect.unreachable()
    expect(refused.left.reserved).toBeUndefined()
    expect(refused.left.message).toBe("run run_budget's LLM tokens budget is spent (600 of 1000; the call needed up to 500)")
    expect(c.exhausted).toBe(true)
  })

  it("a cost limit: the same two refusals", () => {
    const b = new Budget("run_budget" as RunId, { tokens: 1_000_000, maxCost: 1, pricePerMillionIn: 1_000, pricePerMillionOut: 0 })
    const first = b.reserve(600, 0)
    if (Either.isLeft(first)) return expect.unreachable()
    const inFlight = b.reserve(600, 0)
    expect(Either.isLeft(inFlight) && inFlight.left).toMatchObject({ limit: "cost", spent: 0, reserved: 0.6 })
    expect(b.exhausted).toBe(false)
    b.settle(first.right, 600, 0)
    const spent = b.reserve(600, 0)
    expect(Either.isLeft(spent) && spent.left).toMatchObject({ limit: "cost", spent: 0.6 })
    expect(Either.isLeft(spent) && spent.left.reserved).toBeUndefined()
    expect(b.exhausted).toBe(true)
  })

  it("refuses a tentative call alone: the budget is not spent by it", () => {
    const b = budget()
    expect(Either.isLeft(b.reserve(2_000, 100, true))).toBe(true)
    expect(b.exhausted).toBe(false)
    const next = b.reserve(10, 10)
    expect(Either.isRight(next)).toBe(true)
  })
})

describe("Budget.reserveWaiting", () => {
  it.effect("calls whose reservations do not fit together, but whose spending does, each get their turn, in the order they came", () =>
    Effect.gen(function*() {
      const b = budget()
      // Each reserves 600 of 1,000 and uses 100: one in flight at a time, all of them within the budget.
      const first = b.reserve(500, 100)
      if (Either.isLeft(first)) return expect.unreachable()
      const served: Array<string> = []
      const ask = (name: string) =>
        Effect.fork(Effect.tap(b.reserveWaiting(500, 100, { within: "20 seconds" }), () => Effect.sync(() => served.push(name))))
      const second = yield* ask("second")
      const third = yield* ask("third")
      yield* Effect.yieldNow()
      expect(served).toEqual([])
      // Before, they were refused at once: "no room for the call while others are in flight".
      b.settle(first.right, 80, 20)
      const secondGot = yield* Fiber.join(second)
      if (Either.isLeft(secondGot)) return expect.unreachable()
      yield* Effect.yieldNow()
      expect(served).toEqual(["second"])
      b.settle(secondGot.right, 80, 20)
      const thirdGot = yield* Fiber.join(third)
      expect(Either.isRight(thirdGot)).toBe(true)
      expect(served).toEqual(["second", "third"])
      expect(b.exhausted).toBe(false)
    }))

  it.effect("a call that would fit, asked while another waits, takes its place behind it: none starves", () =>
    Effect.gen(function*() {
      const b = budget()
      const inFlight = b.reserve(500, 100)
      if (Either.isLeft(inFlight)) return expect.unreachable()
      const served: Array<string> = []
      const ask = (name: string, tokens: number) =>
        Effect.fork(Effect.tap(b.reserveWaiting(tokens, 0, { within: "20 seconds" }), () => Effect.sync(() => served.push(name))))
      const large = yield* ask("large", 600)
      yield* Effect.yieldNow()
      // 300 fits beside the 600 in flight, but not beside them and the 600 waiting before it.
      const small = b.reserve(300, 0)
      expect(Either.isLeft(small) && small.left).toMatchObject({ reserved: 1_200, needed: 300 })
      const smallWaits = yield* ask("small", 300)
      yield* Effect.yieldNow()
      expect(served).toEqual([])
      // Settled at 300: room for one of them — the first to come, though the other is smaller.
      b.settle(inFlight.right, 300, 0)
      const largeGot = yield* Fiber.join(large)
      if (Either.isLeft(largeGot)) return expect.unreachable()
      yield* Effect.yieldNow()
      expect(served).toEqual(["large"])
      b.settle(largeGot.right, 100, 0)
      expect(Either.isRight(yield* Fiber.join(smallWaits))).toBe(true)
      expect(served).toEqual(["large", "small"])
    }))

  it.effect("a call whose room never comes is refused at its deadline, alone: the budget is not spent", () =>
    Effect.gen(function*() {
      const b = budget()
      const stuck = b.reserve(600, 100)
      if (Either.isLeft(stuck)) return expect.unreachable()
      const waiting = yield* Effect.fork(b.reserveWaiting(300, 100, { within: "20 seconds" }))
      yield* TestClock.adjust("19 seconds")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const refused = yield* Fiber.join(waiting)
      if (Either.isRight(refused)) return expect.unreachable()
      expect(refused.left.message).toBe(
        "run run_budget's LLM tokens budget has no room for the call while others are in flight (0 spent and 700 reserved of 1000; the call needed up to 400)"
      )
      expect(spendsBudget(refused.left.message)).toBe(false)
      expect(b.exhausted).toBe(false)
      expect(b.tokens).toBe(0)
      // It left the line: the next call is not held up behind it.
      b.settle(stuck.right, 100, 0)
      expect(Either.isRight(b.reserve(300, 100))).toBe(true)
    }))

  it.effect("interrupted while it waits (the round's deadline), it leaves the line and holds nothing", () =>
    Effect.gen(function*() {
      const b = budget()
      const stuck = b.reserve(600, 100)
      if (Either.isLeft(stuck)) return expect.unreachable()
      const waiting = yield* Effect.fork(b.reserveWaiting(300, 100, { within: "20 seconds" }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(waiting)
      b.settle(stuck.right, 100, 0)
      expect(b.remaining).toBe(900)
      expect(Either.isRight(b.reserve(800, 100))).toBe(true)
    }))

  it.effect("a call that what is settled leaves no room for is refused at once, and spends the budget, as before", () =>
    Effect.gen(function*() {
      const b = budget()
      const spent = b.reserve(600, 100)
      if (Either.isLeft(spent)) return expect.unreachable()
      b.settle(spent.right, 600, 100)
      const inFlight = b.reserve(100, 50)
      if (Either.isLeft(inFlight)) return expect.unreachable()
      // 700 settled: 400 more cannot fit, whatever those in flight use. No clock moves: it is not waiting.
      const refused = yield* b.reserveWaiting(300, 100, { within: "20 seconds" })
      if (Either.isRight(refused)) return expect.unreachable()
      expect(refused.left.message).toBe("run run_budget's LLM tokens budget is spent (700 of 1000; the call needed up to 400)")
      expect(b.exhausted).toBe(true)

      // One already waiting is refused as soon as what is settled leaves it no room.
      const c = budget()
      const big = c.reserve(500, 100)
      if (Either.isLeft(big)) return expect.unreachable()
      const waiting = yield* Effect.fork(c.reserveWaiting(400, 100, { within: "20 seconds" }))
      yield* Effect.yieldNow()
      expect(waiting.unsafePoll()).toBeNull()
      c.settle(big.right, 500, 100)
      const late = yield* Fiber.join(waiting)
      expect(Either.isLeft(late) && late.left.message).toBe("run run_budget's LLM tokens budget is spent (600 of 1000; the call needed up to 500)")
      expect(c.exhausted).toBe(true)
    }))
})

describe("Budget.refuseAs", () => {
  it("refuses from then on with the recorded refusal: a call that fits is refused for the same reason", () => {
    const original = budget()
    const refused = original.reserve(2_000, 100)
    if (Either.isRight(refused)) return expect.unreachable()
    // A re-execution charges what the recording says and meets the refused call there.
    const again = budget()
    again.charge(0, 0)
    expect(Either.isRight(again.reserve(10, 10))).toBe(true)
    again.refuseAs(refused.left.message)
    expect(again.exhausted).toBe(true)
    const later = again.reserve(10, 10)
    expect(Either.isLeft(later) && later.left.message).toBe(refused.left.message)
  })

  it("reads a refusal back from its message exactly, or not at all", () => {
    // A cost no decimal writes exactly (a third of a dime): read back to the same number.
    const b = new Budget("run_budget" as RunId, { tokens: 1_000, maxCost: 0.05, pricePerMillionIn: 100_000 / 3, pricePerMillionOut: 0 })
    const first = b.reserve(1, 0)
    if (Either.isLeft(first)) return expect.unreachable()
    b.settle(first.right, 1, 0)
    const refused = b.reserve(1, 0)
    if (Either.isRight(refused)) return expect.unreachable()
    expect(refused.left.limit).toBe("cost")
    expect(refused.left.message).toContain("0.033333333333333")
    expect(refusalOf(refused.left.message)?.message).toBe(refused.left.message)
    expect(refusalOf("the model was down")).toBeUndefined()
    // A refusal the calls in flight made: read back, and it refuses nothing later.
    const crowded = budget()
    if (Either.isLeft(crowded.reserve(700, 0))) return expect.unreachable()
    const alone = crowded.reserve(400, 0)
    if (Either.isRight(alone)) return expect.unreachable()
    expect(refusalOf(alone.left.message)).toMatchObject({ spent: 0, reserved: 700, needed: 400 })
    expect(spendsBudget(alone.left.message)).toBe(false)
    expect(spendsBudget(refused.left.message)).toBe(true)
    const replayed = budget()
    replayed.refuseAs(alone.left.message)
    expect(replayed.exhausted).toBe(false)
    expect(Either.isRight(replayed.reserve(10, 10))).toBe(true)
    // Not a refusal it can read: still refused from then on.
    const other = budget()
    other.refuseAs("the LLM budget is spent")
    expect(Either.isLeft(other.reserve(10, 10))).toBe(true)
  })
})
