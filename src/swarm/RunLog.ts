/**
 * A run's event log as it is written: each event gets the run's next sequence number and the run's
 * clock time, is serialised once to its canonical JSON line, folded into the run's SHA-256 checksum
 * and handed to the sinks (the CLI's `--out` file, tests, later the store and the bus). Nothing is
 * kept: a long backtest's memory does not grow with its events.
 *
 * Canonical JSON: `JSON.stringify` of the event with its fields in schema order (`_tag`, `run`,
 * `seq`, `at`, then the event's own fields as schemas/RunEvent.ts lists them), money as integer
 * micros, timestamps as epoch milliseconds; written by a serialiser compiled from the event schema
 * (src/internal/canonicalJson.ts), the same text in about half the time. The checksum is SHA-256
 * over those lines, each followed by `\n`, in sequence order — so two runs are identical exactly
 * when their checksums are, and the `--out` file's `events.ndjson` without its last line
 * (`RunCompleted`, which carries the checksum) hashes to it.
 *
 * Agents write to the log synchronously while handling a message, so events come out in the order
 * things happened: in a backtest the world's scheduler makes that order, and the checksum, the same
 * on every run of the same inputs.
 */
import { createHash, type Hash } from "node:crypto"
import type { RoundId, RunId } from "../../schemas/Ids.js"
import type { OrderIntent } from "../../schemas/Order.js"
import type { StateTransition, TradingState } from "../../schemas/Risk.js"
import { type RunEvent, RunEvent as RunEventSchema, type RunEventTag } from "../../schemas/RunEvent.js"
import { compile } from "../internal/canonicalJson.js"

export type EventOf<T extends RunEventTag> = Extract<RunEvent, { readonly _tag: T }>
export type Payload<T extends RunEventTag> = Omit<EventOf<T>, "_tag" | "run" | "seq" | "at">

export interface PendingApproval {
  readonly round: RoundId
  readonly intent: OrderIntent
  readonly quantity: number
  readonly reasons: ReadonlyArray<string>
  readonly expiresAt: number
}

export type Sink = (event: RunEvent, json: string) => void

/**
 * An event's last field given with its JSON already made (a market brief's, cut when its bars
 * came): the line is the event's JSON with it appended, so those bytes are not serialised again.
 * `json` must be `JSON.stringify(value)`: the line is then the same as without the tail.
 */
export interface Tail {
  readonly key: string
  readonly value: unknown
  readonly json: string
}

/** `JSON.stringify` of an event, compiled for the event schema (src/internal/canonicalJson.ts). */
const serialize: (event: RunEvent) => string = compile(RunEventSchema)

/**
 * With `SWARM_CANONICAL_CHECK=1` (the test suite's setting) every line is compared with
 * `JSON.stringify` of its event: an event built with fields the schema does not list, or in
 * another order, fails the run that made it instead of changing its checksum unseen.
 */
const CHECK_CANONICAL = process.env.SWARM_CANONICAL_CHECK === "1"

const checkCanonical = (event: RunEvent, json: string): void => {
  const expected = JSON.stringify(event)
  if (json !== expected) {
    throw new Error(`RunLog: the compiled serialiser wrote ${event._tag} unlike JSON.stringify (fields not in schema order?)\n  compiled:  ${json}\n  stringify: ${expected}`)
  }
}

/**
 * Characters of lines collected before they are hashed. Small: the lines are ropes of the
 * serialiser's pieces until joined, and a rope kept across a young-generation collection is copied
 * piece by piece (64 K characters held a sparse backtest's lines over many slices: 8 % slower).
 */
const CHUNK = 1 << 12

export class RunLog {
  private seq = 0
  private readonly hash: Hash = createHash("sha256")
  /** Lines not hashed yet, `pending` characters of them. */
  private readonly lines: Array<string> = []
  private pending = 0
  private readonly sinks: Array<Sink> = []
  readonly counts = new Map<RunEventTag, number>()
  /** Verdicts that rejected their intent, and approvals resolved as rejected or expired. */
  rejected = 0
  /** Approval requests not resolved yet, in request order. */
  readonly pendingApprovals = new Map<RoundId, PendingApproval>()
  /** The last trading-state change recorded (`TradingStateChanged`), if any: with those held (`holdTransition`), the run's trading state. */
  private recordedTransition: StateTransition | undefined = undefined
  /** Trading-state changes made and not recorded yet (`holdTransition`), in the order they were made. */
  private heldTransitions: Array<StateTransition> = []
  /** While a halt sits over the trading state (`haltOver`): the changes made under it, recorded when it lifts. */
  private underHalt: Array<StateTransition> | undefined = undefined
  /** While a halt sits over the trading state (`haltOver`): the state it sat over. */
  private haltFrom: TradingState | undefined = undefined

  /** Why an agent stopped the run (`stop`), if one did. */
  stopped: string | undefined

  /** Whether the log has ended (`seal`): nothing more is written. */
  private sealed = false

  /** Events held back to be emitted together in a fixed order (`defer`, `flushDeferred`). */
  private deferred: Array<{ readonly key: string; readonly emit: () => void }> = []
  /** Per `deferFirst` group not emitted yet: the candidate with the smallest key held so far. */
  private readonly firstHeld = new Map<string, { readonly key: string; readonly emit: () => void }>()
  /** The `deferFirst` groups already emitted: the run records each once. */
  private readonly firstDone = new Set<string>()

  constructor(readonly run: RunId, private readonly now: () => number) {}

  /**
   * Hold an event until `flushDeferred`, which emits the held ones ordered by `key`. For events of
   * work that runs in parallel (the calls of LLM analysts), whose completion order is the wall
   * clock's: held and sorted, they come out in the same order on every run and every replay.
   */
  defer<T extends RunEventTag>(key: string, tag: T, payload: Payload<T> | (() => Payload<T>), tail?: Tail): void {
    // A payload made as it is emitted (a function) may depend on the events before it in the log's order.
    this.deferred.push({ key, emit: () => this.emit(tag, typeof payload === "function" ? payload() : payload, tail) })
  }

  /**
   * Hold an event the run records once (`LlmBudgetSpent`), at the first flush that holds any
   * candidate of its `group`: the candidate with the smallest key, emitted in that key's place.
   * Which of a slice's parallel calls got there first in wall-clock time does not decide it — a run
   * and its replay answer them in different orders — only what the flush holds, which both share.
   */
  deferFirst<T extends RunEventTag>(group: string, key: string, tag: T, payload: Payload<T>): void {
    if (this.firstDone.has(group)) return
    const held = this.firstHeld.get(group)
    if (held === undefined || key < held.key) this.firstHeld.set(group, { key, emit: () => this.emit(tag, payload) })
  }

  /** Emit the held events, by key (ties in the order they were held). */
  flushDeferred(): void {
    if (this.firstHeld.size > 0) {
      for (const [group, first] of this.firstHeld) {
        this.deferred.push(first)
        this.firstDone.add(group)
      }
      this.firstHeld.clear()
    }
    if (this.deferred.length === 0) return
    const held = this.deferred
    this.deferred = []
    held.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    for (const event of held) event.emit()
  }

  /**
   * Hold a trading-state change made now, to be recorded (`TradingStateChanged`) at a point of the
   * slice that does not depend on the order the world ran its agents in: before the next judgement of
   * the slice (`releaseTransitions`, by the risk officer) or at the slice's end (`endSlice`, by the
   * driver), whichever comes first. For a change made on the ledger's word (`BooksMarked`), whose
   * handling may come before or after the coordinator's records of the slice. Another
   * `TradingStateChanged` emitted meanwhile records the held ones first, and `tradingState` counts
   * them already, so the recorded changes always chain (each `from` the `to` before it).
   */
  holdTransition(transition: StateTransition): void {
    this.heldTransitions.push(transition)
  }

  /** Record the held trading-state changes now, in the order they were made. */
  releaseTransitions(): void {
    if (this.heldTransitions.length === 0) return
    const held = this.heldTransitions
    this.heldTransitions = []
    for (const transition of held) this.emit("TradingStateChanged", { transition })
  }

  /**
   * Record a halt that sits over the trading state without being its owner's (the coordinator's,
   * while the risk officer is down): until `liftHalt`, the changes the owner makes under it are
   * kept, not recorded — the run's state is the halt — and `liftHalt` records them after its own
   * change back, so each recorded `from` is the `to` before it. A run that ends under the halt ends
   * halted, the changes under it unrecorded — unless its end settles it (`settleHalt`).
   */
  haltOver(transition: StateTransition): void {
    this.emit("TradingStateChanged", { transition })
    this.underHalt = []
    this.haltFrom = transition.from
  }

  /** Under a halt `haltOver` recorded: how many changes made under it wait for it to lift (0 when none is on). */
  get owedUnderHalt(): number {
    return this.underHalt === undefined ? 0 : this.underHalt.length + this.heldTransitions.length
  }

  /**
   * The run ends under a halt `haltOver` recorded: nothing will lift it, and what was made under it
   * is owed. It lifts at `at`, saying `reason`, back to the state it sat over, and the changes made
   * under it follow in the order they were made (`liftHalt`): the recorded chain ends in the owner's
   * state. Nothing when no such halt is on.
   */
  settleHalt(at: number, reason: string): void {
    if (this.underHalt === undefined || this.haltFrom === undefined) return
    this.liftHalt({ from: "halted", to: this.haltFrom, cause: "system", at: at as StateTransition["at"], reason, actor: null })
  }

  /** The halt `haltOver` recorded lifts with `transition` (halted → the state it sat over); then the changes made under it. */
  liftHalt(transition: StateTransition): void {
    // Changes made under the halt and held for the slice (`holdTransition`) come after the lift too.
    if (this.heldTransitions.length > 0) this.releaseTransitions()
    const under = this.underHalt ?? []
    this.underHalt = undefined
    this.haltFrom = undefined
    this.emit("TradingStateChanged", { transition })
    for (const moved of under) this.emit("TradingStateChanged", { transition: moved })
  }

  /** The slice in hand has settled (the driver): what is still held is recorded. */
  endSlice(): void {
    if (this.heldTransitions.length > 0) this.releaseTransitions()
  }

  /**
   * Stop the run, saying why: for an agent that cannot go on (the ledger's books past the exact
   * money range). The run ends failed with the first reason given, after the slice in hand.
   */
  stop(reason: string): void {
    this.stopped ??= reason
  }

  /**
   * End the log: events emitted from now on are dropped (no sequence number, no checksum, no sink).
   * For the world's teardown: a run stopped in the middle of a slice has agents still at work while
   * it closes (a deadline firing, held events flushed), which its replay, never stopped there,
   * would not write — recorded, they would make the run's recording one nothing reproduces.
   */
  seal(): void {
    this.sealed = true
  }

  /** Add a sink; it sees every event appended from now on. */
  subscribe(sink: Sink): void {
    this.sinks.push(sink)
  }

  get size(): number {
    return this.seq
  }

  /**
   * The last trading-state change: the last one held (`holdTransition`), else the last recorded
   * (`TradingStateChanged`), if any.
   */
  get lastTransition(): StateTransition | undefined {
    // Under a halt (`haltOver`) the run's state is the halt's, whatever is made under it.
    if (this.underHalt !== undefined) return this.recordedTransition
    return this.heldTransitions.length > 0 ? this.heldTransitions[this.heldTransitions.length - 1] : this.recordedTransition
  }

  /** The run's trading state as its events say (with the changes held to be recorded): `active` until a `TradingStateChanged`. */
  get tradingState(): TradingState {
    return this.lastTransition?.to ?? "active"
  }

  count(tag: RunEventTag): number {
    return this.counts.get(tag) ?? 0
  }

  /** Append an event; `tail`, its last field with that field's JSON (see `Tail`). */
  emit<T extends RunEventTag>(tag: T, payload: Payload<T>, tail?: Tail): EventOf<T> {
    // Changes held are recorded before any other: the chain of states stays whole.
    if (tag === "TradingStateChanged" && this.heldTransitions.length > 0) this.releaseTransitions()
    // Under a halt (`haltOver`), a change is kept for when it lifts.
    if (tag === "TradingStateChanged" && this.underHalt !== undefined) {
      this.underHalt.push((payload as unknown as Payload<"TradingStateChanged">).transition)
      return { _tag: tag, run: this.run, seq: this.seq, at: this.now(), ...payload } as unknown as EventOf<T>
    }
    if (this.sealed) return { _tag: tag, run: this.run, seq: this.seq, at: this.now(), ...payload } as unknown as EventOf<T>
    const event = { _tag: tag, run: this.run, seq: ++this.seq, at: this.now(), ...payload } as unknown as EventOf<T>
    let json = serialize(event)
    if (CHECK_CANONICAL) checkCanonical(event, json)
    if (tail !== undefined) {
      json = `${json.slice(0, -1)},${JSON.stringify(tail.key)}:${tail.json}}`
      ;(event as unknown as Record<string, unknown>)[tail.key] = tail.value
    }
    // Lines are hashed a few thousand characters at a time, joined: one native call for many
    // lines. The serialiser's text is a rope of pieces, which the join flattens all in one go
    // (writing each line into a buffer flattened it on its own: 10 % slower on a dense log).
    this.lines.push(json)
    if ((this.pending += json.length) >= CHUNK) this.flush()
    this.counts.set(tag, (this.counts.get(tag) ?? 0) + 1)
    if (tag === "ApprovalRequested") {
      const e = event as EventOf<"ApprovalRequested">
      this.pendingApprovals.set(e.round, { round: e.round, intent: e.intent, quantity: e.quantity, reasons: e.reasons, expiresAt: e.expiresAt })
    } else if (tag === "ApprovalResolved") {
      const e = event as EventOf<"ApprovalResolved">
      this.pendingApprovals.delete(e.round)
      if (e.outcome !== "approved") this.rejected++
    } else if (tag === "VerdictGiven" && (event as EventOf<"VerdictGiven">).verdict.outcome === "rejected") {
      this.rejected++
    } else if (tag === "TradingStateChanged") {
      this.recordedTransition = (event as EventOf<"TradingStateChanged">).transition
    }
    for (let i = 0; i < this.sinks.length; i++) this.sinks[i]!(event, json)
    return event
  }

  /** The checksum of every event so far (the log goes on). */
  checksum(): string {
    this.flush()
    return this.hash.copy().digest("hex")
  }

  private flush(): void {
    if (this.lines.length === 0) return
    this.lines.push("")
    this.hash.update(this.lines.join("\n"))
    this.lines.length = 0
    this.pending = 0
  }
}
