/**
 * The analyst actor: runs one analyst model (agents/analysts/*) for every symbol of a run. Each
 * `RequestOpinions` folds that timestamp's bars into the per-symbol model states, in the order the
 * rounds came, and answers with the opinions. A model that throws crashes the actor — the ask gets
 * `NoReply(crashed)`, the coordinator counts an abstention, the supervisor restarts the analyst with
 * fresh states (its indicators warm up again) — and the run goes on.
 */
import { Effect } from "effect"
import { RequestOpinions } from "../schemas/AnalystProtocol.js"
import type { AgentId, RoundId } from "../schemas/Ids.js"
import type { Opinion } from "../schemas/Opinion.js"
import * as Actor from "../src/actor/Actor.js"
import type { AnyModel } from "./analysts/Model.js"

export interface AnalystOptions {
  readonly name: AgentId
  readonly model: AnyModel
  /** The model's decoded config. */
  readonly config: unknown
  readonly allowShort: boolean
}

export const make = ({ allowShort, config, model, name }: AnalystOptions) => {
  const horizon = model.horizon(config)
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
          if (signal !== undefined) opinions.push(opinion(round, name, bar.symbol, bar.ts, horizon, signal))
        }
        return Effect.as(context.reply(request, opinions), states)
      })
  })
}

const opinion = (
  round: RoundId,
  agent: AgentId,
  symbol: Opinion["symbol"],
  ts: Opinion["ts"],
  horizon: number,
  signal: { readonly direction: Opinion["direction"]; readonly confidence: number; readonly rationale: string; readonly features: Readonly<Record<string, number>> }
): Opinion => ({ round, agent, symbol, ts, horizon, ...signal })
