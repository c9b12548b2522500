/**
 * YAML as configuration files need it read: aliases capped (no "billion laughs"), duplicate keys
 * an error (not a silent override), and what the parser only warns about — a tag it cannot
 * resolve, `!!js/function` — an error too: the value would be read as something else than was
 * written, and the warning went to stderr as a multi-line Node warning outside our error line.
 * A file is one document: what follows a `---` was ignored, unread.
 */
import { Data } from "effect"
import { parseAllDocuments } from "yaml"

/**
 * A parse error's message as one line: the parser's pretty message goes on, after a colon, with
 * the lines it points at (`Map keys must be unique at line 2, column 1:` then the text), which an
 * error line has no room for.
 */
export const firstLine = (error: unknown): string =>
  error instanceof Error ? error.message.split("\n")[0]!.replace(/:\s*$/, "") : String(error)

/** The text holds more than one document; `line` is where the second starts (1-based). */
export class MultipleDocuments extends Data.TaggedError("MultipleDocuments")<{ readonly line: number }> {}

/**
 * The parsed value of `text`; throws `MultipleDocuments`, or the parser's first error or warning
 * as `parse` throws errors. No document (an empty file, comments only) is null.
 */
export const parseStrict = (text: string): unknown => {
  const documents = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, logLevel: "silent" })
  const second = documents[1]
  if (second !== undefined) throw new MultipleDocuments({ line: text.slice(0, second.range[0]).split("\n").length })
  const document = documents[0]
  if (document === undefined) return null
  const problem = document.errors[0] ?? document.warnings[0]
  if (problem !== undefined) throw problem
  return document.toJS({ maxAliasCount: 100 })
}
