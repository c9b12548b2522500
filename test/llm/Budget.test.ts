/**
 * The LLM budget's reservations: a refusal is remembered (every later call refused), but a
 * tentative call's — the corrective retry of an answer that did not decode — is refused alone.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { Budget, refusalOf } from "../../src/llm/Budget.js"

const budget = () => new Budget("run_budget" as RunId, { tokens: 1_000, pricePerMillionIn: 0, pricePerMillionOut: 0 })

describe("Budget.reserve", () => {
  it("remembers a refusal: a call that fits afterwards is refused too", () => {
    const b = budget()
    expect(Either.isLeft(b.reserve(2_000, 100))).toBe(true)
    expect(b.exhausted).toBe(true)
    expect(Either.isLeft(b.reserve(10, 10))).toBe(true)
  })

  it("refuses a tentative call alone: the budget is not spent by it", () => {
    const b = budget()
    expect(Either.isLeft(b.reserve(2_000, 100, true))).toBe(true)
    expect(b.exhausted).toBe(false)
    const next = b.reserve(10, 10)
    expect(Either.isRight(next)).toBe(true)
  })
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
    expect(Either.isRight(b.reserve(1, 0))).toBe(true)
    const refused = b.reserve(1, 0)
    if (Either.isRight(refused)) return expect.unreachable()
    expect(refused.left.limit).toBe("cost")
    expect(refused.left.message).toContain("0.033333333333333")
    expect(refusalOf(refused.left.message)?.message).toBe(refused.left.message)
    expect(refusalOf("the model was down")).toBeUndefined()
    // Not a refusal it can read: still refused from then on.
    const other = budget()
    other.refuseAs("the LLM budget is spent")
    expect(Either.isLeft(other.reserve(10, 10))).toBe(true)
  })
})
