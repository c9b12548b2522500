/**
 * The analyst actor: runs one analyst model (agents/analysts/*) for every symbol of a run. Each
 * `RequestOpinions` folds that timestamp's bars into the per-symbol model states, in the order the
 * rounds came, and answers with the opinions. A model that throws crashes the actor — the ask gets
 * `NoReply(crashed)`, the coordinator counts an abstention, the supervisor restarts the analyst with
 * fresh states (its indicators warm up again) — and the run goes on.
 *
 * An opinion's rationale is written only when someone reads it (see `LazyOpinion`): a backtest
 * asks for millions of opinions and logs the words of a few.
 */
import { Effect } from "effect"
import { RequestOpinions } from "../schemas/AnalystProtocol.js"
import type { AgentId, RoundId } from "../schemas/Ids.js"
import type { Opinion } from "../schemas/Opinion.js"
import * as Actor from "../src/actor/Actor.js"
import type { AnyModel, Signal } from "./analysts/Model.js"

export interface AnalystOptions {
  readonly name: AgentId
  readonly model: AnyModel
  /** The model's decoded config. */
  readonly config: unknown
  readonly allowShort: boolean
}

export const make = ({ allowShort, config, model, name }: AnalystOptions) => {
  const horizon = model.horizon(config)
  const explain = (signal: Signal) => model.explain(signal, config, allowShort)
  return Actor.make({
    protocol: RequestOpinions,
    // State per symbol, made fresh at every (re)start: a restarted analyst warms up again.
    setup: () => Effect.sync(() => new Map<string, unknown>()),
    behavior: (states, request, context) =>
      Effect.suspend(() => {
        const opinions: Array<Opinion> = []
        for (const { bar, round } of request.rounds) {
          let state = states.get(bar.symbol)
          if (state === undefined) states.set(bar.symbol, (state = model.init(config)))
          const signal = model.update(state, bar, config, allowShort)
          if (signal !== undefined) {
            opinions.push(
              new LazyOpinion(round, name, bar.symbol, bar.ts, signal.direction, signal.confidence, horizon, signal.features, explain)
            )
          }
        }
        return Effect.as(context.reply(request, opinions), states)
      })
  })
}

/**
 * An `Opinion` whose `rationale` is the model's `explain` of it, computed on first read and kept.
 * Everything else is an own field, in the schema's order, so it reads, encodes and decodes as a
 * plain `Opinion`; `toJSON` puts the rationale back in its place, so `JSON.stringify` gives the
 * same text as for the plain object.
 *
 * The getter is on the prototype, so `rationale` is not an own key: `Schema.is(Opinion)` (exact
 * by default) refuses it — pass `{ exact: false }` — and a spread or `structuredClone` drops it.
 * An own accessor per opinion (`Object.defineProperty`) would fix that at more than twice the
 * analysts' whole per-bar cost (measured: 5.0 against 2.2 µs a bar for six).
 */
class LazyOpinion implements Opinion {
  #rationale: string | undefined = undefined
  readonly #explain: (signal: Signal) => string

  constructor(
    readonly round: RoundId,
    readonly agent: AgentId,
    readonly symbol: Opinion["symbol"],
    readonly ts: Opinion["ts"],
    readonly direction: Opinion["direction"],
    readonly confidence: number,
    readonly horizon: number,
    readonly features: Opinion["features"],
    explain: (signal: Signal) => string
  ) {
    this.#explain = explain
  }

  get rationale(): string {
    return (this.#rationale ??= this.#explain(this))
  }

  toJSON(): Opinion {
    return {
      round: this.round,
      agent: this.agent,
      symbol: this.symbol,
      ts: this.ts,
      direction: this.direction,
      confidence: this.confidence,
      horizon: this.horizon,
      rationale: this.rationale,
      features: this.features
    }
  }
}
