/**
 * `swarm leaderboard [--metric m] [--limit n] [--json]`: each strategy's best completed run on a
 * server by one metric, best first (the `leaderboard` procedure; its ranking rules are
 * `LeaderboardEntry` in schemas/Rpc.ts, the metrics docs/metrics.md). The caller's strategies; an
 * admin's board has everyone's, with their owners.
 */
import { Command, Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import { type LeaderboardEntry, LeaderboardEntry as EntrySchema, LeaderboardMetric } from "../../schemas/Rpc.js"
import { choice, count, json, toJson } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import { table } from "./RunsView.js"
import { percent, ratio } from "./Summary.js"
import type { Wiring } from "./Wiring.js"

const METRICS = LeaderboardMetric.literals
type Metric = LeaderboardMetric

/** As the server answers without a limit. */
const DEFAULT_LIMIT = 20
/** The contract's largest. */
const MAX_LIMIT = 1_000

/** Fractions are shown as percentages, ratios as they are. */
const FRACTIONS: ReadonlyArray<Metric> = ["totalReturn", "maxDrawdown", "winRate"]

/** Why a null value ranks where it does (schemas/Rpc.ts `LeaderboardEntry`): only unbounded ones are ranked. */
const UNBOUNDED: Partial<Record<Metric, string>> = {
  profitFactor: "∞ (no losing trade)",
  sortino: "∞ (no day below the target)",
  calmar: "∞ (no drawdown)"
}

const shownValue = (metric: Metric, value: number | null): string =>
  value === null ? UNBOUNDED[metric] ?? "—" : FRACTIONS.includes(metric) ? percent(value, { sign: metric === "totalReturn" }) : ratio(value)

/** The board as a table: rank, strategy (and owner, on an admin's board), the run and its value. */
export const view = (metric: Metric, entries: ReadonlyArray<LeaderboardEntry>): string => {
  if (entries.length === 0) return `no completed run to rank by ${metric}\n`
  const owners = entries.some((e) => e.owner !== undefined) && new Set(entries.map((e) => e.owner)).size > 1
  const t = table(
    ["#", "strategy", ...(owners ? ["owner"] : []), "run", "id", metric],
    ["right", "left", ...(owners ? ["left" as const] : []), "left", "left", "right"]
  )
  entries.forEach((e, i) => t.push([String(i + 1), e.strategy, ...(owners ? [e.owner ?? "—"] : []), e.ref ?? "—", e.run, shownValue(metric, e.value)]))
  return `${t.toString()}\n`
}

export const command = (io: Io, wiring: Wiring) =>
  Command.make("leaderboard", {
    metric: choice("metric", METRICS).pipe(
      Options.withDescription(`Rank by this metric of docs/metrics.md (default totalReturn; maxDrawdown: the lowest first).`)
    ),
    limit: count("limit", MAX_LIMIT, `How many strategies (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}).`),
    json: json("Print the board as one JSON array on stdout."),
    ...Remote.options
  }, (flags) =>
    Remote.withRemote(flags, wiring)((remote) =>
      Effect.gen(function*() {
        const metric = Option.getOrElse(flags.metric, (): Metric => "totalReturn")
        const limit = Option.getOrElse(flags.limit, () => DEFAULT_LIMIT)
        const entries = yield* remote.client.leaderboard({ metric, limit }).pipe(remote.call("leaderboard"))
        io.stdout(flags.json ? toJson(Schema.Array(EntrySchema), entries) : view(metric, entries))
      })
    ).pipe(Effect.withSpan("swarm.leaderboard"))).pipe(
    Command.withDescription("Each strategy's best completed run on the server by a metric, best first.")
  )
