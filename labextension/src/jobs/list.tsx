// The job list: filters, one row per job (newest first, with its progress while it runs and
// reports it, and a link mark when it serves endpoints that answer), older pages on demand.
import { linkIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { Job, STATUSES } from '../api';
import { Badge, duration, ErrorNote, ProgressBar } from '../common/common';
import { count } from '../common/words';
import { readyEndpoints } from '../endpoints/endpoints';
import { KindBadge, NotebookLink, notebookOf } from '../kernels/kernels';
import { JobsModel } from '../sidebar/model';
import { jobName } from './table';

function Filters({ model }: { model: JobsModel }): JSX.Element {
  const projects = [...new Set([...model.jobs.map(j => j.project), model.project].filter(Boolean))].sort();
  return (
    <div className="jp-JobsToolbar">
      <select aria-label="status filter" value={model.status} onChange={e => model.setFilter(e.target.value, model.project)}>
        <option value="">all statuses</option>
        {STATUSES.map(s => (
          <option key={s} value={s}>
            {s}
          </option>
        ))}
      </select>
      <select aria-label="project filter" value={model.project} onChange={e => model.setFilter(model.status, e.target.value)}>
        <option value="">all projects</option>
        {projects.map(p => (
          <option key={p} value={p}>
            {p}
          </option>
        ))}
      </select>
    </div>
  );
}

export function JobRow(props: { job: Job; onOpen: (id: string) => void; openNotebook?: (path: string) => void }): JSX.Element {
  const { job, onOpen, openNotebook } = props;
  const notebook = notebookOf(job); // a kernel job: the notebook it serves
  // the server's reading of its `progress` or `total_steps` series (a page of jobs has it)
  const progress = job.status === 'running' ? job.progress ?? null : null;
  const ready = readyEndpoints(job).length;
  const serves = ready ? `serves ${count(ready, 'endpoint')}` : '';
  return (
    <li
      className="jp-JobsRow"
      data-job-id={job.id}
      data-status={job.status}
      title={job.waiting ? `Waiting: ${job.waiting}` : undefined}
      tabIndex={0}
      aria-label={`${notebook ? `kernel of ${notebook}` : jobName(job)}, ${job.status}${progress === null ? '' : `, ${Math.round(progress * 100)}%`}${serves ? `, ${serves}` : ''}`}
      onClick={() => onOpen(job.id)}
      onKeyDown={e => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          onOpen(job.id);
        }
      }}
    >
      <Badge status={job.status} />
      <span className={`jp-JobsRow-name${notebook ? ' jp-mod-kernel' : ''}`}>
        <KindBadge job={job} />
        {notebook ? <NotebookLink path={notebook} open={openNotebook} /> : jobName(job)}
      </span>
      <span className="jp-JobsRow-meta">
        {job.id} · {job.backend} · {job.project} · {duration(job)}
        {ready ? (
          <span className="jp-JobsRow-endpoints" title={serves} data-endpoints={ready}>
            {' · '}
            <linkIcon.react tag="span" className="jp-JobsRow-endpointsIcon" />
            {ready}
          </span>
        ) : null}
      </span>
      <ProgressBar value={progress} status={job.status} label={`progress of ${jobName(job)}`} />
      {job.waiting ? <span className="jp-JobsRow-waiting">{job.waiting}</span> : null}
    </li>
  );
}

/** The list view; it re-renders with its model (see JobsApp). */
export function JobList({ model }: { model: JobsModel }): JSX.Element {
  const open = (id: string) => model.openJob(id);
  return (
    <div className="jp-JobsList">
      <Filters model={model} />
      <ErrorNote error={model.error} />
      {model.jobs.length === 0 && !model.error ? (
        <p className="jp-JobsEmpty">{model.filtered ? 'No jobs match these filters.' : 'No jobs yet. Start one with “New job”.'}</p>
      ) : null}
      <ul className="jp-JobsRows" aria-label="jobs">
        {model.jobs.map(job => (
          <JobRow key={job.id} job={job} onOpen={open} openNotebook={model.openNotebook} />
        ))}
      </ul>
      {model.nextCursor ? (
        <button className="jp-mod-styled" onClick={() => void model.more()}>
          Load older jobs
        </button>
      ) : null}
    </div>
  );
}
