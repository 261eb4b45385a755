// The service's types, as aliases of the generated schema (schema.d.ts, from the served
// OpenAPI document), and the job statuses.
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
/** A dataset with its newest version and how many it has. */
export type DatasetSummary = Schemas['DatasetSummary'];
/** An immutable version of a dataset (its files, size, who made it from what). */
export type DatasetVersion = Schemas['DatasetVersion'];
/** A version with its lineage: the jobs that read it (`read_by`). */
export type DatasetVersionDetail = Schemas['DatasetVersionDetail'];
/** A version just made, with what was left out of it (`notes`). */
export type DatasetMade = Schemas['DatasetMade'];
/** A dataset a job reads: `{name, version?, mount?}` (the version resolved at submit). */
export type DatasetRef = Schemas['DatasetRefInput'];
/** A model version: a dataset version plus its framework, description, and the final metrics,
 * spec and datasets of the job that made it. */
export type ModelVersion = Schemas['ModelVersion'];
/** The dataset and model versions a job made. */
export type JobVersions = Schemas['JobVersions'];
/** A named workflow's spec version. */
export type WorkflowDefinition = Schemas['WorkflowDefinition'];
/** A named workflow with its newest spec version and how many it has. */
export type WorkflowDefinitionSummary = Schemas['WorkflowDefinitionSummary'];
/** A name serving a job spec that exposes ports: its replicas (ordinary jobs), one stable
 * address per endpoint balanced over the ready ones, its versions and its last minute's requests. */
export type Deployment = Schemas['Deployment'];
export type DeploymentList = Schemas['DeploymentList'];
/** A new deployment (POST), or what changes (PUT): a new spec, a version served again, replicas. */
export type DeploymentInput = Schemas['DeploymentInput'];
/** One of its replicas: a job, its version, and whether it answers its health checks. */
export type DeploymentReplica = Schemas['DeploymentReplica'];
/** An endpoint's stable address (`path`, relative to the server's base URL). */
export type DeploymentEndpoint = Schemas['DeploymentEndpoint'];
export type DeploymentStats = Schemas['DeploymentStats'];
/** A spec it served or serves, newest first. */
export type DeploymentVersion = Schemas['DeploymentVersion'];
/** How many replicas: min, max, the requests under way per replica it scales out at, and the
 * quiet seconds before it scales in. */
export type Replicas = Schemas['Replicas'];

export const STATUSES: Status[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped'];
export const TERMINAL: Status[] = ['succeeded', 'failed', 'cancelled', 'skipped'];

export function isTerminal(status: Status): boolean {
  return TERMINAL.includes(status);
}
