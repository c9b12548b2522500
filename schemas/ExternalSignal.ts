/**
 * A signal from outside the swarm (a TradingView alert, later other sources): an input of a run,
 * like a bar. The run's driver hands it to the coordinator with the slice it is delivered with, the
 * run records it (`SignalReceived`), and a replay or a resume delivers the recorded one again at the
 * same slice — so a run that received signals is still a function of its recorded inputs.
 *
 * Built on the webhook path from a decoded alert; plain struct, JSON-friendly, fields in a fixed
 * order (the event's canonical JSON is hashed, and a replay rebuilds the signal from it).
 */
import { Schema } from "effect"
import { Symbol, Timestamp } from "./Ids.js"
import { Price } from "./Market.js"
import { Confidence } from "./Opinion.js"

/** What the alert says to do, lower-cased: buy/long, sell/short, flat/close. */
export const SignalAction = Schema.Literal("buy", "sell", "long", "short", "flat", "close")
export type SignalAction = typeof SignalAction.Type

/** An indicator's name as an alert may send it: a letter, then letters, digits, `_ . -` (no `__proto__`). */
export const IndicatorName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, {
    message: () => "an indicator name is 1 to 64 letters, digits, _ . or -, starting with a letter"
  })
)

/** A short label from the alert (strategy, timeframe): printable, at most 100 characters. */
export const Label = Schema.String.pipe(
  Schema.pattern(/^[^\u0000-\u001f\u007f]{1,100}$/u, {
    message: () => "1 to 100 characters, none of them a control character"
  })
)

export const ExternalSignal = Schema.Struct({
  /** Where it came from (`tradingview`). */
  source: Schema.Literal("tradingview"),
  /** The strategy's symbol it is about (the alert's ticker, resolved against the strategy's symbols). */
  symbol: Symbol,
  /** The ticker as the alert sent it (`NASDAQ:AAPL`). */
  ticker: Schema.String,
  action: SignalAction,
  price: Price,
  /** The alert's idempotency key: its `id`, or a SHA-256 of its canonical body. */
  alertId: Schema.String,
  /** When the edge accepted it (wall clock, epoch ms): for the record; no agent reads it. */
  receivedAt: Timestamp,
  confidence: Schema.optional(Confidence),
  strategy: Schema.optional(Schema.String),
  timeframe: Schema.optional(Schema.String),
  indicators: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number }))
})
export type ExternalSignal = typeof ExternalSignal.Type

/**
 * The signal with its fields in the schema's order and no absent optional field spelled
 * `undefined`: what the run records, and what a replay rebuilds from the record, give the same
 * canonical JSON whichever object they started from.
 */
export const canonicalSignal = (s: ExternalSignal): ExternalSignal => ({
  source: s.source,
  symbol: s.symbol,
  ticker: s.ticker,
  action: s.action,
  price: s.price,
  alertId: s.alertId,
  receivedAt: s.receivedAt,
  ...(s.confidence === undefined ? {} : { confidence: s.confidence }),
  ...(s.strategy === undefined ? {} : { strategy: s.strategy }),
  ...(s.timeframe === undefined ? {} : { timeframe: s.timeframe }),
  ...(s.indicators === undefined ? {} : { indicators: { ...s.indicators } })
})

/**
 * The order alerts enter a run in: by when they were received, then by key. A run's inbox keeps
 * what it has not yet taken in this order (`SignalInbox`), and a resumed run gets its undelivered
 * alerts back in it, so that a restart does not reorder alerts whose claims overlapped.
 */
export const arrivalOrder = (a: ExternalSignal, b: ExternalSignal): number =>
  a.receivedAt !== b.receivedAt ? a.receivedAt - b.receivedAt : a.alertId < b.alertId ? -1 : a.alertId > b.alertId ? 1 : 0
