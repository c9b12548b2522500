/**
 * A run's status as its followers see it while it goes on — running or paused, by whom, why, since
 * when (`RunStatusNote`) — for the SSE stream's `event: status` frames. It is no run event: a pause
 * is an operator's wall-clock action that the run does not see at a bar, and a run's event log
 * replays byte for byte. So it is read from where the run manager leaves it: the run's row and its
 * control log (ControlAudit.ts, `statusOf`).
 *
 * Once per run per process, however many follow it: the first follower of a run starts one poller
 * here, which reads the status every `poll` (a cheap read while nothing changed: the row's status
 * and the control log's length) and at once when it is told the status may have changed
 * (`changed`: the run manager's pause, resume and stop, carried out here or relayed from here), and
 * hands each change to every follower; the last follower to leave stops it. Another process's
 * changes (the run executing on server A, its dashboard on server B) are seen within `poll`; with
 * `REDIS_URL` set, at once: `changed` is published (`PUBLISH <prefix>runs:status {"origin", "run"}`)
 * and every process reads the run again — at most once, like any pub/sub here, the poll catching
 * what is lost.
 */
import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Either, Fiber, Layer, Option, Queue, Schema, Scope, Stream } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import type { RunStatusNote } from "../../schemas/Rpc.js"
import { Redis } from "../bus/Redis.js"
import * as ControlAudit from "../store/ControlAudit.js"
import type { StoreError } from "../store/StoreError.js"

export interface RunStatusFeedService {
  /**
   * `run`'s status may have changed (its row and control log are committed): its followers here,
   * and with Redis in every process, read it again now. Synchronous, never blocks, never fails.
   */
  readonly changed: (run: string) => void
  /** `run`'s status: read now, or as its poller here last read it (`changes` brings what it reads next); none: no such run. */
  readonly now: (run: RunId) => Effect.Effect<Option.Option<RunStatusNote>, StoreError>
  /**
   * `run`'s status from now on, for the stream's lifetime: the one the run's poller last read (when
   * it has read one), then each change. The caller drops what it was told already.
   */
  readonly changes: (run: RunId) => Stream.Stream<RunStatusNote>
  readonly kind: "in-process" | "redis"
  /** How it learns another process's changes, in a line (start-up and `/health` say it). */
  readonly description: string
  /** The runs whose status this process follows now, and the hints it has read from other processes (Redis). */
  readonly stats: () => { readonly followed: number; readonly received: number }
}

export class RunStatusFeed extends Context.Tag("swarm/edge/RunStatusFeed")<RunStatusFeed, RunStatusFeedService>() {}

export interface Options {
  /** How often a followed run's status is read when nothing said it changed. Default 1 s. */
  readonly poll?: Duration.DurationInput
}

export const defaults = { poll: Duration.seconds(1) } as const

/** Two notes say the same. */
export const same = (a: RunStatusNote | undefined, b: RunStatusNote | undefined): boolean =>
  a === b ||
  (a !== undefined && b !== undefined && a.status === b.status && a.at === b.at && a.by?.id === b.by?.id && a.reason === b.reason)

interface Watched {
  followers: number
  readonly listeners: Set<(note: RunStatusNote) => void>
  /** What the poller read last. */
  read: ControlAudit.StatusRead | undefined
  /** Offered to wake the poller (`changed`). */
  readonly wake: Queue.Queue<void>
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
}

/** The feed over the context's database, hinted by `publish` besides this process's own `changed`. */
const make = (
  options: Options,
  kind: RunStatusFeedService["kind"],
  describe: (poll: Duration.Duration) => string,
  publish: (run: string) => void
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const scope = yield* Effect.scope
    const pollMillis = Duration.toMillis(options.poll ?? defaults.poll)
    const watched = new Map<string, Watched>()
    let received = 0
    const read = (run: RunId, known?: ControlAudit.StatusRead) =>
      Effect.provideService(ControlAudit.statusOf(run, known), SqlClient.SqlClient, sql)

    const poller = (run: RunId, w: Watched) =>
      Effect.gen(function*() {
        for (;;) {
          // A failed read is tried again at the next poll: the followers keep what they were told.
          const now = yield* Effect.either(read(run, w.read))
          if (Either.isRight(now) && Option.isSome(now.right) && now.right.value !== w.read) {
            const before = w.read?.note
            w.read = now.right.value
            if (!same(before, w.read.note)) for (const listener of w.listeners) listener(w.read.note)
          }
          yield* Effect.race(Effect.sleep(pollMillis), Queue.take(w.wake))
          // Several hints at once: one read.
          yield* Queue.takeAll(w.wake)
        }
      })

    const wake = (run: string) => {
      const w = watched.get(run)
      if (w !== undefined) Queue.unsafeOffer(w.wake, undefined)
    }

    const follow = (run: RunId, listener: (note: RunStatusNote) => void) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          let w = watched.get(run)
          if (w === undefined) {
            w = { followers: 0, listeners: new Set(), read: undefined, wake: yield* Queue.sliding<void>(1), fiber: undefined }
            watched.set(run, w)
            w.fiber = yield* Effect.forkIn(Effect.interruptible(poller(run, w)), scope)
          }
          w.followers++
          w.listeners.add(listener)
          if (w.read !== undefined) listener(w.read.note)
          return w
        }),
        (w) =>
          Effect.gen(function*() {
            w.listeners.delete(listener)
            if (--w.followers > 0) return
            watched.delete(run)
            if (w.fiber !== undefined) yield* Fiber.interruptFork(w.fiber)
          })
      )

    return {
      changed: (run: string) => {
        wake(run)
        publish(run)
      },
      // A run followed here already: what its poller read (a change it has yet to read comes on
      // `changes`), and a herd of clients back from an overflow costs the database nothing more.
      now: (run: RunId) => {
        const known = watched.get(run)?.read
        return known !== undefined ? Effect.succeed(Option.some(known.note)) : Effect.map(read(run), Option.map((r) => r.note))
      },
      changes: (run: RunId) =>
        Stream.asyncScoped<RunStatusNote>((emit) => follow(run, (note) => void emit.single(note)), { bufferSize: 16, strategy: "sliding" }),
      kind,
      description: describe(Duration.millis(pollMillis)),
      stats: () => ({ followed: watched.size, received }),
      /** Another process's hint (not the service's: kept out of it by the layers). */
      wake: (run: string) => {
        received++
        wake(run)
      }
    }
  })

/** This process's changes at once, the others' within `poll`: for the scope. */
export const makeInProcess = (options: Options = {}): Effect.Effect<RunStatusFeedService, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.map(
    make(options, "in-process", (poll) =>
      `in this process: a run's pauses and resumes made through this server are told to its SSE clients at once, another server's within ${
        Duration.format(poll)
      } (the run's row is read that often)`, () => {}),
    ({ wake: _, ...service }) => service
  )

/** This process's changes at once, the others' within `poll`. */
export const layerWith = (options: Options = {}): Layer.Layer<RunStatusFeed, never, SqlClient.SqlClient> =>
  Layer.scoped(RunStatusFeed, makeInProcess(options))

export const layer = layerWith()

const Published = Schema.parseJson(Schema.Struct({ origin: Schema.String, run: Schema.String }))
const encode = Schema.encodeSync(Published)
const decode = Schema.decodeUnknownEither(Published)

/** The channel of `prefix`'s servers (pub/sub ignores Redis's database number: the prefix keeps deployments apart). */
export const channelOf = (prefix: string) => `${prefix}runs:status`

/** Every process's changes at once, through the process's Redis connection; the subscriber connection closes with the layer. */
export const layerRedisWith = (options: Options = {}): Layer.Layer<RunStatusFeed, never, SqlClient.SqlClient | Redis> =>
  Layer.scoped(
    RunStatusFeed,
    Effect.gen(function*() {
      const redis = yield* Redis
      const channel = channelOf(redis.prefix)
      // This process's hints come back to it from Redis: recognised by their origin, and skipped.
      const origin = randomUUID()
      const feed = yield* make(options, "redis", (poll) =>
        `Redis (${channel}): a run's pauses and resumes, through whichever server, are told to its SSE clients at once (the run's row is read every ${
          Duration.format(poll)
        } besides)`, (run) => {
        redis.client.publish(channel, encode({ origin, run })).catch((error: unknown) => redis.failed("runs:status publish", 1, error))
      })
      const subscriber = yield* redis.connection("runs-status")
      const subscribe = () => {
        subscriber.subscribe(channel).catch((error: unknown) => redis.failed("runs:status subscribe", 1, error))
      }
      // Each (re)connection subscribes again: a subscription made while Redis was away never was.
      subscriber.on("ready", subscribe)
      if (subscriber.status === "ready") subscribe()
      subscriber.on("message", (from: string, message: string) => {
        if (from !== channel) return
        const decoded = decode(message)
        if (Either.isLeft(decoded) || decoded.right.origin === origin) return
        feed.wake(decoded.right.run)
      })
      const { wake: _, ...service } = feed
      return service satisfies RunStatusFeedService
    })
  )

export const layerRedis = layerRedisWith()
