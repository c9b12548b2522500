/**
 * `POST /v1/webhooks/tradingview/:strategyId`: a TradingView alert, delivered to the strategy's
 * paper run live in this server as an outside signal (docs/webhooks.md). In order:
 *
 *   1. the body, at most `maxBodyBytes` (64 KiB)                              413 AlertTooLarge
 *   2. JSON, UTF-8, nested no deeper than 32, text a database can keep         400 InvalidAlert
 *   3. the strategy's secret (body `secret`, `X-Swarm-Secret` or `?secret=`),
 *      compared in constant time; an unknown strategy gets the same answer    401 Unauthorized
 *   4. the alert's schema, the field named                                    400 InvalidAlert
 *   5. the strategy's rate limit (a token bucket)                             429 RateLimited + Retry-After
 *   6. its key (`id`, else a SHA-256 of the canonical body without the secret):
 *      a key seen before is a repeat, acknowledged and not delivered again    200 { duplicate: true }
 *   7. a paper run of the strategy live here, trading the ticker's symbol     409 NoPaperRun / 400 ticker
 *      and with a `tradingview` analyst to read it                           409 NoTradingViewAnalyst
 *   8. delivered: it enters the run with its next slice                       202 { status: "delivered" }
 *
 * Step 6 looks first in the `IdempotencyKeys` (Redis with `REDIS_URL`, shared by every server
 * process; else this process's): an alert delivered before is remembered there with the runs it
 * reached, and its repeat is answered with them at once, without a database write. Otherwise steps 6
 * to 8 are one transaction on the database's unique key — the durable guarantee: twins in flight
 * at once are serialised there and delivered once, an alert no run could take leaves no key behind,
 * and a repeat the keys forgot (expired, flushed, Redis away: counted and logged by the connection)
 * is answered from there the same way, then remembered again. Before the secret is checked, a
 * caller learns only whether its body is JSON. A refusal is a JSON body `{ error, …fields, reason }`,
 * never a stack; the database failing is a 503.
 */
import { createHash } from "node:crypto"
import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Either, Layer, Metric, Option, ParseResult, Schema, Stream } from "effect"
import { Unauthorized } from "../../schemas/Auth.js"
import { canonicalSignal, type ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { RunId, StrategyId, Symbol, Timestamp } from "../../schemas/Ids.js"
import {
  type AlertAccepted,
  AlertTooLarge,
  InvalidAlert,
  NoPaperRun,
  NoTradingViewAnalyst,
  RateLimited,
  TradingViewAlert,
  WEBHOOK_PATH
} from "../../schemas/Webhook.js"
import { clip } from "../internal/clip.js"
import { plainly } from "../internal/issues.js"
import { findUnstorable } from "../internal/storableText.js"
import * as IdempotencyKeys from "../bus/IdempotencyKeys.js"
import * as WebhookStore from "../store/Webhooks.js"
import * as RateLimiter from "./RateLimiter.js"
import { RunManager } from "./RunManager.js"

export const path = WEBHOOK_PATH

export interface Options {
  /** The largest body taken, bytes. Default 64 KiB. */
  readonly maxBodyBytes?: number
  /** Per strategy: the burst and the sustained rate of alerts. Default 30 at once, 1 a second. */
  readonly rate?: RateLimiter.Options
  /** How long a delivered alert's acknowledgement is kept in the idempotency keys (the database keeps it for good). Default 1 day. */
  readonly remember?: Duration.DurationInput
}

export const defaults = {
  maxBodyBytes: 64 * 1024,
  rate: { capacity: 30, perSecond: 1 },
  remember: Duration.days(1)
} as const

/** Repeats acknowledged, by what answered them: the idempotency keys (`keys`) or the database. */
export const duplicates = Metric.counter("swarm.webhooks.duplicates", {
  incremental: true,
  description: "Repeated webhook alerts acknowledged and not delivered again, by what answered them (keys: no database write)"
})
const answeredByKeys = duplicates.pipe(Metric.tagged("answered_by", "keys"))
const answeredByDatabase = duplicates.pipe(Metric.tagged("answered_by", "database"))

/** How deep a body's JSON may nest (an alert is two levels deep; a hostile one may be thousands). */
const MAX_DEPTH = 32

/** The one answer to an unknown strategy and to a wrong secret, so that ids cannot be probed. */
const refused = () => new Unauthorized({ reason: "unknown strategy or wrong webhook secret" })

// ---------------------------------------------------------------------------------------------
// Reading the request

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** How far past its limit a body without a length is read (and dropped) so that its sender gets the 413. */
const DRAIN_FACTOR = 16

/** The body, refused past `limit` bytes as declared or as received. */
const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.gen(function*() {
    const declared = request.headers["content-length"]
    if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > limit) return yield* new AlertTooLarge({ limitBytes: limit })
    const chunks: Array<Uint8Array> = []
    let size = 0
    yield* Stream.runForEach(request.stream, (chunk) => {
      size += chunk.length
      if (size <= limit) {
        chunks.push(chunk)
        return Effect.void
      }
      chunks.length = 0
      // Past the limit the rest is read and dropped, up to `DRAIN_FACTOR` times the limit: a client
      // still sending (chunked, no length) when the 413 came saw its connection reset, not the 413.
      return size > DRAIN_FACTOR * limit ? new AlertTooLarge({ limitBytes: limit }) : Effect.void
    }).pipe(
      Effect.catchTag("RequestError", () => new InvalidAlert({ field: "body", reason: "could not be received whole" }))
    )
    if (size > limit) return yield* new AlertTooLarge({ limitBytes: limit })
    return yield* Effect.try({
      try: () => utf8.decode(Buffer.concat(chunks)),
      catch: () => new InvalidAlert({ field: "body", reason: "is not UTF-8 text" })
    })
  })

/** Deeper than `MAX_DEPTH`, measured without recursion (the value may be a hostile tower). */
const tooDeep = (value: unknown): boolean => {
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (typeof v !== "object" || v === null) continue
    if (depth > MAX_DEPTH) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1])
  }
  return false
}

/**
 * A string literal (skipped whole), or a bare `NaN`, `Infinity` or `-Infinity` outside one: what
 * TradingView writes for a placeholder with no value (`"rsi": {{plot_0}}` on a bar where the plot
 * has none). Not JSON, yet the rest of the alert (the buy or the sell) is good, and TradingView
 * never sends it again.
 */
const NON_FINITE = /("(?:[^"\\]|\\.)*")|(?<![\w.$])[+-]?(?:NaN|Infinity)(?![\w.$])/g

/** The text with each bare `NaN`/`Infinity` token outside a string read as `null`; strings untouched. */
export const nullNonFinite = (text: string): string => text.replace(NON_FINITE, (_match, string: string | undefined) => string ?? "null")

const parseJson = (text: string) =>
  Effect.gen(function*() {
    const notJson = () => new InvalidAlert({ field: "body", reason: "is not JSON (TradingView: write the alert's message as a JSON object)" })
    const json = yield* Effect.try({ try: (): unknown => JSON.parse(text), catch: notJson }).pipe(
      // Only a body that is not JSON as it is gets its bare `NaN`s read as null.
      Effect.orElse(() => Effect.try({ try: (): unknown => JSON.parse(nullNonFinite(text)), catch: notJson }))
    )
    if (tooDeep(json)) return yield* new InvalidAlert({ field: "body", reason: `nests deeper than ${MAX_DEPTH} levels` })
    const unstorable = findUnstorable(json)
    if (unstorable !== undefined) {
      return yield* new InvalidAlert({ field: unstorable.path.length === 0 ? "body" : clip(unstorable.path.join(".")), reason: unstorable.reason })
    }
    return json
  })

type Search = Readonly<Record<string, string | ReadonlyArray<string>>>

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The secret presented: the `X-Swarm-Secret` header, else `?secret=`, else the body's `secret`. */
const secretOf = (headers: Readonly<Record<string, string | undefined>>, search: Search, body: unknown): string | undefined => {
  const header = headers["x-swarm-secret"]
  if (header !== undefined && header !== "") return header.trim()
  const query = search["secret"]
  if (typeof query === "string" && query !== "") return query
  if (isRecord(body) && Object.hasOwn(body, "secret") && typeof body.secret === "string" && body.secret !== "") return body.secret
  return undefined
}

const decodeAlert = Schema.decodeUnknownEither(TradingViewAlert, { errors: "first" })

/** Why a value is none, if it is: `null` (a bare `NaN` was read as null), `"NaN"`, `"Infinity"`, a number too large to be finite. */
const noValue = (value: unknown): string | undefined => {
  if (value === null) return "NaN or null"
  if (typeof value === "number") return Number.isFinite(value) ? undefined : "not finite"
  if (typeof value === "string" && /^[+-]?(nan|infinity)$/i.test(value.trim())) return JSON.stringify(value.trim())
  return undefined
}

/**
 * The body without the optional values that hold none — an indicator, the confidence — and what was
 * left out (`indicators.rsi: NaN`): an alert is not refused for a plot that had no value on its
 * bar. Required fields (ticker, action, price) are left for the schema to refuse.
 */
export const withoutNoValues = (body: unknown): { readonly body: unknown; readonly ignored: ReadonlyArray<string> } => {
  if (!isRecord(body)) return { body, ignored: [] }
  const ignored: Array<string> = []
  let out: Record<string, unknown> = body
  const confidence = Object.hasOwn(body, "confidence") ? noValue(body.confidence) : undefined
  if (confidence !== undefined) {
    const { confidence: _, ...rest } = out
    out = rest
    ignored.push(`confidence: ${confidence}`)
  }
  const indicators = Object.hasOwn(body, "indicators") ? body.indicators : undefined
  if (isRecord(indicators)) {
    const kept: Record<string, unknown> = {}
    let dropped = false
    for (const name of Object.keys(indicators)) {
      const why = noValue(indicators[name])
      if (why === undefined) {
        Object.defineProperty(kept, name, { value: indicators[name], enumerable: true, writable: true, configurable: true })
      } else {
        dropped = true
        ignored.push(`indicators.${clip(name)}: ${why}`)
      }
    }
    if (dropped) {
      const { indicators: _, ...rest } = out
      out = Object.keys(kept).length === 0 ? rest : { ...rest, indicators: kept }
    }
  }
  return { body: out, ignored }
}

/** The alert, or the first field that is wrong and why (never echoing what was sent). */
const alertOf = (body: unknown): Either.Either<TradingViewAlert, InvalidAlert> =>
  Either.mapLeft(decodeAlert(body), (error) => {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
    const field = issue === undefined || issue.path.length === 0 ? "body" : issue.path.map(String).join(".")
    return new InvalidAlert({ field, reason: issue === undefined ? "not a valid alert" : plainly(issue.message) })
  })

/** JSON with every object's keys sorted, written without building objects (a `__proto__` key stays a key). */
const canonical = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`
  if (isRecord(value)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}

/** The alert's idempotency key: its `id`, else `sha256:` and the hash of the body without its secret. */
export const alertKey = (alert: TradingViewAlert, body: Readonly<Record<string, unknown>>): string => {
  if (alert.id !== undefined) return `id:${alert.id}`
  const rest = Object.keys(body).filter((k) => k !== "secret").sort()
  const text = `{${rest.map((k) => `${JSON.stringify(k)}:${canonical(body[k])}`).join(",")}}`
  return `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`
}

/**
 * The strategy's symbol an alert's ticker names: itself, or what follows its exchange prefix
 * (`NASDAQ:AAPL`) — exactly, else in any case when that names exactly one of the symbols
 * (`nasdaq:aapl`; a strategy trading both `abc` and `ABC` must be named exactly).
 */
export const symbolOf = (ticker: string, symbols: ReadonlyArray<Symbol>): Symbol | undefined => {
  const colon = ticker.lastIndexOf(":")
  const names = colon < 0 ? [ticker] : [ticker, ticker.slice(colon + 1)]
  for (const name of names) {
    if (symbols.includes(name as Symbol)) return name as Symbol
  }
  for (const name of names) {
    const lower = name.toLowerCase()
    const alike = symbols.filter((symbol) => symbol.toLowerCase() === lower)
    if (alike.length === 1) return alike[0]
    if (alike.length > 1) return undefined
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Answers

const json = (status: number, body: Record<string, unknown>, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson(body, { status, ...(headers === undefined ? {} : { headers }) })

const accepted = (body: AlertAccepted) => json(body.duplicate ? 200 : 202, body)

// ---------------------------------------------------------------------------------------------
// What the idempotency keys remember of a delivered alert

/** An alert's entry in the idempotency keys: per strategy, as the database's unique key is. */
const rememberedKey = (strategy: StrategyId, key: string) => `webhook:${strategy}:${key}`

/** What the first delivery of an alert answered: the runs it reached. */
const Remembered = Schema.parseJson(Schema.Struct({ runs: Schema.Array(Schema.String) }))
const encodeRemembered = Schema.encodeSync(Remembered)
/** A value that is not ours (or mangled) is no answer: the database gives it. */
const decodeRemembered = (value: string | undefined) => (value === undefined ? Option.none() : Schema.decodeUnknownOption(Remembered)(value))

// ---------------------------------------------------------------------------------------------
// The handler

interface Dependencies {
  readonly sql: SqlClient.SqlClient
  readonly manager: RunManager["Type"]
  readonly limiter: RateLimiter.RateLimiterService
  /** Where delivered alerts are remembered (a repeat is answered from there first). */
  readonly keys: IdempotencyKeys.IdempotencyKeysService
}

export const handler = (deps: Dependencies, options: Options = {}) => {
  const limit = Math.max(1, Math.trunc(options.maxBodyBytes ?? defaults.maxBodyBytes))
  const rememberMillis = Math.max(1, Duration.toMillis(options.remember ?? defaults.remember))
  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const search = yield* HttpServerRequest.ParsedSearchParams
    const strategy = ((yield* HttpLayerRouter.params).strategyId ?? "") as StrategyId
    const body = yield* parseJson(yield* readBody(request, limit))
    const secret = secretOf(request.headers, search, body)
    if (secret === undefined) {
      return yield* new Unauthorized({ reason: "no webhook secret: send it as the alert's \"secret\" field, an X-Swarm-Secret header or ?secret=" })
    }
    // No strategy id is that long or holds a NUL (Postgres text cannot): refused like any unknown one,
    // before the database could answer it with an error.
    if (strategy.length > 200 || strategy.includes("\u0000") || !(yield* WebhookStore.verifySecret(strategy, secret))) {
      return yield* refused()
    }
    const cleaned = withoutNoValues(body)
    const alert = yield* alertOf(cleaned.body)
    const ignored = cleaned.ignored.length === 0 ? {} : { ignored: cleaned.ignored }
    const wait = yield* deps.limiter.take(strategy)
    if (wait > 0) {
      const seconds = Math.max(1, Math.ceil(wait / 1000))
      return yield* new RateLimited({ strategy, retryAfterSeconds: seconds, reason: `too many alerts for this strategy: retry in ${seconds} s` })
    }
    const key = alertKey(alert, body as Readonly<Record<string, unknown>>)
    // A repeat of an alert delivered before (by any process on the same keys): answered as the first was.
    const remembered = rememberedKey(strategy, key)
    const known = decodeRemembered(yield* deps.keys.get(remembered))
    if (Option.isSome(known)) {
      yield* Metric.increment(answeredByKeys)
      return accepted({ status: "duplicate", duplicate: true, alert: key, runs: known.value.runs, ...ignored })
    }
    const receivedAt = (yield* Clock.currentTimeMillis) as Timestamp
    const deliver = Effect.suspend((): Effect.Effect<
      { readonly runs: ReadonlyArray<RunId>; readonly signal: ExternalSignal; readonly settle: (delivered: boolean) => void },
      NoPaperRun | NoTradingViewAnalyst | RateLimited | InvalidAlert
    > => {
      const symbols = deps.manager.paperSymbols(strategy)
      if (symbols.length === 0) {
        // Runs that would take it and never read it: refused, rather than answered "delivered".
        const deaf = deps.manager.paperRunsIgnoringAlerts(strategy)
        if (deaf.length > 0) {
          return Effect.fail(
            new NoTradingViewAnalyst({
              strategy,
              runs: deaf,
              reason: "the strategy's paper run has no tradingview analyst to read alerts: add one to the strategy and start a new paper run"
            })
          )
        }
        return Effect.fail(new NoPaperRun({ strategy, reason: "no paper run of this strategy is running: start one, then send the alert again" }))
      }
      const symbol = symbolOf(alert.ticker, symbols)
      if (symbol === undefined) {
        return Effect.fail(new InvalidAlert({ field: "ticker", reason: `the strategy's paper run trades ${symbols.join(", ")}, and this ticker names none of them` }))
      }
      const signal: ExternalSignal = canonicalSignal({
        source: "tradingview",
        symbol,
        ticker: alert.ticker,
        action: alert.action,
        price: alert.price,
        alertId: key,
        receivedAt,
        ...(alert.confidence === undefined ? {} : { confidence: alert.confidence }),
        ...(alert.strategy === undefined ? {} : { strategy: alert.strategy }),
        ...(alert.timeframe === undefined ? {} : { timeframe: alert.timeframe }),
        ...(alert.indicators === undefined ? {} : { indicators: alert.indicators })
      })
      // Staged: a run takes it once its claim is committed (WebhookStore.claimAlert).
      return Effect.map(deps.manager.stage(strategy, signal), (staged) => ({ runs: staged.runs, signal, settle: staged.settle }))
    })
    const claimed = yield* WebhookStore.claimAlert(strategy, key, deliver)
    if (claimed.duplicate) yield* Metric.increment(answeredByDatabase)
    // Committed: from now on a repeat is answered without the database (a failure here is counted by the keys, not the caller's).
    yield* deps.keys.set(remembered, encodeRemembered({ runs: claimed.runs }), rememberMillis)
    return accepted({ status: claimed.duplicate ? "duplicate" : "delivered", duplicate: claimed.duplicate, alert: key, runs: claimed.runs, ...ignored })
  }).pipe(
    Effect.provideService(SqlClient.SqlClient, deps.sql),
    Effect.catchTags({
      AlertTooLarge: (e) => Effect.succeed(json(413, { error: e._tag, limitBytes: e.limitBytes, reason: e.message })),
      InvalidAlert: (e) => Effect.succeed(json(400, { error: e._tag, field: e.field, reason: e.reason })),
      Unauthorized: (e) => Effect.succeed(json(401, { error: e._tag, reason: e.reason })),
      NoPaperRun: (e) => Effect.succeed(json(409, { error: e._tag, strategy: e.strategy, reason: e.reason })),
      NoTradingViewAnalyst: (e) => Effect.succeed(json(409, { error: e._tag, strategy: e.strategy, runs: e.runs, reason: e.reason })),
      RateLimited: (e) =>
        Effect.succeed(
          json(429, { error: e._tag, strategy: e.strategy, retryAfterSeconds: e.retryAfterSeconds, reason: e.reason }, {
            "retry-after": String(e.retryAfterSeconds)
          })
        ),
      StoreError: (e) =>
        Effect.as(
          Effect.logError("webhook: the database failed").pipe(Effect.annotateLogs({ reason: e.reason })),
          json(503, { error: "Unavailable", reason: "the database is unavailable; retry later" })
        )
    }),
    Effect.withSpan("Webhooks.tradingview")
  )
}

/**
 * The route, with the `RateLimiter` its context gives (several processes: a shared one) and the
 * context's `IdempotencyKeys` when it has one (the server's: in Redis when `REDIS_URL` is set), else
 * keys of its own in this process.
 */
export const routeWith = (options: Options = {}) =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function*() {
      const manager = yield* RunManager
      const sql = yield* SqlClient.SqlClient
      const limiter = yield* RateLimiter.RateLimiter
      const keys = Option.getOrElse(yield* Effect.serviceOption(IdempotencyKeys.IdempotencyKeys), IdempotencyKeys.memory)
      yield* router.add("POST", path, handler({ manager, sql, limiter, keys }, options))
    })
  )

/** The route with an in-process rate limit (`options.rate`). */
export const route = (options: Options = {}) =>
  routeWith(options).pipe(Layer.provide(RateLimiter.layerMemory(options.rate ?? defaults.rate)))
