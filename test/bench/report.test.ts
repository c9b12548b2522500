/**
 * What every benchmark line says of the machine beyond the figure: the hypervisor's steal over the
 * figure's time, from /proc/stat, so that a figure measured on a crowded host reads as such.
 */
import { describe, expect, it } from "@effect/vitest"
import { parseCpuTimes, stealPercent } from "../../bench/internal/report.js"

const stat = (user: number, idle: number, steal: number) =>
  `cpu  ${user} 0 100 ${idle} 5 0 3 ${steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\n`

describe("bench report: steal", () => {
  it("reads the machine's cpu line: its total and its steal", () => {
    expect(parseCpuTimes(stat(1000, 800, 92))).toEqual({ total: 1000 + 100 + 800 + 5 + 3 + 92, steal: 92 })
    expect(parseCpuTimes("cpu0 1 2 3 4 5 6 7 8\n")).toBeUndefined()
    expect(parseCpuTimes("cpu  1 2 x 4 5 6 7 8\n")).toBeUndefined()
    expect(parseCpuTimes("cpu  1 2 3\n")).toBeUndefined()
  })

  it("the steal between two readings as a percentage of the time between them", () => {
    const from = parseCpuTimes(stat(1000, 800, 0))
    // 600 ticks later: 300 user, 120 idle, 180 stolen.
    const to = parseCpuTimes(stat(1300, 920, 180))
    expect(stealPercent(from, to)).toBe(30)
    expect(stealPercent(from, from)).toBeNull()
    expect(stealPercent(undefined, to)).toBeNull()
    expect(stealPercent(from, undefined)).toBeNull()
  })
})
