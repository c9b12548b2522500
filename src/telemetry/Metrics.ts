/**
 * Swarm's metrics, as Effect `Metric`s (exported to OpenTelemetry by the telemetry layer's metric
 * producer). What the per-bar path counts — messages handled, orders — it counts in plain numbers
 * (a field increment per message, nothing allocated), and `flush` moves them into the metrics: the
 * telemetry layer flushes before every collection, so an exporter or a test's reader always sees
 * everything counted so far. Rare events (a restart, a rejection, an LLM call, an SSE client)
 * update their metric directly.
 *
 *   swarm.actor.messages          counter    messages actors handled, by actor role
 *   swarm.actor.mailbox.depth     gauge      messages queued at the last flush, by actor role (summed over runs)
 *   swarm.actor.restarts          counter    restarts, by actor role
 *   swarm.actor.dead_letters      counter    dead letters, by reason
 *   swarm.round.duration          histogram  ms from a traced round's update to its last verdict
 *   swarm.orders                  counter    orders placed, by side
 *   swarm.risk.rejections         counter    rejected order intents, by check (rule, gate, state, approval) and name
 *   swarm.approvals.waiting       gauge      order intents waiting for an operator
 *   swarm.sse.subscribers         gauge      open SSE event streams
 *   swarm.webhooks.duplicates     counter    repeated alerts acknowledged, by what answered them (src/edge/Webhooks.ts)
 *   swarm.llm.calls               counter    language-model calls, by model, outcome and cache
 *   gen_ai.client.token.usage     histogram  tokens per call, by gen_ai.token.type (input, output) and model
 *   gen_ai.client.operation.duration histogram seconds per model call, by model
 *
 * Actor roles keep the label set small whatever the strategies call their agents: `analyst` for
 * any analyst, the agent's name for the spine (`coordinator`, `risk`, `desk`, `ledger`),
 * `chat_session` for the system agent's session of each run, the actor's name otherwise
 * (`anonymous` for generated names).
 */
import { Metric, MetricBoundaries, MetricLabel } from "effect"

type Labels = ReadonlyArray<MetricLabel.MetricLabel>

const labels = (...pairs: ReadonlyArray<readonly [string, string]>): Labels => pairs.map(([key, value]) => MetricLabel.make(key, value))

// --- the metrics ---------------------------------------------------------------------------------

export const messagesHandled = Metric.counter("swarm.actor.messages", { description: "Messages handled by actors", incremental: true })
export const mailboxDepth = Metric.gauge("swarm.actor.mailbox.depth", { description: "Messages waiting in actors' mailboxes" })
export const restarts = Metric.counter("swarm.actor.restarts", { description: "Actor restarts by their supervisors", incremental: true })
export const deadLetters = Metric.counter("swarm.actor.dead_letters", { description: "Messages that could not be delivered", incremental: true })
export const roundDuration = Metric.histogram(
  "swarm.round.duration",
  MetricBoundaries.exponential({ start: 0.05, factor: 2, count: 22 }),
  "Wall-clock milliseconds of a traced round, from the market update to its last verdict"
)
export const orders = Metric.counter("swarm.orders", { description: "Orders placed by execution desks", incremental: true })
export const rejections = Metric.counter("swarm.risk.rejections", { description: "Order intents rejected, by the check that rejected them", incremental: true })
export const approvalsWaiting = Metric.gauge("swarm.approvals.waiting", { description: "Order intents waiting for an operator" })
export const sseSubscribers = Metric.gauge("swarm.sse.subscribers", { description: "Open SSE event streams" })
export const llmCalls = Metric.counter("swarm.llm.calls", { description: "Language-model calls", incremental: true })
export const llmTokens = Metric.histogram(
  "gen_ai.client.token.usage",
  MetricBoundaries.exponential({ start: 1, factor: 4, count: 12 }),
  "Tokens per language-model call (GenAI semantic conventions)"
)
export const llmDuration = Metric.histogram(
  "gen_ai.client.operation.duration",
  MetricBoundaries.exponential({ start: 0.01, factor: 2, count: 16 }),
  "Seconds per language-model call (GenAI semantic conventions)"
)

const MS = labels(["unit", "ms"])

/** One traced round's wall-clock duration. */
export const recordRound = (millis: number): void => roundDuration.unsafeUpdate(millis, MS)

// --- tallies: counted in place, moved into their metric by `flush` ---------------------------------

const tallies = new Set<Tally>()

export class Tally {
  pending = 0
  constructor(readonly metric: Metric.Metric.Counter<number>, readonly tags: Labels) {
    tallies.add(this)
  }
  flush(): void {
    if (this.pending === 0) return
    const n = this.pending
    this.pending = 0
    this.metric.unsafeUpdate(n, this.tags)
  }
}

/** Orders placed, by side: the desk adds to these per message. */
export const ordersPlaced = {
  buy: new Tally(orders, labels(["side", "buy"])),
  sell: new Tally(orders, labels(["side", "sell"]))
} as const

const rejectionTallies = new Map<string, Tally>()

/** An intent rejected by `check` (`rule`, `gate`, `state`, `approval`, `sizing`) named `name`. */
export const rejected = (check: string, name: string): void => {
  const key = `${check}\u0000${name}`
  let tally = rejectionTallies.get(key)
  if (tally === undefined) {
    // Bounded by the rules of the strategies run; past that, the name is dropped rather than the count.
    tally = rejectionTallies.size < 1_000
      ? new Tally(rejections, labels(["check", check], ["name", name]))
      : new Tally(rejections, labels(["check", check], ["name", "other"]))
    rejectionTallies.set(key, tally)
  }
  tally.pending++
}

const ONE: Labels = []

/** An order intent starts or stops waiting for an operator. */
export const approvalWaiting = (delta: 1 | -1): void => approvalsWaiting.unsafeModify(delta, ONE)

/** An SSE stream opens or closes. */
export const sseSubscriber = (delta: 1 | -1): void => sseSubscribers.unsafeModify(delta, ONE)

const callLabels = new Map<string, Labels>()
const modelLabels = new Map<string, { readonly input: Labels; readonly output: Labels; readonly duration: Labels }>()

/**
 * One language-model call, as it ended; `recorded` when it was answered from a run's recording
 * (replay, resume): counted as a call, but no model spent tokens or time on it.
 */
export const llmCall = (call: {
  readonly backend: string
  readonly model: string
  readonly outcome: string
  readonly cache: string
  readonly attempts: number
  readonly tokensIn: number
  readonly tokensOut: number
  readonly latencyMillis: number
}, recorded: boolean): void => {
  const cache = recorded ? "recorded" : call.cache
  const callKey = `${call.backend}\u0000${call.model}\u0000${call.outcome}\u0000${cache}`
  let callTags = callLabels.get(callKey)
  if (callTags === undefined) {
    callTags = labels(["gen_ai.system", call.backend], ["gen_ai.request.model", call.model], ["outcome", call.outcome], ["cache", cache])
    if (callLabels.size < 1_000) callLabels.set(callKey, callTags)
  }
  // The same label array each time: the metric's hook is found by its identity, not rebuilt per call.
  llmCalls.unsafeUpdate(1, callTags)
  // Only what a model did: a cache hit, a refused budget or a recorded answer asked none.
  if (recorded || call.attempts === 0) return
  const key = `${call.backend}\u0000${call.model}`
  let l = modelLabels.get(key)
  if (l === undefined) {
    const base: ReadonlyArray<readonly [string, string]> = [["gen_ai.operation.name", "chat"], ["gen_ai.system", call.backend], ["gen_ai.request.model", call.model]]
    l = {
      input: labels(...base, ["gen_ai.token.type", "input"], ["unit", "{token}"]),
      output: labels(...base, ["gen_ai.token.type", "output"], ["unit", "{token}"]),
      duration: labels(...base, ["unit", "s"])
    }
    if (modelLabels.size < 1_000) modelLabels.set(key, l)
  }
  llmTokens.unsafeUpdate(call.tokensIn, l.input)
  llmTokens.unsafeUpdate(call.tokensOut, l.output)
  llmDuration.unsafeUpdate(call.latencyMillis / 1_000, l.duration)
}

// --- actor systems ---------------------------------------------------------------------------------

/** What `flush` reads of an actor (the kernel's cell): counts since the last flush, and its mailbox. */
export interface MeteredActor {
  readonly id: string
  handledSinceFlush: number
  restartsSinceFlush: number
  readonly mailbox: { readonly size: number }
}

/** What `flush` reads of an actor system. */
export interface MeteredSystem {
  readonly registry: ReadonlyMap<string, MeteredActor>
  readonly deadLetterCounts: Readonly<Record<string, number>>
}

const systems = new Set<MeteredSystem>()
/** Dead letters of each system already counted. */
const deadLettersFlushed = new WeakMap<MeteredSystem, Record<string, number>>()

/** Count this system's actors until `unregister`. */
export const register = (system: MeteredSystem): void => {
  systems.add(system)
}

/** The system is closing: its counts so far go in, and it is no longer read. */
export const unregister = (system: MeteredSystem): void => {
  flushSystem(system, undefined)
  systems.delete(system)
}

const roleLabels = new Map<string, Labels>()

/** The role label of an actor id (see the module comment). */
export const roleOf = (id: string): string => {
  const slash = id.lastIndexOf("/")
  const name = id.slice(slash + 1)
  const parentSlash = id.lastIndexOf("/", slash - 1)
  const parent = id.slice(parentSlash + 1, slash)
  if (parent === "analysts") return "analyst"
  // The system agent's sessions, one per run (`/user/system/agent/<run>-<n>`): named by run, they
  // were a new label each — a metric series per chat, kept for the process's life.
  if (parent === "agent" && id.slice(id.lastIndexOf("/", parentSlash - 1) + 1, parentSlash) === "system") return "chat_session"
  return name.startsWith("$") ? "anonymous" : name
}

const labelsOf = (id: string): Labels => {
  let l = roleLabels.get(id)
  if (l === undefined) {
    l = labels(["actor", roleOf(id)])
    if (roleLabels.size > 10_000) roleLabels.clear()
    roleLabels.set(id, l)
  }
  return l
}

/** An actor leaving its system (stopped for good): its last counts go in. */
export const retire = (actor: MeteredActor): void => flushActor(actor, undefined)

const flushActor = (actor: MeteredActor, depths: Map<string, number> | undefined): void => {
  const handled = actor.handledSinceFlush
  const restarted = actor.restartsSinceFlush
  if (handled === 0 && restarted === 0 && depths === undefined) return
  const tags = labelsOf(actor.id)
  if (handled > 0) {
    actor.handledSinceFlush = 0
    messagesHandled.unsafeUpdate(handled, tags)
  }
  if (restarted > 0) {
    actor.restartsSinceFlush = 0
    restarts.unsafeUpdate(restarted, tags)
  }
  if (depths !== undefined) {
    const role = tags[0]!.value
    depths.set(role, (depths.get(role) ?? 0) + actor.mailbox.size)
  }
}

const reasonLabels = new Map<string, Labels>()

const flushSystem = (system: MeteredSystem, depths: Map<string, number> | undefined): void => {
  for (const actor of system.registry.values()) flushActor(actor, depths)
  const flushed = deadLettersFlushed.get(system) ?? {}
  for (const reason in system.deadLetterCounts) {
    const delta = system.deadLetterCounts[reason]! - (flushed[reason] ?? 0)
    if (delta <= 0) continue
    flushed[reason] = system.deadLetterCounts[reason]!
    let tags = reasonLabels.get(reason)
    if (tags === undefined) reasonLabels.set(reason, (tags = labels(["reason", reason])))
    deadLetters.unsafeUpdate(delta, tags)
  }
  deadLettersFlushed.set(system, flushed)
}

/** Roles whose depth was reported: a role with no actor left reports 0, not its last depth. */
const depthRoles = new Set<string>()

/** Move everything counted in place into the metrics, and sample the mailboxes' depths. */
export const flush = (): void => {
  for (const tally of tallies) tally.flush()
  const depths = new Map<string, number>()
  for (const system of systems) flushSystem(system, depths)
  for (const role of depthRoles) if (!depths.has(role)) depths.set(role, 0)
  for (const [role, depth] of depths) {
    depthRoles.add(role)
    mailboxDepth.unsafeUpdate(depth, labels(["actor", role]))
  }
}
