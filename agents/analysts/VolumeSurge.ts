/**
 * Volume surge (`volume_surge`): follows heavy trading. When the bar's volume is at least
 * `multiple` times the average volume of the `period` bars before it, the bar's own direction:
 * long when it closed above its open, short when below (flat when shorting is not allowed), flat
 * when unchanged. Without a surge, flat with a low constant confidence.
 *
 * Parameters (`params`): `period` (integer ≥ 1, default 20) bars; `multiple` (a number ≥ 1,
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
import type { Model, Signal } from "./Model.js"

/** The confidence of the flat given when there is no surge. */
export const QUIET_CONFIDENCE = 0.1

export const Config = Schema.Struct({
  period: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.int({ message: () => "period must be a whole number of bars" }),
      Schema.greaterThanOrEqualTo(1, { message: () => "period must be at least 1 bar" })
    ),
    { default: () => 20, exact: true }
  ),
  multiple: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.finite({ message: () => "multiple must be a finite number" }),
      Schema.greaterThanOrEqualTo(1, { message: () => "multiple must be at least 1 (a surge is above the average)" })
    ),
    { default: () => 2, exact: true }
  )
}).annotations({ identifier: "VolumeSurgeConfig", parseOptions: { onExcessProperty: "error" } })
export type Config = typeof Config.Type

export interface State {
  readonly volume: VolumeAverage
}

const update = (state: State, bar: Bar, config: Config, allowShort: boolean): Signal | undefined => {
  const level = state.volume.update(bar.volume)
  if (level === undefined) return undefined
  const { average, ratio } = level
  const volume = bar.volume
  // With a zero average the ratio is undefined: any volume at all is then a surge.
  const surge = ratio === undefined ? volume > 0 : ratio >= config.multiple
  const features: Readonly<Record<string, number>> = ratio === undefined ? { volume, average } : { volume, average, ratio }
  const times = ratio === undefined ? "after no volume" : `${ratio.toFixed(2)}× its ${config.period}-bar average ${average.toFixed(0)}`
  if (!surge) {
    return { direction: "flat", confidence: QUIET_CONFIDENCE, rationale: `volume ${volume.toFixed(0)} is ${times}, below ${config.multiple}×`, features }
  }
  const confidence = ratio === undefined ? 1 : Math.min(1, ratio / (2 * config.multiple))
  const surged = `volume ${volume.toFixed(0)} surged ${times}`
  if (bar.close > bar.open) {
    return { direction: "long", confidence, rationale: `${surged} on an up bar`, features }
  }
  if (bar.close < bar.open) {
    return allowShort
      ? { direction: "short", confidence, rationale: `${surged} on a down bar`, features }
      : { direction: "flat", confidence, rationale: `${surged} on a down bar; shorting not allowed`, features }
  }
  return { direction: "flat", confidence, rationale: `${surged} on an unchanged bar`, features }
}

export const model: Model<Config, State> = {
  type: "volume_surge",
  description: "On a volume surge, the direction of the bar; otherwise flat.",
  config: Config,
  horizon: () => 1,
  init: (config) => ({ volume: new VolumeAverage(config.period) }),
  update
}
