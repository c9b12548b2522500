/**
 * The OTLP exporter as a user meets it from the command line: a bad `OTEL_EXPORTER_OTLP_ENDPOINT`
 * is said, naming the variable — the command runs without exporting, `swarm serve` refuses to start;
 * a collector that is down or never answers delays a command's exit, or a server's shutdown, by a
 * bounded flush only.
 */
import { execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { createServer } from "node:http"
import { FetchHttpClient, HttpClient } from "@effect/platform"
import { ConfigError, ConfigProvider, Effect, Layer, Logger, Schema } from "effect"
import { TraceSampling } from "../../src/telemetry/Sampling.js"
import { HealthReport } from "../../src/edge/Health.js"
import * as Telemetry from "../../src/telemetry/Telemetry.js"
import { ProcessGroups } from "../cli/processes.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const home = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-exporter-"))
afterAll(() => fs.rmSync(home, { recursive: true, force: true }))

/** A loopback collector for the scope that accepts connections and never answers; its URL. */
const hung = Effect.map(
  Effect.acquireRelease(
    Effect.async<{ readonly server: net.Server; readonly sockets: Set<net.Socket> }>((resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  ),
  ({ server }) => `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
)

/** A loopback port with nothing listening: one taken and given back. */
const down = Effect.async<string>((resume) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(`http://127.0.0.1:${port}`)))
  })
})

/**
 * `swarm <args>` with `env` added: when its first output came and when it exited (ms from its
 * start) — what a user waits for after the answer.
 */
const timed = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.async<{ code: number | null; output: number; exit: number }>((resume) => {
    const started = Date.now()
    const child = spawn(process.execPath, [Path.join(root, "bin", "swarm.js"), ...args], {
      cwd: root,
      env: { ...process.env, HOME: home, ...env }
    })
    let output: number | undefined
    child.stdout.on("data", () => (output ??= Date.now() - started))
    child.stderr.resume()
    child.on("exit", (code) => resume(Effect.succeed({ code, output: output ?? Number.NaN, exit: Date.now() - started })))
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

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

describe("the signal-specific endpoints, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and …_METRICS_ENDPOINT", () => {
  const generic = "http://collector:4318/"
  const traces = "http://traces.example:4318/custom/spans"
  const metrics = "https://metrics.example/otlp"
  /** Where each signal goes, and what the start-up line and /health say, for `env`. */
  const where = (env: Record<string, string>) =>
    Effect.map(settings(env), (options) => {
      const info = Telemetry.describe(options)
      return { kind: info.kind, traces: info.traces, metrics: info.metrics, description: info.description }
    })

  it.effect("are used as they are, before the generic one, to which each signal's path is appended", () =>
    Effect.gen(function*() {
      expect(yield* where({})).toMatchObject({ kind: "in-process", traces: undefined, metrics: undefined })
      expect(yield* where({ OTEL_EXPORTER_OTLP_ENDPOINT: generic })).toMatchObject({
        kind: "otlp",
        traces: "http://collector:4318/v1/traces",
        metrics: "http://collector:4318/v1/metrics"
      })
      // Each signal-specific one wins over the generic one, for its signal only; no path appended.
      expect(yield* where({ OTEL_EXPORTER_OTLP_ENDPOINT: generic, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces })).toMatchObject({
        traces,
        metrics: "http://collector:4318/v1/metrics"
      })
      expect(yield* where({ OTEL_EXPORTER_OTLP_ENDPOINT: generic, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: metrics })).toMatchObject({
        traces: "http://collector:4318/v1/traces",
        metrics
      })
      const both = yield* where({ OTEL_EXPORTER_OTLP_ENDPOINT: generic, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: ` ${metrics} ` })
      expect(both).toMatchObject({ kind: "otlp", traces, metrics })
      expect(both.description).toContain(`telemetry: OTLP/HTTP, traces to ${traces}, metrics to ${metrics};`)
      // Without the generic one, only the signal configured is exported.
      const tracesOnly = yield* where({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces })
      expect(tracesOnly).toMatchObject({ kind: "otlp", traces, metrics: undefined })
      expect(tracesOnly.description).toContain(
        `traces to ${traces}, metrics not exported (no OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT);`
      )
      const metricsOnly = yield* where({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: metrics })
      expect(metricsOnly).toMatchObject({ kind: "otlp", traces: undefined, metrics })
      expect(metricsOnly.description).toContain(`traces not exported (no OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT), metrics to ${metrics};`)
      // /health carries where each goes.
      const health = Schema.encodeSync(HealthReport.fields.telemetry)(Telemetry.describe(yield* settings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces })))
      expect(health).toMatchObject({ kind: "otlp", traces })
      expect(health).not.toHaveProperty("metrics")
    }))

  it.effect("a bad one is a configuration error naming it and why, as the generic one is", () =>
    Effect.gen(function*() {
      for (const signal of ["TRACES", "METRICS"]) {
        const name = `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`
        for (const value of ["notaurl", "127.0.0.1:17412", "localhost:17412/v1/traces", "ftp://collector:4318"]) {
          for (const env of [{ [name]: value }, { [name]: value, OTEL_EXPORTER_OTLP_ENDPOINT: generic }]) {
            const error = yield* Effect.flip(settings(env))
            expect(ConfigError.isConfigError(error)).toBe(true)
            expect(Telemetry.explain(error)).toBe(
              `${name}: not an http(s) URL: ${JSON.stringify(value)} (e.g. http://127.0.0.1:4318/v1/${signal.toLowerCase()})`
            )
          }
        }
      }
      // Both bad, and the generic: each named.
      const all = yield* Effect.flip(settings({
        OTEL_EXPORTER_OTLP_ENDPOINT: "a",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "b",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "c"
      }))
      for (const name of ["OTEL_EXPORTER_OTLP_ENDPOINT: ", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: ", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "]) {
        expect(Telemetry.explain(all)).toContain(name)
      }
    }))

  it.effect("given to the layer directly, one that cannot be built fails the layer naming that setting", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.provide(Effect.void, Telemetry.make({ endpoint: "http://127.0.0.1:4318", tracesEndpoint: "notaurl" })))
      expect(Telemetry.explain(error)).toMatch(/^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: cannot export to "notaurl": /)
    }))

  it.live("a command says a bad one, naming it, and exports what the others leave", () =>
    Effect.gen(function*() {
      const said: Array<string> = []
      const exporting = (env: Record<string, string>) =>
        Effect.scoped(Effect.gen(function*() {
          said.length = 0
          yield* Layer.build(Telemetry.layerIfExporting((line) => said.push(line)).pipe(
            Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
          ))
          return [...said]
        }))
      expect(yield* exporting({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "notaurl" })).toEqual([
        `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: not an http(s) URL: "notaurl" (e.g. http://127.0.0.1:4318/v1/traces) (telemetry off: not exporting)`
      ])
      expect(yield* exporting({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "notaurl", OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://127.0.0.1:1/m" })).toEqual([
        `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: not an http(s) URL: "notaurl" (e.g. http://127.0.0.1:4318/v1/traces) (not exporting traces)`
      ])
      expect(yield* exporting({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "notaurl", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1" })).toEqual([
        `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: not an http(s) URL: "notaurl" (e.g. http://127.0.0.1:4318/v1/traces) (traces to http://127.0.0.1:1/v1/traces instead)`
      ])
      expect(yield* exporting({ OTEL_EXPORTER_OTLP_ENDPOINT: "notaurl", OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://127.0.0.1:1/m" })).toEqual([
        `OTEL_EXPORTER_OTLP_ENDPOINT: not an http(s) URL: "notaurl" (e.g. http://127.0.0.1:4318) (not exporting traces)`
      ])
    }), { timeout: 30_000 })
})

describe("trace headers", () => {
  // A command that exports no traces sent `traceparent` and `b3` all the same: the server's spans
  // then named as their parent a span no collector ever saw (orphans in Jaeger).
  it.scopedLive("a command's requests carry trace headers only when it exports its traces", () =>
    Effect.gen(function*() {
      const heard: Array<Record<string, string | string[] | undefined>> = []
      const server = createServer((req, res) => {
        heard.push(req.headers)
        req.resume()
        req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
      const headersWith = (env: Record<string, string>) =>
        Effect.gen(function*() {
          heard.length = 0
          const client = yield* HttpClient.HttpClient
          yield* Effect.scoped(client.get(`${url}/rpc`)).pipe(Effect.withSpan("command"))
          const h = heard[0]!
          return { traceparent: h.traceparent !== undefined, b3: h.b3 !== undefined }
        }).pipe(
          Effect.provide(Telemetry.layerIfExporting(() => {}).pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))),
          Effect.provide(FetchHttpClient.layer),
          // Each as a command is, a program of its own (a layer's fiber settings outlive its scope).
          (program) => Effect.promise(() => Effect.runPromise(program))
        )
      expect(yield* headersWith({})).toEqual({ traceparent: false, b3: false })
      expect(yield* headersWith({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${url}/v1/metrics` })).toEqual({ traceparent: false, b3: false })
      expect(yield* headersWith({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${url}/v1/traces` })).toEqual({ traceparent: true, b3: true })
    }), { timeout: 30_000 })
})

describe("a collector that is down or never answers", () => {
  // The flush at exit is bounded (2.5 s, every exporter at once); before, a command printed its
  // result and then waited 7–10 s more (a 3 s flush, then a 3 s metric shutdown, each waiting out
  // the exporter's 10 s request timeout). The bound asserted leaves room for a loaded machine.
  it.live("a command exits within a few seconds of its answer", () =>
    Effect.gen(function*() {
      for (const endpoint of [yield* hung, yield* down]) {
        const ran = yield* timed(backtest, { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint })
        expect(ran.code).toBe(0)
        expect(ran.exit - ran.output, endpoint).toBeLessThan(6_000)
      }
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("swarm serve shuts down on Ctrl-C well inside Docker's 10 s grace", () =>
    Effect.gen(function*() {
      const endpoint = yield* hung
      const processes = new ProcessGroups()
      yield* Effect.addFinalizer(() => Effect.sync(() => processes.killAll()))
      const dataDir = fs.mkdtempSync(Path.join(home, "serve-"))
      const served = yield* Effect.promise(() =>
        processes.serve({
          cwd: home,
          settle: 3_000,
          env: Object.fromEntries(
            Object.entries({ ...process.env, HOME: home, SWARM_DATA_DIR: dataDir, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }).filter(([k]) => k !== "DATABASE_URL")
          )
        })
      )
      const stopping = Date.now()
      process.kill(-served.child.pid!, "SIGINT")
      const code = yield* Effect.promise(() => served.exited)
      expect(code).toBe(0)
      expect(Date.now() - stopping).toBeLessThan(7_000)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})

describe("exports that fail", () => {
  /** `check` until it holds, every 100 ms, for at most `millis`. */
  const eventually = (check: () => boolean, millis: number) =>
    Effect.gen(function*() {
      const until = Date.now() + millis
      while (!check() && Date.now() < until) yield* Effect.sleep("100 millis")
    })

  it.live("show in the telemetry's info and /health from the first failure until one goes through, said once each way", () =>
    Effect.gen(function*() {
      const endpoint = yield* down
      const logged: Array<string> = []
      yield* Effect.gen(function*() {
        const telemetry = yield* Telemetry.Telemetry
        expect(telemetry.info.failingSince).toBeUndefined()
        const before = Date.now()
        yield* eventually(() => telemetry.info.failingSince !== undefined, 15_000)
        const failing = telemetry.info
        expect(failing.failingSince).toBeGreaterThanOrEqual(before)
        expect(failing.error).toMatch(/^metrics: /)
        // /health carries it (its schema used to drop anything but kind and description).
        const health = Schema.encodeSync(HealthReport.fields.telemetry)(failing)
        expect(health).toMatchObject({ kind: "otlp", failingSince: failing.failingSince, error: failing.error })
        // The collector comes up on that port: the next export clears it.
        const collector = createServer((req, res) => {
          req.resume()
          req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"))
        })
        yield* Effect.acquireRelease(
          Effect.async<void>((resume) => void collector.listen(Number(new URL(endpoint).port), "127.0.0.1", () => resume(Effect.void))),
          // Closed once the telemetry has shut down (its last export flushed to it): closing its
          // connections before that failed the flush on a loaded machine, a second failure said.
          () =>
            Effect.async<void>((resume) => {
              collector.closeAllConnections()
              collector.close(() => resume(Effect.void))
            })
        )
        yield* eventually(() => telemetry.info.failingSince === undefined, 15_000)
        expect(telemetry.info.failingSince).toBeUndefined()
        expect(telemetry.info.error).toBeUndefined()
      }).pipe(
        Effect.provide(Telemetry.make({ endpoint, exportIntervalMillis: 200 })),
        Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logged.push(String(message)))))
      )
      expect(logged.filter((line) => line.includes("exports to the collector fail"))).toHaveLength(1)
      expect(logged.filter((line) => line.includes("go through again"))).toHaveLength(1)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("a collector that answers before reading the batch", () => {
  /**
   * A raw loopback server that, as soon as a request's headers are in, writes a 404 and destroys
   * the socket, the body unread (the kernel resets the connection); what it saw.
   */
  const rude = Effect.map(
    Effect.acquireRelease(
      Effect.async<{ readonly server: net.Server; readonly requests: Array<string> }>((resume) => {
        const requests: Array<string> = []
        const server = net.createServer((socket) => {
          let head = ""
          socket.on("error", () => {})
          const onData = (chunk: Buffer) => {
            head += chunk.toString("latin1")
            if (!head.includes("\r\n\r\n")) return
            socket.removeListener("data", onData)
            requests.push(head.split("\r\n")[0]!)
            socket.write("HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nnot found")
            socket.destroy()
          }
          socket.on("data", onData)
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, requests })))
      }),
      ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
    ),
    ({ requests, server }) => ({ url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/v1/traces`, requests })
  )

  // The request's body still being written when the 404 has been read, its last write fails with
  // ECONNRESET (or EPIPE) just as Node's client has taken its error listener off the socket: it was
  // an uncaught exception that killed the process. On loopback the batch must outgrow the kernel's
  // socket buffers (a few MB) for the body to be in flight; over a network 0.5 MB did it.
  it.live("the process survives, and the failed export is reported as any other", () =>
    Effect.gen(function*() {
      const collector = yield* rude
      const uncaught: Array<unknown> = []
      const onUncaught = (error: unknown) => void uncaught.push(error)
      process.on("uncaughtException", onUncaught)
      yield* Effect.addFinalizer(() => Effect.sync(() => void process.off("uncaughtException", onUncaught)))
      const logged: Array<string> = []
      const big = "x".repeat(1024 * 1024)
      for (let attempt = 0; attempt < 3; attempt++) {
        const info = yield* Effect.gen(function*() {
          const telemetry = yield* Telemetry.Telemetry
          // Eight spans of 1 MB each: one batch of 8 MB, posted when the layer closes.
          for (let i = 0; i < 8; i++) yield* Effect.void.pipe(Effect.withSpan(`big-${i}`, { attributes: { payload: big } }))
          return () => telemetry.info
        }).pipe(
          Effect.provide(Telemetry.make({ tracesEndpoint: collector.url })),
          Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logged.push(String(message)))))
        )
        // The socket's error comes just after the response: give it time to come.
        yield* Effect.sleep("300 millis")
        expect(info()).toMatchObject({ kind: "otlp", failingSince: expect.any(Number), error: expect.stringMatching(/^traces: /) })
      }
      expect(uncaught).toEqual([])
      expect(collector.requests.length).toBeGreaterThanOrEqual(3)
      expect(collector.requests.every((line) => line === "POST /v1/traces HTTP/1.1")).toBe(true)
      expect(logged.filter((line) => line.startsWith("telemetry: exports to the collector fail (traces: "))).toHaveLength(3)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("a command's telemetry settings", () => {
  it.live("swarm backtest's own span names its run (swarm.run), as its rounds' spans do", () =>
    Effect.gen(function*() {
      const bodies: Array<string> = []
      const collector = createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          if (req.url === "/v1/traces") bodies.push(Buffer.concat(chunks).toString("utf8"))
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void collector.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.async<void>((resume) => void collector.close(() => resume(Effect.void)))
      )
      const url = `http://127.0.0.1:${(collector.address() as net.AddressInfo).port}`
      const ran = yield* swarm(backtest, { OTEL_EXPORTER_OTLP_ENDPOINT: url, SWARM_TRACE_SAMPLE: "0.01" })
      expect(ran.code, ran.stderr).toBe(0)
      const run = (JSON.parse(ran.stdout) as { run: string }).run
      type Span = { readonly name: string; readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: { readonly stringValue?: string } }> }
      const spans = bodies.flatMap((body) =>
        (JSON.parse(body).resourceSpans as Array<{ scopeSpans: Array<{ spans: Array<Span> }> }>).flatMap((r) => r.scopeSpans.flatMap((s) => s.spans))
      )
      const runOf = (span: Span) => span.attributes.find((a) => a.key === "swarm.run")?.value.stringValue
      const command = spans.filter((span) => span.name === "swarm.backtest")
      expect(command.map(runOf)).toEqual([run])
      const rounds = spans.filter((span) => span.name === "Coordinator.round")
      expect(rounds.length).toBeGreaterThan(0)
      expect(rounds.every((span) => runOf(span) === run)).toBe(true)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a bad SWARM_TRACE_SAMPLE is said, naming it, and traces as by default; the exporting goes on", () =>
    Effect.gen(function*() {
      const posted: Array<string> = []
      const collector = createServer((req, res) => {
        posted.push(req.url ?? "")
        req.resume()
        req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void collector.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.async<void>((resume) => void collector.close(() => resume(Effect.void)))
      )
      const url = `http://127.0.0.1:${(collector.address() as net.AddressInfo).port}`
      const said: Array<string> = []
      const environment = ConfigProvider.fromMap(new Map([["OTEL_EXPORTER_OTLP_ENDPOINT", url], ["SWARM_TRACE_SAMPLE", "2"], ["SWARM_TRACE_SAMPLE_PAPER", "often"]]))
      const rates = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(Telemetry.layerIfExporting((line) => said.push(line)).pipe(Layer.provide(Layer.setConfigProvider(environment))))
        return yield* Effect.provide(TraceSampling, context)
      }))
      expect(rates).toEqual({ backtest: 0, paper: 1 })
      expect(said).toEqual([
        "SWARM_TRACE_SAMPLE: must be a fraction between 0 and 1, not 2 (1 traces every round, 0.0001 one in 10,000) (tracing backtests as by default: no round)",
        `SWARM_TRACE_SAMPLE_PAPER: Expected a number value but received "often" (tracing paper runs as by default: every round)`
      ])
      // The exporter was installed all the same: closing it flushed the metrics to the collector.
      expect(posted).toContain("/v1/metrics")

      // From the command line: said, and the command runs and exports.
      posted.length = 0
      const ran = yield* swarm(backtest, { OTEL_EXPORTER_OTLP_ENDPOINT: url, SWARM_TRACE_SAMPLE: "2" })
      expect(ran.stderr).toBe(`swarm: ${said[0]}\n`)
      expect(ran.code).toBe(0)
      expect(posted).toContain("/v1/metrics")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("an endpoint with a user and password", () => {
  it.live("the password is shown nowhere; the exports carry it as a Basic Authorization header", () =>
    Effect.gen(function*() {
      const seen: Array<{ url: string; authorization: string | undefined }> = []
      const collector = createServer((req, res) => {
        seen.push({ url: req.url ?? "", authorization: req.headers.authorization })
        req.resume()
        req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void collector.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.async<void>((resume) => void collector.close(() => resume(Effect.void)))
      )
      const port = (collector.address() as net.AddressInfo).port
      const endpoint = `http://otel:OtelS3cret@127.0.0.1:${port}`
      const info = Telemetry.describe({ endpoint })
      expect(JSON.stringify(info)).not.toContain("OtelS3cret")
      expect(info.traces).toBe(`http://otel:***@127.0.0.1:${port}/v1/traces`)
      expect(info.metrics).toBe(`http://otel:***@127.0.0.1:${port}/v1/metrics`)
      const own = Telemetry.describe({ tracesEndpoint: `${endpoint}/v1/traces`, metricsEndpoint: `${endpoint}/m` })
      expect(JSON.stringify(own)).not.toContain("OtelS3cret")
      expect(Telemetry.endpointProblem("otlp://otel:OtelS3cret@x")).not.toContain("OtelS3cret")
      // /health's telemetry, as encoded.
      expect(JSON.stringify(Schema.encodeSync(HealthReport.fields.telemetry)(info))).not.toContain("OtelS3cret")

      yield* Effect.scoped(Layer.build(Telemetry.make({ endpoint, exportIntervalMillis: 60_000 })))
      // Closing the layer flushed the metrics to the collector, authenticated.
      const basic = `Basic ${Buffer.from("otel:OtelS3cret").toString("base64")}`
      expect(seen).toContainEqual({ url: "/v1/metrics", authorization: basic })
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
