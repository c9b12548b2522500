import * as Os from "node:os"
import { defineConfig } from "vitest/config"

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
    // Every event line of every run the suites make is checked against JSON.stringify (src/swarm/RunLog.ts).
    env: { SWARM_CANONICAL_CHECK: "1" }
  }
})
