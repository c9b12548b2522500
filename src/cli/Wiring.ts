/**
 * What the commands are wired to besides their arguments: the analyst registry, the database and
 * the environment the remote commands read.
 * The process uses the defaults (agents/registry.ts, the configured store); tests give analysts of
 * their own and a database they made. A command that keeps or reads runs opens the store for as
 * long as it runs, says which database it is on stderr, and closes it — the embedded PGlite's
 * server process with it — before the command returns.
 */
import { ConfigError, type ConfigProvider, Context, Effect, Layer, type Scope } from "effect"
import type { AnyModel } from "../../agents/analysts/Model.js"
import * as Database from "../store/Database.js"
import * as Store from "../store/Store.js"
import type { DatabaseLocked, DatabaseUnavailable, StoreError } from "../store/StoreError.js"
import { UsageError } from "./CliError.js"
import type { Io } from "./Io.js"

/** Why the store could not be opened. */
export type OpenError = DatabaseUnavailable | DatabaseLocked | StoreError | UsageError

export interface Wiring {
  /** The analyst types strategies can name; default the registry of agents/registry.ts. */
  readonly registry?: ReadonlyMap<string, AnyModel>
  /** The database, migrated; default `Store.layer` (`DATABASE_URL`, else the embedded PGlite). */
  readonly store?: Layer.Layer<Database.Database, DatabaseUnavailable | DatabaseLocked | StoreError | ConfigError.ConfigError>
  /**
   * Where the commands that talk to a server read SWARM_SERVER, SWARM_API_KEY and SWARM_CONFIG;
   * default the process's environment. Tests give their own, so that a developer's `swarm login`
   * never turns a test of the local database into one of their server.
   */
  readonly environment?: ConfigProvider.ConfigProvider
}

/** Configuration the store could not read (a malformed `SWARM_DATA_DIR`, say), as a usage error naming it. */
const configuration = (error: ConfigError.ConfigError) =>
  new UsageError({ field: "configuration", reason: String(error).replace(/\s*\n\s*/g, " ") })

/**
 * Run `effect` on the store: open it (printing its one-line description on stderr), provide it,
 * and close it when `effect` is done, after `effect`'s own finalizers.
 */
export const withStore = (io: Io, wiring: Wiring) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | OpenError, Exclude<R, Database.Database | Scope.Scope>> =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(wiring.store ?? Store.layer).pipe(
      Effect.catchIf(ConfigError.isConfigError, (error) => Effect.fail(configuration(error)))
    )
    io.stderr(`${Context.get(context, Database.DatabaseInfo).description}\n`)
    return yield* Effect.provide(effect, context)
  })) as Effect.Effect<A, E | OpenError, Exclude<R, Database.Database | Scope.Scope>>
