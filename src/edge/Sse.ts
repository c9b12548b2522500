/**
 * `GET /v1/runs/:id/events`: a run's events as Server-Sent Events — `id:` the event's sequence
 * number, `event:` its tag, `data:` its canonical JSON line, byte for byte as the run wrote it.
 * `Last-Event-ID` (or `?since=`) resumes after a sequence number with no gap and no duplicate:
 * what the database has committed first, then the bus's ring of recent events, then the run live
 * (the algorithm is Follow.ts's, shared with the RPC stream).
 *
 * A slow client cannot slow the run: its subscription is bounded and, once it overflows, the
 * client is told so (`event: overflow`) and disconnected, to come back with `Last-Event-ID` and
 * read the rest from the database. A live event's frame is encoded once, whatever the number of
 * clients it goes to, and each client gets what is ready as one write, at most every `coalesce`;
 * the clients of every run share a bounded part of each event-loop turn (`Follow.fanOut`) and a
 * few reads of the database at a time (`Follow.catchUpReads`: clients back from an overflow read
 * their gaps there), so however many there are, they cannot slow the runs they watch. A client
 * that stops reading but keeps its connection open (its socket full, a write waiting for it to
 * drain) is disconnected once a write has waited `WRITE_STALL` (30 s): told so first
 * (`event: overflow`) if it takes that within `STALL_GRACE`, then its connection destroyed — it
 * holds no subscription, no fiber and no buffers for long, whatever it does.
 *
 * A finished run ends its stream after its last event with `event: end`: `{ run, lastEventId,
 * status, failure? }`, the run's last event and how the run ended as its row says (left out if it
 * cannot be read). A live run asked from past its latest event says so first, in a comment. A client
 * that has every event of a finished run already (its `Last-Event-ID` or `?since=` at or past the
 * last) is answered `204 No Content` instead: the one answer that stops an EventSource from
 * reconnecting — after an `end` and the close, it would reconnect every `retry:` for as long as
 * the page is open.
 *
 * A run that goes on is also told its status, which is no run event (a pause is an operator's
 * wall-clock action the run does not see at a bar; its event log replays byte for byte): `event:
 * status`, with no `id:` (an EventSource's Last-Event-ID stays the last event's), `data: { status,
 * by?, reason?, at? }` — `running` or `paused`, and who left it so, why, since when, as its control
 * log says (RunStatusFeed.ts). Sent first, before any event, and again each time it changes — a
 * pause, a resume, by an operator, by an admin disabling its user, through this server or another —
 * until the stream ends; how the run ended is the `end`'s to say.
 *
 * The key is checked again while the stream lasts (every `recheck`, and at once when the server
 * forgets a user's cached keys: `Auth.refusal`): once it no longer
 * authenticates — revoked, or its user disabled — the client is told so (`event: error`,
 * `Unauthorized`) and disconnected; its EventSource's reconnection then gets a 401 and stops. Once
 * its user may no longer see the run (an admin demoted, watching another's), the stream ends with
 * what a request for the run gets now, `RunNotFound` (`event: error`, the 404's body), and the
 * reconnection gets the 404.
 */
import { HttpLayerRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Cause, Chunk, Deferred, Duration, Effect, Either, Exit, Fiber, FiberId, Option, Queue, Stream } from "effect"
import type * as NodeHttp from "node:http"
import { type Principal, Unauthorized } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import { InvalidRequest, type RunNotFound, type RunStatusNote } from "../../schemas/Rpc.js"
import { type BusEvent, EventBus } from "../bus/EventBus.js"
import * as Runs from "../store/Runs.js"
import type { CorruptRecord, StoreError } from "../store/StoreError.js"
import * as Auth from "./Auth.js"
import * as Follow from "./Follow.js"
import * as RunStatusFeed from "./RunStatusFeed.js"
import * as WriteStall from "./WriteStall.js"

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
  /** How often the client's key is checked again while the stream lasts. Default: the route's `Auth.Recheck` (15 s). */
  readonly recheck?: Duration.DurationInput
  /**
   * A live run's events go to a client at most this often, all that came meanwhile in one write;
   * the first after a quiet spell at once (Follow's `coalesce`). Default `Follow.liveCoalesce` (50 ms).
   */
  readonly coalesce?: Duration.DurationInput
  /** How long a write may wait for the client's socket to drain before the client is disconnected. Default `WRITE_STALL` (30 s). */
  readonly stall?: Duration.DurationInput
}

/** How long a write may wait for the client's socket to drain (WriteStall.ts). */
export const WRITE_STALL = WriteStall.WRITE_STALL

/** A client disconnected for a stalled write: how long it is left to take the notice (WriteStall.ts). */
export const STALL_GRACE = WriteStall.STALL_GRACE

export const defaults = {
  heartbeat: Duration.seconds(15),
  pageSize: Follow.defaults.pageSize,
  buffer: Follow.defaults.buffer,
  poll: Follow.defaults.poll,
  retry: Duration.seconds(1),
  recheck: Auth.RECHECK,
  coalesce: Follow.liveCoalesce,
  stall: WRITE_STALL
} as const

/** The largest sequence number a client may resume after. */
const MAX_SEQ = 2n ** 53n

// ---------------------------------------------------------------------------------------------
// Refusals: a JSON body `{ error, …fields, reason }`, never a stack

const refusal = (status: number, body: Record<string, unknown>, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson(body, { status, ...(headers === undefined ? {} : { headers }) })

const unauthorized = (error: Unauthorized) =>
  refusal(401, { error: "Unauthorized", reason: error.reason }, { "www-authenticate": "Bearer" })

const invalid = (error: InvalidRequest) => refusal(400, { error: "InvalidRequest", field: error.field, reason: error.reason })

/** One answer for an unknown run and for another's run: the body names only what was asked for. */
export const notFoundBody = (run: string) => ({ error: "RunNotFound", run, reason: `no run ${run}` })

const notFound = (run: string) => refusal(404, notFoundBody(run))

const unavailable = refusal(503, { error: "Unavailable", reason: "the database is unavailable; retry later" })

/**
 * The answer to a stream request refused before its stream began, by its error's tag; `what`
 * names the route in the server's log (`SSE`, `SSE chat`). The database's failures are logged,
 * never shown.
 */
export const refusals = (what: string) => ({
  Unauthorized: (error: Unauthorized) => Effect.succeed(unauthorized(error)),
  Unavailable: () => Effect.succeed(unavailable),
  InvalidRequest: (error: InvalidRequest) => Effect.succeed(invalid(error)),
  RunNotFound: () => Effect.map(HttpLayerRouter.params, (params) => notFound(params.id ?? "")),
  StoreError: (error: StoreError) =>
    Effect.as(Effect.logError(`${what}: the database failed`).pipe(Effect.annotateLogs({ reason: error.reason })), unavailable),
  CorruptRecord: (error: CorruptRecord) =>
    Effect.as(
      Effect.logError(`${what}: a run record does not decode`).pipe(Effect.annotateLogs({ error: error.message })),
      refusal(500, { error: "CorruptRecord", reason: "the run's record cannot be read; the operator has been told" })
    )
})

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

/** A run's status (`event: status`): no `id:`, so an EventSource's Last-Event-ID stays the last event's. */
export const statusFrame = (note: RunStatusNote): string => controlFrame("status", note)

/**
 * The last frame of a stream the re-check refused (`Auth.runRefusal`), for the run's events and its
 * chat alike, logged. The key no longer authenticates: `event: error`, `{ error: "Unauthorized",
 * reason, lastEventId }` — where a client with a valid key reconnects from (`null`: nothing was
 * sent, nor resumed after). Its user may no longer see the run: `event: error` with the body of the
 * 404 the request for the run gets now (`{ error: "RunNotFound", run, reason }`, nothing more: a
 * place to resume from would be no use to it).
 */
export const refusedFrame = (
  stream: string,
  stopped: Unauthorized | RunNotFound,
  run: string,
  lastEventId: number | string | null
): Effect.Effect<string> => {
  const [why, body]: readonly [string, unknown] = stopped._tag === "Unauthorized"
    ? [
      "the client's API key no longer authenticates",
      {
        error: "Unauthorized",
        reason: "the API key no longer authenticates (it was revoked, or its user disabled): " +
          (lastEventId === null ? "reconnect with a valid key" : `with a valid key, reconnect with Last-Event-ID: ${lastEventId}`),
        lastEventId
      }
    ]
    : ["the client's user may no longer see the run", notFoundBody(stopped.run)]
  return Effect.as(
    Effect.logInfo(`${stream}: ${why}; the stream is closed`).pipe(Effect.annotateLogs({ run, after: lastEventId })),
    controlFrame("error", body)
  )
}

// ---------------------------------------------------------------------------------------------
// The stream

interface Dependencies {
  readonly bus: EventBus["Type"]
  readonly sql: SqlClient.SqlClient
  /** The statuses of the runs followed (`event: status`). */
  readonly statuses: RunStatusFeed.RunStatusFeedService
}

interface Resolved {
  readonly heartbeat: Duration.Duration
  readonly pageSize: number
  readonly buffer: number
  readonly poll: Duration.Duration
  readonly retry: Duration.Duration
  readonly recheck: Duration.Duration
  readonly coalesce: Duration.Duration
  readonly stall: Duration.Duration
}

/** What goes to the client: bytes, and the last run event among them (`through`), if any. */
interface Piece {
  readonly bytes: Uint8Array
  readonly through?: number
}

const piece = (bytes: Uint8Array): Piece => ({ bytes })

const encoder = new TextEncoder()

/**
 * The frames of run events, encoded once per event per process, whatever the number of clients
 * and wherever each read it. By event first: a bus event is one object shared by every
 * subscriber, so with 500 clients of a run its frame is encoded once, not 500 times — as are the
 * events of the bus's ring and of the database's shared pages (Follow.sharedPages) that clients
 * resume from. Weak: an event the bus and the clients have let go takes its frame with it.
 */
const frames = new WeakMap<BusEvent, Uint8Array>()

/**
 * Then by run and sequence number (`SharedFrames`): the same event read as another object — a
 * client resuming from the database (its latest page, not whole, is read by each for itself) or
 * tailing a run of another process, after the live clients had the bus's — gets the frame already
 * encoded, if its tag and line are the very same (a run re-executed on resume publishes its
 * numbers again: a frame is shared only byte for byte).
 */
class SharedFrames {
  /** By `run seq`, oldest first (the first is evicted first). */
  private readonly entries = new Map<string, { readonly tag: string; readonly json: string; readonly frame: Uint8Array }>()
  private bytes = 0

  constructor(readonly capacityBytes: number) {}

  get(run: string, event: BusEvent): Uint8Array | undefined {
    const entry = this.entries.get(`${run} ${event.seq}`)
    return entry !== undefined && entry.json === event.json && entry.tag === event.tag ? entry.frame : undefined
  }

  set(run: string, event: BusEvent, frame: Uint8Array): void {
    const key = `${run} ${event.seq}`
    const old = this.entries.get(key)
    if (old !== undefined) {
      this.entries.delete(key)
      this.bytes -= old.frame.length + old.json.length
    }
    this.entries.set(key, { tag: event.tag, json: event.json, frame })
    this.bytes += frame.length + event.json.length
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.capacityBytes) break
      this.entries.delete(oldest)
      this.bytes -= entry.frame.length + entry.json.length
    }
  }
}

/** The frames shared by run and sequence: the last 32 MB or so (frames and their lines), a few seconds of a fast run. */
const sharedFrames = new SharedFrames(32 * 1024 * 1024)

let encoded = 0

/** How many event frames this process has encoded: one per event, however many clients read it (for tests and benchmarks). */
export const framesEncoded = (): number => encoded

/**
 * A run's event frames are encoded one after another into slabs of its own, each frame a view of
 * its slab: the frames of a live run's consecutive events lie side by side, and a client's burst
 * of them is one view of the slab — written as it is, not copied into a burst of its own for each
 * client (500 clients of a paper run at 1,000 slices a second were copied 1.2 GB a second, every
 * byte allocated outside the heap, whose growth drives the collector). A run's own: a frame keeps
 * its whole slab alive (the bus's ring keeps a run's recent events, and they their frames), so a
 * slab holds only frames of one run, which go out of use together — a quiet run's frames do not
 * pin slabs a busy one filled. A run's slabs grow from `SLAB_MIN` to `SLAB_MAX` as it writes; a
 * frame larger than an eighth of `SLAB_MAX` gets a buffer of its own.
 */
const SLAB_MIN = 16 * 1024
const SLAB_MAX = 1024 * 1024

/** The slab each run's frames go into now, the runs most recently encoded for last: at most `SLABS_KEPT`. */
const slabs = new Map<string, { readonly buffer: Buffer; used: number }>()
const SLABS_KEPT = 256

const encodeFrame = (run: string, text: string): Uint8Array => {
  const length = Buffer.byteLength(text, "utf8")
  if (length > SLAB_MAX / 8) return Buffer.from(text, "utf8")
  let slab = slabs.get(run)
  if (slab !== undefined) slabs.delete(run)
  if (slab === undefined || slab.used + length > slab.buffer.length) {
    const size = slab === undefined ? SLAB_MIN : Math.min(SLAB_MAX, slab.buffer.length * 2)
    slab = { buffer: Buffer.allocUnsafeSlow(Math.max(size, length)), used: 0 }
  }
  slabs.set(run, slab)
  if (slabs.size > SLABS_KEPT) slabs.delete(slabs.keys().next().value!)
  const start = slab.used
  slab.used += slab.buffer.write(text, start, length, "utf8")
  return slab.buffer.subarray(start, slab.used)
}

const frameOf = (run: string, event: BusEvent): Uint8Array => {
  let frame = frames.get(event)
  if (frame === undefined) {
    frame = sharedFrames.get(run, event)
    if (frame === undefined) {
      encoded++
      frame = encodeFrame(run, eventFrame(event.seq, event.tag, event.json))
      sharedFrames.set(run, event, frame)
    }
    frames.set(event, frame)
  }
  return frame
}

/** Beyond this many stretches of side-by-side frames, a burst is copied into one buffer: one write, not dozens. */
const MAX_VIEWS = 4

/**
 * The bytes of a burst of events, as few pieces as they allow: each stretch of frames that lie side
 * by side in a slab is one view of it (no copy); a burst of more stretches than `MAX_VIEWS` (events
 * encoded out of order: a page of the database read after the run's live events) is one buffer.
 */
export const burstBytes = (run: string, burst: ReadonlyArray<BusEvent>): Array<Uint8Array> => {
  const views: Array<Uint8Array> = []
  let first: Uint8Array | undefined
  let buffer: ArrayBufferLike | undefined
  let start = 0
  let end = 0
  let count = 0
  const close = () => {
    if (first === undefined) return
    views.push(count === 1 ? first : Buffer.from(buffer!, start, end - start))
  }
  for (const event of burst) {
    const frame = frameOf(run, event)
    if (first !== undefined && frame.buffer === buffer && frame.byteOffset === end) {
      end += frame.length
      count++
      continue
    }
    close()
    first = frame
    buffer = frame.buffer
    start = frame.byteOffset
    end = start + frame.length
    count = 1
  }
  close()
  return views.length > MAX_VIEWS ? [Buffer.concat(views)] : views
}

const heartbeatPiece = piece(encoder.encode(heartbeatFrame))

/**
 * The frames of a run's events after `since`, one write per burst, ending with `end`, `overflow` or
 * `error` — `Unauthorized` or `RunNotFound` once the key is `refused` (checked again and again while
 * the stream lasts).
 */
const events = (
  deps: Dependencies,
  options: Resolved,
  run: RunId,
  since: number,
  refused: Effect.Effect<never, Unauthorized | RunNotFound>,
  statuses: Stream.Stream<Piece>,
  cut: Deferred.Deferred<void>
): Stream.Stream<Piece> => {
  let lastSent = since
  const followed = Follow.follow(deps, run, since, {
    pageSize: options.pageSize,
    buffer: options.buffer,
    poll: options.poll,
    idle: options.heartbeat,
    coalesce: options.coalesce,
    budget: Follow.fanOut,
    reads: Follow.catchUpReads,
    pages: Follow.sharedPages
  }).pipe(
    Stream.mapConcat((burst): ReadonlyArray<Piece> => {
      if (burst.length === 0) return [heartbeatPiece]
      lastSent = burst[burst.length - 1]!.seq
      const views = burstBytes(run, burst)
      // The last piece carries the burst's last event: a client that has it has them all.
      const pieces: Array<Piece> = views.map(piece)
      pieces[pieces.length - 1] = { bytes: views[views.length - 1]!, through: lastSent }
      return pieces
    }),
    (pieces) => live(pieces, statuses, refused, cut)
  )
  // With how the run ended, as its row says by then: a dashboard learns a failure's reason (a run
  // that fails with an error ends with no `RunFailed` event) without another request. Its last
  // event is the run's, not the client's resume point when that was past it. Under a permit of the
  // followers' reads, as a connection's are: a run's end ends all its clients' streams at once.
  const end = Stream.unwrap(
    Effect.all([
      Runs.getSummary(run).pipe(
        Effect.map((summary): Record<string, unknown> => ({
          status: summary.status,
          ...(summary.failure === null ? {} : { failure: summary.failure })
        })),
        Effect.orElseSucceed((): Record<string, unknown> => ({}))
      ),
      Runs.lastEvent(run).pipe(
        Effect.map(Option.match({ onNone: () => 0, onSome: (event) => event.seq })),
        Effect.map((last) => Math.min(lastSent, last)),
        Effect.orElseSucceed(() => lastSent)
      )
    ]).pipe(
      Follow.catchUpReads.withPermits(1),
      Effect.provideService(SqlClient.SqlClient, deps.sql),
      Effect.map(([ended, lastEventId]) => Stream.make(piece(encoder.encode(controlFrame("end", { run, lastEventId, ...ended })))))
    )
  )
  return Stream.concat(followed, end).pipe(
    Stream.catchAll((stopped) =>
      Effect.gen(function*() {
        if (stopped._tag === "Unauthorized" || stopped._tag === "RunNotFound") return yield* refusedFrame("SSE", stopped, run, lastSent)
        switch (stopped.reason) {
          case "overflow":
            return controlFrame("overflow", {
              reason: `this client fell more than ${options.buffer} events behind the run and is disconnected: ` +
                `reconnect with Last-Event-ID: ${stopped.lastEventId} to read on from there`,
              lastEventId: stopped.lastEventId
            })
          case "gap":
            yield* Effect.logWarning("SSE: events missing from the bus and the database; the client is asked to reconnect").pipe(
              Effect.annotateLogs({ run, after: stopped.lastEventId })
            )
            return controlFrame("error", {
              error: "Gap",
              reason: `events after ${stopped.lastEventId} are not available yet: reconnect with Last-Event-ID: ${stopped.lastEventId}`,
              lastEventId: stopped.lastEventId
            })
          case "unavailable":
            // The headers are sent: the client learns it here, and reconnects to go on.
            yield* Effect.logError("SSE: reading the run failed").pipe(Effect.annotateLogs({ run, error: stopped.detail }))
            return controlFrame("error", {
              error: "Unavailable",
              reason: `the events cannot be read now: reconnect with Last-Event-ID: ${stopped.lastEventId}`,
              lastEventId: stopped.lastEventId
            })
        }
      }).pipe(Effect.map((frame) => Stream.make(piece(encoder.encode(frame)))), Stream.unwrap)
    )
  )
}

/** A finished run the client has all of: no body, and an EventSource does not reconnect after it. */
const nothingMore = HttpServerResponse.empty({ status: 204 })

/**
 * A comment for a client whose resume point is past the run's latest event (`latest`): the stream
 * goes on from its resume point as ever (the run may yet get there), but the client is told why it
 * gets only heartbeats for now.
 */
export const aheadFrame = (since: number, latest: number): string =>
  `: ${since} is past the run's latest event, #${latest}: the stream sends the events after ${since} as they come\n\n`

/**
 * The latest event of a live run as far as this process knows: the database's last, or later in
 * the bus's ring of recent events.
 */
const latestEvent = (deps: Dependencies, run: RunId, committed: number): number => {
  let ring = deps.bus.recent(run, committed)
  if (ring === undefined) {
    // The ring starts past `committed + 1`: find where it does (`recent` answers from there on).
    let lo = committed
    let hi = Number.MAX_SAFE_INTEGER
    while (lo + 1 < hi) {
      const mid = lo + Math.floor((hi - lo) / 2)
      if (deps.bus.recent(run, mid) === undefined) lo = mid
      else hi = mid
    }
    ring = deps.bus.recent(run, hi) ?? []
  }
  return ring.length === 0 ? committed : Math.max(committed, ring[ring.length - 1]!.seq)
}

/**
 * The status frames of a run that goes on after `now` (read on connect, sent first): each change
 * the feed sees, until the stream of its events ends (`live`).
 */
const statusChanges = (deps: Dependencies, run: RunId, now: RunStatusNote): Stream.Stream<Piece> => {
  let told: RunStatusNote = now
  return deps.statuses.changes(run).pipe(
    // How a run ended is the `end`'s to say, after its last event.
    Stream.filter((note) => !Follow.FINISHED.has(note.status) && !RunStatusFeed.same(note, told)),
    Stream.map((note) => {
      told = note
      return piece(encoder.encode(statusFrame(note)))
    })
  )
}

/**
 * The pieces of `main` (a run's events), with those of `side` (its status changes) between them as
 * they come, until `main` ends; failed with `stop`'s error once it fails (the key refused), and
 * ended once `cut` is done (a write stalled: WriteStall.ts) — `main` interrupted then. One fiber
 * a source, for the stream's life, and one hand-over a piece through a queue: `Stream.merge` and
 * `Stream.interruptWhen` fork and race fresh fibers for every piece, and a client's stream had
 * three of them — 500 clients of a paper run are 10,000 bursts a second, and that racing was most
 * of what they cost the server (and its collector).
 */
const live = <E1, E2>(
  main: Stream.Stream<Piece, E1>,
  side: Stream.Stream<Piece>,
  stop: Effect.Effect<never, E2>,
  cut: Deferred.Deferred<void>
): Stream.Stream<Piece, E1 | E2> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    // One piece ahead at most: a client that does not read holds up the run's events here, as it
    // held them up before, and its subscription overflows (the run never waits for it).
    const queue = yield* Queue.bounded<Exit.Exit<Chunk.Chunk<Piece>, Option.Option<E1 | E2>>>(1)
    const offer = (chunk: Chunk.Chunk<Piece>) => Queue.offer(queue, Exit.succeed(chunk))
    const mainFiber = yield* Stream.runForEachChunk(main, offer).pipe(
      Effect.matchCauseEffect({
        onSuccess: () => Queue.offer(queue, Exit.fail(Option.none())),
        onFailure: (cause) => Queue.offer(queue, Exit.failCause(Cause.map(cause, Option.some)))
      }),
      Effect.forkScoped
    )
    yield* Effect.forkScoped(Stream.runForEachChunk(side, offer))
    yield* stop.pipe(
      Effect.catchAll((error) => Effect.zipRight(Fiber.interrupt(mainFiber), Queue.offer(queue, Exit.fail(Option.some(error))))),
      Effect.forkScoped
    )
    yield* Deferred.await(cut).pipe(
      Effect.zipRight(Fiber.interrupt(mainFiber)),
      Effect.zipRight(Queue.offer(queue, Exit.fail(Option.none()))),
      Effect.forkScoped
    )
    return Stream.repeatEffectChunkOption(Effect.flatten(Queue.take(queue)))
  }))

/** The notice of a client disconnected because a write to it stalled (`WRITE_STALL`). */
export const stalledFrame = (stall: Duration.Duration, lastEventId: number): string =>
  controlFrame("overflow", {
    reason: `this client read nothing for ${Duration.format(stall)} while its connection was full and is disconnected: ` +
      `reconnect with Last-Event-ID: ${lastEventId} to read on from there`,
    lastEventId
  })

/**
 * `pieces` written to `res` with a bound on how long a write may wait for the socket to drain
 * (WriteStall.ts): a client that stops reading is told where it is (`event: overflow`) and
 * disconnected; the follower's subscription goes with the response's fiber.
 */
const bounded = (
  res: NodeHttp.ServerResponse | undefined,
  stall: Duration.Duration,
  run: RunId,
  since: number,
  pieces: Stream.Stream<Piece>,
  cut: Deferred.Deferred<void>
): Stream.Stream<Uint8Array> => {
  /** The last run event written: a client that reads the notice has every event up to it. */
  let written = since
  return WriteStall.bounded(res, stall, pieces, {
    // The cut ends the events (`live`): no race of every piece against it.
    endsItems: true,
    bytes: (p) => p.bytes,
    written: (p) => {
      if (p.through !== undefined) written = p.through
    },
    stalled: (stalledMillis) =>
      Effect.as(
        Effect.logInfo("SSE: a write to the client waited too long for its socket to drain; the client is disconnected").pipe(
          Effect.annotateLogs({ run, after: written, stalledMillis }),
          Effect.zipRight(Deferred.done(cut, Exit.void))
        ),
        encoder.encode(stalledFrame(stall, written))
      )
  })
}

const response = (
  deps: Dependencies,
  res: NodeHttp.ServerResponse | undefined,
  options: Resolved,
  run: RunId,
  since: number,
  latest: number | undefined,
  status: RunStatusNote | undefined,
  refused: Effect.Effect<never, Unauthorized | RunNotFound>
): HttpServerResponse.HttpServerResponse => {
  // The first bytes go out at once (headers too): `retry:` advises EventSource how soon to reconnect.
  const retry = piece(encoder.encode(`retry: ${Math.max(0, Math.round(Duration.toMillis(options.retry)))}\n\n`))
  const ahead = latest !== undefined && since > latest ? [piece(encoder.encode(aheadFrame(since, latest)))] : []
  // A run that goes on: its status first, then each change, between its events.
  const first = status === undefined ? [] : [piece(encoder.encode(statusFrame(status)))]
  const statuses = status === undefined ? Stream.empty : statusChanges(deps, run, status)
  const cut = Deferred.unsafeMake<void>(FiberId.none)
  const pieces = Stream.concat(Stream.make(retry, ...ahead, ...first), events(deps, options, run, since, refused, statuses, cut))
  return HttpServerResponse.stream(bounded(res, options.stall, run, since, pieces, cut), {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
}

/**
 * What a client's connection reads before its stream starts: the run (the caller's, or a 404), its
 * last committed event and, for a run that goes on, its status. Under a permit of the followers'
 * reads (`Follow.catchUpReads`), as their pages are: 500 dashboards reconnecting at once (a server
 * restarted, a proxy's blip) queued some 1,500 queries for the pool ahead of the runs' own writes,
 * which waited behind them; gated, they take their turns, and the pool stays free for the runs.
 */
const connectReads = (deps: Dependencies, id: string, principal: Principal) =>
  Follow.catchUpReads.withPermits(1)(Effect.gen(function*() {
    const run = yield* Runs.getSummary(id, principal.role === "admin" ? undefined : principal.userId)
    // Read after the status: a finished run has committed every event it will ever write.
    const last = Option.match(yield* Runs.lastEvent(run.id), { onNone: () => 0, onSome: (event) => event.seq })
    // A run that goes on: its status, told first. Read after its events' end (a run finishing
    // meanwhile says so in its `end`); a database that cannot say now leaves it to the changes.
    const status = Follow.FINISHED.has(run.status)
      ? undefined
      : Option.getOrUndefined(yield* deps.statuses.now(run.id).pipe(Effect.orElseSucceed(() => Option.none<RunStatusNote>())))
    return { run, last, status }
  })).pipe(Effect.provideService(SqlClient.SqlClient, deps.sql))

/** The handler, with its services given. */
export const handler = (
  deps: Dependencies & { readonly auth: Auth.Authenticator["Type"] },
  options: Options = {}
) => {
  const resolved: Resolved = {
    heartbeat: Duration.decode(options.heartbeat ?? defaults.heartbeat),
    pageSize: Math.max(1, Math.trunc(options.pageSize ?? defaults.pageSize)),
    buffer: Math.max(1, Math.trunc(options.buffer ?? defaults.buffer)),
    poll: Duration.decode(options.poll ?? defaults.poll),
    retry: Duration.decode(options.retry ?? defaults.retry),
    recheck: Duration.decode(options.recheck ?? defaults.recheck),
    coalesce: Duration.decode(options.coalesce ?? defaults.coalesce),
    stall: Duration.decode(options.stall ?? defaults.stall)
  }
  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const search = yield* HttpServerRequest.ParsedSearchParams
    const id = (yield* HttpLayerRouter.params).id ?? ""
    const key = yield* keyOf(request.headers, search)
    const principal: Principal = yield* deps.auth.authenticate(key)
    const since = yield* sinceOf(request.headers, search)
    const { last, run, status } = yield* connectReads(deps, id, principal)
    if (Follow.FINISHED.has(run.status) && since >= last) return nothingMore
    // Only a resume point past the committed events can be past the run's latest.
    const latest = since > last ? latestEvent(deps, run.id, last) : undefined
    return response(deps, WriteStall.nodeResponse(request), resolved, run.id, since, latest, status !== undefined && Follow.FINISHED.has(status.status) ? undefined : status, Auth.runRefusal(deps.auth, key, resolved.recheck, { ref: id, owner: run.owner }))
  }).pipe(
    Effect.catchTags(refusals("SSE")),
    Effect.withSpan("Sse.events")
  )
}

/** The route, its services taken from the layer's context. */
export const route = (options: Options = {}) =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function*() {
      const auth = yield* Auth.Authenticator
      const bus = yield* EventBus
      const found = yield* Effect.serviceOption(RunStatusFeed.RunStatusFeed)
      const sql = yield* SqlClient.SqlClient
      const recheck = yield* Auth.Recheck
      // The server's feed (Server.ts); without one (a server of routes alone), this route's own.
      const statuses = Option.isSome(found) ? found.value : yield* RunStatusFeed.makeInProcess().pipe(Effect.provideService(SqlClient.SqlClient, sql))
      yield* router.add("GET", path, handler({ auth, bus, sql, statuses }, { ...options, recheck: options.recheck ?? recheck }))
    })
  )
