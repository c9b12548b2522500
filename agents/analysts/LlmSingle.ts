/**
 * LLM analyst (`llm_analyst`): one model call per round. The model reads the market brief (recent
 * bars, indicators, the swarm's position and latest decisions: agents/analysts/MarketBrief.ts) and
 * answers a structured judgement — direction, confidence, rationale.
 *
 * Parameters (`params`): `model` (default the strategy's `llm.model`), `bars` (5..200, default 20:
 * bars in the brief), `horizon` (default 5 bars), `persona` (optional, up to 500 characters: how
 * the analyst should think, added to its instructions).
 *
 * Confidence: the model's own, 0..1. Without a model (the offline analyst) it is |score| of
 * `offlineScore` — trend, momentum and RSI — long above 0.1, short (flat without shorting) below
 * −0.1, flat between, with its reasons as the rationale.
 *
 * Warm-up: no opinion before max(`bars`, 34) bars of the symbol.
 */
import { Effect, Schema } from "effect"
import type { Judgement, LlmAnalystType, Thinking } from "../LlmAnalyst.js"
import { briefUserMessage, configFields, directionRule, JudgementAnswer, OFFLINE, systemMessages } from "./internal/llm.js"
import { offlineScore, windowOf } from "./MarketBrief.js"

export const Config = Schema.Struct({
  ...configFields,
  persona: Schema.optional(Schema.String.pipe(Schema.maxLength(500)))
}).annotations({ identifier: "LlmAnalystConfig", parseOptions: { onExcessProperty: "error" } })
export type Config = typeof Config.Type

/** The offline analyst's judgement of a brief. */
export const offlineJudgement = (brief: Parameters<typeof offlineScore>[0], allowShort: boolean): Judgement => {
  const { reasons, score } = offlineScore(brief)
  const direction = score > 0.1 ? "long" : score < -0.1 ? (allowShort ? "short" : "flat") : "flat"
  const confidence = direction === "flat" ? Math.round((1 - Math.abs(score)) * 1_000) / 1_000 : Math.round(Math.abs(score) * 1_000) / 1_000
  return { direction, confidence, rationale: `${OFFLINE}: ${reasons.join("; ")}; score ${score} → ${direction}.` }
}

const instructions = (config: Config, symbol: string, allowShort: boolean): string =>
  `You are a trading analyst in a swarm of agents. Read the market brief and say where ${symbol} goes over the next ${config.horizon} bars. ` +
  `Answer only a JSON object {"direction", "confidence", "rationale"}: ${directionRule(allowShort)} "confidence" is from 0 to 1. ` +
  `The rationale cites the numbers you used, in at most three sentences.${config.persona === undefined ? "" : ` ${config.persona}`}`

/** The instructions for a config and symbol, made once for each (with shorting, and without). */
const longOnlySystem = systemMessages<Config>()
const shortingSystem = systemMessages<Config>()

/** The one call of a round. */
const askOf = ({ agent, allowShort, brief, config, round }: Thinking<Config>) => ({
  agent,
  round,
  step: "analyst",
  model: config.model,
  schema: JudgementAnswer,
  window: windowOf(brief),
  offline: () => offlineJudgement(brief, allowShort),
  messages: [
    (allowShort ? shortingSystem : longOnlySystem)(config, brief.symbol, () => instructions(config, brief.symbol, allowShort)),
    briefUserMessage(brief)
  ]
})

/** The round's judgement (recorded as its decision), or undefined: abstain. */
const decided = ({ reason }: Thinking<Config>, value: Judgement | undefined): Judgement | undefined => {
  if (value === undefined) return undefined
  reason(1, "decision", "analyst", value.rationale)
  return value
}

export const analyst: LlmAnalystType<Config> = {
  type: "llm_analyst",
  description: "A language model reads the market brief and gives a direction, a confidence and its reasons (one call a round).",
  config: Config,
  horizon: (config) => config.horizon,
  answers: [JudgementAnswer],
  plan: (config, brief) =>
    `Ask ${config.model ?? "the strategy's model"} where ${brief.symbol} goes over ${config.horizon} bars, from the ${brief.bars.length}-bar brief as of ${brief.asOf} (position ${brief.position}).`,
  think: (thinking) =>
    thinking.session.generate(askOf(thinking)).pipe(Effect.map(({ value }) => decided(thinking, value))),
  thinkNow: (thinking) => {
    const peeked = thinking.session.peek(askOf(thinking))
    return peeked === undefined ? undefined : decided(thinking, peeked.commit().value) ?? null
  }
}
