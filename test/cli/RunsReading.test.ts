/**
 * Reading stored runs from the command line, on a fresh database of its own (embedded PGlite, or a
 * throw-away database on `DATABASE_URL`'s server): whose runs they are (`runs list`'s owner
 * column), what a run that was stopped or failed did, the metric settings Sharpe and Sortino were
 * computed with (`runs compare`, `leaderboard`), and a run's stored events (`runs events`).
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it as test, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import { Strategy } from "../../schemas/Strategy.js"
import { LeaderboardEntry } from "../../schemas/Rpc.js"
import { CompareJson, RunListJson, RunShowJson } from "../../src/cli/RunsView.js"
import { eventLine } from "../../src/cli/RunEventsCommand.js"
import * as Runs from "../../src/store/Runs.js"
import type * as Database from "../../src/store/Database.js"
import { migrate } from "../../src/store/Migrations.js"
import * as StoredRun from "../../src/store/StoredRun.js"
import * as Users from "../../src/store/Users.js"
import { freshDatabase } from "../store/fresh.js"
import { rewindTotals } from "../store/fixtures/checks.js"
import { stored } from "../store/fixtures/workload.js"
import { lines, swarm } from "./harness.js"

const migrated = Layer.effectDiscard(Effect.orDie(migrate)).pipe(Layer.provideMerge(freshDatabase))

/** The test's database as a store layer the command opens without owning it. */
const store = Effect.map(Effect.context<Database.Database>(), (context) => Layer.succeedContext(context))

/** A small stored backtest of a synthetic market: its id and `<strategy>#<number>`. */
const run = (name: string, extra: Partial<StoredRun.Options> = {}) =>
  Effect.map(Effect.orDie(StoredRun.backtest({ ...stored(2, 200, { name }), ...extra })), (r) => ({ id: r.run, ref: `${name}#${r.number}` }))

/** What a stop after event `n` leaves of a completed run: its first `n` events and their rows, then `stopped` (Runs.markEnded). */
const stoppedAfter = (run: string, n: number, reason: string) =>
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
    yield* rewindTotals(run, n)
    yield* Runs.markEnded(run as RunId, "stopped", reason)
  }).pipe(Effect.orDie)

/** A stored backtest's options with its strategy's metric settings changed. */
const withSettings = (name: string, metrics: Record<string, number>) => {
  const options = stored(2, 200, { name })
  return { ...options, strategy: Schema.decodeUnknownSync(Strategy)({ ...Schema.encodeSync(Strategy)(options.strategy), metrics }) }
}

layer(migrated, { timeout: "120 seconds", excludeTestServices: true })("swarm reading stored runs", (it) => {
  it.effect("runs list --local: two users' runs of the same <strategy>#<number> are told apart by an owner column, by name", () =>
    Effect.gen(function*() {
      const bob = yield* Effect.orDie(Users.create("bob"))
      const mine = yield* run("Six analysts")
      const bobs = yield* run("Six analysts", { owner: bob.id })
      expect([mine.ref, bobs.ref]).toEqual(["Six analysts#1", "Six analysts#1"])
      const listed = yield* swarm(["runs", "list", "--local"], { store: yield* store })
      expect(listed.code, listed.stderr).toBe(0)
      const rows = lines(listed.stdout)
      expect(rows[1]).toMatch(/│ run +│ owner +│ id +│ status +│/)
      expect(listed.stdout).toMatch(new RegExp(`│ Six analysts#1 │ bob +│ ${bobs.id} │`))
      expect(listed.stdout).toMatch(new RegExp(`│ Six analysts#1 │ local +│ ${mine.id} │`))
      // One owner's runs only: no column, as a server's list of one user's runs.
      const one = yield* swarm(["runs", "list", "--local", "--limit", "1"], { store: yield* store })
      expect(lines(one.stdout)[1]).toMatch(/│ run +│ id +│ status +│/)
      // --json names the owner too: their id, and their name.
      const json = JSON.parse((yield* swarm(["runs", "list", "--local", "--json"], { store: yield* store })).stdout) as Array<
        { id: string; owner: string; ownerName?: string }
      >
      expect(json.find((r) => r.id === bobs.id)).toMatchObject({ owner: bob.id, ownerName: "bob" })
      expect(json.find((r) => r.id === mine.id)).toMatchObject({ owner: "local", ownerName: "local" })
    }))

  it.effect("runs list --local and runs show --local: a live run a breaker or an operator halted says so beside its status", () =>
    Effect.gen(function*() {
      const live = yield* run("Halted live")
      // As a live run's row is while it goes on, its recorder having committed a halt (RunRecorder).
      const sql = yield* SqlClient.SqlClient
      yield* Effect.orDie(sql`update runs set status = 'running', finished_at = null, trading_state = 'halted' where id = ${live.id}`)
      const listed = yield* swarm(["runs", "list", "--local", "--strategy", "Halted live"], { store: yield* store })
      expect(listed.code, listed.stderr).toBe(0)
      expect(listed.stdout).toMatch(new RegExp(`│ ${live.id} │ running, halted +│`))
      const shown = yield* swarm(["runs", "show", live.id, "--local"], { store: yield* store })
      expect(shown.stdout).toMatch(/\ntrading +halted\n/)
    }))

  it.effect("runs compare: the metric settings are a row, and runs computed with different ones are said not to be on the same basis", () =>
    Effect.gen(function*() {
      const plain = yield* run("Basis zero")
      const rf = Effect.map(Effect.orDie(StoredRun.backtest(withSettings("Basis two", { riskFreeRate: 0.02 }))), (r) => ({ id: r.run, ref: `Basis two#${r.number}` }))
      const two = yield* rf
      const r = yield* swarm(["runs", "compare", plain.ref, two.ref], { store: yield* store })
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/│ metric settings +│ +risk-free 0% a year, 252 periods a year │ +risk-free 2% a year, 252 periods a year │ +not the same basis │/)
      // The figures the risk-free rate changes are marked; volatility (the periods only) is not.
      expect(r.stdout).toMatch(/│ Sharpe \* +│/)
      expect(r.stdout).toMatch(/│ Sortino \* +│/)
      expect(r.stdout).toMatch(/│ volatility +│/)
      expect(r.stdout).toContain(
        "note: Sharpe and Sortino (marked *) are not on the same basis: a's are computed with risk-free 0% a year, 252 periods a year, " +
          "b's with risk-free 2% a year, 252 periods a year"
      )
      const json = Schema.decodeUnknownSync(CompareJson)(JSON.parse((yield* swarm(["runs", "compare", plain.ref, two.ref, "--json"], { store: yield* store })).stdout))
      expect(json.sameMetricSettings).toBe(false)

      // Alike settings: the row says so, and no note.
      const again = yield* run("Basis zero")
      const alike = yield* swarm(["runs", "compare", plain.ref, again.ref], { store: yield* store })
      expect(alike.stdout).toMatch(/│ metric settings +│ +risk-free 0% a year, 252 periods a year │ +risk-free 0% a year, 252 periods a year │ += │/)
      expect(alike.stdout).not.toContain("not on the same basis")
      expect(alike.stdout).toMatch(/│ Sharpe +│/)
      expect(Schema.decodeUnknownSync(CompareJson)(JSON.parse((yield* swarm(["runs", "compare", plain.ref, again.ref, "--json"], { store: yield* store })).stdout)).sameMetricSettings).toBe(true)
    }))

  it.effect("leaderboard --metric sharpe | sortino: a note when the ranked runs' settings differ, each entry's settings in --json; none for a metric that does not depend on them", () =>
    Effect.gen(function*() {
      yield* Effect.orDie(StoredRun.backtest(withSettings("Board rf", { riskFreeRate: 0.02 })))
      yield* Effect.orDie(StoredRun.backtest(withSettings("Board 365", { periodsPerYear: 365 })))
      const note = (text: string) => {
        expect(text).toMatch(/^note: these sharpe figures are not on the same basis: .+ \(the "metricsConfig" of each entry in --json\)$/m)
        expect(text).toMatch(/[:;] \d+ with risk-free 2% a year, 252 periods a year[;( ]/)
        expect(text).toMatch(/[:;] \d+ with risk-free 0% a year, 365 periods a year[;( ]/)
      }
      const board = yield* swarm(["leaderboard", "--local", "--metric", "sharpe", "--limit", "1000"], { store: yield* store })
      expect(board.code, board.stderr).toBe(0)
      note(board.stdout)
      const sortino = yield* swarm(["leaderboard", "--local", "--metric", "sortino", "--limit", "1000"], { store: yield* store })
      expect(sortino.stdout).toContain("note: these sortino figures are not on the same basis")
      const json = yield* swarm(["leaderboard", "--local", "--metric", "sharpe", "--limit", "1000", "--json"], { store: yield* store })
      const entries = Schema.decodeUnknownSync(Schema.Array(LeaderboardEntry))(JSON.parse(json.stdout))
      expect(entries.find((e) => e.strategy === "Board rf")?.metricsConfig).toEqual({ periodsPerYear: 252, riskFreeRate: 0.02 })
      expect(entries.find((e) => e.strategy === "Board 365")?.metricsConfig).toEqual({ periodsPerYear: 365, riskFreeRate: 0 })
      // The array stays the document; the note is on stderr beside it.
      note(json.stderr)
      // Total return does not depend on the settings: nothing to say.
      const returns = yield* swarm(["leaderboard", "--local", "--limit", "1000"], { store: yield* store })
      expect(returns.stdout).not.toContain("not on the same basis")
    }))

  it.effect("runs events: a stored run's events without a server, one line each or ndjson; --type, --since; bad input is one line, exit 2", () =>
    Effect.gen(function*() {
      const { id, ref } = yield* run("Events read")
      const stored = yield* Effect.orDie(Runs.events(id, 0, 1_000_000))
      const decisions = stored.filter((e) => e.tag === "DecisionMade")
      expect(decisions.length).toBeGreaterThan(0)

      // --json: the stored lines, byte for byte, of the types asked for.
      const json = yield* swarm(["runs", "events", ref, "--type", "DecisionMade", "--type", "OrderFilled", "--json", "--local"], { store: yield* store })
      expect(json.code, json.stderr).toBe(0)
      expect(json.stdout).toBe(stored.filter((e) => e.tag === "DecisionMade" || e.tag === "OrderFilled").map((e) => `${e.body}\n`).join(""))

      // A readable line each: every event, from the first, by id as by reference.
      const all = yield* swarm(["runs", "events", id], { store: yield* store })
      expect(all.code, all.stderr).toBe(0)
      const rows = lines(all.stdout)
      expect(rows).toHaveLength(stored.length)
      // The strategy by its name, as runs list and runs show name it, not by its id.
      expect(rows[0]).toMatch(/^#1 \d{4}-\d\d-\d\d started: backtest run of Events read v1, seed \d+, /)
      expect(rows.filter((l) => / decision S\d (buy|sell|hold|close|long|short|flat)/.test(l)).length).toBeGreaterThan(0)
      expect(rows.some((l) => / portfolio equity /.test(l))).toBe(true)
      // Every event a line of its own words: none a bare type name (before: OrderPlaced, AgentLifecycle).
      expect(rows.filter((l) => /^#\d+ \d{4}-\d\d-\d\d \w+$/.test(l))).toEqual([])
      expect(rows.some((l) => /^#\d+ \S+ order placed S\d (buy|sell) [\d.,]+ \(market, fills at the (next open|same close)\), round S\d@\d{4}-\d\d-\d\d( \S+Z)?$/.test(l))).toBe(true)
      expect(rows.some((l) => /^#\d+ \S+ agent \/user\/\S+ started$/.test(l))).toBe(true)

      // --since n: only the events after n.
      const since = Number(decisions[0]!.seq)
      const after = yield* swarm(["runs", "events", ref, "--since", String(since), "--json"], { store: yield* store })
      expect(lines(after.stdout).map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual(stored.filter((e) => Number(e.seq) > since).map((e) => Number(e.seq)))

      // Bad input: one line naming the flag (and where help is), exit 2.
      const unknown = yield* swarm(["runs", "events", ref, "--type", "Decision"], { store: yield* store })
      expect(unknown.code).toBe(2)
      expect(lines(unknown.stderr)).toEqual([
        expect.stringMatching(/^swarm: --type: expected an event type \(RunStarted, .*ReasoningRecorded.*\), got "Decision"$/),
        "swarm: try 'swarm runs events --help'"
      ])
      const negative = yield* swarm(["runs", "events", ref, "--since", "-1"], { store: yield* store })
      expect([negative.code, lines(negative.stderr)]).toEqual([2, ["swarm: --since: expected an event number, 0 or more, got -1", "swarm: try 'swarm runs events --help'"]])
      const none = yield* swarm(["runs", "events", "Nothing#1"], { store: yield* store })
      expect(none.code).toBe(2)
    }))

  it.effect("runs show and list of a stopped run: its metrics up to where it stopped, labelled so, not \"none yet\"; its owner by name", () =>
    Effect.gen(function*() {
      const carol = yield* Effect.orDie(Users.create("carol"))
      const { id, ref } = yield* run("Stopped paper", { owner: carol.id })
      const sql = yield* SqlClient.SqlClient
      const trades = yield* Effect.orDie(sql<{ seq: number }>`select seq from trades where run_id = ${id} order by seq`)
      expect(trades.length).toBeGreaterThan(2)
      yield* stoppedAfter(id, Number(trades[1]!.seq), "stopped by carol")
      const shown = yield* swarm(["runs", "show", ref, "--local"], { store: yield* store })
      expect(shown.code, shown.stderr).toBe(0)
      expect(shown.stdout).toContain(`owner carol\n`)
      expect(shown.stdout).not.toContain("none yet")
      expect(shown.stdout).toMatch(
        /\nmetrics: up to where it stopped — the run was stopped before it completed; its bars are marked up to \d{4}-\d\d-\d\d.* \(its equity at every bar's close rebuilt from its data and fills\)\n/
      )
      // The figures stop at the last bar marked for certain: a trade closed after it is not among them.
      expect(shown.stdout).toMatch(/│ total return +│ [+-]\d+\.\d\d% \(100,000\.00 → [\d,.]+\) +│/)
      expect(shown.stdout).toMatch(/│ trades +│ [12] +│/)

      const json = Schema.decodeUnknownSync(RunShowJson)(JSON.parse((yield* swarm(["runs", "show", ref, "--json"], { store: yield* store })).stdout))
      expect(json.metrics).toBeNull()
      expect(json.owner).toBe(carol.id)
      expect(json.ownerName).toBe("carol")
      expect(json.upToStop).toMatchObject({ through: expect.any(Number), metrics: { initialCash: expect.anything() } })

      // runs list: the figures up to where it stopped, marked and said so.
      const listed = yield* swarm(["runs", "list", "--local", "--strategy", "Stopped paper"], { store: yield* store })
      expect(listed.code, listed.stderr).toBe(0)
      expect(listed.stdout).toMatch(new RegExp(`│ Stopped paper#1 │ ${id} │ stopped │ backtest │ — +│ +[+-]\\d+\\.\\d\\d%\\* │ +-?\\d+\\.\\d\\d\\* │ +\\d+\\.\\d\\d%\\* │ +[12]\\* │`))
      expect(listed.stdout).toContain("* up to where the run stopped or failed: rebuilt from its data and fills (swarm runs show has them all)\n")
      // --json: the same figures, marked as up to where it stopped (`upToStop`, as runs show --json has them), its own metrics still null.
      const listedJson = Schema.decodeUnknownSync(Schema.Array(RunListJson))(
        JSON.parse((yield* swarm(["runs", "list", "--local", "--strategy", "Stopped paper", "--json"], { store: yield* store })).stdout)
      )
      expect(listedJson).toHaveLength(1)
      expect(listedJson[0]!.metrics).toBeNull()
      expect(listedJson[0]!.upToStop).toEqual(json.upToStop)

      // Made once, by the first reader, and kept in the run's row: a stopped run never changes again,
      // and rebuilding them reads its whole feed (a list polled by a dashboard did it every time).
      const keptText = () => Effect.map(Effect.orDie(sql<{ kept: string | null }>`select up_to_stop::text as kept from runs where id = ${id}`), (rows) => rows[0]!.kept)
      expect(yield* keptText()).not.toBeNull()
      // Its data changed since: the figures kept are read, not rebuilt from the data as it is now.
      yield* Effect.orDie(sql`update runs set data_fingerprint = 'changed' where id = ${id}`)
      const listedAgain = Schema.decodeUnknownSync(Schema.Array(RunListJson))(
        JSON.parse((yield* swarm(["runs", "list", "--local", "--strategy", "Stopped paper", "--json"], { store: yield* store })).stdout)
      )
      expect(listedAgain[0]!.upToStop).toEqual(json.upToStop)
      const shownAgain = Schema.decodeUnknownSync(RunShowJson)(JSON.parse((yield* swarm(["runs", "show", ref, "--json"], { store: yield* store })).stdout))
      expect(shownAgain.upToStop).toEqual(json.upToStop)

      // Kept at another last event than the run's now (a stopped run resumed by name records on,
      // still stopped): not its figures any more, made again — here from its data as it is now.
      yield* Effect.orDie(sql`update runs set up_to_stop = jsonb_set(up_to_stop, '{events}', '1') where id = ${id}`)
      const resumedSince = JSON.parse((yield* swarm(["runs", "list", "--local", "--strategy", "Stopped paper", "--json"], { store: yield* store })).stdout) as Array<
        { upToStop?: unknown }
      >
      expect(resumedSince[0]!.upToStop).toEqual({ unavailable: expect.any(String), trades: 2 })

      // Its data gone before any reader made them: no figure of another curve, and no "none yet" either.
      yield* Effect.orDie(sql`update runs set up_to_stop = null where id = ${id}`)
      const gone = yield* swarm(["runs", "show", ref, "--local"], { store: yield* store })
      expect(gone.code, gone.stderr).toBe(0)
      expect(gone.stdout).toMatch(/\nmetrics: none: the run was stopped before it completed \(its figures up to there cannot be made: .+; 2 trades closed\)\n/)
      // runs list: its closed trades, counted; no other figure.
      const listedGone = yield* swarm(["runs", "list", "--local", "--strategy", "Stopped paper"], { store: yield* store })
      expect(listedGone.stdout).toMatch(new RegExp(`│ Stopped paper#1 │ ${id} │ stopped │ backtest │ — +│ +— │ +— │ +— │ +2 │`))
      const goneJson = JSON.parse((yield* swarm(["runs", "list", "--local", "--strategy", "Stopped paper", "--json"], { store: yield* store })).stdout) as Array<
        { upToStop?: unknown }
      >
      expect(goneJson[0]!.upToStop).toEqual({ unavailable: expect.any(String), trades: 2 })
      // Why there are none is not kept: it may pass (the data put back).
      expect(yield* keptText()).toBeNull()
      // A completed run has none.
      expect(JSON.parse((yield* swarm(["runs", "list", "--local", "--limit", "1000", "--json"], { store: yield* store })).stdout).filter((r: { status: string; upToStop?: unknown }) =>
        r.status === "completed" && r.upToStop !== undefined
      )).toEqual([])
    }))
})

describe("runs events' line of an event", () => {
  test("reasoning on one line, with its agent, role, kind and round", () => {
    const body = JSON.stringify({
      _tag: "ReasoningRecorded",
      run: "run_000000000001",
      seq: 7,
      at: Date.UTC(2024, 0, 3),
      agent: "debate",
      round: "r-12",
      kind: "analysis",
      role: "bull",
      text: "Momentum is up.\n\nVolume confirms it."
    })
    expect(eventLine(7, "ReasoningRecorded", body)).toBe("#7 2024-01-03 reasoning debate (bull) analysis, round r-12: Momentum is up. Volume confirms it.")
    // A round named as the coordinator names them: by symbol and bar time, as chat's explain takes it.
    expect(eventLine(7, "ReasoningRecorded", body.replace('"r-12"', `"AAA@${Date.UTC(2024, 0, 3)}"`)))
      .toBe("#7 2024-01-03 reasoning debate (bull) analysis, round AAA@2024-01-03: Momentum is up. Volume confirms it.")
    const at = Date.UTC(2024, 0, 3)
    const base = { run: "run_000000000001", at }
    const call = {
      agent: "llm-1",
      round: "r-12",
      step: "analysis",
      model: "llama3.2:3b",
      backend: "ollama",
      promptHash: "a".repeat(64),
      tokensIn: 1200,
      tokensOut: 80,
      latencyMillis: 950,
      cache: "miss",
      attempts: 2,
      outcome: "timeout",
      error: "no answer\nwithin 30 s"
    }
    expect(eventLine(9, "LlmCalled", JSON.stringify({ _tag: "LlmCalled", ...base, seq: 9, call }))).toBe(
      "#9 2024-01-03 LLM call llm-1 analysis, round r-12: ollama llama3.2:3b timeout, tokens 1,200 in, 80 out, 950 ms: no answer within 30 s"
    )
    expect(eventLine(10, "LlmCalled", JSON.stringify({ _tag: "LlmCalled", ...base, seq: 10, call: { ...call, cache: "hit", outcome: "ok", error: undefined } })))
      .toBe("#10 2024-01-03 LLM call llm-1 analysis, round r-12: ollama llama3.2:3b answered, from the cache, tokens 1,200 in, 80 out, 950 ms")
    const stopped = { _tag: "AgentLifecycle", ...base, seq: 11, event: { _tag: "ActorStopped", actor: "/user/run/analysts/llm-1", reason: "escalated", at } }
    expect(eventLine(11, "AgentLifecycle", JSON.stringify(stopped))).toBe("#11 2024-01-03 agent /user/run/analysts/llm-1 stopped (escalated)")
    // An event this build does not read is still a line: its number and type.
    expect(eventLine(8, "SomethingNew", JSON.stringify({ _tag: "SomethingNew" }))).toBe("#8 SomethingNew (an event this swarm does not read: --json prints it)")
  })

  test("the run's start names its strategy by name, as runs list and show do (its escapes made visible, as every line's); without the name, by its id", () => {
    const base = { run: "run_000000000001", at: Date.UTC(2024, 0, 3) }
    const started = JSON.stringify({
      _tag: "RunStarted", ...base, seq: 1, strategy: "str_000000000001", strategyVersion: 2, mode: "paper", seed: "7", symbols: ["AAA", "BBB"], dataFingerprint: "f"
    })
    expect(eventLine(1, "RunStarted", started, "SMA crossover")).toBe("#1 2024-01-03 started: paper run of SMA crossover v2, seed 7, AAA BBB")
    expect(eventLine(1, "RunStarted", started, "Evil\u001b[2J\u202e")).toBe("#1 2024-01-03 started: paper run of Evil\\u001b[2J\\u202e v2, seed 7, AAA BBB")
    expect(eventLine(1, "RunStarted", started)).toBe("#1 2024-01-03 started: paper run of str_000000000001 v2, seed 7, AAA BBB")
  })

  test("an order placed names its round by symbol and bar time, as lines print times and chat's explain takes them, not as the raw id (epoch ms)", () => {
    const base = { run: "run_000000000001", at: Date.UTC(2022, 1, 25) }
    const placed = (round: string) =>
      eventLine(5, "OrderPlaced", JSON.stringify({
        _tag: "OrderPlaced", ...base, seq: 5,
        order: { id: "o-1", idempotencyKey: "k-1", round, symbol: "GLOBEX", side: "buy", quantity: 10, type: "market", decidedAt: base.at, fillTiming: "next_open" }
      }))
    expect(placed("GLOBEX@1645747200000")).toBe("#5 2022-02-25 order placed GLOBEX buy 10 (market, fills at the next open), round GLOBEX@2022-02-25")
    // An intraday bar: its time of day too.
    expect(placed(`GLOBEX@${Date.UTC(2022, 1, 25, 14, 30)}`)).toBe("#5 2022-02-25 order placed GLOBEX buy 10 (market, fills at the next open), round GLOBEX@2022-02-25 14:30:00Z")
    // A round not of that form, or at a time no calendar has, is printed as it is (never a crash).
    expect(placed("r-12")).toMatch(/, round r-12$/)
    expect(placed("GLOBEX@9999999999999999")).toMatch(/, round GLOBEX@9999999999999999$/)
    expect(placed("@1645747200000")).toMatch(/, round @1645747200000$/)
  })
})
