/**
 * The event bus of one process (the default; Redis carries the same contract across processes,
 * issue 7). Per run: a ring of its most recent events, for readers that connect late, and a set of
 * subscribers, each with a bounded buffer of its own. `publish` is synchronous and O(subscribers):
 * it appends to the ring and to each buffer, and a subscriber whose buffer is full is dropped on
 * the spot with `Overflow` — the run never waits for anyone.
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

/**
 * One subscriber's buffer. A single consumer is expected, but any number of waiting takers is safe:
 * they are woken, not handed an event, so an interrupted taker never loses one (it stays buffered).
 */
class Subscriber implements Subscription {
  private queue: Array<BusEvent> = []
  private head = 0
  private terminal: Delivery | undefined = undefined
  private waiters: Array<() => void> = []
  private lastTaken = 0

  constructor(private readonly capacity: number) {}

  get pending(): number {
    return this.queue.length - this.head
  }

  /** False when the buffer is full (the caller drops this subscriber). */
  offer(event: BusEvent): boolean {
    if (this.terminal !== undefined) return true
    if (this.pending >= this.capacity) return false
    this.queue.push(event)
    this.wake()
    return true
  }

  /** No more events: `Ended` comes after the pending ones. */
  end(): void {
    if (this.terminal !== undefined) return
    this.terminal = ENDED
    this.wake()
  }

  /** Dropped: the pending events are let go (memory back at once), `Overflow` comes next. */
  overflow(): void {
    if (this.terminal !== undefined) return
    this.queue = []
    this.head = 0
    this.terminal = { _tag: "Overflow", lastDelivered: this.lastTaken }
    this.wake()
  }

  private wake(): void {
    if (this.waiters.length === 0) return
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  private poll(): Delivery | undefined {
    if (this.head < this.queue.length) {
      const event = this.queue[this.head]!
      this.queue[this.head++] = undefined as unknown as BusEvent
      if (this.head === this.queue.length) {
        this.queue = []
        this.head = 0
      } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head)
        this.head = 0
      }
      this.lastTaken = event.seq
      return { _tag: "Event", event }
    }
    return this.terminal
  }

  private drain(): ReadonlyArray<Delivery> | undefined {
    const events = this.head === 0 ? this.queue : this.queue.slice(this.head)
    this.queue = []
    this.head = 0
    if (events.length === 0) return this.terminal === undefined ? undefined : [this.terminal]
    this.lastTaken = events[events.length - 1]!.seq
    const out: Array<Delivery> = events.map((event) => ({ _tag: "Event", event }))
    if (this.terminal !== undefined) out.push(this.terminal)
    return out
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
  readonly subscribers: Set<Subscriber>
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
      entry = { ring: undefined, subscribers: new Set(), state: "idle", endedAt: 0 }
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
    for (const subscriber of entry.subscribers) {
      if (!subscriber.offer(event)) {
        subscriber.overflow()
        entry.subscribers.delete(subscriber)
      }
    }
  }

  const end = (run: string): void => {
    const entry = runs.get(run)
    if (entry === undefined) return
    for (const subscriber of entry.subscribers) subscriber.end()
    entry.subscribers.clear()
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
        const subscriber = new Subscriber(Math.max(1, Math.trunc(subscribeOptions?.buffer ?? defaultBuffer)))
        // An ended run sends nothing more: its subscriber is told so at once.
        if (entry.state === "ended") subscriber.end()
        else entry.subscribers.add(subscriber)
        return { entry, subscriber }
      }),
      ({ entry, subscriber }) =>
        Effect.sync(() => {
          entry.subscribers.delete(subscriber)
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
    subscribers: (run) => runs.get(run)?.subscribers.size ?? 0,
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
