/**
 * The language-model backend: one completion (`chat`) or a stream of its tokens (`chatStream`).
 * Implementations: Ollama (src/llm/Ollama.ts, the real one), the offline model (src/llm/Offline.ts,
 * the deterministic default when no Ollama answers). Budgets, caching, retries, recording and
 * structured decoding sit above this, in src/llm/LlmSession.ts: a backend makes one attempt.
 */
import { Context, type Effect, type Stream } from "effect"
import type { Backend, BackendError, Message, ToolCall, ToolSpec } from "../../schemas/Llm.js"

/**
 * What the offline model answers for a request: the caller's own deterministic answer, built from
 * the same inputs as the prompt (the market brief, the chat's tool results). Every agent that asks a
 * model says what it would answer without one, so a run never depends on a model being up.
 */
export interface OfflineAnswer {
  readonly content: string
  readonly toolCalls?: ReadonlyArray<ToolCall>
}

export interface ChatRequest {
  readonly model: string
  readonly messages: ReadonlyArray<Message>
  /** JSON Schema the answer must match (Ollama's structured outputs). */
  readonly format?: object
  readonly tools?: ReadonlyArray<ToolSpec>
  /** The longest answer, in tokens (Ollama's `num_predict`). */
  readonly maxTokensOut?: number
  readonly temperature?: number
  /** Seeds the model's sampling (Ollama's `seed`), so that a temperature above 0 repeats itself. */
  readonly seed?: number
  /** This attempt's limit, wall-clock. */
  readonly timeoutMillis: number
  /** The offline model's answer to this request. */
  readonly offline: () => OfflineAnswer
}

export interface ChatAnswer {
  readonly content: string
  readonly toolCalls: ReadonlyArray<ToolCall>
  /** As the backend counted them (Ollama's `prompt_eval_count` and `eval_count`). */
  readonly tokensIn: number
  readonly tokensOut: number
}

/** A piece of a streamed answer: text as it comes, then the final tally (`done`). */
export type ChatChunk =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "ToolCalls"; readonly calls: ReadonlyArray<ToolCall> }
  | { readonly _tag: "Done"; readonly tokensIn: number; readonly tokensOut: number }

/** Which backend is in use, in the words start-up, `/health` and a run's metadata say it. */
export interface BackendInfo {
  readonly kind: Backend
  /** `ollama at http://127.0.0.1:11434 (3 models)`, `offline: no Ollama at … (connection refused)`. */
  readonly description: string
}

export class LanguageModel extends Context.Tag("swarm/LanguageModel")<LanguageModel, {
  readonly backend: BackendInfo
  /** One attempt at one completion. */
  readonly chat: (request: ChatRequest) => Effect.Effect<ChatAnswer, BackendError>
  /** One attempt, streamed token by token (the chat agent's replies). Ends with `Done`. */
  readonly chatStream: (request: ChatRequest) => Stream.Stream<ChatChunk, BackendError>
}>() {}
