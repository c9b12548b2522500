/**
 * What the LLM analyst types share: their config fields, the answer schemas they ask models for,
 * and how a brief is put in a prompt.
 */
import { Schema } from "effect"
import { ModelName } from "../../../schemas/Llm.js"
import { Confidence, Direction } from "../../../schemas/Opinion.js"
import type { Message } from "../../../schemas/Llm.js"
import { escaped, PreparedMessage } from "../../../src/llm/PreparedMessage.js"
import { briefJson, briefJsonEscaped, type MarketBrief } from "../MarketBrief.js"

export const configFields = {
  /** The Ollama model (default: the strategy's `llm.model`). */
  model: Schema.optional(ModelName),
  /** Bars in the brief; also the warm-up (at least the 34 bars its indicators need). */
  bars: Schema.optionalWith(Schema.Int.pipe(Schema.between(5, 200)), { default: () => 20, exact: true }),
  /** How many bars ahead its opinions are meant for. */
  horizon: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1_000)), { default: () => 5, exact: true })
}

/**
 * A model's words: bounded, and text a database can hold (no NUL, no lone surrogate) — an answer
 * that is not is refused like any other that does not decode, rather than breaking the recording.
 */
const Text = (max: number) =>
  Schema.String.pipe(
    Schema.minLength(1),
    Schema.maxLength(max),
    Schema.filter((text) => !UNSTORABLE.test(text) || "text with a NUL character or a lone surrogate")
  )

const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * A judgement of a brief: the opinion a model gives. (No identifier annotation on answer schemas:
 * it would turn their JSON Schema into a `$ref`, which not every model server follows.)
 */
export const JudgementAnswer = Schema.Struct({
  direction: Direction,
  confidence: Confidence,
  rationale: Text(2_000)
})
export type JudgementAnswer = typeof JudgementAnswer.Type

/** A researcher's case: the argument and how strongly it holds. */
export const ArgumentAnswer = Schema.Struct({
  argument: Text(2_000),
  conviction: Confidence
})
export type ArgumentAnswer = typeof ArgumentAnswer.Type

const HEADING_REST = " (bars oldest first: t, o, h, l, c, v; changes in percent):\n"
const HEADING_REST_ESCAPED = escaped(HEADING_REST)

const briefHeading = (brief: MarketBrief): string => `Market brief for ${brief.symbol} as of ${brief.asOf}${HEADING_REST}`

/** The brief as the user message shows it: compact JSON, nothing else. */
export const briefMessage = (brief: MarketBrief): string => `${briefHeading(brief)}${briefJson(brief)}`

/**
 * The heading's start for a symbol, escaped: kept, as every round of the symbol shows it. Bounded:
 * emptied when full.
 */
const headingStarts = new Map<string, string>()
const escapedHeadingStart = (symbol: string): string => {
  let start = headingStarts.get(symbol)
  if (start === undefined) {
    if (headingStarts.size >= 4_096) headingStarts.clear()
    start = escaped(`Market brief for ${symbol} as of `)
    headingStarts.set(symbol, start)
  }
  return start
}

/**
 * The user message that shows the brief (`briefMessage`), its JSON made from the brief's escaped
 * pieces — the heading's too: its symbol's part kept, its time an ISO string, nothing to escape.
 */
export const briefUserMessage = (brief: MarketBrief): Message =>
  new PreparedMessage(
    "user",
    `${briefHeading(brief)}${briefJson(brief)}`,
    `{"role":"user","content":"${escapedHeadingStart(brief.symbol)}${brief.asOf}${HEADING_REST_ESCAPED}${briefJsonEscaped(brief)}"}`
  )

/**
 * System messages made once per owner (an analyst's config) and key (the symbol, and whatever else
 * their words depend on): an analyst's instructions are the same on every bar of a symbol, and
 * writing them and their escaped JSON again was a good part of a cached round's cost. The content
 * must be a function of the owner and the key alone.
 */
export const systemMessages = <Owner extends object>() => {
  const made = new WeakMap<Owner, Map<string, PreparedMessage>>()
  return (owner: Owner, key: string, content: () => string): PreparedMessage => {
    let byKey = made.get(owner)
    if (byKey === undefined) made.set(owner, (byKey = new Map()))
    let message = byKey.get(key)
    if (message === undefined) {
      const text = content()
      message = new PreparedMessage("system", text, JSON.stringify({ role: "system", content: text }))
      byKey.set(key, message)
    }
    return message
  }
}

export const directionRule = (allowShort: boolean): string =>
  allowShort
    ? `"direction" is "long", "short" or "flat".`
    : `"direction" is "long" or "flat" (this strategy does not sell short).`

/** The offline analyst's words open with who it is: never mistaken for a model's. */
export const OFFLINE = "Offline analyst (no language model answered; a deterministic reading of the brief)"
