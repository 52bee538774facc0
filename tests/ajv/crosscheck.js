#!/usr/bin/env node
// Differential test: Ajv 8 (configured like the upstream gateway: allErrors, strict off)
// against the pincer C validator (`pincer-gen validate`), on every definition of schemas/.
//
// For each definition it builds instances from three sources:
//   vector    real frames and payloads captured from the released gateway (tests/fixtures/vectors)
//   valid     instances generated from the schema (minimal, full, enum ends, bounds at the edges)
//   invalid   mutations of those (missing required, unknown property, wrong type, enum/const,
//             bounds +-1, multi-byte strings around length limits, duplicates, ...)
// Each instance is one test: the C verdict must equal Ajv's and the errors must be the same
// multiset of (keyword, instancePath, message). Order differences are reported, not failed.
// Vector instances are also checked against the verdict the real gateway gave, and, where the
// gateway answered with a validation error text, against that text's first error.
//
// Usage: node crosscheck.js [--schemas DIR] [--gen PATH] [--vectors DIR] [--def NAME] [--verbose]
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const Ajv = require('ajv');

// ---------------------------------------------------------------------------------------------
// Schema loading (shared with ajv-cli-mimic.js)

function loadSchemaDocs(dir) {
  const docs = {};
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.endsWith('.json') || name === 'protocol.json') continue;
    const doc = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
    if (doc.$id !== name) throw new Error(`${name}: $id is ${JSON.stringify(doc.$id)}, expected ${JSON.stringify(name)}`);
    docs[name] = doc;
  }
  return docs;
}

// Returns {ajv, docs, owner: {DefinitionName: fileName}, validator(name)}.
function loadAjv(dir) {
  const docs = loadSchemaDocs(dir);
  const ajv = new Ajv({ allErrors: true, strict: false });
  const owner = {};
  for (const [file, doc] of Object.entries(docs)) {
    ajv.addSchema(doc);
    for (const def of Object.keys(doc.definitions || {})) {
      if (owner[def]) throw new Error(`definition ${def} is in both ${owner[def]} and ${file}`);
      owner[def] = file;
    }
  }
  const cache = {};
  function validator(name) {
    if (!owner[name]) throw new Error(`unknown definition ${name}`);
    if (!cache[name]) {
      const v = ajv.getSchema(`${owner[name]}#/definitions/${name}`);
      if (!v) throw new Error(`cannot compile ${name}`);
      cache[name] = v;
    }
    return cache[name];
  }
  return { ajv, docs, owner, validator };
}

// The released gateway validates with TypeBox, whose English messages say
// "must not" where Ajv says "must NOT" and give no item indices for
// uniqueItems (typebox/build/system/locale/en_US). pincer uses that wording;
// Ajv stays the oracle for verdicts, error lists and order.
function gatewayWording(message) {
  if (typeof message !== 'string') return message;
  return message.replace(/^must NOT have duplicate items \(items ## \d+ and \d+ are identical\)$/, 'must not have duplicate items')
    .replace(/^must NOT /, 'must not ');
}

// The CLI's output shape for one instance.
function ajvResult(validate, instance) {
  const valid = validate(instance);
  const errors = valid ? [] : validate.errors.map((e) => ({
    keyword: e.keyword, instancePath: e.instancePath, message: gatewayWording(e.message),
  }));
  return { valid: !!valid, errors };
}

module.exports = { loadSchemaDocs, loadAjv, ajvResult };

// ---------------------------------------------------------------------------------------------
// Everything below runs only as a script.

function parseArgs(argv) {
  const here = __dirname;
  const opt = {
    schemas: path.resolve(here, '../../schemas'),
    gen: path.resolve(here, '../../bin/pincer-gen'),
    vectors: path.resolve(here, '../fixtures/vectors'),
    def: null,
    verbose: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--schemas') opt.schemas = path.resolve(val());
    else if (a === '--gen') opt.gen = path.resolve(val());
    else if (a === '--vectors') opt.vectors = path.resolve(val());
    else if (a === '--def') opt.def = val();
    else if (a === '--verbose' || a === '-v') opt.verbose = true;
    else if (a === '--help' || a === '-h') usage(null);
    else usage(`unknown argument ${a}`);
  }
  return opt;
}

function usage(err) {
  const out = err ? process.stderr : process.stdout;
  if (err) out.write(`crosscheck: ${err}\n`);
  out.write('usage: node crosscheck.js [--schemas DIR] [--gen PATH] [--vectors DIR] [--def NAME] [--verbose]\n');
  process.exit(err ? 2 : 0);
}

const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const ptrEscape = (k) => String(k).replace(/~/g, '~0').replace(/\//g, '~1');
const cpLen = (s) => [...s].length;

// ---------------------------------------------------------------------------------------------
// Instance sets. Each instance is JSON *text*, so both validators see exactly the same bytes
// (this is how "1.0" reaches them as a float literal).

class InstanceSet {
  constructor() { this.byDef = new Map(); }
  add(def, text, origin, extra) {
    if (!this.byDef.has(def)) this.byDef.set(def, new Map());
    const m = this.byDef.get(def);
    const defined = {};
    for (const [k, v] of Object.entries(extra || {})) if (v !== undefined) defined[k] = v;
    if (!m.has(text)) m.set(text, Object.assign({ text, origin }, defined));
    else Object.assign(m.get(text), defined); // a vector expectation wins over a generated twin
  }
}

// ---------------------------------------------------------------------------------------------
// (a) Vector instances

// Upstream formats validation errors for operators as "at <path>: <message>" joined with "; ",
// with "unexpected property 'x'" for additionalProperties and no prefix at the root. Its
// validator reports one `required` error per object, naming the first missing property, where
// Ajv reports one per missing property; fold those to match.
function wireText(errors) {
  const parts = [];
  const seenRequired = new Set();
  for (const e of errors) {
    const at = e.instancePath ? `at ${e.instancePath}: ` : '';
    if (e.keyword === 'additionalProperties' && e.params && e.params.additionalProperty !== undefined) {
      parts.push(`at ${e.instancePath || 'root'}: unexpected property '${e.params.additionalProperty}'`);
    } else if (e.keyword === 'required' && e.params) {
      if (seenRequired.has(e.instancePath)) continue;
      seenRequired.add(e.instancePath);
      parts.push(`${at}must have required property '${e.params.missingProperty}'`);
    } else {
      parts.push(`${at}${e.message}`);
    }
  }
  return [...new Set(parts)];
}

function readJsonl(file) {
  const out = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    out.push({ rec: JSON.parse(line), line: i + 1 });
  });
  return out;
}

const EVENT_PAYLOADS = {
  'connect.challenge': 'ConnectChallenge', tick: 'TickEvent', shutdown: 'ShutdownEvent',
  presence: 'PresenceEvent', health: 'HealthEvent',
  agent: 'AgentEvent', chat: 'ChatEvent',
};
const METHOD_SHAPES = {
  connect: ['ConnectParams', 'HelloOk'],
  health: ['HealthParams', 'HealthResult'],
  status: ['StatusParams', 'StatusResult'],
  'system-presence': ['SystemPresenceParams', 'SystemPresenceResult'],
  agent: ['AgentParams', 'AgentResult'],
  'agent.wait': ['AgentWaitParams', 'AgentWaitResult'],
  'chat.send': ['ChatSendParams', 'ChatSendResult'],
  'chat.history': ['ChatHistoryParams', 'ChatHistoryResult'],
  'chat.abort': ['ChatAbortParams', 'ChatAbortResult'],
  'sessions.list': ['SessionsListParams', 'SessionsListResult'],
  'sessions.preview': ['SessionsPreviewParams', 'SessionsPreviewResult'],
  'sessions.reset': ['SessionsResetParams', 'SessionsResetResult'],
  'sessions.delete': ['SessionsDeleteParams', 'SessionsDeleteResult'],
  send: ['SendParams', 'SendResult'],
};

// Returns a list of {def, value, where, expectValid, wire}.
function vectorInstances(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.endsWith('.jsonl')) continue;
    const recs = readJsonl(path.join(dir, name));
    const reqs = new Map(); // conn|id -> {method, item(s)}
    const lastC2s = new Map(); // conn -> most recent c2s req-check item
    const items = [];
    for (const { rec, line } of recs) {
      if (!('json' in rec)) continue;
      const j = rec.json;
      const where = `${name}:${line}`;
      const frameItem = { def: 'GatewayFrame', value: j, where, expectValid: true };
      items.push(frameItem);
      if (rec.dir === 'c2s') {
        // After the handshake every client frame is checked as a RequestFrame.
        const reqItem = { def: 'RequestFrame', value: j, where, expectValid: true };
        items.push(reqItem);
        lastC2s.set(rec.conn, { reqItem, frameItem });
      }
      if (j && j.type === 'req' && typeof j.method === 'string') {
        const entry = { method: j.method };
        reqs.set(`${rec.conn}|${j.id}`, entry);
        const shape = METHOD_SHAPES[j.method];
        if (shape && 'params' in j) {
          entry.paramsItem = { def: shape[0], value: j.params, where, expectValid: true };
          items.push(entry.paramsItem);
        }
      } else if (j && j.type === 'res') {
        const entry = reqs.get(`${rec.conn}|${j.id}`);
        const shape = entry && METHOD_SHAPES[entry.method];
        if (j.error) items.push({ def: 'ErrorShape', value: j.error, where, expectValid: true });
        if (shape && j.ok === true && 'payload' in j) items.push({ def: shape[1], value: j.payload, where, expectValid: true });
        const msg = j.error && typeof j.error.message === 'string' ? j.error.message : '';
        // A request refused for its role or scopes never had its params checked: no verdict.
        if (entry && entry.paramsItem && j.error && (j.error.code === 'FORBIDDEN' || msg.startsWith('unauthorized role: '))) {
          entry.paramsItem.expectValid = undefined;
        }
        if (entry && entry.paramsItem && msg.startsWith(`invalid ${entry.method} params: `)) {
          entry.paramsItem.expectValid = false;
          entry.paramsItem.wire = msg.slice(`invalid ${entry.method} params: `.length);
        }
        if (msg.startsWith('invalid request frame: ')) {
          const prev = lastC2s.get(rec.conn);
          if (prev) {
            prev.reqItem.expectValid = false;
            prev.reqItem.wire = msg.slice('invalid request frame: '.length);
          }
        }
      } else if (j && j.type === 'event') {
        const def = EVENT_PAYLOADS[j.event];
        if (def) items.push({ def, value: j.payload, where, expectValid: true });
      }
    }
    // Server-side verdicts that left no error text behind.
    for (const { rec } of recs) {
      if (rec.ev === 'close' && rec.by === 'server' && rec.reason === 'invalid request frame') {
        const prev = lastC2s.get(rec.conn);
        if (prev) { prev.reqItem.expectValid = false; prev.frameItem.expectValid = false; }
      }
    }
    // A frame that is not a valid RequestFrame is also no GatewayFrame unless it is a res/event.
    for (const it of items) {
      if (it.def === 'RequestFrame' && it.expectValid === false) {
        const t = it.value && it.value.type;
        const twin = items.find((x) => x.def === 'GatewayFrame' && x.value === it.value);
        if (twin && t !== 'res' && t !== 'event') twin.expectValid = false;
      }
    }
    // The oversized pre-auth connect was cut by the transport (1009) before validation; its
    // params carry an extra `pad` member, so they are not valid ConnectParams.
    for (const it of items) {
      if (it.def === 'ConnectParams' && it.value && Object.prototype.hasOwnProperty.call(it.value, 'pad')) it.expectValid = false;
    }
    out.push(...items);
  }
  return out;
}

// Sub-instances: walk a (valid) instance along its schema and collect the values that sit under
// a $ref to another definition, so definitions like HelloOkAuth or PresenceEntry get real data.
function collectSubInstances(ctx, def, value, sink, depth) {
  if (depth > 12) return;
  walk(ctx.resolveDef(def), value);
  function walk(schema, v) {
    if (!schema || typeof schema !== 'object') return;
    if (schema.$ref) {
      const target = ctx.refName(schema.$ref);
      sink(target, v);
      collectSubInstances(ctx, target, v, sink, depth + 1);
      return;
    }
    if (Array.isArray(v)) {
      if (schema.items && !Array.isArray(schema.items)) v.forEach((x) => walk(schema.items, x));
    } else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (schema.properties && schema.properties[k]) walk(schema.properties[k], x);
        else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') walk(schema.additionalProperties, x);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// (b)/(c) Generated instances

const FLOAT_MARK = '@@float@@'; // marks an integer to be written as N.0

class Generator {
  constructor(docs, owner) {
    this.docs = docs;
    this.owner = owner;
  }
  resolveDef(name) { return this.docs[this.owner[name]].definitions[name]; }
  refName(ref) {
    const m = /^(?:([^#]*))?#\/definitions\/([^/]+)$/.exec(ref);
    if (!m) throw new Error(`unsupported $ref ${ref}`);
    return decodeURIComponent(m[2]);
  }
  deref(schema) {
    let s = schema;
    for (let i = 0; s && s.$ref && i < 32; i++) s = this.resolveDef(this.refName(s.$ref));
    return s;
  }
  types(s) {
    if (s.type) return Array.isArray(s.type) ? s.type : [s.type];
    if ('const' in s) return [jsonType(s.const)];
    if (s.enum) return [...new Set(s.enum.map(jsonType))];
    if (s.properties || s.required || 'additionalProperties' in s) return ['object'];
    if (s.items) return ['array'];
    return null; // anything
  }

  // A value valid against schema. mode 'min' (required members only) or 'full' (all members).
  // `visit(pathArray, schema, value)` is called for every generated node.
  gen(schema, mode, pathArr, visit, depth) {
    const s = this.deref(schema);
    if (depth > 24) return null;
    let v;
    if (s === true || !s || Object.keys(s).filter((k) => !ANNOTATIONS.has(k)).length === 0) {
      v = mode === 'full' ? { any: [1, 'x', null] } : null;
      visit(pathArr, s, v);
      return v;
    }
    if ('const' in s) v = clone(s.const);
    else if (s.enum) v = clone(s.enum[0]);
    else if (s.anyOf || s.oneOf) {
      const branch = (s.anyOf || s.oneOf)[0];
      v = this.gen(branch, mode, pathArr, visit, depth + 1);
      visit(pathArr, s, v);
      return v;
    } else if (s.allOf) {
      v = this.gen(s.allOf[0], mode, pathArr, visit, depth + 1);
    } else {
      const ts = this.types(s) || ['null'];
      const t = ts.find((x) => x !== 'null') || 'null';
      v = this.genType(s, t, mode, pathArr, visit, depth);
      visit(pathArr, s, v);
      return v;
    }
    visit(pathArr, s, v);
    return v;
  }

  genType(s, t, mode, pathArr, visit, depth) {
    switch (t) {
      case 'null': return null;
      case 'boolean': return true;
      case 'integer':
      case 'number': return numberIn(s, t);
      case 'string': return stringFor(s, s.minLength || 0, 'x');
      case 'array': {
        const n = Math.max(s.minItems || 0, mode === 'full' ? 1 : 0);
        const out = [];
        for (let i = 0; i < n; i++) {
          const itemSchema = Array.isArray(s.items) ? (s.items[i] || s.additionalItems || {}) : (s.items || {});
          let x = this.gen(itemSchema, mode, pathArr.concat(i), visit, depth + 1);
          if (s.uniqueItems && typeof x === 'string' && i > 0) x = stringFor(this.deref(itemSchema), (this.deref(itemSchema).minLength || 0), String.fromCharCode(97 + i));
          out.push(x);
        }
        return out;
      }
      case 'object': {
        const out = {};
        const props = s.properties || {};
        const req = new Set(s.required || []);
        for (const [k, ps] of Object.entries(props)) {
          if (mode === 'full' || req.has(k)) out[k] = this.gen(ps, mode, pathArr.concat(k), visit, depth + 1);
        }
        for (const k of req) if (!(k in out)) out[k] = null; // required but undeclared
        if (mode === 'full' && s.additionalProperties && typeof s.additionalProperties === 'object') {
          const key = 'a/b~c';
          out[key] = this.gen(s.additionalProperties, mode, pathArr.concat(key), visit, depth + 1);
        }
        return out;
      }
      default: return null;
    }
  }
}

const ANNOTATIONS = new Set(['title', 'description', 'default', 'format', 'examples', '$comment',
  'deprecated', 'readOnly', 'writeOnly', 'discriminator', '$id', '$schema', 'definitions']);

function jsonType(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function numberIn(s, t) {
  if (typeof s.minimum === 'number') return s.minimum;
  if (typeof s.exclusiveMinimum === 'number') return t === 'integer' ? Math.floor(s.exclusiveMinimum) + 1 : s.exclusiveMinimum + 0.5;
  if (typeof s.maximum === 'number') return Math.min(0, s.maximum);
  if (typeof s.exclusiveMaximum === 'number') return s.exclusiveMaximum - 1;
  return t === 'integer' ? 1 : 1.5;
}

// A string of n code points built from `unit`, satisfying the pattern when there is one.
function stringFor(s, n, unit) {
  const candidates = [unit.repeat(n), 'a'.repeat(n), '0'.repeat(n), 'x'.repeat(n)];
  if (!s || !s.pattern) return candidates[0];
  const re = new RegExp(s.pattern, 'u');
  for (const c of candidates) if (re.test(c)) return c;
  return null; // cannot satisfy: caller skips
}

function setAt(root, pathArr, value) {
  if (pathArr.length === 0) return value;
  let node = root;
  for (let i = 0; i < pathArr.length - 1; i++) node = node[pathArr[i]];
  node[pathArr[pathArr.length - 1]] = value;
  return root;
}
function deleteAt(root, pathArr) {
  let node = root;
  for (let i = 0; i < pathArr.length - 1; i++) node = node[pathArr[i]];
  const last = pathArr[pathArr.length - 1];
  if (Array.isArray(node)) node.splice(last, 1); else delete node[last];
  return root;
}
function toText(v) {
  let text = JSON.stringify(v);
  // integer rendered as "N.0": a float literal with zero fraction is still an integer
  text = text.replace(new RegExp(`"${FLOAT_MARK}(-?\\d+)"`, 'g'), '$1.0');
  return text;
}

// All generated instances for one definition: [{text, origin}]
function generateFor(gen, def) {
  const out = [];
  const add = (v, origin) => { if (v !== undefined) out.push({ text: toText(v), origin }); };
  const root = gen.resolveDef(def);

  const minimal = gen.gen(root, 'min', [], () => {}, 0);
  add(minimal, 'valid: minimal');
  const nodes = [];
  const full = gen.gen(root, 'full', [], (p, s, v) => nodes.push({ path: p, schema: s, value: clone(v) }), 0);
  add(full, 'valid: full');

  // Unions: every branch, inside the full instance.
  for (const n of nodes) {
    const alts = n.schema && (n.schema.anyOf || n.schema.oneOf);
    if (!alts) continue;
    alts.forEach((b, i) => {
      const bv = gen.gen(b, 'full', [], () => {}, 0);
      add(setAt(clone(full), n.path, bv), `valid: ${label(n.path)} branch ${i}`);
      const bm = gen.gen(b, 'min', [], () => {}, 0);
      add(setAt(clone(full), n.path, bm), `valid: ${label(n.path)} branch ${i} minimal`);
    });
  }

  for (const n of nodes) {
    const s = n.schema;
    if (!s || typeof s !== 'object') continue;
    const at = label(n.path);
    const mut = (value, origin) => add(setAt(clone(full), n.path, value), origin);
    const ts = gen.types(s);

    // enum / const
    if (s.enum) {
      mut(clone(s.enum[s.enum.length - 1]), `valid: ${at} last enum value`);
      const bad = typeof s.enum[0] === 'string' ? 'zz-not-allowed' : 987654321;
      mut(bad, `invalid: ${at} not in enum`);
    }
    if ('const' in s) {
      const c = s.const;
      const other = typeof c === 'string' ? c + 'x' : typeof c === 'boolean' ? !c : typeof c === 'number' ? c + 1 : null;
      mut(other, `invalid: ${at} const violated`);
    }

    // wrong type
    if (ts && !n.schema.anyOf && !n.schema.oneOf) {
      const wrong = wrongTypeValue(ts);
      if (wrong !== undefined) mut(wrong, `invalid: ${at} wrong type`);
    }
    // nullable: null
    if (ts && ts.includes('null') && ts.length > 1) mut(null, `valid: ${at} null`);

    // strings
    if (ts && ts.includes('string') && !s.enum && !('const' in s)) {
      const min = s.minLength || 0;
      if (min > 0) {
        const e = stringFor(s, min, 'é');
        if (e !== null) mut(e, `valid: ${at} minLength ${min}${s.pattern ? '' : ' in 2-byte chars'}`);
        mut('é'.repeat(min - 1), `invalid: ${at} minLength-1`);
      }
      if (typeof s.maxLength === 'number') {
        const m = s.maxLength;
        const edge = stringFor(s, m, '😀');
        if (edge !== null) mut(edge, `valid: ${at} maxLength ${m}${s.pattern ? '' : ' in astral chars'}`);
        mut('😀'.repeat(m + 1), `invalid: ${at} maxLength+1 in astral chars`);
        mut('é'.repeat(m + 1), `invalid: ${at} maxLength+1 in 2-byte chars`);
        if (!s.pattern) mut('x'.repeat(m), `valid: ${at} maxLength ${m} ascii`);
      }
      if (s.pattern) {
        const n2 = Math.max(s.minLength || 1, 1);
        mut('G'.repeat(Math.min(n2, s.maxLength || n2)), `invalid: ${at} pattern mismatch`);
      }
      if (!s.pattern && min === 0 && typeof s.maxLength !== 'number') {
        mut('', `valid: ${at} empty string`);
        mut('é😀\u0000"\\/\n', `valid: ${at} escapes and non-ascii`);
      }
    }

    // numbers
    if (ts && (ts.includes('integer') || ts.includes('number')) && !s.enum && !('const' in s)) {
      const isInt = ts.includes('integer') && !ts.includes('number');
      const step = isInt ? 1 : 0.5;
      if (typeof s.minimum === 'number') {
        mut(s.minimum, `valid: ${at} = minimum`);
        mut(s.minimum - step, `invalid: ${at} minimum-${step}`);
      }
      if (typeof s.maximum === 'number') {
        mut(s.maximum, `valid: ${at} = maximum`);
        mut(s.maximum + (s.maximum >= Number.MAX_SAFE_INTEGER ? 1 : step), `invalid: ${at} maximum+${step}`);
      }
      if (typeof s.exclusiveMinimum === 'number') mut(s.exclusiveMinimum, `invalid: ${at} = exclusiveMinimum`);
      if (typeof s.exclusiveMaximum === 'number') mut(s.exclusiveMaximum, `invalid: ${at} = exclusiveMaximum`);
      if (ts.includes('integer')) {
        const base = typeof n.value === 'number' ? n.value : 1;
        mut(`${FLOAT_MARK}${Math.trunc(base)}`, `valid: ${at} integer written as ${Math.trunc(base)}.0`);
        if (isInt) mut(Math.trunc(base) + 0.5, `invalid: ${at} fractional for integer`);
      }
      if (!isInt && typeof s.minimum !== 'number' && typeof s.maximum !== 'number') mut(-1.25e3, `valid: ${at} negative float`);
      if (!isInt && typeof s.minimum === 'number') mut(s.minimum + 0.001, `valid: ${at} fraction above minimum`);
    }

    // arrays
    if (ts && ts.includes('array') && Array.isArray(n.value)) {
      const itemSchema = s.items && !Array.isArray(s.items) ? s.items : {};
      const one = gen.gen(itemSchema, 'min', [], () => {}, 0);
      mut([], s.minItems ? `invalid: ${at} below minItems` : `valid: ${at} empty array`);
      if (typeof s.maxItems === 'number') {
        const items = distinctItems(gen, itemSchema, s.maxItems + 1);
        if (items) {
          mut(items.slice(0, s.maxItems), `valid: ${at} exactly maxItems`);
          mut(items, `invalid: ${at} maxItems+1`);
        }
      }
      if (typeof s.minItems === 'number' && s.minItems > 0) {
        const items = distinctItems(gen, itemSchema, s.minItems);
        if (items) mut(items.slice(0, s.minItems - 1), `invalid: ${at} minItems-1`);
      }
      if (s.uniqueItems) {
        mut([one, clone(one)], `invalid: ${at} duplicate items`);
        const items = distinctItems(gen, itemSchema, 2);
        if (items) mut(items, `valid: ${at} two distinct items`);
      } else if (one !== undefined) {
        mut([one, clone(one)], `valid: ${at} repeated items allowed`);
      }
    }

    // objects
    if (ts && ts.includes('object') && n.value && typeof n.value === 'object' && !Array.isArray(n.value)) {
      for (const r of s.required || []) {
        const v = clone(full);
        const obj = n.path.length ? n.path.reduce((o, k) => o[k], v) : v;
        if (obj && typeof obj === 'object' && r in obj) {
          delete obj[r];
          add(v, `invalid: ${at} missing required ${r}`);
        }
      }
      if (s.required && s.required.length > 1) {
        const v = clone(full);
        const obj = n.path.length ? n.path.reduce((o, k) => o[k], v) : v;
        for (const r of s.required) delete obj[r];
        add(v, `invalid: ${at} all required missing`);
      }
      if (s.additionalProperties === false) {
        const v = clone(n.value);
        v.zzUnknown = 1;
        mut(v, `invalid: ${at} unknown property`);
        const w = clone(n.value);
        w['we/ird~key'] = 'x';
        mut(w, `invalid: ${at} unknown property needing pointer escapes`);
      } else if (s.additionalProperties && typeof s.additionalProperties === 'object') {
        const v = clone(n.value);
        const wrong = wrongTypeValue(gen.types(gen.deref(s.additionalProperties)) || ['string']);
        if (wrong !== undefined) {
          v['bad/key~'] = wrong;
          mut(v, `invalid: ${at} map value of wrong type`);
        }
        mut({}, `valid: ${at} empty map`);
      } else if (!s.additionalProperties || s.additionalProperties === true) {
        const v = clone(n.value);
        v.zzExtra = { nested: [1, 2] };
        mut(v, `valid: ${at} extra property on open object`);
      }
    }
  }

  // Whole-instance wrong types.
  for (const w of [null, 0, 'x', [], {}, true]) add(w, `root: ${JSON.stringify(w)}`);
  return out;
}

function label(p) { return p.length ? '/' + p.map(ptrEscape).join('/') : '(root)'; }

function wrongTypeValue(ts) {
  const candidates = [['string', 12345], ['integer', 'not-a-number'], ['number', 'not-a-number'],
    ['boolean', 'true'], ['object', ['not', 'an', 'object']], ['array', { not: 'an array' }], ['null', 0]];
  const want = new Set(ts);
  if (want.has('number')) want.add('integer');
  for (const [t, v] of candidates) {
    if (!want.has(t)) continue;
    const vt = jsonType(v);
    if (!want.has(vt) && !(vt === 'integer' && want.has('number'))) return v;
  }
  return undefined;
}

function distinctItems(gen, itemSchema, n) {
  const s = gen.deref(itemSchema);
  const ts = gen.types(s) || [];
  const items = [];
  for (let i = 0; i < n; i++) {
    if (s.enum) {
      if (i >= s.enum.length) return null;
      items.push(clone(s.enum[i]));
    } else if (ts.includes('string')) {
      const base = stringFor(s, Math.max(s.minLength || 1, 1), 'x');
      if (base === null) return null;
      const v = (String.fromCharCode(97 + (i % 26)) + i).padEnd(Math.max(s.minLength || 1, 1), 'x');
      if (typeof s.maxLength === 'number' && cpLen(v) > s.maxLength) return null;
      if (s.pattern && !new RegExp(s.pattern, 'u').test(v)) return null;
      items.push(v);
    } else if (ts.includes('integer') || ts.includes('number')) {
      items.push(numberIn(s, 'integer') + i);
    } else {
      // objects: vary one free-form string member so the items differ
      const v = gen.gen(s, 'min', [], () => {}, 0);
      if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
      const key = Object.keys(s.properties || {}).find((k) => {
        const ps = gen.deref(s.properties[k]);
        return k in v && typeof v[k] === 'string' && !ps.enum && !('const' in ps) && !ps.pattern &&
          (typeof ps.maxLength !== 'number' || ps.maxLength >= 4);
      });
      if (key === undefined) return null;
      v[key] = `v${i}`.padEnd(gen.deref(s.properties[key]).minLength || 0, 'x');
      items.push(v);
    }
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// The C side

function runCli(gen, schemasDir, def, texts) {
  const r = spawnSync(gen, ['validate', '--schemas', schemasDir, '--def', def], {
    input: texts.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 28,
  });
  if (r.error) return { fatal: `cannot run ${gen}: ${r.error.message}` };
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== texts.length) {
    return { fatal: `expected ${texts.length} output lines, got ${lines.length} (exit ${r.status})` +
      (r.stderr ? `; stderr: ${r.stderr.trim().split('\n').slice(0, 5).join(' | ')}` : '') };
  }
  const results = lines.map((l) => {
    try { return JSON.parse(l); } catch (e) { return { unparsable: l }; }
  });
  return { results, status: r.status, stderr: r.stderr };
}

const errKey = (e) => JSON.stringify([e.keyword, e.instancePath, e.message]);

function compare(ajvOut, cOut) {
  if (!cOut || cOut.unparsable !== undefined || typeof cOut.valid !== 'boolean' || !Array.isArray(cOut.errors)) {
    return { ok: false, why: 'malformed C output' };
  }
  if (ajvOut.valid !== cOut.valid) return { ok: false, why: 'verdict differs' };
  const a = ajvOut.errors.map(errKey);
  const c = cOut.errors.map(errKey);
  const as = [...a].sort();
  const cs = [...c].sort();
  if (as.length !== cs.length || as.some((x, i) => x !== cs[i])) return { ok: false, why: 'errors differ' };
  return { ok: true, orderDiffers: a.some((x, i) => x !== c[i]) };
}

// ---------------------------------------------------------------------------------------------

function main() {
  const opt = parseArgs(process.argv.slice(2));
  const { docs, owner, validator } = loadAjv(opt.schemas);
  const gen = new Generator(docs, owner);
  const set = new InstanceSet();
  let passed = 0;
  let failed = 0;
  const notes = [];

  // (a) vectors
  const vecs = vectorInstances(opt.vectors);
  const subCount = new Map();
  for (const it of vecs) {
    if (!owner[it.def]) continue;
    const text = JSON.stringify(it.value === undefined ? null : it.value);
    set.add(it.def, text, `vector ${it.where}`, { expectValid: it.expectValid, wire: it.wire });
    if (it.expectValid) {
      collectSubInstances(gen, it.def, it.value, (d, v) => {
        const n = subCount.get(d) || 0;
        if (n >= 25 || v === undefined) return;
        const t = JSON.stringify(v);
        const m = set.byDef.get(d);
        if (m && m.has(t)) return;
        subCount.set(d, n + 1);
        set.add(d, t, `vector ${it.where} (inside ${it.def})`, { expectValid: true });
      }, 0);
    }
  }
  // (b)+(c) generated
  const defs = Object.keys(owner).filter((d) => !opt.def || d === opt.def);
  if (opt.def && defs.length === 0) usage(`no definition ${opt.def}`);
  for (const def of defs) {
    for (const g of generateFor(gen, def)) set.add(def, g.text, g.origin);
  }

  const haveGen = fs.existsSync(opt.gen);
  if (!haveGen) process.stdout.write(`crosscheck: ${opt.gen} not found; every instance counts as failed\n`);
  let orderDiffs = 0;
  let expectMisses = 0;
  for (const def of defs) {
    const m = set.byDef.get(def);
    if (!m) continue;
    const insts = [...m.values()];
    const v = validator(def);
    const ajvOuts = [];
    for (const inst of insts) {
      const value = JSON.parse(inst.text);
      const valid = v(value);
      const errors = valid ? [] : v.errors.map((e) => ({ keyword: e.keyword, instancePath: e.instancePath, message: gatewayWording(e.message), params: e.params }));
      ajvOuts.push({ valid: !!valid, errors });
    }
    const cli = haveGen ? runCli(opt.gen, opt.schemas, def, insts.map((i) => i.text)) : { fatal: 'no C validator' };
    if (cli.fatal && haveGen) process.stdout.write(`FAIL ${def}: ${cli.fatal}\n`);
    insts.forEach((inst, idx) => {
      const ajvOut = ajvOuts[idx];
      const plain = { valid: ajvOut.valid, errors: ajvOut.errors.map(({ keyword, instancePath, message }) => ({ keyword, instancePath, message })) };
      const problems = [];
      // schema sanity: real frames must get the verdict the real gateway gave
      if (inst.expectValid !== undefined && inst.expectValid !== ajvOut.valid) {
        problems.push(`Ajv says ${ajvOut.valid ? 'valid' : 'invalid'}, the real gateway said ${inst.expectValid ? 'valid' : 'invalid'}`);
        expectMisses++;
      }
      if (inst.wire !== undefined && !ajvOut.valid) {
        const mine = wireText(ajvOut.errors);
        const theirs = inst.wire.split('; ');
        if (mine[0] !== theirs[0]) problems.push(`first error "${mine[0]}" but the gateway said "${theirs[0]}"`);
        else if (mine.join('; ') !== inst.wire) notes.push(`${def} ${inst.origin}: gateway text "${inst.wire}", Ajv gives "${mine.join('; ')}"`);
      }
      let cRes = null;
      if (!cli.fatal) {
        cRes = cli.results[idx];
        // Optional extra: when the C tool also prints the operator-facing error text, compare it
        // with what the real gateway sent for the same instance (reported, not failed).
        if (inst.wire !== undefined && cRes && typeof cRes.text === 'string' && cRes.text !== inst.wire) {
          notes.push(`${def} ${inst.origin}: C text "${cRes.text}" but the gateway sent "${inst.wire}"`);
        }
        const cmp = compare(plain, cRes);
        if (!cmp.ok) problems.push(cmp.why);
        else if (cmp.orderDiffers) {
          orderDiffs++;
          if (opt.verbose) notes.push(`${def} ${inst.origin}: same errors, different order`);
        }
      }
      if (problems.length === 0 && !cli.fatal) { passed++; return; }
      failed++;
      if (problems.length === 0) return; // the C run failed as a whole; reported once above
      process.stdout.write(`FAIL ${def} [${inst.origin}]: ${problems.join('; ')}\n`);
      process.stdout.write(`  instance: ${inst.text.length > 600 ? inst.text.slice(0, 600) + '…' : inst.text}\n`);
      process.stdout.write(`  ajv:      ${JSON.stringify(plain)}\n`);
      if (cRes) process.stdout.write(`  c:        ${JSON.stringify(cRes)}\n`);
    });
  }
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  if (orderDiffs) process.stdout.write(`note: ${orderDiffs} instance(s) with equal errors in a different order\n`);
  if (expectMisses) process.stdout.write(`note: ${expectMisses} vector instance(s) where the schemas disagree with the real gateway\n`);
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exit(failed ? 1 : 0);
}

if (require.main === module) main();
