import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Period from "../../src/cli/Period.js"

const at = (text: string, end: Period.End = "from") => Either.getOrThrow(Period.parse(text, end))
const refused = (text: string, end: Period.End = "from") => {
  const result = Period.parse(text, end)
  if (Either.isRight(result)) throw new Error(`expected "${text}" to be refused, got ${new Date(result.right).toISOString()}`)
  return result.left
}

describe("--from / --to", () => {
  it("a date is midnight UTC as the start, and the day's last millisecond as the end", () => {
    expect(at("2024-03-01")).toBe(Date.UTC(2024, 2, 1))
    expect(at("2024-03-01", "to")).toBe(Date.UTC(2024, 2, 2) - 1)
    expect(at("2024-02-29", "to")).toBe(Date.UTC(2024, 2, 1) - 1)
  })

  it("a date-time without an offset is UTC, not the machine's zone; an offset is honoured", () => {
    expect(at("2024-03-01T14:30")).toBe(Date.UTC(2024, 2, 1, 14, 30))
    expect(at("2024-03-01 14:30:15")).toBe(Date.UTC(2024, 2, 1, 14, 30, 15))
    expect(at("2024-03-01T14:30:15.250Z", "to")).toBe(Date.UTC(2024, 2, 1, 14, 30, 15, 250))
    expect(at("2024-03-01T14:30:00+01:00")).toBe(Date.UTC(2024, 2, 1, 13, 30))
    expect(at("2024-03-01T14:30:00-0530")).toBe(Date.UTC(2024, 2, 1, 20, 0))
    // A date-time as the end is that instant, not the end of its day.
    expect(at("2024-03-01T00:00", "to")).toBe(Date.UTC(2024, 2, 1))
  })

  it("reads the years 0000 to 0099 as written (Date.UTC reads them as 1900 to 1999)", () => {
    expect(new Date(at("0050-02-01")).toISOString()).toBe("0050-02-01T00:00:00.000Z")
    expect(new Date(at("0099-12-31", "to")).toISOString()).toBe("0099-12-31T23:59:59.999Z")
    expect(refused("0050-02-29")).toContain("not a date on the calendar")
  })

  it("refuses what is not a date on the calendar, saying why", () => {
    expect(refused("2024-02-30")).toContain("not a date on the calendar")
    expect(refused("2023-02-29")).toContain("not a date on the calendar")
    expect(refused("2024-03-01T24:00")).toContain("not a date-time on the calendar")
    expect(refused("yesterday")).toContain("expected an ISO date")
    expect(refused("01/03/2024")).toContain("got \"01/03/2024\"")
    expect(refused("2024-03-01T10:00+25:00")).toContain("not a UTC offset")
  })

  it("a window that ends before it starts is refused; one instant is a window", () => {
    expect(Either.isLeft(Period.check(at("2024-03-02"), at("2024-03-01", "to")))).toBe(true)
    expect(Either.isRight(Period.check(at("2024-03-01"), at("2024-03-01", "to")))).toBe(true)
    expect(Either.isRight(Period.check(undefined, at("2024-03-01", "to")))).toBe(true)
  })
})
