// The workflow runs' calls: one run, the newest runs, and cancel or rerun a run.
import { json } from '../api/request';
import type { Schemas } from '../api/types';

export const workflowsApi = {
  workflow: (id: string) => json<Schemas['WorkflowRun']>(['workflows', id]),
  workflows: () => json<Schemas['WorkflowPage']>(['workflows'], {}, '?limit=100'),
  workflowAction: (id: string, action: 'cancel' | 'rerun') =>
    json<Schemas['WorkflowRun']>(['workflows', id, action], { method: 'POST', body: '{}' })
};
