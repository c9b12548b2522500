/** The books: positions and the portfolio snapshot the ledger publishes after every change and bar. */
import { Schema } from "effect"
import { Symbol, Timestamp } from "./Ids.js"
import { Money } from "./Money.js"
import { SignedQuantity } from "./Order.js"

export const Position = Schema.Struct({
  symbol: Symbol,
  /** Negative when short, 0 when flat. */
  quantity: SignedQuantity,
  /** Average entry price of the open quantity (0 when flat). */
  averagePrice: Schema.Number.pipe(Schema.nonNegative(), Schema.finite()),
  /** Realized P&L on this symbol since the run began, commissions included. */
  realizedPnl: Money,
  /** The last price the position was marked at. */
  markPrice: Schema.Number.pipe(Schema.nonNegative(), Schema.finite()),
  /** quantity × markPrice (negative for shorts). */
  marketValue: Money,
  unrealizedPnl: Money
})
export type Position = typeof Position.Type

export const PortfolioSnapshot = Schema.Struct({
  ts: Timestamp,
  cash: Money,
  /** cash + Σ position market values. */
  equity: Money,
  /** Σ |market value|. */
  grossExposure: Money,
  /** Σ market value. */
  netExposure: Money,
  realizedPnl: Money,
  unrealizedPnl: Money,
  positions: Schema.Array(Position)
})
export type PortfolioSnapshot = typeof PortfolioSnapshot.Type

/** The last price a run saw for a symbol: a mark of its portfolio (each bar) or a fill's market price. */
export const Quote = Schema.Struct({
  price: Schema.Number,
  /** The bar or fill time it is from. */
  ts: Schema.Number,
  source: Schema.Literal("mark", "fill")
})
export type Quote = typeof Quote.Type

/** Where a run stands now: its latest portfolio snapshot and quotes, as of one of its events. */
export const LatestValues = Schema.Struct({
  /** The event the values are as of. */
  seq: Schema.Number,
  at: Schema.Number,
  /**
   * The last snapshot's totals (cash, equity, exposures, P&L of the whole book) with the book's
   * open positions, each as last reported, by symbol: a snapshot event lists only the positions
   * its fills changed, so these are merged across them (a flat one closes its symbol's).
   */
  portfolio: Schema.optional(PortfolioSnapshot),
  /** By symbol. */
  quotes: Schema.Record({ key: Schema.String, value: Quote })
})
export type LatestValues = typeof LatestValues.Type
