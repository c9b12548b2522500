/**
 * `swarm runs list | start | stop | pause | resume --json` against a live server print the
 * document `runs list --json --local` prints of the same runs on the server's database: the same
 * fields, money as decimal strings, byte for byte — not the RPC's `RunInfo` (money in micros,
 * other names). The real `swarm serve` in a process of its own, the CLI as its client, then (the
 * server stopped: the embedded database serves one process) the real binary on its database.
 *
 * On Postgres when `DATABASE_URL` is set (a fresh database of its own), else on an embedded
 * PGlite under a temporary folder. Every process started here is killed when the file ends.
 */
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { RunJson } from "../../src/cli/RunsView.js"
import { swarm } from "../cli/harness.js"
import { liveServer } from "../cli/liveServer.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const sma = Path.join(root, "examples", "sma-crossover.json")
const live = liveServer("swarm-remote-runs-json")

const decodeRun = Schema.decodeUnknownSync(RunJson)

/** A run's document as `--json` prints it alone: indented, one document and a newline. */
const printed = (run: unknown) => `${JSON.stringify(run, null, 2)}\n`

describe("runs --json from a server", () => {
  it.live("list, start, pause, resume and stop print the local database's document of the run, money as decimals", () =>
    Effect.gen(function*() {
      const remote = live.remote()
      const cli = (args: ReadonlyArray<string>) => swarm(args, { environment: remote })
      expect((yield* cli(["strategies", "create", sma])).code).toBe(0)

      // A backtest to its end: metrics with money in them.
      const started = yield* cli(["runs", "start", "SMA crossover", "--data", "synthetic:600:7", "--json"])
      expect([started.code, started.stderr]).toEqual([0, ""])
      const backtest = decodeRun(JSON.parse(started.stdout))
      // Every field, but `notResumable` and `waiting`: only of a run the server cannot resume, or
      // that waits for a slot there.
      expect(Object.keys(JSON.parse(started.stdout))).toEqual(Object.keys(RunJson.fields).filter((key) => key !== "notResumable" && key !== "waiting"))
      expect((yield* cli(["runs", "watch", backtest.id])).code).toBe(0)

      // A paper run, paused, resumed and stopped: each answer is the run's document.
      const paperStarted = yield* cli(["runs", "start", "SMA crossover", "--mode", "paper", "--data", "synthetic:5000", "--speed", "86400", "--json"])
      expect([paperStarted.code, paperStarted.stderr]).toEqual([0, ""])
      const paper = decodeRun(JSON.parse(paperStarted.stdout))
      expect([paper.mode, paper.status, paper.metrics]).toEqual(["paper", "running", null])
      const paused = yield* cli(["runs", "pause", paper.id, "--json"])
      expect([paused.code, paused.stderr, decodeRun(JSON.parse(paused.stdout)).status]).toEqual([0, "", "paused"])
      const resumed = yield* cli(["runs", "resume", paper.id, "--json"])
      expect([resumed.code, resumed.stderr, decodeRun(JSON.parse(resumed.stdout)).status]).toEqual([0, "", "running"])
      const stopped = yield* cli(["runs", "stop", paper.id, "--json"])
      expect([stopped.code, stopped.stderr]).toEqual([0, ""])
      expect(decodeRun(JSON.parse(stopped.stdout)).status).toBe("stopped")

      const listed = yield* cli(["runs", "list", "--json"])
      expect([listed.code, listed.stderr]).toEqual([0, ""])
      const remoteRuns = JSON.parse(listed.stdout) as Array<Record<string, unknown>>
      // Money as the local document has it: decimal strings, not integer micros.
      const done = remoteRuns.find((run) => run.id === backtest.id) as { metrics: { initialCash: unknown; finalEquity: unknown } }
      expect(done.metrics.initialCash).toBe("100000")
      expect(done.metrics.finalEquity).toMatch(/^-?\d+(\.\d+)?$/)
      // The paper run stopped before it completed: its figures up to where it stopped, as the local list has them.
      expect(remoteRuns.find((run) => run.id === paper.id)).toMatchObject({ metrics: null, upToStop: expect.anything() })
      // The table marks them, as the local list's does, and says what the mark means.
      const table = yield* cli(["runs", "list"])
      expect([table.code, table.stderr]).toEqual([0, ""])
      expect(table.stdout.split("\n").find((line) => line.includes(paper.id))).toMatch(/│ stopped +│ paper +│ +[+-]?\d+\.\d\d%\* │ +\S+\* │ +\d+\.\d\d%\* │ +\d+\* │/)
      expect(table.stdout).toContain("* up to where the run stopped or failed: rebuilt from its data and fills (swarm runs show has them all)\n")

      // The server stopped (the embedded database serves one process): the same runs, read locally.
      yield* live.stop
      const local = yield* live.bin(["runs", "list", "--json", "--local"], live.database())
      expect(local.code).toBe(0)
      expect(listed.stdout).toBe(local.stdout)

      const localRuns = JSON.parse(local.stdout) as Array<Record<string, unknown>>
      // The run's record (a list's element adds upToStop, of a run stopped before it completed: no answer of a stop has it).
      const localOf = (id: string) => {
        const { upToStop: _, ...record } = localRuns.find((run) => run.id === id)!
        return record
      }
      // A stop answers the run as it ended: the local document byte for byte.
      expect(stopped.stdout).toBe(printed(localOf(paper.id)))
      // A start, a pause and a resume answer the run as it was then: the same fields, and those that do not change, the same values.
      const lasting = ["id", "ref", "strategy", "strategyId", "strategyVersion", "number", "owner", "mode", "seed", "startedAt"]
      for (const [answer, id] of [[started, backtest.id], [paperStarted, paper.id], [paused, paper.id], [resumed, paper.id]] as const) {
        const document = JSON.parse(answer.stdout) as Record<string, unknown>
        expect(Object.keys(document)).toEqual(Object.keys(localOf(id)))
        for (const field of lasting) expect([field, document[field]]).toEqual([field, localOf(id)[field]])
      }
    }), { timeout: 180_000 })
})
