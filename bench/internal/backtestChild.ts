/**
 * One workload of bench/backtest.ts in a fresh `node --expose-gc` process, for the figures a warm,
 * used heap would spoil: peak RSS (`process.resourceUsage().maxRSS` is the process's high-water
 * mark, so each size needs its own process) and W2's cold wall time (backtrader's figure is a
 * fresh interpreter's). Prints one JSON line for the parent; progress goes to stderr.
 *
 *   backtestChild.ts w1-rss <bars per symbol>
 *   backtestChild.ts w2 <directory of the W2 files>
 */
import { Effect } from "effect"
import * as Feed from "../../src/market/Feed.js"
import { describeCounts, timedRun, W1_SYMBOLS, w1, w2Strategy } from "./backtestWorkloads.js"
import { progress } from "./report.js"

const [mode, arg] = process.argv.slice(2)

const w1Rss = (bars: number) =>
  Effect.gen(function*() {
    const { result, seconds } = yield* timedRun(`w1 ${bars} bars/symbol`, w1(W1_SYMBOLS, bars))
    return {
      maxRssMb: process.resourceUsage().maxRSS / 1024,
      seconds,
      bars: result.counts.bars,
      orders: result.counts.orders,
      counts: describeCounts(result)
    }
  })

const w2 = (dir: string) =>
  Effect.gen(function*() {
    const t0 = performance.now()
    // W2.md: every field is drawn on its own, so highs below lows are the data; read as given.
    const feed = yield* Feed.load([dir], { parse: { ohlc: "as-given" } })
    const t1 = performance.now()
    progress(`  w2: loaded ${feed.bars} bars of ${feed.symbols.length} files in ${((t1 - t0) / 1000).toFixed(2)} s`)
    const { result } = yield* timedRun("w2", { strategy: w2Strategy(), feed })
    const t2 = performance.now()
    return {
      seconds: (t2 - t0) / 1000,
      loadSeconds: (t1 - t0) / 1000,
      runSeconds: (t2 - t1) / 1000,
      bars: result.counts.bars,
      orders: result.counts.orders,
      fills: result.counts.fills,
      trades: result.trades.length,
      status: result.status,
      counts: describeCounts(result),
      maxRssMb: process.resourceUsage().maxRSS / 1024
    }
  })

const main = mode === "w1-rss" && Number.isInteger(Number(arg))
  ? w1Rss(Number(arg))
  : mode === "w2" && arg !== undefined
  ? w2(arg)
  : Effect.dieMessage(`usage: backtestChild.ts w1-rss <bars> | w2 <dir> (got ${process.argv.slice(2).join(" ")})`)

Effect.runPromise(main).then(
  (out) => process.stdout.write(JSON.stringify(out) + "\n"),
  (error: unknown) => {
    progress(`backtest child (${process.argv.slice(2).join(" ")}) failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
    process.exitCode = 1
  }
)
