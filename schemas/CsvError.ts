/** Why a market-data file could not become bars: it crosses the CLI and RPC edges, so it is a schema. */
import { Schema } from "effect"

export const CsvErrorKind = Schema.Literal(
  "Unreadable", // the path cannot be read (missing, permissions, not a file)
  "NotText", // not CSV text: binary (a NUL byte, a compressed file, a spreadsheet) or an encoding other than UTF-8 and UTF-16 with a BOM
  "EmptyFile", // no header line
  "NoRows", // a header and no data
  "MissingColumn", // a required column is not in the header
  "DuplicateColumn", // a column (or two date columns) named twice
  "Malformed", // CSV syntax (an unclosed quote, text after a closing quote)
  "FieldCount", // a row with more or fewer fields than the header
  "BadNumber", // not a finite decimal, or out of range (price ≤ 0, volume < 0)
  "BadBar", // OHLC that are not one bar: high below low, or open or close outside [low, high]
  "BadDate", // not an ISO 8601 date or date-time, or not a calendar date
  "BadSymbol", // not a valid ticker (schemas/Ids.ts Symbol)
  "DuplicateTimestamp", // the same time twice for one symbol
  "OutOfOrder", // a time that breaks the symbol's order
  "DuplicateSymbol" // one symbol in two files
)
export type CsvErrorKind = typeof CsvErrorKind.Type

/** A file that cannot become bars: where (file, line, column), what (kind, value) and why (reason). */
export class CsvError extends Schema.TaggedError<CsvError>()("CsvError", {
  file: Schema.String,
  /** 1-based line in the file; absent for problems of the file as a whole (unreadable, bad file name). */
  line: Schema.optional(Schema.Int),
  /** The column as the header spells it. */
  column: Schema.optional(Schema.String),
  kind: CsvErrorKind,
  /** The offending text, cut to 64 characters (then `… (<length> characters)`). */
  value: Schema.optional(Schema.String),
  reason: Schema.String
}) {
  override get message() {
    const where = this.line === undefined ? this.file : `${this.file}:${this.line}`
    const column = this.column === undefined ? "" : ` column "${this.column}":`
    const value = this.value === undefined ? "" : ` (got ${JSON.stringify(this.value)})`
    return `${where}:${column} ${this.reason}${value}`
  }
}
