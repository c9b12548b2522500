/** An analyst's typed answer in a round. */
import { Schema } from "effect"
import { AgentId, RoundId, Symbol, Timestamp } from "./Ids.js"

export const Direction = Schema.Literal("long", "short", "flat")
export type Direction = typeof Direction.Type

export const Confidence = Schema.Number.pipe(
  Schema.between(0, 1, { message: () => "a confidence is a number from 0 to 1" })
)

export const Opinion = Schema.Struct({
  round: RoundId,
  agent: AgentId,
  symbol: Symbol,
  /** The bar the opinion is about (nothing after it may have been read). */
  ts: Timestamp,
  direction: Direction,
  confidence: Confidence,
  /** How many bars ahead the opinion is meant for; adaptive weights score it after that many bars. */
  horizon: Schema.Int.pipe(Schema.positive()),
  rationale: Schema.String,
  /** The inputs the analyst looked at (indicator values), for the reasoning log and replay. */
  features: Schema.Record({ key: Schema.String, value: Schema.Number })
})
export type Opinion = typeof Opinion.Type
