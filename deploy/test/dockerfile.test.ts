import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOCKER_DIR, expandArgs, parseDockerfile, REPO_DIR, type Stage } from '../src/checks';

const dockerfile = parseDockerfile(readFileSync(join(DOCKER_DIR, 'Dockerfile'), 'utf8'));
const stage = (name: string): Stage => {
  const found = dockerfile.stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage ${name}`);
  return found;
};
const args = (s: Stage, instruction: string): string[] =>
  s.instructions.filter((i) => i.instruction === instruction).map((i) => i.args);
const RUNTIMES = ['coordinator', 'worker', 'worker-gpu', 'coordinator-gpu'];

describe('Dockerfile (deploy/docker)', () => {
  it('pins Node.js 22 LTS exactly and the CUDA 11.2 / cuDNN 8 runtime tfjs-node-gpu 4.22 needs', () => {
    const { globalArgs } = dockerfile;
    expect(globalArgs['NODE_VERSION']).toMatch(/^22\.\d+\.\d+$/);
    expect(expandArgs(globalArgs['NODE_IMAGE']!, globalArgs)).toBe(
      `node:${globalArgs['NODE_VERSION']!}-bookworm-slim`,
    );
    expect(globalArgs['CUDA_IMAGE']).toMatch(
      /^nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/,
    );
    // Every base image is a pinned tag (no implicit or floating `latest`).
    for (const s of dockerfile.stages) {
      const image = expandArgs(s.from, globalArgs);
      if (dockerfile.stages.some((other) => other.name === image)) continue;
      expect(image, s.name).toMatch(/^[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?$/);
      expect(image, s.name).not.toMatch(/:latest$/);
    }
    // The engine supports what the image runs.
    const engines = (
      JSON.parse(readFileSync(join(REPO_DIR, 'package.json'), 'utf8')) as {
        engines: { node: string };
      }
    ).engines.node;
    expect(engines).toMatch(/<23/);
  });

  it('builds with npm ci and nx, then installs production dependencies only', () => {
    const build = args(stage('build'), 'RUN').join('\n');
    expect(build).toMatch(/npm ci\b/);
    expect(build).toContain('npx nx run-many -t build -p coordinator worker');
    for (const name of [
      'deps-coordinator',
      'deps-worker',
      'deps-worker-gpu',
      'deps-coordinator-gpu',
    ]) {
      const run = args(stage(name), 'RUN').join('\n');
      expect(run, name).toMatch(/npm ci --omit=dev/);
    }
    expect(args(stage('deps-worker'), 'RUN').join('\n')).toContain(
      'npm rebuild @tensorflow/tfjs-node',
    );
    const gpuDeps = args(stage('deps-worker-gpu'), 'RUN').join('\n');
    expect(gpuDeps).toContain('npm rebuild @tensorflow/tfjs-node-gpu');
    expect(gpuDeps).toContain('rm -rf node_modules/@tensorflow/tfjs-node ');
  });

  it('runs every runtime image as a non-root user with a gRPC HEALTHCHECK', () => {
    for (const name of RUNTIMES) {
      const s = stage(name);
      const user = args(s, 'USER');
      expect(user, name).toEqual(['10001:10001']);
      const health = args(s, 'HEALTHCHECK');
      expect(health, name).toHaveLength(1);
      expect(health[0], name).toContain('/opt/lethe/deploy/docker/grpc-health-check.mjs');
      expect(args(s, 'ENTRYPOINT'), name).toHaveLength(1);
      const env = args(s, 'ENV').join(' ');
      expect(env, name).toMatch(/LETHE_HEALTH_TARGET=127\.0\.0\.1:707[01]/);
      // Runtime stages take no build tools: nothing is compiled there.
      expect(args(s, 'RUN').join(' '), name).not.toMatch(/apt-get install/);
    }
    for (const name of ['worker-gpu', 'coordinator-gpu']) {
      expect(args(stage(name), 'ENV').join(' '), name).toContain('LETHE_ENGINE=gpu');
      expect(stage(name).from, name).toBe('cuda-node');
    }
  });

  it('copies files that exist in the repository', () => {
    const build = args(stage('build'), 'RUN').join('\n');
    // [what the build stage names, a file that must exist for it]
    for (const [named, file] of [
      ['proto', 'proto/lethe/v1/coordinator.proto'],
      ['libs/engine/vendor', 'libs/engine/vendor/tfjs-core-gradients.cjs'],
      ['apps/coordinator/package.json', 'apps/coordinator/package.json'],
      ['apps/worker/package.json', 'apps/worker/package.json'],
      ['deploy/docker/grpc-health-check.mjs', 'deploy/docker/grpc-health-check.mjs'],
      ['deploy/docker/worker-entrypoint.sh', 'deploy/docker/worker-entrypoint.sh'],
    ] as const) {
      expect(build, named).toContain(named);
      expect(existsSync(join(REPO_DIR, file)), file).toBe(true);
    }
  });

  it('keeps installed and secret files out of the build context', () => {
    const ignore = readFileSync(join(DOCKER_DIR, 'Dockerfile.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    for (const pattern of ['**/node_modules', '**/dist', '.git', 'deploy/compose/.env']) {
      expect(ignore).toContain(pattern);
    }
    // Nothing the build needs is excluded.
    for (const needed of [
      'proto',
      'libs',
      'apps',
      'package-lock.json',
      'deploy',
      'deploy/docker',
    ]) {
      expect(ignore).not.toContain(needed);
    }
  });
});
