/**
 * How the server writes its log lines (`SWARM_LOG_FORMAT`), so that they can be shipped: `pretty`
 * (the default, as always: `[18:29:05.098] WARN (#39): …`, for a terminal); `json`, one JSON
 * object a line with level, message, annotations and spans (for a log shipper); `logfmt`,
 * `timestamp=… level=INFO fiber=#12 message=… key=value`. Any other value is refused, named.
 */
import { Config, ConfigError, Either, Layer, Logger } from "effect"

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
  return Layer.merge(Logger.replace(Logger.prettyLoggerDefault, chosen), Logger.replace(Logger.defaultLogger, chosen))
}
