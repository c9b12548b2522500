/** The installed command end to end: `node bin/swarm.js` in a process of its own, from another working directory. */
import { NodeContext } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile, spawn as spawnChild } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Cli from "../../src/cli/Cli.js"
import * as Io from "../../src/cli/Io.js"
// @ts-expect-error: a plain ES module without types
import { fingerprint } from "../../bin/bundle.mjs"

const root = fileURLToPath(new URL("../..", import.meta.url))

const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-bin-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** `node <args>` in `cwd`; `env` changes the test's environment: a value sets a variable, `undefined` removes it. */
const run = (args: ReadonlyArray<string>, cwd: string, env: Record<string, string | undefined> = {}) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    const child = execFile(
      process.execPath,
      args,
      {
        cwd,
        timeout: 60_000,
        env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, value]) => value !== undefined))
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
    return Effect.sync(() => void child.kill())
  })

/** `swarm <args>` (this repository's bin/swarm.js) in `cwd`. */
const spawn = (args: ReadonlyArray<string>, cwd: string, env: Record<string, string | undefined> = {}) =>
  run([Path.join(root, "bin", "swarm.js"), ...args], cwd, env)

describe("bin/swarm.js", () => {
  it.live("backtest --no-store --json from another directory prints the same document as the CLI run in-process", () =>
    Effect.gen(function*() {
      const args = ["backtest", "--no-store", "--data", Path.join(root, "data"), "--strategy", Path.join(root, "examples", "sma-crossover.json"), "--json"]
      const spawned = yield* spawn(args, os.tmpdir())
      expect(spawned.stderr).toBe("")
      expect(spawned.code).toBe(0)
      const document = JSON.parse(spawned.stdout)
      expect(document).toMatchObject({ strategy: "SMA crossover", status: "completed", counts: { bars: 1500 } })

      const captured = Io.capture()
      const code = yield* Cli.run(["backtest", "--no-store", "--data", "data", "--strategy", "examples/sma-crossover.json", "--json"], captured.io).pipe(
        Effect.provide(NodeContext.layer)
      )
      expect(code).toBe(0)
      expect(spawned.stdout).toBe(captured.stdout())
    }), { timeout: 90_000 })

  it.live.skipIf(!fs.existsSync("/dev/full"))("stdout that cannot be written (a full disk): one line saying so, exit 1, no stack trace", () =>
    Effect.gen(function*() {
      const args = [Path.join(root, "bin", "swarm.js"), "backtest", "--no-store", "--data", Path.join(root, "data"), "--strategy", Path.join(root, "examples", "sma-crossover.json"), "--json"]
      const full = fs.openSync("/dev/full", "w")
      const ran = yield* Effect.async<{ code: number | null; stderr: string }>((resume) => {
        const child = spawnChild(process.execPath, args, { cwd: os.tmpdir(), stdio: ["ignore", full, "pipe"], timeout: 60_000 })
        let stderr = ""
        child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
        child.on("close", (code) => resume(Effect.succeed({ code, stderr })))
        return Effect.sync(() => void child.kill())
      }).pipe(Effect.ensuring(Effect.sync(() => fs.closeSync(full))))
      // Before: Node's uncaught ENOSPC, 21 lines of stack from the bundle.
      expect([ran.code, ran.stderr]).toEqual([1, "swarm: stdout: cannot write: no space left on device (ENOSPC)\n"])
    }), { timeout: 90_000 })

  it.live("on the embedded database: a backtest is kept on disk, the next process lists it, and each exits by itself", () =>
    Effect.gen(function*() {
      // The default database of a fresh clone: .swarm/pglite under the working directory.
      const env = { DATABASE_URL: undefined, SWARM_DATA_DIR: undefined }
      const cwd = Path.join(tmp, "clone")
      fs.mkdirSync(cwd)
      const ran = yield* spawn(["backtest", "--data", Path.join(root, "data"), "--strategy", Path.join(root, "examples", "sma-crossover.json"), "--json"], cwd, env)
      expect(ran.stderr).toBe("database: embedded PGlite at .swarm/pglite (set DATABASE_URL to use Postgres)\n")
      expect(ran.code).toBe(0)
      const document = JSON.parse(ran.stdout)
      expect(document.ref).toBe("SMA crossover#1")

      const listed = yield* spawn(["runs", "list", "--json"], cwd, env)
      expect(listed.code).toBe(0)
      expect(JSON.parse(listed.stdout)).toMatchObject([{ id: document.run, ref: "SMA crossover#1", checksum: document.checksum }])
      // Closed with the process: the lock is gone, the server process too.
      expect(fs.existsSync(Path.join(cwd, ".swarm", "pglite", "swarm.lock"))).toBe(false)
    }), { timeout: 120_000 })

  it.live("runs from a bundle of the current sources; SWARM_NO_BUNDLE=1 runs the sources, with the same output", () =>
    Effect.gen(function*() {
      const bundled = yield* spawn(["--version"], os.tmpdir())
      expect(bundled.code).toBe(0)
      // The bundle this process used is the one named after the sources as they are now.
      expect(fs.existsSync(Path.join(root, ".build", `cli-${(fingerprint as (root: string) => string)(root)}`, "main.js"))).toBe(true)
      const sources = yield* spawn(["--version"], os.tmpdir(), { SWARM_NO_BUNDLE: "1" })
      expect(sources).toEqual(bundled)
    }), { timeout: 90_000 })

  it("a bundle's name changes with any source: an edit, a new file, a renamed one", () => {
    const fp = fingerprint as (root: string) => string
    const fake = Path.join(tmp, "fingerprint")
    for (const dir of ["src", "agents", "schemas", "supervisors", "migrations"]) fs.mkdirSync(Path.join(fake, dir, "nested"), { recursive: true })
    fs.writeFileSync(Path.join(fake, "package.json"), "{}")
    fs.writeFileSync(Path.join(fake, "src", "nested", "a.ts"), "export const a = 1\n")
    const first = fp(fake)
    expect(fp(fake)).toBe(first)
    fs.writeFileSync(Path.join(fake, "src", "nested", "a.ts"), "export const a = 12\n")
    const edited = fp(fake)
    expect(edited).not.toBe(first)
    fs.writeFileSync(Path.join(fake, "migrations", "0005.ts"), "")
    const added = fp(fake)
    expect(added).not.toBe(edited)
    fs.renameSync(Path.join(fake, "migrations", "0005.ts"), Path.join(fake, "migrations", "0006.ts"))
    expect(fp(fake)).not.toBe(added)
    fs.writeFileSync(Path.join(fake, "package.json"), "{ }")
    expect(fp(fake)).not.toBe(added)
  })

  it.live("a bundle built ahead of time, as the Docker image builds it, is the one a later command uses", () =>
    Effect.gen(function*() {
      // The image's /app: what docker/Dockerfile copies, times kept (as COPY keeps them).
      const app = Path.join(tmp, "image", "app")
      fs.mkdirSync(app, { recursive: true })
      const dockerfile = fs.readFileSync(Path.join(root, "docker", "Dockerfile"), "utf8")
      const copied = dockerfile.split("\n").flatMap((line) => {
        const m = /^COPY (?!--)(.+) \.\/\S*$/.exec(line)
        return m === null ? [] : m[1]!.split(/\s+/)
      })
      expect(copied).toEqual(expect.arrayContaining(["bin", "src", "agents", "schemas", "supervisors", "migrations", "package.json"]))
      for (const path of copied) fs.cpSync(Path.join(root, path), Path.join(app, path), { recursive: true, preserveTimestamps: true })
      fs.symlinkSync(Path.join(root, "node_modules"), Path.join(app, "node_modules"))
      // The image's build step.
      expect(dockerfile).toMatch(/^RUN node bin\/bundle\.mjs$/m)
      const built = yield* run(["bin/bundle.mjs"], app)
      expect(built.code).toBe(0)
      expect(built.stdout).toMatch(/command line bundled: .*\.build\/cli-[0-9a-f]{16}\/main\.js/)
      const before = fs.readdirSync(Path.join(app, ".build")).map((name) => [name, fs.statSync(Path.join(app, ".build", name)).mtimeMs])
      expect(before).toHaveLength(1)
      // A command later: nothing new under .build (the image's user could not write there).
      const help = yield* run(["bin/swarm.js", "--version"], app)
      expect(help.code).toBe(0)
      expect(fs.readdirSync(Path.join(app, ".build")).map((name) => [name, fs.statSync(Path.join(app, ".build", name)).mtimeMs])).toEqual(before)
    }), { timeout: 90_000 })
})
