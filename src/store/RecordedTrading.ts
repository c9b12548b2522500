/**
 * The operators' trading-state commands a run took (its `TradingStateRequested` events), read back
 * as the input a re-execution gives again: by the time of the slice they were taken at, in the
 * order they were taken — as its outside signals are (RecordedSignals.ts). With them a replay or a
 * resume of a run whose halt an operator lifted reproduces it byte for byte, and so does one whose
 * command the state machine refused or found the risk officer down: the re-execution meets the
 * same answer at the same place.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { TradingStateRequested } from "../../schemas/RunEvent.js"
import type * as Backtest from "../swarm/Backtest.js"
import * as RecordedSignals from "./RecordedSignals.js"
import { CorruptRecord, storeError } from "./StoreError.js"
import { oneLineOf } from "../internal/issues.js"

/** Slice time → the commands taken right before that slice. */
export type BySlice = ReadonlyMap<number, ReadonlyArray<Backtest.TradingCommand>>

/** Event sequence number → the command recorded there, taken while the run waited for an operator's answer (`waiting`). */
export type BySeq = ReadonlyMap<number, Backtest.TradingCommand>

/** A run's recorded commands: those taken before a slice, and those taken while it waited for an operator. */
export interface Recorded {
  readonly slices: BySlice
  readonly waiting: BySeq
}

const decode = Schema.decodeUnknown(Schema.parseJson(TradingStateRequested))

/** The operators' commands `run` recorded. */
export const read = Effect.fn("RecordedTrading.read")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ seq: number; body: string }>`
    select seq, body from run_events where run_id = ${run} and tag = 'TradingStateRequested' order by seq`
  const bySlice = new Map<number, Array<Backtest.TradingCommand>>()
  const waiting = new Map<number, Backtest.TradingCommand>()
  for (const row of rows) {
    const event = yield* decode(row.body).pipe(
      Effect.mapError((error) =>
        new CorruptRecord({ table: "run_events", key: `${run}#${row.seq}`, column: "body", reason: oneLineOf(error) })
      )
    )
    const command: Backtest.TradingCommand = { to: event.to, actor: event.actor, reason: event.reason }
    if (event.waiting === true) {
      waiting.set(row.seq, command)
      continue
    }
    const list = bySlice.get(event.ts)
    if (list === undefined) bySlice.set(event.ts, [command])
    else list.push(command)
  }
  return { slices: bySlice, waiting } satisfies Recorded as Recorded
}, storeError("read a run's trading-state commands"))

/**
 * The `trading` of a re-execution: the recorded commands at their slices, then — once the run has
 * logged `after` events and is past slice `through` — the `live` source (a resumed run's
 * operators). Undefined when there is neither. As a run's recorded signals are given back.
 */
export const source = (
  recorded: BySlice,
  live: Backtest.Options["trading"] | undefined,
  after = 0,
  through = Number.NEGATIVE_INFINITY
): Backtest.Options["trading"] | undefined => RecordedSignals.source(recorded, live, after, through)

/** No command. */
const NONE: ReadonlyArray<Backtest.TradingCommand> = []

/**
 * The `waiting` of a re-execution (`Backtest.Options.waiting`): each recorded command taken while
 * the run waited for an operator's answer, given back when the run has logged the events before
 * it; then — once the run has logged `after` events — the `live` source (a resumed run's operators).
 * Undefined when there is neither.
 */
export const waitingSource = (
  recorded: BySeq,
  live: Backtest.Options["waiting"] | undefined,
  after = 0
): Backtest.Options["waiting"] | undefined => {
  if (recorded.size === 0 && (live === undefined || after === 0)) return live
  return {
    take: (ts, events) => {
      const replayed = recorded.get(events + 1)
      if (replayed !== undefined) return [replayed]
      return live === undefined || events < after ? NONE : live.take(ts, events)
    },
    arrival: live === undefined ? Effect.never : live.arrival
  }
}
