/** Analyst types that fail on purpose, for tests of supervision and of what a run says of it. */
import type { AnyModel, Model } from "../../agents/analysts/Model.js"
import * as SmaCrossover from "../../agents/analysts/SmaCrossover.js"

/** An analyst type that behaves like SMA crossover but throws on every `n`-th bar it is given, counted across restarts. */
export const crashingEvery = (n: number, type = "crashy"): AnyModel => {
  let bars = 0
  const sma: Model<any, any, any> = SmaCrossover.model
  return {
    ...sma,
    type,
    update: (state, bar, config, allowShort) => {
      if (++bars % n === 0) throw new Error(`${type}: bar ${bars}`)
      return sma.update(state, bar, config, allowShort)
    }
  }
}

/**
 * SMA crossover that throws wherever it would give an opinion: every bar once warmed up. After each
 * restart it folds the bars of its warm-up again, answering with none, then fails on the next.
 */
export const sulky: AnyModel = ((sma: Model<any, any, any>): AnyModel => ({
  ...sma,
  type: "sulky",
  update: (state, bar, config, allowShort) => {
    const signal = sma.update(state, bar, config, allowShort)
    if (signal !== undefined) throw new Error(`sulky: warmed up on ${bar.symbol}, and failing`)
    return signal
  }
}))(SmaCrossover.model)
