// The web client's modules import one way: no module imports one that imports it back
// (app/hooks.js is how a lower module calls a higher one), and every hook it declares
// is set by app.js. Run: node --test webmodules.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const STATIC = resolve(dirname(fileURLToPath(import.meta.url)), '../../internal/web/static');
const files = ['app.js', ...readdirSync(join(STATIC, 'app')).filter((f) => f.endsWith('.js')).map((f) => `app/${f}`)];

/** The modules a file imports, as paths relative to static/. */
function importsOf(file) {
  const src = readFileSync(join(STATIC, file), 'utf8');
  return [...src.matchAll(/^import\s[^;]*?from\s+'(\.[^']+)'/gms)].map((m) => join(dirname(file), m[1]).replace(/\\/g, '/'));
}

test('the modules import each other without a cycle', () => {
  const graph = Object.fromEntries(files.map((f) => [f, importsOf(f)]));
  for (const deps of Object.values(graph)) for (const d of deps) assert.ok(graph[d], `an import of a file that is not there: ${d}`);
  const state = {}; // undefined: not seen, 1: on the path, 2: done
  const cycles = [];
  const visit = (f, path) => {
    if (state[f] === 2) return;
    if (state[f] === 1) { cycles.push([...path.slice(path.indexOf(f)), f].join(' → ')); return; }
    state[f] = 1;
    for (const d of graph[f]) visit(d, [...path, f]);
    state[f] = 2;
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, [], `import cycles:\n${cycles.join('\n')}`);
  assert.ok(Object.values(graph).flat().length > 40, 'the import scan found too few imports: it reads nothing');
});

test('every hook is declared once and set by app.js', () => {
  const declared = [...readFileSync(join(STATIC, 'app/hooks.js'), 'utf8').matchAll(/^\s+(\w+): null,/gm)].map((m) => m[1]).sort();
  const app = readFileSync(join(STATIC, 'app.js'), 'utf8');
  const block = app.match(/Object\.assign\(hooks, \{([^}]*)\}\)/);
  assert.ok(block, 'app.js does not set the hooks');
  const set = block[1].split(',').map((s) => s.trim()).filter(Boolean).sort();
  assert.ok(declared.length > 5, 'no hooks found in hooks.js');
  assert.deepEqual(set, declared, 'the hooks app.js sets differ from those hooks.js declares');
  for (const f of files) {
    const src = readFileSync(join(STATIC, f), 'utf8');
    for (const m of src.matchAll(/hooks\.(\w+)\(/g)) assert.ok(declared.includes(m[1]), `${f} calls hooks.${m[1]}, which hooks.js does not declare`);
  }
});
