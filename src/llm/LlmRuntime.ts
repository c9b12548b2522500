/**
 * The process's language models, as every run and chat of it shares them: the backend chosen at
 * start-up (Ollama, or the offline model when none answers — said at start-up, in `/health` and in
 * each run's `RunStarted`), the answer cache (in memory; with the database behind it when the process
 * has one open and no Redis: `withStoredCache`; or in Redis shared by every server process:
 * `layerRedis`), and the cap on calls in flight (`LLM_CONCURRENCY`, default 4) that keeps every
 * agent of the process together within what the model server takes.
 */
import { Config, type ConfigError, Context, Effect, Layer, Option, Stream } from "effect"
import { type LlmCall, LlmUnavailable } from "../../schemas/Llm.js"
import type * as Backtest from "../swarm/Backtest.js"
import { AnswerCache, MemoryCache } from "./AnswerCache.js"
import * as Backends from "./Backends.js"
import { LiveBudgets } from "./Budget.js"
import { type BackendInfo, LanguageModel } from "./LanguageModel.js"
import * as Offline from "./Offline.js"
import * as RedisAnswerCache from "./RedisAnswerCache.js"
import * as SqlAnswerCache from "./SqlAnswerCache.js"
import type { SqlClient } from "@effect/sql"
import type { Redis } from "../bus/Redis.js"
import * as TokenBuckets from "../bus/TokenBucket.js"
import type { RateLimit } from "./LlmSession.js"

export class LlmRuntime extends Context.Tag("swarm/LlmRuntime")<LlmRuntime, {
  readonly model: LanguageModel["Type"]
  readonly cache: AnswerCache["Type"]
  readonly limiter: Effect.Semaphore
  /** Calls per second every process together may make (`LLM_RATE_PER_SECOND`); absent: no limit. */
  readonly rate?: RateLimit
  readonly info: BackendInfo
  /** The LLM budgets of the runs executing in this process, which their chats spend too. */
  readonly budgets: LiveBudgets
}>() {}

const concurrency = Config.integer("LLM_CONCURRENCY").pipe(
  Config.withDefault(4),
  Config.validate({ message: "LLM_CONCURRENCY must be between 1 and 256", validation: (n) => n >= 1 && n <= 256 })
)

/**
 * `LLM_RATE_PER_SECOND` (a model server's or a vendor's limit, for every process together — the
 * buckets are Redis's when the server has it) and `LLM_RATE_BURST` (default: one second's worth).
 */
const rateConfig = Config.all({
  perSecond: Config.option(Config.number("LLM_RATE_PER_SECOND").pipe(
    Config.validate({ message: "LLM_RATE_PER_SECOND must be a number above 0", validation: (n) => n > 0 && Number.isFinite(n) })
  )),
  burst: Config.option(Config.integer("LLM_RATE_BURST").pipe(
    Config.validate({ message: "LLM_RATE_BURST must be at least 1", validation: (n) => n >= 1 })
  ))
})

const make = (
  model: LanguageModel["Type"],
  permits: number,
  cache: AnswerCache["Type"] = AnswerCache.fromMemory(new MemoryCache()),
  rate?: RateLimit
) =>
  Effect.map(Effect.makeSemaphore(permits), (limiter): LlmRuntime["Type"] => ({
    model,
    cache,
    limiter,
    ...(rate === undefined ? {} : { rate }),
    info: model.backend,
    budgets: new LiveBudgets()
  }))

/** From the environment (`OLLAMA_HOST`, `SWARM_LLM`, `LLM_CONCURRENCY`) over `cache`, in memory unless given. Probes Ollama once. */
const configured = (cache?: AnswerCache["Type"]): Effect.Effect<LlmRuntime["Type"], ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const selected = yield* Backends.fromConfig
    const model = yield* Effect.provide(LanguageModel, selected.layer)
    const { burst, perSecond } = yield* rateConfig
    // The server's buckets (Redis when it has it); a lone command, this process's own.
    const buckets = Option.getOrElse(yield* Effect.serviceOption(TokenBuckets.TokenBucket), TokenBuckets.memory)
    const rate = Option.map(perSecond, (n): RateLimit => ({
      buckets,
      bucket: { perSecond: n, capacity: Option.getOrElse(burst, () => Math.max(1, Math.ceil(n))) }
    }))
    return yield* make({ ...model, backend: selected.info }, yield* concurrency, cache, Option.getOrUndefined(rate))
  })

/** From the environment: `OLLAMA_HOST`, `SWARM_LLM`, `LLM_CONCURRENCY`. Probes Ollama once. */
export const fromConfig: Effect.Effect<LlmRuntime["Type"], ConfigError.ConfigError> = configured()

export const layer: Layer.Layer<LlmRuntime, ConfigError.ConfigError> = Layer.effect(LlmRuntime, fromConfig)

/** As `layer`, with the answer cache in Redis (RedisAnswerCache.ts): shared by every process on it. */
export const layerRedis: Layer.Layer<LlmRuntime, ConfigError.ConfigError, Redis> = Layer.effect(
  LlmRuntime,
  Effect.flatMap(RedisAnswerCache.make(), configured)
)

/**
 * `runtime` with the database behind its in-memory answer cache (SqlAnswerCache.ts): answers outlive
 * the process. A cache that is not this process's memory alone (Redis, or already tiered) is kept, and
 * so is the offline model's: it answers in microseconds, in place, and a database round trip per call
 * would only slow its runs.
 */
export const withStoredCache = (
  runtime: LlmRuntime["Type"],
  options?: SqlAnswerCache.Options
): Effect.Effect<LlmRuntime["Type"], never, SqlClient.SqlClient> => {
  const memory = runtime.cache.memory
  if (memory === undefined || runtime.cache.tiered === true || runtime.model.backend.kind === "offline") return Effect.succeed(runtime)
  return Effect.map(SqlAnswerCache.make(memory, options), (cache) => ({ ...runtime, cache }))
}

/** `llm` with the database behind its answer cache (`withStoredCache`): the server's, without Redis. */
export const layerStored = <E>(llm: Layer.Layer<LlmRuntime, E>): Layer.Layer<LlmRuntime, E, SqlClient.SqlClient> =>
  Layer.effect(LlmRuntime, Effect.flatMap(LlmRuntime, (runtime) => withStoredCache(runtime))).pipe(Layer.provide(llm))

/** The offline model only (tests, `--no-store` runs that should not probe). */
export const layerOffline: Layer.Layer<LlmRuntime> = Layer.effect(LlmRuntime, make(Offline.make(), 4))

/** A given backend (tests against the fake Ollama). */
export const layerWith = (model: LanguageModel["Type"], permits = 4, rate?: RateLimit): Layer.Layer<LlmRuntime> =>
  Layer.effect(LlmRuntime, make(model, permits, undefined, rate))

/**
 * What a run is given for its LLM agents: the process's runtime when there is one, else the offline
 * model; `recorded` answers first (a resume); `replay` calls no model at all — a call the recording
 * lacks fails as unavailable, and the replay diverges there.
 */
export const runOptions = (
  options: {
    readonly recorded?: ReadonlyArray<LlmCall>
    readonly started?: Backtest.LlmOptions["started"]
    readonly replay?: boolean
    /** What the run's chat had spent (a resume): charged to its live budget. */
    readonly chatSpent?: Backtest.LlmOptions["chatSpent"]
  } = {}
) =>
  Effect.map(Effect.serviceOption(LlmRuntime), (runtime): Backtest.LlmOptions => {
    const recorded = {
      ...(options.recorded === undefined ? {} : { recorded: options.recorded }),
      ...(options.started === undefined ? {} : { started: options.started })
    }
    if (options.replay === true) return { model: noModel, ...recorded }
    if (runtime._tag === "None") return { model: Offline.make(), ...recorded }
    const { budgets, cache, limiter, model, rate } = runtime.value
    return {
      model,
      cache,
      limiter,
      budgets,
      ...(rate === undefined ? {} : { rate }),
      ...(options.chatSpent === undefined ? {} : { chatSpent: options.chatSpent }),
      ...recorded
    }
  })

/** The replay's backend: there is none. */
const noModel: LanguageModel["Type"] = {
  backend: { kind: "recorded", description: "recorded: a replay answers from the run's recorded calls and calls no model" },
  chat: (request) => Effect.fail(new LlmUnavailable({ model: request.model, reason: "a replay calls no model, and the recording has no answer for this call" })),
  chatStream: (request) => Stream.fail(new LlmUnavailable({ model: request.model, reason: "a replay calls no model" }))
}
