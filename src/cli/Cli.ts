/**
 * The `swarm` command line as a function: arguments in, exit code out, everything printed through
 * an `Io` — so tests run it in-process and `Main` only binds it to the process. Every expected
 * failure becomes one `swarm: <field>: <reason>` line on stderr (no stack trace) and an exit code:
 * 2 for bad input (flags, strategy files, data, a run that does not exist or that this build
 * cannot re-execute), 1 for a run that failed
 * or diverged, a broken audit chain, or a defect, 3 for a database or server that cannot be had now
 * (`EXIT_UNAVAILABLE`); 0 otherwise.
 */
import { Command, HelpDoc, ValidationError } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import { Effect, Either, Layer, Logger, LogLevel, Option } from "effect"
import { createRequire } from "node:module"
import type { InvalidAgent } from "../../schemas/AnalystProtocol.js"
import type { CsvError } from "../../schemas/CsvError.js"
import type { DataChanged } from "../market/DataSource.js"
import type { StrategyNotFound } from "../../schemas/Rpc.js"
import type { CorruptRecord, DatabaseLocked, DatabaseUnavailable, RunNotFound, StoreError } from "../store/StoreError.js"
import type { LeaseNotHeld } from "../store/Lease.js"
import type { RunLeased } from "../store/Runs.js"
import type { EndNotRecorded } from "../store/StoredRun.js"
import type { NotReexecutable, NotResumable, RecordingAltered, RunDiverged } from "../store/StoredRun.js"
import type { BacktestError } from "../swarm/Backtest.js"
import * as LogFormat from "../telemetry/LogFormat.js"
import type { StrategyFileError } from "../swarm/StrategyFile.js"
import * as AuditCommand from "./AuditCommand.js"
import * as BacktestCommand from "./BacktestCommand.js"
import * as AdminCommand from "./AdminCommand.js"
import * as ApprovalsCommand from "./ApprovalsCommand.js"
import * as ChatCommand from "./ChatCommand.js"
import { type AuditFailed, type OutputError, type RemoteFailed, type ResumeFailed, type RunFailed, type ServeFailed, UsageError } from "./CliError.js"
import { type Io, stripAnsi, withConsole } from "./Io.js"
import * as KnownFlags from "./KnownFlags.js"
import * as LeaderboardCommand from "./LeaderboardCommand.js"
import * as LoginCommand from "./LoginCommand.js"
import * as ReplayCommand from "./ReplayCommand.js"
import * as ResumeCommand from "./ResumeCommand.js"
import * as ServeCommand from "./ServeCommand.js"
import { shown } from "./RunRef.js"
import * as RulesCommand from "./RulesCommand.js"
import * as RunsCommand from "./RunsCommand.js"
import * as StrategiesCommand from "./StrategiesCommand.js"
import * as TraceCommand from "./TraceCommand.js"
import * as WebhooksCommand from "./WebhooksCommand.js"
import type { Wiring } from "./Wiring.js"

export const EXIT_OK = 0
/**
 * A run that ended `failed` or does not reproduce, a broken audit chain, an output that could not
 * be written, a server that cannot serve the command, or a bug.
 */
export const EXIT_FAILED = 1
/**
 * Bad input: flags, the strategy file, the data, a run or strategy that does not exist (or is not
 * the key's user's) or cannot be resumed, an API key the server refuses, a request it refuses.
 */
export const EXIT_USAGE = 2
/**
 * Not run now: the database is held by another process or cannot be reached, or the server cannot
 * be reached or cannot do it now. Trying again later may work — a script tells this from a failed
 * run (1) and from bad input (2). (A request that went unanswered may still have been done.)
 */
export const EXIT_UNAVAILABLE = 3
/** Interrupted (Ctrl-C), as shells report a SIGINT. Not `swarm serve`: a signal is its requested stop (0). */
export const EXIT_INTERRUPTED = 130

const version: string = createRequire(import.meta.url)("../../package.json").version

export const command = (io: Io, wiring: Wiring = {}) =>
  Command.make("swarm").pipe(
    Command.withDescription(
      "Trading agent swarms: backtests kept in a database, listed, compared, audited, replayed and resumed; the server, and its operators' commands."
    ),
    Command.withSubcommands([
      BacktestCommand.command(io, wiring),
      RunsCommand.command(io, wiring),
      AuditCommand.command(io, wiring),
      ReplayCommand.command(io, wiring),
      ResumeCommand.command(io, wiring),
      ServeCommand.command(io, wiring),
      LoginCommand.login(io, wiring),
      LoginCommand.logout(io, wiring),
      StrategiesCommand.command(io, wiring),
      RulesCommand.command(io, wiring),
      ApprovalsCommand.command(io, wiring),
      ChatCommand.command(io, wiring),
      LeaderboardCommand.command(io, wiring),
      AdminCommand.command(io, wiring),
      WebhooksCommand.command(io, wiring),
      TraceCommand.command(io, wiring)
    ])
  )

/** The commands with subcommands, for the help line of a parse error. */
const GROUPS: Record<string, ReadonlyArray<string>> = {
  runs: ["list", "show", "compare", "start", "stop", "pause", "resume", "trading", "watch", "events"],
  audit: ["verify"],
  strategies: ["list", "show", "create", "update", "delete"],
  rules: ["list", "put", "delete"],
  approvals: ["list", "approve", "reject"],
  chat: ChatCommand.SUBCOMMANDS,
  admin: AdminCommand.SUBCOMMANDS,
  webhooks: ["secret", "rotate"]
}

/** The commands without subcommands. */
const SINGLE = ["backtest", "replay", "resume", "serve", "login", "logout", "leaderboard", "trace"]

/** `swarm backtest --help`, `swarm runs show --help`… for the command `argv` names, as far as it names one. */
const helpFor = (argv: ReadonlyArray<string>): string => {
  const [first, second] = argv
  if (first === undefined || ![...SINGLE, ...Object.keys(GROUPS)].includes(first)) return "swarm --help"
  const group = GROUPS[first]
  if (group === undefined) return `swarm ${first} --help`
  return second !== undefined && group.includes(second) ? `swarm ${first} ${second} --help` : `swarm ${first} --help`
}

/** What a failure prints and the code it exits with. */
export interface Report {
  readonly lines: ReadonlyArray<string>
  readonly code: number
}

/** @effect/cli's parse errors, reworded to name the flag first like every other error line. */
const validationLine = (error: ValidationError.ValidationError, argv: ReadonlyArray<string>): string => {
  const doc: HelpDoc.HelpDoc | undefined = "error" in error ? error.error : undefined
  const whole = doc === undefined ? error._tag : stripAnsi(HelpDoc.toAnsiText(doc)).trim().replace(/\s*\n\s*/g, " ")
  // Several missing flags come as one text ("Expected at least 1 value(s) for option: '--data'
  // Expected to find option: '--strategy'"): the first is reported, as for any other error.
  const text = whole.split(/ (?=Expected )/)[0]!
  let m: RegExpExecArray | null
  if ((m = /^Expected to find option: '([^']+)'$/.exec(text)) !== null) return `${m[1]}: is required`
  if ((m = /^Expected at least \d+ value\(s\) for option: '([^']+)'$/.exec(text)) !== null) return `${m[1]}: is required`
  if ((m = /^Received unknown argument: '(.*)'$/.exec(text)) !== null) {
    // @effect/cli takes a flag once; the second one is left over, "unknown".
    const flag = m[1]!
    const given = argv.filter((arg) => arg === flag || arg.startsWith(`${flag}=`)).length
    if (flag.startsWith("--") && given > 1) return `${flag}: given more than once`
    // An optional flag given last without its value comes as "unknown" too.
    return argv.at(-1) === flag && flag.startsWith("--") ? `${flag}: no value given, or not a flag of this command` : `${flag}: unknown argument`
  }
  if ((m = /^Expected a value following option: '([^']+)'$/.exec(text)) !== null) return `${m[1]}: no value given`
  if ((m = /^'(.*)' is not an? (\w+)$/.exec(text)) !== null) {
    // A value of the wrong kind names no flag: the flag is the word before it.
    const at = argv.indexOf(m[1]!)
    const flag = at > 0 && argv[at - 1]!.startsWith("--") ? argv[at - 1]! : undefined
    const kind = m[2] === "integer" ? "an integer" : `a ${m[2]}`
    return flag === undefined ? `expected ${kind}, got "${m[1]}"` : `${flag}: expected ${kind}, got "${m[1]}"`
  }
  if ((m = /^Missing argument <([^>]+)>$/.exec(text)) !== null) return `<${m[1]}>: is required`
  if ((m = /^Invalid subcommand for \S+ - use (.*)$/.exec(text)) !== null) {
    // @effect/cli reports `swarm runs frob` at the top: the unknown word is the group's.
    const group = argv[0] === undefined ? undefined : GROUPS[argv[0]]
    return group !== undefined && argv[1] !== undefined
      ? `${argv[1]}: unknown command, use one of ${group.map((c) => `'${c}'`).join(", ")}`
      : `${argv[0]}: unknown command, use ${m[1]}`
  }
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
  | AuditFailed
  | ResumeFailed
  | DatabaseUnavailable
  | DatabaseLocked
  | StoreError
  | RunNotFound
  | StrategyNotFound
  | CorruptRecord
  | RunDiverged
  | RecordingAltered
  | NotResumable
  | NotReexecutable
  | RunLeased
  | LeaseNotHeld
  | EndNotRecorded
  | DataChanged
  | ServeFailed
  | RemoteFailed

/** Long recorded values (a whole event) are cut in an error line; `swarm replay` prints them whole. */
const cut = (text: string, max = 160) => (text.length > max ? `${text.slice(0, max)}…` : text)

/** A reason that may span lines (a server's output, a schema's error tree): its first line, then the rest indented, without stack frames. */
const lined = (head: string, reason: string): ReadonlyArray<string> => {
  const [first = "", ...rest] = reason.split("\n").map((line) => line.trimEnd()).filter((line) => line !== "" && !/^\s+at\s/.test(line))
  return [`${head}${first}`, ...rest.slice(0, 20).map((line) => `  ${line.trim()}`)]
}

const where = (backend: DatabaseUnavailable["backend"]) =>
  backend.kind === "postgres" ? `Postgres at ${backend.url}` : `embedded PGlite at ${backend.dataDir}`

/** The commands that ask the server instead of the local database once `swarm login` has named one. */
const ASK_SERVER = ["runs list", "runs show", "runs compare", "audit verify", "leaderboard"]

/** The ways past another process holding the embedded database that fit the command `argv` runs. */
const lockedWaysOut = (error: DatabaseLocked, argv: ReadonlyArray<string>): string => {
  const server = error.command === undefined || error.command === "swarm serve"
  const ways = [server ? "stop that process" : "wait for that process or stop it"]
  if (argv[0] === "backtest") ways.push("add --no-store (the backtest then opens no database)")
  else if (server && (ASK_SERVER.includes(argv.slice(0, 2).join(" ")) || ASK_SERVER.includes(argv[0] ?? ""))) {
    ways.push("ask its server instead (swarm login --server <url> --key <key>, then without --local)")
  }
  ways.push("set DATABASE_URL to a Postgres server, which serves several")
  return ways.join(", or ")
}

/** The lines (without the `swarm: ` prefix) and exit code of a failure; `argv` words parse errors. */
export const report = (error: Failure, argv: ReadonlyArray<string> = []): Report => {
  if (ValidationError.isValidationError(error)) {
    return { lines: [validationLine(error, argv), `try '${helpFor(argv)}'`], code: EXIT_USAGE }
  }
  switch (error._tag) {
    case "StrategyFileError":
      return {
        lines: error.problems.map((p) => (p.field === "" ? `${error.file}: ${p.message}` : `${error.file}: ${p.field}: ${p.message}`)),
        code: EXIT_USAGE
      }
    case "CsvError":
      return { lines: [error.message], code: EXIT_USAGE }
    case "BacktestError":
      // The store failing under a run, or a resumed run not matching its recording, is no bad input.
      return {
        lines: [`${error.field}: ${error.reason}`],
        code: error.field === "store" || error.field === "replay" || error.field === "resume" ? EXIT_FAILED : EXIT_USAGE
      }
    case "InvalidAgent":
    case "UsageError":
      return { lines: [`${error.field}: ${error.reason}`], code: EXIT_USAGE }
    case "OutputError":
      return { lines: [`${error.path}: ${error.reason}`], code: EXIT_FAILED }
    case "RunFailed":
      return { lines: [`run ${error.run}: failed: ${error.reason}`], code: EXIT_FAILED }
    case "AuditFailed":
      return { lines: [`run ${error.run}: the audit chain does not verify at entry ${error.position}: ${error.reason}`], code: EXIT_FAILED }
    case "ResumeFailed":
      return { lines: [`resume: ${error.message}`], code: EXIT_FAILED }
    case "ServeFailed":
      return { lines: [`serve: ${error.reason}`], code: EXIT_FAILED }
    case "RemoteFailed":
      return { lines: lined(`${error.field}: `, error.reason), code: error.unavailable === true ? EXIT_UNAVAILABLE : EXIT_FAILED }
    case "DatabaseUnavailable":
      return { lines: lined(`database: ${where(error.backend)}: unavailable: `, error.reason), code: EXIT_UNAVAILABLE }
    case "DatabaseLocked":
      return {
        lines: [
          `database: the embedded database at ${error.dataDir} is in use by process ${error.pid} (${error.holder}), and it serves one process at a time`,
          lockedWaysOut(error, argv)
        ],
        code: EXIT_UNAVAILABLE
      }
    case "StoreError":
      return { lines: lined(`store: cannot ${error.operation}: `, error.reason), code: EXIT_FAILED }
    case "RunNotFound":
      return {
        lines: [
          error.ambiguous === undefined
            ? `run: no run ${shown(error.run)} in the database (swarm runs list --local shows them)`
            : `run: ${shown(error.run)} names ${error.ambiguous.length} runs in the database (${error.ambiguous.join(", ")}): give the run's id`
        ],
        code: EXIT_USAGE
      }
    case "StrategyNotFound":
      // The strategy was deleted (by a server on the same database) while the run was being created.
      return { lines: [`strategy: no strategy ${shown(error.strategy)} in the database (deleted while the run started?)`], code: EXIT_FAILED }
    case "CorruptRecord":
      return { lines: lined(`${error.table} ${error.key}: ${error.column} does not decode: `, error.reason), code: EXIT_FAILED }
    case "RunDiverged":
      return {
        lines: [
          `run ${error.run}: does not reproduce: diverges at event ${error.seq}` +
          (error.round === null ? "" : `, round ${error.round}`) +
          (error.agent === null ? "" : `, agent ${error.agent}`) +
          `: ${error.field} was ${cut(error.expected)}, now ${cut(error.actual)}` +
          (error.tampered === undefined ? "" : ` (the recording itself does not verify: ${error.tampered})`)
        ],
        code: EXIT_FAILED
      }
    case "RecordingAltered":
      return {
        lines: [`run ${error.run}: the recording was altered after the run: ${error.reason} (swarm audit verify fails at entry ${error.position})`],
        code: EXIT_FAILED
      }
    case "NotResumable":
      return { lines: [`run ${error.run}: cannot be resumed: ${error.reason}`], code: EXIT_USAGE }
    case "RunLeased":
      return { lines: [`run ${error.run}: cannot be resumed: it is running in another process`], code: EXIT_FAILED }
    case "LeaseNotHeld":
    case "EndNotRecorded":
      return { lines: [error.message], code: EXIT_FAILED }
    case "NotReexecutable":
      // A refusal, before anything is executed: the run named cannot be re-executed by this build.
      return { lines: [error.message], code: EXIT_USAGE }
    case "DataChanged":
      return { lines: lined("data: ", error.message), code: EXIT_FAILED }
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
 * A failure's lines, as `print` writes them; but the server's (`serve`: a bad setting, its port
 * taken) in its log format when that is json or logfmt — one ERROR record on stdout, with its
 * other records, for the log shipper that parses every line (LogFormat.sayer).
 */
const printFailure = (io: Io, argv: ReadonlyArray<string>, wiring: Wiring, lines: ReadonlyArray<string>) => {
  const format = argv[0] !== "serve"
    ? "pretty"
    : Either.getOrElse(
      Effect.runSync(Effect.either(wiring.environment === undefined ? LogFormat.config : Effect.withConfigProvider(LogFormat.config, wiring.environment))),
      (): LogFormat.LogFormat => "pretty"
    )
  if (format === "pretty") return print(io, lines)
  LogFormat.sayer(format, io)(lines.join("\n"), {}, { level: LogLevel.Error })
}

/**
 * A command's log lines (`--log-level debug`, a store's warning), as logfmt on stderr: its stdout
 * is its answer, a `--json` document that a script parses (the default loggers wrote there, ahead
 * of the document). `serve` logs on stdout, as a service does (src/telemetry/LogFormat.ts).
 */
const logsToStderr = (io: Io) => {
  const toStderr = Logger.make((options) => io.stderr(`${Logger.logfmtLogger.log(options)}\n`))
  return Layer.merge(Logger.replace(Logger.defaultLogger, toStderr), Logger.replace(Logger.prettyLoggerDefault, toStderr))
}

/** The commands whose `--strategy-version` people may spell `--version`, as the contract does. */
const VERSIONED = [["strategies", "show"], ["runs", "start"]]

/**
 * The line as @effect/cli can read it:
 * - `--data=x` as `--data x` (it reads `--flag=value` for single flags, not for repeated ones);
 * - `--version <n>` as `--strategy-version <n>` in the commands that take one: @effect/cli reads
 *   `--version` anywhere on the line as its own flag (print the program's version) before any
 *   command sees it. Only with a value after it — anything but another flag, a negative number
 *   included, so that `--version -1` or `--version two` is refused as a bad version rather than
 *   printing the program's — so `swarm --version` keeps its meaning.
 */
export const spelled = (line: ReadonlyArray<string>): ReadonlyArray<string> => {
  const argv = line.flatMap((arg) => (arg.startsWith("--data=") ? ["--data", arg.slice("--data=".length)] : [arg]))
  if (!VERSIONED.some(([group, command]) => argv[0] === group && argv[1] === command)) return argv
  return argv.map((arg, i) =>
    arg === "--version" && argv[i + 1] !== undefined && (!argv[i + 1]!.startsWith("-") || /^-[\d.]/.test(argv[i + 1]!))
      ? "--strategy-version"
      : arg.startsWith("--version=")
      ? `--strategy-version=${arg.slice("--version=".length)}`
      : arg
  )
}

/** Error lines naming `--strategy-version` as `--version` when that is how the line spelled it (`spelled`). */
const spokenAs = (argv: ReadonlyArray<string>, lines: ReadonlyArray<string>): ReadonlyArray<string> =>
  !argv.some((arg) => arg.startsWith("--strategy-version")) && spelled(argv).some((arg) => arg.startsWith("--strategy-version"))
    ? lines.map((line) => line.replaceAll("--strategy-version", "--version"))
    : lines

/**
 * The commands that call each RPC procedure. The server's reasons name procedures (`admin.keys
 * lists a user's keys`), for every RPC client; a person at the command line is told the command.
 */
const COMMAND_OF: Record<string, string> = {
  "strategies.create": "swarm strategies create <file>",
  "strategies.update": "swarm strategies update <strategy> <file>",
  "strategies.get": "swarm strategies show <strategy>",
  "strategies.list": "swarm strategies list",
  "strategies.delete": "swarm strategies delete <strategy>",
  "rules.list": "swarm rules list <strategy>",
  "rules.put": "swarm rules put <strategy> <rule>",
  "rules.delete": "swarm rules delete <strategy> <rule>",
  "runs.start": "swarm runs start <strategy>",
  "runs.stop": "swarm runs stop <run>",
  "runs.pause": "swarm runs pause <run>",
  "runs.resume": "swarm runs resume <run>",
  "runs.trading": "swarm runs trading <run> halt|reduce|resume",
  "runs.get": "swarm runs show <run>",
  "runs.list": "swarm runs list",
  "runs.compare": "swarm runs compare <run> <run>",
  "runs.verify": "swarm audit verify <run>",
  "runs.events": "swarm runs watch <run>",
  "runs.status": "swarm runs watch <run>",
  "approvals.pending": "swarm approvals list --run <run>",
  "approvals.approve": "swarm approvals approve <run> <round>",
  "approvals.reject": "swarm approvals reject <run> <round> --reason <why>",
  "admin.users": "swarm admin users",
  "admin.createUser": "swarm admin create-user <name>",
  "admin.issueKey": "swarm admin issue-key <user>",
  "admin.keys": "swarm admin keys <user>",
  "admin.revokeKey": "swarm admin revoke-key <key-id>",
  "admin.setUser": "swarm admin set-user <user>",
  "admin.stats": "swarm admin stats",
  "chat.send": "swarm chat ask <run> <question>",
  "chat.follow": "swarm chat follow <run>",
  "chat.history": "swarm chat history <run>",
  "chat.suggestions": "swarm chat suggestions <run>",
  "chat.applyRule": "swarm chat apply <run> <suggestion>",
  "traces.get": "swarm trace <run>"
}

// A procedure's name as a word of its own: not inside a quoted name, a path or a longer dotted name.
const PROCEDURE = new RegExp(`(?<![\\w."'/-])(${Object.keys(COMMAND_OF).map((name) => name.replace(".", "\\.")).join("|")})(?![\\w"'/-]|\\.\\w)`, "g")

/** An error line with the RPC procedures it names said as the commands that call them. */
export const commandsNamed = (line: string): string => line.replace(PROCEDURE, (name) => COMMAND_OF[name] ?? name)

/**
 * Run the command line on `argv` (the arguments after the program's name) and return its exit
 * code. Never fails; interruption (Ctrl-C) is left to the caller after printing one line.
 */
/** The levels `--log-level` takes, by the names @effect/cli's help lists. */
const LOG_LEVELS: ReadonlyMap<string, LogLevel.LogLevel> = new Map(LogLevel.allLevels.map((level) => [level._tag.toLowerCase(), level]))

/**
 * `--log-level <level>` (or `--log-level=<level>`) taken out of the line wherever it stands, the
 * last one winning, and the line without it. @effect/cli's own reading of its built-in flag took it
 * only in some places: after a backtest's `--data <dir>` it was "an unknown argument", and before
 * the command `--log-level trace` read `trace` as the `trace` command. Nothing after `--` is read.
 */
export const logLevelOf = (
  argv: ReadonlyArray<string>
): Either.Either<{ readonly argv: ReadonlyArray<string>; readonly level: Option.Option<LogLevel.LogLevel> }, UsageError> => {
  const rest: Array<string> = []
  let level = Option.none<LogLevel.LogLevel>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      rest.push(...argv.slice(i))
      break
    }
    if (arg !== "--log-level" && !arg.startsWith("--log-level=")) {
      rest.push(arg)
      continue
    }
    const given = arg === "--log-level" ? argv[++i] : arg.slice("--log-level=".length)
    const found = given === undefined ? undefined : LOG_LEVELS.get(given.toLowerCase())
    if (found === undefined) {
      return Either.left(
        new UsageError({
          field: "--log-level",
          reason: `${given === undefined ? "no level given" : `${shown(given, 24)} is not a level`}; use one of ${[...LOG_LEVELS.keys()].join(", ")}`
        })
      )
    }
    level = Option.some(found)
  }
  return Either.right({ argv: rest, level })
}

export const run = (
  line: ReadonlyArray<string>,
  io: Io,
  wiring: Wiring = {}
): Effect.Effect<number, never, CliApp.CliApp.Environment> => {
  const leveled = logLevelOf(line)
  const argv = Either.match(leveled, { onLeft: () => line, onRight: (read) => read.argv })
  return Effect.gen(function*() {
    const { level } = yield* leveled
    const swarm = command(io, wiring)
    // A flag the command does not take is named, before @effect/cli's parse reports something else.
    const unknown = KnownFlags.unknownFlag(swarm, spelled(argv))
    if (Option.isSome(unknown)) return yield* unknown.value
    const cli = Command.run(swarm, { name: "swarm", version })
    // @effect/cli's args start with the runtime and the script, as process.argv does.
    const ran = withConsole(io, cli(["node", "swarm", ...(argv.length === 0 ? ["--help"] : spelled(argv))]))
    const logged = argv[0] === "serve" ? ran : Effect.provide(ran, logsToStderr(io))
    return yield* Option.match(level, { onNone: () => logged, onSome: (least) => Logger.withMinimumLogLevel(logged, least) })
  }).pipe(
    Effect.as(EXIT_OK),
    Effect.catchAll((error) =>
      Effect.sync(() => {
        const { code, lines } = report(error, argv)
        printFailure(io, argv, wiring, spokenAs(argv, lines.map(commandsNamed)))
        return code
      })
    ),
    Effect.catchAllDefect((defect) =>
      Effect.sync(() => {
        printFailure(io, argv, wiring, [defectLine(defect)])
        return EXIT_FAILED
      })
    ),
    // The server's interruption is its requested stop, said by the process (Main.ts), not a command cut short.
    Effect.onInterrupt(() => Effect.sync(() => argv[0] === "serve" ? undefined : print(io, ["interrupted"])))
  )
}
