/**
 * How orders become fills and how decisions become order sizes: the execution model (fill timing,
 * slippage, commission) and the sizing configuration a strategy carries, plus the typed failures of
 * the pure core that books them (src/trading: Money, Ledger, FillModel, Sizing). Every field has a
 * default, so `{}` decodes to a working configuration; a bad value's error names the field.
 *
 * Amounts of money in configuration (a per-share commission, a minimum) are written as people write
 * them — a decimal string (`"0.005"`) or a plain number (`0.005`, what YAML and JSON produce) — and
 * decode to exact micros (`Money`). At most six decimals: a seventh cannot be booked exactly.
 */
import { ParseResult, Schema } from "effect"
import { Money, MoneyFromDecimal } from "./Money.js"
import { oneOf } from "./OneOf.js"
import { FillTiming } from "./Order.js"

// ---------------------------------------------------------------------------------------------
// Amounts

/** A number of currency units with at most six decimals, to micros; rejects NaN, ±Infinity, 1e300. */
const MoneyFromNumber = Schema.transformOrFail(Schema.Number, Money, {
  strict: true,
  decode: (units, _, ast) => {
    const micros = units * 1_000_000
    const rounded = Math.round(micros)
    // 0.1 × 10⁶ is 100000.00000000001 in binary: float noise is not a seventh decimal.
    if (!Number.isSafeInteger(rounded) || Math.abs(micros - rounded) > 1e-9 * Math.max(1, Math.abs(micros))) {
      return ParseResult.fail(
        new ParseResult.Type(ast, units, "expected a finite amount with at most 6 decimals, within ±9,007,199,254 units")
      )
    }
    return ParseResult.succeed((rounded === 0 ? 0 : rounded) as Money)
  },
  encode: (micros) => ParseResult.succeed(micros / 1_000_000)
})

/**
 * An amount of money in configuration: `"99.95"` or `99.95`, decoded to micros exactly; encoded as
 * the decimal string (which is exact, where a number may not be).
 */
export const MoneyAmount = Schema.Union(MoneyFromDecimal, MoneyFromNumber).annotations({
  identifier: "MoneyAmount",
  description: "an amount of money: a decimal string such as \"0.005\" or a number, at most 6 decimals"
})

const NonNegativeMoneyAmount = MoneyAmount.pipe(
  Schema.filter((micros) => micros >= 0 || "an amount here must not be negative")
)

// ---------------------------------------------------------------------------------------------
// Execution model

/**
 * Slippage in basis points of the market price, always against the trader: a buy pays
 * price × (1 + bps/10⁴), a sell receives price × (1 − bps/10⁴). At most 1,000 (10 %): more is
 * almost certainly a percent written as basis points.
 */
export const SlippageBps = Schema.Number.pipe(
  Schema.finite({ message: () => "slippage must be a finite number of basis points" }),
  Schema.between(0, 1_000, { message: () => "slippage is between 0 and 1000 basis points (10 %)" })
)
export type SlippageBps = typeof SlippageBps.Type

/** A fraction of notional: 0.001 is 0.1 % (10 bps). Below 0.1, to catch a percent written as a fraction. */
const CommissionRate = Schema.Number.pipe(
  Schema.finite({ message: () => "a commission rate must be a finite number" }),
  Schema.greaterThanOrEqualTo(0, { message: () => "a commission rate must not be negative" }),
  Schema.lessThan(0.1, { message: () => "a commission rate is a fraction of notional (0.001 = 0.1 %) and must be below 0.1" })
)

/**
 * What a fill pays its broker, in micros, rounded half to even once:
 * - `none`: nothing (the default).
 * - `per_share`: `max(minimum, perShare × quantity)` — e.g. `{ perShare: "0.005", minimum: "1" }`.
 * - `percent`: `max(minimum, rate × notional)`; `rate` is a fraction (`0.001` = 0.1 %).
 * The minimum applies per order: one market order is one fill, unless a volume limit
 * (`maxVolumePercent`) splits it, and then its fills together pay
 * `max(minimum, Σ rate parts)` — the first fill the minimum, later ones only what takes the
 * total past it (src/trading/FillModel.ts `commissionOfPart`), as a broker's per-order minimum does.
 */
export const Commission = Schema.Union(
  Schema.TaggedStruct("none", {}),
  Schema.TaggedStruct("per_share", {
    perShare: NonNegativeMoneyAmount,
    minimum: Schema.optionalWith(NonNegativeMoneyAmount, { default: () => 0 as Money, exact: true })
  }),
  Schema.TaggedStruct("percent", {
    rate: CommissionRate,
    minimum: Schema.optionalWith(NonNegativeMoneyAmount, { default: () => 0 as Money, exact: true })
  })
).annotations({
  identifier: "Commission",
  // For a value that is no object at all; a member's own fields (`perShare`, `rate`) keep their words.
  message: () => ({
    message: "a commission is { _tag: none }, { _tag: per_share, perShare, minimum? } or { _tag: percent, rate, minimum? }",
    override: false
  })
})
export type Commission = typeof Commission.Type

/**
 * The most of a bar's traded volume one order may fill on that bar, in percent (0 < p ≤ 100):
 * `10` fills at most 10 % of the bar's volume, the rest working on the symbol's next bars
 * (src/trading/FillModel.ts, "Volume limit"). A fraction of a percent is fine (`0.5`); 0 would
 * never fill, and more than 100 % is more than the bar traded.
 */
export const MaxVolumePercent = Schema.Number.pipe(
  Schema.finite({ message: () => "maxVolumePercent must be a finite number of percent" }),
  Schema.greaterThan(0, { message: () => "maxVolumePercent is greater than 0 (an order limited to 0 % of volume never fills)" }),
  Schema.lessThanOrEqualTo(100, { message: () => "maxVolumePercent is at most 100 (% of the bar's volume)" })
)

export const ExecutionConfig = Schema.Struct({
  /** `next_open` (default): an order decided on bar t fills at bar t+1's open. `same_close` fills at bar t's close — it assumes the decision was made before the close printed. */
  fillTiming: Schema.optionalWith(FillTiming, { default: () => "next_open" as const, exact: true }),
  slippageBps: Schema.optionalWith(SlippageBps, { default: () => 0, exact: true }),
  commission: Schema.optionalWith(Commission, { default: () => ({ _tag: "none" as const }), exact: true }),
  /**
   * Off when absent (the default: an order fills whole on its bar, whatever the bar traded). No
   * default value is written in: a strategy without it decodes, encodes and runs as it did.
   */
  maxVolumePercent: Schema.optionalWith(MaxVolumePercent, { exact: true })
}).annotations({ identifier: "ExecutionConfig", parseOptions: { onExcessProperty: "error" } })
export type ExecutionConfig = typeof ExecutionConfig.Type

// ---------------------------------------------------------------------------------------------
// Sizing

export const SizingMode = oneOf("percent_of_equity", "fixed_quantity")
export type SizingMode = typeof SizingMode.Type

/**
 * How a decision's direction becomes a target position per symbol:
 * - `percent_of_equity`: `value` % of equity (0 < value ≤ 100) at the reference price (bar t's close);
 * - `fixed_quantity`: `value` units (whole unless `fractional`).
 * Quantities round toward zero: to whole units, or to 10⁻⁶ units when `fractional`. With
 * `allowShort` off (the default) a short target is flat.
 */
export const SizingConfig = Schema.Struct({
  mode: Schema.optionalWith(SizingMode, { default: () => "percent_of_equity" as const, exact: true }),
  value: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.finite({ message: () => "a sizing value must be a finite number" }),
      Schema.positive({ message: () => "a sizing value must be greater than 0" }),
      Schema.lessThanOrEqualTo(9_000_000_000, { message: () => "a sizing value must be at most 9,000,000,000" })
    ),
    { default: () => 10, exact: true }
  ),
  fractional: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true }),
  allowShort: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true })
}).pipe(
  Schema.filter((config) => {
    if (config.mode === "percent_of_equity" && config.value > 100) {
      return { path: ["value"], message: "a percent of equity is at most 100" }
    }
    if (config.mode === "fixed_quantity" && !config.fractional && !Number.isInteger(config.value)) {
      return { path: ["value"], message: "a fixed quantity is a whole number of units unless fractional is enabled" }
    }
    if (config.mode === "fixed_quantity" && config.fractional && !onMicroGrid(config.value)) {
      return { path: ["value"], message: "a fractional quantity has at most 6 decimals" }
    }
    return undefined
  }),
  Schema.annotations({ identifier: "SizingConfig", parseOptions: { onExcessProperty: "error" } })
)
export type SizingConfig = typeof SizingConfig.Type

const onMicroGrid = (units: number): boolean => {
  const micros = units * 1_000_000
  return Math.abs(micros - Math.round(micros)) <= 1e-9 * Math.max(1, micros)
}

// ---------------------------------------------------------------------------------------------
// Failures of the pure core. `value` is the offending value as text: NaN and ±Infinity have no JSON form.

/** A fill the ledger refused to book; the books are unchanged and the fill id is not marked applied. */
export class FillRejected extends Schema.TaggedError<FillRejected>()("FillRejected", {
  fillId: Schema.String,
  field: Schema.String,
  value: Schema.String,
  reason: Schema.String
}) {}

/** An order the fill model cannot fill on the bar it was given. */
export class OrderNotFillable extends Schema.TaggedError<OrderNotFillable>()("OrderNotFillable", {
  orderId: Schema.String,
  field: Schema.String,
  value: Schema.String,
  reason: Schema.String
}) {}

/** Sizing inputs that cannot produce an intent. */
export class SizingRejected extends Schema.TaggedError<SizingRejected>()("SizingRejected", {
  symbol: Schema.String,
  field: Schema.String,
  value: Schema.String,
  reason: Schema.String
}) {}

/**
 * A money computation left the exact range (±2⁵³−1 micros) or was given a non-finite number. A
 * defect, not an expected failure: the inputs that could cause it (fills, bars, configuration) are
 * checked where they enter, so reaching it means a bug, and it crashes the actor to its supervisor.
 */
export class MoneyOutOfRange extends Schema.TaggedError<MoneyOutOfRange>()("MoneyOutOfRange", {
  operation: Schema.String,
  value: Schema.String
}) {}

/** A value as text for an error's `value` field: `NaN`, `-Infinity`, `-0` and non-numbers included. */
export const describeValue = (value: unknown): string => {
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value)
  if (typeof value === "string") return JSON.stringify(value)
  if (value === undefined || value === null || typeof value === "boolean" || typeof value === "bigint") return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return Object.prototype.toString.call(value)
  }
}
