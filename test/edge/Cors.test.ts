/**
 * Cross-origin requests: a dashboard served from another origin reads a run's SSE stream with
 * `EventSource` and calls `POST /rpc` with `fetch`, so the server answers CORS as
 * `SWARM_CORS_ORIGINS` allows — any origin by default, a list, or none — on every answer a browser
 * may need to read, refusals included; requests without an `Origin` are left as they were. A value
 * of `SWARM_CORS_ORIGINS` that is not one is refused at start-up, naming it. (A real browser's
 * view of the same: test/cli/browser.test.ts.)
 */
import { expect, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer } from "effect"
import * as Http from "../../src/edge/Http.js"
import { backends, startTimeout } from "../store/fixtures/backends.js"
import { server, stubAuthenticator } from "./fixtures.js"

const request = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    return { status: response.status, headers: response.headers, text }
  })

const DASHBOARD = "http://localhost:3000"

/** A browser's preflight of `method` with `headers` from `origin`. */
const preflight = (url: string, origin: string, method: string, headers: string) =>
  request(url, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers }
  })

// CORS does not depend on the database: the embedded one serves.
const backend = backends[0]!

layer(Layer.merge(backend.store, stubAuthenticator), { timeout: startTimeout, excludeTestServices: true })("CORS", (it) => {
  it.scoped("by default any origin: preflights of /rpc and of the SSE stream allowed, every answer readable, refusals too", () =>
    Effect.gen(function*() {
      const srv = yield* server()
      // fetch(POST /rpc) with a key and an ndjson body: a preflight first.
      const rpc = yield* preflight(`${srv.url}/rpc`, DASHBOARD, "POST", "authorization,content-type")
      expect(rpc.status).toBe(204)
      expect(rpc.headers.get("access-control-allow-origin")).toBe("*")
      expect(rpc.headers.get("access-control-allow-methods")).toBe("GET, HEAD, POST")
      expect(rpc.headers.get("access-control-allow-headers")).toBe("authorization,content-type,last-event-id")
      expect(rpc.headers.get("access-control-max-age")).toBe("600")
      expect(rpc.headers.get("access-control-allow-credentials")).toBeNull()
      // An EventSource sends Last-Event-ID on its own when it reconnects: a preflight for it.
      const sse = yield* preflight(`${srv.url}/v1/runs/run_x/events`, "null", "GET", "last-event-id")
      expect(sse.status).toBe(204)
      expect(sse.headers.get("access-control-allow-origin")).toBe("*")
      expect(sse.headers.get("access-control-allow-headers")).toBe("authorization,content-type,last-event-id")
      // Not whatever a preflight asks for: the headers a page of ours sends, whatever is asked.
      const odd = yield* preflight(`${srv.url}/rpc`, DASHBOARD, "POST", "x-evil,cookie,*")
      expect(odd.headers.get("access-control-allow-headers")).toBe("authorization,content-type,last-event-id")

      const health = yield* request(`${srv.url}/health`, { headers: { origin: DASHBOARD } })
      expect(health.status).toBe(200)
      expect(health.headers.get("access-control-allow-origin")).toBe("*")
      // A refusal is readable too (a page can say why), with its WWW-Authenticate.
      const refused = yield* request(`${srv.url}/v1/runs/run_x/events?token=sk_nobody`, { headers: { origin: DASHBOARD } })
      expect(refused.status).toBe(401)
      expect(JSON.parse(refused.text)).toMatchObject({ error: "Unauthorized" })
      expect(refused.headers.get("access-control-allow-origin")).toBe("*")
      expect(refused.headers.get("access-control-expose-headers")).toBe("retry-after,www-authenticate")
      // A body @effect/rpc would choke on is refused before it (a 400 naming the line): readable too.
      const garbled = yield* request(`${srv.url}/rpc`, { method: "POST", headers: { origin: DASHBOARD }, body: "not json\n" })
      expect(garbled.status).toBe(400)
      expect(JSON.parse(garbled.text)).toMatchObject({ error: "InvalidRequest", field: "body" })
      expect(garbled.headers.get("access-control-allow-origin")).toBe("*")
      // The WebSocket endpoint asked over plain HTTP: its refusal (426) is readable, its preflight answered.
      const ws = yield* request(`${srv.url}/rpc/ws`, { headers: { origin: DASHBOARD } })
      expect(ws.status).toBe(426)
      expect(ws.headers.get("access-control-allow-origin")).toBe("*")
      expect((yield* preflight(`${srv.url}/rpc/ws`, DASHBOARD, "GET", "authorization")).status).toBe(204)
      const missing = yield* request(`${srv.url}/no/such/route`, { headers: { origin: DASHBOARD } })
      expect(missing.status).toBe(404)
      expect(missing.headers.get("access-control-allow-origin")).toBe("*")
      // Without an Origin (the CLI, curl): no CORS headers; an OPTIONS is no preflight, and no route.
      const plain = yield* request(`${srv.url}/health`)
      expect(plain.headers.get("access-control-allow-origin")).toBeNull()
      // Answers differ by Origin even with `*`: a cache keeps them apart.
      expect(plain.headers.get("vary")).toBe("Origin")
      expect(health.headers.get("vary")).toContain("Origin")
      expect(rpc.headers.get("vary")).toContain("Origin")
      expect((yield* request(`${srv.url}/health`, { method: "OPTIONS" })).status).toBe(404)
    }))

  it.scoped("a list of origins: a listed origin is answered as itself (Vary: Origin), any other gets no CORS headers", () =>
    Effect.gen(function*() {
      const srv = yield* server({ corsOrigins: [DASHBOARD, "https://ops.example.com"] })
      for (const origin of [DASHBOARD, "https://ops.example.com"]) {
        const ok = yield* request(`${srv.url}/health`, { headers: { origin } })
        expect(ok.headers.get("access-control-allow-origin")).toBe(origin)
        expect(ok.headers.get("vary")).toContain("Origin")
        const pre = yield* preflight(`${srv.url}/rpc`, origin, "POST", "authorization")
        expect(pre.status).toBe(204)
        expect(pre.headers.get("access-control-allow-origin")).toBe(origin)
        expect(pre.headers.get("vary")).toBe("Origin")
      }
      // Every answer depends on the Origin (none is one too): caches are told.
      expect((yield* request(`${srv.url}/health`)).headers.get("vary")).toBe("Origin")
      for (const origin of ["http://localhost:3001", "https://evil.example.com", "null", "http://localhost:3000.evil.example.com"]) {
        const no = yield* request(`${srv.url}/health`, { headers: { origin } })
        // Served (CORS is the browser's to enforce), but no browser lets the page read it.
        expect(no.status).toBe(200)
        expect(no.headers.get("access-control-allow-origin")).toBeNull()
        expect(no.headers.get("vary")).toBe("Origin")
        const pre = yield* preflight(`${srv.url}/rpc`, origin, "POST", "authorization")
        expect(pre.headers.get("access-control-allow-origin")).toBeNull()
      }
    }))

  it.scoped("none: no CORS headers for any origin, and a preflight is no route", () =>
    Effect.gen(function*() {
      const srv = yield* server({ corsOrigins: "none" })
      const answer = yield* request(`${srv.url}/health`, { headers: { origin: DASHBOARD } })
      expect(answer.status).toBe(200)
      expect(answer.headers.get("access-control-allow-origin")).toBeNull()
      const pre = yield* preflight(`${srv.url}/rpc`, DASHBOARD, "POST", "authorization")
      expect(pre.status).toBe(404)
      expect(pre.headers.get("access-control-allow-origin")).toBeNull()
    }))
})

layer(Layer.empty)("SWARM_CORS_ORIGINS", (it) => {
  it("reads *, none, and lists of origins as browsers send them", () => {
    expect(Http.parseCorsOrigins("*")).toEqual(Either.right("*"))
    expect(Http.parseCorsOrigins(" none ")).toEqual(Either.right("none"))
    expect(Http.parseCorsOrigins("")).toEqual(Either.right("none"))
    expect(Http.parseCorsOrigins("http://localhost:3000, https://ops.example.com ,null")).toEqual(
      Either.right(["http://localhost:3000", "https://ops.example.com", "null"])
    )
  })

  it("refuses what is not an origin, saying why", () => {
    const reasons: Record<string, string> = {
      "http://localhost:3000/": `did you mean "http://localhost:3000"?`,
      "https://ops.example.com/dashboard": `did you mean "https://ops.example.com"?`,
      "HTTP://LOCALHOST:3000": `did you mean "http://localhost:3000"?`,
      "http://localhost:80": `did you mean "http://localhost"?`,
      "localhost:3000": "is not an http or https origin",
      "ftp://files.example.com": "is not an http or https origin",
      "not an origin": "is not an origin: write scheme://host[:port]",
      "http://a.example.com,,http://b.example.com": "has an empty entry",
      "*,http://a.example.com": `mixes "*" with origins`,
      "javascript:alert(1)": "is not an http or https origin"
    }
    for (const [text, reason] of Object.entries(reasons)) {
      const parsed = Http.parseCorsOrigins(text)
      expect(Either.isLeft(parsed), text).toBe(true)
      expect(Either.getLeft(parsed).pipe((o) => o._tag === "Some" ? o.value : ""), text).toContain(reason)
    }
  })

  it.effect("the configuration: * when unset; a bad value is a ConfigError naming SWARM_CORS_ORIGINS", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.either(Effect.withConfigProvider(Http.config, ConfigProvider.fromMap(new Map(Object.entries(env)))))
      // This machine only unless HOST says otherwise.
      expect(yield* read({})).toEqual(Either.right({ port: Http.DEFAULT_PORT, host: "127.0.0.1", corsOrigins: "*" }))
      expect(yield* read({ SWARM_CORS_ORIGINS: "http://localhost:3000", HOST: "0.0.0.0" })).toEqual(
        Either.right({ port: Http.DEFAULT_PORT, host: "0.0.0.0", corsOrigins: ["http://localhost:3000"] })
      )
      expect(String(Either.getLeft(yield* read({ HOST: " " })).pipe((o) => (o._tag === "Some" ? o.value : "")))).toContain("HOST")
      expect(Http.describeHost("127.0.0.1")).toBe("network: this machine only (HOST=127.0.0.1); HOST=0.0.0.0 serves other machines")
      expect(Http.describeHost("0.0.0.0")).toBe("network: every interface (HOST=0.0.0.0): other machines can reach this server; each call needs an API key")
      const bad = yield* read({ SWARM_CORS_ORIGINS: "http://localhost:3000/" })
      expect(Either.isLeft(bad)).toBe(true)
      const message = String(Either.getLeft(bad).pipe((o) => (o._tag === "Some" ? o.value : "")))
      expect(message).toContain("SWARM_CORS_ORIGINS")
      expect(message).toContain(`did you mean "http://localhost:3000"?`)
    }))
})
