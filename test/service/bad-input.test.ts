import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { corpusFile, resize, startInProcess } from './harness.ts';
import { pngBomb } from './images.ts';

type Service = Awaited<ReturnType<typeof startInProcess>>;

describe('api - bad input gets a clear problem+json and harms no one else', () => {
  let service: Service;
  const good = corpusFile('jpeg/skimage-rocket.jpg');
  const large = corpusFile('jpeg/mate-TwoWings.jpg'); // 881 KB

  before(async () => {
    service = await startInProcess(['--workers', '1', '--max-body-bytes', '512KiB']);
  });
  after(async () => {
    await service.close();
  });

  async function expectProblem(
    response: Response,
    status: number,
    code: string,
  ): Promise<Record<string, unknown>> {
    const text = await response.text();
    assert.equal(response.status, status, text);
    assert.equal(response.headers.get('content-type'), 'application/problem+json');
    const problem = JSON.parse(text) as Record<string, unknown>;
    assert.equal(problem.code, code);
    assert.equal(problem.status, status);
    assert.equal(typeof problem.title, 'string');
    assert.equal(typeof problem.detail, 'string');
    assert.match(String(problem.type), new RegExp(code));
    // The next good request still succeeds.
    const next = await resize(service, good, 'width=64');
    assert.equal(next.status, 200);
    await next.arrayBuffer();
    return problem;
  }

  const cases: {
    name: string;
    send: () => Promise<Response>;
    status: number;
    code: string;
    option?: string;
  }[] = [
    {
      name: 'a body over the cap',
      send: () => resize(service, large, 'width=64'),
      status: 413,
      code: 'PF_ERR_BODY_TOO_LARGE',
    },
    {
      name: 'text that is no image',
      send: () => resize(service, Buffer.from('hello, I am not an image at all'), 'width=64'),
      status: 415,
      code: 'PF_ERR_UNSUPPORTED_FORMAT',
    },
    {
      name: 'SVG (off by default)',
      send: () =>
        resize(
          service,
          Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'),
          'width=64',
        ),
      status: 415,
      code: 'PF_ERR_UNSUPPORTED_FORMAT',
    },
    {
      name: 'a decompression bomb',
      send: () => resize(service, pngBomb(), 'width=64'),
      status: 422,
      code: 'PF_ERR_TOO_MANY_PIXELS',
    },
    {
      name: 'a truncated JPEG',
      send: () => resize(service, good.subarray(0, Math.floor(good.length / 2)), 'width=64'),
      status: 422,
      code: 'PF_ERR_CORRUPT_IMAGE',
    },
    {
      name: 'an unknown option',
      send: () => resize(service, good, 'width=64&colour=blue'),
      status: 400,
      code: 'PF_ERR_UNKNOWN_OPTION',
      option: 'colour',
    },
    {
      name: 'a malformed option',
      send: () => resize(service, good, 'width=abc'),
      status: 400,
      code: 'PF_ERR_INVALID_OPTION',
      option: 'width',
    },
    {
      name: 'contradictory options',
      send: () => resize(service, good, 'width=64&format=jpeg&lossless=true'),
      status: 400,
      code: 'PF_ERR_CONFLICTING_OPTIONS',
    },
    {
      name: 'an output above the dimension cap',
      send: () => resize(service, good, 'width=100000'),
      status: 400,
      code: 'PF_ERR_OUTPUT_TOO_LARGE',
    },
    {
      name: 'an empty body',
      send: () => resize(service, new Uint8Array(0), 'width=64'),
      status: 400,
      code: 'PF_ERR_EMPTY_BODY',
    },
    {
      name: 'an unknown route',
      send: () => fetch(`${service.url}/v1/nothing`, { headers: service.auth }),
      status: 404,
      code: 'PF_ERR_NOT_FOUND',
    },
    {
      name: 'an unknown job',
      send: () =>
        fetch(`${service.url}/v1/jobs/0b7a1e0c-0000-4000-8000-000000000000`, { headers: service.auth }),
      status: 404,
      code: 'PF_ERR_JOB_NOT_FOUND',
    },
  ];

  for (const { name, send, status, code, option } of cases) {
    test(`api - ${name} → ${status} ${code}`, async () => {
      const problem = await expectProblem(await send(), status, code);
      if (option !== undefined) assert.equal(problem.option, option, 'the problem names the option');
    });
  }

  test('api - rejections are counted by code in /metrics', async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(text, /pixelfleet_requests_rejected_total\{code="PF_ERR_UNSUPPORTED_FORMAT"\} [1-9]/);
  });
});
