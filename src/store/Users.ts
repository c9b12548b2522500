/**
 * Users. The command line works on a local database without logging in: its runs and strategies
 * belong to `local`, an admin created on first use. The server's API keys (`ApiKeys.ts`) map to
 * users in the same table; a disabled user keeps their rows, but their keys stop working.
 */
import { randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Data, Effect, Schema } from "effect"
import { InvalidUserName, type Role, User, UserExists, UserName, UserNotFound } from "../../schemas/Auth.js"
import { oneLineOf } from "../internal/issues.js"
import { storeError } from "./StoreError.js"
import { transaction } from "./Transaction.js"

/** The owner of what the command line does without a server. */
export const LOCAL = "local"

/** Make sure the `local` user exists; returns its id. */
export const ensureLocal = Effect.fn("Users.ensureLocal")(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`insert into users (id, name, role) values (${LOCAL}, ${LOCAL}, 'admin') on conflict (id) do nothing`
  return LOCAL
}, storeError("create the local user"))

export const newUserId = (): string => `usr_${randomBytes(6).toString("hex")}`

interface Row {
  readonly id: string
  readonly name: string
  readonly role: Role
  readonly createdAt: Date
  readonly disabledAt: Date | null
}

const userOf = (row: Row) => new User(row)

const COLUMNS = "id, name, role, created_at, disabled_at"

/**
 * An id or a name no row can have: too long for any id we make or name we accept, or holding a
 * NUL (which Postgres text refuses with an error, where the asker must get "no such user").
 */
export const impossible = (text: string): boolean => text.length > 200 || text.includes("\u0000")

const decodeName = Schema.decodeUnknown(UserName)

/**
 * A new user. The name is checked (`UserName`); a name already taken — `local` included, even
 * before the command line has made that user, so that `ensureLocal` never collides — is `UserExists`.
 */
export const create = Effect.fn("Users.create")(function*(name: string, role: Role = "user") {
  const sql = yield* SqlClient.SqlClient
  const valid = yield* decodeName(name).pipe(
    // One line in the schema's own words (its field, were it one), not Effect's tree of type names and indented lines.
    Effect.mapError((error) => new InvalidUserName({ reason: oneLineOf(error) }))
  )
  if (valid === LOCAL) return yield* new UserExists({ name: valid })
  // `on conflict do nothing` rather than catching the unique violation: inside a caller's
  // transaction a violation would abort the whole transaction.
  const [row] = yield* sql<Row>`insert into users (id, name, role) values (${newUserId()}, ${valid}, ${role})
    on conflict (name) do nothing returning ${sql.literal(COLUMNS)}`
  if (row === undefined) return yield* new UserExists({ name: valid })
  return userOf(row)
}, storeError("create a user"))

/** A user by id. */
export const get = Effect.fn("Users.get")(function*(id: string) {
  const sql = yield* SqlClient.SqlClient
  if (impossible(id)) return yield* new UserNotFound({ user: id.slice(0, 64) })
  const [row] = yield* sql<Row>`select ${sql.literal(COLUMNS)} from users where id = ${id}`
  if (row === undefined) return yield* new UserNotFound({ user: id })
  return userOf(row)
}, storeError("read a user"))

/** A user by name. */
export const getByName = Effect.fn("Users.getByName")(function*(name: string) {
  const sql = yield* SqlClient.SqlClient
  if (impossible(name)) return yield* new UserNotFound({ user: name.slice(0, 64) })
  const [row] = yield* sql<Row>`select ${sql.literal(COLUMNS)} from users where name = ${name}`
  if (row === undefined) return yield* new UserNotFound({ user: name })
  return userOf(row)
}, storeError("read a user"))

/** Every user, disabled ones too, oldest first. */
export const list = Effect.fn("Users.list")(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Row>`select ${sql.literal(COLUMNS)} from users order by created_at, name`
  return rows.map(userOf)
}, storeError("list users"))

/** Update one user's row with `set`; the user as it is afterwards, or `UserNotFound`. */
const update = (id: string, set: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<Row>, SqlError>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (impossible(id)) return yield* new UserNotFound({ user: id.slice(0, 64) })
    const [row] = yield* set(sql)
    if (row === undefined) return yield* new UserNotFound({ user: id })
    return userOf(row)
  })

/**
 * Make a user an admin or a plain user. The edge's cache of principals is told by the caller
 * (`admin.setUser`: `AuthLive.ts`).
 */
export const setRole = Effect.fn("Users.setRole")(function*(id: string, role: Role) {
  return yield* update(id, (sql) => sql<Row>`update users set role = ${role} where id = ${id} returning ${sql.literal(COLUMNS)}`)
}, storeError("set a user's role"))

/**
 * Disable a user: their keys stop authenticating (the edge's cache told by the caller,
 * `admin.setUser`: `AuthLive.ts`); what they own stays. Disabling a disabled user keeps the first `disabledAt`.
 */
export const disable = Effect.fn("Users.disable")(function*(id: string) {
  return yield* update(
    id,
    (sql) => sql<Row>`update users set disabled_at = coalesce(disabled_at, now()) where id = ${id} returning ${sql.literal(COLUMNS)}`
  )
}, storeError("disable a user"))

/** Enable a disabled user again: their keys that were not revoked work again. */
export const enable = Effect.fn("Users.enable")(function*(id: string) {
  return yield* update(id, (sql) => sql<Row>`update users set disabled_at = null where id = ${id} returning ${sql.literal(COLUMNS)}`)
}, storeError("enable a user"))

/** The change would leave no enabled admin who can sign in: nobody could administer the server any more. */
export class LastAdmin extends Data.TaggedError("LastAdmin")<{ readonly user: string; readonly key?: string }> {
  override get message(): string {
    return this.key === undefined
      ? `${this.user} is the last enabled admin with an API key: make another user an admin first`
      : `${this.key} is the last API key of ${this.user}, the last enabled admin with one: issue them another key first`
  }
}

/**
 * The enabled admins holding an unrevoked API key — those who can sign in to a server. For use
 * inside a transaction: it takes a lock that every such check takes first, held to the end of the
 * transaction, so a demotion and a key's revocation at once (which lock different rows) cannot
 * both see the other's admin still there.
 */
export const signingInAdmins = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.zipRight(
    sql`select pg_advisory_xact_lock(hashtextextended('swarm-signing-in-admins', 0))`,
    sql<{ id: string; name: string }>`
      select u.id, u.name from users u
      where u.role = 'admin' and u.disabled_at is null
        and exists (select 1 from api_keys k where k.user_id = u.id and k.revoked_at is null)
      order by u.id`
  ))

/**
 * Change a user's role and whether they are disabled, at once; the user as they are afterwards.
 * Refused (`LastAdmin`) if it would leave no enabled admin holding an unrevoked API key: only
 * such an admin can sign in to a server. The command line's `local` admin has no key (it acts on
 * the database, not through a server), nor may an admin whose keys were all revoked; counting
 * them let the server's one real admin be demoted and locked out. The check holds a lock while
 * it decides, so two admins demoting each other at once cannot both succeed.
 */
export const change = Effect.fn("Users.change")(function*(id: string, to: { readonly role?: Role; readonly disabled?: boolean }) {
  const sql = yield* SqlClient.SqlClient
  return yield* transaction(sql, Effect.gen(function*() {
    const admins = yield* signingInAdmins
    const stepsDown = to.role === "user" || to.disabled === true
    if (stepsDown && admins.length === 1 && admins[0]!.id === id) return yield* new LastAdmin({ user: admins[0]!.name })
    let user = yield* get(id)
    if (to.role !== undefined) user = yield* setRole(id, to.role)
    if (to.disabled === true) user = yield* disable(id)
    else if (to.disabled === false) user = yield* enable(id)
    return user
  }))
}, storeError("change a user"))
