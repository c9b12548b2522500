/**
 * `swarm serve` end to end, through the real binary in a process of its own on a fresh embedded
 * database: the first start prints the admin's key and a paper run to watch; that run's events
 * arrive over SSE with the key; /health names the database; Ctrl-C stops the server (its requested
 * stop: exit 0, and so does SIGTERM, as systemd and Docker send it) and frees the database, suspending the paper run; the next start makes no second admin and resumes
 * the run, which goes on recording after the last event it had — no gap, no duplicate.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { migrations } from "../../migrations/index.js"
import * as Migrations from "../../src/store/Migrations.js"
import { rpcClient } from "../edge/fixtures.js"
import { ProcessGroups } from "./processes.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-serve-"))
const processes = new ProcessGroups()
afterAll(() => {
  processes.killAll()
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** Start `swarm serve --port 0` on the embedded database in `dataDir`, past its first-start lines. */
const start = (dataDir: string) =>
  Effect.promise(() =>
    processes.serve({
      cwd: tmp,
      // The defaults: the embedded database, and HOST unset (this machine only).
      env: Object.fromEntries(Object.entries({ ...process.env, SWARM_DATA_DIR: dataDir }).filter(([k]) => k !== "DATABASE_URL" && k !== "HOST")),
      settle: 1_000
    })
  )

/** Run the `swarm` binary to its end on the embedded database in `dataDir`. */
const swarm = (dataDir: string, args: ReadonlyArray<string>) => {
  const env = Object.fromEntries(Object.entries({ ...process.env, SWARM_DATA_DIR: dataDir }).filter(([k]) => k !== "DATABASE_URL"))
  return spawnSync(process.execPath, [Path.join(root, "bin", "swarm.js"), ...args], { cwd: tmp, env, encoding: "utf8", timeout: 60_000 })
}

/**
 * Read an SSE stream until `enough` says so (given the event ids so far) or `millis` pass, then hang
 * up: the raw text and the ids.
 */
const readEvents = async (url: string, headers: Record<string, string>, enough: (ids: ReadonlyArray<number>) => boolean, millis: number) => {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), millis)
  let body = ""
  const ids: Array<number> = []
  try {
    const response = await fetch(url, { headers, signal: controller.signal })
    expect(response.status).toBe(200)
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    while (!enough(ids)) {
      const { done, value } = await reader.read()
      if (done) break
      const chunk = decoder.decode(value, { stream: true })
      body += chunk
      for (const match of chunk.matchAll(/^id: (\d+)$/gm)) ids.push(Number(match[1]))
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
  return { body, ids }
}

const client = rpcClient

describe("swarm serve", () => {
  it.live("first start: an admin key and a paper run to watch over SSE; Ctrl-C stops it (exit 0); the next start makes no new admin; SIGTERM stops it (exit 0)", () =>
    Effect.gen(function*() {
      const dataDir = Path.join(tmp, "data")
      const first = yield* start(dataDir)
      // The first-start lines come after the listening line; on a loaded machine, more than a second after.
      for (let i = 0; i < 300 && !/#server=\S+&key=\S+&run=\S+\n/.test(first.stdout()); i++) yield* Effect.sleep("100 millis")
      const key = /sk_[A-Za-z0-9_-]{43}/.exec(first.stdout())?.[0]
      const run = /run (run_[0-9a-f]+)/.exec(first.stdout())?.[1]
      expect(key).toBeDefined()
      expect(run).toBeDefined()
      expect(first.stdout()).toContain(`curl -N "${first.base}/v1/runs/${run}/events?token=${key}"`)
      expect(first.stdout()).toContain(`npx swarm login --server ${first.base} --key ${key}\n  npx swarm runs watch ${run}\n`)
      // The browser dashboard, given the server, key and run in its fragment: a file that is there.
      const dashboard = new RegExp(`(file://\\S+)#server=${first.base}&key=${key}&run=${run}\n`).exec(first.stdout())
      expect(dashboard).not.toBeNull()
      expect(fs.existsSync(fileURLToPath(dashboard![1]!))).toBe(true)
      expect(first.stderr()).toContain("cross-origin requests (CORS): web pages of any origin may call the server with a key")
      expect(first.stderr()).toContain("live runs: at most 8 per user, running or paused, in this server process (SWARM_MAX_LIVE_RUNS_PER_USER)")
      expect(first.stderr()).toContain("takeover: none, the embedded database serves this one process (SWARM_TAKEOVER_SECONDS is for servers sharing a Postgres)")
      // Right after the database line: its schema, made now on the empty database.
      const schemaLine = `database schema: migrated to ${Migrations.latest} now, ${migrations.length} migrations applied (0001_initial to ${
        String(Migrations.latest).padStart(4, "0")
      }_${migrations.at(-1)![1]})`
      expect(first.stderr()).toContain(`(set DATABASE_URL to use Postgres)\n${schemaLine}\n`)

      const health = yield* Effect.promise(() => fetch(`${first.base}/health`).then((r) => r.json()))
      expect(health).toMatchObject({ status: "ok", database: { kind: "embedded" } })
      // This machine only, as it says: another interface's address is refused.
      expect(first.stderr()).toContain("network: this machine only (HOST=127.0.0.1); HOST=0.0.0.0 serves other machines")
      const other = Object.values(os.networkInterfaces()).flat().find((a) => a !== undefined && a.family === "IPv4" && !a.internal)
      if (other !== undefined) {
        const port = new URL(first.base).port
        const reached = yield* Effect.promise(() => fetch(`http://${other.address}:${port}/health`).then(() => true, () => false))
        expect(reached, `${other.address}:${port}`).toBe(false)
      }

      // The paper run is live: its first events over SSE, then we hang up.
      const text = yield* Effect.promise(() => readEvents(`${first.base}/v1/runs/${run}/events?token=${key}`, {}, (ids) => ids.length >= 1, 30_000))
      expect(text.body).toContain("id: 1\nevent: RunStarted\n")
      expect(text.body).toContain(`"mode":"paper"`)
      expect((yield* Effect.promise(() => fetch(`${first.base}/v1/runs/${run}/events`))).status).toBe(401)
      // A paper run of our own, ten bars a second: well under way when the server goes down.
      const paper = yield* Effect.scoped(Effect.flatMap(client(first.base, key!), (rpc) =>
        rpc("runs.start", { strategy: "Six analysts", mode: "paper", data: { _tag: "sample" }, speed: 10 * 86_400 })))
      yield* Effect.promise(() => readEvents(`${first.base}/v1/runs/${paper.id}/events?token=${key}`, {}, (ids) => ids.length >= 20, 30_000))

      // A command cut short by Ctrl-C is interrupted (130, `swarm: interrupted`), as documented: only the server's stop is clean.
      const watcher = processes.spawn(["runs", "watch", paper.id, "--server", first.base, "--key", key!], {
        cwd: tmp,
        env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "DATABASE_URL"))
      })
      let watched = ""
      let watchErr = ""
      watcher.stdout!.on("data", (chunk: Buffer) => (watched += chunk.toString()))
      watcher.stderr!.on("data", (chunk: Buffer) => (watchErr += chunk.toString()))
      const watcherExit = new Promise<number | null>((done) => watcher.on("exit", (code) => done(code)))
      for (let i = 0; i < 300 && watched.length === 0; i++) yield* Effect.sleep("100 millis")
      process.kill(-watcher.pid!, "SIGINT")
      expect(yield* Effect.promise(() => watcherExit)).toBe(130)
      expect(watchErr).toContain("swarm: interrupted\n")

      process.kill(-first.child.pid!, "SIGINT")
      expect(yield* Effect.promise(() => first.exited)).toBe(0)
      // It says which runs it suspended, then that it stopped, as asked: not a command interrupted.
      expect(first.stderr()).toMatch(
        /swarm: stopping: 2 runs suspended \((Six analysts#1, Six analysts#2|Six analysts#2, Six analysts#1)\); the next start resumes them\nswarm: server stopped \(SIGINT\)\n$/
      )
      expect(first.stderr()).not.toContain("interrupted")
      expect(fs.existsSync(Path.join(dataDir, "pglite", "swarm.lock"))).toBe(false)
      // Suspended, not stopped: every event it recorded is committed and chained.
      const verified = swarm(dataDir, ["audit", "verify", paper.id])
      expect(verified.status).toBe(0)
      const last = Number(/(\d+) events/.exec(verified.stdout)?.[1])
      expect(last).toBeGreaterThan(1)

      const second = yield* start(dataDir)
      expect(second.stdout()).not.toContain("sk_")
      expect(second.stderr()).toContain(`database schema: migration ${Migrations.latest}, up to date\n`)
      // Said once both are resumed, after the listening line: within moments, longer on a loaded machine.
      const resumedBoth = () => second.stderr().includes(`resumed run ${run}`) && second.stderr().includes(`resumed run ${paper.id}`)
      for (let i = 0; i < 300 && !resumedBoth(); i++) yield* Effect.sleep("100 millis")
      expect(second.stderr()).toContain(`resumed run ${run}`)
      expect(second.stderr()).toContain(`resumed run ${paper.id}`)
      // After the last event seen before the shutdown: the very next one, then the run's new ones.
      const after = yield* Effect.promise(() =>
        readEvents(`${second.base}/v1/runs/${paper.id}/events?token=${key}`, { "last-event-id": String(last) }, (ids) => ids.length >= 3, 60_000)
      )
      expect(after.ids[0]).toBe(last + 1)
      expect(after.ids).toEqual(after.ids.map((_, i) => last + 1 + i))
      // SIGTERM (systemd, Docker) is as graceful: exit 0, which they read as a clean stop.
      process.kill(-second.child.pid!, "SIGTERM")
      expect(yield* Effect.promise(() => second.exited)).toBe(0)
      expect(second.stderr()).toMatch(/swarm: stopping: 2 runs suspended \(.*\); the next start resumes them\nswarm: server stopped \(SIGTERM\)\n$/)
    }), { timeout: 120_000 })
})
