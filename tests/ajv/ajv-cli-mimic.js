#!/usr/bin/env node
// Stand-in for `pincer-gen validate` built on Ajv, with the same interface:
//
//   node ajv-cli-mimic.js validate --schemas DIR --def NAME  < instances.jsonl
//
// reads one JSON text per line and prints one line per input:
//   {"valid":true|false,"errors":[{"keyword":…,"instancePath":…,"message":…}]}
// Used to test crosscheck.js without the C tool (`--gen ajv-cli-mimic.js` should give 0 failed)
// and as a reference output for the C side.
'use strict';

const path = require('path');
const readline = require('readline');
const { loadAjv, ajvResult } = require('./crosscheck.js');

function fail(msg) {
  process.stderr.write(`ajv-cli-mimic: ${msg}\n`);
  process.exit(2);
}

function main(argv) {
  if (argv[0] !== 'validate') fail('usage: ajv-cli-mimic.js validate --schemas DIR --def NAME');
  let schemas = null;
  let def = null;
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '--schemas' && i + 1 < argv.length) schemas = path.resolve(argv[++i]);
    else if (argv[i] === '--def' && i + 1 < argv.length) def = argv[++i];
    else fail(`unknown argument ${argv[i]}`);
  }
  if (!schemas || !def) fail('--schemas and --def are required');
  const { validator } = loadAjv(schemas);
  let validate;
  try {
    validate = validator(def);
  } catch (e) {
    fail(e.message);
  }
  const out = [];
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    let value;
    try {
      value = JSON.parse(line);
    } catch (e) {
      out.push(JSON.stringify({ valid: false, errors: [{ keyword: 'json', instancePath: '', message: `invalid JSON: ${e.message}` }] }));
      return;
    }
    out.push(JSON.stringify(ajvResult(validate, value)));
  });
  rl.on('close', () => {
    process.stdout.write(out.length ? out.join('\n') + '\n' : '');
  });
}

main(process.argv.slice(2));
