// The jobs' calls: the backends a job can run on, the job list, one job, submit, cancel, rerun,
// delete, and a job's spec as a file.
import { browserOrigin } from '../api/origin';
import { json, send } from '../api/request';
import type { Job, JobPage, ListQuery, Schemas, SpecInput } from '../api/types';
import { watching } from '../notifications/watch';

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

export const jobsApi = {
  backends: () => json<Schemas['BackendsReply']>(['backends']),
  list: (params: ListQuery) => json<JobPage>(['jobs'], {}, search(params)),
  get: (id: string) => json<Job>(['jobs', id]),
  submit: (spec: SpecInput) => json<Job>(['jobs'], submitting(spec)),
  /** Every Cancel button of this page comes here: the user who cancelled needs no notification
   * of the end (notifications/watch.ts). */
  cancel: (id: string) => {
    watching.cancelled(id);
    return json<Job>(['jobs', id, 'cancel'], { method: 'POST', body: '{}' });
  },
  rerun: (id: string) => json<Job>(['jobs', id, 'rerun'], submitting({})),
  remove: (id: string) => json<void>(['jobs', id], { method: 'DELETE' }),
  /** The job's spec as a file to submit again, and the secret values left out of it (`env.KEY`). */
  specFile: async (id: string, format: 'yaml' | 'json' = 'yaml'): Promise<{ text: string; leftOut: string[] }> => {
    const response = await send(['jobs', id, 'spec'], {}, `?format=${format}`);
    const leftOut = response.headers.get('X-Jupyter-Jobs-Left-Out');
    return { text: await response.text(), leftOut: leftOut ? leftOut.split(',').filter(Boolean) : [] };
  }
};
