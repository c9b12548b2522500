/**
 * The event bus of one process (the default; Redis carries the same contract across processes,
 * issue 7). Per run: a ring of its most recent events, for readers that connect late, and a
 * backlog its subscribers share, each at its own position and at most its buffer behind.
 * `publish` is synchronous and O(1) whatever the number of subscribers — it appends to the ring
 * and the backlog — because it runs inside the run's loop, between a tick and its order: with 500
 * dashboards attached, waking each of them there would cost the run hundreds of microseconds a
 * tick. The subscribers are woken after the publisher's turn (`setImmediate`, once per burst),
 * and one that fell more than its buffer behind is dropped then with `Overflow` — the run never
 * waits for anyone.
 *
 * Memory is bounded: a live run holds its ring and its subscribers' buffers; an ended run keeps its
 * ring for a while (`retainEnded`, and at most `maxEnded` such runs) so that a reader that connects
 * just after the end still finds the events the database has not committed yet; then it is
 * forgotten. A run that is only subscribed to is forgotten with its last subscriber.
 */
import { type Clock, Context, Duration, Effect, Layer, type Scope } from "effect"
import { type BusEvent, type Delivery, EventBus, type EventBusService, type Subscription } from "./EventBus.js"

export interface Options {
  /** Recent events kept per run. Default 10,000. */
  readonly ring?: number
  /** A subscriber's buffer, unless it asks for another. Default 4,096. */
  readonly buffer?: number
  /** How long an ended run's ring is kept. Default 60 s. */
  readonly retainEnded?: Duration.DurationInput
  /** At most this many ended runs are kept (the oldest go first). Default 16. */
  readonly maxEnded?: number
}

export const defaults = {
  ring: 10_000,
  buffer: 4_096,
  retainEnded: Duration.seconds(60),
  maxEnded: 16
} as const

/** The bus with what tests and `/health`-like probes may look at. */
export interface InProcessBusService extends EventBusService {
  /** Subscribers of a run right now (a dropped or closed one no longer counts). */
  readonly subscribers: (run: string) => number
  /** Runs the bus holds anything for (live, ended and retained, or subscribed to). */
  readonly runs: () => number
}

export class InProcessBus extends Context.Tag("swarm/bus/InProcessBus")<InProcessBus, InProcessBusService>() {}

const ENDED: Delivery = { _tag: "Ended" }

type EventDelivery = { readonly _tag: "Event"; readonly event: BusEvent }

/**
 * The events of a run that its subscribers have yet to take, shared by all of them: `publish`
 * appends once, whatever the number of subscribers, and each subscriber keeps its own position.
 * Positions are absolute (`offset` is the position of `events[0]`); what every subscriber has
 * taken is let go. Each is kept as the delivery every subscriber is given: made once, not once a
 * subscriber (500 dashboards of a paper run took 10 million of them in 4 s).
 */
class Backlog {
  events: Array<EventDelivery> = []
  offset = 0

  get end(): number {
    return this.offset + this.events.length
  }

  /** Let go of everything before position `to`. */
  trimTo(to: number): void {
    const drop = Math.min(to, this.end) - this.offset
    if (drop <= 0) return
    if (drop === this.events.length) this.events = []
    // Amortised: copy only once the dead prefix is at least half of the array.
    else if (drop * 2 >= this.events.length) this.events = this.events.slice(drop)
    else return
    this.offset += drop
  }
}

/**
 * One subscriber: a position in its run's backlog, at most `capacity` events behind the run. A
 * single consumer is expected, but any number of waiting takers is safe: they are woken, not
 * handed an event, so an interrupted taker never loses one (it stays in the backlog).
 */
class Subscriber implements Subscription {
  private terminal: Delivery | undefined = undefined
  private waiters: Array<() => void> = []
  private lastTaken = 0

  constructor(
    private backlog: Backlog,
    public position: number,
    private readonly capacity: number
  ) {}

  get pending(): number {
    return this.backlog.end - this.position
  }

  /** More than `capacity` behind: the caller drops it. */
  get lagging(): boolean {
    return this.terminal === undefined && this.pending > this.capacity
  }

  get waiting(): boolean {
    return this.waiters.length > 0
  }

  /** No more events: `Ended` comes after the pending ones. */
  end(): void {
    if (this.terminal !== undefined) return
    this.terminal = ENDED
    this.wake()
  }

  /**
   * Dropped: the pending events are let go and `Overflow` comes next. It lets go of the shared
   * backlog too, for an empty one of its own: once it is no longer among the run's subscribers,
   * the others' trims (and a publish to nobody) move the backlog's `offset` past its position, and
   * reading there would index before the events; nor is it to be given what the run publishes
   * after it was dropped.
   */
  overflow(): void {
    if (this.terminal !== undefined) return
    this.position = this.backlog.end
    this.backlog = Object.assign(new Backlog(), { offset: this.position })
    this.terminal = { _tag: "Overflow", lastDelivered: this.lastTaken }
    this.wake()
  }

  wake(): void {
    if (this.waiters.length === 0) return
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  private poll(): Delivery | undefined {
    if (this.lagging) this.overflow()
    if (this.position < this.backlog.end) {
      const delivery = this.backlog.events[this.position++ - this.backlog.offset]!
      this.lastTaken = delivery.event.seq
      return delivery
    }
    return this.terminal
  }

  private drain(): ReadonlyArray<Delivery> | undefined {
    if (this.lagging) this.overflow()
    const { end, events, offset } = this.backlog
    const out: Array<Delivery> = this.position < end ? events.slice(this.position - offset, end - offset) : []
    this.position = end
    if (out.length > 0) this.lastTaken = (out[out.length - 1] as EventDelivery).event.seq
    if (this.terminal !== undefined) out.push(this.terminal)
    return out.length === 0 ? undefined : out
  }

  /** Wait until something is ready (interruptible: the waiter is removed, nothing is consumed). */
  private readonly ready: Effect.Effect<void> = Effect.async<void>((resume) => {
    const waiter = () => resume(Effect.void)
    this.waiters.push(waiter)
    return Effect.sync(() => {
      const i = this.waiters.indexOf(waiter)
      if (i >= 0) this.waiters.splice(i, 1)
    })
  })

  readonly take: Effect.Effect<Delivery> = Effect.suspend(() => {
    const delivery = this.poll()
    return delivery !== undefined ? Effect.succeed(delivery) : Effect.zipRight(this.ready, this.take)
  })

  readonly takeAll: Effect.Effect<ReadonlyArray<Delivery>> = Effect.suspend(() => {
    const deliveries = this.drain()
    return deliveries !== undefined ? Effect.succeed(deliveries) : Effect.zipRight(this.ready, this.takeAll)
  })

  readonly takeAllWithin = (millis: number): Effect.Effect<ReadonlyArray<Delivery>> =>
    Effect.suspend(() => {
      const deliveries = this.drain()
      if (deliveries !== undefined) return Effect.succeed(deliveries)
      if (millis <= 0) return Effect.succeed([])
      return Effect.async<ReadonlyArray<Delivery>>((resume) => {
        let timer: ReturnType<typeof setTimeout> | undefined = undefined
        const waiter = () => {
          clearTimeout(timer)
          resume(Effect.sync(() => this.drain() ?? []))
        }
        this.waiters.push(waiter)
        timer = setTimeout(() => {
          const i = this.waiters.indexOf(waiter)
          if (i >= 0) this.waiters.splice(i, 1)
          resume(Effect.succeed([]))
        }, millis)
        return Effect.sync(() => {
          clearTimeout(timer)
          const i = this.waiters.indexOf(waiter)
          if (i >= 0) this.waiters.splice(i, 1)
        })
      })
    })
}

/** The most recent events of a run, oldest first, in increasing `seq`. */
class Ring {
  private readonly items: Array<BusEvent | undefined>
  private start = 0
  private size = 0

  constructor(private readonly capacity: number) {
    this.items = new Array(capacity)
  }

  private at(i: number): BusEvent {
    return this.items[(this.start + i) % this.capacity]!
  }

  push(event: BusEvent): void {
    // A sequence that goes back is the run starting over (re-executed on resume): the ring must stay
    // ordered for `after`, so the old life is let go — the database has it.
    if (this.size > 0 && event.seq <= this.at(this.size - 1).seq) this.clear()
    if (this.size < this.capacity) {
      this.items[(this.start + this.size) % this.capacity] = event
      this.size++
    } else {
      this.items[this.start] = event
      this.start = (this.start + 1) % this.capacity
    }
  }

  clear(): void {
    this.items.fill(undefined)
    this.start = 0
    this.size = 0
  }

  /** The events after `seq`, or `undefined` when the ring no longer reaches back to `seq + 1`. */
  after(seq: number): ReadonlyArray<BusEvent> | undefined {
    if (this.size === 0 || seq >= this.at(this.size - 1).seq) return []
    if (seq + 1 < this.at(0).seq) return undefined
    // The first event with a sequence past `seq` (binary search: the ring is ordered).
    let lo = 0
    let hi = this.size - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.at(mid).seq > seq) hi = mid
      else lo = mid + 1
    }
    const out: Array<BusEvent> = new Array(this.size - lo)
    for (let i = lo; i < this.size; i++) out[i - lo] = this.at(i)
    return out
  }
}

interface RunEntry {
  /** Created lazily: a run that is only subscribed to holds no ring. */
  ring: Ring | undefined
  /** What its subscribers have yet to take (nothing is kept while it has none). */
  backlog: Backlog
  readonly subscribers: Set<Subscriber>
  /** A wake-up of its subscribers is scheduled. */
  waking: boolean
  /** `idle`: subscribed to, nothing published yet. */
  state: "idle" | "live" | "ended"
  endedAt: number
}

/** A bus of this process, its clock read for retention. */
export const make = (options: Options = {}): Effect.Effect<InProcessBusService> =>
  Effect.clockWith((clock) => Effect.sync(() => makeWith(options, clock)))

const makeWith = (options: Options, clock: Clock.Clock): InProcessBusService => {
  const ringSize = Math.max(1, Math.trunc(options.ring ?? defaults.ring))
  const defaultBuffer = Math.max(1, Math.trunc(options.buffer ?? defaults.buffer))
  const retainMillis = Duration.toMillis(options.retainEnded ?? defaults.retainEnded)
  const maxEnded = Math.max(0, Math.trunc(options.maxEnded ?? defaults.maxEnded))
  const runs = new Map<string, RunEntry>()
  /** Ended runs in the order they ended (a run ended again moves to the back). */
  const ended = new Set<string>()

  /** Forget ended runs past their retention, and the oldest beyond `maxEnded`. */
  const sweep = () => {
    const now = clock.unsafeCurrentTimeMillis()
    for (const run of ended) {
      const entry = runs.get(run)
      if (entry === undefined || entry.state !== "ended") {
        ended.delete(run)
        continue
      }
      if (ended.size > maxEnded || now - entry.endedAt >= retainMillis) {
        // An ended run has no subscribers (they were ended with it; later ones are ended at once).
        ended.delete(run)
        runs.delete(run)
      } else {
        // In end order: the rest ended later.
        break
      }
    }
  }

  const entryOf = (run: string): RunEntry => {
    let entry = runs.get(run)
    if (entry === undefined) {
      entry = { ring: undefined, backlog: new Backlog(), subscribers: new Set(), waking: false, state: "idle", endedAt: 0 }
      runs.set(run, entry)
    }
    return entry
  }

  const publish = (run: string, event: BusEvent): void => {
    let entry = runs.get(run)
    if (entry === undefined || entry.state !== "live") {
      entry = entryOf(run)
      if (entry.state === "ended") ended.delete(run)
      entry.state = "live"
      sweep()
    }
    ;(entry.ring ??= new Ring(ringSize)).push(event)
    if (entry.subscribers.size === 0) {
      // Nobody to keep it for: a subscriber that comes later starts after it.
      entry.backlog.trimTo(entry.backlog.end)
      entry.backlog.offset++
      return
    }
    entry.backlog.events.push({ _tag: "Event", event })
    if (!entry.waking) {
      entry.waking = true
      const woken = entry
      setImmediate(() => wake(woken))
    }
  }

  /**
   * Off the publisher's stack, once per burst: the subscribers that fell too far behind are
   * dropped, the others woken, and what all of them have taken let go.
   */
  const wake = (entry: RunEntry): void => {
    entry.waking = false
    let lowest = entry.backlog.end
    for (const subscriber of entry.subscribers) {
      if (subscriber.lagging) {
        subscriber.overflow()
        entry.subscribers.delete(subscriber)
        continue
      }
      if (subscriber.pending > 0) subscriber.wake()
      if (subscriber.position < lowest) lowest = subscriber.position
    }
    entry.backlog.trimTo(lowest)
  }

  const end = (run: string): void => {
    const entry = runs.get(run)
    if (entry === undefined) return
    for (const subscriber of entry.subscribers) subscriber.end()
    entry.subscribers.clear()
    // The ended subscribers keep the backlog they read from; the next life of the run starts afresh.
    entry.backlog = Object.assign(new Backlog(), { offset: entry.backlog.end })
    entry.state = "ended"
    entry.endedAt = clock.unsafeCurrentTimeMillis()
    ended.delete(run)
    ended.add(run)
    sweep()
  }

  const subscribe = (run: string, subscribeOptions?: { readonly buffer?: number }) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        sweep()
        const entry = entryOf(run)
        const subscriber = new Subscriber(
          entry.backlog,
          entry.backlog.end,
          Math.max(1, Math.trunc(subscribeOptions?.buffer ?? defaultBuffer))
        )
        // An ended run sends nothing more: its subscriber is told so at once.
        if (entry.state === "ended") subscriber.end()
        else entry.subscribers.add(subscriber)
        return { entry, subscriber }
      }),
      ({ entry, subscriber }) =>
        Effect.sync(() => {
          entry.subscribers.delete(subscriber)
          if (entry.subscribers.size === 0) entry.backlog.trimTo(entry.backlog.end)
          // Forget a run nobody published to once nobody follows it (unless it is there anew).
          if (entry.state === "idle" && entry.subscribers.size === 0 && runs.get(run) === entry) runs.delete(run)
        })
    ).pipe(Effect.map(({ subscriber }): Subscription => subscriber)) satisfies Effect.Effect<Subscription, never, Scope.Scope>

  const recent = (run: string, afterSeq: number): ReadonlyArray<BusEvent> | undefined => {
    const ring = runs.get(run)?.ring
    // Nothing published here (or forgotten long ago): nothing recent to add to the database.
    return ring === undefined ? [] : ring.after(afterSeq)
  }

  return {
    publish,
    end,
    subscribe,
    recent,
    isLive: (run) => runs.get(run)?.state === "live",
    subscribers: (run) => {
      const entry = runs.get(run)
      if (entry === undefined) return 0
      // What the next wake-up would find: one too far behind is dropped already.
      for (const subscriber of entry.subscribers) {
        if (subscriber.lagging) {
          subscriber.overflow()
          entry.subscribers.delete(subscriber)
        }
      }
      return entry.subscribers.size
    },
    runs: () => {
      sweep()
      return runs.size
    }
  }
}

/** The in-process bus as the application's `EventBus`. */
export const layerWith = (options: Options = {}): Layer.Layer<EventBus> => Layer.effect(EventBus, make(options))

export const layer: Layer.Layer<EventBus> = layerWith()

/** The same bus under both tags: `EventBus` for the code, `InProcessBus` for a test's inspection. */
export const layerTest = (options: Options = {}): Layer.Layer<EventBus | InProcessBus> =>
  Layer.effectContext(Effect.map(make(options), (bus) => Context.make(EventBus, bus).pipe(Context.add(InProcessBus, bus))))
