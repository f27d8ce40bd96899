import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { describeSettings, loadConfig } from '../../src/config/index.ts';
import { isPixelfleetError } from '../../src/errors/index.ts';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(isPixelfleetError(error, 'PF_ERR_CONFIG'));
    return error.message;
  }
  assert.fail('expected a configuration error');
}

describe('config - one schema from flags, env and file', () => {
  test('config - defaults apply when nothing is given', () => {
    const config = loadConfig({ argv: [], env: {} });
    assert.equal(config.httpPort, 8080);
    assert.equal(config.maxBodyBytes, 1024 * 1024);
    assert.deepEqual(config.inputFormats, ['jpeg', 'png', 'webp', 'gif', 'avif']);
    assert.ok(config.workers >= 1);
  });

  test('config - flags beat env which beats the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pixelfleet-config-'));
    try {
      const file = join(dir, 'pixelfleet.json');
      writeFileSync(file, JSON.stringify({ httpPort: 9001, workers: 3, jobTimeout: '2s' }));
      const config = loadConfig({
        argv: ['--http-port', '0', '--config', file],
        env: { PIXELFLEET_HTTP_PORT: '9002', PIXELFLEET_WORKERS: '5', PIXELFLEET_MAX_BODY_BYTES: '2MiB' },
      });
      assert.equal(config.httpPort, 0);
      assert.equal(config.workers, 5);
      assert.equal(config.jobTimeout, 2000);
      assert.equal(config.maxBodyBytes, 2 * 1024 * 1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('config - errors name the bad key as the operator wrote it', () => {
    assert.match(
      configError(() => loadConfig({ argv: ['--http-port', 'abc'], env: {} })),
      /--http-port: expected an integer/,
    );
    assert.match(
      configError(() => loadConfig({ env: { PIXELFLEET_WORKERS: '0' } })),
      /PIXELFLEET_WORKERS: must be at least 1/,
    );
    assert.match(
      configError(() => loadConfig({ env: { PIXELFLEET_HTTP_PROT: '1' } })),
      /PIXELFLEET_HTTP_PROT: unknown environment variable/,
    );
    assert.match(
      configError(() => loadConfig({ argv: ['--wokers', '2'], env: {} })),
      /--wokers: unknown flag/,
    );
    assert.match(
      configError(() => loadConfig({ argv: ['--job-timeout', 'soon'], env: {} })),
      /--job-timeout: expected a duration/,
    );
    assert.match(
      configError(() => loadConfig({ argv: ['--input-formats', 'jpeg,bmp'], env: {} })),
      /"bmp" is not one of/,
    );
  });

  test('config - the reference table lists every setting', () => {
    const table = describeSettings();
    for (const needle of ['--http-port', 'PIXELFLEET_HTTP_PORT', '--data-dir', 'PIXELFLEET_WORKERS'])
      assert.ok(table.includes(needle));
  });
});
