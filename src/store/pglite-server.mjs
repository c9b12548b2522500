/**
 * The embedded database's server process: PGlite served over the Postgres wire protocol on a
 * loopback port, so the parent talks to it with the same @effect/sql-pg code as to a real server.
 * It runs in its own process because PGlite's WASM blocks the event loop it runs on.
 *
 *   node src/store/pglite-server.mjs <data dir | memory://> [<template file> [<prepared file>]]   (spawned by Database.ts with an IPC channel)
 *
 * Protocol with the parent, over IPC: `{ type: "listening", port, start }` once it accepts
 * connections, `start` saying how the database came to be (see `open`); a failure to start is a
 * line on stderr and exit code 1. With a prepared file (in memory only, see below), the parent may
 * then send `{ type: "save" }` and is answered `{ type: "saved", ok }`. It lives exactly as long as
 * the parent's IPC channel: when the parent disconnects or dies (even by SIGKILL) it stops the
 * server, closes the database (flushing a file-backed one) and exits.
 *
 * Plain JavaScript on purpose: it is started with plain `node`, without the TypeScript loader.
 */
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

const dataDir = process.argv[2]
const templateFile = process.argv[3] || undefined
const preparedFile = process.argv[4] || undefined

const inMemory = dataDir?.startsWith("memory://") === true

if (!dataDir || typeof process.send !== "function" || (preparedFile !== undefined && !inMemory)) {
  process.stderr.write("usage: spawned by src/store/Database.ts with an IPC channel: pglite-server.mjs <data dir | memory://> [<template file> [<prepared file>]] (a prepared file in memory only)\n")
  process.exit(2)
}

// --- the template: a new database starts from a copy of initdb's result instead of running initdb
//
// initdb is most of a new database's start (4–10 s of 5–12). The template is a tar of a database
// just after initdb, in PGlite's own dump format (`dumpDataDir`, what its `clone()` loads; taken after
// a CHECKPOINT, before any client has connected): a new database loads it in about a second. It is
// made by a start in memory that had to run initdb — a file data directory may hold other files (our
// lock), which must not travel to other databases — and read by any start of a database that does not
// exist yet, in memory or in a data directory. Its file begins with the SHA-256 of the tar: a
// template that is partial or damaged is ignored (and replaced), never loaded; one that is whole but
// fails to load is a start by initdb as before. Several processes may write it at once: each writes
// a file of its own and renames it into place, so a reader sees one whole template or none.
//
// The prepared file is a second template, in the same format, of a database its parent has made
// ready (Swarm's tests: migrated, keyed by the migrations' digest in its name — Migrations.ts
// `templateFile`). A database in memory given one starts from it when it is sound (`prepared`),
// else as above; the parent then prepares it and asks for it to be saved (`save`, once ready, no
// query under way). The parent prepares it either way (migrating one that is already is a no-op):
// the file only saves the work. Other files of its family (its name up to its last `-`) that are
// over an hour old are removed when it is written: a changed migration leaves the old one behind.

const digestLength = 32

/** The tar of the template `file` if there is a sound one, else undefined. */
const readTemplate = (file) => {
  if (!file) return undefined
  let bytes
  try {
    bytes = fs.readFileSync(file)
  } catch {
    return undefined // none yet (or unreadable): initdb, as without one
  }
  const tar = bytes.subarray(digestLength)
  // A tar, too: PGlite takes anything else for a gzip and crashes the process on it (an unawaited
  // rejection inside its decompression) instead of failing the start.
  const sound = bytes.length > digestLength + 512 && tar.subarray(257, 262).toString("latin1") === "ustar" &&
    createHash("sha256").update(tar).digest().equals(bytes.subarray(0, digestLength))
  if (sound) return tar
  process.stderr.write(`pglite-server: the template ${file} is damaged: ${file === preparedFile ? "not using it" : "running initdb"}, and replacing it\n`)
  return undefined
}

/**
 * Writes the template `file` from a database in memory (nothing else in it) with nothing under way.
 * Never fails the start; says whether it wrote it.
 */
const writeTemplate = async (db, file) => {
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`
  try {
    // On disk what the buffers hold, so a database loaded from the copy has next to no WAL to replay.
    await db.exec("checkpoint")
    const tar = new Uint8Array(await (await db.dumpDataDir("none")).arrayBuffer())
    fs.mkdirSync(path.dirname(file), { recursive: true })
    removeStale(file)
    fs.writeFileSync(temporary, Buffer.concat([createHash("sha256").update(tar).digest(), tar]), { flag: "wx" })
    fs.renameSync(temporary, file)
    return true
  } catch (error) {
    fs.rmSync(temporary, { force: true })
    process.stderr.write(`pglite-server: could not write the template ${file}: ${error instanceof Error ? error.message : String(error)}\n`)
    return false
  }
}

const HOUR_MILLIS = 3_600_000

/**
 * Removes, an hour on, the temporary files of writes that a killed process left (40 MB each) and,
 * for a prepared file, the others of its family (made by migrations since changed).
 */
const removeStale = (file) => {
  const folder = path.dirname(file)
  const own = path.basename(file)
  const family = file === preparedFile ? own.slice(0, own.lastIndexOf("-") + 1) : undefined
  for (const name of fs.readdirSync(folder)) {
    const abandoned = name.startsWith(`${own}.`) && name.endsWith(".tmp")
    const superseded = family !== undefined && name !== own && name.startsWith(family) && name.endsWith(".tar")
    if (!abandoned && !superseded) continue
    const stale = path.join(folder, name)
    try {
      if (Date.now() - fs.statSync(stale).mtimeMs > HOUR_MILLIS) fs.rmSync(stale, { force: true })
    } catch {
      // gone already
    }
  }
}

/** The names in a data directory, or none if it does not exist yet. */
const entriesOf = (dir) => {
  try {
    return new Set(fs.readdirSync(dir))
  } catch {
    return new Set()
  }
}

/**
 * Opens the database: `existing` (a data directory that holds one), `prepared` (a new one in memory,
 * loaded from the prepared file), `template` (a new one, loaded from the template) or `initdb` (a
 * new one, made by initdb).
 */
const open = async () => {
  const exists = !inMemory && fs.existsSync(path.join(dataDir, "PG_VERSION"))
  if (exists) return { db: await PGlite.create(dataDir), start: "existing" }
  const prepared = readTemplate(preparedFile)
  if (prepared !== undefined) {
    try {
      return { db: await PGlite.create({ dataDir, loadDataDir: new Blob([prepared]) }), start: "prepared" }
    } catch (error) {
      // In memory: nothing of the failed load is left to clear.
      process.stderr.write(`pglite-server: could not start from the prepared file ${preparedFile} (${error instanceof Error ? error.message : String(error)}): starting as without it\n`)
    }
  }
  const tar = readTemplate(templateFile)
  if (tar !== undefined) {
    const before = inMemory ? undefined : entriesOf(dataDir)
    try {
      return { db: await PGlite.create({ dataDir, loadDataDir: new Blob([tar]) }), start: "template" }
    } catch (error) {
      process.stderr.write(`pglite-server: could not start from the template ${templateFile} (${error instanceof Error ? error.message : String(error)}): running initdb\n`)
      // What the load wrote goes, so that initdb finds the directory as it was.
      for (const name of before === undefined ? [] : entriesOf(dataDir)) {
        if (!before.has(name)) fs.rmSync(path.join(dataDir, name), { recursive: true, force: true })
      }
    }
  }
  const db = await PGlite.create(dataDir)
  if (inMemory && templateFile) await writeTemplate(db, templateFile)
  return { db, start: "initdb" }
}

// initdb of a fresh directory takes seconds; a shutdown requested meanwhile waits for it rather
// than leave a half-initialised data directory behind.
const opening = open()
/** @type {PGLiteSocketServer | undefined} */
let server
let stopping = false

/**
 * The parent's `save`: its database, now prepared, written as the prepared file (once; not when it
 * was loaded from it). A shutdown meanwhile waits for it, so that the dump is never of a database
 * being closed.
 */
let saving = Promise.resolve(false)
process.on("message", (message) => {
  if (message?.type !== "save") return
  saving = saving.then(async (done) => {
    const { db, start } = await opening
    return done || stopping || preparedFile === undefined || start === "prepared" ? false : await writeTemplate(db, preparedFile)
  }).catch(() => false)
  void saving.then((ok) => {
    if (process.connected) process.send({ type: "saved", ok })
  })
})

const shutdown = async (code) => {
  if (stopping) return
  stopping = true
  // Never linger as an orphan, even if closing hangs.
  setTimeout(() => {
    process.stderr.write("pglite-server: shutdown timed out\n")
    process.exit(1)
  }, 30_000).unref()
  try {
    await server?.stop()
    await saving
    const db = await opening.then(({ db }) => db, () => undefined)
    await db?.close()
  } catch (error) {
    process.stderr.write(`pglite-server: error while stopping: ${error?.stack ?? error}\n`)
    code = 1
  }
  process.exit(code)
}

// The parent decides when we stop. A terminal's Ctrl-C reaches the whole process group, and the
// parent may still write to the database while it shuts down, so SIGINT is ignored here: we go
// when the parent's IPC channel goes. SIGTERM too often reaches the whole group at once (systemd's
// default, `timeout`), while the parent checkpoints its runs into this database: it stops us once
// the parent has let go, or after a grace period if the parent never does (or is gone already).
const TERM_GRACE_MILLIS = 15_000
process.on("SIGINT", () => {})
process.on("SIGTERM", () => {
  if (!process.connected) void shutdown(0)
  else setTimeout(() => void shutdown(0), TERM_GRACE_MILLIS).unref()
})
process.on("disconnect", () => void shutdown(0))

try {
  const { db, start } = await opening
  if (!stopping) {
    // Strict single-connection mode: pglite-socket multiplexes connections onto PGlite's single
    // session one protocol message at a time, so a second connection's Parse/Bind/Execute could
    // interleave with the first's (EFFECT_NOTES.md §4).
    server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 1 })
    let port = 0
    // pglite-socket keeps the OS-chosen port of a port-0 bind and reports it with 'listening'.
    server.addEventListener("listening", (event) => {
      port = event.detail.port
    })
    await server.start()
    if (!(port > 0)) throw new Error(`could not learn the port the server listens on (${server.getServerConn()})`)
    if (!stopping) process.send({ type: "listening", port, start })
  }
} catch (error) {
  // The parent shows our stderr in its DatabaseUnavailable error: the message, not a stack.
  process.stderr.write(`pglite-server: could not open ${dataDir}: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
}
