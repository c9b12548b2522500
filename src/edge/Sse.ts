/**
 * `GET /v1/runs/:id/events`: a run's events as Server-Sent Events — `id:` the event's sequence
 * number, `event:` its tag, `data:` its canonical JSON line, byte for byte as the run wrote it.
 * `Last-Event-ID` (or `?since=`) resumes after a sequence number with no gap and no duplicate:
 * what the database has committed first, then the bus's ring of recent events, then the run live.
 *
 * No gap, no duplicate: the stream subscribes to the bus BEFORE it reads anything, so every event
 * published from then on reaches its subscription; everything published before is either committed
 * (the database pages) or still in the bus's ring (`recent`), which is read after the pages and
 * after the subscription. The stream remembers the last sequence number it sent and sends only the
 * event after it, so what the three sources have in common goes out once. If the ring no longer
 * reaches back to the last page (the database lags the run by more than the ring holds), the
 * missing events are committed soon: the stream reads the database again every few milliseconds
 * until they are there, and an event delivered past them waits for them.
 *
 * A run that is neither live in this process nor finished (about to start, or running in another
 * process) is tailed from the database every `poll` until it finishes, while its subscription
 * waits for it to go live here. A slow client cannot slow the run: its subscription is bounded and,
 * once it overflows, the client is told so (`event: overflow`) and disconnected, to come back with
 * `Last-Event-ID` and read the rest from the database.
 */
import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Chunk, Duration, Effect, Either, Option, Schedule, Stream } from "effect"
import { type Principal, Unauthorized } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import { InvalidRequest } from "../../schemas/Rpc.js"
import { type BusEvent, type Delivery, EventBus } from "../bus/EventBus.js"
import * as Runs from "../store/Runs.js"
import { Authenticator } from "./Auth.js"

export const path = "/v1/runs/:id/events"

export interface Options {
  /** A `: heartbeat` comment this often, so that proxies keep the connection open. Default 15 s. */
  readonly heartbeat?: Duration.DurationInput
  /** Events read from the database at a time. Default 1,000. */
  readonly pageSize?: number
  /** The client's bus subscription: events it may fall behind before it is disconnected. Default 4,096. */
  readonly buffer?: number
  /** How often a run that is not live here is read from the database. Default 1 s. */
  readonly poll?: Duration.DurationInput
  /** The reconnection delay advised to EventSource clients (`retry:`). Default 1 s. */
  readonly retry?: Duration.DurationInput
}

export const defaults = {
  heartbeat: Duration.seconds(15),
  pageSize: 1_000,
  buffer: 4_096,
  poll: Duration.seconds(1),
  retry: Duration.seconds(1)
} as const

/** The largest sequence number a client may resume after. */
const MAX_SEQ = 2n ** 53n

/** Statuses after which a run writes nothing more. */
const FINISHED: ReadonlySet<Runs.RunStatus> = new Set(["completed", "failed", "stopped"])

/** While the database lags the run by more than the ring holds: how often it is read again. */
const CATCH_UP_DELAY = Duration.millis(20)

/** How many times (`CATCH_UP_DELAY` apart) a missing event is looked for before the client is asked to reconnect. */
const GAP_ATTEMPTS = 500

// ---------------------------------------------------------------------------------------------
// Refusals: a JSON body `{ error, …fields, reason }`, never a stack

const refusal = (status: number, body: Record<string, unknown>, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson(body, { status, ...(headers === undefined ? {} : { headers }) })

const unauthorized = (error: Unauthorized) =>
  refusal(401, { error: "Unauthorized", reason: error.reason }, { "www-authenticate": "Bearer" })

const invalid = (error: InvalidRequest) => refusal(400, { error: "InvalidRequest", field: error.field, reason: error.reason })

/** One answer for an unknown run and for another's run: the body names only what was asked for. */
const notFound = (run: string) => refusal(404, { error: "RunNotFound", run, reason: `no run ${run}` })

const unavailable = refusal(503, { error: "Unavailable", reason: "the database is unavailable; retry later" })

// ---------------------------------------------------------------------------------------------
// The request

type Search = Readonly<Record<string, string | ReadonlyArray<string>>>

const single = (search: Search, name: string): Either.Either<string | undefined, string> => {
  const value = search[name]
  if (value === undefined || typeof value === "string") return Either.right(value)
  return Either.left(`?${name}= is given ${value.length} times`)
}

/** The API key: `Authorization: Bearer <key>`, else `?token=<key>` (EventSource cannot set headers). */
export const keyOf = (headers: Readonly<Record<string, string | undefined>>, search: Search): Either.Either<string, Unauthorized> => {
  const header = headers["authorization"]
  if (header !== undefined) {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
    return match === null
      ? Either.left(new Unauthorized({ reason: "the Authorization header must be 'Bearer <API key>'" }))
      : Either.right(match[1]!)
  }
  return Either.flatMap(
    Either.mapLeft(single(search, "token"), (reason) => new Unauthorized({ reason })),
    (token) =>
      token === undefined || token === ""
        ? Either.left(new Unauthorized({ reason: "no API key: send 'Authorization: Bearer <key>' or '?token=<key>'" }))
        : Either.right(token)
  )
}

/** A sequence number as a client sends it: decimal digits, at most 2^53. */
export const parseSeq = (field: string, raw: string): Either.Either<number, InvalidRequest> =>
  /^\d{1,16}$/.test(raw) && BigInt(raw) <= MAX_SEQ
    ? Either.right(Number(raw))
    : Either.left(
      new InvalidRequest({
        field,
        reason: `must be a non-negative integer no greater than 2^53 (a sequence number), not ${JSON.stringify(raw.slice(0, 40))}`
      })
    )

/**
 * Where to resume: `Last-Event-ID` (an EventSource reconnecting sends it, to the same URL, so it
 * wins over the URL's `?since=`), else `?since=`, else from the start (0).
 */
export const sinceOf = (headers: Readonly<Record<string, string | undefined>>, search: Search): Either.Either<number, InvalidRequest> => {
  const header = headers["last-event-id"]
  if (header !== undefined) return parseSeq("Last-Event-ID", header.trim())
  return Either.flatMap(
    Either.mapLeft(single(search, "since"), (reason) => new InvalidRequest({ field: "since", reason })),
    (since) => (since === undefined ? Either.right(0) : parseSeq("since", since))
  )
}

// ---------------------------------------------------------------------------------------------
// The wire

/** `field: value` lines; a value with line breaks (never a canonical JSON line) becomes several. */
const lines = (field: string, value: string): string => {
  let out = ""
  for (const line of value.split(/\r\n|\r|\n/)) out += `${field}: ${line}\n`
  return out
}

export const eventFrame = (seq: number, tag: string, data: string): string =>
  `id: ${seq}\n${lines("event", tag)}${lines("data", data)}\n`

const controlFrame = (event: string, data: unknown): string => `${lines("event", event)}${lines("data", JSON.stringify(data))}\n`

export const heartbeatFrame = ": heartbeat\n\n"

// ---------------------------------------------------------------------------------------------
// The stream

interface Dependencies {
  readonly bus: EventBus["Type"]
  readonly sql: SqlClient.SqlClient
}

interface Resolved {
  readonly heartbeat: Duration.Duration
  readonly pageSize: number
  readonly buffer: number
  readonly poll: Duration.Duration
  readonly retry: Duration.Duration
}

/**
 * The frames of a run's events after `since`, as one string per burst (a database page, the ring,
 * what the subscription had ready), ending when the run ends, or with `overflow` or `error`.
 */
const events = (deps: Dependencies, options: Resolved, run: RunId, since: number): Stream.Stream<string> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const { bus } = deps
    const withSql = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provideService(effect, SqlClient.SqlClient, deps.sql)
    // First of all: from here on, every event published reaches this subscription.
    const subscription = yield* bus.subscribe(run, { buffer: options.buffer })
    // live: it ends with `Ended`; finished: everything is committed, the backlog is all of it;
    // tailing: not live here (yet) — read the database every `poll` until it finishes.
    let mode: "live" | "finished" | "tailing" = "live"
    if (!bus.isLive(run)) {
      // Read after subscribing: a run that finishes from now on is `Ended` on the subscription.
      const status = (yield* withSql(Runs.get(run))).status
      mode = FINISHED.has(status) ? "finished" : "tailing"
    }

    let lastSent = since
    let phase: "backlog" | "ring" | "follow" | "tail" | "end" | "done" = "backlog"
    /**
     * The ring did not reach back to the last page: some events are neither committed nor in the
     * ring yet. The subscription has every event from its start on, so the stream follows it and
     * reads the database again every `CATCH_UP_DELAY` until the gap is closed.
     */
    let catchingUp = false
    /** In a tail: whether the run was seen finished before the pages were read. */
    let tailFinished = false

    const send = (out: Array<string>, seq: number, tag: string, data: string) => {
      if (seq <= lastSent) return
      out.push(eventFrame(seq, tag, data))
      lastSent = seq
    }
    const sendRows = (out: Array<string>, rows: ReadonlyArray<Runs.StoredEvent>) => {
      for (const row of rows) if (row.seq > lastSent) send(out, row.seq, row.tag, row.body)
    }
    const sendBus = (out: Array<string>, events: ReadonlyArray<BusEvent>, before = Infinity) => {
      for (const e of events) if (e.seq > lastSent && e.seq < before) send(out, e.seq, e.tag, e.json)
    }
    const page = Effect.suspend(() => withSql(Runs.events(run, lastSent, options.pageSize)))

    /**
     * The events between the last sent and `seq`, the next delivered: from the database (committed
     * by now, or soon) or the ring. False if they stay missing (the run's recorder is stuck).
     */
    const fillGap = (out: Array<string>, seq: number) =>
      Effect.gen(function*() {
        for (let attempt = 0;; attempt++) {
          while (lastSent + 1 < seq) {
            const rows = yield* withSql(Runs.events(run, lastSent, Math.min(options.pageSize, seq - lastSent - 1)))
            if (rows.length === 0) break
            sendRows(out, rows)
          }
          if (lastSent + 1 < seq) sendBus(out, bus.recent(run, lastSent) ?? [], seq)
          if (lastSent + 1 >= seq) return true
          if (attempt >= GAP_ATTEMPTS) return false
          yield* Effect.sleep(CATCH_UP_DELAY)
        }
      })

    /** While catching up and nothing was delivered: the database again, then the ring. */
    const catchUp = (out: Array<string>) =>
      Effect.gen(function*() {
        for (;;) {
          const rows = yield* page
          sendRows(out, rows)
          if (rows.length < options.pageSize) break
        }
        const recent = bus.recent(run, lastSent)
        if (recent !== undefined) {
          sendBus(out, recent)
          catchingUp = false
        }
      })

    const deliver = (out: Array<string>, deliveries: ReadonlyArray<Delivery>) =>
      Effect.gen(function*() {
        for (const delivery of deliveries) {
          switch (delivery._tag) {
            case "Event": {
              const e = delivery.event
              if (e.seq <= lastSent) continue
              if (e.seq > lastSent + 1 && !(yield* fillGap(out, e.seq))) {
                yield* Effect.logWarning("SSE: events missing from the bus and the database; the client is asked to reconnect").pipe(
                  Effect.annotateLogs({ run, after: lastSent, next: e.seq })
                )
                out.push(controlFrame("error", {
                  error: "Gap",
                  reason: `events after ${lastSent} are not available yet: reconnect with Last-Event-ID: ${lastSent}`,
                  lastEventId: lastSent
                }))
                phase = "done"
                return
              }
              send(out, e.seq, e.tag, e.json)
              // From here on the subscription is contiguous with what was sent.
              catchingUp = false
              break
            }
            case "Ended":
              phase = "end"
              return
            case "Overflow":
              out.push(controlFrame("overflow", {
                reason: `this client fell more than ${options.buffer} events behind the run and is disconnected: ` +
                  `reconnect with Last-Event-ID: ${lastSent} to read on from there`,
                lastEventId: lastSent
              }))
              phase = "done"
              return
          }
        }
      })

    const next: Effect.Effect<Chunk.Chunk<string>, Option.Option<never>> = Effect.gen(function*() {
      const out: Array<string> = []
      switch (phase) {
        case "backlog": {
          const rows = yield* page
          sendRows(out, rows)
          if (rows.length < options.pageSize) phase = mode === "finished" ? "end" : "ring"
          break
        }
        case "ring": {
          const recent = bus.recent(run, lastSent)
          if (recent === undefined) catchingUp = true
          else sendBus(out, recent)
          phase = "follow"
          break
        }
        case "follow": {
          const wait = mode === "tailing" ? options.poll : catchingUp ? CATCH_UP_DELAY : undefined
          const ready = wait === undefined
            ? Option.some(yield* subscription.takeAll)
            : yield* Effect.timeoutOption(subscription.takeAll, wait)
          if (Option.isSome(ready)) yield* deliver(out, ready.value)
          else if (catchingUp) yield* catchUp(out)
          else if (bus.isLive(run)) mode = "live"
          else {
            tailFinished = FINISHED.has((yield* withSql(Runs.get(run))).status)
            phase = "tail"
          }
          break
        }
        case "tail": {
          // Status first, then the pages: a run seen finished has committed all it will write.
          const rows = yield* page
          sendRows(out, rows)
          if (rows.length < options.pageSize) phase = tailFinished ? "end" : "follow"
          break
        }
        case "end":
          out.push(controlFrame("end", { run, lastEventId: lastSent }))
          phase = "done"
          break
        case "done":
          return yield* Effect.fail(Option.none())
      }
      return out.length === 0 ? Chunk.empty() : Chunk.of(out.join(""))
    }).pipe(
      Effect.catchAll((error) =>
        Option.isOption(error) ? Effect.fail(error) : Effect.gen(function*() {
          // The headers are sent: the client learns it here, and reconnects to go on.
          yield* Effect.logError("SSE: reading the run failed").pipe(Effect.annotateLogs({ run, error: String(error) }))
          phase = "done"
          return Chunk.of(controlFrame("error", {
            error: error._tag === "RunNotFound" ? "RunNotFound" : "Unavailable",
            reason: `the events cannot be read now: reconnect with Last-Event-ID: ${lastSent}`,
            lastEventId: lastSent
          }))
        })
      )
    )
    return Stream.repeatEffectChunkOption(next)
  }).pipe(
    // Only the first read (the status) can fail here; later failures are caught in `next`.
    Effect.catchAll((error) =>
      Effect.as(
        Effect.logError("SSE: reading the run failed").pipe(Effect.annotateLogs({ run, error: String(error) })),
        Stream.make(controlFrame("error", { error: "Unavailable", reason: "the events cannot be read now: reconnect", lastEventId: since }))
      )
    )
  ))

const response = (deps: Dependencies, options: Resolved, run: RunId, since: number): HttpServerResponse.HttpServerResponse => {
  // The first bytes go out at once (headers too): `retry:` advises EventSource how soon to reconnect.
  const retry = `retry: ${Math.max(0, Math.round(Duration.toMillis(options.retry)))}\n\n`
  const heartbeats = Stream.fromSchedule(Schedule.spaced(options.heartbeat)).pipe(Stream.as(heartbeatFrame))
  const body = Stream.concat(
    Stream.make(retry),
    Stream.merge(events(deps, options, run, since), heartbeats, { haltStrategy: "left" })
  )
  return HttpServerResponse.stream(Stream.encodeText(body), {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
}

/** The handler, with its services given. */
export const handler = (
  deps: Dependencies & { readonly auth: Authenticator["Type"] },
  options: Options = {}
) => {
  const resolved: Resolved = {
    heartbeat: Duration.decode(options.heartbeat ?? defaults.heartbeat),
    pageSize: Math.max(1, Math.trunc(options.pageSize ?? defaults.pageSize)),
    buffer: Math.max(1, Math.trunc(options.buffer ?? defaults.buffer)),
    poll: Duration.decode(options.poll ?? defaults.poll),
    retry: Duration.decode(options.retry ?? defaults.retry)
  }
  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const search = yield* HttpServerRequest.ParsedSearchParams
    const id = (yield* HttpLayerRouter.params).id ?? ""
    const principal: Principal = yield* Effect.flatMap(keyOf(request.headers, search), deps.auth.authenticate)
    const since = yield* sinceOf(request.headers, search)
    const run = yield* Runs.get(id, principal.role === "admin" ? undefined : principal.userId).pipe(
      Effect.provideService(SqlClient.SqlClient, deps.sql)
    )
    return response(deps, resolved, run.id, since)
  }).pipe(
    Effect.catchTags({
      Unauthorized: (error) => Effect.succeed(unauthorized(error)),
      InvalidRequest: (error) => Effect.succeed(invalid(error)),
      RunNotFound: () => Effect.flatMap(HttpLayerRouter.params, (params) => Effect.succeed(notFound(params.id ?? ""))),
      StoreError: (error) =>
        Effect.as(Effect.logError("SSE: the database failed").pipe(Effect.annotateLogs({ reason: error.reason })), unavailable),
      CorruptRecord: (error) =>
        Effect.as(
          Effect.logError("SSE: a run record does not decode").pipe(Effect.annotateLogs({ error: error.message })),
          refusal(500, { error: "CorruptRecord", reason: "the run's record cannot be read; the operator has been told" })
        )
    }),
    Effect.withSpan("Sse.events")
  )
}

/** The route, its services taken from the layer's context. */
export const route = (options: Options = {}) =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function*() {
      const auth = yield* Authenticator
      const bus = yield* EventBus
      const sql = yield* SqlClient.SqlClient
      yield* router.add("GET", path, handler({ auth, bus, sql }, options))
    })
  )
