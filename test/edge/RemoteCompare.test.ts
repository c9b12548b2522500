/**
 * `swarm runs compare` against a live server prints what it prints on the local database for the
 * same two runs: `--json` byte for byte (each run's record, the metrics' differences, whether they
 * recorded the same event detail, and the first differing decisions — round, event, action,
 * confidence), and the same text. Runs recorded with different event detail, and runs that
 * decided differently at the same bar. Another user's run is answered as one that does not exist.
 * A server older than the comparison's records, event detail and decisions gets what it said, as
 * before. The real `swarm serve` in a process of its own, the CLI as its client, then (the server stopped:
 * the embedded database serves one process) the real binary on its database with `--local`, and the
 * same command in this process for the other readings.
 *
 * On Postgres when `DATABASE_URL` is set (a fresh database of its own), else on an embedded
 * PGlite under a temporary folder. Every process started here is killed when the file ends.
 */
import * as fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Schema } from "effect"
import { CompareJson } from "../../src/cli/RunsView.js"
import * as Store from "../../src/store/Store.js"
import { lines, swarm } from "../cli/harness.js"
import { liveServer } from "../cli/liveServer.js"
import { createUser, oldServer } from "./fixtures.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const data = Path.join(root, "data")
const sma = Path.join(root, "examples", "sma-crossover.json")
// The local runs are recorded before the server starts: the embedded database serves one process.
const live = liveServer("swarm-remote-compare", { manual: true })

const decode = Schema.decodeUnknownSync(CompareJson)

/** The database the binary opens with `database` (its environment's settings), opened once for the scope. */
const localStore = (database: Record<string, string>) =>
  Layer.memoize(Store.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(database)))))))

describe("runs compare from a server", () => {
  it.live("the local database's comparison of the same runs, --json byte for byte and as text; another's run is no run", () =>
    Effect.gen(function*() {
      const database = live.database()
      // The same strategy recorded with every round's decision and with only those that changed a
      // target; and a faster one, every round too, deciding otherwise at some bar.
      const fast = Path.join(live.tmp, "fast.json")
      fs.writeFileSync(fast, fs.readFileSync(sma, "utf8").replace(`"SMA crossover"`, `"SMA fast"`).replace(`"fast": 10`, `"fast": 3`))
      // Recorded in this process, on the database opened once (and closed before the server opens
      // it): a binary a backtest, each starting its own node and opening the database again, took
      // a third of the test's time for what the same command does here.
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* localStore(database)
        for (const args of [["--strategy", sma, "--events", "rounds"], ["--strategy", sma], ["--strategy", fast, "--events", "rounds"]]) {
          const recorded = yield* swarm(["backtest", "--data", data, ...args], { store })
          expect([recorded.code, recorded.stderr]).toEqual([0, expect.any(String)])
        }
      }))
      const pairs = [["SMA crossover#1", "SMA crossover#2"], ["SMA crossover#1", "SMA fast#1"]] as const

      yield* Effect.promise(live.start)
      // The admin sees every user's runs: the local user's too.
      const remote = live.remote()
      const cli = (args: ReadonlyArray<string>) => swarm(args, { environment: remote })
      const answers: Array<{ readonly json: string; readonly text: string }> = []
      for (const [a, b] of pairs) {
        const json = yield* cli(["runs", "compare", a, b, "--json"])
        const text = yield* cli(["runs", "compare", a, b])
        expect([json.code, json.stderr, text.code, text.stderr]).toEqual([0, "", 0, ""])
        answers.push({ json: json.stdout, text: text.stdout })
      }

      // Different event detail: said so, and the first difference is a decision only one run kept.
      const detail = decode(JSON.parse(answers[0]!.json))
      expect(detail.decisions.sameEventDetail).toBe(false)
      expect(detail.decisions.firstDifference).toMatchObject({ a: { round: expect.any(String), seq: expect.any(Number) }, b: null, ended: null })
      expect(answers[0]!.text).toContain(`note: a recorded rounds, b decisions: with "decisions" only the decisions that changed a target are kept`)
      // A difference of decisions: what each run decided at the same bar, with its round, event and confidence.
      const decided = decode(JSON.parse(answers[1]!.json))
      expect(decided.decisions.sameEventDetail).toBe(true)
      const first = decided.decisions.firstDifference!
      expect(first.a!.action).not.toBe(first.b!.action)
      expect(first.a!.round).toBe(first.b!.round)
      expect(first.matched).toBeGreaterThan(0)
      expect(answers[1]!.text).toMatch(
        /\nfirst differing decision: \d{4}-\d\d-\d\d [A-Z]+, after [\d,]+ alike\n {2}a {2}\w+ \(confidence \d\.\d\d, round [A-Z]+@\d{4}-\d\d-\d\d, event [\d,]+\)\n {2}b {2}\w+ \(confidence \d\.\d\d, round [A-Z]+@\d{4}-\d\d-\d\d, event [\d,]+\)\n$/
      )

      // Another user: the runs are answered as ones that do not exist.
      const bob = yield* createUser(live.served().base, live.key(), "bob")
      const asBob = yield* swarm(["runs", "compare", ...pairs[0], "--json"], { environment: live.remote(bob.key) })
      const none = yield* swarm(["runs", "compare", "run_000000000000", pairs[0][1], "--json"], { environment: live.remote(bob.key) })
      expect([asBob.code, asBob.stdout, asBob.stderr]).toEqual([2, "", `swarm: run: no run "${pairs[0][0]}" on ${live.served().base} (swarm runs list shows yours)\n`])
      expect([none.code, none.stderr.replace("run_000000000000", pairs[0][0])]).toEqual([2, asBob.stderr])

      // The server stopped: the same comparisons, read locally.
      yield* live.stop
      // The binary reads one of them; the rest are read in this process, on the database opened once
      // (as RemoteShow.test.ts does): a binary a read, one after another on PGlite, took 40 % of the
      // test's time and checked nothing more than the same commands do here.
      const binJson = yield* live.bin(["runs", "compare", ...pairs[0], "--json", "--local"], database)
      expect([binJson.code, binJson.stderr]).toEqual([0, expect.stringMatching(/^database: /)])
      expect(answers[0]!.json).toBe(binJson.stdout)
      const local = yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* localStore(database)
        return yield* Effect.forEach(pairs.flatMap(([a, b]) => [["runs", "compare", a, b, "--json", "--local"], ["runs", "compare", a, b, "--local"]]), (args) =>
          swarm(args, { store }))
      }))
      expect(local.map((ran) => ran.code)).toEqual([0, 0, 0, 0])
      expect(local[0]!.stdout).toBe(binJson.stdout)
      expect(answers[0]!.json).toBe(local[0]!.stdout)
      expect(answers[0]!.text).toBe(local[1]!.stdout)
      expect(answers[1]!.json).toBe(local[2]!.stdout)
      expect(answers[1]!.text).toBe(local[3]!.stdout)
    }), { timeout: 240_000 })
})

// ---------------------------------------------------------------------------------------------
// A server from before runs.compare sent the runs' records, event detail and decisions

const info = (id: string, number: number) => ({
  id,
  ref: `Old#${number}`,
  strategy: "Old",
  strategyVersion: 1,
  number,
  mode: "backtest",
  status: "completed",
  failure: null,
  metrics: null,
  events: 42,
  checksum: "c".repeat(64),
  startedAt: "2026-12-05T20:00:00.000Z",
  finishedAt: "2026-12-05T20:00:01.000Z"
})

describe("runs compare from a server older than its records", () => {
  it.scoped("the command prints what the server answered, as before, text and --json", () =>
    Effect.gen(function*() {
      const answer = {
        a: info("run_0123456789ab", 1),
        b: info("run_ba9876543210", 2),
        firstDifference: { ts: Date.UTC(2023, 6, 11), symbol: "INITECH", matched: 4 }
      }
      const old = yield* oldServer("invalid tag", { "runs.compare": answer })
      const environment = { SWARM_SERVER: old.base, SWARM_API_KEY: `sk_${"a".repeat(43)}` }
      const json = yield* swarm(["runs", "compare", "Old#1", "Old#2", "--json"], { environment })
      expect([json.code, json.stderr]).toEqual([0, ""])
      expect(JSON.parse(json.stdout)).toEqual({ ...answer, firstDifference: { ...answer.firstDifference, ts: "2023-07-11T00:00:00.000Z" } })
      const text = yield* swarm(["runs", "compare", "Old#1", "Old#2"], { environment })
      expect([text.code, text.stderr]).toEqual([0, ""])
      expect(lines(text.stdout).at(-1)).toBe("first differing decision: 2023-07-11 INITECH")
      expect(old.asked).toEqual(["runs.compare", "runs.compare"])
    }))
})
