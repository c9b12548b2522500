/**
 * `SWARM_LOG_FORMAT`: unset keeps the pretty lines; `json` writes one JSON object a line (what
 * a log shipper reads), `logfmt` key=value pairs, `pretty` a terminal's; anything else is refused,
 * named.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer, Logger, LogLevel } from "effect"
import * as LogFormat from "../../src/telemetry/LogFormat.js"

const read = (env: Record<string, string>) =>
  Effect.withConfigProvider(Effect.either(LogFormat.config), ConfigProvider.fromMap(new Map(Object.entries(env))))

/**
 * What `format`'s logger writes to the console for one INFO line, under `installed` (the pretty
 * logger, as NodeRuntime.runMain installs it; or Effect's default, as the plain runtime has it).
 */
const written = (format: LogFormat.LogFormat, installed: Layer.Layer<never>) => {
  const lines: Array<string> = []
  const original = console.log
  console.log = (...args: Array<unknown>) => void lines.push(args.map(String).join(" "))
  try {
    Effect.runSync(
      Effect.logInfo("Redis is back").pipe(
        Effect.annotateLogs({ redis: "redis://h:6379" }),
        Effect.provide(LogFormat.layer(format)),
        Effect.provide(installed)
      )
    )
  } finally {
    console.log = original
  }
  return lines
}

describe("SWARM_LOG_FORMAT", () => {
  it.effect("unset or empty: the default; pretty, json, logfmt taken; anything else refused, named", () =>
    Effect.gen(function*() {
      expect(yield* read({})).toEqual(Either.right("pretty"))
      expect(yield* read({ SWARM_LOG_FORMAT: " " })).toEqual(Either.right("pretty"))
      for (const format of ["pretty", "json", "logfmt", "JSON"]) {
        expect(yield* read({ SWARM_LOG_FORMAT: format })).toEqual(Either.right(format.toLowerCase()))
      }
      const bad = yield* read({ SWARM_LOG_FORMAT: "xml" })
      expect(Either.isLeft(bad)).toBe(true)
      expect(String(Either.getLeft(bad).pipe((o) => o._tag === "Some" ? o.value : ""))).toContain("SWARM_LOG_FORMAT")
      expect(String(Either.getLeft(bad).pipe((o) => o._tag === "Some" ? o.value : ""))).toContain("must be pretty, json or logfmt")
    }))

  it("json: one JSON object a line, with the message, level and annotations; logfmt: key=value — in place of the pretty logger", () => {
    for (const installed of [Logger.pretty, Layer.empty]) {
      const json = written("json", installed)
      expect(json).toHaveLength(1)
      expect(JSON.parse(json[0]!)).toMatchObject({ message: "Redis is back", logLevel: "INFO", annotations: { redis: "redis://h:6379" } })
      const logfmt = written("logfmt", installed)
      expect(logfmt).toHaveLength(1)
      expect(logfmt[0]).toMatch(/level=INFO .*message="Redis is back" redis=redis:\/\/h:6379/)
    }
    expect(written("pretty", Logger.pretty)[0]).toMatch(/INFO .*Redis is back/)
  })

  it("what the server says outside its logger: pretty, its line on stderr as always; json and logfmt, a record with fields on stdout", () => {
    const said = (format: LogFormat.LogFormat) => {
      const out = { stdout: "", stderr: "" }
      const say = LogFormat.sayer(format, { stdout: (text) => void (out.stdout += text), stderr: (text) => void (out.stderr += text) })
      say("stopping: 1 run suspended (A#1); the next start resumes it", { runs: ["run_1"], reason: undefined }, { pretty: "swarm: stopping: 1 run suspended (A#1); the next start resumes it" })
      say("cannot look for unfinished runs: down", { reason: "down" }, { level: LogLevel.Warning })
      return out
    }
    expect(said("pretty")).toEqual({
      stdout: "",
      stderr: "swarm: stopping: 1 run suspended (A#1); the next start resumes it\ncannot look for unfinished runs: down\n"
    })
    const json = said("json")
    expect(json.stderr).toBe("")
    const records = json.stdout.trimEnd().split("\n").map((line) => JSON.parse(line))
    expect(records).toEqual([
      expect.objectContaining({ message: "stopping: 1 run suspended (A#1); the next start resumes it", logLevel: "INFO", annotations: { runs: ["run_1"] } }),
      expect.objectContaining({ message: "cannot look for unfinished runs: down", logLevel: "WARN", annotations: { reason: "down" } })
    ])
    const logfmt = said("logfmt")
    expect(logfmt.stderr).toBe("")
    expect(logfmt.stdout.trimEnd().split("\n")).toEqual([
      expect.stringMatching(/^timestamp=\S+ level=INFO fiber= message="stopping: 1 run suspended \(A#1\); the next start resumes it" runs="\[\\"run_1\\"\]"$/),
      expect.stringMatching(/^timestamp=\S+ level=WARN fiber= message="cannot look for unfinished runs: down" reason=down$/)
    ])
  })
})
