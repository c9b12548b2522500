/**
 * The `--out` directory of `swarm backtest`, all or nothing: the run writes into a staging
 * directory beside it (same parent, so a rename moves it in one step), which is put in place only
 * once the run has ended — completed, or failed, which `result.json` says — and every file is
 * written; any other end removes it. Bad input, an interrupted run or a failed write leave nothing
 * behind and never touch an earlier run's output.
 *
 * An existing `--out` directory keeps its other files: each of the run's files replaces its
 * namesake there by a rename of its own (so no file is ever seen half-written).
 */
import { Effect, type Scope } from "effect"
import { constants } from "node:fs"
import { access, chmod, lstat, mkdir, mkdtemp, rename, rm, stat } from "node:fs/promises"
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

/** A system error's message without the call and path Node appends (`…, mkdtemp '/x/.y.swarm-XXXXXX'`). */
const reasonOf = (error: unknown): string => (error instanceof Error ? error.message.replace(/, \w+ '.*'$/, "") : String(error))

const codeOf = (error: unknown): unknown => (typeof error === "object" && error !== null && "code" in error ? error.code : undefined)

/** Nothing at that path: no entry, or an ancestor that is a file. */
const absent = (e: unknown) => codeOf(e) === "ENOENT" || codeOf(e) === "ENOTDIR"

/** `path`'s kind, or undefined when there is nothing there (a dangling link counts as something). */
const kindOf = async (path: string): Promise<"directory" | "other" | undefined> => {
  try {
    return (await stat(path)).isDirectory() ? "directory" : "other"
  } catch (e) {
    if (!absent(e)) throw e
  }
  try {
    await lstat(path)
    return "other"
  } catch (e) {
    if (!absent(e)) throw e
    return undefined
  }
}

const cannotCreate = (out: string, reason: string) => new UsageError({ field: "--out", reason: `cannot create ${out}: ${reason}` })

/**
 * Why the run's files cannot replace their namesakes in the existing directory `target`, or
 * undefined when they can: each is absent or a regular file (or a link to one). Asked before the
 * run and again before the first rename, since a rename that fails after another succeeded would
 * leave the directory half-replaced.
 */
const unreplaceable = async (target: string, out: string): Promise<string | undefined> => {
  for (const name of FILES) {
    const path = Path.join(target, name)
    const link = await lstat(path).catch((e) => {
      if (absent(e)) return undefined
      throw e
    })
    if (link === undefined || link.isFile()) continue
    const info = link.isSymbolicLink() ? await stat(path).catch((e) => (absent(e) ? undefined : Promise.reject(e))) : link
    if (info?.isFile() === true) continue
    const what = info === undefined
      ? "a link to nothing"
      : info.isDirectory()
      ? (link.isSymbolicLink() ? "a link to a directory" : "a directory")
      : "not a regular file"
    return `${Path.join(out, name)} is ${what}, which the run's ${name} would replace`
  }
  return undefined
}

/**
 * A staging directory for `out`, removed when the scope closes (put in place or not). Refuses an
 * `out` that exists and is not a directory, is not writable or holds something other than a file
 * under one of the run's file names, or whose nearest existing ancestor cannot hold a new
 * directory. Nothing is created but the staging directory: the missing levels of `out` are made
 * when the files are put in place, so a run that stops early leaves no empty directories either.
 */
export const stage = (out: string): Effect.Effect<Staging, UsageError, Scope.Scope> =>
  Effect.gen(function*() {
    const target = Path.resolve(out)
    const found = yield* Effect.tryPromise({ try: () => nearestExisting(target), catch: (e) => cannotCreate(out, reasonOf(e)) })
    if (found.missing.length === 0 && found.kind !== "directory") return yield* cannotCreate(out, "it exists and is not a directory")
    if (found.kind !== "directory") return yield* cannotCreate(out, `${found.path} is not a directory`)
    if (found.missing.length === 0) {
      // Refused now rather than after the run, when the files would not go in (as root, access never refuses).
      const refused = yield* Effect.tryPromise({
        try: async () => {
          try {
            await access(target, constants.W_OK | constants.X_OK)
          } catch (e) {
            return `cannot write in ${out}: ${reasonOf(e)}`
          }
          return unreplaceable(target, out)
        },
        catch: (e) => new UsageError({ field: "--out", reason: `cannot write in ${out}: ${reasonOf(e)}` })
      })
      if (refused !== undefined) return yield* new UsageError({ field: "--out", reason: refused })
    }
    // The staging directory sits in an existing directory, so the one mkdir that can fail at once
    // does: `mkdir -p` semantics are avoided on purpose (Node's recursive mkdir loops forever under
    // /proc, where the parent says EEXIST and the child ENOENT).
    const parent = found.missing.length === 0 ? Path.dirname(target) : found.path
    const dir = yield* Effect.acquireRelease(
      Effect.tryPromise({
        // Hidden, and named after what it becomes, for whoever finds one a killed run left.
        try: () => mkdtemp(Path.join(parent, `.${Path.basename(target)}.swarm-`)),
        catch: (e) => cannotCreate(out, `cannot make a directory in ${parent}: ${reasonOf(e)}`)
      }),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }).catch(() => undefined))
    )
    const named = (error: OutputError) =>
      error.path.startsWith(dir) ? new OutputError({ path: Path.join(out, error.path.slice(dir.length)), reason: error.reason }) : error
    return { dir, commit: commit(dir, target, found.missing.slice(0, -1), out), named }
  })

/**
 * The nearest of `target` and its ancestors that exists, and the levels below it that do not
 * (outermost first, `target` last). Ends at the root at the latest: an absolute path's `dirname`
 * shortens it until it is `/`.
 */
const nearestExisting = async (target: string) => {
  const missing: Array<string> = []
  let path = target
  for (;;) {
    const kind = await kindOf(path)
    if (kind !== undefined) return { path, kind, missing: missing.reverse() }
    missing.push(path)
    const up = Path.dirname(path)
    if (up === path) return { path, kind: "other" as const, missing: missing.reverse() }
    path = up
  }
}

/**
 * Move the staged files to `target`: the whole directory when there is none yet (its missing
 * `parents` made one level at a time first), else file by file.
 */
const commit = (dir: string, target: string, parents: ReadonlyArray<string>, out: string): Effect.Effect<void, OutputError> =>
  Effect.tryPromise({
    try: async () => {
      for (const level of parents) {
        await mkdir(level).catch(async (e) => {
          if (codeOf(e) !== "EEXIST" || (await kindOf(level)) !== "directory") throw e
        })
      }
      if ((await kindOf(target)) === undefined) {
        // mkdtemp made it 0700 (private while the run writes into it); it becomes the directory a
        // mkdir would have made, readable as the umask allows.
        await chmod(dir, 0o777 & ~process.umask())
        try {
          return await rename(dir, target)
        } catch (e) {
          // Made meanwhile by someone else: join it as an existing directory.
          if (codeOf(e) !== "EEXIST" && codeOf(e) !== "ENOTEMPTY") throw e
        }
      }
      // Whatever took a file's name during the run fails no rename halfway through.
      const refused = await unreplaceable(target, out)
      if (refused !== undefined) throw new Error(refused)
      for (const name of FILES) await rename(Path.join(dir, name), Path.join(target, name))
    },
    catch: (e) => new OutputError({ path: out, reason: `cannot put the run's files in place: ${reasonOf(e)}` })
  })

