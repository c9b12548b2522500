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
import type { LlmAnalystType, Thinking } from "../LlmAnalyst.js"
import { ArgumentAnswer, briefUserMessage, configFields, directionRule, JudgementAnswer, OFFLINE } from "./internal/llm.js"
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

/** What a researcher said, in order. */
interface Said {
  readonly side: Side
  readonly argument: string
  readonly conviction: number
}

/** A researcher's turn: the brief, and the other side's last argument if there is one. */
const speech = ({ agent, brief, config, round }: Thinking<Config>, transcript: ReadonlyArray<Said>, side: Side, debateRound: number) => {
  const other = transcript.filter((t) => t.side !== side).at(-1)
  const messages: Array<Message> = [
    { role: "system", content: researcher(side, brief.symbol, config.horizon) },
    briefUserMessage(brief)
  ]
  if (other !== undefined) messages.push({ role: "user", content: `The ${other.side}'s argument: ${other.argument}` })
  return {
    agent,
    round,
    step: `${side}-${debateRound}`,
    model: config.model,
    schema: ArgumentAnswer,
    window: windowOf(brief),
    offline: () => offlineArgument(brief, side),
    messages
  }
}

/** Record a debate round's two arguments (and add them to `transcript`). */
const argued = ({ reason }: Thinking<Config>, transcript: Array<Said>, r: number, bull: ArgumentAnswer, bear: ArgumentAnswer) => {
  transcript.push({ side: "bull", ...bull }, { side: "bear", ...bear })
  reason(2 * r - 1, "analysis", "bull", bull.argument)
  reason(2 * r, "analysis", "bear", bear.argument)
}

/** The judge's turn: the brief and the whole debate. */
const judgement = ({ agent, allowShort, brief, config, round }: Thinking<Config>, transcript: ReadonlyArray<Said>) => ({
  agent,
  round,
  step: "judge",
  model: config.model,
  schema: JudgementAnswer,
  window: windowOf(brief),
  offline: () => {
    const last = transcript.slice(-2)
    const bull = last.find((t) => t.side === "bull")!.conviction
    const bear = last.find((t) => t.side === "bear")!.conviction
    const judgement = offlineJudgement(brief, allowShort)
    return { ...judgement, rationale: `${judgement.rationale} Bull conviction ${bull}, bear ${bear}.` }
  },
  messages: [
    {
      role: "system" as const,
      content: `You are the judge of a trading debate about ${brief.symbol}. Weigh the bull's and the bear's arguments against the brief ` +
        `and decide where it goes over the next ${config.horizon} bars. Answer only a JSON object {"direction", "confidence", "rationale"}: ` +
        `${directionRule(allowShort)} "confidence" is from 0 to 1. The rationale says which arguments won, in at most three sentences.`
    },
    briefUserMessage(brief),
    {
      role: "user" as const,
      content: transcript.map((t, i) => `Round ${Math.floor(i / 2) + 1}, ${t.side} (conviction ${t.conviction}): ${t.argument}`).join("\n")
    }
  ]
})

/** The judge's answer as the round's judgement (recorded as its decision), or undefined: abstain. */
const judged = ({ config, reason }: Thinking<Config>, value: JudgementAnswer | undefined) => {
  if (value === undefined) return undefined
  reason(2 * config.rounds + 1, "decision", "judge", value.rationale)
  return value
}

export const analyst: LlmAnalystType<Config> = {
  type: "llm_debate",
  description: "A bull and a bear researcher argue over the market brief; a judge turns the debate into an opinion.",
  config: Config,
  horizon: (config) => config.horizon,
  answers: [ArgumentAnswer, JudgementAnswer],
  // The judge presides: it hears the bull and the bear, then decides.
  planRole: "judge",
  plan: (config, brief) =>
    `Debate ${brief.symbol} over ${config.horizon} bars: ${config.rounds} round${config.rounds === 1 ? "" : "s"} of bull against bear on the ${brief.bars.length}-bar brief as of ${brief.asOf} (position ${brief.position}), then the judge decides.`,
  think: (thinking) =>
    Effect.gen(function*() {
      const { config, session } = thinking
      const transcript: Array<Said> = []
      for (let r = 1; r <= config.rounds; r++) {
        const [bull, bear] = yield* Effect.all([
          session.generate(speech(thinking, transcript, "bull", r)),
          session.generate(speech(thinking, transcript, "bear", r))
        ], { concurrency: 2 })
        if (bull.value === undefined || bear.value === undefined) return undefined
        argued(thinking, transcript, r, bull.value, bear.value)
      }
      return judged(thinking, (yield* session.generate(judgement(thinking, transcript))).value)
    }),
  // The same debate from answers at hand: every step peeked first, committed only if all are.
  thinkNow: (thinking) => {
    const { config, session } = thinking
    const transcript: Array<Said> = []
    const commits: Array<() => unknown> = []
    const speeches: Array<readonly [ArgumentAnswer, ArgumentAnswer]> = []
    for (let r = 1; r <= config.rounds; r++) {
      const bull = session.peek(speech(thinking, transcript, "bull", r))
      const bear = session.peek(speech(thinking, transcript, "bear", r))
      if (bull === undefined || bear === undefined) return undefined
      commits.push(bull.commit, bear.commit)
      if (bull.value === undefined || bear.value === undefined) {
        for (const commit of commits) commit()
        for (let i = 0; i < speeches.length; i++) argued(thinking, [], i + 1, speeches[i]![0], speeches[i]![1])
        return null
      }
      speeches.push([bull.value, bear.value])
      transcript.push({ side: "bull", ...bull.value }, { side: "bear", ...bear.value })
    }
    const judge = session.peek(judgement(thinking, transcript))
    if (judge === undefined) return undefined
    for (const commit of commits) commit()
    judge.commit()
    for (let i = 0; i < speeches.length; i++) argued(thinking, [], i + 1, speeches[i]![0], speeches[i]![1])
    return judged(thinking, judge.value) ?? null
  }
}
