/**
 * The compact market brief an LLM agent reasons over: one symbol's recent bars, indicator values,
 * the swarm's current position and its latest decisions — as of one bar, and nothing after it. A
 * `BriefTracker` folds a symbol's bars one at a time (like a model's state) and `brief()` gives a
 * plain, immutable snapshot; numbers are rounded so a prompt is short and the same every time.
 *
 * No look-ahead by construction: the tracker has only seen the bars folded so far, and the context
 * comes with the round (the coordinator's state before this bar's decision). Tested.
 */
import type { RoundContext } from "../../schemas/AnalystProtocol.js"
import type { Bar } from "../../schemas/Market.js"
import { escaped } from "../../src/llm/PreparedMessage.js"
import { Bollinger, Ema, Macd, Rsi, Sma } from "../../src/trading/Indicators.js"

export interface BriefBar {
  readonly t: string
  readonly o: number
  readonly h: number
  readonly l: number
  readonly c: number
  readonly v: number
}

export interface MarketBrief {
  readonly symbol: string
  /** The round's bar time, ISO 8601 (UTC). */
  readonly asOf: string
  readonly close: number
  /** The last bars, oldest first. */
  readonly bars: ReadonlyArray<BriefBar>
  /** Indicators of the close (absent while warming up). Changes are percent. */
  readonly indicators: Readonly<Record<string, number>>
  readonly position: RoundContext["target"]
  readonly decisions: ReadonlyArray<{ readonly t: string; readonly action: string; readonly confidence: number }>
}

/** Four significant decimals at most: enough for prices and indicators, short in a prompt. */
const round = (x: number): number => Math.round(x * 10_000) / 10_000
const pct = (now: number, then: number | undefined): number | undefined => then === undefined || then === 0 ? undefined : round((now / then - 1) * 100)
/**
 * Times as shown, kept: every symbol of a slice shows the same bar time, and a brief's decisions
 * the times of recent bars. Bounded: emptied when full.
 */
const isoTexts = new Map<number, string>()
const iso = (ts: number): string => {
  let text = isoTexts.get(ts)
  if (text === undefined) {
    if (isoTexts.size >= 4_096) isoTexts.clear()
    text = new Date(ts).toISOString()
    isoTexts.set(ts, text)
  }
  return text
}

/** Bars an indicator set needs before every value is there: MACD(12, 26, 9). */
export const INDICATOR_WARMUP = 34

/**
 * A brief a tracker made, with its JSON made with it from the pieces each bar's JSON was cut into
 * when it came — and that JSON as it stands inside a JSON string (a prompt's message), from the
 * bars' pieces escaped then too. Private fields: plain data to everything else (`JSON.stringify`
 * and equality see the brief's fields only).
 */
class TrackedBrief implements MarketBrief {
  readonly #json: string
  readonly #escaped: string

  constructor(
    readonly symbol: string,
    readonly asOf: string,
    readonly close: number,
    readonly bars: ReadonlyArray<BriefBar>,
    readonly indicators: Readonly<Record<string, number>>,
    readonly position: RoundContext["target"],
    readonly decisions: ReadonlyArray<{ readonly t: string; readonly action: string; readonly confidence: number }>,
    json: string,
    escaped: string
  ) {
    this.#json = json
    this.#escaped = escaped
  }

  static json(brief: MarketBrief): string | undefined {
    return brief instanceof TrackedBrief ? brief.#json : undefined
  }

  static escaped(brief: MarketBrief): string | undefined {
    return brief instanceof TrackedBrief ? brief.#escaped : undefined
  }
}

/** The brief as compact JSON (`JSON.stringify(brief)`, without serialising its bars again). */
export const briefJson = (brief: MarketBrief): string => TrackedBrief.json(brief) ?? JSON.stringify(brief)

/** `briefJson` as it stands inside a JSON string (`JSON.stringify(briefJson(brief)).slice(1, -1)`), its bars escaped once. */
export const briefJsonEscaped = (brief: MarketBrief): string => TrackedBrief.escaped(brief) ?? escaped(briefJson(brief))

type BriefDecision = MarketBrief["decisions"][number]

interface ShownDecisions {
  /** The context's decisions they were made from (copied: compared by value). */
  readonly from: RoundContext["decisions"]
  /** Shared by the briefs that show them: plain data nobody changes, as a brief is. */
  readonly shown: ReadonlyArray<BriefDecision>
  readonly json: string
  readonly escaped: string
}

const NO_DECISIONS: ShownDecisions = { from: [], shown: [], json: "[]", escaped: "[]" }

export class BriefTracker {
  /** The last `size` bars as the brief shows them, and each one's JSON, made once when the bar came. */
  private readonly ring: Array<BriefBar>
  private readonly ringJson: Array<string>
  private readonly ringEscaped: Array<string>
  private next = 0
  count = 0
  private symbol = ""
  /** The symbol's JSON, and that escaped: made when the symbol is set, not for every brief. */
  private symbolJson = '""'
  private symbolEscaped = '\\"\\"'
  /**
   * The last rounds' recent decisions as the brief shows them, their JSON and its escape: they
   * change only when a decision does, so a brief reuses them while the context's decisions are
   * the same values (compared by value: the context is plain data its sender may rebuild).
   */
  private decisions: ShownDecisions = NO_DECISIONS
  private readonly sma10 = new Sma(10)
  private readonly sma30 = new Sma(30)
  private readonly ema12 = new Ema(12)
  private readonly ema26 = new Ema(26)
  private readonly rsi14 = new Rsi(14)
  private readonly macd = new Macd(12, 26, 9)
  private readonly bands = new Bollinger(20, 2)
  private readonly closes: Array<number> = []
  private values: Record<string, number> = {}

  constructor(readonly size: number) {
    this.ring = new Array(size)
    this.ringJson = new Array(size)
    this.ringEscaped = new Array(size)
  }

  /** Fold the symbol's next bar. */
  update(bar: Bar): void {
    const shown: BriefBar = { t: iso(bar.ts), o: round(bar.open), h: round(bar.high), l: round(bar.low), c: round(bar.close), v: round(bar.volume) }
    this.ring[this.next] = shown
    // Flat strings, as JSON.stringify makes them: written out as templates they were ropes of a
    // dozen pieces each, and every brief's JSON a rope of hundreds, slower to hash than to build.
    const json = JSON.stringify(shown)
    this.ringJson[this.next] = json
    this.ringEscaped[this.next] = escaped(json)
    this.next = (this.next + 1) % this.size
    this.count++
    if (bar.symbol !== this.symbol) {
      this.symbol = bar.symbol
      this.symbolJson = JSON.stringify(bar.symbol)
      this.symbolEscaped = escaped(this.symbolJson)
    }
    const close = bar.close
    this.closes.push(close)
    if (this.closes.length > 21) this.closes.shift()
    const values: Record<string, number> = {}
    const put = (name: string, value: number | undefined) => {
      if (value !== undefined && Number.isFinite(value)) values[name] = round(value)
    }
    put("sma10", this.sma10.update(close))
    put("sma30", this.sma30.update(close))
    put("ema12", this.ema12.update(close))
    put("ema26", this.ema26.update(close))
    put("rsi14", this.rsi14.update(close))
    const macd = this.macd.update(close)
    if (macd !== undefined) {
      put("macd", macd.macd)
      put("macdSignal", macd.signal)
      put("macdHistogram", macd.histogram)
    }
    const bands = this.bands.update(close)
    if (bands !== undefined) {
      put("bollingerUpper", bands.upper)
      put("bollingerLower", bands.lower)
    }
    const n = this.closes.length
    put("change1Pct", pct(close, n >= 2 ? this.closes[n - 2] : undefined))
    put("change5Pct", pct(close, n >= 6 ? this.closes[n - 6] : undefined))
    put("change20Pct", pct(close, n >= 21 ? this.closes[n - 21] : undefined))
    this.values = values
  }

  /** The brief as of the last bar folded. */
  brief(context: RoundContext | undefined): MarketBrief {
    const n = Math.min(this.count, this.size)
    const bars: Array<BriefBar> = new Array(n)
    let barsJson = ""
    let barsEscaped = ""
    for (let i = 0; i < n; i++) {
      const slot = (this.next - n + i + this.size) % this.size
      bars[i] = this.ring[slot]!
      barsJson += i === 0 ? this.ringJson[slot]! : "," + this.ringJson[slot]!
      barsEscaped += i === 0 ? this.ringEscaped[slot]! : "," + this.ringEscaped[slot]!
    }
    const last = bars[n - 1]!
    const position = context?.target ?? "flat"
    const decisions = this.shownDecisions(context?.decisions ?? [])
    const indicators = JSON.stringify(this.values)
    // Exactly `JSON.stringify(brief)`: the same fields in the same order, the bars' JSON reused; and
    // the same escaped, piece by piece (escaping is character by character: the pieces' escapes
    // joined are the whole's).
    const json = `{"symbol":${this.symbolJson},"asOf":"${last.t}","close":${last.c},"bars":[${barsJson}],"indicators":${indicators},"position":"${position}","decisions":${decisions.json}}`
    const escapedJson = `{\\"symbol\\":${this.symbolEscaped},\\"asOf\\":\\"${last.t}\\",\\"close\\":${last.c},\\"bars\\":[${barsEscaped}],\\"indicators\\":${
      escaped(indicators)
    },\\"position\\":\\"${position}\\",\\"decisions\\":${decisions.escaped}}`
    return new TrackedBrief(this.symbol, last.t, last.c, bars, this.values, position, decisions.shown, json, escapedJson)
  }

  /** The context's decisions as shown: the last ones again when they hold the same values. */
  private shownDecisions(from: RoundContext["decisions"]): ShownDecisions {
    const known = this.decisions
    if (from.length === known.from.length) {
      let same = true
      for (let i = 0; i < from.length && same; i++) {
        const d = from[i]!
        const k = known.from[i]!
        same = d.ts === k.ts && d.action === k.action && Object.is(d.confidence, k.confidence)
      }
      if (same) return known
    }
    const shown = from.map((d) => ({ t: iso(d.ts), action: d.action, confidence: round(d.confidence) }))
    const json = JSON.stringify(shown)
    this.decisions = {
      from: from.map((d) => ({ ts: d.ts, action: d.action, confidence: d.confidence })),
      shown,
      json,
      escaped: escaped(json)
    }
    return this.decisions
  }
}

/** The data window a brief covers, for the answer cache's key. */
export const windowOf = (brief: MarketBrief): string =>
  `${brief.symbol} ${brief.bars[0]?.t ?? brief.asOf}..${brief.asOf} ${brief.position} ${brief.decisions.length}`

/**
 * A score of the brief from -1 (bearish) to 1 (bullish): the offline analyst's whole view, from the
 * trend (SMA(10) against SMA(30), 1 % apart is strong), the momentum (the 5-bar change, 3 % is
 * strong) and an overbought or oversold RSI. Deterministic, documented, plain.
 */
export const offlineScore = (brief: MarketBrief): { readonly score: number; readonly reasons: ReadonlyArray<string> } => {
  const { indicators } = brief
  const reasons: Array<string> = []
  let score = 0
  const fast = indicators["sma10"]
  const slow = indicators["sma30"]
  if (fast !== undefined && slow !== undefined && slow !== 0) {
    const gap = (fast / slow - 1) * 100
    score += 0.5 * Math.tanh(gap)
    reasons.push(`SMA(10) ${fast} is ${gap >= 0 ? "above" : "below"} SMA(30) ${slow} by ${Math.abs(round(gap))}%`)
  }
  const change5 = indicators["change5Pct"]
  if (change5 !== undefined) {
    score += 0.3 * Math.tanh(change5 / 3)
    reasons.push(`the close moved ${change5 >= 0 ? "+" : ""}${change5}% over 5 bars`)
  }
  const rsi = indicators["rsi14"]
  if (rsi !== undefined) {
    if (rsi < 30) {
      score += 0.2
      reasons.push(`RSI(14) ${rsi} is oversold`)
    } else if (rsi > 70) {
      score -= 0.2
      reasons.push(`RSI(14) ${rsi} is overbought`)
    } else {
      reasons.push(`RSI(14) ${rsi} is neutral`)
    }
  }
  return { score: Math.max(-1, Math.min(1, round(score))), reasons }
}
