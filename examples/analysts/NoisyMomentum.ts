/**
 * Noisy momentum (`noisy_momentum`): an example of an analyst type that draws random numbers — copy
 * it to agents/analysts/ and add it to agents/registry.ts, or give it to a run in a registry of your
 * own (`Backtest.run({ registry })`). Its randomness is the `Draws` its `init` is given, kept in its
 * state: seeded from the run's seed, the analyst's name and the symbol, so a run with it is the
 * same for the same `--seed` and another for another — never `Math.random`, which no replay could
 * reproduce (agents/analysts/Model.ts).
 *
 * Direction: long when the close is above the close `lookback` bars before, short when below, flat
 * when equal — except that, on each bar, with probability `explore` it explores instead: a direction
 * drawn at random among long, short and flat. (A short when shorting is not allowed is flat.)
 *
 * Parameters (`params`): `lookback` (integer 1..10000, default 10): how many bars back the momentum
 * compares the close with; `explore` (0..1, default 0.2): the chance of a random direction on a bar.
 *
 * Confidence: 0.6 for the momentum's direction, 0.3 for an explored one.
 *
 * Horizon: `lookback` bars.
 *
 * Warm-up: no signal before the (lookback + 1)-th bar (the close `lookback` bars before is needed).
 */
import { Schema } from "effect"
import { period } from "../../agents/analysts/internal/params.js"
import type { Draws, Model, Signal } from "../../agents/analysts/Model.js"
import type { Direction } from "../../schemas/Opinion.js"

export const Config = Schema.Struct({
  lookback: period("lookback", 10),
  explore: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.2, exact: true })
}).annotations({ identifier: "NoisyMomentumConfig", parseOptions: { onExcessProperty: "error" } })
export type Config = typeof Config.Type

/** The momentum (close over the close `lookback` bars before, less 1) and whether the direction was explored (1) or not (0). */
type Features = { readonly momentum: number; readonly explored: number }

interface State {
  /** The last `lookback + 1` closes, a ring. */
  readonly closes: Float64Array
  bars: number
  readonly random: Draws
}

const DIRECTIONS: ReadonlyArray<Direction> = ["long", "short", "flat"]

export const model: Model<Config, State, Features> = {
  type: "noisy_momentum",
  description: "Momentum of the close over a look-back, exploring a random direction now and then (an example of a random analyst).",
  config: Config,
  horizon: (config) => config.lookback,
  init: (config, random) => ({ closes: new Float64Array(config.lookback + 1), bars: 0, random }),
  update: (state, bar, config, allowShort): Signal<Features> | undefined => {
    const size = config.lookback + 1
    state.closes[state.bars % size] = bar.close
    state.bars++
    if (state.bars < size) return undefined
    const before = state.closes[state.bars % size]!
    const momentum = bar.close / before - 1
    // The draws depend on nothing but the generator: the prices never change which numbers come.
    const explored = state.random.number() < config.explore
    const direction = explored
      ? DIRECTIONS[state.random.integer(DIRECTIONS.length)]!
      : momentum > 0 ? "long" : momentum < 0 ? "short" : "flat"
    return {
      direction: direction === "short" && !allowShort ? "flat" : direction,
      confidence: explored ? 0.3 : 0.6,
      features: { momentum, explored: explored ? 1 : 0 }
    }
  },
  explain: (signal, config) =>
    signal.features.explored === 1
      ? `explored: ${signal.direction} at random (momentum over ${config.lookback} bars ${(signal.features.momentum * 100).toFixed(2)}%)`
      : `momentum over ${config.lookback} bars ${(signal.features.momentum * 100).toFixed(2)}%: ${signal.direction}`
}
