/**
 * How a recorded run trades, as its `RunStarted` said, read back for a re-execution (replay,
 * resume): a run recorded before a change of how runs trade is re-executed the way it was recorded
 * (`RunStarted.reducedIntents`), so that it reproduces byte for byte.
 */
import { SqlClient } from "@effect/sql"
import { Effect, ParseResult, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { RunStarted } from "../../schemas/RunEvent.js"
import type * as Backtest from "../swarm/Backtest.js"
import { CorruptRecord, storeError } from "./StoreError.js"

const decodeStarted = Schema.decodeUnknown(Schema.parseJson(RunStarted))

/**
 * What `run`'s `RunStarted` says of how it trades; `undefined` when it recorded none (a resume of a
 * run that recorded nothing starts it afresh, as a new run).
 */
export const read = Effect.fn("RecordedStart.read")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ body: string }>`select body from run_events where run_id = ${run} and seq = 1 and tag = 'RunStarted'`
  const row = rows[0]
  if (row === undefined) return undefined
  const started = yield* decodeStarted(row.body).pipe(
    Effect.mapError((error) =>
      new CorruptRecord({ table: "run_events", key: `${run}#1`, column: "body", reason: ParseResult.TreeFormatter.formatErrorSync(error) })
    )
  )
  return {
    ...(started.reducedIntents === undefined ? {} : { reducedIntents: started.reducedIntents }),
    ...(started.flatScoring === undefined ? {} : { flatScoring: started.flatScoring }),
    ...(started.lastRounds === undefined ? {} : { lastRounds: started.lastRounds })
  } satisfies NonNullable<Backtest.Options["recordedStart"]>
}, storeError("read how a run trades"))
