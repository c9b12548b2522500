#!/usr/bin/env node
// `swarm`: the command line (src/cli/), run from its TypeScript sources (bin/typescript-hooks.mjs).
// Everything is resolved from this file's location, so it works from any working directory;
// relative paths in the arguments are relative to the working directory, as usual. Started
// without Swarm's V8 flags for the command (bin/node-flags.mjs), it runs itself again with them.
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { bundled } from "./bundle.mjs"
import { flagsFor, hasNodeFlags } from "./node-flags.mjs"

const flags = flagsFor(process.argv[2])
if (hasNodeFlags(flags)) {
  // The bundled command line (bin/bundle.mjs), else the sources through the TypeScript hooks.
  const bundle = await bundled()
  if (bundle === undefined) await import("./typescript.mjs")
  const { runMain } = await import(bundle ?? "../src/cli/Main.ts")
  runMain(process.argv.slice(2))
} else {
  const child = spawn(process.execPath, [...process.execArgv, ...flags.filter((flag) => !process.execArgv.includes(flag)), fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit"
  })
  // Ctrl-C reaches the child through the terminal's process group; a SIGTERM sent to this process
  // alone is passed on. Either way the parent waits for the child and exits as it did.
  process.on("SIGINT", () => {})
  process.on("SIGTERM", () => child.kill("SIGTERM"))
  child.on("exit", (code, signal) => {
    if (signal === null) process.exit(code ?? 1)
    // Die of the same signal: without our own handlers, or the one above would swallow it and
    // the process would end with 0 (a child Ctrl-C'd while still loading).
    process.removeAllListeners(signal)
    process.kill(process.pid, signal)
  })
}
