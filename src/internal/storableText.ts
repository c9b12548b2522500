/**
 * Text a database can keep. Postgres stores no U+0000 in `text` or `jsonb`, and refuses an
 * unpaired surrogate (`"\ud800"`, valid in a JS string and in JSON, not Unicode) in `jsonb`. A
 * client's value with one got as far as the database, which answered with its own error: an
 * approval's reason with U+0000 failed the run recording it, a strategy's name got `Unavailable`.
 * Values from clients are checked here first, so such text is refused naming its field. So is a
 * key named `__proto__`, which decoding would not keep as a field.
 */

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const UNPAIRED = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Why `text` cannot be stored, or undefined when it can. */
export const unstorableReason = (text: string): string | undefined => {
  if (text.includes("\u0000")) return "contains U+0000 (a NUL character), which cannot be stored"
  if (UNPAIRED.test(text)) return "contains an unpaired UTF-16 surrogate: not valid Unicode"
  return undefined
}

/** Nesting past which a value is not searched further (payload schemas nest far less). */
const MAX_DEPTH = 64

/**
 * The first string (or object key) in `value` that cannot be stored, or a `__proto__` key: its path (`["agents", 0,
 * "params", "name"]`) and why; undefined when there is none.
 */
export const findUnstorable = (
  value: unknown,
  path: Array<string | number> = []
): { readonly path: ReadonlyArray<string | number>; readonly reason: string } | undefined => {
  if (typeof value === "string") {
    const reason = unstorableReason(value)
    return reason === undefined ? undefined : { path, reason }
  }
  if (typeof value !== "object" || value === null || path.length >= MAX_DEPTH) return undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findUnstorable(value[i], [...path, i])
      if (found !== undefined) return found
    }
    return undefined
  }
  for (const [key, item] of Object.entries(value)) {
    const keyReason = unstorableReason(key)
    if (keyReason !== undefined) return { path, reason: `a key ${keyReason}` }
    // JSON.parse makes it an own key; decoding assigns it, which sets the prototype instead: the
    // value would vanish from what is kept, or stand behind every field of the object.
    if (key === "__proto__") return { path: [...path, key], reason: `a key named "__proto__" is not accepted (in JavaScript it names an object's prototype)` }
    const found = findUnstorable(item, [...path, key])
    if (found !== undefined) return found
  }
  return undefined
}
