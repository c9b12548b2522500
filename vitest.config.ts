import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Every event line of every run the suites make is checked against JSON.stringify (src/swarm/RunLog.ts).
    env: { SWARM_CANONICAL_CHECK: "1" }
  }
})
