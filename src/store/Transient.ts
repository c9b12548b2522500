/**
 * Database failures worth another try: the connection lost or refused (the server restarting, a
 * network blip, an administrator's `pg_terminate_backend`), too many connections, a serialisation
 * failure or deadlock. Not a statement the database refused for what it says (a constraint, a
 * trigger's exception, bad data): that fails the same way again.
 */
import { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Schedule } from "effect"

/** SQLSTATE classes and codes that say the attempt, not the statement, failed. */
const TRANSIENT_CODES = new Set(["57P01", "57P02", "57P03", "53300", "40001", "40P01"])
const SOCKET_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"])

/** Whether `error` (a pg error, a socket error, or a `SqlError` wrapping one) is worth another try. */
export const transient = (error: unknown): boolean => {
  if (error instanceof SqlError) return transient(error.cause)
  if (typeof error !== "object" || error === null) return false
  const code = (error as { readonly code?: unknown }).code
  const message = error instanceof Error ? error.message : ""
  // A database closed to connections for a while (`allow_connections false`, during maintenance).
  if (code === "55000") return /not currently accepting connections/i.test(message)
  if (typeof code === "string") return code.startsWith("08") || TRANSIENT_CODES.has(code) || SOCKET_CODES.has(code)
  // No code: pg's own words for a connection that went away or could not be had.
  return /connection terminated|connection error|timeout exceeded when trying to connect|failed to acquire connection|client has encountered a connection error|not queryable/i
    .test(message)
}

/**
 * Tries again for about half a minute: 100 ms, doubling, at most 2 s apart. A short outage of the
 * database (a restart, a failover) is ridden out; a longer one fails as before.
 */
export const schedule = Schedule.exponential(Duration.millis(100)).pipe(
  Schedule.either(Schedule.spaced(Duration.seconds(2))),
  Schedule.upTo(Duration.seconds(30))
)

/** `effect`, tried again on transient failures (`transient`) for about half a minute (`schedule`). */
export const retry = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.retry(effect, { schedule, while: transient })
