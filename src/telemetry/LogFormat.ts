/**
 * How the server writes its log lines (`SWARM_LOG_FORMAT`), so that they can be shipped: `pretty`
 * (the default, as always: `[18:29:05.098] WARN (#39): …`, for a terminal); `json`, one JSON
 * object a line with level, message, annotations and spans (for a log shipper); `logfmt`,
 * `timestamp=… level=INFO fiber=#12 message=… key=value`. Any other value is refused, named.
 */
import { Cause, Config, ConfigError, Either, FiberId, FiberRef, FiberRefs, HashMap, Layer, List, Logger, LogLevel } from "effect"

export const formats = ["pretty", "json", "logfmt"] as const
export type LogFormat = (typeof formats)[number]

/** `SWARM_LOG_FORMAT`: `pretty`, `json` or `logfmt`; unset or empty: `pretty`. */
export const config: Config.Config<LogFormat> = Config.string("SWARM_LOG_FORMAT").pipe(
  Config.withDefault(""),
  Config.mapOrFail((raw): Either.Either<LogFormat, ConfigError.ConfigError> => {
    const value = raw.trim().toLowerCase()
    if (value === "") return Either.right("pretty")
    return (formats as ReadonlyArray<string>).includes(value)
      ? Either.right(value as LogFormat)
      : Either.left(ConfigError.InvalidData(["SWARM_LOG_FORMAT"], `must be pretty, json or logfmt (unset: pretty), not ${JSON.stringify(raw.slice(0, 100))}`))
  })
)

/**
 * The logger of `format`, in place of the process's: the pretty one NodeRuntime.runMain installs,
 * or Effect's default elsewhere.
 */
export const layer = (format: LogFormat): Layer.Layer<never> => {
  if (format === "pretty") return Layer.empty
  // What Logger.json and Logger.logFmt install (they replace only Effect's default logger).
  const chosen = Logger.withConsoleLog(format === "json" ? Logger.jsonLogger : Logger.logfmtLogger)
  return Layer.mergeAll(
    Logger.replace(Logger.prettyLoggerDefault, chosen),
    Logger.replace(Logger.defaultLogger, chosen),
    Layer.locallyScoped(current, format)
  )
}

/**
 * The format `layer` installed (`pretty` outside it): for a line that is one line in a terminal and
 * fields in a record (the request log, Http.ts), since the pretty logger writes each field on a
 * line of its own.
 */
export const current: FiberRef.FiberRef<LogFormat> = FiberRef.unsafeMake<LogFormat>("pretty")

/** A record's fields: those undefined are left out. */
export type Fields = Readonly<Record<string, unknown>>

/**
 * One record of `format`, exactly as its logger writes one (`message` and `fields` as the
 * annotations), without a newline: for the lines the server writes itself rather than through
 * the logger — start-up, resumed runs, stopping — which are said whatever the minimum log level,
 * as they are in pretty mode. Its fiber is empty: no fiber wrote it.
 */
export const record = (format: "json" | "logfmt", level: LogLevel.LogLevel, message: string, fields: Fields = {}, date = new Date()): string =>
  (format === "json" ? Logger.jsonLogger : Logger.logfmtLogger).log({
    fiberId: FiberId.none,
    logLevel: level,
    message,
    cause: Cause.empty,
    context: FiberRefs.empty(),
    spans: List.empty(),
    annotations: HashMap.fromIterable(Object.entries(fields).filter(([, value]) => value !== undefined)),
    date
  })

/** Where a line goes: the process's (or a test's) stdout and stderr. */
export interface Streams {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
}

/**
 * How the server says what it does outside its logger (`swarm serve`'s start-up lines, the runs it
 * resumed, what it suspended on stopping, that it stopped): in pretty mode, the line as it always
 * was — `pretty`, else `message` — on stderr, for a person; in json or logfmt, a record of
 * `message` with `fields` on stdout, where the logger writes the rest, so that every line a log
 * shipper reads there parses and stderr has none.
 */
export const sayer = (format: LogFormat, streams: Streams) =>
(message: string, fields: Fields = {}, options: { readonly level?: LogLevel.LogLevel; readonly pretty?: string } = {}): void =>
  format === "pretty"
    ? streams.stderr(`${options.pretty ?? message}\n`)
    : streams.stdout(`${record(format, options.level ?? LogLevel.Info, message, fields)}\n`)
