/**
 * The `swarm` command line as a function: arguments in, exit code out, everything printed through
 * an `Io` — so tests run it in-process and `Main` only binds it to the process. Every expected
 * failure becomes one `swarm: <field>: <reason>` line on stderr (no stack trace) and an exit code:
 * 2 for bad input (flags, strategy files, data), 1 for a run that failed or a defect, 0 otherwise.
 */
import { Command, HelpDoc, ValidationError } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import { Effect } from "effect"
import { createRequire } from "node:module"
import type { InvalidAgent } from "../../schemas/AnalystProtocol.js"
import type { CsvError } from "../../schemas/CsvError.js"
import type { BacktestError } from "../swarm/Backtest.js"
import type { StrategyFileError } from "../swarm/StrategyFile.js"
import * as BacktestCommand from "./BacktestCommand.js"
import type { OutputError, RunFailed, UsageError } from "./CliError.js"
import { type Io, stripAnsi, withConsole } from "./Io.js"

export const EXIT_OK = 0
/** A run that ended `failed`, an output that could not be written, or a bug. */
export const EXIT_FAILED = 1
/** Bad input: flags, the strategy file, the data. */
export const EXIT_USAGE = 2
/** Interrupted (Ctrl-C), as shells report a SIGINT. */
export const EXIT_INTERRUPTED = 130

const version: string = createRequire(import.meta.url)("../../package.json").version

export const command = (io: Io, wiring: BacktestCommand.Wiring = {}) =>
  Command.make("swarm").pipe(
    Command.withDescription("Trading agent swarms: backtests now; paper runs, replays and the server to come."),
    Command.withSubcommands([BacktestCommand.command(io, wiring)])
  )

/** What a failure prints and the code it exits with. */
export interface Report {
  readonly lines: ReadonlyArray<string>
  readonly code: number
}

/** @effect/cli's parse errors, reworded to name the flag first like every other error line. */
const validationLine = (error: ValidationError.ValidationError, argv: ReadonlyArray<string>): string => {
  const doc: HelpDoc.HelpDoc | undefined = "error" in error ? error.error : undefined
  const text = doc === undefined ? error._tag : stripAnsi(HelpDoc.toAnsiText(doc)).trim().replace(/\s*\n\s*/g, " ")
  let m: RegExpExecArray | null
  if ((m = /^Expected to find option: '([^']+)'$/.exec(text)) !== null) return `${m[1]}: is required`
  if ((m = /^Expected at least \d+ value\(s\) for option: '([^']+)'$/.exec(text)) !== null) return `${m[1]}: is required`
  if ((m = /^Received unknown argument: '(.*)'$/.exec(text)) !== null) return `${m[1]}: unknown argument`
  if ((m = /^Invalid subcommand for \S+ - use (.*)$/.exec(text)) !== null) return `${argv[0]}: unknown command, use ${m[1]}`
  return text
}

export type Failure =
  | ValidationError.ValidationError
  | StrategyFileError
  | CsvError
  | InvalidAgent
  | BacktestError
  | UsageError
  | OutputError
  | RunFailed

/** The lines (without the `swarm: ` prefix) and exit code of a failure; `argv` words parse errors. */
export const report = (error: Failure, argv: ReadonlyArray<string> = []): Report => {
  if (ValidationError.isValidationError(error)) {
    const help = argv[0] === "backtest" ? "swarm backtest --help" : "swarm --help"
    return { lines: [validationLine(error, argv), `try '${help}'`], code: EXIT_USAGE }
  }
  switch (error._tag) {
    case "StrategyFileError":
      return {
        lines: error.problems.map((p) => (p.field === "" ? `${error.file}: ${p.message}` : `${error.file}: ${p.field}: ${p.message}`)),
        code: EXIT_USAGE
      }
    case "CsvError":
      return { lines: [error.message], code: EXIT_USAGE }
    case "InvalidAgent":
    case "BacktestError":
    case "UsageError":
      return { lines: [`${error.field}: ${error.reason}`], code: EXIT_USAGE }
    case "OutputError":
      return { lines: [`${error.path}: ${error.reason}`], code: EXIT_FAILED }
    case "RunFailed":
      return { lines: [`run ${error.run}: failed: ${error.reason}`], code: EXIT_FAILED }
  }
}

/** A defect in one line: its message, not its stack. */
const defectLine = (defect: unknown): string => {
  const message = defect instanceof Error ? defect.message : typeof defect === "string" ? defect : String(defect)
  return `internal error: ${message.split("\n")[0] ?? ""}`
}

const print = (io: Io, lines: ReadonlyArray<string>) => {
  for (const line of lines) io.stderr(`swarm: ${line}\n`)
}

/**
 * Run the command line on `argv` (the arguments after the program's name) and return its exit
 * code. Never fails; interruption (Ctrl-C) is left to the caller after printing one line.
 */
export const run = (
  argv: ReadonlyArray<string>,
  io: Io,
  wiring: BacktestCommand.Wiring = {}
): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Effect.suspend(() => {
    const cli = Command.run(command(io, wiring), { name: "swarm", version })
    // @effect/cli's args start with the runtime and the script, as process.argv does.
    return withConsole(io, cli(["node", "swarm", ...(argv.length === 0 ? ["--help"] : argv)]))
  }).pipe(
    Effect.as(EXIT_OK),
    Effect.catchAll((error) =>
      Effect.sync(() => {
        const { code, lines } = report(error, argv)
        print(io, lines)
        return code
      })
    ),
    Effect.catchAllDefect((defect) =>
      Effect.sync(() => {
        print(io, [defectLine(defect)])
        return EXIT_FAILED
      })
    ),
    Effect.onInterrupt(() => Effect.sync(() => print(io, ["interrupted"])))
  )
