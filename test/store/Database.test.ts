/**
 * The SQL client layer on both back-ends: the conventions every store relies on (camelCase rows,
 * snake_case columns, int8 as numbers), the embedded PGlite's durability across a close, its
 * one-process lock (a second opener refused, a stale lock taken over), its server process dying
 * with a SIGKILLed parent, typed errors for databases that cannot be reached, and the back-end
 * description printed at start-up.
 *
 * Run twice: as is (embedded) and with `DATABASE_URL=postgres://…` (the fresh databases and the
 * Postgres-only cases then use that server; the embedded cases run either way).
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { ConfigError, ConfigProvider, Context, Effect, Either, Fiber, HashMap, Layer, Logger, LogLevel, Option } from "effect"
import * as Database from "../../src/store/Database.js"
import { PgPool } from "../../src/store/Pool.js"
import { backend, freshDatabase, serverUrl } from "./fresh.js"
import { pgSession } from "./fixtures/pgSession.js"

/** Tests that start a PGlite (initdb of a fresh directory takes 5–12 s). */
const slow = 60_000

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

/** Builds `database` and runs `f` with its services; everything is closed when `f` ends. */
const using = <A, E, E2>(
  database: Layer.Layer<Database.Database, E2>,
  f: Effect.Effect<A, E, Database.Database>
) => Effect.scoped(Effect.flatMap(Layer.build(database), (context) => Effect.provide(f, context)))

/** The error `database` fails to open with. */
const openError = <E>(database: Layer.Layer<Database.Database, E>) =>
  Effect.scoped(Layer.build(database)).pipe(
    Effect.flatMap(() => Effect.dieMessage("the database opened, but should not have")),
    Effect.flip
  )

const withConfig = (entries: Record<string, string>) =>
  Layer.provide(Database.layer, Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries)))))

/** Alive and not a zombie (an exited child its new parent has not reaped yet). */
const running = (pid: number) => {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return process.platform !== "linux"
  }
}

const waitUntilGone = (pid: number, millis: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (running(pid) && Date.now() < deadline) yield* Effect.sleep("100 millis")
    return !running(pid)
  })

// -------------------------------------------------------------------------------------------------

layer(freshDatabase, { timeout: "60 seconds" })(`a fresh database (${backend})`, (it) => {
  it.effect("round-trips rows: snake_case columns, camelCase fields, int8 as a number, numeric and JSON as they are", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE fills (fill_id bigserial PRIMARY KEY, run_id text NOT NULL, qty_micros int8 NOT NULL, price numeric NOT NULL, tags int8[] NOT NULL, detail jsonb NOT NULL)`
      const detail = { _tag: "Filled", BRK_B: 1, someKey: "x" }
      const inserted = yield* sql`INSERT INTO fills ${
        sql.insert({ runId: "r1", qtyMicros: 2 ** 52, price: "101.2500", tags: [1, 2], detail })
      } RETURNING fill_id`
      expect(inserted).toEqual([{ fillId: 1 }])
      const rows = yield* sql`SELECT * FROM fills`
      expect(rows).toEqual([{ fillId: 1, runId: "r1", qtyMicros: 2 ** 52, price: "101.2500", tags: [1, 2], detail }])
      const [count] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM fills`
      expect(count?.n).toBe(1)
    }))

  it.effect("refuses an int8 beyond the safe integer range instead of rounding it", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const error = yield* Effect.flip(sql`SELECT 9007199254740993::int8 AS big`)
      expect(error._tag).toBe("SqlError")
      expect(String(error.cause)).toContain("outside the safe integer range")
      // The connection is still usable afterwards.
      expect(yield* sql`SELECT 9007199254740991::int8 AS max`).toEqual([{ max: Number.MAX_SAFE_INTEGER }])
    }))

  it.effect("a query interrupted inside a transaction ends it at once; the database's other callers do not wait on a cancel", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // Wall-clock time: this layer's tests run on a TestClock.
      const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.flatMap(Effect.sync(() => Date.now()), (start) => Effect.map(effect, (a) => [Date.now() - start, a] as const))
      // A few hundred milliseconds of work (a client going away while a write runs).
      const slow = sql`select count(*) as n from generate_series(1, 1000000)`
      const running = yield* Effect.fork(sql.withTransaction(slow))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      const other = yield* Effect.fork(timed(sql`select 1 as one`))
      const [interrupting] = yield* timed(Fiber.interrupt(running))
      const [waited, rows] = yield* Fiber.join(other)
      expect(rows).toEqual([{ one: 1 }])
      // The embedded database's cancel waited for its only connection, held by the transaction,
      // until its own 5 s timeout: every caller of the database stalled that long.
      expect(interrupting).toBeLessThan(4_000)
      expect(waited).toBeLessThan(4_000)
      expect(yield* sql`select 2 as two`).toEqual([{ two: 2 }])
    }), { timeout: 30_000 })

  it.effect("says which back-end it is", () =>
    Effect.gen(function*() {
      const info = yield* Database.DatabaseInfo
      expect(info.backend.kind).toBe(backend)
      expect(info.serverPid === undefined).toBe(backend === "postgres")
    }))
})

// -------------------------------------------------------------------------------------------------

describe("the back-end description", () => {
  it("names the embedded data directory and how to use Postgres instead", () => {
    expect(Database.describe({ kind: "embedded", dataDir: ".swarm/pglite" }))
      .toBe("database: embedded PGlite at .swarm/pglite (set DATABASE_URL to use Postgres)")
    expect(Database.describe({ kind: "embedded", dataDir: "memory://" }))
      .toBe("database: embedded PGlite in memory (set DATABASE_URL to use Postgres)")
  })

  it("names the Postgres URL and where it came from, with the password masked", () => {
    const backend = { kind: "postgres" as const, url: Database.maskUrl("postgres://root@127.0.0.1:5432/test") }
    expect(Database.describe(backend, "DATABASE_URL")).toBe("database: Postgres at postgres://root@127.0.0.1:5432/test (DATABASE_URL)")
    expect(Database.maskUrl("postgres://swarm:s3cr%40t@db.internal:5432/swarm?sslmode=require"))
      .toBe("postgres://swarm:***@db.internal:5432/swarm?sslmode=require")
    expect(Database.maskUrl("postgresql://db.internal/swarm?user=swarm&password=s3cret")).not.toContain("s3cret")
    // Too malformed to parse: still no password.
    expect(Database.maskUrl("postgres://swarm:s3c@ret@db.internal:99999/swarm")).toBe("postgres://swarm:***@db.internal:99999/swarm")
  })
})

// -------------------------------------------------------------------------------------------------

describe("which command holds the embedded database, from its process's arguments", () => {
  it("names the swarm command and its subcommand, not its arguments; nothing for other programs", () => {
    expect(Database.swarmCommand(["node", "--max-semi-space-size=64", "--import", "./bin/typescript.mjs", "src/main.ts"])).toBe("swarm serve")
    expect(Database.swarmCommand(["node", "/srv/swarm/bin/swarm.js", "backtest", "--data", "data"])).toBe("swarm backtest")
    expect(Database.swarmCommand(["node", "/srv/app/node_modules/.bin/swarm", "runs", "list", "--local"])).toBe("swarm runs list")
    expect(Database.swarmCommand(["node", "bin/swarm.js", "replay", "SMA crossover#99"])).toBe("swarm replay")
    expect(Database.swarmCommand(["node", "bin/swarm.js", "strategies", "show", "gated"])).toBe("swarm strategies show")
    expect(Database.swarmCommand(["node", "bin/swarm.js"])).toBeUndefined()
    expect(Database.swarmCommand(["node", "-e", "1"])).toBeUndefined()
    expect(Database.swarmCommand(["postgres", "-D", "/var/lib/postgresql"])).toBeUndefined()
  })
})

describe("a database that cannot be opened", () => {
  it.live("a refused connection is DatabaseUnavailable naming the server", () =>
    Effect.gen(function*() {
      const error = yield* openError(Database.layerWith({ url: "postgres://127.0.0.1:1/nope" }))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.message).toContain("Postgres at postgres://127.0.0.1:1/nope")
      expect(error.message).toContain("ECONNREFUSED")
    }))

  it.live("a malformed URL or another scheme is DatabaseUnavailable, without the password", () =>
    Effect.gen(function*() {
      for (const url of ["not a url", "postgres://swarm:s3cret@127.0.0.1:99999/swarm", "mysql://swarm:s3cret@127.0.0.1/swarm"]) {
        const error = yield* openError(Database.layerWith({ url }))
        expect(error._tag).toBe("DatabaseUnavailable")
        expect(error.message).not.toContain("s3cret")
        expect(error._tag === "DatabaseUnavailable" && error.reason).toMatch(/not a URL|must start with postgres/)
      }
    }))

  it.live("a DATABASE_URL that cannot be a Postgres URL is a bad setting, named: a ConfigError at DATABASE_URL, without the password", () =>
    Effect.gen(function*() {
      for (const [url, why] of [["not a url", "not a URL"], ["mysql://swarm:s3cret@127.0.0.1/swarm", "must start with postgres://"]] as const) {
        const error = yield* openError(withConfig({ DATABASE_URL: url }))
        expect(ConfigError.isConfigError(error), url).toBe(true)
        expect(ConfigError.isConfigError(error) && error._op === "InvalidData" && error.path).toEqual(["DATABASE_URL"])
        expect(String(error)).toContain(why)
        expect(String(error)).not.toContain("s3cret")
      }
    }))

  it.live("DATABASE_URL from the configuration chooses Postgres; its failure names it, masked", () =>
    Effect.gen(function*() {
      const error = yield* openError(withConfig({ DATABASE_URL: "postgres://swarm:s3cret@127.0.0.1:1/swarm" }))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error._tag === "DatabaseUnavailable" && error.backend).toEqual({
        kind: "postgres",
        url: "postgres://swarm:***@127.0.0.1:1/swarm"
      })
    }))

  it.live("an embedded data directory PGlite cannot open fails with the server's own words", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "swarm-db-bad-"))
      fs.writeFileSync(path.join(dir, "PG_VERSION"), "9\n")
      const error = yield* openError(Database.layerWith({ embedded: { dataDir: dir } }))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.message).toContain("exited during start-up")
      expect(error.message).toContain("pglite-server: could not open")
      // The lock is released with the failed attempt.
      expect(fs.existsSync(path.join(dir, Database.lockFileName))).toBe(false)
      fs.rmSync(dir, { recursive: true, force: true })
    }), slow)
})

describe.runIf(serverUrl !== undefined)("on the Postgres server of DATABASE_URL", () => {
  it.live("a database that does not exist is DatabaseUnavailable saying so", () =>
    Effect.gen(function*() {
      const url = new URL(serverUrl!)
      url.pathname = "/swarm_no_such_database"
      const error = yield* openError(Database.layerWith({ url: url.href }))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.message).toContain(`database "swarm_no_such_database" does not exist`)
    }))

  it.live("DATABASE_URL from the configuration: a round trip and the description", () =>
    using(
      withConfig({ DATABASE_URL: serverUrl! }),
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        expect(yield* sql`SELECT 41 + 1 AS the_answer`).toEqual([{ theAnswer: 42 }])
        const info = yield* Database.DatabaseInfo
        expect(info.backend).toEqual({ kind: "postgres", url: Database.maskUrl(serverUrl!) })
        expect(info.description).toBe(`database: Postgres at ${Database.maskUrl(serverUrl!)} (DATABASE_URL)`)
      })
    ))

  it.live("a query whose caller goes away as it ends cancels no other caller's statement on its connection", () =>
    Effect.scoped(Effect.gen(function*() {
      // Two connections: one held by `holder`, one by `gone` and then by `next`. Who waits on what
      // is seen in the server (`pg_locks`) and in the pool: no timing.
      const url = yield* Database.temporary(serverUrl!)
      const context = yield* Layer.build(Database.layerWith({ url, maxConnections: 2 }))
      const sql = Context.get(context, SqlClient.SqlClient)
      const { pool } = Context.get(context, PgPool)
      // Advisory locks another session of the database holds: a statement waiting on one runs until it is let go.
      const admin = yield* pgSession(url)
      const [holderLock, goneLock, nextLock] = [7001, 7002, 7003]
      yield* Effect.promise(() => admin.query(`select pg_advisory_lock(${holderLock}), pg_advisory_lock(${goneLock}), pg_advisory_lock(${nextLock})`))
      const letGo = (key: number) => Effect.promise(() => admin.query(`select pg_advisory_unlock(${key})`))
      const waitingOn = (key: number) =>
        Effect.promise(() => admin.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = ${key} and not granted
          and database = (select oid from pg_database where datname = current_database())`))
          .pipe(Effect.map((result) => result.rows[0].n as number))
      const until = (condition: Effect.Effect<boolean>) =>
        Effect.gen(function*() {
          while (!(yield* condition)) yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        })
      const waitFor = (key: number) => sql`select 1 as n from (select pg_advisory_xact_lock(${key}::bigint)) as waited`
      const holder = yield* Effect.fork(waitFor(holderLock))
      const gone = yield* Effect.fork(waitFor(goneLock))
      yield* until(Effect.map(Effect.zip(waitingOn(holderLock), waitingOn(goneLock)), ([a, b]) => a === 1 && b === 1))
      // The next caller waits for a connection: it gets `gone`'s once that one's query has ended.
      const next = yield* Effect.fork(waitFor(nextLock))
      yield* until(Effect.sync(() => pool.waitingCount === 1))
      // `gone`'s caller goes away (a client aborting its request); its statement ends just after,
      // and `next` runs on that connection.
      const interrupting = yield* Effect.fork(Fiber.interrupt(gone))
      yield* letGo(goneLock)
      yield* until(Effect.map(waitingOn(nextLock), (n) => n === 1))
      // A connection comes free: a cancel of `gone`'s statement, waiting for one, went out now.
      yield* letGo(holderLock)
      yield* Fiber.join(holder)
      yield* Fiber.join(interrupting)
      yield* letGo(nextLock)
      // Before, the cancel ended `next`'s statement ("canceling statement due to user request"):
      // whatever used the connection next — a run's recording — failed for another caller's going.
      const answered = yield* Effect.either(Fiber.join(next))
      expect(Either.isRight(answered) ? answered.right : String(answered.left.cause)).toEqual([{ n: 1 }])
    })), { timeout: 60_000 })

  describe("a statement given up on at its deadline (withDeadline)", () => {
    /** A database of its own with a pool of `connections`, and a session of the test's own beside it. */
    const opened = (connections: number) =>
      Effect.gen(function*() {
        const url = yield* Database.temporary(serverUrl!)
        const context = yield* Layer.build(Database.layerWith({ url, maxConnections: connections }))
        const session = pgSession(url)
        const [admin, watcher] = [yield* session, yield* session]
        const query = (text: string) => Effect.promise(() => admin.query(text))
        /**
         * The pool's statements the server still runs (or waits on a lock for), their text starting
         * with `prefix`. From a session of its own: within a transaction (the lock's), the server
         * keeps the first look at pg_stat_activity for the rest of it.
         */
        const running = (prefix: string) =>
          Effect.map(
            Effect.promise(() => watcher.query(`select count(*)::int as n from pg_stat_activity where datname = current_database()
              and pid <> pg_backend_pid() and state = 'active' and query like '${prefix}%'`)),
            (result) => result.rows[0].n as number
          )
        const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, context)
        return { sql: Context.get(context, SqlClient.SqlClient), query, running, run }
      })
    const now = Effect.sync(() => Date.now())
    const pause = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))
    /** Looks every 20 ms until `n` says none, for `millis` at most: whether it came to none. */
    const noneWithin = (n: Effect.Effect<number>, millis: number) =>
      Effect.gen(function*() {
        const start = Date.now()
        while (Date.now() - start <= millis) {
          if ((yield* n) === 0) return true
          yield* pause(20)
        }
        return false
      })
    const deadline = Database.withDeadline({ duration: "500 millis", onTimeout: () => "no answer within 500 ms" })

    it.live("a write waiting on another session's lock is ended by the database at the deadline, and does not land once the lock is let go", () =>
      Effect.scoped(Effect.gen(function*() {
        const { query, run, running, sql } = yield* opened(2)
        yield* query("create table counters (id int primary key, n int not null); insert into counters values (1, 0)")
        yield* query("begin; lock table counters in exclusive mode")
        const start = yield* now
        const answer = yield* run(Effect.either(deadline(sql.withTransaction(Effect.zipRight(sql`select ${1}::int as x`, sql`update counters set n = n + ${1} where id = ${1}`)))))
        expect(answer).toEqual(Either.left("no answer within 500 ms"))
        expect((yield* now) - start).toBeLessThan(1_500)
        // Before, the statement waited on for the lock, holding its connection, as long as the lock was held.
        expect(yield* noneWithin(running("update counters"), 1_000)).toBe(true)
        yield* query("commit")
        yield* pause(300)
        // Before, it landed once the lock was let go: a write its caller was told had failed.
        expect((yield* query("select n from counters where id = 1")).rows).toEqual([{ n: 0 }])
      })), { timeout: 60_000 })

    it.live("a slow statement holds the pool's connection no longer than the deadline past its caller's giving up", () =>
      Effect.scoped(Effect.gen(function*() {
        const { run, running, sql } = yield* opened(1)
        const answer = yield* run(Effect.either(deadline(sql`select pg_sleep(30)`)))
        expect(answer).toEqual(Either.left("no answer within 500 ms"))
        expect(yield* noneWithin(running("select pg_sleep"), 1_000)).toBe(true)
        // The pool's only connection is free again: before, the next caller waited the 30 s out.
        const start = yield* now
        expect(yield* run(sql`select 1 as one`)).toEqual([{ one: 1 }])
        expect((yield* now) - start).toBeLessThan(1_500)
      })), { timeout: 60_000 })

    it.live("the deadline is one budget: a statement begun just before it ends there, not a whole deadline later", () =>
      Effect.scoped(Effect.gen(function*() {
        const { run, running, sql } = yield* opened(1)
        const twoSeconds = Database.withDeadline({ duration: "2 seconds", onTimeout: () => "no answer within 2 s" })
        const answer = yield* run(Effect.either(twoSeconds(Effect.zipRight(sql`select pg_sleep(1.5)`, sql`select pg_sleep(30)`))))
        expect(answer).toEqual(Either.left("no answer within 2 s"))
        // The second statement had the half second left: before, it had 2 s of its own, and held
        // the pool's only connection until 1.5 s past its caller's answer.
        expect(yield* noneWithin(running("select pg_sleep(30)"), 700)).toBe(true)
        const start = yield* now
        expect(yield* run(sql`select 1 as one`)).toEqual([{ one: 1 }])
        expect((yield* now) - start).toBeLessThan(700)
      })), { timeout: 60_000 })

    it.live("a savepoint within it that fails is rolled back to, and the rest of its work goes on", () =>
      Effect.scoped(Effect.gen(function*() {
        const { run, sql } = yield* opened(1)
        // Before, the budget's setting went first, in the aborted transaction, and the rollback failed with it.
        const seen = yield* run(deadline(Effect.gen(function*() {
          const failed = yield* Effect.either(sql.withTransaction(sql`select 1 / 0 as never`))
          return { failed: failed._tag, after: yield* sql`select 1 as one` }
        })))
        expect(seen).toEqual({ failed: "Left", after: [{ one: 1 }] })
      })), { timeout: 60_000 })

    it.live("its caller is answered at the deadline while every connection of the pool is lent", () =>
      Effect.scoped(Effect.gen(function*() {
        const { run, sql } = yield* opened(1)
        const busy = yield* Effect.fork(run(sql`select pg_sleep(2)`))
        yield* pause(200)
        // A transaction's start waits for its connection uninterruptibly: the caller does not.
        const start = yield* now
        expect(yield* run(Effect.either(deadline(sql`select 1 as one`)))).toEqual(Either.left("no answer within 500 ms"))
        expect((yield* now) - start).toBeLessThan(1_200)
        yield* Fiber.join(busy)
      })), { timeout: 60_000 })

    it.live("within a transaction, its deadline ends with it: the transaction's own setting is back after, answered or not", () =>
      Effect.scoped(Effect.gen(function*() {
        const { run, sql } = yield* opened(2)
        const setting = Effect.map(sql<{ statementTimeout: string }>`show statement_timeout`, (rows) => rows[0]!.statementTimeout)
        const seen = yield* run(sql.withTransaction(Effect.gen(function*() {
          yield* sql`set local statement_timeout = 60000`
          const answered = yield* deadline(sql`select 1 as one`)
          const afterAnswer = yield* setting
          const start = yield* now
          const slow = yield* Effect.either(deadline(sql`select pg_sleep(30)`))
          // The transaction's connection is free again: before, its next statement waited the 30 s out.
          const afterSlow = yield* setting
          return { answered, afterAnswer, slow, afterSlow, took: (yield* now) - start < 1_500 }
        })))
        expect(seen).toEqual({ answered: [{ one: 1 }], afterAnswer: "1min", slow: Either.left("no answer within 500 ms"), afterSlow: "1min", took: true })
      })), { timeout: 60_000 })

    // On the test clock the caller's own timer never fires: the server's end of the statement, at the
    // deadline, is all there is — as when it reaches the caller before its timer does (a loaded machine).
    it.effect("the server's end of a statement at the deadline is the deadline's answer, not an SqlError, on its own or within a transaction", () =>
      Effect.scoped(Effect.gen(function*() {
        const { run, sql } = yield* opened(2)
        const alone = yield* run(Effect.either(deadline(sql`select pg_sleep(30)`)))
        const within = yield* run(sql.withTransaction(Effect.either(deadline(sql`select pg_sleep(30)`))))
        // Before, each was the server's "canceling statement due to statement timeout" as an SqlError.
        expect({ alone, within }).toEqual({ alone: Either.left("no answer within 500 ms"), within: Either.left("no answer within 500 ms") })
      })), { timeout: 60_000 })
  })
})

// -------------------------------------------------------------------------------------------------

describe("the embedded PGlite's start", () => {
  it.live("a new database loads the template of initdb's result an earlier start left in node_modules/.cache, rather than run initdb", () =>
    Effect.gen(function*() {
      const { version } = JSON.parse(fs.readFileSync(path.join(repoRoot, "node_modules/@electric-sql/pglite/package.json"), "utf8"))
      expect(Database.embeddedTemplateFile).toBe(path.join(repoRoot, "node_modules", ".cache", "swarm", `pglite-${version}-initdb.tar`))
      const starts: Array<unknown> = []
      const capture = Logger.make(({ annotations, message }) => {
        if ((Array.isArray(message) ? message : [message]).join(" ").includes("PGlite server is listening")) {
          starts.push(Option.getOrUndefined(HashMap.get(annotations, "start")))
        }
      })
      const open = using(Database.layerWith({ embedded: "memory" }), Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select 1 as one`)).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      // The first made the template if no start had (another test file's may have, at any time).
      expect(yield* open).toEqual([{ one: 1 }])
      expect(yield* open).toEqual([{ one: 1 }])
      expect(starts).toHaveLength(2)
      expect(["initdb", "template"]).toContain(starts[0])
      expect(starts[1]).toBe("template")
    }), slow)
})

describe("the embedded PGlite on a data directory", () => {
  // One directory for the whole file: initdb runs once, later opens take about a second.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "swarm-db-"))
  const dataDir = path.join(root, "pglite")
  const lockFile = path.join(dataDir, Database.lockFileName)
  const embedded = Database.layerWith({ embedded: { dataDir } })
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

  it.live("is the configured default without DATABASE_URL, and keeps a row across a close and a re-open", () =>
    Effect.gen(function*() {
      const serverPid = yield* using(
        withConfig({ SWARM_DATA_DIR: root }),
        Effect.gen(function*() {
          const info = yield* Database.DatabaseInfo
          expect(info.backend).toEqual({ kind: "embedded", dataDir })
          expect(info.description).toBe(`database: embedded PGlite at ${dataDir} (set DATABASE_URL to use Postgres)`)
          expect(fs.readFileSync(lockFile, "utf8")).toBe(`${process.pid}\n${info.serverPid}\n`)
          // The application's database keeps V8's optimizing compiler (one in memory runs without: Database.memoryServerFlags).
          expect(fs.readFileSync(`/proc/${info.serverPid}/cmdline`, "utf8").split("\0")).not.toContain("--liftoff-only")
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE notes (note_id int PRIMARY KEY, body text NOT NULL)`
          yield* sql`INSERT INTO notes ${sql.insert({ noteId: 1, body: "kept" })}`
          return info.serverPid!
        })
      )
      // Closing the layer stopped the server (waited for it) and released the lock.
      expect(running(serverPid)).toBe(false)
      expect(fs.existsSync(lockFile)).toBe(false)

      const rows = yield* using(embedded, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT * FROM notes`))
      expect(rows).toEqual([{ noteId: 1, body: "kept" }])
    }), slow)

  it.live("refuses a second opener while the first has it open", () =>
    using(
      embedded,
      Effect.gen(function*() {
        const error = yield* openError(embedded)
        expect(error).toEqual(new Database.DatabaseLocked({ dataDir, pid: process.pid }))
        expect(error.message).toContain(dataDir)
        expect(error.message).toContain(`process ${process.pid}`)
        expect(error.message).toContain("set DATABASE_URL")
        // The refused attempt left the holder's lock alone.
        expect(fs.readFileSync(lockFile, "utf8").startsWith(`${process.pid}\n`)).toBe(true)
      })
    ), slow)

  it.live("takes over a stale lock left by a dead process", () =>
    Effect.gen(function*() {
      const dead = spawn(process.execPath, ["-e", ""])
      const deadPid = dead.pid!
      yield* Effect.promise(() => new Promise((resolve) => dead.once("exit", resolve)))
      fs.writeFileSync(lockFile, `${deadPid}\n`)
      const rows = yield* using(
        embedded,
        Effect.gen(function*() {
          expect(fs.readFileSync(lockFile, "utf8").startsWith(`${process.pid}\n`)).toBe(true)
          const sql = yield* SqlClient.SqlClient
          return yield* sql`SELECT count(*) AS n FROM notes`
        })
      )
      expect(rows).toEqual([{ n: 1 }])
    }), slow)

  it.live("its server exits when the process that opened it is killed with SIGKILL", () =>
    Effect.gen(function*() {
      // A separate process opens the database, prints its server's pid and waits forever.
      const script = `
        import { Effect } from "effect"
        import * as Database from ${JSON.stringify(new URL("src/store/Database.ts", `file://${repoRoot}`).href)}
        const program = Effect.gen(function*() {
          const info = yield* Database.DatabaseInfo
          console.log(JSON.stringify({ serverPid: info.serverPid }))
          yield* Effect.never
        })
        Effect.runPromise(Effect.provide(program, Database.layerWith({ embedded: { dataDir: ${JSON.stringify(dataDir)} } })))
          .catch((error) => { console.error(String(error)); process.exit(1) })
      `
      const parent = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(
            process.execPath,
            ["--import", new URL("bin/typescript.mjs", `file://${repoRoot}`).href, "--input-type=module", "-e", script, path.join(repoRoot, "bin/swarm.js"), "serve", "--port", "7070"],
            { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] }
          )
        ),
        (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
      )
      const { serverPid } = yield* Effect.promise(() => firstJsonLine<{ serverPid: number }>(parent))
      expect(running(serverPid)).toBe(true)
      expect(fs.readFileSync(lockFile, "utf8")).toBe(`${parent.pid}\n${serverPid}\n`)

      // Another process's lock: refused, naming that process.
      const error = yield* openError(embedded)
      // …and what it is, from its command line where the system shows it (as `swarm serve` would look).
      expect(error).toEqual(
        new Database.DatabaseLocked({ dataDir, pid: parent.pid!, ...(process.platform === "linux" ? { command: "swarm serve" } : {}) })
      )

      parent.kill("SIGKILL")
      expect(yield* waitUntilGone(serverPid, 10_000)).toBe(true)

      // Its lock is stale now (both pids dead): taken over, and the data is intact.
      const rows = yield* using(embedded, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT body FROM notes`))
      expect(rows).toEqual([{ body: "kept" }])
    }).pipe(Effect.scoped), slow)
})

/** Resolves with the first line of `child`'s stdout that parses as JSON; rejects with its stderr if it exits first. */
const firstJsonLine = <A>(child: ChildProcess) =>
  new Promise<A>((resolve, reject) => {
    let out = ""
    let err = ""
    child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString()))
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      for (const line of out.split("\n")) {
        try {
          return resolve(JSON.parse(line) as A)
        } catch {
          // not yet a whole line
        }
      }
    })
    child.once("exit", (code) => reject(new Error(`the parent script exited (${code}) before printing: ${err}`)))
  })
