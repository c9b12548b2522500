/**
 * Text that is shown and then named back: a strategy's name, a rule's id and name (and an API key's
 * label, shown beside its key in `admin keys`). What a terminal
 * does not show, or shows the same as other text, lets two names look identical in a list and
 * resolve to different things. Checked where a name is given now, never where one is read back:
 * names stored before still load and resolve.
 */

/** Zero-width joiner: visible inside an emoji sequence (👩‍💻 is one glyph, 👩💻 two), invisible anywhere else. */
const ZWJ = 0x200d
const PICTOGRAPHIC = /\p{Extended_Pictographic}/u
/** What may stand between a pictograph and the joiner: a skin tone (U+1F3FB–U+1F3FF) or the emoji presentation selector. */
const EMOJI_TAIL = /[\u{1f3fb}-\u{1f3ff}\ufe0f]/u

const codePoint = (c: string) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`

/** A zero-width joiner at `i` that joins two pictographs (after an optional skin tone or selector). */
const joinsEmoji = (chars: ReadonlyArray<string>, i: number) => {
  let before = i - 1
  while (before >= 0 && EMOJI_TAIL.test(chars[before]!)) before--
  return before >= 0 && PICTOGRAPHIC.test(chars[before]!) && i + 1 < chars.length && PICTOGRAPHIC.test(chars[i + 1]!)
}

/**
 * Why `text` may not be a name given now, or undefined: a control character (an ESC was a terminal
 * escape, a line break a faked line of output), a bidirectional formatting character (it reorders
 * what is shown after it), any other invisible format character (Unicode category Cf: U+200B zero
 * width space, U+2060 word joiner, U+FEFF, U+00AD soft hyphen, tag characters… — `a\u200bb` shows
 * as `ab`), or text not in Unicode NFC form (`e` and a combining accent shows as the one character
 * `é` but compares unequal to it). Names the first such character as U+XXXX and its position,
 * counted in characters from 1. Refused rather than normalised: a name is stored and shown as it
 * was given, and a user's name quietly becoming another string would surprise them on the next
 * lookup by the bytes they typed.
 */
export const visibleTextProblem = (text: string, what = "the name"): string | undefined => {
  const chars = Array.from(text)
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!
    const at = `${codePoint(c)} at position ${i + 1}`
    if (/\p{Cc}/u.test(c)) return `no control characters (line breaks, tabs, escapes) (${at})`
    if (/[\u202a-\u202e\u2066-\u2069]/u.test(c)) {
      return `no bidirectional formatting characters (${at}): they reorder the text shown after them`
    }
    if (/\p{Cf}/u.test(c) && !(c.codePointAt(0) === ZWJ && joinsEmoji(chars, i))) {
      return `no invisible format characters (${at}): ${what} would look the same as one without it`
    }
  }
  if (text.normalize("NFC") !== text) {
    return "not in Unicode NFC form: it would look the same as, and differ from, its composed form (é as one character, not e and a combining accent); compose it"
  }
  return undefined
}
