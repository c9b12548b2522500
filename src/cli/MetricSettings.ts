/**
 * The settings a run's figures were computed with (`MetricsConfig`, docs/metrics.md): the annual
 * risk-free rate and the return periods a year. Sharpe and Sortino depend on both, volatility on
 * the periods; two runs computed with different settings are not on the same basis, and `runs
 * compare` and `leaderboard` say so rather than put their figures side by side silently.
 */
import type { Metrics, MetricsConfig } from "../../schemas/Metrics.js"

/** A figure that depends on the settings, with the settings it depends on. */
const DEPENDS: ReadonlyArray<readonly [keyof Metrics, string, ReadonlyArray<keyof MetricsConfig>]> = [
  ["annualVolatility", "volatility", ["periodsPerYear"]],
  ["sharpe", "Sharpe", ["periodsPerYear", "riskFreeRate"]],
  ["sortino", "Sortino", ["periodsPerYear", "riskFreeRate"]]
]

/** The settings in a few words: `risk-free 2% a year, 252 periods a year`. */
export const text = (config: MetricsConfig): string =>
  `risk-free ${Number((config.riskFreeRate * 100).toPrecision(12))}% a year, ${config.periodsPerYear} periods a year`

export const same = (a: MetricsConfig, b: MetricsConfig): boolean =>
  a.riskFreeRate === b.riskFreeRate && a.periodsPerYear === b.periodsPerYear

/** The figures (their labels) whose values the difference between `a` and `b` changes; none when they are the same. */
export const affected = (a: MetricsConfig, b: MetricsConfig): ReadonlyArray<string> =>
  DEPENDS.filter(([, , on]) => on.some((key) => a[key] !== b[key])).map(([, label]) => label)

/** Whether `metric` depends on the settings at all. */
export const dependsOn = (metric: keyof Metrics): boolean => DEPENDS.some(([key]) => key === metric)

/** Whether a difference in the settings between `a` and `b` changes `metric`. */
export const changes = (metric: keyof Metrics, a: MetricsConfig, b: MetricsConfig): boolean =>
  DEPENDS.some(([key, , on]) => key === metric && on.some((k) => a[k] !== b[k]))

const list = (labels: ReadonlyArray<string>): string =>
  labels.length <= 1 ? labels.join("") : `${labels.slice(0, -1).join(", ")} and ${labels[labels.length - 1]}`

/** `runs compare`'s note when the runs' settings differ: which figures are not on the same basis, and each run's settings. */
export const compareNote = (a: MetricsConfig, b: MetricsConfig): string | undefined => {
  const figures = affected(a, b)
  return figures.length === 0 ? undefined : `note: ${list(figures)} (marked *) are not on the same basis: a's are computed with ${text(a)}, b's with ${text(b)}; ` +
    `their difference is partly the settings' (a strategy's metrics section, docs/metrics.md)`
}

/** `compareNote` of two runs' metrics, when both have them (with their settings). */
export const compareNoteOf = (a: Metrics | null, b: Metrics | null): string | undefined =>
  a?.config === undefined || b?.config === undefined ? undefined : compareNote(a.config, b.config)

/**
 * The leaderboard's note when the ranked runs' settings differ for `metric`: how many settings,
 * and each with how many of the runs. Undefined when they are alike, or `metric` does not depend on them.
 */
export const boardNote = (metric: keyof Metrics, configs: ReadonlyArray<MetricsConfig>): string | undefined => {
  if (!dependsOn(metric) || configs.length === 0) return undefined
  const groups = new Map<string, { readonly config: MetricsConfig; n: number }>()
  for (const config of configs) {
    // Only the settings `metric` depends on tell runs apart.
    const key = DEPENDS.find(([k]) => k === metric)![2].map((k) => String(config[k])).join(" ")
    const group = groups.get(key)
    if (group === undefined) groups.set(key, { config, n: 1 })
    else group.n++
  }
  if (groups.size < 2) return undefined
  const parts = [...groups.values()].sort((x, y) => y.n - x.n).map((g) => `${g.n} with ${text(g.config)}`)
  return `note: these ${metric} figures are not on the same basis: ${parts.join("; ")} (the "metricsConfig" of each entry in --json)`
}
