/**
 * Volume surge (`volume_surge`): follows heavy trading. When the bar's volume is at least
 * `multiple` times the average volume of the `period` bars before it, the bar's own direction:
 * long when it closed above its open, short when below (flat when shorting is not allowed), flat
 * when unchanged. Without a surge, flat with a low constant confidence.
 *
 * Parameters (`params`): `period` (integer 1..10000, default 20) bars; `multiple` (a number ≥ 1,
 * default 2).
 *
 * Confidence: with the surge ratio r = volume / average, a surge's confidence is
 * `min(1, r / (2 × multiple))` — 0.5 at the threshold, full conviction at twice it; after bars of
 * zero volume (average 0), any volume is a surge of confidence 1. The same number is the
 * confidence of a surge on an unchanged bar (flat) and of the flat that replaces a short when
 * shorting is not allowed. Without a surge: flat at 0.1 (`QUIET_CONFIDENCE`) — quiet volume says
 * little either way.
 *
 * Horizon: 1 bar.
 *
 * Warm-up: no signal before the (period + 1)-th bar (the average excludes the current bar).
 */
import { Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import { VolumeAverage } from "../../src/trading/Indicators.js"
import { period } from "./internal/params.js"
import { give, type Slot, slot } from "./internal/signal.js"
import type { Model, Signal } from "./Model.js"

/** The confidence of the flat given when there is no surge. */
export const QUIET_CONFIDENCE = 0.1

export const Config = Schema.Struct({
  period: period("period", 20),
  multiple: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.finite({ message: () => "multiple must be a finite number" }),
      Schema.greaterThanOrEqualTo(1, { message: () => "multiple must be at least 1 (a surge is above the average)" })
    ),
    { default: () => 2, exact: true }
  )
}).annotations({ identifier: "VolumeSurgeConfig", parseOptions: { onExcessProperty: "error" } })
export type Config = typeof Config.Type

/**
 * The bar's volume, the average before it, their ratio (absent when the average is 0), and the
 * bar's move, close − open (its sign is what the rationale words as up, down or unchanged).
 */
type Features = { readonly volume: number; readonly average: number; readonly ratio?: number; readonly change: number }

export interface State {
  readonly volume: VolumeAverage
  /**
   * The signal `update` returns, overwritten on every bar; its features are `measured` or, when
   * the average is 0, `silent` — an object without `ratio` (absent, not undefined: the features
   * record holds numbers only).
   */
  readonly signal: Slot<Features>
  readonly measured: Slot<Features>["features"]
  readonly silent: Slot<Features>["features"]
}

/** A surge: volume at least `multiple` times the average — after bars of no volume, any volume. */
const isSurge = ({ ratio, volume }: { readonly volume: number; readonly ratio?: number | undefined }, config: Config) =>
  ratio === undefined ? volume > 0 : ratio >= config.multiple

const update = (state: State, bar: Bar, config: Config, allowShort: boolean): Signal<Features> | undefined => {
  const level = state.volume.update(bar.volume)
  if (level === undefined) return undefined
  const { average, ratio } = level
  const volume = bar.volume
  // The sign of close − open is that of close vs open: a difference of doubles is 0 only when they are equal.
  const change = bar.close - bar.open
  const { signal } = state
  const features = (signal.features = ratio === undefined ? state.silent : state.measured)
  features.volume = volume
  features.average = average
  if (ratio !== undefined) features.ratio = ratio
  features.change = change
  if (!isSurge(features, config)) return give(signal, "flat", QUIET_CONFIDENCE)
  const confidence = ratio === undefined ? 1 : Math.min(1, ratio / (2 * config.multiple))
  if (change > 0) return give(signal, "long", confidence)
  if (change < 0) return give(signal, allowShort ? "short" : "flat", confidence)
  return give(signal, "flat", confidence)
}

const explain = ({ features }: Signal<Features>, config: Config, allowShort: boolean): string => {
  const { average, change, ratio, volume } = features
  const times = ratio === undefined ? "after no volume" : `${ratio.toFixed(2)}× its ${config.period}-bar average ${average.toFixed(0)}`
  if (!isSurge(features, config)) return `volume ${volume.toFixed(0)} is ${times}, below ${config.multiple}×`
  const surged = `volume ${volume.toFixed(0)} surged ${times}`
  if (change > 0) return `${surged} on an up bar`
  if (change < 0) return `${surged} on a down bar${allowShort ? "" : "; shorting not allowed"}`
  return `${surged} on an unchanged bar`
}

export const model: Model<Config, State, Features> = {
  type: "volume_surge",
  description: "On a volume surge, the direction of the bar; otherwise flat.",
  config: Config,
  horizon: () => 1,
  init: (config) => {
    // Fields in the order the features were always written (their JSON is the reasoning log's).
    const measured = { volume: NaN, average: NaN, ratio: NaN, change: NaN }
    const silent: Slot<Features>["features"] = { volume: NaN, average: NaN, change: NaN }
    return { volume: new VolumeAverage(config.period), signal: slot<Features>(measured), measured, silent }
  },
  update,
  explain
}
