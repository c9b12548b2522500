/**
 * The Swarm server, assembled: the store (migrated), the event bus, the authenticator, the run
 * manager, and one HTTP server with the RPC endpoint (`POST /rpc`, ndjson; `GET /rpc/ws`,
 * WebSocket), the SSE events of a run, the TradingView webhooks and `/health`. `serve` also makes the first admin of an
 * empty database and says what it uses.
 */
import { RpcServer } from "@effect/rpc"
import { type ConfigError, Effect, Layer, Option } from "effect"
import * as SystemAgent from "../../agents/system/SystemAgent.js"
import { SwarmRpcs } from "../../schemas/Rpc.js"
import * as AuthInvalidations from "../bus/AuthInvalidations.js"
import * as ChatFanout from "../bus/ChatFanout.js"
import * as IdempotencyKeys from "../bus/IdempotencyKeys.js"
import * as InProcessBus from "../bus/InProcessBus.js"
import * as LatestCache from "../bus/LatestCache.js"
import * as Redis from "../bus/Redis.js"
import * as RedisBus from "../bus/RedisBus.js"
import * as TokenBucket from "../bus/TokenBucket.js"
import * as LlmRuntime from "../llm/LlmRuntime.js"
import * as Store from "../store/Store.js"
import * as HttpMetrics from "../telemetry/HttpMetrics.js"
import { AuthenticatorLive } from "./AuthLive.js"
import { ChatHandlers } from "./ChatHandlers.js"
import * as ChatSse from "./ChatSse.js"
import * as Http from "./Http.js"
import { AuthenticatedLive } from "./RpcAuth.js"
import * as RpcBackpressure from "./RpcBackpressure.js"
import { AdminHandlers, ApprovalHandlers, LeaderboardHandlers, RuleHandlers, RunHandlers, StrategyHandlers } from "./RpcHandlers.js"
import * as RunEvents from "./RunEvents.js"
import * as RunManager from "./RunManager.js"
import * as RunStatusFeed from "./RunStatusFeed.js"
import { TraceHandlers } from "./TraceHandlers.js"
import { WebhookHandlers } from "./WebhookHandlers.js"
import * as RpcFastPath from "./RpcFastPath.js"
import * as RpcKeepAlive from "./RpcKeepAlive.js"
import * as RpcPayloads from "./RpcPayloads.js"
import * as RpcStopping from "./RpcStopping.js"
import * as Webhooks from "./Webhooks.js"

const handlers = Layer.mergeAll(
  StrategyHandlers,
  RuleHandlers,
  RunHandlers,
  ApprovalHandlers,
  LeaderboardHandlers,
  AdminHandlers,
  WebhookHandlers,
  TraceHandlers,
  // The system agent is one per process: this layer and the chat's SSE route share it (one layer value, built once).
  ChatHandlers.pipe(Layer.provide(SystemAgent.layer)),
  AuthenticatedLive
)

/**
 * The RPC endpoint, over HTTP (ndjson, streams delivered as they come) and WebSocket; on both, a
 * payload that does not decode is a typed `InvalidRequest` (RpcPayloads.ts), and a call the server's
 * stopping cuts off is `Unavailable` (RpcStopping.ts). On both, an answer still going is kept alive
 * while it is quiet (RpcKeepAlive.ts). On both, a client that stops reading holds a stream for a
 * bounded time, and over HTTP what the server buffers for it is bounded too (RpcBackpressure.ts).
 * Over HTTP, a body of one call that answers once is answered without @effect/rpc's server
 * machinery, byte for byte as it would be (RpcFastPath.ts): the common case, at a fraction of its CPU.
 */
export const rpcRoutes = Layer.mergeAll(
  RpcServer.layer(SwarmRpcs).pipe(Layer.provide(RpcPayloads.checked(
    SwarmRpcs,
    RpcStopping.answered(RpcKeepAlive.keptAlive(RpcBackpressure.layerProtocolHttpRouter({ path: "/rpc", single: RpcFastPath.make(SwarmRpcs) }).pipe(Layer.provide(RpcPayloads.layerNdjsonBody))))
  ))),
  RpcServer.layer(SwarmRpcs).pipe(Layer.provide(RpcPayloads.checked(
    SwarmRpcs,
    RpcStopping.answered(RpcKeepAlive.keptAlive(RpcBackpressure.acked(RpcServer.layerProtocolWebsocketRouter({ path: Http.RPC_WS_PATH }).pipe(Layer.provide(RpcPayloads.layerNdjsonObjects)))))
  )))
).pipe(Layer.provide(handlers), Layer.provide(RpcPayloads.CheckedPayloadLive))

/**
 * The services every route shares, over a database layer (the configured store, or a test's). With
 * `REDIS_URL` set, the event bus, the token buckets (webhook rate limits), the idempotency keys, the
 * latest-values cache, the chat's live chunks, the LLM answer cache, the forgetting of cached API
 * keys (a key revoked, a user disabled) and the news of a run paused or resumed (RunStatusFeed.ts) are in Redis, shared by every
 * server process on it; otherwise they are this process's own, but for the LLM answer cache, kept in
 * the database behind the process's memory (SqlAnswerCache.ts) so that a restart asks the model
 * nothing it already answered. `llm` unset: the configured model (its cache as above).
 */
export const services = <E, R>(
  store: Layer.Layer<Store.Services, E, R>,
  llm?: Layer.Layer<LlmRuntime.LlmRuntime, ConfigError.ConfigError>,
  runs: RunManager.Options = {}
) => {
  const shared = Layer.unwrapEffect(Effect.map(Redis.config, (redis) =>
    Option.isNone(redis)
      ? Layer.mergeAll(
        InProcessBus.layer,
        IdempotencyKeys.layerMemory,
        LatestCache.layerMemory(),
        ChatFanout.layerMemory,
        AuthInvalidations.layerMemory,
        RunStatusFeed.layer,
        LlmRuntime.layerStored(llm ?? LlmRuntime.layer)
      ).pipe(
        // One set of buckets: the webhooks' limits and the models' rate limit (LLM_RATE_PER_SECOND).
        Layer.provideMerge(TokenBucket.layerMemory)
      )
      : Layer.mergeAll(
        RedisBus.layer,
        IdempotencyKeys.layerRedis,
        LatestCache.layerRedis(),
        ChatFanout.layerRedis,
        AuthInvalidations.layerRedis,
        RunStatusFeed.layerRedis,
        llm ?? LlmRuntime.layerRedis
      ).pipe(
        Layer.provideMerge(TokenBucket.layerRedis),
        Layer.provideMerge(Redis.layerWith(redis.value))
      )))
  return Layer.mergeAll(RunManager.layerWith(runs), RunEvents.layer).pipe(
    Layer.provideMerge(AuthenticatorLive.pipe(Layer.provideMerge(shared))),
    Layer.provideMerge(store)
  )
}

/** The HTTP server with every route, on `options.port`, over `store`; `runs`: the run manager's limits. */
export const layer = <E, R>(store: Layer.Layer<Store.Services, E, R>, options: Http.Options = {}, runs: RunManager.Options = {}) =>
  Http.serve(Layer.mergeAll(Http.routes(options), HttpMetrics.sseSubscribers, rpcRoutes, Webhooks.route(), ChatSse.route().pipe(Layer.provide(SystemAgent.layer))), options).pipe(
    Layer.provideMerge(Http.listen(options)),
    Layer.provideMerge(services(store, undefined, runs))
  )

