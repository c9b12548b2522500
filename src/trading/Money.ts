/**
 * Exact money arithmetic on the `Money` brand (schemas/Money.ts): integer micro-units (10⁻⁶) held in
 * a JS number that stays a safe integer. Sums and differences are exact; the only rounding is where
 * a price or a rate multiplies money, and it happens once, half to even.
 *
 * Rounding rule (`roundHalfEven`): to the nearest micro; an exact half goes to the even micro. The
 * product is computed in binary floating point, so a decimal half (1 × 1.0000005 → 1,000,000.5
 * micros) may arrive as …0.4999999999 or …0.5000000001; a result within a few ulps of a half is
 * treated as the tie its decimal inputs meant. The rule is deterministic: the same inputs give the
 * same micros on every machine (IEEE 754 arithmetic, no locale, no platform math).
 *
 * Range: a result outside ±(2⁵³−1) micros, or a non-finite input, throws `MoneyOutOfRange` — a
 * defect, not a typed failure. Every input that could cause it (fills, bars, configuration) is
 * checked where it enters the core (the ledger answers `FillRejected`, the fill model
 * `OrderNotFillable`), so reaching it is a bug; making every addition return an `Either` would cost
 * the per-bar path an allocation per operation and every caller a branch for a case that cannot occur.
 */
import { MoneyOutOfRange } from "../../schemas/Execution.js"
import type { Money } from "../../schemas/Money.js"

export type { Money } from "../../schemas/Money.js"

export const MICROS_PER_UNIT = 1_000_000

/**
 * Quantities live on the same grid: 10⁻⁶ units. The ledger books quantities as integer micro-units
 * (exact sums, an exact flat), and fractional sizing rounds down to it.
 */
export const QUANTITY_STEP = 0.000001

export const zero = 0 as Money

/** The largest amount: 2⁵³−1 micros, about 9,007,199,254 units. */
export const maxValue = Number.MAX_SAFE_INTEGER as Money

/** An integer number of micros, as Money. Throws `MoneyOutOfRange` (a defect) for anything else. */
export const micros = (n: number): Money => {
  if (!Number.isSafeInteger(n)) throw new MoneyOutOfRange({ operation: "micros", value: String(n) })
  return (n === 0 ? 0 : n) as Money
}

const checked = (n: number, operation: string): Money => {
  if (!Number.isSafeInteger(n)) throw new MoneyOutOfRange({ operation, value: String(n) })
  return n as Money
}

export const add = (a: Money, b: Money): Money => checked(a + b, "add")

export const sub = (a: Money, b: Money): Money => checked(a - b, "sub")

/** `0 - a`, not `-a`: negating 0 must not produce −0, which `Object.is` and test equality tell apart. */
export const negate = (a: Money): Money => (0 - a) as Money

export const abs = (a: Money): Money => (a < 0 ? 0 - a : a) as Money

export const sum = (amounts: Iterable<Money>): Money => {
  let total = 0
  for (const a of amounts) {
    total += a
    // checked at every step: past 2⁵³ a sum is no longer exact, even if a later term brings it back
    if (!Number.isSafeInteger(total)) throw new MoneyOutOfRange({ operation: "sum", value: String(total) })
  }
  return total as Money
}

export const min = (a: Money, b: Money): Money => (a <= b ? a : b)
export const max = (a: Money, b: Money): Money => (a >= b ? a : b)

// ---------------------------------------------------------------------------------------------
// The one rounding

/** A tie tolerance of 4 to 8 ulps of the value (the inputs carry about one), but never wide enough to swallow a real fraction. */
const TIE_ULPS = 2 ** -50
const TIE_CAP = 2 ** -10

/**
 * `x` rounded to the nearest integer, ties to even; within float noise of a half counts as a half
 * (see the module comment). Returns NaN for NaN and ±Infinity for ±Infinity: callers check range.
 */
export const roundHalfEven = (x: number): number => {
  const a = x < 0 ? -x : x
  const f = Math.floor(a)
  const d = a - f - 0.5
  let r: number
  if (d > TIE_CAP) r = f + 1 // the common case: clearly above or below a half, no tolerance to compute
  else if (d < -TIE_CAP) r = f
  else {
    const tolerance = a * TIE_ULPS < TIE_CAP ? a * TIE_ULPS : TIE_CAP
    if (d > tolerance) r = f + 1
    else if (d < -tolerance) r = f
    else r = f % 2 === 0 ? f : f + 1
  }
  return r === 0 ? 0 : x < 0 ? -r : r
}

const rounded = (x: number, operation: string): Money => {
  const r = roundHalfEven(x)
  if (!Number.isSafeInteger(r)) throw new MoneyOutOfRange({ operation, value: String(x) })
  return r as Money
}

/** A number of currency units, rounded half to even to the micro: `fromUnits(99.95)` is 99,950,000 micros. */
export const fromUnits = (units: number): Money => rounded(units * MICROS_PER_UNIT, "fromUnits")

/** For reporting and ratios only (metrics, charts): never feed the result back into cash. */
export const toUnits = (amount: Money): number => amount / MICROS_PER_UNIT

/**
 * quantity × price, in micros, rounded once (half to even). `quantity` is signed (a short's market
 * value is negative); a quantity within float noise of a micro-unit is taken as that micro-unit, so
 * `notional(q, p)` equals `notionalOfMicroQuantity(q × 10⁶, p)` — the ledger's form.
 */
export const notional = (quantity: number, price: number): Money => notionalOfMicroQuantity(onQuantityGrid(quantity), price)

/**
 * `notional` without the range check, for comparing an order with a limit (the risk gates and
 * rules): an order past the exact range must compare as too large and be cut down, not crash the
 * check. Equal to `notional` wherever that is defined; past ±(2⁵³−1) micros it is the nearest
 * double — never Money, never booked.
 */
export const notionalForComparison = (quantity: number, price: number): number => {
  const r = roundHalfEven(onQuantityGrid(quantity) * price)
  return r === 0 ? 0 : r
}

/** Units as micro-units, a quantity within float noise of the 10⁻⁶ grid taken as on it. */
const onQuantityGrid = (quantity: number): number => {
  const q = quantity * MICROS_PER_UNIT
  const grid = Math.round(q)
  return Math.abs(q - grid) <= 1e-9 * (grid < 0 ? -grid : grid) ? grid : q
}

/** (quantity in micro-units) × price, in micros, rounded once: one multiplication, one rounding. */
export const notionalOfMicroQuantity = (microQuantity: number, price: number): Money =>
  rounded(microQuantity * price, "notional")

/** `percent` % of `amount` (10 → a tenth), rounded half to even. */
export const percentOf = (amount: Money, percent: number): Money => rounded((amount * percent) / 100, "percentOf")

/** `amount` × `factor` (a rate such as 0.001), rounded half to even. */
export const scale = (amount: Money, factor: number): Money => rounded(amount * factor, "scale")

// ---------------------------------------------------------------------------------------------
// Text

/** The exact decimal, trailing zeros trimmed: `"-1234.5"`, `"0.000001"` — what `MoneyFromDecimal` encodes. */
export const toDecimal = (amount: Money): string => {
  const sign = amount < 0 ? "-" : ""
  const a = amount < 0 ? -amount : amount
  const units = Math.floor(a / MICROS_PER_UNIT)
  const fraction = String(a - units * MICROS_PER_UNIT).padStart(6, "0").replace(/0+$/, "")
  return `${sign}${units}${fraction === "" ? "" : `.${fraction}`}`
}

export interface FormatOptions {
  /** 0 to 6; default 2. The amount is rounded half to even to this many decimals, exactly. */
  readonly decimals?: number
  /** Thousands separator; default `","`, `""` for none. */
  readonly separator?: string
}

/** For people: `format(1234567890000)` is `"1,234,567.89"`; exact integer arithmetic throughout. */
export const format = (amount: Money, options: FormatOptions = {}): string => {
  const decimals = Math.min(6, Math.max(0, Math.trunc(options.decimals ?? 2)))
  const separator = options.separator ?? ","
  const step = 10 ** (6 - decimals)
  const a = amount < 0 ? -amount : amount
  let steps = Math.floor(a / step)
  const remainder = a - steps * step
  if (remainder * 2 > step || (remainder * 2 === step && steps % 2 === 1)) steps += 1
  const perUnit = 10 ** decimals
  const units = Math.floor(steps / perUnit)
  const fraction = decimals === 0 ? "" : `.${String(steps - units * perUnit).padStart(decimals, "0")}`
  const grouped = separator === "" ? String(units) : String(units).replace(/\B(?=(\d{3})+(?!\d))/g, separator)
  return `${amount < 0 && steps > 0 ? "-" : ""}${grouped}${fraction}`
}
