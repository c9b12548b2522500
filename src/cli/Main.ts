/**
 * The command line bound to the process: its arguments, stdout, stderr and terminal, NodeContext
 * for @effect/cli, and NodeRuntime for Ctrl-C (the first interrupts the run, whose finalizers take
 * the progress bar down and close the event log; exit code 130). `swarm serve` runs until it is
 * asked to stop: SIGTERM or Ctrl-C (SIGINT) is its graceful stop, not a failure — it suspends its
 * live runs, says `swarm: server stopped (SIGTERM)` and exits 0, which systemd and Docker read as
 * a clean stop. `bin/swarm.js` and `npm start` call `runMain`.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, ConfigError, Effect, Either, Exit, Layer, Option } from "effect"
import * as LogFormat from "../telemetry/LogFormat.js"
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

/** Why stdout could not be written, once it could not (a reader that left is no failure). */
let stdoutFailed: string | undefined

/** An errno code as people read it: `ENOSPC` → "no space left on device (ENOSPC)". */
const described = (error: NodeJS.ErrnoException): string => {
  const what = error.code === undefined ? undefined : { ENOSPC: "no space left on device", EIO: "input/output error", EBADF: "not open for writing", EDQUOT: "disk quota exceeded" }[error.code]
  return what === undefined ? `${error.message.split("\n")[0]}` : `${what} (${error.code})`
}

export const runMain = (argv: ReadonlyArray<string>): void => {
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    // `swarm backtest ... | head`: the reader leaving is not an error.
    if (error.code === "EPIPE" || stdoutFailed !== undefined) return
    // A full disk, say: one line, and a failed exit once the command is done — not Node's stack
    // trace. What the command did stands (a stored run is kept: `swarm runs show` has it).
    stdoutFailed = described(error)
    process.stderr.write(`swarm: stdout: cannot write: ${stdoutFailed}\n`)
    // The last write's error comes after the command is done.
    if (process.exitCode === undefined || process.exitCode === Cli.EXIT_OK) process.exitCode = Cli.EXIT_FAILED
  })
  // `swarm --log-level debug serve` is the server: its telemetry is its own.
  const command = Either.match(Cli.logLevelOf(argv), { onLeft: () => argv, onRight: (read) => read.argv })
  // The signal that asked the process to stop (the runtime interrupts the command on the first).
  // A SIGTERM sent to the process group (systemd's default, `kill -TERM -<pgid>`) arrives twice:
  // directly, and passed on by bin/swarm.js; the runtime's handler is gone by the second, which
  // would kill the process in the middle of its graceful stop. So the same request within a
  // second is one; asked again later, the process stops at once, as it would without handlers.
  let signal: NodeJS.Signals | undefined
  let signalledAt = 0
  const onSignal = (name: NodeJS.Signals) => {
    if (signal === undefined) {
      signal = name
      signalledAt = Date.now()
    } else if (Date.now() - signalledAt >= 1_000) {
      process.removeListener("SIGINT", onSignal)
      process.removeListener("SIGTERM", onSignal)
      process.kill(process.pid, name)
    }
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  NodeRuntime.runMain(Cli.run(argv, Io.node()).pipe(Effect.provide(Layer.merge(NodeContext.layer, telemetry(command)))), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      // Cli.run never fails and succeeds with the exit code: anything else is an interruption.
      const stopped = Exit.isInterrupted(exit) && command[0] === "serve"
      if (stopped) {
        // In the server's log format (SWARM_LOG_FORMAT: a record on stdout in json or logfmt); it
        // started, so the setting is good.
        const format = Either.getOrElse(Effect.runSync(Effect.either(LogFormat.config)), (): LogFormat.LogFormat => "pretty")
        const line = `server stopped${signal === undefined ? "" : ` (${signal})`}`
        LogFormat.sayer(format, { stdout: (text) => process.stdout.write(text), stderr: (text) => process.stderr.write(text) })(
          line,
          { signal },
          { pretty: `swarm: ${line}` }
        )
      }
      let code = Exit.isSuccess(exit) && typeof exit.value === "number"
        ? exit.value
        : stopped
        ? Cli.EXIT_OK
        : Exit.isInterrupted(exit)
        ? Cli.EXIT_INTERRUPTED
        : Cli.EXIT_FAILED
      if (stdoutFailed !== undefined && code === Cli.EXIT_OK) code = Cli.EXIT_FAILED
      process.exitCode = code
      // The run is over: a handle something forgot to close must not keep the process alive.
      setTimeout(() => process.exit(), 2_000).unref()
      onExit(code)
    }
  })
}
