/**
 * The agent types a strategy can name. Adding an analyst is one model file in agents/analysts/ and
 * one line in `analysts` below; a test checks that every registered type decodes its default
 * config and answers its protocol.
 */
import { Either, ParseResult, Schema } from "effect"
import { InvalidAgent } from "../schemas/AnalystProtocol.js"
import type { AgentId } from "../schemas/Ids.js"
import { type AgentConfig, agentName } from "../schemas/Strategy.js"
import { fieldOf } from "../src/swarm/StrategyFile.js"
import * as Analyst from "./Analyst.js"
import * as BollingerBreakout from "./analysts/BollingerBreakout.js"
import * as EmaCrossover from "./analysts/EmaCrossover.js"
import * as MacdMomentum from "./analysts/MacdMomentum.js"
import type { AnyModel } from "./analysts/Model.js"
import * as RsiReversion from "./analysts/RsiReversion.js"
import * as SmaCrossover from "./analysts/SmaCrossover.js"
import * as TradingView from "./analysts/TradingView.js"
import * as VolumeSurge from "./analysts/VolumeSurge.js"

export const analysts: ReadonlyMap<string, AnyModel> = new Map<string, AnyModel>([
  [SmaCrossover.model.type, SmaCrossover.model],
  [EmaCrossover.model.type, EmaCrossover.model],
  [RsiReversion.model.type, RsiReversion.model],
  [BollingerBreakout.model.type, BollingerBreakout.model],
  [MacdMomentum.model.type, MacdMomentum.model],
  [VolumeSurge.model.type, VolumeSurge.model],
  [TradingView.model.type, TradingView.model]
])

/** A strategy's analyst, ready to spawn: its actor spec and the horizon its opinions are meant for. */
export interface AnalystOf {
  readonly name: AgentId
  readonly actor: ReturnType<typeof Analyst.make>
  readonly horizon: number
}

/** The `index`-th agent entry of a strategy resolved against `registry`, or why it cannot be. */
export const analystOf = (
  agent: AgentConfig,
  index: number,
  allowShort: boolean,
  registry: ReadonlyMap<string, AnyModel> = analysts
): Either.Either<AnalystOf, InvalidAgent> => {
  const name = agentName(agent) as AgentId
  const model = registry.get(agent.type)
  if (model === undefined) {
    return Either.left(
      new InvalidAgent({
        agent: name,
        field: `agents[${index}].type`,
        reason: `unknown agent type "${agent.type}"; the registered ones are ${[...registry.keys()].join(", ")}`
      })
    )
  }
  const config = Schema.decodeUnknownEither(model.config, { errors: "first", onExcessProperty: "error" })(agent.params)
  if (Either.isLeft(config)) {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(config.left)[0]
    const path = issue === undefined || issue.path.length === 0 ? "" : `.${fieldOf(issue.path)}`
    return Either.left(new InvalidAgent({ agent: name, field: `agents[${index}].params${path}`, reason: issue?.message ?? "invalid" }))
  }
  return Either.right({
    name,
    actor: Analyst.make({ name, model, config: config.right, allowShort }),
    horizon: model.horizon(config.right)
  })
}

/** The actor spec of the strategy's `index`-th agent entry, or why there cannot be one. */
export const analystSpec = (
  agent: AgentConfig,
  index: number,
  allowShort: boolean
): Either.Either<ReturnType<typeof Analyst.make>, InvalidAgent> => Either.map(analystOf(agent, index, allowShort), (a) => a.actor)
