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
 * the most the cash pays for — on its order's grid (`wholeUnits`): whole units for a whole-unit
 * order, micro-units otherwise — and says so in its fill's `reduced`; one that cannot buy a unit is
 * not filled. No fill leaves cash below zero.
 *
 * The grid: a strategy that trades whole units orders whole numbers of them; a fractional one
 * (`SizingConfig.fractional`) orders micro-units, and an order of it that comes to a whole number
 * (a fixed quantity of 10, a target that lands on one) is on micro-units all the same — cut to
 * 9.5 units where the cash pays for 9.5, not to 9, and capped at 0.9 of a bar whose share is 0.9,
 * not left unfilled. The callers say so (`fractional`); without it the grid is told from the
 * quantity (a whole number is whole units), as runs recorded before it had it.
 *
 * Volume limit (`ExecutionConfig.maxVolumePercent`, off by default): an order fills at most that
 * percent of its fill bar's volume (`volumeCap`: rounded down onto the order's grid — whole units
 * for a whole-unit order, micro-units otherwise, as above; a bar that traded nothing fills nothing), and what
 * is left works on the symbol's next bars under the same limit (`fillPart`, one call per bar, with
 * the order's `Progress`). A remainder fills at a later bar's open, whatever the order's timing: a
 * `same_close` order takes its share of its own bar at the close, and the rest as the market
 * trades after it. Each part is a fill of its own: `<order id>:fill` for the first (the id an
 * unlimited order's one fill has), `<order id>:fill:<n>` for the n-th — derived, so a replay gives
 * the same ids and the ledger books each once. Slippage applies to each part at its own bar's
 * price; the commission minimum applies per order (`commissionOfPart`). The fills say how much of
 * their order is filled and left (`Fill.orderFilled`, `orderLeft`). Without a limit nothing here
 * changes: `fill` is the whole order, as before.
 */
import { Either } from "effect"
import type { Commission, ExecutionConfig } from "../../schemas/Execution.js"
import { describeValue, OrderNotFillable } from "../../schemas/Execution.js"
import type { FillId } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import type { Money } from "../../schemas/Money.js"
import type { Fill, Order, Side } from "../../schemas/Order.js"
import * as M from "./Money.js"

/**
 * The id of the `n`-th fill of `order` (1 by default): one market order, one fill, `<id>:fill` —
 * and with a volume limit, its later parts `<id>:fill:2`, `<id>:fill:3`…
 */
export const fillIdOf = (order: Pick<Order, "id">, n = 1): FillId => (n === 1 ? `${order.id}:fill` : `${order.id}:fill:${n}`) as FillId

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

/** The commission a part's quantity and notional rate, before any minimum (micros, rounded half to even once). */
const ratedCommission = (commission: Commission, quantity: number, notional: Money): number => {
  switch (commission._tag) {
    case "none":
      return 0
    case "per_share":
      return M.roundHalfEven(commission.perShare * quantity)
    case "percent":
      return M.roundHalfEven(notional * commission.rate)
  }
}

/**
 * What an order worked under a volume limit has filled so far: units, fills, and the commission —
 * as its parts rated it (`rated`, before the minimum) and as they paid it (`paid`, micros).
 */
export interface Progress {
  readonly filled: number
  readonly fills: number
  readonly rated: number
  readonly paid: number
}

/** An order not filled at all yet. */
export const notStarted: Progress = { filled: 0, fills: 0, rated: 0, paid: 0 }

/**
 * The commission of the next part of an order (`quantity` units, `notional` micros) that has
 * `progress`: the minimum is the order's, not each part's — the parts together pay
 * `max(minimum, Σ rated parts)`, so the first part pays at least the minimum and a later one only
 * what takes the total past it. For the first part it is `commissionOf`, exactly.
 */
export const commissionOfPart = (commission: Commission, progress: Progress, quantity: number, notional: Money): number => {
  const rated = progress.rated + ratedCommission(commission, quantity, notional)
  const minimum = commission._tag === "none" ? 0 : commission.minimum
  return Math.max(minimum, rated) - progress.paid
}

/** What `progress` is once `part` (a fill of its order) is booked. */
export const advance = (progress: Progress, part: Fill, commission: Commission): Progress => ({
  filled: onMicroGrid(progress.filled + part.quantity),
  fills: progress.fills + 1,
  rated: progress.rated + ratedCommission(commission, part.quantity, part.notional),
  paid: progress.paid + part.commission
})

/** A sum of quantities without float noise: on the micro grid (quantities have at most 6 decimals). */
const onMicroGrid = (units: number): number => Math.round(units * M.MICROS_PER_UNIT) / M.MICROS_PER_UNIT

/**
 * `units` rounded down onto whole units (`whole`) or micro-units; a value within float noise of a
 * grid point is that point (10 % of 30 is 3, not the 2 that floor(2.9999999999999996) gives).
 */
const floorOnGrid = (units: number, whole: boolean): number => {
  const steps = whole ? units : units * M.MICROS_PER_UNIT
  const nearest = Math.round(steps)
  const onPoint = Math.abs(steps - nearest) <= Math.max(1e-9, 1e-14 * Math.abs(steps))
  const floored = onPoint ? nearest : Math.floor(steps)
  return whole ? floored : floored / M.MICROS_PER_UNIT
}

/**
 * The most an order may fill on `bar` under a limit of `percent` of its volume: `percent` % of the
 * bar's volume rounded down to whole units (`whole`) or micro-units. 0 for a bar that traded
 * nothing, or too little for one unit of the grid.
 */
export const volumeCap = (bar: Pick<Bar, "volume">, percent: number, whole: boolean): number => {
  const volume = bar.volume
  if (!(volume > 0) || !(percent > 0)) return 0
  const units = (volume * percent) / 100
  return Number.isFinite(units) ? floorOnGrid(units, whole) : 0
}

/**
 * Whether an order of `quantity` trades whole units (the grid its parts are cut on, and `withinCash`
 * cuts a buy on): never a fractional strategy's (`fractional`: see the module comment); else when
 * it is a whole number of them.
 */
export const wholeUnits = (quantity: number, fractional = false): boolean => !fractional && Number.isInteger(quantity)

/** What is left of `order` once `progress` has filled (exact on the micro grid). */
export const leftOf = (order: Pick<Order, "quantity">, progress: Progress): number =>
  (Math.round(order.quantity * M.MICROS_PER_UNIT) - Math.round(progress.filled * M.MICROS_PER_UNIT)) / M.MICROS_PER_UNIT

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
export const fill = (order: Order, bar: Bar, config: ExecutionConfig): Either.Either<Fill, OrderNotFillable> =>
  build(order, bar, config, undefined)

/**
 * The part of `order` that fills on `bar` under the volume limit of `config` (`maxVolumePercent`,
 * which must be set), the order having filled `progress` before: what is left of it, at most
 * `volumeCap` of the bar. `undefined` when the bar fills none of it (it traded too little: the
 * order goes on working); refused as `fill` refuses. The first part (`progress` not started) is
 * priced by the order's timing; a later one at its bar's open (see the module comment). The cap
 * is on micro-units for a fractional strategy's order (`fractional`), whatever its quantity.
 */
export const fillPart = (
  order: Order,
  bar: Bar,
  config: ExecutionConfig,
  progress: Progress,
  fractional = false
): Either.Either<Fill | undefined, OrderNotFillable> => build(order, bar, config, progress, fractional)

function build(order: Order, bar: Bar, config: ExecutionConfig, progress: undefined): Either.Either<Fill, OrderNotFillable>
function build(order: Order, bar: Bar, config: ExecutionConfig, progress: Progress, fractional: boolean): Either.Either<Fill | undefined, OrderNotFillable>
function build(order: Order, bar: Bar, config: ExecutionConfig, progress: Progress | undefined, fractional = false): Either.Either<Fill | undefined, OrderNotFillable> {
  if (order.symbol !== bar.symbol) {
    return refuse(order, "symbol", bar.symbol, `the bar is for ${describeValue(bar.symbol)}, the order for ${describeValue(order.symbol)}`)
  }
  let marketPrice: number
  const remainder = progress !== undefined && progress.fills > 0
  if (order.fillTiming === "same_close" && !remainder) {
    if (bar.ts !== order.decidedAt) {
      return refuse(order, "ts", bar.ts, `a same_close order fills on the bar it was decided on (${order.decidedAt})`)
    }
    marketPrice = bar.close
  } else if (order.fillTiming === "next_open" || (order.fillTiming === "same_close" && remainder)) {
    if (!(bar.ts > order.decidedAt)) {
      return refuse(order, "ts", bar.ts, `a next_open order decided at ${order.decidedAt} fills on a later bar, not at or before it (no look-ahead)`)
    }
    marketPrice = bar.open
  } else {
    return refuse(order, "fillTiming", order.fillTiming, "the fill timing is \"next_open\" or \"same_close\"")
  }
  const side = order.side
  if (side !== "buy" && side !== "sell") return refuse(order, "side", side, "the side is \"buy\" or \"sell\"")
  const ordered = order.quantity
  if (typeof ordered !== "number" || !(ordered > 0) || !(ordered <= MAX_QUANTITY)) {
    return refuse(order, "quantity", ordered, `a quantity is a number greater than 0 and at most ${MAX_QUANTITY}`)
  }
  let quantity = ordered
  if (progress !== undefined) {
    const percent = config.maxVolumePercent
    if (typeof percent !== "number" || !(percent > 0 && percent <= 100)) {
      return refuse(order, "maxVolumePercent", percent, "a volume limit is a percent of the bar's volume, greater than 0 and at most 100")
    }
    const left = leftOf(order, progress)
    if (!(left > 0)) return refuse(order, "quantity", left, "nothing is left of the order to fill")
    quantity = Math.min(left, volumeCap(bar, percent, wholeUnits(ordered, fractional)))
    if (!(quantity > 0)) return Either.right(undefined)
  }
  if (typeof marketPrice !== "number" || !(marketPrice > 0) || marketPrice === Infinity) {
    return refuse(order, order.fillTiming === "same_close" && !remainder ? "close" : "open", marketPrice, "a bar's price is a finite number greater than 0")
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
  const commission = progress === undefined
    ? rawCommission(config.commission, quantity, notional)
    : commissionOfPart(config.commission, progress, quantity, notional)
  if (!Number.isSafeInteger(commission) || commission < 0) {
    return refuse(order, "commission", commission, "the commission must be a non-negative number of micros within the exact range")
  }
  const fill: Fill = {
    id: fillIdOf(order, progress === undefined ? 1 : progress.fills + 1),
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
  }
  if (progress === undefined) return Either.right(fill)
  const orderFilled = onMicroGrid(progress.filled + quantity)
  return Either.right({ ...fill, orderFilled, orderLeft: leftOf(order, { ...progress, filled: orderFilled }) })
}

/**
 * `filled` (a buy) as the cash at hand pays for it: as it is when its cost (notional and
 * commission — a part's, with `progress`, as `commissionOfPart` has it) is at most `cash` (micros), else cut to the largest quantity on the order's grid
 * that is, with `reduced` saying why; a reason when not even one unit of the grid is. The grid is
 * micro-units for a fractional strategy's fill (`fractional`), else told from the fill's quantity.
 */
export const withinCash = (
  filled: Fill,
  cash: number,
  config: ExecutionConfig,
  progress?: Progress,
  fractional = false
): Either.Either<Fill, string> => {
  const commission = (quantity: number, notional: number) =>
    progress === undefined
      ? rawCommission(config.commission, quantity, notional as Money)
      : commissionOfPart(config.commission, progress, quantity, notional as Money)
  const cost = (quantity: number, notional: number) => notional + commission(quantity, notional)
  if (filled.side !== "buy" || cost(filled.quantity, filled.notional) <= cash) return Either.right(filled)
  const step = wholeUnits(filled.quantity, fractional) ? 1 : 1 / M.MICROS_PER_UNIT
  const onGrid = (q: number) => (step === 1 ? Math.floor(q) : Math.floor(q * M.MICROS_PER_UNIT) / M.MICROS_PER_UNIT)
  let quantity = onGrid(Math.min(filled.quantity, Math.max(0, cash) / M.MICROS_PER_UNIT / filled.price))
  // The commission (a minimum, a per-share part) can take what the notional left: step down until it fits.
  while (quantity > 0 && cost(quantity, M.notional(quantity, filled.price)) > cash) quantity = onGrid(quantity - step)
  const has = M.format(Math.max(0, cash) as Money)
  const needs = M.format(cost(filled.quantity, filled.notional) as Money)
  if (!(quantity > 0)) return Either.left(`not enough cash at the fill: ${needs} needed at ${filled.price}, ${has} at hand (no fill leaves cash below zero)`)
  const notional = M.notional(quantity, filled.price)
  const cut = filled.orderFilled === undefined || filled.orderLeft === undefined
    ? {}
    : {
      orderFilled: onMicroGrid(filled.orderFilled - filled.quantity + quantity),
      orderLeft: onMicroGrid(filled.orderLeft + filled.quantity - quantity)
    }
  // Fields in the schema's order (the run log's serialiser writes them so): `reduced` before the order's counts.
  const { orderFilled: _filled, orderLeft: _left, ...plain } = filled
  return Either.right({
    ...plain,
    quantity,
    notional,
    commission: commission(quantity, notional) as Money,
    reduced: `cut from ${filled.quantity} to ${quantity}: ${needs} needed at ${filled.price}, ${has} at hand (no fill leaves cash below zero)`,
    ...cut
  })
}
