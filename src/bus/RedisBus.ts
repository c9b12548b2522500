/**
 * The event bus across server processes, over Redis: a subscriber on any process sees the events
 * of a run executing on another. The contract is EventBus.ts's; the subscribers of this process are
 * served exactly as by the in-process bus (an `InProcessBus` does it), and Redis carries the events
 * between processes.
 *
 * Why a Redis Stream per run rather than pub/sub: a stream keeps the run's recent events, so a
 * follower on another process has a `recent` ring there too (read once when it starts following),
 * and a reader resumes by id after a reconnect instead of losing what was published meanwhile.
 * Each entry's id is the sequence number of its last event (`<seq>-0`; the end mark `<seq>-1`), so
 * the stream is trimmed by sequence (`XADD … MINID ~ <seq − ring>`: about `ring` events, whatever
 * the batching) and resuming "after seq n" is resuming after id `n-0`. One entry holds a burst of
 * contiguous events (`s <first seq> <tag> <json> <tag> <json> …`): a backtest writes one command per
 * burst, not per event.
 *
 * Publishing stays synchronous and never waits for Redis: the event goes to this process's
 * subscribers at once and into an outbox that is written as one pipeline after the publisher's turn.
 * Redis away or too slow (more than `maxPending` events unacknowledged): the events are dropped
 * from Redis only — counted (`redis_publish_failures`), logged once per outage — and the run goes on.
 * Once Redis answers again, a run's lost tail (the events and the end mark no later entry followed)
 * is written again from this process's ring (its last event alone if the ring no longer reaches
 * back: the followers see the hole then, and close it from the database): a run that went quiet
 * meanwhile (an approval awaited, a paced bar) would otherwise leave its followers elsewhere
 * without events committed long before, until its next one. Nothing persisted is lost: the
 * database is the source of truth, and a follower on another process closes any gap from it
 * (Follow.ts reads the database for the events between the last it gave and the next the bus
 * delivers, and whenever `recent` cannot vouch for a range, which it cannot across a hole in the
 * stream: the ring of a followed run is contiguous or reset).
 *
 * Liveness across processes: the publishing process keeps `<prefix>run:<id>:live` (a key with a
 * TTL, refreshed every `liveTtl / 4`); a follower sees the run live while Redis answers and the key
 * or an event was seen within `liveTtl`. With Redis down or not answering, `isLive` says no: the
 * run's end could not come through Redis, and a follower reads the database until it is back (the
 * run's events are committed there, its row says when it ended).
 *
 * The end is an entry of the stream (`e <last seq>`): a follower's subscribers get `Ended` after
 * what the stream gave them, even if events just before it were lost to an outage — a follower reads
 * the database once more after the end (Follow.ts), and a run's events are committed before they are
 * published. A run whose process went away without ending it (no key and no event for `liveTtl`:
 * crashed, or suspended by a shutdown to go on at the next start) is only no longer live: its
 * subscribers stay, followers read the database until it is live again (resumed, here or elsewhere)
 * or its row says it ended, and nobody is told `Overflow`, which says a subscriber fell behind.
 */
import { randomBytes } from "node:crypto"
import { Context, Duration, Effect, Layer, type Scope } from "effect"
import { type BusEvent, EventBus, type EventBusService, type Subscription } from "./EventBus.js"
import * as InProcessBus from "./InProcessBus.js"
import { Redis, type RedisService } from "./Redis.js"

export interface Options extends InProcessBus.Options {
  /** Events at most in one stream entry. Default 256. */
  readonly batch?: number
  /** How long a run's live key lasts without a refresh (it is refreshed every quarter of it). Default 10 s. */
  readonly liveTtl?: Duration.DurationInput
  /** A live run's stream is kept this long after its last write. Default 1 hour. */
  readonly streamTtl?: Duration.DurationInput
  /** An ended run's stream is kept this long (late followers read its tail). Default 10 minutes. */
  readonly endedTtl?: Duration.DurationInput
  /** Events sent to Redis and not yet acknowledged, past which new ones are dropped from Redis. Default 100,000. */
  readonly maxPending?: number
  /** Stream entries read when a run is first followed here (its recent events). Default 1,000. */
  readonly backfill?: number
  /** How long `subscribe` waits for that first read before going on without it. Default 1 s. */
  readonly backfillWait?: Duration.DurationInput
}

export const defaults = {
  batch: 256,
  liveTtl: Duration.seconds(10),
  streamTtl: Duration.hours(1),
  endedTtl: Duration.minutes(10),
  maxPending: 100_000,
  backfill: 1_000,
  backfillWait: Duration.seconds(1)
} as const

export interface RedisBusService extends EventBusService {
  readonly redis: RedisService
  /** Runs of other processes (or not live here) followed through Redis now. */
  readonly followed: () => number
  /** Events this process has read from Redis. */
  readonly received: () => number
}

/** The Redis bus, for inspection (`/health`, tests); the application uses `EventBus`. */
export class RedisBus extends Context.Tag("swarm/bus/RedisBus")<RedisBus, RedisBusService>() {}

// ---------------------------------------------------------------------------------------------
// Stream ids and entries

/** `a-b` compared with `c-d`. */
const compareIds = (x: string, y: string): number => {
  const [xa = 0, xb = 0] = x.split("-").map(Number)
  const [ya = 0, yb = 0] = y.split("-").map(Number)
  return xa !== ya ? xa - ya : xb - yb
}

type Entry =
  | { readonly _tag: "Events"; readonly events: ReadonlyArray<BusEvent> }
  | { readonly _tag: "End"; readonly last: number }

/** A stream entry's fields, or undefined when they are not ours. */
const decodeEntry = (fields: ReadonlyArray<string>): Entry | undefined => {
  if (fields.length >= 2 && fields[0] === "e") {
    const last = Number(fields[1])
    return Number.isSafeInteger(last) ? { _tag: "End", last } : undefined
  }
  if (fields.length < 4 || fields[0] !== "s" || fields.length % 2 !== 0) return undefined
  const first = Number(fields[1])
  if (!Number.isSafeInteger(first)) return undefined
  const events: Array<BusEvent> = []
  for (let i = 2; i < fields.length; i += 2) events.push({ seq: first + (i - 2) / 2, tag: fields[i]!, json: fields[i + 1]! })
  return { _tag: "Events", events }
}

type RawEntries = ReadonlyArray<readonly [string, ReadonlyArray<string>]>

const isEntries = (value: unknown): value is RawEntries =>
  Array.isArray(value) && value.every((e) => Array.isArray(e) && typeof e[0] === "string" && Array.isArray(e[1]))

// ---------------------------------------------------------------------------------------------
// A followed run's recent events

/** The most recent events of a run, contiguous: a hole (events that never reached Redis) resets it. */
class SeqRing {
  private items: Array<BusEvent> = []
  private start = 0

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.items.length - this.start
  }

  get last(): number | undefined {
    return this.size === 0 ? undefined : this.items[this.items.length - 1]!.seq
  }

  push(event: BusEvent): void {
    const last = this.last
    if (last !== undefined && event.seq !== last + 1) this.clear()
    this.items.push(event)
    if (this.size > this.capacity) this.start++
    // Amortised: compact once the dead prefix is as long as the live part.
    if (this.start > 1024 && this.start * 2 >= this.items.length) {
      this.items = this.items.slice(this.start)
      this.start = 0
    }
  }

  clear(): void {
    this.items = []
    this.start = 0
  }

  /** The events after `seq`; `undefined` when the ring does not reach back to `seq + 1`. */
  after(seq: number): ReadonlyArray<BusEvent> | undefined {
    if (this.size === 0) return []
    const first = this.items[this.start]!.seq
    const last = this.items[this.items.length - 1]!.seq
    if (seq >= last) return []
    if (seq + 1 < first) return undefined
    return this.items.slice(this.start + (seq + 1 - first))
  }
}

/**
 * A run followed through Redis by this process's subscribers: what its stream gave (a ring for
 * `recent`, a private in-process bus for the subscribers), where the reader is in the stream, and
 * whether the run is live. Ended by its end mark, it is let go: its subscribers keep their ending,
 * and the next subscriber follows the run afresh.
 */
class Session {
  /** The stream id read up to; undefined until the first read (the backfill) succeeded. */
  cursor: string | undefined = undefined
  /** The last event given to the subscribers (or found by the backfill), for the end's check. */
  lastSeq: number | undefined = undefined
  live = false
  seenLiveAt = 0
  ended = false
  subscribers = 0
  backfilling = false
  readonly ring: SeqRing
  readonly backfilled: Promise<void>
  markBackfilled!: () => void

  constructor(
    readonly run: string,
    readonly key: string,
    readonly liveKey: string,
    readonly mirror: InProcessBus.InProcessBusService,
    ring: number
  ) {
    this.ring = new SeqRing(ring)
    this.backfilled = new Promise((resolve) => (this.markBackfilled = resolve))
  }

  /** An event of the run, from the stream or from this process publishing it: to the subscribers once. */
  feed(event: BusEvent, now: number): void {
    if (this.ended) return
    this.live = true
    this.seenLiveAt = now
    if (this.lastSeq !== undefined && event.seq <= this.lastSeq) return
    this.ring.push(event)
    this.lastSeq = event.seq
    this.mirror.publish(this.run, event)
  }

  /**
   * The run ended: `Ended` after the events given, whether or not they reached its last one (the
   * rest is committed: a follower's last read of the database after the end has it).
   */
  end(): void {
    if (this.ended) return
    this.ended = true
    this.live = false
    this.mirror.end(this.run)
  }

  recent(afterSeq: number): ReadonlyArray<BusEvent> | undefined {
    return this.ring.after(afterSeq)
  }
}

// ---------------------------------------------------------------------------------------------
// The bus

type Outgoing = BusEvent | { readonly end: number }

export const make = (options: Options = {}): Effect.Effect<RedisBusService, never, Redis | Scope.Scope> =>
  Effect.gen(function*() {
    const redis = yield* Redis
    const { client } = redis
    const clock = yield* Effect.clock
    const local = yield* InProcessBus.make(options)
    const reader = yield* redis.connection("bus-reader", { commandTimeout: undefined, blockingTimeout: 1_000 })

    const pid = randomBytes(6).toString("hex")
    const ringSize = Math.max(1, Math.trunc(options.ring ?? InProcessBus.defaults.ring))
    const batch = Math.max(1, Math.trunc(options.batch ?? defaults.batch))
    const liveTtl = Math.max(100, Duration.toMillis(options.liveTtl ?? defaults.liveTtl))
    const streamTtl = Math.max(1_000, Duration.toMillis(options.streamTtl ?? defaults.streamTtl))
    const endedTtl = Math.max(1_000, Duration.toMillis(options.endedTtl ?? defaults.endedTtl))
    const maxPending = Math.max(1, Math.trunc(options.maxPending ?? defaults.maxPending))
    const backfillCount = Math.max(1, Math.trunc(options.backfill ?? defaults.backfill))
    const backfillWait = Duration.toMillis(options.backfillWait ?? defaults.backfillWait)
    const streamKey = (run: string) => `${redis.prefix}run:${run}:events`
    const liveKeyOf = (run: string) => `${redis.prefix}run:${run}:live`
    const now = () => clock.unsafeCurrentTimeMillis()
    let closed = false
    let received = 0

    // -------------------------------------------------------------------------------------------
    // Publishing

    /** What waits for the next flush, per run in order. */
    let outbox = new Map<string, Array<Outgoing>>()
    let queued = 0
    let flushScheduled = false
    /** Events sent and not yet acknowledged. */
    let pending = 0
    /** The last sequence number published here, per run published and not ended. */
    const published = new Map<string, number>()
    /** The last sequence number sent to the run's stream (absent: its stream is reset before the next entry). */
    const flushed = new Map<string, number>()
    /** Runs whose live key is set with the next flush. */
    const announce = new Set<string>()
    /** The last sequence number a flush has taken (sent or dropped), per run not ended. */
    const attempted = new Map<string, number>()
    /**
     * Runs whose stream lacks its latest events (from `from` on: written to no avail, or dropped
     * while Redis was away) or its end mark (`end`), nothing newer written since: sent again from
     * this process's ring once Redis answers (`resend`). A follower elsewhere closes a hole from the
     * database as soon as a later entry shows it — but a run that goes quiet (an approval awaited, a
     * paced bar, a webhook that does not come) writes no later entry, and without this its followers
     * would wait that long for events committed long before.
     */
    const lost = new Map<string, { from: number | undefined; end: number | undefined }>()
    const markLost = (run: string, from: number | undefined, end: number | undefined) => {
      const before = lost.get(run)
      const first = before?.from === undefined ? from : from === undefined ? before.from : Math.min(before.from, from)
      lost.set(run, { from: first, end: end ?? before?.end })
    }

    const schedule = () => {
      if (flushScheduled || closed) return
      flushScheduled = true
      setImmediate(flush)
    }

    type Sent =
      | { readonly kind: "events"; readonly run: string; readonly count: number; readonly first: number }
      | { readonly kind: "end"; readonly run: string; readonly last: number }
      | { readonly kind: "other"; readonly run: string }

    const flush = (): Promise<void> => {
      flushScheduled = false
      if (outbox.size === 0) return Promise.resolve()
      const ops = outbox
      const count = queued
      outbox = new Map()
      queued = 0
      if (!redis.ready() || pending + count > maxPending) {
        // Dropped from Redis only: this process's subscribers had them, the database has them (and
        // they are sent again once Redis answers, unless newer ones get there first).
        for (const [run, items] of ops) {
          for (const item of items) {
            if ("end" in item) {
              flushed.delete(run)
              attempted.delete(run)
              if (item.end > 0) markLost(run, undefined, item.end)
            } else {
              markLost(run, item.seq, undefined)
              attempted.set(run, item.seq)
            }
          }
        }
        redis.failed("publish", count, new Error(redis.ready() ? `more than ${maxPending} events waiting for Redis` : "not connected"))
        return Promise.resolve()
      }
      const pipeline = client.pipeline()
      const sent: Array<Sent> = []
      for (const [run, items] of ops) {
        const key = streamKey(run)
        const liveKey = liveKeyOf(run)
        if (announce.delete(run)) {
          pipeline.set(liveKey, pid, "PX", liveTtl)
          sent.push({ kind: "other", run })
        }
        let entry: Array<BusEvent> = []
        const write = () => {
          if (entry.length === 0) return
          const last = entry[entry.length - 1]!.seq
          const args: Array<string | number> = ["MINID", "~", Math.max(0, last - ringSize), `${last}-0`, "s", entry[0]!.seq]
          for (const e of entry) args.push(e.tag, e.json)
          pipeline.xadd(key, ...args)
          sent.push({ kind: "events", run, count: entry.length, first: entry[0]!.seq })
          entry = []
        }
        for (const item of items) {
          if ("end" in item) {
            write()
            if (item.end > 0) {
              pipeline.xadd(key, `${item.end}-1`, "e", item.end)
              sent.push({ kind: "end", run, last: item.end })
            }
            pipeline.del(liveKey)
            pipeline.pexpire(key, endedTtl)
            sent.push({ kind: "other", run }, { kind: "other", run })
            flushed.delete(run)
            attempted.delete(run)
            continue
          }
          const previous = flushed.get(run)
          if (previous === undefined || item.seq <= previous) {
            // First entry from this process, or the run starting over (resumed and re-executed): the
            // stream's ids must grow, so its old life goes (the database has it).
            write()
            pipeline.del(key)
            sent.push({ kind: "other", run })
          } else if (item.seq !== previous + 1 || entry.length >= batch) {
            write()
          }
          entry.push(item)
          flushed.set(run, item.seq)
          attempted.set(run, item.seq)
        }
        write()
      }
      pending += count
      return pipeline.exec().then(
        (results) => {
          pending -= count
          let failed = 0
          let firstError: unknown = undefined
          ;(results ?? []).forEach(([error], i) => {
            const what = sent[i]
            if (what === undefined || what.kind === "other") return
            if (error === null) {
              // In the stream, newer than anything lost before it: a follower sees the hole there, and
              // closes it from the database (nor could the older ids be written after it).
              lost.delete(what.run)
              return
            }
            failed += what.kind === "events" ? what.count : 1
            firstError ??= error
            // The stream has a newer life than ours (left by a process that ran the run before):
            // reset it with the next entry.
            if (/equal or smaller/i.test(error.message)) flushed.delete(what.run)
            else if (what.kind === "events") markLost(what.run, what.first, undefined)
            else markLost(what.run, undefined, what.last)
          })
          if (failed > 0) redis.failed("publish", failed, firstError)
        },
        (error) => {
          pending -= count
          redis.failed("publish", count, error)
          for (const what of sent) {
            if (what.kind === "events") markLost(what.run, what.first, undefined)
            else if (what.kind === "end") markLost(what.run, undefined, what.last)
          }
        }
      )
    }

    /**
     * The runs' lost tails (`lost`) written again, from this process's ring, once Redis answers and
     * nothing is in flight: only events a flush has taken already (newer ones follow with higher
     * ids), then the end mark if it was lost (its live key removed, as the end does). An id the
     * stream has passed meanwhile is refused, and that is fine: a newer entry shows the hole.
     */
    let resending = false
    const resend = () => {
      if (lost.size === 0 || resending || pending > 0 || closed || !redis.ready()) return
      const pipeline = client.pipeline()
      const runs: Array<readonly [string, { from: number | undefined; end: number | undefined }, number]> = []
      for (const [run, hole] of lost) {
        const key = streamKey(run)
        const before = pipeline.length
        const upto = hole.end ?? attempted.get(run)
        // The ring no longer reaching back to the hole: its last event at least, which shows the
        // followers the hole (they close it from the database) instead of leaving them waiting.
        const events = hole.from === undefined || upto === undefined
          ? []
          : (local.recent(run, hole.from - 1) ?? local.recent(run, upto - 1) ?? []).filter((e) => e.seq <= upto)
        for (let i = 0; i < events.length; i += batch) {
          const entry = events.slice(i, i + batch)
          const last = entry[entry.length - 1]!.seq
          const args: Array<string | number> = ["MINID", "~", Math.max(0, last - ringSize), `${last}-0`, "s", entry[0]!.seq]
          for (const e of entry) args.push(e.tag, e.json)
          pipeline.xadd(key, ...args)
        }
        // (Not if the run is live here again, resumed: its new life's live key stays.)
        if (hole.end !== undefined && !published.has(run)) {
          pipeline.xadd(key, `${hole.end}-1`, "e", hole.end)
          pipeline.del(liveKeyOf(run))
          pipeline.pexpire(key, endedTtl)
        }
        if (pipeline.length === before) lost.delete(run)
        else runs.push([run, hole, pipeline.length])
      }
      if (runs.length === 0) return
      resending = true
      pipeline.exec().then(
        (results) => {
          resending = false
          let at = 0
          for (const [run, hole, upto] of runs) {
            const failures = (results ?? []).slice(at, upto).filter(([error]) => error !== null && !/equal or smaller/i.test(error.message))
            at = upto
            // Sent (or passed by a newer entry): done with, unless it was lost again meanwhile.
            if (failures.length === 0 && lost.get(run) === hole) lost.delete(run)
          }
        },
        () => {
          resending = false
        }
      )
    }

    const enqueue = (run: string, item: Outgoing) => {
      let items = outbox.get(run)
      if (items === undefined) outbox.set(run, (items = []))
      items.push(item)
      queued++
      schedule()
    }

    const publish = (run: string, event: BusEvent): void => {
      local.publish(run, event)
      sessions.get(run)?.feed(event, now())
      if (!published.has(run)) announce.add(run)
      published.set(run, event.seq)
      enqueue(run, event)
    }

    const end = (run: string): void => {
      local.end(run)
      const last = published.get(run)
      if (last === undefined) return
      published.delete(run)
      announce.delete(run)
      const session = sessions.get(run)
      if (session !== undefined) {
        session.end()
        detach(session)
      }
      enqueue(run, { end: last })
    }

    // -------------------------------------------------------------------------------------------
    // Following runs of other processes

    const sessions = new Map<string, Session>()
    const byKey = new Map<string, Session>()
    let wakeReader: (() => void) | undefined = undefined
    let readerBlocked = false
    let readerId: number | undefined = undefined

    /** The reader goes round again now: a run to follow was added (or the bus closes). */
    const nudge = () => {
      const wake = wakeReader
      wakeReader = undefined
      wake?.()
      if (readerBlocked && readerId !== undefined && redis.ready()) client.client("UNBLOCK", readerId).catch(() => {})
    }

    const detach = (session: Session) => {
      if (sessions.get(session.run) === session) {
        sessions.delete(session.run)
        byKey.delete(session.key)
      }
    }

    /** The first read of a followed run: its recent events, where to read on from, whether it is live. */
    const backfill = async (session: Session): Promise<void> => {
      if (session.backfilling || session.cursor !== undefined || !redis.ready()) return
      session.backfilling = true
      try {
        // Whether it is live, and its newest entry; its recent events only when it is live (a
        // finished run is read from the database: its stream's tail is not worth the transfer).
        const results = await client.pipeline().get(session.liveKey).xrevrange(session.key, "+", "-", "COUNT", 1).exec()
        const [liveResult, entriesResult] = results ?? []
        if (entriesResult === undefined || liveResult === undefined || entriesResult[0] !== null || liveResult[0] !== null) {
          throw entriesResult?.[0] ?? liveResult?.[0] ?? new Error("no reply")
        }
        let newest = isEntries(entriesResult[1]) ? entriesResult[1] : []
        const top = newest[0] === undefined ? undefined : decodeEntry(newest[0][1])
        if (liveResult[1] !== null && top?._tag === "Events") {
          const tail = await client.xrevrange(session.key, "+", "-", "COUNT", backfillCount)
          if (isEntries(tail)) newest = tail
        }
        if (session.ended || sessions.get(session.run) !== session) return
        // Newest first: the contiguous tail of events (an end mark first: the run ended there).
        const tail: Array<BusEvent> = []
        let endedAt: number | undefined = undefined
        scan: for (const [, fields] of newest) {
          const entry = decodeEntry(fields)
          if (entry === undefined) break
          if (entry._tag === "End") {
            if (tail.length > 0 || endedAt !== undefined) break
            endedAt = entry.last
            continue
          }
          for (let i = entry.events.length - 1; i >= 0; i--) {
            const e = entry.events[i]!
            const lowest = tail[tail.length - 1]
            if (lowest !== undefined && e.seq !== lowest.seq - 1) break scan
            tail.push(e)
          }
          if (tail.length >= ringSize) break
        }
        const newestId = newest[0]?.[0] ?? "0-0"
        if (session.lastSeq === undefined) {
          // Nothing fed yet (this process did not publish it meanwhile): the tail is the ring.
          for (let i = tail.length - 1; i >= 0; i--) session.ring.push(tail[i]!)
          session.lastSeq = tail.length > 0 ? tail[0]!.seq : endedAt
        }
        const fedId = session.lastSeq === undefined ? "0-0" : `${session.lastSeq}-0`
        session.cursor = compareIds(newestId, fedId) >= 0 ? newestId : fedId
        if (liveResult[1] !== null && endedAt === undefined) {
          session.live = true
          session.seenLiveAt = now()
        }
        session.markBackfilled()
        nudge()
      } catch (error) {
        redis.failed("follow", 1, error)
      } finally {
        session.backfilling = false
      }
    }

    const sessionOf = (run: string): Session => {
      let session = sessions.get(run)
      if (session === undefined) {
        const mirror = Effect.runSync(InProcessBus.make({ ...options, ring: 1 }).pipe(Effect.withClock(clock)))
        session = new Session(run, streamKey(run), liveKeyOf(run), mirror, ringSize)
        sessions.set(run, session)
        byKey.set(session.key, session)
        void backfill(session)
        nudge()
      }
      return session
    }

    const sleep = (millis: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          wakeReader = undefined
          resolve()
        }, millis)
        wakeReader = () => {
          clearTimeout(timer)
          resolve()
        }
      })

    reader.on("ready", () => {
      readerId = undefined
      reader.client("ID").then((id) => (readerId = Number(id)), () => {})
    })

    /** One loop for every followed run: XREAD BLOCK over their streams, each from its cursor. */
    const readLoop = async () => {
      let failures = 0
      while (!closed) {
        const all = [...sessions.values()]
        for (const session of all) if (session.cursor === undefined) await backfill(session)
        const active = all.filter((s) => s.cursor !== undefined && !s.ended && sessions.get(s.run) === s)
        if (active.length === 0 || reader.status !== "ready" || !redis.ready()) {
          await sleep(active.length === 0 && all.length === 0 ? 60_000 : 250)
          continue
        }
        let reply: unknown
        try {
          readerBlocked = true
          reply = await reader.call(
            "XREAD",
            "COUNT",
            1_000,
            "BLOCK",
            2_000,
            "STREAMS",
            ...active.map((s) => s.key),
            ...active.map((s) => s.cursor!)
          )
          failures = 0
        } catch (error) {
          if (closed) return
          redis.failed("follow", 1, error)
          await sleep(Math.min(2_000, 100 * 2 ** Math.min(failures++, 5)))
          continue
        } finally {
          readerBlocked = false
        }
        if (!Array.isArray(reply)) continue
        const at = now()
        for (const stream of reply) {
          if (!Array.isArray(stream) || typeof stream[0] !== "string" || !isEntries(stream[1])) continue
          const session = byKey.get(stream[0])
          if (session === undefined) continue
          for (const [id, fields] of stream[1]) {
            session.cursor = id
            const entry = decodeEntry(fields)
            if (entry === undefined) continue
            if (entry._tag === "End") {
              session.end()
              detach(session)
              break
            }
            received += entry.events.length
            for (const event of entry.events) session.feed(event, at)
          }
        }
      }
    }

    // -------------------------------------------------------------------------------------------
    // Liveness: our runs' keys refreshed, the followed runs' keys read

    const tick = () => {
      if (closed || !redis.ready()) return
      resend()
      const pipeline = client.pipeline()
      for (const run of published.keys()) {
        pipeline.set(liveKeyOf(run), pid, "PX", liveTtl)
        pipeline.pexpire(streamKey(run), streamTtl)
      }
      const checked = [...sessions.values()].filter((s) => !s.ended && s.cursor !== undefined)
      for (const session of checked) pipeline.exists(session.liveKey)
      if (pipeline.length === 0) return
      const offset = published.size * 2
      pipeline.exec().then(
        (results) => {
          const at = now()
          checked.forEach((session, i) => {
            const [error, exists] = results?.[offset + i] ?? [new Error("no reply"), 0]
            if (error !== null || session.ended) return
            if (exists === 1) {
              session.live = true
              session.seenLiveAt = at
            } else if (session.live && at - session.seenLiveAt > liveTtl) {
              // Its process is gone without ending it, or its end was lost in an outage: no longer
              // live, its followers read the database (its row says whether it ended). Its
              // subscribers stay: a run resumed elsewhere is followed live again.
              session.live = false
            }
          })
        },
        (error) => redis.failed("liveness", 1, error)
      )
    }
    const ticker = setInterval(tick, Math.max(25, Math.floor(liveTtl / 4)))
    ticker.unref?.()
    // Back from an outage: say at once that our runs are live (before followers give them up).
    const onReady = () => tick()
    client.on("ready", onReady)

    const loop = readLoop()
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closed = true
        clearInterval(ticker)
        client.off("ready", onReady)
        nudge()
        // What is still in the outbox goes, if Redis takes it within a second.
        if (outbox.size > 0) await Promise.race([flush(), new Promise((resolve) => setTimeout(resolve, 1_000))])
        reader.disconnect()
        await Promise.race([loop, new Promise((resolve) => setTimeout(resolve, 1_000))])
      })
    )

    // -------------------------------------------------------------------------------------------
    // The contract

    const subscribeRemote = (run: string, subscribeOptions?: { readonly buffer?: number }) =>
      Effect.gen(function*() {
        const session = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const s = sessionOf(run)
            s.subscribers++
            return s
          }),
          (s) =>
            Effect.sync(() => {
              s.subscribers--
              if (s.subscribers === 0) detach(s)
            })
        )
        const inner = yield* session.mirror.subscribe(run, subscribeOptions)
        // The run's recent events and liveness, so that `recent` and `isLive` answer for it now.
        if (session.cursor === undefined && redis.ready()) {
          yield* Effect.promise(() => session.backfilled).pipe(Effect.timeoutOption(backfillWait))
        }
        return inner
      })

    const subscribe = (run: string, subscribeOptions?: { readonly buffer?: number }): Effect.Effect<Subscription, never, Scope.Scope> =>
      local.isLive(run) ? local.subscribe(run, subscribeOptions) : subscribeRemote(run, subscribeOptions)

    const recent = (run: string, afterSeq: number): ReadonlyArray<BusEvent> | undefined => {
      if (local.isLive(run)) return local.recent(run, afterSeq)
      const own = local.recent(run, afterSeq)
      // Ended here a moment ago: this process's ring is complete.
      if (own === undefined || own.length > 0) return own
      const session = sessions.get(run)
      return session === undefined ? own : session.recent(afterSeq)
    }

    /**
     * A run of another process is live here only while the bus can vouch that its events and its end
     * will come through Redis: Redis answers, and the run was seen live (its key, or an event) within
     * `liveTtl`. Otherwise — Redis down, or not answering (a partition) — its end may never reach the
     * subscribers, and a follower reads the database instead (Follow.ts asks again every `poll`).
     */
    const vouchedLive = (run: string): boolean => {
      const session = sessions.get(run)
      return session !== undefined && session.live && redis.ready() && now() - session.seenLiveAt <= liveTtl
    }

    return {
      publish,
      end,
      subscribe,
      recent,
      isLive: (run) => local.isLive(run) || vouchedLive(run),
      redis,
      followed: () => sessions.size,
      received: () => received
    } satisfies RedisBusService
  })

/** The Redis bus as the application's `EventBus`, and as `RedisBus` for `/health` and tests. */
export const layerWith = (options: Options = {}): Layer.Layer<EventBus | RedisBus, never, Redis> =>
  Layer.scopedContext(Effect.map(make(options), (bus) => Context.make(EventBus, bus).pipe(Context.add(RedisBus, bus))))

export const layer: Layer.Layer<EventBus | RedisBus, never, Redis> = layerWith()
