/**
 * `swarm serve` end to end, through the real binary in a process of its own on a fresh embedded
 * database: the first start prints the admin's key and a paper run to watch; that run's events
 * arrive over SSE with the key; /health names the database; Ctrl-C stops the server (exit 130) and
 * frees the database, and the next start makes no second admin.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"

const root = fileURLToPath(new URL("../..", import.meta.url))
const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-serve-"))
/** Process groups started here: a failed or timed-out test must not leave a server running. */
const groups: Array<number> = []
afterAll(() => {
  for (const pid of groups) {
    try {
      process.kill(-pid, "SIGKILL")
    } catch {
      // gone already
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true })
})

interface Started {
  readonly child: ChildProcess
  readonly base: string
  readonly stdout: () => string
  readonly exited: Promise<number | null>
}

/** Start `swarm serve --port 0` and wait until it says where it listens. */
const start = (dataDir: string) =>
  Effect.promise(() =>
    new Promise<Started>((resolve, reject) => {
      const env = Object.fromEntries(Object.entries({ ...process.env, SWARM_DATA_DIR: dataDir }).filter(([k]) => k !== "DATABASE_URL"))
      // Its own process group: Ctrl-C at a terminal signals the whole group (bin/swarm.js and the node it starts).
      const child = spawn(process.execPath, [Path.join(root, "bin", "swarm.js"), "serve", "--port", "0"], { cwd: tmp, env, detached: true })
      if (child.pid !== undefined) groups.push(child.pid)
      let out = ""
      let err = ""
      const exited = new Promise<number | null>((done) => child.on("exit", (code, signal) => done(signal === "SIGINT" ? 130 : code)))
      child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()))
      child.stderr!.on("data", (chunk: Buffer) => {
        err += chunk.toString()
        const listening = /listening on (http:\/\/\S+)/.exec(err)
        // The first-start lines come right after: wait for them when this is the first start.
        if (listening !== null) setTimeout(() => resolve({ child, base: listening[1]!, stdout: () => out, exited }), 1_000)
      })
      exited.then((code) => reject(new Error(`swarm serve exited ${code} before listening: ${err}`)))
    })
  )

describe("swarm serve", () => {
  it.live("first start: an admin key and a paper run to watch over SSE; Ctrl-C stops it; the next start makes no new admin", () =>
    Effect.gen(function*() {
      const dataDir = Path.join(tmp, "data")
      const first = yield* start(dataDir)
      const key = /sk_[A-Za-z0-9_-]{43}/.exec(first.stdout())?.[0]
      const run = /run (run_[0-9a-f]+)/.exec(first.stdout())?.[1]
      expect(key).toBeDefined()
      expect(run).toBeDefined()
      expect(first.stdout()).toContain(`curl -N "${first.base}/v1/runs/${run}/events?token=${key}"`)

      const health = yield* Effect.promise(() => fetch(`${first.base}/health`).then((r) => r.json()))
      expect(health).toMatchObject({ status: "ok", database: { kind: "embedded" } })

      // The paper run is live (a bar a second): its first events over SSE, then we hang up.
      const text = yield* Effect.promise(async () => {
        const controller = new AbortController()
        const response = await fetch(`${first.base}/v1/runs/${run}/events?token=${key}`, { signal: controller.signal })
        expect(response.status).toBe(200)
        const reader = response.body!.getReader()
        let body = ""
        while (!body.includes("event: AgentLifecycle")) body += new TextDecoder().decode((await reader.read()).value)
        controller.abort()
        return body
      })
      expect(text).toContain("id: 1\nevent: RunStarted\n")
      expect(text).toContain(`"mode":"paper"`)
      expect((yield* Effect.promise(() => fetch(`${first.base}/v1/runs/${run}/events`))).status).toBe(401)

      process.kill(-first.child.pid!, "SIGINT")
      expect(yield* Effect.promise(() => first.exited)).toBe(130)
      expect(fs.existsSync(Path.join(dataDir, "pglite", "swarm.lock"))).toBe(false)

      const second = yield* start(dataDir)
      expect(second.stdout()).not.toContain("sk_")
      process.kill(-second.child.pid!, "SIGINT")
      expect(yield* Effect.promise(() => second.exited)).toBe(130)
    }), { timeout: 120_000 })
})
