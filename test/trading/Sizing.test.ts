import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Option, ParseResult, Schema } from "effect"
import { SizingConfig, type SizingRejected } from "../../schemas/Execution.js"
import type { RoundId, Symbol, Timestamp } from "../../schemas/Ids.js"
import type { OrderIntent } from "../../schemas/Order.js"
import * as Money from "../../src/trading/Money.js"
import * as Sizing from "../../src/trading/Sizing.js"

const config = (input: unknown = {}) => Schema.decodeUnknownSync(SizingConfig)(input)
const fixed = (value: number, more: object = {}) => config({ mode: "fixed_quantity", value, ...more })

const input = (patch: Partial<Sizing.SizingInput> = {}): Sizing.SizingInput => ({
  round: "AAA@1000" as RoundId,
  symbol: "AAA" as Symbol,
  ts: 1000 as Timestamp,
  direction: "long",
  currentQuantity: 0,
  equity: Money.fromUnits(100_000),
  referencePrice: 99.5,
  ...patch
})

const intent = (i: Sizing.SizingInput, c: SizingConfig): OrderIntent | undefined =>
  Option.getOrUndefined(Either.getOrThrowWith(Sizing.intentFor(i, c), (e) => e))

/** side, quantity, reason, target: what a reader checks first. */
const brief = (i: Sizing.SizingInput, c: SizingConfig) => {
  const x = intent(i, c)
  return x === undefined ? "none" : `${x.side} ${x.quantity} ${x.reason} → ${x.targetQuantity}`
}

const refused = (i: unknown, c: SizingConfig): SizingRejected => {
  const result = Sizing.intentFor(i as Sizing.SizingInput, c)
  if (Either.isRight(result)) throw new Error("expected a refusal")
  return result.left
}

describe("sizing to a percent of equity", () => {
  it("sizes at the reference price (bar t's close), whole units rounded down, and fills in the intent", () => {
    // 10 % of 100,000 = 10,000 at 99.5 = 100.5 → 100
    expect(intent(input(), config())).toEqual({
      round: "AAA@1000",
      symbol: "AAA",
      ts: 1000,
      side: "buy",
      quantity: 100,
      currentQuantity: 0,
      targetQuantity: 100,
      referencePrice: 99.5,
      reason: "open"
    })
  })

  it("fractional sizing rounds down to 10⁻⁶ units", () => {
    // 10,000 / 99.5 = 100.50251256…
    expect(brief(input(), config({ fractional: true }))).toBe("buy 100.502512 open → 100.502512")
  })

  it("fractional sizing rounds toward zero on large quantities too (no float-noise tolerance that grows with them)", () => {
    // 30 % of 100,000 at 11.24 is 2669.0391459…: toward zero is 2669.039145, not the nearest 2669.039146.
    expect(brief(input({ referencePrice: 11.24 }), config({ value: 30, fractional: true }))).toBe("buy 2669.039145 open → 2669.039145")
    // 100 % of 1,000,000,000 at 3: 333,333,333.333333… units.
    expect(brief(input({ equity: Money.fromUnits(1_000_000_000), referencePrice: 3 }), config({ value: 100, fractional: true })))
      .toBe("buy 333333333.333333 open → 333333333.333333")
  })

  it("float noise does not lose a unit: 100 % of 0.29 at 0.01 is 29, not 28", () => {
    expect(0.29 / 0.01).toBeLessThan(29)
    expect(brief(input({ equity: Money.fromUnits(0.29), referencePrice: 0.01 }), config({ value: 100 }))).toBe("buy 29 open → 29")
  })

  it("equity at or below zero sizes to flat", () => {
    expect(brief(input({ equity: Money.zero, currentQuantity: 10 }), config())).toBe("sell 10 close → 0")
    expect(brief(input({ equity: Money.fromUnits(-5) }), config())).toBe("none")
  })

  it("a scale takes a fraction of the configured size", () => {
    expect(brief(input({ scale: 0.5 }), config())).toBe("buy 50 open → 50")
    expect(brief(input({ scale: 0 }), config())).toBe("none")
  })
})

describe("sizing to a fixed quantity: the order is the difference, with its reason", () => {
  const c = fixed(50, { allowShort: true })
  it.each([
    ["long from flat", "long", 0, "buy 50 open → 50"],
    ["long from a smaller long", "long", 20, "buy 30 increase → 50"],
    ["long from a larger long", "long", 80, "sell 30 reduce → 50"],
    ["long from a short", "long", -10, "buy 60 reverse → 50"],
    ["long when already there", "long", 50, "none"],
    ["flat from a long", "flat", 50, "sell 50 close → 0"],
    ["flat from a short", "flat", -7, "buy 7 close → 0"],
    ["flat when flat", "flat", 0, "none"],
    ["short from a long", "short", 50, "sell 100 reverse → -50"],
    ["short from a smaller short", "short", -20, "sell 30 increase → -50"],
    ["short from a larger short", "short", -80, "buy 30 reduce → -50"],
    ["short from flat", "short", 0, "sell 50 open → -50"]
  ] as const)("%s", (_, direction, current, expected) => {
    expect(brief(input({ direction, currentQuantity: current }), c)).toBe(expected)
  })

  it("with shorting off (the default), a short target is flat", () => {
    expect(brief(input({ direction: "short", currentQuantity: 50 }), fixed(50))).toBe("sell 50 close → 0")
    expect(brief(input({ direction: "short", currentQuantity: 0 }), fixed(50))).toBe("none")
    expect(brief(input({ direction: "short", currentQuantity: -5 }), fixed(50))).toBe("buy 5 close → 0")
  })

  it("fractional quantities: exact differences, no float residue", () => {
    const c2 = fixed(0.3, { fractional: true })
    expect(brief(input({ currentQuantity: 0.1 + 0.2 }), c2)).toBe("none") // 0.30000000000000004 is 0.3
    expect(brief(input({ currentQuantity: 0.1 }), c2)).toBe("buy 0.2 increase → 0.3")
  })

  it.prop(
    "the intent moves the current position exactly to the target, and none is produced when they are equal",
    {
      value: fc.integer({ min: 1, max: 10_000 }),
      current: fc.integer({ min: -20_000, max: 20_000 }),
      direction: fc.constantFrom("long" as const, "short" as const, "flat" as const),
      allowShort: fc.boolean()
    },
    ({ allowShort, current, direction, value }) => {
      const c2 = fixed(value, { allowShort })
      const target = direction === "flat" || (direction === "short" && !allowShort) ? 0 : direction === "long" ? value : -value
      const x = intent(input({ direction, currentQuantity: current }), c2)
      if (target === current) {
        expect(x).toBeUndefined()
        return
      }
      expect(x).toBeDefined()
      expect(current + (x!.side === "buy" ? x!.quantity : -x!.quantity)).toBe(target)
      expect(x!.targetQuantity).toBe(target)
      expect(x!.quantity).toBeGreaterThan(0)
    }
  )
})

describe("bad sizing inputs are typed refusals naming the field", () => {
  const cases: ReadonlyArray<[string, Partial<Record<keyof Sizing.SizingInput, unknown>>, string]> = [
    ["NaN reference price", { referencePrice: Number.NaN }, "referencePrice"],
    ["zero reference price", { referencePrice: 0 }, "referencePrice"],
    ["negative reference price", { referencePrice: -3 }, "referencePrice"],
    ["infinite reference price", { referencePrice: Infinity }, "referencePrice"],
    ["NaN current quantity", { currentQuantity: Number.NaN }, "currentQuantity"],
    ["infinite current quantity", { currentQuantity: -Infinity }, "currentQuantity"],
    ["huge current quantity", { currentQuantity: 1e300 }, "currentQuantity"],
    ["NaN equity", { equity: Number.NaN }, "equity"],
    ["fractional micros of equity", { equity: 1.5 }, "equity"],
    ["scale above 1", { scale: 2 }, "scale"],
    ["negative scale", { scale: -0.5 }, "scale"],
    ["NaN scale", { scale: Number.NaN }, "scale"],
    ["unknown direction", { direction: "up" }, "direction"],
    ["a target beyond the exact range", { referencePrice: 1e-9, equity: Money.fromUnits(1_000_000_000) }, "quantity"]
  ]
  for (const [name, patch, field] of cases) {
    it(name, () => {
      const error = refused({ ...input(), ...patch }, config({ value: 100 }))
      expect(error._tag).toBe("SizingRejected")
      expect(error.field).toBe(field)
      expect(error.symbol).toBe("AAA")
    })
  }
})

describe("SizingConfig decoding", () => {
  const errorPaths = (value: unknown) => {
    const result = Schema.decodeUnknownEither(SizingConfig)(value)
    if (Either.isRight(result)) throw new Error("expected a decoding error")
    return ParseResult.ArrayFormatter.formatErrorSync(result.left).map((issue) => issue.path.join("."))
  }

  it("has defaults: 10 % of equity, whole units, no shorting", () => {
    expect(config()).toEqual({ mode: "percent_of_equity", value: 10, fractional: false, allowShort: false })
  })

  it("errors name the field", () => {
    expect(errorPaths({ value: 150 })).toEqual(["value"])
    expect(errorPaths({ value: 0 })).toEqual(["value"])
    expect(errorPaths({ value: -1 })).toEqual(["value"])
    expect(errorPaths({ value: Number.NaN })).toEqual(["value"])
    expect(errorPaths({ value: Infinity })).toEqual(["value"])
    expect(errorPaths({ value: "10" })).toEqual(["value"])
    expect(errorPaths({ mode: "fixed_quantity", value: 10.5 })).toEqual(["value"])
    expect(errorPaths({ mode: "fixed_quantity", value: 0.0000001, fractional: true })).toEqual(["value"])
    expect(errorPaths({ mode: "kelly" })).toEqual(["mode"]) // one problem, not one per mode it is not
    expect(errorPaths({ fractional: "yes" })).toEqual(["fractional"])
    expect(errorPaths({ allowShorts: true })).toEqual(["allowShorts"])
  })

  it("accepts fractional fixed quantities when fractional is on", () => {
    expect(config({ mode: "fixed_quantity", value: 10.5, fractional: true }).value).toBe(10.5)
  })
})

describe("the remainder of a reduced intent: toward the target sized before", () => {
  const remainder = (current: number, targetUnits: number, c: SizingConfig = fixed(100)) => {
    const x = Option.getOrUndefined(Either.getOrThrowWith(Sizing.remainderFor(input({ currentQuantity: current }), Math.round(targetUnits * 1e6), c), (e) => e))
    return x === undefined ? "none" : `${x.side} ${x.quantity} ${x.reason} → ${x.targetQuantity}`
  }

  it("is what is left of the target, whatever the sizing would say now (price, equity)", () => {
    // 100 % of equity at 99.5 would size 1005; the target decided was 100.
    expect(remainder(60, 100, config({ value: 100 }))).toBe("buy 40 increase → 100")
    expect(remainder(60, 0)).toBe("sell 60 close → 0")
    expect(remainder(-60, -100)).toBe("sell 40 increase → -100")
    expect(remainder(-60, 0)).toBe("buy 60 close → 0")
    expect(remainder(20, -100)).toBe("sell 120 reverse → -100")
  })

  it("reached, nothing; with whole units, less than one unit left is reached; fractional, it is ordered", () => {
    expect(remainder(0, 0)).toBe("none")
    expect(remainder(100, 100)).toBe("none")
    expect(remainder(0.4, 0)).toBe("none")
    expect(remainder(99.5, 100)).toBe("none")
    expect(remainder(0.4, 0, fixed(100, { fractional: true }))).toBe("sell 0.4 close → 0")
  })

  it("refuses what intentFor refuses of the books, and a target that is not a whole number of micro-units", () => {
    const left = (i: Sizing.SizingInput, target: number) => Either.getLeft(Sizing.remainderFor(i, target, fixed(100))).pipe(Option.getOrUndefined)
    expect(left(input({ referencePrice: 0 }), 0)).toMatchObject({ field: "referencePrice" })
    expect(left(input({ currentQuantity: Number.NaN }), 0)).toMatchObject({ field: "currentQuantity" })
    expect(left(input(), 0.5)).toMatchObject({ field: "targetQuantity" })
    expect(left(input(), Number.POSITIVE_INFINITY)).toMatchObject({ field: "targetQuantity" })
  })
})
