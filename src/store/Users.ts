/**
 * Users. The command line works on a local database without logging in: its runs and strategies
 * belong to `local`, an admin created on first use. The server's API keys (the edge) map to users
 * in the same table.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { storeError } from "./StoreError.js"

/** The owner of what the command line does without a server. */
export const LOCAL = "local"

/** Make sure the `local` user exists; returns its id. */
export const ensureLocal = Effect.fn("Users.ensureLocal")(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`insert into users (id, name, role) values (${LOCAL}, ${LOCAL}, 'admin') on conflict (id) do nothing`
  return LOCAL
}, storeError("create the local user"))
