/**
 * The admin token: the one bearer secret of the admin API. Taken from `PIXELFLEET_ADMIN_TOKEN`
 * when set, otherwise generated on first start into `<dataDir>/admin-token` with mode 0600 (only
 * the service's user can read it; the admin CLI on the same machine reads it from there).
 * Comparison is constant-time over SHA-256 digests, so neither the content nor the length of
 * the expected token leaks through timing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PixelfleetError } from '../errors/index.ts';

export const adminTokenEnv = 'PIXELFLEET_ADMIN_TOKEN';
export const adminTokenFile = 'admin-token';
const minimumLength = 16;

export interface AdminToken {
  token: string;
  /** Where it came from: the environment, an existing file, or generated just now. */
  source: 'env' | 'file' | 'generated';
  /** The file path (also when the token came from the environment: where it would live). */
  path: string;
}

function fromEnvironment(env: NodeJS.ProcessEnv): string | undefined {
  const value = env[adminTokenEnv]?.trim();
  if (value === undefined || value === '') return undefined;
  if (value.length < minimumLength) {
    throw new PixelfleetError(
      'PF_ERR_CONFIG',
      `${adminTokenEnv} must be at least ${minimumLength} characters`,
      {
        extensions: { key: adminTokenEnv },
      },
    );
  }
  return value;
}

function readTokenFile(path: string): string | undefined {
  try {
    const token = readFileSync(path, 'utf8').trim();
    return token === '' ? undefined : token;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PixelfleetError(
      'PF_ERR_CONFIG',
      `cannot read the admin token ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** For the server: the token to require, generating and saving one on first start. */
export function ensureAdminToken(dataDir: string, env: NodeJS.ProcessEnv = process.env): AdminToken {
  const path = join(dataDir, adminTokenFile);
  const configured = fromEnvironment(env);
  if (configured !== undefined) return { token: configured, source: 'env', path };
  const existing = readTokenFile(path);
  if (existing !== undefined) return { token: existing, source: 'file', path };
  mkdirSync(dataDir, { recursive: true });
  const token = randomBytes(32).toString('base64url');
  try {
    // `wx`: if another process created it first, keep theirs rather than overwrite it.
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new PixelfleetError(
        'PF_ERR_CONFIG',
        `cannot write the admin token ${path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    return { token: readTokenFile(path)!, source: 'file', path };
  }
  return { token, source: 'generated', path };
}

/** For the CLI: the token the server uses, or a clear error saying where it looked. */
export function readAdminToken(dataDir: string, env: NodeJS.ProcessEnv = process.env): AdminToken {
  const path = join(dataDir, adminTokenFile);
  const configured = fromEnvironment(env);
  if (configured !== undefined) return { token: configured, source: 'env', path };
  const existing = readTokenFile(path);
  if (existing !== undefined) return { token: existing, source: 'file', path };
  throw new PixelfleetError(
    'PF_ERR_CONFIG',
    `no admin token: ${adminTokenEnv} is not set and ${path} does not exist (is --data-dir the one \`pixelfleet start\` uses?)`,
    { extensions: { key: adminTokenEnv } },
  );
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export function adminTokenMatches(presented: string, expected: string): boolean {
  return tokenMatcher(expected)(presented);
}

/** `adminTokenMatches` against one expected token, its digest computed once (hot paths). */
export function tokenMatcher(expected: string): (presented: string) => boolean {
  const wanted = digest(expected);
  return (presented) => timingSafeEqual(digest(presented), wanted);
}
