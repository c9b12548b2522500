import { afterAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Schema } from "effect"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { AnyModel } from "../../agents/analysts/Model.js"
import { analysts } from "../../agents/registry.js"
import * as Cli from "../../src/cli/Cli.js"
import { OutputError, RunFailed } from "../../src/cli/CliError.js"
import { ResultDocument } from "../../src/cli/ResultDocument.js"
import { DataChanged } from "../../src/market/DataSource.js"
import * as Store from "../../src/store/Store.js"
import { CorruptRecord, DatabaseLocked, DatabaseUnavailable, RunNotFound, StoreError } from "../../src/store/StoreError.js"
import { NotResumable, RunDiverged } from "../../src/store/StoredRun.js"
import { BacktestError } from "../../src/swarm/Backtest.js"
import { StrategyFileError } from "../../src/swarm/StrategyFile.js"
import { fakeTerminal, lines, openAttempts, swarm } from "./harness.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const data = Path.join(root, "data")
const sma = Path.join(root, "examples", "sma-crossover.json")
const six = Path.join(root, "examples", "six-analysts.yaml")

const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-cli-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** A file in this test's temporary directory. */
const file = (name: string, text: string) => {
  const path = Path.join(tmp, name)
  fs.mkdirSync(Path.dirname(path), { recursive: true })
  fs.writeFileSync(path, text)
  return path
}

const smaJson = JSON.parse(fs.readFileSync(sma, "utf8")) as Record<string, unknown>
const strategy = (name: string, changes: Record<string, unknown>) => file(name, JSON.stringify({ ...smaJson, ...changes }))

const documentOf = (stdout: string) => Schema.decodeUnknownSync(ResultDocument)(JSON.parse(stdout))

describe("swarm: flags", () => {
  it.live("without --strategy: the flag is named, exit code 2, nothing on stdout", () =>
    Effect.gen(function*() {
      const r = yield* swarm(["backtest", "--data", data])
      expect(r.code).toBe(2)
      expect(lines(r.stderr)[0]).toBe("swarm: --strategy: is required")
      expect(r.stdout).toBe("")
    }))

  it.live("without --data", () =>
    Effect.gen(function*() {
      const r = yield* swarm(["backtest", "--strategy", sma])
      expect(r.code).toBe(2)
      expect(lines(r.stderr)[0]).toBe("swarm: --data: is required")
    }))

  it.live("a bad --from or --to names the flag and what was wrong", () =>
    Effect.gen(function*() {
      const notADate = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--from", "yesterday"])
      expect(notADate.code).toBe(2)
      expect(lines(notADate.stderr)[0]).toMatch(/^swarm: --from: expected an ISO date or date-time .*got "yesterday"$/)
      const notOnTheCalendar = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--to", "2023-02-29"])
      expect(notOnTheCalendar.code).toBe(2)
      expect(lines(notOnTheCalendar.stderr)[0]).toBe("swarm: --to: \"2023-02-29\" is not a date on the calendar")
      const backwards = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--from", "2023-03-02", "--to", "2023-03-01"])
      expect(backwards.code).toBe(2)
      expect(lines(backwards.stderr)[0]).toMatch(/^swarm: --to: the window ends .* before it starts/)
      expect(notADate.stdout + notOnTheCalendar.stdout + backwards.stdout).toBe("")
    }))

  it.live("a bad --seed, --events or an unknown argument or command", () =>
    Effect.gen(function*() {
      const seed = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--seed", "x1"])
      expect([seed.code, lines(seed.stderr)[0]]).toEqual([2, "swarm: --seed: expected a non-negative integer (at most 16 digits), got \"x1\""])
      const events = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--events", "all"])
      expect([events.code, lines(events.stderr)[0]]).toEqual([2, "swarm: --events: expected decisions or rounds, got \"all\""])
      const extra = yield* swarm(["backtest", "--data", data, "--strategy", sma, "extra"])
      expect([extra.code, lines(extra.stderr)[0]]).toEqual([2, "swarm: extra: unknown argument"])
      const command = yield* swarm(["frobnicate"])
      expect(command.code).toBe(2)
      expect(lines(command.stderr)[0]).toMatch(/^swarm: frobnicate: unknown command/)
    }))

  it.live("serve with a SWARM_CORS_ORIGINS that is not a list of origins: exit code 2, naming it and why, before any database opens", () =>
    Effect.gen(function*() {
      const before = openAttempts()
      const ran = yield* swarm(["serve", "--port", "0"], { environment: { SWARM_CORS_ORIGINS: "https://ops.example.com/dashboard" } })
      expect(ran.code).toBe(2)
      expect(lines(ran.stderr)).toEqual([
        `swarm: SWARM_CORS_ORIGINS: "https://ops.example.com/dashboard" is not an origin as browsers send it: did you mean "https://ops.example.com"?`
      ])
      expect(openAttempts()).toBe(before)
    }))

  it.live("serve with a PORT that is not a port: exit code 2, naming PORT alone", () =>
    Effect.gen(function*() {
      const ran = yield* swarm(["serve"], { environment: { PORT: "abc" } })
      expect([ran.code, lines(ran.stderr)]).toEqual([2, [`swarm: PORT: Expected a network port value but received "abc"`]])
    }))

  it.live("a DATABASE_URL that is not a Postgres URL: exit code 2, naming DATABASE_URL, without the password", () =>
    Effect.gen(function*() {
      for (const [url, why] of [["not a url", "not a URL"], ["mysql://swarm:s3cret@db/swarm", "must start with postgres:// or postgresql://"]] as const) {
        const store = Store.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", url]])))))
        for (const argv of [["serve", "--port", "0"], ["runs", "list", "--local"]]) {
          const ran = yield* swarm(argv, { store })
          expect(ran.code, `${argv[0]} ${url}`).toBe(2)
          expect(lines(ran.stderr)[0]).toMatch(new RegExp(`^swarm: DATABASE_URL: ${why}`))
          expect(ran.stderr).not.toContain("s3cret")
        }
      }
    }))

  it.live("serve with a SWARM_MAX_LIVE_RUNS_PER_USER that is not a number of runs: exit code 2, naming it and why, before any database opens", () =>
    Effect.gen(function*() {
      const before = openAttempts()
      for (const [value, shown] of [["eight", "\"eight\""], ["0", "\"0\""], ["-3", "\"-3\""], ["2.5", "\"2.5\""], ["", "\"\""]] as const) {
        const ran = yield* swarm(["serve", "--port", "0"], { environment: { SWARM_MAX_LIVE_RUNS_PER_USER: value } })
        expect([ran.code, lines(ran.stderr)], value).toEqual([2, [
          `swarm: SWARM_MAX_LIVE_RUNS_PER_USER: must be a whole number of runs, at least 1 (default 8), not ${shown}`
        ]])
      }
      expect(openAttempts()).toBe(before)
    }))

  it.live("serve with a SWARM_TAKEOVER_SECONDS that is not a number of seconds up to an hour: exit code 2, naming it and why, before any database opens", () =>
    Effect.gen(function*() {
      const before = openAttempts()
      for (const [value, shown] of [["ten", "\"ten\""], ["-1", "\"-1\""], ["2.5", "\"2.5\""], ["3601", "\"3601\""], ["", "\"\""]] as const) {
        const ran = yield* swarm(["serve", "--port", "0"], { environment: { SWARM_TAKEOVER_SECONDS: value } })
        expect([ran.code, lines(ran.stderr)], value).toEqual([2, [
          `swarm: SWARM_TAKEOVER_SECONDS: must be a whole number of seconds from 0 (off) to 3600 (default 10), not ${shown}`
        ]])
      }
      expect(openAttempts()).toBe(before)
    }))

  it.live("help: on stdout, without terminal colours, exit code 0", () =>
    Effect.gen(function*() {
      const help = yield* swarm(["backtest", "--help"])
      expect(help.code).toBe(0)
      expect(help.stdout).toContain("--strategy file")
      expect(help.stdout).toContain("--events decisions|rounds")
      expect(help.stdout).toContain("--no-store")
      expect(help.stdout).not.toContain("\u001b[")
      const bare = yield* swarm([])
      expect(bare.code).toBe(0)
      for (const command of ["backtest", "runs", "audit", "replay", "resume"]) expect(bare.stdout).toContain(`- ${command}`)
      const runs = yield* swarm(["runs", "--help"])
      expect(runs.code).toBe(0)
      expect(runs.stdout).toContain("- list [--strategy name]")
    }))
})

describe("swarm backtest: bad input files", () => {
  it.live("a strategy with a bad field: the file and the field are named, exit code 2", () =>
    Effect.gen(function*() {
      const bad = file(
        "bad-weight.yaml",
        "name: bad\nsymbols: [ACME]\nagents:\n  - { type: sma_crossover, weight: 5000 }\nsizing: { mode: percent_of_equity, value: 500 }\n"
      )
      const r = yield* swarm(["backtest", "--data", data, "--strategy", bad, "--json"])
      expect(r.code).toBe(2)
      expect(r.stdout).toBe("")
      const errors = lines(r.stderr)
      expect(errors).toContainEqual(expect.stringMatching(new RegExp(`^swarm: ${bad.replace(/[.\\]/g, "\\$&")}: agents\\[0\\]\\.weight: `)))
      expect(errors.some((line) => line.includes(": sizing.value: "))).toBe(true)
      expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace
    }))

  it.live("an initial cash past 1,000,000,000 is refused before any run, naming the field and why", () =>
    Effect.gen(function*() {
      const huge = strategy("huge-cash.json", { initialCash: "9000000000" })
      const r = yield* swarm(["backtest", "--data", data, "--strategy", huge, "--json"])
      expect(r.code).toBe(2)
      expect(r.stdout).toBe("")
      expect(lines(r.stderr)).toEqual([
        `swarm: ${huge}: initialCash: initial cash must be at most 1000000000: the books hold at most 9007199254.740991 exactly, ` +
        "and need the rest for gains and short sales' proceeds"
      ])
    }))

  it.live("a name with an invisible format character, or not in NFC form, is refused, naming the character and where", () =>
    Effect.gen(function*() {
      const hidden = strategy("hidden-name.json", { name: "sma\u200bcross" })
      const r = yield* swarm(["backtest", "--data", data, "--strategy", hidden, "--json"])
      expect([r.code, r.stdout, lines(r.stderr)]).toEqual([2, "", [
        `swarm: ${hidden}: name: no invisible format characters (U+200B at position 4): the name would look the same as one without it`
      ]])
      const decomposed = strategy("decomposed-name.json", { name: "Cafe\u0301 crossover" })
      const d = yield* swarm(["backtest", "--data", data, "--strategy", decomposed, "--json"])
      expect([d.code, d.stdout, lines(d.stderr)[0]]).toEqual([2, "", expect.stringMatching(
        new RegExp(`^swarm: ${decomposed.replace(/[.\\]/g, "\\$&")}: name: not in Unicode NFC form: `)
      )])
    }))

  it.live("an agent type the registry does not have, or params it refuses, is a field of the strategy file", () =>
    Effect.gen(function*() {
      const unknown = strategy("unknown-agent.json", { agents: [{ type: "crystal_ball" }] })
      const r = yield* swarm(["backtest", "--data", data, "--strategy", unknown])
      expect(r.code).toBe(2)
      expect(lines(r.stderr)[0]).toMatch(new RegExp(`^swarm: .*unknown-agent\\.json: agents\\[0\\]\\.type: `))
      const params = strategy("bad-params.json", { agents: [{ type: "sma_crossover", params: { fast: "ten" } }] })
      const p = yield* swarm(["backtest", "--data", data, "--strategy", params])
      expect(p.code).toBe(2)
      expect(lines(p.stderr)[0]).toContain("bad-params.json: agents[0].params.fast: ")
      // A window no machine could hold was accepted, and the analyst crashed on every bar (exit 0).
      const huge = strategy("huge-window.json", { agents: [{ type: "sma_crossover", params: { fast: 1, slow: 1e12 } }] })
      const h = yield* swarm(["backtest", "--data", data, "--strategy", huge])
      expect(h.code).toBe(2)
      expect(lines(h.stderr)).toEqual([`swarm: ${huge}: agents[0].params.slow: slow must be at most 10000 bars`])
    }))

  it.live("a model whose init throws on its params (a look-back its config does not bound) is a field of the strategy file, exit 2", () =>
    Effect.gen(function*() {
      const base = analysts.get("sma_crossover")!
      const unbounded: AnyModel = {
        ...base,
        type: "unbounded_window",
        config: Schema.Struct({ period: Schema.optionalWith(Schema.Int, { default: () => 20, exact: true }) }),
        init: (config: { readonly period: number }) => ({ ring: new Float64Array(config.period) })
      }
      const registry = new Map([...analysts, ["unbounded_window", unbounded]])
      const file = strategy("unbounded.json", { agents: [{ type: "sma_crossover" }, { type: "unbounded_window", params: { period: 5e9 } }] })
      const r = yield* swarm(["backtest", "--data", data, "--strategy", file], { registry })
      expect([r.code, r.stdout, lines(r.stderr)]).toEqual([2, "", [
        `swarm: ${file}: agents[1].params: unbounded_window cannot set up a symbol's state with these params: Invalid typed array length: 5000000000 (a look-back may be at most 10000 bars)`
      ]])
    }))

  it.live("a model whose horizon throws on its params is a field of the strategy file, exit 2, not an internal error", () =>
    Effect.gen(function*() {
      const base = analysts.get("sma_crossover")!
      const fragile: AnyModel = {
        ...base,
        type: "fragile_horizon",
        horizon: (config: { readonly fast: number }) => {
          if (config.fast === 1) throw new RangeError("a fast average of 1 bar has no horizon")
          return config.fast
        }
      }
      const registry = new Map([...analysts, ["fragile_horizon", fragile]])
      const file = strategy("fragile.json", { agents: [{ type: "sma_crossover" }, { type: "fragile_horizon", params: { fast: 1, slow: 5 } }] })
      const r = yield* swarm(["backtest", "--data", data, "--strategy", file], { registry })
      expect([r.code, r.stdout, lines(r.stderr)]).toEqual([2, "", [
        `swarm: ${file}: agents[1].params: fragile_horizon cannot say its opinions' horizon with these params: a fast average of 1 bar has no horizon`
      ]])
    }))

  it.live("a deeply nested or huge value: exit code 2, one short line, not an internal error", () =>
    Effect.gen(function*() {
      // Written as text: JSON.stringify itself overflows on such a value.
      const deep = file("deep.json", JSON.stringify(smaJson).replace(/}$/, `,"description":${"[".repeat(5000)}${"]".repeat(5000)}}`))
      const r = yield* swarm(["backtest", "--data", data, "--strategy", deep])
      expect(r.code).toBe(2)
      expect(lines(r.stderr)).toEqual([`swarm: ${deep}: description: nests deeper than 64 levels: a strategy is configuration, and never needs that`])
      // An agent's params are checked by the registry: its quoting is clipped as well.
      const long = strategy("long-params.json", { agents: [{ type: "sma_crossover", params: { fast: Array(100_000).fill(1) } }] })
      const p = yield* swarm(["backtest", "--data", data, "--strategy", long])
      expect(p.code).toBe(2)
      expect(lines(p.stderr)).toHaveLength(1)
      expect(lines(p.stderr)[0]).toMatch(/long-params\.json: agents\[0\]\.params\.fast: .*… \(\d+ characters\)$/)
      expect(lines(p.stderr)[0]!.length).toBeLessThan(400)
    }))

  it.live("a strategy file that is not there", () =>
    Effect.gen(function*() {
      const r = yield* swarm(["backtest", "--data", data, "--strategy", Path.join(tmp, "nope.yaml")])
      expect(r.code).toBe(2)
      expect(lines(r.stderr)[0]).toMatch(/^swarm: .*nope\.yaml: cannot read it: /)
    }))

  it.live("a data directory that is not there: the CSV loader's message, exit code 2", () =>
    Effect.gen(function*() {
      const missing = Path.join(tmp, "no-such-dir")
      const r = yield* swarm(["backtest", "--data", missing, "--strategy", sma, "--json"])
      expect(r.code).toBe(2)
      expect(r.stdout).toBe("")
      expect(lines(r.stderr)).toHaveLength(1)
      expect(lines(r.stderr)[0]).toMatch(new RegExp(`^swarm: ${missing.replace(/[.\\]/g, "\\$&")}: .*no such file or directory`))
    }))

  it.live("a bad row names the file, the line and the column", () =>
    Effect.gen(function*() {
      const csv = file("bad-csv/ACME.csv", "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,100\n2024-01-03,1,2,0.5,abc,100\n")
      const r = yield* swarm(["backtest", "--data", Path.dirname(csv), "--strategy", sma])
      expect(r.code).toBe(2)
      expect(lines(r.stderr)[0]).toMatch(/^swarm: .*ACME\.csv:3: column "close":/)
    }))

  it.live("symbols the data lacks, or a window without bars, are refused before the run", () =>
    Effect.gen(function*() {
      const other = strategy("other-symbol.json", { symbols: ["ACME", "HOOLI"] })
      const missing = yield* swarm(["backtest", "--data", data, "--strategy", other])
      expect(missing.code).toBe(2)
      expect(lines(missing.stderr)[0]).toMatch(/^swarm: symbols: no data for HOOLI/)
      const empty = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--from", "2030-01-01"])
      expect(empty.code).toBe(2)
      expect(lines(empty.stderr)[0]).toBe("swarm: --from: the data has no bars of ACME, GLOBEX, INITECH from 2030-01-01T00:00:00.000Z to the end")
    }))
})

describe("swarm backtest: a run", () => {
  it.live("--json prints exactly one document: the run, metrics, trades, positions, counts and checksum", () =>
    Effect.gen(function*() {
      const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json"])
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
      const json = JSON.parse(r.stdout) as Record<string, any>
      expect(Object.keys(json)).toEqual(["run", "strategy", "seed", "status", "tradingState", "period", "metrics", "trades", "positions", "counts", "agentRestarts", "abstentions", "checksum"])
      expect(json).toMatchObject({
        strategy: "SMA crossover",
        seed: "0",
        status: "completed",
        period: { from: "2022-01-03T00:00:00.000Z", to: "2023-12-01T00:00:00.000Z" },
        metrics: { initialCash: "100000", startTs: "2022-01-03T00:00:00.000Z" },
        counts: { bars: 1500, slices: 500 }
      })
      expect(json.checksum).toMatch(/^[0-9a-f]{64}$/)
      expect(json.trades.length).toBe(json.metrics.tradeCount)
      expect(json.trades.length).toBeGreaterThan(0)
      for (const trade of json.trades) {
        expect(Object.keys(trade)).toEqual(["symbol", "side", "quantity", "entry", "exit", "entryPrice", "exitPrice", "pnl", "commission"])
        expect(trade.pnl).toMatch(/^-?\d+(\.\d{1,6})?$/)
        expect(trade.entry <= trade.exit).toBe(true)
      }
      for (const position of json.positions) expect(position.marketValue).toMatch(/^-?\d+(\.\d{1,6})?$/)
      // Decodes back with its schema: times to epoch ms, decimals to exact micros.
      const document = documentOf(r.stdout)
      expect(document.period.from).toBe(Date.UTC(2022, 0, 3))
      expect(document.metrics.initialCash).toBe(100_000_000_000)
      expect(document.trades.reduce((sum, t) => sum + t.pnl, 0)).toBe(document.metrics.grossProfit + document.metrics.grossLoss)
    }))

  it.live("Yahoo's rows without prices are skipped, and stderr says how many of which file", () =>
    Effect.gen(function*() {
      // The sample as Yahoo writes it (an Adj Close column), with two days it has no prices for.
      const yahoo = (name: string, nulls: ReadonlyArray<string>) => {
        const [, ...rows] = fs.readFileSync(Path.join(data, name), "utf8").trimEnd().split("\n")
        const adj = rows.map((row) => {
          const [date, open, high, low, close, volume] = row.split(",")
          return `${date},${open},${high},${low},${close},${close},${volume}`
        })
        adj.splice(10, 0, ...nulls.map((day) => `${day},null,null,null,null,null,null`))
        return file(`yahoo/${name}`, ["Date,Open,High,Low,Close,Adj Close,Volume", ...adj].join("\n") + "\n")
      }
      const acme = yahoo("ACME.csv", ["2022-01-15", "2022-01-16"])
      yahoo("GLOBEX.csv", [])
      yahoo("INITECH.csv", [])
      const r = yield* swarm(["backtest", "--data", Path.dirname(acme), "--strategy", sma, "--json"])
      expect(r.code).toBe(0)
      expect(lines(r.stderr)).toEqual([`data: ${acme}: skipped 2 rows whose every price and volume is null (lines 12, 13)`])
      // The run is the sample's: the same bars, the same trades.
      const plain = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json"])
      expect(documentOf(r.stdout).counts).toEqual(documentOf(plain.stdout).counts)
      expect(documentOf(r.stdout).trades).toEqual(documentOf(plain.stdout).trades)
      // A row only partly null is still bad input, naming the file, the line and the column.
      fs.writeFileSync(acme, fs.readFileSync(acme, "utf8").replace("2022-01-16,null,null,null,null,null,null", "2022-01-16,null,null,null,null,null,5"))
      const partly = yield* swarm(["backtest", "--data", Path.dirname(acme), "--strategy", sma, "--json"])
      expect(partly.code).toBe(2)
      expect(lines(partly.stderr)).toEqual([expect.stringMatching(new RegExp(`^swarm: ${acme.replace(/[.\\]/g, "\\$&")}:13: column "Open": null, but the row has values too`))])
    }))

  it.live("data the strategy does not trade is said on stderr, once, naming it and the strategy's symbols; not in the document", () =>
    Effect.gen(function*() {
      const days = Array.from({ length: 30 }, (_, i) => new Date(Date.UTC(2024, 0, 1 + i)).toISOString().slice(0, 10))
      const row = (d: string, i: number) => `${d},${10 + (i % 5)},${11 + (i % 5)},${9 + (i % 5)},${10.5 + (i % 5)},1000`
      // No symbol column: the file's name is its symbol ("a", not the AAA meant).
      const a = file("untraded/a.csv", ["date,open,high,low,close,volume", ...days.map(row)].join("\n") + "\n")
      file("untraded/b.csv", ["symbol,date,open,high,low,close,volume", ...days.map((d, i) => `AAA,${row(d, i)}`)].join("\n") + "\n")
      const aaa = strategy("untraded.json", { symbols: ["AAA"], agents: [{ type: "sma_crossover", params: { fast: 2, slow: 5 } }] })
      const r = yield* swarm(["backtest", "--data", Path.dirname(a), "--strategy", aaa, "--json"])
      expect(r.code).toBe(0)
      expect(lines(r.stderr)).toEqual(["data: not traded by the strategy (its symbols: AAA): a"])
      expect(documentOf(r.stdout).counts.bars).toBe(30)
      const summary = yield* swarm(["backtest", "--data", Path.dirname(a), "--strategy", aaa])
      expect([summary.code, lines(summary.stderr)]).toEqual([0, ["data: not traded by the strategy (its symbols: AAA): a"]])
      // Many are listed as the errors list symbols: the first ten, then how many more.
      const many = strategy("untraded-many.json", { symbols: ["ACME"] })
      const more = Array.from({ length: 12 }, (_, i) => file(`untraded-many/S${String(i).padStart(2, "0")}.csv`, fs.readFileSync(a, "utf8")))
      const m = yield* swarm(["backtest", "--data", Path.join(data, "ACME.csv"), "--data", Path.dirname(more[0]!), "--strategy", many, "--json"])
      expect([m.code, lines(m.stderr)]).toEqual([0, ["data: not traded by the strategy (its symbols: ACME): S00, S01, S02, S03, S04, S05, S06, S07, S08, S09 and 2 more"]])
    }))

  it.live("an analyst whose look-back is longer than the data is warned of before the run, on stderr and in the document; the run goes on", () =>
    Effect.gen(function*() {
      // 500 bars a symbol; SMA(10,000) never gives an opinion on them.
      const long = strategy("long-look-back.json", {
        agents: [{ type: "sma_crossover", params: { fast: 10, slow: 10_000 } }, { type: "ema_crossover", params: { fast: 10, slow: 50 } }]
      })
      const warning = "sma_crossover needs 10,000 bars of a symbol before its first opinion, and the data has 500 of ACME, GLOBEX, INITECH: " +
        "it will give no opinion on any of its symbols in this run"
      const r = yield* swarm(["backtest", "--data", data, "--strategy", long, "--json", "--no-store"])
      expect(r.code).toBe(0)
      expect(lines(r.stderr)).toEqual([`warning: ${warning}`])
      const document = documentOf(r.stdout)
      expect(document.status).toBe("completed")
      expect(document.warnings).toEqual([warning])
      expect(document.abstentions.find((a) => a.agent === "sma_crossover")).toMatchObject({ silent: 1_500, rounds: 1_500 })
      // Some symbols short: those are named, with the most bars any of them has.
      const from = yield* swarm(["backtest", "--data", data, "--strategy", strategy("look-back-60.json", {
        agents: [{ type: "sma_crossover", params: { fast: 10, slow: 60 } }]
      }), "--from", "2023-11-01", "--no-store"])
      expect(from.code).toBe(0)
      expect(lines(from.stderr)).toEqual([
        expect.stringMatching(/^warning: sma_crossover needs 60 bars of a symbol before its first opinion, and the data has \d+ of ACME, GLOBEX, INITECH: it will give no opinion on any of its symbols in this run$/)
      ])
      // A look-back the data holds: no warning, and no `warnings` in the document.
      const plain = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--no-store"])
      expect(lines(plain.stderr)).toEqual([])
      expect(JSON.parse(plain.stdout)).not.toHaveProperty("warnings")
    }))

  it.live("sub-directories of a --data directory are not read, and stderr names them once; a directory of only sub-directories says so", () =>
    Effect.gen(function*() {
      const dir = Path.join(tmp, "nested-data")
      for (const name of ["ACME.csv", "GLOBEX.csv", "INITECH.csv"]) file(`nested-data/${name}`, fs.readFileSync(Path.join(data, name), "utf8"))
      // A later year of ACME, and a hidden folder: neither is read; the hidden one goes unmentioned.
      file("nested-data/2024/ACME.csv", "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,100\n")
      file("nested-data/old/notes.txt", "x")
      file("nested-data/.git/HEAD", "x")
      const r = yield* swarm(["backtest", "--data", dir, "--strategy", sma, "--json"])
      expect(r.code).toBe(0)
      expect(lines(r.stderr)).toEqual([
        `data: sub-directories not read (a --data directory stands for its own .csv files; give one as a --data of its own): ${
          Path.join(dir, "2024")
        }, ${Path.join(dir, "old")}`
      ])
      const plain = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json"])
      expect(documentOf(r.stdout).counts).toEqual(documentOf(plain.stdout).counts)
      // One given as a --data of its own is read, and not named.
      const both = yield* swarm(["backtest", "--data", dir, "--data", Path.join(dir, "2024"), "--strategy", sma, "--json"])
      expect([both.code, lines(both.stderr)]).toEqual([0, [
        `data: sub-directories not read (a --data directory stands for its own .csv files; give one as a --data of its own): ${Path.join(dir, "old")}`
      ]])
      expect(documentOf(both.stdout).counts.bars).toBe(documentOf(plain.stdout).counts.bars + 1)
      // Only sub-directories: the error names them.
      const only = Path.join(tmp, "only-sub")
      file("only-sub/sub/ACME.csv", fs.readFileSync(Path.join(data, "ACME.csv"), "utf8"))
      const o = yield* swarm(["backtest", "--data", only, "--strategy", sma])
      expect([o.code, lines(o.stderr)]).toEqual([2, [
        `swarm: ${only}: the directory has no .csv files (its sub-directories are not read: sub; give one as a --data of its own)`
      ]])
    }))

  it.live("rounds whose decision could not be acted on are said on stderr: a price too small for the books to hold the target", () =>
    Effect.gen(function*() {
      // A coin at a hundred-thousandth: half of a million is 5 × 10¹⁰ units, past what the books hold exactly.
      const days = Array.from({ length: 12 }, (_, i) => new Date(Date.UTC(2024, 0, 1 + i)).toISOString().slice(0, 10))
      const prices = [1, 1.1, 1.2, 1.3, 1.2, 1.1, 1, 0.9, 1, 1.1, 1.2, 1.3].map((p) => p * 1e-5)
      const coin = file("tiny/SHIB.csv", ["date,open,high,low,close,volume", ...days.map((d, i) => `${d},${prices[i]},${prices[i]},${prices[i]},${prices[i]},1000`)].join("\n") + "\n")
      const tiny = strategy("tiny.json", {
        symbols: ["SHIB"],
        initialCash: "1000000",
        agents: [{ type: "sma_crossover", params: { fast: 1, slow: 2 } }],
        sizing: { mode: "percent_of_equity", value: 50 }
      })
      const r = yield* swarm(["backtest", "--data", coin, "--strategy", tiny, "--no-store", "--json"])
      expect(r.code).toBe(0)
      expect(documentOf(r.stdout).counts.orders).toBe(0)
      expect(lines(r.stderr)).toEqual([
        expect.stringMatching(/^note: \d+ rounds placed no order because their decisions could not be acted on \(ExecutionBlocked events\); the first: SHIB@\S+: .*the target quantity exceeds the exact range/)
      ])
      // A run with none says nothing.
      const plain = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--no-store", "--json"])
      expect(lines(plain.stderr)).toEqual([])
    }))

  it.live("a run whose every order intent the risk officer rejected says so on stderr: trading hours daily bars never fall in", () =>
    Effect.gen(function*() {
      // The sample's bars are at midnight UTC: 09:30–16:00 in New York never holds one.
      const hours = strategy("hours.json", {
        symbols: ["ACME"],
        agents: [{ type: "sma_crossover", params: { fast: 2, slow: 5 } }],
        rules: [{ id: "rth", name: "regular hours", kind: "trading_hours", priority: 1, params: { timeZone: "America/New_York", windows: [{ start: "09:30", end: "16:00" }] } }]
      })
      const r = yield* swarm(["backtest", "--data", Path.join(data, "ACME.csv"), "--strategy", hours, "--no-store", "--json"])
      expect(r.code).toBe(0)
      expect(documentOf(r.stdout).counts.orders).toBe(0)
      expect(lines(r.stderr)).toEqual([
        expect.stringMatching(/^note: the risk officer rejected every order intent \(\d+ of \d+\), so the run placed no order; the first: rule "regular hours": outside trading hours: /)
      ])
    }))

  it.live("--adjust adj-close trades on Yahoo's adjusted prices; --ohlc as-given keeps a bar outside its own range", () =>
    Effect.gen(function*() {
      // The sample with an Adj Close of 90 % of each close, and ACME's 20th open above its high.
      for (const name of ["ACME.csv", "GLOBEX.csv", "INITECH.csv"]) {
        const [, ...rows] = fs.readFileSync(Path.join(data, name), "utf8").trimEnd().split("\n")
        const adj = rows.map((row, i) => {
          const [date, open, high, low, close, volume] = row.split(",")
          const shown = name === "ACME.csv" && i === 19 ? String(Number(high) + 1) : open
          return `${date},${shown},${high},${low},${close},${Number(close) * 0.9},${volume}`
        })
        file(`adjusted/${name}`, ["Date,Open,High,Low,Close,Adj Close,Volume", ...adj].join("\n") + "\n")
      }
      const dir = Path.join(tmp, "adjusted")
      const refused = yield* swarm(["backtest", "--data", dir, "--strategy", sma, "--json"])
      expect(refused.code).toBe(2)
      expect(lines(refused.stderr)[0]).toMatch(/ACME\.csv:21: column "Open": a bar's open must be between its low /)
      const raw = yield* swarm(["backtest", "--data", dir, "--strategy", sma, "--json", "--ohlc", "as-given"])
      const adjusted = yield* swarm(["backtest", "--data", dir, "--strategy", sma, "--json", "--ohlc", "as-given", "--adjust", "adj-close"])
      expect([raw.code, adjusted.code]).toEqual([0, 0])
      const [r, a] = [documentOf(raw.stdout), documentOf(adjusted.stdout)]
      // The same signals (a crossover does not see a constant factor), at 90 % of the prices.
      expect(a.trades.map((t) => [t.symbol, t.entry, t.exit])).toEqual(r.trades.map((t) => [t.symbol, t.entry, t.exit]))
      expect(a.trades.length).toBeGreaterThan(0)
      for (const [i, trade] of a.trades.entries()) {
        expect(trade.entryPrice).toBeCloseTo(r.trades[i]!.entryPrice * 0.9, -1)
      }
      expect(a.run).not.toBe(r.run)
      for (const [flag, value, reason] of [["--adjust", "dividends", "expected none or adj-close"], ["--ohlc", "loose", "expected checked or as-given"]]) {
        const bad = yield* swarm(["backtest", "--data", dir, "--strategy", sma, flag!, value!])
        expect(bad.code).toBe(2)
        expect(lines(bad.stderr)[0]).toContain(`${flag}: ${reason}, got "${value}"`)
      }
    }))

  it.live("the same inputs give the same document; the seed is recorded", () =>
    Effect.gen(function*() {
      const a = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--seed", "42"])
      const b = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--seed", "42"])
      expect(a.code).toBe(0)
      expect(b.stdout).toBe(a.stdout)
      expect(documentOf(a.stdout).seed).toBe("42")
      // A seed is a number: written with leading zeros it is the same seed, the same run.
      const zeros = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--seed", "0042"])
      expect(zeros.stdout).toBe(a.stdout)
      // The events' detail changes the event log, so the checksum: the run is another, and its id says so.
      const rounds = documentOf((yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--seed", "42", "--events", "rounds"])).stdout)
      expect(rounds.checksum).not.toBe(documentOf(a.stdout).checksum)
      expect(rounds.run).not.toBe(documentOf(a.stdout).run)
    }))

  it.live("--from and --to: the period is inside the window, and --to a date includes that day", () =>
    Effect.gen(function*() {
      const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--from", "2022-03-01", "--to", "2022-09-30"])
      expect(r.code).toBe(0)
      const document = documentOf(r.stdout)
      expect(document.period.from).toBe(Date.UTC(2022, 2, 1))
      expect(document.period.to).toBe(Date.UTC(2022, 8, 30)) // a Friday with a bar at midnight
      expect(document.counts.bars).toBeLessThan(1500)
    }))

  it.live("--out: events.ndjson (every event, in order), result.json (the --json document) and trades.csv", () =>
    Effect.gen(function*() {
      const out = Path.join(tmp, "out", "nested")
      const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--out", out, "--events", "rounds"])
      expect(r.code).toBe(0)
      const document = documentOf(r.stdout)
      expect(fs.readFileSync(Path.join(out, "result.json"), "utf8")).toBe(r.stdout)
      const events = lines(fs.readFileSync(Path.join(out, "events.ndjson"), "utf8")).map((line) => JSON.parse(line))
      expect(events).toHaveLength(document.counts.events)
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
      expect(events[0]._tag).toBe("RunStarted")
      expect(events.at(-1)).toMatchObject({ _tag: "RunCompleted", checksum: document.checksum })
      expect(events.filter((e) => e._tag === "OpinionGiven").length).toBeGreaterThan(0) // --events rounds
      // The file without its last line (RunCompleted) hashes to the run's checksum.
      const text = fs.readFileSync(Path.join(out, "events.ndjson"), "utf8")
      const beforeLast = text.slice(0, text.lastIndexOf("\n", text.length - 2) + 1)
      expect(createHash("sha256").update(beforeLast).digest("hex")).toBe(document.checksum)
      const csv = lines(fs.readFileSync(Path.join(out, "trades.csv"), "utf8"))
      expect(csv[0]).toBe("symbol,side,quantity,entry,exit,entry_price,exit_price,pnl,commission")
      expect(csv).toHaveLength(document.trades.length + 1)
    }))

  it.live("--out is all or nothing: bad input, or a run refused midway, leaves nothing and keeps an earlier run's files", () =>
    Effect.gen(function*() {
      const parent = Path.join(tmp, "all-or-nothing")
      fs.mkdirSync(parent)
      const out = Path.join(parent, "out")
      const zzz = strategy("zzz.json", { symbols: ["ZZZ"] })
      const missing = yield* swarm(["backtest", "--data", data, "--strategy", zzz, "--out", out])
      expect(missing.code).toBe(2)
      expect(lines(missing.stderr)[0]).toMatch(/^swarm: symbols: no data for ZZZ/)
      // Refused before it starts: intents will need approval and no terminal can give it.
      const pause = strategy("pause-out.json", { risk: { approval: { notionalPctAbove: 1, policy: "pause" } } })
      const refused = yield* swarm(["backtest", "--data", data, "--strategy", pause, "--out", out])
      expect(refused.code).toBe(2)
      expect(fs.readdirSync(parent)).toEqual([]) // no out/, no staging directory

      // An earlier run's output, with a file of the user's beside it.
      const first = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--out", out, "--to", "2022-06-30"])
      expect(first.code).toBe(0)
      fs.writeFileSync(Path.join(out, "notes.txt"), "mine")
      const before = Object.fromEntries(fs.readdirSync(out).map((name) => [name, fs.readFileSync(Path.join(out, name), "utf8")]))
      expect(Object.keys(before).sort()).toEqual(["events.ndjson", "notes.txt", "result.json", "trades.csv"])
      for (const bad of [zzz, pause]) {
        const r = yield* swarm(["backtest", "--data", data, "--strategy", bad, "--out", out])
        expect(r.code).toBe(2)
        expect(Object.fromEntries(fs.readdirSync(out).map((name) => [name, fs.readFileSync(Path.join(out, name), "utf8")]))).toEqual(before)
      }
      // A run that completes replaces the three files and keeps the others.
      const second = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json", "--out", out])
      expect(second.code).toBe(0)
      expect(fs.readFileSync(Path.join(out, "result.json"), "utf8")).toBe(second.stdout)
      expect(fs.readFileSync(Path.join(out, "notes.txt"), "utf8")).toBe("mine")
      expect(fs.readdirSync(parent)).toEqual(["out"])
      expect(fs.readdirSync(out).sort()).toEqual(["events.ndjson", "notes.txt", "result.json", "trades.csv"])
    }))

  it.live("--out of a run that failed keeps its files, result.json saying failed and why; exit 1", () =>
    Effect.gen(function*() {
      // A price rising 15 % a day on a billion: the books leave the exact money range, and the run fails.
      const rows = Array.from({ length: 60 }, (_, i) => {
        const price = (10 * 1.15 ** Math.max(0, i - 3)).toFixed(2)
        return `${new Date(Date.UTC(2020, 0, 1 + i)).toISOString().slice(0, 10)},${price},${price},${price},${price},1000`
      })
      const rocketData = file("rocket/X.csv", ["date,open,high,low,close,volume", ...rows].join("\n"))
      const rocket = strategy("rocket.json", {
        name: "rocket",
        symbols: ["X"],
        initialCash: "1000000000",
        agents: [{ type: "sma_crossover", params: { fast: 2, slow: 3 } }],
        sizing: { mode: "percent_of_equity", value: 50 },
        risk: { limits: { maxPositionPct: 50 } }
      })
      const out = Path.join(tmp, "failed-out")
      const r = yield* swarm(["backtest", "--data", rocketData, "--strategy", rocket, "--no-store", "--json", "--out", out])
      expect(r.code).toBe(1)
      const document = documentOf(r.stdout)
      expect(document).toMatchObject({ status: "failed", failure: expect.stringContaining("money range") })
      expect(fs.readFileSync(Path.join(out, "result.json"), "utf8")).toBe(r.stdout)
      expect(fs.readdirSync(out).sort()).toEqual(["events.ndjson", "result.json", "trades.csv"])
      expect(JSON.parse(lines(fs.readFileSync(Path.join(out, "events.ndjson"), "utf8")).at(-1)!)._tag).toBe("RunFailed")
    }))

  it.live("an empty or blank --out is refused before the run, and nothing is written where the command runs", () =>
    Effect.gen(function*() {
      // An empty path resolves to the current directory: the run's files landed there.
      const here = Path.join(tmp, "empty-out-cwd")
      fs.mkdirSync(here)
      const before = process.cwd()
      process.chdir(here)
      const ran = yield* Effect.forEach(["", "  "], (out) =>
        swarm(["backtest", "--data", data, "--strategy", sma, "--to", "2022-01-31", "--out", out])).pipe(
          Effect.ensuring(Effect.sync(() => process.chdir(before)))
        )
      expect(ran.map((r) => [r.code, lines(r.stderr)[0], r.stdout])).toEqual([
        [2, "swarm: --out: expected a directory, got \"\"", ""],
        [2, "swarm: --out: expected a directory, got \"  \"", ""]
      ])
      expect(fs.readdirSync(here)).toEqual([])
    }))

  it.live("--out naming a file that is not a directory is refused before the run", () =>
    Effect.gen(function*() {
      const taken = file("taken-out", "not a directory")
      const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--out", taken])
      expect(r.code).toBe(2)
      expect(lines(r.stderr)).toEqual([`swarm: --out: cannot create ${taken}: it exists and is not a directory`])
      expect(fs.readFileSync(taken, "utf8")).toBe("not a directory")
    }))

  it.live("--out holding a directory, a link to one or a fifo under a file's name is refused before the run, and left as it was", () =>
    Effect.gen(function*() {
      const parent = Path.join(tmp, "unreplaceable")
      const out = Path.join(parent, "out")
      fs.mkdirSync(out, { recursive: true })
      fs.writeFileSync(Path.join(out, "events.ndjson"), "an earlier run's")
      const refusals: Array<[string, () => void, string]> = [
        ["result.json", () => fs.mkdirSync(Path.join(out, "result.json")), "a directory"],
        ["trades.csv", () => fs.symlinkSync(parent, Path.join(out, "trades.csv")), "a link to a directory"],
        ["result.json", () => fs.symlinkSync(Path.join(parent, "nothing"), Path.join(out, "result.json")), "a link to nothing"],
        ["result.json", () => execFileSync("mkfifo", [Path.join(out, "result.json")]), "not a regular file"]
      ]
      for (const [name, make, what] of refusals) {
        make()
        const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--to", "2022-01-31", "--out", out])
        expect([r.code, lines(r.stderr), r.stdout]).toEqual([
          2,
          [`swarm: --out: ${Path.join(out, name)} is ${what}, which the run's ${name} would replace`],
          ""
        ])
        expect(fs.readFileSync(Path.join(out, "events.ndjson"), "utf8")).toBe("an earlier run's")
        expect(fs.readdirSync(parent)).toEqual(["out"]) // no staging directory left
        fs.rmSync(Path.join(out, name), { recursive: true })
      }
      // A link to a file is replaced, as a file is.
      fs.writeFileSync(Path.join(parent, "target"), "linked")
      fs.symlinkSync(Path.join(parent, "target"), Path.join(out, "trades.csv"))
      const done = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--to", "2022-01-31", "--out", out])
      expect(done.code).toBe(0)
      expect(fs.lstatSync(Path.join(out, "trades.csv")).isFile()).toBe(true)
      expect(fs.readdirSync(out).sort()).toEqual(["events.ndjson", "result.json", "trades.csv"])
    }))

  // As root, access(2) grants everything: there the check cannot be seen.
  it.live.skipIf(process.getuid?.() === 0)("--out that exists and cannot be written in is refused before the run", () =>
    Effect.gen(function*() {
      const out = Path.join(tmp, "read-only-out")
      fs.mkdirSync(out, { mode: 0o555 })
      const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--to", "2022-01-31", "--out", out])
      fs.chmodSync(out, 0o755)
      expect([r.code, lines(r.stderr)]).toEqual([2, [`swarm: --out: cannot write in ${out}: EACCES: permission denied`]])
      expect(fs.readdirSync(out)).toEqual([])
    }))

  it.live("--out is made one level at a time, only when the run completed; a place no directory can be made is refused at once", () =>
    Effect.gen(function*() {
      const parent = Path.join(tmp, "levels")
      fs.mkdirSync(parent)
      const deep = Path.join(parent, "a", "b", "out")
      const zzz = strategy("zzz-levels.json", { symbols: ["ZZZ"] })
      const refused = yield* swarm(["backtest", "--data", data, "--strategy", zzz, "--out", deep])
      expect(refused.code).toBe(2)
      expect(fs.readdirSync(parent)).toEqual([]) // no a/, no a/b/
      const done = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--out", deep, "--to", "2022-03-31"])
      expect(done.code).toBe(0)
      expect(fs.readdirSync(deep).sort()).toEqual(["events.ndjson", "result.json", "trades.csv"])
      expect(fs.readdirSync(Path.join(parent, "a", "b"))).toEqual(["out"])
      // The mode a mkdir gives, as its parents have: not the staging directory's private 0700.
      const umask = process.umask(0o022)
      const modes = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--out", Path.join(parent, "modes"), "--to", "2022-01-31"]).pipe(
        Effect.ensuring(Effect.sync(() => process.umask(umask)))
      )
      expect(modes.code).toBe(0)
      expect(fs.statSync(Path.join(parent, "modes")).mode & 0o777).toBe(0o755)

      const underFile = Path.join(file("a-file", "x"), "out")
      const notDir = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--out", underFile])
      expect(notDir.code).toBe(2)
      expect(lines(notDir.stderr)).toEqual([`swarm: --out: cannot create ${underFile}: ${Path.join(tmp, "a-file")} is not a directory`])
    }))

  // Node's mkdir(…, { recursive: true }) spins for ever there: EEXIST for /proc, ENOENT for the child.
  it.live.skipIf(!fs.existsSync("/proc/self"))("--out under /proc: refused with exit code 2, no hang", () =>
    Effect.gen(function*() {
      for (const out of ["/proc/x", "/proc/x/y"]) {
        const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--out", out])
        expect(r.code).toBe(2)
        expect(lines(r.stderr)).toEqual([`swarm: --out: cannot create ${out}: cannot make a directory in /proc: ENOENT: no such file or directory`])
      }
    }), 5_000)

  it.live("the summary: what ran, the metrics table, positions, trades, state, counts and checksum", () =>
    Effect.gen(function*() {
      const json = documentOf((yield* swarm(["backtest", "--data", data, "--strategy", six, "--json"])).stdout)
      const r = yield* swarm(["backtest", "--data", data, "--strategy", six])
      expect(r.code).toBe(0)
      expect(r.stderr).toBe("") // no terminal, no progress bar
      for (
        const text of [
          `run       ${json.run}`,
          "strategy  Six analysts",
          "period    2022-01-03 → 2023-12-01",
          "bars      1,500 (3 symbols, 500 bar times)",
          "total return",
          "CAGR",
          "volatility",
          "Sharpe",
          "Sortino",
          "Calmar",
          "max drawdown",
          "win rate",
          "profit factor",
          "avg win / loss",
          "exposure",
          "trading   ",
          `checksum  ${json.checksum}`
        ]
      ) expect(r.stdout).toContain(text)
      expect(r.stdout).toContain("250,000.00 → ") // money formatted from micros
    }))

  it.live("on a terminal, a progress bar on stderr (bars, date, equity, rate), taken down before the report; none with --json", () =>
    Effect.gen(function*() {
      const terminal = fakeTerminal()
      const r = yield* swarm(["backtest", "--data", data, "--strategy", sma], { terminal: terminal.stream })
      expect(r.code).toBe(0)
      expect(terminal.drawn()).toContain("1,500/1,500 bars | 2023-12-01 | equity ")
      expect(terminal.drawn()).toMatch(/\| equity [^|]+ \| [\d,]+ bars\/s/)
      expect(terminal.drawn()).toContain("\u001b[?25h") // the cursor is shown again
      const quiet = fakeTerminal()
      const json = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json"], { terminal: quiet.stream })
      expect(json.code).toBe(0)
      expect(quiet.drawn()).toBe("")
    }))

  it.live("approval policy pause: without a terminal the run is refused before it starts; at a terminal each intent is asked", () =>
    Effect.gen(function*() {
      const pause = strategy("pause.json", { risk: { approval: { notionalPctAbove: 5, policy: "pause" } } })
      const alone = yield* swarm(["backtest", "--data", data, "--strategy", pause, "--to", "2022-06-30"])
      expect(alone.code).toBe(2)
      expect(lines(alone.stderr)[0]).toMatch(/^swarm: .*pause\.json: risk\.approval\.policy: "pause" waits for an operator .*: use "approve" or "reject"/)

      const out = Path.join(tmp, "approvals")
      const answers = ["y", "", ...Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? "n" : "too big"))]
      const asked = yield* swarm(["backtest", "--data", data, "--strategy", pause, "--to", "2022-06-30", "--out", out], { answers })
      expect(asked.code).toBe(0)
      expect(asked.asked[0]).toMatch(/approval needed \(.+@\d+\): (buy|sell) [\s\S]*\napprove\? \[y\/n\] $/)
      const resolved = lines(fs.readFileSync(Path.join(out, "events.ndjson"), "utf8"))
        .map((line) => JSON.parse(line))
        .filter((e) => e._tag === "ApprovalResolved")
      expect(resolved[0]).toMatchObject({ outcome: "approved", reason: "approved at the terminal" })
      expect(resolved[1]).toMatchObject({ outcome: "rejected", reason: "too big" })
    }))

  it.live("a defect is one short line, not a stack trace, and exit code 1", () =>
    Effect.gen(function*() {
      const base = analysts.get("sma_crossover")!
      // A bug of the registry's own (a horizon that throws is the strategy's problem: refused, exit 2).
      const broken: AnyModel = Object.defineProperty({ ...base }, "config", {
        get: () => {
          throw new Error("the crystal ball cracked")
        }
      })
      const registry = new Map([...analysts, ["sma_crossover", broken]])
      const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json"], { registry })
      expect(r.code).toBe(1)
      expect(r.stdout).toBe("")
      expect(lines(r.stderr)).toEqual(["swarm: internal error: the crystal ball cracked"])
    }))

  it("a run that ended failed exits 1 with one line; bad input exits 2; no line carries a stack", () => {
    expect(Cli.report(new RunFailed({ run: "bt-1", reason: "the run's supervisor gave up" }))).toEqual({
      lines: ["run bt-1: failed: the run's supervisor gave up"],
      code: 1
    })
    expect(Cli.report(new BacktestError({ field: "symbols", reason: "no data for X" }))).toEqual({ lines: ["symbols: no data for X"], code: 2 })
    expect(Cli.report(new StrategyFileError({ file: "s.yaml", problems: [{ field: "", message: "not valid YAML" }, { field: "agents[1].weight", message: "too heavy" }] })))
      .toEqual({ lines: ["s.yaml: not valid YAML", "s.yaml: agents[1].weight: too heavy"], code: 2 })
    expect(Cli.report(new OutputError({ path: "out/events.ndjson", reason: "cannot write it: ENOSPC" })).code).toBe(1)
  })

  it("the server's reasons name RPC procedures; the command line says the commands that call them", () => {
    expect(Cli.commandsNamed("key: no API key key_nope (admin.keys lists a user's keys by id)")).toBe(
      "key: no API key key_nope (swarm admin keys <user> lists a user's keys by id)"
    )
    expect(Cli.commandsNamed("suggestion: …: a suggestion id is <rule id>.<min trades>.<hash>, as chat.suggestions gives it")).toBe(
      "suggestion: …: a suggestion id is <rule id>.<min trades>.<hash>, as swarm chat suggestions <run> gives it"
    )
    expect(Cli.commandsNamed("run: you have 8 live runs (…): stop one first (runs.list, then runs.stop)")).toBe(
      "run: you have 8 live runs (…): stop one first (swarm runs list, then swarm runs stop <run>)"
    )
    expect(Cli.commandsNamed("ask chat.suggestions again. stop it first (runs.stop)")).toBe(
      "ask swarm chat suggestions <run> again. stop it first (swarm runs stop <run>)"
    )
    // A name that only contains one, quoted or dotted further, is left as it is.
    for (const line of ["run: no run \"runs.stop#1\" in the database", "swarm.runs.stop span", "admin.keys.extra", "files/runs.list"]) {
      expect(Cli.commandsNamed(line)).toBe(line)
    }
  })

  it("the embedded database held by another process: what that process is, and the ways out that fit the command", () => {
    const serve = new DatabaseLocked({ dataDir: ".swarm/pglite", pid: 42, command: "swarm serve" })
    const head = "database: the embedded database at .swarm/pglite is in use by process 42 (swarm serve), and it serves one process at a time"
    expect(Cli.report(serve, ["backtest", "--data", "data", "--strategy", "s.yaml"])).toEqual({
      lines: [head, "stop that process, or add --no-store (the backtest then opens no database), or set DATABASE_URL to a Postgres server, which serves several"],
      code: 3
    })
    const viaServer = "stop that process, or ask its server instead (swarm login --server <url> --key <key>, then without --local), or set DATABASE_URL to a Postgres server, which serves several"
    expect(Cli.report(serve, ["runs", "list"]).lines).toEqual([head, viaServer])
    expect(Cli.report(serve, ["audit", "verify", "run_1", "--local"]).lines).toEqual([head, viaServer])
    expect(Cli.report(serve, ["replay", "x#1"]).lines).toEqual([head, "stop that process, or set DATABASE_URL to a Postgres server, which serves several"])
    // Another command line: it ends by itself; no server to ask.
    expect(Cli.report(new DatabaseLocked({ dataDir: ".swarm/pglite", pid: 7, command: "swarm backtest" }), ["runs", "list"]).lines).toEqual([
      "database: the embedded database at .swarm/pglite is in use by process 7 (swarm backtest), and it serves one process at a time",
      "wait for that process or stop it, or set DATABASE_URL to a Postgres server, which serves several"
    ])
    // Where the system does not say, the likeliest holder is the server npm start runs.
    expect(Cli.report(new DatabaseLocked({ dataDir: ".swarm/pglite", pid: 42 }), ["resume"]).lines[0]).toBe(
      "database: the embedded database at .swarm/pglite is in use by process 42 (probably swarm serve), and it serves one process at a time"
    )
  })

  it("the store's failures: one line each (more only for a reason that spans lines), no stack frames; 2 for a run that is not there", () => {
    expect(Cli.report(new RunNotFound({ run: "x#3" }))).toEqual({ lines: ["run: no run \"x#3\" in the database (swarm runs list --local shows them)"], code: 2 })
    expect(Cli.report(new RunNotFound({ run: "x#3", ambiguous: ["run_b", "run_a"] }))).toEqual({
      lines: ["run: \"x#3\" names 2 runs in the database (run_b, run_a): give the run's id"],
      code: 2
    })
    expect(Cli.report(new NotResumable({ run: "run_1", reason: "it is completed" }))).toEqual({ lines: ["run run_1: cannot be resumed: it is completed"], code: 2 })
    const diverged = Cli.report(new RunDiverged({ run: "run_1", seq: 9, round: "ACME@1", agent: null, field: "event", expected: "x".repeat(1000), actual: "\"y\"" }))
    expect(diverged.code).toBe(1)
    expect(diverged.lines).toEqual([`run run_1: does not reproduce: diverges at event 9, round ACME@1: event was ${"x".repeat(160)}…, now "y"`])
    const unavailable = Cli.report(
      new DatabaseUnavailable({
        backend: { kind: "embedded", dataDir: ".swarm/pglite" },
        reason: "the PGlite server exited during start-up (exit code 1)\nError: disk full\n    at open (pglite.js:1:2)\n"
      })
    )
    expect(unavailable).toEqual({
      lines: ["database: embedded PGlite at .swarm/pglite: unavailable: the PGlite server exited during start-up (exit code 1)", "  Error: disk full"],
      code: 3
    })
    expect(Cli.report(new StoreError({ operation: "list runs", reason: "connection terminated" }))).toEqual({
      lines: ["store: cannot list runs: connection terminated"],
      code: 1
    })
    expect(Cli.report(new DataChanged({ reason: "data/ACME.csv: no such file" })).code).toBe(1)
    expect(Cli.report(new CorruptRecord({ table: "runs", key: "run_1", column: "metrics", reason: "Expected number\n└─ at sharpe" })).lines).toEqual([
      "runs run_1: metrics does not decode: Expected number",
      "  └─ at sharpe"
    ])
    expect(Cli.report(new BacktestError({ field: "store", reason: "store: cannot record run run_1: connection lost" })).code).toBe(1)
  })
})

describe("swarm backtest: a volume limit", () => {
  it.live("--json lists each order and what became of it: filled in parts, or cancelled with what was left; without the option, no such list", () =>
    Effect.gen(function*() {
      // 20 % of equity in ACME is about 570 shares; 0.002 % of a bar's 0.8–1.7 M shares is 16–34: orders take weeks.
      const limited = strategy("volume-limit.json", { execution: { ...(smaJson.execution as object), maxVolumePercent: 0.002 } })
      const r = yield* swarm(["backtest", "--data", data, "--strategy", limited, "--json"])
      expect(r.code).toBe(0)
      const orders = documentOf(r.stdout).orders!
      expect(orders.length).toBeGreaterThan(0)
      const parted = orders.filter((o) => o.fills > 1)
      expect(parted.length).toBeGreaterThan(0)
      for (const o of orders) {
        expect(["filled", "cancelled"]).toContain(o.state)
        expect(o.filled + o.unfilled).toBeCloseTo(o.quantity, 6)
        if (o.state === "filled") expect(o.unfilled).toBe(0)
      }
      // Replaced while partly filled, or left at the end: cancelled, with what had filled.
      expect(orders.some((o) => o.state === "cancelled" && o.filled > 0 && o.unfilled > 0)).toBe(true)
      const plain = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json"])
      expect(JSON.parse(plain.stdout)).not.toHaveProperty("orders")
    }))

  it.live("a bad maxVolumePercent is refused, naming the field", () =>
    Effect.gen(function*() {
      const bad = strategy("volume-limit-bad.json", { execution: { ...(smaJson.execution as object), maxVolumePercent: 150 } })
      const r = yield* swarm(["backtest", "--data", data, "--strategy", bad, "--json"])
      expect([r.code, r.stdout]).toEqual([2, ""])
      expect(lines(r.stderr)[0]).toBe(`swarm: ${bad}: execution.maxVolumePercent: maxVolumePercent is at most 100 (% of the bar's volume)`)
    }))
})

describe("swarm: no database unless asked", () => {
  it("the tests above ran with --no-store and opened no database", () => {
    expect(openAttempts()).toBe(0)
  })
})
