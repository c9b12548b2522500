/**
 * The first start of a server on an empty database: with no user besides the command line's
 * `local`, nobody could log in, so start-up creates an `admin` with an API key, which the caller
 * prints once (only its hash is kept). Every later start finds users and does nothing.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import * as ApiKeys from "../store/ApiKeys.js"
import { storeError } from "../store/StoreError.js"
import * as Users from "../store/Users.js"
import { transaction } from "../store/Transaction.js"

/** The first admin's name. */
export const ADMIN = "admin"

export type Bootstrapped =
  | { readonly created: true; readonly name: string; readonly userId: string; readonly key: string }
  | { readonly created: false }

/** An arbitrary constant naming the bootstrap among advisory locks (the migrations' is 0x5377_6d01). */
const LOCK = 0x5377_6d02

/**
 * Create the first admin and its key if the database has no user besides `local`. Safe when
 * several processes start together on one Postgres: they take turns under a transaction-scoped
 * advisory lock, and the second finds the first's admin. (On the embedded database, whose
 * advisory locks exclude nobody, there is one process with one connection: transactions already
 * take turns. The insert of `admin` does nothing on a conflict, which alone would also leave one
 * winner.)
 */
export const bootstrap = Effect.fn("Bootstrap.bootstrap")(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* transaction(sql, Effect.gen(function*() {
    yield* sql`select pg_advisory_xact_lock(${LOCK})`
    const [others] = yield* sql<{ n: number }>`select count(*)::int as n from users where id <> ${Users.LOCAL}`
    if (others!.n > 0) return { created: false } satisfies Bootstrapped
    // Another process's `admin`, committed between our count and our insert (only possible
    // without the lock's exclusion): theirs wins.
    const admin = yield* Users.create(ADMIN, "admin").pipe(Effect.catchTag("UserExists", () => Effect.succeed(undefined)))
    if (admin === undefined) return { created: false } satisfies Bootstrapped
    const issued = yield* ApiKeys.issue(admin.id, "bootstrap")
    return { created: true, name: admin.name, userId: admin.id, key: issued.key } satisfies Bootstrapped
  })).pipe(
    // The name, the label and the user just created are valid by construction: these cannot happen.
    Effect.catchTags({ InvalidUserName: Effect.die, InvalidKeyLabel: Effect.die, UserNotFound: Effect.die })
  )
}, storeError("bootstrap the first admin"))
