/**
 * The store as the rest of Swarm uses it: the database chosen by configuration (`Database.ts`),
 * brought up to the schema of migrations/ before anything else touches it.
 */
import { Effect, Layer } from "effect"
import * as Database from "./Database.js"
import { migrate } from "./Migrations.js"
import { StoreError } from "./StoreError.js"

const migrated = Layer.effectDiscard(
  migrate.pipe(Effect.mapError((error) => new StoreError({ operation: "migrate the database", reason: error.message })))
)

/** What the store's layers provide. */
export type Services = Database.Database

/** The configured database (`DATABASE_URL`, or the embedded default), migrated. */
export const layer = migrated.pipe(Layer.provideMerge(Database.layer))

/** A database named explicitly (tests, tools), migrated. */
export const layerWith = (options: Database.Options) => migrated.pipe(Layer.provideMerge(Database.layerWith(options)))
