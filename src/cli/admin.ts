/**
 * `pixelfleet admin …`: the operator's client for the admin API. It finds the admin listener and
 * the admin token exactly as the server does (the same `--data-dir`, `--admin-host`,
 * `--admin-port` and `--config` settings, `PIXELFLEET_*` variables and `<dataDir>/admin-token`),
 * sends the operator's login name so the audit log says who acted, prints human-readable output
 * (JSON with `--json`), and exits 0 on success, 1 when the server refused or was unreachable,
 * 2 on a usage error.
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/index.ts';
import { isPixelfleetError } from '../errors/index.ts';
import { readAdminToken } from '../identity/admin-token.ts';
import type {
  AccountView,
  AuditEntryView,
  IssuedKeyView,
  KeyView,
  TierView,
} from '../identity/admin-views.ts';

export interface AdminCommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: AdminCommandIo = {
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
};

type OptionSpec = { type: 'string' | 'boolean'; multiple?: boolean; short?: string; help: string };

interface CommandSpec {
  usage: string;
  summary: string;
  positionals: readonly string[];
  options: Record<string, OptionSpec>;
  run: (call: CommandCall) => Promise<void>;
}

interface CommandCall {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  client: AdminClient;
  json: boolean;
  out: (text: string) => void;
}

/** A usage mistake: exit code 2 and a pointer to --help. */
class UsageError extends Error {
  override name = 'UsageError';
}

/** The server answered with a problem document, or could not be reached. */
class AdminRequestError extends Error {
  override name = 'AdminRequestError';
}

const connectionOptions: Record<string, OptionSpec> = {
  'data-dir': {
    type: 'string',
    help: 'data directory of the server (holds admin-token) [PIXELFLEET_DATA_DIR]',
  },
  'admin-host': { type: 'string', help: 'address of the admin listener [PIXELFLEET_ADMIN_HOST]' },
  'admin-port': { type: 'string', help: 'port of the admin listener [PIXELFLEET_ADMIN_PORT]' },
  config: { type: 'string', help: 'JSON config file, as for pixelfleet start [PIXELFLEET_CONFIG]' },
  json: { type: 'boolean', help: 'print the server response as JSON' },
  operator: { type: 'string', help: 'who is acting, for the audit log (default: your login name)' },
  timeout: { type: 'string', help: 'request timeout, e.g. 10s (default 10s)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** Settings flags handed to the config loader; everything else is this command's own. */
const settingFlags = {
  'data-dir': '--data-dir',
  'admin-host': '--admin-host',
  'admin-port': '--admin-port',
  config: '--config',
};

const durationUnits: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};
const byteUnits: Record<string, number> = {
  b: 1,
  kb: 1e3,
  kib: 1024,
  mb: 1e6,
  mib: 1024 ** 2,
  gb: 1e9,
  gib: 1024 ** 3,
};

function parseDuration(option: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!match)
    throw new UsageError(
      `--${option} expects a duration like 30s, 90m, 12h or 30d, got ${JSON.stringify(text)}`,
    );
  return Math.round(Number(match[1]) * durationUnits[match[2]!]!);
}

function parseInteger(option: string, text: string): number {
  const value = Number(text.replaceAll('_', ''));
  if (!Number.isSafeInteger(value))
    throw new UsageError(`--${option} expects an integer, got ${JSON.stringify(text)}`);
  return value;
}

function parseBytes(option: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const factor = match ? byteUnits[(match[2] || 'b').toLowerCase()] : undefined;
  if (!match || factor === undefined) {
    throw new UsageError(
      `--${option} expects a size like 5242880, 512KiB or 5MiB, got ${JSON.stringify(text)}`,
    );
  }
  return Math.round(Number(match[1]) * factor);
}

function parseBoolean(option: string, text: string): boolean {
  if (['true', 'yes', 'on', '1'].includes(text.toLowerCase())) return true;
  if (['false', 'no', 'off', '0'].includes(text.toLowerCase())) return false;
  throw new UsageError(`--${option} expects true or false, got ${JSON.stringify(text)}`);
}

/** `--since 24h` means 24 hours ago; anything else (ISO time, epoch ms) goes to the server as is. */
function parseSince(option: string, text: string, now: number): string {
  return /^\d+(?:\.\d+)?(ms|s|m|h|d|w)$/.test(text.trim())
    ? new Date(now - parseDuration(option, text)).toISOString()
    : text;
}

function string(values: CommandCall['values'], name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

// ---------------------------------------------------------------------------------------------
// The admin API client

class AdminClient {
  readonly baseUrl: string;
  readonly #token: string;
  readonly #operator: string | undefined;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, token: string, operator: string | undefined, timeoutMs: number) {
    this.baseUrl = baseUrl;
    this.#token = token;
    this.#operator = operator;
    this.#timeoutMs = timeoutMs;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#token}`,
      accept: 'application/json',
    };
    if (this.#operator !== undefined) headers['x-pixelfleet-operator'] = this.#operator;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const reason =
        (error as Error).name === 'TimeoutError'
          ? `no answer within ${this.#timeoutMs} ms`
          : (cause?.code ?? cause?.message ?? (error as Error).message);
      throw new AdminRequestError(
        `cannot reach the admin listener at ${this.baseUrl}: is \`pixelfleet start\` running? (${reason})`,
        { cause: error },
      );
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const problem = parsed as { title?: string; detail?: string; code?: string } | undefined;
      const detail = problem?.detail ?? (text.slice(0, 200) || response.statusText);
      const code = problem?.code === undefined ? '' : ` (${problem.code})`;
      throw new AdminRequestError(
        `${response.status} ${problem?.title ?? response.statusText}: ${detail}${code}`,
      );
    }
    return parsed as T;
  }
}

// ---------------------------------------------------------------------------------------------
// Human-readable output

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function when(iso: string | null): string {
  return iso === null ? '-' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function microUsd(value: number): string {
  return `$${(value / 1e6).toFixed(6)}`;
}

function describeAccount(account: AccountView): string {
  return `${account.id} (${account.name}, tier ${account.tier}, ${account.status})`;
}

function keyRows(keys: readonly KeyView[]): string {
  if (keys.length === 0) return '(no keys)';
  return table([
    ['KEY ID', 'NAME', 'STATUS', 'SCOPES', 'CREATED', 'EXPIRES', 'REVOKED'],
    ...keys.map((key) => [
      key.id,
      key.name ?? '-',
      key.status,
      key.scopes.join(','),
      when(key.createdAt),
      when(key.expiresAt),
      key.revokedAt === null
        ? '-'
        : `${when(key.revokedAt)}${key.revokedReason ? ` (${key.revokedReason})` : ''}`,
    ]),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Commands

const tierFlags = {
  enabled: {
    field: 'enabled',
    parse: parseBoolean,
    help: 'true or false: whether new accounts (or anonymous use) are allowed',
  },
  'rate-per-second': {
    field: 'ratePerSecond',
    parse: (option: string, text: string) => {
      const value = Number(text);
      if (!(value > 0))
        throw new UsageError(`--${option} expects a positive number, got ${JSON.stringify(text)}`);
      return value;
    },
    help: 'sustained requests per second',
  },
  burst: { field: 'burst', parse: parseInteger, help: 'requests allowed in a burst' },
  'concurrent-jobs': { field: 'concurrentJobs', parse: parseInteger, help: 'jobs in flight at once' },
  'max-input-bytes': { field: 'maxInputBytes', parse: parseBytes, help: 'largest input, e.g. 25MiB' },
  'max-input-pixels': { field: 'maxInputPixels', parse: parseInteger, help: 'largest input width × height' },
  'monthly-conversions': {
    field: 'monthlyConversions',
    parse: (option: string, text: string) => (text === 'unlimited' ? null : parseInteger(option, text)),
    help: 'conversions per calendar month, or "unlimited"',
  },
  'price-micro-usd-per-cpu-second': {
    field: 'priceMicroUsdPerCpuSecond',
    parse: parseInteger,
    help: 'price, micro-USD',
  },
  'price-micro-usd-per-gigabyte-in': {
    field: 'priceMicroUsdPerGigabyteIn',
    parse: parseInteger,
    help: 'price, micro-USD',
  },
  'price-micro-usd-per-gigabyte-out': {
    field: 'priceMicroUsdPerGigabyteOut',
    parse: parseInteger,
    help: 'price, micro-USD',
  },
} as const;

const commands: Record<string, Record<string, CommandSpec>> = {
  accounts: {
    create: {
      usage: 'accounts create --name <name> [--email <address>] [--tier <tier>]',
      summary: 'Create an account (tier free unless --tier says otherwise)',
      positionals: [],
      options: {
        name: { type: 'string', help: 'display name of the customer (required)' },
        email: { type: 'string', help: 'contact address' },
        tier: { type: 'string', help: 'tier name (see `tiers list`), default free' },
      },
      async run({ values, client, json, out }) {
        const name = string(values, 'name');
        if (name === undefined) throw new UsageError('accounts create needs --name <name>');
        const body = { name, email: string(values, 'email'), tier: string(values, 'tier') };
        const { account } = await client.request<{ account: AccountView }>('POST', '/accounts', body);
        out(json ? JSON.stringify({ account }, null, 2) : `Created account ${describeAccount(account)}.`);
      },
    },
    list: {
      usage: 'accounts list [--status active|closed] [--tier <tier>] [--limit <n>] [--after <account id>]',
      summary: 'List accounts, ordered by id',
      positionals: [],
      options: {
        status: { type: 'string', help: 'only active or only closed accounts' },
        tier: { type: 'string', help: 'only accounts on this tier' },
        limit: { type: 'string', help: 'at most this many (default 100, max 1000)' },
        after: { type: 'string', help: 'start after this account id (paging)' },
      },
      async run({ values, client, json, out }) {
        const query = new URLSearchParams();
        for (const name of ['status', 'tier', 'limit', 'after']) {
          const value = string(values, name);
          if (value !== undefined) query.set(name, value);
        }
        const { accounts } = await client.request<{ accounts: AccountView[] }>('GET', `/accounts?${query}`);
        if (json) return out(JSON.stringify({ accounts }, null, 2));
        if (accounts.length === 0) return out('(no accounts)');
        out(
          table([
            ['ACCOUNT ID', 'NAME', 'TIER', 'STATUS', 'CREATED'],
            ...accounts.map((account) => [
              account.id,
              account.name,
              account.tier,
              account.status,
              when(account.createdAt),
            ]),
          ]),
        );
      },
    },
    show: {
      usage: 'accounts show <account id>',
      summary: 'Show an account and its keys',
      positionals: ['account id'],
      options: {},
      async run({ positionals, client, json, out }) {
        const result = await client.request<{ account: AccountView; keys: KeyView[] }>(
          'GET',
          `/accounts/${encodeURIComponent(positionals[0]!)}`,
        );
        if (json) return out(JSON.stringify(result, null, 2));
        const { account, keys } = result;
        out(
          [
            `Account  ${account.id}`,
            `Name     ${account.name}`,
            `Email    ${account.email ?? '-'}`,
            `Tier     ${account.tier}`,
            `Status   ${account.status}${account.closedAt === null ? '' : ` since ${when(account.closedAt)}`}`,
            `Created  ${when(account.createdAt)}`,
            '',
            keyRows(keys),
          ].join('\n'),
        );
      },
    },
    'set-tier': {
      usage: 'accounts set-tier <account id> <tier>',
      summary: 'Move an account to another tier (takes effect on the data plane at once)',
      positionals: ['account id', 'tier'],
      options: {},
      async run({ positionals, client, json, out }) {
        const { account } = await client.request<{ account: AccountView }>(
          'PATCH',
          `/accounts/${encodeURIComponent(positionals[0]!)}`,
          { tier: positionals[1] },
        );
        out(
          json
            ? JSON.stringify({ account }, null, 2)
            : `Account ${account.id} is now on tier ${account.tier}.`,
        );
      },
    },
    close: {
      usage: 'accounts close <account id> [--reason <text>]',
      summary: 'Close an account and revoke all its keys (irreversible)',
      positionals: ['account id'],
      options: { reason: { type: 'string', help: 'why, for the audit log' } },
      async run({ positionals, values, client, json, out }) {
        const { account } = await client.request<{ account: AccountView }>(
          'POST',
          `/accounts/${encodeURIComponent(positionals[0]!)}/close`,
          { reason: string(values, 'reason') ?? null },
        );
        out(
          json
            ? JSON.stringify({ account }, null, 2)
            : `Closed account ${account.id}; all its keys are revoked.`,
        );
      },
    },
  },
  keys: {
    issue: {
      usage:
        'keys issue <account id> [--scope <scope>]... [--name <label>] [--expires-in <duration> | --expires-at <time>]',
      summary: 'Issue an API key; it is printed once and cannot be shown again',
      positionals: ['account id'],
      options: {
        scope: {
          type: 'string',
          multiple: true,
          help: 'images:write, jobs:read, usage:read or admin; repeat or comma-separate (default: all but admin)',
        },
        name: { type: 'string', help: 'label, e.g. ci or rotation-2025-06' },
        'expires-in': { type: 'string', help: 'lifetime, e.g. 90d' },
        'expires-at': { type: 'string', help: 'expiry as an ISO 8601 time' },
      },
      async run({ positionals, values, client, json, out }) {
        const scopes = (values.scope as string[] | undefined)
          ?.flatMap((scope) => scope.split(','))
          .filter(Boolean);
        const expiresIn = string(values, 'expires-in');
        const expiresAt = string(values, 'expires-at');
        if (expiresIn !== undefined && expiresAt !== undefined) {
          throw new UsageError('give --expires-in or --expires-at, not both');
        }
        const body = {
          ...(scopes === undefined ? {} : { scopes }),
          ...(string(values, 'name') === undefined ? {} : { name: string(values, 'name') }),
          ...(expiresIn === undefined
            ? {}
            : { expiresInSeconds: Math.ceil(parseDuration('expires-in', expiresIn) / 1000) }),
          ...(expiresAt === undefined ? {} : { expiresAt }),
        };
        const issued = await client.request<IssuedKeyView>(
          'POST',
          `/accounts/${encodeURIComponent(positionals[0]!)}/keys`,
          body,
        );
        if (json) return out(JSON.stringify(issued, null, 2));
        out(
          [
            `Issued key ${issued.key.id} for account ${issued.key.accountId}`,
            `  scopes:  ${issued.key.scopes.join(', ')}`,
            `  expires: ${issued.key.expiresAt === null ? 'never' : when(issued.key.expiresAt)}`,
            '',
            `  ${issued.apiKey}`,
            '',
            'Store it now: it is shown once and cannot be retrieved again.',
          ].join('\n'),
        );
      },
    },
    revoke: {
      usage: 'keys revoke <key id> [--reason <text>]',
      summary: 'Revoke a key (the data plane refuses it within about a second)',
      positionals: ['key id'],
      options: { reason: { type: 'string', help: 'why, for the audit log' } },
      async run({ positionals, values, client, json, out }) {
        const { key } = await client.request<{ key: KeyView }>(
          'POST',
          `/keys/${encodeURIComponent(positionals[0]!)}/revoke`,
          { reason: string(values, 'reason') ?? null },
        );
        out(json ? JSON.stringify({ key }, null, 2) : `Revoked key ${key.id} of account ${key.accountId}.`);
      },
    },
    list: {
      usage: 'keys list <account id>',
      summary: "List an account's keys (never their secrets)",
      positionals: ['account id'],
      options: {},
      async run({ positionals, client, json, out }) {
        const { keys } = await client.request<{ keys: KeyView[] }>(
          'GET',
          `/accounts/${encodeURIComponent(positionals[0]!)}/keys`,
        );
        out(json ? JSON.stringify({ keys }, null, 2) : keyRows(keys));
      },
    },
  },
  tiers: {
    list: {
      usage: 'tiers list',
      summary: 'List tiers with their limits and prices',
      positionals: [],
      options: {},
      async run({ client, json, out }) {
        const { tiers } = await client.request<{ tiers: TierView[] }>('GET', '/tiers');
        if (json) return out(JSON.stringify({ tiers }, null, 2));
        out(
          table([
            [
              'TIER',
              'ENABLED',
              'RATE/S',
              'BURST',
              'JOBS',
              'MAX BYTES',
              'MAX PIXELS',
              'MONTHLY',
              'CPU-S',
              'GB IN',
              'GB OUT',
            ],
            ...tiers.map((tier) => [
              tier.name,
              tier.enabled ? 'yes' : 'no',
              String(tier.ratePerSecond),
              String(tier.burst),
              String(tier.concurrentJobs),
              String(tier.maxInputBytes),
              String(tier.maxInputPixels),
              tier.monthlyConversions === null ? 'unlimited' : String(tier.monthlyConversions),
              microUsd(tier.priceMicroUsdPerCpuSecond),
              microUsd(tier.priceMicroUsdPerGigabyteIn),
              microUsd(tier.priceMicroUsdPerGigabyteOut),
            ]),
          ]),
        );
      },
    },
    set: {
      usage: `tiers set <tier> [${Object.keys(tierFlags)
        .map((flag) => `--${flag} <value>`)
        .join('] [')}]`,
      summary: 'Edit a tier (unnamed limits keep their values) or create one (every limit needed)',
      positionals: ['tier'],
      options: Object.fromEntries(
        Object.entries(tierFlags).map(([flag, spec]) => [
          flag,
          { type: 'string', help: spec.help } as OptionSpec,
        ]),
      ),
      async run({ positionals, values, client, json, out }) {
        const body: Record<string, unknown> = {};
        for (const [flag, spec] of Object.entries(tierFlags)) {
          const text = string(values, flag);
          if (text !== undefined) body[spec.field] = spec.parse(flag, text);
        }
        if (Object.keys(body).length === 0)
          throw new UsageError('tiers set needs at least one limit to change');
        const { tier } = await client.request<{ tier: TierView }>(
          'PUT',
          `/tiers/${encodeURIComponent(positionals[0]!)}`,
          body,
        );
        out(
          json
            ? JSON.stringify({ tier }, null, 2)
            : `Tier ${tier.name} saved: ${Object.keys(body).join(', ')}.`,
        );
      },
    },
  },
  usage: {
    '': {
      usage: 'usage <account id> [--from <time>] [--to <time>] [--granularity hour|day|month]',
      summary: "Show an account's metered usage (default: this month, per day)",
      positionals: ['account id'],
      options: {
        from: { type: 'string', help: 'start (ISO 8601), default the first of this month' },
        to: { type: 'string', help: 'end (ISO 8601), default now' },
        granularity: { type: 'string', help: 'hour, day or month (default day)' },
      },
      async run({ positionals, values, client, json, out }) {
        const query = new URLSearchParams();
        for (const name of ['from', 'to', 'granularity']) {
          const value = string(values, name);
          if (value !== undefined) query.set(name, value);
        }
        const result = await client.request<{
          accountId: string;
          from: string;
          to: string;
          granularity: string;
          usage: unknown;
        }>('GET', `/accounts/${encodeURIComponent(positionals[0]!)}/usage?${query}`);
        if (json) return out(JSON.stringify(result, null, 2));
        out(
          `Usage of ${result.accountId} from ${when(result.from)} to ${when(result.to)} per ${result.granularity}:\n${JSON.stringify(result.usage, null, 2)}`,
        );
      },
    },
  },
  audit: {
    '': {
      usage:
        'audit [--actor <actor>] [--action <action>] [--target <target>] [--since <time|24h>] [--until <time>] [--limit <n>] [--before <id>]',
      summary: 'Query the audit log, newest first',
      positionals: [],
      options: {
        actor: { type: 'string', help: 'e.g. admin:alice' },
        action: { type: 'string', help: 'e.g. key.revoke, account.create, tier.update' },
        target: { type: 'string', help: 'e.g. key:<id>, account:<id>; a trailing * matches a prefix' },
        since: { type: 'string', help: 'ISO 8601 time, or a duration meaning that long ago (24h)' },
        until: { type: 'string', help: 'ISO 8601 time, or a duration meaning that long ago' },
        limit: { type: 'string', help: 'at most this many (default 100, max 1000)' },
        before: { type: 'string', help: 'entries older than this id (paging)' },
      },
      async run({ values, client, json, out }) {
        const query = new URLSearchParams();
        const now = Date.now();
        for (const name of ['actor', 'action', 'target', 'since', 'until', 'limit', 'before']) {
          const value = string(values, name);
          if (value === undefined) continue;
          query.set(name, name === 'since' || name === 'until' ? parseSince(name, value, now) : value);
        }
        const result = await client.request<{ entries: AuditEntryView[]; nextBefore: number | null }>(
          'GET',
          `/audit?${query}`,
        );
        if (json) return out(JSON.stringify(result, null, 2));
        if (result.entries.length === 0) return out('(no audit entries)');
        out(
          table([
            ['ID', 'AT', 'ACTOR', 'ACTION', 'TARGET', 'FROM', 'DETAILS'],
            ...result.entries.map((entry) => [
              String(entry.id),
              when(entry.at),
              entry.actor,
              entry.action,
              entry.target,
              entry.sourceIp ?? '-',
              JSON.stringify(entry.details),
            ]),
          ]),
        );
        if (result.nextBefore !== null) out(`(more: --before ${result.nextBefore})`);
      },
    },
  },
};

// ---------------------------------------------------------------------------------------------
// Help

function commandName(group: string, action: string): string {
  return action === '' ? group : `${group} ${action}`;
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  return Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.type === 'string' ? ' <value>' : ''}`;
    return `  ${flag.padEnd(40)} ${spec.help}`;
  });
}

function overview(): string {
  const lines = ['Usage: pixelfleet admin <command> [options]', '', 'Commands:'];
  for (const [group, actions] of Object.entries(commands)) {
    for (const [action, spec] of Object.entries(actions)) {
      lines.push(`  ${commandName(group, action).padEnd(18)} ${spec.summary}`);
    }
  }
  lines.push('', 'Connection (same settings as pixelfleet start):', ...optionLines(connectionOptions));
  lines.push('', "Run 'pixelfleet admin <command> --help' for a command's options.");
  return lines.join('\n');
}

function groupHelp(group: string): string {
  const lines = [
    `Usage: pixelfleet admin ${group} <${Object.keys(commands[group]!).join('|')}> [options]`,
    '',
  ];
  for (const [action, spec] of Object.entries(commands[group]!)) {
    lines.push(`  ${commandName(group, action).padEnd(18)} ${spec.summary}`);
  }
  return lines.join('\n');
}

function commandHelp(spec: CommandSpec): string {
  const lines = [`Usage: pixelfleet admin ${spec.usage}`, '', spec.summary];
  if (Object.keys(spec.options).length > 0) lines.push('', 'Options:', ...optionLines(spec.options));
  lines.push('', 'Connection:', ...optionLines(connectionOptions));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Entry point

function resolveConnection(
  values: CommandCall['values'],
  env: NodeJS.ProcessEnv,
): { baseUrl: string; token: string; operator: string | undefined; timeoutMs: number } {
  const settingsArgv: string[] = [];
  for (const [option, flag] of Object.entries(settingFlags)) {
    const value = string(values, option);
    if (value !== undefined) settingsArgv.push(flag, value);
  }
  const config = loadConfig({ argv: settingsArgv, env });
  // A wildcard listen address is reachable on loopback.
  const host =
    config.adminHost === '0.0.0.0' || config.adminHost === ''
      ? '127.0.0.1'
      : config.adminHost === '::'
        ? '::1'
        : config.adminHost;
  const baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${config.adminPort}/admin`;
  const { token } = readAdminToken(config.dataDir, env);
  const timeout = string(values, 'timeout');
  let operator = string(values, 'operator');
  if (operator === undefined) {
    try {
      operator = env.USER ?? env.LOGNAME ?? userInfo().username;
    } catch {
      operator = undefined;
    }
  }
  if (operator !== undefined && !/^[\w.@-]{1,64}$/.test(operator)) {
    throw new UsageError('--operator must be 1-64 letters, digits, dots, dashes, underscores or @');
  }
  return {
    baseUrl,
    token,
    operator,
    timeoutMs: timeout === undefined ? 10_000 : parseDuration('timeout', timeout),
  };
}

/**
 * Runs `pixelfleet admin <argv…>` (a leading `admin` is accepted too) and returns the exit
 * code: 0 done, 1 refused by the server or unreachable, 2 usage or configuration error.
 */
export async function runAdminCommand(
  argv: string[],
  env: NodeJS.ProcessEnv,
  io: AdminCommandIo = processIo,
): Promise<number> {
  const args = argv[0] === 'admin' ? argv.slice(1) : [...argv];
  const [group, maybeAction] = args;
  if (group === undefined || group === 'help' || group === '--help' || group === '-h') {
    io.stdout(overview());
    return group === undefined ? 2 : 0;
  }
  const actions = commands[group];
  if (actions === undefined) {
    io.stderr(`pixelfleet admin: unknown command '${group}'\n\n${overview()}`);
    return 2;
  }
  const groupless = '' in actions;
  const action = groupless ? '' : maybeAction;
  if (!groupless && (action === undefined || action === '--help' || action === '-h')) {
    io.stdout(groupHelp(group));
    return action === undefined ? 2 : 0;
  }
  const spec = actions[action!];
  if (spec === undefined) {
    io.stderr(`pixelfleet admin: unknown command '${group} ${action}'\n\n${groupHelp(group)}`);
    return 2;
  }
  const rest = args.slice(groupless ? 1 : 2);
  const name = commandName(group, action!);
  try {
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...connectionOptions, ...spec.options },
        allowPositionals: true,
        strict: true,
      });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const values = parsed.values as CommandCall['values'];
    if (values.help === true) {
      io.stdout(commandHelp(spec));
      return 0;
    }
    if (parsed.positionals.length !== spec.positionals.length) {
      const expected = spec.positionals.map((positional) => `<${positional}>`).join(' ') || 'no arguments';
      throw new UsageError(`${name} takes ${expected}, got ${parsed.positionals.length} argument(s)`);
    }
    const connection = resolveConnection(values, env);
    const client = new AdminClient(
      connection.baseUrl,
      connection.token,
      connection.operator,
      connection.timeoutMs,
    );
    await spec.run({
      values,
      positionals: parsed.positionals,
      client,
      json: values.json === true,
      out: io.stdout,
    });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(
        `pixelfleet admin ${name}: ${error.message}\nRun 'pixelfleet admin ${name} --help' for usage.`,
      );
      return 2;
    }
    if (isPixelfleetError(error, 'PF_ERR_CONFIG')) {
      io.stderr(`pixelfleet admin ${name}: ${error.message}`);
      return 2;
    }
    if (error instanceof AdminRequestError) {
      io.stderr(`pixelfleet admin ${name}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}
