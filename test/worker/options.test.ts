import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ErrorCode, isPixelfleetError } from '../../src/errors/index.ts';
import {
  acceptsMediaType,
  parseColour,
  parseResizeOptions,
  type ResizeQuery,
  resizeOptionDocs,
} from '../../src/worker/index.ts';

const context = { limits: { maxOutputDimension: 4000 } };

function parse(query: ResizeQuery, accept?: string) {
  return parseResizeOptions(query, accept === undefined ? context : { ...context, accept });
}

function rejects(query: ResizeQuery, code: ErrorCode, extra?: Record<string, unknown>) {
  assert.throws(
    () => parse(query),
    (error: unknown) => {
      assert.ok(isPixelfleetError(error, code), `expected ${code}, got ${String(error)}`);
      for (const [key, value] of Object.entries(extra ?? {})) assert.deepEqual(error.extensions[key], value);
      return true;
    },
  );
}

describe('worker options', () => {
  test('worker options - defaults when only width is given', () => {
    assert.deepEqual(parse({ width: '320' }), {
      width: 320,
      fit: 'cover',
      position: 'center',
      variesOnAccept: false,
      sharpen: false,
      dpr: 1,
      enlarge: false,
      strip: true,
      autoOrient: true,
      progressive: false,
      lossless: false,
      animated: false,
    });
  });

  test('worker options - a request with no width, height or format is a plain re-encode', () => {
    const options = parse({});
    assert.equal(options.width, undefined);
    assert.equal(options.height, undefined);
    assert.equal(options.format, undefined);
  });

  test('worker options - every option parses to its normalised value', () => {
    const options = parse({
      width: '100',
      height: '50',
      fit: 'Contain',
      position: 'northeast',
      format: 'jpg',
      quality: '70',
      background: '#0f08',
      blur: '2.5',
      sharpen: '1.5',
      dpr: '2',
      enlarge: '1',
      strip: 'false',
      autoOrient: '0',
      progressive: 'TRUE',
    });
    assert.equal(options.width, 200);
    assert.equal(options.height, 100);
    assert.equal(options.fit, 'contain');
    assert.equal(options.position, 'top-right');
    assert.equal(options.format, 'jpeg');
    assert.equal(options.quality, 70);
    assert.deepEqual(options.background, { r: 0, g: 255, b: 0, alpha: 0.533 });
    assert.equal(options.blur, 2.5);
    assert.equal(options.sharpen, 1.5);
    assert.equal(options.dpr, 2);
    assert.equal(options.enlarge, true);
    assert.equal(options.strip, false);
    assert.equal(options.autoOrient, false);
    assert.equal(options.progressive, true);
    const animated = parse({ width: '10', format: 'webp', lossless: 'true', animated: 'true' });
    assert.equal(animated.lossless, true);
    assert.equal(animated.animated, true);
  });

  test('worker options - sharpen accepts booleans and sigmas', () => {
    assert.equal(parse({ sharpen: 'true' }).sharpen, true);
    assert.equal(parse({ sharpen: '1' }).sharpen, true);
    assert.equal(parse({ sharpen: '0' }).sharpen, false);
    assert.equal(parse({ sharpen: '1.0' }).sharpen, 1);
    rejects({ sharpen: '11' }, 'PF_ERR_INVALID_OPTION', { option: 'sharpen' });
  });

  test('worker options - dpr multiplies and rounds both dimensions', () => {
    const options = parse({ width: '101', height: '33', dpr: '1.5' });
    assert.equal(options.width, 152);
    assert.equal(options.height, 50);
  });

  test('worker options - format=auto prefers webp, then avif, then jpeg, and varies on Accept', () => {
    const webp = parse({ format: 'auto' }, 'image/avif,image/webp,image/apng,*/*;q=0.8');
    assert.equal(webp.format, 'webp');
    assert.equal(webp.variesOnAccept, true);
    assert.equal(parse({ format: 'auto' }, 'image/avif,*/*').format, 'avif');
    assert.equal(parse({ format: 'auto' }, 'image/webp;q=0, image/avif').format, 'avif');
    assert.equal(parse({ format: 'auto' }, '*/*').format, 'jpeg');
    assert.equal(parse({ format: 'auto' }).format, 'jpeg');
    assert.equal(parse({ format: 'auto', animated: 'true' }, 'image/avif').format, 'gif');
    assert.equal(parse({ format: 'auto', lossless: 'true' }, 'image/avif').format, 'avif');
    assert.equal(parse({ format: 'webp' }).variesOnAccept, false);
  });

  test('worker options - lossless with format=auto and no modern format accepted is not acceptable', () => {
    assert.throws(
      () => parse({ format: 'auto', lossless: 'true' }, 'image/jpeg'),
      (error: unknown) => isPixelfleetError(error, 'PF_ERR_NOT_ACCEPTABLE'),
    );
  });

  test('worker options - unknown parameters are rejected, ignored ones skipped', () => {
    rejects({ width: '10', widht: '20' }, 'PF_ERR_UNKNOWN_OPTION', { option: 'widht' });
    rejects({ Width: '10' }, 'PF_ERR_UNKNOWN_OPTION', { option: 'Width' });
    rejects(JSON.parse('{"__proto__": "1"}'), 'PF_ERR_UNKNOWN_OPTION', { option: '__proto__' });
    rejects({ constructor: '1' }, 'PF_ERR_UNKNOWN_OPTION', { option: 'constructor' });
    const options = parseResizeOptions(
      { width: '10', async: 'true' },
      { ...context, ignoredParameters: ['async'] },
    );
    assert.equal(options.width, 10);
    assert.equal(parse({ width: '10', height: undefined }).height, undefined);
  });

  test('worker options - malformed values name the option and what is allowed', () => {
    const cases: Array<[ResizeQuery, string]> = [
      [{ width: 'abc' }, 'width'],
      [{ width: '0' }, 'width'],
      [{ width: '-5' }, 'width'],
      [{ width: '10.5' }, 'width'],
      [{ height: '1e3' }, 'height'],
      [{ fit: 'stretch' }, 'fit'],
      [{ position: 'middle' }, 'position'],
      [{ format: 'bmp' }, 'format'],
      [{ quality: '0' }, 'quality'],
      [{ quality: '101' }, 'quality'],
      [{ quality: 'high' }, 'quality'],
      [{ background: '#12345' }, 'background'],
      [{ background: '#12' }, 'background'],
      [{ background: 'chartreuse' }, 'background'],
      [{ blur: '0.2' }, 'blur'],
      [{ blur: '1001' }, 'blur'],
      [{ width: '10', dpr: '0.5' }, 'dpr'],
      [{ width: '10', dpr: '6' }, 'dpr'],
      [{ enlarge: 'yes' }, 'enlarge'],
      [{ strip: '' }, 'strip'],
      [{ autoOrient: '2' }, 'autoOrient'],
      [{ progressive: 'on' }, 'progressive'],
      [{ lossless: 'maybe' }, 'lossless'],
      [{ animated: 'y' }, 'animated'],
      [{ position: 'constructor' }, 'position'],
      [{ format: 'toString' }, 'format'],
      [{ background: '__proto__' }, 'background'],
      [{ fit: 'hasOwnProperty' }, 'fit'],
    ];
    for (const [query, option] of cases) {
      assert.throws(
        () => parse(query),
        (error: unknown) => {
          assert.ok(
            isPixelfleetError(error, 'PF_ERR_INVALID_OPTION'),
            `${JSON.stringify(query)}: ${String(error)}`,
          );
          assert.equal(error.extensions.option, option);
          assert.equal(typeof error.extensions.allowed, 'string');
          assert.match(error.message, new RegExp(`^${option} must be `));
          return true;
        },
      );
    }
  });

  test('worker options - repeated parameters are invalid', () => {
    rejects({ width: ['100', '200'] }, 'PF_ERR_INVALID_OPTION', { option: 'width' });
    assert.equal(parse({ width: ['100'] }).width, 100);
  });

  test('worker options - a tier quality cap is enforced', () => {
    const capped = { limits: { maxOutputDimension: 4000, maxQuality: 85 } };
    assert.equal(parseResizeOptions({ quality: '85' }, capped).quality, 85);
    assert.throws(
      () => parseResizeOptions({ quality: '86' }, capped),
      (error: unknown) => isPixelfleetError(error, 'PF_ERR_INVALID_OPTION') && /1 to 85/.test(error.message),
    );
  });

  test('worker options - contradictions are conflicts', () => {
    const conflicts: ResizeQuery[] = [
      { width: '10', height: '10', fit: 'fill', position: 'top' },
      { width: '10', height: '10', fit: 'inside', position: 'center' },
      { width: '10', height: '10', fit: 'contain', position: 'attention' },
      { lossless: 'true', format: 'jpeg' },
      { lossless: 'true' },
      { lossless: 'true', format: 'webp', quality: '80' },
      { quality: '80', format: 'png' },
      { quality: '80', format: 'gif' },
      { progressive: 'true', format: 'webp' },
      { progressive: 'true', format: 'avif' },
      { animated: 'true', format: 'jpeg' },
      { animated: 'true', format: 'png' },
      { animated: 'true', format: 'avif' },
      { animated: 'true', format: 'gif', position: 'entropy' },
      { dpr: '2' },
    ];
    for (const query of conflicts) {
      assert.throws(
        () => parse(query),
        (error: unknown) => {
          assert.ok(
            isPixelfleetError(error, 'PF_ERR_CONFLICTING_OPTIONS'),
            `${JSON.stringify(query)}: ${String(error)}`,
          );
          assert.ok(Array.isArray(error.extensions.options));
          return true;
        },
      );
    }
    // Gravity with contain places the image in its padding: not a conflict.
    assert.equal(parse({ width: '10', height: '10', fit: 'contain', position: 'left' }).position, 'left');
  });

  test('worker options - dimensions past the cap (after dpr) are too large', () => {
    rejects({ width: '4001' }, 'PF_ERR_OUTPUT_TOO_LARGE', { option: 'width', limit: 4000 });
    rejects({ height: '2001', dpr: '2' }, 'PF_ERR_OUTPUT_TOO_LARGE', { option: 'height' });
    rejects({ width: '99999999999999999999' }, 'PF_ERR_OUTPUT_TOO_LARGE');
    assert.equal(parse({ width: '2000', dpr: '2' }).width, 4000);
  });

  test('worker options - the docs list exactly the accepted parameters', () => {
    const names = resizeOptionDocs.map((doc) => doc.name);
    assert.deepEqual(new Set(names).size, names.length);
    const samples: Record<string, string> = {
      background: 'white',
      fit: 'cover',
      position: 'top',
      format: 'webp',
    };
    for (const name of names) {
      const query: ResizeQuery = { [name]: samples[name] ?? '1' };
      if (name === 'dpr') query.width = '10';
      if (name === 'lossless') query.format = 'webp';
      assert.doesNotThrow(() => parse(query), name);
    }
    for (const doc of resizeOptionDocs) {
      assert.ok(doc.description.length > 20 && doc.allowed.length > 0 && doc.default.length > 0, doc.name);
    }
  });

  test('worker options - colours and Accept matching', () => {
    assert.deepEqual(parseColour('#fff'), { r: 255, g: 255, b: 255, alpha: 1 });
    assert.deepEqual(parseColour('336699'), { r: 0x33, g: 0x66, b: 0x99, alpha: 1 });
    assert.deepEqual(parseColour('#00000000'), { r: 0, g: 0, b: 0, alpha: 0 });
    assert.deepEqual(parseColour('Transparent'), { r: 0, g: 0, b: 0, alpha: 0 });
    assert.equal(parseColour('#ggg'), undefined);
    assert.equal(acceptsMediaType('image/webp;q=0.5', 'image/webp'), true);
    assert.equal(acceptsMediaType('image/webp;q=0', 'image/webp'), false);
    assert.equal(acceptsMediaType('image/*', 'image/webp'), false);
    assert.equal(acceptsMediaType(undefined, 'image/webp'), false);
  });
});
