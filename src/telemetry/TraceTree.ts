/**
 * A trace as text: its span tree, each span with when it started (after the root) and how long it
 * took, wall-clock — what `swarm trace` prints. What a span is about (the agent that handled a
 * message, the round, the verdict, the tokens of a model call) follows its name; the verdict's
 * checks that did not pass, and the other events but opinions, are listed under their span
 * (`events: "all"` lists every event); an event's lines after its first (an exception's stack
 * trace) are indented under it. Rounds and times are printed as the caller says (`swarm trace`: as
 * the command line prints them, below), else as the spans hold them.
 *
 *   Coordinator.round  run_…  2024-01-02  ACME@2024-01-02                           +0.00 ms   2.41 ms
 *   ├─ Actor.receive MarketOpen  desk                                              +0.04 ms   0.11 ms
 *   │  └─ Actor.receive Book  ledger                                               +0.09 ms   0.03 ms
 *   ├─ Actor.receive RequestOpinions  sma_crossover-1  1 opinion                   +0.05 ms   0.20 ms
 */
import type { SpanEvent, SpanRecord, TracedRound, TraceRecord } from "../../schemas/Trace.js"

export interface RenderOptions {
  /** `checks` (default): the verdicts' failed checks and events other than opinions; `all`: every event. */
  readonly events?: "checks" | "all"
  /**
   * How a round id (`<symbol>@<ts>`: a root's rounds, a span's or an event's `swarm.round`) is
   * printed; default as it is. `swarm trace` prints it as the rest of the command line does.
   */
  readonly round?: (round: string) => string
  /** How a time (epoch ms: a root's `swarm.time`, a listed round's) is printed; default ISO-8601. */
  readonly time?: (ms: number) => string
}

const iso = (ms: number) => new Date(ms).toISOString()
const asIs = (round: string) => round

/** The printing of `options`, defaults filled in. */
const namesOf = (options: RenderOptions) => ({ round: options.round ?? asIs, time: options.time ?? iso })
type Names = ReturnType<typeof namesOf>

/** The attribute that names a span's or an event's round. */
const ROUND = "swarm.round"

const ms = (micros: number) => `${(micros / 1000).toFixed(2)} ms`

const str = (v: unknown) => (Array.isArray(v) ? v.join(", ") : String(v))

/** What a span is about, in a few words, from its attributes. */
const labelOf = (span: SpanRecord, names: Names): string => {
  const a = span.attributes
  const parts: Array<string> = []
  if (span.name === "Coordinator.round") {
    if (a["swarm.run"] !== undefined) parts.push(str(a["swarm.run"]))
    if (a["swarm.time"] !== undefined) {
      const at = Date.parse(str(a["swarm.time"]))
      parts.push(Number.isNaN(at) ? str(a["swarm.time"]) : names.time(at))
    }
    const rounds = a["swarm.rounds"]
    if (Array.isArray(rounds)) parts.push(rounds.length <= 3 ? rounds.map((r) => names.round(String(r))).join(" ") : `${rounds.length} rounds`)
    if (a["swarm.decisions"] !== undefined) parts.push(`${a["swarm.decisions"]} decision${a["swarm.decisions"] === 1 ? "" : "s"}`)
    if (typeof a["swarm.orders.placed"] === "number" && a["swarm.orders.placed"] > 0) parts.push(`${a["swarm.orders.placed"]} placed`)
    return parts.join("  ")
  }
  if (a["actor.name"] !== undefined) parts.push(str(a["actor.name"]))
  if (a["swarm.opinions"] !== undefined) parts.push(`${a["swarm.opinions"]} opinion${a["swarm.opinions"] === 1 ? "" : "s"}`)
  if (a[ROUND] !== undefined) parts.push(names.round(str(a[ROUND])))
  if (a["consensus.action"] !== undefined) {
    parts.push(`${a["consensus.action"]}${a["consensus.changes_target"] === true ? " (new target)" : ""}`)
    if (typeof a["consensus.confidence"] === "number") parts.push(`confidence ${a["consensus.confidence"].toFixed(2)}`)
  }
  if (a["risk.outcome"] !== undefined) parts.push(`${a["risk.outcome"]} ${a["risk.side"] ?? ""} ${a["risk.quantity"] ?? ""}`.trim())
  if (a["approval.outcome"] !== undefined) parts.push(`${a["approval.outcome"]} by ${a["approval.by"] ?? "?"}`)
  if (a["fill.price"] !== undefined) parts.push(`${a["order.side"] ?? ""} ${a["fill.quantity"] ?? ""} @ ${a["fill.price"]}`.trim())
  if (a["gen_ai.request.model"] !== undefined) {
    parts.push(`${a["gen_ai.system"] ?? ""}:${a["gen_ai.request.model"]}`)
    // Which call of the agent's it is: `bull-1`, `bear-1`, `judge` of a debate, the single analyst's `analyst`.
    if (a["swarm.llm.step"] !== undefined) parts.push(str(a["swarm.llm.step"]))
    if (a["gen_ai.usage.input_tokens"] !== undefined) parts.push(`${a["gen_ai.usage.input_tokens"]} in / ${a["gen_ai.usage.output_tokens"] ?? 0} out tokens`)
    if (a["swarm.llm.outcome"] !== undefined && a["swarm.llm.outcome"] !== "ok") parts.push(str(a["swarm.llm.outcome"]))
  }
  if (a["http.request.method"] !== undefined) parts.push(`${a["http.request.method"]} ${a["url.path"] ?? ""} ${a["http.response.status_code"] ?? ""}`.trim())
  if (span.status === "error") parts.push(`ERROR${span.error === undefined ? "" : `: ${span.error.split("\n")[0]}`}`)
  return parts.join("  ")
}

const shownEvent = (event: SpanEvent, mode: "checks" | "all"): boolean =>
  mode === "all" || (event.name !== "opinion" && event.attributes.result !== "pass" && event.attributes.result !== "skipped")

const eventLine = (event: SpanEvent, names: Names): string => {
  const a = event.attributes
  if (a.result !== undefined) {
    const measure = a.actual !== undefined || a.limit !== undefined ? ` (${a.actual ?? "?"} vs limit ${a.limit ?? "?"}${a.unit === undefined ? "" : ` ${a.unit}`})` : ""
    return `${event.name}: ${a.result}${measure}${a.reason === undefined || a.reason === "" ? "" : ` — ${a.reason}`}`
  }
  if (event.name === "opinion") {
    return `opinion ${a[ROUND] === undefined ? "" : names.round(str(a[ROUND]))}: ${a["opinion.direction"] ?? "?"} ${typeof a["opinion.confidence"] === "number" ? a["opinion.confidence"].toFixed(2) : ""}`.trimEnd()
  }
  // A value of several lines (an exception's stack trace) goes last, so that the one-line values
  // stay on the event's line and its lines run on below it.
  const entries = Object.entries(a).map(([k, v]) => `${k}=${k === ROUND ? names.round(str(v)) : str(v).trimEnd()}`)
  const rest = [...entries.filter((e) => !e.includes("\n")), ...entries.filter((e) => e.includes("\n"))].join(" ")
  return rest === "" ? event.name : `${event.name}: ${rest}`
}

/** How much deeper than its event's `· ` the lines after an event's first one go. */
const CONTINUED = "    "

/** The span tree of `trace` as lines (each ending with a newline). */
export const render = (trace: TraceRecord, options: RenderOptions = {}): string => {
  const mode = options.events ?? "checks"
  const names = namesOf(options)
  const ids = new Set(trace.spans.map((s) => s.spanId))
  const children = new Map<string | undefined, Array<SpanRecord>>()
  for (const span of trace.spans) {
    // A span whose parent is not held (evicted, or from another process) is shown as a root.
    const parent = span.parentSpanId !== undefined && ids.has(span.parentSpanId) ? span.parentSpanId : undefined
    let list = children.get(parent)
    if (list === undefined) children.set(parent, (list = []))
    list.push(span)
  }
  for (const list of children.values()) list.sort((a, b) => a.start - b.start)
  const roots = children.get(undefined) ?? []
  const origin = roots.length === 0 ? 0 : Math.min(...roots.map((r) => r.start))
  const rows: Array<{ readonly text: string; readonly timing: string }> = []
  const walk = (span: SpanRecord, lead: string, branch: string) => {
    const label = labelOf(span, names)
    rows.push({ text: `${lead}${branch}${span.name}${label === "" ? "" : `  ${label}`}`, timing: `+${ms(span.start - origin)}  ${ms(span.end - span.start)}` })
    const below = lead + (branch === "" ? "" : branch === "└─ " ? "   " : "│  ")
    const kids = children.get(span.spanId) ?? []
    const events = span.events.filter((e) => shownEvent(e, mode))
    const margin = `${below}${kids.length > 0 ? "│" : " "}  `
    for (const event of events) {
      // An event of several lines (a stack trace): the lines after the first indented under the
      // event, within the tree's rails, so that none reads as a line of the tree.
      const [first, ...more] = eventLine(event, names).split(/\r?\n/)
      rows.push({ text: `${margin}· ${first}`, timing: "" })
      for (const line of more) rows.push({ text: `${margin}${CONTINUED}${line}`.trimEnd(), timing: "" })
    }
    kids.forEach((kid, i) => walk(kid, below, i === kids.length - 1 ? "└─ " : "├─ "))
  }
  for (const root of roots) walk(root, "", "")
  const width = Math.min(110, Math.max(...rows.map((r) => r.text.length)))
  return rows.map((r) => (r.timing === "" ? `${r.text}\n` : `${r.text.padEnd(width)}  ${r.timing}\n`)).join("")
}

/** The traced rounds of a run, one line each. */
export const renderRounds = (rounds: ReadonlyArray<TracedRound>, options: Pick<RenderOptions, "round" | "time"> = {}): string => {
  const names = namesOf(options)
  return rounds.map((r) =>
    `${names.time(r.ts)}  ${r.rounds.length <= 3 ? r.rounds.map(names.round).join(" ") : `${r.rounds.length} rounds`}  ` +
    `${r.spans} spans  ${ms(r.durationMicros)}  trace ${r.traceId}\n`
  ).join("")
}
