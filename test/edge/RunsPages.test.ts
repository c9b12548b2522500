/**
 * `swarm runs list` pages through more runs than one answer holds, against a live in-process
 * server (the real HTTP edge, the CLI as the binary runs it): 1,001 runs of one user, many started
 * in the same second, listed 1,000 at a time — the largest page a server gives. The table ends
 * with the exact command line of the next page (which needs the key given again, never printed),
 * `--json` pages by its last element's id, and another user's run as the cursor is answered as
 * one that does not exist. On every back-end.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as Http from "../../src/edge/Http.js"
import * as Server from "../../src/edge/Server.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import * as Runs from "../../src/store/Runs.js"
import * as Strategies from "../../src/store/Strategies.js"
import * as Users from "../../src/store/Users.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { strategy } from "../store/fixtures/workload.js"
import { lines, swarm } from "../cli/harness.js"

/** The words a POSIX shell makes of `line`: the printed command run as a person pastes it. */
const shellWords = (line: string) => execFileSync("sh", ["-c", `printf '%s\\0' ${line}`]).toString("utf8").split("\0").slice(0, -1)

const RUNS = 1_001

for (const backend of backends) {
  layer(Server.layer(backend.store, { port: 0, host: "127.0.0.1", logRequests: false }), {
    timeout: startTimeout,
    excludeTestServices: true
  })(`runs list pages (${backend.name})`, (it) => {
    it.effect("more runs than the largest page: the table's last line is the next page's command; --json pages by the last id; another's run is no cursor", () =>
      Effect.gen(function*() {
        const base = yield* Http.baseUrl
        const sql = yield* SqlClient.SqlClient
        const dana = yield* Users.create("pages-dana", "user")
        const key = (yield* ApiKeys.issue(dana.id, "pages")).key
        const eve = yield* Users.create("pages-eve", "user")
        const eveKey = (yield* ApiKeys.issue(eve.id, "pages")).key
        const body = strategy(1, "Paged runs")
        const saved = yield* Strategies.saveVersion(dana.id, body)
        const { id: first } = yield* Runs.create({
          owner: dana.id,
          strategyId: saved.strategyId,
          strategyVersion: saved.version,
          strategy: body,
          mode: "backtest",
          seed: "0",
          dataSource: {},
          dataFingerprint: "fp",
          eventDetail: "decisions"
        })
        // 1,000 more rows like it, in groups of seven sharing a start time.
        yield* sql`insert into runs (id, strategy_id, strategy_version, number, owner_id, mode, status, seed, strategy, data_source, data_fingerprint, event_detail, started_at)
          select 'run_p' || lpad(g::text, 11, '0'), strategy_id, strategy_version, number + g, owner_id, mode, 'completed', seed, strategy, data_source,
            data_fingerprint, event_detail, timestamptz '2026-01-01 00:00:00+00' + (g / 7) * interval '1 second'
          from runs, generate_series(1, ${RUNS - 1}) g where id = ${first}`
        // The first, still running, is the oldest.
        yield* sql`update runs set started_at = '2025-12-31 00:00:00+00' where id = ${first}`
        const listed = (argv: ReadonlyArray<string>, as = key) =>
          swarm([...argv, "--key", as], { environment: {} }).pipe(Effect.tap((r) => expect(r.stderr).toBe("")))
        const shownIds = (stdout: string) => lines(stdout).map((line) => /│ (run_\w+) │/.exec(line)?.[1]).filter((id) => id !== undefined)

        const page1 = yield* listed(["runs", "list", "--strategy", "Paged runs", "--limit", "1000", "--server", base])
        const ids1 = shownIds(page1.stdout)
        expect(ids1).toHaveLength(1_000)
        const tail = lines(page1.stdout).at(-1)!
        expect(tail).toBe(`more runs follow; the next page: swarm runs list --strategy 'Paged runs' --limit 1000 --server ${base} --before ${ids1.at(-1)}`)
        // The command as pasted, with the key given again: the one run left, and nothing more to follow.
        const page2 = yield* listed(shellWords(tail.slice("more runs follow; the next page: ".length)).slice(1))
        const ids2 = shownIds(page2.stdout)
        expect(ids2).toHaveLength(1)
        expect(page2.stdout).not.toContain("more runs follow")
        // No gap, no duplicate: every run once, newest first.
        const all = new Set([...ids1, ...ids2])
        expect(all.size).toBe(RUNS)
        expect(ids2[0]).toBe(first)

        // --json stays an array; the next page is --before its last element's id.
        const json1 = JSON.parse((yield* listed(["runs", "list", "--limit", "1000", "--json", "--server", base])).stdout) as Array<{ id: string }>
        expect(json1.map((r) => r.id)).toEqual(ids1)
        const json2 = JSON.parse((yield* listed(["runs", "list", "--limit", "1000", "--json", "--server", base, "--before", json1.at(-1)!.id])).stdout) as Array<
          { id: string }
        >
        expect(json2.map((r) => r.id)).toEqual(ids2)
        // Pages of 300 with --status: the same runs but the one still running.
        const paged: Array<string> = []
        let before: ReadonlyArray<string> = []
        for (;;) {
          const page = JSON.parse((yield* listed(["runs", "list", "--status", "completed", "--limit", "300", "--json", "--server", base, ...before])).stdout) as Array<
            { id: string }
          >
          paged.push(...page.map((r) => r.id))
          if (page.length < 300) break
          before = ["--before", page.at(-1)!.id]
        }
        expect(paged).toEqual(ids1.filter((id) => id !== first))

        // Another user's run as the cursor: the same line as a run that does not exist, exit 2.
        const theirs = yield* swarm(["runs", "list", "--server", base, "--key", eveKey, "--before", ids1[0]!])
        const none = yield* swarm(["runs", "list", "--server", base, "--key", eveKey, "--before", "run_000000000000"])
        expect([theirs.code, theirs.stderr]).toEqual([2, `swarm: --before: no run "${ids1[0]}" on ${base} (swarm runs list shows yours)\n`])
        expect(none.stderr.replace("run_000000000000", ids1[0]!)).toBe(theirs.stderr)
        const malformed = yield* swarm(["runs", "list", "--server", base, "--key", eveKey, "--before", "x".repeat(201)])
        expect([malformed.code, lines(malformed.stderr)[0]]).toEqual([2, expect.stringMatching(/^swarm: --before: is 201 characters long/)])
      }), { timeout: 180_000 })
  })
}
