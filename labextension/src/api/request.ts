// The one request helper every feature's API calls go through: the service's address, the
// Jupyter server's connection settings, errors read as ApiError, and NDJSON streams.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { FieldError, LogEnd, Schemas } from './types';

/** An error from the service, with its message and, for a bad spec, each field's problem. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errors: FieldError[] = []
  ) {
    super(message);
  }
}

export function errorMessage(error: unknown): string {
  return (error as Error).message;
}

export const settings = ServerConnection.makeSettings();

export function url(...parts: string[]): string {
  return URLExt.join(settings.baseUrl, 'jupyter-jobs', ...parts.map(encodeURIComponent));
}

export async function send(path: string[], init: RequestInit = {}, query = ''): Promise<Response> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url(...path) + query, init, settings);
  } catch (error) {
    throw new ApiError(`cannot reach the Jupyter server: ${error}`, 0);
  }
  if (!response.ok) {
    let body: Partial<Schemas['Error']> = {};
    try {
      body = await response.json();
    } catch {
      // not JSON: keep the HTTP reason
    }
    throw new ApiError(body.message || response.statusText || `HTTP ${response.status}`, response.status, body.errors);
  }
  return response;
}

export async function json<T>(path: string[], init: RequestInit = {}, query = ''): Promise<T> {
  const response = await send(path, init, query);
  return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
}

/** Reads NDJSON lines off a stream, calling `onItem` for each parsed line. */
async function readLines<T>(body: ReadableStream<Uint8Array>, onItem: (item: T) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      return;
    }
    pending += decoder.decode(value, { stream: true });
    let start = 0;
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      onItem(JSON.parse(pending.slice(start, newline)));
      start = newline + 1;
      newline = pending.indexOf('\n', start);
    }
    pending = pending.slice(start);
  }
}

/** An NDJSON stream of items ending with a LogEnd (the job's final status); null when it
 * closed before that. */
export async function followStream<T extends object>(
  path: string[],
  query: string,
  isItem: (item: T | LogEnd) => boolean,
  onItem: (item: T) => void,
  signal: AbortSignal
): Promise<LogEnd | null> {
  const response = await send(path, { signal }, query);
  let end: LogEnd | null = null;
  await readLines<T | LogEnd>(response.body!, item => {
    if (isItem(item)) {
      onItem(item as T);
    } else {
      end = item as LogEnd;
    }
  });
  return end;
}
