// The command line as bundled modules (esbuild), built on first use and again whenever a source
// changes, so that `swarm <command>` starts in about half the time.
//
// Why: run from its sources, every module the command loads — some 1,500, most of them Effect's —
// goes through the TypeScript hooks (bin/typescript-hooks.mjs), which Node 20 runs on a thread of
// their own: a round trip per module, and esbuild per source file. `swarm --help` took 2.9 s here,
// 2.6 s of it loading. Bundled (our sources in a few files, the packages left to Node), the same
// load takes about 1.5 s. The server (`npm start`), the tests and the benchmarks keep running the
// sources directly.
//
// Fresh, never stale: the bundle's directory is named after a fingerprint of every source file
// (path, size, modification time) and of package.json, package-lock.json and this file, so a
// changed source is a new fingerprint and a new build (a few hundred milliseconds, once). The
// build goes to a directory of its own and is renamed into place, so commands started at the same
// moment never read half a bundle; bundles of older sources go an hour later. If anything fails, `bundled` returns undefined and the command
// runs from its sources as before; SWARM_NO_BUNDLE=1 asks for that.
//
// Ahead of time: `node bin/bundle.mjs` builds it and says where (the Docker image does, as root,
// so that its unprivileged user, which cannot write `.build`, finds it made: the image's files do
// not change, so neither does their fingerprint).
//
// Where: `.build/cli-<fingerprint>/`, two levels below the repository as `src/<dir>/` is, so the
// sources' paths relative to their own module (`../../data`, `../../package.json`) mean the same in
// the bundle; `pglite-server.mjs`, which the embedded database starts as a process, is copied next
// to it for the same reason.
import { createHash } from "node:crypto"
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const buildRoot = join(root, ".build")
const SOURCE_DIRS = ["src", "agents", "schemas", "supervisors", "migrations"]
const SOURCE_FILES = ["package.json", "package-lock.json", "bin/bundle.mjs"]
const PREFIX = "cli-"
const STALE_MILLIS = 60 * 60 * 1000

/** What the bundle of the sources under `root` is named after (exported for the tests). */
export const fingerprint = (root) => {
  const hash = createHash("sha256")
  const add = (file) => {
    const stat = statSync(file)
    hash.update(`${file}\0${stat.size}\0${stat.mtimeMs}\n`)
  }
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const file = join(dir, entry.name)
      if (entry.isDirectory()) walk(file)
      else add(file)
    }
  }
  for (const dir of SOURCE_DIRS) walk(join(root, dir))
  for (const file of SOURCE_FILES) if (existsSync(join(root, file))) add(join(root, file))
  return hash.digest("hex").slice(0, 16)
}

/** Build into `outdir`; false if the bundle took in a file the fingerprint does not watch (it could go stale). */
const build = async (outdir) => {
  const { build: esbuild } = await import("esbuild")
  const { metafile } = await esbuild({
    entryPoints: { main: join(root, "src/cli/Main.ts") },
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outdir,
    absWorkingDir: root,
    metafile: true,
    logLevel: "silent"
  })
  copyFileSync(join(root, "src/store/pglite-server.mjs"), join(outdir, "pglite-server.mjs"))
  return Object.keys(metafile.inputs).every((input) => SOURCE_DIRS.some((dir) => input.startsWith(`${dir}/`)))
}

/** The bundle's entry module (its URL), built if need be; undefined if it cannot be had. */
export const bundled = async () => {
  if (process.env.SWARM_NO_BUNDLE === "1") return undefined
  try {
    const name = `${PREFIX}${fingerprint(root)}`
    const dir = join(buildRoot, name)
    const entry = join(dir, "main.js")
    if (!existsSync(entry)) {
      const scratch = join(buildRoot, `tmp-${process.pid}-${Date.now()}`)
      mkdirSync(buildRoot, { recursive: true })
      if (!(await build(scratch))) {
        rmSync(scratch, { recursive: true, force: true })
        return undefined
      }
      try {
        renameSync(scratch, dir)
      } catch {
        // Another command built the same bundle first: use that one.
        rmSync(scratch, { recursive: true, force: true })
      }
      // Bundles of older sources (and builds that died) are of no more use once no command can
      // still be starting from them: a server loads its last module soon after it starts.
      for (const old of readdirSync(buildRoot)) {
        const file = join(buildRoot, old)
        if (old !== name && (old.startsWith(PREFIX) || old.startsWith("tmp-")) && Date.now() - statSync(file).mtimeMs > STALE_MILLIS) {
          rmSync(file, { recursive: true, force: true })
        }
      }
    }
    return existsSync(entry) ? pathToFileURL(entry).href : undefined
  } catch {
    return undefined
  }
}

// `node bin/bundle.mjs`: build now. A failure is said, not fatal: the command line still runs
// from its sources.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const entry = await bundled()
  console.log(entry === undefined ? "swarm: no bundle of the command line (it runs from its sources)" : `swarm: command line bundled: ${fileURLToPath(entry)}`)
}
