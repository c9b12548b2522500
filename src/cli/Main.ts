/**
 * The command line bound to the process: its arguments, stdout, stderr and terminal, NodeContext
 * for @effect/cli, and NodeRuntime for Ctrl-C (the first interrupts the run, whose finalizers take
 * the progress bar down and close the event log; exit code 130). `bin/swarm.js` and `npm start`
 * call `runMain`.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, ConfigError, Effect, Exit, Layer, Option } from "effect"
import * as Telemetry from "../telemetry/Telemetry.js"
import * as Cli from "./Cli.js"
import * as Io from "./Io.js"

/**
 * A command's own spans (an RPC call, a local backtest's traced rounds: `SWARM_TRACE_SAMPLE`) go to
 * the collector when one is configured; `serve` installs the server's telemetry itself. A bad
 * telemetry setting is said, not fatal: the command runs without that setting (a bad endpoint:
 * without exporting). So is a defect in starting the exporters — caught as a cause, since a throw
 * there is no typed failure.
 */
const telemetry = (argv: ReadonlyArray<string>) =>
  argv[0] === "serve"
    ? Layer.empty
    : Telemetry.layerIfExporting((line) => process.stderr.write(`swarm: ${line}\n`)).pipe(
      Layer.catchAllCause((cause) => {
        const failure = Cause.failureOption(cause)
        const reason = Option.isSome(failure) && ConfigError.isConfigError(failure.value)
          ? Telemetry.explain(failure.value)
          : `telemetry: cannot start: ${Cause.pretty(cause).split("\n")[0]}`
        return Layer.effectDiscard(Effect.sync(() => process.stderr.write(`swarm: ${reason} (telemetry off: not exporting)\n`)))
      })
    )

export const runMain = (argv: ReadonlyArray<string>): void => {
  // `swarm backtest ... | head`: the reader leaving is not an error.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error
  })
  NodeRuntime.runMain(Cli.run(argv, Io.node()).pipe(Effect.provide(Layer.merge(NodeContext.layer, telemetry(argv)))), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      // Cli.run never fails and succeeds with the exit code: anything else is an interruption.
      const code = Exit.isSuccess(exit) && typeof exit.value === "number"
        ? exit.value
        : Exit.isInterrupted(exit)
        ? Cli.EXIT_INTERRUPTED
        : Cli.EXIT_FAILED
      process.exitCode = code
      // The run is over: a handle something forgot to close must not keep the process alive.
      setTimeout(() => process.exit(code), 2_000).unref()
      onExit(code)
    }
  })
}
