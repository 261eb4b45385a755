// A thin client for the REST API of the job service. The types come from the served OpenAPI
// document: schema.d.ts is generated from jupyter_jobs/openapi.json by `jlpm gen:types`.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { components, paths } from './schema';

export type Schemas = components['schemas'];

export type Status = Schemas['JobStatus'];
export type Job = Schemas['Job'];
export type Spec = Schemas['JobSpec'];
export type Resources = Schemas['Resources'];
export type FieldError = Schemas['FieldError'];
/** A spec as a user submits it (the server fills defaults and takes durations such as "30m"). */
export type SpecInput = Schemas['JobSpecInput'];
export type ListQuery = NonNullable<paths['/jupyter-jobs/jobs']['get']['parameters']['query']> & { q?: string };
export type JobPage = Schemas['JobPage'];
export type Artifact = Schemas['Artifact'];
export type LogChunk = Schemas['LogChunk'];
export type LogEnd = Schemas['LogEnd'];
export type Backend = Schemas['BackendInfo'];
export type JobEvent = Schemas['JobEvent'];
export type MetricsPage = Schemas['MetricsPage'];
export type MetricsSummary = Schemas['MetricsSummary'];
export type Schedule = Schemas['Schedule'];
export type ScheduleInput = Schemas['ScheduleInput'];
export type InstanceType = Schemas['InstanceTypeInfo'];
/** One of a job's exposed ports as the server reports it (its state: waiting, ready, gone). */
export type Endpoint = Schemas['Endpoint'];
/** A port a spec exposes: `{port, name, health?}`. */
export type Expose = Schemas['ExposeInput'];

export const STATUSES: Status[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped'];
export const TERMINAL: Status[] = ['succeeded', 'failed', 'cancelled', 'skipped'];

export function isTerminal(status: Status): boolean {
  return TERMINAL.includes(status);
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

export function errorMessage(error: unknown): string {
  return (error as Error).message;
}

const settings = ServerConnection.makeSettings();

export function url(...parts: string[]): string {
  return URLExt.join(settings.baseUrl, 'jupyter-jobs', ...parts.map(encodeURIComponent));
}

/** The download address of one artifact (its path keeps its slashes). */
export function artifactUrl(id: string, path: string): string {
  return url('jobs', id, 'artifacts') + '/' + path.split('/').map(encodeURIComponent).join('/');
}

async function send(path: string[], init: RequestInit = {}, query = ''): Promise<Response> {
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

async function json<T>(path: string[], init: RequestInit = {}, query = ''): Promise<T> {
  const response = await send(path, init, query);
  return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
}

/** Who submits from this browser profile: `browser:<id>`, an id kept in localStorage (one per
 * profile, shared by its tabs). The server records it with each job this panel starts, and
 * the notifications (notify.ts) ask for the jobs it started. */
let origin: string | null = null;
export function browserOrigin(): string {
  if (origin) {
    return origin;
  }
  const key = 'jupyter-jobs:browser-id';
  let id: string | null = null;
  try {
    id = localStorage.getItem(key);
    if (!id || !/^[A-Za-z0-9-]{1,64}$/.test(id)) {
      id = randomId();
      localStorage.setItem(key, id);
    }
  } catch {
    id ??= randomId(); // storage refused: an id for this page only
  }
  return (origin = `browser:${id}`);
}

/** 32 random hex digits (getRandomValues works on plain http too, unlike randomUUID). */
function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, '0')).join('');
}

/** A request that starts a job, marked as coming from this browser. */
function submitting(body: unknown): RequestInit {
  return { method: 'POST', body: JSON.stringify(body), headers: { 'X-Jupyter-Jobs-Origin': browserOrigin() } };
}

function search(params: ListQuery): string {
  const query = new URLSearchParams();
  Object.entries(params).forEach(([key, value]) => {
    if (value !== undefined && value !== null && value !== '') {
      query.set(key, String(value));
    }
  });
  return `?${query}`;
}

export const api = {
  backends: () => json<Schemas['BackendsReply']>(['backends']),
  list: (params: ListQuery) => json<JobPage>(['jobs'], {}, search(params)),
  get: (id: string) => json<Job>(['jobs', id]),
  submit: (spec: SpecInput) => json<Job>(['jobs'], submitting(spec)),
  cancel: (id: string) => json<Job>(['jobs', id, 'cancel'], { method: 'POST', body: '{}' }),
  rerun: (id: string) => json<Job>(['jobs', id, 'rerun'], submitting({})),
  remove: (id: string) => json<void>(['jobs', id], { method: 'DELETE' }),
  artifacts: (id: string) => json<Schemas['ArtifactList']>(['jobs', id, 'artifacts']),
  workflow: (id: string) => json<Schemas['WorkflowRun']>(['workflows', id]),
  workflows: () => json<Schemas['WorkflowPage']>(['workflows'], {}, '?limit=100'),
  workflowAction: (id: string, action: 'cancel' | 'rerun') =>
    json<Schemas['WorkflowRun']>(['workflows', id, action], { method: 'POST', body: '{}' }),
  schedules: () => json<Schemas['SchedulePage']>(['schedules'], {}, '?limit=100'),
  schedule: (id: string) => json<Schedule>(['schedules', id]),
  createSchedule: (input: ScheduleInput) => json<Schedule>(['schedules'], { method: 'POST', body: JSON.stringify(input) }),
  scheduleAction: (id: string, action: 'pause' | 'resume') => json<Schedule>(['schedules', id, action], { method: 'POST', body: '{}' }),
  removeSchedule: (id: string) => json<void>(['schedules', id], { method: 'DELETE' }),
  /** The job's spec as a file to submit again, and the secret values left out of it (`env.KEY`). */
  specFile: async (id: string, format: 'yaml' | 'json' = 'yaml'): Promise<{ text: string; leftOut: string[] }> => {
    const response = await send(['jobs', id, 'spec'], {}, `?format=${format}`);
    const leftOut = response.headers.get('X-Jupyter-Jobs-Left-Out');
    return { text: await response.text(), leftOut: leftOut ? leftOut.split(',').filter(Boolean) : [] };
  },
  /** The first `bytes` of an artifact, for a preview. */
  artifactHead: async (id: string, path: string, bytes: number): Promise<Blob> => {
    const response = await ServerConnection.makeRequest(artifactUrl(id, path), { headers: { Range: `bytes=0-${bytes - 1}` } }, settings);
    if (!response.ok) {
      throw new ApiError(`${path}: HTTP ${response.status}`, response.status);
    }
    return response.body ? readAtMost(response.body, bytes) : response.blob();
  }
};

/** At most `bytes` of a response body (a server that ignores Range still sends it all). */
async function readAtMost(body: ReadableStream<Uint8Array>, bytes: number): Promise<Blob> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  while (size < bytes) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    parts.push(value);
    size += value.length;
  }
  void reader.cancel();
  return new Blob(parts as BlobPart[]).slice(0, bytes);
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

/** The job's log as it is written: chunks, then (following) the final status; null if the
 * stream closed before the job ended. */
export async function followLogs(
  id: string,
  offset: number,
  onChunk: (chunk: LogChunk) => void,
  signal: AbortSignal
): Promise<LogEnd | null> {
  return followStream<LogChunk>(['jobs', id, 'logs'], `?offset=${offset}&follow=true`, c => 'text' in c, onChunk, signal);
}

/** The job's series as points arrive (pages after `since`), then the final status. */
export async function followMetrics(
  id: string,
  since: string,
  onPage: (page: MetricsPage) => void,
  signal: AbortSignal
): Promise<LogEnd | null> {
  const query = `?follow=true${since ? `&since=${encodeURIComponent(since)}` : ''}`;
  return followStream<MetricsPage>(['jobs', id, 'metrics'], query, p => 'series' in p, onPage, signal);
}

/** An NDJSON stream of items ending with a LogEnd (the job's final status); null when it
 * closed before that. */
async function followStream<T extends object>(
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

/** Every point of a job's series so far (page after page). */
export async function allMetrics(id: string, names: string[] = []): Promise<MetricsPage['series']> {
  const out: MetricsPage['series'] = {};
  let since = '';
  for (;;) {
    const query = new URLSearchParams({ ...(since ? { since } : {}), ...(names.length ? { names: names.join(',') } : {}) });
    const page = await json<MetricsPage>(['jobs', id, 'metrics'], {}, `?${query}`);
    for (const [name, s] of Object.entries(page.series)) {
      const into = (out[name] ??= { steps: [], values: [], times: [] as (number | null)[] });
      into.steps.push(...s.steps);
      into.values.push(...s.values);
      into.times!.push(...(s.times ?? s.steps.map(() => null)));
    }
    if (!page.more) {
      return out;
    }
    since = page.next;
  }
}
