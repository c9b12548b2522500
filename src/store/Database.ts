/**
 * The SQL client, on one of two back-ends chosen from configuration: a Postgres server when
 * `DATABASE_URL` is set, otherwise the embedded default — PGlite in a child process, served over
 * the Postgres wire protocol — so that everything above talks to both through the same
 * @effect/sql-pg code path. The layer also provides `DatabaseInfo`, the back-end in use, which
 * start-up prints and `/health` reports.
 *
 * The embedded back-end runs in strict single-connection mode (pool of one, server of one) and
 * serves one process at a time, enforced by a lock file in its data directory: no LISTEN/NOTIFY,
 * advisory locks are not exclusive (EFFECT_NOTES.md §4). Several processes need Postgres.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { SqlClient, SqlError } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import type { Connection } from "@effect/sql/SqlConnection"
import { Cause, Clock, Config, ConfigError, Context, Duration, Effect, Either, Layer, Option, Redacted, Stream, String as Str } from "effect"
import * as Pg from "pg"
import * as Credentials from "../internal/credentials.js"
import { LEASE_APPLICATION } from "./ControlRequests.js"
import { PgPool } from "./Pool.js"
import { type Backend, DatabaseLocked, DatabaseUnavailable } from "./StoreError.js"
import { transaction } from "./Transaction.js"

export { Backend, DatabaseLocked, DatabaseUnavailable } from "./StoreError.js"

/** The back-end in use, for start-up lines and `/health`. */
export interface Info {
  readonly backend: Backend
  /** One line for a human: which database, and how to choose the other one. */
  readonly description: string
  /** The embedded server's process id; `undefined` on Postgres. */
  readonly serverPid: number | undefined
  /** How the embedded database came to be (`pglite-server.mjs`); `undefined` on Postgres. */
  readonly start?: Start | undefined
}

export class DatabaseInfo extends Context.Tag("swarm/store/DatabaseInfo")<DatabaseInfo, Info>() {}

/** What the database layers provide. */
export type Database = PgClient.PgClient | SqlClient.SqlClient | DatabaseInfo | PgPool

/**
 * `effect` given up on after `duration`, failing with `onTimeout()` (as `Effect.timeoutFail`), and on
 * Postgres ended there by the database too. A query given up on is not cancelled from this process
 * (`client` below: such a cancel could end another caller's statement): it would run on to its end
 * behind a slow table or a lock, holding its connection, and a write given up on would still land.
 * So `effect` runs in a transaction of its own with a `statement_timeout`: the server ends a
 * statement that runs past the deadline, and the transaction is rolled back. The caller is answered
 * at its deadline whatever the transaction is doing meanwhile (the start of a transaction waits for
 * a connection of a full pool uninterruptibly, up to the pool's connect timeout; its rollback waits
 * for the statement under way): what is given up on ends by itself, committing nothing.
 *
 * The deadline is one budget, from the call: each statement gets what is left of it (`budgeted`),
 * and none starts once it is spent — a statement begun just before the caller's deadline ends there
 * too, not a whole `duration` later. Within a transaction already, a savepoint of it, the deadline
 * lasting to its end (the setting is put back after). Not on the embedded database (just the
 * timeout): its one connection is taken uninterruptibly by a transaction, and there a query given up
 * on holds no connection others could use.
 */
export const withDeadline = <E2>(options: { readonly duration: Duration.DurationInput; readonly onTimeout: () => E2 }) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | E2 | SqlError.SqlError, R | SqlClient.SqlClient> =>
  Effect.flatMap(Effect.serviceOption(PgPool), (pool) => {
    if (!Option.exists(pool, (p) => p.shared)) return Effect.timeoutFail(effect, options)
    return Effect.flatMap(
      Effect.all([Clock.currentTimeMillis, SqlClient.SqlClient, Effect.serviceOption(SqlClient.TransactionConnection)]),
      ([start, sql, outer]) => {
        const end = start + Math.max(1, Math.ceil(Duration.toMillis(options.duration)))
        // Spent before a statement started, or a statement the server ended at the deadline — which may
        // reach the caller before its own timer fires: either way the caller's answer is the deadline's.
        const onSpent = <X, Y, Z>(self: Effect.Effect<X, Y, Z>) =>
          Effect.mapError(self, (error): Y | E2 => (error instanceof SqlError.SqlError && (error.cause === deadlineSpent || endedByServer(error.cause)) ? options.onTimeout() : error))
        return Option.isNone(outer)
          ? transaction(sql, onSpent(budgeted(end, effect))).pipe(Effect.disconnect, Effect.timeoutFail(options))
          : transaction(
            sql,
            Effect.flatMap(
              sql<{ before: string }>`select current_setting('statement_timeout') as before`,
              ([row]) => Effect.tap(onSpent(budgeted(end, effect)), () => sql`select set_config('statement_timeout', ${row!.before}, true)`)
            )
          ).pipe(Effect.timeoutFail(options))
      }
    )
  })

/**
 * Whether a statement's error is the server ending it at its `statement_timeout` (SQLSTATE 57014,
 * "canceling statement due to statement timeout", not a cancel's "due to user request"). Within
 * `budgeted` that setting is the deadline's own.
 */
const endedByServer = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && (cause as { code?: unknown }).code === "57014" &&
  String((cause as { message?: unknown }).message).includes("statement timeout")

/** A rollback (to a savepoint, within `withDeadline`'s transaction): run as it is, whatever is left of the deadline. */
const rollback = /^\s*rollback\b/i

/** The cause of the `SqlError` of a statement not started, its deadline spent (`withDeadline`). */
const deadlineSpent = Symbol("swarm/store/Database/deadlineSpent")

/**
 * A statement may start with a setting up to this much older than itself, and so overrun the
 * deadline by as much: the first statement, just after the setting made at the start, costs no round
 * trip of its own.
 */
const BUDGET_SLACK_MILLIS = 1

/**
 * `effect` inside a transaction, each of its statements preceded (on the transaction's connection) by
 * a `statement_timeout` of what is left until `end`, and refused once nothing is (an `SqlError` whose
 * cause is `deadlineSpent`). Statements go through the transaction's connection
 * (`TransactionConnection`): the one given to `effect` sets the budget before each statement.
 */
const budgeted = <A, E, R>(end: number, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError.SqlError, R> =>
  Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (inTransaction) => {
    if (Option.isNone(inTransaction)) return effect
    const [connection, depth] = inTransaction.value
    /** When the setting in force was worked out; it was what was left then. */
    let setAt = Number.NEGATIVE_INFINITY
    const setting = (now: number) =>
      Effect.map(connection.executeRaw("select set_config('statement_timeout', $1, true)", [String(end - now)]), () => {
        setAt = now
      })
    const before = Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<void, SqlError.SqlError> =>
      now >= end
        ? Effect.fail(new SqlError.SqlError({ cause: deadlineSpent, message: "its deadline was spent: not started" }))
        : now - setAt <= BUDGET_SLACK_MILLIS
        ? Effect.void
        : setting(now))
    const bounded: Connection = {
      execute: (text, params, transformRows) => Effect.zipRight(before, connection.execute(text, params, transformRows)),
      executeRaw: (text, params) => Effect.zipRight(before, connection.executeRaw(text, params)),
      executeValues: (text, params) => Effect.zipRight(before, connection.executeValues(text, params)),
      // Not before a rollback to a savepoint: in a transaction a failed statement aborted, the setting
      // would fail too ("current transaction is aborted"), and the rollback with it.
      executeUnprepared: (text, params, transformRows) =>
        rollback.test(text)
          ? connection.executeUnprepared(text, params, transformRows)
          : Effect.zipRight(before, connection.executeUnprepared(text, params, transformRows)),
      executeStream: (text, params, transformRows) => Stream.unwrap(Effect.as(before, connection.executeStream(text, params, transformRows)))
    }
    // The first setting, at the start: `effect`'s first statement, just after it, needs none of its own.
    return Effect.zipRight(before, Effect.provideService(effect, SqlClient.TransactionConnection, [bounded, depth]) as Effect.Effect<A, E, R>)
  })

/**
 * `withDeadline` on the database of the context it is made in, for queries run later outside it (a
 * route's handler, a cache made once and called from anywhere).
 */
export const makeWithDeadline = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const database = Option.match(yield* Effect.serviceOption(PgPool), {
    onNone: () => Context.make(SqlClient.SqlClient, sql),
    onSome: (pool) => Context.make(SqlClient.SqlClient, sql).pipe(Context.add(PgPool, pool))
  })
  return <E2>(options: { readonly duration: Duration.DurationInput; readonly onTimeout: () => E2 }) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | E2 | SqlError.SqlError, Exclude<R, SqlClient.SqlClient>> =>
    Effect.provide(withDeadline(options)(effect), database)
})

/**
 * An explicit choice of back-end, for tests and tools: a Postgres URL, or the embedded PGlite on
 * a data directory (locked for this process) or in memory (`"memory"` or a `dataDir` of
 * `memory://`: gone when the layer closes, no lock) — in memory, optionally made ready by
 * `template` (see `Template`).
 */
export type Options =
  | { readonly url: string | Redacted.Redacted<string>; readonly maxConnections?: number | undefined }
  | { readonly embedded: { readonly dataDir: string } | "memory" }
  | { readonly embedded: "memory"; readonly template: Template }

/**
 * A database in memory made ready by `prepare` (Swarm's tests: migrated), which starts as a copy of
 * the one an earlier start prepared, kept in `file`, when there is a sound one there. `prepare` runs
 * either way, so it must be idempotent (migrating a database already migrated applies nothing):
 * the file saves its work, it is never trusted instead of it. `file`'s name must change whenever
 * what `prepare` makes does (Migrations.templateFile: the migrations' digest). A file that is
 * missing, damaged or fails to load is a start as without it, and is then written (aside and
 * renamed: processes writing it at once leave one whole file) once `prepare` has run.
 */
export interface Template {
  readonly file: string
  readonly prepare: Effect.Effect<void, never, Database>
}

/** Pool size on a Postgres server. */
export const defaultMaxConnections = 8

/** Generous: initdb of a fresh data directory takes 5–12 s on a small machine. */
export const embeddedStartTimeout = Duration.seconds(60)

/** PGlite's name for a database that lives in memory only. */
const memoryDir = "memory://"

/** The lock file's name inside an embedded data directory. */
export const lockFileName = "swarm.lock"

/** The one-line description: `database: Postgres at … (DATABASE_URL)` or `database: embedded PGlite at …`. */
export const describe = (backend: Backend, source?: string): string =>
  backend.kind === "postgres"
    ? `database: Postgres at ${backend.url}${source === undefined ? "" : ` (${source})`}`
    : backend.dataDir === memoryDir
    ? `database: embedded PGlite in memory (set DATABASE_URL to use Postgres)`
    : `database: embedded PGlite at ${backend.dataDir} (set DATABASE_URL to use Postgres)`

/** A connection URL fit to print: its password replaced by `***` (see internal/credentials.ts). */
export const maskUrl: (url: string) => string = Credentials.maskUrl

/** `DATABASE_URL` (a Postgres server) if set and not empty, else `SWARM_DATA_DIR` (default `.swarm`) for the embedded PGlite. */
type Chosen = { readonly _tag: "Postgres"; readonly url: Redacted.Redacted<string> } | { readonly _tag: "Embedded"; readonly dataDir: string }

export const config: Config.Config<Chosen> = Config.all({
  url: Config.option(Config.redacted("DATABASE_URL")),
  // Empty counts as unset, as for DATABASE_URL (an empty value would put the data in ./pglite).
  dataDir: Config.string("SWARM_DATA_DIR").pipe(
    Config.map((dir) => dir.trim()),
    Config.withDefault(""),
    Config.map((dir) => (dir === "" ? ".swarm" : dir))
  )
}).pipe(Config.mapOrFail(({ dataDir, url }): Either.Either<Chosen, ConfigError.ConfigError> =>
  Option.match(Option.filter(url, (u) => Redacted.value(u).trim() !== ""), {
    onNone: (): Either.Either<Chosen, ConfigError.ConfigError> => Either.right({ _tag: "Embedded", dataDir: path.join(dataDir, "pglite") }),
    onSome: (url): Either.Either<Chosen, ConfigError.ConfigError> => {
      // A setting that cannot be a Postgres URL is a bad setting, named (exit 2), not the database being away.
      const problem = urlProblem(Redacted.value(url))
      return problem === undefined
        ? Either.right({ _tag: "Postgres", url })
        : Either.left(ConfigError.InvalidData(["DATABASE_URL"], problem))
    }
  })
))

/** The database chosen by configuration (see `config`). */
export const layer: Layer.Layer<Database, DatabaseUnavailable | DatabaseLocked | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, (chosen) =>
    chosen._tag === "Postgres"
      ? postgres(chosen.url, defaultMaxConnections, "DATABASE_URL")
      : embedded(chosen.dataDir))
)

/** The database named by `options`, ignoring configuration. */
export const layerWith = (options: Options): Layer.Layer<Database, DatabaseUnavailable | DatabaseLocked> =>
  "url" in options
    ? postgres(
      typeof options.url === "string" ? Redacted.make(options.url) : options.url,
      options.maxConnections ?? defaultMaxConnections
    )
    : embedded(
      options.embedded === "memory" || options.embedded.dataDir === memoryDir ? "memory" : options.embedded.dataDir,
      "template" in options ? options.template : undefined
    )

// ---------------------------------------------------------------------------------------------
// The client, the same on both back-ends

interface TypeParsers {
  readonly getTypeParser: (oid: number, format?: "text" | "binary") => (value: string) => unknown
}

// pg's own default parsers, from the copy of pg that @effect/sql-pg uses (pg ships no types, and
// a `types` option replaces the defaults rather than extending them, so we delegate to these).
const pgDefaults: TypeParsers = createRequire(import.meta.url)("pg").types

const INT8 = 20
const INT8_ARRAY = 1016

/** int8 as a JS number: ids, counts and micros are safe integers; anything beyond is an error, not a silent rounding. */
const parseInt8 = (text: string): number => {
  const n = Number(text)
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${text} is outside the safe integer range of a JavaScript number`)
  return n
}

const int8Deep = (value: unknown): unknown =>
  Array.isArray(value) ? value.map(int8Deep) : typeof value === "string" ? parseInt8(value) : value

const types: TypeParsers = {
  getTypeParser: (oid, format) => {
    if (format === undefined || format === "text") {
      if (oid === INT8) return parseInt8
      if (oid === INT8_ARRAY) {
        const parseArray = pgDefaults.getTypeParser(oid, "text")
        return (text) => int8Deep(parseArray(text))
      }
    }
    // numeric (1700) stays a string: it is exact and money-like values must not pass through floats.
    return pgDefaults.getTypeParser(oid, format)
  }
}

/**
 * What every client shares: camelCase fields in TypeScript, snake_case columns in SQL. JSON
 * values are stored and read as they are (`transformJson: false`): their keys are data — symbols
 * like `BRK_B`, schema tags — and canonical JSON must hash the same after a round trip.
 */
const conventions = {
  transformResultNames: Str.snakeToCamel,
  transformQueryNames: Str.camelToSnake,
  transformJson: false,
  types,
  applicationName: "swarm"
} satisfies Partial<PgClient.PgClientConfig>

const unavailable = (backend: Backend, reason: string) => new DatabaseUnavailable({ backend, reason })

/** A cause in a few words: pg's message, each attempt of an AggregateError (localhost → ::1 and 127.0.0.1). */
const reasonOf = (cause: unknown): string => {
  if (cause instanceof SqlError.SqlError) return cause.cause === undefined ? cause.message : reasonOf(cause.cause)
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    return [...new Set(cause.errors.map(reasonOf))].join("; ")
  }
  if (cause instanceof Error) return cause.message !== "" ? cause.message : cause.name
  return String(cause)
}

/** What `client` needs to open a pool. */
interface PoolOptions {
  readonly url?: Redacted.Redacted<string>
  readonly host?: string
  readonly port?: number
  readonly database?: string
  readonly username?: string
  readonly maxConnections: number
  /** Keep idle connections open (the embedded single connection). */
  readonly keepIdle?: boolean
}

/**
 * A pool we own (so bulk loading can `COPY` through it: `Pool.ts`) under a PgClient with the
 * conventions. The first connection is tried at once, within the connect timeout; any failure to
 * connect (or a defect while trying) becomes `DatabaseUnavailable`.
 */
const client = (options: PoolOptions, backend: Backend, info: Info): Layer.Layer<Database | PgPool, DatabaseUnavailable> => {
  const shared = backend.kind === "postgres"
  const connection = {
    ...(options.url === undefined ? {} : { connectionString: Redacted.value(options.url) }),
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.database === undefined ? {} : { database: options.database }),
    ...(options.username === undefined ? {} : { user: options.username })
  }
  // A live run's lease holds a connection for the run's whole life (Runs.lease): from the pool
  // every query draws on, eight live runs took all of it and every other query waited for good.
  const leases = shared
    ? Effect.acquireRelease(
      Effect.sync(() => {
        const pool = new Pg.Pool({
          ...connection,
          max: maxLeases,
          idleTimeoutMillis: 10_000,
          connectionTimeoutMillis: connectTimeoutMillis,
          // What a server holding a run's lease can take relayed (ControlRequests.holderOf): its session says it.
          application_name: LEASE_APPLICATION
        })
        pool.on("error", () => undefined)
        return pool
      }),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption(Duration.seconds(5)))
    )
    : undefined
  const acquire = Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new Pg.Pool({
        ...connection,
        max: options.maxConnections,
        // 0 keeps idle clients open for good (pg's own meaning).
        idleTimeoutMillis: options.keepIdle === true ? 0 : 10_000,
        connectionTimeoutMillis: connectTimeoutMillis,
        application_name: conventions.applicationName,
        types: conventions.types as unknown as Pg.CustomTypesConfig
      })
      // An idle client's error (the server went away) is reported to the query that next uses it.
      pool.on("error", () => undefined)
      // An interrupted query (its caller gone, a timeout, a race lost) is not cancelled on the
      // server: it runs to its end, and a transaction's rollback follows it on the connection.
      // @effect/sql-pg cancels with `pg_cancel_backend(pid)` over another connection of the pool,
      // and does so only on a client with a backend process id (PgClient's `makeCancel`), hence
      // the id's removal. That cancel hits whatever the backend runs when it lands: the
      // interrupted query may have ended meanwhile and its connection gone to the next caller —
      // a run's recorder, whose batch then failed ("canceling statement due to user request") and
      // the run with it, because a client had gone away from a `runs.start`. On the embedded
      // database, its one connection being the interrupted query's, the cancel also waited for it
      // — inside a transaction until the cancel's own 5 s timeout, every other caller waiting too.
      pool.on("connect", (connected) => void ((connected as { processID?: number }).processID = undefined))
      return pool
    }),
    (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption(Duration.seconds(5)))
  ).pipe(
    Effect.tap((pool) =>
      Effect.tryPromise({
        try: () => pool.query("select 1"),
        catch: (cause) => new SqlError.SqlError({ cause, message: "Failed to connect" })
      })
    )
  )
  return Layer.unwrapScoped(Effect.map(Effect.zip(acquire, leases ?? Effect.succeed(undefined)), ([pool, leasePool]) =>
    PgClient.layerFromPool({
      acquire: Effect.succeed(pool),
      transformResultNames: conventions.transformResultNames,
      transformQueryNames: conventions.transformQueryNames,
      transformJson: conventions.transformJson,
      applicationName: conventions.applicationName
    }).pipe(Layer.merge(Layer.succeed(PgPool, { pool, copy: shared, shared, leases: leasePool ?? pool })))
  )).pipe(
    Layer.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Layer.failCause(cause as Cause.Cause<never>)
        : Layer.fail(unavailable(backend, reasonOf(Cause.squash(cause))))
    ),
    Layer.merge(Layer.succeed(DatabaseInfo, info))
  )
}

/** How long the first connection may take. */
const connectTimeoutMillis = 10_000

/**
 * Connections for the leases of live runs (one each, apart from the pool of queries): how many runs
 * one process can run at once on Postgres. A new run past it waits for one, up to the connect
 * timeout, then is refused, saying why, with nothing written; every other query goes on meanwhile. With the query pool,
 * a process holds at most 40 connections: two servers stay within Postgres's default 100.
 */
export const maxLeases = 32

// ---------------------------------------------------------------------------------------------
// Postgres

function urlProblem(url: string): string | undefined {
  let parsed: URL
  try {
    parsed = new URL(url.trim())
  } catch {
    return "not a URL (expected postgres://user:password@host:port/database)"
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    return `must start with postgres:// or postgresql://, not ${parsed.protocol}// (Swarm runs on Postgres, or on its embedded PGlite with DATABASE_URL unset)`
  }
  return undefined
}

const postgres = (
  url: Redacted.Redacted<string>,
  maxConnections: number,
  source?: string
): Layer.Layer<Database, DatabaseUnavailable> => {
  const backend: Backend = { kind: "postgres", url: maskUrl(Redacted.value(url)) }
  const problem = urlProblem(Redacted.value(url))
  if (problem !== undefined) return Layer.fail(unavailable(backend, problem))
  return client({ url, maxConnections }, backend, { backend, description: describe(backend, source), serverPid: undefined })
}

// ---------------------------------------------------------------------------------------------
// Embedded PGlite

const serverScript = fileURLToPath(new URL("./pglite-server.mjs", import.meta.url))

/**
 * A file of the cache folder of the node_modules that holds PGlite, named after PGlite's version
 * and `kind`: `pglite-<version>-<kind>.tar`, for templates of its databases, which each version
 * makes its own. Not under HOME, which tests and services often point at a fresh folder.
 * `undefined` if PGlite's package cannot be found.
 */
export const embeddedCacheFile = (kind: string): string | undefined => {
  const folder = pgliteCache
  return folder === undefined ? undefined : path.join(folder.dir, `pglite-${folder.version}-${kind}.tar`)
}

const pgliteCache: { readonly dir: string; readonly version: string } | undefined = (() => {
  try {
    const entry = createRequire(import.meta.url).resolve("@electric-sql/pglite")
    const marker = `${path.sep}node_modules${path.sep}`
    const at = entry.lastIndexOf(marker)
    if (at < 0) return undefined
    const nodeModules = entry.slice(0, at + marker.length - 1)
    const { version } = JSON.parse(fs.readFileSync(path.join(nodeModules, "@electric-sql", "pglite", "package.json"), "utf8")) as { version?: unknown }
    if (typeof version !== "string" || !/^[\w.+-]+$/.test(version)) return undefined
    return { dir: path.join(nodeModules, ".cache", "swarm"), version }
  } catch {
    return undefined
  }
})()

/**
 * Where the server keeps the template a new database starts from instead of running initdb
 * (pglite-server.mjs): one file per PGlite version, since each version's initdb makes its own.
 * `undefined` (no template: initdb every time) if PGlite's package cannot be found.
 */
export const embeddedTemplateFile: string | undefined = embeddedCacheFile("initdb")

/** Paths under the working directory are shown relative to it (`.swarm/pglite`), others absolute. */
const shownPath = (absolute: string): string => {
  const relative = path.relative(process.cwd(), absolute)
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : absolute
}

const embedded = (dataDir: string | "memory", template?: Template): Layer.Layer<Database, DatabaseUnavailable | DatabaseLocked> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const absolute = dataDir === "memory" ? undefined : path.resolve(dataDir)
    const backend: Backend = { kind: "embedded", dataDir: absolute === undefined ? memoryDir : shownPath(absolute) }
    if (absolute !== undefined) {
      yield* Effect.try({
        try: () => fs.mkdirSync(absolute, { recursive: true }),
        catch: (cause) => unavailable(backend, `cannot create the data directory: ${reasonOf(cause)}`)
      })
      yield* lock(path.join(absolute, lockFileName), backend, backend.dataDir)
    }
    const server = yield* startServer(absolute ?? memoryDir, backend, absolute === undefined ? template?.file : undefined)
    if (absolute !== undefined) {
      // Record the server too: after a SIGKILL of this process it may still be closing the
      // database for a moment, and the directory is not free until it has.
      yield* Effect.sync(() => recordServer(path.join(absolute, lockFileName), server.pid))
    }
    const info: Info = { backend, description: describe(backend), serverPid: server.pid, start: server.start }
    const database = client(
      {
        host: "127.0.0.1",
        port: server.port,
        database: "postgres",
        username: "postgres",
        maxConnections: 1,
        // Keep the single connection open: every reconnect is a new startup handshake against the
        // same PGlite session, for nothing.
        keepIdle: true
      },
      backend,
      info
    )
    if (template === undefined || absolute !== undefined) return database
    // Prepared either way; saved for the next start unless this one was loaded from the file.
    return Layer.effectDiscard(Effect.zipRight(template.prepare, server.start === "prepared" ? Effect.void : server.save)).pipe(
      Layer.provideMerge(database)
    )
  }).pipe(Effect.withSpan("Database.embedded", { attributes: { dataDir: String(dataDir) } })))

// --- the lock file: "<owner pid>\n[<server pid>\n]"

/** Lock files held by this process, so that a stale lock left by an earlier process that had our pid (pid 1 in a container) is not mistaken for ours. */
const held = new Set<string>()

const alive = (pid: number): boolean => {
  if (pid === process.pid) return false // ours only if in `held`, checked before
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
  if (process.platform !== "linux") return true
  // A server orphaned by a SIGKILLed parent is a zombie once it exits, until its new parent
  // reaps it (never, under some container inits): it answers signals but holds nothing.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

const readOrUndefined = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw error
  }
}

const pidsOf = (content: string): Array<number> =>
  content.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number).filter((n) => n > 0)

/** Takes the lock, or returns the live pid holding it. A stale lock (all its pids dead) is taken over. */
const tryLock = (file: string): number | undefined => {
  if (held.has(file)) return process.pid
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" })
      held.add(file)
      return undefined
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    const content = readOrUndefined(file)
    if (content === undefined) continue
    const holder = pidsOf(content).find(alive)
    if (holder !== undefined) return holder
    // Stale. Move it aside atomically and check that what we moved is what we judged stale:
    // another process may have taken it over in between, and then we must give theirs back.
    const aside = `${file}.${process.pid}.stale`
    try {
      fs.renameSync(file, aside)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue
      throw error
    }
    if (readOrUndefined(aside) !== content) {
      try {
        fs.linkSync(aside, file)
      } catch {
        // someone else holds it now; the next attempt will see them
      }
    }
    fs.rmSync(aside, { force: true })
  }
  throw new Error("the lock file keeps changing under us")
}

const lock = (file: string, backend: Backend, shownDir: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => tryLock(file),
      catch: (cause) => unavailable(backend, `cannot take the lock file ${file}: ${reasonOf(cause)}`)
    }).pipe(Effect.flatMap((holder) =>
      holder === undefined ? Effect.void : Effect.fail(lockedBy(shownDir, holder))
    )),
    () =>
      Effect.sync(() => {
        held.delete(file)
        try {
          if (pidsOf(readOrUndefined(file) ?? "")[0] === process.pid) fs.rmSync(file, { force: true })
        } catch {
          // a lock we cannot remove is stale once we are gone
        }
      })
  )

const lockedBy = (dataDir: string, pid: number): DatabaseLocked => {
  const command = commandOf(pid)
  return new DatabaseLocked({ dataDir, pid, ...(command === undefined ? {} : { command }) })
}

/** The `swarm` command process `pid` runs (`swarm serve`, `swarm runs list`), from its command line, where the system shows it (Linux). */
const commandOf = (pid: number): string | undefined => {
  if (process.platform !== "linux") return undefined
  try {
    return swarmCommand(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0"))
  } catch {
    return undefined
  }
}

/**
 * `swarm <command> [<subcommand>]` from a process's arguments: `npm start` runs src/main.ts (the
 * server), `swarm …` runs bin/swarm.js with the command's words after it. Only
 * command words are kept — a run reference or a flag's value may be anything.
 */
export const swarmCommand = (argv: ReadonlyArray<string>): string | undefined => {
  const script = argv.findIndex((arg) => /(^|\/)src\/main\.[jt]s$/.test(arg) || /bin\/swarm(\.js)?$/.test(arg))
  if (script < 0) return undefined
  if (/main\.[jt]s$/.test(argv[script]!)) return "swarm serve"
  const words: Array<string> = []
  for (const arg of argv.slice(script + 1)) {
    if (words.length === 2 || !/^[a-z][a-z-]*$/.test(arg)) break
    words.push(arg)
  }
  return words.length === 0 ? undefined : `swarm ${words.join(" ")}`
}

/** Rewrites our lock with the server's pid added, atomically (a reader never sees a half-written file). */
const recordServer = (file: string, serverPid: number) => {
  const temporary = `${file}.${process.pid}.tmp`
  fs.writeFileSync(temporary, `${process.pid}\n${serverPid}\n`)
  fs.renameSync(temporary, file)
}

// --- the server process

interface Server {
  readonly pid: number
  readonly port: number
  readonly start: Start | undefined
  /** Asks the server to write its database as the prepared file, and waits for it to have (never fails: a file not written is a slow next start, said in a warning). */
  readonly save: Effect.Effect<void>
}

interface Spawned {
  readonly child: ChildProcess
  /** The tail of the child's stdout and stderr, for error messages. */
  readonly output: () => string
  /** Settles when the child has exited and its output is drained. */
  readonly closed: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

const outputLimit = 4000

/**
 * V8's flags for the server of a database in memory: short-lived (tests, tools), so PGlite's WASM
 * runs on V8's baseline compiler only. Without it each server spends a second or two of CPU
 * optimizing the functions it runs hot, anew in every process (no code cache), and a test's few
 * hundred or thousand statements never earn it back (measured, .scratch at load ~15: a migrated
 * database with 600 statements, 3.4-3.7 s of the server's CPU against 5.2-5.3 s; with 6,000, 6.6-6.9
 * against 8.6-10.1). A database in a data directory (the application's) keeps the optimizing one.
 */
export const memoryServerFlags: ReadonlyArray<string> = ["--liftoff-only"]

const spawnServer = (dataDir: string, preparedFile: string | undefined): Spawned => {
  // An empty argument is no file.
  const files = [embeddedTemplateFile ?? "", ...(preparedFile === undefined ? [] : [preparedFile])]
  const child = spawn(process.execPath, [...(dataDir === memoryDir ? memoryServerFlags : []), serverScript, dataDir, ...files], {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    // Plain node: the child is JavaScript and must not pick up loaders or an inspector meant for the parent.
    env: { ...process.env, NODE_OPTIONS: "" }
  })
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-outputLimit)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  // Not the child's 'close' event: it never comes once we have disconnected the IPC channel
  // ourselves (Node 20). 'exit' and the end of both output pipes say the same.
  const streamClosed = (stream: NodeJS.ReadableStream | null) =>
    new Promise<void>((resolve) => stream === null ? resolve() : stream.once("close", resolve))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }))
    // A child that could not be spawned emits 'error' and no 'exit'.
    child.once("error", () => {
      if (child.pid === undefined) resolve({ code: null, signal: null })
    })
  })
  const closed = Promise.all([exited, streamClosed(child.stdout), streamClosed(child.stderr)]).then(([status]) => status)
  return { child, output: () => output.trim(), closed }
}

const withOutput = (reason: string, spawned: Spawned) => {
  const output = spawned.output()
  return output === "" ? reason : `${reason}\n${output}`
}

// Node timers, not Effect's clock: a test's TestClock must not stall the start-up or the shutdown.
const within = <A>(promise: Promise<A>, millis: number): Promise<Option.Option<A>> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(Option.none()), millis)
    promise.then((a) => {
      clearTimeout(timer)
      resolve(Option.some(a))
    })
  })

/** How the server's database came to be: opened, loaded from the prepared file or the template, or made by initdb (pglite-server.mjs). */
export type Start = "existing" | "prepared" | "template" | "initdb"

/** Waits for `{ type: "listening", port, start }`; a child that exits first is a failure with its output. */
const awaitListening = (spawned: Spawned, backend: Backend) =>
  Effect.async<{ readonly port: number; readonly start: Start | undefined }, DatabaseUnavailable>((resume) => {
    let done = false
    const cleanup = () => {
      done = true
      clearTimeout(timer)
      spawned.child.off("message", onMessage)
      spawned.child.off("error", onError)
    }
    const finish = (effect: Effect.Effect<{ readonly port: number; readonly start: Start | undefined }, DatabaseUnavailable>) => {
      if (done) return
      cleanup()
      resume(effect)
    }
    const onMessage = (message: unknown) => {
      const m = message as { type?: unknown; port?: unknown; start?: unknown }
      if (m.type === "listening" && typeof m.port === "number") {
        const start = m.start === "existing" || m.start === "prepared" || m.start === "template" || m.start === "initdb" ? m.start : undefined
        finish(Effect.succeed({ port: m.port, start }))
      }
    }
    const onError = (error: Error) =>
      finish(Effect.fail(unavailable(backend, `cannot start the PGlite server process: ${error.message}`)))
    const millis = Duration.toMillis(embeddedStartTimeout)
    const timer = setTimeout(
      () =>
        finish(Effect.fail(unavailable(
          backend,
          withOutput(`the PGlite server did not start within ${millis / 1000} s`, spawned)
        ))),
      millis
    )
    spawned.child.on("message", onMessage)
    spawned.child.on("error", onError)
    spawned.closed.then(({ code, signal }) => {
      const how = code !== null ? `exit code ${code}` : signal !== null ? `signal ${signal}` : "no exit status"
      finish(Effect.fail(unavailable(
        backend,
        withOutput(`the PGlite server exited during start-up (${how})`, spawned)
      )))
    })
    return Effect.sync(cleanup)
  })

/** Disconnecting is the child's cue to stop serving and close the database; SIGKILL only if it hangs. */
const stopServer = (spawned: Spawned) =>
  Effect.promise(async () => {
    if (spawned.child.connected) spawned.child.disconnect()
    if (Option.isSome(await within(spawned.closed, 20_000))) return
    spawned.child.kill("SIGKILL")
    await within(spawned.closed, 5_000)
  })

const startServer = (dataDir: string, backend: Backend, preparedFile: string | undefined) =>
  Effect.gen(function*() {
    const spawned = yield* Effect.acquireRelease(
      Effect.try({
        try: () => spawnServer(dataDir, preparedFile),
        catch: (cause) => unavailable(backend, `cannot start the PGlite server process: ${reasonOf(cause)}`)
      }),
      stopServer
    )
    const { port, start } = yield* awaitListening(spawned, backend)
    yield* Effect.logDebug("the embedded PGlite server is listening").pipe(
      Effect.annotateLogs({ port: String(port), start: start ?? "unknown" })
    )
    // After start-up, a dying server would only show as failing queries: say why, once.
    yield* Effect.promise(() => spawned.closed).pipe(
      Effect.flatMap(({ code, signal }) =>
        Effect.logError("the embedded PGlite server exited unexpectedly").pipe(
          Effect.annotateLogs({ code: String(code), signal: String(signal), output: spawned.output() })
        )
      ),
      Effect.forkScoped
    )
    return { pid: spawned.child.pid!, port, start, save: saveServer(spawned, preparedFile) } satisfies Server
  })

/** How long writing the prepared file may take (a dump of some 40 MB). */
const SAVE_TIMEOUT_MILLIS = 60_000

const saveServer = (spawned: Spawned, preparedFile: string | undefined): Effect.Effect<void> =>
  Effect.promise(() => {
    const saved = new Promise<boolean>((resolve) => {
      const onMessage = (message: unknown) => {
        if ((message as { type?: unknown }).type !== "saved") return
        spawned.child.off("message", onMessage)
        resolve((message as { ok?: unknown }).ok === true)
      }
      spawned.child.on("message", onMessage)
      void spawned.closed.then(() => resolve(false))
      spawned.child.send({ type: "save" }, (error) => error === null ? undefined : resolve(false))
    })
    return within(saved, SAVE_TIMEOUT_MILLIS)
  }).pipe(Effect.flatMap((ok) =>
    Option.contains(ok, true) ? Effect.void : Effect.logWarning("the prepared database was not saved: the next start prepares it again").pipe(
      Effect.annotateLogs({ file: String(preparedFile), output: spawned.output() })
    )
  ))

// ---------------------------------------------------------------------------------------------
// Throw-away databases (tests, benchmarks)

/** Runs `f` on a short-lived connection to the server's own database (to create and drop others). */
const onServer = <A, E>(url: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.flatMap(SqlClient.SqlClient, f).pipe(Effect.provide(layerWith({ url, maxConnections: 1 })))

/**
 * A brand-new, empty database on the Postgres server at `serverUrl`, for the scope: its URL. It is
 * dropped when the scope closes (`with (force)`: a connection a failed test left behind does not
 * keep it). `prefix` names what made it (`swarm_t_…` for tests, `swarm_bench_…`).
 */
export const temporary = (serverUrl: string, prefix = "swarm_t") =>
  Effect.gen(function*() {
    const name = `${prefix}_${randomBytes(6).toString("hex")}`
    yield* Effect.acquireRelease(
      onServer(serverUrl, (sql) => sql`create database ${sql(name)}`).pipe(
        Effect.catchTag("SqlError", (error) =>
          Effect.fail(unavailable({ kind: "postgres", url: maskUrl(serverUrl) }, `cannot create the database ${name}: ${reasonOf(error)}`)))
      ),
      () =>
        onServer(serverUrl, (sql) => sql`drop database if exists ${sql(name)} with (force)`).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning(`temporary database ${name} was not dropped`, cause))
        )
    )
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    return url.href
  })
