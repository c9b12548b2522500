/**
 * Consensus as a pure function: a round's opinions, the roster's weights and the consensus settings
 * in, a decision with its votes, abstentions and dissent out. Sums run in roster order, so the same
 * inputs give the same floating-point result whatever order the answers arrived in.
 *
 * - An opinion below `minConfidence` is an abstention; so is a missing or failed answer.
 * - Each vote scores weight × confidence for its direction; the highest score wins; a tie for the
 *   top is `flat` (the neutral stance when the roster is evenly split).
 * - The decision's confidence is the winner's score ÷ the voting weight — with one analyst, exactly
 *   that analyst's confidence.
 * - Without a quorum of weight (voting weight ÷ roster weight), or below `minDecisionConfidence`,
 *   the action is `hold`: keep the current position.
 * - A vote of weight 0 (an observer, or an adaptive weight at a floor of 0) is recorded and counts
 *   for nothing: not toward the quorum, not as "the one analyst" whose confidence is the decision's.
 *   A round where only such votes arrived has no quorum, whatever `quorum` is (even 0): a quorum is
 *   met by weight that voted, and none did.
 */
import type { Abstention, Action, ConsensusConfig, Decision, Vote } from "../../schemas/Decision.js"
import type { AgentId, RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Direction, Opinion } from "../../schemas/Opinion.js"

export interface Member {
  readonly agent: AgentId
  /** The roster weight, already multiplied by the adaptive factor when adaptive weights are on. */
  readonly weight: number
}

export interface Round {
  readonly round: RoundId
  readonly symbol: Symbol
  readonly ts: Timestamp
  readonly roster: ReadonlyArray<Member>
  /** The answers that arrived before the round closed, by agent (a `Map`, or any lookup by agent). */
  readonly opinions: { readonly get: (agent: AgentId) => Opinion | undefined }
  /** Analysts whose answer was a failure (crashed, refused): abstentions with reason `failed`; silent ones are `no_answer`. */
  readonly failed?: ReadonlySet<AgentId>
}

/** Floating-point slack for comparing shares of weight (a quorum of 0.5 with weights 1/3 + 1/6). */
const EPSILON = 1e-12

const DIRECTIONS: ReadonlyArray<Direction> = ["long", "short", "flat"]

interface Tally {
  action: Action
  winner: Direction
  confidence: number
  participation: number
  quorumMet: boolean
  totalScore: number
  winnerScore: number
}

/**
 * The one tally every call fills and returns: read at once, before the next call. `actionOf` runs
 * for every round of a backtest, and a fresh object per round was a tenth of its allocations.
 */
const scratch: Tally = { action: "hold", winner: "flat", confidence: 0, participation: 0, quorumMet: false, totalScore: 0, winnerScore: 0 }

/** The weighted vote; fills `votes` and `abstentions` when given (the decision's record), else only counts. */
const tally = (input: Round, config: ConsensusConfig, votes: Array<Vote> | null, abstentions: Array<Abstention> | null): Tally => {
  let rosterWeight = 0
  let votingWeight = 0
  let voters = 0
  let onlyConfidence = 0
  let long = 0
  let short = 0
  let flat = 0
  for (const member of input.roster) {
    rosterWeight += member.weight
    const opinion = input.opinions.get(member.agent)
    if (opinion === undefined) {
      abstentions?.push({ agent: member.agent, reason: input.failed?.has(member.agent) === true ? "failed" : "no_answer" })
      continue
    }
    if (opinion.confidence < config.minConfidence) {
      abstentions?.push({ agent: member.agent, reason: "below_min_confidence" })
      continue
    }
    const score = member.weight * opinion.confidence
    votes?.push({ agent: member.agent, direction: opinion.direction, confidence: opinion.confidence, weight: member.weight, score })
    // An observer's vote is on the record only: counted as a voter, its confidence became the decision's.
    if (!(member.weight > 0)) continue
    voters++
    onlyConfidence = opinion.confidence
    votingWeight += member.weight
    if (opinion.direction === "long") long += score
    else if (opinion.direction === "short") short += score
    else flat += score
  }

  let winner: Direction = "flat"
  let best = -1
  let tied = false
  for (const direction of DIRECTIONS) {
    const score = direction === "long" ? long : direction === "short" ? short : flat
    if (score > best + EPSILON) {
      best = score
      winner = direction
      tied = false
    } else if (Math.abs(score - best) <= EPSILON) {
      tied = true
    }
  }
  if (tied) winner = "flat"
  const winnerScore = winner === "long" ? long : winner === "short" ? short : flat
  // One voter (of weight > 0): its own confidence, exactly (weight × c ÷ weight can be off in the last bit).
  const confidence = voters === 1
    ? onlyConfidence
    : votingWeight > 0
    ? clamp01(winnerScore / votingWeight)
    : 0
  const participation = rosterWeight > 0 ? clamp01(votingWeight / rosterWeight) : 0
  const quorumMet = voters > 0 && participation + EPSILON >= config.quorum
  const action = !quorumMet || confidence + EPSILON < config.minDecisionConfidence ? "hold" : winner
  scratch.action = action
  scratch.winner = winner
  scratch.confidence = confidence
  scratch.participation = participation
  scratch.quorumMet = quorumMet
  scratch.totalScore = long + short + flat
  scratch.winnerScore = winnerScore
  return scratch
}

/** The decision's action alone, exactly as `aggregate` would decide it, without building the record. */
export const actionOf = (input: Round, config: ConsensusConfig): Action => tally(input, config, null, null).action

export const aggregate = (input: Round, config: ConsensusConfig): Decision => {
  const votes: Array<Vote> = []
  const abstentions: Array<Abstention> = []
  const t = tally(input, config, votes, abstentions)
  return {
    round: input.round,
    symbol: input.symbol,
    ts: input.ts,
    action: t.action,
    confidence: t.confidence,
    votes,
    abstentions,
    dissent: votes.filter((vote) => vote.direction !== t.winner).map((vote) => vote.agent),
    disagreement: t.totalScore > 0 ? clamp01((t.totalScore - t.winnerScore) / t.totalScore) : 0,
    participation: t.participation,
    quorumMet: t.quorumMet
  }
}

const clamp01 = (x: number): number => (x < 0 ? 0 : x > 1 ? 1 : x)

// --- adaptive weights ------------------------------------------------------------------------------

/** An analyst's realised accuracy: an exponential average of 0/1 scores, starting undecided at 0.5. */
export interface Accuracy {
  readonly score: number
  readonly scored: number
}

export const initialAccuracy: Accuracy = { score: 0.5, scored: 0 }

/**
 * Was an opinion right, `horizon` bars later? Long is right when the price rose by more than
 * `flatBand` (a return, e.g. 0.001), short when it fell by more, flat when it moved less — or,
 * `flatMeansNotLong` (a run that may not short), when it did not rise by more: there flat is also
 * what an analyst says of a fall (the short it may not give: agents/analysts/Model.ts), and is
 * right unless a long would have been. Scored as "moved less", a right call of a fall was wrong,
 * and an analyst that mostly says flat sank to the weight floor.
 */
export const isCorrect = (direction: Direction, realizedReturn: number, flatBand: number, flatMeansNotLong = false): boolean =>
  direction === "long"
    ? realizedReturn > flatBand
    : direction === "short"
    ? realizedReturn < -flatBand
    : flatMeansNotLong
    ? realizedReturn <= flatBand
    : Math.abs(realizedReturn) <= flatBand

export const updateAccuracy = (accuracy: Accuracy, correct: boolean, alpha: number): Accuracy => ({
  score: accuracy.score + alpha * ((correct ? 1 : 0) - accuracy.score),
  scored: accuracy.scored + 1
})

/** base × 2·accuracy, kept within [floor, ceiling] × base: an undecided analyst (0.5) keeps its weight. */
export const adaptiveWeight = (
  base: number,
  accuracy: Accuracy,
  config: ConsensusConfig["adaptiveWeights"]
): number => {
  if (!config.enabled) return base
  const factor = Math.min(config.ceiling, Math.max(config.floor, 2 * accuracy.score))
  return base * factor
}
