/** The embedded database's server process (src/store/pglite-server.mjs) and the signals it gets. */
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import pg from "pg"

const script = fileURLToPath(new URL("../../src/store/pglite-server.mjs", import.meta.url))

const start = () =>
  new Promise<{ child: ChildProcess; port: number; exited: Promise<number | null> }>((resolve, reject) => {
    const child = spawn(process.execPath, [script, "memory://"], { stdio: ["ignore", "ignore", "pipe", "ipc"], env: { ...process.env, NODE_OPTIONS: "" } })
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
    child.once("error", reject)
    child.on("message", (message: { type?: string; port?: number }) => {
      if (message.type === "listening" && typeof message.port === "number") resolve({ child, port: message.port, exited })
    })
  })

const query = async (port: number) => {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" })
  await client.connect()
  try {
    return (await client.query("select 1 + 1 as two")).rows[0].two as number
  } finally {
    await client.end()
  }
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
