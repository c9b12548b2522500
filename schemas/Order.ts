/**
 * From a decision to a fill: the order intent the risk officer judges, the order the execution desk
 * places, and the fill the ledger applies exactly once.
 */
import { Schema } from "effect"
import { FillId, OrderId, RoundId, Symbol, Timestamp } from "./Ids.js"
import { Price } from "./Market.js"
import { Money } from "./Money.js"
import { oneOf } from "./OneOf.js"

export const Side = Schema.Literal("buy", "sell")
export type Side = typeof Side.Type

/** An order's size: positive; whole shares unless the strategy enables fractional ones. */
export const Quantity = Schema.Number.pipe(
  Schema.finite({ message: () => "a quantity must be a finite number" }),
  Schema.positive({ message: () => "a quantity must be greater than 0" })
)

/** A position's size: signed, negative when short, 0 when flat. */
export const SignedQuantity = Schema.Number.pipe(Schema.finite({ message: () => "a quantity must be a finite number" }))

/** What the order does to the position, for rules that treat risk-reducing orders differently. */
export const IntentReason = Schema.Literal("open", "increase", "reduce", "close", "reverse")
export type IntentReason = typeof IntentReason.Type

/** What sizing asks for to move from the current position to the decision's target. */
export const OrderIntent = Schema.Struct({
  round: RoundId,
  symbol: Symbol,
  /** The bar the decision was made on. */
  ts: Timestamp,
  side: Side,
  quantity: Quantity,
  /** The position sizing saw; the risk officer judges against the ledger's, which wins if they differ. */
  currentQuantity: SignedQuantity,
  targetQuantity: SignedQuantity,
  /** The last price known when deciding (bar t's close), for notional checks. */
  referencePrice: Price,
  reason: IntentReason,
  /**
   * The remainder of an intent a rule or gate reduced, worked on a later bar of its symbol: the
   * round whose decision set the target (`targetQuantity`) it works toward. Absent for a decision's
   * own intent.
   */
  remainderOf: Schema.optional(RoundId)
})
export type OrderIntent = typeof OrderIntent.Type

/** When a market order fills: bar t+1's open (default, no look-ahead) or bar t's close (explicit option). */
export const FillTiming = oneOf("next_open", "same_close")
export type FillTiming = typeof FillTiming.Type

export const Order = Schema.Struct({
  id: OrderId,
  /** Unique per run and round: placing the same order twice is recognised and ignored. */
  idempotencyKey: Schema.String.pipe(Schema.minLength(1)),
  round: RoundId,
  symbol: Symbol,
  side: Side,
  quantity: Quantity,
  type: Schema.Literal("market"),
  decidedAt: Timestamp,
  fillTiming: FillTiming
})
export type Order = typeof Order.Type

export const Fill = Schema.Struct({
  id: FillId,
  orderId: OrderId,
  symbol: Symbol,
  side: Side,
  quantity: Quantity,
  /** The price paid or received per unit, slippage included. */
  price: Price,
  /** The market price before slippage (the open or close it filled at). */
  marketPrice: Price,
  slippageBps: Schema.Number.pipe(Schema.nonNegative(), Schema.finite()),
  /** quantity × price, rounded to the micro once. */
  notional: Money,
  commission: Money,
  ts: Timestamp,
  /**
   * Set when the fill is for less than its order: why (a buy whose price gapped past the cash at
   * hand is cut to what the cash pays for, src/trading/FillModel.ts `withinCash`).
   */
  reduced: Schema.optional(Schema.String),
  /**
   * With a volume limit (`ExecutionConfig.maxVolumePercent`; absent without one): how much of its
   * order is filled once this fill is booked, this fill included, and how much is left — still
   * working on the symbol's next bars while `orderLeft` is above 0 (the order is partially
   * filled), the order filled when it is 0. A remainder that never fills is cancelled, saying so
   * (`OrderCancelled.unfilled`).
   */
  orderFilled: Schema.optional(Quantity),
  orderLeft: Schema.optional(Schema.Number.pipe(Schema.nonNegative(), Schema.finite()))
})
export type Fill = typeof Fill.Type
