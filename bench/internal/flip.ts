/**
 * A bench-only analyst type, `bench_flip`: long on a symbol's even bars, short on its odd ones,
 * always at full confidence (flat instead of short when shorting is off). Under fixed-quantity
 * sizing every bar of every symbol is then a reversing order: bench/backtest.ts's W3, the
 * order path's worst case. Added to a run with `Backtest.run`'s `registry` option, never to the
 * registry of agents/registry.ts.
 */
import { Schema } from "effect"
import type { Model } from "../../agents/analysts/Model.js"
import type { Direction } from "../../schemas/Opinion.js"

const Config = Schema.Struct({}).annotations({ identifier: "BenchFlipConfig", parseOptions: { onExcessProperty: "error" } })
type Config = typeof Config.Type

/** The bar's number for the symbol (0-based): its parity is the direction. */
type Features = { readonly bar: number }

interface State {
  /** The number of bars of the symbol seen so far. */
  bars: number
  /** The signal `update` returns, overwritten on every bar, as the analysts' models do (Model.ts). */
  readonly signal: { direction: Direction; readonly confidence: 1; readonly features: { bar: number } }
}

export const model: Model<Config, State, Features> = {
  type: "bench_flip",
  description: "Benchmark only: long on even bars, short on odd bars, confidence 1.",
  config: Config,
  horizon: () => 1,
  init: () => ({ bars: 0, signal: { direction: "flat", confidence: 1, features: { bar: -1 } } }),
  update: (state, _bar, _config, allowShort) => {
    const bar = state.bars++
    const { signal } = state
    signal.features.bar = bar
    signal.direction = bar % 2 === 0 ? "long" : allowShort ? "short" : "flat"
    return signal
  },
  explain: ({ direction, features }) => `bar ${features.bar} of the symbol is ${features.bar % 2 === 0 ? "even" : "odd"}: ${direction}`
}
