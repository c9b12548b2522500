/**
 * The system agent: operators chat with it about a run (issue 6). One per server process, an actor
 * supervised in the server's layer; its message is "answer this question of this run's chat", and
 * each question's answer streams back to the asker — and to whoever watches the run's chat (SSE) —
 * chunk by chunk, ending with `Done` or `Failed`, never left hanging.
 *
 * Shape: the agent routes each question to an actor of its own per session (its child, spawned on
 * the first question and let go after it has been idle a while), so one run's questions are
 * answered in order while different runs' are answered at once; a session's mailbox is bounded and
 * refuses a question past a few waiting. A question that cannot be delivered (a full or stopped
 * mailbox) is a dead letter, and the dead letter fails the asker's stream; a session actor that
 * crashes mid-answer ends it with `Failed` and is restarted.
 *
 * An answer: the question is recorded, the model gets a system prompt (who it is, the run: its
 * strategy, status and metrics), the chat so far and the question, with the tools (ToolSpecs.ts);
 * each tool call it makes is decoded (a call that does not decode goes back to it as an error, never
 * a crash), run against the store (Tools.ts) and its result sent back, for at most 4 rounds; its
 * text streams token by token throughout. Without a model (the offline backend) the question is
 * routed to the same tools by keywords and answered with their plain sentences, word by word. Every
 * model call is recorded (an `LlmCall` of agent `system`), under the process's concurrency cap and
 * the run's LLM timeouts; a failure mid-answer ends it with `Failed`, recorded as such.
 *
 * The chat spends the run's LLM budget (the strategy's `llm.budget`): while the run executes in
 * this process, the very budget its LLM agents spend; otherwise what is left of it after the run's
 * recorded calls and the chat's. Each model call reserves its prompt's upper bound and its longest
 * answer first, as the run's agents do, so the budget is never exceeded (a call that fails is
 * charged its reservation: it may have used tokens the backend never reported). A call that only
 * the run's agents' calls in flight leave no room for waits for them, up to the run's LLM timeout.
 * A call that does not fit is not made (recorded with outcome `budget`): the answer says so and
 * goes on offline — the question routed to the tools — and its `Done` names the offline backend.
 */
import type { SqlClient } from "@effect/sql"
import { Cause, Clock, Context, Duration, Effect, Either, Exit, Layer, Mailbox, Option, Schedule, type Scope, Stream } from "effect"
import {
  AnswerQuestion,
  type ChatChunk,
  type ChatPosition,
  type ChatMessage,
  ChatSessionProtocol,
  type ChatSession,
  type ChatSessionId,
  ChatWatchOverflow,
  type ChunkSink,
  positionOf,
  RetireSession,
  SweepSessions,
  SystemAgentProtocol,
  SystemAgentUnavailable
} from "../../schemas/Chat.js"
import type { AgentId, RunId } from "../../schemas/Ids.js"
import {
  type Backend,
  type BackendError,
  defaultLlmConfig,
  type LlmBudgetExhausted,
  type LlmCall,
  type LlmConfig,
  LlmTimeout,
  type Message,
  type ToolCall
} from "../../schemas/Llm.js"
import { agentName } from "../../schemas/Strategy.js"
import * as Actor from "../../src/actor/Actor.js"
import type { ActorRef } from "../../src/actor/ActorRef.js"
import * as ActorSystem from "../../src/actor/ActorSystem.js"
import { ChatFanout, type ChatFanoutService } from "../../src/bus/ChatFanout.js"
import { sha256Hex } from "../../src/internal/sha256.js"
import { Budget, promptTokensUpperBound, type Reservation } from "../../src/llm/Budget.js"
import { chatPromptOfParts, chatRestJson, partsOf } from "../../src/llm/RunPrompts.js"
import type { BackendInfo, ChatRequest, LanguageModel } from "../../src/llm/LanguageModel.js"
import { LlmRuntime } from "../../src/llm/LlmRuntime.js"
import * as Offline from "../../src/llm/Offline.js"
import * as Chats from "../../src/store/Chats.js"
import * as RecordedLlmCalls from "../../src/store/RecordedLlmCalls.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as Supervisor from "../../supervisors/Supervisor.js"
import * as Format from "./internal/Format.js"
import { decodeToolCall, nestedDeeper, routeQuestion, TOO_DEEP, type ToolRequest, toolSpecs } from "./ToolSpecs.js"
import * as Tools from "./Tools.js"

const AGENT = "system" as AgentId

/** How long a stopping agent may go on with the answer in hand before it is interrupted. */
const STOP_TIMEOUT = Duration.millis(100)

/** Model turns that may call tools, per question; the turn after them must answer. */
export const MAX_TOOL_ROUNDS = 4
/** Tool calls run per turn (a model asking for more gets the first ones). */
const MAX_CALLS_PER_TURN = 8
/** The chat so far, as the model is given it: the latest questions and answers, within a length. */
const HISTORY_MESSAGES = 20
const HISTORY_CHARS = 12_000
/** Room for any answer's chunks (a few per token): an asker never slows the agent down. */
const REPLY_CAPACITY = 16_384
/** First retry's wait (doubling), for a call that failed before it gave any text. */
const BACKOFF_MILLIS = 200
/** On top of the backend's own limit, in case a backend does not keep it. */
const GRACE_MILLIS = 1_000
/** A model's tool arguments shown and stored up to this much JSON. */
const SHOWN_ARGUMENTS = 2_000
/**
 * An answer's text is taken up to `maxTokensOut` at this many characters a token — generous (a
 * token is a few characters), so only a model that ignores `maxTokensOut` is cut — and never past
 * `MAX_ANSWER_CHARS`. A model that streamed without end made a 48 MB answer whose writes held the
 * database for most of a minute, and was never saved.
 */
const CHARS_PER_TOKEN = 16
const MAX_ANSWER_CHARS = 200_000

/** The most of one model call's text an answer takes. */
export const answerBound = (maxTokensOut: number): number => Math.min(MAX_ANSWER_CHARS, maxTokensOut * CHARS_PER_TOKEN)

/** What the answer says where it was cut. */
const cutNote = (bound: number, maxTokensOut: number): string =>
  ` … [answer cut here: the model went on past ${bound} characters, though asked for at most ${maxTokensOut} tokens]`

export interface Options {
  /** Questions a session may have waiting behind the one being answered (default 4). */
  readonly queue?: number
  /** How long a session's actor is kept without a question (default 15 minutes). */
  readonly idle?: Duration.DurationInput
  /** How often idle sessions are looked for (default 1 minute). */
  readonly sweep?: Duration.DurationInput
  /** Chunks a watcher may fall behind before it is dropped (default 4,096). */
  readonly watchBuffer?: number
}

export interface Service {
  /** The backend the answers come from (`offline`: routed to the tools by keywords). */
  readonly backend: BackendInfo
  /**
   * Ask `question` (one that decodes with `ChatQuestion`) in the chat of `run` — whose ownership the
   * caller has checked: the answer's chunks as they come, ending with `Done` or `Failed`; fails when
   * the question could not be taken. An asker that goes away leaves the answer to finish (recorded,
   * and seen by the run's watchers).
   */
  readonly ask: (run: RunId, question: string) => Stream.Stream<ChatChunk, SystemAgentUnavailable>
  /**
   * The chunks of every answer in the chat of `run` from now on (the answer in progress from its
   * start), until the watcher goes away or falls more than its buffer behind (`ChatWatchOverflow`).
   * Subscribed when the scope opens: nothing produced after that is missed.
   */
  readonly watch: (run: RunId) => Effect.Effect<Stream.Stream<ChatChunk, ChatWatchOverflow>, never, Scope.Scope>
  /**
   * As `watch`, resuming after the chunk at `after` (none: as `watch`): the rest of the answer it is
   * in and every answer since, then live — no chunk missed, none twice — as far as this process
   * holds them (`Feed.follow`); where it does not, `missed`, and what it holds. The caller filters
   * the live chunks at or before `after` (a follower that read another server ahead of this one).
   */
  readonly follow: (run: RunId, after: ChatPosition | undefined) => Effect.Effect<Followed, never, Scope.Scope>
}

export class SystemAgent extends Context.Tag("swarm/agents/SystemAgent")<SystemAgent, Service>() {}

// ---------------------------------------------------------------------------------------------
// The run's watchers

/** Answers in progress kept for late watchers, at most: the oldest goes (one whose process died mid-answer). */
const MAX_CURRENT = 1_000

/**
 * How long an answer is kept after it ends, for a follower that resumes after one of its chunks
 * (its stream cut off: it read too slowly, or its connection dropped): it gets the rest, no chunk
 * missed and none twice, rather than being sent to `chat.history`.
 */
export const KEEP_ENDED_MILLIS = 10 * 60_000
/** Ended answers kept, at most (every run's), and their chunks: the oldest go first. */
const MAX_ENDED = 1_000
const MAX_ENDED_CHUNKS = 250_000

/**
 * The longest an answer can go without a chunk: a model call's longest timeout (schemas/Llm.ts,
 * 600 s) and its grace, and a minute more. An answer silent longer has ended unseen.
 */
export const STALE_ANSWER_MILLIS = 600_000 + GRACE_MILLIS + 60_000

/**
 * Every run's chat watchers (SSE), in this process. `publish` is synchronous and never waits: a
 * watcher that falls more than its buffer behind is dropped with `ChatWatchOverflow`. The answer in
 * progress is kept, so that a watcher arriving mid-answer gets it from its start, and so is every
 * answer for `KEEP_ENDED_MILLIS` after it ends, so that a follower cut off reads on where it stopped
 * (`follow`), none missed and none twice, even once the answer has ended. With a fan-out
 * (src/bus/ChatFanout.ts, Redis) the chunks published here go to the other processes too, and
 * theirs come to this one's watchers.
 */
export class Feed {
  private readonly watchers = new Map<string, Set<Mailbox.Mailbox<ChatChunk, ChatWatchOverflow>>>()
  private readonly current = new Map<string, Array<ChatChunk>>()
  /** When each answer in progress last had a chunk. */
  private readonly lastChunk = new Map<string, number>()
  /**
   * Of the answers other processes are giving, the index of the last chunk heard, by run and
   * question: a chunk that does not follow it says some were lost on the way (ChatFanout.ts).
   */
  private readonly heard = new Map<string, Map<number, number>>()
  /** Answers ended within `KEEP_ENDED_MILLIS`, whole, oldest first: every one after a run's oldest is kept too. */
  private readonly ended: Array<{ readonly run: string; readonly chunks: ReadonlyArray<ChatChunk>; readonly at: number }> = []
  private endedChunks = 0
  /** By run, the position of the last chunk of its last answer to end: a follower there has missed nothing. */
  private readonly lastEnd = new Map<string, string>()

  constructor(
    private readonly buffer: number,
    private readonly fanout?: ChatFanoutService,
    private readonly now: () => number = Date.now
  ) {
    fanout?.listen((run, chunk) => this.deliverRemote(run, chunk))
  }

  /**
   * A chunk of another process's answer. One that does not follow the last heard of its answer
   * (the first of an answer must be its question, index 0) says chunks were lost on the way (a
   * reader away longer than the stream keeps, a sender's queue overflowing while Redis was away):
   * the run's watchers are told so and let go (`ChatWatchOverflow` with `lostFrom`: what they showed
   * of the answer is not all of it, `chat.history` has it once it is done), and the answer is not
   * handed to later watchers as if whole. Its next chunks go on to the watchers that come back.
   */
  private deliverRemote(run: string, chunk: ChatChunk): void {
    let questions = this.heard.get(run)
    if (questions === undefined) {
      this.heard.set(run, (questions = new Map()))
      if (this.heard.size > MAX_CURRENT) this.heard.delete(this.heard.keys().next().value!)
    }
    const last = questions.get(chunk.question)
    const expected = last === undefined ? 0 : last + 1
    if (chunk._tag === "Done" || chunk._tag === "Failed") questions.delete(chunk.question)
    else questions.set(chunk.question, Math.max(chunk.index, last ?? -1))
    if (questions.size === 0) this.heard.delete(run)
    else if (questions.size > 16) questions.delete(questions.keys().next().value!)
    if (chunk.index > expected) {
      if (this.current.get(run)?.[0]?.question === chunk.question || chunk._tag === "Asked") {
        this.current.delete(run)
        this.lastChunk.delete(run)
      }
      const watchers = this.watchers.get(run)
      if (watchers !== undefined) {
        const lost = new ChatWatchOverflow({ run, buffer: this.buffer, lostFrom: { question: chunk.question, index: expected } })
        for (const box of watchers) box.unsafeDone(Exit.fail(lost))
        this.watchers.delete(run)
      }
      if (chunk._tag !== "Asked") return
    }
    // A repeat (never, from a stream read by cursor): not shown twice.
    if (chunk.index < expected) return
    this.deliver(run, chunk)
  }

  publish(run: string, chunk: ChatChunk): void {
    this.deliver(run, chunk)
    this.fanout?.publish(run, chunk)
  }

  private deliver(run: string, chunk: ChatChunk): void {
    if (chunk._tag === "Asked") {
      this.current.delete(run)
      this.current.set(run, [chunk])
      if (this.current.size > MAX_CURRENT) {
        const oldest = this.current.keys().next().value!
        this.current.delete(oldest)
        this.lastChunk.delete(oldest)
      }
    } else if (chunk._tag === "Done" || chunk._tag === "Failed") {
      const answer = this.current.get(run)
      // Kept only whole: an answer whose start this process did not see (or whose chunks were lost) is not.
      if (answer?.[0]?.question === chunk.question) this.keep(run, [...answer, chunk])
      this.lastEnd.delete(run)
      this.lastEnd.set(run, positionOf(chunk))
      if (this.lastEnd.size > MAX_CURRENT) this.lastEnd.delete(this.lastEnd.keys().next().value!)
      this.current.delete(run)
      this.lastChunk.delete(run)
    } else {
      this.current.get(run)?.push(chunk)
    }
    if (this.current.has(run)) this.lastChunk.set(run, this.now())
    const watchers = this.watchers.get(run)
    if (watchers === undefined) return
    for (const box of watchers) {
      if (box.unsafeOffer(chunk)) continue
      box.unsafeDone(Exit.fail(new ChatWatchOverflow({ run, buffer: this.buffer })))
      watchers.delete(box)
    }
  }

  /** An ended answer kept; the oldest go past the bounds. */
  private keep(run: string, chunks: ReadonlyArray<ChatChunk>): void {
    this.ended.push({ run, chunks, at: this.now() })
    this.endedChunks += chunks.length
    this.prune()
  }

  private prune(): void {
    const since = this.now() - KEEP_ENDED_MILLIS
    while (
      this.ended.length > 0 && (this.ended.length > MAX_ENDED || this.endedChunks > MAX_ENDED_CHUNKS || this.ended[0]!.at < since)
    ) {
      this.endedChunks -= this.ended.shift()!.chunks.length
    }
  }

  /** The answer in progress in `run`'s chat, from its start, unless it is stale. */
  private currentOf(run: string): ReadonlyArray<ChatChunk> {
    // An answer silent for longer than any answer can be has ended where this process did not
    // see it (its end lost with a fan-out connection, its process gone): not shown as going on.
    if ((this.lastChunk.get(run) ?? Infinity) < this.now() - STALE_ANSWER_MILLIS) {
      this.current.delete(run)
      this.lastChunk.delete(run)
    }
    return this.current.get(run) ?? []
  }

  private register(run: string, box: Mailbox.Mailbox<ChatChunk, ChatWatchOverflow>) {
    let watchers = this.watchers.get(run)
    if (watchers === undefined) this.watchers.set(run, (watchers = new Set()))
    watchers.add(box)
  }

  private mailbox(run: string) {
    return Effect.acquireRelease(
      Mailbox.make<ChatChunk, ChatWatchOverflow>({ capacity: this.buffer }),
      (box) =>
        Effect.suspend(() => {
          const watchers = this.watchers.get(run)
          watchers?.delete(box)
          if (watchers?.size === 0) this.watchers.delete(run)
          return box.shutdown
        })
    )
  }

  subscribe(run: string): Effect.Effect<Mailbox.ReadonlyMailbox<ChatChunk, ChatWatchOverflow>, never, Scope.Scope> {
    return Effect.map(this.mailbox(run), (box) => {
      // An answer is far shorter than a buffer: its start always fits.
      box.unsafeOfferAll(this.currentOf(run))
      this.register(run, box)
      return box
    })
  }

  /**
   * The chunks of `run`'s chat after `after` (none: the answer in progress from its start) that this
   * process holds — the rest of the answer `after` is in and every answer since, ended within
   * `KEEP_ENDED_MILLIS` or in progress — taken in the same step as the watcher is subscribed, so
   * that with what comes to `box` they miss nothing and repeat nothing. `missed`: what came after
   * `after` is not all here (its answer ended too long ago, or where this process did not see it).
   */
  follow(run: string, after: ChatPosition | undefined): Effect.Effect<Followed, never, Scope.Scope> {
    return Effect.map(this.mailbox(run), (box) => {
      const current = this.currentOf(run)
      this.register(run, box)
      if (after === undefined) return { held: current.slice(), missed: false, box }
      this.prune()
      const answers = this.ended.filter((answer) => answer.run === run && answer.chunks[0]!.question >= after.question).map((answer) => answer.chunks)
      if (current.length > 0 && current[0]!.question >= after.question) answers.push(current.slice())
      answers.sort((a, b) => a[0]!.question - b[0]!.question)
      const held = answers.flat().filter((chunk) => chunk.question > after.question || (chunk.question === after.question && chunk.index > after.index))
      // Nothing missed when the answer resumed in is held (and so is every one since), or it was the last to end.
      const missed = answers[0]?.[0]?.question !== after.question && this.lastEnd.get(run) !== positionOf(after)
      return { held, missed, box }
    })
  }
}

/** What a follower of a run's chat is given (`Feed.follow`). */
export interface Followed {
  readonly held: ReadonlyArray<ChatChunk>
  readonly missed: boolean
  readonly box: Mailbox.ReadonlyMailbox<ChatChunk, ChatWatchOverflow>
}

// ---------------------------------------------------------------------------------------------
// One answer

interface Deps {
  readonly llm: LlmRuntime["Type"]
  readonly context: Context.Context<SqlClient.SqlClient>
  readonly feed: Feed
  readonly queue: number
  readonly idleMillis: number
  readonly sweep: Duration.Duration
  /**
   * What model calls spent that could not be recorded (the database refused or lost the record),
   * by chat session: still spent, so still charged to the run's budget (`budgetOf`) while this
   * process lives.
   */
  readonly unrecorded: Map<ChatSessionId, { tokens: number; cost: number }>
}

type Body<C> = C extends unknown ? Omit<C, "question" | "index"> : never

/** An answer in progress: where it stands, what it has said, what it has cost. */
class Turn {
  session: ChatSession | undefined = undefined
  /** The question's message number, once it is recorded (0 before). */
  question = 0
  index = 0
  /** The text streamed so far: the answer as recorded. */
  text = ""
  tokensIn = 0
  tokensOut = 0
  calls = 0
  model: string = defaultLlmConfig.model
  /** `Done` or `Failed` was sent, or the asker was failed. */
  finished = false
  /** The run's LLM budget with what the run and its chat have spent charged (none for the offline backend). */
  budget: Budget | undefined = undefined

  /**
   * `backend`: the model's, until the budget is spent (then `offline`); `prompts`: the prompt parts
   * its session's calls have stored (its session actor's, kept from one question to the next).
   */
  constructor(
    readonly run: RunId,
    readonly reply: ChunkSink,
    readonly feed: Feed,
    public backend: Backend,
    readonly prompts: Chats.SessionPrompts = new Chats.SessionPrompts()
  ) {}

  emit(body: Body<ChatChunk>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const chunk = { ...body, question: this.question, index: this.index++ } as ChatChunk
      this.feed.publish(this.run, chunk)
      return Effect.asVoid(this.reply.offer(chunk))
    })
  }
}

const isTransient = (error: BackendError): boolean => error._tag !== "LlmRequestFailed" || error.transient

const cut = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

/**
 * What was sent to the model, as hashed (`JSON.stringify({ model, messages, tools })`, the tools by
 * name: their specs are constant) and as recorded: in parts, each once in the chat (Chats.recordCall).
 */
const promptOf = (request: ChatRequest): Pick<LlmCall, "promptHash" | "promptParts"> => {
  const messages = request.messages.map((message) => ({ message, json: JSON.stringify(message) }))
  const rest = chatRestJson(request.tools?.map((t) => t.name))
  const prompt = chatPromptOfParts(request.model, [...messages.map((m) => m.json), rest])
  return { promptHash: sha256Hex(prompt), promptParts: partsOf(messages, rest) }
}

/** A model's tool arguments as they may be shown and stored: storable, and cut when long or deep. */
const shownArguments = (raw: unknown): Record<string, unknown> => {
  // Before any JSON.stringify: past a depth it throws (or overflows what walks it after).
  if (nestedDeeper(raw)) return { _refused: TOO_DEEP }
  let json: string | undefined
  try {
    json = JSON.stringify(raw)
  } catch {
    json = undefined
  }
  if (json === undefined) return { _unreadable: String(typeof raw) }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return { _given: Chats.storableJson(cut(json, 200)) }
  if (json.length <= SHOWN_ARGUMENTS) return Chats.storableJson(raw) as Record<string, unknown>
  return { _truncated: Chats.storable(cut(json, 200)), _length: json.length }
}

/** A tool call as stored: its name and arguments, storable and cut. */
const storedCall = (call: ToolCall): ToolCall => ({
  name: Chats.storable(cut(String(call.name), 64)),
  arguments: shownArguments(call.arguments)
})

const reasonOf = (error: { readonly _tag: string; readonly message?: string }): string =>
  error.message !== undefined && error.message !== "" ? error.message : error._tag

/** What the offline agent says when no tool fits a question. */
export const CAPABILITIES = "I am the system agent, answering without a language model (offline), so I answer the questions one of my " +
  "tools can: where the run stands now (\"how are we doing?\", \"why are we halted?\", \"what is our position in AAPL?\"), " +
  "which trades won or lost (by symbol, side, hour, weekday or holding period, e.g. \"which trades lost money?\"), " +
  "the run's metrics, for a period too (\"what is the Sharpe ratio?\", \"max drawdown since 2024-03-01\"), why a round or an " +
  "order was decided (\"explain AAPL@2024-03-01T14:30Z\", \"why did we sell AAPL?\", \"why was the order rejected?\"), rules that would have avoided the losing patterns (\"suggest rules\"), " +
  "the rules and gates in force and which of them rejected orders (\"which rule rejected the most orders?\"), " +
  "how each analyst did (\"which analyst is the most accurate?\", \"who dissents most?\"), " +
  "and a comparison with another run (\"compare with run 2\")."

/** The system prompt: who the agent is, and the run. */
export const systemPrompt = (record: Runs.RunRecord): string => {
  const s = record.strategy
  const symbols = s.symbols.length > 20 ? `${s.symbols.slice(0, 20).join(", ")} and ${s.symbols.length - 20} more` : s.symbols.join(", ")
  const metrics = record.metrics === null
    ? "It has no final metrics yet (it has not finished); calculate_metrics computes them from what it has recorded."
    : `Its metrics: ${Tools.describeMetrics({ basis: "run", from: null, to: null, metrics: record.metrics })}`
  return [
    "You are the system agent of Swarm, a runtime for AI trading agent swarms. An operator asks you about one run of their strategy.",
    "Answer about this run only, briefly, in plain sentences. Call a tool for any figure you give; never invent numbers, trades or rules.",
    "In tool results money is in micro-units of the account currency (1000000 is 1.00) and times are epoch milliseconds, UTC.",
    "The operator applies a suggested rule with its suggestion id (chat.applyRule): it makes a new strategy version, which the next run uses.",
    `The run is ${record.strategyName}#${record.number} (id ${record.id}) of strategy "${s.name}" version ${record.strategyVersion}: ` +
    `mode ${record.mode}, status ${record.status}${record.failure === null ? "" : ` (${cut(record.failure, 200)})`}` +
    `${record.from === null || record.to === null ? "" : `, bars from ${Format.time(record.from)} to ${Format.time(record.to)}`}.`,
    `It trades ${symbols} with initial cash ${Format.money(s.initialCash)}${s.allowShort ? ", long and short" : ", long only"}; ` +
    `its analysts: ${s.agents.map(agentName).join(", ")}; ${Format.count(s.rules.length, "rule")}.`,
    metrics
  ].join("\n")
}

/** The chat so far, as the model is given it: questions and complete answers (no tool turns, no broken answers). */
const historyMessages = (history: ReadonlyArray<ChatMessage>): Array<Message> => {
  const kept = history.filter((m) => m.error === null && (m.role === "user" || (m.role === "assistant" && m.toolCalls === null)))
  const out: Array<Message> = []
  let chars = 0
  for (let i = kept.length - 1; i >= 0 && out.length < HISTORY_MESSAGES; i--) {
    const m = kept[i]!
    chars += m.content.length
    if (chars > HISTORY_CHARS) break
    out.unshift({ role: m.role, content: m.content })
  }
  // A history opens with a question.
  while (out.length > 0 && out[0]!.role !== "user") out.shift()
  return out
}

/** A tool call, run: what the model and the operator are shown. */
interface Used {
  readonly tool: string
  readonly arguments: Record<string, unknown>
  readonly ok: boolean
  /** The tool message's content: the result as compact JSON, or the error. */
  readonly content: string
  readonly summary: string
  /** Plain sentences (the offline answer). */
  readonly sentences: string
}

const runDecoded = (request: ToolRequest, record: Runs.RunRecord) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Tools.run(request, record))
    if (Exit.isSuccess(exit)) {
      const o = exit.value
      return {
        tool: o.tool,
        arguments: Chats.storableJson(o.arguments) as Record<string, unknown>,
        ok: true,
        content: Tools.compactJson(o.result),
        summary: o.summary,
        sentences: o.sentences
      } satisfies Used
    }
    // The store failed (or a bug did): the model is told, the answer goes on.
    const failure = Cause.failureOption(exit.cause)
    const reason = failure._tag === "Some" ? reasonOf(failure.value) : "the tool failed unexpectedly (the failure is logged)"
    if (failure._tag === "None") yield* Effect.logError("SystemAgent: a tool failed", exit.cause).pipe(Effect.annotateLogs({ tool: request.tool }))
    return {
      tool: request.tool,
      arguments: Chats.storableJson(Tools.encodedArguments(request)) as Record<string, unknown>,
      ok: false,
      content: JSON.stringify({ error: "ToolFailed", tool: request.tool, reason: Chats.storable(reason) }),
      summary: cut(`failed: ${reason}`, 160),
      sentences: `I could not run ${request.tool}: ${reason}.`
    } satisfies Used
  })

/** A model's tool call: decoded (a bad one is answered with why, for the model to correct), then run. */
const useTool = (call: ToolCall, record: Runs.RunRecord) => {
  const decoded = decodeToolCall(call)
  if (Either.isRight(decoded)) return runDecoded(decoded.right, record)
  const rejected = decoded.left
  return Effect.succeed<Used>({
    tool: Chats.storable(rejected.tool),
    arguments: shownArguments((call as { readonly arguments?: unknown }).arguments),
    ok: false,
    content: JSON.stringify({
      error: "ToolCallRejected",
      tool: Chats.storable(rejected.tool),
      field: Chats.storable(rejected.field),
      reason: Chats.storable(rejected.reason),
      hint: "Call the tool again with arguments that match its parameters, or answer without it."
    }),
    summary: cut(`refused: ${Chats.storable(rejected.message)}`, 160),
    sentences: rejected.message
  })
}

/**
 * One model call, streamed: its text goes out as tokens while it comes; retried (with backoff, for
 * a transient failure) only while it has given no text; recorded whatever its outcome.
 */
const callModel = (
  deps: Deps,
  turn: Turn,
  request: ChatRequest,
  config: LlmConfig,
  model: LanguageModel["Type"] = deps.llm.model,
  reservation?: Reservation
) =>
  Effect.gen(function*() {
    const n = ++turn.calls
    const started = performance.now()
    let attempts = 0
    let emitted = false
    // Anything of an answer came (text, tool calls, the tally): the model worked on the call.
    let heard = false
    let content = ""
    let toolCalls: Array<ToolCall> = []
    let tokensIn = 0
    let tokensOut = 0
    const maxTokensOut = request.maxTokensOut ?? config.maxTokensOut
    const bound = answerBound(maxTokensOut)
    // The text went past `bound`: the stream was let go there (which aborts the request).
    let cut = false
    // Tool calls past `MAX_CALLS_PER_TURN`: a model that asked for 10,000 had them all recorded.
    let ignoredCalls = 0
    const once = Effect.suspend(() => {
      attempts++
      content = ""
      toolCalls = []
      ignoredCalls = 0
      return model.chatStream(request).pipe(
        Stream.runForEachWhile((chunk) => {
          heard = true
          switch (chunk._tag) {
            case "Text": {
              if (chunk.text === "") return Effect.succeed(true)
              emitted = true
              let text = chunk.text
              if (content.length + text.length > bound) {
                text = text.slice(0, bound - content.length)
                cut = true
              }
              content += text
              turn.text += text
              const token = text === "" ? Effect.void : turn.emit({ _tag: "Token", text })
              return Effect.as(token, !cut)
            }
            case "ToolCalls":
              // Only the first ones are run: the rest are counted, not kept (nor recorded).
              for (const call of chunk.calls) {
                if (toolCalls.length < MAX_CALLS_PER_TURN) toolCalls.push(call)
                else ignoredCalls++
              }
              return Effect.succeed(true)
            case "Done":
              tokensIn = chunk.tokensIn
              tokensOut = chunk.tokensOut
              return Effect.succeed(true)
          }
        }),
        Effect.timeoutFail({
          duration: Duration.millis(request.timeoutMillis + GRACE_MILLIS),
          onTimeout: () => new LlmTimeout({ model: request.model, millis: request.timeoutMillis })
        })
      )
    })
    const outcome = yield* deps.llm.limiter.withPermits(1)(once).pipe(
      Effect.retry({
        schedule: Schedule.exponential(Duration.millis(BACKOFF_MILLIS)),
        times: config.retries,
        while: (error) => !emitted && isTransient(error)
      }),
      Effect.either,
      // Interrupted (the agent stopping) or crashed mid-call, the reservation would be held for good
      // on a live budget, and every call its run's agents make while it crowds them would wait for
      // room that never comes. It is settled at all it reserved, as a failed call's is (the model
      // may have used it); the chat's record of it is lost with the answer, so a later process counts
      // less than this one charged — the safe side here.
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) || reservation === undefined || turn.budget === undefined
          ? Effect.void
          : Effect.sync(() => void turn.budget!.settle(reservation, reservation.tokens, 0))
      )
    )
    // A call that failed once its answer had begun may have used tokens the backend never reported:
    // it is charged (and recorded) at its reservation. One the model never answered at all (an
    // error status, no connection, no first token in time) used none, as the run's calls
    // (src/llm/LlmSession.ts): its reservation is released. A call cut short is charged its
    // reservation too: the backend never got to count it, and it gave at least its longest answer.
    let charged: { readonly tokens: number; readonly cost: number } | undefined
    if (reservation !== undefined && turn.budget !== undefined) {
      const [usedIn, usedOut] = Either.isLeft(outcome)
        ? [heard ? reservation.tokens : 0, 0]
        : cut
        ? [reservation.tokens - maxTokensOut, maxTokensOut]
        : [tokensIn, tokensOut]
      charged = turn.budget.settle(reservation, usedIn, usedOut)
      // Recorded, summed and shown as charged — never past the reservation — as the run's calls
      // are: a backend that counted 9e15 tokens once made Chats.spent refuse the chat for good.
      tokensIn = Math.min(usedIn, charged.tokens)
      tokensOut = charged.tokens - tokensIn
    }
    if (cut) {
      // Said where it was cut, in the answer as streamed and saved; the record keeps what was taken.
      const note = cutNote(bound, maxTokensOut)
      turn.text += note
      yield* turn.emit({ _tag: "Token", text: note })
    }
    turn.tokensIn += tokensIn
    turn.tokensOut += tokensOut
    // Its tool calls as stored (arguments cut when long, refused when deep): the record is bounded,
    // and rendering it cannot throw, so the call (and what it spent) is always recorded.
    const answer = toolCalls.length > 0
      ? JSON.stringify({ content, toolCalls: toolCalls.map(storedCall), ...(ignoredCalls > 0 ? { ignoredCalls } : {}) })
      : content
    const call: LlmCall = {
      agent: AGENT,
      step: `q${turn.question}-${n}`,
      model: request.model,
      backend: model.backend.kind,
      ...promptOf(request),
      ...(answer === "" ? {} : { answer }),
      tokensIn,
      tokensOut,
      ...(charged !== undefined && turn.budget!.priced ? { cost: charged.cost } : {}),
      latencyMillis: Math.round(performance.now() - started),
      cache: "off",
      attempts,
      outcome: Either.isRight(outcome) ? "ok" : outcome.left._tag === "LlmTimeout" ? "timeout" : "error",
      ...(Either.isLeft(outcome)
        ? { error: outcome.left.message }
        : cut
        ? { error: `the answer was cut at ${bound} characters (maxTokensOut ${maxTokensOut})` }
        : {})
    }
    yield* Chats.recordCall(turn.session!.id, turn.question, call, turn.prompts).pipe(
      Effect.tapError(() =>
        Effect.sync(() => {
          // Not recorded, yet spent: a live budget has it already; a budget read from the records
          // would not, and the next question would spend it again.
          const session = turn.session!.id
          const before = deps.unrecorded.get(session) ?? { tokens: 0, cost: 0 }
          deps.unrecorded.set(session, { tokens: before.tokens + tokensIn + tokensOut, cost: before.cost + (call.cost ?? 0) })
        })
      )
    )
    if (Either.isLeft(outcome)) return yield* Effect.fail(outcome.left)
    return { content, toolCalls }
  })

const requestOf = (config: LlmConfig, messages: ReadonlyArray<Message>, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: config.model,
  messages: [...messages],
  maxTokensOut: config.maxTokensOut,
  temperature: config.temperature,
  timeoutMillis: config.timeoutMillis,
  offline: () => ({ content: "" }),
  ...extra
})

/** The tool specs' share of a prompt's upper bound in tokens (they go with it). */
const TOOL_SPEC_TOKENS = Buffer.byteLength(JSON.stringify(toolSpecs), "utf8")

/** A question being answered: the agent's means, the turn, the run asked about, its LLM settings and the conversation so far. */
interface Question {
  readonly deps: Deps
  readonly turn: Turn
  readonly record: Runs.RunRecord
  readonly config: LlmConfig
  readonly messages: Array<Message>
  readonly question: string
}

/**
 * A model call the budget refused: recorded (outcome `budget`, no tokens), said in the answer, and
 * the rest of the answer given offline.
 */
const budgetSpent = (q: Question, request: ChatRequest, refusal: LlmBudgetExhausted) =>
  Effect.gen(function*() {
    const { deps, turn } = q
    yield* Chats.recordCall(turn.session!.id, turn.question, {
      agent: AGENT,
      step: `q${turn.question}-${++turn.calls}`,
      model: request.model,
      backend: deps.llm.model.backend.kind,
      ...promptOf(request),
      tokensIn: 0,
      tokensOut: 0,
      latencyMillis: 0,
      cache: "off",
      attempts: 0,
      outcome: "budget",
      error: refusal.message
    })
    turn.backend = "offline"
    const notice = refusal.reserved === undefined
      ? `The run's language-model budget is spent (${refusal.message}), so I answer without the model. `
      : `The run's language-model budget has no room for this answer while its agents' calls are in flight (${refusal.message}), so I answer without the model. `
    turn.text += notice
    yield* turn.emit({ _tag: "Token", text: notice })
    yield* answerOffline(q, Offline.make(refusal.reserved === undefined ? "offline: the run's LLM budget is spent" : "offline: the run's LLM budget has no room now"))
  })

/**
 * The budget a question spends. The run executing in this process: its live budget, the one its
 * LLM agents spend (what the chat spent before the run started here charged to it once), so the
 * two together never pass it. Otherwise the run's budget less what its recorded calls and its
 * chat's have spent.
 */
const budgetOf = (deps: Deps, record: Runs.RunRecord, config: LlmConfig, session: ChatSessionId) =>
  Effect.gen(function*() {
    const lost = deps.unrecorded.get(session) ?? { tokens: 0, cost: 0 }
    const live = deps.llm.budgets.get(record.id)
    if (live !== undefined) {
      // Registered without it (a run executed without the store's reading of it): charged now, once.
      if (!deps.llm.budgets.chargedChat(live)) {
        const chat = yield* Chats.spent(session)
        deps.llm.budgets.chargeChat(live, { tokens: chat.tokens + lost.tokens, cost: chat.cost + lost.cost })
      }
      return live
    }
    const chat = yield* Chats.spent(session)
    const run = yield* RecordedLlmCalls.spent(record.id)
    const budget = new Budget(record.id, config.budget)
    budget.charge(run.tokens + chat.tokens + lost.tokens, run.cost + chat.cost + lost.cost)
    return budget
  })

/** With a model: turns with tools until it answers in text (at most `MAX_TOOL_ROUNDS` of them), streamed. */
const converse = (q: Question) =>
  Effect.gen(function*() {
    const { config, deps, messages, record, turn } = q
    for (let round = 0;; round++) {
      const tools = round < MAX_TOOL_ROUNDS
      if (!tools) {
        messages.push({
          role: "system",
          content: `You have called tools ${MAX_TOOL_ROUNDS} times for this question: answer now, from their results, without calling another.`
        })
      }
      const request = requestOf(config, messages, tools ? { tools: toolSpecs } : {})
      let reservation: Reservation | undefined
      if (turn.budget !== undefined) {
        // Tentative: a chat call that does not fit is refused alone. The run's agents, whose calls are
        // smaller (no tool specs), go on with what is left, as the budget's limit allows. One that only
        // the calls in flight (its run's agents', on a live budget) leave no room for waits in line
        // with them, as long as its model would have had to answer: they settle at what they used, and
        // the asker gets the model's answer, not the offline one, for a moment's crowding.
        const reserved = yield* turn.budget.reserveWaiting(
          promptTokensUpperBound(messages) + (tools ? TOOL_SPEC_TOKENS : 0),
          config.maxTokensOut,
          { tentative: true, within: config.timeoutMillis }
        )
        if (Either.isLeft(reserved)) return yield* budgetSpent(q, request, reserved.left)
        reservation = reserved.right
      }
      const result = yield* callModel(deps, turn, request, config, deps.llm.model, reservation)
      if (!tools || result.toolCalls.length === 0) return
      const calls = result.toolCalls
      // Its calls go back as stored: arguments cut short (a model that wrote 200 KB of them is not
      // sent them again, nor charged for them).
      messages.push({ role: "assistant", content: result.content, toolCalls: calls.map(storedCall) })
      yield* Chats.append(turn.session!.id, {
        role: "assistant",
        content: "",
        toolCalls: calls.map(storedCall),
        backend: turn.backend,
        model: turn.model
      })
      for (const call of calls) {
        const used = yield* useTool(call, record)
        messages.push({ role: "tool", content: used.content, toolName: used.tool })
        yield* Chats.append(turn.session!.id, { role: "tool", content: used.content, toolName: used.tool })
        yield* turn.emit({ _tag: "ToolUsed", tool: used.tool, arguments: used.arguments, ok: used.ok, summary: used.summary })
      }
    }
  })

/**
 * Without a model (the offline backend, or a spent budget: `model` is then an offline one): the
 * question routed to a tool by keywords, answered with its sentences, streamed word by word.
 */
const answerOffline = (q: Question, model: LanguageModel["Type"] = q.deps.llm.model) =>
  Effect.gen(function*() {
    const { config, deps, messages, question, record, turn } = q
    // A run named `<strategy>#<n>` is read with the asker's strategies' names, which may hold spaces.
    const strategies = question.includes("#")
      ? yield* Strategies.list(record.owner).pipe(
        Effect.map((listed) => [record.strategyName, ...listed.map((s) => s.name)]),
        Effect.orElseSucceed(() => [record.strategyName])
      )
      : []
    const routed = routeQuestion(question, { symbols: record.strategy.symbols, strategies, agents: record.strategy.agents.map(agentName) })
    let text = CAPABILITIES
    if (routed !== undefined) {
      const used = yield* runDecoded(routed, record)
      const call: ToolCall = { name: routed.tool, arguments: used.arguments }
      yield* Chats.append(turn.session!.id, { role: "assistant", content: "", toolCalls: [call], backend: turn.backend, model: turn.model })
      yield* Chats.append(turn.session!.id, { role: "tool", content: used.content, toolName: used.tool })
      yield* turn.emit({ _tag: "ToolUsed", tool: used.tool, arguments: used.arguments, ok: used.ok, summary: used.summary })
      messages.push({ role: "assistant", content: "", toolCalls: [call] }, { role: "tool", content: used.content, toolName: used.tool })
      text = used.sentences
    }
    yield* callModel(deps, turn, requestOf(config, messages, { offline: () => ({ content: text }) }), config, model)
  })

/** The answer broke off with a typed failure: recorded as such, `Failed` sent (or the asker failed, before the question was recorded). */
const failed = (turn: Turn, error: { readonly _tag: string; readonly message?: string }) =>
  Effect.gen(function*() {
    const reason = reasonOf(error)
    if (turn.question === 0 || turn.session === undefined) {
      turn.finished = true
      yield* turn.reply.fail(new SystemAgentUnavailable({ reason }))
      return
    }
    // Best effort, and bounded: the asker and the watchers hear of the failure whatever the database does.
    const saved = yield* Effect.option(Chats.append(turn.session.id, {
      role: "assistant",
      content: turn.text,
      backend: turn.backend,
      model: turn.model,
      tokensIn: turn.tokensIn,
      tokensOut: turn.tokensOut,
      error: reason
    }).pipe(Effect.timeout("5 seconds")))
    turn.finished = true
    yield* turn.emit({ _tag: "Failed", message: saved._tag === "Some" ? saved.value.seq : null, error: error._tag, reason })
    yield* turn.reply.end
  })

/** The answer was interrupted or crashed (a defect): the asker and the watchers are told, the failure recorded if it can be. */
const brokenOff = (deps: Deps, turn: Turn, cause: Cause.Cause<unknown>) =>
  Effect.gen(function*() {
    if (turn.finished) return
    const interrupted = Cause.isInterruptedOnly(cause)
    if (!interrupted) yield* Effect.logError("SystemAgent: answering a question failed", cause).pipe(Effect.annotateLogs({ run: turn.run }))
    const error = interrupted ? "Interrupted" : "Crashed"
    const reason = interrupted
      ? "the system agent stopped before the answer was complete"
      : "the system agent failed while answering (the failure is logged)"
    yield* failed(turn, { _tag: error, message: reason }).pipe(
      Effect.provide(deps.context),
      Effect.catchAllCause(() => Effect.sync(() => turn.reply.unsafeDone(Exit.fail(new SystemAgentUnavailable({ reason })))))
    )
  })

/** Answers one question, start to end. Never fails: its failures are chunks (or the asker's failure). */
const answer = (deps: Deps, message: AnswerQuestion, prompts?: Chats.SessionPrompts): Effect.Effect<void> => {
  const turn = new Turn(message.run, message.reply, deps.feed, deps.llm.model.backend.kind, prompts)
  const work = Effect.gen(function*() {
    const record = yield* Runs.get(message.run)
    const config = record.strategy.llm ?? defaultLlmConfig
    turn.model = config.model
    const session = yield* Chats.session(record.id, record.owner)
    turn.session = session
    if (turn.backend !== "offline") turn.budget = yield* budgetOf(deps, record, config, session.id)
    const earlier = yield* Chats.history(session.id, { limit: HISTORY_MESSAGES * 3 })
    const asked = yield* Chats.append(session.id, { role: "user", content: message.question })
    turn.question = asked.seq
    yield* turn.emit({ _tag: "Asked", run: record.id, content: message.question })
    const messages: Array<Message> = [
      { role: "system", content: systemPrompt(record) },
      ...historyMessages(earlier),
      { role: "user", content: message.question }
    ]
    const q: Question = { deps, turn, record, config, messages, question: message.question }
    if (turn.backend === "offline") yield* answerOffline(q)
    else yield* converse(q)
    const saved = yield* Chats.append(session.id, {
      role: "assistant",
      content: turn.text,
      backend: turn.backend,
      model: turn.model,
      tokensIn: turn.tokensIn,
      tokensOut: turn.tokensOut
    })
    turn.finished = true
    yield* turn.emit({
      _tag: "Done",
      message: saved.seq,
      backend: turn.backend,
      model: turn.model,
      tokensIn: turn.tokensIn,
      tokensOut: turn.tokensOut
    })
    yield* turn.reply.end
  })
  return work.pipe(
    Effect.catchAll((error) => failed(turn, error)),
    Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : brokenOff(deps, turn, exit.cause))),
    Effect.provide(deps.context),
    Effect.withSpan("SystemAgent.answer", { attributes: { "agent.id": AGENT, run: message.run } })
  )
}

// ---------------------------------------------------------------------------------------------
// The actors

/**
 * A session's actor: its questions, one at a time, in order; a bounded mailbox that refuses past
 * `queue` waiting. It keeps which prompt parts its session's calls have stored, for its life.
 */
const sessionActor = (deps: Deps) => {
  const prompts = new Chats.SessionPrompts()
  return Actor.make({
    protocol: ChatSessionProtocol,
    mailbox: { capacity: deps.queue, overflow: "fail" },
    initial: undefined as void,
    behavior: (state, message, context) =>
      message._tag === "RetireSession" ? Effect.as(context.stop, state) : Effect.as(answer(deps, message, prompts), state)
  })
}

interface Routed {
  readonly ref: ActorRef<ChatSessionProtocol, "fail">
  lastUsed: number
}

interface RouterState {
  readonly sessions: Map<string, Routed>
  /** Numbers the session actors: a session let go and asked again gets a new one, never a name still stopping. */
  generation: number
}

/** The system agent itself: routes each question to its run's session actor, and lets idle ones go. */
const routerActor = (deps: Deps) =>
  Actor.make({
    protocol: SystemAgentProtocol,
    mailbox: { capacity: 1_024 },
    setup: (context) =>
      Effect.as(context.scheduleRepeatedly(new SweepSessions(), deps.sweep), { sessions: new Map(), generation: 0 } as RouterState),
    behavior: (state, message, context) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (message._tag === "SweepSessions") {
          for (const [run, routed] of state.sessions) {
            if (now - routed.lastUsed < deps.idleMillis) continue
            // Out of the map first: a question from now on goes to a new actor, never to one stopping.
            state.sessions.delete(run)
            yield* Effect.ignore(routed.ref.tell(new RetireSession()))
          }
          return state
        }
        let routed = state.sessions.get(message.run)
        if (routed === undefined) {
          const ref = yield* Effect.orDie(context.spawn(sessionActor(deps), { name: `${message.run}-${++state.generation}`, restart: "transient" }))
          routed = { ref, lastUsed: now }
          state.sessions.set(message.run, routed)
        }
        routed.lastUsed = now
        // A full mailbox refuses it: a dead letter, which tells the asker (see `make`).
        yield* Effect.ignore(routed.ref.tell(message))
        return state
      })
  })

const undelivered = (reason: "stopped" | "overflow" | "crashed", queue: number): string => {
  switch (reason) {
    case "overflow":
      return `this run's chat already has ${queue} questions waiting: ask again once they are answered`
    case "stopped":
      return "the system agent is stopping"
    case "crashed":
      return "the system agent failed while answering (the failure is logged)"
  }
}

/** The system agent of this process, for the scope: its actor system, its supervisor and the agent under it. */
export const make = (options: Options = {}): Effect.Effect<Service, never, LlmRuntime | SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const llm = yield* LlmRuntime
    const context = yield* Effect.context<SqlClient.SqlClient>()
    const queue = Math.max(1, Math.trunc(options.queue ?? 4))
    const fanout = yield* Effect.serviceOption(ChatFanout)
    const clock = yield* Effect.clock
    const deps: Deps = {
      llm,
      context,
      feed: new Feed(Math.max(1, Math.trunc(options.watchBuffer ?? 4_096)), Option.getOrUndefined(fanout), () => clock.unsafeCurrentTimeMillis()),
      queue,
      idleMillis: Duration.toMillis(Duration.decode(options.idle ?? "15 minutes")),
      sweep: Duration.decode(options.sweep ?? "1 minute"),
      unrecorded: new Map()
    }
    const system = yield* ActorSystem.make({
      // Stopping (the server shuts down): an answer in flight is cut short at once, recorded as
      // interrupted and its asker told so. An answer can take a minute; letting it run for the
      // kernel's default 5 s, to cut it all the same, only held the shutdown up.
      stopTimeout: STOP_TIMEOUT,
      observe: {
        // Nothing vanishes: a question that cannot be delivered fails its asker's stream.
        deadLetter: (letter) => {
          if (letter.message instanceof AnswerQuestion) {
            letter.message.reply.unsafeDone(Exit.fail(new SystemAgentUnavailable({ reason: undelivered(letter.reason, queue) })))
          }
        }
      }
    })
    const tree = yield* Supervisor.start({
      strategy: "one_for_one",
      intensity: 10,
      period: "1 minute",
      children: [Supervisor.worker("agent", routerActor(deps))]
    }, { name: "system", restart: "permanent" }).pipe(Effect.provideService(ActorSystem.ActorSystem, system), Effect.orDie)
    const agent = tree.ref("agent")
    return {
      backend: llm.info,
      ask: (run, question) =>
        Stream.unwrapScoped(Effect.gen(function*() {
          const reply = yield* Mailbox.make<ChatChunk, SystemAgentUnavailable>({ capacity: REPLY_CAPACITY })
          // The asker went away: the answer goes on, its chunks no longer kept for it.
          yield* Effect.addFinalizer(() => reply.shutdown)
          // Decoded by the asker: the constructor need not check it again.
          yield* agent.tell(new AnswerQuestion({ run, question, reply }, true))
          return Mailbox.toStream(reply)
        })),
      watch: (run) => Effect.map(deps.feed.subscribe(run), (box) => Mailbox.toStream(box)),
      follow: (run, after) => deps.feed.follow(run, after)
    } satisfies Service
  }).pipe(Effect.withSpan("SystemAgent.make"))

/** The process's system agent, from the context's language model and database. */
export const layer: Layer.Layer<SystemAgent, never, LlmRuntime | SqlClient.SqlClient> = Layer.scoped(SystemAgent, make())
