/**
 * `swarm serve` with `SWARM_LOG_FORMAT=json` or `logfmt`, through the real binary, as an SRE ships
 * its logs: every line it writes is a record of that format — the start-up lines (database, bus,
 * model, telemetry, where it listens), the admin's key on the first start, each request (with its
 * duration, trace and user, never the key), the runs it resumes, what it suspends when stopping and
 * that it stopped — on stdout, and stderr stays empty. On the embedded database, or a fresh
 * Postgres database when `DATABASE_URL` is set.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { rpcClient } from "../edge/fixtures.js"
import { liveServer } from "./liveServer.js"

interface JsonRecord {
  readonly message: string
  readonly logLevel: string
  readonly annotations: Record<string, unknown>
}

const json = liveServer("swarm-logs-json", { manual: true, env: { SWARM_LOG_FORMAT: "json" } })
const logfmt = liveServer("swarm-logs-logfmt", { manual: true, env: { SWARM_LOG_FORMAT: "logfmt" } })

const linesOf = (text: string) => text.split("\n").filter((line) => line !== "")

/** Each line of stdout as a JSON record; a line that does not parse fails the test, naming it. */
const records = (stdout: string): Array<JsonRecord> =>
  linesOf(stdout).map((line) => {
    try {
      return JSON.parse(line) as JsonRecord
    } catch {
      throw new Error(`not a JSON record: ${line}`)
    }
  })

/** An SSE request, hung up on once its first bytes are in. */
const touch = (url: string) =>
  Effect.promise(async () => {
    const controller = new AbortController()
    const response = await fetch(url, { signal: controller.signal })
    await response.body?.getReader().read()
    controller.abort()
    return response.status
  })

describe("swarm serve, SWARM_LOG_FORMAT=json", () => {
  it.live("every line is a JSON record on stdout: start-up, the key once, requests with duration, trace and user, resumed runs, stopping, stopped", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => json.start())
      const served = json.served()
      const key = json.key()
      // The demo run's record comes right after the key's.
      for (let i = 0; i < 300 && !/run (run_[0-9a-f]+)/.test(served.stdout()); i++) yield* Effect.sleep("100 millis")
      const run = /run (run_[0-9a-f]+)/.exec(served.stdout())?.[1]
      expect(run).toBeDefined()
      // Requests: a run's events with `?token=`, an RPC call with the bearer header, /health.
      expect(yield* touch(`${served.base}/v1/runs/${run}/events?token=${key}`)).toBe(200)
      yield* Effect.scoped(Effect.flatMap(rpcClient(served.base, key), (rpc) => rpc("runs.list", {})))
      yield* Effect.promise(() => fetch(`${served.base}/health`).then((r) => r.text()))
      yield* json.stop

      const first = records(served.stdout())
      expect(served.stderr()).toBe("")
      const field = (name: string) => first.find((r) => name in r.annotations)
      expect(field("database")?.annotations.database).toMatch(/^(embedded|postgres)$/)
      expect(field("model")?.annotations.model).toBe("offline")
      expect(field("telemetry")?.annotations.telemetry).toBe("in-process")
      expect(field("bus")).toMatchObject({ annotations: { bus: "in-process" }, message: expect.stringContaining("event bus: in-process") })
      expect(field("url")).toMatchObject({ logLevel: "INFO", annotations: { url: served.base } })
      // The key, once, in a record of its own that says so: a person finds it in the logs.
      const keyed = first.filter((r) => JSON.stringify(r).includes(key))
      expect(keyed).toHaveLength(1)
      expect(keyed[0]).toMatchObject({ logLevel: "WARN", annotations: { user: "admin", apiKey: key } })
      expect(keyed[0]!.message).toContain("shown this once")
      expect(field("watch")?.annotations).toMatchObject({ run, mode: "paper", watch: `npx swarm runs watch ${run}` })
      // Requests: duration, status, trace id and user; neither the key nor the query.
      const sse = first.find((r) => r.annotations.path === `/v1/runs/${run}/events`)
      expect(sse).toMatchObject({
        logLevel: "INFO",
        annotations: { method: "GET", status: 200, durationMs: expect.any(Number), user: "admin", userId: expect.any(String) }
      })
      expect(sse!.annotations.traceId).toMatch(/^[0-9a-f]{32}$/)
      expect(sse!.message).toMatch(new RegExp(`^GET /v1/runs/${run}/events 200 [\\d.]+ ms, user admin$`))
      const rpc = first.find((r) => r.annotations.path === "/rpc")
      expect(rpc).toMatchObject({ annotations: { method: "POST", status: 200, procedures: "runs.list", user: "admin" } })
      expect(served.stdout()).not.toContain("token=")
      // Stopping: the runs it suspended, then that it stopped.
      const stopping = first.find((r) => r.message.startsWith("stopping: "))
      expect(stopping?.annotations).toMatchObject({ suspended: 1, runs: [run] })
      expect(first.at(-1)).toMatchObject({ message: "server stopped (SIGINT)", annotations: { signal: "SIGINT" } })

      // The next start resumes the run: said in a record too.
      yield* Effect.promise(() => json.start())
      const again = json.served()
      for (let i = 0; i < 300 && !again.stdout().includes("resumed run"); i++) yield* Effect.sleep("100 millis")
      yield* json.stop
      const second = records(again.stdout())
      expect(again.stderr()).toBe("")
      expect(second.find((r) => r.message.startsWith("resumed run"))).toMatchObject({
        logLevel: "INFO",
        annotations: { run, outcome: "resumed" }
      })
      expect(again.stdout()).not.toContain(key)
    }), 180_000)
})

describe("swarm serve, SWARM_LOG_FORMAT=json: a failure to start", () => {
  it.live("is an ERROR record on stdout too, and the exit code says it", () =>
    Effect.gen(function*() {
      const ran = yield* json.bin(["serve", "--port", "0"], { SWARM_LOG_FORMAT: "json", SWARM_MAX_LIVE_RUNS_PER_USER: "lots" })
      expect(ran.code).toBe(2)
      expect(ran.stderr).toBe("")
      const [failure, ...rest] = records(ran.stdout)
      expect(rest).toEqual([])
      expect(failure).toMatchObject({ logLevel: "ERROR", message: expect.stringContaining("SWARM_MAX_LIVE_RUNS_PER_USER: ") })
    }), 60_000)
})

describe("swarm serve, SWARM_LOG_FORMAT=logfmt", () => {
  it.live("every line is a logfmt record on stdout, stderr empty", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => logfmt.start())
      const served = logfmt.served()
      yield* Effect.promise(() => fetch(`${served.base}/health`).then((r) => r.text()))
      yield* logfmt.stop
      expect(served.stderr()).toBe("")
      const lines = linesOf(served.stdout())
      for (const line of lines) expect(line).toMatch(/^timestamp=\S+ level=(DEBUG|INFO|WARN|ERROR) fiber=\S* message=/)
      expect(lines.find((l) => l.includes("listening on"))).toContain(`url=${served.base}`)
      expect(lines.find((l) => l.includes("apiKey="))).toContain(`apiKey=${logfmt.key()}`)
      expect(lines.at(-1)).toMatch(/message="server stopped \(SIGINT\)" signal=SIGINT$/)
    }), 180_000)
})
