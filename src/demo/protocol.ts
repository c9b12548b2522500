/**
 * The demo desk's messages. They live here rather than in `schemas/` because they are a stand-in:
 * the trading swarm's real protocol (MarketUpdate, RequestOpinion, Opinion, Decision, ...) will be
 * defined there, with branded ids and the fields DESIGN.md lists.
 */
import { Schema } from "effect"

export const Direction = Schema.Literal("long", "short", "flat")
export type Direction = typeof Direction.Type

/** The feed's timer message to itself. */
export class Tick extends Schema.TaggedClass<Tick>()("Tick", {}) {}

/** A new price from the feed to the coordinator: fire-and-forget (`tell`). */
export class MarketUpdate extends Schema.TaggedClass<MarketUpdate>()("MarketUpdate", {
  seq: Schema.Int,
  price: Schema.Number
}) {}

/** An analyst's answer in a round. */
export const Opinion = Schema.Struct({
  direction: Direction,
  confidence: Schema.Number.pipe(Schema.between(0, 1))
})
export type Opinion = typeof Opinion.Type

/** The coordinator asks every analyst for its opinion on a round's price (`ask`, typed reply). */
export class RequestOpinion extends Schema.TaggedRequest<RequestOpinion>()("RequestOpinion", {
  failure: Schema.Never,
  success: Opinion,
  payload: { round: Schema.Int, price: Schema.Number }
}) {}

export const DeskSummary = Schema.Struct({
  rounds: Schema.Int,
  asked: Schema.Int,
  answered: Schema.Int,
  decisions: Schema.Struct({ long: Schema.Int, short: Schema.Int, flat: Schema.Int })
})
export type DeskSummary = typeof DeskSummary.Type

/** What the coordinator has seen so far. */
export class GetSummary extends Schema.TaggedRequest<GetSummary>()("GetSummary", {
  failure: Schema.Never,
  success: DeskSummary,
  payload: {}
}) {}

export const CoordinatorProtocol = Schema.Union(MarketUpdate, GetSummary)
export type CoordinatorMessage = typeof CoordinatorProtocol.Type
