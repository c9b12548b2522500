/**
 * The model calls a run made (its `LlmCalled` events) and the language model its `RunStarted`
 * named, read back for a re-execution: a replay answers every call from them and calls no model; a
 * resume answers the recorded ones from them and asks the live model only past them.
 */
import { SqlClient } from "@effect/sql"
import { Effect, ParseResult, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import type { LlmCall } from "../../schemas/Llm.js"
import { LlmCalled, RunStarted } from "../../schemas/RunEvent.js"
import { CorruptRecord, storeError } from "./StoreError.js"
import { oneLineOf } from "../internal/issues.js"

type StartedLlm = (typeof RunStarted.Type)["llm"]

export interface Recorded {
  readonly calls: ReadonlyArray<LlmCall>
  /** What `RunStarted` said of the run's language model (absent: the run had no LLM agents). */
  readonly started: StartedLlm
}

const decodeCall = Schema.decodeUnknown(Schema.parseJson(LlmCalled))
const decodeStarted = Schema.decodeUnknown(Schema.parseJson(RunStarted))

/** The calls `run` recorded, in sequence order. */
export const read = Effect.fn("RecordedLlmCalls.read")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ seq: number; tag: string; body: string }>`
    select seq, tag, body from run_events where run_id = ${run} and (tag = 'LlmCalled' or seq = 1)
    order by seq`
  const corrupt = (seq: number) => (error: ParseResult.ParseError) =>
    new CorruptRecord({ table: "run_events", key: `${run}#${seq}`, column: "body", reason: oneLineOf(error) })
  const calls: Array<LlmCall> = []
  let started: StartedLlm
  for (const row of rows) {
    if (row.tag === "RunStarted") started = (yield* decodeStarted(row.body).pipe(Effect.mapError(corrupt(row.seq)))).llm
    else if (row.tag === "LlmCalled") calls.push((yield* decodeCall(row.body).pipe(Effect.mapError(corrupt(row.seq)))).call)
  }
  return { calls, started } satisfies Recorded
}, storeError("read a run's model calls"))

/** What a run's recorded model calls spent: tokens in and out together, and cost (0 when not priced). */
export interface Spent {
  readonly tokens: number
  readonly cost: number
}

/** What `run`'s model calls spent, as recorded (its `LlmCalled` events): what its chat spends on top of. */
export const spent = Effect.fn("RecordedLlmCalls.spent")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ tokens: string | number | null; cost: string | number | null }>`
    select sum(coalesce((c->>'tokensIn')::bigint, 0) + coalesce((c->>'tokensOut')::bigint, 0)) as tokens,
           sum(coalesce((c->>'cost')::float8, 0)) as cost
    from (select body::jsonb->'call' as c from run_events where run_id = ${run} and tag = 'LlmCalled') calls`
  return { tokens: Number(row?.tokens ?? 0), cost: Number(row?.cost ?? 0) } satisfies Spent
}, storeError("read what a run's model calls spent"))
