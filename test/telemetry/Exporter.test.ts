/**
 * The OTLP exporter as a user meets it from the command line: a bad `OTEL_EXPORTER_OTLP_ENDPOINT`
 * is said, naming the variable — the command runs without exporting, `swarm serve` refuses to start.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { ConfigError, ConfigProvider, Effect } from "effect"
import * as Telemetry from "../../src/telemetry/Telemetry.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const home = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-exporter-"))
afterAll(() => fs.rmSync(home, { recursive: true, force: true }))

/** `swarm <args>` in a process of its own, with `env` added; its exit code, output and how long it took. */
const swarm = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.async<{ code: number; stdout: string; stderr: string; millis: number }>((resume) => {
    const started = Date.now()
    const child = execFile(
      process.execPath,
      [Path.join(root, "bin", "swarm.js"), ...args],
      { cwd: root, timeout: 60_000, env: { ...process.env, HOME: home, SWARM_DATA_DIR: Path.join(home, "data"), ...env } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr, millis: Date.now() - started }))
      }
    )
    return Effect.sync(() => void child.kill())
  })

const backtest = ["backtest", "--no-store", "--data", "data", "--strategy", "examples/sma-crossover.json", "--json"]

/** The telemetry settings read from `env`. */
const settings = (env: Record<string, string>) =>
  Effect.withConfigProvider(Telemetry.config, ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("a bad OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  it.effect("is a configuration error naming the variable and why, whatever the exporter would have made of it", () =>
    Effect.gen(function*() {
      for (const value of ["notaurl", "127.0.0.1:17412", "localhost:17412", "ftp://collector:4318"]) {
        const error = yield* Effect.flip(settings({ OTEL_EXPORTER_OTLP_ENDPOINT: value }))
        expect(ConfigError.isConfigError(error)).toBe(true)
        expect(Telemetry.explain(error)).toBe(`OTEL_EXPORTER_OTLP_ENDPOINT: not an http(s) URL: ${JSON.stringify(value)} (e.g. http://127.0.0.1:4318)`)
      }
      expect((yield* settings({ OTEL_EXPORTER_OTLP_ENDPOINT: " https://collector.example:4318/ " })).endpoint).toBe("https://collector.example:4318/")
    }))

  it.effect("given to the layer directly, an exporter that cannot be built fails the layer with the setting's error, not a defect", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.provide(Effect.void, Telemetry.make({ endpoint: "notaurl" })))
      expect(Telemetry.explain(error)).toMatch(/^OTEL_EXPORTER_OTLP_ENDPOINT: cannot export to "notaurl": /)
    }))

  it.live("a command says it and runs, without exporting", () =>
    Effect.gen(function*() {
      const ran = yield* swarm(backtest, { OTEL_EXPORTER_OTLP_ENDPOINT: "127.0.0.1:17412" })
      expect(ran.stderr).toBe(
        `swarm: OTEL_EXPORTER_OTLP_ENDPOINT: not an http(s) URL: "127.0.0.1:17412" (e.g. http://127.0.0.1:4318) (telemetry off: not exporting)\n`
      )
      expect(ran.code).toBe(0)
      expect(JSON.parse(ran.stdout)).toMatchObject({ status: "completed" })
    }), { timeout: 90_000 })

  it.live("swarm serve refuses to start, naming it", () =>
    Effect.gen(function*() {
      const ran = yield* swarm(["serve", "--port", "0"], { OTEL_EXPORTER_OTLP_ENDPOINT: "notaurl" })
      expect(ran.stderr).toBe(`swarm: OTEL_EXPORTER_OTLP_ENDPOINT: not an http(s) URL: "notaurl" (e.g. http://127.0.0.1:4318)\n`)
      expect(ran.code).toBe(2)
    }), { timeout: 90_000 })
})
