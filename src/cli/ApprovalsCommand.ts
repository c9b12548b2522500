/**
 * `swarm approvals list | approve | reject`: the order intents that live runs on a server hold for
 * an operator (a strategy whose approval policy is `pause`). A run waits at its intent until it is
 * approved, rejected with a reason, or expires; `swarm runs watch` shows them as they come.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import { UsageError } from "./CliError.js"
import { json } from "./Flags.js"
import type { Io } from "./Io.js"
import * as Remote from "./Remote.js"
import * as RemoteView from "./RemoteView.js"
import * as RunRef from "./RunRef.js"
import type { Wiring } from "./Wiring.js"

const runArg = Args.text({ name: "run" }).pipe(Args.withDescription("The run: its id (run_…) or <strategy>#<number>."))
const roundArg = Args.text({ name: "round" }).pipe(Args.withDescription("The round whose intent waits, as `swarm approvals list` shows it."))

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/** A round id as the contract takes it (1 to 200 characters); control characters cannot be one. */
const roundRef = (text: string) => {
  const reason = text.trim() === ""
    ? "is empty: give the round as swarm approvals list shows it"
    : text.length > 200 || CONTROL.test(text)
    ? `${RunRef.shown(text, 24)} cannot be a round (at most 200 characters, no control characters)`
    : undefined
  return reason === undefined ? Effect.succeed(text) : Effect.fail(new UsageError({ field: "<round>", reason }))
}

export const list = (io: Io, wiring: Wiring) =>
  Command.make("list", {
    run: Options.text("run").pipe(Options.withPseudoName("run"), Options.optional, Options.withDescription("Only this run's.")),
    json: json("Print the pending approvals as one JSON array on stdout."),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const run = Option.isSome(flags.run) ? yield* RunRef.check("--run", flags.run.value) : undefined
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          const pending = yield* remote.client.approvals.pending(run === undefined ? {} : { run }).pipe(remote.call("approval"))
          io.stdout(flags.json ? RemoteView.approvalsJson(pending) : RemoteView.approvalsTable(pending))
        })
      )
    }).pipe(Effect.withSpan("swarm.approvals.list"))).pipe(
    Command.withDescription("List the intents your live runs hold for an operator: run, round, order, why, until when.")
  )

export const approve = (io: Io, wiring: Wiring) =>
  Command.make("approve", { run: runArg, round: roundArg, ...Remote.options }, (flags) =>
    Effect.gen(function*() {
      const run = yield* RunRef.check("<run>", flags.run)
      const round = yield* roundRef(flags.round)
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          yield* remote.client.approvals.approve({ run, round }).pipe(remote.call("approval"))
          io.stdout(`approved round ${round} of run ${run}\n`)
        })
      )
    }).pipe(Effect.withSpan("swarm.approvals.approve"))).pipe(
    Command.withDescription("Approve a held intent: the run places the order and goes on.")
  )

export const reject = (io: Io, wiring: Wiring) =>
  Command.make("reject", {
    run: runArg,
    round: roundArg,
    reason: Options.text("reason").pipe(Options.withPseudoName("text"), Options.withDescription("Why, for the run's audit trail (1 to 500 characters).")),
    ...Remote.options
  }, (flags) =>
    Effect.gen(function*() {
      const run = yield* RunRef.check("<run>", flags.run)
      const round = yield* roundRef(flags.round)
      const reason = flags.reason.trim()
      if (reason === "" || reason.length > 500) {
        return yield* new UsageError({ field: "--reason", reason: reason === "" ? "is empty: say why" : `is ${reason.length} characters long: at most 500` })
      }
      yield* Remote.withRemote(flags, wiring)((remote) =>
        Effect.gen(function*() {
          yield* remote.client.approvals.reject({ run, round, reason }).pipe(remote.call("approval"))
          io.stdout(`rejected round ${round} of run ${run}: ${reason}\n`)
        })
      )
    }).pipe(Effect.withSpan("swarm.approvals.reject"))).pipe(
    Command.withDescription("Reject a held intent, with the reason: nothing is placed, the run goes on.")
  )

export const command = (io: Io, wiring: Wiring) =>
  Command.make("approvals").pipe(
    Command.withDescription("Intents your live runs on a server hold for an operator: list, approve, reject."),
    Command.withSubcommands([list(io, wiring), approve(io, wiring), reject(io, wiring)])
  )
