// Fails (exit 1, one line) when libs/proto/src/generated differs from what proto/ generates now:
// checks that proto/ is buf-formatted and passes `buf lint` (which requires a comment on every
// element), regenerates into a temporary directory with the committed buf.gen.yaml (and the
// descriptor sets with generate-descriptors.mjs), and compares file by file. `npm run proto` fixes a failure.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const committedRel = 'libs/proto/src/generated';
const buf = join(root, 'node_modules', '.bin', 'buf');

function fail(message) {
  console.error(`proto:check: ${message}`);
  process.exit(1);
}

function run(args) {
  const result = spawnSync(buf, args, { cwd: root, encoding: 'utf8' });
  if (result.error) throw new Error(`cannot run ${relative(root, buf)}: ${result.error.message}`);
  if (result.status !== 0) {
    process.stderr.write(result.stdout + result.stderr);
    throw new Error(`\`buf ${args[0]}\` failed (exit ${result.status}); see the lines above`);
  }
}

function listFiles(dir, base = dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name), base) : [relative(base, join(dir, e.name))],
  );
}

/** Regenerates into a temporary directory; returns the files that differ from the committed ones. */
function compare() {
  const tmp = mkdtempSync(join(tmpdir(), 'lethe-proto-check-'));
  try {
    run(['generate', '--template', 'buf.gen.yaml', '--output', tmp]);
    const descriptors = spawnSync(
      process.execPath,
      [join(root, 'libs/proto/scripts/generate-descriptors.mjs'), tmp],
      { cwd: root, encoding: 'utf8' },
    );
    if (descriptors.status !== 0) {
      process.stderr.write(descriptors.stdout + descriptors.stderr);
      throw new Error('generate-descriptors.mjs failed; see the lines above');
    }
    const fresh = join(tmp, committedRel);
    const committed = join(root, committedRel);
    const freshFiles = listFiles(fresh).sort();
    if (freshFiles.length === 0) return { count: 0, differing: [] };
    const committedFiles = new Set(listFiles(committed));
    const differing = [];
    for (const file of freshFiles) {
      if (!committedFiles.delete(file)) differing.push(`${file} (missing)`);
      else if (!readFileSync(join(fresh, file)).equals(readFileSync(join(committed, file)))) {
        differing.push(file);
      }
    }
    for (const file of [...committedFiles].sort()) differing.push(`${file} (stale)`);
    return { count: freshFiles.length, differing };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

let count, differing;
try {
  run(['format', '--diff', '--exit-code']);
  run(['lint']);
  ({ count, differing } = compare());
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
if (count === 0) fail('buf generate produced no files; check buf.gen.yaml');
if (differing.length > 0) {
  fail(
    `${committedRel} is out of date with proto/ (${differing.join(', ')}); ` +
      'run `npm run proto` and commit the result',
  );
}
console.log(`proto:check: ${committedRel} is up to date (${count} files)`);
