/**
 * A closed trade: one round trip on a symbol, from the fill that opened a position to the fill that
 * brought it back to flat (or reversed it). Win rate, profit factor and the `--json` trade list are
 * built from these.
 */
import { Schema } from "effect"
import { Symbol, Timestamp } from "./Ids.js"
import { Money } from "./Money.js"
import { Quantity } from "./Order.js"

export const Trade = Schema.Struct({
  symbol: Symbol,
  side: Schema.Literal("long", "short"),
  /** The largest size the position reached during the trade. */
  quantity: Quantity,
  entryTs: Timestamp,
  exitTs: Timestamp,
  /** Average entry price of the position. */
  entryPrice: Schema.Number.pipe(Schema.positive()),
  /** Average exit price of the fills that closed it. */
  exitPrice: Schema.Number.pipe(Schema.positive()),
  /** Realized P&L of the round trip, commissions of its fills included. */
  pnl: Money,
  commission: Money
})
export type Trade = typeof Trade.Type
