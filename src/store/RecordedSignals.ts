/**
 * The outside signals a run received (its `SignalReceived` events), read back as the input a
 * re-execution delivers again: by slice time, in the order they were delivered. With them a replay
 * or a resume of a paper run that took TradingView alerts reproduces it byte for byte.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import type { ExternalSignal } from "../../schemas/ExternalSignal.js"
import type { RunId, Timestamp } from "../../schemas/Ids.js"
import { SignalNotApplied, SignalReceived } from "../../schemas/RunEvent.js"
import type * as Backtest from "../swarm/Backtest.js"
import { CorruptRecord, storeError } from "./StoreError.js"
import { oneLineOf } from "../internal/issues.js"

/** Slice time → the signals delivered with that slice. */
export type BySlice = ReadonlyMap<number, ReadonlyArray<ExternalSignal>>

const decode = Schema.decodeUnknown(Schema.parseJson(SignalReceived))

/** The signals `run` recorded (up to event `until`, when given). */
export const read = Effect.fn("RecordedSignals.read")(function*(run: RunId, until?: number) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ seq: number; body: string }>`
    select seq, body from run_events where run_id = ${run} and tag = 'SignalReceived'
      ${until === undefined ? sql`` : sql`and seq <= ${until}`}
    order by seq`
  const bySlice = new Map<number, Array<ExternalSignal>>()
  for (const row of rows) {
    const event = yield* decode(row.body).pipe(
      Effect.mapError((error) =>
        new CorruptRecord({ table: "run_events", key: `${run}#${row.seq}`, column: "body", reason: oneLineOf(error) })
      )
    )
    const list = bySlice.get(event.ts)
    if (list === undefined) bySlice.set(event.ts, [event.signal])
    else list.push(event.signal)
  }
  return bySlice as BySlice
}, storeError("read a run's signals"))

const decodeNotApplied = Schema.decodeUnknown(Schema.parseJson(SignalNotApplied))

/**
 * The signals `run` took and never applied (its `SignalNotApplied` events, recorded when it
 * ended), in order: what a re-execution's `leftoverSignals` gives back.
 */
export const readNotApplied = Effect.fn("RecordedSignals.readNotApplied")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ seq: number; body: string }>`
    select seq, body from run_events where run_id = ${run} and tag = 'SignalNotApplied' order by seq`
  const out: Array<ExternalSignal> = []
  for (const row of rows) {
    const event = yield* decodeNotApplied(row.body).pipe(
      Effect.mapError((error) =>
        new CorruptRecord({ table: "run_events", key: `${run}#${row.seq}`, column: "body", reason: oneLineOf(error) })
      )
    )
    out.push(event.signal)
  }
  return out as ReadonlyArray<ExternalSignal>
}, storeError("read a run's signals not applied"))

/**
 * The `leftoverSignals` of a re-execution: the recorded ones when the recording reaches the run's
 * end (it has logged fewer than `after` events by then), else the `live` ones (a resumed paper
 * run's inbox, closed).
 */
export const leftovers = (
  recorded: ReadonlyArray<ExternalSignal>,
  live: Backtest.Options["leftoverSignals"] | undefined,
  after = 0
): Backtest.Options["leftoverSignals"] | undefined => {
  if (recorded.length === 0) return live
  return (events: number) => (live === undefined || events < after ? recorded : recorded.concat(live(events)))
}

/**
 * The `signals` of a re-execution: the recorded ones at their slices, then — once the run has
 * logged `after` events, every recorded one reproduced, and is past slice `through` (the last one
 * the recording vouches for: its checkpoint's, which may have added no event) — the `live` source
 * (a resumed paper run's webhooks). Earlier, a live signal would land inside the recorded part and
 * make it diverge. Undefined when there is neither (the driver then asks nothing per slice). Also
 * the shape of every recorded input given back by slice (RecordedTrading.ts: operators' commands).
 */
export const source = <A>(
  recorded: ReadonlyMap<number, ReadonlyArray<A>>,
  live: ((ts: Timestamp, events: number) => ReadonlyArray<A>) | undefined,
  after = 0,
  through = Number.NEGATIVE_INFINITY
): ((ts: Timestamp, events: number) => ReadonlyArray<A>) | undefined => {
  if (recorded.size === 0 && (live === undefined || after === 0)) return live
  const none: ReadonlyArray<A> = []
  return (ts: Timestamp, events: number) => {
    const replayed = recorded.get(ts) ?? none
    if (live === undefined || events < after || ts <= through) return replayed
    const fresh = live(ts, events)
    return fresh.length === 0 ? replayed : replayed.length === 0 ? fresh : replayed.concat(fresh)
  }
}
