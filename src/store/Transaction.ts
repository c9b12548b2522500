/**
 * Transactions whose every failure is a value. @effect/sql's `withTransaction` turns a failed
 * commit or rollback into a defect (`Effect.orDie`): a deferred constraint refusing the
 * transaction, or the connection lost at its commit, would then pass by every caller's handling of
 * `SqlError` — an RPC answered as an internal error instead of `Unavailable`, a webhook with a 500.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"

/** `sql.withTransaction(effect)`, failing with the `SqlError` of a commit or rollback that failed. */
export const transaction = <A, E, R>(sql: SqlClient, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
  Effect.catchSomeDefect(
    sql.withTransaction(effect),
    (defect) => (defect instanceof SqlError ? Option.some(Effect.fail(defect)) : Option.none())
  )
