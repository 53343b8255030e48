/**
 * @lethe/config — one validated settings schema per app, shared by the coordinator and the
 * workers:
 *
 * - defineSettings: each key's zod schema, environment variable, flag, help, default, secrecy.
 * - loadSettings: defaults < config file (`--config FILE` / `LETHE_CONFIG`, JSON or YAML) <
 *   environment < flags; a bad value is one ConfigError line `invalid <key> (--flag / ENV /
 *   file F): <reason>`; unknown file keys are an error; secret values are never echoed.
 * - settingsProgram / describeSettings: the commander flags and the --help table.
 */
export {
  ConfigError,
  defineSettings,
  describeSettings,
  loadSettings,
  readConfigFile,
  settingsProgram,
  type ConfigFileSource,
  type LoadOptions,
  type Setting,
  type SettingsSpec,
  type SettingsValues,
} from './settings';
