/**
 * How the coordinator asks analysts for opinions: one request per timestamp carrying every
 * symbol's round (batching is what lets a backtest keep up; see docs/backtest-engine.md), answered
 * with the opinions the analyst has (none for a symbol it is still warming up on).
 */
import { Schema } from "effect"
import { Action } from "./Decision.js"
import { ExternalSignal } from "./ExternalSignal.js"
import { RoundId, Timestamp } from "./Ids.js"
import { Bar } from "./Market.js"
import { Direction, Opinion } from "./Opinion.js"
import { unchecked } from "./Unchecked.js"

/**
 * What the swarm has done about the symbol so far, for analysts that reason over it (the LLM ones):
 * the target its last judged decision set, and its latest decisions that changed a target, oldest
 * first. Sent only when the roster has such an analyst.
 */
export const RoundContext = Schema.Struct({
  target: Direction,
  decisions: Schema.Array(Schema.Struct({ ts: Timestamp, action: Action, confidence: Schema.Number }))
})
export type RoundContext = typeof RoundContext.Type

/** `signals`: outside signals about the bar's symbol delivered with it, oldest first (absent: none). */
export const RoundRequest = Schema.Struct({
  round: RoundId,
  bar: Bar,
  signals: Schema.optional(Schema.Array(ExternalSignal)),
  context: Schema.optional(RoundContext)
})
export type RoundRequest = typeof RoundRequest.Type

export class RequestOpinions extends Schema.TaggedRequest<RequestOpinions>()("RequestOpinions", {
  failure: Schema.Never,
  success: Schema.Array(Opinion),
  payload: { ts: Timestamp, rounds: Schema.Array(RoundRequest) }
}) {}

/** A `RequestOpinions` built unchecked (Unchecked.ts): the coordinator makes one per timestamp. */
export const requestOpinions = unchecked(RequestOpinions)

/** A strategy's agent entry that names no registered type, or whose params its type refuses. */
export class InvalidAgent extends Schema.TaggedError<InvalidAgent>()("InvalidAgent", {
  agent: Schema.String,
  /** A path into the strategy (`agents[2].params.fast`). */
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.field}: ${this.reason}`
  }
}
