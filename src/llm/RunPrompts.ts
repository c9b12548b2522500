/**
 * A run's prompts, each piece kept once (runs whose `RunStarted` says `llm.prompts: "parts"`): a
 * call's prompt is recorded as its parts — each message's JSON, then the answer format's JSON —
 * and a part's text only the first time its hash comes in the run's events; after that, the hash
 * alone. The system message and the format of an agent's step are the same in every round, and a
 * debate's bull, bear and judge all read the same brief: kept whole on every call, they were most
 * of an LLM run's bytes.
 *
 * Which call carries a part's text is decided in the log's order (`PromptLedger.record`, as its
 * `LlmCalled` event is written), which is the same on every run and on its replay — not in the
 * order the calls of a slice finished. A reader folds the run's calls in sequence order
 * (`PromptReader.read`) and gets each one's whole prompt back, the same text whose SHA-256 is the
 * call's `promptHash`.
 */
import type { LlmCall, PromptPart } from "../../schemas/Llm.js"
import { sha256Hex } from "../internal/sha256.js"

/** A prompt's parts, every text given: its messages' JSON (`JSON.stringify` of each), then its format's. */
export const partsOf = (messagesJson: ReadonlyArray<string>, formatJson: string): Array<PromptPart> => {
  const parts: Array<PromptPart> = []
  for (const text of messagesJson) parts.push({ hash: sha256Hex(text), text })
  parts.push({ hash: sha256Hex(formatJson), text: formatJson })
  return parts
}

/**
 * The prompt that `texts` (the messages' JSON, then the format's) make for `model`: the text
 * LlmSession hashes, `{"model":…,"messages":[…],"format":…}`.
 */
export const promptOfParts = (model: string, texts: ReadonlyArray<string>): string =>
  `{"model":${JSON.stringify(model)},"messages":[${texts.slice(0, -1).join(",")}],"format":${texts[texts.length - 1]}}`

/**
 * The writer's side: the parts a run has recorded so far (their hashes only: its memory does not
 * grow with the prompts' text).
 */
export class PromptLedger {
  private readonly seen = new Set<string>()

  /**
   * The call as the run records it: each part's text the first time its hash comes, the hash alone
   * after. A call recorded so already (a replay's, from its recording) comes out as it was.
   */
  record(call: LlmCall): LlmCall {
    const parts = call.promptParts
    if (parts === undefined) return call
    let kept: Array<PromptPart> | undefined
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!
      if (this.seen.has(part.hash)) {
        if (part.text !== undefined) (kept ??= parts.slice(0, i))[i] = { hash: part.hash }
        else kept?.push(part)
        continue
      }
      if (part.text !== undefined) this.seen.add(part.hash)
      kept?.push(part)
    }
    return kept === undefined ? call : { ...call, promptParts: kept }
  }
}

/**
 * The reader's side: fold a run's calls in sequence order; `read` gives a call's whole prompt —
 * kept whole (`prompt`, runs recorded before parts) or rebuilt from its parts — or undefined when
 * the call kept none (a cache hit) or names a part no call before it gave.
 */
export class PromptReader {
  private readonly texts = new Map<string, string>()

  read(call: LlmCall): string | undefined {
    if (call.prompt !== undefined) return call.prompt
    const parts = call.promptParts
    if (parts === undefined) return undefined
    const texts: Array<string> = []
    for (const part of parts) {
      if (part.text !== undefined) this.texts.set(part.hash, part.text)
      const text = part.text ?? this.texts.get(part.hash)
      if (text === undefined) return undefined
      texts.push(text)
    }
    return promptOfParts(call.model, texts)
  }
}
