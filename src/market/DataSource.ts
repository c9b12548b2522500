/**
 * Where a run's bars come from, as data a run keeps: CSV files (their paths and the window read
 * from them) or the synthetic market (its whole configuration). Re-opening a data source gives the
 * same feed — or, if a file changed since, says so: its fingerprint would no longer be the run's.
 * Resume and replay re-open the data source of the run they continue or check.
 */
import * as Path from "node:path"
import { Effect, Schema } from "effect"
import { Symbol } from "../../schemas/Ids.js"
import type * as Csv from "./Csv.js"
import * as Feed from "./Feed.js"
import * as Synthetic from "./Synthetic.js"

export const CsvSource = Schema.TaggedStruct("csv", {
  /** Absolute paths of the files or directories, as given. */
  paths: Schema.NonEmptyArray(Schema.String),
  from: Schema.optional(Schema.Int),
  to: Schema.optional(Schema.Int),
  symbols: Schema.optional(Schema.Array(Symbol)),
  /** How the files were read (`Csv.ParseOptions`), when not the default: `swarm backtest --adjust`, `--ohlc`. */
  adjust: Schema.optional(Schema.Literal("adjClose")),
  ohlc: Schema.optional(Schema.Literal("as-given"))
})

export const SyntheticSource = Schema.TaggedStruct("synthetic", { config: Synthetic.Config })

export const DataSource = Schema.Union(CsvSource, SyntheticSource)
export type DataSource = typeof DataSource.Type

/** The data can no longer give the run's feed: a file changed, moved or went, or it does not parse. */
export class DataChanged extends Schema.TaggedError<DataChanged>()("DataChanged", {
  reason: Schema.String
}) {
  override get message(): string {
    return `the run's data cannot be read as it was: ${this.reason}`
  }
}

/** The CSV data source of `paths` (made absolute), a window, and how the files are read. */
export const csv = (paths: ReadonlyArray<string>, window: Feed.Window = {}, parse: Csv.ParseOptions = {}): DataSource => ({
  _tag: "csv",
  paths: paths.map((p) => Path.resolve(p)) as unknown as readonly [string, ...Array<string>],
  ...(window.from === undefined ? {} : { from: window.from }),
  ...(window.to === undefined ? {} : { to: window.to }),
  ...(window.symbols === undefined ? {} : { symbols: window.symbols as ReadonlyArray<Symbol> }),
  ...(parse.adjust === "adjClose" ? { adjust: "adjClose" as const } : {}),
  ...(parse.ohlc === "as-given" ? { ohlc: "as-given" as const } : {})
})

export const synthetic = (config: Synthetic.Config): DataSource => ({ _tag: "synthetic", config })

/** Open the feed; with `fingerprint`, it must be that one (the data is what the run read). */
export const open = (source: DataSource, fingerprint?: string): Effect.Effect<Feed.Feed, DataChanged> =>
  Effect.gen(function*() {
    const feed = source._tag === "synthetic"
      ? Feed.synthetic(source.config)
      : yield* Feed.load(source.paths, {
        ...(source.from === undefined ? {} : { from: source.from }),
        ...(source.to === undefined ? {} : { to: source.to }),
        ...(source.symbols === undefined ? {} : { symbols: source.symbols }),
        parse: { ...(source.adjust === undefined ? {} : { adjust: source.adjust }), ...(source.ohlc === undefined ? {} : { ohlc: source.ohlc }) }
      }).pipe(Effect.mapError((error) => new DataChanged({ reason: error.message })))
    if (fingerprint !== undefined && feed.fingerprint !== fingerprint) {
      return yield* new DataChanged({
        reason: fingerprintChange(feed.fingerprint, fingerprint) ?? `its fingerprint is now ${feed.fingerprint}, the run read ${fingerprint}`
      })
    }
    return feed
  })

/** A CSV fingerprint (`Feed.load`'s) read back: each file's SHA-256 by name, and the rest (the window); undefined when it is not one. */
const csvFingerprint = (fingerprint: string) => {
  const [files, ...rest] = fingerprint.split(" ")
  if (files === undefined || !files.startsWith("csv:")) return undefined
  const digests = new Map<string, string>()
  for (const entry of files.slice("csv:".length).split(",")) {
    const file = /^(.+)=sha256:([0-9a-f]{64})$/.exec(entry)
    // A name with a space or a comma in it cannot be told apart: no file-by-file account then.
    if (file === null) return undefined
    digests.set(file[1]!, file[2]!)
  }
  return { digests, rest: rest.join(" ") }
}

/**
 * What differs between the fingerprint of the data now and the one the run read, file by file:
 * `ACME.csv changed (SHA-256 now 1a2b3c4d…, the run read 5e6f7a8b…); GLOBEX.csv is gone` — rather
 * than the two whole fingerprints, every file's digest in each. Undefined when either is not a
 * CSV fingerprint that can be read back.
 */
export const fingerprintChange = (now: string, then: string): string | undefined => {
  const a = csvFingerprint(now)
  const b = csvFingerprint(then)
  if (a === undefined || b === undefined) return undefined
  const short = (digest: string) => `${digest.slice(0, 8)}…`
  const changes: Array<string> = []
  for (const [file, digest] of b.digests) {
    const current = a.digests.get(file)
    if (current === undefined) changes.push(`${file} is gone`)
    else if (current !== digest) changes.push(`${file} changed (SHA-256 now ${short(current)}, the run read ${short(digest)})`)
  }
  for (const file of a.digests.keys()) if (!b.digests.has(file)) changes.push(`${file} is new (the run did not read it)`)
  if (a.rest !== b.rest) changes.push(`the window is now "${a.rest}", the run read "${b.rest}"`)
  return changes.length === 0 ? undefined : changes.join("; ")
}

export const encode = Schema.encodeSync(DataSource)
export const decode = Schema.decodeUnknown(DataSource)
