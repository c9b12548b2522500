/**
 * A brand-new, empty database for a store test, on whichever back-end the test run has: a
 * throw-away database on the Postgres server of `DATABASE_URL` when it is set (created for the
 * scope, dropped with it), otherwise an in-memory embedded PGlite (its own server process, no
 * lock file). Same services and conventions as the application's layer — it is built from it.
 *
 *   layer(freshDatabase, { timeout: "60 seconds" })("my store", (it) => { it.effect(...) })
 */
import { Effect, Layer } from "effect"
import * as Database from "../../src/store/Database.js"

/** The Postgres server the store tests run against, if any (`DATABASE_URL`). */
export const serverUrl: string | undefined = process.env.DATABASE_URL?.trim() || undefined

/** Which back-end `freshDatabase` gives this test run. */
export const backend: Database.Backend["kind"] = serverUrl === undefined ? "embedded" : "postgres"

/** A fresh, empty database for the layer's lifetime (see the module comment). */
export const freshDatabase: Layer.Layer<Database.Database, Database.DatabaseUnavailable | Database.DatabaseLocked> = Layer
  .unwrapScoped(Effect.gen(function*() {
    if (serverUrl === undefined) return Database.layerWith({ embedded: "memory" })
    // Dropped after the test's pool has closed (scopes close in reverse).
    return Database.layerWith({ url: yield* Database.temporary(serverUrl) })
  }))
