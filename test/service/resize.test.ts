import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { corpusFile, corpusJpegs, resize, startInProcess } from './harness.ts';
import { animatedGif, rotatedJpeg, transparentPng } from './images.ts';

type Service = Awaited<ReturnType<typeof startInProcess>>;

describe('api - POST /v1/resize', () => {
  let service: Service;
  const storm = corpusFile('jpeg/mate-Storm-q85.jpg'); // 1920×1280, EXIF kept
  const astronaut = corpusFile('jpeg/skimage-astronaut-q90.jpg'); // 512×512

  before(async () => {
    service = await startInProcess(['--workers', '2']);
  });
  after(async () => {
    await service.close();
  });

  async function convert(image: Uint8Array, query: string, headers: Record<string, string> = {}) {
    const response = await resize(service, image, query, headers);
    const body = Buffer.from(await response.arrayBuffer());
    assert.equal(response.status, 200, `${query}: ${body.toString().slice(0, 300)}`);
    return { response, body, meta: await sharp(body, { animated: true }).metadata() };
  }

  test('api - every corpus JPEG converts to 320 px wide JPEG with the documented headers', async () => {
    for (const path of corpusJpegs()) {
      const { response, meta } = await convert(
        corpusFile(`jpeg/${path.split('/').pop()}`),
        'width=320&format=jpeg&quality=80',
      );
      assert.equal(meta.format, 'jpeg');
      assert.equal(meta.width, 320);
      assert.equal(response.headers.get('content-type'), 'image/jpeg');
      assert.match(response.headers.get('etag') ?? '', /^"[A-Za-z0-9_-]+"$/);
      assert.match(response.headers.get('cache-control') ?? '', /max-age/);
      assert.match(
        response.headers.get('server-timing') ?? '',
        /queue;dur=[\d.]+, convert;dur=[\d.]+, cpu;dur=[\d.]+/,
      );
      assert.ok(Number(response.headers.get('x-pixelfleet-cpu-micros')) > 0, 'CPU time reported');
      assert.match(response.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    }
  });

  test('api - fit modes give the box each one promises', async () => {
    const cases: [string, (w: number, h: number) => boolean][] = [
      ['cover', (w, h) => w === 300 && h === 300],
      ['contain', (w, h) => w === 300 && h === 300],
      ['fill', (w, h) => w === 300 && h === 300],
      ['inside', (w, h) => w === 300 && h === 200],
      ['outside', (w, h) => w === 450 && h === 300],
    ];
    for (const [fit, check] of cases) {
      const { meta } = await convert(storm, `width=300&height=300&fit=${fit}`);
      assert.ok(check(meta.width!, meta.height!), `${fit}: got ${meta.width}×${meta.height}`);
    }
  });

  test('api - position and smart crop are accepted with cover', async () => {
    for (const position of ['top', 'bottom-left', 'attention', 'entropy']) {
      const { meta } = await convert(storm, `width=200&height=200&fit=cover&position=${position}`);
      assert.equal(meta.width, 200);
      assert.equal(meta.height, 200);
    }
  });

  test('api - output formats are the ones asked for', async () => {
    for (const format of ['jpeg', 'png', 'webp', 'avif', 'gif'] as const) {
      const { meta, response } = await convert(astronaut, `width=128&format=${format}`);
      assert.equal(meta.format === 'heif' ? 'avif' : meta.format, format);
      assert.equal(response.headers.get('content-type'), `image/${format}`);
    }
  });

  test('api - format=auto negotiates from Accept and varies on it', async () => {
    const webp = await convert(astronaut, 'width=100&format=auto', { accept: 'image/webp,image/*' });
    assert.equal(webp.meta.format, 'webp');
    assert.equal(webp.response.headers.get('vary'), 'Accept');
    const jpeg = await convert(astronaut, 'width=100&format=auto', { accept: 'image/jpeg' });
    assert.equal(jpeg.meta.format, 'jpeg');
    assert.equal(jpeg.response.headers.get('vary'), 'Accept');
  });

  test('api - quality, blur, sharpen, progressive and lossless change the output', async () => {
    const low = await convert(storm, 'width=400&quality=20');
    const high = await convert(storm, 'width=400&quality=95');
    assert.ok(low.body.length < high.body.length, 'lower quality, fewer bytes');
    const blurred = await convert(storm, 'width=400&quality=95&blur=8');
    assert.ok(blurred.body.length < high.body.length, 'a blurred image compresses better');
    const sharpened = await convert(storm, 'width=400&quality=95&sharpen=true');
    assert.notEqual(sharpened.response.headers.get('etag'), high.response.headers.get('etag'));
    const progressive = await convert(storm, 'width=400&progressive=true');
    assert.equal(progressive.meta.isProgressive, true);
    const lossless = await convert(astronaut, 'width=64&format=webp&lossless=true');
    assert.equal(lossless.meta.format, 'webp');
  });

  test('api - dpr multiplies and enlarge governs upscaling', async () => {
    assert.equal((await convert(storm, 'width=200&dpr=2')).meta.width, 400);
    assert.equal((await convert(astronaut, 'width=1000')).meta.width, 512, 'no upscaling by default');
    assert.equal((await convert(astronaut, 'width=1000&enlarge=true')).meta.width, 1000);
  });

  test('api - background pads contain and flattens transparency', async () => {
    const { body } = await convert(
      await transparentPng(),
      'width=80&height=80&fit=contain&background=%23ff0000&format=jpeg',
    );
    const { data } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
    assert.ok(data[0]! > 200 && data[1]! < 60 && data[2]! < 60, `corner is red: ${[...data.subarray(0, 3)]}`);
  });

  test('api - strip removes metadata unless strip=false', async () => {
    assert.equal((await convert(storm, 'width=200')).meta.exif, undefined);
    assert.ok((await convert(storm, 'width=200&strip=false')).meta.exif, 'EXIF kept on request');
  });

  test('api - autoOrient applies EXIF orientation unless autoOrient=false', async () => {
    const rotated = await rotatedJpeg();
    const oriented = await convert(rotated, 'format=png');
    assert.deepEqual([oriented.meta.width, oriented.meta.height], [100, 200]);
    const raw = await convert(rotated, 'format=png&autoOrient=false');
    assert.deepEqual([raw.meta.width, raw.meta.height], [200, 100]);
  });

  test('api - animated keeps frames, otherwise the first frame only', async () => {
    const gif = await animatedGif(3);
    assert.equal((await convert(gif, 'width=32&format=gif&animated=true')).meta.pages, 3);
    assert.equal((await convert(gif, 'width=32&format=gif')).meta.pages ?? 1, 1);
  });

  test('api - traceparent is continued and health endpoints answer', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const response = await resize(service, astronaut, 'width=50', {
      traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
    });
    assert.equal(response.status, 200);
    assert.ok(response.headers.get('traceparent')?.includes(traceId));
    assert.equal((await fetch(`${service.url}/healthz`)).status, 200);
    const ready = await fetch(`${service.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { status: string }).status, 'ready');
  });

  test('api - /metrics exposes latency histogram with a 0.5 s bucket, queue and worker figures', async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text();
    for (const needle of [
      'pixelfleet_http_request_duration_seconds_bucket{le="0.5"',
      'pixelfleet_queue_depth',
      'pixelfleet_queue_wait_seconds_bucket',
      'pixelfleet_conversion_duration_seconds_bucket',
      'pixelfleet_conversion_cpu_seconds_total',
      'pixelfleet_worker_utilization_ratio',
      'pixelfleet_requests_shed_total',
    ]) {
      assert.ok(text.includes(needle), `metrics include ${needle}`);
    }
  });
});
