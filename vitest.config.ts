import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const root = Path.dirname(fileURLToPath(import.meta.url))

/**
 * Every entry of Effect's packages and OpenTelemetry's that the sources and tests import
 * (`effect`, `@effect/sql/SqlError`, ...), found by reading them, so that none is left out: a
 * package entry missing from the list would load from node_modules beside the bundled one, a second
 * copy of Effect in the same process.
 */
const bundledEntries = (): Array<string> => {
  const found = new Set<string>()
  const read = (dir: string) => {
    for (const entry of Fs.readdirSync(Path.join(root, dir), { withFileTypes: true })) {
      const path = Path.join(dir, entry.name)
      if (entry.isDirectory()) read(path)
      else if (entry.name.endsWith(".ts")) {
        const text = Fs.readFileSync(Path.join(root, path), "utf8")
        for (const match of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)"((?:effect|@effect\/[\w-]+|@opentelemetry\/[\w-]+)(?:\/[\w-]+)*)"/g)) {
          found.add(match[1]!)
        }
      }
    }
  }
  for (const dir of ["src", "schemas", "agents", "supervisors", "test"]) read(dir)
  // Only what resolves: a test's text may name a module that is not one.
  const require = createRequire(import.meta.url)
  return [...found].filter((id) => {
    try {
      require.resolve(id)
      return true
    } catch {
      return false
    }
  }).sort()
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // At least two test files at a time, even on two cores (vitest's default there is one): most
    // suites wait on server processes, sockets, Chromium and the databases rather than on the CPU,
    // so two files side by side take about 0.6 of the time one at a time does. Files share nothing:
    // each has its own Postgres database, Redis key prefix, HOME and ports.
    maxWorkers: Math.max(2, Os.availableParallelism() - 1),
    minWorkers: 1,
    // Each test file runs in a process of its own, which imports Effect and its packages afresh:
    // some 1,500 modules, most of the CPU a file spends before its first test. Bundled once per
    // run (esbuild, into node_modules/.vite), they load as a few files: about 0.3 s of CPU less per
    // file (of 1.2-3.4 s importing), on 174 files. Packages kept as they are: the ones with files
    // beside their modules (PGlite's WebAssembly), the CommonJS clients the tests also import
    // themselves (pg, ioredis: one copy), and msgpackr, whose own `createRequire` clashes with the
    // bundle's.
    deps: {
      optimizer: {
        ssr: {
          enabled: true,
          include: bundledEntries(),
          exclude: ["pg", "pg-copy-streams", "ioredis", "@electric-sql/pglite", "@electric-sql/pglite-socket", "msgpackr", "esbuild", "playwright-core"]
        }
      }
    },
    // Every event line of every run the suites make is checked against JSON.stringify (src/swarm/RunLog.ts).
    env: { SWARM_CANONICAL_CHECK: "1" }
  }
})
