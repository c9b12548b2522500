/**
 * Brings a database up to the schema of migrations/, at start-up, in every process. Idempotent: a
 * database already at the latest migration is left alone. Safe when two processes start together:
 * the whole run holds a transaction-scoped advisory lock, so the second waits for the first to
 * commit and then finds nothing to do. (@effect/sql's Migrator locks its table, but creates that
 * table first, unlocked: two processes on an empty database could both try.)
 */
import { Migrator, SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { migrations } from "../../migrations/index.js"
import { transaction } from "./Transaction.js"

/** The table that records which migrations ran. */
export const TABLE = "swarm_migrations"

/** An arbitrary constant naming the migration lock among advisory locks (`'swarm-migrations'` hashed). */
const LOCK = 0x5377_6d01

const runMigrations = Migrator.make({})

/** Run the migrations not yet applied; returns the ones it ran, as `[id, name]`. */
export const migrate = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* transaction(sql, Effect.gen(function*() {
    yield* sql`select pg_advisory_xact_lock(${LOCK})`
    // The Migrator probes for its table with a query that fails when the table is missing, which
    // would abort this transaction: the table is made here first, the Migrator's own shape.
    yield* sql`create table if not exists ${sql(TABLE)} (
      migration_id integer primary key,
      created_at timestamp with time zone not null default now(),
      name text not null
    )`
    return yield* runMigrations({ loader: Effect.succeed(migrations), table: TABLE })
  }))
}).pipe(Effect.withSpan("store.migrate"))

/** The latest migration a complete schema has. */
export const latest: number = migrations.reduce((max, [id]) => Math.max(max, id), 0)
