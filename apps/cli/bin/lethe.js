#!/usr/bin/env node
'use strict';
/*
 * The `lethe` command as npm links it. npm links bins at install time, before anything is built,
 * so this entry is committed and plain JavaScript: it runs the built CLI (dist/main.js) when the
 * build is current, and otherwise the TypeScript sources through tsx — the same code, compiled on
 * the fly, with the coordinator and workers it starts also run from sources. A stale build is
 * never run: a source newer than its project's last build sends the command to the sources.
 * LETHE_FROM_SOURCE=1 forces the sources.
 */
const { spawn } = require('node:child_process');
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const cliDir = join(__dirname, '..');
const repoDir = join(cliDir, '..', '..');
const builtMain = join(cliDir, 'dist', 'main.js');

/** Newest modification time (ms) of the .ts files under `dir`; 0 for none. */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    // Tests beside the sources are not part of the build.
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      newest = Math.max(newest, statSync(path).mtimeMs);
    }
  }
  return newest;
}

/** When `project` was last built: its tsc build-info file, written after every emit. */
function builtAt(project) {
  try {
    const info = readdirSync(join(project, 'dist')).find((f) => f.endsWith('.tsbuildinfo'));
    return info ? statSync(join(project, 'dist', info)).mtimeMs : 0;
  } catch {
    return 0;
  }
}

/** The CLI, the apps it starts and every lib are built, and no source changed since. */
function buildIsCurrent() {
  if (!existsSync(builtMain)) return false;
  const projects = [
    cliDir,
    join(repoDir, 'apps', 'coordinator'),
    join(repoDir, 'apps', 'worker'),
    ...readdirSync(join(repoDir, 'libs')).map((lib) => join(repoDir, 'libs', lib)),
  ];
  return projects.every((project) => {
    const sources = newestSource(join(project, 'src'));
    return sources === 0 || builtAt(project) >= sources;
  });
}

if (process.env.LETHE_FROM_SOURCE !== '1' && buildIsCurrent()) {
  require(builtMain);
} else {
  const tsx = pathToFileURL(require.resolve('tsx', { paths: [repoDir] })).href;
  const child = spawn(
    process.execPath,
    [
      '--conditions=@lethe/source',
      '--import',
      tsx,
      join(cliDir, 'src', 'main.ts'),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, TSX_TSCONFIG_PATH: join(cliDir, 'tsconfig.json') } },
  );
  // The child decides what a signal means (Ctrl-C stops a cluster gracefully); this process only
  // passes each one on and then exits as the child did.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}
