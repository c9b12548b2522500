/**
 * `swarm trace <run> [round]`: a run's traced rounds as span trees with wall-clock timings, read
 * from the server's in-process span store (`traces.get`). Without a round: the run's traced rounds,
 * one line each, then the latest one's tree. A round is named by its id (`ACME@1704153600000`), as
 * it is printed (`ACME@2024-01-02`, as every command prints rounds), its time (epoch ms or ISO-8601)
 * or its trace id. Only rounds the server traced and still keeps are
 * there: every round of a paper run, backtests' only as `SWARM_TRACE_SAMPLE` says; with a
 * collector (`OTEL_EXPORTER_OTLP_ENDPOINT`) the same traces are in its UI (Jaeger) too.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import { RunTraces } from "../../schemas/Trace.js"
import * as TraceTree from "../telemetry/TraceTree.js"
import { UsageError } from "./CliError.js"
import { json } from "./Flags.js"
import type { Io } from "./Io.js"
import { roundText, time } from "./Summary.js"
import * as Remote from "./Remote.js"
import * as RunRef from "./RunRef.js"
import type { Wiring } from "./Wiring.js"

const runArg = Args.text({ name: "run" }).pipe(Args.withDescription("The run: its id (run_…) or <strategy>#<number>."))
const roundArg = Args.text({ name: "round" }).pipe(
  Args.withDescription("The round: as it is printed (<symbol>@<date>), its id (<symbol>@<ts>), its time (epoch ms or ISO-8601) or its trace id. Default: the latest traced round."),
  Args.optional
)

/** How many traced rounds the listing shows (the latest ones). */
const LISTED = 20

const encode = Schema.encodeSync(RunTraces)

/**
 * Rounds and times as the rest of the command line prints them (`GLOBEX@2022-02-25`, which this
 * command takes back as a round); `--json` keeps the server's ids.
 */
const names = { round: roundText, time }

/** The text `swarm trace` prints for what the server answered. */
export const view = (answer: RunTraces, round: string | undefined, events: "checks" | "all"): string => {
  const head = `run ${answer.run}: ${answer.rounds.length} traced round${answer.rounds.length === 1 ? "" : "s"} kept in the server's span store ` +
    `(${answer.store.spans.toLocaleString("en-US")} of ${answer.store.capacity.toLocaleString("en-US")} spans held)\n`
  if (answer.trace === null) return `${head}${answer.store.description}\n`
  const listing = round === undefined && answer.rounds.length > 1
    ? `${answer.rounds.length > LISTED ? `… ${answer.rounds.length - LISTED} earlier\n` : ""}${TraceTree.renderRounds(answer.rounds.slice(-LISTED), names)}\n`
    : ""
  return `${head}${listing}${TraceTree.render(answer.trace, { events, ...names })}`
}

export const command = (io: Io, wiring: Wiring) =>
  Command.make("trace", {
    run: runArg,
    round: roundArg,
    events: Options.boolean("events").pipe(Options.withDescription("List every span event (each analyst's opinions, every rule and gate), not only the checks that did not pass.")),
    json: json("Print the server's answer (the traced rounds and the chosen trace's spans) as one JSON document."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const run = yield* RunRef.check("<run>", flags.run)
      const round = Option.getOrUndefined(flags.round)
      if (round !== undefined && (round.trim() === "" || round.length > 200)) {
        return yield* new UsageError({ field: "<round>", reason: `${RunRef.shown(round, 24)} cannot name a round (1 to 200 characters)` })
      }
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const answer = yield* remote.client.traces.get(round === undefined ? { run } : { run, round }).pipe(remote.call("trace"))
          if (flags.json) {
            io.stdout(`${JSON.stringify(encode(answer))}\n`)
            return
          }
          if (answer.trace === null && round !== undefined) {
            return yield* new UsageError({
              field: "<round>",
              reason: `no traced round ${RunRef.shown(round)} of run ${answer.run} kept on ${remote.target.server}` +
                (answer.rounds.length === 0 ? " (it keeps none of this run's)" : ` (swarm trace ${run} lists the ${answer.rounds.length} it keeps)`)
            })
          }
          io.stdout(view(answer, round, flags.events ? "all" : "checks"))
          if (answer.trace === null) {
            io.stderr(
              `run ${answer.run} has no traced round on ${remote.target.server}: paper runs trace every round (SWARM_TRACE_SAMPLE_PAPER), ` +
                `backtests none unless the server's SWARM_TRACE_SAMPLE says so; the store keeps only the latest spans, and only of runs this server executed\n`
            )
          }
        })
      )
    }).pipe(Effect.withSpan("swarm.trace"))).pipe(
    Command.withDescription("Print a run's traced rounds as span trees with timings, from the server's in-process span store.")
  )
