/**
 * `swarm runs events` against a live server (`runs.events`): the real `swarm serve` in a process of
 * its own and the real binary as its client print a run's events as the local database gives them —
 * a readable line each, or the stored lines byte for byte with `--json`, `--type` and `--since`
 * applied — then (the server stopped: the embedded database serves one process) the same binary on
 * the server's database with `--local` prints the same (`--json`; the other readings by the same
 * command in this process, on that database). A run still going is followed until it
 * ends (stopped here). Another user's run is no run, said in one line, exit 2.
 *
 * On Postgres when `DATABASE_URL` is set (a fresh database of its own), else on an embedded
 * PGlite under a temporary folder. Every process started here is killed when the file ends.
 */
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Effect, Layer, Schema, Stream } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import * as Remote from "../../src/cli/Remote.js"
import { RunJson } from "../../src/cli/RunsView.js"
import * as Store from "../../src/store/Store.js"
import { lines, swarm } from "../cli/harness.js"
import { liveServer } from "../cli/liveServer.js"
import { untilPrinted } from "../cli/processes.js"
import { symbolsOf } from "../store/fixtures/workload.js"
import { createUser } from "./fixtures.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const sma = Path.join(root, "examples", "sma-crossover.json")
const live = liveServer("swarm-remote-events")
const bin = live.bin

describe("runs events from a server", () => {
  it.live("--type is picked on the server: only those events come over the wire; a type no run records is refused, naming the field", () =>
    Effect.gen(function*() {
      const served = live.served()
      const client = yield* Remote.connect({ server: served.base, serverFrom: "--server", key: live.key(), keyFrom: "--key" })
      yield* client.client.strategies.create({
        strategy: Schema.decodeUnknownSync(Strategy)({ name: "picked", symbols: symbolsOf(2), agents: [{ type: "sma_crossover", params: { fast: 2, slow: 4 } }] })
      })
      const run = yield* client.client.runs.start({ strategy: "picked", mode: "backtest", data: { _tag: "synthetic", bars: 300 } })
      expect((yield* swarm(["runs", "watch", run.id], { environment: live.remote() })).code).toBe(0)

      const all = Chunk.toReadonlyArray(yield* Stream.runCollect(client.client.runs.events({ run: run.id })))
      const picked = Chunk.toReadonlyArray(yield* Stream.runCollect(client.client.runs.events({ run: run.id, types: ["DecisionMade", "OrderFilled"] })))
      // What the server sent: those events, as stored, and none other.
      expect(picked.length).toBeGreaterThan(0)
      expect(picked).toEqual(all.filter((e) => e.tag === "DecisionMade" || e.tag === "OrderFilled"))
      // From `since` on, the same.
      const since = all[Math.floor(all.length / 2)]!.seq
      const later = Chunk.toReadonlyArray(yield* Stream.runCollect(client.client.runs.events({ run: run.id, since, types: ["OrderFilled"] })))
      expect(later).toEqual(all.filter((e) => e.seq > since && e.tag === "OrderFilled"))

      // A type no run records, sent as any client may: refused by the server, the field named.
      const response = yield* Effect.promise(() =>
        fetch(`${served.base}/rpc`, {
          method: "POST",
          headers: { "content-type": "application/ndjson", authorization: `Bearer ${live.key()}` },
          body: `${JSON.stringify({ _tag: "Request", id: "1", tag: "runs.events", payload: { run: run.id, types: ["DecisionMade", "Decision"] }, headers: [] })}\n`
        }).then((r) => r.text())
      )
      const exit = lines(response).map((l) => JSON.parse(l) as { _tag: string; exit?: { cause?: { error?: { _tag: string; field: string; reason: string } } } })
        .find((m) => m._tag === "Exit")
      expect(exit?.exit?.cause?.error).toEqual({
        _tag: "InvalidRequest",
        field: "types.1",
        reason: expect.stringMatching(/^"Decision" is not an event type \(expected one of RunStarted, .*ReasoningRecorded/)
      })
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("the run's events as the local database gives them: lines, --json byte for byte, --type, --since; a live run followed to its end", () =>
    Effect.gen(function*() {
      const remote = live.remote()
      const served = live.served()
      // Set up in-process (each binary start costs seconds); read through the binary.
      expect((yield* swarm(["strategies", "create", sma], { environment: remote })).code).toBe(0)
      const started = yield* swarm(["runs", "start", "SMA crossover", "--data", "synthetic:300:7", "--json"], { environment: remote })
      expect([started.code, started.stderr]).toEqual([0, ""])
      const run = Schema.decodeUnknownSync(RunJson)(JSON.parse(started.stdout))
      expect((yield* swarm(["runs", "watch", run.id], { environment: remote })).code).toBe(0)

      const [text, json, typed] = yield* Effect.all([
        bin(["runs", "events", run.ref], remote),
        bin(["runs", "events", run.id, "--json"], remote),
        bin(["runs", "events", run.ref, "--type", "DecisionMade", "--type", "OrderFilled", "--json"], remote)
      ], { concurrency: "unbounded" })
      for (const r of [text, json, typed]) expect([r.code, r.stderr]).toEqual([0, ""])
      const events = lines(json.stdout).map((l) => JSON.parse(l) as { seq: number; _tag: string })
      // Every event of the run, in order, from the first.
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
      expect(events.length).toBeGreaterThan(10)
      const rows = lines(text.stdout)
      expect(rows).toHaveLength(events.length)
      expect(rows[0]).toMatch(/^#1 \d{4}-\d\d-\d\d started: backtest run of SMA crossover v1, seed \d+, ACME GLOBEX INITECH$/)
      expect(rows.filter((l) => /^#\d+ \d{4}-\d\d-\d\d \w+$/.test(l))).toEqual([])
      expect(rows[rows.length - 1]).toMatch(/ completed: return [+-]?\d/)
      // --type: only those, as stored.
      expect(lines(typed.stdout).map((l) => (JSON.parse(l) as { _tag: string })._tag).every((tag) => tag === "DecisionMade" || tag === "OrderFilled")).toBe(true)
      expect(typed.stdout).toBe(lines(json.stdout).filter((l) => /^\{"_tag":"(DecisionMade|OrderFilled)"/.test(l)).map((l) => `${l}\n`).join(""))
      // --since n: the events after n.
      const since = Math.floor(events.length / 2)
      const after = yield* bin(["runs", "events", run.id, "--since", String(since), "--json"], remote)
      expect(after.code).toBe(0)
      expect(after.stdout).toBe(lines(json.stdout).slice(since).map((l) => `${l}\n`).join(""))

      // A paper run still going: followed until it ends — here, stopped while the command follows it.
      const paperStarted = yield* swarm(["runs", "start", "SMA crossover", "--mode", "paper", "--data", "synthetic:100000:7", "--speed", "864000", "--json"], {
        environment: remote
      })
      expect([paperStarted.code, paperStarted.stderr]).toEqual([0, ""])
      const paper = Schema.decodeUnknownSync(RunJson)(JSON.parse(paperStarted.stdout))
      const following = live.binStarted(["runs", "events", paper.id, "--type", "RunStarted", "--type", "OrderPlaced"], remote)
      // Stopped once the command follows it (it has printed the run's first event), not after a fixed wait.
      yield* untilPrinted(following, /^#1 /, "the run's first event, by the command following it")
      const stopping = yield* swarm(["runs", "stop", paper.id], { environment: remote })
      expect([stopping.code, stopping.stderr]).toEqual([0, ""])
      const followed = yield* following.ran
      expect([followed.code, followed.stderr]).toEqual([0, ""])
      expect(lines(followed.stdout)[0]).toMatch(/^#1 \S+ started: paper run of SMA crossover v1, /)

      // Another user: their run is answered as one that does not exist, in one line, exit 2.
      const bob = yield* createUser(served.base, live.key(), "bob")
      const theirs = yield* bin(["runs", "events", run.id], { SWARM_SERVER: served.base, SWARM_API_KEY: bob.key })
      expect([theirs.code, theirs.stdout, theirs.stderr]).toEqual([2, "", `swarm: run: no run "${run.id}" on ${served.base} (swarm runs list shows yours)\n`])

      // The server stopped (the embedded database serves one process): the same events, read locally.
      yield* live.stop
      const database = live.database()
      // The binary reads one of them; the rest are read in this process, on the database opened once
      // (as RemoteShow.test.ts does): a binary a read, one after another on PGlite, each starting its
      // own node and opening the database again, checked nothing more than the same commands do here.
      const binJson = yield* bin(["runs", "events", run.id, "--json", "--local"], database)
      expect([binJson.code, binJson.stderr]).toEqual([0, expect.stringMatching(/^database: /)])
      expect(json.stdout).toBe(binJson.stdout)
      const [localText, localJson, localTyped] = yield* Effect.scoped(Effect.gen(function*() {
        // The database the binary opens, from the same settings.
        const store = yield* Layer.memoize(Store.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(database)))))))
        return yield* Effect.forEach([
          ["runs", "events", run.ref, "--local"],
          ["runs", "events", run.id, "--json", "--local"],
          ["runs", "events", run.ref, "--type", "DecisionMade", "--type", "OrderFilled", "--json", "--local"]
        ], (args) => swarm(args, { store }))
      }))
      expect([localText!.code, localJson!.code, localTyped!.code]).toEqual([0, 0, 0])
      expect(localJson!.stdout).toBe(binJson.stdout)
      expect(json.stdout).toBe(localJson!.stdout)
      expect(text.stdout).toBe(localText!.stdout)
      expect(typed.stdout).toBe(localTyped!.stdout)
    }), { timeout: 300_000 })
})
