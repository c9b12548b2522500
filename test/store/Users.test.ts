/**
 * Users and their API keys as the edge relies on them: a key is shown once and only its hash is
 * kept; it authenticates as its user until revoked or the user is disabled; every bad key —
 * unknown, revoked, a disabled user's, malformed, huge, hostile, one character off — gets the same
 * `Unauthorized` and writes nothing; `last_used_at` is written at most once a minute. On every
 * back-end (see fixtures/backends.ts).
 */
import { createHash } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { ApiKey, Principal, User } from "../../schemas/Auth.js"
import * as ApiKeys from "../../src/store/ApiKeys.js"
import * as Users from "../../src/store/Users.js"
import { backends, startTimeout } from "./fixtures/backends.js"
import { failure } from "./fixtures/checks.js"
import { authTables, hostileKeys, refusal } from "./fixtures/keys.js"

for (const backend of backends) {
  layer(backend.store, { timeout: startTimeout, excludeTestServices: true })(`users and API keys (${backend.name})`, (it) => {
    it.effect("users: created with a valid, unique name; read by id and name; listed", () =>
      Effect.gen(function*() {
        const alice = yield* Users.create("alice")
        expect(alice).toBeInstanceOf(User)
        expect(alice).toMatchObject({ name: "alice", role: "user", disabledAt: null })
        expect(alice.id).toMatch(/^usr_[0-9a-f]{12}$/)
        expect(yield* Users.get(alice.id)).toEqual(alice)
        expect(yield* Users.getByName("alice")).toEqual(alice)
        const root = yield* Users.create("root.admin_2-x", "admin")
        expect(root.role).toBe("admin")
        expect((yield* Users.create("a")).name).toBe("a")
        expect((yield* Users.create("n".repeat(64))).name).toBe("n".repeat(64))

        expect(yield* failure(Users.create("alice"))).toMatchObject({ _tag: "UserExists", name: "alice" })
        expect(yield* failure(Users.create("alice", "admin"))).toMatchObject({ _tag: "UserExists", name: "alice" })
        // `local` is the command line's, whether or not it exists yet — and making it still works.
        expect(yield* failure(Users.create("local"))).toMatchObject({ _tag: "UserExists", name: "local" })
        expect(yield* Users.ensureLocal()).toBe(Users.LOCAL)
        expect(yield* Users.ensureLocal()).toBe(Users.LOCAL)

        const before = yield* authTables
        for (const bad of ["", " ", "n".repeat(65), "al ice", "alice\n", "a/b", "a:b", "a@b", "é", "ａlice", "💥", "a\u0000", "'; drop table users; --", "x".repeat(100_000)]) {
          const error = yield* failure(Users.create(bad))
          expect({ bad: bad.slice(0, 20), tag: error._tag }).toEqual({ bad: bad.slice(0, 20), tag: "InvalidUserName" })
          expect(error.message).toContain("1 to 64 letters, digits or . _ -")
        }
        // The reason in one line, in the schema's own words, never Effect's parse tree (indented lines of
        // its type names), nor the name itself: hostile names, and a caller's value that is no string at all.
        const hostile: ReadonlyArray<readonly [unknown, string]> = [
          ["", "a user name is 1 to 64 letters, digits or . _ -"],
          ["x".repeat(100_000), "a user name is 1 to 64 letters, digits or . _ -"],
          ["alice\nbob", "a user name is 1 to 64 letters, digits or . _ -, not U+000A at position 6"],
          ["\r\n\u001b[2J\u0007", "a user name is 1 to 64 letters, digits or . _ -, not U+000D at position 1"],
          ["a\u0000b", "a user name is 1 to 64 letters, digits or . _ -, not U+0000 at position 2"],
          ["usr_0123456789ab", "a user name must not look like a user id (usr_ and 12 hex digits)"],
          [5, "expected a string, got 5"],
          [null, "expected a string, got null"]
        ]
        for (const [bad, reason] of hostile) {
          const error = yield* failure(Users.create(bad as string))
          expect(error).toMatchObject({ _tag: "InvalidUserName", reason })
          expect(error.message).toBe(`invalid user name: ${reason}`)
        }
        // Which character, and where: an invisible one (U+200B) showed nothing of what was wrong.
        expect((yield* failure(Users.create("ali\u200bce"))).message).toContain("a user name is 1 to 64 letters, digits or . _ -, not U+200B at position 4")
        expect((yield* failure(Users.create("Cafe\u0301"))).message).toContain("not U+0301 at position 5")
        expect(yield* authTables).toEqual(before)

        for (const id of ["usr_000000000000", "", "\u0000", "x".repeat(100_000), "' or 1=1 --"]) {
          expect((yield* failure(Users.get(id)))._tag).toBe("UserNotFound")
          expect((yield* failure(Users.getByName(id)))._tag).toBe("UserNotFound")
          expect((yield* failure(Users.setRole(id, "admin")))._tag).toBe("UserNotFound")
          expect((yield* failure(Users.disable(id)))._tag).toBe("UserNotFound")
        }
        expect(yield* authTables).toEqual(before)

        const names = (yield* Users.list()).map((u) => u.name)
        expect(names).toEqual(expect.arrayContaining(["alice", "root.admin_2-x", "a", "local"]))
        expect(names.length).toBe(5)
      }))

    it.effect("a key is issued once, in the expected format, and only its hash and prefix are stored", () =>
      Effect.gen(function*() {
        const bob = yield* Users.create("bob")
        const issued = yield* ApiKeys.issue(bob.id, "laptop")
        expect(issued.key).toMatch(/^sk_[A-Za-z0-9_-]{43}$/)
        expect(Buffer.from(issued.key.slice(3), "base64url").length).toBe(32)
        expect(issued.prefix).toBe(issued.key.slice(0, 10))
        expect(issued.id).toMatch(/^key_[0-9a-f]{12}$/)
        const second = yield* ApiKeys.issue(bob.id)
        expect(second.key).not.toBe(issued.key)

        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ keyHash: string; prefix: string; label: string }>`
          select key_hash, prefix, label from api_keys where id = ${issued.id}`
        expect(row).toEqual({
          keyHash: createHash("sha256").update(issued.key).digest("hex"),
          prefix: issued.prefix,
          label: "laptop"
        })
        // Neither key, nor the part of it not shown as its prefix, nor its raw bytes, is in any column of any table.
        const tables = yield* sql<{ tableName: string }>`
          select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`
        expect(tables.map((t) => t.tableName)).toContain("api_keys")
        for (const key of [issued.key, second.key]) {
          const secrets = [key, key.slice(ApiKeys.PREFIX_LENGTH), Buffer.from(key.slice(3), "base64url").toString("hex")]
          for (const { tableName } of tables) {
            for (const secret of secrets) {
              const [found] = yield* sql<{ n: number }>`
                select count(*)::int as n from ${sql(tableName)} t where position(${secret} in to_jsonb(t)::text) > 0`
              expect({ tableName, n: found!.n }).toEqual({ tableName, n: 0 })
            }
          }
        }

        // Listed without the key or its hash.
        const listed = yield* ApiKeys.list(bob.id)
        expect(listed.map((k) => k.id)).toEqual([issued.id, second.id])
        expect(listed[0]).toBeInstanceOf(ApiKey)
        expect(Object.keys(listed[0]!).sort()).toEqual(["createdAt", "id", "label", "lastUsedAt", "prefix", "revokedAt", "userId"])
        expect(JSON.stringify(listed)).not.toContain(issued.key.slice(10))
        expect(JSON.stringify(listed)).not.toContain(row!.keyHash)
        expect(yield* ApiKeys.list("usr_nobody")).toEqual([])
        expect(yield* ApiKeys.list("\u0000")).toEqual([])

        expect((yield* failure(ApiKeys.issue("usr_nobody", "x")))._tag).toBe("UserNotFound")
        expect((yield* failure(ApiKeys.issue("\u0000")))._tag).toBe("UserNotFound")
        expect((yield* failure(ApiKeys.issue(bob.id, "x".repeat(101))))._tag).toBe("InvalidKeyLabel")
        expect((yield* failure(ApiKeys.issue(bob.id, "a\nb")))._tag).toBe("InvalidKeyLabel")
        expect((yield* failure(ApiKeys.issue(bob.id, "nul\u0000")))._tag).toBe("InvalidKeyLabel")
        // Nor what a terminal would not show, or would reorder the rest of the `admin keys` row by.
        expect(yield* failure(ApiKeys.issue(bob.id, "lap\u200btop"))).toMatchObject({
          _tag: "InvalidKeyLabel",
          reason: "a key label: no invisible format characters (U+200B at position 4): the label would look the same as one without it"
        })
        expect(yield* failure(ApiKeys.issue(bob.id, "ci \u202erevoked"))).toMatchObject({
          _tag: "InvalidKeyLabel",
          reason: "a key label: no bidirectional formatting characters (U+202E at position 4): they reorder the text shown after them"
        })
        for (const hidden of ["\ufeffci", "a\u2066b", "x\u200e", "e\u0301"]) expect((yield* failure(ApiKeys.issue(bob.id, hidden)))._tag).toBe("InvalidKeyLabel")
        expect((yield* ApiKeys.list(bob.id)).length).toBe(2)
        // Labels in any script, and emoji (a joiner inside one), are labels.
        for (const label of ["笔记本 💻", "حاسوب", "👩‍💻 dev"]) yield* ApiKeys.issue(bob.id, label)
        expect((yield* ApiKeys.list(bob.id)).map((k) => k.label).slice(2).sort()).toEqual(["笔记本 💻", "حاسوب", "👩‍💻 dev"].sort())
      }))

    it.effect("a key authenticates as its user until revoked; revoking is the owner's or an admin's", () =>
      Effect.gen(function*() {
        const carol = yield* Users.create("carol")
        const dave = yield* Users.create("dave")
        const admin = yield* Users.create("boss", "admin")
        const k1 = yield* ApiKeys.issue(carol.id, "one")
        const k2 = yield* ApiKeys.issue(carol.id, "two")
        const k3 = yield* ApiKeys.issue(carol.id, "three")

        const principal = yield* ApiKeys.authenticate(k1.key)
        expect(principal).toBeInstanceOf(Principal)
        expect(principal).toEqual(new Principal({ userId: carol.id, name: "carol", role: "user" }))
        expect(yield* ApiKeys.authenticateHash(ApiKeys.hashKey(k2.key))).toEqual(principal)

        // Someone else's key: the same answer as a key that does not exist.
        const notYours = yield* failure(ApiKeys.revoke(k1.id, dave.id))
        const unknown = yield* failure(ApiKeys.revoke("key_000000000000", dave.id))
        expect(notYours).toMatchObject({ _tag: "ApiKeyNotFound", key: k1.id })
        expect(unknown._tag).toBe("ApiKeyNotFound")
        expect((yield* failure(ApiKeys.revoke("\u0000", carol.id)))._tag).toBe("ApiKeyNotFound")
        expect((yield* failure(ApiKeys.revoke(k1.id, "\u0000")))._tag).toBe("ApiKeyNotFound")
        expect(yield* ApiKeys.authenticate(k1.key)).toEqual(principal)

        // The owner revokes: refused from then on, like any bad key; the others still work.
        const revoked = yield* ApiKeys.revoke(k1.id, carol.id)
        expect(revoked.revokedAt).toBeInstanceOf(Date)
        expect(yield* failure(ApiKeys.authenticate(k1.key))).toEqual(refusal)
        expect(yield* ApiKeys.authenticate(k2.key)).toEqual(principal)
        // Revoking again keeps the first time.
        expect((yield* ApiKeys.revoke(k1.id, carol.id)).revokedAt).toEqual(revoked.revokedAt)

        // An admin revokes anyone's; a disabled admin, no one's but their own.
        yield* ApiKeys.revoke(k2.id, admin.id)
        expect(yield* failure(ApiKeys.authenticate(k2.key))).toEqual(refusal)
        yield* Users.disable(admin.id)
        expect((yield* failure(ApiKeys.revoke(k3.id, admin.id)))._tag).toBe("ApiKeyNotFound")
        yield* Users.enable(admin.id)
        // A user made admin may; demoted, no longer (the database's role, not a cached one).
        yield* Users.setRole(dave.id, "admin")
        const k4 = yield* ApiKeys.issue(carol.id, "four")
        yield* ApiKeys.revoke(k4.id, dave.id)
        yield* Users.setRole(dave.id, "user")
        expect((yield* failure(ApiKeys.revoke(k3.id, dave.id)))._tag).toBe("ApiKeyNotFound")
        expect(yield* ApiKeys.authenticate(k3.key)).toEqual(principal)

        const listed = yield* ApiKeys.list(carol.id)
        expect(listed.map((k) => [k.label, k.revokedAt !== null])).toEqual([["one", true], ["two", true], ["three", false], ["four", true]])
      }))

    it.effect("a disabled user's keys stop working, and work again when enabled; a role change shows in the principal", () =>
      Effect.gen(function*() {
        const erin = yield* Users.create("erin")
        const k = yield* ApiKeys.issue(erin.id)
        expect((yield* ApiKeys.authenticate(k.key)).role).toBe("user")
        const disabled = yield* Users.disable(erin.id)
        expect(disabled.disabledAt).toBeInstanceOf(Date)
        expect(yield* failure(ApiKeys.authenticate(k.key))).toEqual(refusal)
        // A key issued while disabled does not work either.
        const later = yield* ApiKeys.issue(erin.id)
        expect(yield* failure(ApiKeys.authenticate(later.key))).toEqual(refusal)
        expect((yield* Users.disable(erin.id)).disabledAt).toEqual(disabled.disabledAt)
        expect((yield* Users.enable(erin.id)).disabledAt).toBeNull()
        expect((yield* ApiKeys.authenticate(k.key)).userId).toBe(erin.id)
        expect((yield* ApiKeys.authenticate(later.key)).userId).toBe(erin.id)
        expect((yield* Users.setRole(erin.id, "admin")).role).toBe("admin")
        expect(yield* ApiKeys.authenticate(k.key)).toEqual(new Principal({ userId: erin.id, name: "erin", role: "admin" }))
      }))

    it.effect("every bad key (≥ 200: malformed, huge, hostile, one character off, revoked, disabled) is the same Unauthorized, and nothing is written", () =>
      Effect.gen(function*() {
        const frank = yield* Users.create("frank")
        const valid = yield* ApiKeys.issue(frank.id, "valid")
        const revoked = yield* ApiKeys.issue(frank.id, "revoked")
        yield* ApiKeys.revoke(revoked.id, frank.id)
        const grace = yield* Users.create("grace")
        const ofDisabled = yield* ApiKeys.issue(grace.id)
        yield* Users.disable(grace.id)
        // Used once, so no later lookup would have a reason to write `last_used_at`.
        yield* ApiKeys.authenticate(valid.key)

        const keys = [...hostileKeys(valid.key), revoked.key, ofDisabled.key]
        expect(keys.length).toBeGreaterThanOrEqual(200)
        expect(keys).not.toContain(valid.key)
        const before = yield* authTables
        for (const key of keys) {
          const error = yield* failure(ApiKeys.authenticate(key))
          // (Field by field: a failing deep comparison of a megabyte key is unreadable.)
          expect({ key: key.slice(0, 60), tag: error._tag, reason: error.reason }).toEqual({ key: key.slice(0, 60), tag: "Unauthorized", reason: refusal.reason })
        }
        // Hashes that are not hashes are refused too.
        for (const keyHash of ["", "' or 1=1 --", "%", ApiKeys.hashKey(valid.key).toUpperCase(), `${ApiKeys.hashKey(valid.key)} `, "\u0000"]) {
          expect(yield* failure(ApiKeys.authenticateHash(keyHash))).toEqual(refusal)
        }
        expect(yield* authTables).toEqual(before)
        expect((yield* ApiKeys.authenticate(valid.key)).userId).toBe(frank.id)
      }))

    it.effect("last_used_at is written on first use, then at most once a minute", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const henry = yield* Users.create("henry")
        const k = yield* ApiKeys.issue(henry.id)
        const lastUsed = Effect.map(
          sql<{ lastUsedAt: Date | null }>`select last_used_at from api_keys where id = ${k.id}`,
          (rows) => rows[0]!.lastUsedAt
        )
        expect(yield* lastUsed).toBeNull()
        yield* ApiKeys.authenticate(k.key)
        const first = yield* lastUsed
        expect(first).toBeInstanceOf(Date)
        // Many uses, some at once: no new write within the minute.
        yield* Effect.all(Array.from({ length: 20 }, () => ApiKeys.authenticate(k.key)), { concurrency: 8 })
        expect(yield* lastUsed).toEqual(first)
        // 30 s ago: still within the minute.
        yield* sql`update api_keys set last_used_at = now() - interval '30 seconds' where id = ${k.id}`
        const thirty = yield* lastUsed
        yield* ApiKeys.authenticate(k.key)
        expect(yield* lastUsed).toEqual(thirty)
        // More than a minute ago: written again, to now.
        yield* sql`update api_keys set last_used_at = now() - interval '61 seconds' where id = ${k.id}`
        const stale = yield* lastUsed
        yield* ApiKeys.authenticate(k.key)
        const refreshed = yield* lastUsed
        expect(refreshed!.getTime()).toBeGreaterThan(stale!.getTime() + 55_000)
        // A refused key (revoked) writes nothing.
        yield* ApiKeys.revoke(k.id, henry.id)
        yield* sql`update api_keys set last_used_at = now() - interval '1 hour' where id = ${k.id}`
        const hourAgo = yield* lastUsed
        expect(yield* failure(ApiKeys.authenticate(k.key))).toEqual(refusal)
        expect(yield* lastUsed).toEqual(hourAgo)
      }))

    it.effect("a demotion and a revocation at once cannot both leave no admin who can sign in", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ada = yield* Users.create("ada", "admin")
        const bea = yield* Users.create("bea", "admin")
        yield* ApiKeys.issue(bea.id)
        // Only they can sign in as admins (the others here are made users, bypassing the check).
        for (const other of yield* Users.list()) {
          if (other.role === "admin" && other.id !== ada.id && other.id !== bea.id) yield* Users.setRole(other.id, "user")
        }
        for (let round = 0; round < 20; round++) {
          const key = yield* ApiKeys.issue(ada.id)
          // bea made a user, and ada's only key revoked: either alone leaves an admin, both would not.
          const [demoted, revoked] = yield* Effect.all([
            Effect.either(Users.change(bea.id, { role: "user" })),
            Effect.either(ApiKeys.revoke(key.id, ada.id))
          ], { concurrency: 2 })
          expect([demoted._tag, revoked._tag]).not.toEqual(["Right", "Right"])
          expect([demoted._tag, revoked._tag]).toContain("Right")
          // Back to the start: bea an admin, ada with no key (the next round issues her one).
          yield* Users.setRole(bea.id, "admin")
          yield* sql`update api_keys set revoked_at = now() where user_id = ${ada.id} and revoked_at is null`
        }
      }))
  })
}
