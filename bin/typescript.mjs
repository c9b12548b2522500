// `node --import ./bin/typescript.mjs file.ts`: run TypeScript sources (see typescript-hooks.mjs).
import { register } from "node:module"

register("./typescript-hooks.mjs", import.meta.url)
