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
import * as M from "./Money.js"

const onGrid = (units: number): number => Math.round(units * M.MICROS_PER_UNIT) / M.MICROS_PER_UNIT || 0

/**
 * The books of one batch, projected order by order in place: O(1) an order, where copying the
 * positions for every order made a batch of n orders on n symbols O(n²).
 */
export class Projection {
  private readonly positions: Array<Position>
  private readonly slots = new Map<string, number>()
  private cash: M.Money
  private gross: number
  private net: number

  constructor(private readonly base: PortfolioSnapshot) {
    this.positions = base.positions.slice()
    this.positions.forEach((p, i) => {
      if (!this.slots.has(p.symbol)) this.slots.set(p.symbol, i)
    })
    this.cash = base.cash
    this.gross = base.grossExposure
    this.net = base.netExposure
  }

  /** The projected position in `symbol` (0 when none). */
  quantityOf(symbol: string): number {
    const i = this.slots.get(symbol)
    return i === undefined ? 0 : this.positions[i]!.quantity
  }

  /** The order fills at `price`: cash moves by the notional, the position by the quantity, marked at the price. */
  apply(symbol: Symbol, side: Side, quantity: number, price: number): void {
    const dir = side === "buy" ? 1 : -1
    this.cash = M.sub(this.cash, (dir * M.notional(quantity, price)) as M.Money)
    const i = this.slots.get(symbol)
    const before = i === undefined ? undefined : this.positions[i]!
    const held = onGrid((before?.quantity ?? 0) + dir * quantity)
    const marketValue = M.notional(held, price)
    if (before === undefined) {
      this.slots.set(symbol, this.positions.length)
      this.positions.push({
        symbol,
        quantity: held,
        averagePrice: price,
        realizedPnl: M.zero,
        markPrice: price,
        marketValue,
        unrealizedPnl: M.zero
      })
    } else {
      this.gross -= Math.abs(before.marketValue)
      this.net -= before.marketValue
      this.positions[i!] = { ...before, quantity: held, markPrice: price, marketValue }
    }
    this.gross += Math.abs(marketValue)
    this.net += marketValue
  }

  /**
   * The projected books. Valid until the next `apply`: the positions array is this projection's
   * own and is updated in place (a risk check reads it and keeps nothing).
   */
  books(): PortfolioSnapshot {
    return {
      ...this.base,
      cash: this.cash,
      equity: M.add(this.cash, this.net as M.Money),
      grossExposure: this.gross as M.Money,
      netExposure: this.net as M.Money,
      positions: this.positions
    }
  }
}
