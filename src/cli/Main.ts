/**
 * The command line bound to the process: its arguments, stdout, stderr and terminal, NodeContext
 * for @effect/cli, and NodeRuntime for Ctrl-C (the first interrupts the run, whose finalizers take
 * the progress bar down and close the event log; exit code 130). `bin/swarm.js` and `npm start`
 * call `runMain`.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Exit } from "effect"
import * as Cli from "./Cli.js"
import * as Io from "./Io.js"

export const runMain = (argv: ReadonlyArray<string>): void => {
  // `swarm backtest ... | head`: the reader leaving is not an error.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error
  })
  NodeRuntime.runMain(Cli.run(argv, Io.node()).pipe(Effect.provide(NodeContext.layer)), {
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
