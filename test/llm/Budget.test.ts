/**
 * The LLM budget's reservations: a refusal is remembered (every later call refused), but a
 * tentative call's — the corrective retry of an answer that did not decode — is refused alone.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { Budget } from "../../src/llm/Budget.js"

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
