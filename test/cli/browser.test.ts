/**
 * The dashboard the repository ships (examples/dashboard.html) in a real browser (headless
 * Chromium, driven by playwright-core), served from another origin than the server's — as a
 * dashboard served from elsewhere is — against the real `swarm serve` binary on a fresh embedded
 * database that allows that page's origin only (`SWARM_CORS_ORIGINS`):
 * - it lists the runs with `fetch(POST /rpc)` and the key (a preflighted request), and its watch
 *   button follows the demo paper run live with `EventSource` and `?token=`. The test cuts the
 *   connection under it; the browser reconnects by itself with `Last-Event-ID`, and the page has
 *   every event once, in order — no gap, no duplicate;
 * - a backtest it starts is followed to its `end` event, and the browser's own reconnection after
 *   the close gets the 204 that stops it: the stream is not reopened every `retry:`. A bad key's
 *   refusal is readable, and shown;
 * - in a paper run, an intent waiting for a human shows when it expires in wall-clock time; it is
 *   approved with the page's button (in view without scrolling sideways, at 1400 and 1000 px),
 *   the next rejected with the reason typed beside it; the run
 *   records both, and a second answer is the server's conflict; one still waiting when the run is
 *   stopped is shown cancelled, with no buttons;
 * - a paper run is paused, resumed and stopped with the page's buttons, its status shown as the
 *   server has it; no event comes while it is paused; paused and resumed elsewhere, the page says
 *   so from its stream at once, by whom and since when, and a page opened on it paused says so first;
 * - a question typed in the page's chat box is answered there, streamed, and live in another page
 *   following the run (the chat's SSE stream); a page opened later reads it from the history;
 * - a page away while an answer was given, back on a restarted server (which holds no answer from
 *   before: its chat stream says `event: missed`), says part of an answer was missed and shows the
 *   answer it did not see, read again from the history (last: the server is restarted);
 * - the same page from an origin not allowed can read neither the runs nor a stream.
 *
 * Chromium is Debian's (`/usr/bin/chromium`, or `SWARM_CHROMIUM`). Without it the file is
 * skipped, unless `SWARM_REQUIRE_BROWSER=1` (set by .ci/run once it has installed Chromium), when
 * it fails instead.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { SchemaAST } from "effect"
import { type Browser, chromium, type Page } from "playwright-core"
import { RunEvent } from "../../schemas/RunEvent.js"
import { ProcessGroups, type Served } from "./processes.js"

const CHROMIUM = process.env.SWARM_CHROMIUM ?? "/usr/bin/chromium"
const required = process.env.SWARM_REQUIRE_BROWSER === "1"
const available = fs.existsSync(CHROMIUM)

// ---------------------------------------------------------------------------------------------
// Helpers: a page server, a proxy the test can cut, the dashboard page

/** An HTTP server on a free port of 127.0.0.1 answering every GET with `html`: a page of its own origin. */
const pageServer = async (html: string) => {
  const server = http.createServer((_request, response) => {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" })
    response.end(html)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as net.AddressInfo
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

/**
 * A TCP proxy in front of the server: `cut()` drops every connection through it, as a network
 * failure would; `refuse(true)` drops each new one at once (a server away) until `refuse(false)`;
 * `retarget(port)` sends the next ones to another port (a server restarted there); `heads` holds
 * the start of each request that came through (method, path, headers).
 */
const proxy = async (initial: number) => {
  const sockets = new Set<net.Socket>()
  const heads: Array<string> = []
  let target = initial
  let refusing = false
  const server = net.createServer((client) => {
    if (refusing) return void client.destroy()
    const upstream = net.connect(target, "127.0.0.1")
    // Every request of the connection (keep-alive: an EventSource may reuse a fetch's), by its head.
    let text = ""
    client.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1")
      for (;;) {
        const start = text.search(/(GET|POST|OPTIONS|HEAD) \S+ HTTP\/1\.[01]\r\n/)
        const end = start < 0 ? -1 : text.indexOf("\r\n\r\n", start)
        if (end < 0) break
        heads.push(text.slice(start, end))
        text = text.slice(end + 4)
      }
    })
    client.pipe(upstream).pipe(client)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("close", () => {
        sockets.delete(socket)
        client.destroy()
        upstream.destroy()
      })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    base: `http://127.0.0.1:${port}`,
    heads,
    cut: () => {
      for (const socket of sockets) socket.destroy()
    },
    refuse: (on: boolean) => {
      refusing = on
    },
    retarget: (port: number) => {
      target = port
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/** The dashboard the repository ships: the page the browser opens. */
const DASHBOARD = fs.readFileSync(fileURLToPath(new URL("../../examples/dashboard.html", import.meta.url)), "utf8")

/** Every run event's type, from the schema: the dashboard must listen to each (an EventSource hears no other). */
const EVENT_TYPES = RunEvent.members.map((member) => {
  const tag = SchemaAST.getPropertySignatures(member.ast).find((p) => p.name === "_tag")!.type
  return (tag as SchemaAST.Literal).literal as string
})

/** What the dashboard has seen (its `window.swarm`). */
interface Seen {
  readonly events: ReadonlyArray<{ readonly id: number; readonly type: string }>
  readonly end: { readonly run: string; readonly lastEventId: number; readonly status: string } | undefined
  readonly opens: number
  readonly errors: number
  readonly readyState: number
}

interface Dashboard extends Seen {
  readonly rpc: (tag: string, payload: unknown) => Promise<any>
  readonly listRuns: () => Promise<void>
}

const seen = (page: Page): Promise<Seen> =>
  page.evaluate(() => {
    const { end, errors, events, opens, readyState } = (globalThis as unknown as { swarm: Seen }).swarm
    return { end, errors, events, opens, readyState }
  })

/** Poll the page until `done` holds of what it has seen, or fail after `millis`. */
const until = async (page: Page, done: (s: Seen) => boolean, millis: number, what: string): Promise<Seen> => {
  const deadline = Date.now() + millis
  for (;;) {
    const s = await seen(page)
    if (done(s)) return s
    if (Date.now() > deadline) throw new Error(`the page did not see ${what} in ${millis} ms: ${JSON.stringify({ ...s, events: s.events.length })}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** The first `count` ApprovalResolved events of a run's SSE stream, read with fetch. */
const resolutions = async (url: string, count: number): Promise<Array<Record<string, unknown>>> => {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), 30_000)
  const found: Array<Record<string, unknown>> = []
  try {
    const response = await fetch(url, { signal: controller.signal })
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ""
    while (found.length < count) {
      const { done, value } = await reader.read()
      if (done) break
      text += value
      let end: number
      while ((end = text.indexOf("\n\n")) >= 0) {
        const frame = text.slice(0, end)
        text = text.slice(end + 2)
        if (/^event: ApprovalResolved$/m.test(frame)) found.push(JSON.parse(/^data: (.*)$/m.exec(frame)![1]!))
      }
    }
  } finally {
    clearTimeout(timer)
    controller.abort()
  }
  return found.slice(0, count)
}

/**
 * In the page: how many buttons the approvals panel has, whether it scrolls sideways, and those of
 * its buttons that are not wholly inside its box and the window (a DOM expression: this file has no DOM types).
 */
const BUTTONS_IN_VIEW = `(() => {
  const panel = document.getElementById("approvals").parentElement
  const box = panel.getBoundingClientRect()
  const buttons = [...panel.querySelectorAll("button")]
  const outside = buttons.filter((b) => {
    const r = b.getBoundingClientRect()
    return r.left < box.left || r.right > box.right || r.right > window.innerWidth
  })
  return { buttons: buttons.length, scrolls: panel.scrollWidth > panel.clientWidth, outside: outside.map((b) => b.dataset.action) }
})()`

/** Every id once, in order, from 1. */
const expectNoGapNoDuplicate = (events: Seen["events"]) => {
  const ids = events.map((e) => e.id)
  expect(ids).toEqual(ids.map((_, i) => i + 1))
}

// ---------------------------------------------------------------------------------------------

const tmp = fs.mkdtempSync(Path.join(os.tmpdir(), "swarm-browser-"))
const processes = new ProcessGroups()

describe.skipIf(!available && !required)("a dashboard in a browser (headless Chromium)", () => {
  let browser: Browser
  let served: Served
  let key: string
  let demoRun: string
  let page: Awaited<ReturnType<typeof pageServer>>
  let foreign: Awaited<ReturnType<typeof pageServer>>
  let front: Awaited<ReturnType<typeof proxy>>
  /** The server's environment, for a restart. */
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    if (!available) throw new Error(`SWARM_REQUIRE_BROWSER=1 but there is no Chromium at ${CHROMIUM} (apt-get install chromium)`)
    // A page server on each of two origins: the allowed one, and another.
    page = await pageServer(DASHBOARD)
    foreign = await pageServer(DASHBOARD)
    env = Object.fromEntries(
      Object.entries({ ...process.env, SWARM_DATA_DIR: Path.join(tmp, "data"), SWARM_CORS_ORIGINS: page.origin })
        .filter(([k]) => k !== "DATABASE_URL" && k !== "REDIS_URL")
    )
    served = await processes.serve({ cwd: tmp, env, settle: 0 })
    // The first start's key and demo run come after the listening line: on a loaded machine, more
    // than a second after it (the suite failed reading them a fixed second later). Its last line is
    // the dashboard's address, naming both.
    for (let i = 0; i < 300 && !/#server=\S+&key=\S+&run=\S+\n/.test(served.stdout()); i++) await new Promise((r) => setTimeout(r, 100))
    key = /sk_[A-Za-z0-9_-]{43}/.exec(served.stdout())![0]
    demoRun = /run (run_[0-9a-f]+)/.exec(served.stdout())![1]!
    front = await proxy(Number(new URL(served.base).port))
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Debian's Chromium as root, on a machine with no network beyond loopback.
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    })
  }, 90_000)

  afterAll(async () => {
    await browser?.close()
    await front?.close()
    await page?.close()
    await foreign?.close()
    processes.killAll()
    fs.rmSync(tmp, { recursive: true, force: true })
  })

  /** `chat.send` of `message` about `run`, asked of the server itself (not through the proxy), read to the answer's end: its chunks. */
  const askServer = async (run: string, message: string): Promise<Array<Record<string, any>>> => {
    const response = await fetch(`${served.base}/rpc`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/ndjson" },
      body: `${JSON.stringify({ _tag: "Request", id: "1", tag: "chat.send", payload: { run, message }, headers: [] })}\n`
    })
    const lines = (await response.text()).split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as Record<string, any>)
    expect(lines.find((line) => line._tag === "Exit")?.exit).toMatchObject({ _tag: "Success" })
    return lines.filter((line) => line._tag === "Chunk").flatMap((line) => line.values as Array<Record<string, any>>)
  }

  /** The dashboard on `origin`, given the server (through the proxy) and `key` in its fragment: it lists the runs. */
  const open = async (origin: string, k = key) => {
    const tab = await browser.newPage()
    await tab.goto(`${origin}/dashboard.html#server=${encodeURIComponent(front.base)}&key=${encodeURIComponent(k)}`)
    return tab
  }
  const rpc = (tab: Page, tag: string, payload: unknown) =>
    tab.evaluate(([t, p]) => (globalThis as unknown as { swarm: Dashboard }).swarm.rpc(t as string, p), [tag, payload] as const)
  const closeSource = (tab: Page) =>
    tab.evaluate(() => (globalThis as unknown as { swarm: { source: { close: () => void } } }).swarm.source.close())

  it("the server says which origins it allows", () => {
    expect(served.stderr()).toContain(`cross-origin requests (CORS): web pages of ${page.origin} may call the server with a key`)
  })

  it("the dashboard lists the runs; watching the live demo run, cut under it, the browser resumes with Last-Event-ID: no gap, no duplicate", async () => {
    const tab = await open(page.origin)
    // runs.list over fetch (a preflighted POST): the demo run is there, with a button to watch it.
    const watch = tab.locator(`button[data-run="${demoRun}"]`)
    await watch.waitFor({ timeout: 30_000 })
    await watch.click()
    const before = await until(tab, (s) => s.events.length >= 30, 30_000, "30 events")
    expect(before.opens).toBe(1)
    expect(before.events[0]).toEqual({ id: 1, type: "RunStarted" })
    expect(await tab.locator("#run").textContent()).toBe("Six analysts#1")

    const requests = front.heads.length
    front.cut()
    const cutAt = (await seen(tab)).events.length
    // The browser notices, waits the `retry:` the server advised (1 s) and comes back by itself.
    const after = await until(tab, (s) => s.opens >= 2 && s.events.length >= cutAt + 30, 30_000, "a reconnection and 30 more events")
    expect(after.errors).toBeGreaterThanOrEqual(1)
    await closeSource(tab)
    const all = (await seen(tab)).events
    expectNoGapNoDuplicate(all)
    // The reconnection said where it was: Last-Event-ID, the last id the page had before the cut.
    const reconnect = front.heads.slice(requests).find((head) => head.startsWith(`GET /v1/runs/${demoRun}/events`))
    expect(reconnect).toBeDefined()
    const lastEventId = /^last-event-id: *(\d+)$/im.exec(reconnect!)?.[1]
    expect(Number(lastEventId)).toBe(all[cutAt - 1]!.id)
    // What the page shows comes from the events: decisions made, a portfolio.
    expect(await tab.locator("#decisions tbody tr").count()).toBeGreaterThan(0)
    expect(await tab.locator("#equity").textContent()).toMatch(/^[\d,]+\.\d\d$/)
    expect(await tab.locator("#status").textContent()).toContain("events")
    await tab.close()
  }, 90_000)

  it("a backtest started with fetch, followed to its end; the browser's reconnection gets the 204 that stops it; a bad key's refusal is shown", async () => {
    const tab = await open(page.origin)
    const started = await rpc(tab, "runs.start", { strategy: "Six analysts", mode: "backtest", data: { _tag: "sample" } })
    expect(started).toMatchObject({ mode: "backtest", strategy: "Six analysts" })

    const requests = front.heads.length
    await tab.evaluate(([r, ref]) => (globalThis as unknown as { swarm: { follow: (r: string, ref: string) => void } }).swarm.follow(r!, ref!), [started.id, started.ref])
    const ended = await until(tab, (s) => s.end !== undefined && s.readyState === 2, 60_000, "the end of the run, then a closed EventSource")
    expect(ended.end).toMatchObject({ run: started.id, status: "completed" })
    expectNoGapNoDuplicate(ended.events)
    expect(ended.events.length).toBe(ended.end!.lastEventId)
    expect(ended.events.at(-1)!.type).toBe("RunCompleted")
    expect(await tab.locator("#status").textContent()).toBe(`ended: completed · ${ended.events.length} events`)
    // Closed for good: after three `retry:` intervals, still the first request and the one reconnection (the 204).
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const streams = front.heads.slice(requests).filter((head) => head.startsWith(`GET /v1/runs/${started.id}/events`))
    expect(streams).toHaveLength(2)
    expect(streams[1]).toMatch(new RegExp(`^last-event-id: *${ended.end!.lastEventId}$`, "im"))
    expect((await seen(tab)).readyState).toBe(2)
    await tab.close()

    // A key the server does not know: the refusal is the page's to read and show.
    const refused = await open(page.origin, "sk_not_a_key")
    await refused.locator("#error").filter({ hasText: "cannot list runs" }).waitFor({ timeout: 10_000 })
    expect(await refused.locator("#error").textContent()).toMatch(/^cannot list runs: .*API key/)
    await refused.close()
  }, 90_000)

  it("a paper run's intents waiting for a human: expiry in wall-clock time, one approved, one rejected with a reason, one left at the stop shown cancelled", async () => {
    const tab = await open(page.origin)
    // Every order that opens a position is above 5 % of equity: each waits for an operator.
    await rpc(tab, "strategies.create", {
      strategy: {
        name: "Guarded",
        symbols: ["ACME"],
        agents: [{ type: "sma_crossover", params: { fast: 3, slow: 8 } }],
        sizing: { mode: "percent_of_equity", value: 10 },
        risk: { approval: { notionalPctAbove: 5, policy: "pause" } }
      }
    })
    // A paper run, 50 bars a second: its approvals expire in wall-clock time.
    const started = await rpc(tab, "runs.start", { strategy: "Guarded", mode: "paper", data: { _tag: "sample" }, speed: 50 * 86_400 })
    await tab.evaluate(([r, ref]) => (globalThis as unknown as { swarm: { follow: (r: string, ref: string) => void } }).swarm.follow(r!, ref!), [started.id, started.ref])

    const waiting = tab.locator("#approvals tbody tr")
    await waiting.first().waitFor({ timeout: 30_000 })
    const first = await waiting.first().getAttribute("data-round")
    // When it expires: the server's wall-clock time (the default 15 minutes from now), not the run's clock (2022).
    await waiting.first().locator(".expires").filter({ hasText: "UTC" }).waitFor({ timeout: 10_000 })
    const expires = Date.parse(`${(await waiting.first().locator(".expires").textContent())!.replace(" UTC", "").replace(" ", "T")}Z`)
    // The run's status says what it waits for (it is running, not paused: its intent waits, the run with it).
    expect(await tab.locator("#runstatus").textContent()).toBe("running")
    expect(await tab.locator("#runwhy").textContent()).toBe("(waiting for an approval)")
    expect(expires - Date.now()).toBeGreaterThan(13 * 60_000)
    expect(expires - Date.now()).toBeLessThanOrEqual(15 * 60_000)
    // Its buttons are in the panel's visible box, on a 1400- and a 1000-pixel-wide window: no scrolling sideways to answer.
    for (const width of [1400, 1000]) {
      await tab.setViewportSize({ width, height: 900 })
      expect(await tab.evaluate(BUTTONS_IN_VIEW), `${width} px`).toEqual({ buttons: 2, scrolls: false, outside: [] })
    }
    await waiting.first().locator('button[data-action="approve"]').click()
    // Recorded by the run (ApprovalResolved), the row goes; the run goes on to the next intent.
    const next = tab.locator(`#approvals tbody tr:not([data-round="${first}"])`)
    await next.first().waitFor({ timeout: 30_000 })
    expect(await tab.locator(`#approvals tbody tr[data-round="${first}"]`).count()).toBe(0)
    const second = await next.first().getAttribute("data-round")
    await next.first().locator("input").fill("too big for a Friday")
    await next.first().locator('button[data-action="reject"]').click()
    await tab.locator(`#approvals tbody tr[data-round="${second}"]`).waitFor({ state: "detached", timeout: 30_000 })
    expect(await tab.locator("#error").textContent()).toBe("")

    // What the run recorded, read apart from the page.
    const resolved = await resolutions(`${served.base}/v1/runs/${started.id}/events?token=${key}`, 2)
    expect(resolved).toEqual([
      expect.objectContaining({ round: first, outcome: "approved", by: "admin" }),
      expect.objectContaining({ round: second, outcome: "rejected", by: "admin", reason: "too big for a Friday" })
    ])
    // Answered already: the server's conflict, as the page gets it.
    const again = await tab.evaluate(([r, round]) =>
      (globalThis as unknown as { swarm: Dashboard }).swarm.rpc("approvals.approve", { run: r, round })
        .then(() => "answered", (error: Error) => error.message), [started.id, first] as const)
    expect(again).toBe(`round ${first} of run ${started.id} was approved already, by admin`)
    // Stopped with an intent waiting: the page says it is cancelled, and offers no answer to it.
    const third = tab.locator(`#approvals tbody tr:not([data-round="${first}"]):not([data-round="${second}"])`)
    await third.first().waitFor({ timeout: 30_000 })
    await rpc(tab, "runs.stop", { run: started.id })
    await until(tab, (s) => s.end !== undefined, 30_000, "the end of the stopped run")
    expect(await third.first().getAttribute("data-cancelled")).toBe("true")
    expect(await third.first().locator("td").last().textContent()).toBe("cancelled: the run stopped before anyone answered")
    expect(await tab.locator("#approvals button").count()).toBe(0)
    await tab.close()
  }, 90_000)

  it("a paper run paused, resumed and stopped with the page's buttons: its status shows, no event comes while paused, the stop ends it", async () => {
    const tab = await open(page.origin)
    // Ten bars a second: a paused run would have given some in the second the test waits.
    const started = await rpc(tab, "runs.start", { strategy: "Six analysts", mode: "paper", data: { _tag: "sample" }, speed: 10 * 86_400 })
    await tab.evaluate(([r, ref]) => (globalThis as unknown as { swarm: { follow: (r: string, ref: string) => void } }).swarm.follow(r!, ref!), [started.id, started.ref])
    const status = tab.locator("#runstatus")
    const button = (action: string) => tab.locator(`#controls button[data-control="${action}"]`)
    await status.filter({ hasText: /^running$/ }).waitFor({ timeout: 10_000 })
    await until(tab, (s) => s.events.length >= 10, 30_000, "10 events")
    expect([await button("pause").isEnabled(), await button("resume").isEnabled(), await button("stop").isEnabled()]).toEqual([true, false, true])
    // Listed while it runs: its row says running.
    await tab.locator("#connect button").click()
    const listed = tab.locator("#runs tbody tr").filter({ has: tab.locator(`button[data-run="${started.id}"]`) }).locator("td:nth-child(3)")
    await listed.filter({ hasText: /^running$/ }).waitFor({ timeout: 10_000 })

    await button("pause").click()
    await status.filter({ hasText: /^paused$/ }).waitFor({ timeout: 10_000 })
    expect((await rpc(tab, "runs.get", { run: started.id })).status).toBe("paused")
    expect([await button("pause").isEnabled(), await button("resume").isEnabled(), await button("stop").isEnabled()]).toEqual([false, true, true])
    // What the run had committed before the pause is delivered; nothing after.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const paused = (await seen(tab)).events.length
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect((await seen(tab)).events.length).toBe(paused)

    await button("resume").click()
    await status.filter({ hasText: /^running$/ }).waitFor({ timeout: 10_000 })
    await until(tab, (s) => s.events.length >= paused + 5, 30_000, "events again after the resume")

    await button("stop").click()
    const ended = await until(tab, (s) => s.end !== undefined, 30_000, "the end of the stopped run")
    expect(ended.end!.status).toBe("stopped")
    expectNoGapNoDuplicate(ended.events)
    expect(await status.textContent()).toBe("stopped")
    // The runs table, listed while it ran, says so too.
    expect(await listed.textContent()).toBe("stopped")
    expect(await tab.locator("#controls button:enabled").count()).toBe(0)
    expect(await tab.locator("#error").textContent()).toBe("")
    // The server's conflict, as the page shows it: a stopped run cannot be paused.
    const again = await tab.evaluate((r) =>
      (globalThis as unknown as { swarm: Dashboard }).swarm.rpc("runs.pause", { run: r }).then(() => "paused", (error: Error) => error.message), started.id)
    expect(again).not.toBe("paused")
    await tab.close()
  }, 90_000)

  it("a paper run paused and resumed elsewhere: a page following it shows it at once, by whom and since when; a page opened on the paused run shows it paused", async () => {
    const tab = await open(page.origin)
    const started = await rpc(tab, "runs.start", { strategy: "Six analysts", mode: "paper", data: { _tag: "sample" }, speed: 10 * 86_400 })
    const follow = (t: Page) =>
      t.evaluate(([r, ref]) => (globalThis as unknown as { swarm: { follow: (r: string, ref: string) => void } }).swarm.follow(r!, ref!), [started.id, started.ref])
    await follow(tab)
    const status = (t: Page) => t.locator("#runstatus")
    const why = (t: Page) => t.locator("#runwhy")
    await status(tab).filter({ hasText: /^running$/ }).waitFor({ timeout: 10_000 })
    await until(tab, (s) => s.events.length >= 3, 30_000, "3 events")
    // Not the page's button: another client's pause (the CLI's, another page's), which the page learns from its stream.
    await rpc(tab, "runs.pause", { run: started.id })
    await status(tab).filter({ hasText: /^paused$/ }).waitFor({ timeout: 2_500 })
    await why(tab).filter({ hasText: /^\(by \S+ since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$/ }).waitFor({ timeout: 2_500 })
    // Opened on the paused run: paused, before any poll could say so.
    const late = await open(page.origin)
    await follow(late)
    await status(late).filter({ hasText: /^paused$/ }).waitFor({ timeout: 2_500 })
    // The status may come first from the page's one `runs.get` (it says no who); the who and the
    // since come only with the stream's status frame, which must follow within the same bound.
    const pausedWhy = (await why(tab).textContent())!
    await why(late).filter({ hasText: pausedWhy }).waitFor({ timeout: 2_500 })
    expect(await why(late).textContent()).toBe(pausedWhy)
    expect(await late.locator('#controls button[data-control="resume"]').isEnabled()).toBe(true)

    await rpc(tab, "runs.resume", { run: started.id })
    for (const t of [tab, late]) {
      await status(t).filter({ hasText: /^running$/ }).waitFor({ timeout: 2_500 })
      await why(t).filter({ hasText: /^\(resumed by \S+ at .+ UTC\)$/ }).waitFor({ timeout: 2_500 })
    }
    await rpc(tab, "runs.stop", { run: started.id })
    await until(tab, (s) => s.end !== undefined, 30_000, "the end of the stopped run")
    expect(await status(tab).textContent()).toBe("stopped")
    expect(await why(tab).textContent()).toBe("")
    await late.close()
    await tab.close()
  }, 90_000)

  it("the chat: a question asked in one page is answered there and, live, in another following the run; a page opened later reads it from the history", async () => {
    const asker = await open(page.origin)
    const started = await rpc(asker, "runs.start", { strategy: "Six analysts", mode: "backtest", data: { _tag: "sample" } })
    const follow = (tab: Page) =>
      tab.evaluate(([r, ref]) => (globalThis as unknown as { swarm: { follow: (r: string, ref: string) => void } }).swarm.follow(r!, ref!), [started.id, started.ref])
    await follow(asker)
    await until(asker, (s) => s.end !== undefined, 60_000, "the end of the run")
    const watcher = await open(page.origin)
    await follow(watcher)
    await until(watcher, (s) => s.opens >= 1, 10_000, "the run's stream open")
    // The chat's stream is open too (the history read): the watcher is listening when the question comes.
    await watcher.waitForFunction(() => (globalThis as unknown as { swarm: { chat: { loaded: boolean } } }).swarm.chat.loaded, undefined, { timeout: 10_000 })

    await asker.locator("#question").fill("Which trades lost money?")
    await asker.locator("#ask button").click()
    const answered = (tab: Page) => tab.locator(`#chat div[data-done="true"]`).first()
    for (const tab of [asker, watcher]) {
      await answered(tab).waitFor({ timeout: 30_000 })
      expect(await answered(tab).locator(".q").textContent()).toBe("Which trades lost money?")
      expect(await answered(tab).locator(".a").textContent()).toMatch(/^\d+ trades, \d+ won and \d+ lost /)
      expect(await answered(tab).locator(".tool").first().textContent()).toMatch(/^tool analyse_trades: \d+ trades/)
    }
    const answer = await answered(asker).locator(".a").textContent()
    expect(await answered(watcher).locator(".a").textContent()).toBe(answer)
    expect(await asker.locator("#error").textContent()).toBe("")

    const later = await open(page.origin)
    await follow(later)
    await answered(later).waitFor({ timeout: 10_000 })
    expect(await later.locator("#chat > div").count()).toBe(1)
    expect(await answered(later).locator(".a").textContent()).toBe(answer)
    for (const tab of [asker, watcher, later]) await tab.close()
  }, 120_000)

  it("a page of an origin not allowed reads neither the runs nor a run's stream", async () => {
    const tab = await open(foreign.origin)
    await tab.locator("#error").filter({ hasText: "cannot list runs" }).waitFor({ timeout: 10_000 })
    expect(await tab.locator("#error").textContent()).toBe("cannot list runs: Failed to fetch")
    await tab.evaluate((r) => (globalThis as unknown as { swarm: { follow: (r: string, ref: string) => void } }).swarm.follow(r, r), demoRun)
    const refused = await until(tab, (s) => s.readyState === 2, 10_000, "a closed EventSource")
    expect(refused.events).toHaveLength(0)
    expect(refused.opens).toBe(0)
    await tab.close()
  }, 60_000)

  // Last: it restarts the server.
  it("a page away while an answer was given, back on a restarted server, says part of an answer was missed and reads it from the history", async () => {
    const tab = await open(page.origin)
    const started = await rpc(tab, "runs.start", { strategy: "Six analysts", mode: "backtest", data: { _tag: "sample" } })
    await tab.evaluate(([r, ref]) => (globalThis as unknown as { swarm: { follow: (r: string, ref: string) => void } }).swarm.follow(r!, ref!), [started.id, started.ref])
    await until(tab, (s) => s.end !== undefined, 60_000, "the end of the run")
    await tab.waitForFunction(() => (globalThis as unknown as { swarm: { chat: { loaded: boolean } } }).swarm.chat.loaded, undefined, { timeout: 10_000 })
    // A question answered on the page: its chat stream's last id is the answer's last chunk.
    await tab.locator("#question").fill("Which trades lost money?")
    await tab.locator("#ask button").click()
    const answers = tab.locator(`#chat div[data-done="true"]`)
    await answers.first().waitFor({ timeout: 30_000 })
    expect(await tab.locator("#chatmissed").isHidden()).toBe(true)

    // The page loses the server; meanwhile another question is answered, then the server restarts:
    // the new one holds no answer from before, and the page's stream, back, cannot be resumed there.
    front.refuse(true)
    front.cut()
    const other = await askServer(started.id, "What is the Sharpe ratio?")
    expect(other.at(-1)).toMatchObject({ _tag: "Done" })
    process.kill(-served.child.pid!, "SIGINT")
    expect(await Promise.race([served.exited, new Promise((resolve) => setTimeout(() => resolve("still running"), 30_000))])).toBe(0)
    served = await processes.serve({ cwd: tmp, env, settle: 0 })
    front.retarget(Number(new URL(served.base).port))
    front.refuse(false)

    // Told, and the chat read again: both answers, the one it did not see whole, each once.
    await tab.locator("#chatmissed").filter({ hasText: /missed/ }).waitFor({ timeout: 30_000 })
    await answers.nth(1).waitFor({ timeout: 30_000 })
    const missed = await tab.evaluate(() => (globalThis as unknown as { swarm: { chat: { missed: Array<string> } } }).swarm.chat.missed)
    expect(missed).toHaveLength(1)
    expect(await tab.locator("#chatmissed").textContent()).toContain(`the server no longer holds the chat after ${missed[0]}`)
    expect(await tab.locator("#chat > div").count()).toBe(2)
    expect(await answers.nth(1).locator(".q").textContent()).toBe("What is the Sharpe ratio?")
    const text = other.filter((c) => c._tag === "Token").map((c) => c.text).join("")
    expect(await answers.nth(1).locator(".a").textContent()).toBe(text)
    expect(await tab.locator("#error").textContent()).not.toContain("cannot read the chat")
    await tab.close()
  }, 180_000)
})

describe("examples/dashboard.html", () => {
  it("listens to every run event type the schema has", () => {
    const listed = /const EVENT_TYPES = (\[[^\]]*\])/.exec(DASHBOARD)?.[1]
    expect(listed).toBeDefined()
    expect(JSON.parse(listed!.replace(/\s+/g, " "))).toEqual(EVENT_TYPES)
  })
})
