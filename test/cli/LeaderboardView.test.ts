/** What `swarm leaderboard` prints of the board a server answers. */
import { describe, expect, it } from "@effect/vitest"
import { view } from "../../src/cli/LeaderboardCommand.js"

const entry = (strategy: string, value: number | null, owner?: string) => ({
  strategy,
  run: `run_${strategy.toLowerCase()}`,
  ref: `${strategy}#1`,
  value,
  ...(owner === undefined ? {} : { owner })
})

describe("swarm leaderboard's table", () => {
  it("ranks, shows fractions as percentages and ratios as numbers", () => {
    const returns = view("totalReturn", [entry("Up", 0.1234), entry("Down", -0.05)])
    expect(returns).toMatch(/│ 1 │ Up +│ Up#1 +│ run_up +│ +\+12\.34% │/)
    expect(returns).toMatch(/│ 2 │ Down +│ Down#1 +│ run_down +│ +-5\.00% │/)
    expect(view("maxDrawdown", [entry("Calm", 0.031)])).toMatch(/│ +3\.10% │/)
    expect(view("sharpe", [entry("Sharp", 1.2345)])).toMatch(/│ +1\.23 │/)
  })

  it("says why a null value ranks first: it is unbounded in the good direction", () => {
    expect(view("profitFactor", [entry("Never lost", null), entry("Lost", 1.5)])).toMatch(/│ 1 │ Never lost .*│ ∞ \(no losing trade\) │/)
    expect(view("sortino", [entry("No down day", null)])).toContain("∞ (no day below the target)")
    expect(view("calmar", [entry("No drawdown", null)])).toContain("∞ (no drawdown)")
  })

  it("names the owners on an admin's board of several users' strategies, and says when there is nothing to rank", () => {
    const both = view("totalReturn", [entry("Same", 0.1, "alice"), entry("Same", 0.05, "bob")])
    expect(both).toMatch(/│ #.*│ strategy .*│ owner .*│/)
    expect(both).toMatch(/│ 1 │ Same +│ alice │/)
    expect(view("totalReturn", [entry("Mine", 0.1, "alice")])).not.toContain("owner")
    expect(view("sharpe", [])).toBe("no completed run to rank by sharpe\n")
  })

  it("a later page ranks on from its offset and ends with the command for the next", () => {
    const page = view("totalReturn", [entry("Third", 0.01), entry("Fourth", 0)], { offset: 2, next: "swarm leaderboard --limit 2 --offset 4" })
    expect(page).toMatch(/│ 3 │ Third /)
    expect(page).toMatch(/│ 4 │ Fourth /)
    expect(page.endsWith("\nthe next page: swarm leaderboard --limit 2 --offset 4\n")).toBe(true)
    expect(view("sharpe", [], { offset: 20 })).toBe("no strategy ranked below #20 by sharpe\n")
  })
})
