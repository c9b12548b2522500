/**
 * Checking a re-execution against a recording. A run is a function of its strategy, its data, its
 * seed (and its recorded outside answers), so executing it again must give the recorded events
 * byte for byte; the first event that does not is the divergence, reported with its round, its
 * agent and what differs. Used by `replay` (the whole run) and by resume (the part recorded before
 * the process died, before recording goes on).
 *
 * The run goes on synchronously between its pauses, so the stored events are read ahead a page at
 * a time at each pause, and the events the run produced in between are compared then.
 */
import type { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { RunId } from "../../schemas/Ids.js"
import type { RunEvent } from "../../schemas/RunEvent.js"
import * as Runs from "./Runs.js"
import type { StoreError } from "./StoreError.js"

export interface Divergence {
  /** The sequence number of the first event that differs. */
  readonly seq: number
  /** The round it belongs to, when it belongs to one. */
  readonly round: string | null
  /** The agent that produced it, when the event names one. */
  readonly agent: string | null
  readonly expectedTag: string | null
  readonly actualTag: string | null
  /** The first differing field (`decision.action`), or `event` when one side has no event. */
  readonly field: string
  readonly expected: string
  readonly actual: string
}

interface Pending {
  readonly seq: number
  readonly json: string
}

const PAGE = 10_000

/**
 * Compares the events of a re-execution with the stored events of `run`, up to `until` (inclusive;
 * default: every event). Events after `until` are not compared (resume records them instead).
 */
export class Comparator {
  private readonly queue: Array<Pending> = []
  private stored: Array<Runs.StoredEvent> = []
  private storedAt = 0
  /** The last stored sequence number fetched. */
  private fetched = 0
  private exhausted = false
  matched = 0
  divergence: Divergence | undefined

  constructor(readonly run: RunId, readonly until: number = Number.POSITIVE_INFINITY) {}

  /** Whether `seq` is compared (not past `until`). */
  covers(seq: number): boolean {
    return seq <= this.until
  }

  /** The `RunLog` sink for compared events. */
  readonly sink = (event: RunEvent, json: string): void => {
    if (this.divergence === undefined && event.seq <= this.until) this.queue.push({ seq: event.seq, json })
  }

  /** Fetch what the queue needs and compare; returns the divergence once there is one. */
  readonly check = Effect.suspend(() => this.drain(false))

  /** At the end of the re-execution: everything must have matched, no stored event may be left over. */
  readonly finish = Effect.suspend(() => this.drain(true))

  private drain(final: boolean): Effect.Effect<Divergence | undefined, StoreError, SqlClient.SqlClient> {
    const self = this
    return Effect.gen(function*() {
      while (self.divergence === undefined && self.queue.length > 0) {
        if (self.storedAt >= self.stored.length) {
          if (self.exhausted) break
          yield* self.fetch()
          continue
        }
        const actual = self.queue.shift()!
        const expected = self.stored[self.storedAt++]!
        if (expected.seq !== actual.seq || expected.body !== actual.json) {
          self.divergence = diverge(actual.seq, expected.body, actual.json)
        } else {
          self.matched = actual.seq
        }
      }
      if (self.divergence !== undefined) return self.divergence
      if (self.queue.length > 0) {
        const first = self.queue[0]!
        self.divergence = diverge(first.seq, undefined, first.json)
        return self.divergence
      }
      if (final) {
        // The recording may go on past what was re-executed.
        if (self.storedAt >= self.stored.length && !self.exhausted) yield* self.fetch()
        const extra = self.stored[self.storedAt]
        if (extra !== undefined && extra.seq <= self.until) {
          self.divergence = diverge(extra.seq, extra.body, undefined)
          return self.divergence
        }
      }
      return undefined
    })
  }

  private fetch() {
    return Runs.events(this.run, this.fetched, Math.min(PAGE, this.until - this.fetched)).pipe(
      Effect.map((page) => {
        this.stored = this.stored.slice(this.storedAt).concat(page)
        this.storedAt = 0
        if (page.length > 0) this.fetched = page[page.length - 1]!.seq
        if (page.length < PAGE || this.fetched >= this.until) this.exhausted = true
      })
    )
  }
}

// ---------------------------------------------------------------------------------------------
// Describing a divergence

const parse = (json: string | undefined): Record<string, unknown> | undefined => {
  if (json === undefined) return undefined
  try {
    return JSON.parse(json) as Record<string, unknown>
  } catch {
    return undefined
  }
}

/** The round and agent an event belongs to, from whichever of its fields names them. */
const roundAndAgent = (event: Record<string, any> | undefined): { round: string | null; agent: string | null } => {
  if (event === undefined) return { round: null, agent: null }
  const round = event.opinion?.round ?? event.decision?.round ?? event.verdict?.intent?.round ?? event.order?.round ?? event.round ??
    event.intent?.round ?? null
  const agent = event.opinion?.agent ?? event.event?.actor ?? null
  return { round: typeof round === "string" ? round : null, agent: typeof agent === "string" ? agent : null }
}

/** The first path at which two JSON values differ (depth first, in the expected value's key order). */
export const firstDifference = (expected: unknown, actual: unknown, path = ""): { field: string; expected: unknown; actual: unknown } | undefined => {
  if (Object.is(expected, actual)) return undefined
  if (typeof expected !== "object" || typeof actual !== "object" || expected === null || actual === null || Array.isArray(expected) !== Array.isArray(actual)) {
    return { field: path === "" ? "event" : path, expected, actual }
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
      const d = firstDifference(expected[i], actual[i], `${path}[${i}]`)
      if (d !== undefined) return d
    }
    return undefined
  }
  const e = expected as Record<string, unknown>
  const a = actual as Record<string, unknown>
  for (const key of new Set([...Object.keys(e), ...Object.keys(a)])) {
    const d = firstDifference(e[key], a[key], path === "" ? key : `${path}.${key}`)
    if (d !== undefined) return d
  }
  return undefined
}

const show = (value: unknown): string => (value === undefined ? "(nothing)" : JSON.stringify(value))

const diverge = (seq: number, expectedJson: string | undefined, actualJson: string | undefined): Divergence => {
  const expected = parse(expectedJson)
  const actual = parse(actualJson)
  const where = roundAndAgent(expected ?? actual)
  const difference = expected === undefined || actual === undefined
    ? { field: "event", expected: expected?._tag, actual: actual?._tag }
    : firstDifference(expected, actual) ?? { field: "event", expected: "(byte-level difference)", actual: "(byte-level difference)" }
  return {
    seq,
    round: where.round,
    agent: where.agent,
    expectedTag: typeof expected?._tag === "string" ? expected._tag : null,
    actualTag: typeof actual?._tag === "string" ? actual._tag : null,
    field: difference.field,
    expected: expected === undefined ? "(no such event recorded)" : show(difference.expected),
    actual: actual === undefined ? "(the re-execution has no such event)" : show(difference.actual)
  }
}
