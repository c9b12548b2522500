/**
 * Stored jsonb decoded by its text (`column::text`): decoding a strategy body or a run's metrics
 * costs several times reading it, and reads that dashboards poll (`strategies.get`, `runs.get`,
 * every run of a `runs.list`) decoded the same text again each time. The same text always decodes
 * to the same value, whoever wrote it and whenever — a value changed by another server, or by hand,
 * is a new text and is decoded anew. The values are shared between callers, which must not change
 * them (decoded values are treated as immutable throughout). Bounded: past `kept`, the oldest goes.
 */
import { Effect, type ParseResult, Schema } from "effect"

export const decodedByText = <A, I>(schema: Schema.Schema<A, I>, kept: number) => {
  const decode = Schema.decodeUnknown(schema)
  const decoded = new Map<string, A>()
  return (text: string): Effect.Effect<A, ParseResult.ParseError> => {
    const known = decoded.get(text)
    if (known !== undefined) return Effect.succeed(known)
    // Postgres writes jsonb as JSON: the text parses.
    return Effect.tap(Effect.suspend(() => decode(JSON.parse(text))), (value) =>
      Effect.sync(() => {
        if (decoded.size >= kept) decoded.delete(decoded.keys().next().value!)
        decoded.set(text, value)
      }))
  }
}
