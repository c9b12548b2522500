/**
 * A message whose JSON is made already: `JSON.stringify(message)`, put together from pieces escaped
 * once when their data came (a market brief's bars, each escaped when its bar came, in the twenty
 * briefs that show it). A prompt is the JSON of its messages, made and hashed for every call — a
 * cache hit too — and escaping a brief of a few kilobytes again each round was most of a cached
 * call's cost. Plain data otherwise: `role` and `content`, serialised as a `Message` literal is.
 */
import type { Message, Role } from "../../schemas/Llm.js"

export class PreparedMessage implements Message {
  readonly #json: string

  /** `json` must be `JSON.stringify({ role, content })`. */
  constructor(readonly role: Role, readonly content: string, json: string) {
    this.#json = json
  }

  /** A message's JSON, as `JSON.stringify(message)` makes it. */
  static json(message: Message): string {
    return message instanceof PreparedMessage ? message.#json : JSON.stringify(message)
  }
}

/** `JSON.stringify(text)` without its quotes: the text as it stands inside a JSON string. */
export const escaped = (text: string): string => JSON.stringify(text).slice(1, -1)
