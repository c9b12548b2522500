/** What `swarm runs show` prints of a run a server reports: here, where it stands now. */
import { describe, expect, it } from "@effect/vitest"
import type { PortfolioSnapshot } from "../../schemas/Portfolio.js"
import type { RunInfo } from "../../schemas/Rpc.js"
import * as RemoteView from "../../src/cli/RemoteView.js"

const position = (symbol: string, quantity: number) => ({
  symbol,
  quantity,
  averagePrice: quantity === 0 ? 0 : 100,
  realizedPnl: 0,
  markPrice: 100,
  marketValue: quantity * 100_000_000,
  unrealizedPnl: 0
})

const run = (positions: ReadonlyArray<ReturnType<typeof position>>): RunInfo =>
  ({
    id: "bt-1",
    ref: "SMA crossover#1",
    strategy: "SMA crossover",
    strategyVersion: 1,
    number: 1,
    mode: "backtest",
    status: "completed",
    failure: null,
    metrics: null,
    events: 10,
    checksum: null,
    startedAt: new Date(0),
    finishedAt: new Date(0),
    latest: {
      seq: 9,
      at: 0,
      source: "database",
      quotes: {},
      portfolio: {
        ts: 0,
        cash: 0,
        equity: 0,
        grossExposure: 0,
        netExposure: 0,
        realizedPnl: 0,
        unrealizedPnl: 0,
        positions
      } as unknown as PortfolioSnapshot
    }
  }) as RunInfo

describe("runs show: where the run stands", () => {
  it("counts the open positions of the book, not a flat one a server may still list", () => {
    expect(RemoteView.runShow(run([position("A", 10), position("B", 0), position("C", -5)]))).toMatch(/, 2 open positions at /)
    expect(RemoteView.runShow(run([position("A", 10)]))).toMatch(/, 1 open position at /)
  })
})
