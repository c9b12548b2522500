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
import { RequestOpinions, type RoundRequest } from "../schemas/AnalystProtocol.js"
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
  const source: Source = { agent: name, horizon: model.horizon(config), explain: (signal) => model.explain(signal, config, allowShort) }
  return Actor.make({
    protocol: RequestOpinions,
    // State per symbol, made fresh at every (re)start: a restarted analyst warms up again.
    setup: () => Effect.sync(() => new Map<string, unknown>()),
    behavior: (states, request, context) =>
      Effect.suspend(() => {
        const opinions: Array<Opinion> = []
        for (const round of request.rounds) {
          const bar = round.bar
          let state = states.get(bar.symbol)
          if (state === undefined) states.set(bar.symbol, (state = model.init(config)))
          const signal = model.update(state, bar, config, allowShort)
          if (signal !== undefined) opinions.push(new LazyOpinion(round, signal, source))
        }
        return Effect.as(context.reply(request, opinions), states)
      })
  })
}

/** What every opinion of one analyst shares. */
interface Source {
  readonly agent: AgentId
  readonly horizon: number
  readonly explain: (signal: Signal) => string
}

/**
 * An `Opinion` read through the round it answers, the model's signal and its analyst: four slots
 * instead of the nine fields of a plain opinion (a six-analyst backtest makes six a bar, and their
 * size was most of what survived into the old generation). `rationale` is the model's `explain`,
 * computed on first read and kept. `toJSON` gives the plain object in the schema's order, so
 * `JSON.stringify` gives the same text as for a plain opinion.
 *
 * The fields are getters on the prototype, not own keys: `Schema.is(Opinion)` (exact by default)
 * refuses it — pass `{ exact: false }` — and a spread or `structuredClone` drops them; encode it
 * (`Schema.encodeSync(Opinion)`) or `toJSON()` it for a plain one.
 */
class LazyOpinion implements Opinion {
  #rationale: string | undefined = undefined

  constructor(
    private readonly request: RoundRequest,
    private readonly signal: Signal,
    private readonly source: Source
  ) {}

  get round(): RoundId {
    return this.request.round
  }
  get agent(): AgentId {
    return this.source.agent
  }
  get symbol(): Opinion["symbol"] {
    return this.request.bar.symbol
  }
  get ts(): Opinion["ts"] {
    return this.request.bar.ts
  }
  get direction(): Opinion["direction"] {
    return this.signal.direction
  }
  get confidence(): number {
    return this.signal.confidence
  }
  get horizon(): number {
    return this.source.horizon
  }
  get features(): Opinion["features"] {
    return this.signal.features
  }
  get rationale(): string {
    return (this.#rationale ??= this.source.explain(this.signal))
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
