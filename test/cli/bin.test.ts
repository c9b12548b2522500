/** The installed command end to end: `node bin/swarm.js` in a process of its own, from another working directory. */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Cli from "../../src/cli/Cli.js"
import * as Io from "../../src/cli/Io.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

const spawn = (args: ReadonlyArray<string>, cwd: string) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    const child = execFile(process.execPath, [Path.join(root, "bin", "swarm.js"), ...args], { cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    return Effect.sync(() => void child.kill())
  })

describe("bin/swarm.js", () => {
  it.live("backtest --json from another directory prints the same document as the CLI run in-process", () =>
    Effect.gen(function*() {
      const args = ["backtest", "--data", Path.join(root, "data"), "--strategy", Path.join(root, "examples", "sma-crossover.json"), "--json"]
      const spawned = yield* spawn(args, os.tmpdir())
      expect(spawned.stderr).toBe("")
      expect(spawned.code).toBe(0)
      const document = JSON.parse(spawned.stdout)
      expect(document).toMatchObject({ strategy: "SMA crossover", status: "completed", counts: { bars: 1500 } })

      const captured = Io.capture()
      const code = yield* Cli.run(["backtest", "--data", "data", "--strategy", "examples/sma-crossover.json", "--json"], captured.io).pipe(
        Effect.provide(NodeContext.layer)
      )
      expect(code).toBe(0)
      expect(spawned.stdout).toBe(captured.stdout())
    }), { timeout: 90_000 })
})
