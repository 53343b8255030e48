import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

const MARKER = join('lethe', 'v1', 'coordinator.proto');

/**
 * The repository's `proto` directory (the one holding `lethe/v1/coordinator.proto`):
 * `LETHE_PROTO_DIR` when set, else the first `proto/` found walking up from this file, which
 * finds it from the sources, from `dist/` and from a deployed copy of the repository alike.
 * Undefined when there is none.
 */
export function findProtoDir(
  env: NodeJS.ProcessEnv = process.env,
  from = __dirname,
): string | undefined {
  const configured = env['LETHE_PROTO_DIR'];
  if (configured !== undefined && configured !== '') {
    const dir = resolve(configured);
    if (!existsSync(join(dir, MARKER))) {
      throw new Error(`LETHE_PROTO_DIR=${configured} holds no ${MARKER}`);
    }
    return dir;
  }
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', MARKER))) return join(dir, 'proto');
    if (dirname(dir) === dir) return undefined;
  }
}

const cache = new Map<string, protoLoader.PackageDefinition>();

/**
 * Every `lethe/v1/*.proto` file under `protoDir` plus the standard health service, loaded with
 * @grpc/proto-loader: what server reflection describes. Cached per directory.
 */
export function loadReflectionPackage(protoDir: string): protoLoader.PackageDefinition {
  const cached = cache.get(protoDir);
  if (cached) return cached;
  const files = readdirSync(join(protoDir, 'lethe', 'v1'))
    .filter((f) => f.endsWith('.proto'))
    .sort()
    .map((f) => `lethe/v1/${f}`);
  // grpc-health-check ships health/v1/health.proto under its own proto/ folder.
  const healthRoot = dirname(dirname(dirname(healthProtoPath)));
  const definition = protoLoader.loadSync([...files, 'health/v1/health.proto'], {
    includeDirs: [protoDir, healthRoot],
    keepCase: true,
  });
  cache.set(protoDir, definition);
  return definition;
}
