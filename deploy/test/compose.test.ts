import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  COMPOSE_DIR,
  composeValidator,
  DOCKER_DIR,
  parseDockerfile,
  readYaml,
} from '../src/checks';

type Obj = Record<string, unknown>;
interface Service {
  image?: string;
  build?: { context?: string; dockerfile?: string; target?: string };
  env_file?: string | string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number };
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  volumes?: string[];
  container_name?: string;
  hostname?: string;
  deploy?: Obj;
}

const compose = readYaml(join(COMPOSE_DIR, 'docker-compose.yml')) as {
  name: string;
  services: Record<string, Service>;
  volumes: Obj;
};
const gpu = readYaml(join(COMPOSE_DIR, 'docker-compose.gpu.yml')) as {
  services: Record<string, Service>;
};

describe('docker compose files (deploy/compose)', () => {
  it('follow the Compose Specification schema', () => {
    const validate = composeValidator();
    expect(validate(compose)).toEqual([]);
    expect(validate(gpu)).toEqual([]);
    // The schema check bites: a misspelt key is an error.
    const broken = structuredClone(compose);
    (broken.services['worker']!.healthcheck as Obj)['intervall'] = '5s';
    expect(validate(broken).join('\n')).toMatch(/intervall/);
  });

  it('define MinIO, the coordinator and scalable workers that wait for each other', () => {
    const { minio, coordinator, worker } = compose.services;
    expect(Object.keys(compose.services).sort()).toEqual(['coordinator', 'minio', 'worker']);
    expect(minio?.image).toMatch(/^minio\/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/);
    expect(coordinator?.depends_on).toEqual({ minio: { condition: 'service_healthy' } });
    expect(worker?.depends_on).toEqual({ coordinator: { condition: 'service_healthy' } });
    // `--scale worker=N` needs no fixed name, hostname or host port on the worker.
    expect(worker?.container_name).toBeUndefined();
    expect(worker?.hostname).toBeUndefined();
    expect(worker?.ports).toBeUndefined();
    expect(worker?.environment?.['LETHE_WORKER_ADVERTISE']).toBeUndefined();
    expect(worker?.environment?.['LETHE_COORDINATOR']).toBe('coordinator:7070');
    // Host ports only on loopback.
    for (const service of Object.values(compose.services)) {
      for (const port of service.ports ?? []) expect(port).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it('take credentials from the env file, never from the compose file', () => {
    const { minio, coordinator, worker } = compose.services;
    for (const service of [coordinator, worker]) expect(service?.env_file).toBe('.env');
    expect(minio?.environment?.['MINIO_ROOT_USER']).toMatch(/^\$\{LETHE_S3_ACCESS_KEY:\?/);
    expect(minio?.environment?.['MINIO_ROOT_PASSWORD']).toMatch(/^\$\{LETHE_S3_SECRET_KEY:\?/);
    const text = readFileSync(join(COMPOSE_DIR, 'docker-compose.yml'), 'utf8');
    expect(text).not.toMatch(/change-me|minioadmin|SECRET_KEY=\w/);
    const example = readFileSync(join(COMPOSE_DIR, '.env.example'), 'utf8');
    expect(example).toMatch(/^LETHE_S3_ACCESS_KEY=\S+$/m);
    expect(example).toMatch(/^LETHE_S3_SECRET_KEY=\S{8,}$/m);
    const ignored = readFileSync(join(COMPOSE_DIR, '.gitignore'), 'utf8').split('\n');
    expect(ignored).toContain('.env');
  });

  it('point every Lethe server at the same store and datasets', () => {
    const { coordinator, worker } = compose.services;
    const store = coordinator?.environment?.['LETHE_STORE'];
    expect(store).toMatch(/^s3:\/\/.+\?endpoint=http:\/\/minio:9000$/);
    expect(worker?.environment?.['LETHE_STORE']).toBe(store);
    const dataMount = (service?: Service) => service?.volumes?.find((v) => v.includes(':/data'));
    expect(dataMount(coordinator)).toMatch(/:\/data:ro$/);
    expect(dataMount(worker)).toBe(dataMount(coordinator));
    expect(coordinator?.volumes).toContain('coordinator-db:/var/lib/lethe');
    expect(Object.keys(compose.volumes).sort()).toEqual(['coordinator-db', 'minio-data']);
  });

  it('health-check every service, the Lethe servers over gRPC', () => {
    const { minio, coordinator, worker } = compose.services;
    expect(minio?.healthcheck?.test).toEqual(['CMD', 'mc', 'ready', 'local']);
    for (const [service, port] of [
      [coordinator, '7070'],
      [worker, '7071'],
    ] as const) {
      expect(service?.healthcheck?.test).toEqual([
        'CMD',
        'node',
        '/opt/lethe/deploy/docker/grpc-health-check.mjs',
      ]);
      expect(service?.environment?.['LETHE_HEALTH_TARGET']).toBe(`127.0.0.1:${port}`);
    }
  });

  it('build images from stages that exist in the Dockerfile', () => {
    const stages = new Set(
      parseDockerfile(readFileSync(join(DOCKER_DIR, 'Dockerfile'), 'utf8')).stages.map(
        (s) => s.name,
      ),
    );
    for (const [name, service] of [
      ...Object.entries(compose.services),
      ...Object.entries(gpu.services),
    ]) {
      if (!service.build) continue;
      expect(stages.has(service.build.target), `${name}: ${service.build.target}`).toBe(true);
    }
    expect(compose.services['coordinator']?.build).toEqual({
      context: '../..',
      dockerfile: 'deploy/docker/Dockerfile',
      target: 'coordinator',
    });
    const reservation = (
      ((gpu.services['worker']?.deploy as Obj)['resources'] as Obj)['reservations'] as Obj
    )['devices'];
    expect(reservation).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
  });

  // `docker compose config` parses, interpolates and validates without a Docker engine; it needs
  // the compose plugin, which this repository's CI machines do not have.
  const plugin = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
  const hasCompose = plugin.status === 0;
  if (!hasCompose) {
    console.warn('skipping `docker compose config`: the docker compose plugin is not installed');
  }
  it.skipIf(!hasCompose)('pass `docker compose config` (when the compose plugin exists)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lethe-compose-'));
    try {
      cpSync(COMPOSE_DIR, dir, { recursive: true });
      copyFileSync(join(COMPOSE_DIR, '.env.example'), join(dir, '.env'));
      for (const files of [
        ['docker-compose.yml'],
        ['docker-compose.yml', 'docker-compose.gpu.yml'],
      ]) {
        const result = spawnSync(
          'docker',
          ['compose', ...files.flatMap((f) => ['-f', f]), 'config', '--quiet'],
          { cwd: dir, encoding: 'utf8' },
        );
        expect(result.stderr, files.join(' + ')).toBe('');
        expect(result.status).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
