import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  CHART_DIR,
  DNS_LABEL,
  DNS_SUBDOMAIN,
  REPO_DIR,
  validateKubernetesObject,
} from '../src/checks';
import { type Manifest, renderChart, ValuesSchemaError } from '../src/helm-chart';

// Each case renders deploy/helm/lethe as `helm template <release> deploy/helm/lethe --set …`
// would (see src/helm-chart.ts for what this renderer is and is not), validates every object
// against the Kubernetes schemas and checks what the chart promises.

type Obj = Record<string, unknown>;
type Container = {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: Obj }[];
  ports?: { name: string; containerPort: number }[];
  startupProbe?: Obj;
  readinessProbe?: Obj;
  livenessProbe?: Obj;
  resources?: { limits?: Obj; requests?: Obj };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
};
type PodSpec = {
  containers: Container[];
  volumes?: ({ name: string } & Obj)[];
  nodeSelector?: Obj;
  tolerations?: Obj[];
};

const EXTERNAL_S3 = {
  minio: { enabled: false },
  s3: { endpoint: 'https://s3.example.internal', accessKey: 'AK', secretKey: 'SK' },
};

function render(values: Obj = {}, releaseName = 'lethe') {
  const rendered = renderChart(CHART_DIR, { values, releaseName, namespace: 'ml' });
  for (const manifest of rendered.manifests) {
    const { source, ...object } = manifest;
    try {
      validateKubernetesObject(object);
    } catch (error) {
      throw new Error(`${source} ${manifest.kind}/${manifest.metadata.name}: ${String(error)}`);
    }
  }
  return rendered;
}

function find(manifests: Manifest[], kind: string, name?: string): Manifest & Obj {
  const found = manifests.filter((m) => m.kind === kind && (!name || m.metadata.name === name));
  if (found.length !== 1) {
    throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  }
  return found[0] as Manifest & Obj;
}

const podSpec = (workload: Obj): PodSpec =>
  ((workload['spec'] as Obj)['template'] as Obj)['spec'] as PodSpec;

const workloads = (manifests: Manifest[]) =>
  manifests.filter((m) => m.kind === 'Deployment' || m.kind === 'StatefulSet');

describe('Helm chart deploy/helm/lethe', () => {
  it('renders valid Kubernetes objects with default values', () => {
    const { manifests, notes } = render();
    const kinds = manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort();
    expect(kinds).toEqual([
      'Deployment/lethe-coordinator',
      'PersistentVolumeClaim/lethe-coordinator',
      'Pod/lethe-test-health',
      'PodDisruptionBudget/lethe-worker',
      'Service/lethe-coordinator',
      'Service/lethe-worker-headless',
      'ServiceAccount/lethe',
      'StatefulSet/lethe-worker',
    ]);
    for (const m of manifests) {
      expect(m.apiVersion, m.source).toMatch(/^(v1|apps\/v1|policy\/v1)$/);
      expect(m.metadata.name, m.source).toMatch(DNS_SUBDOMAIN);
      expect(m.metadata.name.length, m.source).toBeLessThanOrEqual(63);
      expect(m.metadata.labels?.['app.kubernetes.io/instance'], m.source).toBe('lethe');
      for (const value of Object.values(m.metadata.labels ?? {})) {
        expect(value.length, `${m.source} label ${value}`).toBeLessThanOrEqual(63);
      }
    }
    expect(notes).toContain('lethe-coordinator.ml.svc:7070');
  });

  it('probes every server container with native gRPC health checks on its gRPC port', () => {
    const { manifests } = render();
    for (const workload of workloads(manifests)) {
      for (const container of podSpec(workload).containers) {
        const grpcPort = container.ports?.find((p) => p.name === 'grpc')?.containerPort;
        expect(grpcPort, workload.source).toBeGreaterThan(0);
        for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
          const handler = container[probe];
          expect(handler, `${workload.source} ${probe}`).toBeDefined();
          expect(handler?.['grpc'], `${workload.source} ${probe}`).toEqual({ port: grpcPort });
          for (const other of ['httpGet', 'tcpSocket', 'exec']) {
            expect(handler?.[other], `${workload.source} ${probe}`).toBeUndefined();
          }
        }
      }
    }
  });

  it('runs workers as a StatefulSet behind a headless Service, advertising stable pod names', () => {
    const { manifests } = render({ worker: { replicas: 5, maxExperts: 3 } });
    const sts = find(manifests, 'StatefulSet');
    const spec = sts['spec'] as Obj;
    expect(spec['replicas']).toBe(5);
    const headless = find(manifests, 'Service', spec['serviceName'] as string);
    const svcSpec = headless['spec'] as Obj;
    expect(svcSpec['clusterIP']).toBe('None');
    expect(svcSpec['publishNotReadyAddresses']).toBe(true);
    const podLabels = ((spec['template'] as Obj)['metadata'] as Obj)['labels'] as Obj;
    expect(podLabels).toMatchObject(svcSpec['selector'] as Obj);
    expect(podLabels).toMatchObject((spec['selector'] as Obj)['matchLabels'] as Obj);

    const worker = podSpec(sts).containers[0]!;
    expect(worker.env?.find((e) => e.name === 'POD_NAME')?.valueFrom).toEqual({
      fieldRef: { fieldPath: 'metadata.name' },
    });
    const coordinatorService = find(manifests, 'Service', 'lethe-coordinator');
    const coordinatorPort = ((coordinatorService['spec'] as Obj)['ports'] as Obj[])[0]!['port'];
    expect(worker.args).toEqual(
      expect.arrayContaining([
        '--host=0.0.0.0',
        '--port=7071',
        '--name=$(POD_NAME)',
        `--advertise=$(POD_NAME).${headless.metadata.name}:7071`,
        `--coordinator=lethe-coordinator:${String(coordinatorPort)}`,
        '--max-experts=3',
        '--store=s3://lethe/prod?endpoint=http://lethe-minio:9000',
      ]),
    );
    // The longest pod name (…-worker-4) plus the headless Service name fits a DNS label each.
    expect(`${sts.metadata.name}-4`).toMatch(DNS_LABEL);
  });

  it('asks for GPUs and places workers with nodeSelector and tolerations when told to', () => {
    const cpu = render();
    const text = JSON.stringify(cpu.manifests);
    expect(text).not.toContain('nvidia.com/gpu');
    expect(podSpec(find(cpu.manifests, 'StatefulSet')).containers[0]!.image).toBe(
      'lethe/worker:0.1.0',
    );

    const nodeSelector = { 'nvidia.com/gpu.present': 'true' };
    const tolerations = [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }];
    const gpu = render({
      worker: { gpu: { enabled: true, count: 2 }, nodeSelector, tolerations },
    });
    const spec = podSpec(find(gpu.manifests, 'StatefulSet'));
    const worker = spec.containers[0]!;
    expect(worker.image).toBe('lethe/worker:0.1.0-gpu');
    expect(worker.resources?.limits).toEqual({ memory: '12Gi', 'nvidia.com/gpu': 2 });
    expect(spec.nodeSelector).toEqual(nodeSelector);
    expect(spec.tolerations).toEqual(tolerations);
    // The coordinator asks for a GPU only when told to.
    const coordinator = podSpec(find(gpu.manifests, 'Deployment')).containers[0]!;
    expect(JSON.stringify(coordinator)).not.toContain('nvidia.com/gpu');
    const gpuCoordinator = render({ coordinator: { gpu: { enabled: true } } });
    const router = podSpec(find(gpuCoordinator.manifests, 'Deployment')).containers[0]!;
    expect(router.image).toBe('lethe/coordinator:0.1.0-gpu');
    expect(router.resources?.limits).toEqual({ memory: '8Gi', 'nvidia.com/gpu': 1 });
  });

  it('keeps a PodDisruptionBudget over the workers', () => {
    const { manifests } = render();
    const pdb = find(manifests, 'PodDisruptionBudget');
    const sts = find(manifests, 'StatefulSet');
    expect((pdb['spec'] as Obj)['maxUnavailable']).toBe(1);
    expect((pdb['spec'] as Obj)['selector']).toEqual((sts['spec'] as Obj)['selector']);
    const none = render({ worker: { podDisruptionBudget: { enabled: false } } });
    expect(none.manifests.some((m) => m.kind === 'PodDisruptionBudget')).toBe(false);
  });

  it('reads S3 credentials from the bundled MinIO, an existing Secret or its own Secret', () => {
    const s3Env = (manifests: Manifest[]) =>
      workloads(manifests).map((w) =>
        podSpec(w)
          .containers[0]!.env!.filter((e) => e.name.startsWith('LETHE_S3_'))
          .map((e) => [e.name, e.valueFrom]),
      );
    const ref = (name: string, key: string) => ({ secretKeyRef: { name, key } });

    // Bundled MinIO: its chart's Secret (named like the MinIO chart names it).
    const bundled = render({}, 'prod');
    expect(bundled.manifests.some((m) => m.kind === 'Secret')).toBe(false);
    for (const env of s3Env(bundled.manifests)) {
      expect(env).toEqual([
        ['LETHE_S3_ACCESS_KEY', ref('prod-minio', 'rootUser')],
        ['LETHE_S3_SECRET_KEY', ref('prod-minio', 'rootPassword')],
      ]);
    }
    const minioRelease = render({}, 'minio-lab');
    expect(JSON.stringify(minioRelease.manifests)).toContain('endpoint=http://minio-lab:9000');

    // External endpoint with inline credentials: the chart's own Secret.
    const inline = render(EXTERNAL_S3);
    const secret = find(inline.manifests, 'Secret', 'lethe-s3');
    expect(secret['data']).toEqual({ accessKey: 'QUs=', secretKey: 'U0s=' });
    for (const env of s3Env(inline.manifests)) {
      expect(env[0]).toEqual(['LETHE_S3_ACCESS_KEY', ref('lethe-s3', 'accessKey')]);
    }
    expect(JSON.stringify(inline.manifests)).toContain(
      '--store=s3://lethe/prod?endpoint=https://s3.example.internal',
    );

    // An existing Secret with its own key names: no Secret rendered.
    const existing = render({
      minio: { enabled: false },
      s3: {
        endpoint: 'https://s3.example.internal',
        region: 'eu-west-1',
        existingSecret: 'lethe-s3-creds',
        existingSecretAccessKeyKey: 'AWS_ACCESS_KEY_ID',
        existingSecretSecretKeyKey: 'AWS_SECRET_ACCESS_KEY',
      },
    });
    expect(existing.manifests.some((m) => m.kind === 'Secret')).toBe(false);
    for (const env of s3Env(existing.manifests)) {
      expect(env[1]).toEqual([
        'LETHE_S3_SECRET_KEY',
        ref('lethe-s3-creds', 'AWS_SECRET_ACCESS_KEY'),
      ]);
    }
    expect(JSON.stringify(existing.manifests)).toContain('&region=eu-west-1');

    expect(() => render({ minio: { enabled: false } })).toThrow(/no object store/);
    expect(() =>
      render({ minio: { enabled: false }, s3: { endpoint: 'https://s3.example.internal' } }),
    ).toThrow(/s3.accessKey/);
  });

  it('mounts datasets read-only at the same path in the coordinator and every worker', () => {
    const volume = { persistentVolumeClaim: { claimName: 'datasets', readOnly: true } };
    const { manifests } = render({ data: { volume, mountPath: '/datasets' } });
    for (const workload of workloads(manifests)) {
      const spec = podSpec(workload);
      expect(spec.volumes?.find((v) => v.name === 'data')).toEqual({ name: 'data', ...volume });
      expect(spec.containers[0]!.volumeMounts).toContainEqual({
        name: 'data',
        mountPath: '/datasets',
        readOnly: true,
      });
    }
  });

  it('mounts a TLS Secret and declares a metrics port when those hooks are enabled', () => {
    const off = render();
    expect(JSON.stringify(off.manifests)).not.toMatch(/"tls"|metrics|prometheus/);

    const existing = render({
      tls: { enabled: true, existingSecret: 'lethe-tls' },
      metrics: { enabled: true, port: 9464 },
    });
    expect(existing.manifests.some((m) => m.kind === 'Secret')).toBe(false);
    for (const workload of workloads(existing.manifests)) {
      const spec = podSpec(workload);
      expect(spec.volumes).toContainEqual({ name: 'tls', secret: { secretName: 'lethe-tls' } });
      const container = spec.containers[0]!;
      expect(container.volumeMounts).toContainEqual({
        name: 'tls',
        mountPath: '/etc/lethe/tls',
        readOnly: true,
      });
      expect(container.ports).toContainEqual({
        name: 'metrics',
        containerPort: 9464,
        protocol: 'TCP',
      });
      const annotations = (((workload['spec'] as Obj)['template'] as Obj)['metadata'] as Obj)[
        'annotations'
      ] as Obj;
      expect(annotations['prometheus.io/port']).toBe('9464');
    }
    for (const service of existing.manifests.filter((m) => m.kind === 'Service')) {
      expect((service['spec'] as Obj)['ports']).toContainEqual(
        expect.objectContaining({ name: 'metrics', port: 9464, targetPort: 'metrics' }),
      );
    }

    const inline = render({ tls: { enabled: true, cert: 'CERT', key: 'KEY', ca: 'CA' } });
    const secret = find(inline.manifests, 'Secret', 'lethe-tls');
    expect(secret['type']).toBe('kubernetes.io/tls');
    expect(Object.keys(secret['data'] as Obj).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(() => render({ tls: { enabled: true } })).toThrow(/tls.cert/);
  });

  it('switches probes to the image probe script with probes.mode=exec', () => {
    const { manifests } = render({ probes: { mode: 'exec' } });
    for (const workload of workloads(manifests)) {
      const container = podSpec(workload).containers[0]!;
      const port = container.ports!.find((p) => p.name === 'grpc')!.containerPort;
      expect(container.livenessProbe?.['exec']).toEqual({
        command: ['node', '/opt/lethe/deploy/docker/grpc-health-check.mjs', `127.0.0.1:${port}`],
      });
      expect(container.livenessProbe?.['grpc']).toBeUndefined();
    }
  });

  it('renders with every option on, and without persistence or tests', () => {
    const all = render({
      ...EXTERNAL_S3,
      imagePullSecrets: [{ name: 'regcred' }],
      tls: { enabled: true, existingSecret: 'lethe-tls' },
      metrics: { enabled: true },
      coordinator: {
        engine: 'node',
        extraArgs: ['--log-level=debug'],
        extraEnv: [{ name: 'A', value: 'b' }],
        persistence: { existingClaim: 'coordinator-db' },
        podAnnotations: { team: 'ml' },
        affinity: { nodeAffinity: {} },
      },
      worker: {
        gpu: { enabled: true },
        extraVolumes: [{ name: 'scratch', emptyDir: {} }],
        extraVolumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
        topologySpreadConstraints: [
          {
            maxSkew: 1,
            topologyKey: 'kubernetes.io/hostname',
            whenUnsatisfiable: 'ScheduleAnyway',
          },
        ],
      },
    });
    expect(all.manifests.some((m) => m.kind === 'PersistentVolumeClaim')).toBe(false);
    const coordinator = podSpec(find(all.manifests, 'Deployment'));
    expect(coordinator.volumes).toContainEqual({
      name: 'db',
      persistentVolumeClaim: { claimName: 'coordinator-db' },
    });
    expect(coordinator.containers[0]!.args).toContain('--log-level=debug');

    const bare = render({
      coordinator: { persistence: { enabled: false } },
      tests: { enabled: false },
      serviceAccount: { create: false },
    });
    expect(bare.manifests.map((m) => m.kind).sort()).toEqual([
      'Deployment',
      'PodDisruptionBudget',
      'Service',
      'Service',
      'StatefulSet',
    ]);
    expect(podSpec(find(bare.manifests, 'Deployment')).volumes).toContainEqual({
      name: 'db',
      emptyDir: {},
    });
  });

  it('rejects values that values.schema.json does not allow', () => {
    expect(() => render({ worker: { replica: 3 } })).toThrow(ValuesSchemaError);
    expect(() => render({ worker: { replicas: -1 } })).toThrow(ValuesSchemaError);
    expect(() => render({ worker: { maxExperts: 0 } })).toThrow(ValuesSchemaError);
    expect(() => render({ probes: { mode: 'http' } })).toThrow(ValuesSchemaError);
    expect(() => render({ coordinator: { logLevel: 'verbose' } })).toThrow(ValuesSchemaError);
    expect(() => render({ s3: { endpoint: 'minio:9000' } })).toThrow(ValuesSchemaError);
    expect(() => render({ s3: { prefix: '/leading' } })).toThrow(ValuesSchemaError);
    expect(() => render({ tpyo: true })).toThrow(ValuesSchemaError);
    // Anything goes under minio: (the subchart's values).
    expect(() => render({ minio: { enabled: true, anything: { x: 1 } } })).not.toThrow();
  });

  it('has a Kubernetes schema check that catches broken objects', () => {
    const { manifests } = render();
    const { source: _source, ...sts } = structuredClone(find(manifests, 'StatefulSet'));
    expect(() => validateKubernetesObject(sts)).not.toThrow();
    const container = podSpec(sts).containers[0]!;
    container.readinessProbe = { grpc: { port: 'grpc' } };
    expect(() => validateKubernetesObject(sts)).toThrow(/grpc\/port must be integer/);
    delete (sts['spec'] as Obj)['selector'];
    expect(() => validateKubernetesObject(sts)).toThrow(/selector/);
  });

  it('declares the MinIO dependency and matches the apps version', () => {
    const chart = parseYaml(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as Obj;
    expect(chart['apiVersion']).toBe('v2');
    expect(chart['dependencies']).toEqual([
      {
        name: 'minio',
        version: expect.stringMatching(/^\d+\.\d+\.\d+$/) as unknown,
        repository: 'https://charts.min.io/',
        condition: 'minio.enabled',
      },
    ]);
    const appVersion = (
      JSON.parse(readFileSync(join(REPO_DIR, 'apps/coordinator/package.json'), 'utf8')) as Obj
    )['version'];
    expect(chart['appVersion']).toBe(appVersion);
  });
});
