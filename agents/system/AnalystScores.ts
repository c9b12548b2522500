/**
 * The system agent's `analyst_scores` tool, pure: how each analyst of a run did over the rounds the
 * run recorded a decision in — what it said (long, short, flat, its confidence), whether it voted or
 * abstained (and why), whether it sided with the decision or dissented, and how often its votes were
 * right. A researcher who adds an analyst asks "which analyst is the most accurate?" and "does my
 * new one pull its weight?"; the other tools answer per round or per trade, this one per analyst.
 *
 * A vote is scored as adaptive weights score it (agents/Coordinator.ts, `Consensus.isCorrect`):
 * against the close of its symbol `horizon` bars (the opinion's own horizon) after its bar — right
 * when long and the close rose by more than the flat band (0.1 %), short and it fell by more, flat
 * and it moved less (or, in a run that may not short, did not rise by more). An abstention is not
 * scored, nor a vote whose horizon reaches past the bars the run has marked.
 *
 * Which rounds: a run records opinions and decisions for the rounds that changed a target (event
 * detail `decisions`, the default) or for every round (`rounds`). With `decisions` the scores are of
 * the calls that moved the book — the answer says so, as it says when only the latest rounds were read.
 */
import type { Decision } from "../../schemas/Decision.js"
import type { Direction } from "../../schemas/Opinion.js"
import * as Consensus from "../../src/trading/Consensus.js"
import { FLAT_BAND } from "../Coordinator.js"
import * as Format from "./internal/Format.js"

/** Fewer scored votes than this, and an analyst is not named the most (or least) accurate. */
export const MIN_SCORED = 5

export interface AnalystScore {
  readonly agent: string
  /** Opinions recorded (votes and abstentions below the minimum confidence). */
  readonly opinions: number
  readonly long: number
  readonly short: number
  readonly flat: number
  /** The mean confidence of its opinions; null without one. */
  readonly averageConfidence: number | null
  /** Rounds it voted in (an opinion at or above the minimum confidence). */
  readonly votes: number
  readonly abstentions: { readonly belowMinConfidence: number; readonly noAnswer: number; readonly failed: number }
  /** Votes for the decision's side, and against it (the decision's dissent). */
  readonly agreed: number
  readonly dissented: number
  /** Votes scored (the bar its horizon later is marked), and of those, right. */
  readonly scored: number
  readonly correct: number
  readonly hitRate: number | null
  /** Its opinions' horizon in bars; null when none of its opinions was read. */
  readonly horizon: number | null
}

export interface AnalystScoresView {
  /** Rounds with a recorded decision that were read (of `symbol`, when asked). */
  readonly rounds: number
  /** Of `rounds`' kind, how many the run has in all, when only its latest were read; else null. */
  readonly roundsInRun: number | null
  /** `decisions` (the rounds that changed a target) or `rounds` (every round). */
  readonly eventDetail: string
  readonly symbol: string | null
  readonly agent: string | null
  /** The analysts (one, when asked), in the strategy's order; an analyst no round mentions has zeros. */
  readonly analysts: ReadonlyArray<AnalystScore>
  /** The strategy's analysts' names: what an `agent` asked about that is none of them is told. */
  readonly roster: ReadonlyArray<string>
  /** Why no vote could be scored (the run's data cannot be read again); null when they were. */
  readonly unscored: string | null
  /** Flat is scored as "did not rise by more than the band" (a run that may not short), else as "moved less". */
  readonly flatMeansNotLong: boolean
  /** The highest and the lowest hit rate among analysts with at least `MIN_SCORED` scored votes. */
  readonly mostAccurate: string | null
  readonly leastAccurate: string | null
}

export interface AnalystScoresInput {
  /** The strategy's analysts, in order. */
  readonly roster: ReadonlyArray<string>
  /** The opinions of the rounds read (votes and abstentions below the minimum confidence alike). */
  readonly opinions: ReadonlyArray<OpinionRow>
  readonly decisions: ReadonlyArray<Decision>
  /** Each analyst's horizon in bars, as its opinions give it. */
  readonly horizons: ReadonlyMap<string, number>
  /**
   * The return of `symbol`'s close `horizon` bars after its bar at `ts`, over that close: undefined
   * when the run has not marked that bar (or has no bar at `ts`). Null: the data cannot be read.
   */
  readonly returnAfter: ((symbol: string, ts: number, horizon: number) => number | undefined) | null
  readonly unscored?: string | undefined
  /** A run that may not short: flat is right unless the close rose by more than the band. */
  readonly flatMeansNotLong: boolean
  readonly eventDetail: string
  readonly roundsInRun?: number | undefined
  readonly symbol?: string | undefined
  readonly agent?: string | undefined
}

/** An opinion as the run's `opinions` table keeps it. */
export interface OpinionRow {
  readonly round: string
  readonly agent: string
  readonly direction: Direction
  readonly confidence: number
}

interface Tally {
  opinions: number
  long: number
  short: number
  flat: number
  confidence: number
  votes: number
  belowMinConfidence: number
  noAnswer: number
  failed: number
  agreed: number
  dissented: number
  scored: number
  correct: number
}

const emptyTally = (): Tally => ({
  opinions: 0,
  long: 0,
  short: 0,
  flat: 0,
  confidence: 0,
  votes: 0,
  belowMinConfidence: 0,
  noAnswer: 0,
  failed: 0,
  agreed: 0,
  dissented: 0,
  scored: 0,
  correct: 0
})

const sameSymbol = (a: string, b: string | undefined) => b === undefined || a.toUpperCase() === b.toUpperCase()

/** The scores of `input`'s analysts over its recorded decisions (those of `symbol`, when given). */
export const analystScores = (input: AnalystScoresInput): AnalystScoresView => {
  const tallies = new Map<string, Tally>()
  const tallyOf = (agent: string) => {
    let t = tallies.get(agent)
    if (t === undefined) tallies.set(agent, (t = emptyTally()))
    return t
  }
  for (const agent of input.roster) tallyOf(agent)

  const decisions = input.decisions.filter((decision) => sameSymbol(decision.symbol, input.symbol))
  const decided = new Set<string>(decisions.map((decision) => decision.round))
  for (const opinion of input.opinions) {
    if (!decided.has(opinion.round)) continue
    const t = tallyOf(opinion.agent)
    t.opinions++
    t[opinion.direction]++
    t.confidence += opinion.confidence
  }
  for (const decision of decisions) {
    const dissent = new Set<string>(decision.dissent)
    for (const vote of decision.votes) {
      const t = tallyOf(vote.agent)
      t.votes++
      if (dissent.has(vote.agent)) t.dissented++
      else t.agreed++
      const horizon = input.horizons.get(vote.agent)
      if (input.returnAfter === null || horizon === undefined) continue
      const change = input.returnAfter(decision.symbol, decision.ts, horizon)
      if (change === undefined) continue
      t.scored++
      if (Consensus.isCorrect(vote.direction as Direction, change, FLAT_BAND, input.flatMeansNotLong)) t.correct++
    }
    for (const abstention of decision.abstentions) {
      const t = tallyOf(abstention.agent)
      if (abstention.reason === "below_min_confidence") t.belowMinConfidence++
      else if (abstention.reason === "no_answer") t.noAnswer++
      else t.failed++
    }
  }

  const names = [...tallies.keys()].filter((agent) => input.agent === undefined || agent.toLowerCase() === input.agent.toLowerCase())
  const analysts = names.map((agent): AnalystScore => {
    const t = tallies.get(agent)!
    return {
      agent,
      opinions: t.opinions,
      long: t.long,
      short: t.short,
      flat: t.flat,
      averageConfidence: t.opinions === 0 ? null : t.confidence / t.opinions,
      votes: t.votes,
      abstentions: { belowMinConfidence: t.belowMinConfidence, noAnswer: t.noAnswer, failed: t.failed },
      agreed: t.agreed,
      dissented: t.dissented,
      scored: t.scored,
      correct: t.correct,
      hitRate: t.scored === 0 ? null : t.correct / t.scored,
      horizon: input.horizons.get(agent) ?? null
    }
  })
  const ranked = analysts.filter((a) => a.scored >= MIN_SCORED)
    // Higher hit rate first; on a tie, more scored votes (more evidence); then the strategy's order.
    .sort((a, b) => b.hitRate! - a.hitRate! || b.scored - a.scored)
  return {
    rounds: decisions.length,
    roundsInRun: input.roundsInRun ?? null,
    eventDetail: input.eventDetail,
    symbol: input.symbol ?? null,
    agent: input.agent ?? null,
    analysts,
    roster: input.roster,
    unscored: input.returnAfter === null ? (input.unscored ?? "the run's data cannot be read again") : null,
    flatMeansNotLong: input.flatMeansNotLong,
    mostAccurate: ranked.length >= 2 ? ranked[0]!.agent : null,
    leastAccurate: ranked.length >= 2 && ranked.at(-1)!.hitRate! < ranked[0]!.hitRate! ? ranked.at(-1)!.agent : null
  }
}

const said = (a: AnalystScore): string => {
  const parts = (["long", "short", "flat"] as const).filter((d) => a[d] > 0).map((d) => `${a[d]} ${d}`)
  return parts.length === 0 ? "" : ` (${Format.list(parts)}${a.averageConfidence === null ? "" : `, confidence ${Format.decimal(a.averageConfidence)} on average`})`
}

const abstained = (a: AnalystScore): string => {
  const why = [
    a.abstentions.belowMinConfidence > 0 ? `${a.abstentions.belowMinConfidence} below the minimum confidence` : "",
    a.abstentions.noAnswer > 0 ? `${a.abstentions.noAnswer} with no answer (warming up, or too late)` : "",
    a.abstentions.failed > 0 ? `${a.abstentions.failed} failed (a crash or a refusal)` : ""
  ].filter((s) => s !== "")
  const total = a.abstentions.belowMinConfidence + a.abstentions.noAnswer + a.abstentions.failed
  return total === 0 ? "" : `, abstained ${total} (${Format.list(why)})`
}

const scoredText = (a: AnalystScore, unscored: boolean): string =>
  unscored
    ? ""
    : a.scored === 0
    ? a.votes === 0 ? "" : "; no vote of it could be scored yet (its horizon reaches past the bars marked)"
    : `; right ${a.correct} of ${a.scored} scored (${Format.percent(a.hitRate!)})${a.horizon === null ? "" : ` at ${Format.count(a.horizon, "bar")}`}`

const analystLine = (a: AnalystScore, unscored: boolean): string =>
  a.opinions === 0 && a.votes === 0 && a.abstentions.belowMinConfidence + a.abstentions.noAnswer + a.abstentions.failed === 0
    ? `${a.agent}: no opinion in these rounds`
    : `${a.agent}: ${Format.count(a.opinions, "opinion")}${said(a)}, ${Format.count(a.votes, "vote")}` +
      `${a.votes === 0 ? "" : ` (${a.agreed} with the decision, ${a.dissented} dissenting)`}${abstained(a)}${scoredText(a, unscored)}`

/** The plain sentences an operator reads without a model. */
export const describeAnalystScores = (view: AnalystScoresView): string => {
  const of = view.symbol === null ? "" : ` on ${view.symbol}`
  if (view.agent !== null && view.analysts.length === 0) {
    return `This run has no analyst named ${Format.quote(view.agent, 64)}: its analysts are ${Format.list(view.roster)}.`
  }
  if (view.rounds === 0) {
    return `No decision is recorded${of} yet, so there is no analyst's call to score.`
  }
  const which = view.eventDetail === "rounds"
    ? `every round is recorded`
    : `the run records the rounds that changed a target (event detail "decisions"), so these are the calls that moved the book, not every round`
  const window = view.roundsInRun === null ? "" : ` (the latest of its ${Format.integer(view.roundsInRun)})`
  const lead = `Over ${Format.count(view.rounds, "round")}${of} with a recorded decision${window}; ${which}.`
  const how = view.unscored !== null
    ? ` Votes are not scored: ${view.unscored}.`
    : ` Each vote is scored against its symbol's close its horizon later, as adaptive weights score it: long is right when the close rose by more than ${Format.percent(FLAT_BAND)}, short when it fell by more, flat when it ${
      view.flatMeansNotLong ? "did not rise by more (the run may not short)" : "moved less"
    }.`
  const best = view.mostAccurate === null ? undefined : view.analysts.find((a) => a.agent === view.mostAccurate)
  const worst = view.leastAccurate === null ? undefined : view.analysts.find((a) => a.agent === view.leastAccurate)
  const ranking = best === undefined
    ? view.unscored === null && view.analysts.length > 1
      ? ` No two analysts have the ${MIN_SCORED} scored votes a comparison needs yet.`
      : ""
    : ` Most accurate: ${best.agent}, right ${best.correct} of ${best.scored} (${Format.percent(best.hitRate!)})` +
      (worst === undefined ? "." : `; least: ${worst.agent}, ${worst.correct} of ${worst.scored} (${Format.percent(worst.hitRate!)}).`)
  const dissenter = [...view.analysts].filter((a) => a.dissented > 0).sort((a, b) => b.dissented - a.dissented)[0]
  const dissent = dissenter === undefined || view.analysts.length < 2
    ? ""
    : ` ${dissenter.agent} dissented most (${dissenter.dissented} of its ${Format.count(dissenter.votes, "vote")}).`
  const lines = view.analysts.map((a) => analystLine(a, view.unscored !== null)).join("; ")
  return `${lead}${how}${ranking}${dissent} By analyst: ${lines}.`
}
