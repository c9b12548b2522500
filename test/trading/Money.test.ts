import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc, Schema } from "effect"
import { MoneyOutOfRange } from "../../schemas/Execution.js"
import { MoneyFromDecimal } from "../../schemas/Money.js"
import * as Money from "../../src/trading/Money.js"

const m = Money.micros

/** num ÷ den rounded half to even, exactly (BigInt): the reference the float implementation must meet. */
const exactHalfEven = (num: bigint, den: bigint): bigint => {
  const negative = (num < 0n) !== (den < 0n)
  const n = num < 0n ? -num : num
  const d = den < 0n ? -den : den
  const q = n / d
  const twice = (n % d) * 2n
  const r = twice > d || (twice === d && q % 2n === 1n) ? q + 1n : q
  return negative ? -r : r
}

const outOfRange = (f: () => unknown) => {
  try {
    f()
  } catch (error) {
    expect(error).toBeInstanceOf(MoneyOutOfRange)
    return error as MoneyOutOfRange
  }
  throw new Error("expected MoneyOutOfRange")
}

describe("Money arithmetic", () => {
  it("adds, subtracts and sums exactly where floats drift", () => {
    // 0.1 + 0.2 in units is 0.30000000000000004; in micros it is 300000
    expect(Money.add(Money.fromUnits(0.1), Money.fromUnits(0.2))).toBe(300_000)
    let cash = Money.fromUnits(10_000)
    for (let i = 0; i < 1000; i++) cash = Money.sub(cash, Money.fromUnits(0.01))
    expect(cash).toBe(9_990_000_000)
    expect(Money.sum([m(1), m(2), m(-4)])).toBe(-1)
    expect(Money.sum([])).toBe(0)
  })

  it("negating zero gives 0, never −0", () => {
    expect(Object.is(Money.negate(Money.zero), 0)).toBe(true)
    expect(Money.negate(m(5))).toBe(-5)
    expect(Money.abs(m(-5))).toBe(5)
    expect(Object.is(Money.fromUnits(-0.0000001), 0)).toBe(true)
    expect(Object.is(Money.micros(-0), 0)).toBe(true)
  })

  it("leaving the safe range is a MoneyOutOfRange defect naming the operation", () => {
    expect(outOfRange(() => Money.add(Money.maxValue, m(1))).operation).toBe("add")
    expect(outOfRange(() => Money.sub(Money.negate(Money.maxValue), m(2))).operation).toBe("sub")
    expect(outOfRange(() => Money.sum([Money.maxValue, m(1), m(-1)])).operation).toBe("sum")
    expect(outOfRange(() => Money.micros(1.5)).value).toBe("1.5")
    expect(outOfRange(() => Money.fromUnits(Number.NaN)).value).toBe("NaN")
    expect(outOfRange(() => Money.fromUnits(Infinity)).operation).toBe("fromUnits")
    expect(outOfRange(() => Money.notional(1e9, 1e9)).operation).toBe("notional")
    expect(outOfRange(() => Money.notional(1, Number.NaN)).operation).toBe("notional")
    expect(outOfRange(() => Money.percentOf(Money.maxValue, 200)).operation).toBe("percentOf")
  })

  it("min, max", () => {
    expect(Money.min(m(1), m(-1))).toBe(-1)
    expect(Money.max(m(1), m(-1))).toBe(1)
  })
})

describe("the one rounding: half to even, once", () => {
  it("rounds to the nearest micro, exact halves to the even micro", () => {
    expect(Money.roundHalfEven(2.5)).toBe(2)
    expect(Money.roundHalfEven(3.5)).toBe(4)
    expect(Money.roundHalfEven(-2.5)).toBe(-2)
    expect(Money.roundHalfEven(-3.5)).toBe(-4)
    expect(Money.roundHalfEven(2.4999)).toBe(2)
    expect(Money.roundHalfEven(2.5001)).toBe(3)
    expect(Object.is(Money.roundHalfEven(-0.4), 0)).toBe(true)
  })

  it("a decimal half that floats carry as …49999 or …50001 is still a tie", () => {
    // 1.0000005 is 1.00000049999999998 in binary; the decimal meant a half micro
    expect(Money.fromUnits(1.0000005)).toBe(1_000_000)
    expect(Money.fromUnits(1.0000015)).toBe(1_000_002)
    expect(Money.fromUnits(-1.0000005)).toBe(-1_000_000)
    expect(Money.fromUnits(99.95)).toBe(99_950_000)
    expect(Money.notional(1, 1.0000005)).toBe(1_000_000)
    expect(Money.notional(0.000001, 1.5)).toBe(2)
    expect(Money.notional(0.000001, 2.5)).toBe(2)
    expect(Money.notional(3, 0.1)).toBe(300_000)
    expect(Money.notional(0.1, 3)).toBe(300_000)
  })

  it("notional is signed: a short's market value is negative, and symmetric", () => {
    expect(Money.notional(-2, 10.5)).toBe(-21_000_000)
    expect(Money.notional(-0.000001, 2.5)).toBe(-2)
    expect(Money.notionalOfMicroQuantity(-2_000_000, 10.5)).toBe(-21_000_000)
  })

  it("percentOf and scale round once", () => {
    expect(Money.percentOf(m(1_000_000), 10)).toBe(100_000)
    expect(Money.percentOf(m(5), 50)).toBe(2) // 2.5 → 2
    expect(Money.percentOf(m(7), 50)).toBe(4) // 3.5 → 4
    expect(Money.scale(m(1_000_000_000), 0.001)).toBe(1_000_000)
    expect(Money.scale(m(-15), 0.1)).toBe(-2) // −1.5 → −2
  })

  it.prop(
    "decimal inputs: notional equals the exact product rounded half to even (BigInt reference)",
    {
      // quantities on the 10⁻⁶ grid, prices with up to 6 decimals, products below 10¹² micros
      qm: fc.integer({ min: 1, max: 1_000_000_000 }),
      pm: fc.integer({ min: 1, max: 1_000_000_000 }),
      negative: fc.boolean()
    },
    ({ negative, pm, qm }) => {
      const sign = negative ? -1 : 1
      const actual = Money.notional((sign * qm) / 1_000_000, pm / 1_000_000)
      // exact: qm × pm ÷ 10⁶ micros
      const exact = exactHalfEven(BigInt(sign * qm) * BigInt(pm), 1_000_000n)
      const fraction = Number((BigInt(qm) * BigInt(pm)) % 1_000_000n) / 1_000_000
      const magnitude = (qm * pm) / 1_000_000
      // a fraction within the documented tolerance of a half is a tie; elsewhere the result is exact.
      // The tolerance applies to the float product, whose own error (the price is not exact in
      // binary) is up to a couple of ulps more: the band where either answer is right is twice it.
      // (At 2⁻⁵⁰ exactly, 1 sample in about 4 million — products near 10¹¹ micros — failed.)
      const nearHalf = fraction !== 0.5 && Math.abs(fraction - 0.5) <= Math.min(magnitude * 2 ** -49, 2 ** -9)
      if (nearHalf) expect(Math.abs(actual - Number(exact))).toBeLessThanOrEqual(1)
      else expect(actual).toBe(Number(exact))
    },
    { fastCheck: { numRuns: 2000 } }
  )

  it.prop(
    "whole quantities at prices with up to 6 decimals have exact notionals: no rounding at all",
    { q: fc.integer({ min: -1_000_000, max: 1_000_000 }), pm: fc.integer({ min: 1, max: 9_000_000 }) },
    ({ pm, q }) => {
      expect(Money.notional(q, pm / 1_000_000)).toBe(q * pm || 0)
    },
    { fastCheck: { numRuns: 1000 } }
  )

  it.prop(
    "fromUnits(toUnits(x)) is x for any amount within ±10⁹ units",
    { x: fc.integer({ min: -1e15, max: 1e15 }) },
    ({ x }) => {
      expect(Money.fromUnits(Money.toUnits(m(x)))).toBe(x || 0)
    }
  )

  it.prop("add and sub are inverse and exact", { a: fc.integer({ min: -1e15, max: 1e15 }), b: fc.integer({ min: -1e15, max: 1e15 }) }, ({ a, b }) => {
    expect(Money.sub(Money.add(m(a), m(b)), m(b))).toBe(a)
  })
})

describe("Money as text", () => {
  it("toDecimal is exact and agrees with MoneyFromDecimal", () => {
    expect(Money.toDecimal(m(-1_234_500_000))).toBe("-1234.5")
    expect(Money.toDecimal(m(1))).toBe("0.000001")
    expect(Money.toDecimal(Money.zero)).toBe("0")
    expect(Money.toDecimal(Money.maxValue)).toBe("9007199254.740991")
  })

  it.prop("toDecimal round-trips through MoneyFromDecimal", { x: fc.integer({ min: -999_999_999_999_999, max: 999_999_999_999_999 }) }, ({ x }) => {
    expect(Schema.decodeSync(MoneyFromDecimal)(Money.toDecimal(m(x)))).toBe(x || 0)
  })

  it("format rounds half to even to the decimals asked, groups thousands, never prints −0.00", () => {
    expect(Money.format(m(1_234_567_890_000))).toBe("1,234,567.89")
    expect(Money.format(m(1_005_000))).toBe("1.00") // 1.005 → 1.00 (even)
    expect(Money.format(m(1_015_000))).toBe("1.02") // 1.015 → 1.02 (even)
    expect(Money.format(m(1_015_001))).toBe("1.02")
    expect(Money.format(m(-2_500_000), { decimals: 0 })).toBe("-2")
    expect(Money.format(m(-4_000))).toBe("0.00")
    expect(Money.format(m(-1_234_567_891), { decimals: 6, separator: "" })).toBe("-1234.567891")
    expect(Money.format(m(999_995_000))).toBe("1,000.00")
  })
})
