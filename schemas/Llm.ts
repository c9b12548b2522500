/**
 * The language-model contract: a strategy's LLM settings, the messages and tool calls of a chat
 * with a model, the record kept of every call (what a replay answers from), and the typed failures.
 * Backends (Ollama, the offline model, a recording) live in src/llm; this is what they share.
 */
import { Schema } from "effect"
import { AgentId, RoundId, RunId } from "./Ids.js"

const Positive = Schema.Number.pipe(Schema.finite(), Schema.positive())
const NonNegative = Schema.Number.pipe(Schema.finite(), Schema.nonNegative())

/** An Ollama model tag (`llama3.2:3b`, `qwen2.5:7b-instruct`, `hf.co/org/model:Q4_K_M`). */
export const ModelName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, {
    message: () => "a model name is 1 to 128 letters, digits or . _ : / -, as Ollama tags them (llama3.2:3b)"
  })
)

/**
 * A run's spending limit on language models. Tokens always; cost when the strategy prices tokens.
 * Fail closed: a call that could take the run past either limit is not made (its agent abstains),
 * so the limit is never exceeded — the call's prompt and its longest answer are reserved before it.
 */
export const LlmBudget = Schema.Struct({
  /** Tokens in and out together, for the whole run. */
  tokens: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1_000_000_000)), { default: () => 200_000, exact: true }),
  /** Price of a million prompt tokens, in the run's currency (0: not priced). */
  pricePerMillionIn: Schema.optionalWith(NonNegative, { default: () => 0, exact: true }),
  /** Price of a million answer tokens. */
  pricePerMillionOut: Schema.optionalWith(NonNegative, { default: () => 0, exact: true }),
  /** The most the run may spend, in the same currency (absent: tokens are the only limit). */
  maxCost: Schema.optional(Positive)
}).annotations({ identifier: "LlmBudget", parseOptions: { onExcessProperty: "error" } })
export type LlmBudget = typeof LlmBudget.Type

/**
 * The strategy's `llm` section: which model its LLM agents use (an agent's `params.model`
 * overrides it), how long a call may take, how often it is retried, the budget and the cache.
 * Optional in the strategy, so strategies without LLM agents keep their encoding (and run ids).
 */
export const LlmConfig = Schema.Struct({
  model: Schema.optionalWith(ModelName, { default: () => "llama3.2:3b", exact: true }),
  /** One call's limit, wall-clock (a slow model means an abstention, never a stalled run). */
  timeoutMillis: Schema.optionalWith(Schema.Int.pipe(Schema.between(100, 600_000)), { default: () => 20_000, exact: true }),
  /** Retries of a call that failed for a transient reason (connection, 5xx, timeout), with exponential backoff. */
  retries: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 5)), { default: () => 2, exact: true }),
  /** The longest answer asked for (Ollama's `num_predict`), in tokens. */
  maxTokensOut: Schema.optionalWith(Schema.Int.pipe(Schema.between(16, 32_768)), { default: () => 512, exact: true }),
  temperature: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 2)), { default: () => 0, exact: true }),
  budget: Schema.optionalWith(LlmBudget, { default: () => Schema.decodeSync(LlmBudget)({}), exact: true }),
  /** Answers are cached by model, prompt hash and data window for this long (0: no cache). */
  cacheTtlSeconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 30 * 86_400)), { default: () => 3_600, exact: true })
}).annotations({ identifier: "LlmConfig", parseOptions: { onExcessProperty: "error" } })
export type LlmConfig = typeof LlmConfig.Type

export const defaultLlmConfig: LlmConfig = Schema.decodeSync(LlmConfig)({})

/** A tool call the model asked for (Ollama tool calling): a function name and its JSON arguments. */
export const ToolCall = Schema.Struct({
  name: Schema.String,
  arguments: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type ToolCall = typeof ToolCall.Type

export const Role = Schema.Literal("system", "user", "assistant", "tool")
export type Role = typeof Role.Type

export const Message = Schema.Struct({
  role: Role,
  content: Schema.String,
  /** On an assistant message: the tools it called. */
  toolCalls: Schema.optional(Schema.Array(ToolCall)),
  /** On a tool message: the tool whose result it carries. */
  toolName: Schema.optional(Schema.String)
})
export type Message = typeof Message.Type

/** A tool offered to the model: a name, what it does, and its parameters as JSON Schema. */
export const ToolSpec = Schema.Struct({
  name: Schema.String,
  description: Schema.String,
  parameters: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type ToolSpec = typeof ToolSpec.Type

/** Which backend answered a call. */
export const Backend = Schema.Literal("ollama", "offline", "recorded")
export type Backend = typeof Backend.Type

/**
 * How a call ended. `ok`: an answer that decoded; `invalid`: answers that did not decode even after
 * the retry that showed the model its error; `timeout`, `error`: no usable answer in time or at all;
 * `budget`: not made, it could have exceeded the run's budget. All but `ok` make the agent abstain.
 */
export const CallOutcome = Schema.Literal("ok", "invalid", "timeout", "error", "budget")
export type CallOutcome = typeof CallOutcome.Type

/**
 * A piece of a recorded prompt — one message's JSON, or the answer format's — kept once in a run:
 * its body the first time its `hash` (SHA-256, hex, of the piece's JSON) comes in the run's events,
 * only the hash after (src/llm/RunPrompts.ts reads it back). The body of a message that is a role
 * and a content is those two (its JSON is `JSON.stringify({ role, content })`: the content escaped
 * once in the event, not twice as JSON text in a string); of any other piece, its JSON as `text`.
 */
export const PromptPart = Schema.Struct({
  hash: Schema.String,
  role: Schema.optional(Role),
  content: Schema.optional(Schema.String),
  text: Schema.optional(Schema.String)
})
export type PromptPart = typeof PromptPart.Type

/**
 * One call to a model, as recorded: enough to audit it (who asked what, what it cost) and to answer
 * it again without the model (replay). Keyed in a run by agent, round and step. The prompt is kept
 * on a miss; a cache hit keeps its hash (the prompt is rebuilt from the same inputs on replay, and
 * its hash checked). A run whose `RunStarted` says `llm.prompts: "parts"` keeps a miss's prompt as
 * `promptParts`, each part once in the run; runs recorded before keep it whole as `prompt`.
 */
export const LlmCall = Schema.Struct({
  agent: AgentId,
  /** Absent for calls outside a round (chat). */
  round: Schema.optional(RoundId),
  /** The call's place in its agent's round (`bull-1`, `bear-1`, `judge`). */
  step: Schema.String,
  model: Schema.String,
  backend: Backend,
  /** SHA-256 (hex) of the canonical JSON of the messages (and format) sent. */
  promptHash: Schema.String,
  /** The prompt whole (runs recorded before `promptParts`). */
  prompt: Schema.optional(Schema.String),
  /**
   * The prompt in parts: its messages' JSON, in order, then its format's JSON — the prompt is
   * `{"model":<model>,"messages":[<messages, comma-separated>],"format":<format>}`. Each part's text
   * is recorded the first time its hash comes in the run, only its hash after.
   */
  promptParts: Schema.optional(Schema.Array(PromptPart)),
  /** The model's last answer, as it gave it (absent when there was none). */
  answer: Schema.optional(Schema.String),
  tokensIn: Schema.Int.pipe(Schema.nonNegative()),
  tokensOut: Schema.Int.pipe(Schema.nonNegative()),
  /** Cost in the strategy's currency, when its budget prices tokens. */
  cost: Schema.optional(NonNegative),
  latencyMillis: Schema.Int.pipe(Schema.nonNegative()),
  cache: Schema.Literal("hit", "miss", "off"),
  /** Attempts made (retries included); 0 for a cache hit or a call the budget stopped. */
  attempts: Schema.Int.pipe(Schema.nonNegative()),
  outcome: CallOutcome,
  /** Why it was not `ok`. */
  error: Schema.optional(Schema.String)
})
export type LlmCall = typeof LlmCall.Type

// ---------------------------------------------------------------------------------------------
// Failures of one call to a backend. Each names the model and says why.

/** The backend could not be reached (connection refused, DNS, reset). Transient: retried. */
export class LlmUnavailable extends Schema.TaggedError<LlmUnavailable>()("LlmUnavailable", {
  model: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `model ${this.model} unavailable: ${this.reason}`
  }
}

/** No answer within the call's limit. Transient: retried. */
export class LlmTimeout extends Schema.TaggedError<LlmTimeout>()("LlmTimeout", {
  model: Schema.String,
  millis: Schema.Number
}) {
  override get message(): string {
    return `model ${this.model} did not answer within ${this.millis} ms`
  }
}

/** The backend answered with an error (an unknown model is 404, an overloaded one 5xx). */
export class LlmRequestFailed extends Schema.TaggedError<LlmRequestFailed>()("LlmRequestFailed", {
  model: Schema.String,
  status: Schema.Int,
  reason: Schema.String
}) {
  override get message(): string {
    return `model ${this.model} refused the request (${this.status}): ${this.reason}`
  }
  /** 408, 429 and 5xx are worth another try; the rest (404: no such model) are not. */
  get transient(): boolean {
    return this.status === 408 || this.status === 429 || this.status >= 500
  }
}

/**
 * A call an LLM agent may not make: a run records each call under its agent, round and step, and a
 * replay answers it from there, so a call without its round, for another agent's or round's, or at a
 * step the round already used, would make a recording no replay reproduces. A bug in the agent: it
 * crashes the agent (a defect), and the run's `ActorCrashed` event says which agent, round and step.
 */
export class LlmStepRefused extends Schema.TaggedError<LlmStepRefused>()("LlmStepRefused", {
  agent: Schema.String,
  round: Schema.optional(Schema.String),
  step: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `agent ${this.agent}, step "${this.step}"${this.round === undefined ? "" : ` of round ${this.round}`}: ${this.reason}`
  }
}

/** The answer did not decode as the schema asked for. */
export class LlmInvalidAnswer extends Schema.TaggedError<LlmInvalidAnswer>()("LlmInvalidAnswer", {
  model: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `model ${this.model} gave an answer that does not decode: ${this.reason}`
  }
}

/** The call could take the run past its budget, so it was not made. */
export class LlmBudgetExhausted extends Schema.TaggedError<LlmBudgetExhausted>()("LlmBudgetExhausted", {
  run: RunId,
  /** What the budget limits (`tokens` or `cost`), what was spent and what the call needed. */
  limit: Schema.Literal("tokens", "cost"),
  spent: Schema.Number,
  needed: Schema.Number,
  max: Schema.Number,
  /**
   * Reserved by the calls in flight (and asked for by the calls waiting for room before it), when
   * only they left no room for the call — which waited for room until its time was up: that refusal
   * is the call's alone — the budget is spent once what was settled leaves none.
   */
  reserved: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    return this.reserved === undefined
      ? `run ${this.run}'s LLM ${this.limit} budget is spent (${this.spent} of ${this.max}; the call needed up to ${this.needed})`
      : `run ${this.run}'s LLM ${this.limit} budget has no room for the call while others are in flight (${this.spent} spent and ${this.reserved} reserved of ${this.max}; the call needed up to ${this.needed})`
  }
}

/** What a backend call may fail with. */
export type BackendError = LlmUnavailable | LlmTimeout | LlmRequestFailed
