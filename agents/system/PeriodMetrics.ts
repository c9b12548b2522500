/**
 * A run's metrics over a period, with the definitions of its own (docs/metrics.md): the run's equity
 * marked at every bar's close, rebuilt from its bars and fills (src/trading/EquityCurve.ts), folded
 * from the equity at the period's start. The rebuilt curve must give what the run recorded — its
 * equity at every fill and, for a run that completed, its own metrics — or no figure is made of it.
 */
import { Either } from "effect"
import type { Metrics, MetricsConfig } from "../../schemas/Metrics.js"
import type { Money } from "../../schemas/Money.js"
import type { Trade } from "../../schemas/Trade.js"
import { CurveNotRebuilt, replay, type ReplayInput } from "../../src/trading/EquityCurve.js"
import { MetricsAccumulator } from "../../src/trading/Metrics.js"
import * as Format from "./internal/Format.js"

export interface PeriodInput extends ReplayInput {
  readonly config: MetricsConfig
  /** The period: bars at or after `from` and before `to` (epoch ms); either end open when undefined. */
  readonly from?: number | undefined
  readonly to?: number | undefined
  /** The equity the run recorded at its fills, by time: the last `PortfolioUpdated` of each time. */
  readonly recordedEquity: ReadonlyMap<number, number>
  /** A completed run's own metrics, which the whole rebuilt curve must give; null for a run that has not completed. */
  readonly recordedMetrics: Metrics | null
}

/** The figures that come from the curve (the rest are the trades'). */
const CURVE_FIGURES = [
  "finalEquity",
  "startTs",
  "endTs",
  "bars",
  "days",
  "totalReturn",
  "cagr",
  "annualVolatility",
  "sharpe",
  "sortino",
  "calmar",
  "maxDrawdown",
  "maxDrawdownPeakTs",
  "maxDrawdownTroughTs",
  "maxDrawdownRecoveryTs",
  "maxDrawdownBars",
  "maxDrawdownDays",
  "longestDrawdownBars",
  "longestDrawdownDays",
  "exposure"
] as const satisfies ReadonlyArray<keyof Metrics>

/** Equal up to the last digits a JSON round trip through the database may change. */
const same = (a: number | null, b: number | null): boolean =>
  a === null || b === null ? a === b : Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))

/** The first curve figure of `rebuilt` that is not the run's own, if any. */
export const firstDifference = (rebuilt: Metrics, recorded: Metrics): string | undefined => {
  for (const field of CURVE_FIGURES) {
    if (!same(rebuilt[field], recorded[field])) return `${field} comes out ${rebuilt[field]}, the run recorded ${recorded[field]}`
  }
  return undefined
}

/** The period's curve, rebuilt and checked: its metrics given the trades closed in it. */
export interface PeriodCurve {
  /** The last bar time of the rebuilt curve (null when the run has none). */
  readonly lastTs: number | null
  readonly metrics: (trades: ReadonlyArray<Trade>) => Metrics
}

/**
 * The curve of the period: its points are the bars in it, its initial cash the equity at the last
 * bar before it (the run's initial cash when there is none). With the trades closed in it, a period
 * holding the whole run gives the run's own metrics.
 */
export const periodCurve = (input: PeriodInput): Either.Either<PeriodCurve, CurveNotRebuilt> => {
  const from = input.from ?? Number.NEGATIVE_INFINITY
  const to = input.to ?? Number.POSITIVE_INFINITY
  const whole = input.recordedMetrics === null ? undefined : new MetricsAccumulator(input.initialCash, input.config)
  let before: number = input.initialCash
  let period: MetricsAccumulator | undefined
  let mismatch: string | undefined
  let matched = 0
  let lastTs = Number.NEGATIVE_INFINITY
  const replayed = replay(input, (ts, equity, exposed) => {
    lastTs = ts
    const recorded = input.recordedEquity.get(ts)
    if (recorded !== undefined) {
      matched++
      if (recorded !== equity && mismatch === undefined) {
        mismatch = `at ${Format.time(ts)} the rebuilt equity is ${Format.exactMoney(equity)}, the run recorded ${Format.exactMoney(recorded)}`
      }
    }
    whole?.add(ts, equity, exposed)
    if (ts < from) before = equity
    else if (ts < to) (period ??= new MetricsAccumulator(before as Money, input.config)).add(ts, equity, exposed)
  })
  if (Either.isLeft(replayed)) return Either.left(replayed.left)
  if (mismatch !== undefined) return Either.left(new CurveNotRebuilt({ reason: mismatch }))
  let recordedWithin = 0
  for (const ts of input.recordedEquity.keys()) if (ts <= lastTs) recordedWithin++
  if (matched !== recordedWithin) {
    return Either.left(new CurveNotRebuilt({ reason: `the run recorded its equity at times that are no bar time of its data` }))
  }
  if (whole !== undefined) {
    const difference = firstDifference(whole.result([]), input.recordedMetrics!)
    if (difference !== undefined) return Either.left(new CurveNotRebuilt({ reason: `the rebuilt curve is not the run's: ${difference}` }))
  }
  const curve = period ?? new MetricsAccumulator(before as Money, input.config)
  return Either.right({ lastTs: replayed.right === 0 ? null : lastTs, metrics: (trades) => curve.result(trades) })
}
