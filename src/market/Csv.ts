/**
 * OHLCV bars from CSV files, for backtests: `date,open,high,low,close,volume` (header in any case,
 * extra columns ignored), one file per symbol or a `symbol` column, every bad row a `CsvError`
 * naming the file, the line, the column and the reason. Also the writer of such files and the
 * merged time-ordered iteration of several symbols that a backtest replays.
 *
 * Two engines, one set of rules. A file that contains a double quote is read by csv-parse (the
 * library handles quoting, embedded newlines and their errors). A file without any quote character
 * is plain comma-separated lines, which this module splits itself, because csv-parse is far too
 * slow for backtrader's W2 workload (W2.md: 100 files × 20,000 rows × 7 columns, to be loaded and
 * traded within 20 s). Measured on this 2-core machine, Node 20, on the W2 files: csv-parse 7's
 * sync and stream APIs tokenize 170–196 k rows/s (10–12 s for W2 before a single number is
 * converted; with this module's checks, 87–93 k rows/s); the scanner here validates rows into
 * columns of numbers (`loadColumns`, what a feed keeps), not `Bar` objects: as objects, W2's 2 M
 * bars made a third of the load garbage collection, and `Feed.load` took 6.6–7.2 s for W2 against
 * 2.7–3.4 s as columns (reading and hashing included, measured on a loaded machine).
 * Both engines give every field to the same checking functions, and a property test checks that
 * they return identical bars and identical errors on any quote-free input.
 *
 * Decisions, documented for users of `--data`:
 * - Date column: `date`, `datetime`, `time` or `timestamp`; or separate `date` and `time`
 *   columns, joined. Values are ISO 8601: `2024-01-05`, `2024-01-05 09:30[:00[.123]]`,
 *   `2024-01-05T09:30:00Z`, `…+01:00`. A date-time WITHOUT an offset is UTC (not local time:
 *   a backtest must not depend on the machine's time zone); a date alone is midnight UTC.
 * - `Adj Close` (Yahoo): ignored by default, prices are used as given (as the exchange printed
 *   them, split-adjusted by Yahoo but not dividend-adjusted). `adjust: "adjClose"` scales open,
 *   high and low by adj close / close and uses adj close as the close; volume is kept.
 * - Order: per symbol, timestamps must be strictly monotonic. Ascending is the norm; a file that
 *   is entirely newest-first (as some vendors export) is reversed. A duplicate timestamp, or a
 *   row that breaks the direction of the rows before it, is an error — never silently sorted,
 *   since it usually means two files were concatenated or a feed was replayed twice.
 * - Prices must be finite and > 0, volume finite and ≥ 0, written as plain decimals (`12.5`, `1e3`;
 *   no `NaN`, `Infinity`, hex, thousands separators or empty fields). Spaces around a field are
 *   ignored.
 * - A bar is one bar: low ≤ high, and open and close between them (as written in the file, before
 *   any adjustment). A row that breaks it is a `BadBar` naming the column: such a row is a vendor's
 *   error or a column mix-up, and a fill at an open above the high is a price that never traded.
 *   `ohlc: "as-given"` accepts such bars unchanged: for data made that way on purpose (W2.md's
 *   benchmark files draw every field independently, and an engine must not refuse or "fix" them).
 * - Symbol: the `symbol` (or `ticker`) column if present, else the file name without its
 *   extension (`AAPL.csv` → `AAPL`). A symbol may come from several files (data split by
 *   period): their bars are joined in time order; files whose periods overlap (or the same file
 *   given twice) are an error (`DuplicateSymbol`).
 * - Text is UTF-8 (a BOM is skipped) or UTF-16 with a BOM (Excel's "Unicode text"), decoded by its
 *   BOM; the digest is of the file's bytes. A file that is not text (a NUL byte in its first 8 KiB,
 *   a gzip or zip file, an Excel workbook, UTF-32, UTF-16 without a BOM) is `NotText`, saying what
 *   it looks like. Fields are separated by commas only: a header of tabs or semicolons is said to be.
 * - Lines end in `\n` or `\r\n`; blank lines anywhere are skipped; lines are counted from 1 (the
 *   header is normally line 1). A quote that is never closed, or closed only by a quote on a later
 *   line followed by more text, is reported on the line (and column, and character) where it opens.
 * - A row whose every price and volume is the literal `null` (open, high, low, close, volume, and
 *   adj close when there is such a column) is skipped: Yahoo Finance writes such rows for days it
 *   has no prices for. Only that exact case: a row with some `null` fields and some values is an
 *   error naming the column. Skipped rows are counted per file (`Loaded.skipped`) for the caller to
 *   say so; a file of nothing else is `NoRows`.
 * - A directory stands for its own `*.csv` files (any case of the extension), in name order: its
 *   sub-directories are not read — an `--out` directory, a backup or another vendor's copy kept
 *   there would be read as more bars — and are listed (`Loaded.unread`, hidden ones left out) for
 *   the caller to say so; a directory with no `*.csv` file is an error naming its sub-directories.
 * - Only regular files are read (not a FIFO, a device or a socket), of at most 256 MiB each
 *   (`MAX_FILE_BYTES`); anything else is refused by name before it is opened.
 */
import { Effect, Either, Schema } from "effect"
import { parse as csvParse } from "csv-parse/sync"
import { createHash } from "node:crypto"
import type { Stats } from "node:fs"
import { readdir, readFile, stat } from "node:fs/promises"
import * as Path from "node:path"
import { Symbol, type Timestamp } from "../../schemas/Ids.js"
import type { Bar } from "../../schemas/Market.js"
import { CsvError, type CsvErrorKind } from "../../schemas/CsvError.js"
import { clip, clipAfter } from "../internal/clip.js"
import { decodeWithMark } from "../internal/utf16.js"

export { CsvError, CsvErrorKind } from "../../schemas/CsvError.js"

/** What went wrong, for programs; `reason` says it for people. */
export interface ParseOptions {
  /** `"none"` (default): prices as given, `Adj Close` ignored. `"adjClose"`: OHLC scaled by adj close / close. */
  readonly adjust?: "none" | "adjClose"
  /** `"auto"` (default): the scanner for quote-free text, csv-parse otherwise. `"csv-parse"`: always the library. */
  readonly engine?: "auto" | "csv-parse"
  /**
   * `"checked"` (default): a row whose high is below its low, or whose open or close lies outside
   * [low, high], is a `BadBar`. `"as-given"`: such bars are kept as written (W2's files).
   */
  readonly ohlc?: "checked" | "as-given"
}

export type Bars = ReadonlyMap<Symbol, ReadonlyArray<Bar>>

/**
 * One symbol's bars as columns of numbers, ascending in time: what loading keeps. Two million
 * loaded bars as objects are a heap that every collection copies and walks (a third of W2's load
 * was garbage collection); as columns they are six arrays per symbol.
 */
export interface Columns {
  readonly symbol: Symbol
  readonly ts: Float64Array
  readonly open: Float64Array
  readonly high: Float64Array
  readonly low: Float64Array
  readonly close: Float64Array
  readonly volume: Float64Array
}

export type ColumnsBySymbol = ReadonlyMap<Symbol, Columns>

/** A series of bars as columns. */
export const columnsOf = (symbol: Symbol, bars: ReadonlyArray<Bar>): Columns => {
  const n = bars.length
  const c = { symbol, ts: new Float64Array(n), open: new Float64Array(n), high: new Float64Array(n), low: new Float64Array(n), close: new Float64Array(n), volume: new Float64Array(n) }
  for (let i = 0; i < n; i++) {
    const bar = bars[i]!
    c.ts[i] = bar.ts
    c.open[i] = bar.open
    c.high[i] = bar.high
    c.low[i] = bar.low
    c.close[i] = bar.close
    c.volume[i] = bar.volume
  }
  return c
}

/** Bar `i` of a series kept as columns. */
export const barAt = (c: Columns, i: number): Bar => ({
  symbol: c.symbol,
  ts: c.ts[i]! as Timestamp,
  open: c.open[i]!,
  high: c.high[i]!,
  low: c.low[i]!,
  close: c.close[i]!,
  volume: c.volume[i]!
})

/** The bars of a series kept as columns. */
export const barsOf = (c: Columns): Array<Bar> => Array.from({ length: c.ts.length }, (_, i) => barAt(c, i))

const barsBySymbol = (columns: ColumnsBySymbol): Bars => new Map([...columns].map(([symbol, c]) => [symbol, barsOf(c)]))

/** Parse one file's text. `fileName` names the file in errors and, without a symbol column, gives the symbol. */
export const parse = (text: string, fileName: string, options: ParseOptions = {}): Either.Either<Bars, CsvError> => {
  try {
    return Either.right(barsBySymbol(parseFile(text, fileName, options).columns))
  } catch (e) {
    if (e instanceof CsvError) return Either.left(e)
    throw e
  }
}

/**
 * Read and parse files (a directory stands for its `*.csv` files, in name order). Files are read
 * concurrently; the result and the error reported (the first bad file in the order given) do not
 * depend on which read finishes first.
 */
export const load = (paths: ReadonlyArray<string>, options: ParseOptions = {}): Effect.Effect<Bars, CsvError> =>
  Effect.map(loadColumns(paths, options), (loaded) => barsBySymbol(loaded.columns))

/** What `loadColumns` read: the bars, and each file's SHA-256 (hex), in the order the files were read. */
export interface Loaded {
  readonly columns: ColumnsBySymbol
  readonly files: ReadonlyArray<{ readonly file: string; readonly sha256: string }>
  /** The files that had rows skipped (every price and volume `null`), in the order the files were read. */
  readonly skipped: ReadonlyArray<Skipped>
  /**
   * Sub-directories of the directories given, not read (a directory stands for its own `*.csv`
   * files): for the caller to say so. Hidden ones (a name starting with a dot) are not listed.
   */
  readonly unread: ReadonlyArray<string>
}

/** Rows of one file skipped because their every price and volume is `null` (Yahoo's days without prices). */
export interface Skipped {
  readonly file: string
  readonly rows: number
  /** The lines of the first ones (at most `SKIPPED_LINES_KEPT`), ascending. */
  readonly lines: ReadonlyArray<number>
}

/** How many skipped lines a file's `Skipped` lists: enough to find them, not a copy of a long file. */
export const SKIPPED_LINES_KEPT = 10

/** For people: `AAPL.csv: skipped 2 rows whose every price and volume is null (lines 14, 90)`. */
export const describeSkipped = (skipped: Skipped): string => {
  const lines = skipped.lines.join(", ") + (skipped.rows > skipped.lines.length ? `, … (the first ${skipped.lines.length})` : "")
  return `${skipped.file}: skipped ${skipped.rows} row${skipped.rows === 1 ? "" : "s"} whose every price and volume is null ` +
    `(line${skipped.lines.length === 1 ? "" : "s"} ${lines})`
}

/** `load`, keeping the bars as columns, with each file's digest taken from the same bytes as were parsed. */
export const loadColumns = (paths: ReadonlyArray<string>, options: ParseOptions = {}): Effect.Effect<Loaded, CsvError> =>
  Effect.gen(function*() {
    const { files, unread } = yield* expand(paths)
    const parsed = yield* Effect.forEach(
      files,
      (file) =>
        readData(file).pipe(
          Effect.flatMap((bytes) =>
            Effect.try({
              // One read for both: the digest of the bytes, the text decoded in one go (reading with an
              // encoding decodes chunk by chunk and joins the pieces).
              try: () => ({ parsed: parseFile(decode(bytes, file), file, options), sha256: createHash("sha256").update(bytes).digest("hex") }),
              catch: asCsvError
            })
          ),
          Effect.either
        ),
      { concurrency: 4 }
    )
    const parts = new Map<Symbol, Array<Part>>()
    const digests: Array<{ file: string; sha256: string }> = []
    const skipped: Array<Skipped> = []
    for (const result of parsed) {
      if (Either.isLeft(result)) return yield* result.left
      const { columns, file, firstLine, skipped: skippedHere } = result.right.parsed
      digests.push({ file, sha256: result.right.sha256 })
      if (skippedHere !== undefined) skipped.push(skippedHere)
      for (const [symbol, series] of columns) {
        const part: Part = { file, line: firstLine.get(symbol)!, series }
        const known = parts.get(symbol)
        if (known === undefined) parts.set(symbol, [part])
        else known.push(part)
      }
    }
    const out = new Map<Symbol, Columns>()
    for (const [symbol, pieces] of parts) out.set(symbol, yield* joined(symbol, pieces))
    return { columns: out, files: digests, skipped, unread }
  }).pipe(Effect.withSpan("Csv.load", { attributes: { paths: paths.join(",") } }))

/** A symbol's bars from one file, and the line its first row is on. */
interface Part {
  readonly file: string
  readonly line: number
  readonly series: Columns
}

/**
 * A symbol's bars from every file that has some: one file's as they are; several files' (data
 * split by period, as vendors ship years) one after the other in time order, whatever the order
 * the files were given in. Files whose periods overlap (the same file given twice, two vendors'
 * histories) are refused: which bar to keep is not for the loader to guess.
 */
const joined = (symbol: Symbol, parts: ReadonlyArray<Part>): Effect.Effect<Columns, CsvError> => {
  if (parts.length === 1) return Effect.succeed(parts[0]!.series)
  const sorted = [...parts].sort((a, b) => a.series.ts[0]! - b.series.ts[0]! || (a.file < b.file ? -1 : 1))
  for (let i = 1; i < sorted.length; i++) {
    const before = sorted[i - 1]!
    const part = sorted[i]!
    const last = before.series.ts[before.series.ts.length - 1]!
    if (part.series.ts[0]! <= last) {
      const iso = (ts: number) => new Date(ts).toISOString()
      return Effect.fail(
        new CsvError({
          file: part.file,
          line: part.line,
          kind: "DuplicateSymbol",
          value: symbol,
          reason: `symbol ${symbol}'s bars here (from ${iso(part.series.ts[0]!)}) overlap those in ${before.file} (to ${iso(last)}): ` +
            `a symbol may come from several files only if their periods do not overlap`
        })
      )
    }
  }
  const n = sorted.reduce((sum, part) => sum + part.series.ts.length, 0)
  const out: Columns = {
    symbol,
    ts: new Float64Array(n),
    open: new Float64Array(n),
    high: new Float64Array(n),
    low: new Float64Array(n),
    close: new Float64Array(n),
    volume: new Float64Array(n)
  }
  let at = 0
  for (const { series } of sorted) {
    for (const key of ["ts", "open", "high", "low", "close", "volume"] as const) out[key].set(series[key], at)
    at += series.ts.length
  }
  return Effect.succeed(out)
}

/**
 * Every bar of every symbol in time order, ties broken by symbol (code-unit order, so the same on
 * every machine): the sequence a backtest replays. Lazy, O(log symbols) per bar.
 */
export const merge = (bars: Bars): IterableIterator<Bar> => new Merge(bars)

/** Write bars as CSV with the header `date,open,high,low,close,volume`; `decimals` fixes the price format. */
export const format = (bars: ReadonlyArray<Bar>, options: { readonly decimals?: number } = {}): string => {
  const dateOnly = bars.every((b) => b.ts % DAY_MS === 0)
  const price = options.decimals === undefined ? String : (v: number) => v.toFixed(options.decimals)
  let out = "date,open,high,low,close,volume\n"
  for (const b of bars) {
    const iso = new Date(b.ts).toISOString()
    const when = dateOnly ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, b.ts % 1000 === 0 ? 19 : 23)}`
    out += `${when},${price(b.open)},${price(b.high)},${price(b.low)},${price(b.close)},${b.volume}\n`
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Reading files

/** The files the paths stand for (a directory: its `*.csv` files, in name order), and the sub-directories left unread. */
const expand = (paths: ReadonlyArray<string>): Effect.Effect<{ readonly files: ReadonlyArray<string>; readonly unread: ReadonlyArray<string> }, CsvError> =>
  Effect.forEach(paths, (path) =>
    Effect.tryPromise({
      try: async () => {
        if (!(await stat(path)).isDirectory()) return { files: [path], unread: [] }
        const entries = await readdir(path, { withFileTypes: true })
        const files = entries.filter((e) => /\.csv$/i.test(e.name)).map((e) => e.name).sort().map((n) => Path.join(path, n))
        // Not descended into: `--out` directories, backups and other vendors' copies live there, and
        // would be read as more bars (or refused as overlapping). Hidden ones (`.git`) go unmentioned.
        const unread: Array<string> = []
        for (const e of entries) {
          if (/\.csv$/i.test(e.name) || e.name.startsWith(".")) continue
          const sub = Path.join(path, e.name)
          if (e.isDirectory() || (e.isSymbolicLink() && (await stat(sub).then((info) => info.isDirectory(), () => false)))) unread.push(sub)
        }
        return { files, unread: unread.sort() }
      },
      catch: (e) => unreadable(path, e)
    }).pipe(
      Effect.filterOrFail(
        ({ files }) => files.length > 0,
        ({ unread }) =>
          new CsvError({
            file: path,
            kind: "Unreadable",
            reason: unread.length === 0
              ? "the directory has no .csv files"
              : `the directory has no .csv files (its sub-directories are not read: ${listed(unread.map((d) => Path.basename(d)))}; ` +
                `give one as a --data of its own)`
          })
      )
    )).pipe(Effect.map((expanded) => {
      // A sub-directory given as a --data of its own, or holding a file given, is read (in part): not "unread".
      const given = paths.map((p) => Path.resolve(p))
      const read = (dir: string) => given.some((p) => p === dir || p.startsWith(dir + Path.sep))
      const unread = [...new Set(expanded.flatMap((e) => e.unread))].filter((dir) => !read(Path.resolve(dir)))
      return { files: expanded.flatMap((e) => e.files), unread }
    }))

/** The most names a message lists. */
const LISTED = 10

/** Names for people: the first ten, then how many more. */
export const listed = (names: ReadonlyArray<string>): string =>
  names.length <= LISTED ? names.join(", ") : `${names.slice(0, LISTED).join(", ")} and ${names.length - LISTED} more`

/**
 * The largest CSV file read: 256 MiB. A file is parsed as one string, and V8 refuses strings over
 * 2^29 − 24 characters (about 512 MiB: past it, a crash and not an error); half of that keeps a
 * margin for the bytes and the string held together while parsing, four files at a time.
 */
export const MAX_FILE_BYTES = 256 * 1024 * 1024

/** What a path is, when it is not a regular file: said in the error, since "cannot read it" would puzzle. */
const kindOf = (info: Stats): string =>
  info.isDirectory()
    ? "a directory"
    : info.isFIFO()
    ? "a named pipe (FIFO)"
    : info.isCharacterDevice()
    ? "a character device"
    : info.isBlockDevice()
    ? "a block device"
    : info.isSocket()
    ? "a socket"
    : "an unusual file"

/**
 * A data file's bytes, if it is a regular file of at most `MAX_FILE_BYTES`. Checked before opening
 * it: opening a FIFO waits for a writer for ever, and a device such as /dev/zero never ends.
 */
const readData = (file: string): Effect.Effect<Buffer, CsvError> =>
  Effect.tryPromise({ try: () => stat(file), catch: (e) => unreadable(file, e) }).pipe(
    Effect.filterOrFail(
      (info) => info.isFile(),
      (info) => new CsvError({ file, kind: "Unreadable", reason: `is ${kindOf(info)}, not a regular file: --data takes CSV files or directories of them` })
    ),
    Effect.filterOrFail(
      (info) => info.size <= MAX_FILE_BYTES,
      (info) =>
        new CsvError({
          file,
          kind: "Unreadable",
          reason: `is ${info.size} bytes, larger than the ${MAX_FILE_BYTES / 1024 / 1024} MiB a CSV file may be: split it (one file per symbol, or by period)`
        })
    ),
    Effect.zipRight(Effect.tryPromise({ try: () => readFile(file), catch: (e) => unreadable(file, e) }))
  )

/**
 * A data file's text. UTF-8 (its BOM, if any, is skipped when parsing); or UTF-16 with a byte-order
 * mark, little- or big-endian, as Excel's "Unicode text" and Windows PowerShell write it: its BOM
 * says what it is, so decoding it is no guess (UTF-16 without one is refused, by `parseFile`). A
 * file whose first bytes say it is not text at all (compressed, a workbook, UTF-32) is refused by
 * name: read as UTF-8, it made an error about a header of garbage.
 */
const decode = (bytes: Buffer, file: string): string => {
  // The digest keeps the file's bytes: a big-endian file is swapped on a copy.
  const utf16 = decodeWithMark(bytes)
  if (utf16 !== undefined) {
    if (Either.isLeft(utf16)) throw new CsvError({ file, kind: "NotText", reason: utf16.left })
    return utf16.right
  }
  for (const [magic, what, instead] of SIGNATURES) {
    if (bytes.length >= magic.length && magic.every((byte, i) => bytes[i] === byte)) {
      throw new CsvError({ file, kind: "NotText", reason: `is ${what}, not CSV text: ${instead}` })
    }
  }
  return bytes.toString("utf8")
}

/** The first bytes of files given as data by mistake: what they are, and what to do instead. */
const SIGNATURES: ReadonlyArray<readonly [ReadonlyArray<number>, string, string]> = [
  [[0x1f, 0x8b], "gzip-compressed", "decompress it first (gunzip)"],
  [[0x50, 0x4b, 0x03, 0x04], "a zip archive (an Excel .xlsx workbook is one)", "extract the CSV file, or save the sheet as CSV UTF-8"],
  [[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], "an Excel .xls workbook (or another OLE document)", "save the sheet as CSV UTF-8"],
  [[0xff, 0xfe, 0x00, 0x00], "UTF-32 (it starts with a UTF-32 byte-order mark)", "save it as UTF-8"],
  [[0x00, 0x00, 0xfe, 0xff], "UTF-32 (it starts with a UTF-32 byte-order mark)", "save it as UTF-8"]
]

const unreadable = (file: string, e: unknown) =>
  new CsvError({
    file,
    kind: "Unreadable",
    reason: typeof e === "object" && e !== null && "code" in e && e.code === "EISDIR"
      ? "is a directory"
      : e instanceof Error
      ? e.message.replace(/^[A-Z]+: /, "")
      : String(e)
  })

const asCsvError = (e: unknown): CsvError => {
  if (e instanceof CsvError) return e
  throw e // a bug, not bad data: let it be a defect
}

// ---------------------------------------------------------------------------------------------
// Shared rules: both engines call these with the field's text.

const DAY_MS = 86_400_000
/** The most of a field an error quotes (then an ellipsis and the field's length): src/internal/clip.ts. */
const MAX_SHOWN = 64
const cut = (s: string) => clip(s, MAX_SHOWN)

/**
 * A decimal numeral as JavaScript reads it, minus the forms a CSV price should not have (hex,
 * Infinity, empty). Written so that no two branches can match the same digits: `\d+\.?\d*`
 * backtracks quadratically on a long run of digits followed by junk (a hostile-input test found it).
 */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

/** The value of a decimal field, or NaN when it is not one. */
const decimal = (raw: string): number => {
  const s = raw.trim()
  return DECIMAL.test(s) ? Number(s) : NaN
}

/** Why `v` (read from `raw`) is not a price, or undefined when it is one. */
const priceProblem = (v: number, raw: string): string | undefined =>
  v > 0 && v < Infinity
    ? undefined
    : raw.trim() === ""
    ? "missing value"
    : v !== v
    ? "not a number: a price is a plain decimal such as 12.5"
    : v === Infinity
    ? "out of range: not a finite number"
    : v < 0
    ? "a price must not be negative"
    : "a price must be greater than 0"

const volumeProblem = (v: number, raw: string): string | undefined =>
  v >= 0 && v < Infinity
    ? undefined
    : raw.trim() === ""
    ? "missing value"
    : v !== v
    ? "not a number: volume is a plain decimal such as 1500"
    : v === Infinity
    ? "out of range: not a finite number"
    : "volume must not be negative"

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil): no Date, no time zone. */
const daysFromCivil = (y: number, m: number, d: number): number => {
  const yy = m <= 2 ? y - 1 : y
  const era = Math.floor(yy / 400)
  const yoe = yy - era * 400
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

const daysInMonth = (y: number, m: number): number =>
  m === 2 ? (y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28) : m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31

/** Epoch ms of a UTC civil time, or NaN if any part is out of range. */
const civil = (y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number): number =>
  mo >= 1 && mo <= 12 && d >= 1 && d <= daysInMonth(y, mo) && h <= 23 && mi <= 59 && s <= 59
    ? daysFromCivil(y, mo, d) * DAY_MS + ((h * 60 + mi) * 60 + s) * 1000 + ms
    : NaN

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/

/** Epoch ms of an ISO 8601 date or date-time (no offset = UTC), or NaN. */
const isoDate = (raw: string): number => {
  const m = ISO.exec(raw.trim())
  if (m === null) return NaN
  const t = civil(+m[1]!, +m[2]!, +m[3]!, +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0), m[7] === undefined ? 0 : Math.floor(+(m[7] + "00").slice(0, 3)))
  const zone = m[8]
  if (zone === undefined || zone === "Z") return t
  const oh = +zone.slice(1, 3)
  const om = zone.length > 3 ? +zone.slice(-2) : 0
  if (oh > 23 || om > 59) return NaN
  return t - (zone[0] === "-" ? -1 : 1) * (oh * 60 + om) * 60_000
}

const BAD_DATE = "not an ISO 8601 date or date-time (2024-01-05, 2024-01-05 09:30:00, 2024-01-05T09:30:00Z, …+01:00)"

// ---------------------------------------------------------------------------------------------
// The header

interface Header {
  readonly line: number
  readonly names: ReadonlyArray<string> // as written, for errors
  readonly count: number
  readonly date: number
  readonly time: number // a separate time column, or -1
  readonly open: number
  readonly high: number
  readonly low: number
  readonly close: number
  readonly volume: number
  readonly adjClose: number // -1 unless adjusting
  /** The columns that are all `null` in a row to skip: the prices, the volume, and adj close if there is one. */
  readonly nullable: ReadonlyArray<number>
  readonly symbol: number // -1: the symbol comes from the file name
}

const ROLE: ReadonlyMap<string, string> = new Map([
  ["date", "date"],
  ["datetime", "datetime"],
  ["time", "time"],
  ["timestamp", "datetime"],
  ["open", "open"],
  ["high", "high"],
  ["low", "low"],
  ["close", "close"],
  ["volume", "volume"],
  ["adjclose", "adjClose"],
  ["adjustedclose", "adjClose"],
  ["symbol", "symbol"],
  ["ticker", "symbol"]
])

const header = (names: ReadonlyArray<string>, line: number, file: string, options: ParseOptions): Header => {
  // Roles are looked up in a Map: a column named `__proto__` or `constructor` is just an unknown column.
  const at = new Map<string, number>()
  names.forEach((raw, i) => {
    const role = ROLE.get(raw.trim().toLowerCase().replace(/[\s_]+/g, ""))
    if (role === undefined) return
    if (at.has(role)) {
      throw new CsvError({ file, line, column: cut(raw), kind: "DuplicateColumn", reason: `column "${cut(names[at.get(role)!]!)}" appears twice` })
    }
    at.set(role, i)
  })
  // Date: one of date / datetime / time(stamp), or date + time together.
  let date: number
  let time = -1
  const d = at.get("date"), dt = at.get("datetime"), t = at.get("time")
  if (dt !== undefined && (d !== undefined || t !== undefined)) {
    throw new CsvError({
      file,
      line,
      column: cut(names[d ?? t!]!),
      kind: "DuplicateColumn",
      reason: `two date columns: "${cut(names[dt]!)}" and "${cut(names[d ?? t!]!)}"`
    })
  }
  if (dt !== undefined) date = dt
  else if (d !== undefined) {
    date = d
    if (t !== undefined) time = t
  } else if (t !== undefined) date = t
  else date = -1
  const required = (role: string, label: string): number => {
    const i = role === "date" ? date : at.get(role)
    if (i === undefined || i < 0) {
      // A header of one field with tabs or semicolons in it is another separator's file: Excel's
      // "Unicode text" is tab-separated, and its CSV in many locales semicolon-separated.
      const only = names.length === 1 ? names[0]! : ""
      const separator = only.includes("\t") ? "tabs" : only.includes(";") ? "semicolons" : undefined
      throw new CsvError({
        file,
        line,
        column: label,
        kind: "MissingColumn",
        value: cut(names.join(",")),
        reason: separator === undefined
          ? `the header has no ${label} column (needs date,open,high,low,close,volume in any order and case)`
          : `the header has no ${label} column: its fields are separated by ${separator}, not commas (save or export the file as CSV, comma-separated)`
      })
    }
    return i
  }
  const prices = [required("open", "open"), required("high", "high"), required("low", "low"), required("close", "close")] as const
  const volume = required("volume", "volume")
  const adjClose = at.get("adjClose")
  return {
    line,
    names,
    count: names.length,
    date: required("date", "date"),
    time,
    open: prices[0],
    high: prices[1],
    low: prices[2],
    close: prices[3],
    volume,
    adjClose: options.adjust === "adjClose" ? required("adjClose", "adj close") : -1,
    nullable: adjClose === undefined ? [...prices, volume] : [...prices, volume, adjClose],
    symbol: at.get("symbol") ?? -1
  }
}

// ---------------------------------------------------------------------------------------------
// Rows, per symbol

/** One symbol's bars while a file is read (columns with room to grow), with what the order check needs. */
interface Series {
  readonly symbol: Symbol
  /** Bars so far. */
  n: number
  ts: Float64Array
  open: Float64Array
  high: Float64Array
  low: Float64Array
  close: Float64Array
  volume: Float64Array
  firstLine: number
  lastTs: number
  lastLine: number
  direction: 0 | 1 | -1
}

const validSymbol = Schema.is(Symbol)

class FileState {
  readonly series = new Map<string, Series>()
  /** Rows skipped as all `null` (see the module comment), and the lines of the first ones. */
  skipped = 0
  readonly skippedLines: Array<number> = []
  constructor(
    readonly file: string,
    readonly header: Header,
    readonly fileSymbol: Series | undefined,
    /** Whether a bar's OHLC must be one bar (`ParseOptions.ohlc`). */
    readonly checked: boolean
  ) {}

  fail(line: number, column: number, kind: CsvErrorKind, raw: string, reason: string): never {
    throw new CsvError({ file: this.file, line, column: cut(this.header.names[column]!.trim()), kind, value: cut(raw), reason })
  }

  seriesFor(raw: string, line: number): Series {
    let s = this.series.get(raw)
    if (s !== undefined) return s
    const name = raw.trim()
    if (!validSymbol(name)) {
      this.fail(line, this.header.symbol, "BadSymbol", raw, "not a symbol: 1 to 32 letters, digits or . - _ : / ^ =, starting with a letter or digit")
    }
    // `AAPL` and ` AAPL` are one symbol.
    for (const other of this.series.values()) {
      if (other.symbol === name) {
        this.series.set(raw, other)
        return other
      }
    }
    s = newSeries(name)
    this.series.set(raw, s)
    return s
  }

  /** Append a validated row, enforcing the symbol's order. */
  push(s: Series, line: number, ts: number, open: number, high: number, low: number, close: number, volume: number) {
    if (s.n === 0) s.firstLine = line
    else {
      const step = ts > s.lastTs ? 1 : ts < s.lastTs ? -1 : 0
      if (step === 0) {
        throw new CsvError({
          file: this.file,
          line,
          column: cut(this.header.names[this.header.date]!.trim()),
          kind: "DuplicateTimestamp",
          value: new Date(ts).toISOString(),
          reason: `${s.symbol} already has a bar at this time (line ${s.lastLine})`
        })
      }
      if (s.direction === 0) s.direction = step
      else if (step !== s.direction) {
        throw new CsvError({
          file: this.file,
          line,
          column: cut(this.header.names[this.header.date]!.trim()),
          kind: "OutOfOrder",
          value: new Date(ts).toISOString(),
          reason: `${s.symbol}'s rows are ${s.direction === 1 ? "oldest" : "newest"}-first but this one is ${
            s.direction === 1 ? "before" : "after"
          } line ${s.lastLine} (${new Date(s.lastTs).toISOString()}): sort the file by time`
        })
      }
    }
    s.lastTs = ts
    s.lastLine = line
    const i = s.n++
    if (i === s.ts.length) grow(s)
    s.ts[i] = ts
    s.open[i] = open
    s.high[i] = high
    s.low[i] = low
    s.close[i] = close
    s.volume[i] = volume
  }

  /** Check and convert the fields of one row given as strings (the csv-parse engine, and the scanner's slow path). */
  row(fields: ReadonlyArray<string>, line: number, adjust: boolean) {
    const h = this.header
    if (h.nullable.every((column) => fields[column]!.trim() === NULL)) {
      if (this.skipped++ < SKIPPED_LINES_KEPT) this.skippedLines.push(line)
      return
    }
    const s = h.symbol >= 0 ? this.seriesFor(fields[h.symbol]!, line) : this.fileSymbol!
    const dateRaw = h.time >= 0 ? `${fields[h.date]!.trim()} ${fields[h.time]!.trim()}` : fields[h.date]!
    const ts = isoDate(dateRaw)
    if (ts !== ts) this.fail(line, h.date, "BadDate", dateRaw, BAD_DATE)
    let open = this.price(fields[h.open]!, line, h.open)
    let high = this.price(fields[h.high]!, line, h.high)
    let low = this.price(fields[h.low]!, line, h.low)
    let close = this.price(fields[h.close]!, line, h.close)
    if (this.checked) this.oneBar(fields, line, open, high, low, close)
    const volumeRaw = fields[h.volume]!
    const volume = decimal(volumeRaw)
    const vp = volumeRaw.trim() === NULL ? PARTLY_NULL : volumeProblem(volume, volumeRaw)
    if (vp !== undefined) this.fail(line, h.volume, "BadNumber", volumeRaw, vp)
    if (adjust) {
      const adj = this.price(fields[h.adjClose]!, line, h.adjClose)
      const f = adj / close
      open *= f
      high *= f
      low *= f
      close = adj
    }
    this.push(s, line, ts, open, high, low, close, volume)
  }

  /** Low ≤ high, and open and close between them, as written (see the module comment); else the first column that is not, named. */
  oneBar(fields: ReadonlyArray<string>, line: number, open: number, high: number, low: number, close: number) {
    const h = this.header
    const shown = (column: number) => cut(fields[column]!.trim())
    if (high < low) this.fail(line, h.high, "BadBar", fields[h.high]!, `a bar's high must not be below its low (${shown(h.low)})`)
    const between = `its low (${shown(h.low)}) and its high (${shown(h.high)})`
    if (open < low || open > high) this.fail(line, h.open, "BadBar", fields[h.open]!, `a bar's open must be between ${between}`)
    if (close < low || close > high) this.fail(line, h.close, "BadBar", fields[h.close]!, `a bar's close must be between ${between}`)
  }

  price(raw: string, line: number, column: number): number {
    const v = decimal(raw)
    const p = raw.trim() === NULL ? PARTLY_NULL : priceProblem(v, raw)
    if (p !== undefined) this.fail(line, column, "BadNumber", raw, p)
    return v
  }
}

/** What Yahoo Finance writes in every field of a day it has no prices for. */
const NULL = "null"

const PARTLY_NULL = "null, but the row has values too: only a row whose every price and volume is null is skipped (Yahoo's days without prices)"

/** Room for the first rows of a series: small, since a file with a symbol column may hold many one-row series. */
const INITIAL_ROWS = 4

const newSeries = (symbol: string): Series => ({
  symbol: symbol as Symbol,
  n: 0,
  ts: new Float64Array(INITIAL_ROWS),
  open: new Float64Array(INITIAL_ROWS),
  high: new Float64Array(INITIAL_ROWS),
  low: new Float64Array(INITIAL_ROWS),
  close: new Float64Array(INITIAL_ROWS),
  volume: new Float64Array(INITIAL_ROWS),
  firstLine: 0,
  lastTs: 0,
  lastLine: 0,
  direction: 0
})

/** Twice the room, the rows kept. */
const grow = (s: Series) => {
  const twice = (a: Float64Array) => {
    const b = new Float64Array(a.length * 2)
    b.set(a)
    return b
  }
  s.ts = twice(s.ts)
  s.open = twice(s.open)
  s.high = twice(s.high)
  s.low = twice(s.low)
  s.close = twice(s.close)
  s.volume = twice(s.volume)
}

/** A parsed series as columns of exactly its rows, ascending in time. */
const finish = (s: Series): Columns => {
  const exact = (a: Float64Array) => (s.direction === -1 ? a.slice(0, s.n).reverse() : a.slice(0, s.n))
  return { symbol: s.symbol, ts: exact(s.ts), open: exact(s.open), high: exact(s.high), low: exact(s.low), close: exact(s.close), volume: exact(s.volume) }
}

const fileSymbol = (file: string): string => {
  const base = Path.basename(file)
  const dot = base.lastIndexOf(".")
  return dot > 0 ? base.slice(0, dot) : base
}

interface Parsed {
  readonly file: string
  readonly columns: ColumnsBySymbol
  readonly firstLine: ReadonlyMap<Symbol, number>
  readonly skipped?: Skipped
}

const isBlank = (s: string) => s.trim() === ""

const parseFile = (input: string, file: string, options: ParseOptions): Parsed => {
  const text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input
  const nul = text.slice(0, SNIFFED).indexOf("\0")
  if (nul >= 0) notText(text, file, nul)
  const state = options.engine !== "csv-parse" && text.indexOf("\"") < 0
    ? scan(text, file, options)
    : library(text, file, options)
  if (state === undefined) throw new CsvError({ file, line: 1, kind: "EmptyFile", reason: "the file is empty: expected a header line" })
  const columns = new Map<Symbol, Columns>()
  const firstLine = new Map<Symbol, number>()
  const all = state.header.symbol >= 0 ? new Set(state.series.values()) : [state.fileSymbol!]
  for (const s of all) {
    if (s.n > 0) {
      columns.set(s.symbol, finish(s))
      firstLine.set(s.symbol, s.firstLine)
    }
  }
  if (columns.size === 0) {
    const nulls = state.skipped === 0 ? "" : ` (only ${state.skipped} row${state.skipped === 1 ? "" : "s"} whose every price and volume is null)`
    throw new CsvError({ file, line: state.header.line + 1, kind: "NoRows", reason: `the file has a header but no rows${nulls}` })
  }
  return {
    file,
    columns,
    firstLine,
    ...(state.skipped === 0 ? {} : { skipped: { file, rows: state.skipped, lines: state.skippedLines } })
  }
}

/** How much of the start of a file is searched for a NUL: once per file, so no cost per row. */
const SNIFFED = 8192

/**
 * A NUL near the start: binary (no CSV writer puts one in text), or UTF-16 without a byte-order
 * mark, whose ASCII has a NUL before or after every character. The latter is said, not decoded:
 * without the mark, that it is UTF-16 at all is a guess.
 */
const notText = (text: string, file: string, nul: number): never => {
  // In the first characters (a header: ASCII), a NUL at every other place and none between.
  const n = Math.min(text.length, 64) & ~1
  let even = 0, odd = 0
  for (let i = 0; i < n; i++) if (text.charCodeAt(i) === 0) i % 2 === 0 ? even++ : odd++
  if (n >= 8 && ((even === 0 && odd >= (n / 2) * 0.75) || (odd === 0 && even >= (n / 2) * 0.75))) {
    throw new CsvError({ file, line: 1, kind: "NotText", reason: "looks like UTF-16 without a byte-order mark (a NUL byte beside every character): save it as UTF-8" })
  }
  const before = text.slice(0, nul)
  const line = before.split("\n").length
  throw new CsvError({
    file,
    line,
    kind: "NotText",
    reason: `is not text: it has a NUL byte (character ${nul - before.lastIndexOf("\n")} of the line), which CSV text never has: ` +
      `is it compressed, a spreadsheet or another binary format? Save or export it as CSV UTF-8`
  })
}

const start = (file: string, names: ReadonlyArray<string>, line: number, options: ParseOptions): FileState => {
  const h = header(names, line, file, options)
  let own: Series | undefined
  if (h.symbol < 0) {
    const name = fileSymbol(file)
    if (!validSymbol(name)) {
      throw new CsvError({
        file,
        kind: "BadSymbol",
        value: cut(name),
        reason: "the file name is not a symbol (1 to 32 letters, digits or . - _ : / ^ =) and the file has no symbol column"
      })
    }
    own = newSeries(name)
  }
  return new FileState(file, h, own, options.ohlc !== "as-given")
}

const fieldCount = (state: FileState, line: number, got: number, raw: string): never => {
  throw new CsvError({
    file: state.file,
    line,
    kind: "FieldCount",
    value: cut(raw),
    reason: `${got} field${got === 1 ? "" : "s"} where the header has ${state.header.count}`
  })
}

// ---------------------------------------------------------------------------------------------
// Engine 1: csv-parse, for files with quotes.

interface CsvParseError {
  readonly code: string
  readonly lines?: number
  readonly message: string
}

const library = (text: string, file: string, options: ParseOptions): FileState | undefined => {
  let records: Array<{ info: { lines: number }; record: Array<string> }>
  try {
    records = csvParse(text, { info: true, relax_column_count: true, record_delimiter: ["\r\n", "\n"] }) as never
  } catch (e) {
    const err = e as CsvParseError
    if (typeof err?.code !== "string") throw e
    if (err.code === "CSV_QUOTE_NOT_CLOSED" || err.code === "CSV_INVALID_CLOSING_QUOTE") {
      // Only when the pass agrees with csv-parse on what went wrong (else csv-parse's own words, below).
      const quote = openingQuote(text)
      const closed = quote?.closed
      if (
        quote !== undefined &&
        (err.code === "CSV_QUOTE_NOT_CLOSED" ? closed === undefined : closed !== undefined && closed.line === err.lines && closed.line !== quote.line)
      ) {
        throw quoteError(file, text, quote)
      }
    }
    throw new CsvError({
      file,
      ...(err.lines === undefined ? {} : { line: err.lines }),
      kind: "Malformed",
      // csv-parse quotes the field it stopped at, whole (a 1 MB field made a 1 MB line).
      reason: clipAfter(err.message.replace(/^[^:]*: /, "").replace(/ at line \d+/, ""), "value is ")
    })
  }
  let state: FileState | undefined
  let previousEnd = 0
  const adjust = options.adjust === "adjClose"
  for (const { info, record } of records) {
    // A record may span lines (a quoted newline): report the line it starts on.
    const line = previousEnd + 1
    previousEnd = info.lines
    if (record.length === 1 && isBlank(record[0]!)) continue
    if (state === undefined) {
      state = start(file, record, line, options)
      continue
    }
    if (record.length !== state.header.count) fieldCount(state, line, record.length, record.join(","))
    state.row(record, line, adjust)
  }
  return state
}

/** The quote that opened the field csv-parse failed in (`openingQuote`). */
interface OpeningQuote {
  /** Where it is in the text, and its line, character (in the line) and field (in the record), from 1. */
  readonly at: number
  readonly line: number
  readonly char: number
  readonly field: number
  /** The header's fields, unless the quote is in the header. */
  readonly header: ReadonlyArray<string> | undefined
  /** Where the field's closing quote is, when text follows it: its line and the character after it. */
  readonly closed: { readonly line: number; readonly next: string } | undefined
}

/**
 * Where the quoted field that csv-parse stopped in opened. csv-parse reports an unclosed quote where
 * the text ends (line 2,000,001 of a 2 M-line file), and a stray opening quote, when a later quote
 * closes its field, where that later quote is: the quote to fix is where the field began. Error
 * path only: one pass over the text by csv-parse's rules as `library` sets them (a quote opens a
 * field only as its first character; inside, `""` is a quote and line ends are text; a closing quote
 * is followed by a comma, a line end or the end of the text). Undefined if the text has no such field.
 */
const openingQuote = (text: string): OpeningQuote | undefined => {
  const len = text.length
  let line = 1
  let lineStart = 0
  let field = 1
  let fieldStart = true
  let recordStart = 0
  let blank = true // the record so far is blank (`library` skips such records; the first other one is the header)
  let header: [number, number] | undefined
  let quote: Omit<OpeningQuote, "header" | "closed"> | undefined
  let inHeader = false // the quote is in the header
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i)
    if (quote !== undefined) {
      if (c === 34) {
        if (text.charCodeAt(i + 1) === 34) {
          i++
          continue
        }
        const next = text.charCodeAt(i + 1)
        if (i + 1 < len && next !== 44 && next !== 10 && !(next === 13 && text.charCodeAt(i + 2) === 10)) {
          return { ...quote, header: inHeader ? undefined : headerOf(text, header), closed: { line, next: String.fromCodePoint(text.codePointAt(i + 1)!) } }
        }
        quote = undefined
      } else if (c === 10) {
        line++
        lineStart = i + 1
      }
      continue
    }
    if (c === 34 && fieldStart) {
      inHeader = header === undefined
      quote = { at: i, line, char: i - lineStart + 1, field }
      blank = false
      fieldStart = false
    } else if (c === 44) {
      field++
      fieldStart = true
      blank = false
    } else if (c === 10) {
      if (!blank && header === undefined) header = [recordStart, i]
      line++
      lineStart = recordStart = i + 1
      field = 1
      fieldStart = true
      blank = true
    } else {
      fieldStart = false
      if (blank && !isBlank(text[i]!)) blank = false
    }
  }
  return quote === undefined ? undefined : { ...quote, header: inHeader ? undefined : headerOf(text, header), closed: undefined }
}

/** The header's fields, as `library` reads them (the text before an error is well-formed). */
const headerOf = (text: string, at: [number, number] | undefined): ReadonlyArray<string> | undefined => {
  if (at === undefined) return undefined
  try {
    return (csvParse(text.slice(at[0], at[1]), { relax_column_count: true, record_delimiter: ["\r\n", "\n"] }) as Array<Array<string>>)[0]
  } catch {
    return undefined
  }
}

const quoteError = (file: string, text: string, q: OpeningQuote): CsvError => {
  const name = q.header?.[q.field - 1]?.trim()
  const where = `${q.header === undefined ? `field ${q.field} of the header` : "this field"} (character ${q.char} of the line)`
  let lineEnd = text.indexOf("\n", q.at)
  if (lineEnd < 0) lineEnd = text.length
  return new CsvError({
    file,
    line: q.line,
    ...(name === undefined ? {} : { column: cut(name) }),
    kind: "Malformed",
    value: cut(text.slice(q.at, lineEnd).replace(/\r$/, "")),
    reason: q.closed === undefined
      ? `the quote that opens ${where} is never closed: the rest of the file reads as part of the field`
      : `the quote that opens ${where} is not closed on this line: the next quote, on line ${q.closed.line}, is followed by ` +
        `${JSON.stringify(q.closed.next)} where the field should end`
  })
}

// ---------------------------------------------------------------------------------------------
// Engine 2: the scanner, for quote-free text (where CSV is exactly: lines of comma-separated fields).

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15]

/**
 * `digits[.digits]` with at most 15 digits, converted without a string: mantissa and 10^k are exact
 * doubles, so the one division is correctly rounded — the same double `Number()` returns. Longer
 * plain numerals return -2; anything else (signs, exponents, spaces, garbage) -1: both go to the
 * shared slow path.
 */
const fastDecimal = (text: string, s: number, e: number): number => {
  let mant = 0
  let digits = 0
  let frac = -1
  for (let i = s; i < e; i++) {
    const c = text.charCodeAt(i)
    if (c >= 48 && c <= 57) {
      mant = mant * 10 + (c - 48)
      digits++
      if (frac >= 0) frac++
    } else if (c === 46 && frac < 0) frac = 0
    else return -1
  }
  if (digits === 0) return -1
  if (digits > 15) return -2
  return frac > 0 ? mant / POW10[frac]! : mant
}

/**
 * Long plain numerals already converted. Float-printing writers repeat them (W2's `12.120000000000001`
 * is 1 field in 10); a lookup costs a third of a conversion. Bounded: past the limit it only reads.
 */
const longNumerals = new Map<string, number>()

/** A field's number by the fast converter, else by the shared rule; NaN when it is not a number. */
const number = (text: string, s: number, e: number): number => {
  const v = fastDecimal(text, s, e)
  if (v >= 0) return v
  const raw = text.slice(s, e)
  if (v === -1) return decimal(raw)
  let known = longNumerals.get(raw)
  if (known === undefined) {
    known = decimal(raw)
    if (longNumerals.size < 4096) longNumerals.set(raw, known)
  }
  return known
}

const digit2 = (text: string, i: number): number => {
  const a = text.charCodeAt(i) - 48
  const b = text.charCodeAt(i + 1) - 48
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1000
}

/** The last calendar day the scanner converted: consecutive rows are mostly on the same day. */
interface LastDay {
  key: number // y * 10000 + m * 100 + d, or -1
  ms: number
}

/** `YYYY-MM-DD` or `YYYY-MM-DD[ T]HH:MM:SS` exactly, as epoch ms UTC; NaN for anything else (the slow path decides). */
const fastDate = (text: string, s: number, e: number, last: LastDay): number => {
  const n = e - s
  if ((n !== 10 && n !== 19) || text.charCodeAt(s + 4) !== 45 || text.charCodeAt(s + 7) !== 45) return NaN
  const y = digit2(text, s) * 100 + digit2(text, s + 2)
  const mo = digit2(text, s + 5)
  const d = digit2(text, s + 8)
  if (y < 0 || mo < 0 || d < 0) return NaN
  const key = y * 10000 + mo * 100 + d
  if (key !== last.key) {
    const day = civil(y, mo, d, 0, 0, 0, 0)
    if (day !== day) return NaN
    last.key = key
    last.ms = day
  }
  if (n === 10) return last.ms
  const sep = text.charCodeAt(s + 10)
  if ((sep !== 32 && sep !== 84) || text.charCodeAt(s + 13) !== 58 || text.charCodeAt(s + 16) !== 58) return NaN
  const h = digit2(text, s + 11)
  const mi = digit2(text, s + 14)
  const sec = digit2(text, s + 17)
  if (h < 0 || mi < 0 || sec < 0 || h > 23 || mi > 59 || sec > 59) return NaN
  return last.ms + ((h * 60 + mi) * 60 + sec) * 1000
}

const scan = (text: string, file: string, options: ParseOptions): FileState | undefined => {
  const len = text.length
  let pos = 0
  let line = 0
  let state: FileState | undefined
  // Field i of the current line is text[starts[i], ends[i]).
  let starts = new Int32Array(0)
  let ends = new Int32Array(0)
  let h: Header | undefined
  const adjust = options.adjust === "adjClose"
  const checked = options.ohlc !== "as-given"
  const lastDay: LastDay = { key: -1, ms: 0 }
  while (pos < len) {
    line++
    let nl = text.indexOf("\n", pos)
    if (nl < 0) nl = len
    const end = nl > pos && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl
    const lineStart = pos
    pos = nl + 1
    const first = text.charCodeAt(lineStart)
    // Blank: empty, or whitespace only (checked only when it starts like whitespace).
    if (end === lineStart || ((first <= 32 || first === 0xa0 || first >= 0x1680) && isBlank(text.slice(lineStart, end)))) continue
    if (state === undefined || h === undefined) {
      state = start(file, text.slice(lineStart, end).split(","), line, options)
      h = state.header
      starts = new Int32Array(h.count)
      ends = new Int32Array(h.count)
      continue
    }
    // Split at commas, no further than the end of the line (indexOf: measured faster than a charCodeAt loop).
    let count = 0
    let f = lineStart
    for (;;) {
      let comma = text.indexOf(",", f)
      if (comma < 0 || comma > end) comma = end
      if (count < h.count) {
        starts[count] = f
        ends[count] = comma
      }
      count++
      if (comma === end) break
      f = comma + 1
    }
    if (count !== h.count) fieldCount(state, line, count, text.slice(lineStart, end))
    // The common case converts in place; any field the fast converters decline goes to the shared rules.
    const s = h.symbol < 0 ? state.fileSymbol! : state.seriesFor(text.slice(starts[h.symbol]!, ends[h.symbol]!), line)
    const ts = h.time < 0 ? fastDate(text, starts[h.date]!, ends[h.date]!, lastDay) : NaN
    const open = number(text, starts[h.open]!, ends[h.open]!)
    const high = number(text, starts[h.high]!, ends[h.high]!)
    const low = number(text, starts[h.low]!, ends[h.low]!)
    const close = number(text, starts[h.close]!, ends[h.close]!)
    const volume = number(text, starts[h.volume]!, ends[h.volume]!)
    if (
      ts === ts && open > 0 && high > 0 && low > 0 && close > 0 && volume >= 0 &&
      open < Infinity && high < Infinity && low < Infinity && close < Infinity && volume < Infinity && !adjust &&
      (!checked || (low <= high && low <= open && open <= high && low <= close && close <= high))
    ) {
      state.push(s, line, ts, open, high, low, close, volume)
    } else {
      const fields = new Array<string>(h.count)
      for (let i = 0; i < h.count; i++) fields[i] = text.slice(starts[i]!, ends[i]!)
      state.row(fields, line, adjust)
    }
  }
  return state
}

// ---------------------------------------------------------------------------------------------
// The merged iteration

/**
 * Most feeds are aligned (every symbol has a bar at each time), so the merge starts a time at a
 * time: one pass over the symbols finds the earliest next time and, in symbol order, the series
 * with a bar then — about one comparison per bar when aligned. When the times turn out not to line
 * up (one pass per bar or so), it switches for good to a binary heap, O(log symbols) per bar.
 * Measured (100 symbols, 2 M bars): aligned, time-at-a-time ≈ 100 ns a bar and the heap ≈ 230 ns;
 * 256 symbols with disjoint times, time-at-a-time ≈ 1 µs a bar and the heap ≈ 260 ns.
 */
class Merge implements IterableIterator<Bar> {
  private readonly series: Array<ReadonlyArray<Bar>>
  private readonly cursor: Int32Array // next index into each series
  private readonly head: Float64Array // ts of each series' next bar (Infinity when done)
  // time-at-a-time: the series with a bar at the current time, in symbol order
  private readonly group: Int32Array
  private groupSize = 0
  private groupPos = 0
  private groups = 0
  private scanned = 0
  private emitted = 0
  // heap: series numbers ordered by (head ts, series number); undefined until the switch
  private heap: Int32Array | undefined = undefined
  private size = 0

  constructor(bars: Bars) {
    // Series numbered in symbol order, so comparing numbers breaks ties by symbol.
    const symbols = [...bars.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    this.series = symbols.filter((s) => bars.get(s)!.length > 0).map((s) => bars.get(s)!)
    const n = this.series.length
    this.cursor = new Int32Array(n)
    this.head = new Float64Array(n)
    this.group = new Int32Array(n)
    for (let i = 0; i < n; i++) this.head[i] = this.series[i]![0]!.ts
  }

  [globalThis.Symbol.iterator]() {
    return this
  }

  next(): IteratorResult<Bar> {
    let i: number
    if (this.heap === undefined) {
      if (this.groupPos === this.groupSize && !this.nextGroup()) return { done: true, value: undefined }
    }
    if (this.heap === undefined) i = this.group[this.groupPos++]!
    else {
      if (this.size === 0) return { done: true, value: undefined }
      i = this.heap[0]!
    }
    const s = this.series[i]!
    const c = this.cursor[i]!
    this.cursor[i] = c + 1
    this.head[i] = c + 1 < s.length ? s[c + 1]!.ts : Infinity
    if (this.heap !== undefined) {
      if (c + 1 === s.length) this.heap[0] = this.heap[--this.size]!
      this.siftDown(0)
    }
    return { done: false, value: s[c]! }
  }

  /** Collect, in symbol order, the series whose next bar is at the earliest time; false when all are done. */
  private nextGroup(): boolean {
    const head = this.head
    if (++this.groups % 64 === 0 && this.scanned > 32 * this.emitted) {
      this.toHeap()
      return true
    }
    const group = this.group
    let t = Infinity
    let size = 0
    for (let i = 0; i < head.length; i++) {
      const h = head[i]!
      if (h < t) {
        t = h
        group[0] = i
        size = 1
      } else if (h === t && h !== Infinity) group[size++] = i
    }
    this.groupSize = size
    this.groupPos = 0
    this.scanned += head.length
    this.emitted += size
    return size > 0
  }

  private toHeap() {
    const heap = new Int32Array(this.head.length)
    let size = 0
    for (let i = 0; i < this.head.length; i++) if (this.head[i]! < Infinity) heap[size++] = i
    this.heap = heap
    this.size = size
    for (let i = (size >> 1) - 1; i >= 0; i--) this.siftDown(i)
  }

  private siftDown(c: number) {
    const heap = this.heap!
    const head = this.head
    const n = this.size
    const item = heap[c]!
    const t = head[item]!
    for (;;) {
      const l = 2 * c + 1
      if (l >= n) break
      let m = l
      let mt = head[heap[l]!]!
      const r = l + 1
      if (r < n) {
        const rt = head[heap[r]!]!
        if (rt < mt || (rt === mt && heap[r]! < heap[l]!)) {
          m = r
          mt = rt
        }
      }
      if (t < mt || (t === mt && item < heap[m]!)) break
      heap[c] = heap[m]!
      c = m
    }
    heap[c] = item
  }
}
