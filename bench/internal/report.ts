/**
 * What every benchmark shares: the one-JSON-object-per-line output (stdout carries nothing else),
 * a short description of the machine, and the statistics used to summarise rounds.
 */
import { readFileSync } from "node:fs"
import * as os from "node:os"

export interface Figure {
  readonly bench: string
  readonly metric: string
  readonly value: number
  readonly unit: string
  /** What exactly was measured: sizes, settings, warm-up, rounds and which statistic `value` is. */
  readonly workload: string
  readonly machine: string
}

export const machine = (): string => {
  const cpus = os.cpus()
  return `node ${process.version} ${os.platform()} ${os.arch()}, ${cpus.length} cpus, ${cpus[0]?.model.trim() ?? "unknown cpu"}`
}

/** The machine's CPU time (all of it, and the part stolen by the hypervisor), in ticks. */
export interface CpuTimes {
  readonly total: number
  readonly steal: number
}

/**
 * `/proc/stat`'s `cpu` line as `CpuTimes`: user nice system idle iowait irq softirq steal (guest
 * time is counted in user already); undefined when there is no such line.
 */
export const parseCpuTimes = (stat: string): CpuTimes | undefined => {
  const line = stat.split("\n").find((l) => l.startsWith("cpu "))
  if (line === undefined) return undefined
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number)
  if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return undefined
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7]! }
}

const readCpuTimes = (): CpuTimes | undefined => {
  try {
    return parseCpuTimes(readFileSync("/proc/stat", "utf8"))
  } catch {
    return undefined // not Linux
  }
}

/** The percentage of `to − from` the hypervisor took; null when it cannot be told. */
export const stealPercent = (from: CpuTimes | undefined, to: CpuTimes | undefined): number | null => {
  if (from === undefined || to === undefined || to.total <= from.total) return null
  return Math.round((1000 * (to.steal - from.steal)) / (to.total - from.total)) / 10
}

let stealMark = readCpuTimes()
let lastSteal: number | null = null

/**
 * One figure, as a JSON line, with `steal_pct`: the share of the machine's CPU time its hypervisor
 * took (steal) since the previous figure or the benchmark's start (figures emitted together, with
 * no time between them, share one), null where the OS does not say. On a shared virtual machine it
 * is what makes a slow figure readable: 40 % steal is 40 % of the cores' time the benchmark did
 * not get.
 */
export const emit = (figure: Figure): void => {
  const now = readCpuTimes()
  const steal = stealPercent(stealMark, now)
  if (steal !== null) {
    stealMark = now
    lastSteal = steal
  }
  const steal_pct = now === undefined ? null : steal ?? lastSteal
  process.stdout.write(JSON.stringify({ ...figure, steal_pct }) + "\n")
}

/** Progress and diagnostics go to stderr so stdout stays machine-readable. */
export const progress = (line: string): void => {
  process.stderr.write(line + "\n")
}

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Nearest-rank percentile (`q` in [0, 1]) of an ascending-sorted sample. */
export const percentile = (sorted: Float64Array, q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

/** `median of 5 rounds (1.52M–1.61M)`: the statistic plus the spread, for the workload text. */
export const spread = (values: ReadonlyArray<number>, format: (value: number) => string): string =>
  `median of ${values.length} rounds (range ${format(Math.min(...values))}–${format(Math.max(...values))})`

/** `global.gc`, which exists only under `node --expose-gc` (as `bench/run.ts` starts benchmarks). */
export const forceGc = (): void => {
  if (global.gc === undefined) {
    throw new Error("global.gc is missing: run benchmarks with `npm run bench -- <name>` (node --expose-gc)")
  }
  global.gc()
}
