/**
 * The command lines the CLI prints for a person to paste (the next page of `swarm runs list`):
 * words a shell would split, expand or take as a comment are single-quoted, a `'` kept as `'\''`.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as CommandLine from "../../src/cli/CommandLine.js"

describe("CommandLine", () => {
  it("leaves plain words alone and quotes the rest", () => {
    expect(CommandLine.line(["swarm", "runs", "list", "--strategy", "sma-crossover", "--before", "run_0123456789ab"]))
      .toBe("swarm runs list --strategy sma-crossover --before run_0123456789ab")
    expect(CommandLine.line(["--strategy", "SMA crossover", "--server", "http://127.0.0.1:7070", "--before", "x#2"]))
      .toBe("--strategy 'SMA crossover' --server http://127.0.0.1:7070 --before x#2")
    expect(CommandLine.quote("#1")).toBe("'#1'")
    expect(CommandLine.quote("")).toBe("''")
  })

  it("a shell gives back every word as it was, whatever it holds", () => {
    const words = ["SMA crossover", "it's", "$HOME", "`id`", "a\\b", "~", "*", "#x", "semi;colon", "new\nline", "'", "\"q\"", "ünï", ""]
    const echoed = execFileSync("sh", ["-c", `printf '%s\\0' ${CommandLine.line(words)}`]).toString("utf8")
    expect(echoed.split("\0").slice(0, -1)).toEqual(words)
  })
})
