/**
 * `swarm resume [<run>]`: go on with runs whose process died (status still `running` or `paused`):
 * each is re-executed from its recorded inputs, checked against what it had recorded, and recorded
 * from its last committed event on (src/store/StoredRun.ts). With a run, that one; without, every
 * unfinished run, oldest first, each reported on its own line whatever became of the others.
 *
 * A paper run is a server's (its pace is wall-clock, its alerts arrive at the server): here it would
 * be run out as fast as a backtest, so it is left to `swarm serve`, which resumes it at its pace. A
 * run an operator paused is left paused unless it is named: going on with it is the operator's call.
 */
import { Args, Command } from "@effect/cli"
import { Effect, Either, Option } from "effect"
import * as Runs from "../store/Runs.js"
import * as StoredRun from "../store/StoredRun.js"
import * as Approver from "./Approver.js"
import { ResumeFailed, RunFailed } from "./CliError.js"
import type { Io } from "./Io.js"
import * as RunRef from "./RunRef.js"
import { refOf } from "./RunsView.js"
import { count } from "./Summary.js"
import * as Wiring from "./Wiring.js"

/** What became of a resumed run, in one line. */
export const describeResumed = (
  run: Pick<Runs.RunSummary, "id" | "strategyName" | "number">,
  resumed: { readonly recorded: number; readonly result: Pick<StoredRun.Resumed["result"], "counts" | "status" | "checksum" | "failure"> }
): string => {
  const result = resumed.result
  const added = result.counts.events - resumed.recorded
  const ended = result.status === "completed"
    ? `completed, checksum ${result.checksum}`
    : `ended failed: ${result.failure ?? "no reason given"}`
  return `resumed run ${run.id} (${refOf(run)}): ${count(resumed.recorded)} events checked against the recording, ${count(added)} recorded after them; ${ended}`
}

/**
 * Who answers the intents a resumed run of `run` holds for an operator (its strategy's
 * `risk.approval.policy` is `pause`): the person at the terminal, as `backtest` asks. Without a
 * terminal the run is refused before anything changes, as `backtest` refuses such a run: resumed, it
 * would fail at its first new intent, for good — a stopped run could never be resumed again.
 */
const approverOf = (io: Io, run: Runs.RunRecord) =>
  Effect.gen(function*() {
    // A run that cannot be resumed anyway (completed, failed) is told so by `StoredRun.resume`.
    if (run.strategy.risk.approval.policy !== "pause" || !StoredRun.resumable(run.status)) return undefined
    if (io.prompter === undefined) {
      return yield* new StoredRun.NotResumable({
        run: run.id,
        reason: `its strategy's risk.approval.policy is "pause", which waits for an operator to answer each intent that ` +
          `needs approval, and this resume has none (its input is not a terminal): resume it from a terminal, which asks you`
      })
    }
    return Approver.make(yield* io.prompter)
  })

/**
 * Resume `run` with the language models its strategy's LLM agents need (as `backtest` gives them):
 * without them a resumed run's model calls after the recording would be the offline analyst's.
 */
const resumeWith = (io: Io, withLlm: ReturnType<typeof Wiring.withLlmOf>, wiring: Wiring.Wiring, run: Runs.RunRecord) =>
  Effect.scoped(Effect.gen(function*() {
    const approver = yield* approverOf(io, run)
    return yield* withLlm(run.strategy)(StoredRun.resume(run.id, {
      ...(wiring.registry === undefined ? {} : { registry: wiring.registry }),
      ...(approver === undefined ? {} : { approver }),
      // Said once, on stderr, before the run goes on (not also as a log line).
      onLlmSwitch: (message) => Effect.sync(() => io.stderr(`warning: run ${run.id}: ${message}\n`))
    }))
  }))

/** Why this command leaves a paper run alone: the server resumes it, at its pace. */
export const PAPER_REASON = "`swarm serve` resumes paper runs at their pace when it starts"

/** Why `swarm resume` without a run leaves a paused run alone, and how to go on with it. */
export const pausedReason = (ref: string): string =>
  `an operator paused it: \`swarm serve\` takes it back paused when it starts (then \`swarm runs resume "${ref}"\`), ` +
  `or \`swarm resume "${ref}"\` goes on with it here`

const one = (io: Io, wiring: Wiring.Wiring, ref: string) =>
  Effect.gen(function*() {
    const run = yield* Runs.get(ref)
    // A finished run is told so by `StoredRun.resume`, paper or not.
    if (run.mode === "paper" && StoredRun.resumable(run.status)) {
      return yield* new StoredRun.NotResumable({ run: run.id, reason: `it is a paper run: ${PAPER_REASON}` })
    }
    const resumed = yield* resumeWith(io, Wiring.withLlmOf(io, wiring), wiring, run)
    io.stdout(`${describeResumed(run, resumed)}\n`)
    if (resumed.result.status === "failed") {
      return yield* new RunFailed({ run: run.id, reason: resumed.result.failure ?? "no reason given" })
    }
  })

const every = (io: Io, wiring: Wiring.Wiring) =>
  Effect.gen(function*() {
    const runs = yield* Runs.unfinished()
    if (runs.length === 0) {
      io.stdout("nothing to resume: no run is unfinished\n")
      return
    }
    let failed = 0
    const withLlm = Wiring.withLlmOf(io, wiring)
    for (const run of runs) {
      if (run.mode === "paper") {
        io.stdout(`skipped run ${run.id} (${refOf(run)}) (paper): ${PAPER_REASON}\n`)
        continue
      }
      if (run.status === "paused") {
        io.stdout(`skipped run ${run.id} (${refOf(run)}) (paused): ${pausedReason(refOf(run))}\n`)
        continue
      }
      // The listing has no strategies: the run's record says which models it needs.
      const outcome = yield* Effect.either(Effect.flatMap(Runs.get(run.id), (record) => resumeWith(io, withLlm, wiring, record)))
      if (Either.isRight(outcome)) {
        io.stdout(`${describeResumed(run, outcome.right)}\n`)
        if (outcome.right.result.status === "failed") failed++
      } else if (outcome.left._tag === "RunLeased") {
        // Not dead: another process is running it.
        io.stdout(`left alone: run ${run.id} (${refOf(run)}): it is running in another process\n`)
      } else {
        failed++
        const why = outcome.left._tag === "NotReexecutable" ? outcome.left.why : outcome.left.message
        io.stdout(`not resumed: run ${run.id} (${refOf(run)}): ${why}\n`)
      }
    }
    if (failed > 0) return yield* new ResumeFailed({ failed, total: runs.length })
  })

export const command = (io: Io, wiring: Wiring.Wiring) =>
  Command.make("resume", {
    run: Args.text({ name: "run" }).pipe(
      Args.withDescription("The unfinished run to resume (id or <strategy>#<number>); without it, every unfinished run but paper and paused ones, which swarm serve takes back."),
      Args.optional
    )
  }, (flags) =>
    Effect.gen(function*() {
      const ref = Option.isSome(flags.run) ? yield* RunRef.check("<run>", flags.run.value) : undefined
      if (ref === undefined) yield* Wiring.withStore(io, wiring)(every(io, wiring))
      else yield* Wiring.withStore(io, wiring)(one(io, wiring, ref))
    }).pipe(Effect.withSpan("swarm.resume"))).pipe(
    Command.withDescription("Resume runs whose process died: re-execute, check against the recording, and record the rest (a server's paper runs and paused runs are left to swarm serve).")
  )
