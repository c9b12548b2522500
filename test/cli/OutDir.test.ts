import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Path from "node:path"
import * as OutDir from "../../src/cli/OutDir.js"

const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-outdir-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

describe("OutDir", () => {
  it.scoped("a directory that took a file's name during the run fails the commit before any file is moved", () =>
    Effect.gen(function*() {
      const out = Path.join(tmp, "taken-meanwhile")
      fs.mkdirSync(out)
      fs.writeFileSync(Path.join(out, "events.ndjson"), "an earlier run's")
      const staging = yield* OutDir.stage(out)
      for (const name of OutDir.FILES) fs.writeFileSync(Path.join(staging.dir, name), "this run's")
      fs.mkdirSync(Path.join(out, "trades.csv"))
      const committed = yield* Effect.either(staging.commit)
      expect(Either.isLeft(committed) && committed.left.reason).toBe(
        `cannot put the run's files in place: ${Path.join(out, "trades.csv")} is a directory, which the run's trades.csv would replace`
      )
      expect(fs.readFileSync(Path.join(out, "events.ndjson"), "utf8")).toBe("an earlier run's")
      expect(fs.readdirSync(out).sort()).toEqual(["events.ndjson", "trades.csv"])
    }))
})
