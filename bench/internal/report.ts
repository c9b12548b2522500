/**
 * What every benchmark shares: the one-JSON-object-per-line output (stdout carries nothing else),
 * a short description of the machine, and the statistics used to summarise rounds.
 */
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

export const emit = (figure: Figure): void => {
  process.stdout.write(JSON.stringify(figure) + "\n")
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
