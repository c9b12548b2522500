/**
 * A run's access to language models: every call an LLM agent makes goes through here, and comes out
 * as a value (the decoded answer, or nothing: abstain) with the record of the call. In order:
 *
 *   recording (replay, resume: the recorded answer, no model call)
 *   → cache (by model, prompt hash, data window: in memory, the database behind it, or Redis)
 *   → budget (fail closed: the call's most is reserved, or the call is not made; crowded out only by
 *     the calls in flight, it waits for them to settle, up to its timeout or the round's deadline)
 *   → the process-wide concurrency cap → the backend, outside the run's world, with a timeout and
 *     retries with backoff for transient failures
 *   → structured decoding (an answer that does not decode is shown its error and asked once more)
 *
 * Nothing here fails: a slow, down or confused model is an abstention recorded with its reason.
 *
 * In a traced round each call is a `chat <model>` span with the GenAI semantic-convention
 * attributes (gen_ai.system, gen_ai.request.model, gen_ai.usage.input_tokens / output_tokens), the
 * backend's own spans beneath it; a call that gave no answer is an error span whose `error.type` is
 * its failure's tag (`LlmRequestFailed`, `LlmTimeout`, `LlmInvalidAnswer`, ...). An untraced
 * round's calls make no span. Every call is counted
 * (src/telemetry/Metrics.ts: calls, tokens, latency).
 */
import { Duration, Effect, Either, JSONSchema, ParseResult, Schedule, Schema } from "effect"
import type { AgentId, RoundId, RunId } from "../../schemas/Ids.js"
import {
  type BackendError,
  type CallOutcome,
  type LlmCall,
  type LlmBudgetExhausted,
  LlmCall as LlmCallSchema,
  type LlmConfig,
  LlmInvalidAnswer,
  LlmStepRefused,
  type Message
} from "../../schemas/Llm.js"
import { clip, clipAfter, QUOTED } from "../internal/clip.js"
import { sha256Hex } from "../internal/sha256.js"
import * as Outside from "../swarm/Outside.js"
import * as Metrics from "../telemetry/Metrics.js"
import * as Trace from "../telemetry/Trace.js"
import { type AnswerCache, type CachedAnswer, keyOf } from "./AnswerCache.js"
import type { Bucket, TokenBucketService } from "../bus/TokenBucket.js"
import { Budget, promptTokensUpperBound, type Reservation, spendsBudget } from "./Budget.js"
import type { ChatAnswer, ChatRequest, LanguageModel } from "./LanguageModel.js"
import { PreparedMessage } from "./PreparedMessage.js"
import { partsOf } from "./RunPrompts.js"

/** First retry's wait; each next one doubles it. */
const BACKOFF_MILLIS = 200
/**
 * The most of an answer that did not decode that is quoted back to the model when it is asked
 * again: enough to see its mistake. Quoted whole, a 3 MB answer made a retry whose reservation the
 * budget refused, and that refusal ended the model for the rest of the run.
 */
const QUOTED_ANSWER = 2_000
/**
 * The most of an answer's text a call records (and caches) as the model gave it. Past this, an
 * answer that decoded is recorded as its schema encodes what was read (a valid answer padded with
 * 2 MB of an extra field was stored whole), and one that did not is recorded cut (`clip`): a
 * replay decodes only answers recorded `ok`.
 */
const STORED_ANSWER = 16_384

export interface SessionOptions {
  readonly run: RunId
  readonly config: LlmConfig
  readonly model: LanguageModel["Type"]
  readonly cache?: AnswerCache["Type"] | undefined
  /** The process-wide cap on calls in flight, shared by every run. */
  readonly limiter?: Effect.Semaphore | undefined
  /**
   * A rate limit every process together respects (a model server's or a vendor's): each attempt
   * takes a token from the model's bucket first, waiting (wall-clock) until there is one.
   */
  readonly rate?: RateLimit | undefined
  /** Calls recorded by an earlier execution of this run, by `recordingKey`: answered from here, no model call. */
  readonly recording?: ReadonlyMap<string, LlmCall> | undefined
  /**
   * Record a call's prompt as its parts (`LlmCall.promptParts`, every text given: the run's
   * `PromptLedger` keeps each once) instead of whole (`prompt`): runs whose `RunStarted` says
   * `llm.prompts: "parts"`.
   */
  readonly promptParts?: boolean | undefined
  /** Seeds the model's sampling, so a temperature above 0 repeats itself where the backend allows. */
  readonly seed?: number | undefined
  /**
   * `uncharged`: a call the model never answered (it failed, timed out, or the round's deadline came
   * first) used no tokens: its reservation is released, and it is recorded with none — runs whose
   * `RunStarted` says `llm.failedCalls: "uncharged"`. Otherwise (runs recorded before) it is charged
   * and recorded at all it reserved, as those runs were.
   */
  readonly failedCalls?: "uncharged" | undefined
  /** Every call, as it ends. */
  readonly onCall?: ((call: LlmCall) => void) | undefined
  /**
   * Every call the budget refused (recorded or live). The run says so once, naming the first of
   * them in its log's order (`RunLog.deferFirst`): the first to get here is the wall clock's pick,
   * and a replay, answering from the recording, picks another.
   */
  readonly onBudgetSpent?: ((call: LlmCall) => void) | undefined
}

export interface RateLimit {
  readonly buckets: TokenBucketService
  readonly bucket: Bucket
}

/** Take a token from `model`'s bucket, waiting until there is one. */
export const takeToken = (rate: RateLimit, model: string): Effect.Effect<void> =>
  Effect.suspend(() =>
    Effect.flatMap(rate.buckets.take(`llm:${model}`, rate.bucket), (wait) => wait === 0 ? Effect.void : Effect.zipRight(Effect.sleep(wait), takeToken(rate, model)))
  )

export interface Ask<A, I> {
  readonly agent: AgentId
  /** The round the call is made for: with `agent` and `step`, the key a run records it under. */
  readonly round: RoundId
  /**
   * The call's place in the agent's round (`bull-1`, `judge`): unique per agent and round — a
   * replay answers each call from the recording by agent, round and step. A round's thinking
   * (`LlmSession.forRound`) refuses a call at a step the round already used (`LlmStepRefused`).
   */
  readonly step: string
  /** Overrides the strategy's model for this agent. */
  readonly model?: string | undefined
  readonly messages: ReadonlyArray<Message>
  /** What the answer must decode as; its JSON Schema is sent as Ollama's `format`. */
  readonly schema: Schema.Schema<A, I>
  /** The data the prompt was built from (`AAPL 2024-01-02..2024-03-01`): part of the cache key. */
  readonly window: string
  /** The offline model's answer: deterministic, from the same inputs as the prompt. */
  readonly offline: () => A
}

/** An answer at hand (`LlmSession.peek`): its value, and how to record it as the call. */
export interface Peeked<A> {
  readonly value: A | undefined
  /** Record it (under `trace`, a traced round's call span, when given). */
  readonly commit: (trace?: Trace.Trace) => Answered<A>
}

/** The record of a call answered from the cache: no tokens, no time, no attempt. In `LlmCall`'s field order. */
const hitCall = (ask: Ask<any, any>, model: string, promptHash: string, backend: LlmCall["backend"], answer: string): LlmCall => ({
  agent: ask.agent,
  ...(ask.round === undefined ? {} : { round: ask.round }),
  step: ask.step,
  model,
  backend,
  promptHash,
  answer,
  tokensIn: 0,
  tokensOut: 0,
  latencyMillis: 0,
  cache: "hit",
  attempts: 0,
  outcome: "ok"
})

/**
 * The session as one agent's round sees it (`LlmSession.forRound`): the same calls, each checked to
 * be one the run can record so that a replay answers it.
 */
export interface RoundSession {
  readonly generate: <A, I>(ask: Ask<A, I>) => Effect.Effect<Answered<A>>
  readonly peek: <A, I>(ask: Ask<A, I>) => Peeked<A> | undefined
}

export interface Answered<A> {
  /** The decoded answer; undefined when the agent must abstain (see `call.outcome`). */
  readonly value: A | undefined
  readonly call: LlmCall
}

export const recordingKey = (agent: string, round: string | undefined, step: string): string =>
  `${agent}\u0000${round ?? ""}\u0000${step}`

/** The prompt as it is hashed and recorded: canonical JSON of what the model is sent. */
const promptOf = (model: string, messages: ReadonlyArray<Message>, format: Format | undefined): string => {
  // `JSON.stringify({ model, messages, format })`, the format's JSON made once per schema and a
  // prepared message's (a brief's) made already.
  let json = `{"model":${JSON.stringify(model)},"messages":[`
  for (let i = 0; i < messages.length; i++) json += i === 0 ? PreparedMessage.json(messages[i]!) : `,${PreparedMessage.json(messages[i]!)}`
  return `${json}]${format === undefined ? "" : `,"format":${format.json}`}}`
}

/** An answer schema's JSON Schema (Ollama's `format`), and its JSON. */
interface Format {
  readonly schema: object
  readonly json: string
}

/**
 * Answers from the in-memory cache as their schema decoded them, by entry: a cached backtest asks
 * for the same entries run after run, and each decoding cost more than the rest of the hit.
 * Decoded answers are plain data nobody changes.
 */
const decodedEntries = new WeakMap<CachedAnswer, { readonly schema: Schema.Schema<any, any>; readonly value: unknown }>()

const decodeEntry = <A, I>(schema: Schema.Schema<A, I>, entry: CachedAnswer): Either.Either<A, string> => {
  const known = decodedEntries.get(entry)
  if (known !== undefined && known.schema === schema) return Either.right(known.value as A)
  const decoded = decodeAnswer(schema, entry.content)
  if (Either.isRight(decoded)) decodedEntries.set(entry, { schema, value: decoded.right })
  return decoded
}

const isTransient = (error: BackendError): boolean => error._tag !== "LlmRequestFailed" || error.transient

/**
 * An answer that decoded, as it is recorded and cached, and the value the agent is given: the
 * value decoded from that very text, so that the run and its replay (which decodes the record) see
 * the same. Small answers are kept as they came; a long one is re-encoded from what its schema
 * read — the extra fields that made it long are dropped.
 */
const keptAnswer = <A, I>(schema: Schema.Schema<A, I>, content: string, value: A): { readonly content: string; readonly value: A } => {
  if (content.length <= STORED_ANSWER) return { content, value }
  const encoded = JSON.stringify(Schema.encodeSync(schema)(value))
  const again = decodeAnswer(schema, encoded)
  // A schema whose encoding does not decode back to a value (none of the analysts'): kept as it came.
  return Either.isRight(again) ? { content: encoded, value: again.right } : { content, value }
}

const decodeAnswer = <A, I>(schema: Schema.Schema<A, I>, content: string): Either.Either<A, string> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(content)
  } catch (error) {
    return Either.left(`not JSON (${clip((error as Error).message, 4 * QUOTED)})`)
  }
  // The reason is recorded, and shown to the model when it is asked again: it quotes the value it
  // stopped at only in part (a 3 MB rationale made every call's record 3 MB, and the retry's prompt).
  return Either.mapLeft(
    Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "ignore" })(parsed),
    (error) => {
      const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
      const paths = [...new Set(issues.map((issue) => issue.path.join(".")))].slice(0, ANSWER_PROBLEMS)
      const reasons = paths.map((path) => {
        const at = issues.filter((issue) => issue.path.join(".") === path).map((issue) => issue.message)
        return `${path === "" ? "" : `${clip(path)}: `}${clipAfter(choices(at) ?? at[0]!, ", actual ")}`
      })
      return reasons.length === 0 ? "does not match" : reasons.join("; ")
    }
  )
}

/** The most problems of one answer its reason names (the first ones, by field). */
const ANSWER_PROBLEMS = 3

const EXPECTED = /^Expected (.+), actual ([\s\S]+)$/

/**
 * A union of literals (an opinion's `direction`) fails once per member at one field, and the first
 * alone — `Expected "long", actual "down"` — reads to the model as if `long` were the only answer,
 * and steers its retry there: the members together, `Expected "long" | "short" | "flat", actual
 * "down"`. Undefined when the messages are not all of that form about one value.
 */
const choices = (messages: ReadonlyArray<string>): string | undefined => {
  if (messages.length < 2) return undefined
  const read = messages.map((message) => EXPECTED.exec(message))
  if (read.some((m) => m === null || m[2] !== read[0]![2])) return undefined
  return `Expected ${read.map((m) => m![1]).join(" | ")}, actual ${read[0]![2]}`
}

export class LlmSession {
  readonly budget: Budget
  private readonly formats = new WeakMap<object, Format>()

  constructor(readonly options: SessionOptions) {
    this.budget = new Budget(options.run, options.config.budget)
  }

  get backend(): LanguageModel["Type"]["backend"] {
    return this.options.model.backend
  }

  /**
   * The session for `agent`'s thinking about `round` (agents/LlmAnalyst.ts gives each round's
   * thinking one), whose calls' answer schemas are among `answers` when given (the type's
   * `answers`, checked by the registry). A run records each call under its agent, round and step, and its replay answers
   * the call from there: a call that names no round, or another agent or round, or a step this
   * round already used, would record a run no replay reproduces (the second answer of a step
   * replaced the first, and the replay diverged at its prompt). Such a call is the agent's bug: it
   * dies with `LlmStepRefused` (`peek` throws it), which crashes the agent and names the agent,
   * round and step in the run's `ActorCrashed` event. A step counts as used once it is asked for
   * (`generate`) or recorded (a peek's `commit`): peeking alone uses nothing.
   */
  forRound(agent: AgentId, round: RoundId, answers?: ReadonlySet<object>): RoundSession {
    const steps = new Set<string>()
    const refusal = (ask: Ask<any, any>): LlmStepRefused | undefined => {
      const reason = (ask.round as RoundId | undefined) === undefined
        ? `the call names no round: every call is made for a round (Ask.round), and recorded and replayed under it`
        : ask.agent !== agent || ask.round !== round
        ? `the call is made in the thinking of agent ${agent} about round ${round}, but names agent ${ask.agent}, round ${ask.round}`
        : steps.has(ask.step)
        ? `the round already asked for this step: each call of a round needs a step of its own (Ask.step), under which it is recorded and replayed`
        : answers !== undefined && !answers.has(ask.schema)
        ? `the call's answer schema is none of its type's \`answers\`, whose JSON Schemas the registry checks when a strategy names the type`
        : undefined
      return reason === undefined
        ? undefined
        : new LlmStepRefused({ agent: ask.agent, ...(ask.round === undefined ? {} : { round: ask.round }), step: ask.step, reason })
    }
    return {
      generate: <A, I>(ask: Ask<A, I>) =>
        Effect.suspend(() => {
          const refused = refusal(ask)
          if (refused !== undefined) return Effect.die(refused)
          steps.add(ask.step)
          return this.generate(ask)
        }),
      peek: <A, I>(ask: Ask<A, I>) => {
        const refused = refusal(ask)
        if (refused !== undefined) throw refused
        const peeked = this.peek(ask)
        if (peeked === undefined) return undefined
        return {
          value: peeked.value,
          commit: (trace?: Trace.Trace) => {
            const again = refusal(ask)
            if (again !== undefined) throw again
            steps.add(ask.step)
            return peeked.commit(trace)
          }
        }
      }
    }
  }

  /** Ask for a structured answer. Never fails: see `Answered`. In a traced round, a GenAI span. */
  generate<A, I>(ask: Ask<A, I>): Effect.Effect<Answered<A>> {
    return Effect.flatMap(Trace.current, (parent) => {
      if (parent === undefined) return this.answer(ask, undefined)
      const { config } = this.options
      const model = ask.model ?? config.model
      return Trace.within(`chat ${model}`, {
        kind: "client",
        attributes: {
          "gen_ai.operation.name": "chat",
          "gen_ai.system": this.options.model.backend.kind,
          "gen_ai.request.model": model,
          "gen_ai.request.temperature": config.temperature,
          "gen_ai.request.max_tokens": config.maxTokensOut,
          ...(this.options.seed === undefined ? {} : { "gen_ai.request.seed": this.options.seed }),
          "swarm.agent": ask.agent,
          ...(ask.round === undefined ? {} : { "swarm.round": ask.round }),
          "swarm.llm.step": ask.step
        }
      }, (trace) => this.answer(ask, trace))
    })
  }

  /**
   * The answer when it is already at hand — recorded (a replay, a resume) or in the in-memory
   * cache — with no effect at all; undefined when the call has to be made (`generate`). Nothing is
   * recorded until `commit`, which records the call (and counts the cache hit) exactly as
   * `generate` would have: an agent may peek at several steps and commit them only if all are
   * at hand. For untraced rounds (a traced one wants the call's span: `generate`).
   */
  peek<A, I>(ask: Ask<A, I>): Peeked<A> | undefined {
    const model = ask.model ?? this.options.config.model
    return this.atHand(ask, model, sha256Hex(promptOf(model, ask.messages, this.formatOf(ask.schema))))
  }

  /** `peek`, its prompt hashed; `commit` records under `trace` when there is one. */
  private atHand<A, I>(ask: Ask<A, I>, model: string, promptHash: string): Peeked<A> | undefined {
    const { config } = this.options
    const recorded = this.options.recording?.get(recordingKey(ask.agent, ask.round, ask.step))
    if (recorded !== undefined) {
      const value = recorded.outcome === "ok" && recorded.answer !== undefined
        ? Either.getOrUndefined(decodeAnswer(ask.schema, recorded.answer))
        : undefined
      return {
        value,
        // The recorded call stands as it was, but for the prompt's hash: a replay whose prompt
        // differs shows it as a divergence at this event.
        commit: (trace) => {
          this.budget.charge(recorded.tokensIn + recorded.tokensOut, recorded.cost ?? 0)
          return this.done({ value, call: { ...recorded, promptHash } }, trace, true)
        }
      }
    }
    const memory = config.cacheTtlSeconds > 0 ? this.options.cache?.memory : undefined
    if (memory === undefined) return undefined
    const backend = this.options.model.backend.kind
    const cacheKey = keyOf(`${backend}:${model}`, promptHash, ask.window)
    const entry = memory.peek(cacheKey)
    if (entry === undefined) return undefined
    const decoded = decodeEntry(ask.schema, entry)
    if (Either.isLeft(decoded)) return undefined
    const value = decoded.right
    return {
      value,
      commit: (trace) => {
        memory.get(cacheKey)
        return this.done({ value, call: hitCall(ask, model, promptHash, backend, entry.content) }, trace, false, true)
      }
    }
  }

  private answer<A, I>(ask: Ask<A, I>, trace: Trace.Trace | undefined): Effect.Effect<Answered<A>> {
    return Effect.suspend(() => {
      const { config } = this.options
      const model = ask.model ?? config.model
      const format = this.formatOf(ask.schema)
      const prompt = promptOf(model, ask.messages, format)
      const promptHash = sha256Hex(prompt)
      const base = { agent: ask.agent, ...(ask.round === undefined ? {} : { round: ask.round }), step: ask.step, model, promptHash }

      const recorded = this.options.recording?.has(recordingKey(ask.agent, ask.round, ask.step)) === true
        ? this.atHand(ask, model, promptHash)
        : undefined
      if (recorded !== undefined) return Effect.succeed(recorded.commit(trace))

      const backend = this.options.model.backend.kind
      const offline = () => ({ content: JSON.stringify(Schema.encodeSync(ask.schema)(ask.offline())) })
      const request: ChatRequest = {
        model,
        messages: ask.messages,
        format: format.schema,
        maxTokensOut: config.maxTokensOut,
        temperature: config.temperature,
        ...(this.options.seed === undefined ? {} : { seed: this.options.seed }),
        timeoutMillis: config.timeoutMillis,
        offline
      }
      const cacheKey = keyOf(`${backend}:${model}`, promptHash, ask.window)
      const cache = config.cacheTtlSeconds > 0 ? this.options.cache : undefined
      // The prompt as a call that was not a hit records it: whole, or in parts (made only then).
      const recordedPrompt = (): Pick<LlmCall, "prompt" | "promptParts"> =>
        this.options.promptParts === true
          ? { promptParts: partsOf(ask.messages.map((message) => ({ message, json: PreparedMessage.json(message) })), format.json) }
          : { prompt }

      // What an interruption (the round's deadline) must settle and record: the reservation in flight,
      // or the refusal that made the call wait for room (and, for the retry, why it was asked again);
      // and what the answers before were charged, which the budget has spent.
      const inFlight: {
        reservation: Reservation | undefined
        waiting: { readonly refusal: LlmBudgetExhausted; readonly retrying?: { readonly error: string | undefined } } | undefined
        attempts: number
        charged: { tokensIn: number; tokensOut: number; cost: number }
        started: number
      } = {
        reservation: undefined,
        waiting: undefined,
        attempts: 0,
        charged: { tokensIn: 0, tokensOut: 0, cost: 0 },
        started: performance.now()
      }
      // A call waits for room on the clock of its backend: the world's for the offline model (in place),
      // the wall clock for a model outside it, which is also where the calls it waits for are.
      const place = backend === "offline" ? undefined : Outside.run
      return Effect.gen(this, function*() {
        if (cache !== undefined) {
          // The in-memory cache is read in place: a hit must not leave the world. A miss there, when
          // it is the front of a database (`tiered`), is asked of the database, outside.
          const memory = cache.memory
          const hit = memory !== undefined && (cache.tiered !== true || memory.peek(cacheKey) !== undefined)
            ? memory.get(cacheKey)
            : yield* Outside.run(cache.get(cacheKey))
          if (hit !== undefined) {
            const value = decodeEntry(ask.schema, hit)
            if (Either.isRight(value)) {
              return this.done({ value: value.right, call: hitCall(ask, model, promptHash, backend, hit.content) }, trace, false, true)
            }
          }
        }
        const started = inFlight.started
        let attempts = 0
        let tokensIn = 0
        let tokensOut = 0
        let cost = 0
        let messages = ask.messages
        let last: ChatAnswer | undefined
        // The answer as recorded and cached (see `keptAnswer`).
        let kept: string | undefined
        let outcome: CallOutcome = "ok"
        let error: string | undefined
        // The typed failure behind `error`, as the call's span names it.
        let failure: { readonly _tag: string } | undefined
        let value: A | undefined
        // The first answer, then at most one more that is shown why the first did not decode.
        for (let tries = 0; tries < 2; tries++) {
          // The retry is a second chance, not a call the agent needs: its refusal spends nothing for good.
          const tentative = tries > 0
          const upperBound = promptTokensUpperBound(messages)
          let reservation = this.budget.reserve(upperBound, config.maxTokensOut, tentative)
          if (Either.isLeft(reservation) && reservation.left.reserved !== undefined) {
            // Only the calls in flight leave it no room: it waits for them to settle (they use far less
            // than they reserve, as a rule), as long as its model would have had to answer.
            inFlight.waiting = { refusal: reservation.left, ...(tentative ? { retrying: { error } } : {}) }
            inFlight.attempts = attempts
            reservation = yield* this.budget.reserveWaiting(upperBound, config.maxTokensOut, {
              tentative,
              within: config.timeoutMillis,
              place,
              // Its wait is over: from here an interruption settles the reservation, as for any call.
              onAnswer: (answer) => {
                inFlight.waiting = undefined
                if (Either.isRight(answer)) inFlight.reservation = answer.right
              }
            })
          }
          if (Either.isLeft(reservation)) {
            outcome = tries === 0 ? "budget" : "invalid"
            error = tries === 0 ? reservation.left.message : `${error}; no budget left to ask again`
            if (tries === 0) failure = reservation.left
            break
          }
          inFlight.reservation = reservation.right
          inFlight.attempts = attempts
          const exit = yield* this.attempt({ ...request, messages }, config, trace).pipe(Effect.either)
          inFlight.reservation = undefined
          attempts += exit._tag === "Right" ? exit.right.attempts : exit.left.attempts
          if (Either.isLeft(exit)) {
            // No answer, so nothing the backend counted: the reservation is released (runs recorded
            // before `failedCalls: "uncharged"` charged it whole, as if the model had used it all).
            const charged = this.budget.settle(reservation.right, this.failedUse(reservation.right), 0)
            tokensIn += charged.tokens
            cost += charged.cost
            inFlight.charged = { tokensIn, tokensOut, cost }
            outcome = exit.left.error._tag === "LlmTimeout" ? "timeout" : "error"
            error = exit.left.error.message
            failure = exit.left.error
            break
          }
          last = exit.right.answer
          const charged = this.budget.settle(reservation.right, last.tokensIn, last.tokensOut)
          tokensIn += Math.min(last.tokensIn, charged.tokens)
          tokensOut += charged.tokens - Math.min(last.tokensIn, charged.tokens)
          cost += charged.cost
          inFlight.charged = { tokensIn, tokensOut, cost }
          const decoded = decodeAnswer(ask.schema, last.content)
          if (Either.isRight(decoded)) {
            const answer = keptAnswer(ask.schema, last.content, decoded.right)
            kept = answer.content
            value = answer.value
            outcome = "ok"
            error = undefined
            failure = undefined
            break
          }
          outcome = "invalid"
          failure = new LlmInvalidAnswer({ model, reason: decoded.left })
          error = (failure as LlmInvalidAnswer).message
          messages = [
            ...ask.messages,
            { role: "assistant", content: clip(last.content, QUOTED_ANSWER) },
            {
              role: "user",
              content: `Your answer could not be used: ${decoded.left}. Answer again with only a JSON object that matches the requested schema.`
            }
          ]
        }
        if (value !== undefined && last !== undefined && kept !== undefined && cache !== undefined) {
          const entry = { content: kept, toolCalls: last.toolCalls, tokensIn: last.tokensIn, tokensOut: last.tokensOut }
          if (cache.memory !== undefined && cache.tiered !== true) cache.memory.set(cacheKey, entry, config.cacheTtlSeconds * 1_000)
          else yield* Outside.run(cache.set(cacheKey, entry, config.cacheTtlSeconds * 1_000))
        }
        const call: LlmCall = {
          ...base,
          backend,
          ...recordedPrompt(),
          ...(kept !== undefined ? { answer: kept } : last === undefined ? {} : { answer: clip(last.content, STORED_ANSWER) }),
          tokensIn,
          tokensOut,
          ...(this.budget.priced ? { cost } : {}),
          // The offline model answers in microseconds, in place: 0, so offline runs repeat byte for byte.
          latencyMillis: backend === "offline" ? 0 : Math.round(performance.now() - started),
          cache: cache === undefined ? "off" : "miss",
          attempts,
          outcome,
          ...(error === undefined ? {} : { error })
        }
        return this.done({ value, call }, trace, false, false, failure)
      }).pipe(
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            // The deadline came while it waited for room: not made, and refused with the refusal that
            // made it wait — its alone (the budget is not spent). Else recorded as a timeout, so a replay
            // abstains here too instead of asking a model. Either way with what it was charged, the
            // answers before included, so that a resume charges what the run did.
            const waiting = inFlight.waiting
            const reservation = waiting === undefined ? inFlight.reservation : undefined
            const charged = reservation === undefined ? { tokens: 0, cost: 0 } : this.budget.settle(reservation, this.failedUse(reservation), 0)
            const before = inFlight.charged
            const retrying = waiting?.retrying
            this.done({
              value: undefined,
              call: {
                ...base,
                backend,
                ...recordedPrompt(),
                tokensIn: before.tokensIn + charged.tokens,
                tokensOut: before.tokensOut,
                ...(this.budget.priced ? { cost: before.cost + charged.cost } : {}),
                latencyMillis: waiting !== undefined && backend === "offline" ? 0 : Math.round(performance.now() - inFlight.started),
                cache: cache === undefined ? "off" : "miss",
                attempts: inFlight.attempts + (reservation === undefined ? 0 : 1),
                ...(waiting === undefined
                  ? { outcome: "timeout" as const, error: "the round's deadline passed before the model answered" }
                  : retrying === undefined
                  ? { outcome: "budget" as const, error: waiting.refusal.message }
                  : { outcome: "invalid" as const, error: `${retrying.error}; no budget left to ask again` })
              }
            }, trace)
          })
        )
      )
    })
  }

  /** What a call the model never answered is charged of its reservation (see `failedCalls`). */
  private failedUse(reservation: Reservation): number {
    return this.options.failedCalls === "uncharged" ? 0 : reservation.tokens
  }

  /**
   * `ordered`: the call is built in `LlmCall`'s field order already (`hitCall`). `failure`: the
   * typed failure behind the call's `error`, when at hand (else read from the record, `failureOf`).
   */
  private done<A>(
    answered: Answered<A>,
    trace: Trace.Trace | undefined,
    recorded = false,
    ordered = false,
    failure?: { readonly _tag: string }
  ): Answered<A> {
    if (!ordered) answered = { value: answered.value, call: inSchemaOrder(answered.call) }
    const call = answered.call
    Metrics.llmCall(call, recorded)
    if (trace !== undefined) {
      trace.attribute("gen_ai.usage.input_tokens", call.tokensIn)
      trace.attribute("gen_ai.usage.output_tokens", call.tokensOut)
      trace.attribute("swarm.llm.outcome", call.outcome)
      trace.attribute("swarm.llm.cache", recorded ? "recorded" : call.cache)
      trace.attribute("swarm.llm.attempts", call.attempts)
      trace.attribute("swarm.llm.latency_ms", call.latencyMillis)
      trace.attribute("swarm.llm.prompt_hash", call.promptHash)
      if (call.outcome !== "ok") {
        // A call that gave no answer failed, whatever the agent makes of it (it abstains): its span
        // is an error, of the failure's type (`LlmRequestFailed`, `LlmTimeout`, ...).
        const failed = failureOf(call, failure)
        trace.attribute("error.type", failed._tag)
        if (call.error !== undefined) trace.attribute("swarm.llm.error", call.error)
        trace.fail(failed)
      }
    }
    this.options.onCall?.(answered.call)
    // Told from the record, so a replay (answered from recordings) tells of the same calls.
    if (answered.call.outcome === "budget" && spendsBudget(answered.call.error)) this.options.onBudgetSpent?.(answered.call)
    return answered
  }

  /**
   * One answer from the backend: under the process-wide cap, outside the world, each try limited
   * by the timeout, transient failures retried with exponential backoff (wall-clock, outside).
   */
  private attempt(
    request: ChatRequest,
    config: LlmConfig,
    trace: Trace.Trace | undefined
  ): Effect.Effect<{ readonly answer: ChatAnswer; readonly attempts: number }, { readonly error: BackendError; readonly attempts: number }> {
    const { limiter, model, rate } = this.options
    let attempts = 0
    const call = Effect.suspend(() => {
      attempts++
      return model.chat(request)
    })
    // The offline model is no server to spare: no token for it.
    const once = rate === undefined || model.backend.kind === "offline" ? call : Effect.zipRight(takeToken(rate, request.model), call)
    const limited = limiter === undefined ? once : limiter.withPermits(1)(once)
    const retried = limited.pipe(
      Effect.retry({
        schedule: Schedule.exponential(Duration.millis(BACKOFF_MILLIS)),
        times: config.retries,
        while: isTransient
      })
    )
    // Outside the world the fiber's span is not the round's: the backend's spans go under this call's
    // span in a traced round, and nowhere in an untraced one (no span objects for it at all).
    const spanned = trace === undefined ? Effect.withTracerEnabled(retried, false) : Effect.withParentSpan(retried, trace.span)
    // The offline model answers at once and in place: nothing to wait for outside the world.
    const placed = model.backend.kind === "offline" ? spanned : Outside.run(spanned)
    return placed.pipe(
      Effect.map((answer) => ({ answer, attempts })),
      Effect.mapError((error) => ({ error, attempts }))
    )
  }

  /** The JSON Schema of an answer's schema, made once per schema. */
  private formatOf(schema: Schema.Schema<any, any>): Format {
    let format = this.formats.get(schema)
    if (format === undefined) {
      const json = jsonSchemaOf(schema)
      format = { schema: json, json: JSON.stringify(json) }
      this.formats.set(schema, format)
    }
    return format
  }
}

/**
 * The failure a call that gave no answer ended with, for its span: the typed one when at hand, else
 * (a recorded call, the round's deadline) one of its type with the recorded reason as its message.
 */
const failureOf = (call: LlmCall, failure: { readonly _tag: string } | undefined): { readonly _tag: string } => {
  if (failure !== undefined) return failure
  const tag = call.outcome === "budget"
    ? "LlmBudgetExhausted"
    : call.outcome === "invalid"
    ? "LlmInvalidAnswer"
    : call.outcome === "timeout"
    ? "LlmTimeout"
    : / unavailable: /.test(call.error ?? "") && !/ refused the request \(\d+\): /.test(call.error ?? "")
    ? "LlmUnavailable"
    : "LlmRequestFailed"
  return Object.assign(new Error(call.error), { name: tag, _tag: tag })
}

/**
 * The call with its fields in `LlmCall`'s order: the log's canonical JSON is the schema's order, and
 * a replay's record (decoded from the store) comes in it.
 */
const inSchemaOrder = (call: LlmCall): LlmCall => {
  const ordered: Record<string, unknown> = {}
  for (const field of CALL_FIELDS) {
    const value = (call as unknown as Record<string, unknown>)[field]
    if (value !== undefined) ordered[field] = value
  }
  return ordered as unknown as LlmCall
}

const CALL_FIELDS = Object.keys(LlmCallSchema.fields)

/** A schema's JSON Schema as Ollama's `format` takes it: the object itself, no `$schema` header. */
export const jsonSchemaOf = (schema: Schema.Schema<any, any>): object => {
  const { $schema: _, ...rest } = JSONSchema.make(schema) as unknown as Record<string, unknown>
  return rest
}
