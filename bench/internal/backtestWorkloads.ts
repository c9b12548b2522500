/**
 * The workloads of bench/backtest.ts, shared with the fresh processes it starts
 * (internal/backtestChild.ts): W1, the six-analyst swarm on a synthetic market; W2, backtrader's
 * SMA(10)/SMA(50) crossover on its 100 generated CSV files (../shared/W2.md); W3, an order on
 * every bar. Each is a strategy, decoded as a strategy file would be, and a feed.
 */
import { Effect, Schema } from "effect"
import { analysts } from "../../agents/registry.js"
import type { AnyModel } from "../../agents/analysts/Model.js"
import type { InvalidAgent } from "../../schemas/AnalystProtocol.js"
import type { Symbol } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Backtest from "../../src/swarm/Backtest.js"
import * as Flip from "./flip.js"
import { progress } from "./report.js"

const decodeStrategy = Schema.decodeUnknownSync(Strategy)

/** `S000`, `S001`, …: already in code-unit order. */
export const symbols = (n: number): Array<Symbol> => Array.from({ length: n }, (_, i) => `S${String(i).padStart(3, "0")}` as Symbol)

/** Daily bars, weekdays only, from 1986-01-06: 10,000 bars reach 2024, 20,000 reach 2062. */
export const syntheticConfig = (symbolCount: number, bars: number, seed: number): Synthetic.Config => ({
  ...Synthetic.defaults,
  seed,
  symbols: symbols(symbolCount) as unknown as Synthetic.Config["symbols"],
  bars,
  start: Date.UTC(1986, 0, 6)
})

// --- W1 --------------------------------------------------------------------------------------------

export const W1_SYMBOLS = 100
export const W1_BARS = 10_000
export const W1_SEED = 20_240_601
/** Small enough that all 100 positions fit under the default risk limits (80 % gross, 10 % cash reserve). */
export const W1_SIZING_PCT = 0.8

export const w1Strategy = (symbolCount: number) =>
  decodeStrategy({
    name: "W1 six analysts",
    symbols: symbols(symbolCount),
    agents: ["sma_crossover", "ema_crossover", "rsi_reversion", "bollinger_breakout", "macd_momentum", "volume_surge"].map((type) => ({
      type
    })),
    // Sparse orders: act only on a clear majority (half the weight voting, half the score agreeing).
    consensus: { quorum: 0.5, minDecisionConfidence: 0.5 },
    sizing: { mode: "percent_of_equity", value: W1_SIZING_PCT }
  })

export const w1 = (symbolCount: number, bars: number): Backtest.Options => ({
  strategy: w1Strategy(symbolCount),
  feed: Feed.synthetic(syntheticConfig(symbolCount, bars, W1_SEED))
})

export const W1_DESCRIPTION = (symbolCount: number, bars: number) =>
  `${symbolCount} symbols x ${bars} daily bars (${symbolCount * bars} bars) of Feed.synthetic (Synthetic.defaults, seed ` +
  `${W1_SEED}, weekdays from 1986-01-06; generated lazily, slice by slice, inside the timed run); strategy: six analysts ` +
  `(sma_crossover, ema_crossover, rsi_reversion, bollinger_breakout, macd_momentum, volume_surge, default params, weight 1), ` +
  `consensus quorum 0.5 and minDecisionConfidence 0.5 (sparse orders), default risk and execution (next_open, no costs), long only, sizing percent_of_equity ${W1_SIZING_PCT} %, ` +
  `events "decisions"`

// --- W2 --------------------------------------------------------------------------------------------

export const w2Strategy = () =>
  decodeStrategy({
    name: "W2 SMA(10)/SMA(50) crossover",
    symbols: Array.from({ length: Synthetic.W2_FILES }, (_, i) => Synthetic.w2FileName(i).replace(/\.csv$/, "")),
    allowShort: true,
    // W2.md: act on crosses only — a tie of the averages keeps the position (backtrader's CrossOver).
    agents: [{ type: "sma_crossover", params: { fast: 10, slow: 50, whenEqual: "abstain" } }],
    sizing: { mode: "fixed_quantity", value: 1, allowShort: true },
    execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }
  })

// --- W3 --------------------------------------------------------------------------------------------

export const W3_SYMBOLS = 20
export const W3_BARS = 10_000
export const W3_SEED = 20_240_603

export const flipRegistry: ReadonlyMap<string, AnyModel> = new Map<string, AnyModel>([...analysts, [Flip.model.type, Flip.model]])

export const w3 = (symbolCount: number, bars: number): Backtest.Options => ({
  strategy: decodeStrategy({
    name: "W3 an order on every bar",
    symbols: symbols(symbolCount),
    allowShort: true,
    agents: [{ type: Flip.model.type }],
    sizing: { mode: "fixed_quantity", value: 1, allowShort: true },
    execution: { fillTiming: "next_open", slippageBps: 0, commission: { _tag: "none" } }
  }),
  feed: Feed.synthetic(syntheticConfig(symbolCount, bars, W3_SEED)),
  registry: flipRegistry
})

// --- running ---------------------------------------------------------------------------------------

export interface Timed {
  readonly result: Backtest.Result
  readonly seconds: number
}

/** Run a backtest, timed from the call to the result, with a progress line on stderr every few seconds. */
export const timedRun = (label: string, options: Backtest.Options): Effect.Effect<Timed, Backtest.BacktestError | InvalidAgent> =>
  Effect.suspend(() => {
    const t0 = performance.now()
    let shown = t0
    return Backtest.run({
      ...options,
      onProgress: (p) => {
        const now = performance.now()
        if (now - shown < 3_000) return
        shown = now
        const total = options.feed.bars === undefined ? "" : ` of ${options.feed.bars}`
        progress(`  ${label}: ${p.bars}${total} bars, ${p.orders} orders, ${Math.round(p.bars / ((now - t0) / 1000))} bars/s so far`)
      }
    }).pipe(Effect.map((result) => ({ result, seconds: (performance.now() - t0) / 1000 })))
  })

/** The counts a figure's workload quotes. */
export const describeCounts = (result: Backtest.Result): string => {
  const c = result.counts
  return `${c.bars} bars, ${c.slices} slices, ${c.rounds} rounds, ${c.decisions} decisions, ${c.orders} orders, ` +
    `${c.fills} fills, ${c.rejected} rejected, ${result.trades.length} closed trades, ${c.events} events, status ${result.status}` +
    (result.failure === undefined ? "" : ` (${result.failure})`) + `, trading ${result.tradingState}`
}
