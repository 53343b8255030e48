/**
 * `helm template` for deploy/helm/lethe without helm: loads the chart, merges values the way
 * Helm does (maps deep-merged, null deletes a key), checks them against values.schema.json,
 * renders every template with the Go template engine in go-template.ts, splits the output into
 * YAML documents and parses them. Subcharts (MinIO) are not rendered: their packages come from
 * a chart repository that `helm dependency build` downloads.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Engine, TemplateError } from './go-template';

export interface ChartMetadata {
  apiVersion: string;
  name: string;
  version: string;
  appVersion?: string;
  kubeVersion?: string;
  dependencies?: { name: string; version: string; repository: string; condition?: string }[];
  [key: string]: unknown;
}

export interface Manifest {
  /** Template file the document came from, e.g. templates/worker-statefulset.yaml. */
  source: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface Rendered {
  manifests: Manifest[];
  notes: string;
  values: Record<string, unknown>;
}

export interface RenderOptions {
  releaseName?: string;
  namespace?: string;
  /** Like `--set`/`-f`: deep-merged over values.yaml. */
  values?: Record<string, unknown>;
}

type Values = Record<string, unknown>;

const isMap = (v: unknown): v is Values => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Helm's coalescing of user values over chart defaults. */
export function mergeValues(base: Values, override: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = isMap(value) && isMap(current) ? mergeValues(current, value) : value;
  }
  // A null from the user removes the key (`--set key=null`).
  return Object.fromEntries(Object.entries(out).filter(([, value]) => value !== null));
}

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      return statSync(path).isDirectory() ? listFiles(path) : [path];
    });
}

export function loadChart(chartDir: string): {
  metadata: ChartMetadata;
  defaults: Values;
  schema: object | undefined;
  templates: Map<string, string>;
} {
  // Helm reads Chart.yaml and values.yaml with YAML 1.1 rules (via sigs.k8s.io/yaml).
  const metadata = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'), {
    version: '1.1',
  }) as ChartMetadata;
  const defaults = (parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8'), {
    version: '1.1',
  }) ?? {}) as Values;
  let schema: object | undefined;
  try {
    schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as object;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const templates = new Map<string, string>();
  for (const file of listFiles(join(chartDir, 'templates'))) {
    templates.set(relative(chartDir, file).split('\\').join('/'), readFileSync(file, 'utf8'));
  }
  return { metadata, defaults, schema, templates };
}

export class ValuesSchemaError extends Error {
  override readonly name = 'ValuesSchemaError';
}

const compiled = new Map<string, ValidateFunction>();

export function validateValues(schema: object, values: Values): void {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) {
    validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    compiled.set(key, validate);
  }
  if (!validate(values)) {
    const errors = (validate.errors ?? [])
      .map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`.trim())
      .join('; ');
    throw new ValuesSchemaError(`values don't meet the specifications of the schema: ${errors}`);
  }
}

/** Splits rendered text into YAML documents the way Helm's releaseutil.SplitManifests does. */
function splitDocuments(text: string): string[] {
  return text.split(/(?:^|\n)---[ \t]*(?=\n|$)/).filter((doc) => doc.trim() !== '');
}

/**
 * Helm's `.Files.Get`: a file of the chart by its path inside it, "" when there is none (as
 * Helm). Paths cannot leave the chart.
 */
function chartFile(chartDir: string): (args: unknown[], where: string) => string {
  return (args, where) => {
    const [path] = args;
    if (args.length !== 1 || typeof path !== 'string') {
      throw new TemplateError(`${where}: .Files.Get takes one path`);
    }
    const file = resolve(chartDir, path);
    if (relative(chartDir, file).startsWith('..')) return '';
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
}

export function renderChart(chartDir: string, options: RenderOptions = {}): Rendered {
  const { metadata, defaults, schema, templates } = loadChart(chartDir);
  const values = mergeValues(defaults, options.values ?? {});
  // Helm adds `global` for subcharts before validating.
  if (!isMap(values['global'])) values['global'] = {};
  if (schema) validateValues(schema, values);

  const engine = new Engine();
  const prefix = `${metadata.name}/`;
  for (const [path, source] of templates) engine.add(prefix + path, source);

  const releaseName = options.releaseName ?? 'lethe';
  const namespace = options.namespace ?? 'default';
  const top = (path: string) => ({
    Values: values,
    Release: {
      Name: releaseName,
      Namespace: namespace,
      Service: 'Helm',
      IsInstall: true,
      IsUpgrade: false,
      Revision: 1,
    },
    Chart: {
      Name: metadata.name,
      Version: metadata.version,
      AppVersion: metadata.appVersion ?? '',
      KubeVersion: metadata.kubeVersion ?? '',
    },
    Template: { Name: prefix + path, BasePath: `${prefix}templates` },
    Capabilities: {
      KubeVersion: { Version: 'v1.31.0', Major: '1', Minor: '31', GitVersion: 'v1.31.0' },
    },
    Files: { Get: chartFile(chartDir) },
  });

  const manifests: Manifest[] = [];
  let notes = '';
  for (const path of templates.keys()) {
    const base = path.split('/').pop()!;
    if (base.startsWith('_')) continue;
    let text: string;
    try {
      text = engine.render(prefix + path, top(path));
    } catch (error) {
      if (error instanceof TemplateError) {
        throw new TemplateError(`rendering ${path}: ${error.message}`);
      }
      throw error;
    }
    if (base === 'NOTES.txt') {
      notes = text;
      continue;
    }
    for (const doc of splitDocuments(text)) {
      const parsed = parseAllDocuments(doc, { version: '1.1', uniqueKeys: true });
      for (const document of parsed) {
        if (document.errors.length > 0) {
          throw new Error(
            `YAML parse error in ${path}: ${document.errors.map((e) => e.message).join('; ')}\n${doc}`,
          );
        }
        const object = document.toJS() as Manifest | null;
        if (object === null) continue;
        if (!isMap(object) || typeof object.kind !== 'string' || !object.kind) {
          throw new Error(`${path}: a rendered document has no kind:\n${doc}`);
        }
        manifests.push({ ...object, source: path });
      }
    }
  }
  return { manifests, notes, values };
}
