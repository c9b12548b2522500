/**
 * URLs that carry credentials (`http://user:password@host`): how every URL is shown — start-up
 * lines, `/health`, logs, errors — with its password masked, and how one is used by a client that
 * refuses credentials in a URL (fetch: "Request cannot be constructed from a URL that includes
 * credentials") — the URL without them and a Basic `Authorization` header instead.
 */

/**
 * A URL fit to print: the password (in the authority, or as a `password` / `sslpassword`
 * parameter) replaced by `***`. A URL too malformed to parse is masked from its scheme to its last
 * `@`, which may hide more than the password but never less.
 */
export const maskUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    for (const key of ["password", "sslpassword"]) {
      if (parsed.searchParams.has(key)) parsed.searchParams.set(key, "***")
    }
    return parsed.href
  } catch {
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@?#]*):.*@/i, "$1:***@")
  }
}

/** `maskUrl` keeping the text as given when there is nothing to mask (no trailing slash added). */
export const shownUrl = (url: string): string => {
  const masked = maskUrl(url)
  if (!masked.includes("***")) return url
  // `href` adds a slash after a bare host (`http://h:1` → `http://h:1/`): not what was written.
  return !url.endsWith("/") && masked.endsWith("/") && bareHost(url) ? masked.slice(0, -1) : masked
}

const bareHost = (url: string): boolean => {
  try {
    const parsed = new URL(url)
    return parsed.pathname === "/" && parsed.search === "" && parsed.hash === ""
  } catch {
    return false
  }
}

/**
 * `url` without its user and password, and those as a Basic `Authorization` header value (absent
 * when it has none). Percent-escapes in them are decoded, as a browser does (`s3cr%40t` is `s3cr@t`).
 */
export const splitCredentials = (url: string): { readonly url: string; readonly authorization?: string } => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return { url }
  }
  if (parsed.username === "" && parsed.password === "") return { url }
  const pair = `${decoded(parsed.username)}:${decoded(parsed.password)}`
  parsed.username = ""
  parsed.password = ""
  // `href` adds a slash after a bare host; keep the path as it was written.
  const stripped = !url.endsWith("/") && parsed.href.endsWith("/") && bareHost(url) ? parsed.href.slice(0, -1) : parsed.href
  return { url: stripped, authorization: `Basic ${Buffer.from(pair, "utf8").toString("base64")}` }
}

/** A URL part's percent-escapes decoded; one that is malformed (`p%ZZ`, which a URL keeps as written) as written. */
const decoded = (part: string): string => {
  try {
    return decodeURIComponent(part)
  } catch {
    return part
  }
}
