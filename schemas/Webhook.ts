/**
 * TradingView webhooks (docs/webhooks.md): the alert a strategy's webhook accepts, the typed
 * refusals of the endpoint (each with its HTTP status), what it answers, and the RPC procedures
 * an owner uses to get and rotate the strategy's webhook secret.
 *
 * TradingView posts the alert's message as the body and cannot set headers, so the secret travels
 * in the body (`"secret"`); a client that can may send it as `X-Swarm-Secret` or `?secret=`
 * instead. Numbers may come quoted (`"price": "{{close}}"`), as TradingView templates often write
 * them. Fields this schema does not know are ignored (they still count for the alert's key).
 */
import { ParseResult, Schema } from "effect"
import { Unauthorized } from "./Auth.js"
import { IndicatorName, Label, SignalAction } from "./ExternalSignal.js"
import { Unavailable } from "./Rpc.js"

/** The route: one webhook per strategy, named by the strategy's id. */
export const WEBHOOK_PATH = "/v1/webhooks/tradingview/:strategyId"

export const webhookPath = (strategyId: string): string => `/v1/webhooks/tradingview/${strategyId}`

// ---------------------------------------------------------------------------------------------
// The alert

/** A number as TradingView writes one into a template: `101.25`, `-3`, `1e-4`, `.5`. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/**
 * A number, or a string holding one (TradingView placeholders are often quoted). The message is
 * the schema's own: a refusal never echoes what was sent.
 */
const numeric = (message: string) =>
  Schema.transformOrFail(
    Schema.Union(Schema.Number, Schema.String).annotations({ message: () => message }),
    Schema.Number,
    {
      strict: true,
      decode: (value, _, ast) => {
        if (typeof value === "number") return ParseResult.succeed(value)
        const trimmed = value.trim()
        // Decimal notation only: `Number` also reads "0x10" as 16, "0b1" as 1 and "Infinity".
        return DECIMAL.test(trimmed) ? ParseResult.succeed(Number(trimmed)) : ParseResult.fail(new ParseResult.Type(ast, value, message))
      },
      encode: (n) => ParseResult.succeed(n)
    }
  )

const AlertPrice = numeric("must be a number (or a string holding one)").pipe(
  Schema.finite({ message: () => "must be a finite number" }),
  Schema.positive({ message: () => "must be greater than 0" })
)

const AlertConfidence = numeric("must be a number from 0 to 1 (or a string holding one)").pipe(
  Schema.between(0, 1, { message: () => "must be a number from 0 to 1" })
)

/** A TradingView ticker, exchange prefix allowed (`NASDAQ:AAPL`, `BINANCE:BTCUSDT.P`, `CME_MINI:ES1!`). */
export const Ticker = Schema.String.annotations({ message: () => "must be a string" }).pipe(
  Schema.pattern(/^[A-Za-z0-9^][A-Za-z0-9.\-_:/^=!]{0,63}$/, {
    message: () => "a ticker is 1 to 64 letters, digits or . - _ : / ^ = !, starting with a letter, a digit or ^"
  })
)

const ACTION_MESSAGE = "must be one of buy, sell, long, short, flat, close (any case)"
const isAction = Schema.is(SignalAction)

const Action = Schema.transformOrFail(Schema.String.annotations({ message: () => "must be a string" }), SignalAction, {
  strict: true,
  decode: (value, _, ast) => {
    const lower = value.trim().toLowerCase()
    return isAction(lower) ? ParseResult.succeed(lower) : ParseResult.fail(new ParseResult.Type(ast, value, ACTION_MESSAGE))
  },
  encode: (action) => ParseResult.succeed(action)
})

const Text = (max: number) =>
  Schema.String.annotations({ message: () => "must be a string" }).pipe(
    Schema.pattern(new RegExp(`^[\\x21-\\x7e]{1,${max}}$`), {
      message: () => `1 to ${max} printable ASCII characters, no spaces`
    })
  )

const isIndicatorName = Schema.is(IndicatorName)

/** Names are checked here rather than by the record's key schema, which would drop a bad name silently. */
const Indicators = Schema.Record({
  key: Schema.String,
  value: numeric("an indicator value must be a number (or a string holding one)").pipe(
    Schema.finite({ message: () => "an indicator value must be a finite number" })
  )
}).annotations({ message: () => "must be an object of indicator names to numbers" }).pipe(
  Schema.filter((record) => {
    const names = Object.keys(record)
    if (names.length > 32) return "at most 32 indicators"
    const bad = names.findIndex((name) => !isIndicatorName(name))
    return bad < 0 || `indicator ${bad + 1}: a name is 1 to 64 letters, digits, _ . or -, starting with a letter`
  })
)

export const TradingViewAlert = Schema.Struct({
  ticker: Ticker,
  action: Action,
  price: AlertPrice,
  strategy: Schema.optional(Label),
  timeframe: Schema.optional(Label),
  indicators: Schema.optional(Indicators),
  confidence: Schema.optional(AlertConfidence),
  /**
   * The alert's idempotency key. Without one, the key is a SHA-256 of the body's canonical JSON
   * (secret left out): include `"time": "{{timenow}}"` so two alerts alike in all else differ.
   */
  id: Schema.optional(Text(128)),
  time: Schema.optional(Text(64)),
  secret: Schema.optional(Schema.String.annotations({ message: () => "must be a string" }))
}).annotations({ identifier: "TradingViewAlert", message: () => "the alert must be a JSON object" })
export type TradingViewAlert = typeof TradingViewAlert.Type

// ---------------------------------------------------------------------------------------------
// What the endpoint answers

/** 202 (delivered, applied with the run's next bar) or 200 (a repeat, acknowledged and not applied again). */
export const AlertAccepted = Schema.Struct({
  status: Schema.Literal("delivered", "duplicate"),
  duplicate: Schema.Boolean,
  /** The alert's idempotency key. */
  alert: Schema.String,
  /** The runs it was delivered to (a repeat: the runs the first one reached). */
  runs: Schema.Array(Schema.String),
  /**
   * Optional fields that held no value (a TradingView plot with none is written `NaN`) and were
   * left out of the alert: `indicators.rsi: NaN`, `confidence: null`. Absent when none were.
   */
  ignored: Schema.optional(Schema.Array(Schema.String))
})
export type AlertAccepted = typeof AlertAccepted.Type

/** 400: the body is not a JSON alert, or a field is wrong — which field, and why. */
export class InvalidAlert extends Schema.TaggedError<InvalidAlert>()("InvalidAlert", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return this.field === "" ? this.reason : `${this.field}: ${this.reason}`
  }
}

/** 413: the body is larger than the endpoint takes. */
export class AlertTooLarge extends Schema.TaggedError<AlertTooLarge>()("AlertTooLarge", {
  limitBytes: Schema.Int
}) {
  override get message(): string {
    return `an alert is at most ${this.limitBytes} bytes`
  }
}

/** 409: the strategy has no paper run live in this server to take the alert. */
export class NoPaperRun extends Schema.TaggedError<NoPaperRun>()("NoPaperRun", {
  strategy: Schema.String,
  reason: Schema.String
}) {}

/**
 * 409: the strategy's paper runs live in this server have no `tradingview` analyst (they run a
 * version of the strategy without one): nothing in them would read the alert, so it is not taken.
 */
export class NoTradingViewAnalyst extends Schema.TaggedError<NoTradingViewAnalyst>()("NoTradingViewAnalyst", {
  strategy: Schema.String,
  /** The paper runs of the strategy live here, none of which reads alerts. */
  runs: Schema.Array(Schema.String),
  reason: Schema.String
}) {}

/** 429: too many alerts for the strategy; try again after `retryAfterSeconds` (also the `Retry-After` header). */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  strategy: Schema.String,
  retryAfterSeconds: Schema.Int,
  reason: Schema.String
}) {}

/** A refusal of the endpoint: any of these, or `Unauthorized` (401) or `Unavailable` (503). */
export const WebhookError = Schema.Union(InvalidAlert, AlertTooLarge, Unauthorized, NoPaperRun, NoTradingViewAnalyst, RateLimited, Unavailable)
export type WebhookError = typeof WebhookError.Type

// The owner's procedures (webhooks.secret, webhooks.rotate) are in Rpc.ts with every other group.
export { WebhookRpcs, WebhookSecret } from "./Rpc.js"
