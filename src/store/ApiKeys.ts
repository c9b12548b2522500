/**
 * API keys: the bearer secrets that stand for a user at the edge. A key is `sk_` and 32 random
 * bytes in base64url, shown once when issued; the database keeps its SHA-256 and its first 10
 * characters (to tell keys apart in a list), never the key.
 */
import { createHash, randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, ParseResult, Schema } from "effect"
import { ApiKey, ApiKeyNotFound, InvalidKeyLabel, KeyLabel, Principal, type Role, Unauthorized, UserNotFound } from "../../schemas/Auth.js"
import { storeError } from "./StoreError.js"
import * as Users from "./Users.js"
import { impossible } from "./Users.js"
import { transaction } from "./Transaction.js"

/** `sk_` + 43 characters of base64url (32 bytes, unpadded). */
const SHAPE = /^sk_[A-Za-z0-9_-]{43}$/
export const KEY_LENGTH = 46
/** How much of a key is stored in clear: `sk_` and 7 characters (42 bits: tells keys apart, gives nothing away). */
export const PREFIX_LENGTH = 10

export const newKeyId = (): string => `key_${randomBytes(6).toString("hex")}`

/** Whether `key` has the shape of a key we issue. Cheap, and checked before anything else: a huge or odd string goes no further. */
export const wellFormed = (key: string): boolean => key.length === KEY_LENGTH && SHAPE.test(key)

/** What the database stores of a key: SHA-256, hex. */
export const hashKey = (key: string): string => createHash("sha256").update(key, "utf8").digest("hex")

const HASH_SHAPE = /^[0-9a-f]{64}$/

/**
 * The one answer to every key that does not authenticate — unknown, revoked, a disabled user's,
 * malformed — so that a caller learns nothing about which it was.
 */
export const refused = (): Unauthorized => new Unauthorized({ reason: "invalid API key" })

export interface Issued {
  readonly id: string
  /** The key itself: shown to its owner now, and never again (only its hash is kept). */
  readonly key: string
  readonly prefix: string
}

const decodeLabel = Schema.decodeUnknown(KeyLabel)

/**
 * A new key for `userId`, labelled. A disabled user can be given one; it works once they are
 * enabled again.
 */
export const issue = Effect.fn("ApiKeys.issue")(function*(userId: string, label = "") {
  const sql = yield* SqlClient.SqlClient
  const validLabel = yield* decodeLabel(label).pipe(
    // The schema's own words, not its tree ("{ maxLength(100) & … }\n└─ Predicate refinement failure\n   └─ …").
    Effect.mapError((error) => new InvalidKeyLabel({ reason: ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.message ?? "is not a key label" }))
  )
  if (impossible(userId)) return yield* new UserNotFound({ user: userId.slice(0, 64) })
  const key = `sk_${randomBytes(32).toString("base64url")}`
  const id = newKeyId()
  const prefix = key.slice(0, PREFIX_LENGTH)
  const inserted = yield* sql`insert into api_keys (id, user_id, key_hash, prefix, label)
    select ${id}, u.id, ${hashKey(key)}, ${prefix}, ${validLabel} from users u where u.id = ${userId}
    returning id`
  if (inserted.length === 0) return yield* new UserNotFound({ user: userId })
  return { id, key, prefix } satisfies Issued
}, storeError("issue an API key"))

/**
 * A new user and their first key, in one transaction: if the key cannot be issued, no keyless
 * user is left holding the name.
 */
export const createUserWithKey = Effect.fn("ApiKeys.createUserWithKey")(function*(name: string, role: Role, label: string) {
  const sql = yield* SqlClient.SqlClient
  return yield* transaction(sql, Effect.gen(function*() {
    const user = yield* Users.create(name, role)
    const issued = yield* issue(user.id, label)
    return { user, issued }
  }))
}, storeError("create a user"))

/**
 * The principal a key's hash stands for, or `Unauthorized`. For callers that hash once and cache
 * by the hash (`AuthLive.ts`); `authenticate` is the same from the key.
 *
 * The key is found by an index lookup of its hash, not by comparing secrets: timing can at most
 * tell an attacker something about SHA-256 of their guess, which says nothing about a real key,
 * so a constant-time comparison would protect nothing here.
 *
 * `last_used_at` is written at most once a minute per key (the `stale` test, repeated in the
 * update so that concurrent requests write it once): an SSE reconnect storm or a busy client must
 * not turn every read into a write.
 */
export const authenticateHash = Effect.fn("ApiKeys.authenticateHash")(function*(keyHash: string) {
  const sql = yield* SqlClient.SqlClient
  if (!HASH_SHAPE.test(keyHash)) return yield* refused()
  const [row] = yield* sql<{ keyId: string; userId: string; name: string; role: Role; stale: boolean }>`
    select k.id as key_id, u.id as user_id, u.name, u.role,
      (k.last_used_at is null or k.last_used_at < now() - interval '1 minute') as stale
    from api_keys k join users u on u.id = k.user_id
    where k.key_hash = ${keyHash} and k.revoked_at is null and u.disabled_at is null`
  if (row === undefined) return yield* refused()
  if (row.stale) {
    yield* sql`update api_keys set last_used_at = now()
      where id = ${row.keyId} and (last_used_at is null or last_used_at < now() - interval '1 minute')`
  }
  return new Principal({ userId: row.userId, name: row.name, role: row.role })
}, storeError("authenticate an API key"))

/** The principal of a presented key (as typed: `sk_…`), or `Unauthorized` — the same for every kind of bad key. */
export const authenticate = Effect.fn("ApiKeys.authenticate")(function*(key: string) {
  if (!wellFormed(key)) return yield* refused()
  return yield* authenticateHash(hashKey(key))
})

interface Row {
  readonly id: string
  readonly userId: string
  readonly prefix: string
  readonly label: string
  readonly createdAt: Date
  readonly lastUsedAt: Date | null
  readonly revokedAt: Date | null
}

const COLUMNS = "id, user_id, prefix, label, created_at, last_used_at, revoked_at"

/** A user's keys, revoked ones too, oldest first: never a key nor a hash. */
export const list = Effect.fn("ApiKeys.list")(function*(userId: string) {
  const sql = yield* SqlClient.SqlClient
  if (impossible(userId)) return []
  const rows = yield* sql<Row>`select ${sql.literal(COLUMNS)} from api_keys where user_id = ${userId} order by created_at, id`
  return rows.map((row) => new ApiKey(row))
}, storeError("list API keys"))

/**
 * Revoke a key, as `asker` (a user id): their own, or anyone's if they are an enabled admin (the
 * role as the database has it now, not as a cached principal had it). Someone else's key is
 * `ApiKeyNotFound`, exactly like a key that does not exist. Revoking a revoked key keeps its first
 * `revokedAt`. The edge's cache of keys is told by the caller (`admin.revokeKey`: `AuthLive.ts`).
 */
export const revoke = Effect.fn("ApiKeys.revoke")(function*(keyId: string, asker: string) {
  const sql = yield* SqlClient.SqlClient
  if (impossible(keyId) || impossible(asker)) return yield* new ApiKeyNotFound({ key: keyId.slice(0, 64) })
  return yield* transaction(sql, Effect.gen(function*() {
    // The last unrevoked key of the last admin who can sign in would leave nobody to administer the server.
    const admins = yield* Users.signingInAdmins
    const [row] = yield* sql<Row>`update api_keys set revoked_at = coalesce(revoked_at, now())
      where id = ${keyId} and (user_id = ${asker}
        or exists (select 1 from users a where a.id = ${asker} and a.role = 'admin' and a.disabled_at is null))
      returning ${sql.literal(COLUMNS)}`
    if (row === undefined) return yield* new ApiKeyNotFound({ key: keyId })
    if (admins.length === 1 && admins[0]!.id === row.userId) {
      const [left] = yield* sql<{ n: number }>`select count(*)::int as n from api_keys where user_id = ${row.userId} and revoked_at is null`
      // Undone with the transaction.
      if (left!.n === 0) return yield* new Users.LastAdmin({ user: admins[0]!.name, key: row.id })
    }
    return new ApiKey(row)
  }))
}, storeError("revoke an API key"))
