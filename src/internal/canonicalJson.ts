/**
 * `JSON.stringify`, compiled for one schema: a function that writes a value of the schema's type
 * as the same text `JSON.stringify` gives, when the value's objects have the schema's fields in the
 * schema's order (how a run's events are made: src/swarm/RunLog.ts). A run's log is mostly this
 * serialisation — about 40 % of a backtest that trades often — and V8's generic walk (Node 20)
 * pays per value for what the schema already knows: which fields, in which order, of which kind.
 *
 * What it is compiled to, per node of the schema's type AST:
 * - a struct: a function reading each field by name, in order, leaving out the `undefined` ones
 *   (as `JSON.stringify` does);
 * - an array: a loop (`undefined` elements as `null`);
 * - a record of string keys: its own keys as `Object.keys` lists them (JSON.stringify's order);
 * - strings, numbers, booleans, literals and unions of them: the primitive's text (a string with
 *   nothing to escape is quoted as is; a non-finite number is `null`);
 * - a union of structs with a literal field that tells them apart (`_tag`, `outcome`…): a switch
 *   on that field;
 * - anything else (classes, tuples, `unknown`, a union it cannot tell apart), and any value that
 *   is not of the kind the schema says: `JSON.stringify` itself.
 *
 * What it does not see: a field the schema does not list, fields in another order, a `toJSON` of
 * a struct's value that says something else than its fields. There the text differs from
 * `JSON.stringify`'s. `RunLog` checks every line against `JSON.stringify` when
 * `SWARM_CANONICAL_CHECK=1` (the test suite sets it), so a change that builds an event another way
 * fails the tests instead of changing a checksum.
 */
import { SchemaAST as AST } from "effect"
import type { Schema } from "effect"

/** JSON.stringify escapes these: quote, backslash, control characters, lone surrogates (pairs are checked there). */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/

/** What `JSON.stringify` makes of a value inside an array: `null` for `undefined`. */
const anyValue = (x: unknown): string => {
  const json = JSON.stringify(x) as string | undefined
  return json === undefined ? "null" : json
}

const str = (x: unknown): string =>
  typeof x === "string" ? (NEEDS_ESCAPE.test(x) ? JSON.stringify(x) : `"${x}"`) : anyValue(x)

// `x - x === 0` is false exactly for NaN and ±Infinity, which JSON writes as null.
const num = (x: unknown): string => (typeof x === "number" ? (x - x === 0 ? "" + x : "null") : anyValue(x))

const bool = (x: unknown): string => (x === true ? "true" : x === false ? "false" : anyValue(x))

const prim = (x: unknown): string => {
  switch (typeof x) {
    case "string":
      return str(x)
    case "number":
      return num(x)
    case "boolean":
      return x ? "true" : "false"
    default:
      return x === null ? "null" : anyValue(x)
  }
}

const helpers = { anyValue, str, num, bool, prim }

/**
 * The schema's node with refinements and brands peeled off (they do not change the text), and an
 * optional field's `undefined` (an absent field is left out before its value is written).
 */
const peel = (ast: AST.AST): AST.AST => {
  let peeled = peeledNodes.get(ast)
  if (peeled === undefined) peeledNodes.set(ast, (peeled = peelOnce(ast)))
  return peeled
}

/** One node per schema node, so that a struct met twice is compiled once. */
const peeledNodes = new WeakMap<AST.AST, AST.AST>()

const peelOnce = (ast: AST.AST): AST.AST => {
  for (;;) {
    if (ast._tag === "Refinement") ast = ast.from
    else if (ast._tag === "Union" && ast.types.some((t) => t._tag === "UndefinedKeyword")) {
      const defined = ast.types.filter((t) => t._tag !== "UndefinedKeyword")
      if (defined.length !== 1) return AST.Union.make(defined)
      ast = defined[0]!
    } else return ast
  }
}

type Kind = "string" | "number" | "boolean" | "null" | "primitive" | "other"

/** The kind of a primitive node, `other` if it is not one. */
const kindOf = (ast: AST.AST): Kind => {
  const node = peel(ast)
  switch (node._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
      return "string"
    case "NumberKeyword":
      return "number"
    case "BooleanKeyword":
      return "boolean"
    case "Enums":
      return "primitive"
    case "Literal":
      return node.literal === null
        ? "null"
        : typeof node.literal === "string"
        ? "string"
        : typeof node.literal === "number"
        ? "number"
        : typeof node.literal === "boolean"
        ? "boolean"
        : "other"
    case "Union": {
      const kinds = new Set(node.types.map(kindOf))
      if (kinds.has("other")) return "other"
      return kinds.size === 1 ? [...kinds][0]! : "primitive"
    }
    default:
      return "other"
  }
}

/** The string literals a field of a struct member may hold, if it may hold nothing else. */
const literalsOf = (ast: AST.AST): ReadonlyArray<string> | undefined => {
  const node = peel(ast)
  if (node._tag === "Literal") return typeof node.literal === "string" ? [node.literal] : undefined
  if (node._tag === "Union") {
    const all: Array<string> = []
    for (const member of node.types) {
      const literals = literalsOf(member)
      if (literals === undefined) return undefined
      all.push(...literals)
    }
    return all
  }
  return undefined
}

/** `X` of a (peeled) union of `null` and `X`, if it is one. */
const nonNull = (ast: AST.AST): AST.AST | undefined => {
  if (ast._tag !== "Union") return undefined
  const rest = ast.types.filter((t) => kindOf(t) !== "null")
  return ast.types.length === 2 && rest.length === 1 ? rest[0] : undefined
}

/** A required field, present in every member, whose string literals tell the members apart. */
const discriminator = (members: ReadonlyArray<AST.TypeLiteral>): { key: string; cases: Array<ReadonlyArray<string>> } | undefined => {
  const first = members[0]!
  for (const candidate of first.propertySignatures) {
    if (typeof candidate.name !== "string" || candidate.isOptional) continue
    const cases: Array<ReadonlyArray<string>> = []
    const seen = new Set<string>()
    let ok = true
    for (const member of members) {
      const field = member.propertySignatures.find((p) => p.name === candidate.name && !p.isOptional)
      const literals = field === undefined ? undefined : literalsOf(field.type)
      if (literals === undefined || literals.some((l) => seen.has(l))) {
        ok = false
        break
      }
      for (const l of literals) seen.add(l)
      cases.push(literals)
    }
    if (ok) return { key: candidate.name, cases }
  }
  return undefined
}

class Compiler {
  private readonly functions: Array<string> = []
  private readonly named = new Map<AST.AST, string | undefined>()
  private readonly literalFunctions = new Map<string, string>()

  /** An expression that is the JSON text of the value of the expression `x` (evaluated once: a local's name). */
  expression(ast: AST.AST, x: string): string {
    return this.labelled("", ast, x, "")
  }

  /**
   * An expression that is `prefix`, the JSON text of the value of `x`, then `suffix`: a literal's
   * (or a null's) whole text is one constant, so a struct's text has fewer pieces to join.
   */
  private labelled(prefix: string, ast: AST.AST, x: string, suffix: string): string {
    const node = peel(ast)
    const literals = literalsOf(node)
    if (literals !== undefined) return `${this.literals(literals, prefix, suffix)}(${x})`
    const nullable = nonNull(node)
    if (nullable !== undefined) return `(${x} === null ? ${JSON.stringify(`${prefix}null${suffix}`)} : ${this.labelled(prefix, nullable, x, suffix)})`
    return [JSON.stringify(prefix), this.value(node, x), JSON.stringify(suffix)].filter((part) => part !== '""').join(" + ")
  }

  /** The JSON text of `x`, a value of `node` (peeled) that is neither a literal union nor nullable. */
  private value(node: AST.AST, x: string): string {
    switch (kindOf(node)) {
      case "string":
        return this.string(x)
      case "number":
        return `num(${x})`
      case "boolean":
        return `bool(${x})`
      case "null":
        return `(${x} === null ? "null" : anyValue(${x}))`
      case "primitive":
        return `prim(${x})`
      case "other":
        break
    }
    const fn = this.function(node)
    return fn === undefined ? `anyValue(${x})` : `${fn}(${x})`
  }

  /**
   * The function writing a string of a literal union: its text without looking for characters to
   * escape (a switch on interned strings is a few comparisons); any other value, as a primitive.
   */
  private literals(literals: ReadonlyArray<string>, prefix = "", suffix = ""): string {
    const key = [prefix, suffix, ...literals].join("\u0000")
    const known = this.literalFunctions.get(key)
    if (known !== undefined) return known
    const name = `l${this.literalFunctions.size}`
    this.literalFunctions.set(key, name)
    const cases = literals.map((l) => `  case ${JSON.stringify(l)}: return ${JSON.stringify(prefix + JSON.stringify(l) + suffix)}`)
    const other = [JSON.stringify(prefix), "prim(x)", JSON.stringify(suffix)].filter((part) => part !== '""').join(" + ")
    this.functions.push(`function ${name}(x) {\nswitch (x) {\n${cases.join("\n")}\n  default: return ${other}\n}\n}`)
    return name
  }

  /** The name of the function writing a struct, an array or a union of structs; undefined: JSON.stringify's. */
  private function(node: AST.AST): string | undefined {
    if (this.named.has(node)) return this.named.get(node)
    const name = `f${this.named.size}`
    this.named.set(node, name)
    const body = this.body(node)
    if (body === undefined) {
      this.named.set(node, undefined)
      return undefined
    }
    this.functions.push(`function ${name}(v) {\n${body}\n}`)
    return name
  }

  private body(node: AST.AST): string | undefined {
    switch (node._tag) {
      case "TypeLiteral": {
        if (node.indexSignatures.length > 0) return this.record(node)
        if (node.propertySignatures.some((p) => typeof p.name !== "string")) return undefined
        const props = node.propertySignatures
        const lines = [`if (v === null || typeof v !== "object" || Array.isArray(v)) return anyValue(v)`]
        props.forEach((p, i) => lines.push(`const x${i} = v[${JSON.stringify(p.name)}]`))
        // A required field that is absent: the struct is JSON.stringify's to write (it leaves the field out).
        const required = props.flatMap((p, i) => (p.isOptional ? [] : [`x${i} === undefined`]))
        if (required.length > 0) lines.push(`if (${required.join(" || ")}) return anyValue(v)`)
        if (props.length === 0) return `${lines.join("\n")}\nreturn "{}"`
        if (props[0]!.isOptional) {
          // A comma only once something is written.
          lines.push(`let s = "{", c = ""`)
          props.forEach((p, i) => {
            const add = `s += c + ${this.labelled(JSON.stringify(p.name) + ":", p.type, `x${i}`, "")}; c = ","`
            lines.push(p.isOptional ? `if (x${i} !== undefined) { ${add} }` : add)
          })
          lines.push(`return s + "}"`)
          return lines.join("\n")
        }
        // Runs of required fields are one concatenation each; an optional field adds itself if
        // present. The braces go with the first and the last field's text (fewer pieces to join).
        let pending: Array<string> = []
        let started = false
        const flush = () => {
          if (pending.length === 0) return
          lines.push(`${started ? "s +=" : "let s ="} ${pending.join(" + ")}`)
          started = true
          pending = []
        }
        props.forEach((p, i) => {
          const prefix = (i === 0 ? "{" : ",") + JSON.stringify(p.name) + ":"
          if (p.isOptional) {
            flush()
            lines.push(`if (x${i} !== undefined) s += ${this.labelled(prefix, p.type, `x${i}`, "")}`)
          } else {
            pending.push(this.labelled(prefix, p.type, `x${i}`, i === props.length - 1 ? "}" : ""))
          }
        })
        flush()
        lines.push(props[props.length - 1]!.isOptional ? `return s + "}"` : `return s`)
        return lines.join("\n")
      }
      case "TupleType": {
        if (node.elements.length > 0 || node.rest.length !== 1) return undefined
        return [
          `if (!Array.isArray(v)) return anyValue(v)`,
          `let s = "["`,
          `for (let i = 0; i < v.length; i++) {`,
          `  const e = v[i]`,
          `  s += (i === 0 ? "" : ",") + (e === undefined ? "null" : ${this.expression(node.rest[0]!.type, "e")})`,
          `}`,
          `return s + "]"`
        ].join("\n")
      }
      case "Union": {
        const members = node.types.map(peel)
        const structs = members.filter((t): t is AST.TypeLiteral => t._tag === "TypeLiteral")
        const others = members.filter((t) => t._tag !== "TypeLiteral")
        if (structs.length === 0 || others.some((t) => kindOf(t) === "other")) return undefined
        const lines = [`if (v === null || typeof v !== "object") return prim(v)`]
        if (structs.length === 1) {
          lines.push(`return ${this.expression(structs[0]!, "v")}`)
          return lines.join("\n")
        }
        const tag = discriminator(structs)
        if (tag === undefined) return undefined
        lines.push(`switch (v[${JSON.stringify(tag.key)}]) {`)
        structs.forEach((struct, i) => {
          lines.push(`${tag.cases[i]!.map((l) => `  case ${JSON.stringify(l)}:`).join("\n")}\n    return ${this.expression(struct, "v")}`)
        })
        lines.push(`  default:\n    return anyValue(v)`, `}`)
        return lines.join("\n")
      }
      default:
        return undefined
    }
  }

  /**
   * A record of string keys (`Schema.Record({ key: Schema.String, value })`): its own keys in
   * `Object.keys` order, which is JSON.stringify's, `undefined` values left out.
   */
  private record(node: AST.TypeLiteral): string | undefined {
    const [signature, ...more] = node.indexSignatures
    if (more.length > 0 || node.propertySignatures.length > 0 || peel(signature!.parameter)._tag !== "StringKeyword") return undefined
    return [
      `if (v === null || typeof v !== "object" || Array.isArray(v)) return anyValue(v)`,
      `const keys = Object.keys(v)`,
      `let s = "{", c = ""`,
      `for (let i = 0; i < keys.length; i++) {`,
      `  const k = keys[i], x = v[k]`,
      `  if (x !== undefined) { s += c + str(k) + ":" + ${this.expression(signature!.type, "x")}; c = "," }`,
      `}`,
      `return s + "}"`
    ].join("\n")
  }

  /** The declarations of the one-entry caches of `string`. */
  private readonly lastStrings: Array<string> = []

  /**
   * `str(x)`, with a one-entry cache of its own at this place of the schema: a string field often
   * holds the string it held in the event before (the run's id in every event, the analyst's name
   * in every opinion), whose text is then the one already made — no scan for characters to
   * escape, no new quoted copy for the line to flatten again. Only a string is kept (`===`
   * compares strings by their characters); any other value is written afresh. Nothing kept is
   * NaN, which nothing equals: not `undefined`, which a value may be.
   */
  private string(x: string): string {
    const k = this.lastStrings.length
    this.lastStrings.push(`let lastString${k} = NaN, lastText${k} = ""`)
    return `(${x} === lastString${k} ? lastText${k} : ` +
      `(lastText${k} = str(${x}), lastString${k} = typeof ${x} === "string" ? ${x} : NaN, lastText${k}))`
  }

  /** The module's source: its functions, and `root` serialising a value of the schema. */
  source(root: string): string {
    return `"use strict"\n${this.lastStrings.join("\n")}\n${this.functions.join("\n")}\nreturn (v) => ${root}`
  }
}

/** Compile `JSON.stringify` for values of `schema`'s type (see the module's comment for what it assumes). */
export const compile = <A, I, R>(schema: Schema.Schema<A, I, R>): (value: A) => string => {
  const compiler = new Compiler()
  const root = compiler.expression(AST.typeAST(schema.ast), "v")
  const names = Object.keys(helpers)
  // The generated code names fields only through JSON.stringify'd keys: nothing of the schema's
  // text is executed. One compiled function per struct, so V8 sees each struct's shape at its own site.
  const make = new Function(...names, compiler.source(root)) as (...args: Array<unknown>) => (value: A) => string
  return make(...names.map((n) => helpers[n as keyof typeof helpers]))
}
