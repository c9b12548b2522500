/**
 * Performance metrics of a run, as docs/metrics.md defines them: returns, risk, drawdown, exposure
 * and trade statistics. One code path: the batch `compute` folds the same `MetricsAccumulator` a
 * backtest feeds bar by bar, so the two cannot disagree, and a run of a million bars keeps a few
 * dozen numbers instead of its equity curve (daily returns only need each day's last point).
 */
import { Schema } from "effect"
import type { Timestamp } from "../../schemas/Ids.js"
import {
  type DailyReturn,
  type EquityPoint,
  type Metrics,
  MetricsConfig,
  UnorderedEquityPoint
} from "../../schemas/Metrics.js"
import type { Money } from "../../schemas/Money.js"
import type { Trade } from "../../schemas/Trade.js"

const DAY_MS = 86_400_000
/** CAGR counts calendar time in Julian years, so leap years need no special case. */
const YEAR_MS = 365.25 * DAY_MS

/** periodsPerYear 252, riskFreeRate 0. */
export const defaultConfig: MetricsConfig = Schema.decodeSync(MetricsConfig)({})

/** The per-period (daily) risk-free rate: the annual rate compounded down, (1 + rf)^(1/periodsPerYear) − 1. */
export const riskFreePerPeriod = (config: MetricsConfig): number =>
  Math.pow(1 + config.riskFreeRate, 1 / config.periodsPerYear) - 1

const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null)

/** Nearest integer, halves away from zero, so an average loss rounds like the average win of the mirrored trades. */
const roundHalfAwayFromZero = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x))

/** The trade half of the metrics: counts, win rate, profit factor, gross and average win and loss. */
export const tradeStats = (trades: ReadonlyArray<Trade>): Pick<
  Metrics,
  | "tradeCount"
  | "winningTrades"
  | "losingTrades"
  | "winRate"
  | "profitFactor"
  | "grossProfit"
  | "grossLoss"
  | "averageWin"
  | "averageLoss"
> => {
  let wins = 0
  let losses = 0
  let grossProfit = 0
  let grossLoss = 0
  for (const trade of trades) {
    if (trade.pnl > 0) {
      wins++
      grossProfit += trade.pnl
    } else if (trade.pnl < 0) {
      losses++
      grossLoss += trade.pnl
    }
  }
  return {
    tradeCount: trades.length,
    winningTrades: wins,
    losingTrades: losses,
    winRate: trades.length === 0 ? null : wins / trades.length,
    profitFactor: losses === 0 ? null : finiteOrNull(grossProfit / -grossLoss),
    grossProfit: grossProfit as Money,
    grossLoss: grossLoss as Money,
    averageWin: wins === 0 ? null : (roundHalfAwayFromZero(grossProfit / wins) as Money),
    averageLoss: losses === 0 ? null : (roundHalfAwayFromZero(grossLoss / losses) as Money)
  }
}

/**
 * The curve resampled to one point per UTC calendar day (its last point), with each day's return
 * against the previous day with data — the initial cash for the first day. Days without points
 * (weekends, holidays, gaps) are absent, not zero-return days. For reports and charts; the
 * accumulator does the same resampling without keeping the days.
 */
export const dailyReturns = (curve: ReadonlyArray<EquityPoint>, initialCash: Money): Array<DailyReturn> => {
  const days: Array<DailyReturn> = []
  let base: number = initialCash
  let i = 0
  while (i < curve.length) {
    const day = Math.floor(curve[i]!.ts / DAY_MS)
    while (i + 1 < curve.length && Math.floor(curve[i + 1]!.ts / DAY_MS) === day) i++
    const close = curve[i]!.equity
    days.push({ day: (day * DAY_MS) as Timestamp, close, ret: base > 0 ? finiteOrNull(close / base - 1) : null })
    base = close
    i++
  }
  return days
}

/**
 * Folds an equity curve point by point. `add` is O(1) and allocates nothing; `result` may be called
 * at any time (a paper run's live figures) and leaves the accumulator as it was.
 */
export class MetricsAccumulator {
  readonly #initialCash: Money
  readonly #config: MetricsConfig
  readonly #riskFree: number

  #bars = 0
  #exposedBars = 0
  #firstTs = 0
  #lastTs = 0

  // Daily resampling: the open day ends at #dayEnd; its close so far is #dayClose.
  #days = 0
  #dayEnd = -Infinity
  #dayClose = 0
  /** The previous day's close (the initial cash before the first day): the base of the next return. */
  #base = 0

  // Daily returns, Welford's running mean and sum of squared deviations, and Σ min(0, r − rf)².
  #n = 0
  #mean = 0
  #m2 = 0
  #downside2 = 0
  /** Days whose base was not positive (equity wiped out or below): their return is undefined. */
  #undefinedReturns = 0

  // Drawdown: the running peak (the initial cash counts as one, at the first point).
  #peak = 0
  #peakTs = 0
  #peakBar = 0
  #underwater = false
  #maxDrawdown = 0
  #maxPeakTs = 0
  #maxPeakBar = 0
  #maxTroughTs = 0
  /** Whether the deepest drawdown so far is the current, unrecovered one. */
  #maxOpen = false
  #maxRecoveryTs = 0
  #maxRecoveryBar = 0
  #longestBars = 0
  #longestMs = 0

  constructor(initialCash: Money, config: MetricsConfig = defaultConfig) {
    this.#initialCash = initialCash
    this.#config = config
    this.#riskFree = riskFreePerPeriod(config)
    this.#base = initialCash
    this.#peak = initialCash
  }

  /** One mark-to-market point; `ts` must be strictly after the previous point's (else an `UnorderedEquityPoint` defect). */
  add(ts: Timestamp, equity: Money, exposed: boolean): void {
    const bar = this.#bars
    if (bar === 0) {
      this.#firstTs = ts
      this.#peakTs = ts
    } else if (ts <= this.#lastTs) {
      throw new UnorderedEquityPoint({ ts, previousTs: this.#lastTs as Timestamp })
    }
    // Comparing with the day's end instead of dividing by DAY_MS: points only move forward.
    if (ts >= this.#dayEnd) {
      if (bar > 0) this.#closeDay()
      this.#dayEnd = (Math.floor(ts / DAY_MS) + 1) * DAY_MS
    }
    this.#dayClose = equity

    if (equity >= this.#peak) {
      if (this.#underwater) {
        this.#underwater = false
        if (bar - this.#peakBar > this.#longestBars) this.#longestBars = bar - this.#peakBar
        if (ts - this.#peakTs > this.#longestMs) this.#longestMs = ts - this.#peakTs
        if (this.#maxOpen) {
          this.#maxOpen = false
          this.#maxRecoveryTs = ts
          this.#maxRecoveryBar = bar
        }
      }
      this.#peak = equity
      this.#peakTs = ts
      this.#peakBar = bar
    } else {
      this.#underwater = true
      if (this.#peak > 0) {
        const drawdown = (this.#peak - equity) / this.#peak
        if (drawdown > this.#maxDrawdown) {
          this.#maxDrawdown = drawdown
          this.#maxPeakTs = this.#peakTs
          this.#maxPeakBar = this.#peakBar
          this.#maxTroughTs = ts
          this.#maxOpen = true
        }
      }
    }

    if (exposed) this.#exposedBars++
    this.#lastTs = ts
    this.#bars = bar + 1
  }

  #closeDay(): void {
    this.#days++
    const base = this.#base
    const close = this.#dayClose
    this.#base = close
    if (base <= 0) {
      this.#undefinedReturns++
      return
    }
    const r = close / base - 1
    const n = ++this.#n
    const delta = r - this.#mean
    this.#mean += delta / n
    this.#m2 += delta * (r - this.#mean)
    const below = r - this.#riskFree
    if (below < 0) this.#downside2 += below * below
  }

  #copy(): MetricsAccumulator {
    const c = new MetricsAccumulator(this.#initialCash, this.#config)
    c.#bars = this.#bars
    c.#exposedBars = this.#exposedBars
    c.#firstTs = this.#firstTs
    c.#lastTs = this.#lastTs
    c.#days = this.#days
    c.#dayEnd = this.#dayEnd
    c.#dayClose = this.#dayClose
    c.#base = this.#base
    c.#n = this.#n
    c.#mean = this.#mean
    c.#m2 = this.#m2
    c.#downside2 = this.#downside2
    c.#undefinedReturns = this.#undefinedReturns
    c.#peak = this.#peak
    c.#peakTs = this.#peakTs
    c.#peakBar = this.#peakBar
    c.#underwater = this.#underwater
    c.#maxDrawdown = this.#maxDrawdown
    c.#maxPeakTs = this.#maxPeakTs
    c.#maxPeakBar = this.#maxPeakBar
    c.#maxTroughTs = this.#maxTroughTs
    c.#maxOpen = this.#maxOpen
    c.#maxRecoveryTs = this.#maxRecoveryTs
    c.#maxRecoveryBar = this.#maxRecoveryBar
    c.#longestBars = this.#longestBars
    c.#longestMs = this.#longestMs
    return c
  }

  /** The metrics of the points added so far and of the given closed trades. */
  result(trades: ReadonlyArray<Trade>): Metrics {
    // The open day is closed on a copy, so that adding more points afterwards is unaffected.
    const s = this.#copy()
    if (s.#bars > 0) s.#closeDay()
    return s.#summary(trades)
  }

  #summary(trades: ReadonlyArray<Trade>): Metrics {
    const config = this.#config
    const initialCash = this.#initialCash
    const hasPoints = this.#bars > 0
    const finalEquity = hasPoints ? (this.#dayClose as Money) : initialCash
    const lastBar = this.#bars - 1

    const totalReturn = initialCash > 0 ? finiteOrNull(finalEquity / initialCash - 1) : null
    const years = (this.#lastTs - this.#firstTs) / YEAR_MS
    const cagr = !hasPoints || years <= 0 || initialCash <= 0
      ? null
      : finalEquity <= 0
      ? -1
      : finiteOrNull(Math.pow(finalEquity / initialCash, 1 / years) - 1)

    const annualise = Math.sqrt(config.periodsPerYear)
    const n = this.#n
    const stdev = n >= 2 ? Math.sqrt(this.#m2 / (n - 1)) : 0
    const downsideDeviation = Math.sqrt(this.#downside2 / n)
    const excess = this.#mean - this.#riskFree
    // A day whose return is undefined breaks the series: statistics of the days left would describe
    // a run that never lost everything (a wiped-out run showed a Sharpe of +1.4), so there are none.
    const whole = n >= 2 && this.#undefinedReturns === 0
    const annualVolatility = whole ? finiteOrNull(stdev * annualise) : null
    const sharpe = whole && stdev > 0 ? finiteOrNull((excess / stdev) * annualise) : null
    const sortino = whole && downsideDeviation > 0 ? finiteOrNull((excess / downsideDeviation) * annualise) : null

    const maxDrawdown = this.#maxDrawdown
    const hasDrawdown = maxDrawdown > 0
    const calmar = hasDrawdown && cagr !== null ? finiteOrNull(cagr / maxDrawdown) : null
    const maxEndTs = this.#maxOpen ? this.#lastTs : this.#maxRecoveryTs
    const maxEndBar = this.#maxOpen ? lastBar : this.#maxRecoveryBar
    // An episode still under water at the end counts up to the last point.
    const openBars = this.#underwater ? lastBar - this.#peakBar : 0
    const openMs = this.#underwater ? this.#lastTs - this.#peakTs : 0

    return {
      config,
      initialCash,
      finalEquity,
      startTs: hasPoints ? (this.#firstTs as Timestamp) : null,
      endTs: hasPoints ? (this.#lastTs as Timestamp) : null,
      bars: this.#bars,
      days: this.#days,
      totalReturn,
      cagr,
      annualVolatility,
      sharpe,
      sortino,
      calmar,
      maxDrawdown,
      maxDrawdownPeakTs: hasDrawdown ? (this.#maxPeakTs as Timestamp) : null,
      maxDrawdownTroughTs: hasDrawdown ? (this.#maxTroughTs as Timestamp) : null,
      maxDrawdownRecoveryTs: hasDrawdown && !this.#maxOpen ? (this.#maxRecoveryTs as Timestamp) : null,
      maxDrawdownBars: hasDrawdown ? maxEndBar - this.#maxPeakBar : 0,
      maxDrawdownDays: hasDrawdown ? (maxEndTs - this.#maxPeakTs) / DAY_MS : 0,
      longestDrawdownBars: Math.max(this.#longestBars, openBars),
      longestDrawdownDays: Math.max(this.#longestMs, openMs) / DAY_MS,
      exposure: hasPoints ? this.#exposedBars / this.#bars : null,
      ...tradeStats(trades)
    }
  }
}

/** The metrics of a whole equity curve (points in strictly increasing time) and its closed trades. */
export const compute = (input: {
  readonly curve: ReadonlyArray<EquityPoint>
  readonly trades: ReadonlyArray<Trade>
  readonly initialCash: Money
  readonly config?: MetricsConfig
}): Metrics => {
  const accumulator = new MetricsAccumulator(input.initialCash, input.config ?? defaultConfig)
  for (const point of input.curve) accumulator.add(point.ts, point.equity, point.exposed)
  return accumulator.result(input.trades)
}
