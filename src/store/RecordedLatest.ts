/**
 * What a run's recorded events say about where it stands, for `runs.get` when no cache has its
 * latest values (src/bus/LatestCache.ts folds these events the way it folds a live run's). A
 * `PortfolioUpdated` lists only the positions its fills changed (agents/Ledger.ts), so the last
 * one alone is not the book: the book is each symbol's last reported position.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { OrderFilled, PortfolioUpdated } from "../../schemas/RunEvent.js"
import { fold } from "../bus/LatestCache.js"
import { storeError } from "./StoreError.js"

/** How many fills after its last portfolio snapshot `valueEvents` reads, at most. */
const LATEST_FILLS = 1_000

/**
 * The events a run's latest values are made of, their JSON in order: the `PortfolioUpdated` that
 * last reported each of its symbols' positions (its last one among them) and the `OrderFilled`
 * after the last. At most one snapshot per symbol of the strategy (1,000 at most) and
 * `LATEST_FILLS` fills, each found by a key lookup: a position's latest row (`positions`, keyed by
 * run, symbol and sequence number) per symbol, then those events by their key, rather than a scan
 * of the run's log.
 */
export const valueEvents = Effect.fn("RecordedLatest.valueEvents")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ body: string }>`
    with book as (
      select p.seq from runs r
        cross join lateral jsonb_array_elements_text(r.strategy -> 'symbols') as s(symbol)
        cross join lateral (
          select seq from positions where run_id = r.id and symbol = s.symbol order by seq desc limit 1
        ) p
      where r.id = ${run}
    ),
    last as (
      select coalesce(
        (select seq from run_events where run_id = ${run} and tag = 'PortfolioUpdated' order by seq desc limit 1), 0
      ) as seq
    )
    select body from (
      select seq, body from run_events
      where run_id = ${run} and seq in (select seq from book union select seq from last)
      union all
      (select seq, body from run_events
        where run_id = ${run} and tag = 'OrderFilled' and seq > (select seq from last)
        order by seq limit ${LATEST_FILLS})
    ) e
    order by seq`
}, storeError("read the latest values"))

/** The events the latest values are made of; a stored line that does not decode is passed over. */
const decodeValuesEvent = Schema.decodeUnknownOption(Schema.parseJson(Schema.Union(PortfolioUpdated, OrderFilled)))

/**
 * A run's latest values as its recorded events give them (`valueEvents`, folded as the cache folds
 * a live run's: `LatestCache.fold`): the snapshots that last reported each symbol's position (the
 * book, with the last snapshot's totals) and the fills after the last. Undefined before any.
 */
export const latest = (run: RunId) =>
  Effect.map(valueEvents(run), (rows) => fold(rows.flatMap((row) => Option.toArray(decodeValuesEvent(row.body)))))
