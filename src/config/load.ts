/**
 * Reads configuration from flags, `PIXELFLEET_*` environment variables and an optional JSON
 * file, in that order of precedence, against the schema. Every value is validated at start-up;
 * an error names the bad key in the form the operator wrote it (flag, variable or file key).
 */
import { readFileSync } from 'node:fs';
import { PixelfleetError } from '../errors/index.ts';
import { type Config, envOf, flagOf, type SettingName, type SettingSpec, settings } from './schema.ts';

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const byteUnits: Record<string, number> = {
  b: 1,
  kb: 1000,
  kib: 1024,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

function invalid(source: string, detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_CONFIG', `${source}: ${detail}`, { extensions: { key: source } });
}

function parseNumberWithUnit(
  raw: string,
  units: Record<string, number>,
  defaultUnit: string,
): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  if (!match) return undefined;
  const unit = (match[2] || defaultUnit).toLowerCase();
  const factor = units[unit];
  if (factor === undefined) return undefined;
  return Math.round(Number(match[1]) * factor);
}

/** Parses one raw value (string from flags/env, or any JSON value from the file). */
export function parseSetting(name: SettingName, raw: unknown, source: string): unknown {
  const spec: SettingSpec = settings[name];
  const text = typeof raw === 'string' ? raw.trim() : undefined;
  let value: unknown;
  switch (spec.type) {
    case 'integer':
    case 'number': {
      const n = typeof raw === 'number' ? raw : text !== undefined && text !== '' ? Number(text) : Number.NaN;
      if (!Number.isFinite(n) || (spec.type === 'integer' && !Number.isInteger(n))) {
        throw invalid(
          source,
          `expected ${spec.type === 'integer' ? 'an integer' : 'a number'}, got ${JSON.stringify(raw)}`,
        );
      }
      value = n;
      break;
    }
    case 'duration': {
      const n =
        typeof raw === 'number'
          ? raw
          : text !== undefined
            ? parseNumberWithUnit(text, durationUnits, 'ms')
            : undefined;
      if (n === undefined || !Number.isFinite(n)) {
        throw invalid(source, `expected a duration like 500ms, 10s, 5m or 1h, got ${JSON.stringify(raw)}`);
      }
      value = n;
      break;
    }
    case 'bytes': {
      const n =
        typeof raw === 'number'
          ? raw
          : text !== undefined
            ? parseNumberWithUnit(text, byteUnits, 'b')
            : undefined;
      if (n === undefined || !Number.isFinite(n)) {
        throw invalid(source, `expected a size like 1048576, 512KiB or 1MiB, got ${JSON.stringify(raw)}`);
      }
      value = n;
      break;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') value = raw;
      else if (text !== undefined && ['true', '1', 'yes', 'on'].includes(text.toLowerCase())) value = true;
      else if (text !== undefined && ['false', '0', 'no', 'off'].includes(text.toLowerCase())) value = false;
      else throw invalid(source, `expected true or false, got ${JSON.stringify(raw)}`);
      break;
    }
    case 'list': {
      const items = Array.isArray(raw)
        ? raw.map(String)
        : text !== undefined
          ? text
              .split(',')
              .map((s) => s.trim())
              .filter((s) => s !== '')
          : undefined;
      if (items === undefined)
        throw invalid(source, `expected a comma-separated list, got ${JSON.stringify(raw)}`);
      value = items.map((item) => item.toLowerCase());
      break;
    }
    case 'string': {
      if (typeof raw !== 'string') throw invalid(source, `expected a string, got ${JSON.stringify(raw)}`);
      value = raw;
      break;
    }
  }
  if (typeof value === 'number') {
    if (spec.min !== undefined && value < spec.min)
      throw invalid(source, `must be at least ${spec.min}, got ${value}`);
    if (spec.max !== undefined && value > spec.max)
      throw invalid(source, `must be at most ${spec.max}, got ${value}`);
  }
  if (spec.choices !== undefined) {
    const values = Array.isArray(value) ? (value as string[]) : [value as string];
    for (const item of values) {
      if (!spec.choices.includes(item)) {
        throw invalid(source, `${JSON.stringify(item)} is not one of ${spec.choices.join(', ')}`);
      }
    }
  }
  return value;
}

export interface LoadConfigInput {
  /** Command-line arguments after the command name, e.g. ['--http-port', '0']. */
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
}

const names = Object.keys(settings) as SettingName[];
const byFlag = new Map(names.map((name) => [flagOf(name), name]));
const byEnv = new Map(names.map((name) => [envOf(name), name]));

/** Splits `--flag value` / `--flag=value` pairs; booleans may stand alone. */
export function parseFlags(argv: readonly string[]): Map<SettingName, { raw: string; source: string }> {
  const found = new Map<SettingName, { raw: string; source: string }>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw invalid(arg, 'unexpected argument (settings are given as --name value)');
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const name = byFlag.get(flag);
    if (name === undefined) throw invalid(flag, 'unknown flag (see `pixelfleet config` for the list)');
    let raw: string;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else if (
      (settings[name] as SettingSpec).type === 'boolean' &&
      (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))
    )
      raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw invalid(flag, 'needs a value');
      raw = next;
      i++;
    }
    found.set(name, { raw, source: flag });
  }
  return found;
}

export function loadConfig(input: LoadConfigInput = {}): Config {
  const env = input.env ?? process.env;
  const flags = parseFlags(input.argv ?? []);
  const values: Record<string, unknown> = {};
  for (const name of names) values[name] = settings[name].default;

  for (const key of Object.keys(env)) {
    if (key.startsWith('PIXELFLEET_') && !byEnv.has(key) && !extraEnv.has(key)) {
      throw invalid(key, 'unknown environment variable (see `pixelfleet config` for the list)');
    }
  }

  const configFile = flags.get('config')?.raw ?? env[envOf('config')];
  if (configFile) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(configFile, 'utf8'));
    } catch (cause) {
      throw new PixelfleetError('PF_ERR_CONFIG', `config file ${configFile}: ${(cause as Error).message}`, {
        cause,
      });
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw invalid(configFile, 'a config file holds one JSON object');
    }
    for (const [key, raw] of Object.entries(parsed)) {
      if (!(key in settings)) throw invalid(`${configFile}: ${key}`, 'unknown setting');
      values[key] = parseSetting(key as SettingName, raw, `${configFile}: ${key}`);
    }
  }
  for (const name of names) {
    const raw = env[envOf(name)];
    if (raw !== undefined) values[name] = parseSetting(name, raw, envOf(name));
  }
  for (const [name, { raw, source }] of flags) values[name] = parseSetting(name, raw, source);
  return Object.freeze(values) as Config;
}

/**
 * Variables read by other parts (tokens, test hooks) that are not settings of the service.
 * Listed here so the unknown-variable check does not reject them.
 */
const extraEnv = new Set([
  'PIXELFLEET_ADMIN_TOKEN',
  'PIXELFLEET_CLUSTER_SECRET',
  'PIXELFLEET_SIMULATION_SEEDS',
]);

/** The reference table for the README. */
export function describeSettings(): string {
  const rows = names.map((name) => {
    const spec: SettingSpec = settings[name];
    const shown =
      spec.documentedDefault ?? (Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default));
    return `| \`${flagOf(name)}\` | \`${envOf(name)}\` | ${spec.type} | \`${shown === '' ? '—' : shown}\` | ${spec.doc} |`;
  });
  return ['| flag | environment | type | default | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}
