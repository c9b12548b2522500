/**
 * `swarm backtest`: load a strategy and market data, run the backtest and report it — a summary for
 * people, or one JSON document with `--json` — optionally keeping the run's events, result and
 * trades in an `--out` directory. The run is kept in the database (src/store/StoredRun.ts: its
 * strategy version, every event, its results), numbered per strategy so that `swarm runs show
 * "<strategy>#<n>"` finds it; `--no-store` runs it without opening any database
 * (src/swarm/Backtest.ts alone). Failures are values; `Cli` turns each into one
 * `swarm: <field>: <reason>` line and an exit code.
 */
import { Command, Options } from "@effect/cli"
import { Effect, Either, Option } from "effect"
import { writeFile } from "node:fs/promises"
import * as Path from "node:path"
import { analysts, rosterOf } from "../../agents/registry.js"
import type { InvalidAgent } from "../../schemas/AnalystProtocol.js"
import { clip } from "../internal/clip.js"
import * as Csv from "../market/Csv.js"
import * as DataSource from "../market/DataSource.js"
import * as Feed from "../market/Feed.js"
import * as StoredRun from "../store/StoredRun.js"
import * as Backtest from "../swarm/Backtest.js"
import * as LlmRuntime from "../llm/LlmRuntime.js"
import * as StrategyFile from "../swarm/StrategyFile.js"
import { StrategyFileError } from "../swarm/StrategyFile.js"
import * as Approver from "./Approver.js"
import { OutputError, RunFailed, UsageError } from "./CliError.js"
import * as EventLog from "./EventLog.js"
import * as OutDir from "./OutDir.js"
import { checked, choice } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Period from "./Period.js"
import * as Progress from "./Progress.js"
import * as ResultDocument from "./ResultDocument.js"
import * as Summary from "./Summary.js"
import { count } from "./Summary.js"
import { type Wiring as CommandWiring, withLlm, withStore } from "./Wiring.js"

const date = (end: Period.End) =>
  Options.text(end).pipe(
    Options.withPseudoName("date"),
    Options.optional,
    Options.mapEffect(checked(`--${end}`, (text: string) => Period.parse(text, end))),
    Options.withDescription(
      end === "from"
        ? "Replay bars from this time on, a bar at this time included: an ISO date (from the start of that day) or date-time, UTC unless it has an offset (2024-01-02, 2024-01-02T09:30)."
        : "Replay bars up to and including this time: a date alone means through the end of that day (--to 2024-03-01 keeps the bars of March 1st), a date-time that instant; UTC unless it has an offset. Both ends of the window are inclusive."
    )
  )

export const options = {
  data: Options.text("data").pipe(
    Options.withPseudoName("file|dir"),
    Options.atLeast(1),
    Options.withDescription("A CSV file of bars, or a directory of *.csv files (one per symbol, or with a symbol column; its sub-directories are not read). Repeat for more.")
  ),
  strategy: Options.text("strategy").pipe(
    Options.withPseudoName("file"),
    Options.withDescription("The strategy to run: a .json, .yaml or .yml file (see examples/).")
  ),
  seed: Options.text("seed").pipe(
    Options.withPseudoName("n"),
    Options.optional,
    Options.mapEffect(checked("--seed", (text: string) =>
      // As a number: 7, 07 and 007 are one seed (the text seeds the run, so they were three runs).
      /^\d{1,16}$/.test(text) ? Either.right(String(BigInt(text))) : Either.left(`expected a non-negative integer (at most 16 digits), got "${text}"`))),
    Options.withDescription(
      "Seeds the run's randomness: the Random its agents read and the language model's sampling (Ollama's seed); the same data, strategy and seed give the same run. " +
        "The built-in classic analysts use no randomness: with only them, the seed changes nothing but the seed the run records (and so its checksum). Default 0."
    )
  ),
  from: date("from"),
  to: date("to"),
  json: Options.boolean("json").pipe(
    Options.withDescription("Print one JSON document (run, metrics, trades, positions, counts, checksum) on stdout instead of the summary.")
  ),
  out: Options.text("out").pipe(
    Options.withPseudoName("dir"),
    Options.optional,
    // An empty path resolves to the current directory: `--out "$DIR"` with DIR unset wrote the run there.
    Options.mapEffect(checked("--out", (text: string) =>
      text.trim() === "" ? Either.left(`expected a directory, got "${text}"`) : Either.right(text))),
    Options.withDescription(
      "Write events.ndjson (every event), result.json and trades.csv into this directory once the run has ended, completed " +
        "or failed (result.json says which): an interrupted run writes nothing. An existing directory keeps its other files; these three are replaced."
    )
  ),
  events: choice("events", ["decisions", "rounds"]).pipe(
    Options.withDescription(
      "How much of each round the event log records: decisions (default: rounds whose decision changed the target) or rounds (every opinion and decision)."
    )
  ),
  adjust: Options.text("adjust").pipe(
    Options.withPseudoName("none|adj-close"),
    Options.optional,
    Options.mapEffect(checked("--adjust", (text: string) =>
      text === "none" || text === "adj-close"
        ? Either.right<Csv.ParseOptions["adjust"]>(text === "none" ? "none" : "adjClose")
        : Either.left(`expected none or adj-close, got "${text}"`))),
    Options.withDescription(
      "Prices of files with an Adj Close column (Yahoo's): none (default) uses them as printed; adj-close scales open, high and " +
        "low by adj close / close and uses adj close as the close (dividends and splits adjusted)."
    )
  ),
  ohlc: choice("ohlc", ["checked", "as-given"]).pipe(
    Options.withDescription(
      "checked (default) refuses a row whose high is below its low, or whose open or close lies outside them; as-given keeps " +
        "such rows as written (generated data, as backtrader's benchmark files)."
    )
  ),
  noStore: Options.boolean("no-store").pipe(
    Options.withDescription("Run without the database: nothing is kept but what --out writes, and no database is opened.")
  )
}

export interface Flags {
  readonly data: ReadonlyArray<string>
  readonly strategy: string
  readonly seed: Option.Option<string>
  readonly from: Option.Option<number>
  readonly to: Option.Option<number>
  readonly json: boolean
  readonly out: Option.Option<string>
  readonly events: Option.Option<Backtest.EventDetail>
  readonly adjust: Option.Option<Csv.ParseOptions["adjust"]>
  readonly ohlc: Option.Option<Csv.ParseOptions["ohlc"]>
  readonly noStore: boolean
}

/** The seed `Backtest.run` uses when none is given: recorded in the document either way. */
const DEFAULT_SEED = "0"

const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const writeOut = (file: string, text: string) =>
  Effect.tryPromise({
    try: () => writeFile(file, text, "utf8"),
    catch: (e) => new OutputError({ path: file, reason: `cannot write it: ${reasonOf(e)}` })
  })

/** What the command is wired to besides its flags: tests give it analysts and a database of their own. */
export type Wiring = CommandWiring

/** What every execution gets, stored or not. */
type Common = Pick<Backtest.Options, "strategy" | "feed" | "seed" | "events" | "onEvent" | "onProgress" | "approver" | "registry">

/** A finished execution: the result, and where the database keeps it when it does. */
interface Executed {
  readonly result: Backtest.Result
  /** `<strategy>#<number>` of the stored run. */
  readonly ref?: string
}

/** Run one backtest as the flags say, writing to `io`. */
export const handler = (io: Io, wiring: Wiring = {}) => (flags: Flags) =>
  Effect.gen(function*() {
    const from = Option.getOrUndefined(flags.from)
    const to = Option.getOrUndefined(flags.to)
    yield* Either.mapLeft(Period.check(from, to), (reason) => new UsageError({ field: "--to", reason }))
    const seed = Option.getOrElse(flags.seed, () => DEFAULT_SEED)

    // Inputs are checked before any database is opened: a typo costs no start-up.
    const strategy = yield* StrategyFile.load(flags.strategy)
    const window: Feed.Window = {
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      symbols: strategy.symbols
    }
    // The roster against the registry too (the run would refuse it at its start, recorded as a failed run).
    const roster = rosterOf(strategy, wiring.registry ?? analysts)
    if (Either.isLeft(roster)) {
      return yield* new StrategyFileError({ file: flags.strategy, problems: [{ field: roster.left.field, message: roster.left.reason }] })
    }
    const adjust = Option.getOrUndefined(flags.adjust)
    const ohlc = Option.getOrUndefined(flags.ohlc)
    const parse: Csv.ParseOptions = { ...(adjust === "adjClose" ? { adjust } : {}), ...(ohlc === "as-given" ? { ohlc } : {}) }
    const feed = yield* Feed.load(flags.data, { ...window, parse })
    // Yahoo's days without prices are left out, and said so (on stderr, as the database in use is).
    for (const skipped of feed.skipped ?? []) io.stderr(`data: ${Csv.describeSkipped(skipped)}\n`)
    // So are the sub-directories of a --data directory, which it does not descend into.
    if (feed.unread !== undefined) {
      io.stderr(`data: sub-directories not read (a --data directory stands for its own .csv files; give one as a --data of its own): ${Csv.listed(feed.unread)}\n`)
    }

    if (feed.symbols.length === 0 && (from !== undefined || to !== undefined)) {
      const shown = `${from === undefined ? "the start" : new Date(from).toISOString()} to ${to === undefined ? "the end" : new Date(to).toISOString()}`
      return yield* new UsageError({
        field: from !== undefined && to !== undefined ? "--from/--to" : from !== undefined ? "--from" : "--to",
        reason: `the data has no bars of ${strategy.symbols.join(", ")} from ${shown}`
      })
    }
    // Before the store too: a symbol the data lacks is bad input, not a failed run in the database.
    yield* Backtest.checkSymbols(strategy, feed)
    // Data the run will not see is said, once: a symbol the strategy does not trade was ignored unseen.
    const untraded = Backtest.untraded(strategy, feed)
    if (untraded.length > 0) {
      io.stderr(`data: not traded by the strategy (its symbols: ${Csv.listed(strategy.symbols)}): ${Csv.listed(untraded)}\n`)
    }
    // An analyst whose look-back is longer than the data would run silently, abstaining throughout:
    // said as the run starts (not for a run refused before it does).
    const warnings = Backtest.unwarmed(roster.right, feed)

    const out = Option.getOrUndefined(flags.out)
    // Written aside and put in place only when the run completed: a run that stops early leaves nothing.
    const staging = out === undefined ? undefined : yield* OutDir.stage(out)

    const common = {
      strategy,
      feed,
      seed,
      ...Option.match(flags.events, { onNone: () => ({}), onSome: (events) => ({ events }) }),
      ...(wiring.registry === undefined ? {} : { registry: wiring.registry })
    } satisfies Common

    const report = <E, R>(execute: (options: Common) => Effect.Effect<Executed, E, R>) =>
      Effect.gen(function*() {
        // Refused before it starts, rather than failed at its first intent that needs approval:
        // nothing is recorded or written for a run that could not have gone on.
        if (strategy.risk.approval.policy === "pause" && io.prompter === undefined) {
          return yield* new StrategyFileError({
            file: flags.strategy,
            problems: [{
              field: "risk.approval.policy",
              message: `"pause" waits for an operator to answer each intent that needs approval, and this backtest has none ` +
                `(its input is not a terminal): use "approve" or "reject" to run it unattended, or run it on a server ` +
                `(swarm runs start), whose operators answer with swarm approvals`
            }]
          })
        }
        for (const warning of warnings) io.stderr(`warning: ${warning}\n`)
        const log = staging === undefined ? undefined : yield* Effect.mapError(EventLog.open(Path.join(staging.dir, "events.ndjson")), staging.named)
        const progress = io.terminal !== undefined && !flags.json ? yield* Progress.start(io.terminal, feed.bars) : undefined
        const prompter = strategy.risk.approval.policy === "pause" && io.prompter !== undefined ? yield* io.prompter : undefined
        const approver = prompter === undefined ? undefined : Approver.make(prompter, progress?.aside)
        // Rounds whose decision placed no order because it could not be acted on (a target the
        // books cannot hold exactly, the risk officer down): the run goes on, and says so at the end.
        const blocked = { rounds: 0, first: undefined as string | undefined }
        // Verdicts, and how many rejected: a rule that refuses every intent (trading hours that
        // daily bars never fall in) made a run with no trade and no word why.
        const verdicts = { given: 0, rejected: 0, first: undefined as string | undefined }
        // With a volume limit an order may fill in parts, or only in part: the document lists each order's end.
        const orders = strategy.execution.maxVolumePercent === undefined ? undefined : new ResultDocument.OrderStates()

        const { ref, result } = yield* execute({
          ...common,
          onEvent: (event, json) => {
            if (event._tag === "ExecutionBlocked") {
              blocked.rounds += event.rounds.length
              blocked.first ??= event.reason
            } else if (event._tag === "VerdictGiven") {
              verdicts.given++
              if (event.verdict.outcome === "rejected") {
                verdicts.rejected++
                verdicts.first ??= event.verdict.reasons.join("; ")
              }
            }
            orders?.add(event)
            log?.write(json)
          },
          ...(progress === undefined ? {} : { onProgress: progress.update }),
          ...(approver === undefined ? {} : { approver })
        })

        // The command's span names the run: its rounds are traces of their own (one per traced
        // round), which a collector finds by the same `swarm.run`.
        yield* Effect.annotateCurrentSpan({ "swarm.run": result.runId, ...(ref === undefined ? {} : { "swarm.run.ref": ref }) })
        // The bar leaves the screen before the report is printed (the scope would only close after).
        if (progress !== undefined) yield* progress.done
        if (blocked.rounds > 0) {
          io.stderr(
            `note: ${count(blocked.rounds)} round${blocked.rounds === 1 ? "" : "s"} placed no order because ${blocked.rounds === 1 ? "its decision" : "their decisions"} ` +
              `could not be acted on (ExecutionBlocked events); the first: ${clip(blocked.first ?? "no reason given", 300)}\n`
          )
        }
        if (verdicts.given > 0 && verdicts.rejected === verdicts.given) {
          io.stderr(
            `note: the risk officer rejected every order intent (${count(verdicts.given)} of ${count(verdicts.given)}), so the run placed no order; ` +
              `the first: ${clip(verdicts.first ?? "no reason given", 300)}\n`
          )
        }
        const document = ResultDocument.make(result, {
          strategy: strategy.name,
          seed,
          ...(ref === undefined ? {} : { ref }),
          warnings,
          ...(orders === undefined ? {} : { orders: orders.all })
        })
        const json = ResultDocument.toJson(document)
        // Written before the report is printed, which says so; a write that fails does not hide the report.
        const written = log === undefined || staging === undefined ? undefined : yield* Effect.either(
          Effect.all([
            log.close,
            writeOut(Path.join(staging.dir, "result.json"), json),
            writeOut(Path.join(staging.dir, "trades.csv"), ResultDocument.tradesCsv(result.trades)),
            staging.commit
          ], { discard: true }).pipe(Effect.mapError(staging.named))
        )

        io.stdout(
          flags.json
            ? json
            : Summary.render(result, {
              strategy: strategy.name,
              strategyFile: flags.strategy,
              seed,
              symbols: feed.symbols.length,
              ...(ref === undefined ? {} : { ref })
            }) +
              (out === undefined || written === undefined || Either.isLeft(written)
                ? ""
                : `written   ${Path.join(out, "events.ndjson")}, result.json, trades.csv\n`)
        )
        if (written !== undefined && Either.isLeft(written)) return yield* written.left
        if (result.status === "failed") {
          return yield* new RunFailed({ run: result.runId, reason: result.failure ?? "no reason given" })
        }
      }).pipe(Effect.scoped)

    // An agent the registry refuses is a field of the strategy file: report it with the file.
    const asFileError = (e: InvalidAgent) => new StrategyFileError({ file: flags.strategy, problems: [{ field: e.field, message: e.reason }] })

    if (flags.noStore) {
      return yield* withLlm(io, wiring, strategy)(report((options) =>
        Effect.flatMap(LlmRuntime.runOptions(), (llm) => Backtest.run({ ...options, llm })).pipe(
          Effect.map((result): Executed => ({ result })),
          Effect.catchTag("InvalidAgent", asFileError)
        )
      ))
    }
    const dataSource = DataSource.csv(flags.data, window, parse)
    return yield* withStore(io, wiring)(withLlm(io, wiring, strategy)(report((options) =>
      StoredRun.backtest({ ...options, dataSource }).pipe(
        Effect.map((stored): Executed => ({ result: stored.result, ref: `${strategy.name}#${stored.number}` })),
        Effect.catchTag("InvalidAgent", asFileError)
      )
    )))
  }).pipe(Effect.scoped, Effect.withSpan("swarm.backtest", { attributes: { strategy: flags.strategy, data: flags.data.join(","), store: !flags.noStore } }))

export const command = (io: Io, wiring: Wiring = {}) =>
  Command.make("backtest", options, handler(io, wiring)).pipe(
    Command.withDescription(
      "Replay market data through a strategy's swarm on a virtual clock, report its performance and keep the run in the database."
    )
  )
