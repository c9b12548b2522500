/**
 * LLM debate (`llm_debate`): a bull researcher and a bear researcher argue over the market brief for
 * `rounds` rounds — in each, both speak at once, each answering the other's last argument — and a
 * judge turns the debate into an opinion. After TradingAgents' researcher team, with every step a
 * structured answer and every argument recorded as reasoning.
 *
 * Parameters (`params`): `model` (default the strategy's `llm.model`), `bars` (5..200, default 20),
 * `horizon` (default 5 bars), `rounds` (1..5, default 1: rounds of debate before the judge).
 *
 * Confidence: the judge's, 0..1. Offline: the bull's conviction is (1 + s) / 2 and the bear's
 * (1 − s) / 2 for the brief's `offlineScore` s; the judge goes with the difference, as
 * `llm_analyst` does offline.
 *
 * Calls a round: 2 × `rounds` + 1, the two of a debate round in parallel. A failed step (no answer,
 * the budget spent) ends the round with an abstention.
 *
 * Warm-up: no opinion before max(`bars`, 34) bars of the symbol.
 */
import { Effect, Schema } from "effect"
import type { Message } from "../../schemas/Llm.js"
import type { LlmAnalystType } from "../LlmAnalyst.js"
import { ArgumentAnswer, briefMessage, configFields, directionRule, JudgementAnswer, OFFLINE } from "./internal/llm.js"
import { offlineJudgement } from "./LlmSingle.js"
import { type MarketBrief, offlineScore, windowOf } from "./MarketBrief.js"

export const Config = Schema.Struct({
  ...configFields,
  rounds: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 5)), { default: () => 1, exact: true })
}).annotations({ identifier: "LlmDebateConfig", parseOptions: { onExcessProperty: "error" } })
export type Config = typeof Config.Type

type Side = "bull" | "bear"

const offlineArgument = (brief: MarketBrief, side: Side) => {
  const { reasons, score } = offlineScore(brief)
  const conviction = Math.round(((side === "bull" ? 1 + score : 1 - score) / 2) * 1_000) / 1_000
  return {
    argument: `${OFFLINE}, ${side} side: ${reasons.join("; ")}; the ${side} case holds with conviction ${conviction}.`,
    conviction
  }
}

const researcher = (side: Side, symbol: string, horizon: number): string =>
  `You are the ${side === "bull" ? "bull" : "bear"} researcher in a trading debate about ${symbol}. ` +
  `Make the strongest ${side === "bull" ? "case for buying" : "case against holding or for selling"} over the next ${horizon} bars from the brief, ` +
  `and answer the other side's last argument if there is one. Answer only a JSON object {"argument", "conviction"}: ` +
  `"conviction" from 0 to 1 is how strong your case honestly is. Cite the numbers; at most four sentences.`

export const analyst: LlmAnalystType<Config> = {
  type: "llm_debate",
  description: "A bull and a bear researcher argue over the market brief; a judge turns the debate into an opinion.",
  config: Config,
  horizon: (config) => config.horizon,
  plan: (config, brief) =>
    `Debate ${brief.symbol} over ${config.horizon} bars: ${config.rounds} round${config.rounds === 1 ? "" : "s"} of bull against bear on the ${brief.bars.length}-bar brief as of ${brief.asOf} (position ${brief.position}), then the judge decides.`,
  think: ({ agent, allowShort, brief, config, reason, round, session }) =>
    Effect.gen(function*() {
      const window = windowOf(brief)
      const transcript: Array<{ readonly side: Side; readonly argument: string; readonly conviction: number }> = []
      const speak = (side: Side, debateRound: number) => {
        const other = transcript.filter((t) => t.side !== side).at(-1)
        const messages: Array<Message> = [
          { role: "system", content: researcher(side, brief.symbol, config.horizon) },
          { role: "user", content: briefMessage(brief) }
        ]
        if (other !== undefined) messages.push({ role: "user", content: `The ${other.side}'s argument: ${other.argument}` })
        return session.generate({
          agent,
          round,
          step: `${side}-${debateRound}`,
          model: config.model,
          schema: ArgumentAnswer,
          window,
          offline: () => offlineArgument(brief, side),
          messages
        })
      }
      for (let r = 1; r <= config.rounds; r++) {
        const [bull, bear] = yield* Effect.all([speak("bull", r), speak("bear", r)], { concurrency: 2 })
        if (bull.value === undefined || bear.value === undefined) return undefined
        transcript.push({ side: "bull", ...bull.value }, { side: "bear", ...bear.value })
        reason(2 * r - 1, "analysis", "bull", bull.value.argument)
        reason(2 * r, "analysis", "bear", bear.value.argument)
      }
      const judged = yield* session.generate({
        agent,
        round,
        step: "judge",
        model: config.model,
        schema: JudgementAnswer,
        window,
        offline: () => {
          const last = transcript.slice(-2)
          const bull = last.find((t) => t.side === "bull")!.conviction
          const bear = last.find((t) => t.side === "bear")!.conviction
          const judgement = offlineJudgement(brief, allowShort)
          return { ...judgement, rationale: `${judgement.rationale} Bull conviction ${bull}, bear ${bear}.` }
        },
        messages: [
          {
            role: "system",
            content: `You are the judge of a trading debate about ${brief.symbol}. Weigh the bull's and the bear's arguments against the brief ` +
              `and decide where it goes over the next ${config.horizon} bars. Answer only a JSON object {"direction", "confidence", "rationale"}: ` +
              `${directionRule(allowShort)} "confidence" is from 0 to 1. The rationale says which arguments won, in at most three sentences.`
          },
          { role: "user", content: briefMessage(brief) },
          {
            role: "user",
            content: transcript.map((t, i) => `Round ${Math.floor(i / 2) + 1}, ${t.side} (conviction ${t.conviction}): ${t.argument}`).join("\n")
          }
        ]
      })
      if (judged.value === undefined) return undefined
      reason(2 * config.rounds + 1, "decision", "judge", judged.value.rationale)
      return judged.value
    })
}
