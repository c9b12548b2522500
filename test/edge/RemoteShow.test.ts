/**
 * `swarm runs show` against a live server prints the report the local database gives of the same
 * run — its equity, the first and last of its closed trades and how many, its counts, chain head
 * and control log — as `--json` byte for byte, and as text with only where the run stands (the
 * server's latest values, which no database read gives) added: the real `swarm serve` in a process of
 * its own, the real binary as its client, then (the server stopped: the embedded database serves
 * one process) the server's database read with `--local`, once by the real binary and the rest by the
 * command line in this process, on the database opened once. Another user's run gets
 * the answer a run that does not exist gets. A server from before `runs.report` (answering it as
 * a procedure it does not know, either way older servers did) still gets today's remote view.
 *
 * On Postgres when `DATABASE_URL` is set (a fresh database of its own), else on an embedded
 * PGlite under a temporary folder. Every process started here is killed when the file ends.
 */
import * as fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Schema } from "effect"
import { RunJson, RunShowJson } from "../../src/cli/RunsView.js"
import * as Store from "../../src/store/Store.js"
import { lines, swarm } from "../cli/harness.js"
import { liveServer } from "../cli/liveServer.js"
import { createUser, oldServer, rpcClient, until } from "./fixtures.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const sma = Path.join(root, "examples", "sma-crossover.json")
// The offline model, whatever answers at Ollama's address: the LLM run's report is the same everywhere.
const live = liveServer("swarm-remote-show", { env: { SWARM_LLM: "offline" } })
const bin = live.bin
const tmp = live.tmp

describe("runs show from a server", () => {
  it.live("the same report as the local database gives, text and --json: equity, the first and last trades, counts, chain; another's run is no run", () =>
    Effect.gen(function*() {
      const remote = live.remote()
      const served = live.served()
      // Set up in-process (each binary start costs seconds); shown through the binary.
      expect((yield* swarm(["strategies", "create", sma], { environment: remote })).code).toBe(0)
      const started = yield* swarm(["runs", "start", "SMA crossover", "--data", "synthetic:1500:7", "--json"], { environment: remote })
      expect([started.code, started.stderr]).toEqual([0, ""])
      const run = Schema.decodeUnknownSync(RunJson)(JSON.parse(started.stdout))
      expect((yield* swarm(["runs", "watch", run.id], { environment: remote })).code).toBe(0)
      // And a run with an LLM agent: what it used is in the report too.
      const llmFile = Path.join(tmp, "llm-remote.json")
      fs.writeFileSync(llmFile, JSON.stringify({ name: "LLM remote", symbols: ["ACME"], agents: [{ type: "llm_analyst", params: { bars: 10 } }] }))
      expect((yield* swarm(["strategies", "create", llmFile], { environment: remote })).code).toBe(0)
      const llmStarted = yield* swarm(["runs", "start", "LLM remote", "--data", "synthetic:120:7", "--json"], { environment: remote })
      expect([llmStarted.code, llmStarted.stderr]).toEqual([0, ""])
      const llmRun = Schema.decodeUnknownSync(RunJson)(JSON.parse(llmStarted.stdout))
      expect((yield* swarm(["runs", "watch", llmRun.id], { environment: remote })).code).toBe(0)

      // And a paper run stopped part way: its figures up to where it stopped, as the local database gives them.
      const paperStarted = yield* swarm(["runs", "start", "SMA crossover", "--mode", "paper", "--data", "synthetic:100000:7", "--speed", "8640000", "--json"], {
        environment: remote
      })
      expect([paperStarted.code, paperStarted.stderr]).toEqual([0, ""])
      const paperRun = Schema.decodeUnknownSync(RunJson)(JSON.parse(paperStarted.stdout))
      // Stopped once it has filled an order (a bar marked after its first), not after a fixed wait.
      yield* Effect.scoped(Effect.flatMap(rpcClient(served.base, live.key()), (client) =>
        until(Effect.orDie(client("runs.get", { run: paperRun.id })), (info) => info.latest?.portfolio !== undefined, "the paper run's first fill", 3_000)))
      const stopped = yield* swarm(["runs", "stop", paperRun.id], { environment: remote })
      expect([stopped.code, stopped.stderr]).toEqual([0, ""])
      const [stoppedText, stoppedJson] = yield* Effect.all([bin(["runs", "show", paperRun.ref], remote), bin(["runs", "show", paperRun.id, "--json"], remote)], {
        concurrency: "unbounded"
      })
      expect([stoppedText.code, stoppedText.stderr, stoppedJson.code, stoppedJson.stderr]).toEqual([0, "", 0, ""])
      // Before, the server sent none: "metrics: none: the run was stopped before it completed", and no upToStop.
      const stoppedShown = Schema.decodeUnknownSync(RunShowJson)(JSON.parse(stoppedJson.stdout))
      expect(stoppedShown).toMatchObject({ status: "stopped", metrics: null, upToStop: { through: expect.any(Number), metrics: { initialCash: 100_000_000_000 } } })
      expect(stoppedText.stdout).toMatch(/\nmetrics: up to where it stopped — the run was stopped before it completed; its bars are marked up to \d{4}-\d\d-\d\d/)

      const [text, json] = yield* Effect.all([bin(["runs", "show", run.ref], remote), bin(["runs", "show", run.id, "--json"], remote)], {
        concurrency: "unbounded"
      })
      expect([text.code, text.stderr]).toEqual([0, ""])
      expect([json.code, json.stderr]).toEqual([0, ""])
      const shown = Schema.decodeUnknownSync(RunShowJson)(JSON.parse(json.stdout))
      // More trades than it lists: the first and the last three, and how many there are.
      expect(shown.trades.count).toBeGreaterThan(6)
      expect([shown.trades.first.length, shown.trades.last.length]).toEqual([3, 3])
      expect(shown.equity?.points).toBeGreaterThan(0)
      expect(shown).toMatchObject({ id: run.id, ref: run.ref, status: "completed", control: { count: 0, last: [] } })
      expect(shown.chain?.count).toBe(shown.counts?.events)
      expect(text.stdout).toContain(`first 3 and last 3 of ${shown.trades.count.toLocaleString("en-US")} trades\n`)
      expect(text.stdout).toMatch(/\nequity {4}[\d,]+ snapshots, taken after fills: first [\d,.]+, last [\d,.]+, low [\d,.]+, high [\d,.]+\n/)
      expect(text.stdout).toContain(`\nchain     ${shown.chain!.count.toLocaleString("en-US")} events, head ${shown.chain!.head}\n`)
      // No agent crashed, none is an LLM agent: nothing said of either, and the fields say so.
      expect([shown.agentRestarts, shown.llm]).toEqual([[], null])
      expect(text.stdout).not.toMatch(/\n(restarts|llm) {2}/)
      const [llmText, llmJson] = yield* Effect.all([bin(["runs", "show", llmRun.ref], remote), bin(["runs", "show", llmRun.id, "--json"], remote)], {
        concurrency: "unbounded"
      })
      expect([llmText.code, llmText.stderr, llmJson.code, llmJson.stderr]).toEqual([0, "", 0, ""])
      const llmShown = Schema.decodeUnknownSync(RunShowJson)(JSON.parse(llmJson.stdout))
      expect(llmShown.llm).toMatchObject({ backend: "offline", model: "llama3.2:3b", budget: { maxTokens: 200_000, exhausted: false } })
      expect(llmShown.llm?.calls).toBeGreaterThan(0)
      expect(llmText.stdout).toMatch(/\nllm {7}offline llama3\.2:3b: offline: forced by SWARM_LLM=offline.*\n {10}[\d,]+ model calls \([\d,]+ from the cache\), tokens 0 in, 0 out\n {10}budget 0 of 200,000 tokens spent\n/)

      // Another user: their run is answered as one that does not exist, through the binary too.
      const bob = yield* createUser(served.base, live.key(), "bob")
      const asBob = { SWARM_SERVER: served.base, SWARM_API_KEY: bob.key }
      const theirs = yield* bin(["runs", "show", run.id, "--json"], asBob)
      const none = yield* swarm(["runs", "show", "run_000000000000"], { environment: asBob })
      expect([theirs.code, theirs.stdout, theirs.stderr]).toEqual([2, "", `swarm: run: no run "${run.id}" on ${served.base} (swarm runs list shows yours)\n`])
      expect([none.code, none.stderr.replace("run_000000000000", run.id)]).toEqual([2, theirs.stderr])
      expect((yield* swarm(["runs", "show", run.ref], { environment: asBob })).stderr).toBe(
        `swarm: run: no run "${run.ref}" on ${served.base} (swarm runs list shows yours)\n`
      )

      // The server stopped (the embedded database serves one process): the same run, read locally.
      yield* live.stop
      const database = live.database()
      // The binary reads one of them; the rest are read in this process, on the database opened once:
      // a binary a read, each starting its own node and opening the database again (one after another
      // on PGlite), took half the test's time, and checked nothing more than the same commands do here.
      const binJson = yield* bin(["runs", "show", run.id, "--json", "--local"], database)
      expect([binJson.code, binJson.stderr]).toEqual([0, expect.stringMatching(/^database: /)])
      expect(json.stdout).toBe(binJson.stdout)
      const [localText, localJson, llmLocalText, llmLocalJson, stoppedLocalText, stoppedLocalJson] = yield* Effect.scoped(Effect.gen(function*() {
        // The database the binary opens, from the same settings.
        const store = yield* Layer.memoize(Store.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(database)))))))
        return yield* Effect.forEach([
          ["runs", "show", run.ref, "--local"],
          ["runs", "show", run.id, "--json", "--local"],
          ["runs", "show", llmRun.ref, "--local"],
          ["runs", "show", llmRun.id, "--json", "--local"],
          ["runs", "show", paperRun.ref, "--local"],
          ["runs", "show", paperRun.id, "--json", "--local"]
        ], (args) => swarm(args, { store }))
      }))
      for (const read of [localText, localJson, llmLocalText, llmLocalJson, stoppedLocalText, stoppedLocalJson]) expect([read!.code, read!.stderr]).toEqual([0, expect.stringMatching(/^database: /)])
      expect(localJson!.stdout).toBe(binJson.stdout)
      expect(llmJson.stdout).toBe(llmLocalJson!.stdout)
      expect(stoppedJson.stdout).toBe(stoppedLocalJson!.stdout)
      // The same report, and where the run stands, which only the server knows (its latest values), after its equity.
      const stands = /^(now {7}|final {5}|last fill |last seen |quotes {3})/
      expect(text.stdout.split("\n").filter((line) => !stands.test(line)).join("\n")).toBe(localText!.stdout)
      expect(text.stdout).toMatch(
        /\nequity {4}.*\nfinal {5}equity [\d,.]+ \(its metrics\), cash [\d,.]+, \d+ open positions? since its last fill at \d{4}-\d\d-\d\d \(event [\d,]+\)\nlast seen ACME [\d.,]+, GLOBEX [\d.,]+, INITECH [\d.,]+\n\n/
      )
      expect(localText!.stdout).not.toMatch(stands)
      expect(llmText.stdout.split("\n").filter((line) => !stands.test(line)).join("\n")).toBe(llmLocalText!.stdout)
      expect(stoppedText.stdout.split("\n").filter((line) => !stands.test(line)).join("\n")).toBe(stoppedLocalText!.stdout)
    }), { timeout: 300_000 })
})

// ---------------------------------------------------------------------------------------------
// A server from before runs.report

const info = {
  id: "run_0123456789ab",
  ref: "Old#1",
  strategy: "Old",
  strategyVersion: 1,
  number: 1,
  mode: "backtest",
  status: "completed",
  failure: null,
  metrics: null,
  events: 42,
  checksum: "c".repeat(64),
  startedAt: "2026-12-05T20:00:00.000Z",
  finishedAt: "2026-12-05T20:00:01.000Z"
}

describe("runs show from a server older than runs.report", () => {
  for (const answer of ["invalid tag", "defect"] as const) {
    it.scoped(`it answers runs.report as unknown (${answer}): the command shows runs.get's answer, as before, text and --json`, () =>
      Effect.gen(function*() {
        const old = yield* oldServer(answer, { "runs.get": info })
        const environment = { SWARM_SERVER: old.base, SWARM_API_KEY: `sk_${"a".repeat(43)}` }
        const text = yield* swarm(["runs", "show", "Old#1"], { environment })
        expect([text.code, text.stderr]).toEqual([0, ""])
        expect(lines(text.stdout).slice(0, 3)).toEqual(["run       run_0123456789ab (Old#1)", "strategy  Old v1", "mode      backtest"])
        expect(text.stdout).toContain(`checksum  ${"c".repeat(64)}\n`)
        const json = yield* swarm(["runs", "show", "Old#1", "--json"], { environment })
        expect([json.code, json.stderr]).toEqual([0, ""])
        expect(JSON.parse(json.stdout)).toEqual(info)
        expect(old.asked).toEqual(["runs.report", "runs.get", "runs.report", "runs.get"])
      }))
  }
})
