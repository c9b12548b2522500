/**
 * TradingView (`tradingview`): relays the latest TradingView alert about the symbol
 * (docs/webhooks.md). The alerts reach the run as outside signals, delivered with a bar and recorded
 * with it (`SignalReceived`), so this analyst is as deterministic as the others: a replay delivers
 * the same alerts at the same bars. It reads no bar data; a bar only ages the alert.
 *
 * Direction: `buy` and `long` say long; `sell` and `short` say short (flat when shorting is not
 * allowed — a sell then closes the long); `flat` and `close` say flat.
 *
 * Parameters (`params`): `validity` (integer 1..10000, default 20): for how many bars an alert stands —
 * the bar it is delivered with is bar 1; `confidence` (0..1, default 0.7): the confidence of an alert
 * that does not carry its own.
 *
 * Confidence: the alert's `confidence` when it has one, else the `confidence` parameter.
 *
 * Horizon: `validity` bars.
 *
 * Warm-up: no opinion before the first alert about the symbol, nor once the latest one is
 * `validity` bars old.
 */
import { Schema } from "effect"
import { type ExternalSignal, SignalAction } from "../../schemas/ExternalSignal.js"
import type { Bar } from "../../schemas/Market.js"
import { Confidence } from "../../schemas/Opinion.js"
import { give, type Slot, slot } from "./internal/signal.js"
import { period } from "./internal/params.js"
import type { Model, Signal } from "./Model.js"

export const Config = Schema.Struct({
  validity: period("validity", 20),
  confidence: Schema.optionalWith(Confidence, { default: () => 0.7, exact: true })
}).annotations({ identifier: "TradingViewConfig", parseOptions: { onExcessProperty: "error" } })
export type Config = typeof Config.Type

/**
 * The alert's price, how many bars ago it came (0: with this bar), and its action as an index into
 * `SignalAction.literals` (features are numbers; `explain` words it back).
 */
type Features = { readonly price: number; readonly age: number; readonly action: number }

export interface State {
  /** The latest alert about the symbol. */
  alert: ExternalSignal | undefined
  /** Bars folded since it came, the bar it came with included. */
  bars: number
  readonly signal: Slot<Features>
}

const observe = (state: State, alert: ExternalSignal): void => {
  state.alert = alert
  state.bars = 0
}

const update = (state: State, _bar: Bar, config: Config, allowShort: boolean): Signal<Features> | undefined => {
  const alert = state.alert
  if (alert === undefined) return undefined
  if (++state.bars > config.validity) return undefined
  const { signal } = state
  const features = signal.features
  features.price = alert.price
  features.age = state.bars - 1
  features.action = SignalAction.literals.indexOf(alert.action)
  const confidence = alert.confidence ?? config.confidence
  switch (alert.action) {
    case "buy":
    case "long":
      return give(signal, "long", confidence)
    case "sell":
    case "short":
      return give(signal, allowShort ? "short" : "flat", confidence)
    default:
      return give(signal, "flat", confidence)
  }
}

const explain = ({ features }: Signal<Features>, config: Config, allowShort: boolean): string => {
  const action = SignalAction.literals[features.action] ?? "?"
  const when = features.age === 0 ? "with this bar" : `${features.age} bar${features.age === 1 ? "" : "s"} ago`
  const refused = !allowShort && (action === "sell" || action === "short") ? "; shorting not allowed" : ""
  return `TradingView alert: ${action} at ${features.price.toFixed(2)}, ${when} (stands for ${config.validity})${refused}`
}

export const model: Model<Config, State, Features> = {
  type: "tradingview",
  description: "The latest TradingView alert about the symbol (webhook signals), for as many bars as it stands.",
  config: Config,
  horizon: (config) => config.validity,
  init: () => ({ alert: undefined, bars: 0, signal: slot<Features>({ price: NaN, age: NaN, action: NaN }) }),
  update,
  observe,
  explain
}
