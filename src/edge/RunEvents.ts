/**
 * A run's events after a sequence number, then live until the run ends, with no gap and no
 * duplicate: what `runs.events` streams over RPC (and what a dashboard resumes with its last id).
 *
 * Subscribe to the bus first (so nothing published from now on is missed), then read the backlog
 * from the database, then the bus's ring of recent events for what the recorder has not committed
 * yet, then follow live deliveries — skipping, at every step, whatever is not past the last event
 * sent. When the run ends (the recorder has committed everything by then), a last read of the
 * database closes the stream. A follower that falls further behind than its buffer is told where
 * it stopped (`Unavailable`), and resumes from there.
 */
import { Context, Duration, Effect, Layer, Option, Stream } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { Unavailable } from "../../schemas/Rpc.js"
import { type BusEvent, EventBus } from "../bus/EventBus.js"
import type { PgPool } from "../store/Pool.js"
import * as Runs from "../store/Runs.js"
import type { SqlClient } from "@effect/sql"

const PAGE = 1_000

export interface StreamedEvent {
  readonly seq: number
  readonly tag: string
  readonly json: string
}

export interface RunEventsService {
  /** The events of `run` after `since`, then live until it ends. The run's ownership is the caller's to check. */
  readonly after: (run: RunId, since: number) => Stream.Stream<StreamedEvent, Unavailable>
}

export class RunEvents extends Context.Tag("swarm/edge/RunEvents")<RunEvents, RunEventsService>() {}

export const layer = Layer.effect(
  RunEvents,
  Effect.gen(function*() {
    const bus = yield* EventBus
    const context = yield* Effect.context<SqlClient.SqlClient | PgPool>()

    const page = (run: RunId, after: number) =>
      Runs.events(run, after, PAGE).pipe(
        Effect.map((rows) => rows.map((row): StreamedEvent => ({ seq: row.seq, tag: row.tag, json: row.body }))),
        Effect.mapError((error) => new Unavailable({ reason: error.message })),
        Effect.provide(context)
      )

    const after = (run: RunId, since: number): Stream.Stream<StreamedEvent, Unavailable> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const subscription = bus.isLive(run) ? Option.some(yield* bus.subscribe(run)) : Option.none()
        let last = since

        /** Everything stored after `last`, a page at a time. */
        const stored: Stream.Stream<StreamedEvent, Unavailable> = Stream.paginateEffect(undefined as void, () =>
          Effect.map(Effect.suspend(() => page(run, last)), (rows): readonly [ReadonlyArray<StreamedEvent>, Option.Option<void>] => {
            const fresh = rows.filter((e) => e.seq > last)
            if (fresh.length > 0) last = fresh[fresh.length - 1]!.seq
            return [fresh, rows.length < PAGE ? Option.none() : Option.some(undefined)]
          })).pipe(Stream.mapConcat((rows) => rows))

        /** The events past `last`, in order; a gap before one is filled from the ring, which has every recent event. */
        const take = (events: ReadonlyArray<BusEvent>): Array<StreamedEvent> => {
          const out: Array<StreamedEvent> = []
          for (const e of events) {
            if (e.seq <= last) continue
            if (e.seq > last + 1) {
              for (const missed of bus.recent(run, last) ?? []) {
                if (missed.seq !== last + 1 || missed.seq >= e.seq) break
                out.push(missed)
                last = missed.seq
              }
              if (e.seq !== last + 1) continue
            }
            out.push(e)
            last = e.seq
          }
          return out
        }

        if (Option.isNone(subscription)) return stored
        const sub = subscription.value
        /**
         * Between the stored events and the live ones: the ring, once it reaches back to `last`;
         * until it does, the recorder is behind by more than the ring, so read the database again.
         */
        const bridge: Stream.Stream<StreamedEvent, Unavailable> = Stream.suspend(() => {
          const recent = bus.recent(run, last)
          if (recent !== undefined) return Stream.fromIterable(take(recent))
          return Stream.concat(
            Stream.fromEffect(Effect.sleep(Duration.millis(50))).pipe(Stream.drain),
            Stream.concat(stored, bridge)
          )
        })
        const live: Stream.Stream<StreamedEvent, Unavailable> = Stream.repeatEffectOption(
          Effect.flatMap(sub.take, (delivery) => {
            switch (delivery._tag) {
              case "Event":
                return Effect.succeed(take([delivery.event]))
              case "Ended":
                return Effect.fail(Option.none())
              case "Overflow":
                return Effect.fail(Option.some(new Unavailable({ reason: `fell behind the run; resume from event ${last}` })))
            }
          })
        ).pipe(Stream.mapConcat((events) => events))
        // After the run ended, the database has every event: a last read closes any gap.
        return stored.pipe(Stream.concat(bridge), Stream.concat(live), Stream.concat(stored))
      }))

    return { after } satisfies RunEventsService
  })
)
