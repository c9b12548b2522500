/**
 * A command line as a person pastes it into a POSIX shell (the next page `swarm runs list` says to
 * run): each word as it is when it needs no quoting, else in single quotes, a `'` in it as `'\''`.
 */

/** What a shell takes as one word unquoted (a `#` opening a word opens a comment). */
const PLAIN = /^[A-Za-z0-9_@%+=:,./-][A-Za-z0-9_@%+=:,./#-]*$/

export const quote = (word: string): string => (PLAIN.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)

export const line = (words: ReadonlyArray<string>): string => words.map(quote).join(" ")
