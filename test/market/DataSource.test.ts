import { describe, expect, it } from "vitest"
import { fingerprintChange } from "../../src/market/DataSource.js"

const digest = (c: string) => c.repeat(64)

describe("fingerprintChange", () => {
  const then = `csv:ACME.csv=sha256:${digest("a")},GLOBEX.csv=sha256:${digest("b")} from=2022-01-03T00:00:00.000Z`

  it("names each file that changed, went or came, and a changed window, not every digest", () => {
    expect(fingerprintChange(`csv:ACME.csv=sha256:${digest("c")},GLOBEX.csv=sha256:${digest("b")} from=2022-01-03T00:00:00.000Z`, then)).toBe(
      "ACME.csv changed (SHA-256 now cccccccc…, the run read aaaaaaaa…)"
    )
    expect(fingerprintChange(`csv:GLOBEX.csv=sha256:${digest("b")},INITECH.csv=sha256:${digest("d")} from=2022-01-03T00:00:00.000Z`, then)).toBe(
      "ACME.csv is gone; INITECH.csv is new (the run did not read it)"
    )
    expect(fingerprintChange(`csv:ACME.csv=sha256:${digest("a")},GLOBEX.csv=sha256:${digest("b")}`, then)).toBe(
      `the window is now "", the run read "from=2022-01-03T00:00:00.000Z"`
    )
  })

  it("gives nothing for what it cannot read back file by file: the whole fingerprints are said instead", () => {
    expect(fingerprintChange(then, then)).toBeUndefined()
    expect(fingerprintChange("synthetic:abc", then)).toBeUndefined()
    expect(fingerprintChange(`csv:my data.csv=sha256:${digest("a")}`, `csv:my data.csv=sha256:${digest("b")}`)).toBeUndefined()
  })
})
