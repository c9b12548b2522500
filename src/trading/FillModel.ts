/**
 * The paper broker's fill model: a market order and the bar it fills on give one `Fill`.
 *
 * Timing (the order's `fillTiming`, stamped from `ExecutionConfig.fillTiming`):
 * - `next_open` (default): an order decided on bar t fills at the open of a later bar of the same
 *   symbol — the next one the feed delivers. The decision saw t's close; the first price it can
 *   trade at is t+1's open. Filling on bar t itself is refused (`field: "ts"`).
 * - `same_close`: the order fills at the close of the bar it was decided on. This assumes the
 *   decision was made and the order reached the market before the close printed — an optimistic
 *   model, for comparison with engines that do it (backtrader's `cheat_on_close`); only that bar is
 *   accepted.
 *
 * A fill's `ts` is the `ts` of the bar it filled on (bars carry their open time, not their close
 * time), for both timings.
 *
 * Price: the market price moved against the trader by `slippageBps` (a buy pays more, a sell
 * receives less). Notional: quantity × price rounded once to the micro (Money.notional). Commission
 * from `ExecutionConfig.commission`, rounded half to even once, never below its minimum.
 *
 * Fill ids are `<order id>:fill` — derived, not drawn: replaying the same orders gives the same ids,
 * and the ledger's exactly-once booking recognises a fill delivered twice.
 *
 * Cash at the fill (`withinCash`): the gates judged a buy at its reference price (the deciding
 * bar's close), but a next-open buy pays the next open, which may gap up past the 10 % reserve the
 * gates kept. A buy whose cost (notional and commission) is more than the cash at hand is cut to
 * the most the cash pays for — whole units for a whole-unit order, micro-units otherwise — and
 * says so in its fill's `reduced`; one that cannot buy a unit is not filled. No fill leaves cash
 * below zero.
 */
import { Either } from "effect"
import type { Commission, ExecutionConfig } from "../../schemas/Execution.js"
import { describeValue, OrderNotFillable } from "../../schemas/Execution.js"
import type { FillId } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import type { Money } from "../../schemas/Money.js"
import type { Fill, Order, Side } from "../../schemas/Order.js"
import * as M from "./Money.js"

/** The id of the fill of `order`: one market order, one fill. */
export const fillIdOf = (order: Pick<Order, "id">): FillId => `${order.id}:fill` as FillId

/** The price paid (buy) or received (sell) for `marketPrice` with `slippageBps` against the trader. */
export const fillPrice = (side: Side, marketPrice: number, slippageBps: number): number =>
  slippageBps === 0
    ? marketPrice
    : side === "buy"
    ? marketPrice * (1 + slippageBps / 10_000)
    : marketPrice * (1 - slippageBps / 10_000)

/** The commission of a fill of `quantity` units and `notional` micros; never below the minimum. */
export const commissionOf = (commission: Commission, quantity: number, notional: Money): Money =>
  M.micros(rawCommission(commission, quantity, notional))

/** The same, unchecked: NaN or beyond the safe range when the inputs are hostile, for `fill` to refuse. */
const rawCommission = (commission: Commission, quantity: number, notional: Money): number => {
  switch (commission._tag) {
    case "none":
      return 0
    case "per_share":
      // perShare is micros per unit: micros × units is micros, one rounding
      return Math.max(commission.minimum, M.roundHalfEven(commission.perShare * quantity))
    case "percent":
      return Math.max(commission.minimum, M.roundHalfEven(notional * commission.rate))
  }
}

/** Whether `bar` is the bar `order` fills on (symbol and timing), without building the fill. */
export const isDue = (order: Order, bar: Bar): boolean =>
  order.symbol === bar.symbol &&
  (order.fillTiming === "same_close" ? bar.ts === order.decidedAt : bar.ts > order.decidedAt)

const refuse = (order: Order, field: string, value: unknown, reason: string) =>
  Either.left(
    new OrderNotFillable({
      orderId: typeof order?.id === "string" ? order.id : describeValue(order?.id),
      field,
      value: describeValue(value),
      reason
    })
  )

/** The largest quantity whose micro-units stay a safe integer. */
const MAX_QUANTITY = Number.MAX_SAFE_INTEGER / M.MICROS_PER_UNIT

/**
 * Fill `order` on `bar`, or say why not: a bar of another symbol, a bar the timing does not allow
 * (look-ahead or a stale price), a quantity or price that is not a finite positive number, a
 * notional beyond the exact money range. Orders and bars are decoded at the edge; these checks are
 * comparisons, cheap enough for the per-bar path.
 */
export const fill = (order: Order, bar: Bar, config: ExecutionConfig): Either.Either<Fill, OrderNotFillable> => {
  if (order.symbol !== bar.symbol) {
    return refuse(order, "symbol", bar.symbol, `the bar is for ${describeValue(bar.symbol)}, the order for ${describeValue(order.symbol)}`)
  }
  let marketPrice: number
  if (order.fillTiming === "same_close") {
    if (bar.ts !== order.decidedAt) {
      return refuse(order, "ts", bar.ts, `a same_close order fills on the bar it was decided on (${order.decidedAt})`)
    }
    marketPrice = bar.close
  } else if (order.fillTiming === "next_open") {
    if (!(bar.ts > order.decidedAt)) {
      return refuse(order, "ts", bar.ts, `a next_open order decided at ${order.decidedAt} fills on a later bar, not at or before it (no look-ahead)`)
    }
    marketPrice = bar.open
  } else {
    return refuse(order, "fillTiming", order.fillTiming, "the fill timing is \"next_open\" or \"same_close\"")
  }
  const side = order.side
  if (side !== "buy" && side !== "sell") return refuse(order, "side", side, "the side is \"buy\" or \"sell\"")
  const quantity = order.quantity
  if (typeof quantity !== "number" || !(quantity > 0) || !(quantity <= MAX_QUANTITY)) {
    return refuse(order, "quantity", quantity, `a quantity is a number greater than 0 and at most ${MAX_QUANTITY}`)
  }
  if (typeof marketPrice !== "number" || !(marketPrice > 0) || marketPrice === Infinity) {
    return refuse(order, order.fillTiming === "same_close" ? "close" : "open", marketPrice, "a bar's price is a finite number greater than 0")
  }
  const slippageBps = config.slippageBps
  const price = fillPrice(side, marketPrice, slippageBps)
  if (!(slippageBps >= 0) || !(price > 0) || price === Infinity) {
    return refuse(order, "slippageBps", slippageBps, "slippage is a finite number of basis points from 0 to 1000")
  }
  if (!(quantity * M.MICROS_PER_UNIT * price <= Number.MAX_SAFE_INTEGER)) {
    return refuse(order, "quantity", quantity, "quantity × price exceeds the exact money range (±2^53−1 micros)")
  }
  const notional = M.notional(quantity, price)
  const commission = rawCommission(config.commission, quantity, notional)
  if (!Number.isSafeInteger(commission) || commission < 0) {
    return refuse(order, "commission", commission, "the commission must be a non-negative number of micros within the exact range")
  }
  return Either.right({
    id: fillIdOf(order),
    orderId: order.id,
    symbol: order.symbol,
    side,
    quantity,
    price,
    marketPrice,
    slippageBps,
    notional,
    commission: commission as Money,
    ts: bar.ts
  })
}

/**
 * `filled` (a buy) as the cash at hand pays for it: as it is when its cost (notional and
 * commission) is at most `cash` (micros), else cut to the largest quantity on the order's grid
 * that is, with `reduced` saying why; a reason when not even one unit of the grid is.
 */
export const withinCash = (filled: Fill, cash: number, config: ExecutionConfig): Either.Either<Fill, string> => {
  const cost = (quantity: number, notional: number) => notional + rawCommission(config.commission, quantity, notional as Money)
  if (filled.side !== "buy" || cost(filled.quantity, filled.notional) <= cash) return Either.right(filled)
  const step = Number.isInteger(filled.quantity) ? 1 : 1 / M.MICROS_PER_UNIT
  const onGrid = (q: number) => (step === 1 ? Math.floor(q) : Math.floor(q * M.MICROS_PER_UNIT) / M.MICROS_PER_UNIT)
  let quantity = onGrid(Math.min(filled.quantity, Math.max(0, cash) / M.MICROS_PER_UNIT / filled.price))
  // The commission (a minimum, a per-share part) can take what the notional left: step down until it fits.
  while (quantity > 0 && cost(quantity, M.notional(quantity, filled.price)) > cash) quantity = onGrid(quantity - step)
  const has = M.format(Math.max(0, cash) as Money)
  const needs = M.format(cost(filled.quantity, filled.notional) as Money)
  if (!(quantity > 0)) return Either.left(`not enough cash at the fill: ${needs} needed at ${filled.price}, ${has} at hand (no fill leaves cash below zero)`)
  const notional = M.notional(quantity, filled.price)
  return Either.right({
    ...filled,
    quantity,
    notional,
    commission: rawCommission(config.commission, quantity, notional) as Money,
    reduced: `cut from ${filled.quantity} to ${quantity}: ${needs} needed at ${filled.price}, ${has} at hand (no fill leaves cash below zero)`
  })
}
