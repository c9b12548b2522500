/**
 * `swarm replay <run>`: execute a stored run again from its recorded inputs (strategy, data, seed,
 * injected faults) and compare every event with the recording (src/store/StoredRun.ts). Nothing is
 * written. A run that reproduces prints `OK` — a failed run reproduces when its events come again
 * and it fails the same way, which `OK` names; one that does not prints its first divergence — the
 * event, its round and agent, the field, what was recorded and what came now — and exits 1. A run
 * whose recorded inputs do not verify (its strategy snapshot changed in the database, say) is not
 * re-executed: `ALTERED` says what changed, exit 1.
 * `--json` prints either as one JSON document (`ReplayJson`) instead, for scripts.
 * On a terminal, as a backtest does, a bar on stderr shows how far the re-execution has got: events
 * compared of the recording's, bars and date reached, events a second (none with `--json`).
 */
import { Args, Command } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import * as Runs from "../store/Runs.js"
import * as StoredRun from "../store/StoredRun.js"
import { json, toJson } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Progress from "./Progress.js"
import * as RunRef from "./RunRef.js"
import { count } from "./Summary.js"
import * as Wiring from "./Wiring.js"

/** A divergence as a few lines, values in full (the error line cuts them short). */
export const describeDivergence = (error: StoredRun.RunDiverged): string =>
  [
    `DIVERGED: run ${error.run} does not reproduce`,
    `  event     ${error.seq}`,
    `  round     ${error.round ?? "—"}`,
    `  agent     ${error.agent ?? "—"}`,
    `  field     ${error.field}`,
    `  expected  ${error.expected}`,
    `  actual    ${error.actual}`,
    ...(error.tampered === undefined
      ? []
      : [`  but the recording itself does not verify (swarm audit verify): ${error.tampered}`, "  the divergence is the recording's, not the re-execution's"])
  ].join("\n") + "\n"

/**
 * What a replay that reproduced says: how far the run was recorded, and how it ended, if it did. An
 * unfinished paper run is a server's to go on with (`swarm resume` leaves it), a backtest the command's.
 */
export const okLine = (replayed: StoredRun.Replayed, mode: string): string => {
  const counted = `${count(replayed.events)} events, checksum ${replayed.checksum}`
  if (replayed.failure !== undefined) return `OK: run ${replayed.run} reproduced, including its failure (${replayed.failure}): ${counted}\n`
  const recorded = `OK: run ${replayed.run} reproduced the ${count(replayed.events)} events recorded, checksum ${replayed.checksum}`
  switch (replayed.status) {
    case "stopped":
      return `${recorded}: it was stopped there\n`
    case "running":
      return `${recorded}: the run is unfinished (marked running, it never finished: its process died — ${
        mode === "paper" ? "the next swarm serve goes on with it" : "swarm resume goes on with it"
      } — or it is still going)\n`
    case "paused":
      return `${recorded}: the run is unfinished (paused)\n`
    default:
      return `OK: run ${replayed.run} reproduced: ${counted}\n`
  }
}

/** `replay --json`: a run that reproduced (its event count and checksum), or its first divergence. */
export const ReplayJson = Schema.Union(
  Schema.Struct({
    ok: Schema.Literal(true),
    run: Schema.String,
    events: Schema.Int,
    checksum: Schema.String,
    /**
     * The recorded run's status: `stopped`, `running` (its process died, or it is still going) and
     * `paused` runs never finished, and are reproduced as far as they were recorded (`events`).
     */
    status: Schema.Literal("completed", "failed", "stopped", "running", "paused"),
    /** The run failed, and its replay failed the same way after the same events: why. */
    failure: Schema.optional(Schema.String)
  }),
  Schema.Struct({
    ok: Schema.Literal(false),
    run: Schema.String,
    divergence: Schema.Struct({
      seq: Schema.Int,
      round: Schema.NullOr(Schema.String),
      agent: Schema.NullOr(Schema.String),
      field: Schema.String,
      expected: Schema.String,
      actual: Schema.String,
      /** Why the recording itself does not verify, when it does not: the divergence is then the recording's. */
      tampered: Schema.NullOr(Schema.String)
    })
  }),
  /** The run's recorded inputs do not verify: it was not re-executed. */
  Schema.Struct({
    ok: Schema.Literal(false),
    run: Schema.String,
    altered: Schema.Struct({ position: Schema.Int, reason: Schema.String })
  })
)

const divergenceJson = (error: StoredRun.RunDiverged): string =>
  toJson(ReplayJson, {
    ok: false,
    run: error.run,
    divergence: {
      seq: error.seq,
      round: error.round,
      agent: error.agent,
      field: error.field,
      expected: error.expected,
      actual: error.actual,
      tampered: error.tampered ?? null
    }
  })

export const command = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("replay", {
    run: Args.text({ name: "run" }).pipe(Args.withDescription("The run: its id (run_…) or <strategy>#<number>.")),
    json: json("Print the outcome as one JSON document on stdout instead of the OK or DIVERGED lines.")
  }, (flags) =>
    Effect.gen(function*() {
      const ref = yield* RunRef.check("<run>", flags.run)
      yield* Wiring.withStore(io, wiring)(Effect.gen(function*() {
        const run = yield* Runs.get(ref)
        // Drawn where a backtest draws its bar: on a terminal, and not for --json (stderr is left as
        // scripts know it). Its total is the recording's events, every one of which is compared.
        const progress = io.terminal === undefined || flags.json ? undefined : yield* Progress.replay(io.terminal, {
          events: Option.match(yield* Runs.lastEvent(run.id), { onNone: () => undefined, onSome: (last) => last.seq }),
          bars: run.counts?.["bars"]
        })
        const replayed = yield* StoredRun.replay(run.id, {
          ...(wiring.registry === undefined ? {} : { registry: wiring.registry }),
          ...(progress === undefined ? {} : { onProgress: progress.update, onPhase: progress.phase })
        }).pipe(
          // The bar leaves the screen before the divergence is printed.
          Effect.tapErrorTag("RunDiverged", (error) =>
            Effect.zipRight(progress?.done ?? Effect.void, Effect.sync(() => io.stdout(flags.json ? divergenceJson(error) : describeDivergence(error))))),
          Effect.tapErrorTag("RecordingAltered", (error) =>
            Effect.zipRight(
              progress?.done ?? Effect.void,
              Effect.sync(() =>
                io.stdout(
                  flags.json
                    ? toJson(ReplayJson, { ok: false, run: error.run, altered: { position: error.position, reason: error.reason } })
                    : `ALTERED: run ${error.run}'s recording was changed after it ran: ${error.reason}\n` +
                      `  swarm audit verify fails at entry ${error.position}; the run was not re-executed\n`
                )
              )
            ))
        )
        if (progress !== undefined) yield* progress.done
        io.stdout(
          flags.json
            ? toJson(ReplayJson, {
              ok: true,
              run: replayed.run,
              events: replayed.events,
              checksum: replayed.checksum,
              status: replayed.status,
              ...(replayed.failure === undefined ? {} : { failure: replayed.failure })
            })
            : okLine(replayed, run.mode)
        )
      }))
    }).pipe(Effect.withSpan("swarm.replay"))).pipe(
    Command.withDescription("Re-execute a stored run from its recorded inputs and check that it gives the recorded events.")
  )
