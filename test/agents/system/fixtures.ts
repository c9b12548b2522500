/** Hand-built trades for the system agent's tests: amounts in units, converted to micros. */
import type { Symbol, Timestamp } from "../../../schemas/Ids.js"
import type { Money } from "../../../schemas/Money.js"
import type { Trade } from "../../../schemas/Trade.js"

export const u = (units: number) => Math.round(units * 1_000_000) as Money
export const at = (iso: string) => Date.parse(iso) as Timestamp

export interface TradeSpec {
  readonly symbol?: string
  readonly side?: "long" | "short"
  readonly entry: string
  readonly exit: string
  readonly quantity?: number
  readonly entryPrice?: number
  readonly pnl: number
}

export const trade = (t: TradeSpec): Trade => ({
  symbol: (t.symbol ?? "AAPL") as Symbol,
  side: t.side ?? "long",
  quantity: t.quantity ?? 1,
  entryTs: at(t.entry),
  exitTs: at(t.exit),
  entryPrice: t.entryPrice ?? 100,
  exitPrice: 100,
  pnl: u(t.pnl),
  commission: u(0)
})

/** `2024-01-01` plus `days`, at `hour`:`minute` UTC, as ISO. */
export const day = (days: number, hour = 10, minute = 0): string =>
  new Date(Date.UTC(2024, 0, 1 + days, hour, minute)).toISOString()
