/**
 * Who is asking, and the answers to someone who may not: the principal an API key stands for
 * (a user with a role), and the typed refusals every procedure and endpoint gives. "Not yours" and
 * "does not exist" are the same answer (the resource's NotFound), so a refusal never leaks that
 * someone else's strategy or run exists.
 */
import { Schema } from "effect"
import { visibleTextProblem } from "./VisibleText.js"

export const Role = Schema.Literal("admin", "user")
export type Role = typeof Role.Type

export class Principal extends Schema.Class<Principal>("Principal")({
  userId: Schema.String,
  name: Schema.String,
  role: Role
}) {}

/** No key, a malformed key, an unknown or revoked key (one answer for all: 401). */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  reason: Schema.String
}) {}

/** A known user asking for what their role does not allow (403): an admin procedure. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  reason: Schema.String
}) {}

/**
 * The first character of `name` a user name may not have, as `U+XXXX at position N` (counted in
 * characters from 1), or undefined. An invisible one (U+200B) showed nothing of what was wrong.
 */
const notUserNameCharacter = (name: unknown): string | undefined => {
  if (typeof name !== "string") return undefined
  const chars = Array.from(name)
  const i = chars.findIndex((c) => !/^[A-Za-z0-9._-]$/.test(c))
  return i < 0 ? undefined : `U+${chars[i]!.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")} at position ${i + 1}`
}

/**
 * A user's name: how they are shown and how an admin names them. ASCII only, so two names never
 * look alike by accident of Unicode (no invisible format character, no decomposed accent); a
 * name refused for a character says which (`not U+200B at position 4`).
 */
export const UserName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9._-]{1,64}$/, {
    message: (issue) => {
      const at = notUserNameCharacter(issue.actual)
      return `a user name is 1 to 64 letters, digits or . _ -${at === undefined ? "" : `, not ${at}`}`
    }
  }),
  // Users are named by name or id (`admin.issueKey`): a name shaped like an id would stand for another user.
  Schema.filter((name) => !/^usr_[0-9a-f]{12}$/i.test(name), {
    message: () => "a user name must not look like a user id (usr_ and 12 hex digits)"
  })
)

/**
 * What an API key is for, as its owner labels it (`laptop`, `ci`, `笔记本 💻`): at most 100
 * characters, no control characters, and none a terminal would not show or would reorder the row by
 * (`visibleTextProblem`: a U+202E in a label reversed the rest of its `admin keys` row, its revoked
 * time included; a U+200B made two labels look alike). Decoded only as a key is issued: labels
 * stored before still list.
 */
export const KeyLabel = Schema.String.pipe(
  Schema.maxLength(100, { message: () => "a key label is at most 100 characters" }),
  Schema.pattern(/^[^\p{Cc}]*$/u, { message: () => "a key label has no control characters" }),
  Schema.filter((label) => {
    const problem = visibleTextProblem(label, "the label")
    return problem === undefined || `a key label: ${problem}`
  })
)

/** A user as an admin sees one. `disabledAt` set: their keys no longer authenticate. */
export class User extends Schema.Class<User>("User")({
  id: Schema.String,
  name: Schema.String,
  role: Role,
  createdAt: Schema.Date,
  disabledAt: Schema.NullOr(Schema.Date)
}) {}

/**
 * An API key as listed: never the key itself nor its hash — the key is shown once, when issued.
 * `prefix` (its first 10 characters, `sk_` and 7 more) tells keys apart.
 */
export class ApiKey extends Schema.Class<ApiKey>("ApiKey")({
  id: Schema.String,
  userId: Schema.String,
  prefix: Schema.String,
  label: Schema.String,
  createdAt: Schema.Date,
  /** Updated at most once a minute, so it is "last used around then", not to the second. */
  lastUsedAt: Schema.NullOr(Schema.Date),
  revokedAt: Schema.NullOr(Schema.Date)
}) {}

/** A user of that name exists already (names are unique; `local` is taken by the command line's operator). */
export class UserExists extends Schema.TaggedError<UserExists>()("UserExists", {
  name: Schema.String
}) {
  override get message(): string {
    return `a user named ${this.name} exists already`
  }
}

/** No such user. */
export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", {
  user: Schema.String
}) {
  override get message(): string {
    return `no user ${this.user}`
  }
}

/** A user name that is not one (see `UserName`); the name itself is not echoed back. */
export class InvalidUserName extends Schema.TaggedError<InvalidUserName>()("InvalidUserName", {
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid user name: ${this.reason}`
  }
}

/** A key label that is not one (see `KeyLabel`). */
export class InvalidKeyLabel extends Schema.TaggedError<InvalidKeyLabel>()("InvalidKeyLabel", {
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid key label: ${this.reason}`
  }
}

/** No such API key — or not one the asker may revoke: both get the same answer. */
export class ApiKeyNotFound extends Schema.TaggedError<ApiKeyNotFound>()("ApiKeyNotFound", {
  key: Schema.String
}) {
  override get message(): string {
    return `no API key ${this.key}`
  }
}
