/**
 * The migrated template the tests' embedded databases start from (Database.Template,
 * Migrations.templateFile, test/store/fixtures/backends.ts): keyed by the migrations' contents, never
 * trusted instead of migrating, written whole by processes racing to write it, and a damaged one a
 * start as without it. (The application's own start does not use it: Store.layer migrates.)
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import * as Database from "../../src/store/Database.js"
import { migrations } from "../../migrations/index.js"
import * as Migrations from "../../src/store/Migrations.js"

const migrationsFolder = fileURLToPath(new URL("../../migrations/", import.meta.url))
const migrationsModule = fileURLToPath(new URL("../../src/store/Migrations.ts", import.meta.url))

const ALL = migrations.map(([id, name]) => [id, name])

const folder = () => fs.mkdtempSync(path.join(os.tmpdir(), "swarm-migrated-"))

/** Whether `file` is a template as the server writes it: the SHA-256 of the rest, then a tar of a database. */
const isSound = (file: string) => {
  const bytes = fs.readFileSync(file)
  return createHash("sha256").update(bytes.subarray(32)).digest().equals(bytes.subarray(0, 32)) && bytes.length > 1_000_000
}

interface Opened {
  readonly start: Database.Start | undefined
  /** What the preparation's migration applied, as `[id, name]`. */
  readonly applied: ReadonlyArray<readonly [number, string]>
  readonly tables: number
  readonly users: ReadonlyArray<string>
  /** The V8 flags its server process runs with (Linux: from /proc). */
  readonly flags: ReadonlyArray<string>
}

const flagsOf = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((arg) => arg.startsWith("--"))

/** A database in memory prepared by migrating, kept in `file`: how it started, what migrating applied, and a write read back. */
const open = (file: string) =>
  Effect.gen(function*() {
    const applied: Array<readonly [number, string]> = []
    const prepare = Effect.orDie(Migrations.migrate).pipe(Effect.tap((ran) => void applied.push(...ran)), Effect.asVoid)
    return yield* Effect.gen(function*() {
      const info = yield* Database.DatabaseInfo
      const sql = yield* SqlClient.SqlClient
      yield* sql`insert into users (id, name, role) values ('u-1', 'one', 'user')`
      const users = (yield* sql<{ name: string }>`select name from users`).map((row) => row.name)
      const [row] = yield* sql<{ n: number }>`select count(*)::int as n from swarm_migrations`
      return { start: info.start, applied, tables: row!.n, users, flags: flagsOf(info.serverPid!) } satisfies Opened
    }).pipe(Effect.provide(Database.layerWith({ embedded: "memory", template: { file, prepare } })))
  }).pipe(Effect.scoped)

describe("the migrated template's key", () => {
  it("is a digest of every migration file and of Migrations.ts: a changed, added or renamed one gives another", () => {
    const dir = folder()
    try {
      const copy = path.join(dir, "migrations")
      fs.cpSync(migrationsFolder, copy, { recursive: true })
      const module = path.join(dir, "Migrations.ts")
      fs.copyFileSync(migrationsModule, module)
      const base = Migrations.digestOf(copy, [module])
      expect(base).toMatch(/^[0-9a-f]{16}$/)
      // The same sources wherever they are: the key of the real ones.
      expect(Migrations.digestOf(migrationsFolder, [migrationsModule])).toBe(base)

      const first = path.join(copy, "0001_initial.ts")
      const original = fs.readFileSync(first, "utf8")
      fs.writeFileSync(first, original.replace("create table", "create  table"))
      expect(Migrations.digestOf(copy, [module])).not.toBe(base)
      fs.writeFileSync(first, original)
      expect(Migrations.digestOf(copy, [module])).toBe(base)

      fs.writeFileSync(path.join(copy, "0099_more.ts"), "export default 1\n")
      expect(Migrations.digestOf(copy, [module])).not.toBe(base)
      fs.renameSync(path.join(copy, "0099_more.ts"), path.join(copy, "0098_more.ts"))
      const renamed = Migrations.digestOf(copy, [module])
      expect(renamed).not.toBe(base)
      fs.rmSync(path.join(copy, "0098_more.ts"))

      fs.appendFileSync(module, "\n")
      expect(Migrations.digestOf(copy, [module])).not.toBe(base)
      // Sources that cannot be read: no key, so no template (migrated every time).
      expect(Migrations.digestOf(path.join(dir, "nowhere"), [module])).toBeUndefined()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("names PGlite's version and the digest of these migrations, beside the initdb template", () => {
    const file = Migrations.templateFile()!
    const digest = Migrations.digestOf(migrationsFolder, [migrationsModule])!
    expect(path.dirname(file)).toBe(path.dirname(Database.embeddedTemplateFile!))
    expect(path.basename(file)).toBe(path.basename(Database.embeddedTemplateFile!).replace("-initdb.tar", `-migrated-${digest}.tar`))
  })
})

// Each start is seconds of CPU: five in all, each test a case of its own.
describe("a database in memory started from the migrated template", () => {
  it.effect("the first starts (two at once) migrate and write it whole; the next loads it, migrating finds nothing to do, and it works as before", () =>
    Effect.gen(function*() {
      const dir = folder()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const file = path.join(dir, "cache", "pglite-test-migrated-0123.tar")

      const first = yield* Effect.all([open(file), open(file)], { concurrency: "unbounded" })
      for (const one of first) {
        expect(one.start).not.toBe("prepared")
        expect(one.applied).toEqual(ALL)
      }
      expect(isSound(file)).toBe(true)
      // No temporary file of either write is left beside it.
      expect(fs.readdirSync(path.dirname(file))).toEqual([path.basename(file)])

      // What a start wrote once its database was saved (its user) does not travel to the next.
      const next = yield* open(file)
      expect(next).toEqual({ start: "prepared", applied: [], tables: migrations.length, users: ["one"], flags: ["--liftoff-only"] })
    }).pipe(Effect.scoped), 180_000)

  it.effect("is never trusted instead of migrating: a whole template of a database not migrated is migrated on loading", () =>
    Effect.gen(function*() {
      const dir = folder()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const file = path.join(dir, "pglite-test-migrated-0123.tar")
      // initdb's template: sound, loads, and holds no table of ours (as if keyed wrongly).
      fs.copyFileSync(yield* initdbTemplate(dir), file)

      expect(yield* open(file)).toMatchObject({ start: "prepared", applied: ALL, tables: migrations.length, users: ["one"] })
    }).pipe(Effect.scoped), 180_000)

  it.effect("a damaged template is a start as without it, migrated, and replaced by a whole one", () =>
    Effect.gen(function*() {
      const dir = folder()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      // Cut short, as a full disk would leave it had it not been written aside and renamed. (Other
      // damage, a whole file that is no tar: PgliteServer.test.ts, the same check as initdb's template.)
      const file = path.join(dir, "pglite-test-migrated-0123.tar")
      fs.writeFileSync(file, fs.readFileSync(yield* initdbTemplate(dir)).subarray(0, 100_000))

      const opened = yield* open(file)
      expect(opened).toMatchObject({ start: "template", applied: ALL, tables: migrations.length, users: ["one"] })
      expect(isSound(file)).toBe(true)
    }).pipe(Effect.scoped), 180_000)
})

/** initdb's template, made first if there is none yet (by a start in `dir`). */
const initdbTemplate = (dir: string) =>
  Effect.gen(function*() {
    const file = Database.embeddedTemplateFile!
    if (!fs.existsSync(file)) yield* open(path.join(dir, "warm-up", "pglite-test-migrated-0123.tar"))
    return file
  })
