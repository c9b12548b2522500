/**
 * TradingView webhooks (docs/webhooks.md): each strategy's webhook secret and the keys of the
 * alerts it has accepted.
 *
 * - Only a SHA-256 of a secret is stored, as for API keys: the secret is shown once, when it is
 *   made or rotated. (A secret is 32 random bytes, so a fast hash is enough.) The prefix lets its
 *   owner tell which secret a TradingView alert holds. This table replaces the unused
 *   `strategies.webhook_secret_hash`, so there is one place a secret can be.
 * - An alert's key is unique per strategy: the insert that finds it taken is a repeat, acknowledged
 *   and not delivered again — across restarts, and across processes sharing a Postgres server.
 *   `runs` names the runs it was delivered to.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table webhook_secrets (
    strategy_id text primary key references strategies (id) on delete cascade,
    secret_hash text not null unique,
    prefix text not null,
    created_at timestamptz not null default now(),
    rotated_at timestamptz
  )`
  yield* sql`alter table strategies drop column webhook_secret_hash`
  yield* sql`create table webhook_alerts (
    strategy_id text not null references strategies (id) on delete cascade,
    alert_key text not null,
    runs jsonb not null,
    received_at timestamptz not null default now(),
    primary key (strategy_id, alert_key)
  )`
})
