/**
 * Strategies and their versions. A version is immutable; saving a strategy whose content differs
 * from its latest version makes the next version, and saving the same content again returns the
 * version it already has — so a run records exactly what it ran, and re-running a file does not
 * pile up identical versions. The owner's local operator for command-line runs is `Users.local`.
 */
import { createHash, randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import type { StrategyId } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import { GENESIS, linkHash } from "./RunRecorder.js"
import { storeError } from "./StoreError.js"

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

/** Save `strategy` for `owner` under its name: the latest version if unchanged, else a new one. */
export const saveVersion = Effect.fn("Strategies.saveVersion")(function*(owner: string, strategy: Strategy) {
  const sql = yield* SqlClient.SqlClient
  const body = canonical(strategy)
  const bodyHash = createHash("sha256").update(body).digest("hex")
  return yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`insert into strategies (id, owner_id, name) values (${newStrategyId()}, ${owner}, ${strategy.name})
      on conflict (owner_id, name) where deleted_at is null do nothing`
    // The row lock orders concurrent saves of one strategy.
    const [row] = yield* sql<{ id: StrategyId; latestVersion: number }>`
      select id, latest_version from strategies where owner_id = ${owner} and name = ${strategy.name} and deleted_at is null for update`
    const { id, latestVersion } = row!
    if (latestVersion > 0) {
      const [latest] = yield* sql<{ bodyHash: string }>`
        select body_hash from strategy_versions where strategy_id = ${id} and version = ${latestVersion}`
      if (latest?.bodyHash === bodyHash) return { strategyId: id, version: latestVersion, created: false } satisfies SavedVersion
    }
    const version = latestVersion + 1
    yield* sql`insert into strategy_versions (strategy_id, version, body, body_hash) values (${id}, ${version}, ${body}::jsonb, ${bodyHash})`
    yield* sql`update strategies set latest_version = ${version} where id = ${id}`
    // A new version changes the rules a run is judged by: it is a link of the strategy's audit chain.
    const head = yield* appendAudit(
      `strategy:${id}`,
      "StrategyVersionSaved",
      JSON.stringify({ strategy: id, version, owner, bodyHash, body: JSON.parse(body) })
    )
    yield* sql`update strategies set audit_head = ${head} where id = ${id}`
    return { strategyId: id, version, created: true } satisfies SavedVersion
  }))
}, storeError("save strategy"))
