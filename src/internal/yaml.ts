/**
 * YAML as configuration files need it read: aliases capped (no "billion laughs"), duplicate keys
 * an error (not a silent override), and what the parser only warns about — a tag it cannot
 * resolve, `!!js/function` — an error too: the value would be read as something else than was
 * written, and the warning went to stderr as a multi-line Node warning outside our error line.
 */
import { parseDocument } from "yaml"

/** The parsed value of `text`; throws the parser's first error or warning, as `parse` throws errors. */
export const parseStrict = (text: string): unknown => {
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: true, logLevel: "silent" })
  const problem = document.errors[0] ?? document.warnings[0]
  if (problem !== undefined) throw problem
  return document.toJS({ maxAliasCount: 100 })
}
