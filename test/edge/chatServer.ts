/** What the chat suites (Chat.test.ts, ChatFollow.test.ts) share: the whole server on a free port over the test's database, quick key re-checks, users, a finished run. */
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Duration, Effect, Layer } from "effect"
import * as Auth from "../../src/edge/Auth.js"
import * as AuthLive from "../../src/edge/AuthLive.js"
import * as Http from "../../src/edge/Http.js"
import * as Server from "../../src/edge/Server.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import type * as Database from "../../src/store/Database.js"
import * as Users from "../../src/store/Users.js"
import { seedRun as seedRunOf } from "../agents/system/fixtures.js"

/**
 * Streams check their key again every 20 ms, and the authenticator reuses an answer for 20 ms (not
 * 15 s and 30 s): a revoked key's stream ends at once.
 */
export const quickRecheck = Layer.mergeAll(Layer.succeed(Auth.Recheck, Duration.millis(20)), Layer.succeed(AuthLive.Ttl, Duration.millis(20)))

/** The whole server on a free port, over the test's database, its model as `config` says; for the scope. */
export const serve = (config: Record<string, string>, services: Layer.Layer<never> = Layer.empty) =>
  Effect.gen(function*() {
    const database = yield* Effect.context<Database.Database>()
    const built = yield* Layer.build(
      Server.layer(Layer.succeedContext(database), { port: 0, host: "127.0.0.1", logRequests: false, shutdownGrace: 0 }).pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(config))))),
        Layer.provide(services)
      )
    )
    return yield* Effect.provide(Http.baseUrl, built)
  }).pipe(Effect.orDie)

/** The offline model. */
export const offline = { SWARM_LLM: "offline" }

let users = 0

/** A new user (`<prefix>-<n>`) and an API key of theirs. */
export const newUser = (prefix: string, role: "user" | "admin" = "user") =>
  Effect.gen(function*() {
    const made = yield* Users.create(`${prefix}-${++users}`, role)
    const { id: keyId, key } = yield* ApiKeys.issue(made.id)
    return { id: made.id, key, keyId }
  }).pipe(Effect.orDie)

/** A finished run of `owner` whose closed trades are `TRADES` (../agents/system/fixtures.ts `seedRun`), and its reference. */
export const finishedRun = (owner: string, label: string) =>
  Effect.gen(function*() {
    const run = yield* seedRunOf(owner, { label })
    // Finished, so that the runs started later by a test are numbered after it.
    const sql = yield* SqlClient.SqlClient
    yield* sql`update runs set status = 'completed', finished_at = now() where id = ${run.id}`
    return { ...run, ref: `${run.name}#${run.number}` }
  }).pipe(Effect.orDie)
