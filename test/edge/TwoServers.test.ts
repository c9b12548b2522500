/**
 * Two real `swarm serve` processes sharing one Postgres database (a fresh one: the embedded PGlite
 * is single-process) and one Redis, as a deployment behind a load balancer runs them:
 *
 * - an SSE subscriber on the second server sees every event of a paper run executing on the first,
 *   in order, after resuming from a sequence number — through Redis (the second server's `/health`
 *   counts the events it read from Redis), not only by tailing the database;
 * - a pause and a resume of a run on the first server reach an SSE client of the second as
 *   `event: status` frames (no `id:`), after the one it was sent first;
 * - a webhook alert delivered by the first server is a repeat on the second, which answers it from
 *   Redis (the idempotency keys) with the runs the first delivery reached; and `runs.get` on the
 *   second gives the live portfolio the first writes to Redis (the latest-values cache);
 * - the webhook rate limit is one token bucket for both servers: alerts split between them are
 *   refused (429) once the strategy's burst is spent, though each server alone saw fewer;
 * - Redis killed and started again mid-run loses nothing: the run completes, the publisher counts
 *   what it could not write to Redis, and the subscriber (resuming with Last-Event-ID when told to,
 *   as EventSource does) gets every event exactly once, the missing ones from the database;
 * - the Redis readers and subscribers of the servers killed mid-run (`CLIENT KILL`): an SSE follower
 *   and a `runs.events` stream on the second server get every event once, in order, and the end;
 * - Redis killed and left down until the run has finished: the subscriber on the second server
 *   reads the rest from the database in the same stream and gets the run's `end`, as does a new one;
 * - the second server leaves the first's live run to it at start-up (no "could not resume"), and
 *   takes over a run of the first once the first is killed (`kill -9`): within its looks
 *   (`SWARM_TAKEOVER_SECONDS=1` here), its events going on after the last the first committed.
 *
 * Redis is a private `redis-server --save ''` on a free port when the machine has one (so the test
 * can kill it), else `REDIS_URL` or 127.0.0.1:6379 with a key prefix of its own (the restart test is
 * then skipped, saying so). Needs `DATABASE_URL` (CI sets it); skipped, saying so, without it
 * outside CI.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Redis as IORedis } from "ioredis"
import Pg from "pg"
import { Chunk, Effect, Exit, Schedule, Schema, Scope, Stream } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import * as Database from "../../src/store/Database.js"
import { ProcessGroups, type Served } from "../cli/processes.js"
import { cleanUp, freePort, hasRedisServer, probe, redisUrl, uniquePrefix } from "../bus/redis.js"
import { serverUrl } from "../store/fresh.js"
import { open, rpcClient } from "./fixtures.js"

const sharedRedis = await probe(redisUrl)
const enabled = serverUrl !== undefined && (hasRedisServer || sharedRedis)
if (!enabled && process.env.CI === undefined) {
  console.warn(
    `TwoServers skipped: ${serverUrl === undefined ? "DATABASE_URL is not set (two processes need a Postgres server)" : "no redis-server to start and no Redis answering"}`
  )
}
// Under CI nothing may be missing: the suite runs, and fails if it is.
const run = enabled || process.env.CI !== undefined

// Made only when the suite runs: a skipped file runs no hooks, so its afterAll would not remove it.
const tmp = run ? fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-two-")) : Path.join(os.tmpdir(), "swarm-two-skipped")
const processes = new ProcessGroups()
const prefix = uniquePrefix("two")

// ---------------------------------------------------------------------------------------------
// A private Redis the test may kill

class PrivateRedis {
  private child: ChildProcess | undefined = undefined
  constructor(readonly port: number) {}

  get url() {
    return `redis://127.0.0.1:${this.port}`
  }

  async start(): Promise<void> {
    this.child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp], {
      stdio: "ignore"
    })
    for (let i = 0; i < 200; i++) {
      if (await probe(this.url)) return
      await sleep(25)
    }
    throw new Error(`redis-server on port ${this.port} did not start`)
  }

  /** Gone at once, as a crash is (nothing saved: it comes back empty). */
  async kill(): Promise<void> {
    const child = this.child
    this.child = undefined
    if (child === undefined || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once("exit", resolve))
    child.kill("SIGKILL")
    await exited
  }
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

// ---------------------------------------------------------------------------------------------
// The servers

const start = (env: NodeJS.ProcessEnv, settle: number) => processes.serve({ cwd: tmp, env, settle })

const stop = async (server: Served | undefined) => {
  if (server === undefined || server.child.exitCode !== null || server.child.signalCode !== null) return
  process.kill(-server.child.pid!, "SIGINT")
  await Promise.race([server.exited, sleep(10_000)])
}

let redis: PrivateRedis | undefined
let dbScope: Scope.CloseableScope | undefined
let a: Served | undefined
let b: Served | undefined
let key = ""
let databaseUrl = ""

beforeAll(async () => {
  if (!enabled) return
  if (hasRedisServer) {
    redis = new PrivateRedis(await freePort())
    await redis.start()
  }
  dbScope = await Effect.runPromise(Scope.make())
  const database = await Effect.runPromise(Database.temporary(serverUrl!).pipe(Scope.extend(dbScope)))
  databaseUrl = database
  const env = Object.fromEntries(
    Object.entries({
      ...process.env,
      DATABASE_URL: database,
      REDIS_URL: redis?.url ?? redisUrl,
      REDIS_PREFIX: prefix,
      SWARM_LLM: "offline",
      SWARM_DATA_DIR: Path.join(tmp, "unused"),
      // Looks for runs to take over every second (the last test).
      SWARM_TAKEOVER_SECONDS: "1"
    }).filter(([k]) => k !== "PORT" && k !== "HOST")
  )
  // The first makes the admin (its key on stdout) and the example strategy; then the second joins.
  a = await start(env, 1_000)
  key = /sk_[A-Za-z0-9_-]{43}/.exec(a.stdout())?.[0] ?? ""
  b = await start(env, 300)
}, 120_000)

afterAll(async () => {
  await Promise.all([stop(a), stop(b)])
  processes.killAll()
  await redis?.kill()
  if (dbScope !== undefined) await Effect.runPromise(Scope.close(dbScope, Exit.void))
  if (redis === undefined) await cleanUp(prefix)
  fs.rmSync(tmp, { recursive: true, force: true })
}, 60_000)

// ---------------------------------------------------------------------------------------------
// Following a run over SSE, as EventSource does

interface Followed {
  readonly events: ReadonlyArray<{ readonly id: number; readonly event: string; readonly data: string }>
  /** Times the server closed the stream before the end (overflow, an outage) and it was resumed. */
  readonly resumed: number
  readonly end: unknown
}

/**
 * The events of `run` at `base` after `since` until the run's `end` (or `stopAfter` events), resuming
 * with Last-Event-ID whenever the stream closes early.
 */
const follow = async (base: string, run: string, since: number, options: { readonly stopAfter?: number; readonly onEvent?: (count: number) => void } = {}) => {
  const events: Array<{ id: number; event: string; data: string }> = []
  let last = since
  let resumed = 0
  const deadline = Date.now() + 90_000
  while (Date.now() < deadline) {
    const opened = await Effect.runPromise(open(`${base}/v1/runs/${run}/events`, { authorization: `Bearer ${key}`, "last-event-id": String(last) }))
    // The run finished while we were away, and we have every event: what the `end` would have said.
    if (opened.status === 204) return { events, resumed, end: { run, lastEventId: last } } satisfies Followed
    if (!("reader" in opened)) throw new Error(`SSE answered ${opened.status}: ${JSON.stringify(opened.body)}`)
    try {
      for (;;) {
        const item = await opened.reader.next()
        if (item === undefined) break
        if (item.type !== "event") continue
        if (item.event === "end") return { events, resumed, end: JSON.parse(item.data) } satisfies Followed
        // `overflow`, `error`: no id; the server closes the stream next, and we resume.
        if (item.id === undefined) continue
        events.push({ id: Number(item.id), event: item.event, data: item.data })
        last = Number(item.id)
        options.onEvent?.(events.length)
        if (options.stopAfter !== undefined && events.length >= options.stopAfter) return { events, resumed, end: undefined } satisfies Followed
      }
    } finally {
      opened.reader.close()
    }
    resumed++
    await sleep(200)
  }
  throw new Error(`the run's end did not come within 90 s (${events.length} events, last ${last})`)
}

const health = (base: string) => fetch(`${base}/health`).then((r) => r.json() as Promise<Record<string, any>>)

/** A paper run of the example strategy (or `strategy`) on `base`, on synthetic bars, twenty bars a second. */
const startPaperRun = (base: string, bars: number, strategy = "Six analysts") =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(base, key), (rpc) =>
    rpc("runs.start", { strategy, mode: "paper", data: { _tag: "synthetic", bars, seed: 7 }, speed: 20 * 86_400 }))))

/** A strategy that reads TradingView alerts (the example's analysts do not: its runs are not sent any). */
const ALERTS = "Six analysts and alerts"

let webhook: { readonly path: string; readonly secret: string } | undefined

/** `ALERTS`'s webhook, the strategy created first (its secret is shown on the first ask only: kept for every test). */
const webhookOf = async () => {
  if (webhook === undefined) {
    const strategy = Schema.decodeUnknownSync(Strategy)({
      name: ALERTS,
      symbols: ["ACME", "GLOBEX", "INITECH"],
      agents: [{ type: "tradingview" }, { type: "sma_crossover", params: { fast: 10, slow: 50 } }],
      sizing: { mode: "percent_of_equity", value: 10 }
    })
    const made = await Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(a!.base, key), (rpc) =>
      Effect.zipRight(rpc("strategies.create", { strategy }), rpc("webhooks.secret", { strategy: ALERTS })))))
    expect(made.secret).not.toBeNull()
    webhook = { path: made.path, secret: made.secret! }
  }
  return webhook
}

const runStatus = (base: string, id: string) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(base, key), (rpc) => rpc("runs.get", { run: id }))))

/** Every event of a finished run, from its database (through `base`). */
const stored = async (base: string, id: string) => (await follow(base, id, 0)).events

const expectContiguous = (ids: ReadonlyArray<number>, from: number) => expect(ids).toEqual(ids.map((_, i) => from + i))

describe.skipIf(!run)("two server processes sharing Redis", () => {
  it("both say they use Redis; start-up says so too", async () => {
    expect(key).not.toBe("")
    for (const server of [a!, b!]) {
      expect(server.stderr()).toContain("event bus: Redis at")
      const report = await health(server.base)
      expect(report).toMatchObject({
        status: "ok",
        database: { kind: "postgres" },
        bus: { kind: "redis", redis: { state: "ready" } },
        statusFeed: { kind: "redis", description: expect.stringContaining(`Redis (${prefix}runs:status)`) }
      })
      expect(server.stderr()).toContain("takeover: every 1 s, this server looks for runs whose server stopped and takes them over (SWARM_TAKEOVER_SECONDS)")
    }
    // The first server's paper run (its first start's) is running there: the second leaves it to
    // it, said as what it is. Before, every normal start of a second server said it "could not resume" it.
    const demo = /run (run_[0-9a-f]+)/.exec(a!.stdout())?.[1]
    expect(b!.stderr()).toContain(`left run ${demo} (Six analysts#1) to the process running it\n`)
    expect(b!.stderr()).not.toContain("could not resume")
  })

  it("a subscriber on the second server sees every event of a paper run on the first, in order, after resuming from a sequence number", async () => {
    const paper = await startPaperRun(a!.base, 120)
    // The first few, then hang up, as a dashboard that goes away.
    const first = await follow(b!.base, paper.id, 0, { stopAfter: 8 })
    expectContiguous(first.events.map((e) => e.id), 1)
    const since = first.events.at(-1)!.id
    const rest = await follow(b!.base, paper.id, since)
    expectContiguous(rest.events.map((e) => e.id), since + 1)
    expect(rest.end).toEqual({ run: paper.id, lastEventId: rest.events.at(-1)!.id, status: "completed" })
    expect(rest.events.at(-1)!.event).toBe("RunCompleted")
    // Exactly what the first server recorded, byte for byte.
    const all = await stored(a!.base, paper.id)
    expect(rest.events).toEqual(all.slice(since))
    // Through Redis: the second server read the run's events from it.
    const report = await health(b!.base)
    expect(report.bus.redis.received).toBeGreaterThan(0)
    expect((await health(a!.base)).bus.redis.publishFailures).toBe(0)
  }, 120_000)

  it("a pause and a resume on the first server reach an SSE client of the second as status frames, after its first", async () => {
    const paper = await startPaperRun(a!.base, 3_000)
    const rpc = (procedure: "pause" | "resume" | "stop") =>
      Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(a!.base, key), (client) =>
        procedure === "pause"
          ? client("runs.pause", { run: paper.id })
          : procedure === "resume"
          ? client("runs.resume", { run: paper.id })
          : client("runs.stop", { run: paper.id }))))
    const opened = await Effect.runPromise(open(`${b!.base}/v1/runs/${paper.id}/events`, { authorization: `Bearer ${key}` }))
    if (!("reader" in opened)) throw new Error(`SSE answered ${opened.status}: ${JSON.stringify(opened.body)}`)
    /** The next `status` frame (the events between: run events, with ids), within 15 s. */
    const nextStatus = () => Promise.race([statusFrame(), sleep(15_000).then(() => Promise.reject(new Error("no status frame within 15 s")))])
    const statusFrame = async () => {
      for (;;) {
        const item = await opened.reader.next()
        if (item === undefined) throw new Error("the stream ended before a status frame")
        if (item.type !== "event") continue
        if (item.event === "status") {
          expect(item.id).toBeUndefined()
          return JSON.parse(item.data) as Record<string, any>
        }
        expect(item.id).toBeDefined()
      }
    }
    try {
      // First, before any event: the run goes on, never paused.
      expect(await nextStatus()).toEqual({ status: "running" })
      const hintsBefore = (await health(b!.base)).statusFeed.received
      const paused = await rpc("pause")
      expect(paused.status).toBe("paused")
      const pausedNote = await nextStatus()
      expect(pausedNote).toMatchObject({ status: "paused", by: { name: "admin" } })
      expect(Date.parse(pausedNote.at)).toBeGreaterThan(0)
      await rpc("resume")
      const resumedNote = await nextStatus()
      expect(resumedNote).toMatchObject({ status: "running", by: { name: "admin" } })
      expect(Date.parse(resumedNote.at)).toBeGreaterThanOrEqual(Date.parse(pausedNote.at))
      // Through Redis, at once (not only the row read every second): the second server read the first's hints.
      const feed = (await health(b!.base)).statusFeed
      expect(feed).toMatchObject({ kind: "redis", followed: 1 })
      expect(feed.received).toBeGreaterThanOrEqual(hintsBefore + 2)
    } finally {
      opened.reader.close()
      await rpc("stop").catch(() => undefined)
    }
  }, 60_000)

  it("a webhook alert delivered by the first server is a repeat on the second, answered there from Redis with the same runs; runs.get there gives the run's live values", async () => {
    const { path, secret } = await webhookOf()
    const paper = await startPaperRun(a!.base, 400, ALERTS)
    const send = (base: string, id: string) =>
      fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-swarm-secret": secret },
        body: JSON.stringify({ ticker: "ACME", action: "buy", price: 1, id })
      }).then(async (response) => ({ status: response.status, body: (await response.json()) as Record<string, any> }))
    // To every paper run of the strategy on the first server.
    const first = await send(a!.base, "two-once")
    expect(first).toMatchObject({ status: 202, body: { status: "delivered", duplicate: false, alert: "id:two-once" } })
    const runs: Array<string> = first.body.runs
    expect(runs).toContain(paper.id)
    // The first delivery's acknowledgement is in Redis, under the strategy and the alert's key.
    const strategy = path.slice(path.lastIndexOf("/") + 1)
    const client = new IORedis(redis?.url ?? redisUrl)
    try {
      expect(JSON.parse((await client.get(`${prefix}idem:webhook:${strategy}:id:two-once`)) ?? "null")).toEqual({ runs })
    } finally {
      client.disconnect()
    }
    // The second server runs nothing of the strategy: it answers the repeat with the runs the first one reached.
    expect(await send(b!.base, "two-once")).toEqual({
      status: 200,
      body: { status: "duplicate", duplicate: true, alert: "id:two-once", runs }
    })

    // Where the run stands, asked of the server that does not run it: the values the first one writes to Redis
    // (written behind, at most every 250 ms: the database's may come first, until the run's first values are there).
    let info = await runStatus(b!.base, paper.id)
    for (let i = 0; i < 300 && info.latest?.source !== "cache"; i++) {
      await sleep(100)
      info = await runStatus(b!.base, paper.id)
    }
    expect(info.latest?.source).toBe("cache")
    expect(info.latest?.portfolio?.equity).toBeGreaterThan(0)
    await Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(a!.base, key), (rpc) => rpc("runs.stop", { run: paper.id })))).catch(() => undefined)
  }, 60_000)

  it("the webhook rate limit holds across both servers: one bucket per strategy", async () => {
    const secret = await webhookOf()
    const started = Date.now()
    const statuses: Record<string, Array<number>> = { a: [], b: [] }
    // 48 alerts, alternating: 24 to each — fewer than the burst of 30 either would allow alone.
    for (let i = 0; i < 48; i++) {
      const [name, server] = i % 2 === 0 ? ["a", a!] as const : ["b", b!] as const
      const response = await fetch(`${server.base}${secret.path}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-swarm-secret": secret.secret },
        body: JSON.stringify({ ticker: "NOT-TRADED", action: "buy", price: 1, id: `two-${i}` })
      })
      statuses[name]!.push(response.status)
      if (response.status === 429) expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0)
    }
    const elapsed = Math.ceil((Date.now() - started) / 1_000)
    const refused = [...statuses.a!, ...statuses.b!].filter((s) => s === 429).length
    // A burst of 30 and one more a second for everything together.
    expect(refused).toBeGreaterThanOrEqual(48 - 30 - elapsed - 1)
    expect(refused).toBeGreaterThan(0)
    expect(statuses.a!.filter((s) => s === 429).length).toBeGreaterThan(0)
    expect(statuses.b!.filter((s) => s === 429).length).toBeGreaterThan(0)
    // The rest got past the limit to the usual answers (no such ticker here; no paper run there).
    for (const s of [...statuses.a!, ...statuses.b!]) expect([400, 409, 429]).toContain(s)
  }, 60_000)

  it("a question asked of the first server streams to a chat watcher on the second, chunk for chunk", async () => {
    const paper = await startPaperRun(a!.base, 40)
    const opened = await Effect.runPromise(open(`${b!.base}/v1/runs/${paper.id}/chat`, { authorization: `Bearer ${key}` }))
    if (!("reader" in opened)) throw new Error(`chat SSE answered ${opened.status}: ${JSON.stringify(opened.body)}`)
    try {
      // The watcher is subscribed once its `retry:` has come.
      expect((await opened.reader.next())?.type).toBe("retry")
      const asked = await Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(a!.base, key), (rpc) =>
        rpc("chat.send", { run: paper.id, message: "Which trades lost money?" }).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray)))))
      expect(asked.at(-1)?._tag).toBe("Done")
      const watched: Array<{ id: string | undefined; event: string }> = []
      while (watched.length < asked.length) {
        const item = await opened.reader.next()
        if (item === undefined) break
        if (item.type === "event") watched.push({ id: item.id, event: item.event })
      }
      expect(watched.map((w) => w.id)).toEqual(asked.map((c) => `${c.question}.${c.index}`))
      expect(watched.at(-1)!.event).toBe("done")
    } finally {
      opened.reader.close()
    }
  }, 60_000)

  it("an asker cut off on the first server reads on with chat.follow on the second, after its last chunk: every chunk once", async () => {
    const paper = await startPaperRun(a!.base, 40)
    const [first, whole] = await Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(a!.base, key), (rpc) =>
      Effect.all([
        // The asker's stream drops after 3 chunks.
        rpc("chat.send", { run: paper.id, message: "Which trades lost money?" }).pipe(Stream.take(3), Stream.runCollect, Effect.map(Chunk.toReadonlyArray)),
        // The answer as recorded, once it is.
        rpc("chat.history", { run: paper.id }).pipe(
          Effect.filterOrFail((history) => history.messages.at(-1)?.role === "assistant" && history.messages.at(-1)?.toolCalls === null),
          Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 300 })
        )
      ], { concurrency: 1 }))))
    const last = first.at(-1)!
    // The second server heard the answer through Redis and holds it: the rest, to its end.
    const rest = await Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(b!.base, key), (rpc) =>
      rpc("chat.follow", { run: paper.id, after: `${last.question}.${last.index}` }).pipe(
        Stream.takeUntil((c) => c._tag === "Done" || c._tag === "Failed" || c._tag === "Missed"),
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray),
        Effect.timeout("15 seconds")
      ))))
    const all = [...first, ...rest]
    expect(all.map((c) => (c._tag === "Missed" ? "missed" : `${c.question}.${c.index}`))).toEqual(all.map((_, i) => `${last.question}.${i}`))
    expect(all.at(-1)?._tag).toBe("Done")
    const text = all.flatMap((c) => (c._tag === "Token" ? [c.text] : [])).join("")
    expect(text).toBe(whole.messages.at(-1)!.content)
  }, 60_000)

  it.skipIf(!hasRedisServer)("Redis killed and started again mid-run loses nothing: every event reaches the subscriber on the other server", async () => {
    const paper = await startPaperRun(a!.base, 160)
    let killed: Promise<void> | undefined
    const followed = follow(b!.base, paper.id, 0, {
      onEvent: (count) => {
        // Mid-run: down for a moment, then back, empty (nothing saved), on the same port.
        if (count === 20 && killed === undefined) killed = redis!.kill().then(() => sleep(1_500)).then(() => redis!.start())
      }
    })
    const result = await followed
    await killed
    expectContiguous(result.events.map((e) => e.id), 1)
    expect(result.events.at(-1)!.event).toBe("RunCompleted")
    expect(result.events).toEqual(await stored(a!.base, paper.id))
    expect((await runStatus(a!.base, paper.id)).status).toBe("completed")
    // The outage was real: the publisher could not write some events, and both reconnected.
    const publisher = (await health(a!.base)).bus.redis
    expect(publisher.publishFailures).toBeGreaterThan(0)
    expect(publisher.reconnects).toBeGreaterThan(0)
    expect(publisher.state).toBe("ready")
    expect((await health(b!.base)).bus.redis.reconnects).toBeGreaterThan(0)
  }, 120_000)

  it.skipIf(!hasRedisServer)("Redis down until a run on the first server has finished: a follower on the second reads the rest from the database and ends with `end`, and so does a new one", async () => {
    const paper = await startPaperRun(a!.base, 60)
    let killed: Promise<void> | undefined
    try {
      const result = await follow(b!.base, paper.id, 0, {
        onEvent: (count) => {
          if (count === 8 && killed === undefined) killed = redis!.kill()
        }
      })
      await killed
      // One stream, never closed early: every event once, then the end the run's row gives.
      expect(result.resumed).toBe(0)
      expectContiguous(result.events.map((e) => e.id), 1)
      expect(result.events.at(-1)!.event).toBe("RunCompleted")
      expect(result.end).toEqual({ run: paper.id, lastEventId: result.events.at(-1)!.id, status: "completed" })
      expect(result.events).toEqual(await stored(a!.base, paper.id))
      // Asked again of the second server with Redis still down: all of it, and the end.
      const again = await follow(b!.base, paper.id, 0)
      expect(again.resumed).toBe(0)
      expect(again.events).toEqual(result.events)
      expect(again.end).toEqual(result.end)
      // /health says the server serves, falling back: degraded, still 200.
      const answer = await fetch(`${b!.base}/health`)
      const report = await answer.json() as Record<string, any>
      expect(answer.status).toBe(200)
      expect(report.status).toBe("degraded")
      expect(report.reasons).toEqual([expect.stringMatching(/^bus: Redis .*: falling back to this process$/)])
    } finally {
      await killed
      await redis!.start()
    }
  }, 120_000)

  it.skipIf(!hasRedisServer)("the Redis readers and subscribers killed mid-run (CLIENT KILL): an SSE follower and a runs.events stream on the second server get every event once, in order, and the end, in one stream each", async () => {
    const paper = await startPaperRun(a!.base, 160)
    const admin = new IORedis(redis!.url)
    try {
      let killed: Promise<void> | undefined
      let receivedAtKill = 0
      let readersKilled = 0
      const kill = async () => {
        receivedAtKill = (await health(b!.base)).bus.redis.received
        // The bus's readers (XREAD on the runs' streams) and every pub/sub subscriber: this Redis is the test's own.
        const list = String(await admin.client("LIST"))
        for (const line of list.split("\n")) {
          const id = /\bid=(\d+)/.exec(line)?.[1]
          if (id !== undefined && /\bname=swarm-bus-reader\b/.test(line)) readersKilled += Number(await admin.client("KILL", "ID", id))
        }
        await admin.client("KILL", "TYPE", "pubsub")
      }
      const streamed: Array<number> = []
      const rpc = Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(b!.base, key), (client) =>
        client("runs.events", { run: paper.id }).pipe(Stream.runForEach((e) => Effect.sync(() => void streamed.push(e.seq)))))))
      const result = await follow(b!.base, paper.id, 0, {
        onEvent: (count) => {
          if (count === 20 && killed === undefined) killed = kill()
        }
      })
      await killed
      await rpc
      expect(readersKilled).toBeGreaterThan(0)
      expect(result.resumed).toBe(0)
      expectContiguous(result.events.map((e) => e.id), 1)
      expect(result.events.at(-1)!.event).toBe("RunCompleted")
      expect(result.end).toEqual({ run: paper.id, lastEventId: result.events.at(-1)!.id, status: "completed" })
      expect(result.events).toEqual(await stored(a!.base, paper.id))
      expect(streamed).toEqual(result.events.map((e) => e.id))
      // After the kill too, through Redis: the readers resumed from where they were.
      expect((await health(b!.base)).bus.redis.received).toBeGreaterThan(receivedAtKill)
    } finally {
      admin.disconnect()
    }
  }, 120_000)

  // Last: it kills the first server.
  it("the first server killed (kill -9) mid-run: the second takes its run over within its looks, and the run's events go on with no gap", async () => {
    const paper = await startPaperRun(a!.base, 3_000)
    const db = new Pg.Client({ connectionString: databaseUrl })
    await db.connect()
    try {
      // A row younger than the grace (30 s) is left to whoever is starting it: this one is made
      // older than that (31 s of waiting was half of this suite's time).
      await db.query("update runs set started_at = started_at - interval '60 seconds' where id = $1", [paper.id])
      const before = await follow(b!.base, paper.id, 0, { stopAfter: 10 })
      expectContiguous(before.events.map((e) => e.id), 1)
      process.kill(-a!.child.pid!, "SIGKILL")
      await a!.exited
      const killedAt = Date.now()
      const committed = Number((await db.query("select coalesce(max(seq), 0)::int as seq from run_events where run_id = $1", [paper.id])).rows[0].seq)
      const line = `took over run ${paper.id} (Six analysts#`
      while (!b!.stdout().includes(line) && Date.now() - killedAt < 20_000) await sleep(100)
      // Before, it stayed `running` with nobody running it until a server started.
      expect(b!.stdout()).toContain(line)
      expect(b!.stdout()).toContain("from a process that stopped")
      expect(Date.now() - killedAt).toBeLessThan(15_000)
      // Every event, once, in order: those the first committed, then the second's, past them.
      const after = await follow(b!.base, paper.id, 0, { stopAfter: committed + 20 })
      expectContiguous(after.events.map((e) => e.id), 1)
      expect(after.events.length).toBe(committed + 20)
      // The second runs it now: an operator can stop it there.
      await Effect.runPromise(Effect.scoped(Effect.flatMap(rpcClient(b!.base, key), (rpc) => rpc("runs.stop", { run: paper.id }))))
      expect((await runStatus(b!.base, paper.id)).status).toBe("stopped")
    } finally {
      await db.end()
    }
  }, 120_000)
})
