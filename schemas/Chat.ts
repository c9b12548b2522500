/**
 * The system agent's chat (issue 6): one chat session per run, its messages as they are kept, the
 * chunks an answer streams to its asker (RPC) and to the run's watchers (SSE), the rule suggestions
 * an operator can apply, and the system agent's own protocol. The RPC group itself is in Rpc.ts.
 */
import { Mailbox, Schema } from "effect"
import { RunId } from "./Ids.js"
import { Backend, ToolCall } from "./Llm.js"
import { Money } from "./Money.js"
import { Rule, Weekday } from "./Rule.js"

// ---------------------------------------------------------------------------------------------
// Questions

export const MAX_QUESTION_LENGTH = 4_000

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/

/**
 * An operator's question: 1 to 4,000 characters, not only whitespace, no control characters but
 * tabs and line breaks (the database's text cannot hold a NUL, and nobody types one).
 */
export const ChatQuestion = Schema.String.pipe(
  Schema.maxLength(MAX_QUESTION_LENGTH, { message: () => `must be at most ${MAX_QUESTION_LENGTH} characters` }),
  Schema.filter((s) => s.trim().length > 0 || "must not be empty"),
  Schema.filter((s) => !CONTROL.test(s) || "must not contain control characters (tabs and line breaks are fine)")
)

// ---------------------------------------------------------------------------------------------
// Sessions and messages

export const ChatSessionId = Schema.String.pipe(Schema.minLength(1), Schema.brand("ChatSessionId"))
export type ChatSessionId = typeof ChatSessionId.Type

/** A run's chat: one per run, owned by the run's owner. */
export const ChatSession = Schema.Struct({
  id: ChatSessionId,
  run: RunId,
  owner: Schema.String,
  createdAt: Schema.DateFromString
})
export type ChatSession = typeof ChatSession.Type

export const ChatRole = Schema.Literal("user", "assistant", "tool")
export type ChatRole = typeof ChatRole.Type

/**
 * One message of a session, numbered from 1. `user`: a question. `assistant`: an answer (its text as
 * it was streamed; `error` when it broke off — the text is then what had come), or a turn that only
 * called tools (`toolCalls`, empty text). `tool`: a tool's result as the model was given it.
 */
export const ChatMessage = Schema.Struct({
  seq: Schema.Int.pipe(Schema.positive()),
  role: ChatRole,
  content: Schema.String,
  toolCalls: Schema.NullOr(Schema.Array(ToolCall)),
  toolName: Schema.NullOr(Schema.String),
  /** The backend and model that answered (assistant messages). */
  backend: Schema.NullOr(Backend),
  model: Schema.NullOr(Schema.String),
  tokensIn: Schema.Int.pipe(Schema.nonNegative()),
  tokensOut: Schema.Int.pipe(Schema.nonNegative()),
  error: Schema.NullOr(Schema.String),
  createdAt: Schema.DateFromString
})
export type ChatMessage = typeof ChatMessage.Type

/** A run's chat as `chat.history` answers it: the latest messages, oldest first (`session` null: never chatted). */
export const ChatHistory = Schema.Struct({
  run: Schema.String,
  session: Schema.NullOr(Schema.String),
  messages: Schema.Array(ChatMessage)
})
export type ChatHistory = typeof ChatHistory.Type

// ---------------------------------------------------------------------------------------------
// An answer, streamed

/**
 * Every chunk names the question it answers (the question's message number) and its place in the
 * answer (0, 1, 2, …): `<question>.<index>` is a chunk's SSE id.
 */
const at = {
  question: Schema.Int.pipe(Schema.positive()),
  index: Schema.Int.pipe(Schema.nonNegative())
}

/** The question, as recorded (always index 0): watchers see what is being answered. */
export const ChatAsked = Schema.TaggedStruct("Asked", { ...at, run: Schema.String, content: Schema.String })

/** A piece of the answer's text, as the model gives it: the tokens concatenate to the answer. */
export const ChatToken = Schema.TaggedStruct("Token", { ...at, text: Schema.String })

/** A tool the agent ran (or refused to run: `ok` false, `summary` says why), with its arguments and a one-line result. */
export const ChatToolUsed = Schema.TaggedStruct("ToolUsed", {
  ...at,
  tool: Schema.String,
  arguments: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  ok: Schema.Boolean,
  summary: Schema.String
})

/** The answer is complete and recorded as message `message`; the tokens of every model call it took. */
export const ChatDone = Schema.TaggedStruct("Done", {
  ...at,
  message: Schema.Int.pipe(Schema.positive()),
  backend: Backend,
  model: Schema.String,
  tokensIn: Schema.Int.pipe(Schema.nonNegative()),
  tokensOut: Schema.Int.pipe(Schema.nonNegative())
})

/**
 * The answer broke off (the model failed, timed out, or the database did): what came before stands,
 * recorded with the error as message `message` (null when even that could not be written).
 */
export const ChatFailed = Schema.TaggedStruct("Failed", {
  ...at,
  message: Schema.NullOr(Schema.Int.pipe(Schema.positive())),
  error: Schema.String,
  reason: Schema.String
})

export const ChatChunk = Schema.Union(ChatAsked, ChatToken, ChatToolUsed, ChatDone, ChatFailed)
export type ChatChunk = typeof ChatChunk.Type

// ---------------------------------------------------------------------------------------------
// Following a run's chat (resuming a stream cut off)

/**
 * Where a follower of a run's chat stands: the chunk it had last, `<question>.<index>` (a chunk's
 * `question` and `index`, as the SSE stream's ids are). Checked where it is read (src/edge/ChatFollow.ts),
 * so that a bad one is `InvalidRequest` naming its field.
 */
export interface ChatPosition {
  readonly question: number
  readonly index: number
}

/** A chunk's position, as a follower gives it back: `<question>.<index>`. */
export const positionOf = (chunk: { readonly question: number; readonly index: number }): string => `${chunk.question}.${chunk.index}`

/**
 * The server that a follower resumed on no longer holds what came after its position (an answer is
 * kept a while after it ends; longer away, or a server restarted or another one answering, it is
 * gone): chunks after `after` may have been missed. Every answer is in `chat.history`; the follow
 * goes on with what comes next (the answer in progress from its start).
 */
export const ChatMissed = Schema.TaggedStruct("Missed", {
  /** The position resumed after. */
  after: Schema.String,
  reason: Schema.String
})
export type ChatMissed = typeof ChatMissed.Type

/**
 * What following a run's chat streams (`chat.follow`): its answers' chunks, each saying its
 * position, and `Missed` where the server could not give all that came after the position resumed
 * from. `chat.send` streams `ChatChunk` alone, as it always did.
 */
export const ChatFollowed = Schema.Union(ChatAsked, ChatToken, ChatToolUsed, ChatDone, ChatFailed, ChatMissed)
export type ChatFollowed = typeof ChatFollowed.Type

// ---------------------------------------------------------------------------------------------
// Rule suggestions

/** What a suggestion is about (agents/system/RuleSuggestions.ts `Pattern`). */
export const SuggestionPattern = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("symbol"), symbol: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("hours"), hours: Schema.Array(Schema.Int), timeZone: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("weekdays"), days: Schema.Array(Weekday), timeZone: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("position_size"), abovePercent: Schema.Number }),
  Schema.Struct({ kind: Schema.Literal("orders_per_day"), above: Schema.Int })
)

/** The pattern's trades against the rest (money in micros). */
export const SuggestionEvidence = Schema.Struct({
  trades: Schema.Int,
  losingTrades: Schema.Int,
  pnl: Money,
  averagePnl: Schema.NullOr(Money),
  winRate: Schema.NullOr(Schema.Number),
  otherTrades: Schema.Int,
  otherPnl: Money,
  otherAveragePnl: Schema.NullOr(Money)
})

/**
 * A rule, ready to apply, with why. Its `id` names this very rule: `<rule id>.<min trades>.<hash>`
 * — applying it applies exactly what was shown, and an id whose rule the run's trades or the
 * strategy no longer give is refused (`SuggestionNotFound`) rather than swapped for another.
 */
export const RuleSuggestion = Schema.Struct({
  id: Schema.String,
  rule: Rule,
  pattern: SuggestionPattern,
  reason: Schema.String,
  evidence: SuggestionEvidence
})
export type RuleSuggestion = typeof RuleSuggestion.Type

export const RuleSuggestions = Schema.Struct({
  run: Schema.String,
  /** The strategy version the suggestions are for (its latest): applying one makes the next version. */
  strategy: Schema.String,
  strategyVersion: Schema.Int,
  minTrades: Schema.Int,
  suggestions: Schema.Array(RuleSuggestion),
  /** Losing patterns that gave no rule, and why. */
  skipped: Schema.Array(Schema.Struct({ pattern: Schema.String, reason: Schema.String })),
  /**
   * Set when the run's strategy was deleted: the suggestions are for the version the run ran, and
   * none can be applied (there is no strategy to make a new version of).
   */
  strategyDeleted: Schema.optional(Schema.Literal(true))
})
export type RuleSuggestions = typeof RuleSuggestions.Type

/** No such suggestion for the run now: never made, or the trades or the strategy changed since. */
export class SuggestionNotFound extends Schema.TaggedError<SuggestionNotFound>()("SuggestionNotFound", {
  run: Schema.String,
  suggestion: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `no suggestion ${this.suggestion} for run ${this.run}: ${this.reason}`
  }
}

// ---------------------------------------------------------------------------------------------
// The system agent's protocol (in process: its messages carry the asker's mailbox)

/** The system agent could not take the question (stopped, too many waiting, its database down). */
export class SystemAgentUnavailable extends Schema.TaggedError<SystemAgentUnavailable>()("SystemAgentUnavailable", {
  reason: Schema.String
}) {
  override get message(): string {
    return `the system agent cannot answer: ${this.reason}`
  }
}

/** A watcher of a run's chat fell more than its buffer behind and was dropped. */
export class ChatWatchOverflow extends Schema.TaggedError<ChatWatchOverflow>()("ChatWatchOverflow", {
  run: Schema.String,
  buffer: Schema.Int,
  /**
   * Set when the watcher did not fall behind but chunks of an answer given by another server never
   * reached this one (`question`: the answer they were of): what it showed of that answer is not all of it.
   */
  lostFrom: Schema.optional(Schema.Struct({ question: Schema.Int, index: Schema.Int }))
}) {
  override get message(): string {
    return this.lostFrom === undefined
      ? `fell more than ${this.buffer} chunks behind the chat of run ${this.run}`
      : `chunks of the answer to question ${this.lostFrom.question} from ${this.lostFrom.index} on did not reach this server from the one answering it (run ${this.run})`
  }
}

/** Where an answer's chunks go: the asker's mailbox, ended after `Done` or `Failed`, failed when the question could not be taken. */
export type ChunkSink = Mailbox.Mailbox<ChatChunk, SystemAgentUnavailable>
export const ChunkSink = Schema.declare((u: unknown): u is ChunkSink => Mailbox.isMailbox(u), {
  identifier: "ChunkSink",
  description: "an in-process mailbox of chat chunks"
})

/** Answer `question` in the chat of `run` (its owner checked by the asker), streaming to `reply`. */
export class AnswerQuestion extends Schema.TaggedClass<AnswerQuestion>()("AnswerQuestion", {
  run: RunId,
  question: ChatQuestion,
  reply: ChunkSink
}) {}

/** The system agent's periodic look for sessions idle long enough to let go. */
export class SweepSessions extends Schema.TaggedClass<SweepSessions>()("SweepSessions", {}) {}

/** A session's actor is let go: it stops after the questions it has. */
export class RetireSession extends Schema.TaggedClass<RetireSession>()("RetireSession", {}) {}

export const SystemAgentProtocol = Schema.Union(AnswerQuestion, SweepSessions)
export type SystemAgentProtocol = typeof SystemAgentProtocol.Type

export const ChatSessionProtocol = Schema.Union(AnswerQuestion, RetireSession)
export type ChatSessionProtocol = typeof ChatSessionProtocol.Type
