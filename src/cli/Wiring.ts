/**
 * What the commands are wired to besides their arguments: the analyst registry, the database and
 * the environment the remote commands read.
 * The process uses the defaults (agents/registry.ts, the configured store); tests give analysts of
 * their own and a database they made. A command that keeps or reads runs opens the store for as
 * long as it runs, says which database it is on stderr, and closes it — the embedded PGlite's
 * server process with it — before the command returns.
 */
import { SqlClient } from "@effect/sql"
import { ConfigError, type ConfigProvider, Context, Effect, Layer, Option, type Scope } from "effect"
import type { AnyModel } from "../../agents/analysts/Model.js"
import { usesLlm } from "../../agents/registry.js"
import type { Strategy } from "../../schemas/Strategy.js"
import * as LlmRuntime from "../llm/LlmRuntime.js"
import * as Database from "../store/Database.js"
import * as Store from "../store/Store.js"
import type { DatabaseLocked, DatabaseUnavailable, StoreError } from "../store/StoreError.js"
import { fromConfigError, UsageError } from "./CliError.js"
import type { Io } from "./Io.js"

/** Why the store could not be opened. */
export type OpenError = DatabaseUnavailable | DatabaseLocked | StoreError | UsageError

export interface Wiring {
  /** The analyst types strategies can name; default the registry of agents/registry.ts. */
  readonly registry?: ReadonlyMap<string, AnyModel>
  /** The database, migrated; default `Store.layer` (`DATABASE_URL`, else the embedded PGlite). */
  readonly store?: Layer.Layer<Database.Database, DatabaseUnavailable | DatabaseLocked | StoreError | ConfigError.ConfigError>
  /**
   * Where the commands that talk to a server read SWARM_SERVER, SWARM_API_KEY and SWARM_CONFIG,
   * and `serve` its HTTP settings (PORT, HOST, SWARM_CORS_ORIGINS); default the process's
   * environment. Tests give their own, so that a developer's `swarm login` never turns a test of
   * the local database into one of their server.
   */
  readonly environment?: ConfigProvider.ConfigProvider
  /** The language models for LLM agents; default `LlmRuntime.fromConfig` (Ollama at `OLLAMA_HOST`, else offline). */
  readonly llm?: LlmRuntime.LlmRuntime["Type"]
}

/** Configuration the store could not read (a malformed `SWARM_DATA_DIR`, say), as a usage error naming it. */
const configuration = (error: ConfigError.ConfigError) => fromConfigError(error)

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
    return yield* Effect.provide(Effect.provideService(effect, OpenStore, Context.get(context, SqlClient.SqlClient)), context)
  })) as Effect.Effect<A, E | OpenError, Exclude<R, Database.Database | Scope.Scope>>

/**
 * The database `withStore` opened for this command: the LLM answer cache keeps its answers there
 * (`withLlmOf`). Its own tag, not the SQL client's, so that only a command that opened the store
 * (not a `--no-store` backtest, whatever its caller provides) keeps answers in it.
 */
class OpenStore extends Context.Tag("swarm/cli/OpenStore")<OpenStore, SqlClient.SqlClient>() {}

/**
 * Run `effect` with the language models a strategy's LLM agents need — only when it has some (no
 * probe of Ollama otherwise) — saying on stderr which backend answers them. Inside `withStore`, the
 * answer cache keeps its answers in the database too (LlmRuntime.withStoredCache): a second backtest
 * of the same strategy and data asks the model nothing the first asked; with `--no-store`, the
 * process's memory alone.
 */
export const withLlm = (io: Io, wiring: Wiring, strategy: Strategy) => withLlmOf(io, wiring)(strategy)

/**
 * `withLlm` for several strategies in turn (`swarm resume` of every unfinished run): the language
 * models are made once, for the first strategy with LLM agents, and shared by the rest, each run
 * saying which backend answers it.
 */
export const withLlmOf = (io: Io, wiring: Wiring) => {
  let made = wiring.llm
  // The runtime over the open store's database, made once (the cache's counts are its own).
  let stored: { readonly sql: SqlClient.SqlClient; readonly runtime: LlmRuntime.LlmRuntime["Type"] } | undefined
  return (strategy: Strategy) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | UsageError, Exclude<R, LlmRuntime.LlmRuntime>> =>
    Effect.gen(function*() {
      if (!usesLlm(strategy.agents)) return yield* (effect as Effect.Effect<A, E, Exclude<R, LlmRuntime.LlmRuntime>>)
      const base = made ??= yield* LlmRuntime.fromConfig.pipe(Effect.mapError(configuration))
      const open = yield* Effect.serviceOption(OpenStore)
      const runtime = Option.isNone(open) ? base : stored?.sql === open.value ? stored.runtime : (stored = {
        sql: open.value,
        runtime: yield* Effect.provideService(LlmRuntime.withStoredCache(base), SqlClient.SqlClient, open.value)
      }).runtime
      io.stderr(`language model: ${runtime.info.description}\n`)
      return yield* Effect.provideService(effect, LlmRuntime.LlmRuntime, runtime)
    })
}
