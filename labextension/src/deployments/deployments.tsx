// deployments/: deployments (a name serving a job spec that exposes ports, its replicas ordinary
// jobs behind one stable address per endpoint): the sidebar's Deployments view
// (deployments.tsx), its state (model.ts) and the calls (api.ts).
//
// The deployments in the sidebar: one row per deployment with its status (and why, when the
// server says), the version served, its replicas ready of those wanted with its min–max, its
// requests per second, latency and errors, and an Open link per endpoint. A row expands to its
// replicas (each opens its job tab), its versions newest first (each but the served one can be
// served again), the Scale form, and Delete (asked first). "New deployment" opens the form of
// one; every bad field the server names is said beside it.
import * as React from 'react';

import { Deployment, DeploymentInput, DeploymentStats, FieldError, Replicas, Spec } from '../api';
import { Badge, confirmDelete, ErrorNote, useSignal, when } from '../common/common';
import { Bound, errorOf, Field, numberAsTyped, useForm } from '../common/fields';
import { count } from '../common/words';
import { endpointUrl, parseExpose } from '../endpoints/endpoints';
import { ExposeField } from '../endpoints/field';
import { whatItRuns } from '../jobs/copy';
import { JobsModel } from '../sidebar/model';
import { DeploymentsModel } from './model';

type ReplicaKey = 'min' | 'max' | 'target' | 'scale_in_after';

/** Each replica field's label and placeholder (the server's default). */
const REPLICA_FIELDS: Record<ReplicaKey, [string, string]> = {
  min: ['Min replicas', '1'],
  max: ['Max replicas', 'min'],
  target: ['Requests under way per replica', '4'],
  scale_in_after: ['Scale in after (seconds)', '60']
};

/** The replica fields given, as numbers where they read as numbers (else as typed, for the
 * server to name); empty ones are left to the server's defaults. */
function replicasOf(values: Partial<Record<ReplicaKey, string>>): Replicas {
  const given = Object.entries(values).filter(([, value]) => value?.trim());
  return Object.fromEntries(given.map(([key, value]) => [key, numberAsTyped(value!)]));
}

/** The most replicas it runs: `max`, else `min` (at least 1), as the server reads it. */
function most(replicas: Replicas): number {
  return replicas.max ?? Math.max(replicas.min ?? 1, 1);
}

function ReplicaFields<K extends ReplicaKey>(props: { keys: K[]; bind: (key: K) => Bound; errors: Record<string, string> }): JSX.Element {
  const { keys, bind, errors } = props;
  return (
    <div className="jp-JobsRowFields jp-JobsRowFields-2">
      {keys.map(key => (
        <Field key={key} label={REPLICA_FIELDS[key][0]} field={`replicas.${key}`} error={errorOf(errors, `replicas.${key}`)}>
          <input inputMode="numeric" {...bind(key)} placeholder={REPLICA_FIELDS[key][1]} />
        </Field>
      ))}
    </div>
  );
}

/** A deployment's status as a badge ("rolling out": class jp-mod-rolling-out). */
function StatusBadge({ status }: { status: Deployment['status'] }): JSX.Element {
  return <span className={`jp-JobsBadge jp-JobsDeployment-status jp-mod-${status.replace(/ /g, '-')}`}>{status}</span>;
}

/** Milliseconds, to a tenth under 10. */
function ms(value: number | null): string {
  return value === null ? '—' : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

/** "0.5 req/s · p50 2.1 ms · p99 9.8 ms · 0 errors". */
function statsWords(stats: DeploymentStats): string {
  const words = [`${stats.requests_per_second.toFixed(1)} req/s`, `p50 ${ms(stats.p50_ms)}`, `p99 ${ms(stats.p99_ms)}`, count(stats.errors, 'error')];
  return (stats.in_flight ? [...words, `${stats.in_flight} under way`] : words).join(' · ');
}

/** An Open link per endpoint: its stable address, balanced over the ready replicas. */
function Endpoints({ deployment }: { deployment: Deployment }): JSX.Element | null {
  if (!deployment.endpoints.length) {
    return null;
  }
  return (
    <span className="jp-JobsButtons jp-JobsDeployment-endpoints">
      {deployment.endpoints.map(endpoint => (
        <a
          key={endpoint.name}
          className="jp-mod-styled jp-JobsButtonLink jp-JobsDeployment-open"
          data-endpoint={endpoint.name}
          href={endpointUrl(endpoint)}
          target="_blank"
          rel="noopener"
          title={`Open ${endpoint.name} of ${deployment.name} (balanced over its ready replicas) in a new browser tab`}
        >
          Open {endpoint.name}
        </a>
      ))}
    </span>
  );
}

/** Its replicas (oldest first), each opening its job tab. */
function ReplicaList({ model, deployment }: { model: JobsModel; deployment: Deployment }): JSX.Element {
  const { name, running } = deployment;
  if (!running.length) {
    return <p className="jp-JobsMuted">None running.</p>;
  }
  return (
    <ul className="jp-JobsDeployment-list jp-JobsDeployment-replicaList" aria-label={`replicas of ${name}`}>
      {running.map(replica => (
        <li key={replica.job_id} data-job-id={replica.job_id} data-ready={replica.ready}>
          <button className="jp-JobsLink jp-JobsDataset-job" onClick={() => model.openJob(replica.job_id)} title={`Open job ${replica.job_id}`}>
            {replica.job_id}
          </button>
          <span>v{replica.version}</span>
          <Badge status={replica.status} />
          <span className={replica.ready ? 'jp-JobsDeployment-ready' : 'jp-JobsMuted'}>{replica.ready ? 'ready' : 'not ready'}</span>
        </li>
      ))}
    </ul>
  );
}

/** Its versions, newest first; each but the one served can be served again. */
function VersionList({ deployments, deployment }: { deployments: DeploymentsModel; deployment: Deployment }): JSX.Element {
  const { name } = deployment;
  return (
    <ul className="jp-JobsDeployment-list jp-JobsDeployment-versions" aria-label={`versions of ${name}`}>
      {deployment.versions.map(v => {
        const spec = v.spec as unknown as Spec;
        return (
          <li key={v.version} data-version={v.version}>
            <span className="jp-JobsDataset-number">v{v.version}</span>
            <code className="jp-JobsDeployment-runs">{whatItRuns(spec)}</code>
            {spec.image ? <span className="jp-JobsMuted">in {spec.image}</span> : null}
            <time className="jp-JobsMuted" dateTime={v.created_at}>
              {when(v.created_at)}
            </time>
            {v.version === deployment.version ? (
              <span className="jp-JobsDeployment-served">served</span>
            ) : (
              <button className="jp-mod-styled" onClick={() => void deployments.serve(name, v.version)} aria-label={`Serve version ${v.version} of ${name}`}>
                Serve this version
              </button>
            )}
          </li>
        );
      })}
    </ul>
  );
}

/** Its replicas' limits; the server's 400 is said beside the field it names. */
function ScaleForm({ deployments, deployment }: { deployments: DeploymentsModel; deployment: Deployment }): JSX.Element {
  const { name, replicas } = deployment;
  const { values, bind, errors, error, busy, submit } = useForm<ReplicaKey>(
    () => ({
      min: String(replicas.min ?? 1),
      max: String(most(replicas)),
      target: String(replicas.target ?? 4),
      scale_in_after: String(replicas.scale_in_after ?? 60)
    }),
    key => `replicas.${key}`,
    field => field.startsWith('replicas.')
  );
  const [done, setDone] = React.useState<string | null>(null);
  const scale = async (e: React.FormEvent) => {
    e.preventDefault();
    setDone(null);
    if (await submit(() => deployments.update(name, { replicas: replicasOf(values) }), `${name} was not scaled`)) {
      setDone(`Scaled: ${values.min}–${values.max || values.min} replicas.`);
    }
  };
  return (
    <form className="jp-JobsDeployment-scale" noValidate onSubmit={e => void scale(e)} aria-label={`scale ${name}`}>
      <ReplicaFields keys={['min', 'max', 'target', 'scale_in_after']} bind={bind} errors={errors} />
      <ErrorNote error={error} />
      {done ? (
        <span className="jp-JobsMuted" role="status">
          {done}
        </span>
      ) : null}
      <div className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          Scale
        </button>
      </div>
    </form>
  );
}

async function deleteDeployment(deployments: DeploymentsModel, name: string): Promise<void> {
  const body = `Delete “${name}”? Its replicas are stopped and its address answers no more; their jobs stay in the history. This cannot be undone.`;
  if (await confirmDelete('Delete deployment', body)) {
    await deployments.remove(name);
  }
}

function DeploymentDetail({ model, deployment }: { model: JobsModel; deployment: Deployment }): JSX.Element {
  const { deployments } = model;
  return (
    <div className="jp-JobsDataset-detail jp-JobsDeployment-detail" id={`jp-JobsDeployment-${deployment.name}`}>
      <div className="jp-JobsSection">Replicas</div>
      <ReplicaList model={model} deployment={deployment} />
      <div className="jp-JobsSection">Versions</div>
      <VersionList deployments={deployments} deployment={deployment} />
      <div className="jp-JobsSection">Scale</div>
      <ScaleForm deployments={deployments} deployment={deployment} />
      <div className="jp-JobsButtons">
        <button className="jp-mod-styled jp-mod-warn" onClick={() => void deleteDeployment(deployments, deployment.name)}>
          Delete
        </button>
      </div>
    </div>
  );
}

function DeploymentRow({ model, deployment }: { model: JobsModel; deployment: Deployment }): JSX.Element {
  const { deployments } = model;
  const { name, status, message, replicas, stats } = deployment;
  const open = deployments.expanded === name;
  const ready = deployment.running.filter(r => r.ready).length;
  return (
    <li className="jp-JobsDeployment" data-deployment={name} data-status={status} data-version={deployment.version}>
      <button
        className="jp-JobsSchedule-toggle"
        aria-expanded={open}
        aria-controls={`jp-JobsDeployment-${name}`}
        onClick={() => deployments.toggle(name)}
      >
        <span aria-hidden="true">{open ? '▾' : '▸'}</span> <span className="jp-JobsRow-name">{name}</span>
      </button>
      <span className="jp-JobsDeployment-state">
        <StatusBadge status={status} /> <span className="jp-JobsDeployment-version">v{deployment.version}</span>
        {message ? <span className="jp-JobsDeployment-message">{message}</span> : null}
      </span>
      <span className="jp-JobsDeployment-replicas">
        {ready} of {deployment.wanted} ready
        <span className="jp-JobsMuted">
          {' '}
          · {replicas.min ?? 1}–{most(replicas)} replicas
        </span>
      </span>
      <span className="jp-JobsDeployment-stats" title="requests per second over the last 10 s; latency and errors over the last minute">
        {statsWords(stats)}
      </span>
      <Endpoints deployment={deployment} />
      <ErrorNote error={deployments.errorOf(name)} />
      {open ? <DeploymentDetail model={model} deployment={deployment} /> : null}
    </li>
  );
}

type NewKey = 'name' | 'command' | 'workspace' | 'image' | 'gpus' | 'expose' | 'min' | 'max';

/** Where the server names each value's problem. */
const NEW_FIELDS: Record<NewKey, string> = {
  name: 'name',
  command: 'spec.command',
  workspace: 'spec.workspace',
  image: 'spec.image',
  gpus: 'spec.resources.gpus',
  expose: 'spec.expose',
  min: 'replicas.min',
  max: 'replicas.max'
};

/** The request the form describes, and the ports it could not read (sent as typed, so the
 * server names the other bad fields in the same answer). */
function newDeployment(values: Record<NewKey, string>): { input: DeploymentInput; unread: FieldError[] } {
  const expose = parseExpose(values.expose);
  const spec: Record<string, unknown> = {
    command: values.command,
    workspace: values.workspace,
    expose: expose.error ? values.expose : expose.expose
  };
  if (values.image.trim()) {
    spec.image = values.image.trim();
  }
  if (values.gpus.trim()) {
    spec.resources = { gpus: numberAsTyped(values.gpus) };
  }
  return {
    input: { name: values.name.trim() || undefined, spec, replicas: replicasOf({ min: values.min, max: values.max }) },
    unread: expose.error ? [{ field: 'spec.expose', message: expose.error }] : []
  };
}

function NewDeploymentForm({ deployments }: { deployments: DeploymentsModel }): JSX.Element {
  const fields = Object.values(NEW_FIELDS);
  const { values, bind, errors, error, busy, submit } = useForm<NewKey>(
    () => ({ name: '', command: '', workspace: deployments.currentFolder(), image: '', gpus: '0', expose: '', min: '1', max: '' }),
    key => NEW_FIELDS[key],
    field => fields.some(f => field === f || field.startsWith(`${f}.`))
  );
  const create = (e: React.FormEvent) => {
    e.preventDefault();
    const { input, unread } = newDeployment(values);
    void submit(() => deployments.create(input), 'The deployment was not created', unread);
  };
  const problem = (key: NewKey) => errorOf(errors, NEW_FIELDS[key]);
  return (
    <form className="jp-JobsDatasetForm jp-JobsDeploymentForm" noValidate onSubmit={create} aria-label="new deployment">
      <div className="jp-JobsSection">New deployment</div>
      <Field label="Name" field="name" error={problem('name')}>
        <input {...bind('name')} placeholder="e.g. classifier-api; a-z, 0-9 and '-'" spellCheck={false} />
      </Field>
      <Field label="Command" field="spec.command" error={problem('command')}>
        <textarea {...bind('command')} placeholder="e.g. python3 serve.py" rows={2} />
      </Field>
      <Field label="Workspace" field="spec.workspace" error={problem('workspace')}>
        <input {...bind('workspace')} placeholder="a folder under the server root; empty: the root" spellCheck={false} />
      </Field>
      <div className="jp-JobsRowFields jp-JobsRowFields-2">
        <Field label="Image (optional)" field="spec.image" error={problem('image')}>
          <input {...bind('image')} placeholder="e.g. python:3.11" spellCheck={false} />
        </Field>
        <Field label="GPUs" field="spec.resources.gpus" error={problem('gpus')}>
          <input inputMode="numeric" {...bind('gpus')} placeholder="0" />
        </Field>
      </div>
      <ExposeField
        input={bind('expose')}
        errors={errors}
        field="spec.expose"
        label="Port"
        placeholder="e.g. 8000:web:/health"
        hint="each replica listens on $PORT_<NAME>; one address balances over the ready ones."
      />
      <ReplicaFields keys={['min', 'max']} bind={bind} errors={errors} />
      <ErrorNote error={error} />
      <div className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          Deploy
        </button>
        <button type="button" className="jp-mod-styled" onClick={() => deployments.openForm(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** The Deployments view; it re-renders with its model. */
export function DeploymentList({ model }: { model: JobsModel }): JSX.Element {
  const { deployments } = model;
  useSignal(deployments.changed);
  return (
    <div className="jp-JobsList jp-JobsDeployments">
      <div className="jp-JobsButtons">
        <button className="jp-mod-styled" onClick={() => deployments.openForm(true)} disabled={deployments.creating}>
          New deployment
        </button>
      </div>
      {deployments.creating ? <NewDeploymentForm deployments={deployments} /> : null}
      <ErrorNote error={deployments.error} />
      {deployments.loaded && deployments.deployments.length === 0 && !deployments.error ? (
        <p className="jp-JobsEmpty">
          No deployments yet. “New deployment” serves a command that listens on a port, with replicas behind one address.
        </p>
      ) : null}
      <ul className="jp-JobsRows" aria-label="deployments">
        {deployments.deployments.map(deployment => (
          <DeploymentRow key={deployment.name} model={model} deployment={deployment} />
        ))}
      </ul>
    </div>
  );
}
