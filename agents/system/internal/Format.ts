/**
 * How the system agent's plain sentences write numbers, money, times and lists: the offline answers
 * (no model) are read by operators, so every `describe…` function formats the same way. Display
 * only: nothing here is arithmetic on money.
 */
import type { Money } from "../../../schemas/Money.js"
import { format } from "../../../src/trading/Money.js"

/**
 * Micros as an amount of the account currency, to the cent, as `swarm runs show` prints money
 * (`Money.format`: half to even): `-1,234.50`, `252,220.69`. The tools' results keep the exact micros.
 */
export const money = (micros: number): string => format(Math.round(micros) as Money)

/**
 * Micros to the micro, with 2 to 6 decimals: `-1,234.50`, `0.000125`. Only where a difference below
 * a cent is the point (two equities that should be the same and are not).
 */
export const exactMoney = (micros: number): string => {
  const m = Math.round(micros)
  const abs = Math.abs(m)
  const units = Math.floor(abs / 1_000_000)
  const fraction = String(abs % 1_000_000).padStart(6, "0").replace(/0+$/, "").padEnd(2, "0")
  const grouped = String(units).replace(/\B(?=(\d{3})+(?!\d))/g, ",")
  return `${m < 0 ? "-" : ""}${grouped}.${fraction}`
}

/** Money with an explicit sign, for P&L: `+1,234.50`, `-12.00`, `0.00` (and `0.00` for less than half a cent). */
export const pnl = (micros: number): string => {
  const text = money(micros)
  return micros > 0 && text !== "0.00" ? `+${text}` : text
}

/** A fraction as a percent with at most one decimal: 0.4 → `40%`, 1/3 → `33.3%`. */
export const percent = (fraction: number): string => `${trim((fraction * 100).toFixed(1))}%`

/** A number with at most `digits` decimals, trailing zeros dropped: 0.625 → `0.63`, 2 → `2`. */
export const decimal = (x: number, digits = 2): string => trim(x.toFixed(digits))

const trim = (text: string): string => (text.includes(".") ? text.replace(/\.?0+$/, "") : text)

/** An instant in UTC as people read it: `2024-03-01 14:30 UTC` (seconds only when not zero). */
export const time = (ms: number): string => {
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return `${ms}`
  const iso = new Date(ms).toISOString()
  const seconds = iso.slice(17, 19)
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}${seconds === "00" ? "" : `:${seconds}`} UTC`
}

/** A whole number with thousands separators: `12345` → `12,345`. */
export const integer = (n: number): string => n.toLocaleString("en-US")

/** `1 trade`, `2 trades`. */
export const count = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

/** `a`, `a and b`, `a, b and c`. */
export const list = (items: ReadonlyArray<string>): string =>
  items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`

/** Free text (an analyst's rationale) quoted and cut short, so one long answer cannot drown the rest. */
export const quote = (text: string, max = 160): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return `"${flat.length > max ? `${flat.slice(0, max - 1)}…` : flat}"`
}
