/**
 * What a recorded run's first event (`RunStarted`) says of how the run behaves, read back for a
 * re-execution (replay, resume): a run recorded before a behaviour changed is re-executed the way
 * it was recorded (`RunStarted.reducedIntents`, `flatScoring`, `lastRounds`, `breakers`,
 * `analystProgress`, `downHalts`, `stateRejections`, `workingOrders`,
 * `fractionalCuts`), so that it reproduces byte for byte.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { RunStarted } from "../../schemas/RunEvent.js"
import type * as Backtest from "../swarm/Backtest.js"
import { CorruptRecord, storeError } from "./StoreError.js"
import { oneLineOf } from "../internal/issues.js"

/** How the recording behaves, as its `RunStarted` says (`Backtest.Options.recordedStart`). */
export type RecordedStart = NonNullable<Backtest.Options["recordedStart"]>

const decodeStarted = Schema.decodeUnknown(Schema.parseJson(RunStarted))

/**
 * What `run`'s `RunStarted` says; undefined when it recorded no event yet (a re-execution of it is
 * then a new run, behaving as new runs do).
 */
export const read = Effect.fn("RecordedStart.read")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const [first] = yield* sql<{ tag: string; body: string }>`select tag, body from run_events where run_id = ${run} and seq = 1`
  if (first === undefined || first.tag !== "RunStarted") return undefined
  const started = yield* decodeStarted(first.body).pipe(
    Effect.mapError((error) =>
      new CorruptRecord({ table: "run_events", key: `${run}#1`, column: "body", reason: oneLineOf(error) })
    )
  )
  return {
    ...(started.reducedIntents === undefined ? {} : { reducedIntents: started.reducedIntents }),
    ...(started.flatScoring === undefined ? {} : { flatScoring: started.flatScoring }),
    ...(started.lastRounds === undefined ? {} : { lastRounds: started.lastRounds }),
    ...(started.breakers === undefined ? {} : { breakers: started.breakers }),
    ...(started.analystProgress === undefined ? {} : { analystProgress: started.analystProgress }),
    ...(started.downHalts === undefined ? {} : { downHalts: started.downHalts }),
    ...(started.stateRejections === undefined ? {} : { stateRejections: started.stateRejections }),
    ...(started.workingOrders === undefined ? {} : { workingOrders: started.workingOrders }),
    ...(started.fractionalCuts === undefined ? {} : { fractionalCuts: started.fractionalCuts })
  } satisfies RecordedStart as RecordedStart
}, storeError("read how a run started"))
