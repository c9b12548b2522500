/**
 * Performance metrics of a run and the settings they depend on. Every definition, unit and edge
 * case is written down in docs/metrics.md; src/trading/Metrics.ts computes them. A figure that is
 * undefined for the data (a Sharpe ratio with zero volatility, a profit factor without a losing
 * trade, a CAGR over no time) is `null`, never NaN or Infinity: metrics go into JSON documents and
 * run events, where neither survives.
 */
import { Schema } from "effect"
import { Timestamp } from "./Ids.js"
import { Money } from "./Money.js"

/** How returns are annualised and what they are measured against. Decoded from a strategy's `metrics` section. */
export const MetricsConfig = Schema.Struct({
  /** Return periods (days with data) per year: 252 for exchange trading days, 365 for markets that never close. Annualises by √periodsPerYear. */
  periodsPerYear: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.finite({ message: () => "periodsPerYear must be a finite number" }),
      Schema.positive({
        message: () => "periodsPerYear must be greater than 0 (252 for exchange trading days, 365 for markets open every day)"
      }),
      // 1e308 was taken, and annualised a Sharpe ratio to 2.7e152.
      Schema.lessThanOrEqualTo(31_536_000, { message: () => "periodsPerYear must be at most 31536000 (one return a second)" })
    ),
    { default: () => 252, exact: true }
  ),
  /** Annual risk-free rate as a fraction (0.05 = 5% a year), compounded: the daily rate is (1 + r)^(1/periodsPerYear) − 1. */
  riskFreeRate: Schema.optionalWith(
    Schema.Number.pipe(
      Schema.finite({ message: () => "riskFreeRate must be a finite number" }),
      Schema.greaterThan(-1, { message: () => "riskFreeRate is an annual fraction (0.05 = 5%) and must be greater than -1" })
    ),
    { default: () => 0, exact: true }
  )
})
export type MetricsConfig = typeof MetricsConfig.Type

/**
 * One mark-to-market point of a run's equity curve, taken once per bar time (all symbols of the run
 * share one curve). `exposed` is true when any position is open at that mark.
 */
export const EquityPoint = Schema.Struct({
  ts: Timestamp,
  equity: Money,
  exposed: Schema.Boolean
})
export type EquityPoint = typeof EquityPoint.Type

/**
 * One UTC calendar day of the curve resampled to daily: the equity at the day's last point and the
 * return against the previous day with data (the initial cash for the first day). `ret` is null
 * when that base is not positive.
 */
export const DailyReturn = Schema.Struct({
  /** Midnight UTC of the day. */
  day: Timestamp,
  close: Money,
  ret: Schema.NullOr(Schema.Number.pipe(Schema.finite()))
})
export type DailyReturn = typeof DailyReturn.Type

/** A curve point arrived with a time not after the previous point's: a bug in the caller, raised as a defect. */
export class UnorderedEquityPoint extends Schema.TaggedError<UnorderedEquityPoint>()("UnorderedEquityPoint", {
  ts: Timestamp,
  previousTs: Timestamp
}) {
  override get message() {
    return `equity point at ${this.ts} is not after the previous point at ${this.previousTs}: points must be strictly increasing in time`
  }
}

const Figure = Schema.Number.pipe(Schema.finite())
const OptionalFigure = Schema.NullOr(Figure)
const Fraction01 = Schema.Number.pipe(Schema.finite(), Schema.between(0, 1))
const Count = Schema.Int.pipe(Schema.nonNegative())
const Days = Schema.Number.pipe(Schema.finite(), Schema.nonNegative())

/** The metrics of a run (or of its first part, when asked mid-run). Fractions are plain (0.05 = 5%). */
export const Metrics = Schema.Struct({
  /** The settings these figures were computed with. */
  config: MetricsConfig,
  initialCash: Money,
  /** Equity at the last point; the initial cash when there is none. */
  finalEquity: Money,
  /** First and last point of the curve (null without points). */
  startTs: Schema.NullOr(Timestamp),
  endTs: Schema.NullOr(Timestamp),
  /** Points of the curve. */
  bars: Count,
  /** UTC calendar days with at least one point. */
  days: Count,

  /** finalEquity / initialCash − 1; null when the initial cash is not positive. */
  totalReturn: OptionalFigure,
  /** (finalEquity / initialCash)^(1/years) − 1, years = (endTs − startTs) / 365.25 days; −1 when equity ended at or below 0. */
  cagr: OptionalFigure,
  /** Sample standard deviation of daily returns × √periodsPerYear; null with fewer than 2 returns. */
  annualVolatility: Schema.NullOr(Schema.Number.pipe(Schema.finite(), Schema.nonNegative())),
  /** (mean daily return − daily risk-free) / sample stdev × √periodsPerYear; null when the stdev is 0 or with fewer than 2 returns. */
  sharpe: OptionalFigure,
  /** (mean daily return − daily risk-free) / downside deviation × √periodsPerYear; null when no day fell below the risk-free rate. */
  sortino: OptionalFigure,
  /** cagr / maxDrawdown; null without a drawdown or a CAGR. */
  calmar: OptionalFigure,

  /** Deepest fall from a running peak, as a positive fraction of that peak (0 when equity never fell). */
  maxDrawdown: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  /** The peak the deepest drawdown fell from, its lowest point, and its recovery (null if not recovered). */
  maxDrawdownPeakTs: Schema.NullOr(Timestamp),
  maxDrawdownTroughTs: Schema.NullOr(Timestamp),
  maxDrawdownRecoveryTs: Schema.NullOr(Timestamp),
  /** Bars and calendar days from that peak to its recovery, or to the last point if not recovered. */
  maxDrawdownBars: Count,
  maxDrawdownDays: Days,
  /** The longest time spent below a previous peak (any depth), in bars and in calendar days, each maximised on its own. */
  longestDrawdownBars: Count,
  longestDrawdownDays: Days,

  /** Share of points at which a position was open; null without points. */
  exposure: Schema.NullOr(Fraction01),

  /** Closed trades (round trips). A trade with P&L exactly 0 is neither a win nor a loss. */
  tradeCount: Count,
  winningTrades: Count,
  losingTrades: Count,
  /** winningTrades / tradeCount; null without trades. */
  winRate: Schema.NullOr(Fraction01),
  /** grossProfit / −grossLoss; null without a losing trade. */
  profitFactor: Schema.NullOr(Schema.Number.pipe(Schema.finite(), Schema.nonNegative())),
  /** Sum of winning trades' P&L (≥ 0). */
  grossProfit: Money,
  /** Sum of losing trades' P&L (≤ 0: money keeps its sign). */
  grossLoss: Money,
  /** Mean P&L of winning trades (> 0) and of losing trades (< 0), to the nearest micro; null without such trades. */
  averageWin: Schema.NullOr(Money),
  averageLoss: Schema.NullOr(Money)
})
export type Metrics = typeof Metrics.Type
