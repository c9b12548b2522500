/**
 * The offline backend: answers every request with the caller's own deterministic answer
 * (`request.offline()`), so a run, a replay and a test never depend on a model being up. It costs
 * no tokens and cannot fail.
 */
import { type Context, Effect, Layer, Stream } from "effect"
import { type ChatChunk, LanguageModel } from "./LanguageModel.js"

export const defaultDescription = "offline: LLM agents answer with the deterministic offline analyst"

export const make = (description: string = defaultDescription): Context.Tag.Service<LanguageModel> => ({
  backend: { kind: "offline", description },
  chat: (request) =>
    Effect.sync(() => {
      const answer = request.offline()
      return { content: answer.content, toolCalls: answer.toolCalls ?? [], tokensIn: 0, tokensOut: 0 }
    }),
  chatStream: (request) =>
    Stream.suspend(() => {
      const answer = request.offline()
      const calls = answer.toolCalls ?? []
      return Stream.fromIterable<ChatChunk>([
        ...words(answer.content).map((text) => ({ _tag: "Text" as const, text })),
        ...(calls.length > 0 ? [{ _tag: "ToolCalls" as const, calls }] : []),
        { _tag: "Done", tokensIn: 0, tokensOut: 0 }
      ])
    })
})

export const layer = (description?: string): Layer.Layer<LanguageModel> => Layer.succeed(LanguageModel, make(description))

/**
 * A text in the pieces a model would stream: each word with the whitespace after it (leading
 * whitespace on its own), so that the pieces concatenate to the text exactly.
 */
export const words = (text: string): Array<string> => text.match(/\S+\s*|\s+/g) ?? []
