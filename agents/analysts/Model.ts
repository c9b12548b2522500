/**
 * What an analyst type is, apart from being an actor: a pure, per-symbol model. It keeps its own
 * state per symbol (incremental indicators), folds one bar at a time, and gives a signal — or
 * nothing while it warms up. The analyst actor (agents/Analyst.ts) runs any model; adding an
 * analyst type is one model file and one registry line.
 *
 * A model must read nothing but the bars it was given, in order (no look-ahead), must not read the
 * clock or Math.random, and must document its parameters and how it sets its confidence.
 *
 * A signal carries numbers only; its rationale is `explain`ed from them on demand. Formatting text
 * for every bar cost more than the indicators themselves, and almost nobody reads it: a backtest
 * logs the rationale of the few rounds it records, not of the millions it runs.
 */
import type { Schema } from "effect"
import type { Bar } from "../../schemas/Market.js"
import type { Direction } from "../../schemas/Opinion.js"

/** The numbers a model decided on, by name (a type alias per model, not an interface: it must fit the record). */
export type Features = Readonly<Record<string, number>>

export interface Signal<F extends Features = Features> {
  readonly direction: Direction
  /** 0..1, as the model's header documents. */
  readonly confidence: number
  /** The indicator values it decided on (for the reasoning log and replay), enough to `explain` it. */
  readonly features: F
}

export interface Model<Config, State, F extends Features = Features> {
  /** The registry name strategies use (`sma_crossover`). */
  readonly type: string
  readonly description: string
  /** The `params` of the strategy's agent entry, with defaults; errors name the field. */
  readonly config: Schema.Schema<Config, any, never>
  /** How many bars ahead its opinions are meant for (adaptive weights score them then). */
  readonly horizon: (config: Config) => number
  /** Fresh state for one symbol. */
  readonly init: (config: Config) => State
  /**
   * Fold one bar of the symbol and give a signal, or undefined while warming up. `allowShort`
   * false turns what would be a short into flat. May mutate `state` (it is the model's own).
   */
  readonly update: (state: State, bar: Bar, config: Config, allowShort: boolean) => Signal<F> | undefined
  /**
   * The rationale of a signal `update` gave under the same `config` and `allowShort`, in words and
   * numbers (`SMA(10) 101.20 above SMA(50) 99.80 by 1.40%`), from the signal alone.
   */
  readonly explain: (signal: Signal<F>, config: Config, allowShort: boolean) => string
}

/** Erase the type parameters, for the registry. */
export type AnyModel = Model<any, any, any>
