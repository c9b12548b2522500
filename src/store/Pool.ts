/**
 * The connection pool under the `SqlClient`, for the one thing @effect/sql does not do: bulk
 * loading with `COPY … FROM STDIN`, which moves rows about three times as fast as multi-row
 * inserts here (measured: 110–150 k rows/s against 40 k). The recorder of a run's events uses it;
 * everything else goes through the `SqlClient`. Both share the pool, so the embedded database's
 * single connection is never opened twice.
 */
import { Context } from "effect"
import type * as Pg from "pg"

export interface PoolService {
  readonly pool: Pg.Pool
  /** Whether the server takes `COPY … FROM STDIN` (the embedded PGlite does not): multi-row inserts otherwise. */
  readonly copy: boolean
  /**
   * Whether other processes may share the database (a Postgres server), so that what one process
   * runs must be leased (advisory locks, which exclude on Postgres). The embedded database serves
   * one process, and its advisory locks exclude nobody.
   */
  readonly shared: boolean
  /**
   * Where a live run's lease holds its connection (`Runs.lease`) while the run lasts: a pool of its
   * own on Postgres, so that live runs never take the connections queries need.
   */
  readonly leases: Pg.Pool
}

export class PgPool extends Context.Tag("swarm/store/PgPool")<PgPool, PoolService>() {}

/**
 * A client of `pool` with `onError` listening from the moment the pool hands it over. A promise's
 * continuation comes too late for that: the pool stops listening to a client it lends, and a
 * connection the server ends as it opens (a `pg_terminate_backend`, a restart) sends its error in
 * the same read as its readiness — an 'error' emitted before the continuation runs, heard by nobody,
 * is thrown at the process.
 */
export const connectListening = (
  pool: Pg.Pool,
  onError: (client: Pg.PoolClient, error: Error) => void
): Promise<{ readonly client: Pg.PoolClient; readonly listener: (error: Error) => void }> =>
  new Promise((resolve, reject) => {
    pool.connect((error, client) => {
      if (error !== undefined && error !== null) return reject(error)
      if (client === undefined) return reject(new Error("the pool lent no client"))
      const listener = (cause: Error) => onError(client, cause)
      client.on("error", listener)
      resolve({ client, listener })
    })
  })
