/**
 * Where the remote commands find their server and key — flag before environment before the file
 * `swarm login` wrote, a key never sent to a server it was not given for — and the config file
 * itself (mode 0600, a broken one named); then what the commands say, in-process and without any
 * server, when none is configured or what they were given cannot be sent.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { InvalidRequest, RunUnreadable, StrategyNotFound } from "../../schemas/Rpc.js"
import * as Cli from "../../src/cli/Cli.js"
import { RemoteFailed, UsageError } from "../../src/cli/CliError.js"
import { translate, transportReason } from "../../src/cli/Remote.js"
import * as RemoteConfig from "../../src/cli/RemoteConfig.js"
import { parseData } from "../../src/cli/RemoteRuns.js"
import { lines, swarm } from "./harness.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-remote-config-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

const saved = (server: string, key: string) => Option.some({ path: "/home/me/.config/swarm/config.json", server, key })

const resolved = (sources: Partial<RemoteConfig.Sources>) =>
  Either.getOrThrow(RemoteConfig.resolve({ flags: {}, env: {}, file: Option.none(), ...sources }))

describe("which server and key", () => {
  it("nothing anywhere: no server", () => {
    expect(resolved({})).toEqual(Option.none())
  })

  it("a flag wins over the environment, which wins over the file", () => {
    const file = saved("http://file:1", "sk_file")
    expect(resolved({ flags: { server: "http://flag:1", key: "sk_flag" }, env: { server: "http://env:1", key: "sk_env" }, file })).toEqual(
      Option.some({ server: "http://flag:1", serverFrom: "--server", key: "sk_flag", keyFrom: "--key" })
    )
    expect(resolved({ env: { server: "http://env:1", key: "sk_env" }, file })).toEqual(
      Option.some({ server: "http://env:1", serverFrom: "SWARM_SERVER", key: "sk_env", keyFrom: "SWARM_API_KEY" })
    )
    expect(resolved({ file })).toEqual(
      Option.some({
        server: "http://file:1",
        serverFrom: "/home/me/.config/swarm/config.json: server",
        key: "sk_file",
        keyFrom: "/home/me/.config/swarm/config.json: key"
      })
    )
    // Each on its own: a key from the environment with the file's server.
    expect(resolved({ env: { key: "sk_env" }, file })).toMatchObject(Option.some({ server: "http://file:1", key: "sk_env", keyFrom: "SWARM_API_KEY" }))
  })

  it("the file's key goes only to the file's server", () => {
    const file = saved("http://127.0.0.1:7070/", "sk_file")
    expect(resolved({ flags: { server: "127.0.0.1:7070" }, file })).toMatchObject(Option.some({ server: "http://127.0.0.1:7070", key: "sk_file" }))
    expect(resolved({ flags: { server: "http://elsewhere:7070" }, file })).toEqual(
      Option.some({ server: "http://elsewhere:7070", serverFrom: "--server", key: undefined, keyFrom: undefined })
    )
    expect(resolved({ env: { server: "http://elsewhere:7070" }, file })).toMatchObject(Option.some({ key: undefined }))
  })

  it("empty values count as not given", () => {
    expect(resolved({ flags: { server: "" }, env: { server: " ", key: "" }, file: saved("http://file:1", "sk_file") })).toMatchObject(
      Option.some({ server: "http://file:1", key: "sk_file" })
    )
  })

  it("a server that is not an http(s) URL is refused, naming where it was found", () => {
    const refused = (sources: Partial<RemoteConfig.Sources>) =>
      Either.getLeft(RemoteConfig.resolve({ flags: {}, env: {}, file: Option.none(), ...sources })).pipe(Option.getOrThrow)
    expect(refused({ flags: { server: "ftp://x" } })).toMatchObject({ field: "--server", reason: "expected an http:// or https:// URL, got \"ftp://x\"" })
    expect(refused({ env: { server: "http://a b" } })).toMatchObject({ field: "SWARM_SERVER" })
    expect(refused({ file: saved("http://u:p@host", "k") })).toMatchObject({ field: "/home/me/.config/swarm/config.json: server" })
    expect(refused({ flags: { server: "http://host/?x=1" } }).reason).toMatch(/no query/)
  })

  it("normalizes a server to a base URL", () => {
    expect(RemoteConfig.normalizeServer("localhost:7070")).toEqual(Either.right("http://localhost:7070"))
    expect(RemoteConfig.normalizeServer(" https://swarm.example.com/base/ ")).toEqual(Either.right("https://swarm.example.com/base"))
    expect(RemoteConfig.normalizeServer("HTTP://Host:80")).toEqual(Either.right("http://host"))
  })
})

describe("the config file", () => {
  it.effect("written readable by its owner only, read back, removed", () =>
    Effect.gen(function*() {
      const path = Path.join(tmp, "fresh", "nested", "config.json")
      expect(yield* RemoteConfig.readFileAt(path)).toEqual(Option.none())
      yield* RemoteConfig.writeFileAt(path, { server: "http://127.0.0.1:7070", key: "sk_secret" })
      expect(fs.statSync(path).mode & 0o777).toBe(0o600)
      expect(fs.statSync(Path.dirname(path)).mode & 0o777).toBe(0o700)
      expect(yield* RemoteConfig.readFileAt(path)).toEqual(Option.some({ path, server: "http://127.0.0.1:7070", key: "sk_secret" }))
      // A second login replaces it whole, still 0600.
      fs.chmodSync(path, 0o644)
      yield* RemoteConfig.writeFileAt(path, { server: "http://other:1", key: "sk_other" })
      expect(fs.statSync(path).mode & 0o777).toBe(0o600)
      expect(fs.readdirSync(Path.dirname(path))).toEqual(["config.json"])
      expect(yield* RemoteConfig.removeFileAt(path)).toBe(true)
      expect(yield* RemoteConfig.removeFileAt(path)).toBe(false)
    }))

  it.effect("a file that is not one is an error naming it", () =>
    Effect.gen(function*() {
      const notJson = Path.join(tmp, "not-json.json")
      fs.writeFileSync(notJson, "server = x")
      expect(yield* Effect.flip(RemoteConfig.readFileAt(notJson))).toMatchObject({ field: notJson, reason: "is not JSON: run swarm login again" })
      const wrong = Path.join(tmp, "wrong.json")
      fs.writeFileSync(wrong, JSON.stringify({ server: "http://x" }))
      expect((yield* Effect.flip(RemoteConfig.readFileAt(wrong))).reason).toMatch(/^is not a swarm config file \(.*key.*\): run swarm login again$/)
    }))

  it.effect("SWARM_CONFIG names it; without it, XDG_CONFIG_HOME or ~/.config", () =>
    Effect.gen(function*() {
      const env = (map: Record<string, string>) => RemoteConfig.environment(ConfigProvider.fromMap(new Map(Object.entries(map))))
      expect((yield* env({ SWARM_CONFIG: "/etc/swarm.json", SWARM_SERVER: "http://s", SWARM_API_KEY: "sk_k" }))).toEqual({
        server: "http://s",
        key: "sk_k",
        configPath: "/etc/swarm.json"
      })
      expect((yield* env({ XDG_CONFIG_HOME: "/xdg" })).configPath).toBe("/xdg/swarm/config.json")
      expect((yield* env({})).configPath).toBe(Path.join(os.homedir(), ".config", "swarm", "config.json"))
    }))

  it.effect("the target reads the file only when flags and environment leave something to it", () =>
    Effect.gen(function*() {
      const path = Path.join(tmp, "target.json")
      fs.writeFileSync(path, JSON.stringify({ server: "http://saved:1", key: "sk_saved" }))
      const provider = ConfigProvider.fromMap(new Map([["SWARM_CONFIG", path]]))
      expect(yield* RemoteConfig.target({}, provider)).toMatchObject(Option.some({ server: "http://saved:1", key: "sk_saved" }))
      fs.writeFileSync(path, "broken")
      expect(yield* RemoteConfig.target({ server: "http://flag:1", key: "sk_flag" }, provider)).toMatchObject(Option.some({ key: "sk_flag" }))
      expect((yield* Effect.flip(RemoteConfig.target({}, provider))).field).toBe(path)
    }))
})

describe("what a transport failure or a refusal says", () => {
  it("a refused connection, an unknown host, an HTTP error page", () => {
    const refused = { _tag: "RequestError", cause: Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }) }) }
    expect(transportReason("http://127.0.0.1:1", refused)).toBe("cannot reach http://127.0.0.1:1: connection refused")
    const both = { cause: new AggregateError([Object.assign(new Error("a"), { code: "ECONNREFUSED" })]) }
    expect(transportReason("http://localhost:1", both)).toBe("cannot reach http://localhost:1: connection refused")
    expect(transportReason("http://h", { cause: { cause: { code: "ENOTFOUND" } } })).toBe("cannot reach http://h: no such host")
    expect(transportReason("http://h", { _tag: "ResponseError", response: { status: 404 } })).toBe(
      "http://h answered HTTP 404 at /rpc: is it a Swarm server (the URL without /rpc)?"
    )
  })

  it("a procedure the server does not name is a server older than the command; a bad field is the user's", () => {
    const target: RemoteConfig.Target = { server: "http://h", serverFrom: "--server", key: "k", keyFrom: "--key" }
    const older = translate(target, "run")(new InvalidRequest({ field: "tag", reason: `no procedure is named "runs.nope"` }))
    expect(older).toBeInstanceOf(RemoteFailed)
    expect(older).toMatchObject({ field: "server", reason: `http://h does not serve this command (no procedure is named "runs.nope"): it is older than this command` })
    const bad = translate(target, "run")(new InvalidRequest({ field: "limit", reason: "Expected a positive number" }))
    expect(bad).toBeInstanceOf(UsageError)
    expect(bad).toMatchObject({ field: "limit", reason: "Expected a positive number" })
  })

  it("a strategy without the version asked for is said so, not called missing", () => {
    const target: RemoteConfig.Target = { server: "http://h", serverFrom: "--server", key: "k", keyFrom: "--key" }
    expect(translate(target, "strategy")(new StrategyNotFound({ strategy: "Appr", version: 99, latestVersion: 3 }))).toMatchObject({
      field: "--strategy-version",
      reason: `strategy "Appr" on http://h has no version 99: its versions are 1 to 3`
    })
    expect(translate(target, "strategy")(new StrategyNotFound({ strategy: "Appr" }))).toMatchObject({ field: "strategy", reason: expect.stringMatching(/^no strategy "Appr" on http:\/\/h/) })
  })

  it("a run whose record cannot be read is said so, with what ends it: exit 1, not the 3 of a server to ask again", () => {
    const target: RemoteConfig.Target = { server: "http://h", serverFrom: "--server", key: "k", keyFrom: "--key" }
    const unreadable = translate(target, "approval")(
      new RunUnreadable({ run: "run_0123456789ab", reason: "its record cannot be read: runs run_0123456789ab: strategy does not decode: name: is missing" })
    )
    expect(unreadable).toBeInstanceOf(RemoteFailed)
    expect(unreadable).toMatchObject({
      field: "run",
      reason: `run "run_0123456789ab" on http://h: its record cannot be read: runs run_0123456789ab: strategy does not decode: name: is missing ` +
        "(swarm runs stop run_0123456789ab ends it)"
    })
    expect(Cli.report(unreadable as RemoteFailed).code).toBe(1)
  })

  it("a run's deleted strategy is named as it was called, saying no suggestion can be applied to it (chat apply)", () => {
    const target: RemoteConfig.Target = { server: "http://h", serverFrom: "--server", key: "k", keyFrom: "--key" }
    expect(translate(target, "suggestion")(new StrategyNotFound({ strategy: "str_0123456789ab", deleted: { name: "Appr" } }))).toMatchObject({
      field: "strategy",
      reason: `strategy "Appr" (str_0123456789ab) on http://h was deleted: no suggestion can be applied to it (put the rule in another strategy with swarm rules put)`
    })
  })
})

describe("swarm's remote commands without a server", () => {
  it.live("none configured: one line saying how to give one, exit 2, for every command that needs one", () =>
    Effect.gen(function*() {
      for (
        const argv of [
          ["strategies", "list"],
          ["rules", "list", "x"],
          ["runs", "start", "x"],
          ["runs", "watch", "run_1"],
          ["runs", "stop", "run_1"],
          ["approvals", "list"]
        ]
      ) {
        const r = yield* swarm(argv)
        expect([r.code, lines(r.stderr)]).toEqual([
          2,
          ["swarm: --server: no server: give --server <url> (and --key), set SWARM_SERVER and SWARM_API_KEY, or run swarm login --server <url> --key <key>"]
        ])
      }
    }))

  it.live("a server without a key, and a server that is no URL", () =>
    Effect.gen(function*() {
      const noKey = yield* swarm(["strategies", "list"], { environment: { SWARM_SERVER: "http://127.0.0.1:7070" } })
      expect([noKey.code, lines(noKey.stderr)[0]]).toEqual([
        2,
        "swarm: --key: no API key for http://127.0.0.1:7070: give --key, set SWARM_API_KEY, or run swarm login --server http://127.0.0.1:7070 --key <key>"
      ])
      const bad = yield* swarm(["runs", "list", "--server", "ftp://x", "--key", "sk_x"])
      expect([bad.code, lines(bad.stderr)]).toEqual([2, ["swarm: --server: expected an http:// or https:// URL, got \"ftp://x\""]])
    }))

  it.live("login needs a server and a key; logout without a login says so", () =>
    Effect.gen(function*() {
      const noServer = yield* swarm(["login"])
      expect([noServer.code, lines(noServer.stderr)]).toEqual([2, ["swarm: --server: is required: the server to log in to (http://host:port)"]])
      const noKey = yield* swarm(["login", "--server", "http://127.0.0.1:7070"])
      expect([noKey.code, lines(noKey.stderr)]).toEqual([2, ["swarm: --key: is required: the API key for http://127.0.0.1:7070"]])
      const path = Path.join(tmp, "never.json")
      const out = yield* swarm(["logout"], { environment: { SWARM_CONFIG: path } })
      expect([out.code, out.stdout]).toEqual([0, `not logged in: there is no ${path}\n`])
    }))

  it.live("bad input is refused before anything is sent: --data, --speed on a backtest, a rule, a strategy file", () =>
    Effect.gen(function*() {
      // A server that does not exist: none of these get as far as calling it.
      const environment = { SWARM_SERVER: "http://127.0.0.1:9", SWARM_API_KEY: "sk_x" }
      const data = yield* swarm(["runs", "start", "s", "--data", "synthetic:0"], { environment })
      expect([data.code, lines(data.stderr)[0]]).toEqual([2, "swarm: --data: a synthetic market has 1 to 1000000 bars, got 0"])
      const speed = yield* swarm(["runs", "start", "s", "--speed", "10"], { environment })
      expect([speed.code, lines(speed.stderr)[0]]).toEqual([2, "swarm: --speed: only paper runs are paced: add --mode paper, or leave --speed out"])
      const rule = yield* swarm(["rules", "put", "s", "{\"id\":\"cap\",\"name\":\"Cap\",\"kind\":\"max_position_percent\",\"params\":{\"percent\":120}}"], {
        environment
      })
      expect([rule.code, lines(rule.stderr)]).toEqual([2, ["swarm: <rule>: rule.params.percent: a percent must be at most 100"]])
      const file = Path.join(tmp, "bad.json")
      fs.writeFileSync(file, JSON.stringify({ name: "x", symbols: [], agents: [{ type: "sma_crossover" }] }))
      const strategy = yield* swarm(["strategies", "create", file], { environment })
      expect(strategy.code).toBe(2)
      expect(lines(strategy.stderr)[0]).toBe(`swarm: ${file}: symbols: a strategy trades at least one symbol`)
      const since = yield* swarm(["runs", "watch", "run_1", "--since", "-1"], { environment })
      expect([since.code, lines(since.stderr)[0]]).toEqual([2, "swarm: --since: expected an event number, 0 or more, got -1"])
    }))

  it("--data: sample or synthetic:<bars>[:<seed>]", () => {
    expect(parseData("sample")).toEqual(Either.right({ _tag: "sample" }))
    expect(parseData("synthetic:300")).toEqual(Either.right({ _tag: "synthetic", bars: 300 }))
    expect(parseData("synthetic:300:7")).toEqual(Either.right({ _tag: "synthetic", bars: 300, seed: 7 }))
    expect(Either.isLeft(parseData("synthetic"))).toBe(true)
    expect(Either.isLeft(parseData(Path.join(root, "data")))).toBe(true)
  })

  it("--version after strategies show and runs start means the strategy's version; anywhere else, the program's", () => {
    expect(Cli.spelled(["strategies", "show", "x", "--version", "2"])).toEqual(["strategies", "show", "x", "--strategy-version", "2"])
    expect(Cli.spelled(["runs", "start", "x", "--version=3"])).toEqual(["runs", "start", "x", "--strategy-version=3"])
    expect(Cli.spelled(["strategies", "show", "x", "--version", "-1"])).toEqual(["strategies", "show", "x", "--strategy-version", "-1"])
    expect(Cli.spelled(["strategies", "show", "x", "--version", "--json"])).toEqual(["strategies", "show", "x", "--version", "--json"])
    expect(Cli.spelled(["--version"])).toEqual(["--version"])
    expect(Cli.spelled(["runs", "list", "--version"])).toEqual(["runs", "list", "--version"])
  })
})
