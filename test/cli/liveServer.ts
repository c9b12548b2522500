/**
 * A real `swarm serve` in a process group of its own, on a database of the test file's — a fresh
 * Postgres database when `DATABASE_URL` is set, else an embedded PGlite under a temporary folder —
 * for tests that drive the real binary against a live server and then (the server stopped: the
 * embedded database serves one process) read the same database with `--local`. Registers the
 * file's `beforeAll` and `afterAll`: every process it started is killed when the file ends.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Database from "../../src/store/Database.js"
import { serverUrl } from "../store/fresh.js"
import { ProcessGroups, type Ran, type Running, type Served } from "./processes.js"

export interface LiveServer {
  /** The test file's temporary folder: the processes' working directory. */
  readonly tmp: string
  /** Where the server keeps its data, as the environment names it (`DATABASE_URL` or `SWARM_DATA_DIR`). */
  readonly database: () => Record<string, string>
  /** The server, once started. */
  readonly served: () => Served
  /** The admin key its first start printed. */
  readonly key: () => string
  /** `SWARM_SERVER` and `SWARM_API_KEY` for the server, as `key` (default: the admin's). */
  readonly remote: (key?: string) => Record<string, string>
  /** The test's environment without any server, key or database of the developer's, with `env`. */
  readonly cleanEnv: (env: Record<string, string>) => NodeJS.ProcessEnv
  /** The real binary, in a process group of its own, with `env` (over `cleanEnv`'s). */
  readonly bin: (args: ReadonlyArray<string>, env: Record<string, string>) => Effect.Effect<Ran>
  /** `bin` started now: what it has printed so far, while it runs, and its end. */
  readonly binStarted: (args: ReadonlyArray<string>, env: Record<string, string>) => Running
  /** Start the server (done in `beforeAll` unless `manual`), and read the admin key it prints. */
  readonly start: () => Promise<void>
  /** Stop the server (SIGINT) and wait for it to exit, at most 15 s. */
  readonly stop: Effect.Effect<void>
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/**
 * `prefix` names the temporary folder; with `manual`, the test starts the server itself (`start`);
 * `env`: more of the server's environment (`SWARM_LLM`, say).
 */
export const liveServer = (
  prefix: string,
  options: { readonly manual?: boolean; readonly env?: Record<string, string> } = {}
): LiveServer => {
  const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), `${prefix}-`))
  const processes = new ProcessGroups()
  let dbScope: Scope.CloseableScope | undefined
  let database: Record<string, string> = {}
  let served: Served | undefined
  let key = ""

  const cleanEnv = (env: Record<string, string>) => ({
    ...Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !["SWARM_SERVER", "SWARM_API_KEY", "DATABASE_URL", "SWARM_DATA_DIR", "REDIS_URL"].includes(k))
    ),
    SWARM_CONFIG: Path.join(tmp, "no-config.json"),
    ...env
  })

  const start = async () => {
    served = await processes.serve({ cwd: tmp, env: cleanEnv({ ...database, ...options.env }), settle: 0 })
    // The first start prints the admin's key on stdout, right after it says where it listens.
    for (let i = 0; i < 200 && key === ""; i++) {
      key = /sk_[A-Za-z0-9_-]{43}/.exec(served.stdout())?.[0] ?? ""
      if (key === "") await sleep(50)
    }
    if (key === "") throw new Error(`swarm serve printed no admin key: ${served.stdout()} ${served.stderr()}`)
  }

  beforeAll(async () => {
    if (serverUrl !== undefined) {
      dbScope = await Effect.runPromise(Scope.make())
      database = { DATABASE_URL: await Effect.runPromise(Database.temporary(serverUrl).pipe(Scope.extend(dbScope))) }
    } else {
      database = { SWARM_DATA_DIR: Path.join(tmp, "data") }
    }
    if (options.manual !== true) await start()
  }, 120_000)

  afterAll(async () => {
    processes.killAll()
    if (dbScope !== undefined) await Effect.runPromise(Scope.close(dbScope, Exit.void))
    fs.rmSync(tmp, { recursive: true, force: true })
  })

  const running = () => {
    if (served === undefined) throw new Error("the server has not been started")
    return served
  }

  return {
    tmp,
    database: () => database,
    served: running,
    key: () => key,
    remote: (as = key) => ({ SWARM_SERVER: running().base, SWARM_API_KEY: as }),
    cleanEnv,
    bin: (args, env) => processes.run(args, { cwd: tmp, env: cleanEnv(env) }),
    binStarted: (args, env) => processes.start(args, { cwd: tmp, env: cleanEnv(env) }),
    start,
    stop: Effect.suspend(() => {
      const server = running()
      process.kill(-server.child.pid!, "SIGINT")
      return Effect.promise(() => Promise.race([server.exited, sleep(15_000)]))
    }).pipe(Effect.asVoid)
  }
}
