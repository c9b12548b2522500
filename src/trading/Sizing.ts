/**
 * Sizing: a decision's direction for a symbol becomes a target position, and the target an
 * `OrderIntent` for the difference from the current position — or none when there is no difference.
 *
 * - `percent_of_equity`: |target| = value % × scale × equity ÷ reference price (bar t's close, the
 *   last price known when deciding). Equity at or below zero sizes every target to flat.
 * - `fixed_quantity`: |target| = value × scale units.
 * - Rounded toward zero to whole units, or to 10⁻⁶ units with `fractional`. A short target is flat
 *   unless `allowShort`; a flat direction is a target of 0.
 * - The difference is computed in integer micro-units, so "no difference" is exact. The reason says
 *   what the order does: `open` (from flat), `close` (to flat), `reverse` (through zero),
 *   `increase` or `reduce` (same side, larger or smaller).
 *
 * Pure and cheap for the per-bar path: no schema decoding (the config is decoded at the edge), a
 * few comparisons to refuse hostile numbers with a `SizingRejected` naming the field.
 */
import { Either, Option } from "effect"
import type { SizingConfig } from "../../schemas/Execution.js"
import { describeValue, SizingRejected } from "../../schemas/Execution.js"
import type { RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { Money } from "../../schemas/Money.js"
import type { IntentReason, OrderIntent } from "../../schemas/Order.js"
import { MICROS_PER_UNIT } from "./Money.js"

/** What the decision asks for; the same literals as an opinion's direction. */
export type TargetDirection = "long" | "short" | "flat"

export interface SizingInput {
  readonly round: RoundId
  readonly symbol: Symbol
  /** The bar the decision was made on. */
  readonly ts: Timestamp
  readonly direction: TargetDirection
  /** Fraction of the configured size, 0..1 (default 1): for decisions that scale by conviction. */
  readonly scale?: number
  /** The current signed position in units (the ledger's `quantityOf`). */
  readonly currentQuantity: number
  readonly equity: Money
  /** Bar t's close. */
  readonly referencePrice: number
}

const refuse = (input: SizingInput, field: string, value: unknown, reason: string) =>
  Either.left(
    new SizingRejected({
      symbol: typeof input.symbol === "string" ? input.symbol : describeValue(input.symbol),
      field,
      value: describeValue(value),
      reason
    })
  )

const MAX_MICRO_QUANTITY = Number.MAX_SAFE_INTEGER

/**
 * `x` micro-units rounded toward zero onto a grid of `step` micro-units (1 for fractional, 10⁶ for
 * whole units). A value within float noise of a grid point is that point: 0.29 ÷ 0.01 must size 29
 * units, not the 28.999999999999996 the division gives. Noise is a few ulps of the value (about
 * 10⁻¹⁵ of it): the tolerance is 10⁻¹⁴ of it, at least 10⁻⁹ of a step — never a share of a step
 * that grows with the quantity (10⁻⁹ of 2.7 × 10⁹ micro-units was half a step: rounding to nearest).
 */
const toGrid = (x: number, step: number): number => {
  const steps = x / step
  const nearest = Math.round(steps)
  const onPoint = Math.abs(steps - nearest) <= Math.max(1e-9, 1e-14 * Math.abs(steps))
  return (onPoint ? nearest : Math.floor(steps)) * step
}

/** The target position in micro-units (signed), or a refusal. */
export const targetMicroQuantity = (input: SizingInput, config: SizingConfig): Either.Either<number, SizingRejected> => {
  const scale = input.scale ?? 1
  if (typeof scale !== "number" || !(scale >= 0 && scale <= 1)) return refuse(input, "scale", scale, "a scale is a number from 0 to 1")
  const direction = input.direction
  if (direction !== "long" && direction !== "short" && direction !== "flat") {
    return refuse(input, "direction", direction, "a direction is \"long\", \"short\" or \"flat\"")
  }
  if (direction === "flat" || (direction === "short" && !config.allowShort)) return Either.right(0)
  let size: number
  if (config.mode === "percent_of_equity") {
    const equity = input.equity
    if (!Number.isSafeInteger(equity)) return refuse(input, "equity", equity, "equity is an integer number of micros")
    // micros × % ÷ 100 ÷ price is micro-units of quantity
    size = equity <= 0 ? 0 : (equity * config.value * scale) / 100 / input.referencePrice
  } else {
    size = config.value * scale * MICROS_PER_UNIT
  }
  const magnitude = toGrid(size, config.fractional ? 1 : MICROS_PER_UNIT)
  if (!(magnitude <= MAX_MICRO_QUANTITY)) {
    return refuse(input, "quantity", size / MICROS_PER_UNIT, "the target quantity exceeds the exact range (9,007,199,254 units)")
  }
  return Either.right(direction === "short" && magnitude !== 0 ? -magnitude : magnitude)
}

const reasonFor = (current: number, target: number): IntentReason => {
  if (current === 0) return "open"
  if (target === 0) return "close"
  if ((current > 0) !== (target > 0)) return "reverse"
  return Math.abs(target) > Math.abs(current) ? "increase" : "reduce"
}

/**
 * The intent that moves the position from `currentQuantity` to the target, `None` when they are
 * equal. Refused: a reference price that is not a finite number above 0, a non-finite current
 * quantity, non-integer equity, a scale outside 0..1, an unknown direction, a target too large.
 */
export const intentFor = (
  input: SizingInput,
  config: SizingConfig
): Either.Either<Option.Option<OrderIntent>, SizingRejected> => {
  const refused = refusedInput(input)
  if (refused !== undefined) return refused
  const target = targetMicroQuantity(input, config)
  if (Either.isLeft(target)) return Either.left(target.left)
  return Either.right(toward(input, target.right))
}

/**
 * The intent for what is left to reach a target sized earlier (`targetMicros`, signed micro-units:
 * an earlier intent's `targetQuantity` × 10⁶) from `currentQuantity`: the remainder of a reduced
 * intent, worked on the symbol's next bars (agents/RiskOfficer.ts). `None` when nothing is left —
 * or, with whole units (`fractional` off), less than one unit. `direction` and `scale` are not read.
 */
export const remainderFor = (
  input: SizingInput,
  targetMicros: number,
  config: SizingConfig
): Either.Either<Option.Option<OrderIntent>, SizingRejected> => {
  const refused = refusedInput(input)
  if (refused !== undefined) return refused
  if (!Number.isSafeInteger(targetMicros)) return refuse(input, "targetQuantity", targetMicros / MICROS_PER_UNIT, "a target is a finite number of units")
  const intent = toward(input, targetMicros)
  if (!config.fractional && Option.isSome(intent) && intent.value.quantity < 1) return Either.right(Option.none())
  return Either.right(intent)
}

const refusedInput = (input: SizingInput): Either.Either<never, SizingRejected> | undefined => {
  const price = input.referencePrice
  if (typeof price !== "number" || !(price > 0) || price === Infinity) {
    return refuse(input, "referencePrice", price, "a reference price is a finite number greater than 0")
  }
  const current = input.currentQuantity
  if (typeof current !== "number" || !Number.isFinite(current) || !(Math.abs(current) <= MAX_MICRO_QUANTITY / MICROS_PER_UNIT)) {
    return refuse(input, "currentQuantity", current, "the current quantity is a finite number of units")
  }
  return undefined
}

/** The intent from the current position to `targetMicros` (inputs checked). */
const toward = (input: SizingInput, targetMicros: number): Option.Option<OrderIntent> => {
  const currentMicros = Math.round(input.currentQuantity * MICROS_PER_UNIT) || 0 // no −0
  const difference = targetMicros - currentMicros
  if (difference === 0) return Option.none()
  return Option.some({
    round: input.round,
    symbol: input.symbol,
    ts: input.ts,
    side: difference > 0 ? "buy" : "sell",
    quantity: Math.abs(difference) / MICROS_PER_UNIT,
    currentQuantity: currentMicros / MICROS_PER_UNIT,
    targetQuantity: targetMicros / MICROS_PER_UNIT,
    referencePrice: input.referencePrice,
    reason: reasonFor(currentMicros, targetMicros)
  })
}
