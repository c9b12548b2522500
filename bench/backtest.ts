/**
 * Backtest benchmark: replay throughput of a six-analyst swarm (W1), backtrader's 2-million-candle
 * SMA crossover run from its CSV files (W2, ../shared/W2.md), the order path at one order per bar
 * (W3), and the peak memory of W1 at two lengths (it must not grow with the bar count: feeds are
 * lazy and a run keeps no per-bar history). W1 and W3 run here, each the median of measured rounds
 * after a warm-up run; W2 and the memory figures run in fresh processes (internal/backtestChild.ts).
 *
 * `BACKTEST_PARTS=w3` (or any of w1, w3, rss, w2, comma-separated) runs only those parts: W3 alone
 * takes a minute where the whole benchmark takes several.
 */
import { spawn } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Schema } from "effect"
import * as Synthetic from "../src/market/Synthetic.js"
import {
  describeCounts,
  timedRun,
  W1_BARS,
  W1_DESCRIPTION,
  W1_SYMBOLS,
  w1,
  W3_BARS,
  W3_SEED,
  W3_SYMBOLS,
  w3
} from "./internal/backtestWorkloads.js"
import { replayNodeArgs } from "./internal/loader.js"
import { emit, forceGc, machine, median, progress, spread } from "./internal/report.js"

const W1_WARMUP_BARS = 1_000
const W1_ROUNDS = 3
const W3_WARMUP_BARS = 2_000
const W3_ROUNDS = 3
const W2_ROUNDS = 2
const RSS_BARS = [W1_BARS, 2 * W1_BARS] as const

/** `BACKTEST_PARTS=w1,w3,rss,w2`: only those parts (default all). */
const PARTS = new Set((process.env.BACKTEST_PARTS ?? "w1,w3,rss,w2").split(",").map((part) => part.trim()))

const MACHINE = machine()
const figure = (metric: string, value: number, unit: string, workload: string) =>
  emit({ bench: "backtest", metric, value, unit, workload, machine: MACHINE })

const integer = (value: number) => String(Math.round(value))
const seconds = (value: number) => value.toFixed(2)
const benchDir = dirname(fileURLToPath(import.meta.url))

// --- fresh processes -------------------------------------------------------------------------------

/** Run internal/backtestChild.ts with `args` in a fresh `node --expose-gc` process; its stderr passes through. */
const child = <A, I>(schema: Schema.Schema<A, I>, args: ReadonlyArray<string>) =>
  Effect.async<string, Error>((resume) => {
    const proc = spawn(process.execPath, ["--expose-gc", ...replayNodeArgs, join(benchDir, "internal", "backtestChild.ts"), ...args], {
      cwd: dirname(benchDir),
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    proc.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk))
    proc.on("error", (error) => resume(Effect.fail(error)))
    proc.on("close", (code, signal) =>
      resume(
        code === 0
          ? Effect.succeed(out.trim().split("\n").pop() ?? "")
          : Effect.fail(new Error(`backtestChild ${args.join(" ")} exited with ${signal ?? code}`))
      ))
  }).pipe(Effect.flatMap(Schema.decodeUnknown(Schema.parseJson(schema))))

const RssOut = Schema.Struct({ maxRssMb: Schema.Number, seconds: Schema.Number, bars: Schema.Number, orders: Schema.Number, counts: Schema.String })
const W2Out = Schema.Struct({
  seconds: Schema.Number,
  loadSeconds: Schema.Number,
  runSeconds: Schema.Number,
  bars: Schema.Number,
  orders: Schema.Number,
  fills: Schema.Number,
  trades: Schema.Number,
  status: Schema.String,
  counts: Schema.String,
  maxRssMb: Schema.Number
})

// --- W1 --------------------------------------------------------------------------------------------

const w1Figure = Effect.gen(function*() {
  const warm = yield* timedRun("w1 warm-up", w1(W1_SYMBOLS, W1_WARMUP_BARS))
  progress(`w1 warm-up (${W1_SYMBOLS} x ${W1_WARMUP_BARS} bars): ${integer(warm.result.counts.bars / warm.seconds)} bars/s`)
  const rates: Array<number> = []
  let counts = ""
  for (let round = 0; round < W1_ROUNDS; round++) {
    forceGc()
    const { result, seconds: s } = yield* timedRun(`w1 round ${round}`, w1(W1_SYMBOLS, W1_BARS))
    rates.push(result.counts.bars / s)
    counts = describeCounts(result)
    progress(`w1 round ${round}: ${seconds(s)} s, ${integer(result.counts.bars / s)} bars/s; ${counts}`)
  }
  figure(
    "w1_bars_per_sec",
    Math.round(median(rates)),
    "bars/s",
    `${W1_DESCRIPTION(W1_SYMBOLS, W1_BARS)}; Backtest.run timed from the call to its result; per round: ${counts}; ` +
      `1 warm-up run of ${W1_SYMBOLS} x ${W1_WARMUP_BARS} bars, then ${spread(rates, integer)} bars/s`
  )
})

// --- W3 --------------------------------------------------------------------------------------------

const w3Figure = Effect.gen(function*() {
  const warm = yield* timedRun("w3 warm-up", w3(W3_SYMBOLS, W3_WARMUP_BARS))
  progress(`w3 warm-up (${W3_SYMBOLS} x ${W3_WARMUP_BARS} bars): ${integer(warm.result.counts.bars / warm.seconds)} bars/s`)
  const rates: Array<number> = []
  let counts = ""
  for (let round = 0; round < W3_ROUNDS; round++) {
    forceGc()
    const { result, seconds: s } = yield* timedRun(`w3 round ${round}`, w3(W3_SYMBOLS, W3_BARS))
    rates.push(result.counts.bars / s)
    counts = describeCounts(result)
    progress(`w3 round ${round}: ${seconds(s)} s, ${integer(result.counts.bars / s)} bars/s; ${counts}`)
  }
  figure(
    "w3_bars_per_sec",
    Math.round(median(rates)),
    "bars/s",
    `${W3_SYMBOLS} symbols x ${W3_BARS} daily bars (${W3_SYMBOLS * W3_BARS} bars) of Feed.synthetic (Synthetic.defaults, seed ` +
      `${W3_SEED}); strategy: one bench-only analyst (bench/internal/flip.ts, added through Backtest.run's registry option) ` +
      `long on even bars and short on odd ones at confidence 1, allowShort, sizing fixed_quantity 1, next_open fills, no ` +
      `costs, default consensus and risk: every bar of every symbol decides a reversal (+1 to -1 or back, an order of 2 ` +
      `units after the first); events "decisions" (every round changes the target, so every round is recorded); per ` +
      `round: ${counts}; 1 warm-up run of ${W3_SYMBOLS} x ${W3_WARMUP_BARS} bars, then ${spread(rates, integer)} bars/s`
  )
})

// --- peak RSS --------------------------------------------------------------------------------------

const rssFigures = Effect.gen(function*() {
  const runs: Array<typeof RssOut.Type> = []
  for (const bars of RSS_BARS) {
    const out = yield* child(RssOut, ["w1-rss", String(bars)])
    progress(`w1 rss at ${bars} bars/symbol: ${out.maxRssMb.toFixed(1)} MB peak, ${seconds(out.seconds)} s (${integer(out.bars / out.seconds)} bars/s cold)`)
    runs.push(out)
  }
  const [short, long] = runs as [typeof RssOut.Type, typeof RssOut.Type]
  const how = (bars: number) =>
    `process.resourceUsage().maxRSS (peak resident set, whole process: node, modules and the run) of a fresh ` +
    `node --expose-gc process that ran one W1 backtest and nothing else: ${W1_DESCRIPTION(W1_SYMBOLS, bars)}`
  figure("w1_peak_rss_mb", Number(short.maxRssMb.toFixed(1)), "MB", `${how(RSS_BARS[0])}; ${short.counts}; one run`)
  figure("w1_peak_rss_mb_2x", Number(long.maxRssMb.toFixed(1)), "MB", `${how(RSS_BARS[1])}; ${long.counts}; one run`)
  figure(
    "w1_peak_rss_ratio",
    Number((long.maxRssMb / short.maxRssMb).toFixed(3)),
    "ratio",
    `w1_peak_rss_mb_2x / w1_peak_rss_mb: peak RSS at ${RSS_BARS[1]} bars per symbol over peak RSS at ${RSS_BARS[0]} ` +
      `(${long.maxRssMb.toFixed(1)} MB / ${short.maxRssMb.toFixed(1)} MB); 1.0 is flat`
  )
})

// --- W2 --------------------------------------------------------------------------------------------

/** Write the 100 W2 files into a fresh temporary directory (not timed), removed when the scope closes. */
const w2Files = Effect.acquireRelease(
  Effect.promise(async () => {
    const t0 = performance.now()
    const dir = await mkdtemp(join(tmpdir(), "swarm-w2-"))
    for (let i = 0; i < Synthetic.W2_FILES; i++) await writeFile(join(dir, Synthetic.w2FileName(i)), Synthetic.w2Csv(i, Synthetic.W2_ROWS))
    progress(`w2: wrote ${Synthetic.W2_FILES} files x ${Synthetic.W2_ROWS} rows to ${dir} in ${seconds((performance.now() - t0) / 1000)} s`)
    return dir
  }),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const w2Figures = Effect.scoped(Effect.gen(function*() {
  const dir = yield* w2Files
  const runs: Array<typeof W2Out.Type> = []
  for (let round = 0; round < W2_ROUNDS; round++) {
    const out = yield* child(W2Out, ["w2", dir])
    progress(
      `w2 round ${round}: ${seconds(out.seconds)} s (load ${seconds(out.loadSeconds)} s, run ${seconds(out.runSeconds)} s), ` +
        `peak RSS ${out.maxRssMb.toFixed(0)} MB; ${out.counts}`
    )
    runs.push(out)
  }
  const last = runs[runs.length - 1]!
  const same = runs.every((r) => r.orders === last.orders && r.fills === last.fills)
  const walls = runs.map((r) => r.seconds)
  const workload =
    `W2 (../shared/W2.md): ${Synthetic.W2_FILES} CSV files x ${Synthetic.W2_ROWS} 15-minute rows (${last.bars} bars), ` +
    `written to a temporary directory first (not timed); timed in a fresh node --expose-gc process from Feed.load of the ` +
    `directory (read, parse, SHA-256 fingerprint) to Backtest.run's result; strategy: one sma_crossover analyst ` +
    `(fast 10, slow 50) on all 100 symbols, allowShort, sizing fixed_quantity 1 (long or short one unit, reversing), ` +
    `next_open fills, no commission or slippage, default consensus and risk, events "decisions"; ` +
    `${last.counts}; load ${runs.map((r) => seconds(r.loadSeconds)).join(", ")} s, run ` +
    `${runs.map((r) => seconds(r.runSeconds)).join(", ")} s, peak RSS ${runs.map((r) => r.maxRssMb.toFixed(0)).join(", ")} MB` +
    `${same ? "" : " (order counts differed between rounds!)"}; ${spread(walls, seconds)} s. backtrader 1.9.78 on CPython ` +
    `3.11 on this kind of machine: 241 s, about 297 k orders`
  figure("w2_wall_seconds", Number(median(walls).toFixed(2)), "s", workload)
  figure("w2_orders", last.orders, "orders", `the orders of the W2 run of w2_wall_seconds (every round the same: ${same})`)
  figure("w2_fills", last.fills, "fills", `the fills of the W2 run of w2_wall_seconds (every round the same: ${same})`)
}))

const main = Effect.gen(function*() {
  const unknown = [...PARTS].filter((part) => !["w1", "w3", "rss", "w2"].includes(part))
  if (unknown.length > 0) return yield* Effect.fail(new Error(`BACKTEST_PARTS: unknown part ${unknown.join(", ")} (the parts are w1, w3, rss, w2)`))
  if (PARTS.has("w1")) yield* w1Figure
  if (PARTS.has("w3")) yield* w3Figure
  if (PARTS.has("rss")) yield* rssFigures
  if (PARTS.has("w2")) yield* w2Figures
})

Effect.runPromise(main).catch((error: unknown) => {
  progress(`backtest benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  process.exitCode = 1
})
