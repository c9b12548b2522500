/**
 * A run's events after a sequence number, then live until the run ends, with no gap and no
 * duplicate: what `runs.events` streams over RPC (and what a dashboard resumes with its last id).
 * The algorithm is Follow.ts's, the one the SSE endpoint uses too; here a follower that stops
 * early (it fell too far behind, or the database failed) is `Unavailable`, saying where it stopped
 * so that the client resumes from there.
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Stream } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { Unavailable } from "../../schemas/Rpc.js"
import { EventBus } from "../bus/EventBus.js"
import * as Follow from "./Follow.js"

export interface StreamedEvent {
  readonly seq: number
  readonly tag: string
  readonly json: string
}

export interface RunEventsService {
  /**
   * The events of `run` after `since` (only those of `types`, if any), then live until it ends. The
   * run's ownership is the caller's to check.
   */
  readonly after: (run: RunId, since: number, types?: ReadonlyArray<string>) => Stream.Stream<StreamedEvent, Unavailable>
}

export class RunEvents extends Context.Tag("swarm/edge/RunEvents")<RunEvents, RunEventsService>() {}

const reasonOf = (stopped: Follow.FollowStopped): string => {
  switch (stopped.reason) {
    case "overflow":
      return `fell behind the run; resume from event ${stopped.lastEventId}`
    case "gap":
      return `events after ${stopped.lastEventId} are not available yet; resume from event ${stopped.lastEventId}`
    case "unavailable":
      return `${stopped.detail}; resume from event ${stopped.lastEventId}`
  }
}

export const layer = Layer.effect(
  RunEvents,
  Effect.gen(function*() {
    const deps = { bus: yield* EventBus, sql: yield* SqlClient.SqlClient }
    const after = (run: RunId, since: number, types?: ReadonlyArray<string>): Stream.Stream<StreamedEvent, Unavailable> =>
      Follow.follow(deps, run, since, {
        coalesce: Follow.liveCoalesce,
        budget: Follow.fanOut,
        reads: Follow.catchUpReads,
        pages: Follow.sharedPages,
        ...(types === undefined ? {} : { tags: types })
      }).pipe(
        Stream.mapConcat((burst) => burst),
        Stream.mapError((stopped) => new Unavailable({ reason: reasonOf(stopped), ...(stopped.reason === "overflow" ? { behind: true } : {}) }))
      )
    return { after } satisfies RunEventsService
  })
)
