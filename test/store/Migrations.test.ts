/**
 * Migrations: an empty database gets the whole schema, a second run applies nothing, and processes
 * starting together on an empty database (separate pools) all succeed with the schema applied once.
 * On every back-end (see fixtures/backends.ts).
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Database from "../../src/store/Database.js"
import { migrations } from "../../migrations/index.js"
import * as Migrations from "../../src/store/Migrations.js"
import * as Store from "../../src/store/Store.js"
import { backends, freshPostgresUrl, serverUrl, startTimeout } from "./fixtures/backends.js"

/** What a first run applies: every migration, as `[id, name]`. */
const ALL = migrations.map(([id, name]) => [id, name])
const RECORDED = migrations.map(([migrationId, name]) => ({ migrationId, name }))

/** Every table of the schema (migrations/) and the migrations' own. */
const TABLES = [
  "agent_restarts",
  "api_keys",
  "approval_waits",
  "approvals",
  "audit_log",
  "chat_llm_calls",
  "chat_messages",
  "chat_sessions",
  "checkpoints",
  "control_requests",
  "decisions",
  "equity_snapshots",
  "fills",
  "llm_answers",
  "llm_usage",
  "opinions",
  "orders",
  "positions",
  "reasoning",
  "rounds",
  "rules",
  "run_events",
  "runs",
  "strategies",
  "strategy_versions",
  "swarm_migrations",
  "trades",
  "trading_profiles",
  "users",
  "verdicts",
  "waiting_runs",
  "webhook_alerts",
  "webhook_secrets"
]

const tables = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ name: string }>`select table_name as name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`).pipe(
    Effect.map((rows) => rows.map((row) => row.name))
  )

const applied = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ migrationId: number; name: string }>`select migration_id, name from swarm_migrations order by migration_id`)

/** Back to an empty database, so that each test starts from nothing whatever ran before it. */
const emptied = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.andThen(sql`drop schema public cascade`, sql`create schema public`))

for (const backend of backends) {
  layer(backend.database, { timeout: startTimeout })(`migrations (${backend.name})`, (it) => {
    it.effect("on an empty database: every table is made; a second and a third run apply nothing", () =>
      Effect.gen(function*() {
        yield* emptied
        expect(yield* tables).toEqual([])
        expect(yield* Migrations.migrate).toEqual(ALL)
        expect(ALL[0]).toEqual([1, "initial"])
        expect(Migrations.latest).toBe(ALL.at(-1)![0])
        expect(yield* tables).toEqual(TABLES)
        expect(yield* applied).toEqual(RECORDED)

        expect(yield* Migrations.migrate).toEqual([])
        expect(yield* Migrations.migrate).toEqual([])
        expect(yield* tables).toEqual(TABLES)
        expect(yield* applied).toEqual(RECORDED)
        // The schema is usable: a row that needs several tables goes in.
        const sql = yield* SqlClient.SqlClient
        yield* sql`insert into users (id, name, role) values ('u1', 'u1', 'user')`
        yield* sql`insert into strategies (id, owner_id, name) values ('s1', 'u1', 'one')`
        expect(yield* sql`select run_count from strategies`).toEqual([{ runCount: 0 }])
      }))

    it.effect("a database holding another application's tables: MigrationFailed, with the database's answer", () =>
      Effect.gen(function*() {
        yield* emptied
        const sql = yield* SqlClient.SqlClient
        yield* sql`create table users (id serial primary key, email text)`
        const error = yield* Effect.flip(Migrations.migrate)
        expect(error).toBeInstanceOf(Migrations.MigrationFailed)
        expect(error.message).toBe(`migration 1_initial failed: relation "users" already exists`)
        expect(error).toMatchObject({ migration: "1_initial", foreignTables: true })
        // Nothing was made: the whole run is one transaction.
        expect(yield* tables).toEqual(["users"])
        yield* emptied
      }))

    it.effect("what start-up says of the schema: migrated now and which, then up to date; a newer build's, that this one does not know it", () =>
      Effect.gen(function*() {
        yield* emptied
        const said = Effect.map(Effect.all([Migrations.migrate, Migrations.recordedLatest]), ([ran, at]) => Migrations.describe({ ran, at }))
        const file = ([id, name]: ReadonlyArray<unknown>) => `${String(id).padStart(4, "0")}_${String(name)}`
        expect(yield* said).toBe(
          `database schema: migrated to ${Migrations.latest} now, ${ALL.length} migrations applied (${file(ALL[0]!)} to ${file(ALL.at(-1)!)})`
        )
        expect(yield* said).toBe(`database schema: migration ${Migrations.latest}, up to date`)
        // Up to three applied now are each named (an upgrade by a migration or two).
        const last = ALL.at(-1)!
        expect(Migrations.describe({ ran: [[Migrations.latest, String(last[1])]], at: Migrations.latest })).toBe(
          `database schema: migrated to ${Migrations.latest} now, 1 migration applied (${file(last)})`
        )
        // A newer build migrated the database: this one runs nothing and says so.
        const sql = yield* SqlClient.SqlClient
        yield* sql`insert into swarm_migrations (migration_id, name) values (${Migrations.latest + 1}, 'from_a_newer_build')`
        expect(yield* said).toBe(
          `database schema: migration ${Migrations.latest + 1}, newer than this build knows (its latest is ${Migrations.latest}): ` +
            `a newer Swarm migrated this database; run that build against it, or this one against a database of its own`
        )
        yield* emptied
      }))

    // Postgres: two connections of the pool race; embedded: the single connection queues them.
    it.effect("two concurrent runs through one client: both succeed, one applies the schema, the other nothing", () =>
      Effect.gen(function*() {
        yield* emptied
        const results = yield* Effect.all([Migrations.migrate, Migrations.migrate], { concurrency: "unbounded" })
        expect(results.map((r) => r.length).sort()).toEqual([0, ALL.length])
        expect(yield* tables).toEqual(TABLES)
        expect(yield* applied).toEqual(RECORDED)
      }))
  })
}

describe.runIf(serverUrl !== undefined)("the store on another application's database (postgres)", () => {
  it.live("start-up says what Postgres answered, which database (masked) and what to do", () =>
    Effect.gen(function*() {
      const url = yield* freshPostgresUrl
      yield* Effect.scoped(Effect.flatMap(Layer.build(Database.layerWith({ url })), (context) =>
        Effect.provide(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`create table users (id serial primary key)`), context)))
      const error = yield* Effect.flip(Effect.scoped(Layer.build(Store.layerWith({ url }))))
      expect(error._tag).toBe("StoreError")
      expect(error.message).toBe(
        `store: cannot migrate the database: the database at ${Database.maskUrl(url)} holds tables Swarm did not create ` +
          `(migration 1_initial failed: relation "users" already exists): point DATABASE_URL at an empty database (createdb swarm) or at Swarm's own`
      )
    }).pipe(Effect.scoped), 60_000)
})

describe.runIf(serverUrl !== undefined)("migrations started together by several processes (postgres)", () => {
  it.live("four pools on one empty database: all succeed, the schema is applied once", () =>
    Effect.gen(function*() {
      const url = yield* freshPostgresUrl
      // Separate pools, each connected before the race starts (as separate processes would be).
      const pools = yield* Effect.forEach(
        [1, 2, 3, 4],
        () => Layer.build(Database.layerWith({ url, maxConnections: 2 })),
        { concurrency: "unbounded" }
      )
      const results = yield* Effect.all(
        pools.map((context) => Effect.provide(Migrations.migrate, context)),
        { concurrency: "unbounded" }
      )
      expect(results.map((r) => r.length).sort()).toEqual([0, 0, 0, ALL.length])
      expect(results.find((r) => r.length > 0)).toEqual(ALL)
      expect(yield* Effect.provide(Effect.all([tables, applied]), pools[3]!)).toEqual([TABLES, RECORDED])
    }).pipe(Effect.scoped), 60_000)
})
