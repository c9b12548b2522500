/**
 * Strategies and their versions. A version is immutable; saving a strategy whose content differs
 * from its latest version makes the next version, and saving the same content again returns the
 * version it already has — so a run records exactly what it ran, and re-running a file does not
 * pile up identical versions. The owner's local operator for command-line runs is `Users.local`.
 */
import { createHash, randomBytes } from "node:crypto"
import { SqlClient, type SqlError } from "@effect/sql"
import { Effect, Schema } from "effect"
import type { StrategyId } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import { GENESIS, linkHash } from "./RunRecorder.js"
import { Conflict, StrategyNotFound } from "../../schemas/Rpc.js"
import { CorruptRecord, storeError } from "./StoreError.js"
import { oneLineOf } from "../internal/issues.js"
import { transaction } from "./Transaction.js"
import { decodedByText } from "./DecodedText.js"

const encode = Schema.encodeSync(Strategy)

/** The canonical JSON of a strategy: its encoded form with every default filled in. */
export const canonical = (strategy: Strategy): string => JSON.stringify(encode(strategy))

export const newStrategyId = (): StrategyId => `str_${randomBytes(6).toString("hex")}` as StrategyId

export interface SavedVersion {
  readonly strategyId: StrategyId
  readonly version: number
  /** False when the content was already the latest version. */
  readonly created: boolean
}

/**
 * Append an entry to an `audit_log` stream, linked to the stream's last entry. Call it inside the
 * transaction that makes the change, holding a lock that orders the stream's writers.
 */
export const appendAudit = Effect.fn("Audit.append")(function*(stream: string, kind: string, entry: string) {
  const sql = yield* SqlClient.SqlClient
  const [last] = yield* sql<{ position: number; hash: string }>`
    select position, hash from audit_log where stream = ${stream} order by position desc limit 1`
  const prevHash = last?.hash ?? GENESIS
  const hash = linkHash(prevHash, entry)
  yield* sql`insert into audit_log (stream, position, kind, entry, prev_hash, hash)
    values (${stream}, ${(last?.position ?? 0) + 1}, ${kind}, ${entry}, ${prevHash}, ${hash})`
  return hash
})

/**
 * Who made a version, when not its owner, and from what: an admin applying a rule the chat suggested
 * for another user's run. Recorded in the version's audit entry, so the chain says who changed the
 * rules a run is judged by.
 */
export interface Provenance {
  /** The user who made the change. */
  readonly by: string
  /** The suggestion applied, and the run it was suggested for. */
  readonly suggestion?: { readonly run: string; readonly id: string }
}

/**
 * The next version of strategy `id` (its row locked by the caller's transaction, `latestVersion`
 * read under that lock): none when `strategy` is its latest content.
 */
const saveVersionOf = (id: StrategyId, latestVersion: number, owner: string, strategy: Strategy, provenance?: Provenance) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const body = canonical(strategy)
    const bodyHash = createHash("sha256").update(body).digest("hex")
    if (latestVersion > 0) {
      const [latest] = yield* sql<{ bodyHash: string }>`
        select body_hash from strategy_versions where strategy_id = ${id} and version = ${latestVersion}`
      if (latest?.bodyHash === bodyHash) return { strategyId: id, version: latestVersion, created: false } satisfies SavedVersion
    }
    const version = latestVersion + 1
    yield* sql`insert into strategy_versions (strategy_id, version, body, body_hash) values (${id}, ${version}, ${body}::jsonb, ${bodyHash})`
    yield* sql`update strategies set latest_version = ${version} where id = ${id}`
    // A new version changes the rules a run is judged by: it is a link of the strategy's audit chain.
    // `by` and `suggestion` only when given, so the entries of an owner's own saves read as they did.
    const made = provenance === undefined
      ? {}
      : { ...(provenance.by === owner ? {} : { by: provenance.by }), ...(provenance.suggestion === undefined ? {} : { suggestion: provenance.suggestion }) }
    const head = yield* appendAudit(
      `strategy:${id}`,
      "StrategyVersionSaved",
      JSON.stringify({ strategy: id, version, owner, ...made, bodyHash, body: JSON.parse(body) })
    )
    yield* sql`update strategies set audit_head = ${head} where id = ${id}`
    return { strategyId: id, version, created: true } satisfies SavedVersion
  })

/** Save `strategy` for `owner` under its name: the latest version if unchanged, else a new one. */
export const saveVersion = Effect.fn("Strategies.saveVersion")(function*(owner: string, strategy: Strategy) {
  const sql = yield* SqlClient.SqlClient
  return yield* transaction(sql, Effect.gen(function*() {
    yield* sql`insert into strategies (id, owner_id, name) values (${newStrategyId()}, ${owner}, ${strategy.name})
      on conflict (owner_id, name) where deleted_at is null do nothing`
    // The row lock orders concurrent saves of one strategy.
    const [row] = yield* sql<{ id: StrategyId; latestVersion: number }>`
      select id, latest_version from strategies where owner_id = ${owner} and name = ${strategy.name} and deleted_at is null for update`
    return yield* saveVersionOf(row!.id, row!.latestVersion, owner, strategy)
  }))
}, storeError("save strategy"))

/** Strategy bodies by their stored text (`body::text`): decoding one cost ten times reading it. */
const decodeBody = decodedByText(Strategy, 512)

export interface Found {
  readonly id: StrategyId
  readonly name: string
  readonly version: number
  readonly strategy: Strategy
  /** Set when a save changed nothing: `version` is the latest as it was, and no version was made. */
  readonly unchanged?: true
}

/** `owner`'s strategy `ref` (id or name) at `version` (default its latest), its row locked for the transaction when `lock`. */
const read = (owner: string, ref: string, version: number | undefined, lock: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    let which = sql`(s.id = ${ref} or s.name = ${ref})`
    if (lock) {
      // The row alone: a lock taken through the join would, after waiting for another change to
      // commit, recheck the join against the new latest version and find no row at all.
      const [locked] = yield* sql<{ id: StrategyId }>`
        select id from strategies where (id = ${ref} or name = ${ref}) and owner_id = ${owner} and deleted_at is null
        limit 1 for update`
      if (locked === undefined) return yield* new StrategyNotFound({ strategy: ref })
      which = sql`s.id = ${locked.id}`
    }
    const [row] = yield* sql<{ id: StrategyId; name: string; version: number; body: string }>`
      select s.id, s.name, v.version, v.body::text as body from strategies s
      join strategy_versions v on v.strategy_id = s.id and v.version = ${version ?? sql`s.latest_version`}
      where ${which} and s.owner_id = ${owner} and s.deleted_at is null
      limit 1`
    if (row === undefined) {
      // The strategy may be there without that version: say so, with the versions it has.
      const [latest] = version === undefined ? [] : yield* sql<{ latestVersion: number }>`
        select s.latest_version from strategies s where ${which} and s.owner_id = ${owner} and s.deleted_at is null limit 1`
      return yield* new StrategyNotFound({ strategy: ref, ...(latest === undefined ? {} : { version: version!, latestVersion: latest.latestVersion }) })
    }
    const strategy = yield* decodeBody(row.body).pipe(
      Effect.mapError((error) =>
        new CorruptRecord({ table: "strategy_versions", key: `${row.id}@${row.version}`, column: "body", reason: oneLineOf(error) })
      )
    )
    return { id: row.id, name: row.name, version: row.version, strategy } satisfies Found
  })

/**
 * A strategy of `owner` by id or name, at `version` (default its latest): `StrategyNotFound` for
 * one that does not exist, is deleted, or is someone else's — the same answer.
 */
export const find = Effect.fnUntraced(function*(owner: string, ref: string, version?: number) {
  return yield* read(owner, ref, version, false)
}, storeError("read a strategy"), Effect.withSpan("Strategies.find")) // fnUntraced: Effect.fn makes an Error per call, for its span's stack

/** Postgres's unique_violation: a concurrent save took the name first. */
const nameTaken = (name: string) => (error: SqlError.SqlError): Effect.Effect<never, Conflict | SqlError.SqlError> =>
  (error.cause as { readonly code?: unknown } | undefined)?.code === "23505"
    ? Effect.fail(new Conflict({ reason: `a strategy named "${name}" exists` }))
    : Effect.fail(error)

/** A new strategy: `Conflict` when the owner already has one of that name. */
export const create = Effect.fn("Strategies.create")(function*(owner: string, strategy: Strategy) {
  const sql = yield* SqlClient.SqlClient
  return yield* transaction(sql, Effect.gen(function*() {
    // The name's unique index decides between concurrent creates: one row, the others Conflict.
    const [made] = yield* sql<{ id: StrategyId }>`
      insert into strategies (id, owner_id, name) values (${newStrategyId()}, ${owner}, ${strategy.name})
      on conflict (owner_id, name) where deleted_at is null do nothing returning id`
    if (made === undefined) return yield* new Conflict({ reason: `a strategy named "${strategy.name}" exists (update it instead)` })
    const saved = yield* saveVersionOf(made.id, 0, owner, strategy)
    return { id: saved.strategyId, name: strategy.name, version: saved.version, strategy } satisfies Found
  }))
}, storeError("create a strategy"))

/**
 * A new version of `owner`'s strategy `ref`, made by `change` from its latest version, in one
 * transaction holding the strategy's row: concurrent changes (two rules put at once) each see the
 * other's version, none is lost, and a failure leaves the strategy as it was — its name included.
 * The name may change, unless another strategy has it (`Conflict`). `provenance`, when someone other
 * than the owner makes the change or it comes from a suggestion, goes in the version's audit entry.
 */
export const modify = <E, R>(
  owner: string,
  ref: string,
  change: (current: Found) => Effect.Effect<Strategy, E, R>,
  provenance?: Provenance
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* transaction(sql, Effect.gen(function*() {
      const current = yield* read(owner, ref, undefined, true)
      const strategy = yield* change(current)
      if (strategy.name !== current.name) {
        const [taken] = yield* sql<{ id: string }>`
          select id from strategies where owner_id = ${owner} and name = ${strategy.name} and deleted_at is null`
        if (taken !== undefined) return yield* new Conflict({ reason: `a strategy named "${strategy.name}" exists` })
        yield* sql`update strategies set name = ${strategy.name} where id = ${current.id}`.pipe(Effect.catchTag("SqlError", nameTaken(strategy.name)))
      }
      // Read under the row's lock: `current.version` is the latest, and stays so until this commits.
      const saved = yield* saveVersionOf(current.id, current.version, owner, strategy, provenance)
      return { id: saved.strategyId, name: strategy.name, version: saved.version, strategy, ...(saved.created ? {} : { unchanged: true as const }) } satisfies Found
    }))
  }).pipe(storeError("update a strategy"), Effect.withSpan("Strategies.modify"))

/**
 * A new version of an existing strategy (its name may change, unless another strategy has it). With
 * `ifVersion`, only while that is its latest version: `Conflict` once another change came first —
 * or when it names a version the strategy does not have yet, which no edit was made from.
 */
export const update = (owner: string, ref: string, strategy: Strategy, ifVersion?: number) =>
  modify(owner, ref, (current) =>
    ifVersion === undefined || current.version === ifVersion
      ? Effect.succeed(strategy)
      : Effect.fail(
        new Conflict({
          reason: ifVersion > current.version
            ? `strategy ${current.name} has no version ${ifVersion} yet (its latest is ${current.version}); show it and redo the change from there`
            : `strategy ${current.name} is at version ${current.version} now, not ${ifVersion}: it changed since; show it again and redo the change`
        })
      ))

export interface Listed {
  readonly id: StrategyId
  readonly name: string
  readonly latestVersion: number
  readonly runs: number
  readonly createdAt: Date
}

export const list = Effect.fn("Strategies.list")(function*(owner: string) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ id: StrategyId; name: string; latestVersion: number; runCount: number; createdAt: Date }>`
    select id, name, latest_version, run_count, created_at from strategies
    where owner_id = ${owner} and deleted_at is null order by name`.pipe(
    Effect.map((rows) => rows.map((r): Listed => ({ id: r.id, name: r.name, latestVersion: r.latestVersion, runs: r.runCount, createdAt: r.createdAt })))
  )
}, storeError("list strategies"))

/** Most unfinished runs a refused delete names; the rest are counted. */
const NAMED_RUNS = 3

/** Why a strategy with unfinished runs cannot be deleted: those runs, as `<strategy>#<n> (<id>)`, and how to end them. */
const unfinished = (name: string, runs: ReadonlyArray<{ readonly id: string; readonly number: number }>): string => {
  const named = runs.slice(0, NAMED_RUNS).map((run) => `${name}#${run.number} (${run.id})`).join(", ")
  const more = runs.length > NAMED_RUNS ? ` and ${runs.length - NAMED_RUNS} more` : ""
  return runs.length === 1
    ? `strategy ${name} has an unfinished run, ${named}: stop it first (runs.stop)`
    : `strategy ${name} has ${runs.length} unfinished runs, ${named}${more}: stop them first (runs.stop)`
}

/** Delete (keep its versions and runs for the record): `Conflict` while one of its runs is unfinished. */
export const remove = Effect.fn("Strategies.remove")(function*(owner: string, ref: string) {
  const sql = yield* SqlClient.SqlClient
  const current = yield* find(owner, ref)
  yield* transaction(sql, Effect.gen(function*() {
    // Under the row's lock, which a run's creation takes too (`Runs.create`): a run created first
    // is counted here, and one created after finds the strategy deleted.
    const [locked] = yield* sql<{ id: string }>`select id from strategies where id = ${current.id} and deleted_at is null for update`
    if (locked === undefined) return yield* new StrategyNotFound({ strategy: ref })
    const live = yield* sql<{ id: string; number: number }>`
      select id, number from runs where strategy_id = ${current.id} and status in ('running', 'paused') order by number`
    if (live.length > 0) return yield* new Conflict({ reason: unfinished(current.name, live) })
    yield* sql`update strategies set deleted_at = now() where id = ${current.id}`
  }))
}, storeError("delete a strategy"))
