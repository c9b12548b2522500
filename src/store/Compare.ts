/**
 * Where two runs first decided differently: their `decisions` rows walked side by side in
 * (time, symbol) order, a page at a time from each, until one run has a decision the other has not
 * or both decided differently — or one has no decisions left (`ended`: it stopped short of the
 * other, or has not got as far yet), which is told apart from a difference. Run ids (and so the
 * events' JSON) differ between any two runs, so decisions are matched by what they are about —
 * the bar's time and the symbol — and compared by their action.
 *
 * What a run's `decisions` table holds depends on its event detail: with `decisions` (the default)
 * only the decisions that changed a target, with `rounds` every one. Comparing runs recorded with
 * different details finds a "difference" at the first decision that did not change anything.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { storeError } from "./StoreError.js"

/** Rows read from each run at a time. */
export const PAGE = 5_000

/** One run's decision at a (time, symbol). */
export interface Decision {
  readonly round: string
  /** The `DecisionMade` event's sequence number in its run. */
  readonly seq: number
  readonly action: string
  readonly confidence: number
}

export interface DecisionDifference {
  /** The bar's time (epoch ms) and symbol the runs decided differently about. */
  readonly ts: number
  readonly symbol: string
  /** What each run decided there; `null` when it recorded no decision. */
  readonly a: Decision | null
  readonly b: Decision | null
  /** Decisions the runs had in common before this one. */
  readonly matched: number
  /**
   * The run that had not got here (its last event is before this decision, and it has no decision
   * after): it ended earlier, or it is still running — no difference of decisions. Null for a run
   * that got here and decided nothing (a difference).
   */
  readonly ended: "a" | "b" | null
}

interface Row {
  readonly ts: number
  readonly symbol: string
  readonly roundId: string
  readonly seq: number
  readonly action: string
  readonly confidence: number
}

/**
 * Symbols are compared as the database orders them under `collate "C"` (bytes, which for their
 * ASCII alphabet is JavaScript's code-unit order), whatever the database's default collation.
 */
const byKey = (x: Row, y: Row): number =>
  x.ts !== y.ts ? (x.ts < y.ts ? -1 : 1) : x.symbol === y.symbol ? 0 : x.symbol < y.symbol ? -1 : 1

const decisionOf = (row: Row): Decision => ({ round: row.roundId, seq: row.seq, action: row.action, confidence: row.confidence })

/**
 * The first (time, symbol) where runs `a` and `b` differ in their decisions, or none when they
 * made the same decisions throughout. Reads both runs a page at a time (keyset pagination on
 * time, symbol and round), so memory stays bounded whatever the runs' length.
 */
export const firstDecisionDifference = Effect.fn("Compare.firstDecisionDifference")(function*(
  a: RunId,
  b: RunId,
  options: { readonly pageSize?: number } = {}
) {
  const sql = yield* SqlClient.SqlClient
  const pageSize = Math.max(1, Math.floor(options.pageSize ?? PAGE))

  const page = (run: RunId, after: Row | undefined) =>
    sql<Row>`
      select ts, symbol, round_id, seq, action, confidence from decisions
      where run_id = ${run}
        ${
      after === undefined
        ? sql``
        : sql`and (ts, symbol collate "C", round_id collate "C") > (${after.ts}, ${after.symbol}, ${after.roundId})`
    }
      order by ts, symbol collate "C", round_id collate "C"
      limit ${pageSize}`

  /** One run's decisions in order, fetched as they are needed. */
  const cursor = (run: RunId) => {
    let rows: ReadonlyArray<Row> = []
    let index = 0
    let exhausted = false
    return {
      /** The current row, fetching the next page when this one is used up; `undefined` at the end. */
      peek: Effect.suspend((): Effect.Effect<Row | undefined, SqlError> =>
        index < rows.length || exhausted
          ? Effect.succeed(rows[index])
          : Effect.map(page(run, rows[rows.length - 1]), (next) => {
            exhausted = next.length < pageSize
            rows = next
            index = 0
            return rows[0]
          })
      ),
      advance: () => void index++
    }
  }

  /**
   * Whether `run`, out of decisions, had not got to `ts`: its last event is before it. A run that
   * got there and decided nothing (its decisions table holds only the decisions that changed a
   * target, by default) differs from the other there — it did not end short of it.
   */
  const shortOf = (run: RunId, ts: number) =>
    Effect.map(
      sql<{ readonly at: string | number }>`select at from run_events where run_id = ${run} order by seq desc limit 1`,
      (rows) => rows[0] === undefined || Number(rows[0].at) < ts
    )

  const left = cursor(a)
  const right = cursor(b)
  let matched = 0
  for (;;) {
    const x = yield* left.peek
    const y = yield* right.peek
    if (x === undefined && y === undefined) return Option.none<DecisionDifference>()
    const order = x === undefined ? 1 : y === undefined ? -1 : byKey(x, y)
    if (order < 0) {
      const ended = y === undefined && (yield* shortOf(b, x!.ts)) ? "b" : null
      return Option.some<DecisionDifference>({ ts: x!.ts, symbol: x!.symbol, a: decisionOf(x!), b: null, matched, ended })
    }
    if (order > 0) {
      const ended = x === undefined && (yield* shortOf(a, y!.ts)) ? "a" : null
      return Option.some<DecisionDifference>({ ts: y!.ts, symbol: y!.symbol, a: null, b: decisionOf(y!), matched, ended })
    }
    if (x!.action !== y!.action) {
      return Option.some<DecisionDifference>({ ts: x!.ts, symbol: x!.symbol, a: decisionOf(x!), b: decisionOf(y!), matched, ended: null })
    }
    matched++
    left.advance()
    right.advance()
  }
}, storeError("compare the runs' decisions"))
