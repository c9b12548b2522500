/**
 * Following a run: its events after a sequence number, then live until it ends, with no gap and
 * no duplicate — the one algorithm behind the RPC stream (`runs.events`, RunEvents.ts) and the
 * SSE endpoint (Sse.ts), which only encode what it gives.
 *
 * No gap, no duplicate: the follower subscribes to the bus BEFORE it reads anything, so every event
 * published from then on reaches its subscription; everything published before is either committed
 * (the database pages) or still in the bus's ring (`recent`), which is read after the pages and
 * after the subscription. (A ring that reaches back to where the follower starts is read first, in
 * place of the pages it covers: a client back from an overflow costs no database read.) The follower remembers the last sequence number it gave and gives only
 * the events after it, so what the three sources have in common goes out once. If the ring no
 * longer reaches back to the last page (the database lags the run by more than the ring holds),
 * the missing events are committed soon: the follower reads the database again every few
 * milliseconds until they are there, and an event delivered past them waits for them. The run's
 * end (`Ended`) may come while that catch-up still waits for the database, with no event after it
 * to pull the rest in: so the end is followed by one last read of the database (committed by then:
 * a run is ended on the bus after its recorder has flushed) and of the ring, before the stream ends.
 *
 * A run ended on the bus whose row does not say it ended (its process stopped it without recording
 * an end: the database away, its lease lost — another process takes it over) is not over: it is
 * tailed from the database as one running elsewhere, to the end its row records.
 *
 * A run that is neither live in this process nor finished (about to start, or running in another
 * process) is tailed from the database every `poll` until it finishes, while its subscription
 * waits for it to go live here. A live run is asked about every `poll` too: one the bus no longer
 * says is live without having ended it (a run of another process while Redis is unreachable: its
 * events and its end may never come through the bus) is tailed from the database the same way, and
 * followed live again once the bus says so. A slow follower cannot slow the run: its subscription
 * is bounded and, once it overflows, the stream stops with `FollowStopped` ("overflow") and where it
 * stopped, to be resumed from there (the database has the rest). Not while it reads the backlog,
 * though: then it is behind because the run is older than it, not because its client is slow, and a
 * subscription the run overran meanwhile is replaced by a fresh one when the backlog is read.
 */
import { SqlClient } from "@effect/sql"
import { Chunk, Data, Duration, Effect, Option, Scope, Stream } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { type BusEvent, type Delivery, EventBus } from "../bus/EventBus.js"
import * as Runs from "../store/Runs.js"
import { EventPages } from "./EventPages.js"
import { TurnBudget } from "./TurnBudget.js"

export interface Options {
  /** Events read from the database at a time. Default 1,000. */
  readonly pageSize?: number
  /** The follower's bus subscription: events it may fall behind before it is stopped. Default 4,096. */
  readonly buffer?: number
  /** How often a run that is not live here is read from the database. Default 1 s. */
  readonly poll?: Duration.DurationInput
  /** With this, an empty burst after this long without events (a heartbeat's cue). Default: none. */
  readonly idle?: Duration.DurationInput
  /**
   * Only events of these types (tags), picked in the database: a client that asks for the decisions
   * of a run of years of bars gets them without the run going over the wire (or through the server)
   * whole. Default: every event.
   */
  readonly tags?: ReadonlyArray<string>
  /**
   * While following a live run: at least this long between two bursts of its events. The first
   * event after a quiet spell goes out at once; a run that publishes faster goes out in bursts this
   * far apart, each all that came meanwhile: fewer, larger writes. Default: none (every burst at once).
   */
  readonly coalesce?: Duration.DurationInput
  /**
   * Each burst of events (the database's pages, the ring, the live run's) claims a share of an
   * event-loop turn here before it is given (TurnBudget.ts), so that followers cannot take the core
   * from the runs. The servers' streams share `fanOut`. Default: none.
   */
  readonly budget?: Pick<TurnBudget, "claim">
  /**
   * The followers' reads of the database's events: as many at once as its permits, each holding its
   * permit until its rows have claimed their share of the turn (`budget`). Without it, 500 clients
   * coming back after an overflow read their gaps all at once: their queries queue for the pool
   * ahead of the runs' own writes, and each holds a parsed page while it waits for its turn —
   * hundreds of megabytes for the collector. The servers' streams share `reads`. Default: none.
   */
  readonly reads?: Pick<Effect.Semaphore, "withPermits">
  /**
   * The database's whole pages, shared with the other followers that read them (EventPages.ts):
   * read once, their events the same objects for all. The servers' streams share `sharedPages`.
   * Default: none (each follower reads its own pages).
   */
  readonly pages?: EventPages
}

export const defaults = {
  pageSize: 1_000,
  buffer: 4_096,
  poll: Duration.seconds(1)
} as const

/**
 * The bursts of every stream of run events a server sends (SSE and RPC): at most 2 ms of an event-loop turn
 * between them, the rest in later turns. A paper run paced at 1,000 slices a second with 500 SSE
 * clients, each woken for every slice, was slowed to 25 slices a second — its clients keeping up
 * with it because it had slowed down. Bounded, the followers get what the runs leave, and one that
 * cannot keep up falls behind its buffer and is stopped (`overflow`), as a slow client is. And at
 * most a quarter of the time: a turn with bursts is followed by a rest three times as long. 2 ms a
 * turn alone let the 500 clients, once they no longer starved at the start (their first pages from
 * the ring, the database's reads bounded), take two thirds of the core: the run went at 330 slices
 * a second.
 */
export const fanOut = new TurnBudget(2, 1 / 4)

/**
 * The database reads of every stream of run events a server sends (`reads`): few, so that the runs'
 * writes find the pool free. The reads of a stream's connection take one too, one at a time and
 * let go before the stream starts: the run events' (Sse.ts, RpcHandlers.ts) and the chat's
 * (ChatSse.ts, ChatHandlers.ts); and so do a follower's reads of the run's row (a run not live
 * here: its status, when it starts and when it tails).
 */
export const catchUpReads = Effect.unsafeMakeSemaphore(2)

/** The pages of every stream of run events a server sends (`pages`): about 16 MB with their frames. */
export const sharedPages = new EventPages(16)

/** How far apart a server's streams send a live run's bursts (`coalesce`): a dashboard redraws no faster. */
export const liveCoalesce = Duration.millis(50)

/** Why a follower stopped before the run's end, and after which event: resume after it. */
export class FollowStopped extends Data.TaggedError("FollowStopped")<{
  /** `overflow`: fell more than its buffer behind; `gap`: events missing from bus and database; `unavailable`: the database failed. */
  readonly reason: "overflow" | "gap" | "unavailable"
  readonly lastEventId: number
  readonly detail: string
}> {}

export interface Dependencies {
  readonly bus: EventBus["Type"]
  readonly sql: SqlClient.SqlClient
}

/** Statuses after which a run writes nothing more. */
export const FINISHED: ReadonlySet<Runs.RunStatus> = new Set(["completed", "failed", "stopped"])

/** While the database lags the run by more than the ring holds: how often it is read again. */
const CATCH_UP_DELAY = Duration.millis(20)

/** How many times (`CATCH_UP_DELAY` apart) a missing event is looked for before the follower stops with `gap`. */
const GAP_ATTEMPTS = 500

const fromRow = (row: Runs.StoredEvent): BusEvent => ({ seq: row.seq, tag: row.tag, json: row.body })

/**
 * The events of `run` after `since`, in bursts (a database page, the ring, what the subscription
 * had ready; with `idle`, an empty burst after that long without any), ending when the run ends.
 * The run's ownership is the caller's to check.
 */
export const follow = (deps: Dependencies, run: RunId, since: number, options: Options = {}): Stream.Stream<ReadonlyArray<BusEvent>, FollowStopped> => {
  const pageSize = Math.max(1, Math.trunc(options.pageSize ?? defaults.pageSize))
  const buffer = Math.max(1, Math.trunc(options.buffer ?? defaults.buffer))
  const pollMillis = Duration.toMillis(options.poll ?? defaults.poll)
  const idleMillis = options.idle === undefined ? Infinity : Duration.toMillis(options.idle)
  const coalesceMillis = options.coalesce === undefined ? 0 : Duration.toMillis(options.coalesce)
  const { bus } = deps
  const tags = options.tags === undefined || options.tags.length === 0 ? undefined : options.tags
  const wanted = tags === undefined ? undefined : new Set(tags)
  const withSql = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provideService(effect, SqlClient.SqlClient, deps.sql)

  return Stream.unwrapScoped(Effect.gen(function*() {
    // First of all: from here on, every event published reaches this subscription.
    let subscription = yield* bus.subscribe(run, { buffer })
    const scope = yield* Effect.scope
    /** What the subscription had ready when the backlog was read: delivered first when following. */
    let pending: ReadonlyArray<Delivery> = []
    // live: it ends with `Ended` (as long as the bus says it is live); finished: everything is
    // committed, the backlog is all of it; tailing: not live here (yet), or no longer vouched for by
    // the bus — read the database every `poll` until it finishes or is live again.
    let mode: "live" | "finished" | "tailing" = "live"
    /** The run's row, under a permit of `reads` as the pages are: a run not live here is one more read per follower. */
    const summary = options.reads === undefined ? withSql(Runs.getSummary(run)) : options.reads.withPermits(1)(withSql(Runs.getSummary(run)))
    if (!bus.isLive(run)) {
      // Read after subscribing: a run that finishes from now on is `Ended` on the subscription.
      const status = (yield* summary).status
      mode = FINISHED.has(status) ? "finished" : "tailing"
    }

    let lastSent = since
    let lastBurst = performance.now()
    /** When the subscription's last events were given (`coalesce`). */
    let lastLive = -Infinity
    let phase: "backlog" | "ring" | "follow" | "tail" | "final" | "done" = "backlog"
    /**
     * The ring did not reach back to the last page: some events are neither committed nor in the
     * ring yet. The subscription has every event from its start on, so the follower goes on with it
     * and reads the database again every `CATCH_UP_DELAY` until the gap is closed.
     */
    let catchingUp = false
    /** In a tail: whether the run was seen finished before the pages were read. */
    let tailFinished = false
    /** The ring's events the backlog starts with (`backlog`), read once, and how far it has sent them. */
    let ringBacklog: ReadonlyArray<BusEvent> | undefined
    let ringBacklogAt = 0

    const stopped = (reason: FollowStopped["reason"], detail: string) => new FollowStopped({ reason, lastEventId: lastSent, detail })

    // `lastSent` is the last event accounted for: sent, or passed over as of a type not asked for.
    const send = (out: Array<BusEvent>, event: BusEvent) => {
      if (event.seq <= lastSent) return
      if (wanted === undefined || wanted.has(event.tag)) out.push(event)
      lastSent = event.seq
    }
    const sendRows = (out: Array<BusEvent>, rows: ReadonlyArray<Runs.StoredEvent>) => {
      for (const row of rows) if (row.seq > lastSent) send(out, fromRow(row))
    }
    const sendBus = (out: Array<BusEvent>, events: ReadonlyArray<BusEvent>, before = Infinity) => {
      for (const e of events) if (e.seq > lastSent && e.seq < before) send(out, e)
    }
    /** This step's events have claimed their share of the turn already, with the rows read (`readRows`). */
    let claimed = false
    /**
     * A read of the database's events, under a permit of `reads`: its rows claim their share of the
     * turn (`budget`) before the permit is let go, and are sent right after, in that turn — the
     * followers hold at most as many pages as there are permits, however many wait for a turn.
     */
    const readRows = <E>(query: Effect.Effect<ReadonlyArray<Runs.StoredEvent>, E, SqlClient.SqlClient>) => {
      const read = Effect.tap(withSql(query), (rows) => {
        if (rows.length === 0 || options.budget === undefined) return Effect.void
        claimed = true
        return options.budget.claim
      })
      return options.reads === undefined ? read : options.reads.withPermits(1)(read)
    }
    const readOne = <A, E>(query: Effect.Effect<A, E, SqlClient.SqlClient>) =>
      options.reads === undefined ? withSql(query) : options.reads.withPermits(1)(withSql(query))
    /**
     * The page of the database (aligned on `pageSize`, shared) that holds the next event, sent;
     * whether the page went to its end (more may follow).
     */
    const sharedPage = (out: Array<BusEvent>, pages: EventPages) => {
      const index = Math.floor(lastSent / pageSize)
      const end = (index + 1) * pageSize
      return Effect.map(pages.read(run, index, pageSize, readRows(Runs.events(run, index * pageSize, pageSize, undefined, end))), (events) => {
        sendBus(out, events)
        return events.length > 0 && events[events.length - 1]!.seq >= end
      })
    }
    /**
     * The next page of the database, sent; whether it was a whole one (more may follow). With `tags`,
     * only those rows are read, up to the last event committed when it was read: every event up to
     * there is accounted for (`lastSent`), as an unfiltered page's last row does.
     */
    const page = (out: Array<BusEvent>) =>
      Effect.suspend(() =>
        tags === undefined && options.pages !== undefined
          ? sharedPage(out, options.pages)
          : tags === undefined
          ? Effect.map(readRows(Runs.events(run, lastSent, pageSize)), (rows) => {
            sendRows(out, rows)
            return rows.length === pageSize
          })
          : Effect.gen(function*() {
            const last = yield* readOne(Runs.lastEvent(run))
            if (Option.isNone(last) || Number(last.value.seq) <= lastSent) return false
            const through = Number(last.value.seq)
            const rows = yield* readRows(Runs.events(run, lastSent, pageSize, tags, through))
            sendRows(out, rows)
            const whole = rows.length === pageSize
            if (!whole) lastSent = Math.max(lastSent, through)
            return whole
          })
      )

    /**
     * The events between the last sent and `seq`, the next delivered: from the database (committed
     * by now, or soon) or the ring. False if they stay missing (the run's recorder is stuck).
     */
    const fillGap = (out: Array<BusEvent>, seq: number) =>
      Effect.gen(function*() {
        for (let attempt = 0;; attempt++) {
          while (lastSent + 1 < seq) {
            const rows = yield* readRows(Runs.events(run, lastSent, Math.min(pageSize, seq - lastSent - 1)))
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
    const catchUp = (out: Array<BusEvent>) =>
      Effect.gen(function*() {
        while (yield* page(out)) {
          // A whole page: the next.
        }
        const recent = bus.recent(run, lastSent)
        if (recent !== undefined) {
          sendBus(out, recent)
          catchingUp = false
        }
      })

    /** What the subscription delivered; whether the run ended with it. */
    const deliver = (out: Array<BusEvent>, deliveries: ReadonlyArray<Delivery>) =>
      Effect.gen(function*() {
        for (const delivery of deliveries) {
          switch (delivery._tag) {
            case "Event": {
              const e = delivery.event
              if (e.seq <= lastSent) continue
              if (e.seq > lastSent + 1 && !(yield* fillGap(out, e.seq))) {
                yield* Effect.logWarning("Follow: events missing from the bus and the database; the follower is stopped").pipe(
                  Effect.annotateLogs({ run, after: lastSent, next: e.seq })
                )
                return yield* stopped("gap", `events after ${lastSent} are not available yet`)
              }
              send(out, e)
              // From here on the subscription is contiguous with what was sent.
              catchingUp = false
              break
            }
            case "Ended":
              return true
            case "Overflow":
              return yield* stopped("overflow", `fell more than ${buffer} events behind the run`)
          }
        }
        return false
      })

    /** How long the subscription may be waited on now. */
    const waitMillis = () => {
      // Live too, every `poll`: whether the bus still says the run is live (see `step`).
      const wake = catchingUp && mode !== "tailing" ? Duration.toMillis(CATCH_UP_DELAY) : pollMillis
      const idle = idleMillis === Infinity ? Infinity : Math.max(0, lastBurst + idleMillis - performance.now())
      return Math.min(wake, idle)
    }

    const step = Effect.gen(function*() {
      const out: Array<BusEvent> = []
      switch (phase) {
        case "backlog": {
          // The ring first, while it reaches back to where the follower is: a client back from an
          // overflow is seldom further behind. Its events are the very objects the live followers
          // were given — the frame a server encoded for them serves this one too (Sse.ts) — and
          // no database is read: 500 clients back at once would each parse the same pages. Then
          // the database, from where the ring ended (it holds what the ring does, and more if
          // the run went on in another process). The ring as it was at the start, a page a step:
          // read again and again, it would let a follower too slow for the run chase it for ever
          // as one reading its backlog, never told it is behind.
          if (ringBacklog === undefined) {
            const recent = bus.recent(run, lastSent)
            ringBacklog = recent === undefined ? [] : recent
          }
          if (ringBacklogAt < ringBacklog.length) {
            sendBus(out, ringBacklog.slice(ringBacklogAt, ringBacklogAt + pageSize))
            ringBacklogAt += pageSize
            if (ringBacklogAt >= ringBacklog.length) ringBacklog = []
            return out
          }
          if (!(yield* page(out))) phase = mode === "finished" ? "done" : "ring"
          return out
        }
        case "ring": {
          // While it read the backlog, the follower did not read its subscription: a run that
          // published more than its buffer meanwhile (a fast one, with a long history) dropped it,
          // though the client is not behind at all. A fresh subscription then, from now on: what
          // the old one lost was published after the recorder committed it, so the database and
          // the ring have it, read next and caught up with as for any late subscriber.
          const ready = yield* subscription.takeAllWithin(0)
          if (ready.length > 0 && ready[ready.length - 1]!._tag === "Overflow") {
            subscription = yield* Scope.extend(bus.subscribe(run, { buffer }), scope)
            pending = ready.slice(0, -1)
          } else pending = ready
          const recent = bus.recent(run, lastSent)
          if (recent === undefined) catchingUp = true
          else sendBus(out, recent)
          phase = "follow"
          return out
        }
        case "follow": {
          if (pending.length > 0) {
            const ready = pending
            pending = []
            if (yield* deliver(out, ready)) phase = "final"
            return out
          }
          if (coalesceMillis > 0) {
            // Too soon after the last burst: what comes meanwhile goes out together after the pause.
            const rest = lastLive + coalesceMillis - performance.now()
            if (rest > 0) yield* Effect.sleep(rest)
          }
          const wait = waitMillis()
          const ready = wait === Infinity ? yield* subscription.takeAll : yield* subscription.takeAllWithin(wait)
          if (ready.length > 0) {
            lastLive = performance.now()
            if (yield* deliver(out, ready)) phase = "final"
            return out
          }
          if (catchingUp) yield* catchUp(out)
          else if (bus.isLive(run)) mode = "live"
          else {
            // Not live here (yet), or no longer vouched for by the bus: the database says.
            mode = "tailing"
            tailFinished = FINISHED.has((yield* summary).status)
            phase = "tail"
          }
          return out
        }
        case "tail": {
          // Status first, then the pages: a run seen finished has committed all it will write.
          if (!(yield* page(out))) phase = tailFinished ? "done" : "follow"
          return out
        }
        case "final": {
          // Ended: what a catch-up had yet to read comes from the database (a page a step) and the ring.
          if (!(yield* page(out))) {
            const recent = bus.recent(run, lastSent)
            if (recent !== undefined) sendBus(out, recent)
            // Ended on the bus, yet its row says it goes on (`running` is no end): its process
            // stopped it without recording an end (the database away, its lease lost), and another
            // process takes it over, or the next start resumes it. Followed on from the database.
            if (FINISHED.has((yield* summary).status)) phase = "done"
            else {
              mode = "tailing"
              phase = "follow"
            }
          }
          return out
        }
        case "done":
          return undefined
      }
    }) as Effect.Effect<ReadonlyArray<BusEvent> | undefined, FollowStopped | { readonly _tag: string; readonly message: string }>

    // A stop claims its share of the turn too: its last frame, the response's end and the socket's
    // close are work, and they come in herds — the bus drops every subscriber a run outran in the
    // turn it published, 500 clients of a run told `overflow` and disconnected at once.
    const claimedStep = options.budget === undefined
      ? step
      : Effect.catchIf(step, (error): error is FollowStopped => error instanceof FollowStopped, (stop) => Effect.zipRight(options.budget!.claim, Effect.fail(stop)))
    const next: Effect.Effect<Chunk.Chunk<ReadonlyArray<BusEvent>>, Option.Option<FollowStopped>> = Effect.flatMap(
      Effect.mapError(Effect.zipRight(Effect.sync(() => (claimed = false)), claimedStep), (error): Option.Option<FollowStopped> =>
        Option.some(
          error instanceof FollowStopped
            ? error
            : stopped("unavailable", error._tag === "RunNotFound" ? `no run ${run}` : error.message)
        )),
      (burst) => {
        if (burst === undefined) return Effect.fail(Option.none())
        // An empty burst is given only as the idle cue; any other step that found nothing gives nothing.
        if (burst.length === 0 && !(idleMillis !== Infinity && performance.now() - lastBurst >= idleMillis)) return Effect.succeed(Chunk.empty())
        lastBurst = performance.now()
        // Every burst with events claims its share of the turn: a reconnecting client's pages from
        // the database as much as the live ones (a dashboard that overflowed comes back for them).
        return burst.length > 0 && options.budget !== undefined && !claimed
          ? Effect.as(options.budget.claim, Chunk.of(burst))
          : Effect.succeed(Chunk.of(burst))
      }
    )
    return Stream.repeatEffectChunkOption(next)
  }).pipe(
    Effect.mapError((error) => new FollowStopped({ reason: "unavailable", lastEventId: since, detail: error._tag === "RunNotFound" ? `no run ${run}` : error.message }))
  ))
}

/** The follower as a service over the context's bus and database. */
export const make = Effect.map(
  Effect.all({ bus: EventBus, sql: SqlClient.SqlClient }),
  (deps) => (run: RunId, since: number, options?: Options) => follow(deps, run, since, options)
)
