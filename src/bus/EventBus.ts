/**
 * Run events fanned out to whoever follows a run live (SSE streams, RPC event streams) in this
 * process. A recorded run's events are published once the database holds them (the recorder's
 * group commit hands them on, in sequence order: src/store/RunRecorder.ts), so a follower never
 * sees an event a resume could re-execute differently. Publishing costs the same whatever the
 * number of subscribers — the run never waits for one — and the subscribers are woken after it;
 * each may fall a bounded number of events behind: one that falls further is told so and
 * dropped, never slowing the run or the others.
 * Subscribers that connect late read older events from the database and the bus's recent ring to
 * close the gap (see the SSE endpoint). With Redis configured, a Redis implementation carries the
 * same contract across processes (issue 7).
 */
import { Context, type Effect, type Scope } from "effect"

/** One event as published: its run's sequence number, its tag and its canonical JSON line. */
export interface BusEvent {
  readonly seq: number
  readonly tag: string
  readonly json: string
}

/** What a subscriber gets: the events published after it subscribed, in order, or why it stopped. */
export type Delivery =
  | { readonly _tag: "Event"; readonly event: BusEvent }
  /** The run ended: no more events will come. */
  | { readonly _tag: "Ended" }
  /** The subscriber fell more than its buffer behind and was dropped. */
  | { readonly _tag: "Overflow"; readonly lastDelivered: number }

export interface Subscription {
  /** The next delivery, waiting while there is none. */
  readonly take: Effect.Effect<Delivery>
  /**
   * Every delivery ready now, in order (at least one: waits while there is none); a terminal one
   * (`Ended`, `Overflow`) comes last. A consumer that writes to a socket writes a burst at once.
   */
  readonly takeAll: Effect.Effect<ReadonlyArray<Delivery>>
  /** `takeAll`, but waiting at most `millis`: nothing ready by then is an empty array. */
  readonly takeAllWithin: (millis: number) => Effect.Effect<ReadonlyArray<Delivery>>
}

export interface EventBusService {
  /** Publish an event of a live run (synchronous, never blocks; its subscribers are woken after the caller's turn). */
  readonly publish: (run: string, event: BusEvent) => void
  /** The run ended: its subscribers get `Ended` after the events before it. */
  readonly end: (run: string) => void
  /** Follow a run from now on, for the scope's lifetime. */
  readonly subscribe: (run: string, options?: { readonly buffer?: number }) => Effect.Effect<Subscription, never, Scope.Scope>
  /**
   * The recent events of a run after `afterSeq`, from the bus's ring of recent events, if the ring
   * still reaches back that far (otherwise `undefined`: read the database).
   */
  readonly recent: (run: string, afterSeq: number) => ReadonlyArray<BusEvent> | undefined
  /** Whether the run is live in this process (published and not ended). */
  readonly isLive: (run: string) => boolean
}

export class EventBus extends Context.Tag("swarm/bus/EventBus")<EventBus, EventBusService>() {}
