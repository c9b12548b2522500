/**
 * A brand-new, empty database for a store test, on whichever back-end the test run has: a
 * throw-away database on the Postgres server of `DATABASE_URL` when it is set (created for the
 * scope, dropped with it), otherwise an in-memory embedded PGlite (its own server process, no
 * lock file). Same services and conventions as the application's layer — it is built from it.
 *
 *   layer(freshDatabase, { timeout: "60 seconds" })("my store", (it) => { it.effect(...) })
 */
import { randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import * as Database from "../../src/store/Database.js"

/** The Postgres server the store tests run against, if any (`DATABASE_URL`). */
export const serverUrl: string | undefined = process.env.DATABASE_URL?.trim() || undefined

/** Which back-end `freshDatabase` gives this test run. */
export const backend: Database.Backend["kind"] = serverUrl === undefined ? "embedded" : "postgres"

/** Runs `f` on a short-lived connection to the server's own database (to create and drop others). */
const onServer = <A, E>(url: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.flatMap(SqlClient.SqlClient, f).pipe(Effect.provide(Database.layerWith({ url, maxConnections: 1 })))

const withDatabase = (url: string, database: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.href
}

/** A fresh, empty database for the layer's lifetime (see the module comment). */
export const freshDatabase: Layer.Layer<Database.Database, Database.DatabaseUnavailable | Database.DatabaseLocked> = Layer
  .unwrapScoped(Effect.gen(function*() {
    if (serverUrl === undefined) return Database.layerWith({ embedded: "memory" })
    const url = serverUrl
    const name = `swarm_t_${randomBytes(6).toString("hex")}`
    yield* Effect.acquireRelease(
      onServer(url, (sql) => sql`CREATE DATABASE ${sql(name)}`).pipe(
        Effect.catchTag("SqlError", (error) => Effect.dieMessage(`cannot create the test database ${name}: ${error.message}`))
      ),
      // Released after the test's pool has closed (scopes close in reverse); FORCE drops any
      // connection a failed test left behind all the same.
      () =>
        onServer(url, (sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning(`test database ${name} was not dropped`, cause))
        )
    )
    return Database.layerWith({ url: withDatabase(url, name) })
  }))
