/**
 * The books as they will be once an order fills at its reference price: what the risk officer
 * judges the next intent of the same batch against, so that two orders decided on one bar cannot
 * each spend the same cash or the same position cap (DESIGN.md: a risk check against a stale
 * position is a correctness bug). Cash moves by the notional, the position by the quantity, the
 * symbol is marked at the price; equity and exposures follow. Realized P&L and average prices are
 * left as they were: no gate reads them, and the ledger computes the real ones from the fill.
 */
import type { Symbol } from "../../schemas/Ids.js"
import type { Side } from "../../schemas/Order.js"
import type { PortfolioSnapshot, Position } from "../../schemas/Portfolio.js"
import { carryIndex } from "./Gates.js"
import * as M from "./Money.js"

const onGrid = (units: number): number => Math.round(units * M.MICROS_PER_UNIT) / M.MICROS_PER_UNIT || 0

export const afterOrder = (
  snapshot: PortfolioSnapshot,
  symbol: Symbol,
  side: Side,
  quantity: number,
  price: number
): PortfolioSnapshot => {
  const dir = side === "buy" ? 1 : -1
  const notional = M.notional(quantity, price)
  const cash = M.sub(snapshot.cash, (dir * notional) as M.Money)
  const positions: Array<Position> = []
  let found = false
  let gross = 0
  let net = 0
  for (const p of snapshot.positions) {
    let position = p
    if (p.symbol === symbol) {
      found = true
      const held = onGrid(p.quantity + dir * quantity)
      const marketValue = held < 0 ? M.negate(M.notional(-held, price)) : M.notional(held, price)
      position = { ...p, quantity: held, markPrice: price, marketValue }
    }
    positions.push(position)
    gross += Math.abs(position.marketValue)
    net += position.marketValue
  }
  if (!found) {
    const held = onGrid(dir * quantity)
    const marketValue = held < 0 ? M.negate(M.notional(-held, price)) : M.notional(held, price)
    positions.push({
      symbol,
      quantity: held,
      averagePrice: price,
      realizedPnl: M.zero,
      markPrice: price,
      marketValue,
      unrealizedPnl: M.zero
    })
    gross += Math.abs(marketValue)
    net += marketValue
  }
  carryIndex(snapshot.positions, positions)
  return {
    ...snapshot,
    cash,
    equity: M.add(cash, net as M.Money),
    grossExposure: gross as M.Money,
    netExposure: net as M.Money,
    positions
  }
}
