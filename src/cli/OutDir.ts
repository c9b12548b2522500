/**
 * The `--out` directory of `swarm backtest`, all or nothing: the run writes into a staging
 * directory beside it (same parent, so a rename moves it in one step), which is put in place only
 * once the run has completed and every file is written; any other end removes it. Bad input, a run
 * refused midway or a failed write leave nothing behind and never touch an earlier run's output.
 *
 * An existing `--out` directory keeps its other files: each of the run's files replaces its
 * namesake there by a rename of its own (so no file is ever seen half-written).
 */
import { Effect, type Scope } from "effect"
import { lstat, mkdir, mkdtemp, rename, rm, stat } from "node:fs/promises"
import * as Path from "node:path"
import { OutputError, UsageError } from "./CliError.js"

/** What a backtest writes into `--out`. */
export const FILES = ["events.ndjson", "result.json", "trades.csv"] as const

export interface Staging {
  /** Where the run writes its files until they are put in place. */
  readonly dir: string
  /** Put the written files in place in `--out` (once, after every file was written and closed). */
  readonly commit: Effect.Effect<void, OutputError>
  /** An error writing a staged file, naming the file in `--out` instead: the staging directory is no name to give people. */
  readonly named: (error: OutputError) => OutputError
}

const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const codeOf = (error: unknown): unknown => (typeof error === "object" && error !== null && "code" in error ? error.code : undefined)

/** `path`'s kind, or undefined when there is nothing there (a dangling link counts as something). */
const kindOf = async (path: string): Promise<"directory" | "other" | undefined> => {
  try {
    return (await stat(path)).isDirectory() ? "directory" : "other"
  } catch (e) {
    if (codeOf(e) !== "ENOENT") throw e
  }
  try {
    await lstat(path)
    return "other"
  } catch (e) {
    if (codeOf(e) !== "ENOENT") throw e
    return undefined
  }
}

const cannotCreate = (out: string, reason: string) => new UsageError({ field: "--out", reason: `cannot create ${out}: ${reason}` })

/**
 * A staging directory for `out`, removed when the scope closes (put in place or not). Refuses an
 * `out` that exists and is not a directory, or whose parent cannot hold a new directory.
 */
export const stage = (out: string): Effect.Effect<Staging, UsageError, Scope.Scope> =>
  Effect.gen(function*() {
    const target = Path.resolve(out)
    const parent = Path.dirname(target)
    const existing = yield* Effect.tryPromise({ try: () => kindOf(target), catch: (e) => cannotCreate(out, reasonOf(e)) })
    if (existing === "other") return yield* cannotCreate(out, "it exists and is not a directory")
    yield* Effect.tryPromise({
      try: () => mkdir(parent, { recursive: true }),
      catch: (e) => cannotCreate(out, reasonOf(e))
    })
    const dir = yield* Effect.acquireRelease(
      Effect.tryPromise({
        // Hidden, and named after what it becomes, for whoever finds one a killed run left.
        try: () => mkdtemp(Path.join(parent, `.${Path.basename(target)}.swarm-`)),
        catch: (e) => cannotCreate(out, reasonOf(e))
      }),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }).catch(() => undefined))
    )
    const named = (error: OutputError) =>
      error.path.startsWith(dir) ? new OutputError({ path: Path.join(out, error.path.slice(dir.length)), reason: error.reason }) : error
    return { dir, commit: commit(dir, target, out), named }
  })

/** Move the staged files to `target`: the whole directory when there is none yet, else file by file. */
const commit = (dir: string, target: string, out: string): Effect.Effect<void, OutputError> =>
  Effect.tryPromise({
    try: async () => {
      if ((await kindOf(target)) === undefined) {
        try {
          return await rename(dir, target)
        } catch (e) {
          // Made meanwhile by someone else: join it as an existing directory.
          if (codeOf(e) !== "EEXIST" && codeOf(e) !== "ENOTEMPTY") throw e
        }
      }
      for (const name of FILES) await rename(Path.join(dir, name), Path.join(target, name))
    },
    catch: (e) => new OutputError({ path: out, reason: `cannot put the run's files in place: ${reasonOf(e)}` })
  })

