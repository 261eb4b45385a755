// The workflow runs' calls: one run, the newest runs, and cancel or rerun a run; and the named
// workflows' calls: the list (each with its newest spec version), one's spec versions, its
// runs, and a run of its newest version with inputs.
import { json } from '../api/request';
import type { Schemas } from '../api/types';

export const workflowsApi = {
  workflow: (id: string) => json<Schemas['WorkflowRun']>(['workflows', id]),
  workflows: () => json<Schemas['WorkflowPage']>(['workflows'], {}, '?limit=100'),
  workflowAction: (id: string, action: 'cancel' | 'rerun') =>
    json<Schemas['WorkflowRun']>(['workflows', id, action], { method: 'POST', body: '{}' })
};

export const definitionsApi = {
  list: () => json<Schemas['WorkflowDefinitionList']>(['workflow-definitions']),
  history: (name: string) => json<Schemas['WorkflowDefinitionHistory']>(['workflow-definitions', name]),
  runs: (name: string) => json<Schemas['WorkflowPage']>(['workflow-definitions', name, 'runs']),
  run: (name: string, inputs: Record<string, string>) =>
    json<Schemas['WorkflowRun']>(['workflow-definitions', name, 'runs'], { method: 'POST', body: JSON.stringify({ inputs }) })
};
