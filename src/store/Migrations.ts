/**
 * Brings a database up to the schema of migrations/, at start-up, in every process. Idempotent: a
 * database already at the latest migration is left alone. Safe when two processes start together:
 * the whole run holds a transaction-scoped advisory lock, so the second waits for the first to
 * commit and then finds nothing to do. (@effect/sql's Migrator locks its table, but creates that
 * table first, unlocked: two processes on an empty database could both try.)
 */
import { Migrator, SqlClient } from "@effect/sql"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Effect, Option, Schema } from "effect"
import { migrations } from "../../migrations/index.js"
import { embeddedCacheFile } from "./Database.js"
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

/**
 * What a start's migrating did (`Store.layer`): the migrations it ran (`[id, name]`, none when the
 * database was up to date) and the latest one the database has recorded after — above `latest`
 * when a newer build migrated it.
 */
export interface Migrated {
  readonly ran: ReadonlyArray<readonly [id: number, name: string]>
  readonly at: number
}

/** The store's migrating at start-up, as `describe` says it (`swarm serve`'s start-up lines). */
export class MigratedSchema extends Context.Tag("swarm/store/MigratedSchema")<MigratedSchema, Migrated>() {}

/** The latest migration the database has recorded (0 for none). */
export const recordedLatest = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ at: number | null }>`select max(migration_id)::int as at from ${sql(TABLE)}`, (rows) => rows[0]?.at ?? 0))

/** `0014_partial_fills`: a migration as its file is named. */
const fileName = ([id, name]: readonly [number, string]) => `${String(id).padStart(4, "0")}_${name}`

/**
 * The start-up line: `database schema: migration 14, up to date`; `…: migrated to 14 now, 2
 * migrations applied (0013_control_trading, 0014_partial_fills)`; or, on a database a newer build
 * migrated, that this build does not know its latest migrations — an older server in a rolling
 * upgrade, or a build rolled back: what it writes the newer schema may not expect.
 */
export const describe = (migrated: Migrated): string => {
  if (migrated.at > latest) {
    return `database schema: migration ${migrated.at}, newer than this build knows (its latest is ${latest}): ` +
      `a newer Swarm migrated this database; run that build against it, or this one against a database of its own`
  }
  if (migrated.ran.length === 0) return `database schema: migration ${migrated.at}, up to date`
  const ran = [...migrated.ran].sort(([a], [b]) => a - b)
  const names = ran.length <= 3 ? ran.map(fileName).join(", ") : `${fileName(ran[0]!)} to ${fileName(ran[ran.length - 1]!)}`
  return `database schema: migrated to ${migrated.at} now, ${ran.length} migration${ran.length === 1 ? "" : "s"} applied (${names})`
}

/**
 * A digest of the sources that decide what migrating an empty database makes: every file of
 * `folder` (migrations/: the migrations and their list), by name and content, and `also` (this
 * module: the migrations' own table). A migration changed, added or renamed gives another. (0012
 * imports the recorder's projection, but only to fill its tables from a database's events: an
 * empty database has none, so the projection is not part of what it makes.) `undefined` if a
 * source cannot be read (a bundle, without them beside it).
 */
export const digestOf = (folder: string, also: ReadonlyArray<string>): string | undefined => {
  try {
    const hash = createHash("sha256")
    const files = [...fs.readdirSync(folder, { withFileTypes: true })].filter((entry) => entry.isFile()).map((entry) => entry.name).sort()
    for (const [name, file] of [...files.map((name) => [name, path.join(folder, name)] as const), ...also.map((file) => [`../${path.basename(file)}`, file] as const)]) {
      const content = fs.readFileSync(file)
      hash.update(`${name}\0${content.length}\0`).update(content)
    }
    return hash.digest("hex").slice(0, 16)
  } catch {
    return undefined
  }
}

/**
 * The file a database in memory, migrated, is kept in for the next to start from (Database.Template;
 * the tests' migrated databases, test/store/fixtures/backends.ts): in PGlite's cache folder, named
 * after PGlite's version and the migrations' digest (`digestOf`), so that a changed migration is
 * never served a database the old one made. `undefined` (migrate every time) if the digest or the
 * folder cannot be had. Read once, when first asked: the application never asks (its start
 * migrates its own database, as always).
 */
export const templateFile = (): string | undefined => {
  if (cachedTemplateFile === null) {
    const digest = digestOf(fileURLToPath(new URL("../../migrations/", import.meta.url)), [fileURLToPath(import.meta.url)])
    cachedTemplateFile = digest === undefined ? undefined : embeddedCacheFile(`migrated-${digest}`)
  }
  return cachedTemplateFile
}

let cachedTemplateFile: string | undefined | null = null
