/**
 * `swarm serve` (what `npm start` runs): the Swarm server on `PORT` (default 7070) — the RPC
 * endpoint, the SSE events of runs and `/health` — until interrupted. It says which database it
 * uses and where it listens, and takes over the runs a previous server left unfinished. Ctrl-C or
 * SIGTERM shuts it down gracefully: the live runs are suspended — everything they recorded
 * committed, their status left `running` or `paused` — and the next start resumes them; it says
 * which (`swarm: stopping: 2 runs suspended (…); the next start resumes them`), then that it
 * stopped (`swarm: server stopped (SIGTERM)`), exiting 0: a stop asked for is no failure. On a
 * database with no users yet it makes the first admin, prints its API key once, saves the example
 * strategy and starts a paper run of it on the sample data, and prints the commands to watch it.
 * `SWARM_MAX_LIVE_RUNS_PER_USER` (default 8) caps each user's live runs; start-up says it. On a
 * shared database (Postgres) it looks every `SWARM_TAKEOVER_SECONDS` (default 10; 0: never) for
 * the runs of a server that stopped and takes them over; start-up says that too. These lines are
 * on stderr (the key and the demo's commands on stdout); with `SWARM_LOG_FORMAT=json` or `logfmt`
 * each is a record of that format on stdout instead, with the logs (LogFormat.sayer).
 */
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Command, Options } from "@effect/cli"
import { ConfigError, Context, Duration, Effect, Layer, LogLevel, Option } from "effect"
import { Principal } from "../../schemas/Auth.js"
import * as Redis from "../bus/Redis.js"
import { bootstrap } from "../edge/Bootstrap.js"
import * as Http from "../edge/Http.js"
import * as RunManager from "../edge/RunManager.js"
import * as Server from "../edge/Server.js"
import * as LlmRuntime from "../llm/LlmRuntime.js"
import { DatabaseInfo } from "../store/Database.js"
import { describe as describeSchema, MigratedSchema } from "../store/Migrations.js"
import { PgPool } from "../store/Pool.js"
import * as Store from "../store/Store.js"
import * as Strategies from "../store/Strategies.js"
import * as StrategyFile from "../swarm/StrategyFile.js"
import * as LogFormat from "../telemetry/LogFormat.js"
import * as Telemetry from "../telemetry/Telemetry.js"
import { fromConfigError, ServeFailed, UsageError } from "./CliError.js"
import type { Io } from "./Io.js"
import type { Wiring } from "./Wiring.js"

const EXAMPLE = fileURLToPath(new URL("../../examples/six-analysts.yaml", import.meta.url))
const DASHBOARD = fileURLToPath(new URL("../../examples/dashboard.html", import.meta.url))

/** A path as a person would type it from here: relative under the working directory, else absolute. */
const shown = (path: string) => {
  const relative = Path.relative(process.cwd(), path)
  return relative === "" || relative.startsWith("..") || Path.isAbsolute(relative) ? path : relative
}

/**
 * The demo paper run's pace: four daily bars a second — the analysts warm up and the first
 * decisions come within seconds, and the sample's 500 days take about two minutes.
 */
const DEMO_SPEED = 4 * 86_400

/**
 * First start: the admin's key once, and a paper run to watch. In json or logfmt mode they are two
 * records on stdout with the logs (the key in `apiKey`, once: a person reads it from the logs as
 * from a terminal), said whatever the log level; the commands to watch the run are the README's.
 */
const firstStart = (io: Io, base: string, format: LogFormat.LogFormat, say: Say) =>
  Effect.gen(function*() {
    const made = yield* bootstrap()
    if (!made.created) return
    if (format === "pretty") {
      io.stdout(
        `first start: created the admin user "${made.name}". Its API key, shown this once:\n\n  ${made.key}\n\n` +
          "Keep it: the server stores only its hash.\n"
      )
    } else {
      say(
        `first start: created the admin user "${made.name}"; its API key (apiKey) is shown this once: keep it, the server stores only its hash`,
        { user: made.name, userId: made.userId, apiKey: made.key },
        { level: LogLevel.Warning }
      )
    }
    const admin = new Principal({ userId: made.userId, name: made.name, role: "admin" })
    const strategy = yield* StrategyFile.load(EXAMPLE)
    yield* Strategies.create(made.userId, strategy)
    const manager = yield* RunManager.RunManager
    const run = yield* manager.start(admin, { strategy: strategy.name, mode: "paper", data: { _tag: "sample" }, speed: DEMO_SPEED })
    const started = `started a paper run of "${strategy.name}" on the sample data (${shown(EXAMPLE)}), ` +
      `four bars a second: run ${run.id} (${strategy.name}#${run.number})`
    if (format !== "pretty") {
      say(`first start: ${started}`, {
        run: run.id,
        ref: `${strategy.name}#${run.number}`,
        strategy: strategy.name,
        mode: "paper",
        watch: `npx swarm runs watch ${run.id}`,
        events: `${base}/v1/runs/${run.id}/events`
      })
      return
    }
    io.stdout(
      `${started}.\nWatch it:\n\n` +
        `  npx swarm login --server ${base} --key ${made.key}\n` +
        `  npx swarm runs watch ${run.id}\n\n` +
        `or, without the CLI:\n\n` +
        `  curl -N "${base}/v1/runs/${run.id}/events?token=${made.key}"\n` +
        `  curl -H "Authorization: Bearer ${made.key}" ${base}/health\n\n` +
        `or in a browser (the key stays in the page: a fragment is sent to no server):\n\n` +
        `  ${pathToFileURL(DASHBOARD).href}#server=${base}&key=${made.key}&run=${run.id}\n\n`
    )
  })

/** How serve says what it does outside its logger: a line, or a record of the log format (LogFormat.sayer). */
type Say = ReturnType<typeof LogFormat.sayer>

/** The runs the last server left unfinished (shut down, or killed), taken over and named. */
const resumeUnfinished = (say: Say) =>
  Effect.gen(function*() {
    const manager = yield* RunManager.RunManager
    const outcomes = yield* manager.resumeUnfinished().pipe(
      Effect.catchTag("Unavailable", (e) =>
        Effect.as(
          Effect.sync(() => say(`cannot look for unfinished runs: ${e.reason}`, { reason: e.reason }, { level: LogLevel.Warning })),
          []
        ))
    )
    for (const o of outcomes) {
      say(RunManager.describeResumption(o), { run: o.run, ref: o.ref, outcome: o.outcome, reason: o.reason, ownerDisabled: o.ownerDisabled }, {
        // Waiting for a slot is no failure, and no run going on either: the operator is told as of a failure.
        level: o.outcome === "failed" || o.outcome === "waiting" ? LogLevel.Warning : LogLevel.Info
      })
    }
  })

/** A configuration error's own reason (`InvalidData`'s message), else the whole error on one line. */
const reasonOf = (error: ConfigError.ConfigError): string =>
  error._op === "InvalidData" ? error.message : String(error).replace(/\s*\n\s*/g, " ")

export const command = (io: Io, wiring: Wiring) =>
  Command.make("serve", {
    port: Options.integer("port").pipe(
      Options.optional,
      Options.withDescription("The port to listen on (default: PORT, else 7070; 0 picks a free one).")
    )
  }, (flags) =>
    Effect.gen(function*() {
      const configured = yield* (wiring.environment === undefined ? Http.config : Effect.withConfigProvider(Http.config, wiring.environment)).pipe(
        Effect.mapError(fromConfigError)
      )
      const maxLiveRunsPerUser = yield* (wiring.environment === undefined
        ? RunManager.maxLiveRunsConfig
        : Effect.withConfigProvider(RunManager.maxLiveRunsConfig, wiring.environment)).pipe(
          Effect.mapError((error) => new UsageError({ field: "SWARM_MAX_LIVE_RUNS_PER_USER", reason: reasonOf(error) }))
        )
      const takeoverSeconds = yield* (wiring.environment === undefined
        ? RunManager.takeoverConfig
        : Effect.withConfigProvider(RunManager.takeoverConfig, wiring.environment)).pipe(
          Effect.mapError((error) => new UsageError({ field: "SWARM_TAKEOVER_SECONDS", reason: reasonOf(error) }))
        )
      const logFormat = yield* (wiring.environment === undefined ? LogFormat.config : Effect.withConfigProvider(LogFormat.config, wiring.environment)).pipe(
        Effect.mapError(fromConfigError)
      )
      const say = LogFormat.sayer(logFormat, io)
      const port = Option.getOrElse(flags.port, () => configured.port)
      const store = wiring.store ?? Store.layer
      // Telemetry first: the tracer it installs must be in place before the server starts what it traces.
      const server = Server.layer(store, {
        port,
        corsOrigins: configured.corsOrigins,
        host: configured.host
      }, { maxLiveRunsPerUser, ...(takeoverSeconds > 0 ? { takeover: { every: Duration.seconds(takeoverSeconds) } } : {}) }).pipe(
        Layer.provideMerge(Telemetry.layer)
      )
      yield* Effect.scoped(Effect.gen(function*() {
        // Added before the server is built, so run after it has shut down (finalizers run last
        // added first): by then the run manager has suspended its live runs, and says which.
        let manager: RunManager.RunManagerService | undefined
        // Whether other servers may share this database (Postgres), and so take over what this one suspends.
        let shared = false
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (manager !== undefined) {
              const suspended = manager.suspended()
              const line = RunManager.describeSuspended(suspended, shared)
              say(line, {
                suspended: suspended.length,
                runs: suspended.map((r) => r.run),
                refs: suspended.map((r) => r.ref),
                paused: suspended.filter((r) => r.paused).map((r) => r.ref)
              }, { pretty: `swarm: ${line}` })
            }
          })
        )
        const context = yield* Layer.build(server).pipe(
          Effect.catchTag("ServeError", (error) => new ServeFailed({ reason: `cannot listen on port ${port}: ${String(error.cause)}` })),
          Effect.catchIf(ConfigError.isConfigError, (error) =>
            // A bad setting refuses the start, named: `OTEL_EXPORTER_OTLP_ENDPOINT: not an http(s) URL: …`.
            Effect.fail(
              ConfigError.isInvalidData(error) && error.path.length > 0
                ? new UsageError({ field: error.path.join("."), reason: error.message })
                : new UsageError({ field: "configuration", reason: Telemetry.explain(error) })
            ))
        )
        manager = Context.get(context, RunManager.RunManager)
        shared = Context.get(context, PgPool).shared
        yield* Effect.gen(function*() {
          const database = yield* DatabaseInfo
          say(database.description, { database: database.backend.kind })
          const schema = yield* Effect.serviceOption(MigratedSchema)
          if (Option.isSome(schema)) say(describeSchema(schema.value), { schema: schema.value.at, migrationsApplied: schema.value.ran.length })
          const model = (yield* LlmRuntime.LlmRuntime).info
          say(`language model: ${model.description}`, { model: model.kind })
          const telemetry = (yield* Telemetry.Telemetry).info
          say(telemetry.description, { telemetry: telemetry.kind, traces: telemetry.traces, metrics: telemetry.metrics })
          const redis = yield* Effect.serviceOption(Redis.Redis)
          say(Redis.describe(redis), { bus: Option.isSome(redis) ? "redis" : "in-process" })
          say(Http.describeCors(configured.corsOrigins), { corsOrigins: configured.corsOrigins })
          say(RunManager.describeMaxLiveRuns(maxLiveRunsPerUser), { maxLiveRunsPerUser })
          say(RunManager.describeTakeover(takeoverSeconds, shared), { takeoverSeconds: shared ? takeoverSeconds : 0, sharedDatabase: shared })
          say(Http.describeHost(configured.host), { host: configured.host })
          const base = yield* Http.baseUrl
          say(`swarm server listening on ${base} (RPC ${base}/rpc, SSE ${base}/v1/runs/<run>/events, ${base}/health)`, { url: base })
          yield* resumeUnfinished(say)
          yield* firstStart(io, base, logFormat, say).pipe(
            Effect.catchTags({
              InvalidRequest: (e) => new ServeFailed({ reason: `first start: ${e.field}: ${e.reason}` }),
              Conflict: (e) => new ServeFailed({ reason: `first start: ${e.reason}` }),
              StrategyNotFound: (e) => new ServeFailed({ reason: `first start: no strategy ${e.strategy}` }),
              Unavailable: (e) => new ServeFailed({ reason: `first start: ${e.reason}` })
            })
          )
        }).pipe(Effect.provide(context))
        return yield* Effect.never
      }).pipe(Effect.provide(LogFormat.layer(logFormat))))
    })).pipe(
    Command.withDescription("Run the Swarm server: RPC, SSE and /health on one port, until interrupted.")
  )
