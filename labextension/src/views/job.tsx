// One job: its status and facts, its actions (cancel, rerun, delete), artifacts and log.
import * as React from 'react';

import { api, Artifact, artifactUrl, errorMessage, isTerminal, Job } from '../api';
import { JobModel } from '../jobmodel';
import { JobsModel } from '../model';
import { Badge, command, duration, ErrorNote, useSignal, when } from './common';
import { JobLog } from './log';

function Facts({ job }: { job: Job }): JSX.Element {
  const resources = job.spec.resources;
  const devices = job.gpus?.length ? ` · devices ${job.gpus.join(',')}` : '';
  const rows: [string, React.ReactNode][] = [
    ['id', job.id],
    ['command', <code>{command(job.spec)}</code>],
    ['backend', `${job.backend}${job.spec.image ? ` · ${job.spec.image}` : ''}`],
    ['workspace', `${job.spec.workspace || '(root)'} · project ${job.project}`],
    ['resources', `${resources?.gpus ?? 0} GPU · ${resources?.cpus ?? '—'} CPU · ${resources?.memory ?? '—'}${devices}`],
    ['created', when(job.created_at)],
    ['started', when(job.started_at)],
    ['finished', `${when(job.finished_at)} (${duration(job)})`],
    ['exit code', job.exit_code ?? '—'],
    ...(job.spec.retries ? ([['attempt', `${job.attempt} of ${job.spec.retries + 1}`]] as [string, string][]) : [])
  ];
  return (
    <table className="jp-JobsFacts">
      <tbody>
        {rows.map(([name, value]) => (
          <tr key={name}>
            <th>{name}</th>
            <td>{value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Artifacts({ id, artifacts }: { id: string; artifacts: readonly Artifact[] }): JSX.Element {
  return (
    <>
      <div className="jp-JobsSection">Artifacts</div>
      {artifacts.length ? (
        <ul className="jp-JobsArtifacts">
          {artifacts.map(a => (
            <li key={a.path}>
              <a href={artifactUrl(id, a.path)} download={a.path.split('/').pop()}>
                {a.path}
              </a>{' '}
              <span className="jp-JobsMuted">{a.size.toLocaleString()} bytes</span>
            </li>
          ))}
        </ul>
      ) : (
        <p className="jp-JobsMuted">None yet.</p>
      )}
    </>
  );
}

/** Cancel (while it runs), rerun (opens the new job), delete (once it ended; back to the list). */
function Actions(props: { model: JobsModel; detail: JobModel; job: Job; onError: (error: string | null) => void }): JSX.Element {
  const { model, detail, job, onError } = props;
  const act = (action: () => Promise<void>) => {
    onError(null);
    action().catch(e => onError(errorMessage(e)));
  };
  const cancel = () => act(async () => detail.update(await api.cancel(job.id)));
  const rerun = () => act(async () => model.open({ kind: 'job', id: (await api.rerun(job.id)).id }));
  const remove = () =>
    act(async () => {
      await api.remove(job.id);
      model.open({ kind: 'list' });
    });
  const terminal = isTerminal(job.status);
  return (
    <div className="jp-JobsButtons">
      {terminal ? null : (
        <button className="jp-mod-styled jp-mod-warn" onClick={cancel}>
          Cancel
        </button>
      )}
      <button className="jp-mod-styled" onClick={rerun}>
        Rerun
      </button>
      {terminal ? (
        <button className="jp-mod-styled" onClick={remove}>
          Delete
        </button>
      ) : null}
    </div>
  );
}

function BackLink({ model }: { model: JobsModel }): JSX.Element {
  return (
    <button className="jp-JobsLink" onClick={() => model.open({ kind: 'list' })}>
      ← Jobs
    </button>
  );
}

export function JobDetail({ model, detail }: { model: JobsModel; detail: JobModel }): JSX.Element {
  useSignal(detail.changed);
  const [actionError, setActionError] = React.useState<string | null>(null);
  const { job } = detail;
  const error = actionError ?? detail.error;
  if (!job) {
    return (
      <div className="jp-JobsDetail">
        <BackLink model={model} />
        <ErrorNote error={error} />
        {error ? null : <p className="jp-JobsMuted">Loading…</p>}
      </div>
    );
  }
  return (
    <div className="jp-JobsDetail" data-job-id={job.id} data-status={job.status}>
      <BackLink model={model} />
      <h3 className="jp-JobsTitle">
        {job.spec.name || job.id} <Badge status={job.status} />
      </h3>
      {job.waiting ? <div className="jp-JobsWaiting">Waiting: {job.waiting}</div> : null}
      {job.message ? (
        <div className={`jp-JobsMessage jp-mod-${job.status}`}>
          {job.reason ? <b>{job.reason}: </b> : null}
          {job.message}
        </div>
      ) : null}
      <ErrorNote error={error} />
      <Actions model={model} detail={detail} job={job} onError={setActionError} />
      <Facts job={job} />
      {job.notes?.length ? <div className="jp-JobsMuted">{job.notes.join('; ')}</div> : null}
      <Artifacts id={job.id} artifacts={detail.artifacts} />
      <JobLog follower={detail.log} />
    </div>
  );
}
