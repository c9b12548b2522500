/**
 * Brings a database up to the schema of migrations/, at start-up, in every process. Idempotent: a
 * database already at the latest migration is left alone. Safe when two processes start together:
 * the whole run holds a transaction-scoped advisory lock, so the second waits for the first to
 * commit and then finds nothing to do. (@effect/sql's Migrator locks its table, but creates that
 * table first, unlocked: two processes on an empty database could both try.)
 */
import { Migrator, SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { migrations } from "../../migrations/index.js"
import { transaction } from "./Transaction.js"

/** The table that records which migrations ran. */
export const TABLE = "swarm_migrations"

/** An arbitrary constant naming the migration lock among advisory locks (`'swarm-migrations'` hashed). */
const LOCK = 0x5377_6d01

const runMigrations = Migrator.make({})

/**
 * A migration failed: which (`1_initial`), what the database answered, and whether the database
 * holds tables Swarm did not create — none of its migrations recorded, and the first one finding
 * what it makes already there (another application's `users`).
 */
export class MigrationFailed extends Schema.TaggedError<MigrationFailed>()("MigrationFailed", {
  migration: Schema.String,
  reason: Schema.String,
  foreignTables: Schema.Boolean
}) {
  override get message(): string {
    return `migration ${this.migration} failed: ${this.reason}`
  }
}

/** Postgres's codes for "already exists": a table (or view, index…), an object (type, constraint), a schema. */
const ALREADY_EXISTS = new Set(["42P07", "42710", "42P06"])

/** The deepest error of a cause chain: the database's own words (`relation "users" already exists`) and code. */
const rootOf = (error: unknown): { readonly message: string; readonly code: string | undefined } => {
  let current: unknown = error
  let found: { message: string; code: string | undefined } = { message: String(error), code: undefined }
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    const { cause, code, message } = current as { cause?: unknown; code?: unknown; message?: unknown }
    if (typeof message === "string" && message !== "") found = { message, code: typeof code === "string" ? code : found.code }
    current = cause
  }
  return found
}

/**
 * Run the migrations not yet applied; returns the ones it ran, as `[id, name]`. A migration that
 * fails is a `MigrationFailed` saying what the database answered (@effect/sql's Migrator makes it
 * a defect saying only `Migration "1_initial" failed`).
 */
export const migrate = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  let recorded = 0
  return yield* transaction(sql, Effect.gen(function*() {
    yield* sql`select pg_advisory_xact_lock(${LOCK})`
    // The Migrator probes for its table with a query that fails when the table is missing, which
    // would abort this transaction: the table is made here first, the Migrator's own shape.
    yield* sql`create table if not exists ${sql(TABLE)} (
      migration_id integer primary key,
      created_at timestamp with time zone not null default now(),
      name text not null
    )`
    recorded = (yield* sql<{ n: number }>`select count(*)::int as n from ${sql(TABLE)}`)[0]?.n ?? 0
    return yield* runMigrations({ loader: Effect.succeed(migrations), table: TABLE })
  })).pipe(
    Effect.catchSomeDefect((defect) => {
      if (!(defect instanceof Migrator.MigrationError)) return Option.none()
      const root = rootOf(defect.cause)
      const migration = /^Migration "(.*)" failed$/.exec(defect.message)?.[1] ?? defect.message
      return Option.some(Effect.fail(
        new MigrationFailed({
          migration,
          reason: defect.cause === undefined ? defect.message : root.message,
          foreignTables: recorded === 0 && root.code !== undefined && ALREADY_EXISTS.has(root.code)
        })
      ))
    })
  )
}).pipe(Effect.withSpan("store.migrate"))

/** The latest migration a complete schema has. */
export const latest: number = migrations.reduce((max, [id]) => Math.max(max, id), 0)
