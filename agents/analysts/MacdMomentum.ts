/**
 * MACD momentum (`macd_momentum`): a momentum follower. Long when the MACD line (EMA(fast) −
 * EMA(slow) of the close) is above its signal line (the histogram is positive), short when below
 * (flat when shorting is not allowed), flat when they are equal.
 *
 * Parameters (`params`): `fast` (integer 1..10000, default 12), `slow` (integer 1..10000, default 26) and
 * `signal` (integer 1..10000, default 9) bars, with fast < slow.
 *
 * Confidence: the histogram relative to the close, r = |histogram| / close, scaled so that 0.5%
 * of the price is full conviction: `min(1, r / 0.005)`. The flat that replaces a short when
 * shorting is not allowed has the short's confidence; a zero histogram's flat has
 * `1 − min(1, r / 0.005)` = 1.
 *
 * Horizon: `signal` bars — the span the signal line smooths over.
 *
 * Warm-up: no signal before the (slow + signal − 1)-th bar.
 */
import { Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import { Macd } from "../../src/trading/Indicators.js"
import { period } from "./internal/params.js"
import { give, type Slot, slot } from "./internal/signal.js"
import type { Model, Signal } from "./Model.js"

/** The histogram, as a share of the price, that counts as full conviction. */
const FULL_HISTOGRAM = 0.005

export const Config = Schema.Struct({
  fast: period("fast", 12),
  slow: period("slow", 26),
  signal: period("signal", 9)
}).pipe(
  Schema.filter((c) => c.fast < c.slow || { path: ["fast"], message: "fast must be less than slow" }),
  Schema.annotations({ identifier: "MacdMomentumConfig", parseOptions: { onExcessProperty: "error" } })
)
export type Config = typeof Config.Type

/** The MACD line, its signal line, their difference, and the close the histogram is measured against. */
type Features = { readonly macd: number; readonly signal: number; readonly histogram: number; readonly close: number }

export interface State {
  readonly macd: Macd
  /** The signal `update` returns (not the MACD's signal line), overwritten on every bar. */
  readonly signal: Slot<Features>
}

const update = (state: State, bar: Bar, _config: Config, allowShort: boolean): Signal<Features> | undefined => {
  const value = state.macd.update(bar.close)
  if (value === undefined) return undefined
  const { histogram, macd, signal } = value
  const close = bar.close
  const strength = Math.min(1, Math.abs(histogram) / close / FULL_HISTOGRAM)
  const out = state.signal
  const features = out.features
  features.macd = macd
  features.signal = signal
  features.histogram = histogram
  features.close = close
  if (histogram > 0) return give(out, "long", strength)
  if (histogram < 0) return give(out, allowShort ? "short" : "flat", strength)
  return give(out, "flat", 1 - strength)
}

const explain = ({ features: { close, histogram, macd, signal } }: Signal<Features>, config: Config, allowShort: boolean): string => {
  const label = `MACD(${config.fast}, ${config.slow}, ${config.signal}) ${macd.toFixed(4)}`
  const against = `signal ${signal.toFixed(4)}, histogram ${histogram.toFixed(4)} (${(histogram / close * 100).toFixed(3)}% of price)`
  if (histogram > 0) return `${label} above ${against}`
  if (histogram < 0) return `${label} below ${against}${allowShort ? "" : "; shorting not allowed"}`
  return `${label} on its signal line`
}

export const model: Model<Config, State, Features> = {
  type: "macd_momentum",
  description: "Long when the MACD line is above its signal line, short when below.",
  config: Config,
  horizon: (config) => config.signal,
  init: (config) => ({
    macd: new Macd(config.fast, config.slow, config.signal),
    signal: slot<Features>({ macd: NaN, signal: NaN, histogram: NaN, close: NaN })
  }),
  update,
  explain
}
