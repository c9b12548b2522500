/**
 * The system agent's chat (issue 6): one session per run, its messages in order, and every model
 * call an answer took (the `LlmCall` record, as runs keep theirs in their events).
 *
 * - A session goes with its run (`on delete cascade`): `Runs.remove` deletes the `runs` row last,
 *   and the chat with it. The owner is the run's.
 * - Messages are numbered per session from 1; the session row's lock orders their writers.
 * - Model text can hold what Postgres text refuses (NUL, lone surrogates): the repository replaces
 *   those before writing, so a hostile model answer is stored, not an error.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table chat_sessions (
    id text primary key,
    run_id text not null unique references runs (id) on delete cascade,
    owner_id text not null references users (id) on delete cascade,
    created_at timestamptz not null default now()
  )`
  yield* sql`create table chat_messages (
    session_id text not null references chat_sessions (id) on delete cascade,
    seq integer not null check (seq > 0),
    role text not null check (role in ('user', 'assistant', 'tool')),
    content text not null,
    tool_calls jsonb,
    tool_name text,
    backend text,
    model text,
    tokens_in integer not null default 0 check (tokens_in >= 0),
    tokens_out integer not null default 0 check (tokens_out >= 0),
    error text,
    created_at timestamptz not null default now(),
    primary key (session_id, seq)
  )`
  // `question`: the message number of the question the call answered.
  yield* sql`create table chat_llm_calls (
    session_id text not null references chat_sessions (id) on delete cascade,
    seq integer not null check (seq > 0),
    question integer,
    body jsonb not null,
    created_at timestamptz not null default now(),
    primary key (session_id, seq)
  )`
})
