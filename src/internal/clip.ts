/**
 * Quoting a user's text back in an error, bounded. Schema and parser messages quote the value they
 * stopped at, whole: a 1 MB CSV field with a stray quote made a 1 MB stderr line, a strategy's
 * `"name": [1,1,…]` a 900 KB one. An error quotes at most `QUOTED` characters of a value, then
 * says how long it was.
 */

/** The most of a value an error quotes. */
export const QUOTED = 100

/** `text`, cut to `max` characters with an ellipsis and its length when longer. */
export const clip = (text: string, max = QUOTED): string => (text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`)

/**
 * A message that quotes a value after `marker` (a schema's `Expected string, actual <value>`,
 * csv-parse's `…, value is "<field>"`): the value clipped to `max`, the words before it to a few
 * times that. Without the marker, the whole message is clipped to that.
 */
export const clipAfter = (message: string, marker: string, max = QUOTED): string => {
  const at = message.indexOf(marker)
  return at < 0
    ? clip(message, 4 * max)
    : `${clip(message.slice(0, at), 4 * max)}${marker}${clip(message.slice(at + marker.length), max)}`
}
