import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';

/** One setting: how its value is checked and where it may come from. */
export interface Setting<S extends z.ZodType = z.ZodType> {
  /** Validates (and may transform) the raw value: a string from a flag or the environment, any JSON value from a file. */
  readonly schema: S;
  /** Environment variable, e.g. `LETHE_PORT`; an empty value counts as unset. */
  readonly env: string;
  /** commander flag, e.g. `--port <value>`. */
  readonly flag: string;
  /** One line for --help. */
  readonly help: string;
  /** Used as is (already the parsed type) when no source sets the key. */
  readonly default?: z.output<S>;
  /** Never echo the value: not in error messages, not as a default in help. */
  readonly secret?: boolean;
}

/** Settings by key; the keys are also the keys of the configuration file. */
export type SettingsSpec = Readonly<Record<string, Setting>>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type DefaultedKeys<T extends SettingsSpec> = {
  [K in keyof T]: T[K] extends { readonly default: unknown } ? K : never;
}[keyof T];

/** The loaded configuration: keys with a default are always present, the others optional. */
export type SettingsValues<T extends SettingsSpec> = Simplify<
  { -readonly [K in DefaultedKeys<T>]: z.output<T[K]['schema']> } & {
    -readonly [K in Exclude<keyof T, DefaultedKeys<T>>]?: z.output<T[K]['schema']>;
  }
>;

/** Identity, for type inference: each default is checked against its schema's output type. */
export function defineSettings<const T extends SettingsSpec>(
  settings: T & { [K in keyof T]: Setting<T[K]['schema']> },
): T {
  return settings;
}

/**
 * A configuration value that does not validate, an unknown or malformed flag, or a config file
 * that cannot be read, parsed or holds unknown keys. One line; it names the key (when there is
 * one) and never quotes the value of a secret setting.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    /** The setting at fault, if one is. */
    readonly key?: string,
  ) {
    super(message);
  }
}

/** Where the configuration file's path comes from. */
export interface ConfigFileSource {
  /** Default `--config <file>`. */
  readonly flag: string;
  /** Default `LETHE_CONFIG`. */
  readonly env: string;
}

export interface LoadOptions<T extends SettingsSpec> {
  /** Command-line arguments without `node main.js`. */
  readonly argv: readonly string[];
  /** Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * A commander program with name, description and version set; the settings' flags and
   * `--config` are added to it. Default: an anonymous one.
   */
  readonly program?: Command;
  /** The config file's flag and environment variable; `false`: no config file option. */
  readonly configFile?: ConfigFileSource | false;
  /** A config file to read when neither its flag nor its environment variable names one. */
  readonly file?: string;
  /**
   * Cross-field and I/O checks on the validated values; `fail(key, reason)` throws the
   * ConfigError naming the key, in the same format as a value that fails its schema.
   */
  readonly check?: (
    values: SettingsValues<T>,
    fail: (key: keyof T & string, reason: string) => never,
  ) => void;
}

const DEFAULT_CONFIG_FILE: ConfigFileSource = { flag: '--config <file>', env: 'LETHE_CONFIG' };

/** `--port <value>` → `--port`. */
const flagName = (flag: string): string => {
  const long = flag.split(/[ ,|]+/).find((part) => part.startsWith('--'));
  return long ?? flag.split(/[ ,|]+/)[0]!;
};

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

/**
 * Reads the settings with precedence defaults < config file < environment < flags; each value
 * that is set is validated by its schema. Throws ConfigError (`invalid <key> (--flag / ENV /
 * file F): <reason>`) for the first bad value in key order, for unknown or malformed flags and
 * for a config file that cannot be read or parsed or holds unknown keys. commander's
 * CommanderError passes through only for --help and --version (exit code 0: output written).
 */
export function loadSettings<T extends SettingsSpec>(
  settings: T,
  options: LoadOptions<T>,
): SettingsValues<T> {
  const env = options.env ?? process.env;
  const program = settingsProgram(settings, options.program ?? new Command(), options.configFile);
  try {
    program.parse([...options.argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) throw error;
      throw new ConfigError(error.message.replace(/^error: /, ''));
    }
    throw error;
  }

  const fileSource =
    options.configFile === false ? undefined : (options.configFile ?? DEFAULT_CONFIG_FILE);
  let file: string | undefined;
  if (fileSource !== undefined) {
    const fromFlag = cliValue(program, fileSource.flag);
    const fromEnv = env[fileSource.env];
    file =
      typeof fromFlag === 'string'
        ? fromFlag
        : fromEnv !== undefined && fromEnv !== ''
          ? fromEnv
          : options.file;
  } else {
    file = options.file;
  }
  const fromFile = file === undefined ? {} : readConfigFile(file, Object.keys(settings));

  const where = (key: string): string => {
    const setting = settings[key]!;
    const inFile = file !== undefined && fromFile[key] !== undefined ? ` / file ${file}` : '';
    return `invalid ${key} (${flagName(setting.flag)} / ${setting.env}${inFile})`;
  };
  const fail = (key: keyof T & string, reason: string): never => {
    throw new ConfigError(`${where(key)}: ${reason}`, key);
  };

  const values: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings)) {
    const fromFlag = cliValue(program, setting.flag);
    const fromEnv = env[setting.env];
    let raw: unknown;
    if (fromFlag !== undefined) raw = fromFlag;
    else if (fromEnv !== undefined && fromEnv !== '') raw = fromEnv;
    else if (fromFile[key] !== undefined) raw = fromFile[key];
    else {
      if (setting.default !== undefined) values[key] = setting.default;
      continue;
    }
    const parsed = setting.schema.safeParse(raw);
    if (!parsed.success) {
      const reason = parsed.error.issues[0]?.message ?? 'invalid value';
      fail(key, setting.secret === true ? reason : `${reason}, got ${show(raw)}`);
    }
    values[key] = parsed.data;
  }
  const result = values as SettingsValues<T>;
  options.check?.(result, fail);
  return result;
}

/** The value a flag was given on the command line, if it was. */
function cliValue(program: Command, flag: string): unknown {
  const name = new Option(flag).attributeName();
  return program.getOptionValueSource(name) === 'cli' ? program.getOptionValue(name) : undefined;
}

/**
 * Adds the settings' flags (and the config file's) to a commander program: exceptions instead
 * of process.exit, errors not printed (the caller prints the ConfigError), help listing each
 * flag's environment variable and default.
 */
export function settingsProgram(
  settings: SettingsSpec,
  program: Command = new Command(),
  configFile: ConfigFileSource | false = DEFAULT_CONFIG_FILE,
): Command {
  program
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  if (configFile !== false) {
    program.addOption(
      new Option(
        configFile.flag,
        `JSON or YAML file of settings, keyed as listed below [env ${configFile.env}]`,
      ),
    );
  }
  for (const setting of Object.values(settings)) {
    program.addOption(new Option(setting.flag, `${setting.help} [${sourcesOf(setting)}]`));
  }
  program.addHelpText(
    'after',
    `\nSettings (config-file key, flag, environment variable); precedence: defaults < config file < environment < flags.\n${describeSettings(settings)}`,
  );
  return program;
}

const sourcesOf = (setting: Setting): string => {
  const fallback =
    setting.default === undefined
      ? ''
      : setting.secret === true
        ? ', default set'
        : `, default ${show(setting.default)}`;
  return `env ${setting.env}${fallback}`;
};

/** One line per setting: key, flag, environment variable, help and default (never a secret's). */
export function describeSettings(settings: SettingsSpec): string {
  const rows = Object.entries(settings).map(([key, setting]) => [
    key,
    flagName(setting.flag),
    setting.env,
    setting.default === undefined
      ? setting.help
      : `${setting.help} (default ${setting.secret === true ? 'set' : show(setting.default)})`,
  ]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows
    .map((row) => `  ${row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  ')}`)
    .join('\n');
}

/**
 * A config file: a JSON object, or YAML for `.yaml` / `.yml`, whose keys are setting keys. A
 * null value counts as unset. Parse errors give the position only, never the file's text.
 */
export function readConfigFile(file: string, keys: readonly string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`invalid config file ${file}: cannot read it: ${code}`);
  }
  let data: unknown;
  if (/\.ya?ml$/i.test(file)) {
    try {
      data = parseYaml(text);
    } catch (error) {
      if (!(error instanceof YAMLParseError)) throw error;
      const at = error.linePos?.[0];
      const position = at === undefined ? '' : ` at line ${at.line}, column ${at.col}`;
      throw new ConfigError(
        `invalid config file ${file}: not valid YAML (${error.code}${position})`,
      );
    }
  } else {
    try {
      data = JSON.parse(text);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      const at = /position (\d+)/.exec(error.message)?.[1];
      const position = at === undefined ? '' : ` at position ${at}`;
      throw new ConfigError(`invalid config file ${file}: not valid JSON${position}`);
    }
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(`invalid config file ${file}: expected an object of settings`);
  }
  const known = new Set(keys);
  const unknown = Object.keys(data).filter((key) => !known.has(key));
  if (unknown.length > 0) {
    throw new ConfigError(
      `invalid config file ${file}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((key) => JSON.stringify(key)).join(', ')} (known: ${keys.join(', ')})`,
    );
  }
  const values: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) if (value !== null) values[key] = value;
  return values;
}
