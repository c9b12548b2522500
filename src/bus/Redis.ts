/**
 * The Redis connection every Redis-backed service of the process shares (the event bus, the
 * token buckets, the idempotency keys, the latest-values cache, the LLM answer cache), from
 * `REDIS_URL` — read once, at the composition root; unset means the in-process services.
 *
 * Redis is a cache and a fan-out here, never the source of truth (the database is), so an outage
 * must cost latency and sharing, never a run: the command connection has no offline queue
 * (a command while Redis is away fails at once instead of waiting), a command timeout, and a
 * reconnect strategy with backoff and jitter that never gives up. Each service falls back on
 * failure and reports it through `failed`, which counts it (`redis_publish_failures`,
 * `redis_command_failures`) and logs once per outage; its end is logged too (the connection back, or a write going through again).
 * `/health` reads `stats`.
 */
import { Redis as IORedis, type RedisOptions } from "ioredis"
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, Metric, Option, Runtime, type Scope } from "effect"
import * as Credentials from "../internal/credentials.js"

export type RedisState = "connecting" | "ready" | "reconnecting" | "closed"

export interface RedisStats {
  /** The server, its password masked. */
  readonly url: string
  readonly state: RedisState
  /** Run events (or end marks) that could not be written to Redis: followers elsewhere read them from the database. */
  readonly publishFailures: number
  /** Other commands that failed or timed out (each answered by the in-process fallback). */
  readonly commandFailures: number
  /** Times the connection was lost and made again. */
  readonly reconnects: number
  /**
   * The outage under way, if any (epoch ms): since when operations fall back to this process —
   * the connection down, or up but its commands failing (refused writes, no answer). Absent when
   * Redis answers.
   */
  readonly failingSince?: number
}

export interface RedisService {
  /** The command connection: no offline queue, so a command while Redis is away fails at once. */
  readonly client: IORedis
  /** Every key this process writes starts with it (`REDIS_PREFIX`, default `swarm:`). */
  readonly prefix: string
  /** The server, its password masked. */
  readonly url: string
  /** Another connection with the same settings, for blocking reads; closed with the scope. */
  readonly connection: (name: string, options?: RedisOptions) => Effect.Effect<IORedis, never, Scope.Scope>
  /** Whether commands can be sent now. */
  readonly ready: () => boolean
  /**
   * `count` operations of `what` failed (`publish`: run events; anything else: a command): counted,
   * and logged once until the connection is back.
   */
  readonly failed: (what: string, count: number, error: unknown) => void
  readonly stats: () => RedisStats
  /**
   * Why Redis did not answer a PING within `pingTimeoutMillis` (`no answer within 500 ms`), or
   * undefined when it did or when the connection is not up (`stats().state` says that). A frozen
   * Redis (stopped, or across a partition) keeps its TCP connection up and answers nothing: a
   * server that only follows runs publishes nothing and never saw it. `/health` asks this; the
   * answer is kept for `PING_FRESH` (a healthcheck every second pings once), and a PING that fails
   * is an outage of commands (`failed`), said once and ended by a write that goes through.
   */
  readonly ping: Effect.Effect<string | undefined>
}

export class Redis extends Context.Tag("swarm/bus/Redis")<Redis, RedisService>() {}

export interface Options {
  readonly url: string
  /** Default `swarm:`. */
  readonly prefix?: string
  /** How long start-up waits for the first connection before going on degraded. Default 3 s. */
  readonly connectTimeoutMillis?: number
  /** A command's reply must come within this. Default 2 s. */
  readonly commandTimeoutMillis?: number
  /** How long `ping` waits for PONG before saying Redis does not answer (bounds `/health`). Default 500 ms. */
  readonly pingTimeoutMillis?: number
}

export const defaults = {
  prefix: "swarm:",
  connectTimeoutMillis: 3_000,
  commandTimeoutMillis: 2_000,
  pingTimeoutMillis: 500
} as const

/** How long the answer of `ping` is kept: a healthcheck polled often sends one PING a second at most. */
export const PING_FRESH = Duration.seconds(1)

export const publishFailures = Metric.counter("redis_publish_failures", {
  description: "run events that could not be written to Redis (followers elsewhere read them from the database)"
})
export const commandFailures = Metric.counter("redis_command_failures", {
  description: "Redis commands that failed or timed out; the in-process fallback answered"
})
export const reconnects = Metric.counter("redis_reconnects", { description: "times the Redis connection was lost and made again" })

/** The URL fit to print: its password replaced by `***` (see internal/credentials.ts). */
export const maskUrl: (url: string) => string = Credentials.maskUrl

/** Why `raw` is not a Redis URL we can use, or the URL. */
export const parseUrl = (raw: string): Either.Either<string, string> => {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return Either.left(`not a URL (expected redis://[user:password@]host[:port][/db]), got ${JSON.stringify(maskUrl(raw))}`)
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    return Either.left(`the scheme must be redis:// or rediss://, not ${url.protocol}//`)
  }
  if (url.hostname === "") return Either.left("no host (expected redis://host[:port])")
  const db = url.pathname.replace(/^\//, "")
  if (db !== "" && !/^\d{1,2}$/.test(db)) return Either.left(`the database must be a number (redis://host:port/0), not ${JSON.stringify(db)}`)
  return Either.right(raw)
}

/**
 * `REDIS_URL` (unset or empty: none, the in-process services) and `REDIS_PREFIX` (default
 * `swarm:`; servers that share runs must share it). A malformed URL is a `ConfigError` naming it.
 */
export const config: Config.Config<Option.Option<{ readonly url: string; readonly prefix: string }>> = Config.all({
  url: Config.string("REDIS_URL").pipe(
    Config.withDefault(""),
    Config.mapOrFail((raw) => {
      const trimmed = raw.trim()
      if (trimmed === "") return Either.right(Option.none<string>())
      return Either.map(Either.mapLeft(parseUrl(trimmed), (why) => ConfigError.InvalidData(["REDIS_URL"], why)), Option.some)
    })
  ),
  prefix: Config.string("REDIS_PREFIX").pipe(Config.withDefault(defaults.prefix))
}).pipe(Config.map(({ prefix, url }) => Option.map(url, (u) => ({ url: u, prefix }))))

/** How often a write is tried while commands fail on a live connection, to see the outage end. */
const OUTAGE_CHECK_MILLIS = 1_000

/** Backoff with jitter, 50 ms doubling to 2 s; never gives up (Redis coming back must find us). */
const retryStrategy = (times: number): number => Math.min(2_000, 50 * 2 ** Math.min(times, 6)) * (0.75 + Math.random() * 0.5)

const baseOptions = (commandTimeout: number): RedisOptions => ({
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout,
  connectTimeout: 2_000,
  retryStrategy,
  // Scripts and streams only; no `READONLY` replicas and no auto-pipelining surprises.
  enableAutoPipelining: false
})

/** The database a Redis URL asks for (`redis://host/3`: 3; none: 0). */
const databaseOf = (url: string): number => {
  try {
    const db = new URL(url).pathname.replace(/^\//, "")
    return db === "" ? 0 : Number(db)
  } catch {
    return 0
  }
}

/** Redis refusing the database of the URL (`SELECT 99`: its `databases` setting is lower). */
const isNoSuchDatabase = (error: unknown): boolean =>
  error instanceof Error && /DB index is out of range|invalid DB index/i.test(error.message)

/**
 * A connection to the Redis of `options` for the scope; start-up never fails on Redis being away.
 * It fails (a `ConfigError` naming REDIS_URL) when Redis refuses the URL's database: ioredis would
 * log the refused SELECT and go on with database 0 — another tenant's, perhaps. A Redis that
 * refuses it only later (restarted with fewer databases) is not used again: said, and everything
 * falls back to this process.
 */
export const make = (options: Options): Effect.Effect<RedisService, ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const url = maskUrl(options.url)
    const db = databaseOf(options.url)
    const prefix = options.prefix ?? defaults.prefix
    const commandTimeout = options.commandTimeoutMillis ?? defaults.commandTimeoutMillis
    const client = new IORedis(options.url, { ...baseOptions(commandTimeout), connectionName: "swarm" })

    let state: RedisState = "connecting"
    let publishFailed = 0
    let commandFailed = 0
    let reconnected = 0
    /**
     * The outage under way: the first failure is logged, the rest counted. `connection`: the
     * connection is down, and its coming back ends it. `commands`: the connection is up but
     * commands fail (Redis refusing writes, out of memory, say); a write tried every second ends
     * it once it goes through. (Before, only a reconnection ended an outage: one of commands was
     * never said to be over, and every outage after it went unsaid.)
     */
    let outage: { readonly since: number; failures: number; kind: "connection" | "commands" } | undefined = undefined
    let checking: ReturnType<typeof setTimeout> | undefined = undefined
    const seconds = (since: number) => Math.round((Date.now() - since) / 100) / 10
    let everReady = false
    let closing = false
    /** Past the first connection attempt: its failure is said by start-up's line, later ones here. */
    let started = false
    /** The last error the connection reported: why it is not up (`connect()` itself only says "Connection is closed."). */
    let lastError: Error | undefined = undefined
    /** Redis refused the URL's database: the connection is closed for good rather than left on database 0. */
    let noSuchDatabase: Error | undefined = undefined
    const noDatabase = (error: Error) =>
      `Redis at ${url} has no database ${db} (${error.message}; it has as many as its \`databases\` setting says, 16 by default: 0 to 15)`

    const log = (effect: Effect.Effect<void>) => void runFork(effect.pipe(Effect.annotateLogs({ redis: url })))

    client.on("ready", () => {
      if (noSuchDatabase !== undefined) return
      state = "ready"
      if (everReady) {
        reconnected++
        reconnects.unsafeUpdate(1, [])
      }
      everReady = true
      if (outage !== undefined) {
        const { failures, since } = outage
        outage = undefined
        log(Effect.logInfo(`Redis is back after ${seconds(since)} s; ${failures} operations fell back meanwhile`))
      }
    })
    client.on("reconnecting", () => {
      if (!closing) state = "reconnecting"
    })
    client.on("end", () => {
      state = "closed"
    })
    // ioredis reports each failed attempt here; the outage is logged once, by `failed` or below.
    client.on("error", (error: Error) => {
      lastError = error
      if (isNoSuchDatabase(error)) {
        // ioredis goes on, on database 0, after a refused SELECT: never that.
        if (noSuchDatabase === undefined && everReady && !closing) {
          log(Effect.logError(`${noDatabase(error)}: not using Redis again; everything falls back to this process — fix REDIS_URL and restart`))
        }
        noSuchDatabase = error
        outage ??= { since: Date.now(), failures: 0, kind: "connection" }
        client.disconnect()
        state = "closed"
        return
      }
      if (closing || noSuchDatabase !== undefined || outage?.kind === "connection") return
      // The connection going while commands were failing is said too: it is what ends now.
      outage = { since: outage?.since ?? Date.now(), failures: outage?.failures ?? 0, kind: "connection" }
      // During start-up its one line says it (`Redis at … does not answer (…)`): not twice.
      if (started) log(Effect.logWarning(`Redis is unavailable (${error.message}): falling back to this process and reconnecting`))
    })

    /** While commands fail on a live connection: try a write every second; the first that goes through ends the outage. */
    const check = () => {
      checking = undefined
      if (closing || outage?.kind !== "commands") return
      client.set(`${prefix}outage-check`, "1", "PX", 5_000).then(
        () => {
          if (outage?.kind !== "commands") return
          const { failures, since } = outage
          outage = undefined
          log(Effect.logInfo(`Redis takes commands again after ${seconds(since)} s; ${failures} operations fell back meanwhile`))
        },
        () => {
          if (!closing && outage?.kind === "commands" && checking === undefined) {
            checking = setTimeout(check, OUTAGE_CHECK_MILLIS)
            checking.unref?.()
          }
        }
      )
    }

    const failed = (what: string, count: number, error: unknown) => {
      if (count <= 0) return
      if (what === "publish") {
        publishFailed += count
        publishFailures.unsafeUpdate(count, [])
      } else {
        commandFailed += count
        commandFailures.unsafeUpdate(count, [])
      }
      if (closing) return
      if (outage === undefined) {
        outage = { since: Date.now(), failures: count, kind: client.status === "ready" ? "commands" : "connection" }
        const reason = error instanceof Error ? error.message : String(error)
        log(Effect.logWarning(`Redis ${what} failed (${reason}): falling back to this process; counted until Redis answers again`))
      } else {
        outage.failures += count
      }
      if (outage.kind === "commands" && checking === undefined) {
        checking = setTimeout(check, OUTAGE_CHECK_MILLIS)
        checking.unref?.()
      }
    }

    const connected = yield* Effect.tryPromise({ try: () => client.connect(), catch: (error) => error }).pipe(
      Effect.timeoutFail({ duration: options.connectTimeoutMillis ?? defaults.connectTimeoutMillis, onTimeout: () => new Error("no answer") }),
      Effect.either
    )
    started = true
    if (noSuchDatabase === undefined && Either.isRight(connected) && db !== 0) {
      // The SELECT ioredis sent on connecting has been answered before `ready`; ask once more to be sure.
      const selected = yield* Effect.either(Effect.tryPromise(() => client.select(db)))
      if (Either.isLeft(selected) && isNoSuchDatabase(selected.left.error)) noSuchDatabase = selected.left.error as Error
    }
    if (noSuchDatabase !== undefined) {
      closing = true
      client.disconnect()
      return yield* Effect.fail(ConfigError.InvalidData(["REDIS_URL"], noDatabase(noSuchDatabase)))
    }
    if (Either.isLeft(connected)) {
      // The connection's own error says why (`connect ECONNREFUSED 127.0.0.1:6379`); the promise's
      // rejection only that the connection closed, and a timeout that nothing answered.
      const error = lastError ?? connected.left
      const reason = error instanceof Error ? error.message : String(error)
      yield* Effect.logWarning(`Redis at ${url} does not answer (${reason}): starting degraded, reconnecting in the background`)
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closing = true
        if (checking !== undefined) clearTimeout(checking)
        try {
          if (client.status === "ready") await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, 1_000))])
        } catch {
          // going away anyway
        }
        client.disconnect()
      })
    )

    const pingTimeout = options.pingTimeoutMillis ?? defaults.pingTimeoutMillis
    const ping = yield* Effect.cachedWithTTL(
      Effect.suspend((): Effect.Effect<string | undefined> => {
        if (client.status !== "ready" || closing) return Effect.succeed(undefined)
        return Effect.tryPromise({ try: () => client.ping(), catch: (error) => (error instanceof Error ? error : new Error(String(error))) }).pipe(
          Effect.timeoutFail({ duration: Duration.millis(pingTimeout), onTimeout: () => new Error(`no answer to PING within ${pingTimeout} ms`) }),
          Effect.match({
            onSuccess: () => undefined,
            onFailure: (error) => {
              // The connection went meanwhile: its own state says so.
              if (client.status !== "ready") return undefined
              failed("ping", 1, error)
              return error.message
            }
          })
        )
      }),
      PING_FRESH
    )

    const connection = (name: string, extra: RedisOptions = {}) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const other = new IORedis(options.url, { ...baseOptions(commandTimeout), connectionName: `swarm-${name}`, ...extra })
          // Its failures are the same outage as the command connection's: reported there. On
          // database 0 after a refused SELECT it must not go on either.
          other.on("error", (error: Error) => {
            if (isNoSuchDatabase(error)) other.disconnect()
          })
          other.connect().catch(() => {})
          return other
        }),
        (other) => Effect.sync(() => other.disconnect())
      )

    return {
      client,
      prefix,
      url,
      connection,
      ready: () => client.status === "ready",
      failed,
      ping,
      stats: () => ({
        url,
        state,
        publishFailures: publishFailed,
        commandFailures: commandFailed,
        reconnects: reconnected,
        ...(outage === undefined ? {} : { failingSince: outage.since })
      })
    } satisfies RedisService
  })

/** The connection of `options`, closed (QUIT) with the layer. */
export const layerWith = (options: Options): Layer.Layer<Redis, ConfigError.ConfigError> => Layer.scoped(Redis, make(options))

/** The start-up line: which event bus the server uses. */
export const describe = (redis: Option.Option<RedisService>): string =>
  Option.match(redis, {
    onNone: () => "event bus: in-process (set REDIS_URL to share runs, caches and rate limits across server processes)",
    onSome: (r) => `event bus: Redis at ${r.url} (REDIS_URL)${r.ready() ? "" : ", not answering yet: degraded, reconnecting"}`
  })
