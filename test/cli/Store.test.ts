/**
 * The commands that keep and read runs, on a fresh database (embedded PGlite in memory, or a
 * throw-away database on the server of `DATABASE_URL`): `backtest` persisting its run, `runs
 * list | show | compare`, `audit verify`, `replay` and `resume` — what each prints, and the one
 * `swarm:` line and exit code of each failure (unknown and malformed runs, a broken chain, a
 * divergence, a database that cannot be opened or is locked). One database for the whole file:
 * runs accumulate, so tests find theirs by the `ref` their backtest printed.
 */
import { SqlClient } from "@effect/sql"
import { createHash } from "node:crypto"
import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Clock, Effect, Layer, Logger, Option, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Principal } from "../../schemas/Auth.js"
import type { RunId } from "../../schemas/Ids.js"
import { analysts, llmAnalysts } from "../../agents/registry.js"
import { Strategy } from "../../schemas/Strategy.js"
import { VerifyJson } from "../../src/cli/AuditCommand.js"
import { ReplayJson } from "../../src/cli/ReplayCommand.js"
import { describeResumed } from "../../src/cli/ResumeCommand.js"
import { ResultDocument } from "../../src/cli/ResultDocument.js"
import { CompareJson, RunJson, RunShowJson } from "../../src/cli/RunsView.js"
import * as LlmRuntime from "../../src/llm/LlmRuntime.js"
import * as Offline from "../../src/llm/Offline.js"
import * as Compare from "../../src/store/Compare.js"
import * as ControlAudit from "../../src/store/ControlAudit.js"
import type * as Database from "../../src/store/Database.js"
import { migrate } from "../../src/store/Migrations.js"
import * as Store from "../../src/store/Store.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import { freshDatabase } from "../store/fresh.js"
import { rewindTotals } from "../store/fixtures/checks.js"
import { crashingEvery } from "../swarm/crashing.js"
import { stored } from "../store/fixtures/workload.js"
import { fakeTerminal, lines, noDatabase, openAttempts, swarm } from "./harness.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const data = Path.join(root, "data")
const sma = Path.join(root, "examples", "sma-crossover.json")
const six = Path.join(root, "examples", "six-analysts.yaml")

const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-cli-store-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/**
 * ACME's first 250 bars alone, for the LLM runs: every one of their bars is a model call (over 200
 * of them, more than the 100 the tests need; a budget of 20,000 tokens is spent within the first
 * 60), and half of data/'s 500 halves what a run, its resumes and their calls take.
 */
const llmData = Path.join(tmp, "llm-data")
fs.mkdirSync(llmData)
fs.writeFileSync(Path.join(llmData, "ACME.csv"), fs.readFileSync(Path.join(data, "ACME.csv"), "utf8").split("\n").slice(0, 251).join("\n") + "\n")

/** A copy of the SMA example under another name: a strategy of its own, numbered from 1. */
const smaNamed = (name: string) => {
  const file = Path.join(tmp, `${name.replace(/\W/g, "-")}.json`)
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(sma, "utf8")), name }))
  return file
}

const migrated = Layer.effectDiscard(Effect.orDie(migrate)).pipe(Layer.provideMerge(freshDatabase))

/** The test's database as a store layer the command opens without owning it (it stays open for the next test). */
const store = Effect.map(Effect.context<Database.Database>(), (context) => Layer.succeedContext(context))

const documentOf = (stdout: string) => Schema.decodeUnknownSync(ResultDocument)(JSON.parse(stdout))

/** A stored backtest of `strategy` (`--json`), with its document. */
const backtest = (strategy: string, ...extra: Array<string>) =>
  Effect.gen(function*() {
    const r = yield* swarm(["backtest", "--data", data, "--strategy", strategy, "--json", ...extra], { store: yield* store })
    expect(r.code, r.stderr).toBe(0)
    return { ...r, document: documentOf(r.stdout) }
  })

/** What a process killed after event `n` leaves of a completed run: its first `n` events and their rows, its `runs` row still `running`. */
const crashAfter = (run: string, n: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`update runs set status = 'running', failure = null, checksum = null, metrics = null, counts = null,
      trading_state = null, period_from = null, period_to = null, chain_count = null, chain_head = null, finished_at = null
      where id = ${run}`
    for (
      const table of ["run_events", "opinions", "decisions", "verdicts", "orders", "fills", "trades", "equity_snapshots", "positions", "checkpoints", "reasoning"]
    ) {
      yield* sql`delete from ${sql(table)} where run_id = ${run} and seq > ${n}`
    }
    yield* sql`delete from approvals where run_id = ${run} and requested_seq > ${n}`
    yield* rewindTotals(run, n)
    yield* sql`delete from rounds r where r.run_id = ${run}
      and not exists (select 1 from decisions d where d.run_id = r.run_id and d.round_id = r.round_id)
      and not exists (select 1 from opinions o where o.run_id = r.run_id and o.round_id = r.round_id)`
  }).pipe(Effect.orDie)

/** The first (ts, symbol) where two runs' decisions differ, computed here from all their rows at once. */
const expectedDifference = (a: string, b: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = (run: string) =>
      sql<{ ts: number; symbol: string; action: string }>`select ts, symbol, action from decisions where run_id = ${run}`
    const key = (r: { ts: number; symbol: string }) => `${String(r.ts).padStart(15, "0")} ${r.symbol}`
    const x = new Map((yield* rows(a)).map((r) => [key(r), r.action]))
    const y = new Map((yield* rows(b)).map((r) => [key(r), r.action]))
    const keys = [...new Set([...x.keys(), ...y.keys()])].sort()
    return keys.find((k) => x.get(k) !== y.get(k))
  }).pipe(Effect.orDie)

layer(migrated, { timeout: "120 seconds", excludeTestServices: true })("swarm on a database", (it) => {
  it.effect("backtest keeps the run: the database line, the run's id and <strategy>#<number> in the document and the summary", () =>
    Effect.gen(function*() {
      const first = yield* backtest(smaNamed("Kept"))
      expect(lines(first.stderr)).toEqual([expect.stringMatching(/^database: (embedded PGlite in memory|Postgres at postgres:\/\/)/)])
      expect(first.document.run).toMatch(/^run_[0-9a-f]{12}$/)
      expect(first.document.ref).toBe("Kept#1")
      expect(first.document.status).toBe("completed")

      const second = yield* swarm(["backtest", "--data", data, "--strategy", smaNamed("Kept")], { store: yield* store })
      expect(second.code).toBe(0)
      expect(second.stdout).toMatch(/^run {7}run_[0-9a-f]{12} \(Kept#2, kept in the database\)\n/)
      // The same inputs, another run: its own id, so its own checksum (events name their run).
      expect(second.stdout).not.toContain(first.document.run)

      // --out still writes the run's files, the same events the database has.
      const out = Path.join(tmp, "kept-out")
      const third = yield* backtest(smaNamed("Kept"), "--out", out)
      expect(third.document.ref).toBe("Kept#3")
      const events = lines(fs.readFileSync(Path.join(out, "events.ndjson"), "utf8"))
      const sql = yield* SqlClient.SqlClient
      const stored = yield* sql<{ body: string }>`select body from run_events where run_id = ${third.document.run} order by seq`
      expect(stored.map((e) => e.body)).toEqual(events)
    }))

  it.effect("a symbol the data lacks is refused before the store is touched: no run, no strategy version, the next run is #1", () =>
    Effect.gen(function*() {
      const file = Path.join(tmp, "unkept.json")
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(sma, "utf8")), name: "Unkept", symbols: ["ACME", "ZZZ"] }))
      const refused = yield* swarm(["backtest", "--data", data, "--strategy", file], { store: yield* store })
      expect(refused.code).toBe(2)
      // Says what the data has, though the feed the run gets holds only the strategy's symbols.
      expect(lines(refused.stderr)).toEqual(["swarm: symbols: no data for ZZZ (the data has ACME, GLOBEX, INITECH)"])
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`select id from strategies where name = 'Unkept'`).toEqual([])
      const listed = yield* swarm(["runs", "list", "--strategy", "Unkept"], { store: yield* store })
      expect(listed.stdout).not.toContain("Unkept#")

      const kept = yield* backtest(smaNamed("Unkept"))
      expect(kept.document.ref).toBe("Unkept#1")
      const versions = yield* sql<{ version: number }>`select v.version from strategy_versions v join strategies s on s.id = v.strategy_id
        where s.name = 'Unkept'`
      expect(versions.map((v) => v.version)).toEqual([1])
    }))

  it.effect("runs list: a table of the runs, newest first; --strategy, --status, --limit; --json", () =>
    Effect.gen(function*() {
      const a = yield* backtest(smaNamed("Listed"))
      const b = yield* backtest(smaNamed("Listed"), "--to", "2022-12-31")
      const table = yield* swarm(["runs", "list", "--strategy", "Listed"], { store: yield* store })
      expect(table.code).toBe(0)
      expect(lines(table.stderr)).toHaveLength(1) // the database line
      const rows = lines(table.stdout)
      expect(rows[1]).toMatch(/│ run +│ id +│ status +│ mode +│ period +│ +return │ Sharpe │ max DD │ trades │ started +│/)
      // Newest first: Listed#2 (to 2022-12-31), then Listed#1.
      expect(rows[3]).toMatch(new RegExp(`│ Listed#2 +│ ${b.document.run} │ completed │ backtest │ 2022-01-03 → 2022-12-30 │`))
      expect(rows[4]).toMatch(new RegExp(`│ Listed#1 +│ ${a.document.run} │ completed │ backtest │ 2022-01-03 → 2023-12-01 │ +\\+26\\.09% │ +1\\.42 │ +5\\.16% │ +27 │ \\d{4}-`))
      expect(rows).toHaveLength(6)

      const limited = yield* swarm(["runs", "list", "--strategy", "Listed", "--limit", "1"], { store: yield* store })
      expect(lines(limited.stdout).filter((l) => l.includes("Listed#"))).toHaveLength(1)
      // It ends with the next page's command line, which lists the rest.
      const next = `swarm runs list --strategy Listed --limit 1 --before ${b.document.run}`
      expect(lines(limited.stdout).at(-1)).toBe(`more runs follow; the next page: ${next}`)
      const page2 = yield* swarm(next.split(" ").slice(1), { store: yield* store })
      expect(page2.code).toBe(0)
      expect(lines(page2.stdout).filter((l) => l.includes("Listed#"))).toEqual([expect.stringMatching(new RegExp(`│ Listed#1 +│ ${a.document.run} │`))])
      expect(page2.stdout).not.toContain("more runs follow")
      // By <strategy>#<number> as by id; a page past the last run is empty.
      expect((yield* swarm(["runs", "list", "--strategy", "Listed", "--before", "Listed#2"], { store: yield* store })).stdout).toBe(page2.stdout)
      expect((yield* swarm(["runs", "list", "--before", a.document.run, "--strategy", "Listed"], { store: yield* store })).stdout).toBe("no runs\n")
      // --json stays an array: the next page is --before its last element's id.
      const first = JSON.parse((yield* swarm(["runs", "list", "--strategy", "Listed", "--limit", "1", "--json"], { store: yield* store })).stdout) as Array<{ id: string }>
      expect(first.map((r) => r.id)).toEqual([b.document.run])
      const second = JSON.parse((yield* swarm(["runs", "list", "--strategy", "Listed", "--json", "--before", first[0]!.id], { store: yield* store })).stdout) as Array<{ id: string }>
      expect(second.map((r) => r.id)).toEqual([a.document.run])
      // A cursor that names no run, or none at all: one line naming the flag, exit 2.
      const unknown = yield* swarm(["runs", "list", "--before", "run_000000000000"], { store: yield* store })
      expect([unknown.code, lines(unknown.stderr).at(-1)]).toEqual([2, `swarm: --before: no run "run_000000000000" in the database (swarm runs list --local shows them)`])
      const empty = yield* swarm(["runs", "list", "--before", " "], { store: yield* store })
      expect([empty.code, lines(empty.stderr)[0]]).toEqual([2, expect.stringMatching(/^swarm: --before: is empty: give a run id/)])

      const json = yield* swarm(["runs", "list", "--strategy", "Listed", "--status", "completed", "--json"], { store: yield* store })
      expect(json.code).toBe(0)
      const runs = Schema.decodeUnknownSync(Schema.Array(RunJson))(JSON.parse(json.stdout))
      expect(runs.map((r) => [r.ref, r.id, r.status])).toEqual([["Listed#2", b.document.run, "completed"], ["Listed#1", a.document.run, "completed"]])
      expect(runs[1]!.checksum).toBe(a.document.checksum)
      expect(runs[1]!.metrics?.finalEquity).toBe(a.document.metrics.finalEquity)

      const none = yield* swarm(["runs", "list", "--strategy", "Listed", "--status", "failed"], { store: yield* store })
      expect([none.code, none.stdout]).toEqual([0, "no runs\n"])
    }))

  it.effect("leaderboard on the local database: each strategy's best completed run by the metric, best first; --local; --json", () =>
    Effect.gen(function*() {
      const whole = yield* backtest(smaNamed("Board A"))
      const part = yield* backtest(smaNamed("Board A"), "--to", "2022-12-31")
      const other = yield* backtest(smaNamed("Board B"), "--to", "2022-12-31")
      const returns = new Map<string, number>([whole, part, other].map((r) => [r.document.run, Number(r.document.metrics.totalReturn)]))
      // The database holds other tests' runs too: the board is asked for all of them, and these read from it.
      const board = yield* swarm(["leaderboard", "--json", "--limit", "1000"], { store: yield* store })
      expect(board.code, board.stderr).toBe(0)
      const entries = JSON.parse(board.stdout) as Array<{ strategy: string; run: string; ref: string; value: number }>
      const ours = entries.filter((e) => e.strategy.startsWith("Board "))
      const bestOfA = returns.get(whole.document.run)! >= returns.get(part.document.run)! ? whole : part
      expect(ours.map((e) => [e.strategy, e.run]).sort()).toEqual([["Board A", bestOfA.document.run], ["Board B", other.document.run]])
      for (const e of ours) expect(e.value).toBeCloseTo(returns.get(e.run)!, 9)
      expect(entries.map((e) => e.value)).toEqual([...entries.map((e) => e.value)].sort((x, y) => y - x))
      // The table, with --local said outright, by another metric (the lowest drawdown first).
      const table = yield* swarm(["leaderboard", "--local", "--metric", "maxDrawdown", "--limit", "1000"], { store: yield* store })
      expect(table.code, table.stderr).toBe(0)
      expect(lines(table.stderr)).toHaveLength(1) // the database line
      expect(table.stdout).toMatch(/│ #\s+│ strategy\s+│ run\s+│ id\s+│ maxDrawdown │/)
      expect(table.stdout).toMatch(new RegExp(`│ Board B\\s+│ Board B#1\\s+│ ${other.document.run} │`))
      // A page of the board ends with the command for the next, which ranks on from where it stopped.
      const first = yield* swarm(["leaderboard", "--local", "--limit", "1"], { store: yield* store })
      expect(first.code, first.stderr).toBe(0)
      expect(lines(first.stdout).at(-1)).toBe("the next page: swarm leaderboard --limit 1 --local --offset 1")
      const second = yield* swarm(["leaderboard", "--local", "--limit", "1", "--offset", "1", "--json"], { store: yield* store })
      expect(JSON.parse(second.stdout)).toEqual([entries[1]])
      const shown = yield* swarm(["leaderboard", "--local", "--limit", "1", "--offset", "1"], { store: yield* store })
      expect(shown.stdout).toMatch(new RegExp(`│ 2 │ ${entries[1]!.strategy}`))
      const past = yield* swarm(["leaderboard", "--local", "--offset", String(entries.length)], { store: yield* store })
      expect(past.stdout).toBe(`no strategy ranked below #${entries.length} by totalReturn\n`)
      const refused = yield* swarm(["leaderboard", "--local", "--offset", "-1"], { store: yield* store })
      expect([refused.code, lines(refused.stderr)[0]]).toEqual([2, "swarm: --offset: expected 0 to 1000000, got -1"])
    }))

  it.effect("runs show: metrics, counts, checksum, chain head, first and last trades, equity; by id or <strategy>#<n>; --json", () =>
    Effect.gen(function*() {
      const { document } = yield* backtest(smaNamed("Shown"))
      const r = yield* swarm(["runs", "show", "Shown#1"], { store: yield* store })
      expect(r.code).toBe(0)
      for (
        const text of [
          `run       ${document.run} (Shown#1)`,
          "strategy  Shown, version 1 (str_",
          "mode      backtest, seed 0, event detail decisions",
          `data      CSV ${data} (ACME, GLOBEX, INITECH)`,
          "status    completed",
          "period    2022-01-03 → 2023-12-01",
          "│ total return     │ +26.09% (100,000.00 → 126,087.07)",
          "│ Sharpe           │ 1.42 ",
          `first 3 and last 3 of ${document.trades.length} trades`,
          "equity    27 snapshots, taken after fills: first ",
          "trading   active",
          `counts    1,500 bars, 500 slices, 1,500 rounds, ${document.counts.decisions} decisions`,
          `checksum  ${document.checksum}`,
          `chain     ${document.counts.events} events, head `
        ]
      ) expect(r.stdout).toContain(text)

      // Five trades: all of them, three from the start and two from the end, with no gap between.
      const few = yield* backtest(smaNamed("Shown few"), "--to", "2022-06-30")
      expect(few.document.trades).toHaveLength(5)
      const fewShown = yield* swarm(["runs", "show", "Shown few#1"], { store: yield* store })
      expect(fewShown.stdout).toContain("all 5 trades\n")
      expect(fewShown.stdout).not.toContain("…")

      const json = yield* swarm(["runs", "show", document.run, "--json"], { store: yield* store })
      expect(json.code).toBe(0)
      const shown = Schema.decodeUnknownSync(RunShowJson)(JSON.parse(json.stdout))
      expect(shown).toMatchObject({ id: document.run, ref: "Shown#1", status: "completed", checksum: document.checksum, failure: null })
      expect(shown.chain?.count).toBe(document.counts.events)
      expect(shown.chain?.head).toMatch(/^[0-9a-f]{64}$/)
      expect(shown.trades.count).toBe(document.trades.length)
      expect(shown.trades.first).toEqual(document.trades.slice(0, 3))
      expect(shown.trades.last).toEqual(document.trades.slice(-3))
      expect(shown.equity?.points).toBeGreaterThan(0)
      expect(shown.metrics).toEqual(document.metrics)
    }))

  it.effect("an analyst crashing every Nth message: the backtest's summary and runs show name it, its restarts and last cause; --json has them; audit verify holds them to the events", () =>
    Effect.gen(function*() {
      const registry = new Map([...analysts, ["crashy", crashingEvery(3 * 40)]])
      const file = Path.join(tmp, "crashing.json")
      fs.writeFileSync(file, JSON.stringify({
        ...JSON.parse(fs.readFileSync(sma, "utf8")),
        name: "Crashing",
        agents: [{ type: "crashy", name: "analyst-2", params: { fast: 5, slow: 20 } }, { type: "sma_crossover", params: { fast: 10, slow: 50 } }]
      }))
      const ran = yield* swarm(["backtest", "--data", data, "--strategy", file], { store: yield* store, registry })
      expect(ran.code, ran.stderr).toBe(0)
      // 1,500 bars, a crash every 120th given to it: 12 crashes, each restarted.
      const named = "restarts  analyst-2 (crashy) ×12, last: Error: crashy: bar 1440\n"
      expect(ran.stdout).toContain(`, 12 restarts, `)
      expect(ran.stdout).toContain(`\n${named}`)

      const shown = yield* swarm(["runs", "show", "Crashing#1"], { store: yield* store })
      expect(shown.code, shown.stderr).toBe(0)
      expect(shown.stdout).toMatch(new RegExp(`\ncounts    [^\n]*, 12 restarts, [^\n]*\n${named.replace(/[()]/g, "\\$&")}checksum  `))
      // No LLM agents: no llm line.
      expect(shown.stdout).not.toMatch(/^llm /m)
      const json = Schema.decodeUnknownSync(RunShowJson)(JSON.parse((yield* swarm(["runs", "show", "Crashing#1", "--json"], { store: yield* store })).stdout))
      expect(json.agentRestarts).toEqual([{
        agent: "analyst-2",
        actor: "/user/run/analysts/analyst-2",
        type: "crashy",
        restarts: 12,
        crashes: 12,
        lastCause: "Error: crashy: bar 1440",
        lastCrashSeq: expect.any(Number)
      }])
      expect(json.llm).toBeNull()

      // The totals are held to the events: a count changed in the table FAILS at the agent's last event.
      expect((yield* swarm(["audit", "verify", "Crashing#1"], { store: yield* store })).code).toBe(0)
      const sql = yield* SqlClient.SqlClient
      yield* sql`update agent_restarts set restarts = 1 where run_id = ${json.id}`
      const broken = yield* swarm(["audit", "verify", "Crashing#1"], { store: yield* store })
      expect(broken.code).toBe(1)
      expect(broken.stdout).toMatch(/^FAILED at entry \d+: the agent_restarts row of .*analyst-2.* is not what the run's events add up to: agent_restarts.restarts is 1, the event says 12/)
      yield* sql`update agent_restarts set restarts = 12 where run_id = ${json.id}`
    }))

  it.effect("runs show of a run with LLM agents: the backend, model calls, cache hits, tokens, and the budget spent of its limit, exhausted; --json has them", () =>
    Effect.gen(function*() {
      // The offline analyst's answers, counted as a model would count their tokens: the budget runs out.
      const offline = Offline.make("the offline test model")
      const model: typeof offline = { ...offline, chat: (request) => Effect.map(offline.chat(request), (answer) => ({ ...answer, tokensIn: 300, tokensOut: 40 })) }
      const llm = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(model))
      const file = Path.join(tmp, "llm-shown.json")
      fs.writeFileSync(file, JSON.stringify({
        name: "LLM shown",
        symbols: ["ACME"],
        agents: [{ type: "llm_debate", params: { bars: 10, rounds: 1 } }, { type: "sma_crossover", params: { fast: 10, slow: 50 } }],
        llm: { budget: { tokens: 20000, pricePerMillionIn: 100, pricePerMillionOut: 200, maxCost: 50 } }
      }))
      const ran = yield* Effect.withClock(swarm(["backtest", "--data", llmData, "--strategy", file, "--json"], { store: yield* store, llm }), Clock.make())
      expect(ran.code, ran.stderr).toBe(0)
      const document = documentOf(ran.stdout)
      expect(document.llm?.budgetSpent).toBeDefined()
      const json = Schema.decodeUnknownSync(RunShowJson)(JSON.parse((yield* swarm(["runs", "show", "LLM shown#1", "--json"], { store: yield* store })).stdout))
      const usage = json.llm!
      expect(usage).toMatchObject({ backend: "offline", model: "llama3.2:3b", description: "the offline test model" })
      expect(usage.calls).toBeGreaterThan(0)
      expect(usage.refused).toBeGreaterThan(0)
      expect(usage.tokensIn).toBeGreaterThan(0)
      expect(usage.cost).toBeCloseTo((usage.tokensIn * 100 + usage.tokensOut * 200) / 1e6, 9)
      expect(usage.budget).toEqual({ tokens: usage.tokensIn + usage.tokensOut, maxTokens: 20000, cost: usage.cost, maxCost: 50, exhausted: true })
      expect(usage.budget.tokens).toBeLessThanOrEqual(20000)
      expect(usage.agents.map((a) => a.agent)).toEqual(["llm_debate"])
      expect(json.agentRestarts).toEqual([])

      const shown = yield* swarm(["runs", "show", "LLM shown#1"], { store: yield* store })
      expect(shown.code, shown.stderr).toBe(0)
      const n = (x: number) => x.toLocaleString("en-US")
      expect(shown.stdout).toContain(
        `\nllm       offline llama3.2:3b: the offline test model\n` +
          `          ${n(usage.calls)} model calls (${n(usage.cacheHits)} from the cache, ${n(usage.refused)} refused by the budget), tokens ${n(usage.tokensIn)} in, ${n(usage.tokensOut)} out, cost ${usage.cost.toFixed(2)}\n` +
          `          budget ${n(usage.budget.tokens)} of 20,000 tokens, cost ${usage.cost.toFixed(2)} of 50.00 spent: exhausted, its LLM agents abstained from then on\n`
      )
      expect((yield* swarm(["audit", "verify", "LLM shown#1"], { store: yield* store })).code).toBe(0)
      // The backtest said the same when it ended: its JSON has runs show's usage, its summary the same lines.
      const { budgetSpent, ...used } = document.llm!
      expect(budgetSpent).toBeDefined()
      expect(used).toEqual(usage)
      // (A new runtime: the first run's answers are in its cache.)
      const fresh = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(model))
      const summary = yield* Effect.withClock(swarm(["backtest", "--data", llmData, "--strategy", file, "--no-store"], { store: yield* store, llm: fresh }), Clock.make())
      expect(summary.code, summary.stderr).toBe(0)
      const llmBlock = shown.stdout.slice(shown.stdout.indexOf("\nllm       "), shown.stdout.indexOf(" spent: exhausted, its LLM agents abstained from then on\n"))
      expect(llmBlock.length).toBeGreaterThan(100)
      expect(summary.stdout).toContain(llmBlock)
    }))

  it.effect("who controlled a run: runs show lists its control log, audit verify counts it, and a changed entry FAILS at that entry, exit 1", () =>
    Effect.gen(function*() {
      const { document } = yield* backtest(smaNamed("Controlled"))
      const run = document.run as RunId
      const root = new Principal({ userId: "usr_root", name: "root", role: "admin" })
      // Answers as a server records them (the run manager).
      for (const [i, round] of ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11"].entries()) {
        yield* ControlAudit.record(run, i === 10 ? "reject" : "approve", root, i === 10 ? { round, reason: "too big" } : { round })
      }
      const shown = yield* swarm(["runs", "show", "Controlled#1"], { store: yield* store })
      expect(shown.code).toBe(0)
      const at = "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ"
      expect(shown.stdout).toMatch(new RegExp(`\ncontrol   11 operator actions, the last 10:\n          approved round r2 by root at ${at}\n`))
      expect(shown.stdout).not.toContain("round r1 ")
      expect(shown.stdout).toMatch(new RegExp(`\n          rejected round r11 by root at ${at}: too big\n$`))
      const json = Schema.decodeUnknownSync(RunShowJson)(JSON.parse((yield* swarm(["runs", "show", "Controlled#1", "--json"], { store: yield* store })).stdout))
      expect(json.control?.count).toBe(11)
      expect(json.control?.last.at(-1)).toEqual({ action: "reject", by: { id: "usr_root", name: "root" }, at: expect.any(Date), round: "r11", reason: "too big" })

      const ok = yield* swarm(["audit", "verify", "Controlled#1"], { store: yield* store })
      expect([ok.code, lines(ok.stdout)[1]]).toEqual([0, "  control log: 11 operator actions (pause, resume, stop, approve, reject, trading), intact"])
      expect(Schema.decodeUnknownSync(VerifyJson)(JSON.parse((yield* swarm(["audit", "verify", "Controlled#1", "--json"], { store: yield* store })).stdout)))
        .toMatchObject({ ok: true, control: 11 })

      const sql = yield* SqlClient.SqlClient
      yield* sql`update audit_log set entry = replace(entry, '"name":"root"', '"name":"nobody"') where stream = ${`control:${run}`} and position = 4`
      const broken = yield* swarm(["audit", "verify", run], { store: yield* store })
      expect(broken.code).toBe(1)
      expect(broken.stdout).toMatch(/^FAILED at entry 4: the run's control log \(.*\): entry 4 \(approve\) does not verify: its content was changed/)
      const brokenJson = Schema.decodeUnknownSync(VerifyJson)(JSON.parse((yield* swarm(["audit", "verify", run, "--json"], { store: yield* store })).stdout))
      expect(brokenJson).toMatchObject({ ok: false, run, position: 4, log: "control" })
    }))

  it.effect("audit verify: OK with the event count and chain head; a changed event: FAILED at that entry, exit 1", () =>
    Effect.gen(function*() {
      const { document } = yield* backtest(smaNamed("Audited"))
      const ok = yield* swarm(["audit", "verify", "Audited#1"], { store: yield* store })
      expect(ok.code).toBe(0)
      const shown = Schema.decodeUnknownSync(RunShowJson)(JSON.parse((yield* swarm(["runs", "show", "Audited#1", "--json"], { store: yield* store })).stdout))
      expect(ok.stdout).toBe(
        `OK: run ${document.run}: ${document.counts.events} events, chain head ${shown.chain!.head.slice(0, 12)}…\n` +
          "  control log: no operator actions (pause, resume, stop, approve, reject, trading), intact\n"
      )
      const okJson = yield* swarm(["audit", "verify", "Audited#1", "--json"], { store: yield* store })
      expect(okJson.code).toBe(0)
      expect(Schema.decodeUnknownSync(VerifyJson)(JSON.parse(okJson.stdout))).toEqual({
        ok: true,
        run: document.run,
        entries: document.counts.events,
        head: shown.chain!.head,
        control: 0
      })

      const sql = yield* SqlClient.SqlClient
      yield* sql`update run_events set body = replace(body, '"seq":7,', '"seq":7,"forged":true,') where run_id = ${document.run} and seq = 7`
      const broken = yield* swarm(["audit", "verify", document.run], { store: yield* store })
      expect(broken.code).toBe(1)
      expect(broken.stdout).toMatch(/^FAILED at entry 7: entry 7 \(\w+\) does not verify: its content was changed/)
      expect(lines(broken.stderr).slice(1)).toEqual([
        expect.stringMatching(new RegExp(`^swarm: run ${document.run}: the audit chain does not verify at entry 7: `))
      ])
      const brokenJson = yield* swarm(["audit", "verify", document.run, "--json"], { store: yield* store })
      expect(brokenJson.code).toBe(1)
      expect(Schema.decodeUnknownSync(VerifyJson)(JSON.parse(brokenJson.stdout))).toEqual({
        ok: false,
        run: document.run,
        position: 7,
        reason: expect.stringMatching(/^entry 7 \(\w+\) does not verify: its content was changed/)
      })
      expect(lines(brokenJson.stderr).slice(1)).toEqual(lines(broken.stderr).slice(1))
    }))

  it.effect("replay: OK when the run reproduces; a recording that differs: the first divergence, exit 1", () =>
    Effect.gen(function*() {
      const { document } = yield* backtest(smaNamed("Replayed"))
      const ok = yield* swarm(["replay", "Replayed#1"], { store: yield* store })
      expect(ok.code, ok.stderr).toBe(0)
      expect(ok.stdout).toBe(`OK: run ${document.run} reproduced: ${document.counts.events.toLocaleString("en-US")} events, checksum ${document.checksum}\n`)
      const okJson = yield* swarm(["replay", "Replayed#1", "--json"], { store: yield* store })
      expect(okJson.code, okJson.stderr).toBe(0)
      expect(Schema.decodeUnknownSync(ReplayJson)(JSON.parse(okJson.stdout))).toEqual({
        ok: true,
        run: document.run,
        events: document.counts.events,
        checksum: document.checksum,
        status: "completed"
      })

      // The recording says the first decision was another action than the strategy takes.
      const sql = yield* SqlClient.SqlClient
      const [decision] = yield* sql<{ seq: number; action: string; roundId: string }>`
        select seq, action, round_id from decisions where run_id = ${document.run} order by seq limit 1`
      const other = decision!.action === "long" ? "short" : "long"
      yield* sql`update run_events set body = replace(body, ${`"action":"${decision!.action}"`}, ${`"action":"${other}"`})
        where run_id = ${document.run} and seq = ${decision!.seq}`
      const diverged = yield* swarm(["replay", document.run], { store: yield* store })
      expect(diverged.code).toBe(1)
      expect(diverged.stdout).toBe(
        [
          `DIVERGED: run ${document.run} does not reproduce`,
          `  event     ${decision!.seq}`,
          `  round     ${decision!.roundId}`,
          "  agent     —",
          "  field     decision.action",
          `  expected  "${other}"`,
          `  actual    "${decision!.action}"`,
          // The recording was edited: its chain says so, and the blame goes there.
          `  but the recording itself does not verify (swarm audit verify): entry ${decision!.seq}: entry ${decision!.seq} (DecisionMade) does not verify: ` +
          `its content was changed, or it does not follow entry ${decision!.seq - 1} (reordered)`,
          "  the divergence is the recording's, not the re-execution's",
          ""
        ].join("\n")
      )
      expect(lines(diverged.stderr).slice(1)).toEqual([
        `swarm: run ${document.run}: does not reproduce: diverges at event ${decision!.seq}, round ${decision!.roundId}: decision.action was "${other}", now "${decision!.action}" ` +
        `(the recording itself does not verify: entry ${decision!.seq}: entry ${decision!.seq} (DecisionMade) does not verify: its content was changed, or it does not follow entry ${decision!.seq - 1} (reordered))`
      ])
      const divergedJson = yield* swarm(["replay", document.run, "--json"], { store: yield* store })
      expect(divergedJson.code).toBe(1)
      expect(Schema.decodeUnknownSync(ReplayJson)(JSON.parse(divergedJson.stdout))).toEqual({
        ok: false,
        run: document.run,
        divergence: {
          seq: decision!.seq,
          round: decision!.roundId,
          agent: null,
          field: "decision.action",
          expected: `"${other}"`,
          actual: `"${decision!.action}"`,
          tampered: `entry ${decision!.seq}: entry ${decision!.seq} (DecisionMade) does not verify: ` +
            `its content was changed, or it does not follow entry ${decision!.seq - 1} (reordered)`
        }
      })
      expect(lines(divergedJson.stderr).slice(1)).toEqual(lines(diverged.stderr).slice(1))
    }))

  it.effect("replay on a terminal: a bar on stderr (events of the recording's, bars, date, rate), taken down before the report; none with --json or piped", () =>
    Effect.gen(function*() {
      const { document } = yield* backtest(smaNamed("Replayed on a terminal"))
      const piped = yield* swarm(["replay", "Replayed on a terminal#1"], { store: yield* store })
      const terminal = fakeTerminal()
      const drawn = yield* swarm(["replay", "Replayed on a terminal#1"], { store: yield* store, terminal: terminal.stream })
      expect(drawn.code, drawn.stderr).toBe(0)
      // What it prints is the same: the bar is on the terminal alone.
      expect([drawn.stdout, drawn.stderr]).toEqual([piped.stdout, piped.stderr])
      // Its last progress comes with the last bar, before the run's last event (RunCompleted).
      const events = document.counts.events.toLocaleString("en-US")
      expect(terminal.drawn()).toMatch(
        new RegExp(`\\| [\\d,]+/${events} events \\| 1,500/1,500 bars \\| 2023-12-01 \\| [\\d,]+ events/s`)
      )
      expect(terminal.drawn()).toContain("\u001b[?25h") // the cursor is shown again
      // Before its first bar, it says what it does: before, it sat at 0 events and "…" while a big
      // recording was checked and read.
      const checking = terminal.drawn().indexOf("| checking the recording…")
      const reading = terminal.drawn().indexOf("| reading the recording…")
      expect(checking).toBeGreaterThan(-1)
      expect(reading).toBeGreaterThan(checking)
      expect(terminal.drawn().indexOf("| 1,500/1,500 bars | 2023-12-01 |")).toBeGreaterThan(reading)

      const quiet = fakeTerminal()
      const json = yield* swarm(["replay", "Replayed on a terminal#1", "--json"], { store: yield* store, terminal: quiet.stream })
      expect(json.code, json.stderr).toBe(0)
      expect(quiet.drawn()).toBe("")
      expect(Schema.decodeUnknownSync(ReplayJson)(JSON.parse(json.stdout))).toMatchObject({ ok: true, checksum: document.checksum })
    }))

  it.effect("replay of a failed run: OK, including its failure, while it reproduces; a changed event: DIVERGED, exit 1", () =>
    Effect.gen(function*() {
      // Every intent is held for an operator, and nobody is attached: the run fails at its first order.
      // (swarm backtest refuses such a run before it starts; the store takes it, as a library caller's.)
      const options = stored(2, 120, { name: "Held" })
      const encoded = Schema.encodeSync(Strategy)(options.strategy)
      const held = Schema.decodeUnknownSync(Strategy)({ ...encoded, risk: { ...encoded.risk, approval: { notionalPctAbove: 5, policy: "pause" } } })
      yield* StoredRun.backtest({ ...options, strategy: held })
      const sql = yield* SqlClient.SqlClient
      const [run] = yield* sql<{ id: string; failure: string }>`select r.id, r.failure from runs r join strategies s on s.id = r.strategy_id
        where s.name = 'Held' and r.status = 'failed'`
      expect(run!.failure).toMatch(/^risk\.approval\.policy: .* no operator is attached/)
      const [counted] = yield* sql<{ events: number }>`select count(*)::int as events from run_events where run_id = ${run!.id}`
      const events = counted!.events
      expect(events).toBeGreaterThan(3)

      const ok = yield* swarm(["replay", "Held#1"], { store: yield* store })
      expect(ok.code, ok.stderr).toBe(0)
      expect(ok.stdout).toMatch(new RegExp(`^OK: run ${run!.id} reproduced, including its failure \\(risk\\.approval\\.policy: .*\\): ${events.toLocaleString("en-US")} events, checksum [0-9a-f]{64}\n$`))
      expect(ok.stdout).toContain(run!.failure)
      const okJson = yield* swarm(["replay", "Held#1", "--json"], { store: yield* store })
      expect(Schema.decodeUnknownSync(ReplayJson)(JSON.parse(okJson.stdout))).toMatchObject({ ok: true, run: run!.id, events, failure: run!.failure })

      // A fill's quantity changed in the recording: the replay compares it and says so.
      const [filled] = yield* sql<{ seq: number; body: string }>`select seq, body from run_events
        where run_id = ${run!.id} and body ~ '"quantity":[0-9]+' order by seq limit 1`
      yield* sql`update run_events set body = ${filled!.body.replace(/"quantity":\d+/, `"quantity":999`)} where run_id = ${run!.id} and seq = ${filled!.seq}`
      const diverged = yield* swarm(["replay", "Held#1"], { store: yield* store })
      expect(diverged.code).toBe(1)
      expect(diverged.stdout).toMatch(new RegExp(`^DIVERGED: run ${run!.id} does not reproduce\n  event     ${filled!.seq}\n`))
      expect(diverged.stdout).toContain("  expected  999\n")
      expect(diverged.stdout).toContain(`but the recording itself does not verify (swarm audit verify): entry ${filled!.seq}:`)
    }))

  it.effect("replay and resume of a run whose analyst type this build lacks: the run named, not a bad strategy file", () =>
    Effect.gen(function*() {
      const { document } = yield* backtest(smaNamed("Type gone"))
      const died = (yield* backtest(smaNamed("Type gone too"))).document
      yield* crashAfter(died.run, 50)
      // This build's registry without the run's analyst type (removed, or renamed, since it ran).
      const registry = new Map([...analysts].filter(([type]) => type !== "sma_crossover"))
      // A refusal of what was asked (exit 2, as for an unknown run), naming the run, the agent, where in its strategy and why.
      const types = [...registry.keys(), ...llmAnalysts.keys()].join(", ")
      const replayed = yield* swarm(["replay", "Type gone#1"], { store: yield* store, registry })
      expect([replayed.code, replayed.stdout, lines(replayed.stderr).at(-1)]).toEqual([
        2,
        "",
        `swarm: run ${document.run} (Type gone#1): its strategy's agent sma_crossover, agents[0].type: unknown agent type "sma_crossover"; ` +
        `the registered ones are ${types}; this build cannot re-execute it`
      ])
      const replayedJson = yield* swarm(["replay", "Type gone#1", "--json"], { store: yield* store, registry })
      expect([replayedJson.code, replayedJson.stdout, lines(replayedJson.stderr).at(-1)]).toEqual([2, "", lines(replayed.stderr).at(-1)])
      const resumed = yield* swarm(["resume", "Type gone too#1"], { store: yield* store, registry })
      expect(resumed.code).toBe(2)
      expect(lines(resumed.stderr).at(-1)).toMatch(
        new RegExp(`^swarm: run ${died.run} \\(Type gone too#1\\): its strategy's agent sma_crossover, agents\\[0\\]\\.type: .*sma_crossover.*; this build cannot re-execute it$`)
      )
      // Left as it was, for a build that has the type: not marked failed.
      expect((yield* swarm(["runs", "show", died.run, "--json"], { store: yield* store })).stdout).toContain('"status": "running"')
      // Every unfinished run: its line names it once.
      const every = yield* swarm(["resume"], { store: yield* store, registry })
      expect(lines(every.stdout).filter((line) => line.includes(died.run))).toEqual([
        expect.stringMatching(new RegExp(`^not resumed: run ${died.run} \\(Type gone too#1\\): its strategy's agent sma_crossover, agents\\[0\\]\\.type: .*; this build cannot re-execute it$`))
      ])
      // With the type, it goes on (and is no unfinished run for the tests after this one).
      const again = yield* swarm(["resume", "Type gone too#1"], { store: yield* store })
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout).toContain(`completed, checksum ${died.checksum}`)
    }))

  it.effect("a run's strategy snapshot changed in the database: audit verify FAILED at entry 1, replay ALTERED, exit 1", () =>
    Effect.gen(function*() {
      const { document } = yield* backtest(smaNamed("Inputs"))
      const sql = yield* SqlClient.SqlClient
      yield* sql`update runs set strategy = jsonb_set(strategy, '{execution,slippageBps}', '50') where id = ${document.run}`
      const reason = "the run's strategy snapshot is not version 1 as its strategy's chain records it (execution.slippageBps was 2, now 50): " +
        "its recorded inputs were changed after it ran"
      const audit = yield* swarm(["audit", "verify", "Inputs#1"], { store: yield* store })
      expect(audit.code).toBe(1)
      expect(audit.stdout).toBe(`FAILED at entry 1: ${reason}\n`)
      const replay = yield* swarm(["replay", "Inputs#1"], { store: yield* store })
      expect(replay.code).toBe(1)
      expect(replay.stdout).toBe(
        `ALTERED: run ${document.run}'s recording was changed after it ran: ${reason}\n` +
          "  swarm audit verify fails at entry 1; the run was not re-executed\n"
      )
      expect(lines(replay.stderr).slice(1)).toEqual([
        `swarm: run ${document.run}: the recording was altered after the run: ${reason} (swarm audit verify fails at entry 1)`
      ])
      const json = yield* swarm(["replay", "Inputs#1", "--json"], { store: yield* store })
      expect(Schema.decodeUnknownSync(ReplayJson)(JSON.parse(json.stdout))).toEqual({ ok: false, run: document.run, altered: { position: 1, reason } })
    }))

  it.effect("runs compare: metrics side by side with differences, and the first differing decision", () =>
    Effect.gen(function*() {
      const a = yield* backtest(smaNamed("Compared"))
      const b = yield* backtest(six)
      const r = yield* swarm(["runs", "compare", "Compared#1", b.document.ref!], { store: yield* store })
      expect(r.code).toBe(0)
      const rows = lines(r.stdout)
      expect(rows[1]).toMatch(new RegExp(`│ +│ +a: Compared#1 │ +b: ${b.document.ref} │ +b − a │`))
      expect(r.stdout).toMatch(/│ total return +│ +26\.09% │ +\d+\.\d\d% │ +[+−]\d+\.\d\d pp │/)
      expect(r.stdout).toMatch(/│ trades +│ +27 │ +\d+ │ +([+−]\d+|=) │/)
      expect(r.stdout).toMatch(/│ checksum +│ +[0-9a-f]{12}… │ +[0-9a-f]{12}… │ +differ │/)

      // The first difference, worked out independently from every decision row of both runs.
      const expected = yield* expectedDifference(a.document.run, b.document.run)
      expect(expected).toBeDefined()
      const [ts, symbol] = expected!.split(" ")
      const day = new Date(Number(ts)).toISOString().slice(0, 10)
      expect(r.stdout).toMatch(new RegExp(`first differing decision: ${day} ${symbol}, after \\d+ alike\\n  a  .+\\n  b  .+\\n$`))

      const json = yield* swarm(["runs", "compare", a.document.run, b.document.run, "--json"], { store: yield* store })
      const compared = Schema.decodeUnknownSync(CompareJson)(JSON.parse(json.stdout))
      expect(compared.a.id).toBe(a.document.run)
      expect(compared.decisions.sameEventDetail).toBe(true)
      expect(compared.decisions.firstDifference).toMatchObject({ ts: Number(ts), symbol })
      expect(compared.difference["tradeCount"]).toBe(b.document.metrics.tradeCount - 27)
      expect(typeof compared.difference["finalEquity"]).toBe("string") // money, as a decimal

      // The same strategy twice decides the same throughout.
      const again = yield* backtest(smaNamed("Compared"))
      const same = yield* swarm(["runs", "compare", "Compared#1", again.document.ref!], { store: yield* store })
      expect(same.stdout).toContain("decisions: the same throughout\n")
      expect(same.stdout).toMatch(/│ total return +│ +26\.09% │ +26\.09% │ += │/)
    }))

  it.effect("runs compare: a run that ended earlier, or has not got as far yet, is said so, not a differing decision", () =>
    Effect.gen(function*() {
      const full = yield* backtest(smaNamed("Lengths"))
      const short = yield* backtest(smaNamed("Lengths"), "--to", "2022-06-30")
      const ended = yield* swarm(["runs", "compare", full.document.ref!, short.document.ref!], { store: yield* store })
      expect(ended.stdout).toMatch(/\ndecisions: the same until b \(Lengths#2\) ended \([\d,]+ alike\); a \(Lengths#1\) decided on from \d{4}-\d\d-\d\d [A-Z]+\n$/)
      const json = yield* swarm(["runs", "compare", full.document.ref!, short.document.ref!, "--json"], { store: yield* store })
      expect(Schema.decodeUnknownSync(CompareJson)(JSON.parse(json.stdout)).decisions.firstDifference).toMatchObject({ b: null, ended: "b" })

      // A run still going (a process died with it, here): where it has got to is no difference either.
      const going = yield* backtest(smaNamed("Lengths"))
      const sql = yield* SqlClient.SqlClient
      const seqs = yield* Effect.orDie(sql<{ seq: number }>`select seq from decisions where run_id = ${going.document.run} order by seq`)
      yield* crashAfter(going.document.run, Number(seqs[Math.floor(seqs.length / 2)]!.seq))
      const running = yield* swarm(["runs", "compare", going.document.ref!, full.document.ref!], { store: yield* store })
      expect(running.stdout).toMatch(/\ndecisions: the same so far \([\d,]+ alike\); a \(Lengths#3\) has no decision yet from \d{4}-\d\d-\d\d [A-Z]+ on: it is still running\n$/)
      // Finished, so that no later test finds it unfinished.
      const resumed = yield* swarm(["resume", going.document.run], { store: yield* store })
      expect(resumed.code).toBe(0)

      // Out of decisions but not short: a run that got to the other's last decision and decided
      // nothing there (only target changes are kept) differs there; it did not end earlier. Its
      // side says what is known: no decision recorded — a hold, or a round that detail does not keep.
      const last = yield* Effect.orDie(sql<{ roundId: string }>`select round_id from decisions where run_id = ${going.document.run} order by seq desc limit 1`)
      yield* Effect.orDie(sql`delete from decisions where run_id = ${going.document.run} and round_id = ${last[0]!.roundId}`)
      const differs = yield* swarm(["runs", "compare", full.document.ref!, going.document.ref!], { store: yield* store })
      expect(differs.stdout).toMatch(/\nfirst differing decision: \d{4}-\d\d-\d\d [A-Z]+, after [\d,]+ alike\n  a  \S+.*\n  b  no decision recorded: a hold, or a round not recorded at this event detail \(decisions: only decisions that changed a target are kept\)\n$/)
      const differsJson = yield* swarm(["runs", "compare", full.document.ref!, going.document.ref!, "--json"], { store: yield* store })
      expect(Schema.decodeUnknownSync(CompareJson)(JSON.parse(differsJson.stdout)).decisions.firstDifference).toMatchObject({ b: null, ended: null })
    }))

  it.effect("Compare.firstDecisionDifference: the same answer whatever the page size", () =>
    Effect.gen(function*() {
      // Three months of every round's decision: a few hundred rows a run, pages of one row and up.
      const window = ["--events", "rounds", "--to", "2022-03-31"]
      const a = yield* backtest(smaNamed("Paged"), ...window)
      const b = yield* backtest(smaNamed("Paged other"), ...window, "--seed", "3")
      const c = yield* backtest(six, ...window)
      for (const [x, y] of [[a, b], [a, c], [c, a]] as const) {
        const answers = yield* Effect.forEach(
          [1, 2, 3, 7, 64, Compare.PAGE],
          (pageSize) => Compare.firstDecisionDifference(x.document.run as RunId, y.document.run as RunId, { pageSize })
        )
        for (const answer of answers) expect(answer).toEqual(answers.at(-1))
      }
      // Runs of one strategy with rounds detail: every round's decision, all alike.
      const same = yield* Compare.firstDecisionDifference(a.document.run as RunId, b.document.run as RunId, { pageSize: 5 })
      expect(same).toEqual(Option.none())
      const differ = yield* Compare.firstDecisionDifference(a.document.run as RunId, c.document.run as RunId, { pageSize: 5 })
      const expected = yield* expectedDifference(a.document.run, c.document.run)
      expect(Option.map(differ, (d) => `${String(d.ts).padStart(15, "0")} ${d.symbol}`)).toEqual(Option.some(expected))
      expect(Option.getOrThrow(differ).matched).toBeGreaterThan(0)

      // Runs that kept different details: said, since their decision rows are not alike.
      const mixed = yield* swarm(["runs", "compare", "Paged#1", "Compared#1"], { store: yield* store })
      expect(mixed.stdout).toContain("note: a recorded rounds, b decisions: ")
    }))

  it.effect("resume: a run whose process died goes on from its last committed event and ends as it would have", () =>
    Effect.gen(function*() {
      const nothing = yield* swarm(["resume"], { store: yield* store })
      expect([nothing.code, nothing.stdout]).toEqual([0, "nothing to resume: no run is unfinished\n"])

      const { document } = yield* backtest(smaNamed("Resumed"))
      const done = yield* swarm(["resume", "Resumed#1"], { store: yield* store })
      expect(done.code).toBe(2)
      expect(lines(done.stderr).slice(1)).toEqual([`swarm: run ${document.run}: cannot be resumed: it is completed`])

      yield* crashAfter(document.run, 100)
      const listed = yield* swarm(["runs", "list", "--status", "running"], { store: yield* store })
      expect(listed.stdout).toMatch(new RegExp(`│ Resumed#1 │ ${document.run} │ running │ backtest │ — +│ +— │ +— │ +— │ +— │`))
      const unfinished = yield* swarm(["runs", "show", "Resumed#1"], { store: yield* store })
      for (
        const text of ["status    running\n", "period    —\n", "metrics: none yet (the run has not completed)", "checksum  —\n", "chain     not closed (the run has not ended)"]
      ) expect(unfinished.stdout).toContain(text)
      // Its recording reproduces as far as it goes: no divergence where it was cut off.
      const sql = yield* SqlClient.SqlClient
      const bodies = yield* sql<{ body: string }>`select body from run_events where run_id = ${document.run} order by seq`
      const prefix = createHash("sha256").update(bodies.map((row) => `${row.body}\n`).join("")).digest("hex")
      const cutOff = yield* swarm(["replay", "Resumed#1"], { store: yield* store })
      expect(cutOff.code, cutOff.stderr).toBe(0)
      expect(cutOff.stdout).toBe(
        `OK: run ${document.run} reproduced the 100 events recorded, checksum ${prefix}: the run is unfinished ` +
          "(marked running, it never finished: its process died — swarm resume goes on with it — or it is still going)\n"
      )
      const cutOffJson = yield* swarm(["replay", "Resumed#1", "--json"], { store: yield* store })
      expect(Schema.decodeUnknownSync(ReplayJson)(JSON.parse(cutOffJson.stdout))).toEqual({
        ok: true,
        run: document.run,
        events: 100,
        checksum: prefix,
        status: "running"
      })
      const resumed = yield* swarm(["resume"], { store: yield* store })
      expect(resumed.code, resumed.stderr).toBe(0)
      expect(resumed.stdout).toBe(
        `resumed run ${document.run} (Resumed#1): 100 events checked against the recording, ${
          (document.counts.events - 100).toLocaleString("en-US")
        } recorded after them; completed, checksum ${document.checksum}\n`
      )
      const audit = yield* swarm(["audit", "verify", "Resumed#1"], { store: yield* store })
      expect(audit.stdout).toMatch(new RegExp(`^OK: run ${document.run}: ${document.counts.events} events`))
      const replay = yield* swarm(["replay", "Resumed#1"], { store: yield* store })
      expect(replay.code).toBe(0)
    }))

  it.effect("resume leaves a server's paper run to the server and an operator-paused run paused, and says so", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // A paper run as a server records it (here unpaced: only its recording matters).
      yield* StoredRun.backtest({ ...stored(2, 120, { name: "Left paper" }), mode: "paper", speed: 86_400 })
      const [paperRow] = yield* sql<{ id: string }>`select r.id from runs r join strategies s on s.id = r.strategy_id where s.name = 'Left paper'`
      const paper = { run: paperRow!.id }
      const paused = (yield* backtest(smaNamed("Left paused"))).document
      const died = (yield* backtest(smaNamed("Died here"))).document
      for (const run of [paper.run, paused.run, died.run]) yield* crashAfter(run, 100)
      // As a server left them: a paper run it suspended, and a run an operator had paused.
      yield* sql`update runs set status = 'paused' where id = ${paused.run}`.pipe(Effect.orDie)
      const eventsOf = (run: string) =>
        Effect.map(sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${run}`, (rows) => rows[0]!.n).pipe(Effect.orDie)

      const every = yield* swarm(["resume"], { store: yield* store })
      expect(every.code, every.stderr).toBe(0)
      expect(lines(every.stdout)).toEqual([
        `skipped run ${paper.run} (Left paper#1) (paper): \`swarm serve\` resumes paper runs at their pace when it starts`,
        `skipped run ${paused.run} (Left paused#1) (paused): an operator paused it: \`swarm serve\` takes it back paused when it starts ` +
        `(then \`swarm runs resume "Left paused#1"\`), or \`swarm resume "Left paused#1"\` goes on with it here`,
        `resumed run ${died.run} (Died here#1): 100 events checked against the recording, ${(died.counts.events - 100).toLocaleString("en-US")} recorded after them; ` +
        `completed, checksum ${died.checksum}`
      ])
      // Left as they were: nothing recorded after them, their status untouched.
      expect(yield* eventsOf(paper.run)).toBe(100)
      expect(yield* eventsOf(paused.run)).toBe(100)
      const statuses = yield* sql<{ id: string; status: string }>`select id, status from runs where id in (${paper.run}, ${paused.run})`.pipe(Effect.orDie)
      expect(Object.fromEntries(statuses.map((r) => [r.id, r.status]))).toEqual({ [paper.run]: "running", [paused.run]: "paused" })

      // Its replay says who goes on with it.
      const replayed = yield* swarm(["replay", "Left paper#1"], { store: yield* store })
      expect(replayed.stdout).toContain("its process died — the next swarm serve goes on with it — or it is still going")

      // Named, a paper run is still the server's; a paused one goes on, as asked.
      const named = yield* swarm(["resume", "Left paper#1"], { store: yield* store })
      expect(named.code).toBe(2)
      expect(lines(named.stderr).slice(1)).toEqual([
        `swarm: run ${paper.run}: cannot be resumed: it is a paper run: \`swarm serve\` resumes paper runs at their pace when it starts`
      ])
      expect(yield* eventsOf(paper.run)).toBe(100)
      const asked = yield* swarm(["resume", "Left paused#1"], { store: yield* store })
      expect(asked.code, asked.stderr).toBe(0)
      expect(asked.stdout).toContain(`completed, checksum ${paused.checksum}`)
    }))

  it.effect("resume gives a run with LLM agents the language models a backtest would: the calls after the recording are the model's", () =>
    Effect.gen(function*() {
      // A model that counts its calls (answering as the offline analyst does).
      const offline = Offline.make("the counting test model")
      let calls = 0
      const model: typeof offline = { ...offline, chat: (request) => Effect.suspend(() => (calls++, offline.chat(request))) }
      const llm = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(model))
      const file = Path.join(tmp, "llm-resumed.json")
      fs.writeFileSync(file, JSON.stringify({ name: "LLM resumed", symbols: ["ACME"], agents: [{ type: "llm_analyst", params: { bars: 10 } }] }))
      // The model's calls are timed: on the real clock, not the test's (which never moves on its own).
      const live = Clock.make()
      const ran = yield* Effect.withClock(swarm(["backtest", "--data", llmData, "--strategy", file, "--json"], { store: yield* store, llm }), live)
      expect(ran.code, ran.stderr).toBe(0)
      expect(ran.stderr).toContain("language model: the counting test model")
      const document = documentOf(ran.stdout)
      const made = calls
      expect(made).toBeGreaterThan(100)
      yield* crashAfter(document.run, 200)
      calls = 0
      // A new process: the same model, an empty answer cache.
      const fresh = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(model))
      const resumed = yield* Effect.withClock(swarm(["resume", "LLM resumed#1"], { store: yield* store, llm: fresh }), live)
      expect(resumed.code, resumed.stderr).toBe(0)
      expect(resumed.stderr).toContain("language model: the counting test model")
      // Completed (its checksum is its own: a live model's calls are timed, and the times are in the events).
      expect(resumed.stdout).toMatch(new RegExp(`^resumed run ${document.run} \\(LLM resumed#1\\): 200 events checked against the recording, [\\d,]+ recorded after them; completed, checksum `))
      // The calls the recording had were answered from it; the rest went to the model, not the offline analyst.
      expect(calls).toBeGreaterThan(0)
      expect(calls).toBeLessThan(made)
    }))

  it.effect("resume with another LLM backend than the run started with (Ollama then none): said on stderr, not silent", () =>
    Effect.gen(function*() {
      const offline = Offline.make()
      // The model the run starts with, as Ollama (answering as the offline analyst does).
      const ollama: typeof offline = { ...offline, backend: { kind: "ollama", description: "ollama at http://127.0.0.1:1 (the test's)" } }
      const started = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(ollama))
      const file = Path.join(tmp, "llm-switched.json")
      fs.writeFileSync(file, JSON.stringify({ name: "LLM switched", symbols: ["ACME"], agents: [{ type: "llm_analyst", params: { bars: 10 } }] }))
      const live = Clock.make()
      const ran = yield* Effect.withClock(swarm(["backtest", "--data", llmData, "--strategy", file, "--json"], { store: yield* store, llm: started }), live)
      expect(ran.code, ran.stderr).toBe(0)
      const document = documentOf(ran.stdout)
      yield* crashAfter(document.run, 200)
      // The next process has no Ollama: the offline model answers the rest.
      const none = yield* Effect.provide(LlmRuntime.LlmRuntime, LlmRuntime.layerWith(offline))
      const logged: Array<string> = []
      const resumed = yield* Effect.withClock(swarm(["resume", "LLM switched#1"], { store: yield* store, llm: none }), live).pipe(
        Effect.provide(Logger.add(Logger.make(({ message }) => void logged.push(String(message)))))
      )
      expect(resumed.code, resumed.stderr).toBe(0)
      expect(lines(resumed.stderr)).toContain(
        `warning: run ${document.run}: its LLM agents started on ollama, and from here on offline answers them (${offline.backend.description}); each LlmCalled event names the backend that answered it`
      )
      // Once: not also as a log line (which the command line printed on stderr too).
      expect(resumed.stderr.split("started on ollama")).toHaveLength(2)
      expect(logged.filter((m) => m.includes("started on ollama"))).toEqual([])
      // The same backend again: nothing to say.
      yield* crashAfter(document.run, 200)
      const same = yield* Effect.withClock(swarm(["resume", "LLM switched#1"], { store: yield* store, llm: started }), live)
      expect(same.code, same.stderr).toBe(0)
      expect(same.stderr).not.toContain("warning:")
    }), { timeout: 60_000 })

  it.effect("resume of a run whose intents wait for an operator: asked at the terminal; without one, refused before anything changes", () =>
    Effect.gen(function*() {
      const file = Path.join(tmp, "held-resume.json")
      fs.writeFileSync(file, JSON.stringify({
        ...JSON.parse(fs.readFileSync(sma, "utf8")),
        name: "Held resume",
        risk: { approval: { notionalPctAbove: 5, policy: "pause" } }
      }))
      // Every intent answered no at the terminal (the reason left empty).
      const answers = Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? "n" : ""))
      const ran = yield* swarm(["backtest", "--data", data, "--strategy", file, "--json"], { store: yield* store, answers })
      expect(ran.code, ran.stderr).toBe(0)
      const document = documentOf(ran.stdout)
      const sql = yield* SqlClient.SqlClient
      const requests = yield* sql<{ seq: number }>`select seq from run_events where run_id = ${document.run} and tag = 'ApprovalRequested' order by seq`
      expect(requests.length).toBeGreaterThan(2)
      // Its process died before its second intent was asked.
      yield* crashAfter(document.run, requests[1]!.seq - 1)
      const count = () => Effect.map(sql<{ n: number }>`select count(*)::int as n from run_events where run_id = ${document.run}`, (rows) => rows[0]!.n)
      const before = yield* count()

      // No terminal: refused, and the run stays as it was (before, it failed for good at that intent).
      const refused = yield* swarm(["resume", "Held resume#1"], { store: yield* store })
      expect(refused.code).toBe(2)
      expect(lines(refused.stderr).slice(1)).toEqual([
        `swarm: run ${document.run}: cannot be resumed: its strategy's risk.approval.policy is "pause", which waits for an operator ` +
        `to answer each intent that needs approval, and this resume has none (its input is not a terminal): resume it from a terminal, which asks you`
      ])
      expect((yield* sql<{ status: string }>`select status from runs where id = ${document.run}`)[0]!.status).toBe("running")
      expect(yield* count()).toBe(before)
      const every = yield* swarm(["resume"], { store: yield* store })
      expect(every.code).toBe(1)
      expect(every.stdout).toContain(`not resumed: run ${document.run} (Held resume#1): run ${document.run} cannot be resumed: its strategy's risk.approval.policy is "pause"`)
      expect(yield* count()).toBe(before)

      // At a terminal: the recorded answer is given again, the rest asked; the same answers, the same run.
      const resumed = yield* swarm(["resume", "Held resume#1"], { store: yield* store, answers })
      expect(resumed.code, resumed.stderr).toBe(0)
      expect(resumed.asked.filter((q) => q.includes("approve?")).length).toBe(requests.length - 1)
      expect(resumed.stdout).toContain(`completed, checksum ${document.checksum}`)
    }))

  it.effect("an unknown run: one line naming it, exit 2, for every command", () =>
    Effect.gen(function*() {
      for (
        const [argv, missing] of [
          [["runs", "show", "Nothing#1"], "Nothing#1"],
          [["runs", "show", "run_000000000000"], "run_000000000000"],
          [["runs", "compare", "Nothing#1", "Nothing#2"], "Nothing#1"],
          [["audit", "verify", "Nothing#1"], "Nothing#1"],
          [["replay", "Nothing#1"], "Nothing#1"],
          [["resume", "Nothing#1"], "Nothing#1"]
        ] as const
      ) {
        const r = yield* swarm(argv, { store: yield* store })
        expect(r.code, argv.join(" ")).toBe(2)
        expect(r.stdout).toBe("")
        const [database, ...rest] = lines(r.stderr)
        expect(database).toMatch(/^database: /)
        expect(rest).toEqual([`swarm: run: no run "${missing}" in the database (swarm runs list --local shows them)`])
      }
    }))
})

describe("swarm resume's line", () => {
  it("writes its counts with thousands separators, as the other commands' lines do", () => {
    const run = { id: "run_x" as RunId, strategyName: "Big", number: 3 }
    const result = { counts: { events: 80_000 } as StoredRun.Resumed["result"]["counts"], status: "completed" as const, checksum: "abc" }
    expect(describeResumed(run, { recorded: 71_958, result })).toBe(
      "resumed run run_x (Big#3): 71,958 events checked against the recording, 8,042 recorded after them; completed, checksum abc"
    )
  })
})

describe("swarm: bad run references are refused before any database is opened", () => {
  const refs: ReadonlyArray<readonly [string, RegExp]> = [
    ["", /^swarm: <run>: is empty: /],
    ["   ", /^swarm: <run>: is empty: /],
    ["x#notanumber", /^swarm: <run>: "x#notanumber" does not end in a run number: expected <strategy>#<number>/],
    ["x#0", /^swarm: <run>: "x#0" does not end in a run number/],
    ["x#99999999999", /^swarm: <run>: "x#99999999999" does not end in a run number/],
    ["#3", /^swarm: <run>: "#3" has no strategy name before the #/],
    ["a\u0000b", /^swarm: <run>: "a\\u0000b" contains control characters$/],
    ["r".repeat(5000), /^swarm: <run>: is 5000 characters long \("r{24}…"\): a run id or <strategy>#<number> has at most 200$/]
  ]
  it.live("show, audit verify, replay and resume: exit 2 with one line", () =>
    Effect.gen(function*() {
      const before = openAttempts()
      for (const [ref, line] of refs) {
        for (const argv of [["runs", "show", ref], ["audit", "verify", ref], ["replay", ref], ["resume", ref]]) {
          const r = yield* swarm(argv)
          expect(r.code, JSON.stringify(argv)).toBe(2)
          expect(r.stdout).toBe("")
          expect(lines(r.stderr)).toEqual([expect.stringMatching(line)])
        }
      }
      const compare = yield* swarm(["runs", "compare", "ok#1", "x#y"])
      expect([compare.code, lines(compare.stderr)]).toEqual([2, [expect.stringMatching(/^swarm: <b>: "x#y" does not end in a run number/)]])
      expect(openAttempts()).toBe(before)
    }))

  it.live("runs list: a bad --limit, --status or --strategy", () =>
    Effect.gen(function*() {
      const limit = yield* swarm(["runs", "list", "--limit", "0"])
      expect([limit.code, lines(limit.stderr)]).toEqual([2, ["swarm: --limit: expected 1 to 1000, got 0", "swarm: try 'swarm runs list --help'"]])
      const status = yield* swarm(["runs", "list", "--status", "done"])
      expect(lines(status.stderr)[0]).toBe("swarm: --status: expected one of running, paused, completed, failed, stopped, got \"done\"")
      const strategy = yield* swarm(["runs", "list", "--strategy", "x".repeat(300)])
      expect([strategy.code, lines(strategy.stderr)[0]]).toEqual([2, expect.stringMatching(/^swarm: --strategy: "x{24}…" cannot be a strategy name/)])
      const missing = yield* swarm(["runs", "show"])
      expect(lines(missing.stderr)).toEqual(["swarm: <run>: is required", "swarm: try 'swarm runs show --help'"])
      const unknown = yield* swarm(["runs", "frob"])
      expect([unknown.code, lines(unknown.stderr)[0]]).toEqual([2, "swarm: frob: unknown command, use one of 'list', 'show', 'compare', 'start', 'stop', 'pause', 'resume', 'trading', 'watch', 'events'"])
    }))
})

describe("swarm: the database", () => {
  it.live("--no-store opens no database; without it, a database that cannot be opened is one line, exit 3", () =>
    Effect.gen(function*() {
      const before = openAttempts()
      const plain = yield* swarm(["backtest", "--no-store", "--data", data, "--strategy", sma, "--json"], { store: noDatabase })
      expect(plain.code).toBe(0)
      expect(plain.stderr).toBe("")
      expect(documentOf(plain.stdout).ref).toBeUndefined()
      expect(openAttempts()).toBe(before)

      const stored = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json"], { store: noDatabase })
      expect(openAttempts()).toBe(before + 1)
      // 3: not run now, for a script to tell from a failed run (1) and bad input (2).
      expect([stored.code, stored.stdout, lines(stored.stderr)]).toEqual([3, "", ["swarm: database: embedded PGlite at (none): unavailable: this test gives no database"]])
    }))

  it.live("a Postgres server that refuses: the database (password masked) and why", () =>
    Effect.gen(function*() {
      const r = yield* swarm(["runs", "list"], { store: Store.layerWith({ url: "postgres://swarm:secret@127.0.0.1:1/none" }) })
      expect(r.code).toBe(3)
      expect(lines(r.stderr)).toEqual([
        expect.stringMatching(/^swarm: database: Postgres at postgres:\/\/swarm:\*\*\*@127\.0\.0\.1:1\/none: unavailable: .*ECONNREFUSED/)
      ])
      expect(r.stderr).not.toContain("secret")
    }))

  // One embedded data directory for the --log-level tests: every open of it runs the migrations,
  // which log at debug level (`Migrations complete`, even with nothing to run), so a database that
  // is new is not needed for a debug line; a new one costs an initdb (10–15 s under load) each.
  const logged = Path.join(tmp, "logged")

  it.live("--log-level debug: the log lines go to stderr, and stdout holds the JSON document alone", () =>
    Effect.gen(function*() {
      // A new database: opening it migrates, which logs at debug level.
      const r = yield* swarm(["--log-level", "debug", "runs", "list", "--json", "--local"], { store: Store.layerWith({ embedded: { dataDir: logged } }) })
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout), r.stdout).toEqual([])
      expect(r.stderr).toMatch(/level=DEBUG/)
    }), { timeout: 60_000 })

  it.live("--log-level is read wherever it stands on the line, trace included; a level that is none is refused, naming it", () =>
    Effect.gen(function*() {
      // The data directory of the test above (made here if that test did not run): no runs in it yet.
      const store = Store.layerWith({ embedded: { dataDir: logged } })
      // Before the command: `trace` is a level there, not the `trace` command.
      const traced = yield* swarm(["--log-level", "trace", "runs", "list", "--json", "--local"], { store })
      expect(traced.code, traced.stderr).toBe(0)
      expect(JSON.parse(traced.stdout)).toEqual([])
      expect(traced.stderr).toMatch(/level=DEBUG/)
      // After a backtest's --data (@effect/cli called it an unknown argument there), and as `--log-level=`.
      for (const flag of [["--log-level", "debug"], ["--log-level=debug"]] as const) {
        const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, ...flag, "--json"], { store })
        expect(r.code, r.stderr).toBe(0)
        expect(JSON.parse(r.stdout).status).toBe("completed")
        expect(r.stderr).toMatch(/level=DEBUG/)
      }
      const loud = yield* swarm(["runs", "list", "--log-level", "loud"], { store: noDatabase })
      expect([loud.code, lines(loud.stderr)]).toEqual([2, [
        "swarm: --log-level: \"loud\" is not a level; use one of all, trace, debug, info, warning, error, fatal, none"
      ]])
      const none = yield* swarm(["runs", "list", "--log-level"], { store: noDatabase })
      expect([none.code, lines(none.stderr)]).toEqual([2, [
        "swarm: --log-level: no level given; use one of all, trace, debug, info, warning, error, fatal, none"
      ]])
    }), { timeout: 120_000 })

  it.live("an embedded database another process holds: locked, naming the directory and the process", () =>
    Effect.gen(function*() {
      const dir = Path.join(tmp, "locked")
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(Path.join(dir, "swarm.lock"), `${process.ppid}\n`)
      const r = yield* swarm(["audit", "verify", "x#1"], { store: Store.layerWith({ embedded: { dataDir: dir } }) })
      expect(r.code).toBe(3)
      expect(lines(r.stderr)).toEqual([
        expect.stringMatching(
          new RegExp(`^swarm: database: the embedded database at .*locked is in use by process ${process.ppid} \\(probably swarm serve\\), and it serves one process at a time$`)
        ),
        "swarm: stop that process, or ask its server instead (swarm login --server <url> --key <key>, then without --local), or set DATABASE_URL to a Postgres server, which serves several"
      ])
    }))
})
