#!/usr/bin/env node
// `swarm`: the command line (src/cli/), run from its TypeScript sources (bin/typescript-hooks.mjs).
// Everything is resolved from this file's location, so it works from any working directory;
// relative paths in the arguments are relative to the working directory, as usual.
import "./typescript.mjs"

const { runMain } = await import("../src/cli/Main.ts")
runMain(process.argv.slice(2))
