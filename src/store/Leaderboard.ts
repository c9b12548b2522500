/**
 * The leaderboard: each strategy's best completed run by a metric of its `runs.metrics`, ranked by
 * the rules `LeaderboardEntry` states (schemas/Rpc.ts). A null figure is either the unbounded best
 * (no losing trade, no down day, no drawdown) or missing data (docs/metrics.md lists when each is
 * null), and a run that never traded has figures that measure no risk taken: the rules tell them
 * apart here, in one query that picks each strategy's best run and ranks the strategies.
 */
import { SqlClient, type Statement } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { MetricsConfig } from "../../schemas/Metrics.js"
import type { LeaderboardEntry, LeaderboardMetric } from "../../schemas/Rpc.js"
import { storeError } from "./StoreError.js"

/** How a metric ranks, beyond its value. */
interface Ranking {
  /** Lower is better (drawdown). */
  readonly lowerIsBetter: boolean
  /** Ranked only for a run that traded: its figure says something about risk or trades taken. */
  readonly tradedOnly: boolean
  /** A null figure that is the unbounded best: when it is (the other figures that say so), and what orders such runs. */
  readonly unbounded?: { readonly when: Statement.Fragment; readonly then: string }
}

/** `metric`'s ranking; `figure` reads one figure of a run's metrics (null when it is). */
const rankingOf = (sql: SqlClient.SqlClient, metric: LeaderboardMetric, figure: (key: string) => Statement.Fragment): Ranking => {
  switch (metric) {
    case "totalReturn":
      return { lowerIsBetter: false, tradedOnly: false }
    case "sharpe":
    case "winRate":
      return { lowerIsBetter: false, tradedOnly: true }
    case "maxDrawdown":
      return { lowerIsBetter: true, tradedOnly: true }
    case "sortino":
      // No day below the target, and not every day alike: every day at or above it, some above.
      return { lowerIsBetter: false, tradedOnly: true, unbounded: { when: sql`${figure("annualVolatility")} > 0`, then: "totalReturn" } }
    case "calmar":
      // Never below its peak, and ahead: a gain without a drawdown.
      return { lowerIsBetter: false, tradedOnly: true, unbounded: { when: sql`${figure("maxDrawdown")} = 0 and ${figure("cagr")} > 0`, then: "cagr" } }
    case "profitFactor":
      // Won, and never lost.
      return {
        lowerIsBetter: false,
        tradedOnly: true,
        unbounded: { when: sql`${figure("winningTrades")} > 0 and ${figure("losingTrades")} = 0`, then: "grossProfit" }
      }
  }
}

export interface Options {
  readonly metric: LeaderboardMetric
  /** Only this user's runs (not an admin). */
  readonly owner?: string
  readonly limit: number
  /** How many ranks to skip: the page from rank `offset + 1` (default 0). */
  readonly offset?: number
}

/** The board: at most `limit` strategies from rank `offset + 1`, each with its best run by `metric`, best first. */
export const best = Effect.fn("Leaderboard.best")(function*({ limit, metric, offset = 0, owner }: Options) {
  const sql = yield* SqlClient.SqlClient
  const figure = (key: string) => sql`(r.metrics ->> ${key})::float8`
  const ranking = rankingOf(sql, metric, figure)
  const unbounded = ranking.unbounded === undefined ? sql`false` : sql`(${figure(metric)} is null and ${ranking.unbounded.when})`
  const tiebreak = ranking.unbounded === undefined ? sql`null::float8` : figure(ranking.unbounded.then)
  // A closed trade, or a position held at a mark.
  const traded = sql`(${figure("tradeCount")} > 0 or coalesce(${figure("exposure")}, 0) > 0)`
  const order = ranking.lowerIsBetter ? sql`asc` : sql`desc`
  const rows = yield* sql<{ strategy: string; owner: string; run: string; number: number; value: number | null; config: unknown }>`
    select strategy, owner, run, number, value, config from (
      select distinct on (s.id) s.name as strategy, u.name as owner, r.id as run, r.number, v.value, v.unbounded, v.tiebreak,
        r.metrics -> 'config' as config
      from runs r
        join strategies s on s.id = r.strategy_id
        join users u on u.id = s.owner_id
        cross join lateral (select ${figure(metric)} as value, ${unbounded} as unbounded, ${tiebreak} as tiebreak) v
      where r.status = 'completed' and s.deleted_at is null
        ${owner === undefined ? sql`` : sql`and r.owner_id = ${owner}`}
        and (v.value is not null or v.unbounded)
        ${ranking.tradedOnly ? sql`and ${traded}` : sql``}
      order by s.id, v.unbounded desc, v.value ${order} nulls last, v.tiebreak desc nulls last, r.number
    ) b
    order by unbounded desc, value ${order} nulls last, tiebreak desc nulls last, strategy, owner, run
    limit ${limit} offset ${offset}`
  return rows.map((row): LeaderboardEntry => ({
    strategy: row.strategy,
    run: row.run,
    value: row.value,
    ref: `${row.strategy}#${row.number}`,
    owner: row.owner,
    // Stored with the metrics they were computed with; one that does not read is left out rather than the board failing.
    ...Option.match(decodeConfig(row.config), {
      onNone: () => ({}),
      onSome: (metricsConfig) => ({ metricsConfig })
    })
  }))
}, storeError("read the leaderboard"))

const decodeConfig = Schema.decodeUnknownOption(MetricsConfig)
