/**
 * The Redis the bus tests run against: `REDIS_URL`, else the one on 127.0.0.1:6379 (CI has it).
 * Each test file gets a key prefix of its own and removes its keys when it ends. Without a
 * reachable Redis the Redis suites are skipped, saying so — except under CI, where Redis must be
 * there and its absence fails them.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as Path from "node:path"
import { Redis as IORedis } from "ioredis"
import { Effect } from "effect"
import * as Redis from "../../src/bus/Redis.js"

export const redisUrl = process.env.REDIS_URL?.trim() || "redis://127.0.0.1:6379"

/** Whether a Redis answers PING at `url` within a second. */
export const probe = async (url: string): Promise<boolean> => {
  const client = new IORedis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 })
  client.on("error", () => {})
  try {
    await client.connect()
    return (await client.ping()) === "PONG"
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

export const reachable = await probe(redisUrl)

/** Run the Redis suites: Redis answers, or CI says it must. */
export const runRedis = reachable || process.env.CI !== undefined

if (!runRedis) {
  console.warn(`Redis suites skipped: no Redis answers at ${Redis.maskUrl(redisUrl)} (set REDIS_URL, or start redis-server; under CI they run and fail)`)
}

/** A key prefix no other test run shares. */
export const uniquePrefix = (name: string) => `swarm-test:${name}:${process.pid}:${Math.random().toString(36).slice(2, 10)}:`

/** Every key under `prefix`, deleted. */
export const cleanUp = async (prefix: string, url = redisUrl): Promise<void> => {
  const client = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
  client.on("error", () => {})
  try {
    await client.connect()
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1_000)
      cursor = next
      if (keys.length > 0) await client.del(...keys)
    } while (cursor !== "0")
  } catch {
    // nothing to clean without Redis
  } finally {
    client.disconnect()
  }
}

/** A connection under `prefix` for the scope (one per simulated process). */
export const connection = (prefix: string, url = redisUrl) => Redis.make({ url, prefix, connectTimeoutMillis: 2_000 })

export const layer = (prefix: string, url = redisUrl) => Redis.layerWith({ url, prefix })

/** A port nothing listens on: a Redis that is down. */
export const downUrl = "redis://127.0.0.1:1"

/** Until `done()` holds, checking every 10 ms (at most `millis`). */
export const eventually = (done: () => boolean, millis = 5_000) =>
  Effect.gen(function*() {
    const until = Date.now() + millis
    while (!done() && Date.now() < until) yield* Effect.sleep("10 millis")
    return done()
  })

// ---------------------------------------------------------------------------------------------
// A Redis of the test's own, to take away and bring back

/** Whether `command` is an executable file in a folder of PATH, as `spawn` looks for it. */
const onPath = (command: string): boolean =>
  (process.env.PATH ?? "").split(Path.delimiter).some((dir) => {
    if (dir === "") return false
    try {
      const file = Path.join(dir, command)
      fs.accessSync(file, fs.constants.X_OK)
      return fs.statSync(file).isFile()
    } catch {
      return false
    }
  })

/**
 * Whether this machine can start a `redis-server` (a test that takes Redis away needs one of its
 * own). Looked up on PATH here rather than by `sh -c "command -v …"`: a shell started from a test
 * process of some hundreds of MB, at the import of each of the 15 files that import this module,
 * used or not.
 */
export const hasRedisServer = onPath("redis-server")

/** A TCP port nothing listens on now, of 127.0.0.1. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

export interface PrivateRedis {
  readonly url: string
  /** Gone at once, as a crash is (nothing saved: it comes back empty). */
  readonly kill: Effect.Effect<void>
  /** Started again on the same port. */
  readonly start: Effect.Effect<void>
  /** Frozen (SIGSTOP): connections stay open and nothing answers, as across a network partition. */
  readonly freeze: Effect.Effect<void>
  readonly thaw: Effect.Effect<void>
}

/** A `redis-server` on a free port for the scope (killed, its directory removed, when the scope closes). */
export const privateRedis = Effect.gen(function*() {
  const port = yield* Effect.promise(freePort)
  const url = `redis://127.0.0.1:${port}`
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-redis-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  let child: ChildProcess | undefined = undefined
  const kill = Effect.promise(async () => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((resolve) => running.once("exit", resolve))
    running.kill("SIGCONT")
    running.kill("SIGKILL")
    await exited
  })
  const start = Effect.promise(async () => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" })
    for (let i = 0; i < 200; i++) {
      if (await probe(url)) return
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    throw new Error(`redis-server on port ${port} did not start`)
  })
  const signal = (name: NodeJS.Signals) => Effect.sync(() => void child?.kill(name))
  yield* Effect.acquireRelease(start, () => kill)
  return { url, kill, start, freeze: signal("SIGSTOP"), thaw: signal("SIGCONT") } satisfies PrivateRedis
})

// ---------------------------------------------------------------------------------------------
// A Redis that freezes, without stopping anyone's Redis

export interface FreezingRedis {
  /** The shared Redis (`redisUrl`, its database), through a proxy of the test's own. */
  readonly url: string
  /** From now on nothing is passed either way: the TCP connections stay up and nothing answers (a SIGSTOP, a partition). */
  readonly freeze: Effect.Effect<void>
  /** Passed on again, what came meanwhile first (as a Redis given SIGCONT answers what waited). */
  readonly thaw: Effect.Effect<void>
  /**
   * Every connection through the proxy closed at once, what was held unsent dropped (as `CLIENT KILL`
   * or a network blip does); new ones go through (or are held, while frozen).
   */
  readonly cut: Effect.Effect<void>
  /** Cut, and every new connection closed at once until `up`: Redis away (a send fails at once). */
  readonly down: Effect.Effect<void>
  readonly up: Effect.Effect<void>
}

/**
 * `redisUrl` through a TCP proxy on 127.0.0.1 (an ephemeral port) that can be frozen: a Redis that
 * keeps its connections and answers nothing — as one stopped with SIGSTOP, which a shared Redis must
 * never be. Closed with the scope.
 */
export const freezingRedis = Effect.gen(function*() {
  const target = new URL(redisUrl)
  let frozen = false
  let refusing = false
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy()
      return
    }
    const upstream = net.connect(Number(target.port || 6379), target.hostname)
    sockets.add(client)
    sockets.add(upstream)
    const close = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.pipe(upstream)
    upstream.pipe(client)
    if (frozen) client.pause()
    client.on("error", close).on("close", close)
    upstream.on("error", close).on("close", close)
  })
  const port = yield* Effect.acquireRelease(
    Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
    }),
    () =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )
  const url = `redis://127.0.0.1:${port}${target.pathname}`
  // Held, not dropped: a read paused leaves the bytes in the kernel's buffers until it resumes.
  const hold = (on: boolean) =>
    Effect.sync(() => {
      frozen = on
      for (const socket of sockets) on ? socket.pause() : socket.resume()
    })
  const cut = Effect.sync(() => {
    for (const socket of [...sockets]) socket.destroy()
    sockets.clear()
  })
  const down = Effect.zipRight(Effect.sync(() => (refusing = true)), cut)
  const up = Effect.sync(() => (refusing = false))
  return { url, freeze: hold(true), thaw: hold(false), cut, down, up } satisfies FreezingRedis
})
