/**
 * SMA crossover (`sma_crossover`): a trend follower. Long while the fast simple moving average of
 * the close is above the slow one, short while below (flat when shorting is not allowed), flat when
 * they are equal.
 *
 * Parameters (`params`): `fast` (integer 1..10000, default 10) and `slow` (integer 1..10000, default 50)
 * bars, with fast < slow; `whenEqual`: `"flat"` (default) or `"abstain"` — what to say when the
 * averages are equal: flat, or nothing (the coordinator then keeps the target; for strategies that
 * act only on crosses).
 *
 * Confidence: the relative gap g = |SMA(fast) − SMA(slow)| / SMA(slow), scaled so that a 2% gap
 * is full conviction: `min(1, g / 0.02)`. The same number is the confidence of the flat that
 * replaces a short when shorting is not allowed (how sure it is not to be long). When the averages
 * are equal (g = 0), the flat's confidence is `1 − min(1, g / 0.02)` = 1: no trend at all.
 *
 * Horizon: `fast` bars — a crossover signal is meant to hold about as long as the fast average
 * takes to turn over.
 *
 * Warm-up: no signal before the `slow`-th bar.
 */
import { Sma } from "../../src/trading/Indicators.js"
import { crossover } from "./internal/crossover.js"

const sma = crossover({
  type: "sma_crossover",
  label: "SMA",
  description: "Long while the fast simple moving average of the close is above the slow one, short while below.",
  defaults: { fast: 10, slow: 50 },
  average: (period) => new Sma(period)
})

export const Config = sma.Config
export type Config = typeof Config.Type
export const model = sma.model
