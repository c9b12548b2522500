/**
 * The Docker stack (docker/): `docker compose config` accepts the compose file and it has every
 * service — Postgres, Redis, Ollama, the OpenTelemetry collector, Jaeger and two Swarm servers
 * sharing them — with each server pointed at all of them; the collector's config sends traces to
 * Jaeger. Runs where a compose command exists (the `docker compose` plugin, else `docker-compose`);
 * `config` needs no daemon.
 */
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { parse } from "yaml"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const composeFile = join(root, "docker", "compose.yaml")

const works = (command: string, args: ReadonlyArray<string>) => spawnSync(command, [...args], { encoding: "utf8" }).status === 0

/** `docker compose` (v2) or `docker-compose` (v1), whichever this machine has. */
const compose: ReadonlyArray<string> | undefined = works("docker", ["compose", "version"])
  ? ["docker", "compose"]
  : works("docker-compose", ["version"])
  ? ["docker-compose"]
  : undefined

interface Service {
  readonly image?: string
  readonly build?: unknown
  readonly environment?: Record<string, string> | Array<string>
  readonly depends_on?: Record<string, unknown> | Array<string>
  readonly ports?: ReadonlyArray<unknown>
}

const environmentOf = (service: Service): Record<string, string> =>
  Array.isArray(service.environment)
    ? Object.fromEntries(service.environment.map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]))
    : (service.environment ?? {})

const dependsOn = (service: Service): Array<string> =>
  Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {})

describe("the Docker stack", () => {
  // CI installs a compose command and then requires this test (SWARM_REQUIRE_COMPOSE=1): it cannot pass by skipping.
  it.runIf(compose !== undefined || process.env.SWARM_REQUIRE_COMPOSE === "1")(`${(compose ?? ["docker", "compose"]).join(" ")} config accepts the compose file: every service, the servers wired to all of them`, () => {
    expect(compose, "a compose command (docker compose, or docker-compose)").toBeDefined()
    const [command, ...args] = compose!
    const ran = spawnSync(command!, [...args, "-f", composeFile, "config"], { encoding: "utf8", cwd: root })
    expect(ran.stderr).not.toMatch(/invalid|error/i)
    expect(ran.status).toBe(0)
    const config = parse(ran.stdout) as { services: Record<string, Service> }
    expect(Object.keys(config.services).sort()).toEqual(
      expect.arrayContaining(["jaeger", "ollama", "otel-collector", "postgres", "redis", "swarm-1", "swarm-2"])
    )
    for (const name of ["swarm-1", "swarm-2"]) {
      const service = config.services[name]!
      expect(service.build).toBeDefined()
      expect(environmentOf(service)).toMatchObject({
        DATABASE_URL: expect.stringContaining("@postgres:5432/"),
        REDIS_URL: "redis://redis:6379",
        OLLAMA_HOST: "http://ollama:11434",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel-collector:4318"
      })
      expect(dependsOn(service)).toEqual(expect.arrayContaining(["postgres", "redis", "otel-collector"]))
    }
    // Only the first server bootstraps an empty database: the second waits for it.
    expect(dependsOn(config.services["swarm-2"]!)).toContain("swarm-1")
    expect(config.services["swarm-1"]!.ports).toHaveLength(1)
    expect(config.services["swarm-2"]!.ports).toHaveLength(1)
  })

  it("the collector sends traces to Jaeger and metrics to Prometheus; the image is built in two stages on node:20-slim", () => {
    const collector = parse(readFileSync(join(root, "docker", "otel-collector.yaml"), "utf8")) as {
      receivers: { otlp: { protocols: { http: { endpoint: string } } } }
      exporters: Record<string, { endpoint?: string }>
      service: { pipelines: Record<string, { receivers: Array<string>; exporters: Array<string> }> }
    }
    expect(collector.receivers.otlp.protocols.http.endpoint).toBe("0.0.0.0:4318")
    expect(collector.service.pipelines.traces!.exporters).toContain("otlp/jaeger")
    expect(collector.exporters["otlp/jaeger"]!.endpoint).toBe("jaeger:4317")
    expect(collector.service.pipelines.metrics!.exporters).toContain("prometheus")
    const dockerfile = readFileSync(join(root, "docker", "Dockerfile"), "utf8")
    expect(dockerfile.match(/^FROM node:20-slim AS \w+$/gm)).toHaveLength(2)
    expect(dockerfile).toMatch(/^RUN npm ci\b/m)
    expect(dockerfile).toMatch(/^COPY --from=deps /m)
  })
})
