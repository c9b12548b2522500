/**
 * Spans carry request URLs (`url.full`, `url.query`); an SSE client's API key comes in its query
 * (`?token=`, an EventSource cannot set headers). A credential's value is redacted however its
 * name is written — in any case, or percent-encoded as the server decodes it (`?%74oken=`).
 */
import { describe, expect, it } from "@effect/vitest"
import { redact } from "../../src/telemetry/Trace.js"

const KEY = "sk_cPguSECRETPAE3ZA"

describe("span attribute redaction", () => {
  it("a credential's value in a URL is redacted however its name is written; the rest of the URL is kept", () => {
    const full = (query: string) => redact("url.full", `http://127.0.0.1:7070/v1/runs/r1/events?${query}#top`)
    expect(full(`token=${KEY}&since=3`)).toBe("http://127.0.0.1:7070/v1/runs/r1/events?token=REDACTED&since=3#top")
    expect(full(`since=3&%74oken=${KEY}`)).toBe("http://127.0.0.1:7070/v1/runs/r1/events?since=3&%74oken=REDACTED#top")
    expect(full(`TOKEN=${KEY}`)).toBe("http://127.0.0.1:7070/v1/runs/r1/events?TOKEN=REDACTED#top")
    for (const name of ["access_token", "api_key", "apiKey", "key", "%6B%65%79", "client_secret", "password", "x-auth"]) {
      expect(full(`${name}=${KEY}&since=3`)).toBe(`http://127.0.0.1:7070/v1/runs/r1/events?${name}=REDACTED&since=3#top`)
    }
    expect(redact("url.query", `?%74oken=${KEY}&since=3`)).toBe("?%74oken=REDACTED&since=3")
    expect(redact("url.query", `%74oken=${KEY}`)).toBe("%74oken=REDACTED")
    // A name that does not decode is read as written; a bare name has no value to hide.
    expect(redact("url.query", `%E0%A4%A=1&token`)).toBe("%E0%A4%A=1&token=REDACTED")
    expect(redact("url.full", "http://h/v1/health")).toBe("http://h/v1/health")
    expect(redact("url.query", "since=3&limit=20")).toBe("since=3&limit=20")
    // Other attributes are left alone.
    expect(redact("url.path", `/v1/token=${KEY}`)).toBe(`/v1/token=${KEY}`)
    expect(redact("url.full", 3)).toBe(3)
  })
})
