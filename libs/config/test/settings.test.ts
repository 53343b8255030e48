import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  ConfigError,
  defineSettings,
  describeSettings,
  loadSettings,
  type SettingsValues,
} from '../src/index';

const SETTINGS = defineSettings({
  host: {
    schema: z.string().min(1),
    env: 'LETHE_X_HOST',
    flag: '--host <value>',
    help: 'address to listen on',
    default: '127.0.0.1',
  },
  port: {
    schema: z.coerce.number().int().min(0).max(65_535),
    env: 'LETHE_X_PORT',
    flag: '--port <value>',
    help: 'port to listen on',
    default: 7070,
  },
  logLevel: {
    schema: z.enum(['debug', 'info']),
    env: 'LETHE_X_LOG_LEVEL',
    flag: '--log-level <value>',
    help: 'log level',
    default: 'info',
  },
  store: {
    schema: z.string().min(1),
    env: 'LETHE_X_STORE',
    flag: '--store <value>',
    help: 'object store',
  },
  token: {
    schema: z.string().min(20, 'expected at least 20 characters'),
    env: 'LETHE_X_TOKEN',
    flag: '--token <value>',
    help: 'API token',
    secret: true,
  },
});

const dir = mkdtempSync(join(tmpdir(), 'lethe-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string): string => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadSettings(SETTINGS, { argv, env });

describe('loadSettings', () => {
  it('types keys with a default as present and the others as optional', () => {
    expectTypeOf(load([])).toEqualTypeOf<{
      host: string;
      port: number;
      logLevel: 'debug' | 'info';
      store?: string;
      token?: string;
    }>();
    expectTypeOf<SettingsValues<typeof SETTINGS>['port']>().toEqualTypeOf<number>();
  });

  it('takes defaults < config file < environment < flags, key by key', () => {
    expect(load([])).toEqual({ host: '127.0.0.1', port: 7070, logLevel: 'info' });
    const file = write('all.json', JSON.stringify({ host: 'file-host', port: 1, store: '/file' }));
    expect(load(['--config', file])).toEqual({
      host: 'file-host',
      port: 1,
      logLevel: 'info',
      store: '/file',
    });
    expect(load(['--config', file], { LETHE_X_PORT: '2', LETHE_X_STORE: '/env' })).toEqual({
      host: 'file-host',
      port: 2,
      logLevel: 'info',
      store: '/env',
    });
    expect(
      load(['--config', file, '--port', '3', '--log-level', 'debug'], {
        LETHE_X_PORT: '2',
        LETHE_X_HOST: '',
      }),
    ).toEqual({ host: 'file-host', port: 3, logLevel: 'debug', store: '/file' });
  });

  it('reads the file named by LETHE_CONFIG, the flag winning over it', () => {
    const a = write('a.json', '{"port": 11}');
    const b = write('b.json', '{"port": 12}');
    expect(load([], { LETHE_CONFIG: a }).port).toBe(11);
    expect(load(['--config', b], { LETHE_CONFIG: a }).port).toBe(12);
    expect(loadSettings(SETTINGS, { argv: [], env: {}, file: a }).port).toBe(11);
  });

  it('reads YAML files', () => {
    const file = write('c.yaml', 'host: yaml-host\nport: 8080\nstore: ~\n');
    expect(load(['--config', file])).toEqual({ host: 'yaml-host', port: 8080, logLevel: 'info' });
  });

  it('names unknown keys of the file', () => {
    const file = write('unknown.json', '{"port": 1, "prot": 2, "colour": "red"}');
    expect(() => load(['--config', file])).toThrow(ConfigError);
    expect(() => load(['--config', file])).toThrow(
      `invalid config file ${file}: unknown keys "prot", "colour" (known: host, port, logLevel, store, token)`,
    );
  });

  it('reports files it cannot read or parse without quoting them', () => {
    expect(() => load(['--config', join(dir, 'nope.json')])).toThrow(
      /^invalid config file .*nope\.json: cannot read it: ENOENT$/,
    );
    const json = write('bad.json', '{"token": "lethe_secret-token-value-123",}');
    expect(() => load(['--config', json])).toThrow(/^invalid config file .*: not valid JSON/);
    expect(() => load(['--config', json])).not.toThrow(/secret-token/);
    const yaml = write('bad.yml', 'token: lethe_secret-token-value-123\n  - x: [\n');
    expect(() => load(['--config', yaml])).toThrow(/^invalid config file .*: not valid YAML \(/);
    expect(() => load(['--config', yaml])).not.toThrow(/secret-token/);
    expect(() => load(['--config', write('list.json', '[1]')])).toThrow(
      /expected an object of settings$/,
    );
  });

  it('names the key of a bad value, with its flag, variable and file, in one line', () => {
    expect(() => load(['--port', 'http'])).toThrow(
      /^invalid port \(--port \/ LETHE_X_PORT\): .*, got "http"$/,
    );
    expect(() => load([], { LETHE_X_LOG_LEVEL: 'loud' })).toThrow(
      /^invalid logLevel \(--log-level \/ LETHE_X_LOG_LEVEL\): .*, got "loud"$/,
    );
    const file = write('bad-port.json', '{"port": 70000}');
    expect(() => load(['--config', file])).toThrow(
      `invalid port (--port / LETHE_X_PORT / file ${file}): `,
    );
    expect(() => load(['--config', file])).toThrow(/, got 70000$/);
    try {
      load(['--port', '-1']);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).key).toBe('port');
      expect((error as ConfigError).message).not.toContain('\n');
    }
  });

  it('never echoes a secret value', () => {
    const token = 'hunter2';
    expect(() => load(['--token', token])).toThrow(
      /^invalid token \(--token \/ LETHE_X_TOKEN\): expected at least 20 characters$/,
    );
    expect(() => load([], { LETHE_X_TOKEN: token })).not.toThrow(/hunter2/);
    const file = write('secret.json', JSON.stringify({ token }));
    expect(() => load(['--config', file])).not.toThrow(/hunter2/);
    expect(() => load(['--config', file])).toThrow(/^invalid token .*file/);
  });

  it('runs cross-field checks that fail in the same format', () => {
    const check = (argv: string[]) =>
      loadSettings(SETTINGS, {
        argv,
        env: {},
        check: (values, fail) => {
          if (values.port === 0 && values.store === undefined)
            fail('store', 'required with port 0');
        },
      });
    expect(check(['--port', '0', '--store', 's']).store).toBe('s');
    expect(() => check(['--port', '0'])).toThrow(
      /^invalid store \(--store \/ LETHE_X_STORE\): required with port 0$/,
    );
  });

  it('turns flag errors into ConfigError and lets --help through', () => {
    expect(() => load(['--bogus', '1'])).toThrow(ConfigError);
    expect(() => load(['--bogus', '1'])).toThrow(/^unknown option '--bogus'/);
    expect(() => load(['--port'])).toThrow(/argument missing/);
    let help = '';
    const program = new Command('x').configureOutput({ writeOut: (text) => (help += text) });
    expect(() => loadSettings(SETTINGS, { argv: ['--help'], env: {}, program })).toThrow(
      CommanderError,
    );
    expect(help).toContain('--config <file>');
    expect(help).toContain('[env LETHE_X_PORT, default 7070]');
    expect(help).toContain('precedence: defaults < config file < environment < flags');
  });
});

describe('describeSettings', () => {
  it('lists key, flag, variable, help and default, hiding secrets', () => {
    const text = describeSettings({
      ...SETTINGS,
      password: { ...SETTINGS.token, env: 'LETHE_X_PASSWORD', default: 'swordfish-swordfish-1' },
    });
    const lines = text.split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[1]).toMatch(
      /^ {2}port +--port +LETHE_X_PORT +port to listen on \(default 7070\)$/,
    );
    expect(text).not.toContain('swordfish');
  });
});
