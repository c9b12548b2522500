/**
 * Totals a run's events add up to, a row per agent, kept by the recorder as the events come
 * (src/store/RunRecorder.ts `SUMMED`): `agent_restarts`, how often each agent crashed and was
 * restarted, with the first line of its last crash's cause; `llm_usage`, each LLM agent's model
 * calls by backend and model — calls, cache hits, refusals, failures, tokens and cost (in
 * billionths of the strategy's currency, so that sums are exact in any order). `runs show` reads
 * them instead of every event of a run of millions; `audit verify` holds them to the events.
 *
 * The runs recorded before get theirs from their events here, added up by the recorder's own
 * projection (in the process, not in SQL: an event's line may hold what `jsonb` refuses, a NUL of
 * a model's answer), a page of events at a time.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { project, SUMMED_TABLES, type SummedTable, Sums, TABLES } from "../src/store/RunRecorder.js"
import type { RunEvent } from "../schemas/RunEvent.js"

const PAGE = 2_000
/** Rows a statement inserts at most. */
const CHUNK = 500

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table agent_restarts (
    run_id text not null,
    agent text not null,
    crashes bigint not null,
    restarts bigint not null,
    last_seq bigint,
    last_cause text,
    primary key (run_id, agent)
  )`
  yield* sql`create table llm_usage (
    run_id text not null,
    agent text not null,
    backend text not null,
    model text not null,
    calls bigint not null,
    cache_hits bigint not null,
    refused bigint not null,
    failed bigint not null,
    budget_spent bigint not null,
    tokens_in bigint not null,
    tokens_out bigint not null,
    cost_nanos bigint not null,
    primary key (run_id, agent, backend, model)
  )`

  const sums: Record<SummedTable, Sums> = { agent_restarts: new Sums("agent_restarts"), llm_usage: new Sums("llm_usage") }
  let after: readonly [string, number] = ["", 0]
  for (;;) {
    const rows = yield* sql<{ runId: string; seq: number | string; body: string }>`
      select run_id, seq, body from run_events
      where tag in ('AgentLifecycle', 'LlmCalled') and (run_id, seq) > (${after[0]}, ${after[1]})
      order by run_id, seq limit ${PAGE}`
    for (const row of rows) {
      const event = JSON.parse(row.body) as RunEvent
      project(event, (table, values) => {
        if (table === "agent_restarts" || table === "llm_usage") sums[table].add(values, event.seq)
      })
    }
    const last = rows.at(-1)
    if (last === undefined || rows.length < PAGE) break
    after = [last.runId, Number(last.seq)]
  }
  for (const table of SUMMED_TABLES) {
    const rows = sums[table].values()
    const columns = TABLES[table]
    for (let start = 0; start < rows.length; start += CHUNK) {
      const part = rows.slice(start, start + CHUNK)
      yield* sql`insert into ${sql(table)} ${sql.insert(part.map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i]]))))}`
    }
  }
})
