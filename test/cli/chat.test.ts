/**
 * `swarm chat` against a live server: the real `swarm serve` on a fresh embedded database (its
 * offline model answers from its tools, deterministically), a backtest to talk about, and the real
 * binary asking about it — the answer's text on stdout, the tool line on stderr — with the rest
 * in-process (Cli.run, as the binary does): `--json` chunks, the history, the suggestions and one
 * applied, another user's run answered as none, bad flags and questions refused before any call.
 */
import { RpcClient } from "@effect/rpc"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { ChatChunk, MAX_QUESTION_LENGTH } from "../../schemas/Chat.js"
import { SwarmRpcs } from "../../schemas/Rpc.js"
import * as Remote from "../../src/cli/Remote.js"
import { lines, swarm } from "./harness.js"
import { ProcessGroups } from "./processes.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-chat-"))
const sma = Path.join(root, "examples", "sma-crossover.json")

const processes = new ProcessGroups()
afterAll(() => {
  processes.killAll()
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** The test's environment without any server, key or database of the developer's. */
const cleanEnv = (env: Record<string, string>) => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !["SWARM_SERVER", "SWARM_API_KEY", "DATABASE_URL"].includes(k))),
  SWARM_CONFIG: Path.join(tmp, "none.json"),
  ...env
})

/** The real binary, as a client; `input`, what is piped into its stdin. */
const bin = (args: ReadonlyArray<string>, env: Record<string, string>, input?: string) =>
  processes.run(args, { cwd: tmp, env: cleanEnv(env), ...(input === undefined ? {} : { input }) })

let base = ""
let adminKey = ""
/** The admin's server and key, as the environment gives them. */
const admin = () => ({ SWARM_SERVER: base, SWARM_API_KEY: adminKey })
const cli = (argv: ReadonlyArray<string>, environment: Record<string, string> = admin(), input?: string) =>
  swarm(argv, { environment, ...(input === undefined ? {} : { input }) })

/** The completed backtest the tests talk about. */
let run = { id: "", ref: "" }

beforeAll(async () => {
  const served = await processes.serve({ cwd: tmp, env: cleanEnv({ SWARM_DATA_DIR: Path.join(tmp, "data") }), settle: 500 })
  base = served.base
  for (let i = 0; i < 40 && adminKey === ""; i++) {
    adminKey = /sk_[A-Za-z0-9_-]{43}/.exec(served.stdout())?.[0] ?? ""
    if (adminKey === "") await new Promise((r) => setTimeout(r, 250))
  }
  await Effect.runPromise(Effect.gen(function*() {
    expect((yield* cli(["strategies", "create", sma])).code).toBe(0)
    const started = yield* cli(["runs", "start", "SMA crossover", "--data", "synthetic:300:7", "--watch", "--json"])
    expect(started.code).toBe(0)
    const info = JSON.parse(lines(started.stdout)[0]!) as { id: string; ref: string }
    run = { id: info.id, ref: info.ref }
  }))
}, 180_000)

const decodeChunk = Schema.decodeUnknownSync(ChatChunk)

describe("swarm chat against a live server", () => {
  it.live("ask: the answer streams to stdout, ending with a newline, the tool it ran on stderr; it is recorded as the history's last message", () =>
    Effect.gen(function*() {
      const asked = yield* bin(["chat", "ask", run.ref, "Which trades lost money?"], admin())
      expect([asked.code, lines(asked.stderr)]).toEqual([0, [expect.stringMatching(/^tool analyse_trades\(\): \d+ trades: \d+ won, \d+ lost, total P&L -?[\d,.]+$/)]])
      expect(asked.stdout).toMatch(/^\d+ trades, \d+ won and \d+ lost .*\.\n$/)

      const history = JSON.parse((yield* cli(["chat", "history", run.id, "--json"])).stdout) as {
        run: string
        messages: Array<{ seq: number; role: string; content: string; toolCalls: unknown }>
      }
      expect(history.run).toBe(run.id)
      expect(history.messages.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
      expect(history.messages[0]!.content).toBe("Which trades lost money?")
      expect(`${history.messages[3]!.content}\n`).toBe(asked.stdout)

      // --json: each chunk as the contract encodes it, one a line; the tokens make the same answer.
      const json = yield* cli(["chat", "ask", run.id, "Which trades lost money?", "--json"])
      expect([json.code, json.stderr]).toEqual([0, ""])
      const chunks = lines(json.stdout).map((line) => decodeChunk(JSON.parse(line)))
      expect(chunks.map((c) => c._tag)).toEqual(["Asked", "ToolUsed", ...chunks.slice(2, -1).map(() => "Token"), "Done"])
      expect(chunks[0]).toMatchObject({ run: run.id, question: 5, content: "Which trades lost money?" })
      expect(chunks[1]).toMatchObject({ tool: "analyse_trades", ok: true })
      expect(chunks.map((c) => (c._tag === "Token" ? c.text : "")).join("")).toBe(history.messages[3]!.content)
      expect(chunks.at(-1)).toMatchObject({ _tag: "Done", message: 8, backend: "offline" })
    }), { timeout: 90_000 })

  it.live("history: the messages oldest first, readable; --limit keeps the latest and says how many came before", () =>
    Effect.gen(function*() {
      const all = yield* cli(["chat", "history", run.ref])
      expect([all.code, all.stderr]).toEqual([0, ""])
      const shown = lines(all.stdout)
      expect(shown[0]).toMatch(new RegExp(`^chat with run ${run.id} \\(chat_[0-9a-f]+\\):$`))
      expect(shown[1]).toMatch(/^#1 \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ you: Which trades lost money\?$/)
      expect(shown[2]).toMatch(/^#2 \S+ \S+ agent \(offline \S+\) called analyse_trades\(\)$/)
      expect(shown[3]).toMatch(/^#3 \S+ \S+ tool analyse_trades answered: \{.{90,}…$/)
      expect(shown[4]).toMatch(/^#4 \S+ \S+ agent \(offline \S+\): \d+ trades, /)
      expect(shown.map((line) => /^#(\d+) /.exec(line)?.[1]).filter((n) => n !== undefined)).toEqual(["1", "2", "3", "4", "5", "6", "7", "8"])

      const latest = yield* cli(["chat", "history", run.id, "--limit", "2"])
      expect(lines(latest.stdout).slice(1, 3)).toEqual([
        `… 6 earlier messages: swarm chat history ${run.id} --limit 2 --before 7`,
        expect.stringMatching(/^#7 .* tool analyse_trades answered: /)
      ])
      // The command it gives pages back, and so on to the first message.
      const earlier = yield* cli(["chat", "history", run.id, "--limit", "2", "--before", "7"])
      expect([earlier.code, earlier.stderr]).toEqual([0, ""])
      expect(lines(earlier.stdout).slice(1).map((line) => line.slice(0, 2))).toEqual(["… ", "#5", "#6"])
      expect(lines(earlier.stdout)[1]).toBe(`… 4 earlier messages: swarm chat history ${run.id} --limit 2 --before 5`)
      const first = yield* cli(["chat", "history", run.id, "--limit", "2", "--before", "3"])
      expect(lines(first.stdout).slice(1).map((line) => line.slice(0, 2))).toEqual(["#1", "#2"])
      const refused = yield* cli(["chat", "history", run.id, "--before", "0"])
      expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining("--before")])
      expect(JSON.parse((yield* cli(["chat", "history", run.id, "--limit", "1", "--json"])).stdout).messages.map((m: { seq: number }) => m.seq)).toEqual([8])
    }), { timeout: 60_000 })

  it.live("suggestions as a table with the ids apply takes; one applied makes a new strategy version; applied again it is refused", () =>
    Effect.gen(function*() {
      const json = yield* cli(["chat", "suggestions", run.ref, "--min-trades", "2", "--json"])
      expect(json.code).toBe(0)
      const suggested = JSON.parse(json.stdout) as {
        run: string
        strategyVersion: number
        minTrades: number
        suggestions: Array<{ id: string; rule: { id: string; name: string } }>
      }
      expect([suggested.run, suggested.strategyVersion, suggested.minTrades]).toEqual([run.id, 1, 2])
      expect(suggested.suggestions.length).toBeGreaterThan(0)

      const table = yield* cli(["chat", "suggestions", run.id, "--min-trades", "2"])
      expect([table.code, table.stderr]).toEqual([0, ""])
      expect(lines(table.stdout)[0]).toBe(`rules suggested for run ${run.id} (strategy ${/str_[0-9a-f]+/.exec(table.stdout)![0]} v1; patterns of at least 2 trades):`)
      expect(table.stdout).toMatch(/│ id +│ would +│ +trades │ +P&L │ why +│/)
      for (const s of suggested.suggestions) expect(table.stdout).toMatch(new RegExp(`│ ${s.id.replace(/\./g, "\\.")} +│ ${s.rule.name.split(" ")[0]} `))
      expect(lines(table.stdout).at(-1)).toBe(`apply one (a new version of the strategy): swarm chat apply ${run.id} <id>`)

      const pick = suggested.suggestions[0]!
      const applied = yield* cli(["chat", "apply", run.ref, pick.id])
      expect([applied.code, applied.stderr]).toEqual([0, ""])
      expect(applied.stdout).toMatch(new RegExp(`^added rule ${pick.rule.id} to strategy "SMA crossover" \\(str_[0-9a-f]+\\): version 2, 1 rule\\n$`))
      const strategy = JSON.parse((yield* cli(["strategies", "show", "SMA crossover", "--json"])).stdout) as { version: number; strategy: { rules: Array<{ id: string }> } }
      expect([strategy.version, strategy.strategy.rules.map((r) => r.id)]).toEqual([2, [pick.rule.id]])

      const again = yield* cli(["chat", "apply", run.id, pick.id])
      expect([again.code, lines(again.stderr)]).toEqual([2, [expect.stringMatching(new RegExp(`^swarm: suggestion: no suggestion "${pick.id.replace(/\./g, "\\.")}" for run "${run.id}" on ${base}: `))]])
      const bogus = yield* cli(["chat", "apply", run.id, "nope"])
      expect([bogus.code, lines(bogus.stderr)]).toEqual([2, [
        `swarm: suggestion: no suggestion "nope" for run "${run.id}" on ${base}: a suggestion id is <rule id>.<min trades>.<hash>, as swarm chat suggestions <run> gives it`
      ]])
    }), { timeout: 60_000 })

  it.live("another user's run is answered as one that does not exist, by every chat command", () =>
    Effect.gen(function*() {
      const bob = yield* Effect.scoped(
        Effect.flatMap(RpcClient.make(SwarmRpcs).pipe(Effect.provide(Remote.protocol(base, adminKey))), (client) => client.admin.createUser({ name: "bob", role: "user" }))
      ).pipe(Effect.orDie)
      const as = { SWARM_SERVER: base, SWARM_API_KEY: bob.key }
      for (const argv of [["chat", "ask", run.id, "Which trades lost money?"], ["chat", "history", run.id], ["chat", "suggestions", run.id], ["chat", "apply", run.id, "x.5.00000000"]]) {
        const r = yield* cli(argv, as)
        expect([argv[1], r.code, r.stdout, r.stderr]).toEqual([argv[1], 2, "", `swarm: run: no run "${run.id}" on ${base} (swarm runs list shows yours)\n`])
      }
      const missing = yield* cli(["chat", "ask", "SMA crossover#9", "hello"])
      expect([missing.code, missing.stderr]).toEqual([2, `swarm: run: no run "SMA crossover#9" on ${base} (swarm runs list shows yours)\n`])
      // Nothing was asked on bob's behalf.
      expect(JSON.parse((yield* cli(["chat", "history", run.id, "--json"])).stdout).messages).toHaveLength(8)
    }), { timeout: 60_000 })

  it.live("bad flags and questions are refused before any call, naming the flag or <question>, exit 2", () =>
    Effect.gen(function*() {
      const cases: Array<[ReadonlyArray<string>, string]> = [
        [["chat", "history", run.id, "--limit", "0"], "swarm: --limit: expected 1 to 1000, got 0"],
        [["chat", "history", run.id, "--limit", "many"], "swarm: --limit: expected an integer, got \"many\""],
        [["chat", "suggestions", run.id, "--min-trades", "1001"], "swarm: --min-trades: expected 1 to 1000, got 1001"],
        [["chat", "ask", run.id, "   "], "swarm: <question>: is empty: ask something about the run"],
        [["chat", "ask", run.id, "x".repeat(MAX_QUESTION_LENGTH + 1)], "swarm: <question>: is 4,001 characters long: at most 4,000"],
        [["chat", "ask", run.id, "a\u0007b"], "swarm: <question>: contains control characters (tabs and line breaks are fine)"],
        [["chat", "ask", "", "hello"], "swarm: <run>: is empty: give a run id (run_…) or <strategy>#<number>, as swarm runs list shows them"],
        [["chat", "apply", run.id, " "], "swarm: <suggestion>: is empty: give the id swarm chat suggestions shows"],
        [["chat", "follow", run.id, "--after", "yesterday"], `swarm: --after: expected a chunk's position, <question>.<index> (as chat follow --json and chat ask --json show them: 5.12), got "yesterday"`],
        [["chat", "frob"], "swarm: frob: unknown command, use one of 'ask', 'follow', 'history', 'suggestions', 'apply'"]
      ]
      for (const [argv, line] of cases) {
        const r = yield* cli(argv)
        expect([argv.join(" ").slice(0, 40), r.code, r.stdout, lines(r.stderr)[0]]).toEqual([argv.join(" ").slice(0, 40), 2, "", line])
      }
      // A question of exactly the limit is asked.
      const longest = yield* cli(["chat", "ask", run.id, `${"y".repeat(MAX_QUESTION_LENGTH - 1)}?`])
      expect(longest.code).toBe(0)
      const history = JSON.parse((yield* cli(["chat", "history", run.id, "--limit", "2", "--json"])).stdout) as { messages: Array<{ role: string; content: string }> }
      expect(history.messages.at(-2)!.content).toHaveLength(MAX_QUESTION_LENGTH)
    }), { timeout: 60_000 })

  it.live("ask with - reads the question from stdin, without the file's last line break; too long or from a terminal, refused naming stdin", () =>
    Effect.gen(function*() {
      const question = "Which trades lost money,\nand on which symbols?"
      const piped = yield* bin(["chat", "ask", run.id, "-", "--json"], admin(), `${question}\n`)
      expect([piped.code, piped.stderr]).toEqual([0, ""])
      expect(decodeChunk(JSON.parse(lines(piped.stdout)[0]!))).toMatchObject({ _tag: "Asked", run: run.id, content: question })
      // The binary stops reading a pipe past the limit, and says so.
      const flood = yield* bin(["chat", "ask", run.id, "-"], admin(), "x".repeat(1_000_000))
      expect([flood.code, flood.stdout, flood.stderr]).toEqual([2, "", "swarm: <question> (stdin): is more than 4,000 characters long: at most 4,000\n"])
      // A file of exactly the limit, with its line break: asked whole.
      const longest = yield* cli(["chat", "ask", run.id, "-", "--json"], admin(), `${"z".repeat(MAX_QUESTION_LENGTH)}\r\n`)
      expect(longest.code).toBe(0)
      expect(decodeChunk(JSON.parse(lines(longest.stdout)[0]!))).toMatchObject({ _tag: "Asked", content: "z".repeat(MAX_QUESTION_LENGTH) })
      const refusals: Array<[string | undefined, string]> = [
        ["x".repeat(1_000_000), "swarm: <question> (stdin): is more than 4,000 characters long: at most 4,000"],
        ["", "swarm: <question> (stdin): is empty: ask something about the run"],
        ["\n", "swarm: <question> (stdin): is empty: ask something about the run"],
        ["a\u0000b", "swarm: <question> (stdin): contains control characters (tabs and line breaks are fine)"],
        // Nothing piped: stdin is the terminal, and the command would wait on it for good.
        [undefined, "swarm: <question>: - reads the question from stdin, which is a terminal here: pipe it in (swarm chat ask RUN - < question.txt) or give it as the argument"]
      ]
      for (const [input, line] of refusals) {
        const r = yield* cli(["chat", "ask", run.id, "-"], admin(), input)
        expect([input?.slice(0, 10), r.code, r.stdout, lines(r.stderr)]).toEqual([input?.slice(0, 10), 2, "", [line]])
      }
      // None of the refused ones was asked: the last question is the longest one.
      const history = JSON.parse((yield* cli(["chat", "history", run.id, "--limit", "4", "--json"])).stdout) as { messages: Array<{ role: string; content: string }> }
      expect(history.messages.filter((m) => m.role === "user").at(-1)!.content).toBe("z".repeat(MAX_QUESTION_LENGTH))
    }), { timeout: 90_000 })
})
