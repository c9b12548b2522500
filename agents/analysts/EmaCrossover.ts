/**
 * EMA crossover (`ema_crossover`): a trend follower. Long while the fast exponential moving average of
 * the close is above the slow one, short while below (flat when shorting is not allowed), flat when
 * they are equal.
 *
 * Parameters (`params`): `fast` (integer ≥ 1, default 12) and `slow` (integer ≥ 1, default 26)
 * bars, with fast < slow.
 *
 * Confidence: the relative gap g = |EMA(fast) − EMA(slow)| / EMA(slow), scaled so that a 2% gap
 * is full conviction: `min(1, g / 0.02)`. The same number is the confidence of the flat that
 * replaces a short when shorting is not allowed (how sure it is not to be long). When the averages
 * are equal (g = 0), the flat's confidence is `1 − min(1, g / 0.02)` = 1: no trend at all.
 *
 * Horizon: `fast` bars — a crossover signal is meant to hold about as long as the fast average
 * takes to turn over.
 *
 * Warm-up: no signal before the `slow`-th bar.
 */
import { Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import { Ema } from "../../src/trading/Indicators.js"
import type { Model, Signal } from "./Model.js"

/** The relative gap between the averages that counts as full conviction. */
const FULL_GAP = 0.02

const period = (field: string, fallback: number) =>
  Schema.optionalWith(
    Schema.Number.pipe(
      Schema.int({ message: () => `${field} must be a whole number of bars` }),
      Schema.greaterThanOrEqualTo(1, { message: () => `${field} must be at least 1 bar` })
    ),
    { default: () => fallback, exact: true }
  )

export const Config = Schema.Struct({
  fast: period("fast", 12),
  slow: period("slow", 26)
}).pipe(
  Schema.filter((c) => c.fast < c.slow || { path: ["fast"], message: "fast must be less than slow" }),
  Schema.annotations({ identifier: "EmaCrossoverConfig", parseOptions: { onExcessProperty: "error" } })
)
export type Config = typeof Config.Type

export interface State {
  readonly fast: Ema
  readonly slow: Ema
}

const update = (state: State, bar: Bar, config: Config, allowShort: boolean): Signal | undefined => {
  // Both averages see every bar, warm or not.
  const fast = state.fast.update(bar.close)
  const slow = state.slow.update(bar.close)
  if (fast === undefined || slow === undefined) return undefined
  const gap = (fast - slow) / slow
  const strength = Math.min(1, Math.abs(gap) / FULL_GAP)
  const features = { fast, slow, gap }
  const numbers = `EMA(${config.fast}) ${fast.toFixed(2)}`
  const against = `EMA(${config.slow}) ${slow.toFixed(2)}`
  const by = `by ${(Math.abs(gap) * 100).toFixed(2)}%`
  if (gap > 0) {
    return { direction: "long", confidence: strength, rationale: `${numbers} above ${against} ${by}`, features }
  }
  if (gap < 0) {
    return allowShort
      ? { direction: "short", confidence: strength, rationale: `${numbers} below ${against} ${by}`, features }
      : { direction: "flat", confidence: strength, rationale: `${numbers} below ${against} ${by}; shorting not allowed`, features }
  }
  return { direction: "flat", confidence: 1 - strength, rationale: `${numbers} equal to ${against}`, features }
}

export const model: Model<Config, State> = {
  type: "ema_crossover",
  description: "Long while the fast exponential moving average of the close is above the slow one, short while below.",
  config: Config,
  horizon: (config) => config.fast,
  init: (config) => ({ fast: new Ema(config.fast), slow: new Ema(config.slow) }),
  update
}
