import { describe, expect, it } from "@effect/vitest"
import type { Symbol } from "../../schemas/Ids.js"
import type { Side } from "../../schemas/Order.js"
import type { PortfolioSnapshot } from "../../schemas/Portfolio.js"
import { Projection } from "../../src/trading/Projection.js"
import { books, holding, money } from "./portfolioFixtures.js"

const sym = (s: string) => s as Symbol

/** The books after one order: a projection of one. */
const afterOrder = (snapshot: PortfolioSnapshot, symbol: Symbol, side: Side, quantity: number, price: number) => {
  const projection = new Projection(snapshot)
  projection.apply(symbol, side, quantity, price)
  return projection.books()
}

describe("the books after an order fills at its reference price", () => {
  it("a buy moves cash into a new position; equity is unchanged", () => {
    const after = afterOrder(books(10_000), sym("ACME"), "buy", 10, 50)
    expect(after.cash).toBe(money(9_500))
    expect(after.equity).toBe(money(10_000))
    expect(after.grossExposure).toBe(money(500))
    expect(after.positions).toEqual([expect.objectContaining({ symbol: "ACME", quantity: 10, marketValue: money(500) })])
  })

  it("a sell beyond the holding leaves a short, marked at the price, gross exposure counting it", () => {
    const before = books(1_000, [holding("ACME", 5, 40), holding("GLOBEX", 2, 10)])
    const after = afterOrder(before, sym("ACME"), "sell", 8, 50)
    expect(after.cash).toBe(money(1_400))
    const acme = after.positions.find((p) => p.symbol === "ACME")!
    expect(acme.quantity).toBe(-3)
    expect(acme.marketValue).toBe(money(-150))
    expect(after.grossExposure).toBe(money(150 + 20))
    expect(after.netExposure).toBe(money(-150 + 20))
    expect(after.equity).toBe(money(1_400 - 150 + 20))
    // The other position and the input are untouched.
    expect(after.positions.find((p) => p.symbol === "GLOBEX")).toBe(before.positions[1])
    expect(before.positions[0]!.quantity).toBe(5)
  })

  it("quantities stay on the 10⁻⁶ grid and flat is exactly 0", () => {
    const after = afterOrder(books(100, [holding("ACME", 0.3, 10)]), sym("ACME"), "sell", 0.1 + 0.2, 10)
    expect(Object.is(after.positions[0]!.quantity, 0)).toBe(true)
    expect(after.positions[0]!.marketValue).toBe(0)
  })
})

describe("a batch projected order by order", () => {
  it("each order sees the ones before it; earlier books are not changed; lookups find old and new symbols", async () => {
    const { findPosition } = await import("../../src/trading/Gates.js")
    const base = books(1_000_000, Array.from({ length: 60 }, (_, i) => holding(`S${i}`, 1, 10)))
    const projection = new Projection(base)
    for (let i = 55; i < 70; i++) {
      projection.apply(sym(`S${i}`), "buy", 2, 10)
      const now = projection.books()
      expect(findPosition(now.positions, `S${i}`)?.quantity).toBe(i < 60 ? 3 : 2)
      expect(projection.quantityOf(`S${i}`)).toBe(i < 60 ? 3 : 2)
      expect(now.cash).toBe(money(1_000_000 - 20 * (i - 54)))
      expect(now.equity).toBe(base.equity)
      expect(now.grossExposure).toBe(money(600 + 20 * (i - 54)))
    }
    expect(findPosition(projection.books().positions, "S0")?.quantity).toBe(1)
    expect(base.positions).toHaveLength(60)
    expect(base.positions[57]!.quantity).toBe(1)
  })
})
