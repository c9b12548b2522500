/**
 * The store as the rest of Swarm uses it: the database chosen by configuration (`Database.ts`),
 * brought up to the schema of migrations/ before anything else touches it.
 */
import { Effect, Layer } from "effect"
import * as Database from "./Database.js"
import { migrate, MigratedSchema, recordedLatest } from "./Migrations.js"
import { StoreError, storeError } from "./StoreError.js"

/**
 * What a failed migration says: the database's answer and, when the database holds another
 * application's tables, which database (its password masked) and what to do.
 */
const migrated = Layer.effect(MigratedSchema, Effect.gen(function*() {
  const info = yield* Database.DatabaseInfo
  const ran = yield* migrate.pipe(Effect.mapError((error) => {
    if (error._tag !== "MigrationFailed" || !error.foreignTables) {
      return new StoreError({ operation: "migrate the database", reason: error.message })
    }
    const where = info.backend.kind === "postgres"
      ? `the database at ${info.backend.url}${info.description.endsWith("(DATABASE_URL)") ? " (DATABASE_URL)" : ""}`
      : `the embedded database at ${info.backend.dataDir}`
    const todo = info.backend.kind === "postgres"
      ? "point DATABASE_URL at an empty database (createdb swarm) or at Swarm's own"
      : "point SWARM_DATA_DIR at an empty directory"
    return new StoreError({
      operation: "migrate the database",
      reason: `${where} holds tables Swarm did not create (${error.message}): ${todo}`
    })
  }))
  const at = yield* recordedLatest.pipe(storeError("read which migrations the database has"))
  return { ran, at }
}))

/**
 * What the store's layers provide (and `MigratedSchema`, what migrating did, which `swarm serve`
 * says when its store gives it: tests' own stores need not).
 */
export type Services = Database.Database

/** The configured database (`DATABASE_URL`, or the embedded default), migrated. */
export const layer = migrated.pipe(Layer.provideMerge(Database.layer))

/** A database named explicitly (tests, tools), migrated. */
export const layerWith = (options: Database.Options) => migrated.pipe(Layer.provideMerge(Database.layerWith(options)))
