/**
 * What an analyst type is, apart from being an actor: a pure, per-symbol model. It keeps its own
 * state per symbol (incremental indicators), folds one bar at a time, and gives a signal — or
 * nothing while it warms up. The analyst actor (agents/Analyst.ts) runs any model; adding an
 * analyst type is one model file, and an import and an entry in the registry.
 *
 * A model must read nothing but the bars it was given, in order (no look-ahead), must not read the
 * clock or Math.random, and must document its parameters and how it sets its confidence. A model
 * that needs randomness (exploration, noise, sampling) draws from the `Draws` its `init` is given:
 * seeded from the run's seed, the analyst's name and the symbol, so the same seed gives the same
 * run and another seed another (`swarm backtest --seed`). Nothing else outside the bars reaches a
 * model: an outside input a run depends on is a signal (`observe`: recorded, replayed), and a
 * model that calls out for it — a file, a service, the network — would make a run its replay
 * cannot reproduce. An analyst that needs effects (a model's call, a deadline) is an LLM analyst
 * type (agents/LlmAnalyst.ts), whose calls the run records.
 *
 * Adding one: a file here exporting `model`, then in agents/registry.ts an import
 * (`import * as MyModel from "./analysts/MyModel.js"`) and an entry in `analysts`
 * (`[MyModel.model.type, MyModel.model]`). Its `config`: a look-back with `period()`
 * (internal/params.ts: bounded to 10,000 bars, errors naming the field), a choice among words with
 * `oneOf` (schemas/OneOf.ts: `expected one of low, medium, high, got "extreme"`, where a bare
 * `Schema.Literal` says only `Expected "low", actual "extreme"`), and
 * `parseOptions: { onExcessProperty: "error" }` so a misspelt param is refused. Then, with no test
 * edited, test/agents/registry.test.ts checks it answers its protocol, and test/agents/analysts.test.ts
 * checks its signal contract (confidence in [0, 1], finite features, a rationale, no short when
 * shorting is not allowed), that it does not look ahead and that it is deterministic.
 *
 * A signal carries numbers only; its rationale is `explain`ed from them on demand. Formatting text
 * for every bar cost more than the indicators themselves, and almost nobody reads it: a backtest
 * logs the rationale of the few rounds it records, not of the millions it runs.
 *
 * A signal is valid until the next `update` of its state (see `Model.update`): a model may keep one
 * signal per symbol and overwrite it every bar. Two fresh records per model per bar were a quarter
 * of what a six-analyst backtest allocated, for objects read once and dropped. Keep one longer
 * with `copySignal`.
 */
import type { Schema } from "effect"
import type { ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { Bar } from "../../schemas/Market.js"
import type { Direction } from "../../schemas/Opinion.js"

/** The numbers a model decided on, by name (a type alias per model, not an interface: it must fit the record). */
export type Features = Readonly<Record<string, number>>

/**
 * What a model decided on a bar. Read-only to everyone but the model that gave it, which may
 * overwrite it on the state's next `update`: valid until then (`copySignal` to keep it).
 */
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
  /**
   * How many bars ahead its opinions are meant for (adaptive weights score them then). Asked when
   * a strategy naming the type is saved or run: a throw refuses the agent's params (InvalidAgent).
   */
  readonly horizon: (config: Config) => number
  /**
   * Fresh state for one symbol, at the analyst's (re)start: keep `random` in it to draw from on
   * later bars (a restarted analyst is given its generator afresh, as its indicators start afresh).
   */
  readonly init: (config: Config, random: Draws) => State
  /**
   * Fold one bar of the symbol and give a signal, or undefined while warming up. `allowShort`
   * false turns what would be a short into flat. May mutate `state` (it is the model's own).
   *
   * The signal returned is valid until the next `update` of the same `state`, no longer: a model
   * may return the same `Signal` object, with the same `features` object, on every bar of the
   * state, its fields overwritten in place (the six models keep it in the state). A caller that
   * keeps a signal past that — a list of every bar's signals, a value held for a later bar —
   * copies it with `copySignal` first. Updates of other states leave it alone.
   */
  readonly update: (state: State, bar: Bar, config: Config, allowShort: boolean) => Signal<F> | undefined
  /**
   * Optional: take in an outside signal about the symbol (a TradingView alert), delivered with the
   * bar that `update` folds next — called for each, oldest first, right before that `update`. A
   * signal is an input of the run like a bar (recorded and replayed), so reading it keeps the model
   * deterministic; a model without this hook never sees signals. May mutate `state`.
   */
  readonly observe?: (state: State, signal: ExternalSignal, config: Config) => void
  /**
   * The rationale of a signal `update` gave under the same `config` and `allowShort`, in words and
   * numbers (`SMA(10) 101.20 above SMA(50) 99.80 by 1.40%`), from the signal alone — read while it
   * is valid. Written lazily, by whoever reads it: one that throws crashes nothing and changes no
   * trading — the opinion's rationale is then `explain failed: <analyst>: <error>`
   * (agents/Analyst.ts), in every event detail alike.
   */
  readonly explain: (signal: Signal<F>, config: Config, allowShort: boolean) => string
}

/**
 * A model's randomness, deterministic under the run's seed (agents/analysts/internal/draws.ts):
 * the run's own, never `Math.random`.
 */
export interface Draws {
  /** A double in [0, 1), with 53 random bits. */
  readonly number: () => number
  /** An integer in [0, max), `max` at most 2³². */
  readonly integer: (max: number) => number
}

/** Erase the type parameters, for the registry. */
export type AnyModel = Model<any, any, any>

/**
 * A lasting copy of a signal: a plain object of its own, features included, which later updates of
 * the model's state do not change.
 */
export const copySignal = <F extends Features>(signal: Signal<F>): Signal<F> => ({
  direction: signal.direction,
  confidence: signal.confidence,
  features: { ...signal.features }
})
