/**
 * RSI mean reversion (`rsi_reversion`): a contrarian. Long when Wilder's RSI of the close is below
 * `oversold` (the fall is overdone), short when above `overbought` (flat when shorting is not
 * allowed), flat between.
 *
 * Parameters (`params`): `period` (integer 1..10000, default 14) bars; `oversold` (default 30) and
 * `overbought` (default 70), with 0 < oversold < overbought < 100.
 *
 * Confidence: how far the RSI is beyond its threshold, as a share of the room beyond it —
 * long `(oversold − RSI) / oversold`, short `(RSI − overbought) / (100 − overbought)` (0 at the
 * threshold, 1 at RSI 0 or 100); the flat that replaces a short when shorting is not allowed has
 * the short's confidence. Between the thresholds, the flat's confidence is the distance to the
 * nearer threshold over half the neutral zone, `min(RSI − oversold, overbought − RSI) /
 * ((overbought − oversold) / 2)`: 1 midway, 0 at a threshold. All clamped to [0, 1].
 *
 * Horizon: 1 bar — an oversold or overbought reading is a call on the next bar.
 *
 * Warm-up: no signal before the (period + 1)-th bar (RSI needs `period` price changes).
 *
 * A price that has not moved (a halted or untraded symbol printing the same close bar after bar)
 * has no gain and no loss: its RSI is 0 ÷ 0, which the indicator's convention reads as 100. Nothing
 * was overbought; the analyst reads it as 50 instead — flat, midway between the thresholds.
 */
import { Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import { Rsi } from "../../src/trading/Indicators.js"
import { period } from "./internal/params.js"
import { give, type Slot, slot } from "./internal/signal.js"
import type { Model, Signal } from "./Model.js"

const level = (field: string, fallback: number) =>
  Schema.optionalWith(
    Schema.Number.pipe(
      Schema.greaterThan(0, { message: () => `${field} must be an RSI level above 0` }),
      Schema.lessThan(100, { message: () => `${field} must be an RSI level below 100` })
    ),
    { default: () => fallback, exact: true }
  )

export const Config = Schema.Struct({
  period: period("period", 14),
  oversold: level("oversold", 30),
  overbought: level("overbought", 70)
}).pipe(
  Schema.filter((c) => c.oversold < c.overbought || { path: ["oversold"], message: "oversold must be less than overbought" }),
  Schema.annotations({ identifier: "RsiReversionConfig", parseOptions: { onExcessProperty: "error" } })
)
export type Config = typeof Config.Type

/** The RSI and the thresholds it was read against. */
type Features = { readonly rsi: number; readonly oversold: number; readonly overbought: number }

export interface State {
  readonly rsi: Rsi
  /** The signal `update` returns, overwritten on every bar. */
  readonly signal: Slot<Features>
}

const clamp01 = (x: number) => (x < 0 ? 0 : x > 1 ? 1 : x)

const update = (state: State, bar: Bar, config: Config, allowShort: boolean): Signal<Features> | undefined => {
  const reading = state.rsi.update(bar.close)
  if (reading === undefined) return undefined
  const rsi = state.rsi.still ? 50 : reading
  const { overbought, oversold } = config
  const { signal } = state
  const features = signal.features
  features.rsi = rsi
  features.oversold = oversold
  features.overbought = overbought
  if (rsi < oversold) return give(signal, "long", clamp01((oversold - rsi) / oversold))
  if (rsi > overbought) return give(signal, allowShort ? "short" : "flat", clamp01((rsi - overbought) / (100 - overbought)))
  return give(signal, "flat", clamp01(Math.min(rsi - oversold, overbought - rsi) / ((overbought - oversold) / 2)))
}

const explain = ({ features: { overbought, oversold, rsi } }: Signal<Features>, config: Config, allowShort: boolean): string => {
  const reading = `RSI(${config.period}) ${rsi.toFixed(2)}`
  if (rsi < oversold) return `${reading} below oversold ${oversold}`
  if (rsi > overbought) return `${reading} above overbought ${overbought}${allowShort ? "" : "; shorting not allowed"}`
  return `${reading} between ${oversold} and ${overbought}`
}

export const model: Model<Config, State, Features> = {
  type: "rsi_reversion",
  description: "Long when the RSI says oversold, short when it says overbought, flat between.",
  config: Config,
  horizon: () => 1,
  init: (config) => ({ rsi: new Rsi(config.period), signal: slot<Features>({ rsi: NaN, oversold: NaN, overbought: NaN }) }),
  update,
  explain
}
