/**
 * `swarm audit verify <run>`: re-hash a stored run's event chain (src/store/Audit.ts) and say
 * whether it is intact — every event, in order, none missing, ending at the head the run recorded
 * and, for a completed run, re-hashing to its checksum. The verdict goes to stdout; a broken chain
 * also exits 1 with one `swarm:` line. It reads the database directly (DATABASE_URL or the
 * embedded one) even when a server is configured: the server has no audit procedure yet.
 */
import { Args, Command } from "@effect/cli"
import { Effect } from "effect"
import * as Audit from "../store/Audit.js"
import { AuditFailed } from "./CliError.js"
import type { Io } from "./Io.js"
import * as RunRef from "./RunRef.js"
import * as Wiring from "./Wiring.js"

/** The run id of a report's stream (`run:<id>`). */
const runOf = (stream: string) => (stream.startsWith("run:") ? stream.slice(4) : stream)

export const verify = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("verify", {
    run: Args.text({ name: "run" }).pipe(Args.withDescription("The run: its id (run_…) or <strategy>#<number>."))
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* RunRef.check("<run>", flags.run)
      yield* Wiring.withStore(io, wiring)(Effect.gen(function*() {
        const report = yield* Audit.verifyRun(ref)
        const run = runOf(report.stream)
        if (report.ok) {
          io.stdout(`OK: run ${run}: ${report.entries} events, chain head ${report.head.slice(0, 12)}…\n`)
          return
        }
        io.stdout(`FAILED at entry ${report.position}: ${report.reason}\n`)
        return yield* new AuditFailed({ run, position: report.position, reason: report.reason })
      }))
    }).pipe(Effect.withSpan("swarm.audit.verify"))).pipe(
    Command.withDescription(
      "Verify a run's audit chain: its events re-hash, in order, to the head and checksum it recorded. Reads the local database (DATABASE_URL or the embedded one), never a server."
    )
  )

export const command = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("audit").pipe(
    Command.withDescription("Check what the local database holds against its hash chains (not a server's: it has no audit procedure yet)."),
    Command.withSubcommands([verify(io, wiring)])
  )
