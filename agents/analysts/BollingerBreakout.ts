/**
 * Bollinger breakout (`bollinger_breakout`): a breakout follower. Long when the close is above the
 * upper Bollinger band, short when below the lower one (flat when shorting is not allowed), flat
 * inside. The bands are computed over the last `period` closes including this bar's.
 *
 * Parameters (`params`): `period` (integer 2..10000, default 20) bars; `deviations` (a number > 0,
 * default 2) population standard deviations either side of the SMA.
 *
 * Confidence: with the half width h = upper − middle (`deviations` standard deviations), a
 * breakout's confidence is its distance outside the band in half widths, clamped: long
 * `min(1, (close − upper) / h)`, short `min(1, (lower − close) / h)` — full conviction once the
 * close is twice as far from the middle as the band. The flat that replaces a short when shorting
 * is not allowed has the short's confidence. Inside the bands, the flat's confidence is the
 * distance to the nearer band in half widths, `min(close − lower, upper − close) / h`: 1 at the
 * middle, 0 at a band. With zero width (constant closes) a flat is certain: 1.
 *
 * Horizon: 1 bar.
 *
 * Warm-up: no signal before the `period`-th bar.
 */
import { Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import { Bollinger } from "../../src/trading/Indicators.js"
import { period } from "./internal/params.js"
import { give, type Slot, slot } from "./internal/signal.js"
import type { Model, Signal } from "./Model.js"

export const Config = Schema.Struct({
  period: period("period", 20, 2, "a deviation needs two closes"),
  deviations: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.finite({ message: () => "deviations must be a finite number" }),
      Schema.greaterThan(0, { message: () => "deviations must be greater than 0" })
    ),
    { default: () => 2, exact: true }
  )
}).annotations({ identifier: "BollingerBreakoutConfig", parseOptions: { onExcessProperty: "error" } })
export type Config = typeof Config.Type

/** The bar's close and the bands it was measured against. */
type Features = { readonly close: number; readonly lower: number; readonly middle: number; readonly upper: number }

export interface State {
  readonly bands: Bollinger
  /** The signal `update` returns, overwritten on every bar. */
  readonly signal: Slot<Features>
}

/** A distance in half widths, clamped to [0, 1]; a zero-width band makes any distance decisive. */
const inHalves = (distance: number, half: number) => {
  if (!(half > 0)) return 1
  const x = distance / half
  return x < 0 ? 0 : x > 1 ? 1 : x
}

const update = (state: State, bar: Bar, _config: Config, allowShort: boolean): Signal<Features> | undefined => {
  const bands = state.bands.update(bar.close)
  if (bands === undefined) return undefined
  const { lower, middle, upper } = bands
  const close = bar.close
  const half = upper - middle
  const { signal } = state
  const features = signal.features
  features.close = close
  features.lower = lower
  features.middle = middle
  features.upper = upper
  if (close > upper) return give(signal, "long", inHalves(close - upper, half))
  if (close < lower) return give(signal, allowShort ? "short" : "flat", inHalves(lower - close, half))
  return give(signal, "flat", inHalves(Math.min(close - lower, upper - close), half))
}

const explain = ({ features: { close, lower, upper } }: Signal<Features>, config: Config, allowShort: boolean): string => {
  const label = `BB(${config.period}, ${config.deviations})`
  if (close > upper) return `close ${close.toFixed(2)} above upper ${label} band ${upper.toFixed(2)}`
  if (close < lower) {
    return `close ${close.toFixed(2)} below lower ${label} band ${lower.toFixed(2)}${allowShort ? "" : "; shorting not allowed"}`
  }
  return `close ${close.toFixed(2)} inside ${label} bands ${lower.toFixed(2)}–${upper.toFixed(2)}`
}

export const model: Model<Config, State, Features> = {
  type: "bollinger_breakout",
  description: "Long when the close breaks above the upper Bollinger band, short below the lower one, flat inside.",
  config: Config,
  horizon: () => 1,
  init: (config) => ({
    bands: new Bollinger(config.period, config.deviations),
    signal: slot<Features>({ close: NaN, lower: NaN, middle: NaN, upper: NaN })
  }),
  update,
  explain
}
