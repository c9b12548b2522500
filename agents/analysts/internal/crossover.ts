/**
 * The moving-average crossover both the SMA and the EMA analysts are: long while the fast average
 * of the close is above the slow one, short (flat when shorting is not allowed) while below, flat
 * when equal — or no opinion at all when equal, with `whenEqual: "abstain"` (a trader who acts only
 * on crosses, as backtrader's crossover strategies do, keeps the position through a tie); confidence
 * min(1, g / 2%) with g the gap relative to the slow average. Each analyst file documents its own
 * parameters and passes its average here.
 */
import { Schema } from "effect"
import type { Bar } from "../../../schemas/Market.js"
import { oneOf } from "../../../schemas/OneOf.js"
import type { Model, Signal } from "../Model.js"
import { period } from "./params.js"
import { give, type Slot, slot } from "./signal.js"

/** The relative gap between the averages that counts as full conviction. */
const FULL_GAP = 0.02

/** The two averages and their gap relative to the slow one. */
type Features = { readonly fast: number; readonly slow: number; readonly gap: number }

interface Average {
  update(x: number): number | undefined
}

export const crossover = <A extends Average>(options: {
  readonly type: string
  readonly label: string
  readonly description: string
  readonly defaults: { readonly fast: number; readonly slow: number }
  readonly average: (period: number) => A
}) => {
  const Config = Schema.Struct({
    fast: period("fast", options.defaults.fast),
    slow: period("slow", options.defaults.slow),
    /** Equal averages: a flat opinion (default), or none (`abstain`: the target stays as it was). */
    whenEqual: Schema.optionalWith(oneOf("flat", "abstain"), { default: () => "flat" as const, exact: true })
  }).pipe(
    Schema.filter((c) => c.fast < c.slow || { path: ["fast"], message: "fast must be less than slow" }),
    Schema.annotations({ identifier: `${options.label}CrossoverConfig`, parseOptions: { onExcessProperty: "error" } })
  )
  type Config = typeof Config.Type
  interface State {
    readonly fast: A
    readonly slow: A
    /** The signal `update` returns, overwritten on every bar. */
    readonly signal: Slot<Features>
  }

  const update = (state: State, bar: Bar, config: Config, allowShort: boolean): Signal<Features> | undefined => {
    // Both averages see every bar, warm or not.
    const fast = state.fast.update(bar.close)
    const slow = state.slow.update(bar.close)
    if (fast === undefined || slow === undefined) return undefined
    const gap = (fast - slow) / slow
    const strength = Math.min(1, Math.abs(gap) / FULL_GAP)
    const { signal } = state
    const features = signal.features
    features.fast = fast
    features.slow = slow
    features.gap = gap
    if (gap > 0) return give(signal, "long", strength)
    if (gap < 0) return give(signal, allowShort ? "short" : "flat", strength)
    if (config.whenEqual === "abstain") return undefined
    return give(signal, "flat", 1 - strength)
  }

  const explain = ({ features: { fast, gap, slow } }: Signal<Features>, config: Config, allowShort: boolean): string => {
    const numbers = `${options.label}(${config.fast}) ${fast.toFixed(2)}`
    const against = `${options.label}(${config.slow}) ${slow.toFixed(2)}`
    const by = `by ${(Math.abs(gap) * 100).toFixed(2)}%`
    if (gap > 0) return `${numbers} above ${against} ${by}`
    if (gap < 0) return `${numbers} below ${against} ${by}${allowShort ? "" : "; shorting not allowed"}`
    return `${numbers} equal to ${against}`
  }

  const model: Model<Config, State, Features> = {
    type: options.type,
    description: options.description,
    config: Config,
    horizon: (config) => config.fast,
    init: (config) => ({
      fast: options.average(config.fast),
      slow: options.average(config.slow),
      signal: slot<Features>({ fast: NaN, slow: NaN, gap: NaN })
    }),
    update,
    explain
  }
  return { Config, model }
}
