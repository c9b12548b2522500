/**
 * What the commands' flags share: a value refused while parsing is reported like every other
 * error line, starting with the flag (`--seed: expected …`), and `--json` means one document on
 * stdout.
 */
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { Effect, Either, Option, Schema } from "effect"

/** A flag's value refused while parsing: the message starts with the flag, as every CLI error line does. */
export const invalid = (flag: string, reason: string) => ValidationError.invalidValue(HelpDoc.p(`${flag}: ${reason}`))

/** Check an optional flag's value with `check` (a reason on the left), for `Options.mapEffect`. */
export const checked = <I, A>(flag: string, check: (value: I) => Either.Either<A, string>) => (value: Option.Option<I>) =>
  Option.match(value, {
    onNone: () => Effect.succeed(Option.none<A>()),
    onSome: (input) =>
      Either.match(check(input), {
        onLeft: (reason) => Effect.fail(invalid(flag, reason)),
        onRight: (a) => Effect.succeed(Option.some(a))
      })
  })

/** `--since <n>`: an event number of a run, 0 or more, after which its events are read (`runs watch`, `runs events`). */
export const since = (pseudoName: string, description: string) =>
  Options.integer("since").pipe(
    Options.withPseudoName(pseudoName),
    Options.optional,
    Options.mapEffect(checked("--since", (n: number) =>
      Number.isSafeInteger(n) && n >= 0 ? Either.right(n) : Either.left(`expected an event number, 0 or more, got ${n}`))),
    Options.withDescription(description)
  )

/**
 * An optional flag taking one of a few words (`--mode backtest|paper`): a word not among them is
 * `--mode: expected backtest or paper, got "live"`, naming the flag (`Options.choice` said only
 * "Expected one of the following cases: backtest, paper", leaving the reader to guess which flag).
 */
export const choice = <const A extends string>(flag: string, words: readonly [A, ...Array<A>]) =>
  Options.text(flag).pipe(
    Options.withPseudoName(words.join("|")),
    Options.optional,
    Options.mapEffect(checked(`--${flag}`, (text: string) =>
      (words as ReadonlyArray<string>).includes(text)
        ? Either.right(text as A)
        : Either.left(`expected ${words.length === 2 ? words.join(" or ") : `one of ${words.join(", ")}`}, got "${text}"`)))
  )

/** An optional count flag of 1 to `max` (`--limit n`): another number is `--limit: expected 1 to 1000, got 0`. */
export const count = (flag: string, max: number, description: string, min = 1) =>
  Options.integer(flag).pipe(
    Options.withPseudoName("n"),
    Options.optional,
    Options.mapEffect(checked(`--${flag}`, (n: number) => n >= min && n <= max ? Either.right(n) : Either.left(`expected ${min} to ${max}, got ${n}`))),
    Options.withDescription(description)
  )

/** `--json`, described for the command at hand. */
export const json = (description: string) => Options.boolean("json").pipe(Options.withDescription(description))

/** What `--json` prints: `value` as `schema` encodes it, indented, one document and a newline. */
export const toJson = <A, I>(schema: Schema.Schema<A, I>, value: A): string => `${JSON.stringify(Schema.encodeSync(schema)(value), null, 2)}\n`
