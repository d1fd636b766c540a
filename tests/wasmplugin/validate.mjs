#!/usr/bin/env node
// Validates WasmPlugin manifests (and the Telemetry, VirtualService and EnvoyFilter resources the
// docs show beside them) the way `kubectl apply --validate=strict` would, without a cluster:
//   1. the CRD's OpenAPI schema (types, enums, required fields), through @kubernetes-models/istio
//      (generated from Istio's CRDs), whose validate() accepts unknown fields and a missing name;
//   2. strict field validation: every field must be one the CRD knows, walked against the
//      model's field tree (its TypeScript declaration, generated from the same CRD); duplicate
//      keys are refused by the YAML parser;
//   3. what the API server and Istio's webhook add: metadata.name present and a DNS-1123
//      subdomain; only one of selector / targetRef / targetRefs.
// spec.pluginConfig is free-form for the CRD: scripts/check-plugin.sh (make check-plugin) and
// tests/wasmplugin/test.sh check it with the filter's own parser (check-config).
// Documents of other Istio kinds are refused (a mistyped kind must not pass unchecked); documents
// of non-Istio API groups (a Deployment beside the plugin) are listed as not checked.
//
//   node validate.mjs check FILE...        exit 0 when every document is valid, 1 otherwise
//   node validate.mjs plugin-config FILE   prints spec.pluginConfig as JSON
//   node validate.mjs plugin-configs FILE  one line per WasmPlugin document:
//                                          INDEX<TAB>NAMESPACE/NAME<TAB>pluginConfig as JSON
//   node validate.mjs doc-manifests OUTDIR MARKDOWN...
//                                          writes each fenced yaml block holding apiVersion and
//                                          kind to OUTDIR, one file each; prints their paths
//   node validate.mjs documented FILE CONFIG_RS
//                                          every field of the Rust Config (src/config.rs) is
//                                          shown in FILE's pluginConfig (set, or commented out)
// NODE_DIR: where scripts/install-node-tools.sh installed the dependencies (default .tools/node).
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const nodeDir = resolve(process.env.NODE_DIR || join(here, "..", "..", ".tools", "node"));
const deps = await import(pathToFileURL(join(nodeDir, "deps.mjs")).href).catch((e) => {
  console.error(`validate.mjs: dependencies not installed in ${nodeDir} (scripts/install-node-tools.sh): ${e.message}`);
  process.exit(2);
});
const { yaml, WasmPlugin, Telemetry, VirtualService, EnvoyFilter } = deps;

// ---- the CRD's field tree, from the generated .d.ts ------------------------------------------
// A small parser for the subset the generator emits: interfaces and type aliases whose types are
// object literals ({ "k"?: T; [key: string]: T }), Array<T>, unions, string literals, primitives
// and imported interface names; and the CRDs' oneOf rules, `T & (Exclude<T, U> | ...)`, where
// the fields are T's (the rest only says which of them may be set together: the schema's to
// check). Anything else is an error, never silently "any".
const dtsCache = new Map();

function tokenize(src) {
  src = src.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
  const re = /\s*("(?:[^"\\]|\\.)*"|[A-Za-z_$][\w$]*|\d+|[{}[\]<>();:?|&,=.])/y;
  const out = [];
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < src.length) {
    const at = re.lastIndex;
    if (!(m = re.exec(src))) {
      if (/^\s*$/.test(src.slice(at))) break;
      throw new Error(`unexpected input: ${src.slice(at, at + 40)}`);
    }
    out.push(m[1]);
  }
  return out;
}

function parseDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  const t = tokenize(readFileSync(file, "utf8"));
  const mod = { file, types: new Map(), imports: new Map(), aliases: new Map() };
  dtsCache.set(file, mod);
  let i = 0;
  const peek = () => t[i];
  const next = () => t[i++];
  const expect = (tok) => {
    if (t[i] !== tok) throw new Error(`${file}: expected ${tok}, got ${t[i]} (token ${i})`);
    i++;
  };
  const skipBalanced = () => { // skips to the end of the statement or block at depth 0
    let depth = 0;
    while (i < t.length) {
      const tok = next();
      if (tok === "{" || tok === "(" || tok === "[") depth++;
      else if (tok === "}" || tok === ")" || tok === "]") { if (--depth === 0 && tok === "}") return; }
      else if (tok === ";" && depth === 0) return;
    }
  };
  const str = (tok) => JSON.parse(tok);

  function parseType() {
    const alts = [parseIntersection()];
    while (peek() === "|") { next(); alts.push(parseIntersection()); }
    return alts.length === 1 ? alts[0] : { kind: "union", of: alts };
  }
  function parseIntersection() { // T & (constraints): T's fields
    const first = parsePrimary();
    while (peek() === "&") { next(); parsePrimary(); }
    return first;
  }
  function parsePrimary() {
    const tok = next();
    if (tok.startsWith('"')) return { kind: "literal", value: str(tok) };
    if (tok === "{") return parseObject();
    if (tok === "(") { const t = parseType(); expect(")"); return t; }
    if (tok === "Exclude") { // Exclude<T, U> is a part of T
      expect("<"); const t = parseType(); expect(","); parseType(); expect(">"); return t;
    }
    if (tok === "Array") { expect("<"); const of = parseType(); expect(">"); return { kind: "array", of }; }
    if (["string", "number", "boolean", "null", "any", "unknown"].includes(tok)) return { kind: "prim", name: tok };
    if (/^[A-Za-z_$]/.test(tok)) return { kind: "ref", name: tok, mod };
    throw new Error(`${file}: unsupported type token ${tok}`);
  }
  function parseObject() { // after "{"
    const props = new Map();
    let index = null;
    while (peek() !== "}") {
      if (peek() === "[") { // [key: string]: T;
        next(); next(); expect(":"); next(); expect("]"); expect(":");
        index = parseType();
      } else {
        const key = next();
        const name = key.startsWith('"') ? str(key) : key;
        let optional = false;
        if (peek() === "?") { next(); optional = true; }
        expect(":");
        props.set(name, { type: parseType(), optional });
      }
      if (peek() === ";" || peek() === ",") next();
    }
    expect("}");
    return { kind: "object", props, index };
  }

  while (i < t.length) {
    const tok = peek();
    if (tok === "import") {
      next();
      if (peek() === "{") {
        next();
        while (peek() !== "}") {
          const imported = next();
          let local = imported;
          if (peek() === "as") { next(); local = next(); }
          mod.imports.set(local, { imported });
          if (peek() === ",") next();
        }
        expect("}"); expect("from");
        const from = str(next());
        for (const v of mod.imports.values()) v.from ??= from;
        if (peek() === ";") next();
      } else skipBalanced();
    } else if (tok === "export" && t[i + 1] === "interface" || tok === "interface") {
      if (tok === "export") next();
      next();
      const name = next();
      expect("{");
      mod.types.set(name, parseObject());
    } else if (tok === "export" && t[i + 1] === "type" && t[i + 2] === "{") {
      i += 3;
      while (peek() !== "}") {
        const real = next();
        let alias = real;
        if (peek() === "as") { next(); alias = next(); }
        mod.aliases.set(alias, real);
        if (peek() === ",") next();
      }
      expect("}");
      if (peek() === ";") next();
    } else if (tok === "export" && t[i + 1] === "type") {
      i += 2;
      const name = next();
      expect("=");
      mod.types.set(name, parseType());
      if (peek() === ";") next();
    } else {
      skipBalanced();
    }
  }
  return mod;
}

function moduleFile(fromFile, spec) {
  const base = spec.startsWith(".") ? resolve(dirname(fromFile), spec) : join(fileURLToPath(deps.nodeModules), spec);
  const stem = base.replace(/\.js$/, "");
  for (const f of [`${stem}.d.ts`, join(stem, "index.d.ts")]) if (existsSync(f)) return f;
  throw new Error(`cannot find the declaration of ${spec} (from ${fromFile})`);
}

function lookup(mod, name) {
  const real = mod.aliases.get(name) ?? name;
  if (mod.types.has(real)) return mod.types.get(real);
  const imp = mod.imports.get(name);
  if (imp) return lookup(parseDts(moduleFile(mod.file, imp.from)), imp.imported);
  throw new Error(`${mod.file}: unknown type ${name}`);
}

function deref(type) {
  while (type.kind === "ref") type = lookup(type.mod, type.name);
  return type;
}

// ---- strict walk ----------------------------------------------------------------------------
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function walk(value, type, path, errors) {
  type = deref(type);
  if (value === null || value === undefined) return;
  switch (type.kind) {
    case "object":
      if (!isObject(value)) return; // a type error: schema validation reports it
      if (type.props.size === 0 && !type.index) return; // free-form (pluginConfig, FieldsV1)
      for (const [k, v] of Object.entries(value)) {
        const p = path ? `${path}.${k}` : k;
        const prop = type.props.get(k);
        if (prop) walk(v, prop.type, p, errors);
        else if (type.index) walk(v, type.index, p, errors);
        else errors.push(`unknown field "${p}"`);
      }
      return;
    case "array":
      if (Array.isArray(value)) value.forEach((v, i) => walk(v, type.of, `${path}[${i}]`, errors));
      return;
    case "union": {
      const objects = type.of.map(deref).filter((t) => t.kind === "object" || t.kind === "array");
      if (objects.length === 1) walk(value, objects[0], path, errors);
      else if (objects.length > 1) throw new Error(`${path}: ambiguous union of structured types`);
      return;
    }
    default:
      return; // scalar: type and enum are the schema's to check
  }
}

// The kinds checked: the model (schema validation), its generated declaration (the field tree) and
// fields the parser must have found, or the walk would prove nothing.
const MODELS = [
  { model: WasmPlugin, types: deps.wasmPluginTypes, root: "IWasmPlugin",
    specFields: ["url", "selector", "phase", "failStrategy", "pluginConfig", "imagePullPolicy", "sha256"] },
  { model: Telemetry, types: deps.telemetryTypes, root: "ITelemetry",
    specFields: ["selector", "targetRefs", "tracing", "accessLogging", "metrics"] },
  { model: VirtualService, types: deps.virtualServiceTypes, root: "IVirtualService",
    specFields: ["hosts", "gateways", "http"] },
  { model: EnvoyFilter, types: deps.envoyFilterTypes, root: "IEnvoyFilter",
    specFields: ["workloadSelector", "configPatches"] },
];
const rootTypes = new Map();
function rootType(m) {
  if (!rootTypes.has(m)) {
    const t = lookup(parseDts(fileURLToPath(m.types)), m.root);
    const spec = deref(t.props.get("spec")?.type ?? { kind: "prim" });
    for (const f of m.specFields) {
      if (!spec.props?.has(f)) throw new Error(`${m.root}: no spec.${f}: the model's layout changed`);
    }
    rootTypes.set(m, t);
  }
  return rootTypes.get(m);
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

// Kinds whose CRD leaves spec free-form: nothing to check strictly.
const FREE_FORM = ["install.istio.io/v1alpha1 IstioOperator"];
const KNOWN = MODELS.map((m) => `${m.model.apiVersion} ${m.model.kind}`).join(", ");

// Errors of one document; null for a document of another API group (not checked).
function validateDoc(doc) {
  const errors = [];
  if (!isObject(doc)) return ["the document is not a mapping"];
  const m = MODELS.find((m) => doc.apiVersion === m.model.apiVersion && doc.kind === m.model.kind);
  if (!m) {
    if (FREE_FORM.includes(`${doc.apiVersion} ${doc.kind}`)) return null;
    if (typeof doc.apiVersion === "string" && doc.apiVersion.includes("istio.io")) {
      return [`${doc.apiVersion} ${doc.kind}: not a kind this check knows (${KNOWN})`];
    }
    return null;
  }
  try {
    new m.model(doc).validate();
  } catch (e) {
    errors.push(`schema: ${e.message}`);
  }
  walk(doc, rootType(m), "", errors);
  const name = doc.metadata?.name;
  if (typeof name !== "string" || name === "") errors.push("metadata.name: Required value: name is required");
  else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    errors.push(`metadata.name: Invalid value: "${name}": not a lowercase RFC 1123 subdomain`);
  }
  const spec = isObject(doc.spec) ? doc.spec : {};
  const targets = [spec.selector != null, spec.targetRef != null, (spec.targetRefs ?? []).length > 0];
  if (targets.filter(Boolean).length > 1) errors.push("spec: only one of targetRefs or workloadSelector can be set");
  return errors;
}

function loadDocs(file) {
  return yaml.loadAll(readFileSync(file, "utf8"), undefined, { filename: file }).filter((d) => d != null);
}

// ---- commands -------------------------------------------------------------------------------
function check(files) {
  let bad = 0;
  for (const file of files) {
    let docs;
    try {
      docs = loadDocs(file);
    } catch (e) {
      console.log(`${file}: invalid YAML: ${e.message.split("\n")[0]}`);
      bad++;
      continue;
    }
    if (docs.length === 0) { console.log(`${file}: no document`); bad++; continue; }
    docs.forEach((doc, n) => {
      const errors = validateDoc(doc);
      const what = `${file} [${n}] ${doc?.kind ?? "?"} ${doc?.metadata?.namespace ?? ""}/${doc?.metadata?.name ?? "?"}`;
      if (errors === null) console.log(`${what}: not checked (${doc?.apiVersion}: not a kind with a strict schema)`);
      else if (errors.length === 0) console.log(`${what}: valid`);
      else { bad++; for (const e of errors) console.log(`${what}: ${e}`); }
    });
  }
  return bad === 0 ? 0 : 1;
}

function pluginConfig(file) {
  const docs = loadDocs(file).filter((d) => d?.kind === "WasmPlugin");
  if (docs.length !== 1) { console.error(`${file}: expected one WasmPlugin, found ${docs.length}`); return 1; }
  process.stdout.write(JSON.stringify(docs[0].spec?.pluginConfig ?? {}, null, 2) + "\n");
  return 0;
}

function pluginConfigs(file) {
  loadDocs(file).forEach((doc, n) => {
    if (doc?.kind !== "WasmPlugin") return;
    const name = `${doc.metadata?.namespace ?? ""}/${doc.metadata?.name ?? "?"}`;
    process.stdout.write(`${n}\t${name}\t${JSON.stringify(doc.spec?.pluginConfig ?? {})}\n`);
  });
  return 0;
}

// The fenced ```yaml blocks of markdown FILES that hold an apiVersion and a kind, each written to
// OUTDIR/<file>-L<line>.yaml (the fence's indentation removed); prints the paths written.
function docManifests(outDir, files) {
  for (const file of files) {
    const lines = readFileSync(file, "utf8").split("\n");
    for (let i = 0; i < lines.length; i++) {
      const open = /^( *)```ya?ml\s*$/.exec(lines[i]);
      if (!open) continue;
      const indent = open[1].length;
      const body = [];
      let j = i + 1;
      for (; j < lines.length && lines[j].trim() !== "```"; j++) body.push(lines[j].slice(indent));
      const text = body.join("\n") + "\n";
      if (/^apiVersion:/m.test(text) && /^kind:/m.test(text)) {
        const out = join(outDir, `${file.replace(/[/.]/g, "_")}-L${i + 1}.yaml`);
        writeFileSync(out, text);
        console.log(out);
      }
      i = j;
    }
  }
  return 0;
}

// Fields of `pub struct NAME { ... }` in a Rust file: [field, type] pairs.
function rustStruct(src, name) {
  const m = new RegExp(`pub struct ${name} \\{([\\s\\S]*?)\\n\\}`).exec(src);
  if (!m) throw new Error(`no struct ${name}`);
  return [...m[1].matchAll(/^\s*pub (\w+): ([\w<>]+),/gm)].map((f) => [f[1], f[2]]);
}

function documented(file, configRs) {
  const src = readFileSync(configRs, "utf8");
  const text = readFileSync(file, "utf8");
  const cfg = loadDocs(file).find((d) => d?.kind === "WasmPlugin")?.spec?.pluginConfig ?? {};
  // The pluginConfig block: from its key to the next line indented no deeper.
  const lines = text.split("\n");
  const start = lines.findIndex((l) => /^\s*pluginConfig:/.test(l));
  const indent = start < 0 ? 0 : lines[start].search(/\S/);
  const block = [];
  for (let i = start + 1; start >= 0 && i < lines.length; i++) {
    if (lines[i].trim() !== "" && lines[i].search(/\S/) <= indent && !lines[i].trim().startsWith("#")) break;
    block.push(lines[i]);
  }
  const commented = new Set(block.map((l) => /^\s*#\s*(\w+):/.exec(l)?.[1]).filter(Boolean));
  const missing = [];
  const visit = (struct, obj, prefix) => {
    for (const [field, type] of rustStruct(src, struct)) {
      const path = prefix + field;
      const nested = /^[A-Z]\w*$/.test(type) && new RegExp(`pub struct ${type} \\{`).test(src);
      if (nested) visit(type, isObject(obj?.[field]) ? obj[field] : undefined, path + ".");
      else if (!(obj && field in obj) && !commented.has(field)) missing.push(path);
    }
  };
  visit("Config", cfg, "");
  if (missing.length) {
    console.log(`${file}: pluginConfig does not show ${missing.join(", ")} (fields of ${configRs})`);
    return 1;
  }
  console.log(`${file}: pluginConfig shows every field of ${configRs}`);
  return 0;
}

const [cmd, ...args] = process.argv.slice(2);
let rc;
try {
  if (cmd === "check" && args.length) rc = check(args);
  else if (cmd === "plugin-config" && args.length === 1) rc = pluginConfig(args[0]);
  else if (cmd === "plugin-configs" && args.length === 1) rc = pluginConfigs(args[0]);
  else if (cmd === "doc-manifests" && args.length >= 2) rc = docManifests(args[0], args.slice(1));
  else if (cmd === "documented" && args.length === 2) rc = documented(args[0], args[1]);
  else {
    console.error("usage: validate.mjs check FILE... | plugin-config FILE | plugin-configs FILE | doc-manifests OUTDIR MD... | documented FILE CONFIG_RS");
    rc = 2;
  }
} catch (e) {
  console.error(`validate.mjs: ${e.stack}`);
  rc = 2;
}
process.exit(rc);
