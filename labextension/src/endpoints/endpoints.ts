// endpoints/: a job's exposed ports (endpoints.ts).
//
// A job's endpoints (the ports its spec exposes, reached through the Jupyter server): their
// full URL, and the `PORT:NAME[:/health]` entries the form, the magic and the CLI write.
import { PageConfig } from '@jupyterlab/coreutils';

import { Endpoint, Expose, Job } from '../api';

/** The endpoint's address in the browser: its own origin where the server gives it one
 * (`url`), else the server's base URL and the endpoint's path (`jupyter-jobs/ep/<key>/`, kept
 * with its trailing slash; the key in it is its credential). */
export function endpointUrl(endpoint: Pick<Endpoint, 'path' | 'url'>, baseUrl = PageConfig.getBaseUrl()): string {
  return endpoint.url || baseUrl.replace(/\/*$/, '/') + endpoint.path.replace(/^\/+/, '');
}

/** The endpoints of a running job that answer now. */
export function readyEndpoints(job: Pick<Job, 'status' | 'endpoints'>): Endpoint[] {
  return job.status === 'running' ? (job.endpoints || []).filter(e => e.state === 'ready') : [];
}

/** One exposed port as `PORT:NAME`, or `PORT:NAME:/health` when it has a health path. */
export function exposeEntry(expose: Pick<Expose, 'port' | 'name' | 'health'>): string {
  return `${expose.port}:${expose.name}${expose.health ? `:${expose.health}` : ''}`;
}

/** A spec's exposed ports as the form's text: one entry a line. */
export function exposeText(expose: readonly Expose[] | null | undefined): string {
  return (expose || []).map(exposeEntry).join('\n');
}

/** The form's text (entries separated by commas or lines) as a spec's `expose`; an entry
 * that is not PORT:NAME[:/health] is named in `error`. Names and health paths are checked by
 * the server (its 400 names `expose.N.name`). */
export function parseExpose(text: string): { expose: Expose[]; error?: string } {
  const expose: Expose[] = [];
  for (const entry of text.split(/[,\n]/).map(e => e.trim()).filter(Boolean)) {
    const match = /^(\d+):([^:\s]+)(?::(\S+))?$/.exec(entry);
    if (!match) {
      return { expose, error: `an exposed port is PORT:NAME or PORT:NAME:/health (e.g. 8000:web), not '${entry}'` };
    }
    const [, port, name, health] = match;
    expose.push({ port: Number(port), name, ...(health ? { health } : {}) });
  }
  return { expose };
}

