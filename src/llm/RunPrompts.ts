/**
 * A run's prompts, each piece kept once (runs whose `RunStarted` says `llm.prompts: "parts"`): a
 * call's prompt is recorded as its parts — each message, then the answer format's JSON — and a
 * part's body only the first time its hash comes in the run's events; after that, the hash alone. The system message and the format of an agent's step are the same in every round, and a
 * debate's bull, bear and judge all read the same brief: kept whole on every call, they were most
 * of an LLM run's bytes. A chat's calls (the system agent's, src/store/Chats.ts) are kept the same
 * way in their session: each call's prompt holds the whole conversation so far, so whole prompts
 * grew with its square.
 *
 * Which call carries a part's body is decided in the log's order (`PromptLedger.record`, as its
 * `LlmCalled` event is written), which is the same on every run and on its replay — not in the
 * order the calls of a slice finished. A reader folds the run's calls in sequence order
 * (`PromptReader.read`) and gets each one's whole prompt back, the same text whose SHA-256 is the
 * call's `promptHash`.
 */
import type { LlmCall, Message, PromptPart } from "../../schemas/Llm.js"
import { sha256Hex } from "../internal/sha256.js"

/**
 * A prompt's parts, every body given: its messages (each with its JSON, `JSON.stringify(message)`),
 * then its format's JSON. A message that is a role and a content, whose JSON is theirs, is kept as
 * them; any other as its JSON text.
 */
export const partsOf = (messages: ReadonlyArray<{ readonly message: Message; readonly json: string }>, formatJson: string): Array<PromptPart> => {
  const parts: Array<PromptPart> = []
  for (const { json, message } of messages) {
    const hash = sha256Hex(json)
    const plain = message.toolCalls === undefined && message.toolName === undefined &&
      json === JSON.stringify({ role: message.role, content: message.content })
    parts.push(plain ? { hash, role: message.role, content: message.content } : { hash, text: json })
  }
  parts.push({ hash: sha256Hex(formatJson), text: formatJson })
  return parts
}

/** A part's JSON when it carries its body; undefined for a part recorded by its hash alone. */
const bodyOf = (part: PromptPart): string | undefined =>
  part.text ?? (part.content === undefined || part.role === undefined ? undefined : JSON.stringify({ role: part.role, content: part.content }))

/**
 * The prompt that `texts` (the messages' JSON, then the format's) make for `model`: the text
 * LlmSession hashes, `{"model":…,"messages":[…],"format":…}`.
 */
export const promptOfParts = (model: string, texts: ReadonlyArray<string>): string =>
  `{"model":${JSON.stringify(model)},"messages":[${texts.slice(0, -1).join(",")}],"format":${texts[texts.length - 1]}}`

/**
 * A chat call's last part: the prompt's members after its messages, as an object's JSON — `{}`, or
 * the names of the tools it offered (their specs are constant).
 */
export const chatRestJson = (tools: ReadonlyArray<string> | undefined): string => JSON.stringify(tools === undefined ? {} : { tools })

/**
 * The prompt that `texts` (the messages' JSON, then the rest's, `chatRestJson`) make for a chat
 * call to `model`: `JSON.stringify({ model, messages, ...rest })`, the text the system agent hashes.
 */
export const chatPromptOfParts = (model: string, texts: ReadonlyArray<string>): string => {
  const rest = texts[texts.length - 1]!
  return `{"model":${JSON.stringify(model)},"messages":[${texts.slice(0, -1).join(",")}]${rest === "{}" ? "" : `,${rest.slice(1, -1)}`}}`
}

/**
 * The writer's side: the parts a run (or a chat) has recorded so far (their hashes only: its
 * memory does not grow with the prompts' text).
 */
export class PromptLedger {
  private readonly seen: Set<string>

  constructor(seen: Iterable<string> = []) {
    this.seen = new Set(seen)
  }

  /** A ledger that goes on from this one's parts, this one left as it is (a write that may not commit). */
  copy(): PromptLedger {
    return new PromptLedger(this.seen)
  }

  /**
   * The call as the run records it: each part's body the first time its hash comes, the hash alone
   * after. A call recorded so already (a replay's, from its recording) comes out as it was.
   */
  record(call: LlmCall): LlmCall {
    const parts = call.promptParts
    if (parts === undefined) return call
    const kept = this.recordParts(parts)
    return kept === parts ? call : { ...call, promptParts: kept }
  }

  /** `record`'s parts: the same array when every part is kept as it came. */
  recordParts(parts: ReadonlyArray<PromptPart>): ReadonlyArray<PromptPart> {
    let kept: Array<PromptPart> | undefined
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!
      const body = part.text !== undefined || part.content !== undefined
      if (this.seen.has(part.hash)) {
        if (body) (kept ??= parts.slice(0, i))[i] = { hash: part.hash }
        else kept?.push(part)
        continue
      }
      if (body) this.seen.add(part.hash)
      kept?.push(part)
    }
    return kept ?? parts
  }
}

/**
 * The reader's side: fold a run's calls in sequence order; `read` gives a call's whole prompt —
 * kept whole (`prompt`, runs recorded before parts) or rebuilt from its parts — or undefined when
 * the call kept none (a cache hit) or names a part no call before it gave.
 */
export class PromptReader {
  private readonly texts = new Map<string, string>()

  /** `shape` makes the prompt of a call's model and its parts' texts: a run's (`promptOfParts`) or a chat's (`chatPromptOfParts`). */
  constructor(private readonly shape: (model: string, texts: ReadonlyArray<string>) => string = promptOfParts) {}

  read(call: LlmCall): string | undefined {
    if (call.prompt !== undefined) return call.prompt
    const parts = call.promptParts
    if (parts === undefined) return undefined
    const texts: Array<string> = []
    for (const part of parts) {
      const body = bodyOf(part)
      if (body !== undefined) this.texts.set(part.hash, body)
      const text = body ?? this.texts.get(part.hash)
      if (text === undefined) return undefined
      texts.push(text)
    }
    return this.shape(call.model, texts)
  }
}
