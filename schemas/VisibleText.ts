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
 * Zero-width non-joiner. Persian and other Arabic-script writing needs it inside words: `می‌خواهم`
 * shows the first letter unjoined, and differs visibly from `میخواهم`. Both joiners after a virama
 * (Indic scripts: `क्‍ष` shows a half form, `क्ष` a conjunct) choose a visible form too. Allowed
 * there, as IDNA's CONTEXTJ rules (RFC 5892, appendix A.1 and A.2) allow them; anywhere else
 * (between Latin letters, at an end) they show nothing.
 */
const ZWNJ = 0x200c
/** Viramas (Canonical_Combining_Class 9) of the scripts with conjuncts in everyday use: Brahmic in the BMP, and Khmer, Myanmar, Balinese, Javanese. */
const VIRAMA = /[\u094d\u09cd\u0a4d\u0acd\u0b4d\u0bcd\u0c4d\u0ccd\u0d3b\u0d3c\u0d4d\u0dca\u0e3a\u0eba\u0f84\u1039\u103a\u1714\u1715\u1734\u17d2\u1a60\u1b44\u1baa\u1bab\u1bf2\u1bf3\u2d7f\ua806\ua82c\ua8c4\ua953\ua9c0\uaaf6\uabed]/u
/** Letters of the scripts whose letters join: the non-joiner between two of them keeps them apart, visibly. */
const JOINING = /[\p{Script=Arabic}\p{Script=Syriac}\p{Script=Nko}\p{Script=Mongolian}\p{Script=Mandaic}\p{Script=Manichaean}\p{Script=Psalter_Pahlavi}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}\p{Script=Sogdian}]/u
const LETTER = /\p{L}/u
/**
 * Arabic letters that join only to the letter before them (Joining_Type R: alef, dal, reh, waw,
 * teh marbuta…): after one, the next letter starts unjoined anyway, so a non-joiner there shows
 * nothing (`و‌ب` looks as `وب`).
 */
const JOINS_BEFORE_ONLY = /[\u0622-\u0625\u0627\u0629\u062f-\u0632\u0648\u0671-\u0673\u0675-\u0677\u0688-\u0699\u06c0\u06c3-\u06cb\u06cd\u06cf\u06d2\u06d3\u06d5\u06ee\u06ef]/u
/** What may stand between a joining letter and the non-joiner (vowel marks, shadda: transparent to joining). */
const MARK = /\p{M}/u

/** A joiner or non-joiner at `i` that follows a virama: it picks the form of the consonant cluster. */
const afterVirama = (chars: ReadonlyArray<string>, i: number) => i > 0 && VIRAMA.test(chars[i - 1]!)

/** A non-joiner at `i` between two letters of a joining script (marks aside): it breaks the join, visibly. */
const breaksJoin = (chars: ReadonlyArray<string>, i: number) => {
  let before = i - 1
  while (before >= 0 && MARK.test(chars[before]!)) before--
  let after = i + 1
  while (after < chars.length && MARK.test(chars[after]!)) after++
  const joining = (c: string | undefined) => c !== undefined && LETTER.test(c) && JOINING.test(c)
  return joining(chars[before]) && !JOINS_BEFORE_ONLY.test(chars[before]!) && joining(chars[after])
}

/**
 * A tag character (U+E0020–U+E007F) at `i` inside an emoji tag sequence: a black flag (U+1F3F4),
 * tag letters, and a cancel tag (U+E007F) — 🏴󠁧󠁢󠁳󠁣󠁴󠁿, Scotland's flag, one glyph. Anywhere else they show nothing.
 */
const BLACK_FLAG = 0x1f3f4
const CANCEL_TAG = 0xe007f
const isTag = (c: string | undefined) => c !== undefined && c.codePointAt(0)! >= 0xe0020 && c.codePointAt(0)! <= 0xe007e
/** A tag or cancel tag at `i` in a black flag, one or more tags, then a cancel tag. */
const inFlagTags = (chars: ReadonlyArray<string>, i: number) => {
  let first = i
  while (first > 0 && isTag(chars[first - 1])) first--
  let end = i
  while (end < chars.length && isTag(chars[end])) end++
  return first > 0 && chars[first - 1]!.codePointAt(0) === BLACK_FLAG && end > first && chars[end]?.codePointAt(0) === CANCEL_TAG
}

/** A format character that, where it stands, is part of what is shown (see the rules above). */
const shownFormat = (chars: ReadonlyArray<string>, i: number) => {
  const c = chars[i]!.codePointAt(0)!
  if (c === ZWJ) return joinsEmoji(chars, i) || afterVirama(chars, i)
  if (c === ZWNJ) return afterVirama(chars, i) || breaksJoin(chars, i)
  if (isTag(chars[i]) || c === CANCEL_TAG) return inFlagTags(chars, i)
  return false
}

/**
 * Why `text` may not be a name given now, or undefined: a control character (an ESC was a terminal
 * escape, a line break a faked line of output), a bidirectional formatting character (it reorders
 * what is shown after it), any other invisible format character (Unicode category Cf: U+200B zero
 * width space, U+2060 word joiner, U+FEFF, U+00AD soft hyphen, tag characters… — `a\u200bb` shows
 * as `ab`; the joiners and tags only where they change what is shown: `shownFormat`), or text not in Unicode NFC form (`e` and a combining accent shows as the one character
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
    if (/\p{Cf}/u.test(c) && !shownFormat(chars, i)) {
      return `no invisible format characters (${at}): ${what} would look the same as one without it`
    }
  }
  if (text.normalize("NFC") !== text) {
    return "not in Unicode NFC form: it would look the same as, and differ from, its composed form (é as one character, not e and a combining accent); compose it"
  }
  return undefined
}
