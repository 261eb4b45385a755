// The REST API of the job service (see the README and /jupyter-jobs/openapi.json).
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type Status = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const TERMINAL: Status[] = ['succeeded', 'failed', 'cancelled'];

export interface Resources {
  gpus: number;
  cpus: number | null;
  memory: string | null;
}

export interface Spec {
  command: string | string[];
  workspace: string;
  backend?: string | null;
  image?: string | null;
  name?: string | null;
  project?: string | null;
  env: Record<string, string>;
  resources: Resources;
  timeout?: number | null;
}

export interface Job {
  id: string;
  name: string | null;
  status: Status;
  reason: string | null;
  message: string | null;
  exit_code: number | null;
  backend: string;
  project: string;
  spec: Spec;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  gpus: number[];
  notes: string[];
  events?: { at: string; status: string; message: string | null }[];
}

export interface Backend {
  name: string;
  description: string;
  default: boolean;
  available: boolean;
  reason: string | null;
}

export interface Artifact {
  path: string;
  size: number;
}

export interface LogChunk {
  offset: number;
  next: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface LogEnd {
  status: Status;
  exit_code: number | null;
  reason: string | null;
  message: string | null;
}

export interface FieldError {
  field: string;
  message: string;
}

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

const settings = ServerConnection.makeSettings();

export function url(...parts: string[]): string {
  return URLExt.join(settings.baseUrl, 'jupyter-jobs', ...parts.map(encodeURIComponent));
}

async function send(path: string[], init: RequestInit = {}, query = ''): Promise<Response> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url(...path) + query, init, settings);
  } catch (error) {
    throw new ApiError(`cannot reach the Jupyter server: ${error}`, 0);
  }
  if (!response.ok) {
    let body: { message?: string; errors?: FieldError[] } = {};
    try {
      body = await response.json();
    } catch {
      // not JSON: keep the HTTP reason
    }
    throw new ApiError(body.message || response.statusText || `HTTP ${response.status}`, response.status, body.errors);
  }
  return response;
}

async function json<T>(path: string[], init: RequestInit = {}, query = ''): Promise<T> {
  const response = await send(path, init, query);
  return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
}

export const api = {
  backends: () => json<{ backends: Backend[] }>(['backends']),
  list: (params: { status?: string; project?: string; cursor?: string | null; limit?: number }) => {
    const query = new URLSearchParams();
    Object.entries(params).forEach(([key, value]) => {
      if (value !== undefined && value !== null && value !== '') {
        query.set(key, String(value));
      }
    });
    return json<{ jobs: Job[]; next_cursor: string | null }>(['jobs'], {}, `?${query}`);
  },
  get: (id: string) => json<Job>(['jobs', id]),
  submit: (spec: Partial<Spec>) => json<Job>(['jobs'], { method: 'POST', body: JSON.stringify(spec) }),
  cancel: (id: string) => json<Job>(['jobs', id, 'cancel'], { method: 'POST', body: '{}' }),
  rerun: (id: string) => json<Job>(['jobs', id, 'rerun'], { method: 'POST', body: '{}' }),
  remove: (id: string) => json<void>(['jobs', id], { method: 'DELETE' }),
  artifacts: (id: string) => json<{ artifacts: Artifact[] }>(['jobs', id, 'artifacts'])
};

/** The job's log as it is written: chunks, then (following) the final status. */
export async function followLogs(
  id: string,
  offset: number,
  onChunk: (chunk: LogChunk) => void,
  signal: AbortSignal
): Promise<LogEnd | null> {
  const response = await send(['jobs', id, 'logs'], { signal }, `?offset=${offset}&follow=true`);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  let end: LogEnd | null = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    pending += decoder.decode(value, { stream: true });
    let newline = pending.indexOf('\n');
    let start = 0;
    while (newline !== -1) {
      const item = JSON.parse(pending.slice(start, newline));
      if ('text' in item) {
        onChunk(item as LogChunk);
      } else {
        end = item as LogEnd;
      }
      start = newline + 1;
      newline = pending.indexOf('\n', start);
    }
    pending = pending.slice(start);
  }
  return end;
}
