/**
 * Re-executing a recorded run and comparing it with the recording (src/store/Replay.ts), as replay
 * and resume do. Replay: a run with injected analyst crashes (and their restarts) reproduces byte
 * for byte; a stored event changed after the fact is `RunDiverged` at that event, naming the field,
 * what was recorded and what the re-execution gives; data files changed since the run are
 * `DataChanged`. Resume: checkpoints hold the books as the events left them; a run crashed after a
 * checkpoint (simulated by deleting what came after) resumes into the very run it was; books that
 * differ from its last checkpoint stop it with `RunDiverged` naming the `checkpoint.` field.
 * On every back-end; a real crash (another process, SIGKILL) is Resume.test.ts.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Strategy } from "../../schemas/Strategy.js"
import * as Csv from "../../src/market/Csv.js"
import * as DataSource from "../../src/market/DataSource.js"
import * as Feed from "../../src/market/Feed.js"
import * as Synthetic from "../../src/market/Synthetic.js"
import * as Audit from "../../src/store/Audit.js"
import * as Runs from "../../src/store/Runs.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import type { CheckpointState } from "../../src/store/RunRecorder.js"
import type { FaultPlan } from "../../src/swarm/Run.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { cashFromFills, checkWhole, crashAt, failure, fillsOf, microUnits, positionsFromFills, rowCounts } from "./fixtures/checks.js"
import { INITIAL_CASH, MICROS, marketConfig, stored, strategy } from "./fixtures/workload.js"

const diverged = (error: unknown) => {
  if (!(error instanceof StoredRun.RunDiverged)) throw new Error(`expected RunDiverged, got ${String(error)}`)
  return error
}

/** The run's stored events of `tag`, parsed, with their sequence numbers. */
const storedEvents = (run: string, tag: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ seq: number; body: string }>`select seq, body from run_events where run_id = ${run} and tag = ${tag} order by seq`).pipe(
      Effect.map((rows) => rows.map((row) => ({ seq: row.seq, event: JSON.parse(row.body) })))
    )

const tableCounts = (run: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ events: number; fills: number; checkpoints: number }>`select
      (select count(*)::int from run_events where run_id = ${run}) as events,
      (select count(*)::int from fills where run_id = ${run}) as fills,
      (select count(*)::int from checkpoints where run_id = ${run}) as checkpoints`).pipe(Effect.map((rows) => rows[0]!))

const checkpointsOf = (run: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ seq: number; ts: number; state: CheckpointState }>`select seq, ts, state from checkpoints where run_id = ${run} order by seq`)

/** A completed run with checkpoints, "crashed" at its second-to-last checkpoint. */
const crashedRun = (name: string) =>
  Effect.gen(function*() {
    const original = yield* StoredRun.backtest(stored(3, 300, { name, checkpointEvery: 32 }))
    const checkpoints = yield* checkpointsOf(original.run)
    expect(checkpoints.length).toBeGreaterThanOrEqual(4)
    const at = checkpoints.at(-2)!
    const counts = yield* rowCounts(original.run)
    yield* crashAt(original.run, at.seq)
    return { original, at, counts }
  })

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`re-execution (${backend.name})`, (it) => {
    describe("replay", () => {
      it.effect("a run whose analysts crash and restart replays byte for byte; without its faults it diverges", () =>
        Effect.gen(function*() {
          const faults: FaultPlan = { sma_crossover: { every: 97 }, ema_crossover: { at: [3, 250] } }
          const { result, run } = yield* StoredRun.backtest(stored(3, 300, { name: "crashing analysts", faults }))
          expect(result.status).toBe("completed")
          // Each analyst gets one request a slice (300): sma_crossover crashes on the 97th, 194th and 291st, ema_crossover twice.
          expect(result.counts.restarts).toBe(5)
          const restarted = (yield* storedEvents(run, "AgentLifecycle"))
            .filter(({ event }) => event.event._tag === "ActorRestarted")
          expect(restarted.length).toBe(5)
          expect(new Set(restarted.map(({ event }) => event.event.actor.split("/").at(-1)))).toEqual(new Set(["sma_crossover", "ema_crossover"]))
          expect((yield* Runs.get(run)).faults).toEqual(faults)

          const before = yield* tableCounts(run)
          const replayed = yield* StoredRun.replay(run)
          expect(replayed.events).toBe(result.counts.events)
          expect(replayed.checksum).toBe(result.checksum)
          expect(replayed.result!.counts).toEqual(result.counts)
          expect(replayed.result!.metrics).toEqual(result.metrics)
          // Replay writes nothing.
          expect(yield* tableCounts(run)).toEqual(before)
          expect((yield* Runs.get(run)).status).toBe("completed")

          // The faults are part of what is replayed: changed after the run, the recording was altered.
          const sql = yield* SqlClient.SqlClient
          yield* sql`update runs set faults = null where id = ${run}`
          expect(yield* failure(StoredRun.replay(run))).toBeInstanceOf(StoredRun.RecordingAltered)
          // Where that cannot be seen (a run recorded before runs sealed their inputs), the first crash is missing.
          yield* sql`update runs set inputs_seal = null where id = ${run}`
          const error = diverged(yield* failure(StoredRun.replay(run)))
          // The recording is as it was: the divergence is the re-execution's.
          expect(error.tampered).toBeUndefined()
          const [firstCrash] = yield* sql<{ seq: number; tag: string }>`
            select seq, tag from run_events where run_id = ${run} and body like '%injected fault%' order by seq limit 1`
          expect(error).toMatchObject({ seq: firstCrash!.seq, field: "_tag", expected: JSON.stringify(firstCrash!.tag) })
          expect(error.message).toContain(`diverges at event ${firstCrash!.seq}`)
        }), 60_000)

      it.effect("a run recorded before flat votes were scored as not long replays as it was recorded; a new one scores them so", () =>
        Effect.gen(function*() {
          // No shorting and adaptive weights: the analysts' flats (their bearish calls) are scored.
          const options = stored(3, 300, { name: "flat scoring" })
          const encoded = Schema.encodeSync(Strategy)(options.strategy)
          const longOnly = Schema.decodeUnknownSync(Strategy)({
            ...encoded,
            allowShort: false,
            agents: [
              { type: "sma_crossover", params: { fast: 5, slow: 20 } },
              { type: "ema_crossover", params: { fast: 5, slow: 20 } },
              { type: "rsi_reversion" }
            ],
            consensus: { quorum: 0.5, adaptiveWeights: { enabled: true, alpha: 0.2 } }
          })
          const old = yield* StoredRun.backtest({ ...options, strategy: longOnly, recordedStart: {}, events: "rounds" })
          const now = yield* StoredRun.backtest({ ...options, strategy: longOnly, events: "rounds" })
          const [oldStart] = yield* storedEvents(old.run, "RunStarted")
          const [newStart] = yield* storedEvents(now.run, "RunStarted")
          expect("flatScoring" in oldStart!.event).toBe(false)
          expect(newStart!.event.flatScoring).toBe("not_long")
          // The case is met: the weights differ, the flat-saying analysts weigh more in the new run.
          const weightOf = (decisions: ReadonlyArray<{ readonly event: { readonly decision: { readonly votes: ReadonlyArray<{ readonly agent: string; readonly direction: string; readonly weight: number }> } } }>) =>
            decisions.flatMap(({ event }) => event.decision.votes).filter((v) => v.direction === "flat").reduce((sum, v) => sum + v.weight, 0)
          expect(weightOf(yield* storedEvents(now.run, "DecisionMade"))).toBeGreaterThan(weightOf(yield* storedEvents(old.run, "DecisionMade")))
          for (const { result, run } of [old, now]) {
            const replayed = yield* StoredRun.replay(run)
            expect(replayed.checksum).toBe(result.checksum)
          }
        }), 60_000)

      it.effect("a run recorded before reduced intents were worked replays and resumes as it was recorded; a new one works them", () =>
        Effect.gen(function*() {
          // Orders above 4,000 are cut (closes included): positions of 10 % of equity (about 10,000).
          const options = stored(3, 300, { name: "reduced intents", checkpointEvery: 32 })
          const encoded = Schema.encodeSync(Strategy)(options.strategy)
          const capped = Schema.decodeUnknownSync(Strategy)({
            ...encoded,
            rules: [{ id: "cap", name: "4k orders", kind: "max_order_notional", params: { notional: "4000", exemptRiskReducing: false } }]
          })
          const old = yield* StoredRun.backtest({ ...options, strategy: capped, recordedStart: {} })
          const now = yield* StoredRun.backtest({ ...options, strategy: capped })
          const [oldStart] = yield* storedEvents(old.run, "RunStarted")
          const [newStart] = yield* storedEvents(now.run, "RunStarted")
          expect("reducedIntents" in oldStart!.event).toBe(false)
          expect(newStart!.event.reducedIntents).toBe("worked")
          // The case is met: the new run orders the remainders the old one left.
          const remainders = (yield* storedEvents(now.run, "VerdictGiven")).filter(({ event }) => event.verdict.intent.remainderOf !== undefined)
          expect(remainders.length).toBeGreaterThan(10)
          expect((yield* storedEvents(old.run, "VerdictGiven")).some(({ event }) => event.verdict.intent.remainderOf !== undefined)).toBe(false)
          expect(now.result.counts.orders).toBeGreaterThan(old.result.counts.orders)

          for (const { result, run } of [old, now]) {
            const replayed = yield* StoredRun.replay(run)
            expect(replayed.checksum).toBe(result.checksum)
            expect(replayed.result!.counts).toEqual(result.counts)
          }
          // Crashed at its second-to-last checkpoint, the old run resumes into the very run it was.
          const checkpoints = yield* checkpointsOf(old.run)
          expect(checkpoints.length).toBeGreaterThanOrEqual(4)
          yield* crashAt(old.run, checkpoints.at(-2)!.seq)
          const resumed = yield* StoredRun.resume(old.run)
          expect(resumed.result.checksum).toBe(old.result.checksum)
          expect((yield* Runs.get(old.run)).status).toBe("completed")
        }), 60_000)

      it.effect("a stored decision changed after the run: RunDiverged at that event, with the field, the recorded and the re-executed value", () =>
        Effect.gen(function*() {
          const { result, run } = yield* StoredRun.backtest(stored(3, 200, { name: "tampered decision" }))
          const decisions = yield* storedEvents(run, "DecisionMade")
          expect(decisions.length).toBeGreaterThan(10)
          const { event, seq } = decisions[Math.floor(decisions.length / 2)]!
          const original = event.decision.action as string
          const forged = original === "long" ? "short" : "long"
          const sql = yield* SqlClient.SqlClient
          yield* sql`update run_events set body = ${JSON.stringify({ ...event, decision: { ...event.decision, action: forged } })}
            where run_id = ${run} and seq = ${seq}`
          const error = diverged(yield* failure(StoredRun.replay(run)))
          expect({ ...error }).toEqual({
            _tag: "RunDiverged",
            run,
            seq,
            round: event.decision.round,
            agent: null,
            field: "decision.action",
            expected: JSON.stringify(forged),
            actual: JSON.stringify(original),
            // The audit chain says the same thing about the same event: the recording was changed.
            tampered: `entry ${seq}: entry ${seq} (DecisionMade) does not verify: its content was changed, or it does not follow entry ${seq - 1} (reordered)`
          })
          expect(error.message).toBe(
            `run ${run} diverges at event ${seq}, round ${event.decision.round}: decision.action was "${forged}", now "${original}" ` +
              `(the recording itself does not verify: ${error.tampered})`
          )
          expect(yield* Audit.verifyRun(run)).toMatchObject({ ok: false, position: seq })
          expect(result.counts.events).toBeGreaterThan(seq)
        }))

      it.effect("a recording that ends early or goes on too long diverges at the first event that is not on both sides", () =>
        Effect.gen(function*() {
          const { result, run } = yield* StoredRun.backtest(stored(2, 60, { name: "length" }))
          const events = result.counts.events
          const sql = yield* SqlClient.SqlClient
          const [last] = yield* sql<{ body: string }>`select body from run_events where run_id = ${run} and seq = ${events}`
          yield* sql`delete from run_events where run_id = ${run} and seq = ${events}`
          const short = diverged(yield* failure(StoredRun.replay(run)))
          expect(short).toMatchObject({ seq: events, field: "event", expected: "(no such event recorded)", actual: JSON.stringify("RunCompleted") })

          yield* sql`insert into run_events (run_id, seq, tag, at, hash, body) values (${run}, ${events}, 'RunCompleted', 0, '', ${last!.body})`
          yield* sql`insert into run_events (run_id, seq, tag, at, hash, body) values (${run}, ${events + 1}, 'RunCompleted', 0, '', ${last!.body})`
          const long = diverged(yield* failure(StoredRun.replay(run)))
          expect(long).toMatchObject({ seq: events + 1, field: "event", actual: "(the re-execution has no such event)" })
        }))

      it.effect("a failed run replays up to its failure and fails the same way; a changed event in it diverges", () =>
        Effect.gen(function*() {
          // Every intent is held for an operator, and this stored backtest has none: it fails at its first order.
          const options = stored(2, 120, { name: "failed run" })
          const encoded = Schema.encodeSync(Strategy)(options.strategy)
          const held = Schema.decodeUnknownSync(Strategy)({
            ...encoded,
            risk: { ...encoded.risk, approval: { ...encoded.risk?.approval, notionalPctAbove: 5, policy: "pause" } }
          })
          const original = yield* StoredRun.backtest({ ...options, strategy: held })
          expect(original.result).toMatchObject({ status: "failed", failure: expect.stringMatching(/^risk\.approval\.policy: /) })
          const run = yield* Runs.get(original.run)
          expect(run).toMatchObject({ status: "failed", failure: original.result.failure })
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ seq: number; tag: string; body: string }>`select seq, tag, body from run_events where run_id = ${run.id} order by seq`
          expect(rows.length).toBeGreaterThan(3)
          expect(rows.at(-1)!.tag).toBe("RunFailed")

          const replayed = yield* StoredRun.replay(run.id)
          expect(replayed).toMatchObject({ run: run.id, events: rows.length, checksum: original.result.checksum })
          expect(replayed.result).toMatchObject({ status: "failed", failure: run.failure })

          // The recording changed after the fact: the replay says where, and that the recording does not verify.
          const forged = rows.find((row) => /"quantity":\d+/.test(row.body))!
          yield* sql`update run_events set body = ${forged.body.replace(/"quantity":\d+/, `"quantity":999`)}
            where run_id = ${run.id} and seq = ${forged.seq}`
          const error = diverged(yield* failure(StoredRun.replay(run.id)))
          expect(error).toMatchObject({ seq: forged.seq, expected: "999" })
          expect(error.field).toMatch(/quantity$/)
          expect(error.tampered).toMatch(new RegExp(`^entry ${forged.seq}: `))
        }))

      it.effect("a run its supervisor gave up on is stored with the books its events hold, and replays", () =>
        Effect.gen(function*() {
          // The coordinator fails on four messages in a row from its 200th: the run supervisor gives up.
          const faults: FaultPlan = { coordinator: { at: [200, 201, 202, 203] } }
          const { result, run } = yield* StoredRun.backtest(stored(3, 300, { name: "given up", faults }))
          expect(result).toMatchObject({ status: "failed", failure: expect.stringMatching(/supervisor gave up/) })
          const trades = yield* storedEvents(run, "TradeClosed")
          expect(trades.length).toBeGreaterThan(0)
          expect(result.trades.length).toBe(trades.length)
          const last = (yield* storedEvents(run, "PortfolioUpdated")).at(-1)!.event.snapshot
          expect(result.portfolio.cash).toBe(last.cash)
          expect(result.metrics.finalEquity).toBe(result.portfolio.equity)
          expect(result.metrics.finalEquity).not.toBe(INITIAL_CASH * MICROS)
          // The stored run's metrics are those books: `runs show` agrees with its own trades and equity.
          const stored_ = yield* Runs.get(run)
          expect(stored_).toMatchObject({ status: "failed", failure: result.failure })
          expect(stored_.metrics).toEqual(result.metrics)
          expect(stored_.metrics!.tradeCount).toBe(trades.length)

          const replayed = yield* StoredRun.replay(run)
          expect(replayed).toMatchObject({ events: result.counts.events, checksum: result.checksum })
          expect(replayed.result).toMatchObject({ status: "failed", failure: result.failure })
          expect(replayed.result!.metrics).toEqual(result.metrics)
        }), 60_000)

      it.effect("a run that never finished (its process killed, or still going) replays as far as it was recorded", () =>
        Effect.gen(function*() {
          const { result, run } = yield* StoredRun.backtest(stored(2, 120, { name: "unfinished" }))
          const cut = Math.floor(result.counts.events / 2)
          yield* crashAt(run, cut)
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ body: string }>`select body from run_events where run_id = ${run} order by seq`
          const checksum = createHash("sha256").update(rows.map((row) => `${row.body}\n`).join("")).digest("hex")
          for (const status of ["running", "paused"] as const) {
            yield* sql`update runs set status = ${status} where id = ${run}`
            const replayed = yield* StoredRun.replay(run)
            expect({ run: replayed.run, events: replayed.events, checksum: replayed.checksum, status: replayed.status }).toEqual({ run, events: cut, checksum, status })
            // Replay writes nothing: the run is as unfinished as it was.
            expect((yield* Runs.get(run)).status).toBe(status)
          }
          // A recorded event that differs is still found.
          yield* sql`update run_events set body = ${rows[cut - 1]!.body.replace(",", ", ")} where run_id = ${run} and seq = ${cut}`
          expect({ ...diverged(yield* failure(StoredRun.replay(run))) }).toMatchObject({ seq: cut, field: "event", expected: JSON.stringify("(byte-level difference)") })
          // Not left unfinished for the resumes of the tests after this one.
          yield* Runs.remove(run)
        }))

      it.effect("a run on CSV files: replays while the files are as they were, DataChanged once one changes", () =>
        Effect.gen(function*() {
          const dir = yield* Effect.acquireRelease(
            Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "swarm-replay-csv-"))),
            (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
          )
          const market = Synthetic.generate(marketConfig(3, 150, 11))
          for (const [symbol, bars] of market.bars) fs.writeFileSync(path.join(dir, `${symbol}.csv`), Csv.format(bars))
          const source = DataSource.csv([dir])
          const feed = yield* Feed.load([dir])
          const { result, run } = yield* StoredRun.backtest({ strategy: strategy(3, "on files"), feed, dataSource: source })
          expect(result.counts.bars).toBe(450)
          expect((yield* Runs.get(run)).dataSource).toEqual({ _tag: "csv", paths: [dir] })
          expect((yield* StoredRun.replay(run)).checksum).toBe(result.checksum)

          // One price of one file, rewritten.
          const file = path.join(dir, "S1.csv")
          const original = fs.readFileSync(file, "utf8")
          const lines = original.trimEnd().split("\n")
          const last = lines.at(-1)!.split(",")
          last[4] = String(Number(last[4]) + 0.01)
          fs.writeFileSync(file, [...lines.slice(0, -1), last.join(",")].join("\n") + "\n")
          const changed = yield* failure(StoredRun.replay(run))
          expect(changed).toBeInstanceOf(DataSource.DataChanged)
          // The file that changed is named, not every file's digest listed.
          expect(changed.message).toMatch(/^the run's data cannot be read as it was: S1\.csv changed \(SHA-256 now [0-9a-f]{8}…, the run read [0-9a-f]{8}…\)$/)

          // The same bytes again: the same data (the fingerprint is the content, not the file's time).
          fs.writeFileSync(file, original)
          expect((yield* StoredRun.replay(run)).checksum).toBe(result.checksum)

          // A file gone, then the whole directory.
          fs.rmSync(path.join(dir, "S2.csv"))
          const fewer = yield* failure(StoredRun.replay(run))
          expect(fewer).toBeInstanceOf(DataSource.DataChanged)
          expect(fewer.message).toBe("the run's data cannot be read as it was: S2.csv is gone")
          fs.rmSync(dir, { recursive: true, force: true })
          const gone = yield* failure(StoredRun.replay(run))
          expect(gone).toBeInstanceOf(DataSource.DataChanged)
          expect(gone.message).toContain(dir)
        }).pipe(Effect.scoped))

      it.effect("a run whose files were read with --adjust adj-close and --ohlc as-given replays, reading them so again", () =>
        Effect.gen(function*() {
          const dir = yield* Effect.acquireRelease(
            Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "swarm-replay-adjust-"))),
            (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
          )
          // Yahoo-style files whose adj close is 90 % of the close, and one bar whose open is above its high.
          const market = Synthetic.generate(marketConfig(3, 150, 12))
          for (const [symbol, bars] of market.bars) {
            const rows = bars.map((b, i) =>
              `${new Date(b.ts).toISOString().slice(0, 10)},${i === 40 ? b.high * 1.01 : b.open},${b.high},${b.low},${b.close},${b.close * 0.9},${b.volume}`
            )
            fs.writeFileSync(path.join(dir, `${symbol}.csv`), ["Date,Open,High,Low,Close,Adj Close,Volume", ...rows].join("\n") + "\n")
          }
          const parse: Csv.ParseOptions = { adjust: "adjClose", ohlc: "as-given" }
          expect(yield* failure(Feed.load([dir]))).toMatchObject({ kind: "BadBar" })
          const feed = yield* Feed.load([dir], { parse })
          const { result, run } = yield* StoredRun.backtest({ strategy: strategy(3, "adjusted files"), feed, dataSource: DataSource.csv([dir], {}, parse) })
          expect(result.counts.bars).toBe(450)
          expect((yield* Runs.get(run)).dataSource).toEqual({ _tag: "csv", paths: [dir], adjust: "adjClose", ohlc: "as-given" })
          expect((yield* StoredRun.replay(run)).checksum).toBe(result.checksum)
        }).pipe(Effect.scoped))
    })

    describe("checkpoints and resume", () => {
      it.effect("each checkpoint holds the cursor, the chain head and the books as the events up to it left them", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const { result, run } = yield* StoredRun.backtest(stored(3, 300, { name: "checkpointed", checkpointEvery: 32 }))
          const checkpoints = yield* checkpointsOf(run)
          expect(checkpoints.length).toBeGreaterThanOrEqual(5)
          const events = (yield* sql<{ seq: number; hash: string; body: string }>`
            select seq, hash, body from run_events where run_id = ${run} order by seq`).map((e) => ({ ...e, event: JSON.parse(e.body) }))
          expect(events.length).toBe(result.counts.events)
          const fills = yield* fillsOf(run)
          let previousSlices = 0
          for (const { seq, state, ts } of checkpoints) {
            // On a pause (every 16 slices), at least `checkpointEvery` slices after the one before.
            expect(state.cursor.slices % 16).toBe(0)
            expect(state.cursor.slices - previousSlices).toBeGreaterThanOrEqual(32)
            previousSlices = state.cursor.slices
            expect(state.cursor.events).toBe(seq)
            expect(state.cursor.ts).toBe(ts)
            expect(state.chain).toEqual({ count: seq, hash: events[seq - 1]!.hash })
            // The books: the last portfolio snapshot up to the checkpoint, every position ever reported.
            const upTo = events.slice(0, seq).map((e) => e.event)
            const snapshots = upTo.filter((e) => e._tag === "PortfolioUpdated").map((e) => e.snapshot)
            const last = snapshots.at(-1)
            expect(state.books).toEqual(last === undefined ? null : { ts: last.ts, cash: last.cash, equity: last.equity, realizedPnl: last.realizedPnl })
            const positions = new Map<string, { symbol: string; quantity: number; averagePrice: number }>()
            for (const s of snapshots) {
              for (const p of s.positions) positions.set(p.symbol, { symbol: p.symbol, quantity: p.quantity, averagePrice: p.averagePrice })
            }
            expect(state.positions).toEqual([...positions.values()].sort((a, b) => (a.symbol < b.symbol ? -1 : 1)))
            expect(state.tradingState).toBe(upTo.filter((e) => e._tag === "TradingStateChanged").at(-1)?.transition.to ?? "active")
            expect(state.pendingApprovals).toEqual([])
            // And, independently, the fills table up to the checkpoint gives the same positions and cash.
            const before = fills.filter((f) => f.seq <= seq)
            expect(Object.fromEntries(state.positions.filter((p) => p.quantity !== 0).map((p) => [p.symbol, microUnits(p.quantity)])))
              .toEqual(positionsFromFills(before))
            expect(state.books?.cash ?? INITIAL_CASH * MICROS).toBe(cashFromFills(before))
          }
          expect(checkpoints.at(-1)!.state.cursor.slices).toBeGreaterThan(200)
        }))

      it.effect("a run crashed after a checkpoint resumes from its last event into the very run it was", () =>
        Effect.gen(function*() {
          const { at, counts, original } = yield* crashedRun("resumed at a checkpoint")
          const run = original.run
          expect((yield* Runs.unfinished()).map((r) => r.id)).toEqual([run])
          const resumed = yield* StoredRun.resume(run)
          expect(resumed.recorded).toBe(at.seq)
          // Same id, same inputs: byte for byte the original run, its chain included.
          expect(resumed.result.checksum).toBe(original.result.checksum)
          const record = yield* Runs.get(run)
          expect(record.status).toBe("completed")
          expect(record.chain?.count).toBe(original.result.counts.events)
          expect(yield* rowCounts(run)).toEqual(counts)
          yield* checkWhole(run, resumed.result)
          // Finished runs are not resumed again.
          expect(yield* failure(StoredRun.resume(run))).toMatchObject({ _tag: "NotResumable", reason: "it is completed" })
        }))

      it.effect("a run that died before anything was committed is recorded from the start", () =>
        Effect.gen(function*() {
          const original = yield* StoredRun.backtest(stored(2, 120, { name: "died at once", checkpointEvery: 32 }))
          const counts = yield* rowCounts(original.run)
          yield* crashAt(original.run, 0)
          expect(yield* rowCounts(original.run)).toEqual(Object.fromEntries(Object.keys(counts).map((table) => [table, 0])))
          const resumed = yield* StoredRun.resume(original.run)
          expect(resumed.recorded).toBe(0)
          expect(resumed.result.checksum).toBe(original.result.checksum)
          expect(yield* rowCounts(original.run)).toEqual(counts)
          yield* checkWhole(original.run, resumed.result)
        }))

      it.effect("a checkpoint the rebuilt books do not match, or that no pause reaches, stops the resume with RunDiverged naming the field", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const { at, original } = yield* crashedRun("tampered checkpoint")
          const run = original.run
          const cash = at.state.books!.cash
          yield* sql`update checkpoints set state = jsonb_set(state, '{books,cash}', ${String(cash + 1)}::jsonb)
            where run_id = ${run} and seq = ${at.seq}`
          const error = yield* failure(StoredRun.resume(run))
          expect(error).toBeInstanceOf(StoredRun.RunDiverged)
          expect(error).toMatchObject({ run, seq: at.seq, field: "checkpoint.books.cash", expected: String(cash + 1), actual: String(cash) })
          // Nothing was written past the crash, and the run says why it stopped.
          const [events] = yield* sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${run}`
          expect(events!.n).toBe(at.seq)
          const failed = yield* Runs.get(run)
          expect(failed.status).toBe("failed")
          expect(failed.failure).toContain("checkpoint.books.cash")

          // A position's quantity.
          yield* sql`update runs set status = 'running', failure = null where id = ${run}`
          yield* sql`update checkpoints set state = ${JSON.stringify(at.state)}::jsonb where run_id = ${run} and seq = ${at.seq}`
          const symbol = at.state.positions[0]!.symbol
          yield* sql`update checkpoints set state = jsonb_set(state, '{positions,0,quantity}', ${String(at.state.positions[0]!.quantity + 1)}::jsonb)
            where run_id = ${run} and seq = ${at.seq}`
          const position = yield* failure(StoredRun.resume(run))
          expect(position).toMatchObject({ _tag: "RunDiverged", field: "checkpoint.positions[0].quantity" })
          expect(symbol).toBe(at.state.positions[0]!.symbol)

          // A cursor no pause ever reaches: the checkpoint cannot be checked, which is no pass either.
          yield* sql`update runs set status = 'running', failure = null where id = ${run}`
          yield* sql`update checkpoints set state = jsonb_set(${JSON.stringify(at.state)}::jsonb, '{cursor,slices}', ${String(at.state.cursor.slices + 1)}::jsonb)
            where run_id = ${run} and seq = ${at.seq}`
          const cursor = yield* failure(StoredRun.resume(run))
          expect(cursor).toMatchObject({
            _tag: "RunDiverged",
            field: "checkpoint.cursor.slices",
            expected: String(at.state.cursor.slices + 1),
            actual: String(at.state.cursor.slices + 16)
          })
          // One past the end of the run: the run ends without meeting it.
          yield* sql`update runs set status = 'running', failure = null where id = ${run}`
          yield* sql`update checkpoints set state = jsonb_set(${JSON.stringify(at.state)}::jsonb, '{cursor,slices}', '100000'::jsonb)
            where run_id = ${run} and seq = ${at.seq}`
          const beyond = yield* failure(StoredRun.resume(run))
          expect(beyond).toMatchObject({ _tag: "RunDiverged", field: "checkpoint.cursor.slices", expected: "100000", actual: "300 (the run ended before it)" })
          expect((yield* Runs.get(run)).status).toBe("failed")

          // The checkpoint restored: the run resumes (from where the last attempt left it) and finishes whole.
          yield* sql`update runs set status = 'running', failure = null where id = ${run}`
          yield* sql`update checkpoints set state = ${JSON.stringify(at.state)}::jsonb where run_id = ${run} and seq = ${at.seq}`
          const resumed = yield* StoredRun.resume(run)
          expect(resumed.result.checksum).toBe(original.result.checksum)
          yield* checkWhole(run, resumed.result)
        }))
    })
  })
}
