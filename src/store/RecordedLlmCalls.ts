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
    new CorruptRecord({ table: "run_events", key: `${run}#${seq}`, column: "body", reason: ParseResult.TreeFormatter.formatErrorSync(error) })
  const calls: Array<LlmCall> = []
  let started: StartedLlm
  for (const row of rows) {
    if (row.tag === "RunStarted") started = (yield* decodeStarted(row.body).pipe(Effect.mapError(corrupt(row.seq)))).llm
    else if (row.tag === "LlmCalled") calls.push((yield* decodeCall(row.body).pipe(Effect.mapError(corrupt(row.seq)))).call)
  }
  return { calls, started } satisfies Recorded
}, storeError("read a run's model calls"))
