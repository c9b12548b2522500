/**
 * `npm run bench -- <name>`: runs `bench/<name>.ts` in a child Node process with `--expose-gc`
 * (memory figures need `global.gc()`), so every benchmark starts from a cold, isolated heap.
 * The child's stdout (JSON lines) and stderr pass straight through; its exit code is ours.
 */
import { spawn } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { nodeArgs, replayNodeArgs } from "./internal/loader.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
// Benchmarks are the `.ts` files here; the runner and `internal/` helpers are not.
const available = readdirSync(benchDir)
  .filter((file) => file.endsWith(".ts") && file !== "run.ts")
  .map((file) => file.slice(0, -".ts".length))
  .sort()

const name = process.argv[2]
if (name === undefined || !/^[A-Za-z0-9_-]+$/.test(name) || !existsSync(join(benchDir, `${name}.ts`))) {
  process.stderr.write(
    `${name === undefined ? "no benchmark given" : `unknown benchmark "${name}"`}; ` +
      `usage: npm run bench -- <name>, where <name> is one of: ${available.join(", ")}\n`
  )
  process.exit(2)
}

// The edge benchmark measures a server (its flags); the others replay history (bin/node-flags.mjs).
const child = spawn(process.execPath, ["--expose-gc", ...(name === "edge" ? nodeArgs : replayNodeArgs), join(benchDir, `${name}.ts`)], {
  stdio: "inherit",
  cwd: dirname(benchDir)
})
child.on("error", (error) => {
  process.stderr.write(`could not start benchmark ${name}: ${error.message}\n`)
  process.exit(1)
})
child.on("exit", (code, signal) => {
  if (signal !== null) process.stderr.write(`benchmark ${name} killed by ${signal}\n`)
  process.exit(code ?? 1)
})
