/**
 * The embedded database's server process: PGlite served over the Postgres wire protocol on a
 * loopback port, so the parent talks to it with the same @effect/sql-pg code as to a real server.
 * It runs in its own process because PGlite's WASM blocks the event loop it runs on.
 *
 *   node src/store/pglite-server.mjs <data dir | memory://>      (spawned by Database.ts with an IPC channel)
 *
 * Protocol with the parent, over IPC: `{ type: "listening", port }` once it accepts connections;
 * a failure to start is a line on stderr and exit code 1. It lives exactly as long as the parent's IPC
 * channel: when the parent disconnects or dies (even by SIGKILL) it stops the server, closes the
 * database (flushing a file-backed one) and exits.
 *
 * Plain JavaScript on purpose: it is started with plain `node`, without the TypeScript loader.
 */
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"

const dataDir = process.argv[2]

if (!dataDir || typeof process.send !== "function") {
  process.stderr.write("usage: spawned by src/store/Database.ts with an IPC channel: pglite-server.mjs <data dir | memory://>\n")
  process.exit(2)
}

// initdb of a fresh directory takes seconds; a shutdown requested meanwhile waits for it rather
// than leave a half-initialised data directory behind.
const opening = PGlite.create(dataDir)
/** @type {PGLiteSocketServer | undefined} */
let server
let stopping = false

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
    const db = await opening.catch(() => undefined)
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
  const db = await opening
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
    if (!stopping) process.send({ type: "listening", port })
  }
} catch (error) {
  // The parent shows our stderr in its DatabaseUnavailable error: the message, not a stack.
  process.stderr.write(`pglite-server: could not open ${dataDir}: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
}
