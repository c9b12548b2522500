/**
 * The system agent's chats: one session per run (made on its first question), its messages in
 * order, and the model calls its answers took. Text from a model is stored as it came, except for
 * what Postgres cannot hold (a NUL, a lone surrogate), which becomes U+FFFD: a hostile or broken
 * answer is recorded, never a failed write. A call's prompt is stored in parts, each part's body
 * once in the session (src/llm/RunPrompts.ts), and read back whole.
 */
import { randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, Option, ParseResult, Schema } from "effect"
import type { ChatMessage, ChatRole, ChatSession, ChatSessionId } from "../../schemas/Chat.js"
import type { RunId } from "../../schemas/Ids.js"
import { Backend, LlmCall, PromptPart, ToolCall } from "../../schemas/Llm.js"
import { chatPromptOfParts, PromptLedger, PromptReader } from "../llm/RunPrompts.js"
import { CorruptRecord, storeError } from "./StoreError.js"
import { oneLineOf } from "../internal/issues.js"
import { transaction } from "./Transaction.js"
import * as Transient from "./Transient.js"

export const newSessionId = (): ChatSessionId => `chat_${randomBytes(6).toString("hex")}` as ChatSessionId

// ---------------------------------------------------------------------------------------------
// What the database can hold

const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/** Text Postgres can store (text and jsonb): NULs and lone surrogates replaced by U+FFFD. */
export const storable = (text: string): string => text.replace(UNSTORABLE, "\uFFFD")

/** A JSON value with every string (keys included) storable. */
export const storableJson = (value: unknown): unknown => {
  if (typeof value === "string") return storable(value)
  if (Array.isArray(value)) return value.map(storableJson)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [key, v] of Object.entries(value)) out[storable(key)] = storableJson(v)
    return out
  }
  return value
}

// ---------------------------------------------------------------------------------------------
// Sessions

interface SessionRow {
  readonly id: ChatSessionId
  readonly runId: RunId
  readonly ownerId: string
  readonly createdAt: Date
}

const sessionOf = (row: SessionRow): ChatSession => ({ id: row.id, run: row.runId, owner: row.ownerId, createdAt: row.createdAt })

/** The run's session, made if it has none (its owner is the run's, `owner`). */
export const session = Effect.fn("Chats.session")(function*(run: RunId, owner: string) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`insert into chat_sessions (id, run_id, owner_id) values (${newSessionId()}, ${run}, ${owner})
    on conflict (run_id) do nothing`
  const [row] = yield* sql<SessionRow>`select id, run_id, owner_id, created_at from chat_sessions where run_id = ${run}`
  return sessionOf(row!)
}, storeError("open a chat session"))

/** The run's session, if it has been chatted with. */
export const find = Effect.fn("Chats.find")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<SessionRow>`select id, run_id, owner_id, created_at from chat_sessions where run_id = ${run}`
  return Option.map(Option.fromNullable(row), sessionOf)
}, storeError("read a chat session"))

// ---------------------------------------------------------------------------------------------
// Messages

export interface NewMessage {
  readonly role: ChatRole
  readonly content: string
  readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
  readonly toolName?: string | undefined
  readonly backend?: Backend | undefined
  readonly model?: string | undefined
  readonly tokensIn?: number | undefined
  readonly tokensOut?: number | undefined
  readonly error?: string | undefined
}

/** Whole, non-negative, within the column: a backend's count could be anything. */
const count = (n: number | undefined): number =>
  n === undefined || !Number.isFinite(n) ? 0 : Math.min(2_147_483_647, Math.max(0, Math.trunc(n)))

/** Append a message; returns its number and when it was written. The session row's lock orders concurrent writers. */
export const append = Effect.fn("Chats.append")(function*(session: ChatSessionId, message: NewMessage) {
  const sql = yield* SqlClient.SqlClient
  return yield* transaction(sql, Effect.gen(function*() {
    yield* sql`select id from chat_sessions where id = ${session} for update`
    const [row] = yield* sql<{ seq: number; createdAt: Date }>`
      insert into chat_messages (session_id, seq, role, content, tool_calls, tool_name, backend, model, tokens_in, tokens_out, error)
      select ${session}, coalesce(max(seq), 0) + 1, ${message.role}, ${storable(message.content)},
        ${message.toolCalls === undefined || message.toolCalls.length === 0 ? null : JSON.stringify(storableJson(message.toolCalls))}::jsonb,
        ${message.toolName === undefined ? null : storable(message.toolName)},
        ${message.backend ?? null}, ${message.model === undefined ? null : storable(message.model)},
        ${count(message.tokensIn)}, ${count(message.tokensOut)},
        ${message.error === undefined ? null : storable(message.error)}
      from chat_messages where session_id = ${session}
      returning seq, created_at`
    return { seq: row!.seq, createdAt: row!.createdAt }
  }))
}, storeError("record a chat message"))

interface MessageRow {
  readonly seq: number
  readonly role: ChatRole
  readonly content: string
  readonly toolCalls: unknown
  readonly toolName: string | null
  readonly backend: string | null
  readonly model: string | null
  readonly tokensIn: number
  readonly tokensOut: number
  readonly error: string | null
  readonly createdAt: Date
}

const decodeCalls = Schema.decodeUnknown(Schema.NullOr(Schema.Array(ToolCall)))
const decodeBackend = Schema.decodeUnknown(Schema.NullOr(Backend))

const messageOf = (session: ChatSessionId) => (row: MessageRow) =>
  Effect.gen(function*() {
    const corrupt = (column: string) => (error: ParseResult.ParseError) =>
      new CorruptRecord({ table: "chat_messages", key: `${session}#${row.seq}`, column, reason: oneLineOf(error) })
    const toolCalls = yield* decodeCalls(row.toolCalls).pipe(Effect.mapError(corrupt("tool_calls")))
    const backend = yield* decodeBackend(row.backend).pipe(Effect.mapError(corrupt("backend")))
    return {
      seq: row.seq,
      role: row.role,
      content: row.content,
      toolCalls,
      toolName: row.toolName,
      backend,
      model: row.model,
      tokensIn: row.tokensIn,
      tokensOut: row.tokensOut,
      error: row.error,
      createdAt: row.createdAt
    } satisfies ChatMessage
  })

/** The session's latest `limit` messages (default 200), oldest first; with `before`, of those numbered below it. */
export const history = Effect.fn("Chats.history")(function*(
  session: ChatSessionId,
  options: { readonly limit?: number; readonly before?: number } = {}
) {
  const sql = yield* SqlClient.SqlClient
  const limit = Math.max(1, Math.min(10_000, Math.trunc(options.limit ?? 200)))
  const below = options.before === undefined ? sql`` : sql`and seq < ${options.before}`
  const rows = yield* sql<MessageRow>`
    select * from (
      select seq, role, content, tool_calls, tool_name, backend, model, tokens_in, tokens_out, error, created_at
      from chat_messages where session_id = ${session} ${below} order by seq desc limit ${limit}
    ) latest order by seq`
  return yield* Effect.forEach(rows, messageOf(session))
}, storeError("read a chat's messages"))

// ---------------------------------------------------------------------------------------------
// Model calls

const encodeCall = Schema.encodeSync(LlmCall)
const decodeCall = Schema.decodeUnknown(LlmCall)

/**
 * The parts a session's stored calls have given, as of its call `seq`: what its writer keeps so as
 * not to read them back on every call. Checked against the session's last call under its lock, so
 * another writer's calls (another process) or a write that did not commit only cost a re-read.
 */
export class SessionPrompts {
  seq = 0
  ledger = new PromptLedger()
}

const decodeParts = Schema.decodeUnknown(Schema.Array(PromptPart))

/** The parts whose bodies the session's calls (in `chat_llm_calls`) have given. */
const ledgerOf = (sql: SqlClient.SqlClient, session: ChatSessionId) =>
  Effect.gen(function*() {
    const rows = yield* sql<{ seq: number; parts: unknown }>`
      select seq, body->'promptParts' as parts from chat_llm_calls
      where session_id = ${session} and body ? 'promptParts' order by seq`
    const ledger = new PromptLedger()
    for (const row of rows) {
      const parts = yield* decodeParts(row.parts).pipe(Effect.mapError((error) =>
        new CorruptRecord({ table: "chat_llm_calls", key: `${session}#${row.seq}`, column: "body", reason: oneLineOf(error) })
      ))
      ledger.recordParts(parts)
    }
    return ledger
  })

/**
 * Record a model call an answer made (to `question`, a message number); returns its number in the
 * session. A call given in parts (`promptParts`, every body given) is stored with each part's body
 * only the first time the session's calls give it; `prompts`, when given, is the writer's memory of
 * them (`SessionPrompts`).
 */
export const recordCall = Effect.fn("Chats.recordCall")(function*(
  session: ChatSessionId,
  question: number,
  call: LlmCall,
  prompts?: SessionPrompts
) {
  const sql = yield* SqlClient.SqlClient
  // The call was made and paid for: a database blip must not lose what it spent (Transient.ts).
  const written = yield* Transient.retry(transaction(sql, Effect.gen(function*() {
    yield* sql`select id from chat_sessions where id = ${session} for update`
    const [last] = yield* sql<{ seq: number }>`select coalesce(max(seq), 0) as seq from chat_llm_calls where session_id = ${session}`
    const seq = last!.seq + 1
    // A copy: this attempt may not commit, and the memory must hold only what did.
    const ledger = call.promptParts === undefined
      ? undefined
      : prompts !== undefined && prompts.seq === last!.seq
      ? prompts.ledger.copy()
      : yield* ledgerOf(sql, session)
    const stored = ledger === undefined ? call : ledger.record(call)
    yield* sql`insert into chat_llm_calls (session_id, seq, question, body)
      values (${session}, ${seq}, ${question}, ${JSON.stringify(storableJson(encodeCall(stored)))}::jsonb)`
    return { seq, ledger }
  })))
  if (prompts !== undefined && written.ledger !== undefined) {
    prompts.seq = written.seq
    prompts.ledger = written.ledger
  }
  return written.seq
}, storeError("record a chat's model call"))

/** What a session's model calls spent (tokens in and out together, and cost), as recorded. */
export const spent = Effect.fn("Chats.spent")(function*(session: ChatSessionId) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ tokens: string | number | null; cost: string | number | null }>`
    select sum(coalesce((body->>'tokensIn')::bigint, 0) + coalesce((body->>'tokensOut')::bigint, 0)) as tokens,
           sum(coalesce((body->>'cost')::float8, 0)) as cost
    from chat_llm_calls where session_id = ${session}`
  return { tokens: Number(row?.tokens ?? 0), cost: Number(row?.cost ?? 0) }
}, storeError("read what a chat's model calls spent"))

/**
 * What the model calls of `run`'s chat spent, as recorded (nothing when it has none): what a run
 * resumed in a process charges its live budget, as the chat's questions there then spend it too.
 */
export const spentOnRun = Effect.fn("Chats.spentOnRun")(function*(run: RunId) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ tokens: string | number | null; cost: string | number | null }>`
    select sum(coalesce((c.body->>'tokensIn')::bigint, 0) + coalesce((c.body->>'tokensOut')::bigint, 0)) as tokens,
           sum(coalesce((c.body->>'cost')::float8, 0)) as cost
    from chat_sessions s join chat_llm_calls c on c.session_id = s.id where s.run_id = ${run}`
  return { tokens: Number(row?.tokens ?? 0), cost: Number(row?.cost ?? 0) }
}, storeError("read what a run's chat spent"))

export interface RecordedCall {
  readonly seq: number
  readonly question: number | null
  /** The call, its prompt whole (`prompt`) however it was stored. */
  readonly call: LlmCall
}

/** The model calls of a session, in order, each with its prompt whole (rebuilt from its parts). */
export const calls = Effect.fn("Chats.calls")(function*(session: ChatSessionId) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ seq: number; question: number | null; body: unknown }>`
    select seq, question, body from chat_llm_calls where session_id = ${session} order by seq`
  const reader = new PromptReader(chatPromptOfParts)
  return yield* Effect.forEach(rows, (row) => {
    const corrupt = (reason: string) => new CorruptRecord({ table: "chat_llm_calls", key: `${session}#${row.seq}`, column: "body", reason })
    return decodeCall(row.body).pipe(
      Effect.mapError((error) => corrupt(oneLineOf(error))),
      Effect.flatMap(({ promptParts, ...call }): Effect.Effect<RecordedCall, CorruptRecord> => {
        if (promptParts === undefined) return Effect.succeed({ seq: row.seq, question: row.question, call })
        const prompt = reader.read({ ...call, promptParts })
        return prompt === undefined
          ? Effect.fail(corrupt("its prompt names a part that no call before it in the session gave"))
          : Effect.succeed({ seq: row.seq, question: row.question, call: { ...call, prompt } })
      })
    )
  })
}, storeError("read a chat's model calls"))
