/**
 * `swarm audit verify <run>`: re-hash a stored run's event chain (src/store/Audit.ts) and say
 * whether it is intact — every event, in order, none missing, ending at the head the run recorded
 * and, for a completed run, re-hashing to its checksum — and whether its recorded inputs (strategy
 * snapshot, seed, faults…) are the ones it ran with; what it could not check (a run recorded before
 * inputs were sealed) is said under `OK`, as is how many entries of the run's control log (who
 * paused, resumed, stopped, approved or rejected it) verified; a run still running (or paused) is
 * verified up to the events it had when the verification began, which is said too. The verdict goes to stdout; a broken chain
 * also exits 1 with one `swarm:` line. With a server configured (--server, SWARM_SERVER or
 * `swarm login`) the server verifies the chain in its database (`runs.verify`); `--local` reads the
 * local database (DATABASE_URL or the embedded one) instead. `--json` prints the verdict as one
 * JSON document (`VerifyJson`) instead, for scripts; the exit code and the `swarm:` line stay.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import { AuditReport } from "../../schemas/Rpc.js"
import * as Audit from "../store/Audit.js"
import { AuditFailed } from "./CliError.js"
import { json, toJson } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RunRef from "./RunRef.js"
import * as Wiring from "./Wiring.js"

/** The run id of a report's stream (`run:<id>`, or its control log's `control:<id>`). */
const runOf = (stream: string) => stream.replace(/^(run|control):/, "")

/** The line under `OK` on the run's control log: how many operator actions it verified. */
const controlLine = (entries: number | undefined): string =>
  entries === undefined
    ? ""
    : `  control log: ${entries === 0 ? "no operator actions" : `${entries} operator action${entries === 1 ? "" : "s"}`} (pause, resume, stop, approve, reject, trading), intact\n`

/** `audit verify --json`: an intact chain's size and head (and what could not be checked), or where and why it breaks — `runs.verify`'s answer. */
export const VerifyJson = AuditReport

export const verify = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("verify", {
    run: Args.text({ name: "run" }).pipe(Args.withDescription("The run: its id (run_…) or <strategy>#<number>.")),
    json: json("Print the verdict as one JSON document on stdout instead of the OK or FAILED line."),
    ...Remote.options,
    local: Options.boolean("local").pipe(
      Options.withDescription("Verify in the local database even when a server is configured (SWARM_SERVER or swarm login).")
    )
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* RunRef.check("<run>", flags.run)
      const tell = (
        report: {
          readonly ok: boolean
          readonly run: string
          readonly entries?: number
          readonly head?: string
          readonly position?: number
          readonly reason?: string
          readonly unchecked?: string | undefined
          readonly control?: number | undefined
          readonly log?: "control" | undefined
          readonly unfinished?: "running" | "paused" | undefined
        }
      ) => {
        if (report.ok) {
          io.stdout(
            flags.json
              ? toJson(VerifyJson, {
                ok: true,
                run: report.run,
                entries: report.entries!,
                head: report.head!,
                ...(report.unchecked === undefined ? {} : { unchecked: report.unchecked }),
                ...(report.control === undefined ? {} : { control: report.control }),
                ...(report.unfinished === undefined ? {} : { unfinished: report.unfinished })
              })
              : `OK: run ${report.run}: ${report.entries} events, chain head ${report.head!.slice(0, 12)}…\n` +
                (report.unfinished === undefined
                  ? ""
                  : `  verified up to entry ${report.entries}: the run has not ended (${report.unfinished}); what it records later is not checked\n`) +
                controlLine(report.control) +
                (report.unchecked === undefined ? "" : `  not checked: ${report.unchecked}\n`)
          )
          return Effect.void
        }
        io.stdout(
          flags.json
            ? toJson(VerifyJson, { ok: false, run: report.run, position: report.position!, reason: report.reason!, ...(report.log === undefined ? {} : { log: report.log }) })
            : `FAILED at entry ${report.position}: ${report.reason}\n`
        )
        return Effect.fail(new AuditFailed({ run: report.run, position: report.position!, reason: report.reason! }))
      }
      const server = flags.local ? Option.none() : yield* Remote.target(flags, wiring)
      if (Option.isSome(server)) {
        return yield* Effect.scoped(Effect.flatMap(Remote.connect(server.value), (remote) =>
          Effect.flatMap(remote.client.runs.verify({ run: ref }).pipe(remote.call("run", "verify the run's audit chain")), tell)))
      }
      yield* Wiring.withStore(io, wiring)(Effect.gen(function*() {
        const report = yield* Audit.verifyRun(ref)
        yield* tell(
          report.ok
            ? { ...report, run: runOf(report.stream) }
            : { ...report, run: runOf(report.stream), ...(report.stream.startsWith("control:") ? { log: "control" as const } : {}) }
        )
      }))
    }).pipe(Effect.withSpan("swarm.audit.verify"))).pipe(
    Command.withDescription(
      "Verify a run's audit chain: its events re-hash, in order, to the head and checksum it recorded. On the server when one is configured, else (or with --local) in the local database."
    )
  )

export const command = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("audit").pipe(
    Command.withDescription("Check a database's hash chains: the server's when one is configured, else the local one."),
    Command.withSubcommands([verify(io, wiring)])
  )
