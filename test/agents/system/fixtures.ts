/** Hand-built trades for the system agent's tests: amounts in units, converted to micros. */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import type { Symbol, Timestamp } from "../../../schemas/Ids.js"
import { Strategy } from "../../../schemas/Strategy.js"
import * as Runs from "../../../src/store/Runs.js"
import * as Strategies from "../../../src/store/Strategies.js"
import type { Money } from "../../../schemas/Money.js"
import type { Trade } from "../../../schemas/Trade.js"
import type * as TradeAnalysis from "../../../agents/system/TradeAnalysis.js"

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

/**
 * A trade's entry order as the run records it: decided at `decided` (ISO), the `nth` of the `of`
 * orders of its UTC day, making a position of `percent` of equity.
 */
export const entry = (decided: string, nth = 1, of = nth, percent: number | null = null): TradeAnalysis.Entry => ({
  decidedAt: at(decided),
  nthOfDay: nth,
  ordersOfDay: of,
  positionPercent: percent
})

/** `2024-01-01` plus `days`, at `hour`:`minute` UTC, as ISO. */
export const day = (days: number, hour = 10, minute = 0): string =>
  new Date(Date.UTC(2024, 0, 1 + days, hour, minute)).toISOString()

/** Six winning AAPL trades and six losing MSFT ones. */
export const TRADES: ReadonlyArray<Trade> = Array.from({ length: 6 }, (_, i) => [
  trade({ symbol: "AAPL", entry: day(i), exit: day(i, 15), pnl: 100 }),
  trade({ symbol: "MSFT", entry: day(i, 11), exit: day(i, 16), pnl: -50 })
]).flat()

let seeded = 0

/**
 * A stored run of `owner` whose closed trades are `trades` (its events and rows written as the
 * recorder would), under a strategy of its own named `<label> <n>`.
 */
export const seedRun = (owner: string, options: { readonly label: string; readonly trades?: ReadonlyArray<Trade>; readonly llm?: Record<string, unknown> }) =>
  Effect.gen(function*() {
    const strategy = Schema.decodeUnknownSync(Strategy)({
      name: `${options.label} ${++seeded}`,
      symbols: ["AAPL", "MSFT"],
      agents: [{ type: "sma_crossover", params: { fast: 5, slow: 20 } }],
      ...(options.llm === undefined ? {} : { llm: options.llm })
    })
    const saved = yield* Strategies.saveVersion(owner, strategy)
    const created = yield* Runs.create({
      owner,
      strategyId: saved.strategyId,
      strategyVersion: saved.version,
      strategy,
      mode: "backtest",
      seed: "0",
      dataSource: { kind: "test" },
      dataFingerprint: "test",
      eventDetail: "decisions"
    })
    const sql = yield* SqlClient.SqlClient
    for (const [i, t] of (options.trades ?? TRADES).entries()) {
      const seq = i + 1
      const body = JSON.stringify({ _tag: "TradeClosed", run: created.id, seq, at: t.exitTs, trade: t })
      yield* sql`insert into run_events ${sql.insert({ runId: created.id, seq, tag: "TradeClosed", at: t.exitTs, hash: "0".repeat(64), body })}`
      yield* sql`insert into trades ${
        sql.insert({ runId: created.id, seq, symbol: t.symbol, side: t.side, entryTs: t.entryTs, exitTs: t.exitTs, pnl: t.pnl })
      }`
    }
    return { id: created.id, number: created.number, strategyId: saved.strategyId, strategy, name: strategy.name }
  }).pipe(Effect.orDie)
