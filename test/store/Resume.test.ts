/**
 * Resuming a run whose process died for real. A stored backtest running in another process
 * (fixtures/crashable-backtest.ts) is killed with SIGKILL once events and a checkpoint are
 * committed; `resumeAll` then finishes it, and the result is the run an uninterrupted process
 * gives: it verifies, replays, has every fill once, and its books are the sum of its fills. On
 * every back-end (the embedded one on a data directory, which the dead process's server must let
 * go of first). Checkpoints and resume from a crash simulated in the database: Replay.test.ts.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Schedule } from "effect"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as Store from "../../src/store/Store.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { backends, freshPostgresUrl } from "./fixtures/backends.js"
import { checkWhole, rowCounts } from "./fixtures/checks.js"
import type { Args, Committed } from "./fixtures/crashable-backtest.js"
import { stored } from "./fixtures/workload.js"

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

// -------------------------------------------------------------------------------------------------
// A real crash: another process, SIGKILL

type Line = Partial<Committed> & { readonly done?: string }

/** Resolves with the first line `accept` takes from the child's stdout; fails if the child exits first. */
const awaitLine = (child: ChildProcess, accept: (line: Line) => boolean) =>
  Effect.async<Line, Error>((resume) => {
    let buffer = ""
    let stderr = ""
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString()
      const lines = buffer.split("\n")
      buffer = lines.pop()!
      for (const line of lines) {
        const parsed = JSON.parse(line) as Line
        if (accept(parsed)) {
          cleanup()
          return resume(Effect.succeed(parsed))
        }
      }
    }
    const onErr = (chunk: Buffer) => (stderr += chunk.toString())
    const onExit = (code: number | null) => {
      cleanup()
      resume(Effect.fail(new Error(`the child exited (${code}) before the point it was to be killed at: ${stderr}`)))
    }
    const cleanup = () => {
      child.stdout!.off("data", onData)
      child.stderr!.off("data", onErr)
      child.off("exit", onExit)
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onErr)
    child.once("exit", onExit)
    return Effect.sync(cleanup)
  })

// Long enough that the first checkpoint (committed with the run's second batch, seen at slice 192
// to 448 here, loaded machine or not) comes well before the end, for the kill to land mid-run;
// 2000 bars checked the same at two thirds more cost in the resume, the clean run and their checks.
const CRASH = { symbols: 6, bars: 1200, checkpointEvery: 64 } as const

const crashTest = (kind: "embedded" | "postgres") =>
  Effect.gen(function*() {
    const name = `crashed ${kind}`
    let database: Args["database"]
    let store: ReturnType<typeof Store.layerWith>
    if (kind === "postgres") {
      const url = yield* freshPostgresUrl
      database = { url }
      store = Store.layerWith({ url })
    } else {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "swarm-crash-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      database = { dataDir: path.join(dir, "pglite") }
      store = Store.layerWith({ embedded: database })
    }
    const args: Args = { database, name, ...CRASH }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--import", "./bin/typescript.mjs", "test/store/fixtures/crashable-backtest.ts", JSON.stringify(args)], {
          cwd: repoRoot,
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_, signal) => resolve(signal)))
    // As soon as events and a checkpoint are durable (a sixth to two fifths of the way in, here): kill it.
    const seen = yield* awaitLine(child, (line) => line.done !== undefined || (line.checkpointSlices ?? 0) > 0)
    child.kill("SIGKILL")
    expect(yield* Effect.promise(() => exited)).toBe("SIGKILL")
    expect(seen.done).toBeUndefined()

    // The embedded database is free once the dead process's PGlite server has closed it.
    const context = yield* Layer.build(store).pipe(
      Effect.retry({
        while: (error) => (error as { _tag?: string })._tag === "DatabaseLocked",
        schedule: Schedule.spaced("200 millis").pipe(Schedule.upTo("30 seconds"))
      })
    )
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [unfinished] = yield* Runs.unfinished()
      expect(unfinished).toMatchObject({ strategyName: name, status: "running", number: 1 })
      const run = unfinished!.id
      // What survived the crash: a gapless prefix of the events, with checkpoints.
      const [committed] = yield* sql<{ n: number; max: number }>`select count(*)::int as n, max(seq) as max from run_events where run_id = ${run}`
      expect(committed!.n).toBeGreaterThanOrEqual(seen.events!)
      expect(committed!.max).toBe(committed!.n)
      const prefix = yield* Audit.verifyRun(run)
      expect(prefix).toMatchObject({ ok: true, entries: committed!.n })

      const resumed = yield* StoredRun.resumeAll()
      expect(resumed.length).toBe(1)
      expect(resumed[0]!.run).toBe(run)
      const { recorded, result } = Either.getOrThrow(resumed[0]!.outcome)
      expect(recorded).toBe(committed!.n)
      expect(result.counts.events).toBeGreaterThan(recorded)
      expect(yield* Runs.unfinished()).toEqual([])
      const fills = yield* checkWhole(run, result)

      // The same inputs without a crash: the same run but for its id.
      const clean = yield* StoredRun.backtest(stored(CRASH.symbols, CRASH.bars, { name, checkpointEvery: CRASH.checkpointEvery }))
      expect(clean.number).toBe(2)
      expect(clean.result.counts).toEqual(result.counts)
      expect(clean.result.metrics).toEqual(result.metrics)
      expect(clean.result.portfolio).toEqual(result.portfolio)
      expect((yield* Runs.get(run)).metrics).toEqual(clean.result.metrics)
      expect((yield* Runs.get(run)).counts).toEqual(clean.result.counts)
      expect(yield* rowCounts(run)).toEqual(yield* rowCounts(clean.run))
      const cleanFills = yield* checkWhole(clean.run, clean.result)
      expect(fills.map((f) => ({ ...f, seq: 0 }))).toEqual(cleanFills.map((f) => ({ ...f, seq: 0 })))
    }).pipe(Effect.provide(context))
  }).pipe(Effect.scoped)

describe("a stored backtest killed with SIGKILL, then resumed", () => {
  for (const backend of backends) {
    it.live(`finishes as the run would have: verified, replayable, every fill once, books = Σ fills (${backend.name})`, () =>
      crashTest(backend.name), 180_000)
  }
})

