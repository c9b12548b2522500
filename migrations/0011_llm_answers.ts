/**
 * The LLM answer cache in the database (src/llm/SqlAnswerCache.ts), for a process without Redis: a
 * model's answer to a prompt over a data window outlives the process that asked, so a second
 * `swarm backtest` of the same strategy and data, or a restarted `swarm serve`, asks the model
 * nothing it already answered. Keyed by the sha256 of the cache's key (model, prompt hash, window:
 * the key joins them with NUL, which a text column cannot hold), those three beside it to read; the
 * answer as JSON text (its escapes keep a NUL or a lone surrogate of a model's answer exact, which
 * text or jsonb would refuse); expiry in epoch milliseconds, indexed for the sweep.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table llm_answers (
    key text primary key,
    model text not null,
    prompt_hash text not null,
    data_window text not null,
    answer text not null,
    tokens_in integer not null,
    tokens_out integer not null,
    expires_at bigint not null,
    created_at timestamptz not null default now()
  )`
  yield* sql`create index llm_answers_expires_at on llm_answers (expires_at)`
})
