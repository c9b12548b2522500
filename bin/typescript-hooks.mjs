// Module hooks that run the TypeScript sources directly: `.ts` files are transpiled by esbuild
// (types stripped, nothing checked — `npm run typecheck` does that), and the `.js` specifiers the
// sources use (NodeNext style) resolve to the `.ts` file next to them.
//
// Why not tsx: tsx compiles with esbuild's `keepNames`, which wraps every function expression in a
// `__name(fn, "…")` call — a property definition each time a closure is created. On the per-bar
// path of a backtest that halved the throughput (W1: about 50 k against 110 k bars/s here).
import { transformSync } from "esbuild"
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"

const isPath = (specifier) => specifier.startsWith("./") || specifier.startsWith("../") || specifier.startsWith("/") || specifier.startsWith("file:")

export async function resolve(specifier, context, next) {
  if (isPath(specifier) && specifier.endsWith(".js") && context.parentURL?.startsWith("file:")) {
    const url = new URL(specifier, context.parentURL)
    if (!existsSync(fileURLToPath(url))) {
      const ts = new URL(`${url.href.slice(0, -".js".length)}.ts`)
      if (existsSync(fileURLToPath(ts))) return { url: ts.href, format: "module", shortCircuit: true }
    }
  }
  return next(specifier, context)
}

export async function load(url, context, next) {
  if (url.startsWith("file:") && url.endsWith(".ts") && !url.includes("/node_modules/")) {
    const file = fileURLToPath(url)
    const { code } = transformSync(await readFile(file, "utf8"), {
      loader: "ts",
      format: "esm",
      target: "node20",
      sourcemap: "inline",
      sourcefile: file
    })
    return { format: "module", source: code, shortCircuit: true }
  }
  return next(url, context)
}
