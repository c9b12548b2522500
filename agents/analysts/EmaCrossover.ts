/**
 * EMA crossover (`ema_crossover`): a trend follower. Long while the fast exponential moving average of
 * the close is above the slow one, short while below (flat when shorting is not allowed), flat when
 * they are equal.
 *
 * Parameters (`params`): `fast` (integer 1..10000, default 12) and `slow` (integer 1..10000, default 26)
 * bars, with fast < slow; `whenEqual`: `"flat"` (default) or `"abstain"` — what to say when the
 * averages are equal: flat, or nothing (the coordinator then keeps the target; for strategies that
 * act only on crosses).
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
import { Ema } from "../../src/trading/Indicators.js"
import { crossover } from "./internal/crossover.js"

const ema = crossover({
  type: "ema_crossover",
  label: "EMA",
  description: "Long while the fast exponential moving average of the close is above the slow one, short while below.",
  defaults: { fast: 12, slow: 26 },
  average: (period) => new Ema(period)
})

export const Config = ema.Config
export type Config = typeof Config.Type
export const model = ema.model
