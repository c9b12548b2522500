/**
 * The embedded database's server process (src/store/pglite-server.mjs): the signals it gets, and
 * the template a new database starts from instead of running initdb (a damaged one ignored).
 */
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import pg from "pg"
import * as Database from "../../src/store/Database.js"
import { migrations } from "../../migrations/index.js"
import { migrate } from "../../src/store/Migrations.js"

const script = fileURLToPath(new URL("../../src/store/pglite-server.mjs", import.meta.url))

interface Started {
  readonly child: ChildProcess
  readonly port: number
  /** How its database came to be: "existing", "template" or "initdb". */
  readonly start: string
  readonly exited: Promise<number | null>
  /** What it wrote on stderr so far. */
  readonly stderr: () => string
}

/** A server on `dataDir`, new databases loaded from `templateFile` (by default the application's). */
const start = (dataDir = "memory://", templateFile = Database.embeddedTemplateFile) =>
  new Promise<Started>((resolve, reject) => {
    const child = spawn(process.execPath, [script, dataDir, ...(templateFile === undefined ? [] : [templateFile])], {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      env: { ...process.env, NODE_OPTIONS: "" }
    })
    let stderr = ""
    child.stderr?.on("data", (chunk: Buffer) => void (stderr += chunk.toString("utf8")))
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
    child.once("error", reject)
    void exited.then((code) => reject(new Error(`the server exited during start-up (${code}): ${stderr}`)))
    child.on("message", (message: { type?: string; port?: number; start?: string }) => {
      if (message.type === "listening" && typeof message.port === "number") {
        resolve({ child, port: message.port, start: String(message.start), exited, stderr: () => stderr })
      }
    })
  })

/** Disconnects, as the parent does to stop it; resolves with its exit code. */
const stop = (server: Started) => {
  server.child.disconnect()
  return server.exited
}

const withClient = async <A>(port: number, f: (client: pg.Client) => Promise<A>) => {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

const query = (port: number) => withClient(port, async (client) => (await client.query("select 1 + 1 as two")).rows[0].two as number)

/** Swarm's migrations, then a row written and read back, through the application's SQL client. */
const migrateAndUse = (port: number) =>
  Effect.runPromise(
    Effect.gen(function*() {
      yield* Effect.orDie(migrate)
      const sql = yield* SqlClient.SqlClient
      yield* sql`insert into users (id, name, role) values ('u-template', 'template', 'user')`
      const rows = yield* sql<{ name: string }>`select name from users`
      const tables = yield* sql<{ n: number }>`select count(*)::int as n from swarm_migrations`
      return { names: rows.map((row) => row.name), migrations: tables[0]!.n }
    }).pipe(Effect.scoped, Effect.provide(Database.layerWith({ url: `postgres://postgres@127.0.0.1:${port}/postgres`, maxConnections: 1 })))
  )

/** A template file as the server writes it — the tar's SHA-256, then the tar — around any bytes. */
const sealed = (tar: Buffer) => Buffer.concat([createHash("sha256").update(tar).digest(), tar])

/** The bytes of a ustar archive of `files` (names relative to the data directory). */
const ustar = (files: Record<string, string>) => {
  const blocks: Array<Buffer> = []
  for (const [name, content] of Object.entries(files)) {
    const header = Buffer.alloc(512)
    header.write(name, 0, "latin1")
    header.write("0000644\0", 100, "latin1")
    header.write("0000000\0", 108, "latin1")
    header.write("0000000\0", 116, "latin1")
    header.write(`${Buffer.byteLength(content).toString(8).padStart(11, "0")}\0`, 124, "latin1")
    header.write("00000000000\0", 136, "latin1")
    header.write("0", 156, "latin1")
    header.write("ustar\u000000", 257, "latin1")
    header.write("        ", 148, "latin1")
    let sum = 0
    for (const byte of header) sum += byte
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1")
    const body = Buffer.alloc(Math.ceil(Buffer.byteLength(content) / 512) * 512)
    body.write(content, 0, "latin1")
    blocks.push(header, body)
  }
  return Buffer.concat([...blocks, Buffer.alloc(1024)])
}

describe("the embedded database's server process", () => {
  it("outlives a SIGTERM while its parent is connected (the parent still checkpoints), and stops when the parent lets go", async () => {
    const { child, port, exited } = await start()
    // As systemd or `timeout` do: the signal reaches the parent and this process at once.
    child.kill("SIGTERM")
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(child.exitCode).toBe(null)
    expect(await query(port)).toBe(2)
    child.disconnect()
    expect(await exited).toBe(0)
  }, 60_000)
})

describe("a new database starts from a template of initdb's result", () => {
  const folder = () => fs.mkdtempSync(path.join(os.tmpdir(), "swarm-template-"))

  /** Whether `file` is a template as the server writes it: the SHA-256 of the rest, then a tar of a database. */
  const isSound = (file: string) => {
    const bytes = fs.readFileSync(file)
    return createHash("sha256").update(bytes.subarray(32)).digest().equals(bytes.subarray(0, 32)) && bytes.length > 1_000_000
  }

  /** A data directory holding nothing but a lock file, as Database.ts makes it. */
  const dataDirIn = (dir: string) => {
    const dataDir = path.join(dir, "data")
    fs.mkdirSync(dataDir)
    fs.writeFileSync(path.join(dataDir, Database.lockFileName), "1\n")
    return dataDir
  }

  it("the first start runs initdb and leaves the template; later ones, in memory or in a data directory, load it and work as before", async () => {
    const dir = folder()
    const template = path.join(dir, "cache", "pglite-initdb.tar")
    try {
      const first = await start("memory://", template)
      expect(first.start).toBe("initdb")
      expect(await query(first.port)).toBe(2)
      expect(await stop(first)).toBe(0)
      expect(isSound(template)).toBe(true)
      // No temporary file of the write is left beside it.
      expect(fs.readdirSync(path.dirname(template))).toEqual([path.basename(template)])

      const second = await start("memory://", template)
      expect(second.start).toBe("template")
      expect(await migrateAndUse(second.port)).toEqual({ names: ["template"], migrations: migrations.length })
      expect(await stop(second)).toBe(0)

      // A data directory on its first start (its durability across a re-open: Database.test.ts,
      // whose data directories now start from the template too).
      const dataDir = dataDirIn(dir)
      const fresh = await start(dataDir, template)
      expect(fresh.start).toBe("template")
      expect((await migrateAndUse(fresh.port)).names).toEqual(["template"])
      expect(await stop(fresh)).toBe(0)
      expect(fs.existsSync(path.join(dataDir, "PG_VERSION"))).toBe(true)
      // The template carried no file of another database's directory; ours is untouched.
      expect(fs.readFileSync(path.join(dataDir, Database.lockFileName), "utf8")).toBe("1\n")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it("a damaged template is ignored and replaced; one that is whole but no database is a start by initdb, in a data directory left as it was", async () => {
    const dirs = [folder(), folder(), folder()] as const
    try {
      // Cut short, as a full disk would leave it had it not been written aside and renamed; sealed
      // yet not a tar (PGlite would take it for a gzip and crash on it); sealed and a tar, but not a
      // database.
      const [cut, garbage, wrong] = dirs.map((dir) => path.join(dir, "pglite-initdb.tar")) as [string, string, string]
      fs.writeFileSync(cut, sealed(ustar({ PG_VERSION: "17\n" })).subarray(0, 700))
      fs.writeFileSync(garbage, sealed(Buffer.alloc(4096, 7)))
      fs.writeFileSync(wrong, sealed(ustar({ PG_VERSION: "17\n", "base/stray": "not a relation\n" })))
      const dataDir = dataDirIn(dirs[2])

      // Not loaded: said at once, and initdb starts. (Its end is the cut template's below: this
      // server is killed rather than waited for.)
      const child = spawn(process.execPath, [script, "memory://", garbage], { stdio: ["ignore", "ignore", "pipe", "ipc"], env: { ...process.env, NODE_OPTIONS: "" } })
      const exited = new Promise<number | null>((done) => child.once("exit", done))
      let said = ""
      const damaged = new Promise<void>((resolve) =>
        child.stderr!.on("data", (chunk: Buffer) => {
          said += chunk.toString("utf8")
          if (said.includes("is damaged")) resolve()
        })
      )
      expect(await Promise.race([damaged.then(() => "said so"), exited.then((code) => `exited ${code}: ${said}`)])).toBe("said so")
      child.kill("SIGKILL")
      await exited

      // Side by side: each runs initdb.
      const [fromCut, fromWrong] = await Promise.all([start("memory://", cut), start(dataDir, wrong)])
      expect(fromCut.start).toBe("initdb")
      expect(fromCut.stderr()).toContain("is damaged")
      expect(await query(fromCut.port)).toBe(2)
      expect(await stop(fromCut)).toBe(0)
      // Replaced by the template of the database initdb made.
      expect(isSound(cut)).toBe(true)

      expect(fromWrong.start).toBe("initdb")
      expect(fromWrong.stderr()).toContain("could not start from the template")
      expect((await migrateAndUse(fromWrong.port)).names).toEqual(["template"])
      expect(await stop(fromWrong)).toBe(0)
      expect(fs.existsSync(path.join(dataDir, "base", "stray"))).toBe(false)
      expect(fs.readFileSync(path.join(dataDir, Database.lockFileName), "utf8")).toBe("1\n")
    } finally {
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
