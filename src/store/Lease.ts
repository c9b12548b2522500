/**
 * A run's lease as the process executing it holds it (`Runs.lease`: a session advisory lock on a
 * shared database), and the check every write of the run makes before it writes (`Runs.finish`,
 * `Runs.markEndedLeased`, RunRecorder's batches): a process that lost the lease, or cannot prove
 * it holds it, writes nothing to the run's row or events.
 */
import type * as Pg from "pg"
import { Effect, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import * as Transient from "./Transient.js"

/** What a run's lease key is made of, before its id (`Runs.lease`, `Runs.unfinishedLeases`, `HOLDS`). */
export const LEASE_PREFIX = "swarm-run:"

/**
 * This process no longer holds the run's lease, or cannot prove it does: it writes nothing more to
 * the run's row or events (another process may be running it from what was committed). `retaking`:
 * the lease's connection closed and it is being taken again — a write may wait for that.
 */
export class LeaseNotHeld extends Schema.TaggedError<LeaseNotHeld>()("LeaseNotHeld", {
  run: Schema.String,
  reason: Schema.String,
  retaking: Schema.Boolean
}) {
  override get message(): string {
    return `this process no longer holds run ${this.run}'s lease (${this.reason}): it writes nothing more to it`
  }
}

/**
 * A database session, as the server tells its sessions apart over time: its backend pid, and when
 * the session started (`backend_start`, to the microsecond, UTC ISO 8601). A pid alone is not one
 * session: the server gives a pid again once its session has ended, so a later session — another
 * process's, taking the lock the ended one held — could pass for it.
 */
export interface Session {
  readonly pid: number
  readonly started: string
}

/**
 * The columns `pid` and `started` of the session that runs the query (`Session`). Read from the
 * server's activity of that one pid (`pg_stat_get_activity`), not the whole `pg_stat_activity`.
 */
export const SESSION = `pg_backend_pid() as pid,
  (select to_char(a.backend_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') from pg_stat_get_activity(pg_backend_pid()) a) as started`

/**
 * A run's lease as this process holds it (`lease`, on a shared database): what the run's writes
 * check, in their transaction, before they write (`finish`, `markEnded`, RunRecorder's batches).
 */
export interface Lease {
  readonly run: RunId
  /** The database session whose lock is the lease; undefined while it is taken again, or once it is lost. */
  readonly backend: () => Session | undefined
  /** Why it is lost for good (another process has it, or it could not be taken again in time); undefined while it is not. */
  readonly lost: () => string | undefined
}

/**
 * Whether the session of pid `$2` that started at `$3` (`Session`) holds the advisory lock of the
 * lease key `$1` (as `unfinishedLeases` reads `pg_locks`; the session, unique in the server, says
 * the database). Asked by the run's writes on their own connection, inside their transaction.
 * Before, the pid alone was asked: a session of another process, given the pid of the lease's
 * ended session and holding the lock, passed for it.
 */
export const HOLDS = `select exists (
    select 1 from pg_locks l
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1 and l.pid = $2
      and l.classid::bigint = (hashtextextended($1, 0) >> 32) & 4294967295
      and l.objid::bigint = hashtextextended($1, 0) & 4294967295
      and exists (select 1 from pg_stat_get_activity($2) a where a.backend_start = $3::timestamptz)
  ) as held`

/** `HOLDS`'s parameters for `lease`, held by `session`. */
export const holdsParameters = (lease: Lease, session: Session) => [`${LEASE_PREFIX}${lease.run}`, session.pid, session.started]

/** Why `lease` is not held now, or undefined when the database says its session holds it. */
export const notHeld = (lease: Lease, held: boolean | undefined) =>
  held === true ? undefined : new LeaseNotHeld({
    run: lease.run,
    reason: lease.lost() ?? (lease.backend() === undefined ? "its database connection closed; taking it again" : "its database session no longer holds it"),
    retaking: lease.lost() === undefined && lease.backend() === undefined
  })

/**
 * Locks run `$1`'s row until the transaction ends — what a process taking the run's lease waits for
 * (`Runs.lease`, `BARRIER`) — so that a check of the lease made after it stays true until the
 * transaction has committed. Checked first and then locked, a lease could go to another process in
 * between, which read the run before the write it was not told of committed.
 */
export const LOCK_RUN = "select 1 from runs where id = $1 for no key update"

/**
 * What a process that has just taken run `$1`'s lease waits for, before it reads the run: every
 * write committing under the lease before (holding the run's row, `LOCK_RUN`) has committed or
 * rolled back. One that had not reached its lock by then finds the lease not its own.
 */
export const BARRIER = "select 1 from runs where id = $1 for share"

/** `checkLease` for a raw connection (RunRecorder's batches): throws `LeaseNotHeld`. */
export const checkLeaseOn = async (client: Pick<Pg.PoolClient, "query">, lease: Lease | undefined): Promise<void> => {
  if (lease === undefined) return
  const backend = lease.backend()
  if (backend === undefined || lease.lost() !== undefined) throw notHeld(lease, false)
  const { rows } = await client.query<{ held: boolean }>(HOLDS, holdsParameters(lease, backend))
  const error = notHeld(lease, rows[0]?.held)
  if (error !== undefined) throw error
}

/**
 * The lease checked as a write commits (RunRecorder's batches), inside its transaction, as its last
 * statement before `commit`: the run's row locked (`LOCK_RUN`), then the lease asked. Checked at the
 * start only, a batch held up behind a lock went on to commit after the lease had gone to another
 * process, which was writing the run's events by then.
 */
export const fenceOn = async (client: Pick<Pg.PoolClient, "query">, lease: Lease | undefined): Promise<void> => {
  if (lease === undefined) return
  await client.query(LOCK_RUN, [lease.run])
  await checkLeaseOn(client, lease)
}

/**
 * A write that checks the lease (`Runs.finish`, `Runs.markEndedLeased`, RunRecorder's batches),
 * tried again while the lease is being taken again, as for a transient failure of the database —
 * not past the lease's give-up (`lease`): an attempt then is refused (`LeaseNotHeld`) before it
 * asks for a connection. Before, the check was the attempt's first statement, so a database that
 * refused connections had the write tried for half a minute after the lease was lost for good.
 */
export const retryLeased = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  lease?: Lease,
  /** The failures (the lease's aside) worth another try: default `Transient.transient`. */
  worthRetrying: (error: unknown) => boolean = Transient.transient
): Effect.Effect<A, E | LeaseNotHeld, R> =>
  Effect.retry(
    Effect.suspend((): Effect.Effect<A, E | LeaseNotHeld, R> => (lease?.lost() === undefined ? effect : Effect.fail(notHeld(lease, false)!))),
    { schedule: Transient.schedule, while: (error) => (error instanceof LeaseNotHeld ? error.retaking : worthRetrying(error)) }
  )
