/**
 * The internal listener's hot routes on bare node:http, in front of its fastify instance.
 *
 * A conversion in the cluster crosses the origin api server's internal listener twice (the
 * worker fetches the input, then posts the result), so those two routes run once per
 * conversion, while everything else on the listener (health, metrics, usage queries, the
 * identity feed) runs a few times a second. Under fastify, its routing, hook chain, content-type
 * parsing and reply pipeline were about a fifth of an api server's main thread at saturation
 * (`perf` of a loaded local cluster); a route here is a regular expression, a bearer check and
 * a write. Fastify stays for the rest: only a path that matches a route here is taken from it.
 *
 * Guarantees, the same as fastify gave these routes: the cluster secret is checked before a body
 * is read; a body larger than `bodyLimit` is refused with 413 and the connection closed; every
 * error is RFC 9457 problem+json with a Pixelfleet code; a handler that throws answers 500
 * `PF_ERR_INTERNAL` and reports the error to `onError`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isPixelfleetError, PixelfleetError, toProblem } from '../../errors/index.ts';

export type RawMethod = 'GET' | 'POST';

export interface RawRequest {
  /** Path parameters: the pattern's named groups. */
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** The request body (POST); empty for GET. */
  body: Buffer;
}

export interface RawAnswer {
  status?: number;
  contentType: string;
  body: Buffer | string;
}

export type RawHandler = (request: RawRequest) => Promise<RawAnswer> | RawAnswer;

interface RawRoute {
  method: RawMethod;
  pattern: RegExp;
  guard: (headers: IncomingMessage['headers']) => void;
  handler: RawHandler;
}

export interface RawRoutesOptions {
  /** Largest request body accepted, in bytes. */
  bodyLimit: number;
  /** A handler failed with something that is not a PixelfleetError (answered 500). */
  onError?: (error: unknown) => void;
}

export class RawRoutes {
  readonly #routes: RawRoute[] = [];
  readonly #options: RawRoutesOptions;

  constructor(options: RawRoutesOptions) {
    this.#options = options;
  }

  /**
   * Adds a route. `pattern` matches the path (without the query) and names its parameters as
   * groups; `guard` throws a PixelfleetError to refuse a request before its body is read.
   */
  add(method: RawMethod, pattern: RegExp, guard: RawRoute['guard'], handler: RawHandler): void {
    this.#routes.push({ method, pattern, guard, handler });
  }

  /** Serves the request when a route matches it (true); false leaves it to the next handler. */
  serve(request: IncomingMessage, response: ServerResponse): boolean {
    const url = request.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    for (const route of this.#routes) {
      if (route.method !== request.method) continue;
      const match = route.pattern.exec(path);
      if (match === null) continue;
      const query = new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1));
      this.#run(route, { ...match.groups }, query, request, response).catch((error: unknown) =>
        this.#fail(response, path, error),
      );
      return true;
    }
    return false;
  }

  async #run(
    route: RawRoute,
    params: Record<string, string>,
    query: URLSearchParams,
    request: IncomingMessage,
    response: ServerResponse,
  ): Promise<void> {
    route.guard(request.headers);
    const body = request.method === 'GET' ? Buffer.alloc(0) : await this.#readBody(request);
    const answer = await route.handler({ params, query, headers: request.headers, body });
    const bytes = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body;
    if (response.destroyed) return;
    response.writeHead(answer.status ?? 200, {
      'content-type': answer.contentType,
      'content-length': bytes.length,
    });
    response.end(bytes);
  }

  #readBody(request: IncomingMessage): Promise<Buffer> {
    const limit = this.#options.bodyLimit;
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge(limit));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      request.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          request.removeAllListeners('data');
          request.pause();
          reject(tooLarge(limit));
          return;
        }
        chunks.push(chunk);
      });
      request.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
      request.once('error', reject);
    });
  }

  #fail(response: ServerResponse, path: string, error: unknown): void {
    const known = isPixelfleetError(error);
    if (!known) this.#options.onError?.(error);
    const problem = known
      ? error
      : new PixelfleetError('PF_ERR_INTERNAL', 'an internal error occurred; it was logged', { cause: error });
    if (response.headersSent || response.destroyed) {
      response.destroy();
      return;
    }
    const body = Buffer.from(JSON.stringify(toProblem(problem, path)));
    const headers: Record<string, string | number> = {
      'content-type': 'application/problem+json',
      'content-length': body.length,
    };
    // A refused body was not read: end the connection rather than drain it.
    if (problem.code === 'PF_ERR_BODY_TOO_LARGE') headers.connection = 'close';
    response.writeHead(problem.status, headers);
    response.end(body);
  }
}

function tooLarge(limit: number): PixelfleetError {
  return new PixelfleetError('PF_ERR_BODY_TOO_LARGE', `the request body is larger than ${limit} bytes`);
}
