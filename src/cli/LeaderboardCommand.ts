/**
 * `swarm leaderboard [--metric m] [--limit n] [--offset n] [--json] [--local]`: each strategy's best completed
 * run by one metric, best first — on the server when one is configured (the `leaderboard`
 * procedure: the caller's strategies; an admin's board has everyone's, with their owners), else, or
 * with `--local`, in the local database (every strategy in it), as `runs list` chooses. One ranking
 * either way: `Leaderboard.best`, by the rules of `LeaderboardEntry` in schemas/Rpc.ts; the metrics
 * are docs/metrics.md's.
 */
import { Command, Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import { type LeaderboardEntry, LeaderboardEntry as EntrySchema, LeaderboardMetric } from "../../schemas/Rpc.js"
import * as CommandLine from "./CommandLine.js"
import { choice, count, json, toJson } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Leaderboard from "../store/Leaderboard.js"
import * as MetricSettings from "./MetricSettings.js"
import * as Remote from "./Remote.js"
import { local, onServer, serverFor } from "./RunsCommand.js"
import { table } from "./RunsView.js"
import { percent, ratio } from "./Summary.js"
import * as Wiring from "./Wiring.js"

const METRICS = LeaderboardMetric.literals
type Metric = LeaderboardMetric

/** As the server answers without a limit. */
const DEFAULT_LIMIT = 20
/** The contract's largest. */
const MAX_LIMIT = 1_000
const MAX_OFFSET = 1_000_000

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

/**
 * The board as a table: rank (from `offset + 1`), strategy (and owner, on an admin's board), the
 * run and its value; then, when there are more, the command for the next page.
 */
export const view = (metric: Metric, entries: ReadonlyArray<LeaderboardEntry>, page: { readonly offset?: number; readonly next?: string } = {}): string => {
  const offset = page.offset ?? 0
  if (entries.length === 0) return offset === 0 ? `no completed run to rank by ${metric}\n` : `no strategy ranked below #${offset} by ${metric}\n`
  const owners = entries.some((e) => e.owner !== undefined) && new Set(entries.map((e) => e.owner)).size > 1
  const t = table(
    ["#", "strategy", ...(owners ? ["owner"] : []), "run", "id", metric],
    ["right", "left", ...(owners ? ["left" as const] : []), "left", "left", "right"]
  )
  entries.forEach((e, i) =>
    t.push([String(offset + i + 1), e.strategy, ...(owners ? [e.owner ?? "—"] : []), e.ref ?? "—", e.run, shownValue(metric, e.value)])
  )
  const basis = settingsNote(metric, entries)
  return `${t.toString()}\n${basis === undefined ? "" : `${basis}\n`}${page.next === undefined ? "" : `the next page: ${page.next}\n`}`
}

/**
 * When the ranked runs' figures of `metric` were computed with different settings (risk-free rate,
 * periods a year: Sharpe and Sortino depend on them), a note saying so; each entry's are in
 * `--json` (`metricsConfig`). A server older than the field sends none: nothing to say.
 */
export const settingsNote = (metric: Metric, entries: ReadonlyArray<LeaderboardEntry>): string | undefined =>
  MetricSettings.boardNote(metric, entries.flatMap((e) => (e.metricsConfig === undefined ? [] : [e.metricsConfig])))

/** The command line of the page after this one: its metric, limit and where it asked, from `offset`. `--key` is never printed. */
const nextPage = (flags: {
  readonly metric: Option.Option<Metric>
  readonly limit: Option.Option<number>
  readonly local: boolean
  readonly server: Option.Option<string>
}) =>
(offset: number): string =>
  CommandLine.line([
    "swarm",
    "leaderboard",
    ...Option.match(flags.metric, { onNone: () => [], onSome: (metric) => ["--metric", metric] }),
    ...Option.match(flags.limit, { onNone: () => [], onSome: (n) => ["--limit", String(n)] }),
    ...(flags.local ? ["--local"] : Option.match(flags.server, { onNone: () => [], onSome: (server) => ["--server", server] })),
    "--offset",
    String(offset)
  ])

export const command = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("leaderboard", {
    metric: choice("metric", METRICS).pipe(
      Options.withDescription(`Rank by this metric of docs/metrics.md (default totalReturn; maxDrawdown: the lowest first).`)
    ),
    limit: count("limit", MAX_LIMIT, `How many strategies (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}).`),
    offset: count("offset", MAX_OFFSET, "The next page: skip this many ranks (the table ends with the command for the next page).", 0),
    json: json("Print the board as one JSON array on stdout (the next page: --offset plus its length)."),
    ...Remote.options,
    local
  }, (flags) =>
    Effect.gen(function*() {
      const metric = Option.getOrElse(flags.metric, (): Metric => "totalReturn")
      const limit = Option.getOrElse(flags.limit, () => DEFAULT_LIMIT)
      const offset = Option.getOrElse(flags.offset, () => 0)
      // One more than asked, to say whether there is a next page (the contract's largest page: as many).
      const asked = Math.min(limit + 1, MAX_LIMIT)
      const server = yield* serverFor(flags, wiring)
      const answer = yield* Option.match(server, {
        onSome: (target) =>
          onServer(target, (remote) => remote.client.leaderboard({ metric, limit: asked, ...(offset === 0 ? {} : { offset }) }).pipe(remote.call("leaderboard"))),
        onNone: () => Wiring.withStore(io, wiring)(Leaderboard.best({ metric, limit: asked, offset }))
      })
      const entries = answer.slice(0, limit)
      const more = answer.length > limit || (asked === limit && answer.length === limit)
      const basis = settingsNote(metric, entries)
      // The array stays the document; the note goes beside it, as the database line does.
      if (flags.json && basis !== undefined) io.stderr(`${basis}\n`)
      io.stdout(
        flags.json
          ? toJson(Schema.Array(EntrySchema), entries)
          : view(metric, entries, { offset, ...(more ? { next: nextPage(flags)(offset + entries.length) } : {}) })
      )
    }).pipe(Effect.withSpan("swarm.leaderboard"))).pipe(
    Command.withDescription(
      "Each strategy's best completed run by a metric, best first: the server's (yours) when one is configured, else the local database's."
    )
  )
