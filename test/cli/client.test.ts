/**
 * The operator's command line against a live server: the real `swarm serve` in a process of its own
 * on a fresh embedded database, and the real binary as its client — logging in (the config file,
 * mode 0600), a refused key, a server that is not there, a backtest started and watched to its end,
 * a paper run stopped, another user who sees none of it. The same commands also run in-process
 * (Cli.run, as the binary does) against the same server for everything in between — strategies,
 * rules, list/show/compare, pause/resume, approvals — since each binary start costs seconds of
 * loading. Every process started here is killed when the file ends, whether or not a test failed.
 */
import { RpcClient } from "@effect/rpc"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { SwarmRpcs } from "../../schemas/Rpc.js"
import * as Remote from "../../src/cli/Remote.js"
import { lines, swarm } from "./harness.js"
import { ProcessGroups } from "./processes.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-client-"))
const config = Path.join(tmp, "home", ".config", "swarm", "config.json")
const sma = Path.join(root, "examples", "sma-crossover.json")

const processes = new ProcessGroups()
afterAll(() => {
  processes.killAll()
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** The test's environment without any server, key or database of the developer's. */
const cleanEnv = (env: Record<string, string>) => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !["SWARM_SERVER", "SWARM_API_KEY", "DATABASE_URL"].includes(k))),
  SWARM_CONFIG: config,
  ...env
})

interface Server {
  readonly child: ChildProcess
  readonly base: string
  /** The first admin's key, printed once on the first start. */
  readonly key: string
}

/** `swarm serve --port 0` on a fresh embedded database, once it listens and has printed the admin's key. */
const startServer = () =>
  new Promise<Server>((resolve, reject) => {
    const child = processes.spawn(["serve", "--port", "0"], { cwd: tmp, env: cleanEnv({ SWARM_DATA_DIR: Path.join(tmp, "data") }) })
    let out = ""
    let err = ""
    const check = () => {
      const base = /listening on (http:\/\/\S+)/.exec(err)?.[1]
      const key = /sk_[A-Za-z0-9_-]{43}/.exec(out)?.[0]
      if (base !== undefined && key !== undefined) resolve({ child, base, key })
    }
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      check()
    })
    child.stderr!.on("data", (chunk: Buffer) => {
      err += chunk.toString()
      check()
    })
    child.on("exit", (code) => reject(new Error(`swarm serve exited ${code} before it was ready: ${err}`)))
  })

/** The real binary, as a client, in a process group of its own (bin/swarm.js starts a second node). */
const bin = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => processes.run(args, { cwd: tmp, env: cleanEnv(env) })

/** The same command line in-process, on the same config file. */
const cli = (argv: ReadonlyArray<string>, environment: Record<string, string> = {}) =>
  swarm(argv, { environment: { SWARM_CONFIG: config, ...environment } })

/** A port nothing listens on: one the system just gave out and took back. */
const closedPort = () =>
  new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (probe.address() as net.AddressInfo).port
      probe.close(() => resolve(port))
    })
  })

/** A strategy file: the SMA example with `changes`. */
const strategyFile = (name: string, changes: Record<string, unknown>) => {
  const path = Path.join(tmp, name)
  fs.writeFileSync(path, JSON.stringify({ ...JSON.parse(fs.readFileSync(sma, "utf8")), ...changes }))
  return path
}

/** The admin RPCs the command line does not offer, straight over the protocol the CLI uses. */
const adminCreateUser = (base: string, key: string, name: string) =>
  Effect.scoped(
    Effect.flatMap(
      RpcClient.make(SwarmRpcs).pipe(Effect.provide(Remote.protocol(base, key))),
      (client) => client.admin.createUser({ name, role: "user" })
    )
  ).pipe(Effect.orDie)

/** Poll `f` until it returns a value, at most `tries` times, `millis` apart. */
const eventually = <A>(f: Effect.Effect<A | undefined>, tries = 60, millis = 500): Effect.Effect<A> =>
  Effect.flatMap(f, (a) =>
    a !== undefined
      ? Effect.succeed(a)
      : tries <= 1
      ? Effect.dieMessage("gave up waiting")
      : Effect.zipRight(Effect.sleep(millis), eventually(f, tries - 1, millis)))

let server: Server
beforeAll(async () => {
  server = await startServer()
}, 120_000)

/** Shared between the tests, in order: the runs they made. */
const made: { backtest?: { id: string; ref: string }; paper?: { id: string; ref: string } } = {}

describe("swarm as a client of a live server", () => {
  it.live("login: a refused key is one line, exit 2, nothing saved; the admin's key is checked and saved 0600; an absent server is one line, exit 1", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(closedPort)
      const elsewhere = Path.join(tmp, "refused", "config.json")
      const [refused, absent, login] = yield* Effect.all([
        bin(["login", "--server", server.base, "--key", `sk_${"x".repeat(43)}`], { SWARM_CONFIG: elsewhere }),
        bin(["runs", "list", "--server", `http://127.0.0.1:${port}`, "--key", server.key]),
        bin(["login", "--server", server.base, "--key", server.key])
      ], { concurrency: "unbounded" })
      expect([refused.code, refused.stderr, refused.stdout]).toEqual([2, `swarm: --key: ${server.base} refused the API key: invalid API key\n`, ""])
      expect(fs.existsSync(elsewhere)).toBe(false)
      // 3: not run now, for a script to tell from a failed run (1) and bad input (2).
      expect([absent.code, absent.stderr]).toEqual([3, `swarm: server: cannot reach http://127.0.0.1:${port}: connection refused\n`])

      expect([login.code, login.stderr]).toEqual([0, ""])
      expect(login.stdout).toBe(`logged in to ${server.base}: the key works (1 strategy); saved to ${config}\n`)
      expect(fs.statSync(config).mode & 0o777).toBe(0o600)
      expect(JSON.parse(fs.readFileSync(config, "utf8"))).toEqual({ server: server.base, key: server.key })
    }), { timeout: 90_000 })

  it.live("strategies and rules: create, list, show as YAML, update from it, rules put, list, delete", () =>
    Effect.gen(function*() {
      const created = yield* cli(["strategies", "create", sma])
      expect([created.code, created.stderr]).toEqual([0, ""])
      expect(created.stdout).toMatch(/^created strategy "SMA crossover" \(str_[0-9a-f]+\): version 1, 0 rules\n$/)
      const again = yield* cli(["strategies", "create", sma])
      expect(again.code).toBe(2)
      expect(lines(again.stderr)).toHaveLength(1)
      expect(again.stderr).toMatch(/^swarm: strategy: .*SMA crossover/)

      const listed = yield* cli(["strategies", "list", "--json"])
      expect(JSON.parse(listed.stdout).map((s: { name: string }) => s.name).sort()).toEqual(["SMA crossover", "Six analysts"])

      const shown = yield* cli(["strategies", "show", "SMA crossover"])
      expect(shown.stdout).toMatch(/^# SMA crossover v1 \(str_[0-9a-f]+\)\nname: SMA crossover\n/)
      const yaml = Path.join(tmp, "sma.yaml")
      fs.writeFileSync(yaml, shown.stdout.replace("initialCash: \"100000\"", "initialCash: \"250000\""))
      const updated = yield* cli(["strategies", "update", "SMA crossover", yaml, "--json"])
      expect(JSON.parse(updated.stdout)).toMatchObject({ name: "SMA crossover", version: 2, strategy: { initialCash: "250000" } })
      const first = yield* cli(["strategies", "show", "SMA crossover", "--version", "1", "--json"])
      expect(JSON.parse(first.stdout)).toMatchObject({ version: 1, strategy: { initialCash: "100000" } })

      const cap = "{\"id\":\"cap\",\"name\":\"Cap\",\"kind\":\"max_position_percent\",\"params\":{\"percent\":30}}"
      const put = yield* cli(["rules", "put", "SMA crossover", cap])
      expect([put.code, put.stdout]).toEqual([0, expect.stringMatching(/^put rule cap in strategy "SMA crossover" \(str_[0-9a-f]+\): version 3, 1 rule\n$/)])
      // The file edited from version 2, sent after the rule made version 3: with --if-version, refused (the rule kept).
      const stale = yield* cli(["strategies", "update", "SMA crossover", yaml, "--if-version", "2"])
      expect([stale.code, stale.stderr]).toEqual([
        2,
        "swarm: strategy: strategy SMA crossover is at version 3 now, not 2: it changed since; show it again and redo the change\n"
      ])
      // A version it does not have yet (a typo, or another strategy's number): not "changed since".
      const ahead = yield* cli(["strategies", "update", "SMA crossover", yaml, "--if-version", "7"])
      expect([ahead.code, ahead.stderr]).toEqual([
        2,
        "swarm: strategy: strategy SMA crossover has no version 7 yet (its latest is 3); show it and redo the change from there\n"
      ])
      // The same update or rule again changes nothing, makes no version, and says so.
      const same = yield* cli(["rules", "put", "SMA crossover", cap])
      expect([same.code, same.stdout]).toEqual([0, expect.stringMatching(/^unchanged: strategy "SMA crossover" \(str_[0-9a-f]+\) is already that at version 3, 1 rule; no version made\n$/)])
      const current = yield* cli(["strategies", "show", "SMA crossover"])
      fs.writeFileSync(yaml, current.stdout)
      const sameJson = yield* cli(["strategies", "update", "SMA crossover", yaml, "--json"])
      expect(JSON.parse(sameJson.stdout)).toMatchObject({ name: "SMA crossover", version: 3, unchanged: true })
      const ruleFile = Path.join(tmp, "few.yaml")
      fs.writeFileSync(ruleFile, "id: few\nname: Few positions\nkind: max_open_positions\npriority: -1\nparams:\n  count: 2\n")
      expect((yield* cli(["rules", "put", "SMA crossover", ruleFile])).code).toBe(0)
      const rules = yield* cli(["rules", "list", "SMA crossover"])
      expect(rules.stdout).toMatch(/few .* Few positions .* max_open_positions[\s\S]*cap .* Cap .* max_position_percent/)
      const removed = yield* cli(["rules", "delete", "SMA crossover", "few"])
      expect(removed.stdout).toMatch(/^deleted rule few from strategy "SMA crossover" .*: version 5, 1 rule\n$/)
      const gone = yield* cli(["rules", "delete", "SMA crossover", "few"])
      expect([gone.code, gone.stderr]).toEqual([2, "swarm: rule: the strategy has no rule few\n"])
      expect(JSON.parse((yield* cli(["rules", "list", "SMA crossover", "--json"])).stdout).map((r: { id: string }) => r.id)).toEqual(["cap"])

      const unknown = yield* cli(["strategies", "show", "Nope"])
      expect([unknown.code, unknown.stderr]).toEqual([2, `swarm: strategy: no strategy "Nope" on ${server.base} (swarm strategies list shows yours)\n`])
    }), { timeout: 60_000 })

  it.live("webhooks: secret shows the URL and the secret once, then its prefix; rotate makes a new one, the old refused by the endpoint", () =>
    Effect.gen(function*() {
      const env = { SWARM_SERVER: server.base, SWARM_API_KEY: server.key }
      expect((yield* cli(["strategies", "create", strategyFile("hooked.json", { name: "Hooked" })], env)).code).toBe(0)
      const first = yield* cli(["webhooks", "secret", "Hooked", "--json"], env)
      expect([first.code, first.stderr]).toEqual([0, ""])
      const made = JSON.parse(first.stdout)
      expect(made).toMatchObject({ strategy: expect.stringMatching(/^str_/), secret: expect.stringMatching(/^whsec_/), prefix: expect.any(String) })
      expect(made.url).toBe(`${server.base}/v1/webhooks/tradingview/${made.strategy}`)
      const again = yield* cli(["webhooks", "secret", "Hooked"], env)
      expect([again.code, again.stdout]).toEqual([0,
        `webhook of strategy ${made.strategy}\nurl      ${made.url}\nsecret   ${made.prefix}… (shown only when made: \`swarm webhooks rotate Hooked\` makes a new one, and the old one stops working)\n`])
      const rotated = yield* cli(["webhooks", "rotate", "Hooked"], env)
      expect(rotated.code).toBe(0)
      const secret = /^secret {3}(whsec_\S+)$/m.exec(rotated.stdout)?.[1]
      expect(secret).toBeDefined()
      expect(secret).not.toBe(made.secret)
      expect(rotated.stdout).toContain("the old secret no longer works")
      // The endpoint agrees: the old secret is refused, the new one passes (no paper run: 409).
      const post = (s: string) =>
        Effect.promise(() => fetch(made.url, { method: "POST", body: JSON.stringify({ secret: s, ticker: "ACME", action: "buy", price: 1 }) }).then((r) => r.status))
      expect([yield* post(made.secret), yield* post(secret!)]).toEqual([401, 409])
      const unknown = yield* cli(["webhooks", "rotate", "Nope"], env)
      expect([unknown.code, unknown.stderr]).toEqual([2, `swarm: strategy: no strategy "Nope" on ${server.base} (swarm strategies list shows yours)\n`])
    }), { timeout: 60_000 })

  it.live("runs: a backtest started and watched to its end through the binary; list, show, compare; a finished run's watch prints its events, exit 0", () =>
    Effect.gen(function*() {
      const started = yield* bin(["runs", "start", "SMA crossover", "--data", "synthetic:300:7", "--watch"])
      expect([started.code, started.stderr]).toEqual([0, ""])
      const head = /^started run (run_[0-9a-f]+) \((SMA crossover#\d+), backtest\): \w+\n/.exec(started.stdout)
      expect(head).not.toBeNull()
      made.backtest = { id: head![1]!, ref: head![2]! }
      const events = lines(started.stdout).filter((line) => line.startsWith("#"))
      expect(events[0]).toMatch(/^#1 2020-01-06 started: backtest run of SMA crossover v5, seed 0, ACME GLOBEX INITECH$/)
      expect(events.some((line) => / verdict .*: approved$/.test(line))).toBe(true)
      expect(events.some((line) => / fill [A-Z]+ (buy|sell) /.test(line))).toBe(true)
      expect(events.at(-1)).toMatch(/^#\d+ \S+ completed: return [+-]?\d+\.\d+%, Sharpe .*, checksum [0-9a-f]{12}…$/)

      // Another backtest on other bars, in-process, followed to its end.
      const second = yield* cli(["runs", "start", "SMA crossover", "--data", "synthetic:300:8", "--json"])
      const other = JSON.parse(second.stdout) as { id: string; ref: string }
      expect((yield* cli(["runs", "watch", other.id])).code).toBe(0)

      const listed = JSON.parse((yield* cli(["runs", "list", "--strategy", "SMA crossover", "--json"])).stdout) as Array<{ id: string; status: string }>
      expect(listed.map((r) => [r.id, r.status])).toEqual([[other.id, "completed"], [made.backtest.id, "completed"]])
      const table = yield* cli(["runs", "list"])
      expect(table.stdout).toContain(made.backtest.ref)
      expect(table.stdout).toContain("Six analysts#1")

      const shown = JSON.parse((yield* cli(["runs", "show", made.backtest.ref, "--json"])).stdout)
      expect(shown).toMatchObject({ id: made.backtest.id, ref: made.backtest.ref, mode: "backtest", status: "completed", strategyVersion: 5 })
      expect(shown.checksum).toMatch(/^[0-9a-f]{64}$/)
      const human = (yield* cli(["runs", "show", made.backtest.id])).stdout
      expect(human).toContain("total return")
      // Where it ended: its final equity (its metrics'), the book since its last fill, the last quotes — never "live".
      expect(human).toMatch(
        /\nfinal {5}equity [\d,.]+ \(its metrics\), cash [\d,.]+, \d+ open positions? since its last fill at \d{4}-\d\d-\d\d \(event [\d,]+\)\nlast seen ACME [\d.,]+, GLOBEX [\d.,]+, INITECH [\d.,]+\n/
      )
      expect(human).not.toContain("live")
      // The report the local database would give: equity, and the first and last trades with how many.
      expect(human).toMatch(/\nequity {4}[\d,]+ snapshots, taken after fills: /)
      expect(shown.trades.count).toBe(shown.metrics.tradeCount)
      expect(shown.trades.first.length).toBe(Math.min(3, shown.trades.count))

      const compared = yield* cli(["runs", "compare", made.backtest.ref, other.ref])
      expect(compared.stdout).toMatch(/│ total return +│ +[+-]?\d/)
      expect(compared.stdout).toMatch(/first differing decision: \S+ [A-Z]+, after [\d,]+ alike\n {2}a {2}.+\n {2}b {2}.+\n$/)
      expect(JSON.parse((yield* cli(["runs", "compare", made.backtest.id, other.id, "--json"])).stdout)).toMatchObject({
        a: { id: made.backtest.id },
        b: { id: other.id },
        decisions: { sameEventDetail: true, firstDifference: { symbol: expect.any(String) } }
      })

      // The leaderboard: the strategy's better run of the two, by the metric asked for.
      const runsOf = JSON.parse((yield* cli(["runs", "list", "--strategy", "SMA crossover", "--json"])).stdout) as Array<
        { id: string; ref: string; metrics: { totalReturn: number; maxDrawdown: number } }
      >
      const best = (pick: (r: (typeof runsOf)[number]) => number, lowest = false) =>
        [...runsOf].sort((x, y) => lowest ? pick(x) - pick(y) : pick(y) - pick(x))[0]!
      const board = yield* bin(["leaderboard"])
      expect([board.code, board.stderr]).toEqual([0, ""])
      const top = best((r) => r.metrics.totalReturn)
      expect(lines(board.stdout).find((line) => line.includes("SMA crossover"))).toMatch(
        new RegExp(`│ 1 │ SMA crossover +│ ${top.ref.replace("#", "#")} +│ ${top.id} │ +[+-]${(Math.abs(top.metrics.totalReturn) * 100).toFixed(2)}% │`)
      )
      const drawdowns = JSON.parse((yield* cli(["leaderboard", "--metric", "maxDrawdown", "--limit", "1", "--json"])).stdout)
      const calmest = best((r) => r.metrics.maxDrawdown, true)
      expect(drawdowns).toEqual([{ strategy: "SMA crossover", run: calmest.id, ref: calmest.ref, value: calmest.metrics.maxDrawdown, owner: "admin", metricsConfig: { periodsPerYear: 252, riskFreeRate: 0 } }])
      const badMetric = yield* cli(["leaderboard", "--metric", "alpha"])
      expect([badMetric.code, lines(badMetric.stderr)[0]]).toEqual([
        2,
        `swarm: --metric: expected one of totalReturn, sharpe, sortino, calmar, maxDrawdown, winRate, profitFactor, got "alpha"`
      ])
      const badLimit = yield* cli(["leaderboard", "--limit", "0"])
      expect([badLimit.code, lines(badLimit.stderr)[0]]).toEqual([2, "swarm: --limit: expected 1 to 1000, got 0"])

      const watched = yield* bin(["runs", "watch", made.backtest.ref])
      expect([watched.code, watched.stderr]).toEqual([0, ""])
      expect(lines(watched.stdout)[0]).toBe(`watching run ${made.backtest.id} (${made.backtest.ref}, backtest): completed`)
      expect(lines(watched.stdout).slice(1)).toEqual(events)
      // From an event on: only what came after it.
      const tail = yield* cli(["runs", "watch", made.backtest.id, "--since", String(Number(/^#(\d+)/.exec(events.at(-2)!)![1]))])
      expect(lines(tail.stdout).slice(1)).toEqual(events.slice(-1))
      // After its last event (a number from another run, or a typo): said on stderr, not a header and silence; exit 0, as for the run's end.
      for (const since of ["5000", String(shown.chain.count)]) {
        const beyond = yield* cli(["runs", "watch", made.backtest.id, "--since", since])
        expect([beyond.code, beyond.stdout, beyond.stderr]).toEqual([
          0,
          "",
          `no events after #${since}: run ${made.backtest.id} (${made.backtest.ref}) completed with ${shown.chain.count.toLocaleString("en-US")} events (--since 0 shows them from the first)\n`
        ])
      }

      // The server verifies the run's audit chain in its database.
      const verified = yield* cli(["audit", "verify", made.backtest.ref])
      expect([verified.code, verified.stdout]).toEqual([
        0,
        expect.stringMatching(
          new RegExp(`^OK: run ${made.backtest.id}: ${shown.chain.count} events, chain head [0-9a-f]{12}…\n  control log: no operator actions \\(.*\\), intact\n$`)
        )
      ])
    }), { timeout: 90_000 })

  it.live("a paper run: started, paused, resumed and stopped; its watch then says it was stopped", () =>
    Effect.gen(function*() {
      const started = yield* cli(["runs", "start", "SMA crossover", "--mode", "paper", "--data", "synthetic:5000", "--speed", "86400", "--json"])
      expect(started.code).toBe(0)
      const run = JSON.parse(started.stdout) as { id: string; ref: string; mode: string; status: string }
      expect([run.mode, run.status]).toEqual(["paper", "running"])
      made.paper = { id: run.id, ref: run.ref }

      const paused = yield* cli(["runs", "pause", run.ref, "--reason", "  news pending\u001b[2J  "])
      expect(paused.stdout).toBe(`paused run ${run.id} (${run.ref}, paper): paused\nfollow it: swarm runs watch ${run.id}\n`)
      const long = yield* cli(["runs", "resume", run.id, "--reason", "x".repeat(501)])
      expect([long.code, long.stderr]).toEqual([2, "swarm: --reason: is 501 characters long: at most 500\n"])
      const twice = yield* cli(["runs", "pause", run.id])
      expect([twice.code, twice.stderr]).toEqual([2, `swarm: run: run ${run.id} is paused already\n`])
      expect(JSON.parse((yield* cli(["runs", "show", run.id, "--json"])).stdout).status).toBe("paused")
      const resumed = yield* cli(["runs", "resume", run.id, "--reason", "news out"])
      expect(resumed.stdout).toMatch(/^resumed run .*: running\n/)
      // Its strategy cannot be deleted under it: the run named, and how to stop it.
      const refused = yield* cli(["strategies", "delete", "SMA crossover"])
      expect([refused.code, refused.stderr]).toEqual([
        2,
        `swarm: strategy: strategy SMA crossover has an unfinished run, ${run.ref} (${run.id}): stop it first (swarm runs stop <run>)\n`
      ])

      const stopped = yield* bin(["runs", "stop", run.id, "--reason", "done for the day"])
      expect([stopped.code, stopped.stderr]).toEqual([0, ""])
      expect(stopped.stdout).toMatch(new RegExp(`^stopped run ${run.id} \\(.*, paper\\): stopped`))
      const watched = yield* cli(["runs", "watch", run.id])
      expect(watched.code).toBe(0)
      expect(lines(watched.stdout).at(-1)).toMatch(new RegExp(`^run ${run.id} \\(.*\\) was stopped after event #\\d+$`))
      const again = yield* cli(["runs", "stop", run.id])
      expect([again.code, lines(again.stderr)]).toEqual([2, [expect.stringMatching(new RegExp(`^swarm: run: run ${run.id} is stopped`))]])
      // Who did it, and when: the run's control log, as the server has it (the refused pause and stop are not in it).
      const shown = yield* cli(["runs", "show", run.id])
      const at = "at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ"
      // With the reasons given, trimmed, a terminal's escape shown as its code.
      expect(shown.stdout).toMatch(new RegExp(
        `\ncontrol   3 operator actions:\n {10}paused by (\\S+) ${at}: news pending\\\\u001b\\[2J\n {10}resumed by \\1 ${at}: news out\n {10}stopped by \\1 ${at}: done for the day\n`
      ))
      // A stop's reason ends the run's row too.
      expect(JSON.parse((yield* cli(["runs", "show", run.id, "--json"])).stdout).failure).toMatch(/^stopped by \S+: done for the day$/)
      const verified = yield* cli(["audit", "verify", run.id])
      expect([verified.code, lines(verified.stdout)[1]]).toEqual([0, "  control log: 3 operator actions (pause, resume, stop, approve, reject, trading), intact"])
    }), { timeout: 90_000 })

  it.live("runs trading: a paper run halted through the real binary, the halt lifted, each printed; refusals are one line; audited", () =>
    Effect.gen(function*() {
      const started = JSON.parse((yield* cli(["runs", "start", "SMA crossover", "--mode", "paper", "--data", "synthetic:5000", "--speed", "864000", "--json"])).stdout)
      // The bar's time as every line prints times: a date, with the time of day when it has one.
      const at = "at the bar of \\d{4}-\\d\\d-\\d\\d(?: \\d\\d:\\d\\d:\\d\\d(?:\\.\\d{3})?Z)?"
      const halted = yield* bin(["runs", "trading", started.ref, "halt", "--reason", "news pending"])
      expect([halted.code, halted.stderr]).toEqual([0, ""])
      expect(halted.stdout).toMatch(new RegExp(`^run ${started.id}: trading active → halted by admin ${at}: news pending\n$`))
      const twice = yield* cli(["runs", "trading", started.id, "halt"])
      expect([twice.code, twice.stdout, twice.stderr]).toEqual([2, "", "swarm: run: trading is already halted\n"])
      const word = yield* cli(["runs", "trading", started.id, "pause"])
      expect([word.code, word.stderr]).toEqual([2, `swarm: <halt|reduce|resume>: expected halt, reduce or resume, got "pause"\n`])
      const blank = yield* cli(["runs", "trading", started.id, "resume", "--reason", "  "])
      expect([blank.code, blank.stderr]).toEqual([2, "swarm: --reason: is empty: say why, or leave --reason out\n"])
      const theirs = yield* cli(["runs", "trading", started.id, "resume"], {
        SWARM_SERVER: server.base,
        SWARM_API_KEY: (yield* adminCreateUser(server.base, server.key, "carol")).key
      })
      expect([theirs.code, theirs.stderr]).toEqual([2, `swarm: run: no run "${started.id}" on ${server.base} (swarm runs list shows yours)\n`])

      const resumed = yield* cli(["runs", "trading", started.id, "resume", "--json"])
      expect(resumed.code).toBe(0)
      expect(JSON.parse(resumed.stdout)).toMatchObject({
        run: started.id,
        status: { state: "active", cause: "operator", actor: "admin", reason: "active by admin" },
        transition: { from: "halted", to: "active", cause: "operator", actor: "admin", reason: "active by admin" }
      })
      expect((yield* cli(["runs", "stop", started.id])).code).toBe(0)
      // Each in the run's control log, with the state it moved to (the refused ones are not in it).
      const shown = yield* cli(["runs", "show", started.id])
      const wall = "at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ"
      expect(shown.stdout).toMatch(new RegExp(
        `\ncontrol   3 operator actions:\n {10}trading moved to halted by admin ${wall}: news pending\n {10}trading moved to active by admin ${wall}: active by admin\n {10}stopped by admin ${wall}\n`
      ))
      // And in its events, where a replay gives them back.
      const watched = yield* cli(["runs", "watch", started.id])
      expect(watched.stdout).toContain("trading active → halted")
    }), { timeout: 90_000 })

  it.live("another user sees none of it: someone else's run is answered as one that does not exist", () =>
    Effect.gen(function*() {
      const other = yield* adminCreateUser(server.base, server.key, "bob")
      const as = { SWARM_SERVER: server.base, SWARM_API_KEY: other.key }
      const run = made.backtest!
      const theirs = yield* bin(["runs", "show", run.id], as)
      const none = yield* cli(["runs", "show", "run_000000000000"], as)
      expect([theirs.code, theirs.stderr]).toEqual([2, `swarm: run: no run "${run.id}" on ${server.base} (swarm runs list shows yours)\n`])
      expect(none.stderr.replace("run_000000000000", run.id)).toBe(theirs.stderr)
      expect((yield* cli(["runs", "list"], as)).stdout).toBe("no runs\n")
      expect((yield* cli(["leaderboard"], as)).stdout).toBe("no completed run to rank by totalReturn\n")
      for (const argv of [["runs", "watch", run.ref], ["runs", "stop", run.id], ["runs", "compare", run.id, made.paper!.id], ["audit", "verify", run.id]]) {
        const r = yield* cli(argv, as)
        expect([r.code, lines(r.stderr)]).toEqual([2, [expect.stringMatching(/^swarm: run: no run ".*" on http.* \(swarm runs list shows yours\)$/)]])
      }
      const strategy = yield* cli(["strategies", "show", "SMA crossover"], as)
      expect([strategy.code, strategy.stderr]).toEqual([2, `swarm: strategy: no strategy "SMA crossover" on ${server.base} (swarm strategies list shows yours)\n`])
    }), { timeout: 90_000 })

  it.live("approvals: a paper run holds its intents; one approved, one rejected with a reason; the watch shows both", () =>
    Effect.gen(function*() {
      const held = strategyFile("held.json", { name: "Held", risk: { approval: { notionalPctAbove: 1, policy: "pause", timeoutSeconds: 600 } } })
      expect((yield* cli(["strategies", "create", held])).code).toBe(0)
      const started = JSON.parse((yield* cli(["runs", "start", "Held", "--mode", "paper", "--data", "synthetic:2000", "--speed", "86400000", "--json"])).stdout)
      type Pending = { run: string; ref: string; round: string; symbol: string; side: string; quantity: number; reasons: Array<string> }
      const pending = (after: ReadonlyArray<string>) =>
        eventually(Effect.map(cli(["approvals", "list", "--run", started.id, "--json"]), (r) => {
          const all = JSON.parse(r.stdout) as Array<Pending>
          return all.length > 0 && all.some((p) => !after.includes(p.round)) ? all.filter((p) => !after.includes(p.round)) : undefined
        }))
      const [first] = yield* pending([])
      expect(first).toMatchObject({ run: started.id, ref: "Held#1", reasons: [expect.stringContaining("above the approval threshold of 1%")] })
      const table = yield* cli(["approvals", "list"])
      expect(table.stdout).toContain(first!.round)
      // A mistyped run is said so, not listed as having nothing pending.
      const typo = yield* cli(["approvals", "list", "--run", "Held#9"])
      expect([typo.code, lines(typo.stderr)]).toEqual([2, [`swarm: run: no run "Held#9" on ${server.base} (swarm runs list shows yours)`]])

      const approved = yield* cli(["approvals", "approve", started.id, first!.round])
      expect([approved.code, approved.stdout]).toEqual([0, `approved round ${first!.round} of run ${started.id}\n`])
      const twice = yield* cli(["approvals", "approve", started.id, first!.round])
      expect([twice.code, lines(twice.stderr)]).toEqual([2, [`swarm: approval: round ${first!.round} of run ${started.id} was approved already, by admin`]])
      const none = yield* cli(["approvals", "approve", started.id, "ACME@1"])
      expect([none.code, lines(none.stderr)]).toEqual([2, [`swarm: approval: no pending approval for round "ACME@1" of run "${started.id}" on ${server.base} (swarm approvals list shows them)`]])

      const [second] = yield* pending([first!.round])
      const rejected = yield* cli(["approvals", "reject", "Held#1", second!.round, "--reason", "too big for today"])
      expect([rejected.code, rejected.stdout]).toEqual([0, `rejected round ${second!.round} of run Held#1: too big for today\n`])

      // One still waiting when the run is stopped: cancelled with it, and an answer after says so.
      const [third] = yield* pending([first!.round, second!.round])
      expect((yield* cli(["runs", "stop", started.id])).code).toBe(0)
      const late = yield* cli(["approvals", "approve", started.id, third!.round])
      expect([late.code, lines(late.stderr)]).toEqual([
        2,
        [`swarm: approval: round ${third!.round} of run ${started.id} was cancelled: the run was stopped before anyone answered it`]
      ])
      const watched = yield* cli(["runs", "watch", started.id])
      expect(watched.stdout).toContain(`approval approved: round ${first!.round}, by admin`)
      expect(watched.stdout).toContain(`approval rejected: round ${second!.round}, by admin: too big for today`)
    }), { timeout: 90_000 })

  it.live("admin: users created, keys issued, listed and revoked, a user made admin; a plain user is refused", () =>
    Effect.gen(function*() {
      const created = yield* cli(["admin", "create-user", "erin"])
      expect(created.code).toBe(0)
      const erinKey = /sk_[A-Za-z0-9_-]{43}/.exec(created.stdout)![0]
      expect(created.stdout).toMatch(/^created user erin \(usr_[0-9a-f]{12}\)\. Their API key, shown this once:\n\n  sk_/)
      const asErin = { SWARM_SERVER: server.base, SWARM_API_KEY: erinKey }
      const refused = yield* cli(["admin", "users"], asErin)
      expect([refused.code, lines(refused.stderr)]).toEqual([2, [expect.stringMatching(/^swarm: .*not allowed on http.*: an admin procedure$/)]])
      expect((yield* cli(["admin", "users"])).stdout).toMatch(/erin .* user .* enabled/)

      // A label that would reorder its `admin keys` row (U+202E reversed the revoked time after it) is refused, naming the character.
      const reordering = yield* cli(["admin", "issue-key", "erin", "--label", "ci\u202e"])
      expect([reordering.code, lines(reordering.stderr)]).toEqual([2, [
        "swarm: label: a key label: no bidirectional formatting characters (U+202E at position 3): they reorder the text shown after them"
      ]])
      const issued = yield* cli(["admin", "issue-key", "erin", "--label", "ci"])
      const ciKey = /sk_[A-Za-z0-9_-]{43}/.exec(issued.stdout)![0]
      const listed = JSON.parse((yield* cli(["admin", "keys", "erin", "--json"])).stdout) as Array<{ id: string; label: string; prefix: string; revokedAt: string | null }>
      expect(listed.map((k) => [k.label, k.prefix, k.revokedAt])).toEqual([["created by an admin", erinKey.slice(0, 10), null], ["ci", ciKey.slice(0, 10), null]])
      const revoked = yield* cli(["admin", "revoke-key", listed[1]!.id])
      expect([revoked.code, revoked.stdout]).toEqual([0, `revoked ${listed[1]!.id} (${ciKey.slice(0, 10)}…): refused from now on (by a server sharing no Redis with this one, within 30 s for reads)\n`])
      expect((yield* cli(["strategies", "list"], { SWARM_SERVER: server.base, SWARM_API_KEY: ciKey })).code).toBe(2)
      const table = (yield* cli(["admin", "keys", "erin"])).stdout
      expect(table.split("\n").find((line) => line.includes(listed[1]!.id))).toMatch(/ ci .*\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s*│?\s*$/)
      const unknown = yield* cli(["admin", "revoke-key", "key_nope"])
      expect([unknown.code, lines(unknown.stderr)]).toEqual([2, ["swarm: key: no API key key_nope (swarm admin keys <user> lists a user's keys by id)"]])

      expect((yield* cli(["admin", "set-user", "erin", "--role", "admin"])).stdout).toBe("erin is an admin, enabled\n")
      const nothing = yield* cli(["admin", "set-user", "erin"])
      expect([nothing.code, lines(nothing.stderr)]).toEqual([2, ["swarm: set-user: nothing to change: give --role, --disable or --enable"]])
      expect((yield* cli(["admin", "set-user", "erin", "--disable", "--enable"])).code).toBe(2)
      // Disabling her pauses her running paper run, and says so.
      expect((yield* cli(["strategies", "create", sma], asErin)).code).toBe(0)
      const erinRun = JSON.parse((yield* cli(["runs", "start", "SMA crossover", "--mode", "paper", "--data", "synthetic:5000", "--speed", "86400", "--json"], asErin)).stdout) as {
        id: string
        ref: string
      }
      expect((yield* cli(["admin", "set-user", "erin", "--role", "user", "--disable"])).stdout).toBe(
        `erin is a user, disabled; paused their running paper run ${erinRun.ref} (${erinRun.id}) (they stay paused until resumed)\n`
      )
      expect((yield* cli(["admin", "set-user", "erin", "--disable"])).stdout).toBe("erin is a user, disabled; none of their paper runs was running\n")
      expect((yield* cli(["runs", "stop", erinRun.id])).code).toBe(0)
      expect((yield* cli(["admin", "stats"])).stdout).toMatch(/^users \d+, strategies \d+, runs \d+ \(\d+ live in this server process\), events \d+\n$/)

      // The same for scripts: one JSON document each.
      const frank = yield* cli(["admin", "create-user", "frank", "--json"])
      const made = JSON.parse(frank.stdout) as { user: { id: string; name: string; role: string; disabled: boolean }; key: string }
      expect([frank.code, made.user.name, made.user.role, made.user.disabled]).toEqual([0, "frank", "user", false])
      expect(made.key).toMatch(/^sk_[A-Za-z0-9_-]{43}$/)
      const second = JSON.parse((yield* cli(["admin", "issue-key", "frank", "--label", "bot", "--json"])).stdout) as { user: string; key: string }
      expect(second).toEqual({ user: "frank", key: expect.stringMatching(/^sk_[A-Za-z0-9_-]{43}$/) })
      const frankKeys = JSON.parse((yield* cli(["admin", "keys", "frank", "--json"])).stdout) as Array<{ id: string; label: string }>
      const bot = frankKeys.find((k) => k.label === "bot")!
      const gone = JSON.parse((yield* cli(["admin", "revoke-key", bot.id, "--json"])).stdout) as { id: string; prefix: string; revokedAt: string | null }
      expect([gone.id, gone.prefix, typeof gone.revokedAt]).toEqual([bot.id, second.key.slice(0, 10), "string"])
      const promoted = JSON.parse((yield* cli(["admin", "set-user", "frank", "--role", "admin", "--json"])).stdout) as unknown
      expect(promoted).toEqual({ id: made.user.id, name: "frank", role: "admin", disabled: false })
    }), { timeout: 90_000 })

  it.live("logout forgets the server: the next command says there is none", () =>
    Effect.gen(function*() {
      const out = yield* cli(["logout"])
      expect(out.stdout).toBe(`logged out: removed ${config}\n`)
      expect(fs.existsSync(config)).toBe(false)
      const after = yield* cli(["strategies", "list"])
      expect([after.code, lines(after.stderr)[0]]).toEqual([2, expect.stringMatching(/^swarm: --server: no server/)])
    }))
})
