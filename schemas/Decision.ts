/** The coordinator's consensus result of a round, with the votes it was made from. */
import { Schema } from "effect"
import { AgentId, RoundId, Symbol, Timestamp } from "./Ids.js"
import { Confidence, Direction } from "./Opinion.js"

export const Vote = Schema.Struct({
  agent: AgentId,
  direction: Direction,
  confidence: Confidence,
  /** The analyst's weight in this round (adaptive weights change it between rounds). */
  weight: Schema.Number.pipe(Schema.nonNegative()),
  /** weight × confidence: what the vote adds to its direction's score. */
  score: Schema.Number.pipe(Schema.nonNegative())
})
export type Vote = typeof Vote.Type

/** Why an analyst's answer did not count. */
export const Abstention = Schema.Struct({
  agent: AgentId,
  reason: Schema.Literal("no_answer", "below_min_confidence", "failed")
})
export type Abstention = typeof Abstention.Type

/**
 * `long` / `short` / `flat` are targets; `hold` keeps the current position — the outcome when the
 * quorum of weight was not reached or the aggregated confidence is below the decision minimum.
 */
export const Action = Schema.Literal("long", "short", "flat", "hold")
export type Action = typeof Action.Type

export const ConsensusConfig = Schema.Struct({
  /** An opinion below this confidence is an abstention, not a vote. */
  minConfidence: Schema.optionalWith(Confidence, { default: () => 0, exact: true }),
  /**
   * Share of the roster's total weight that must vote for a decision (else `hold`). Only weight
   * votes: with `0`, one vote of positive weight is enough, and observers (weight 0) alone are none.
   */
  quorum: Schema.optionalWith(Confidence, { default: () => 0.5, exact: true }),
  /** A decision whose aggregated confidence is below this is a `hold`. */
  minDecisionConfidence: Schema.optionalWith(Confidence, { default: () => 0, exact: true }),
  /**
   * How long a round waits for answers (virtual time in backtests), at most an hour: a timer past
   * 2^31 ms never fires, so a deadline of 1e300 waited for a silent analyst for ever.
   */
  deadlineMillis: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.positive(),
      Schema.finite(),
      Schema.lessThanOrEqualTo(3_600_000, { message: () => "a round waits at most an hour (3600000 ms) for its analysts" })
    ),
    { default: () => 1_000, exact: true }
  ),
  adaptiveWeights: Schema.optionalWith(
    Schema.Struct({
      enabled: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true }),
      /** Weight of the latest scored opinion in the accuracy's exponential average. */
      alpha: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.1, exact: true }),
      /** The weight multiplier stays within [floor, ceiling]; floor ≤ ceiling (`adaptiveWeightsProblem`). */
      floor: Schema.optionalWith(Schema.Number.pipe(Schema.nonNegative()), { default: () => 0.25, exact: true }),
      ceiling: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 2, exact: true })
    }),
    { default: () => ({ enabled: false, alpha: 0.1, floor: 0.25, ceiling: 2 }), exact: true }
  )
})
export type ConsensusConfig = typeof ConsensusConfig.Type

/**
 * Why adaptive-weight settings are refused, as the field under `consensus.adaptiveWeights`, or
 * undefined. A floor above the ceiling clamped every analyst's factor to the ceiling, whatever its
 * accuracy — adaptive weights on in name only. Not a filter of the schema: a strategy stored with
 * it still decodes; a strategy given now is refused.
 */
export const adaptiveWeightsProblem = (
  settings: ConsensusConfig["adaptiveWeights"]
): { readonly field: string; readonly reason: string } | undefined =>
  settings.floor > settings.ceiling
    ? { field: "floor", reason: `the floor ${settings.floor} is above the ceiling ${settings.ceiling}: the weight multiplier stays within [floor, ceiling]` }
    : undefined

export const Decision = Schema.Struct({
  round: RoundId,
  symbol: Symbol,
  ts: Timestamp,
  action: Action,
  /** winner's score ÷ voting weight: with one analyst, that analyst's confidence. */
  confidence: Confidence,
  votes: Schema.Array(Vote),
  abstentions: Schema.Array(Abstention),
  /**
   * The voters whose direction differs from the winning one (the action, unless it is `hold`: then
   * the direction that scored highest). Observers (weight 0) are voters too and are listed; their
   * dissent adds nothing to `disagreement`.
   */
  dissent: Schema.Array(AgentId),
  /** Dissenting score ÷ total score, 0 when unanimous. */
  disagreement: Confidence,
  /** Voting weight ÷ roster weight. */
  participation: Confidence,
  quorumMet: Schema.Boolean
})
export type Decision = typeof Decision.Type
