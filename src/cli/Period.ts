/**
 * The `--from` / `--to` window of a backtest: ISO 8601 dates or date-times, read the way the CSV
 * loader reads bar times (a date-time without an offset is UTC, never the machine's zone), so a
 * window means the same on every machine. Both ends are inclusive, and a date alone as the end
 * (`--to 2024-03-01`) means through the end of that day.
 */
import { Either } from "effect"

const DAY_MS = 86_400_000

const pattern =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/i

/** Which end of the window a text is: a date alone stands for the day's first or last millisecond. */
export type End = "from" | "to"

/** Epoch ms of `text`, or why it is not a date: the reason is written for the person who typed it. */
export const parse = (text: string, end: End): Either.Either<number, string> => {
  const m = pattern.exec(text.trim())
  if (m === null) {
    return Either.left(`expected an ISO date or date-time (2024-03-01, 2024-03-01T14:30, 2024-03-01T14:30:00+01:00), got "${text}"`)
  }
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const [h, mi, s] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)]
  const ms = Number((m[7] ?? "").padEnd(3, "0"))
  // Date.UTC rolls 2024-02-30 over to March 1st: compare the fields back to tell a calendar date.
  // (And reads the years 0–99 as 1900–1999; setUTCFullYear takes a year as written, as the CSV loader does.)
  const civil = new Date(0)
  civil.setUTCFullYear(y, mo - 1, d)
  civil.setUTCHours(h, mi, s, ms)
  if (
    civil.getUTCFullYear() !== y || civil.getUTCMonth() !== mo - 1 || civil.getUTCDate() !== d ||
    civil.getUTCHours() !== h || civil.getUTCMinutes() !== mi || civil.getUTCSeconds() !== s
  ) {
    return Either.left(`"${text}" is not a ${m[4] === undefined ? "date" : "date-time"} on the calendar`)
  }
  let at = civil.getTime()
  const zone = m[8]
  if (zone !== undefined && zone.toUpperCase() !== "Z") {
    const [zh, zm] = [Number(zone.slice(1, 3)), Number(zone.slice(-2))]
    if (zh > 23 || zm > 59) return Either.left(`"${zone}" is not a UTC offset in "${text}"`)
    at -= (zone[0] === "-" ? -1 : 1) * (zh * 60 + zm) * 60_000
  }
  if (m[4] === undefined && end === "to") at += DAY_MS - 1
  return Either.right(at)
}

/** An empty window is a typo, not a run with no bars: refuse it where the flags are read. */
export const check = (from: number | undefined, to: number | undefined): Either.Either<void, string> =>
  from !== undefined && to !== undefined && to < from
    ? Either.left(`the window ends (${new Date(to).toISOString()}) before it starts (--from ${new Date(from).toISOString()})`)
    : Either.right(undefined)
