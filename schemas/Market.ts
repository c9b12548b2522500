/**
 * Market data as the swarm sees it. Plain structs, not classes: bars are built on the per-bar path.
 * OHLC values are not required to be mutually consistent (a high below the close is accepted as
 * given): benchmark data such as backtrader's W2 is generated that way, and an engine that "fixed"
 * bars would no longer see the prices another engine sees.
 */
import { Schema } from "effect"
import { Symbol, Timestamp } from "./Ids.js"

export const Price = Schema.Number.pipe(
  Schema.finite({ message: () => "a price must be a finite number" }),
  Schema.positive({ message: () => "a price must be greater than 0" })
)

export const Volume = Schema.Number.pipe(
  Schema.finite({ message: () => "volume must be a finite number" }),
  Schema.nonNegative({ message: () => "volume must not be negative" })
)

/** One OHLCV bar; `ts` is the bar's open time. */
export const Bar = Schema.Struct({
  symbol: Symbol,
  ts: Timestamp,
  open: Price,
  high: Price,
  low: Price,
  close: Price,
  volume: Volume
})
export type Bar = typeof Bar.Type

/** Top of book, for paper runs fed by quotes. */
export const Quote = Schema.Struct({
  symbol: Symbol,
  ts: Timestamp,
  bid: Price,
  ask: Price,
  bidSize: Schema.optional(Volume),
  askSize: Schema.optional(Volume)
})
export type Quote = typeof Quote.Type
