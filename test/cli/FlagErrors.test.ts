/**
 * Flag errors as @effect/cli words them, reworded to name the flag: a flag given twice (it said
 * "unknown argument"), a value of the wrong kind (it named no flag), several missing flags (one
 * run-on text), and `--data=x`, which @effect/cli reads for single flags only.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { swarm } from "./harness.js"

const root = join(fileURLToPath(new URL(".", import.meta.url)), "../..")
const data = join(root, "data")
const sma = join(root, "examples", "sma-crossover.json")
const first = (text: string) => text.split("\n")[0]

describe("flag errors", () => {
  it.live("a flag given twice says so, naming it", () =>
    Effect.gen(function*() {
      for (const [flag, value] of [["--seed", "1"], ["--out", "x"], ["--from", "2023-01-01"]] as const) {
        const r = yield* swarm(["backtest", "--data", data, "--strategy", sma, flag, value, flag, value])
        expect([r.code, first(r.stderr)], flag).toEqual([2, `swarm: ${flag}: given more than once`])
      }
      // --data may be repeated: that is no error.
      const twice = yield* swarm(["backtest", "--data", data, "--data", join(data, "ACME.csv"), "--strategy", sma, "--json"])
      expect(twice.stderr).not.toMatch(/more than once|unknown argument/)
    }))

  it.live("a value of the wrong kind names its flag", () =>
    Effect.gen(function*() {
      const r = yield* swarm(["runs", "list", "--limit", "abc"])
      expect([r.code, first(r.stderr)]).toEqual([2, "swarm: --limit: expected an integer, got \"abc\""])
    }))

  it.live("a bad --version is named --version, as it was spelled; --strategy-version as that", () =>
    Effect.gen(function*() {
      for (const [spelling, args] of [["--version", ["--version", "0"]], ["--version", ["--version=0"]], ["--strategy-version", ["--strategy-version", "0"]]] as const) {
        const r = yield* swarm(["strategies", "show", "Anything", ...args])
        expect([r.code, first(r.stderr)], args.join(" ")).toEqual([2, `swarm: ${spelling}: expected a version number, 1 or more, got 0`])
      }
      // Not a version, after it: still the strategy's version, refused — not the program's version printed.
      for (const [value, got] of [["-1", "-1"], ["two", "\"two\""], ["1.5", "\"1.5\""]] as const) {
        const r = yield* swarm(["runs", "start", "Anything", "--version", value])
        expect([r.code, r.stdout, first(r.stderr)], value).toEqual([2, "", expect.stringMatching(new RegExp(`^swarm: --version: expected .*, got ${got.replace(".", "\\.")}$`))])
      }
    }))

  it.live("a word not among a flag's choices names the flag and the choices", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["runs", "start", "S", "--mode", "live"], "--mode: expected backtest or paper, got \"live\""],
        [["admin", "create-user", "bob", "--role", "root"], "--role: expected admin or user, got \"root\""],
        [["admin", "set-user", "bob", "--role", "root"], "--role: expected admin or user, got \"root\""],
        [["backtest", "--data", data, "--strategy", sma, "--ohlc", "loose"], "--ohlc: expected checked or as-given, got \"loose\""]
      ]
      for (const [args, line] of cases) {
        const r = yield* swarm(args)
        expect([r.code, first(r.stderr)], args.join(" ")).toEqual([2, `swarm: ${line}`])
      }
    }))

  it.live("a flag given last without its value says so", () =>
    Effect.gen(function*() {
      const required = yield* swarm(["backtest", "--data", data, "--strategy"])
      expect([required.code, first(required.stderr)]).toEqual([2, "swarm: --strategy: no value given"])
      const optional = yield* swarm(["runs", "start", "S", "--mode"])
      expect([optional.code, first(optional.stderr)]).toEqual([2, "swarm: --mode: no value given, or not a flag of this command"])
      const unknown = yield* swarm(["runs", "list", "--frob", "--json"])
      expect([unknown.code, first(unknown.stderr)]).toEqual([2, "swarm: --frob: unknown option for swarm runs list"])
    }))

  it.live("a flag the command does not take is named, whatever else the line lacks or holds", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        // Its required flags missing: the unknown one is what is wrong, not "--strategy: is required".
        [["backtest", "--local", "--data", data], "--local: unknown option for swarm backtest"],
        [["backtest", "--data", data, "--strategy", sma, "--locl=1"], "--locl: unknown option for swarm backtest"],
        [["runs", "start", "S", "--local"], "--local: unknown option for swarm runs start"],
        [["runs", "show", "S#1", "--reason", "x"], "--reason: unknown option for swarm runs show"],
        [["strategies", "show", "S", "--version", "2", "--yaml"], "--yaml: unknown option for swarm strategies show"],
        [["admin", "users", "--json", "--all"], "--all: unknown option for swarm admin users"],
        [["leaderboard", "--metric", "sharpe", "--top", "3"], "--top: unknown option for swarm leaderboard"],
        [["replay", "--frob", "S#1"], "--frob: unknown option for swarm replay"]
      ]
      for (const [args, line] of cases) {
        const r = yield* swarm(args)
        expect([r.code, r.stdout, r.stderr], args.join(" ")).toEqual([2, "", `swarm: ${line}\n`])
      }
      // A value that starts with dashes, after a flag that takes one, is that flag's value, not a flag.
      const reason = yield* swarm(["approvals", "reject", "S#1", "r1", "--reason", "--local"])
      expect(reason.stderr).not.toMatch(/unknown option/)
      expect(first(reason.stderr)).toMatch(/^swarm: --server: no server/)
      // Asking for help too: the flag, not "--data: is required"; without the unknown flag, the help.
      expect((yield* swarm(["backtest", "--local", "--help"])).stderr).toBe("swarm: --local: unknown option for swarm backtest\n")
      const help = yield* swarm(["backtest", "--help"])
      expect([help.code, help.stderr]).toEqual([0, ""])
    }))

  it.live("several missing flags: the first is named, alone", () =>
    Effect.gen(function*() {
      const r = yield* swarm(["backtest"])
      expect([r.code, first(r.stderr)]).toEqual([2, "swarm: --data: is required"])
    }))

  it.live("--data=x is read as --data x", () =>
    Effect.gen(function*() {
      const spaced = yield* swarm(["backtest", "--data", data, "--strategy", sma, "--json"])
      const joined = yield* swarm(["backtest", `--data=${data}`, `--strategy=${sma}`, "--json"])
      expect(joined.code).toBe(0)
      expect(joined.stdout).toBe(spaced.stdout)
    }))
})
