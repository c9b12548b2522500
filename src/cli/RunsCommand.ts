/**
 * `swarm runs …`: `list | show | compare` read the runs the local database keeps — or, when a
 * server is configured (`--server`, SWARM_SERVER or `swarm login`), ask that server for the key's
 * runs instead (`--local` keeps to the database); `start | stop | pause | resume | trading | watch` need a
 * server (RemoteRuns.ts). A run is named by its id or by `<strategy>#<number>`; each command
 * prints a table for people, or one JSON document with `--json`.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Either, Option } from "effect"
import { RunStatus } from "../../schemas/Rpc.js"
import * as Compare from "../store/Compare.js"
import * as ControlAudit from "../store/ControlAudit.js"
import * as Tools from "../../agents/system/Tools.js"
import * as Runs from "../store/Runs.js"
import type { RunNotFound } from "../store/StoreError.js"
import { UsageError } from "./CliError.js"
import * as CommandLine from "./CommandLine.js"
import { checked, json } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import type * as RemoteConfig from "./RemoteConfig.js"
import * as RemoteRuns from "./RemoteRuns.js"
import * as RunEventsCommand from "./RunEventsCommand.js"
import * as RunRef from "./RunRef.js"
import * as RunsView from "./RunsView.js"
import * as Wiring from "./Wiring.js"

export const STATUSES = RunStatus.literals

/** Most runs one `runs list` shows. */
export const MAX_LIMIT = 1_000

const DEFAULT_LIMIT = 50

// ---------------------------------------------------------------------------------------------
// runs list

const listOptions = {
  strategy: Options.text("strategy").pipe(
    Options.withPseudoName("name"),
    Options.optional,
    Options.withDescription("Only the runs of this strategy (its name, or its id str_…).")
  ),
  status: Options.text("status").pipe(
    Options.withPseudoName(STATUSES.join("|")),
    Options.optional,
    Options.mapEffect(checked("--status", (text: string) =>
      (STATUSES as ReadonlyArray<string>).includes(text)
        ? Either.right(text as Runs.RunStatus)
        : Either.left(`expected one of ${STATUSES.join(", ")}, got ${RunRef.shown(text)}`))),
    Options.withDescription("Only the runs with this status.")
  ),
  limit: Options.integer("limit").pipe(
    Options.withPseudoName("n"),
    Options.optional,
    Options.mapEffect(checked("--limit", (n: number) =>
      Number.isInteger(n) && n >= 1 && n <= MAX_LIMIT ? Either.right(n) : Either.left(`expected 1 to ${MAX_LIMIT}, got ${n}`))),
    Options.withDescription(`How many runs, newest first (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}).`)
  ),
  before: Options.text("before").pipe(
    Options.withPseudoName("run"),
    Options.optional,
    Options.withDescription(
      "The next page: only the runs listed after this one (its id, or <strategy>#<number>). The table ends with the command for the next page; " +
        "with --json, give the last element's id."
    )
  ),
  json: json("Print the runs as one JSON array on stdout instead of the table (the next page: --before the last element's id).")
}

export const local = Options.boolean("local").pipe(
  Options.withDescription("Read the local database even when a server is configured (SWARM_SERVER or swarm login).")
)

/** The server to ask instead of the local database, when one is configured and `--local` is not given. */
export const serverFor = (flags: Remote.Flags & { readonly local: boolean }, wiring: Wiring.Wiring) =>
  flags.local ? Effect.succeed(Option.none()) : Remote.target(flags, wiring)

/** `f` with a client of `target`: the remote path of a command that also works locally. */
export const onServer = <A, E, R>(target: RemoteConfig.Target, f: (remote: Remote.Remote) => Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.flatMap(Remote.connect(target), f))

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

const strategyName = (name: string) =>
  name.length > RunRef.MAX_LENGTH || CONTROL.test(name) || name.trim() === ""
    ? Effect.fail(
      new UsageError({
        field: "--strategy",
        reason: name.trim() === ""
          ? "is empty: give a strategy name or id"
          : `${RunRef.shown(name, 24)} cannot be a strategy name (at most 100 characters, no control characters)`
      })
    )
    : Effect.succeed(name)

/**
 * The command line of the page after `last`: this one's filters, limit and where it asked, with
 * `--before` the last run shown. `--key` is never printed (a secret): a key given with it must be
 * given again — one from SWARM_API_KEY or `swarm login` needs nothing.
 */
const nextPage = (flags: {
  readonly strategy: string | undefined
  readonly status: Option.Option<string>
  readonly limit: Option.Option<number>
  readonly local: boolean
  readonly server: Option.Option<string>
}) =>
(last: string): string =>
  CommandLine.line([
    "swarm",
    "runs",
    "list",
    ...(flags.strategy === undefined ? [] : ["--strategy", flags.strategy]),
    ...Option.match(flags.status, { onNone: () => [], onSome: (status) => ["--status", status] }),
    ...Option.match(flags.limit, { onNone: () => [], onSome: (n) => ["--limit", String(n)] }),
    ...(flags.local ? ["--local"] : Option.match(flags.server, { onNone: () => [], onSome: (server) => ["--server", server] })),
    "--before",
    last
  ])

/** A `--before` that names no run in the database. */
const cursorRefused = (error: RunNotFound): UsageError =>
  new UsageError({
    field: "--before",
    reason: error.ambiguous === undefined
      ? `no run ${RunRef.shown(error.run)} in the database (swarm runs list --local shows them)`
      : `${RunRef.shown(error.run)} names ${error.ambiguous.length} runs in the database (${error.ambiguous.join(", ")}): give the run's id`
  })

export const list = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("list", { ...listOptions, ...Remote.options, local }, (flags) =>
    Effect.gen(function*() {
      const strategy = Option.isSome(flags.strategy) ? yield* strategyName(flags.strategy.value) : undefined
      const before = Option.isSome(flags.before) ? yield* RunRef.check("--before", flags.before.value) : undefined
      const limit = Option.getOrElse(flags.limit, () => DEFAULT_LIMIT)
      const next = nextPage({ ...flags, strategy })
      const server = yield* serverFor(flags, wiring)
      if (Option.isSome(server)) {
        return yield* onServer(server.value, (remote) =>
          RemoteRuns.list(io, remote, { strategy, status: Option.getOrUndefined(flags.status), limit, before, json: flags.json, next }))
      }
      yield* Wiring.withStore(io, wiring)(Effect.gen(function*() {
        // One more than asked: whether there are more to say so.
        const runs = yield* Runs.list({
          ...(strategy === undefined ? {} : { strategy }),
          ...Option.match(flags.status, { onNone: () => ({}), onSome: (status) => ({ status }) }),
          ...(before === undefined ? {} : { before }),
          limit: limit + 1
        }).pipe(Effect.catchTag("RunNotFound", (error) => Effect.fail(error.field === "before" ? cursorRefused(error) : error)))
        const shown = runs.slice(0, limit)
        const last = shown[shown.length - 1]
        // The runs that ended before they completed: their figures up to where they stopped, for the table and --json.
        const partials = new Map<string, RunsView.PartialMetrics>()
        for (const run of shown) {
          const partial = yield* Tools.listedUpToStop(run)
          if (partial !== undefined) partials.set(run.id, partial)
        }
        io.stdout(
          flags.json
            ? RunsView.listJson(shown, partials)
            : RunsView.renderList(shown, runs.length > limit && last !== undefined ? next(last.id) : undefined, partials)
        )
      }))
    }).pipe(Effect.withSpan("swarm.runs.list"))).pipe(
    Command.withDescription(
      "List the runs, newest first: the server's (yours) when one is configured, else the local database's; --before pages through them."
    )
  )

// ---------------------------------------------------------------------------------------------
// runs show

const runArg = (name: string, description: string) => Args.text({ name }).pipe(Args.withDescription(description))

export const show = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("show", {
    run: runArg("run", "The run: its id (run_…) or <strategy>#<number>, as `swarm runs list` shows it."),
    json: json("Print the run as one JSON document on stdout instead of the report."),
    ...Remote.options,
    local
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* RunRef.check("<run>", flags.run)
      const server = yield* serverFor(flags, wiring)
      if (Option.isSome(server)) return yield* onServer(server.value, (remote) => RemoteRuns.show(io, remote, ref, flags.json))
      yield* Wiring.withStore(io, wiring)(Effect.gen(function*() {
        const run = yield* Runs.get(ref)
        const equity = yield* Runs.equitySummary(run.id)
        const trades = yield* Runs.tradeEnds(run.id, RunsView.SHOWN_TRADES)
        const control = yield* ControlAudit.history(run.id)
        const agentRestarts = yield* Runs.agentRestarts(run)
        const tradingChange = yield* Runs.tradingChange(run)
        const llm = Option.getOrNull(yield* Runs.llmUsage(run))
        const partial = yield* Tools.upToStop(run)
        const shown = {
          run,
          equity,
          trades,
          control,
          agentRestarts,
          llm,
          local: true,
          ...(tradingChange === null ? {} : { tradingChange }),
          ...(partial === undefined ? {} : { partial })
        }
        io.stdout(flags.json ? RunsView.showJson(shown) : RunsView.renderShow(shown))
      }))
    }).pipe(Effect.withSpan("swarm.runs.show"))).pipe(
    Command.withDescription(
      "Show a run: its metrics, counts, which agents crashed, what its LLM agents used, checksum, audit chain head, equity, its first and last trades (and how many), and who paused, resumed, stopped or answered it — the same report from a server."
    )
  )

// ---------------------------------------------------------------------------------------------
// runs compare

export const compare = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("compare", {
    a: runArg("a", "The first run (id or <strategy>#<number>)."),
    b: runArg("b", "The second run."),
    json: json("Print the comparison as one JSON document on stdout."),
    ...Remote.options,
    local
  }, (flags) =>
    Effect.gen(function*() {
      const refA = yield* RunRef.check("<a>", flags.a)
      const refB = yield* RunRef.check("<b>", flags.b)
      const server = yield* serverFor(flags, wiring)
      if (Option.isSome(server)) return yield* onServer(server.value, (remote) => RemoteRuns.compare(io, remote, refA, refB, flags.json))
      yield* Wiring.withStore(io, wiring)(Effect.gen(function*() {
        const a = yield* Runs.get(refA)
        const b = yield* Runs.get(refB)
        const difference = yield* Compare.firstDecisionDifference(a.id, b.id)
        const compared = { a, b, difference }
        io.stdout(flags.json ? RunsView.compareJson(compared) : RunsView.renderCompare(compared))
      }))
    }).pipe(Effect.withSpan("swarm.runs.compare"))).pipe(
    Command.withDescription("Compare two runs: their metrics side by side, and where their decisions first differ.")
  )

export const command = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("runs").pipe(
    Command.withDescription(
      "Runs: list, show, compare (on the server when one is configured, else the local database); start, stop, pause, resume, trading, watch (on a server)."
    ),
    Command.withSubcommands([
      list(io, wiring),
      show(io, wiring),
      compare(io, wiring),
      RemoteRuns.start(io, wiring),
      RemoteRuns.stop(io, wiring),
      RemoteRuns.pause(io, wiring),
      RemoteRuns.resume(io, wiring),
      RemoteRuns.trading(io, wiring),
      RemoteRuns.watchCommand(io, wiring),
      RunEventsCommand.command(io, wiring)
    ])
  )
