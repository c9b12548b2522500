/**
 * Typed failures of the store. Opening the database fails with one of these values, never with a
 * stack trace: each names the back-end or the directory involved and what the user can do about it.
 */
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Schema } from "effect"

/**
 * Which database a process talks to: a Postgres server (its URL with the password masked) or the
 * embedded PGlite (its data directory, or `memory://`). Printed at start-up and by `/health`.
 */
export const Backend = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("postgres"), url: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("embedded"), dataDir: Schema.String })
)
export type Backend = typeof Backend.Type

/** The database could not be opened: the server refused, the URL is malformed, PGlite did not start… */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  backend: Backend,
  reason: Schema.String
}) {
  override get message(): string {
    const where = this.backend.kind === "postgres"
      ? `Postgres at ${this.backend.url}`
      : `embedded PGlite at ${this.backend.dataDir}`
    return `database unavailable (${where}): ${this.reason}`
  }
}

/**
 * Another live process has the embedded database's directory open. PGlite is a single session
 * served to a single process; sharing a database between processes needs a Postgres server.
 * `command` is what that process is (`swarm serve`, `swarm backtest`…) when the system says.
 */
export class DatabaseLocked extends Schema.TaggedError<DatabaseLocked>()("DatabaseLocked", {
  dataDir: Schema.String,
  pid: Schema.Number,
  command: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `the embedded database at ${this.dataDir} is in use by process ${this.pid} (${this.holder}), ` +
      `and it serves one process at a time: stop that process, or set DATABASE_URL to a Postgres server to run several`
  }

  /** The holding process as a user knows it: its command, else the likeliest one (`npm start`'s). */
  get holder(): string {
    return this.command ?? "probably swarm serve"
  }
}

/** A query or a write failed (the connection dropped, a constraint refused a row): what was being done, and why. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `store: cannot ${this.operation}: ${this.reason}`
  }
}

/** No such run — or not one the asker may see: both get the same answer (the RPC contract's error). */
export { RunNotFound } from "../../schemas/Rpc.js"

/** The reason a SQL error gives, with the driver's own message when it has one. */
const sqlReason = (error: SqlError): string => {
  const cause = error.cause
  const detail = cause instanceof Error ? cause.message : typeof cause === "string" ? cause : undefined
  return detail === undefined || detail === error.message ? error.message : `${error.message}: ${detail}`
}

/** Turn the `SqlError`s of `effect` into a `StoreError` naming `operation` (for `Effect.fn`'s pipeline). */
export const storeError = (operation: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, SqlError> | StoreError, R> =>
  Effect.catchIf(
    effect,
    (error): error is Extract<E, SqlError> => error instanceof SqlError,
    (error) => Effect.fail(new StoreError({ operation, reason: sqlReason(error) }))
  ) as Effect.Effect<A, Exclude<E, SqlError> | StoreError, R>

/** A row that does not decode as what it should hold: edited by hand, or written by a different version. */
export class CorruptRecord extends Schema.TaggedError<CorruptRecord>()("CorruptRecord", {
  table: Schema.String,
  key: Schema.String,
  column: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.table} ${this.key}: ${this.column} does not decode: ${this.reason}`
  }
}
