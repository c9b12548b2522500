/** The whole server for the chat suites (Chat.test.ts, ChatFollow.test.ts): a free port, the test's database, quick key re-checks. */
import { ConfigProvider, Duration, Effect, Layer } from "effect"
import * as Auth from "../../src/edge/Auth.js"
import * as AuthLive from "../../src/edge/AuthLive.js"
import * as Http from "../../src/edge/Http.js"
import * as Server from "../../src/edge/Server.js"
import type * as Database from "../../src/store/Database.js"

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
