/** Portfolio fixtures the risk tests share: amounts in units, converted to micros. */
import type { Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import type { PortfolioSnapshot, Position } from "../../schemas/Portfolio.js"

export const money = (units: number) => Math.round(units * 1_000_000) as Money

export const holding = (symbol: string, quantity: number, price: number): Position => ({
  symbol: symbol as Symbol,
  quantity,
  averagePrice: price,
  realizedPnl: money(0),
  markPrice: price,
  marketValue: money(quantity * price),
  unrealizedPnl: money(0)
})

export const books = (cash: number, positions: ReadonlyArray<Position> = []): PortfolioSnapshot => {
  const net = positions.reduce((s, p) => s + p.marketValue, 0)
  const gross = positions.reduce((s, p) => s + Math.abs(p.marketValue), 0)
  return {
    ts: 0 as Timestamp,
    cash: money(cash),
    equity: (money(cash) + net) as Money,
    grossExposure: gross as Money,
    netExposure: net as Money,
    realizedPnl: money(0),
    unrealizedPnl: money(0),
    positions
  }
}
