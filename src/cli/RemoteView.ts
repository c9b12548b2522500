/**
 * What the commands that talk to a server print: tables for people, in the style of RunsView's
 * (cli-table3, no colours), and JSON documents. A run is printed as the local database's document
 * of it (RunsView.RunJson: money as decimals), so a script reads the same run whether it asked a
 * server or not; the rest are the RPC answers as the contract encodes them (schemas/Rpc.ts: ISO
 * 8601 times, money in micros). Pure functions over what the server answered.
 */
import { Schema } from "effect"
import { Document, isMap } from "yaml"
import { DEFAULT_APPROVAL_TIMEOUT_SECONDS } from "../../schemas/Risk.js"
import type { Rule } from "../../schemas/Rule.js"
import { PendingApproval, RunInfo, StrategySummary, StrategyVersion } from "../../schemas/Rpc.js"
import { Rule as RuleSchema } from "../../schemas/Rule.js"
import { toJson } from "./Flags.js"
import { visible } from "./Io.js"
import * as MetricSettings from "./MetricSettings.js"
import {
  controlLines,
  latestLines,
  listedFigures,
  metricRowsCompared,
  notResumableLines,
  RunJson,
  runJsonOfInfo,
  RunListJson,
  shorterLine,
  statusCell,
  table,
  UP_TO_STOP_NOTE,
  upToStopJson,
  waitingLines,
  wallTime
} from "./RunsView.js"
import { count, metricRows, price, quantity, time } from "./Summary.js"

const DASH = "—"

// ---------------------------------------------------------------------------------------------
// Runs

/**
 * A run as `--json` prints it (`runs start | stop | pause | resume`): the document `runs list
 * --json` prints of it on the local database (RunsView.RunJson), money as decimals. A server older
 * than `RunInfo.record` says too little for it: its answer as it encodes it, as before.
 */
export const runJson = (run: RunInfo): string => {
  const local = runJsonOfInfo(run)
  return local === undefined ? toJson(RunInfo, run) : toJson(RunJson, local)
}

/** The run on one line, as `runJson`: the head of an ndjson stream (`runs start --watch --json`). */
export const runLine = (run: RunInfo): string => {
  const local = runJsonOfInfo(run)
  return `${JSON.stringify(local === undefined ? Schema.encodeSync(RunInfo)(run) : Schema.encodeSync(RunJson)(local))}\n`
}

/** `runs list --json`: the local database's document of the same runs (a server older than `RunInfo.record`: its answers). */
export const runsJson = (runs: ReadonlyArray<RunInfo>): string => {
  const local = runs.map((run) => {
    const document = runJsonOfInfo(run)
    return document === undefined || run.upToStop === undefined ? document : { ...document, upToStop: upToStopJson(run.upToStop) }
  })
  return local.every((run) => run !== undefined)
    ? toJson(Schema.Array(RunListJson), local as Array<typeof RunListJson.Type>)
    : toJson(Schema.Array(RunInfo), runs)
}

/** `next`: the command line of the next page, when more runs follow than these. */
export const runsTable = (runs: ReadonlyArray<RunInfo>, next: string | undefined): string => {
  if (runs.length === 0) return "no runs\n"
  // An admin's list of several users' runs: two may have the same reference, told apart by owner.
  const owners = new Set(runs.map((run) => run.owner)).size > 1
  const t = table(
    ["run", ...(owners ? ["owner"] : []), "id", "status", "mode", "return", "Sharpe", "max DD", "trades", "events", "started"],
    ["left", ...(owners ? ["left" as const] : []), "left", "left", "left", "right", "right", "right", "right", "right", "left"]
  )
  let upTo = false
  for (const run of runs) {
    // A run stopped or failed before it completed: its figures up to there (`upToStop`), marked as the local list marks them.
    const figures = listedFigures(run.metrics, run.upToStop)
    if (figures.marked) upTo = true
    t.push([
      run.ref,
      ...(owners ? [run.owner ?? DASH] : []),
      run.id,
      [statusCell(run.status, run.record?.tradingState), ...(run.notResumable === undefined ? [] : [NOT_RESUMABLE_MARK]), ...(run.waiting === undefined ? [] : [WAITING_MARK])].join(" "),
      run.mode,
      ...figures.cells,
      run.events === null ? DASH : count(run.events),
      wallTime(run.startedAt)
    ])
  }
  const marked = runs.filter((run) => run.notResumable !== undefined)
  // The run's id when one is marked: a command to paste.
  const which = marked.length === 1 ? marked[0]!.id : "<run>"
  const waiting = runs.filter((run) => run.waiting !== undefined)
  const waits = waiting.length === 1 ? waiting[0]!.id : "<run>"
  return `${t.toString()}\n` +
    (upTo ? UP_TO_STOP_NOTE : "") +
    (marked.length === 0
      ? ""
      : `${NOT_RESUMABLE_MARK} not resumable by this server, which does not run it: swarm runs show ${which} says why ` +
        `(if no server runs it, swarm runs stop ${which} ends it)\n`) +
    (waiting.length === 0
      ? ""
      : `${WAITING_MARK} waits for a slot among its owner's live runs on the server, not failed: it goes on when one of them ends ` +
        `(swarm runs show ${waits} says more; swarm runs stop ${waits} ends it)\n`) +
    (next === undefined ? "" : `more runs follow; the next page: ${next}\n`)
}

/** Beside the status of a run in `runs list` that the server says it cannot resume (`notResumable`); the line under the table says what it means. */
export const NOT_RESUMABLE_MARK = "(!)"

/** Beside the status of a run in `runs list` that waits for a slot on the server (`waiting`); the line under the table says what it means. */
export const WAITING_MARK = "(waiting)"

/** The statuses of a run that ended: its figures (events, checksum, metrics) are final. */
export const ENDED: ReadonlyArray<string> = ["completed", "failed", "stopped"]

/** Why a run that ended has no metrics: only a run that completed is measured. */
const NO_METRICS: Record<string, string> = {
  stopped: "no metrics: the run was stopped before its end (only a completed run is measured)",
  failed: "no metrics: the run failed before its end (only a completed run is measured)"
}

/** A run as the server knows it: what it is, where it stands, and its metrics once it has ended. */
export const runShow = (run: RunInfo): string => {
  const ended = ENDED.includes(run.status)
  const lines = [
    `run       ${run.id} (${run.ref})`,
    `strategy  ${run.strategy} v${run.strategyVersion}`,
    `mode      ${run.mode}`,
    `status    ${run.status}${run.failure === null ? "" : `: ${run.failure}`}`,
    ...notResumableLines(run.id, run.notResumable),
    ...waitingLines(run.waiting),
    `started   ${wallTime(run.startedAt)}`,
    `finished  ${run.finishedAt === null ? DASH : wallTime(run.finishedAt)}`,
    // A server counts a run's events once it has ended (an older one, only when it completes), and
    // while it goes on says those recorded so far (an older one, none); it sums its checksum only when it completes.
    `events    ${
      run.events !== null
        ? `${count(run.events)}${ended ? "" : " so far"}`
        : ended
        ? `${DASH} (counted only when a run completes)`
        : `${DASH} (still running)`
    }`,
    `checksum  ${run.checksum ?? (ended ? `${DASH} (made only when a run completes)` : DASH)}`,
    ...latestLines(run),
    ...(run.control === undefined ? [] : controlLines(run.control)),
    ""
  ]
  if (run.metrics === null) {
    lines.push(ended ? NO_METRICS[run.status] ?? "no metrics" : "metrics: once the run has ended (swarm runs watch follows it)")
  } else {
    const t = table(["metric", "value"], ["left", "right"])
    for (const [name, value] of metricRows(run.metrics)) t.push([name, value])
    lines.push(t.toString())
  }
  return `${lines.join("\n")}\n`
}

/**
 * `runs start`, `stop`, `pause`, `resume`: what the run is now, in one line, and what to do next —
 * unless it is followed already (`runs start --watch`).
 */
export const runChanged = (verb: string, run: RunInfo, following = false): string => {
  const next = !following && (run.status === "running" || run.status === "paused") ? `\nfollow it: swarm runs watch ${run.id}` : ""
  const failure = run.failure === null ? "" : `: ${run.failure}`
  // A stop (or a pause) that came as the run ended by itself: the run was not stopped, it ended.
  if (verb !== "started" && (run.status === "completed" || run.status === "failed")) {
    return `run ${run.id} (${run.ref}, ${run.mode}) ${run.status} before it could be ${verb}${failure}\n`
  }
  return `${verb} run ${run.id} (${run.ref}, ${run.mode}): ${run.status}${failure}${next}\n`
}

export interface Compared {
  readonly a: RunInfo
  readonly b: RunInfo
  readonly firstDifference: {
    readonly ts: number
    readonly symbol: string
    readonly matched?: number | undefined
    readonly ended?: "a" | "b" | undefined
  } | null
}

export const compareJson = (compared: Compared): string =>
  `${
    JSON.stringify(
      {
        a: Schema.encodeSync(RunInfo)(compared.a),
        b: Schema.encodeSync(RunInfo)(compared.b),
        firstDifference: compared.firstDifference === null
          ? null
          : { ...compared.firstDifference, ts: new Date(compared.firstDifference.ts).toISOString() }
      },
      null,
      2
    )
  }\n`

export const compareTable = ({ a, b, firstDifference }: Compared): string => {
  const t = table(["", `a: ${a.ref}`, `b: ${b.ref}`, "b − a"], ["left", "right", "right", "right"])
  t.push(["run", a.id, b.id, ""])
  t.push(["status", a.status, b.status, a.status === b.status ? "=" : "differ"])
  t.push(["mode", a.mode, b.mode, a.mode === b.mode ? "=" : "differ"])
  metricRowsCompared(t, a.metrics, b.metrics)
  const short = (c: string | null) => (c === null ? DASH : `${c.slice(0, 12)}…`)
  t.push(["checksum", short(a.checksum), short(b.checksum), a.checksum !== null && a.checksum === b.checksum ? "=" : "differ"])
  const label = (side: "a" | "b") => `${side} (${side === "a" ? a.ref : b.ref})`
  const decisions = firstDifference === null
    ? "decisions: the same throughout"
    : firstDifference.ended !== undefined
    ? shorterLine(
      { label: label(firstDifference.ended), status: (firstDifference.ended === "a" ? a : b).status },
      { label: label(firstDifference.ended === "a" ? "b" : "a") },
      firstDifference
    )
    : `first differing decision: ${time(firstDifference.ts)} ${firstDifference.symbol}`
  const basis = MetricSettings.compareNoteOf(a.metrics, b.metrics)
  return `${t.toString()}\n\n${basis === undefined ? "" : `${basis}\n`}${decisions}\n`
}

// ---------------------------------------------------------------------------------------------
// Strategies and rules

export const strategiesJson = (strategies: ReadonlyArray<StrategySummary>): string => toJson(Schema.Array(StrategySummary), strategies)

export const strategiesTable = (strategies: ReadonlyArray<StrategySummary>): string => {
  if (strategies.length === 0) return "no strategies (swarm strategies create <file> saves one)\n"
  const t = table(["name", "id", "version", "runs", "created"], ["left", "left", "right", "right", "left"])
  for (const s of strategies) t.push([s.name, s.id, String(s.latestVersion), count(s.runs), wallTime(s.createdAt)])
  return `${t.toString()}\n`
}

export const strategyJson = (version: StrategyVersion): string => toJson(StrategyVersion, version)

/**
 * A strategy version as a YAML strategy file, every default spelled out: what `strategies create`
 * and `update` take back, so `show > file`, an edit and `update` is how a strategy is changed.
 * The one setting a strategy leaves out to keep its identity (`risk.approval.timeoutSeconds`,
 * schemas/Risk.ts) is spelled out as a comment: writing it in would make a new version.
 */
export const strategyYaml = (version: StrategyVersion): string => {
  const document = new Document(Schema.encodeSync(StrategyVersion.fields.strategy)(version.strategy))
  const approval = document.getIn(["risk", "approval"], true)
  if (version.strategy.risk.approval.timeoutSeconds === undefined && isMap(approval)) {
    approval.comment = ` timeoutSeconds: ${DEFAULT_APPROVAL_TIMEOUT_SECONDS} (the default while it is left out)`
  }
  return `# ${version.name} v${version.version} (${version.id})\n${document.toString({ lineWidth: 0 })}`
}

/** `strategies create` and `update`, and the rule commands (each makes a new version). */
export const strategySaved = (verb: string, version: StrategyVersion): string => {
  const rules = version.strategy.rules.length === 1 ? "1 rule" : `${version.strategy.rules.length} rules`
  return version.unchanged
    ? `unchanged: strategy "${version.name}" (${version.id}) is already that at version ${version.version}, ${rules}; no version made\n`
    : `${verb} strategy "${version.name}" (${version.id}): version ${version.version}, ${rules}\n`
}

export const rulesJson = (rules: ReadonlyArray<Rule>): string => toJson(Schema.Array(RuleSchema), rules)

const scope = (rule: Rule): string => {
  const allowed = rule.allowSymbols === undefined ? "all symbols" : rule.allowSymbols.join(" ")
  return rule.denySymbols.length === 0 ? allowed : `${allowed} except ${rule.denySymbols.join(" ")}`
}

export const rulesTable = (rules: ReadonlyArray<Rule>): string => {
  if (rules.length === 0) return "no rules\n"
  const t = table(["id", "name", "kind", "category", "priority", "active", "symbols", "params"], [
    "left",
    "left",
    "left",
    "left",
    "right",
    "left",
    "left",
    "left"
  ])
  const encode = Schema.encodeSync(RuleSchema)
  for (const rule of [...rules].sort((x, y) => x.priority - y.priority || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))) {
    t.push([visible(rule.id), visible(rule.name), rule.kind, rule.category, String(rule.priority), rule.active ? "yes" : "no", scope(rule), JSON.stringify(encode(rule).params)])
  }
  return `${t.toString()}\n`
}

// ---------------------------------------------------------------------------------------------
// Approvals

export const approvalsJson = (pending: ReadonlyArray<PendingApproval>): string => toJson(Schema.Array(PendingApproval), pending)

export const approvalsTable = (pending: ReadonlyArray<PendingApproval>): string => {
  if (pending.length === 0) return "no approvals pending\n"
  // Whose run, when the list is of several users' (an admin's), as the leaderboard does.
  const owners = pending.some((p) => p.owner !== undefined) && new Set(pending.map((p) => p.owner)).size > 1
  const t = table(["run", ...(owners ? ["owner"] : []), "id", "round", "order", "price", "asked", "expires", "reasons"], [
    "left",
    ...(owners ? ["left" as const] : []),
    "left",
    "left",
    "left",
    "right",
    "left",
    "left",
    "left"
  ])
  for (const p of pending) {
    t.push([
      p.ref,
      ...(owners ? [p.owner ?? "—"] : []),
      p.run,
      p.round,
      `${p.symbol} ${p.side} ${quantity(p.quantity)}`,
      price(p.referencePrice),
      wallTime(new Date(p.requestedAt)),
      wallTime(new Date(p.expiresAt)),
      p.reasons.join("; ")
    ])
  }
  return `${t.toString()}\n`
}
