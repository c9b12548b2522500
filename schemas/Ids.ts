/** Branded identifiers of the trading vocabulary: a value of one cannot be passed as another. */
import { Schema } from "effect"

/** A tradable instrument's ticker as the data names it (`AAPL`, `BTC-USD`, `ES=F`, `^GSPC`). */
export const Symbol = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9^][A-Za-z0-9.\-_:/^=]{0,31}$/, {
    message: () => "a symbol is 1 to 32 letters, digits or . - _ : / ^ =, starting with a letter, a digit or ^"
  }),
  Schema.brand("Symbol")
)
export type Symbol = typeof Symbol.Type

export const StrategyId = Schema.String.pipe(Schema.minLength(1), Schema.brand("StrategyId"))
export type StrategyId = typeof StrategyId.Type

export const RunId = Schema.String.pipe(Schema.minLength(1), Schema.brand("RunId"))
export type RunId = typeof RunId.Type

/** An agent's name within a run's roster (`sma-fast`, `risk`, …). */
export const AgentId = Schema.String.pipe(Schema.minLength(1), Schema.brand("AgentId"))
export type AgentId = typeof AgentId.Type

/** `<symbol>@<bar time ms>`: one decision cycle of a run for one symbol at one bar. */
export const RoundId = Schema.String.pipe(Schema.minLength(1), Schema.brand("RoundId"))
export type RoundId = typeof RoundId.Type

export const OrderId = Schema.String.pipe(Schema.minLength(1), Schema.brand("OrderId"))
export type OrderId = typeof OrderId.Type

export const FillId = Schema.String.pipe(Schema.minLength(1), Schema.brand("FillId"))
export type FillId = typeof FillId.Type

/** Milliseconds since the Unix epoch, UTC: the time of bars, rounds, orders and fills. */
export const Timestamp = Schema.Int.pipe(Schema.brand("Timestamp"))
export type Timestamp = typeof Timestamp.Type
