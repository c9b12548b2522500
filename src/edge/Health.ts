/**
 * `GET /health`: whether the server can do its work, and which back-ends it is using — the
 * database (and whether it answers), the event bus, the run status feed, the language model and
 * telemetry — so that an
 * operator sees at a glance what a fresh `npm start` chose, and which process answered (host, pid,
 * version, uptime, live runs). No key needed; it says nothing a start-up line does not (every URL
 * comes with its password masked).
 *
 *   ok           200  everything answers
 *   degraded     200  the server serves, but Redis or the telemetry collector is failing: runs go
 *                     on, what Redis shares falls back to this process, exports are retried
 *                     (`reasons` says which). Redis is asked a PING (bounded, its answer kept a
 *                     second): a frozen Redis keeps its connection up and answers nothing. Or a
 *                     newer build migrated the database past what this one knows (`database.schema`).
 *   unavailable  503  the database does not answer: nothing can be started, recorded or read
 */
import { hostname } from "node:os"
import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Option, Schema } from "effect"
import { EventBus } from "../bus/EventBus.js"
import { RedisBus } from "../bus/RedisBus.js"
import { LlmRuntime } from "../llm/LlmRuntime.js"
import { DatabaseInfo, makeWithDeadline } from "../store/Database.js"
import * as Migrations from "../store/Migrations.js"
import { Telemetry, version } from "../telemetry/Telemetry.js"
import { RunManager } from "./RunManager.js"
import { RunStatusFeed } from "./RunStatusFeed.js"

export const path = "/health"

/** What `/health` answers. */
export const HealthReport = Schema.Struct({
  /**
   * `ok` (200); `degraded` (200) while Redis or the telemetry collector fails — the server serves,
   * falling back; `unavailable` (503) when the database does not answer.
   */
  status: Schema.Literal("ok", "degraded", "unavailable"),
  /** What is failing, one line each; absent when `ok`. */
  reasons: Schema.optional(Schema.Array(Schema.String)),
  /** Which process answered: behind a load balancer, what tells servers apart. */
  instance: Schema.optional(Schema.Struct({
    host: Schema.String,
    pid: Schema.Number,
    version: Schema.String,
    /** Seconds since the process started. */
    uptimeSeconds: Schema.Number,
    /** The runs live in this process now. */
    liveRuns: Schema.Number
  })),
  database: Schema.Struct({
    kind: Schema.Literal("postgres", "embedded"),
    description: Schema.String,
    /** Why the database did not answer; absent when it did. */
    error: Schema.optional(Schema.String),
    /**
     * The latest migration the database has recorded (`migration`) and the latest this build knows
     * (`buildLatest`): a database migrated past it by a newer build (an older server of a rolling
     * upgrade, a rollback) is said in `reasons`, `degraded`. Absent when it could not be read.
     */
    schema: Schema.optional(Schema.Struct({ migration: Schema.Number, buildLatest: Schema.Number }))
  }),
  bus: Schema.Struct({
    kind: Schema.Literal("in-process", "redis"),
    /** With Redis: the connection and what fell back to this process during outages. */
    redis: Schema.optional(Schema.Struct({
      url: Schema.String,
      state: Schema.Literal("connecting", "ready", "reconnecting", "closed"),
      publishFailures: Schema.Number,
      commandFailures: Schema.Number,
      reconnects: Schema.Number,
      /**
       * Since when (epoch ms) operations fall back to this process, while an outage lasts: the
       * connection down, or up while Redis refuses or does not answer commands (`state` is then
       * still `ready`). Absent when Redis answers.
       */
      failingSince: Schema.optional(Schema.Number),
      /** Runs this process follows through Redis now, and the events it has read from Redis. */
      followed: Schema.Number,
      received: Schema.Number
    }))
  }),
  /**
   * Where the SSE streams learn that a run was paused or resumed (`event: status`, RunStatusFeed.ts):
   * `in-process` (another server's pauses within its poll), or `redis` (every server's at once).
   */
  statusFeed: Schema.Struct({
    kind: Schema.Literal("in-process", "redis"),
    description: Schema.String,
    /** The runs whose status this process follows now (one read for all of a run's clients). */
    followed: Schema.Number,
    /** With Redis: the hints of other servers' pauses and resumes this process has read. */
    received: Schema.optional(Schema.Number)
  }),
  model: Schema.Struct({
    kind: Schema.String,
    description: Schema.String,
    /** The answer cache, shared by every run of the process. */
    cache: Schema.optional(Schema.Struct({ hits: Schema.Number, misses: Schema.Number, entries: Schema.Number }))
  }),
  telemetry: Schema.Struct({
    kind: Schema.String,
    description: Schema.String,
    /** With a collector: the URL spans are posted to, and metrics; each absent when not exported. */
    traces: Schema.optional(Schema.String),
    metrics: Schema.optional(Schema.String),
    /** Since when (epoch ms) exports to the collector fail, and why, while they do. */
    failingSince: Schema.optional(Schema.Number),
    error: Schema.optional(Schema.String)
  })
})
export type HealthReport = typeof HealthReport.Type

/** The back-ends other than the database, as the composition root knows them. */
export interface Components {
  readonly bus: HealthReport["bus"]
  readonly model: HealthReport["model"]
  readonly telemetry: HealthReport["telemetry"]
}

/** What this server has without a `LlmRuntime` or a `Telemetry` (which `/health` reports when there is one). */
export const defaultComponents: Components = {
  bus: { kind: "in-process" },
  model: {
    kind: "offline",
    description: "no language model configured yet: analysts are the built-in rule-based models"
  },
  telemetry: {
    kind: "in-process",
    description: "no exporter configured yet: spans and metrics stay in this process"
  }
}

/** The status feed of a server without one of its own: each SSE stream's route makes one, in this process. */
const IN_PROCESS_FEED = "in this process: each SSE route reads its runs' rows for their pauses and resumes"

/** How long the database has to answer `select 1`. */
const PING_TIMEOUT = Duration.seconds(2)

const encode = Schema.encodeSync(HealthReport)

/** The route, its services taken from the layer's context. */
export const route = (components: Components = defaultComponents) =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function*() {
      const info = yield* DatabaseInfo
      const sql = yield* SqlClient.SqlClient
      const llm = yield* Effect.serviceOption(LlmRuntime)
      const telemetry = yield* Effect.serviceOption(Telemetry)
      const manager = yield* Effect.serviceOption(RunManager)
      // The server's feed; without one, the SSE route makes its own, in this process (Sse.route).
      const statuses = yield* Effect.serviceOption(RunStatusFeed)
      // The bus the routes actually use: the Redis one when it is the context's `EventBus`.
      const bus = yield* Effect.serviceOption(EventBus)
      const redisBus = Option.filter(yield* Effect.serviceOption(RedisBus), (r) => Option.contains(bus, r))
      // Given up on after PING_TIMEOUT, and ended there by the database too (`withDeadline`): a ping
      // given up on would otherwise run on in a server too busy to answer, holding a connection.
      const deadline = yield* makeWithDeadline
      const ping = sql`select 1`.pipe(
        deadline({ duration: PING_TIMEOUT, onTimeout: () => `no answer within ${Duration.format(PING_TIMEOUT)}` }),
        Effect.as(undefined),
        Effect.catchAll((error) => Effect.succeed(typeof error === "string" ? error : error.message))
      )
      // Once it answers: the migration it is at (a read that fails or is slow leaves it unsaid).
      type Answered = { readonly error: string | undefined; readonly at: { readonly migration: number; readonly buildLatest: number } | undefined }
      const answered = Effect.flatMap(ping, (error): Effect.Effect<Answered> =>
        error !== undefined
          ? Effect.succeed({ error, at: undefined })
          : deadline({ duration: PING_TIMEOUT, onTimeout: () => "late" })(Migrations.recordedLatest).pipe(
            Effect.map((migration) => ({ error, at: { migration, buildLatest: Migrations.latest } })),
            Effect.orElseSucceed(() => ({ error, at: undefined }))
          ))
      yield* router.add(
        "GET",
        path,
        Effect.gen(function*() {
          // Side by side: each bounded (the database's 2 s, Redis's PING its own), Redis's answer
          // kept a moment (`Redis.PING_FRESH`).
          const [{ at, error }, unanswered] = yield* Effect.all([
            answered,
            Option.match(redisBus, { onNone: () => Effect.succeed(undefined), onSome: (r) => r.redis.ping })
          ], { concurrency: 2 })
          const redis = Option.map(redisBus, (r) => r.redis.stats())
          const exported = Option.map(telemetry, (t) => t.info)
          const reasons = [
            ...(error === undefined ? [] : [`database: ${error}`]),
            ...(at !== undefined && at.migration > at.buildLatest
              ? [`database: its schema is at migration ${at.migration}, newer than this build knows (${at.buildLatest}): a newer Swarm migrated it`]
              : []),
            // Frozen (its connection up, nothing answering): what a server that only follows runs,
            // publishing nothing, learns only from the PING.
            ...(unanswered !== undefined
              ? [`bus: Redis does not answer (${unanswered}): falling back to this process`]
              : Option.isSome(redis) && (redis.value.failingSince !== undefined || redis.value.state !== "ready")
              ? [`bus: Redis ${redis.value.state === "ready" ? "refuses commands" : redis.value.state}: falling back to this process`]
              : []),
            ...(Option.isSome(exported) && exported.value.failingSince !== undefined
              ? [`telemetry: exports to the collector fail (${exported.value.error ?? ""})`]
              : [])
          ]
          const report: HealthReport = {
            status: error !== undefined ? "unavailable" : reasons.length > 0 ? "degraded" : "ok",
            ...(reasons.length === 0 ? {} : { reasons }),
            instance: {
              host: hostname(),
              pid: process.pid,
              version,
              uptimeSeconds: Math.round(process.uptime()),
              liveRuns: Option.match(manager, { onNone: () => 0, onSome: (m) => m.live() })
            },
            database: {
              kind: info.backend.kind,
              description: info.description,
              ...(error === undefined ? {} : { error }),
              ...(at === undefined ? {} : { schema: at })
            },
            ...components,
            ...(Option.isSome(redisBus)
              ? {
                bus: {
                  kind: "redis" as const,
                  redis: { ...redisBus.value.redis.stats(), followed: redisBus.value.followed(), received: redisBus.value.received() }
                }
              }
              : Option.isSome(bus)
              ? { bus: { kind: "in-process" as const } }
              : {}),
            statusFeed: Option.match(statuses, {
              onNone: () => ({ kind: "in-process" as const, description: IN_PROCESS_FEED, followed: 0 }),
              onSome: (feed) => {
                const { followed, received } = feed.stats()
                return { kind: feed.kind, description: feed.description, followed, ...(feed.kind === "redis" ? { received } : {}) }
              }
            }),
            ...(telemetry._tag === "None" ? {} : { telemetry: telemetry.value.info }),
            ...(llm._tag === "None"
              ? {}
              : { model: { kind: llm.value.info.kind, description: llm.value.info.description, cache: yield* llm.value.cache.stats } })
          }
          return HttpServerResponse.unsafeJson(encode(report), { status: error === undefined ? 200 : 503 })
        }).pipe(Effect.withSpan("Health.check"))
      )
    })
  )
