/**
 * The first schema: every table a run, a strategy and an operator need. Conventions:
 *
 * - Ids are text, chosen by the application (`run_…`, `str_…`, round and order ids from the
 *   agents), so an event names its rows before they are written.
 * - Virtual time (a bar's, a fill's) is `bigint` epoch milliseconds, as in the events; wall time
 *   (when a row was written, when an operator acted) is `timestamptz`.
 * - Money is `bigint` integer micros, as in the ledger: no float ever touches cash in the database.
 * - The event log keeps each event's canonical JSON as text, byte for byte, so the log re-hashes to
 *   the run's checksum (`json` would keep the bytes too, but validates every row: a quarter slower
 *   to load here, for nothing the queries use). A record that is also an event
 *   (opinion, decision, verdict, order, fill, trade) has the columns queries filter on and the
 *   event's `seq`; the whole record is that event's `body`.
 * - Everything of a run is keyed by `(run_id, …)`. The tables a run fills while it goes (events,
 *   rounds, opinions, decisions, verdicts, orders, fills, trades, snapshots) have no foreign keys
 *   and no index but their primary key: one recorder writes them in order, in bulk, and foreign
 *   key triggers halved its load rate. `Runs.remove` deletes a run with all of them.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  // --- who -------------------------------------------------------------------------------------
  yield* sql`create table users (
    id text primary key,
    name text not null unique,
    role text not null check (role in ('admin', 'user')),
    created_at timestamptz not null default now(),
    disabled_at timestamptz
  )`
  // Only a SHA-256 of a key is stored; the prefix lets an operator tell keys apart in a list.
  yield* sql`create table api_keys (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    key_hash text not null unique,
    prefix text not null,
    label text not null default '',
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz
  )`
  yield* sql`create index api_keys_user on api_keys (user_id)`
  // A user's risk defaults across their strategies (a strategy may tighten them, never loosen them).
  yield* sql`create table trading_profiles (
    user_id text primary key references users (id) on delete cascade,
    profile jsonb not null,
    updated_at timestamptz not null default now()
  )`

  // --- strategies ------------------------------------------------------------------------------
  // `run_count` numbers the strategy's runs: `update … set run_count = run_count + 1 returning`
  // takes the row lock, so two concurrent starts never get the same number.
  yield* sql`create table strategies (
    id text primary key,
    owner_id text not null references users (id) on delete cascade,
    name text not null,
    latest_version integer not null default 0,
    run_count integer not null default 0,
    -- The last hash of the strategy's audit chain (one entry per version): deleting its last
    -- entries is then as visible as changing one.
    audit_head text,
    webhook_secret_hash text,
    created_at timestamptz not null default now(),
    deleted_at timestamptz
  )`
  yield* sql`create unique index strategies_owner_name on strategies (owner_id, name) where deleted_at is null`
  // A version is immutable: an update is a new version, and a run records the one it ran.
  yield* sql`create table strategy_versions (
    strategy_id text not null references strategies (id) on delete cascade,
    version integer not null check (version > 0),
    body jsonb not null,
    body_hash text not null,
    note text not null default '',
    created_at timestamptz not null default now(),
    primary key (strategy_id, version)
  )`
  yield* sql`create table rules (
    strategy_id text not null references strategies (id) on delete cascade,
    rule_id text not null,
    kind text not null,
    category text not null,
    priority integer not null,
    active boolean not null,
    body jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (strategy_id, rule_id)
  )`

  // --- runs ------------------------------------------------------------------------------------
  yield* sql`create table runs (
    id text primary key,
    strategy_id text not null references strategies (id) on delete cascade,
    strategy_version integer not null,
    number integer not null,
    owner_id text not null references users (id) on delete cascade,
    mode text not null check (mode in ('backtest', 'paper', 'replay')),
    status text not null check (status in ('running', 'paused', 'completed', 'failed', 'stopped')),
    seed text not null,
    strategy jsonb not null,
    data_source jsonb not null,
    data_fingerprint text not null,
    event_detail text not null,
    -- Crashes injected on purpose (drills, chaos tests), replayed as they were.
    faults jsonb,
    replay_of text references runs (id) on delete set null,
    failure text,
    checksum text,
    -- The event chain's length and last hash when the run ended: deleting its last events is
    -- then as visible as changing one.
    chain_count bigint,
    chain_head text,
    metrics jsonb,
    counts jsonb,
    trading_state text,
    period_from bigint,
    period_to bigint,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    unique (strategy_id, number),
    foreign key (strategy_id, strategy_version) references strategy_versions (strategy_id, version)
  )`
  yield* sql`create index runs_strategy on runs (strategy_id, number desc)`
  yield* sql`create index runs_owner on runs (owner_id, started_at desc)`
  yield* sql`create index runs_unfinished on runs (status) where status in ('running', 'paused')`
  // The leaderboard ranks finished runs by a metric from `metrics`.
  yield* sql`create index runs_finished on runs (strategy_id) where status = 'completed'`

  // The event log, which is also the run's audit chain: every event in sequence order, `body` its
  // canonical JSON line, `hash` = SHA-256(previous event's hash ‖ "\n" ‖ body), 64 zeros before
  // the first. Changing, deleting or reordering a row breaks the chain (src/store/Audit.ts).
  yield* sql`create table run_events (
    run_id text not null,
    seq bigint not null check (seq > 0),
    tag text not null,
    at bigint not null,
    hash text not null,
    body text not null,
    primary key (run_id, seq)
  )`
  // Out of line, uncompressed: compressing every event of a backtest (pglz) cost the database a
  // third of its time and the run a fifth of its speed, for lines that are written once.
  yield* sql`alter table run_events alter column body set storage external`

  // --- what the agents decided -----------------------------------------------------------------
  yield* sql`create table rounds (
    run_id text not null,
    round_id text not null,
    symbol text not null,
    ts bigint not null,
    primary key (run_id, round_id)
  )`
  yield* sql`create table opinions (
    run_id text not null,
    round_id text not null,
    agent text not null,
    seq bigint not null,
    direction text not null,
    confidence double precision not null,
    primary key (run_id, round_id, agent)
  )`
  yield* sql`create table decisions (
    run_id text not null,
    round_id text not null,
    seq bigint not null,
    symbol text not null,
    ts bigint not null,
    action text not null,
    confidence double precision not null,
    primary key (run_id, round_id)
  )`
  // Every rule and gate outcome is in the event; `outcome` is for listing rejections.
  yield* sql`create table verdicts (
    run_id text not null,
    seq bigint not null,
    round_id text not null,
    symbol text not null,
    outcome text not null,
    quantity double precision not null,
    primary key (run_id, seq)
  )`
  yield* sql`create table approvals (
    run_id text not null,
    round_id text not null,
    symbol text not null,
    quantity double precision not null,
    reasons jsonb not null,
    intent jsonb not null,
    status text not null check (status in ('pending', 'approved', 'rejected', 'expired')),
    requested_seq bigint not null,
    expires_at bigint not null,
    resolved_seq bigint,
    resolved_by text,
    reason text,
    primary key (run_id, round_id)
  )`
  yield* sql`create index approvals_pending on approvals (run_id) where status = 'pending'`
  // What an agent thought, with what it looked at (LLM agents write these).
  yield* sql`create table reasoning (
    run_id text not null,
    round_id text,
    agent text not null,
    seq bigint not null,
    kind text not null check (kind in ('plan', 'analysis', 'decision', 'reflection')),
    content text not null,
    context jsonb not null,
    created_at timestamptz not null default now(),
    primary key (run_id, agent, seq)
  )`

  // --- orders and the books --------------------------------------------------------------------
  // The unique idempotency key is what makes a fill land once even across a crash and a resume.
  yield* sql`create table orders (
    run_id text not null,
    order_id text not null,
    idempotency_key text not null,
    seq bigint not null,
    round_id text not null,
    symbol text not null,
    side text not null,
    quantity double precision not null,
    decided_at bigint not null,
    primary key (run_id, order_id),
    unique (run_id, idempotency_key)
  )`
  yield* sql`create table fills (
    run_id text not null,
    fill_id text not null,
    order_id text not null,
    seq bigint not null,
    symbol text not null,
    side text not null,
    quantity double precision not null,
    price double precision not null,
    notional bigint not null,
    commission bigint not null,
    ts bigint not null,
    primary key (run_id, fill_id),
    unique (run_id, order_id)
  )`
  yield* sql`create table trades (
    run_id text not null,
    seq bigint not null,
    symbol text not null,
    side text not null,
    entry_ts bigint not null,
    exit_ts bigint not null,
    pnl bigint not null,
    primary key (run_id, seq)
  )`
  yield* sql`create table equity_snapshots (
    run_id text not null,
    ts bigint not null,
    seq bigint not null,
    cash bigint not null,
    equity bigint not null,
    gross_exposure bigint not null,
    realized_pnl bigint not null,
    unrealized_pnl bigint not null,
    primary key (run_id, seq)
  )`
  // Each snapshot's changed positions (flat ones included): a symbol's latest row is its position.
  yield* sql`create table positions (
    run_id text not null,
    seq bigint not null,
    symbol text not null,
    quantity double precision not null,
    average_price double precision not null,
    realized_pnl bigint not null,
    mark_price double precision not null,
    market_value bigint not null,
    unrealized_pnl bigint not null,
    primary key (run_id, symbol, seq)
  )`
  // A run's state at a point of its feed, enough to go on after the process died.
  yield* sql`create table checkpoints (
    run_id text not null,
    seq bigint not null,
    ts bigint not null,
    state jsonb not null,
    created_at timestamptz not null default now(),
    primary key (run_id, seq)
  )`

  // --- the audit chain of what is not a run -----------------------------------------------------
  // A run's chain is its event log. Changes made outside runs (strategy versions, rules) are chained
  // per stream (`strategy:<id>`): `hash` = SHA-256(previous entry's hash ‖ "\n" ‖ entry), `entry`
  // the change's canonical JSON, kept as text so it re-hashes byte for byte.
  yield* sql`create table audit_log (
    stream text not null,
    position bigint not null check (position > 0),
    kind text not null,
    entry text not null,
    prev_hash text not null,
    hash text not null,
    created_at timestamptz not null default now(),
    primary key (stream, position)
  )`
})
