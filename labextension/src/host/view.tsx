// The host view: each GPU with who holds it and how busy it is, the jobs of every user waiting
// for GPUs in the order the host's rule serves them (with the rule that holds each), and each
// user's GPU-hours over the last day and week. A host admin sees every job's id; anyone else
// sees other users' jobs by user and project only (the server never sends more).
import * as React from 'react';

import { ErrorNote, useSignal } from '../common/common';
import { count } from '../common/words';
import type { GPUUse, HostDevice, HostQueued, HostReply } from './api';
import type { HostModel } from './model';

function hours(value: number): string {
  return `${value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString()} GPU-h`;
}

function since(epoch: number, now: number): string {
  const s = Math.max(0, Math.round(now / 1000 - epoch));
  return s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

/** A job as the viewer may see it: its id (own jobs, or every job for an admin) or "a job". */
function JobRef({ job, open }: { job: string | null; open: (id: string) => void }): JSX.Element {
  return job ? (
    <button className="jp-JobsHost-job" onClick={() => open(job)} title="Open this job">
      {job}
    </button>
  ) : (
    <span className="jp-JobsHost-hidden">a job</span>
  );
}

function Utilization({ device }: { device: HostDevice }): JSX.Element {
  if (device.utilization === null || device.utilization === undefined) {
    return <span className="jp-JobsHost-muted">no figures</span>;
  }
  const value = Math.round(device.utilization);
  return (
    <span className="jp-JobsHost-util">
      <progress max={100} value={value} aria-label={`GPU ${device.index} utilization`} /> {value}%
    </span>
  );
}

function Devices({ host, open, now }: { host: HostReply; open: (id: string) => void; now: number }): JSX.Element {
  if (!host.devices.length) {
    return <p className="jp-JobsHost-muted">This server has no GPUs.</p>;
  }
  return (
    <table className="jp-JobsHost-table" aria-label="GPUs">
      <thead>
        <tr>
          <th scope="col">GPU</th>
          <th scope="col">Utilization</th>
          <th scope="col">Held by</th>
        </tr>
      </thead>
      <tbody>
        {host.devices.map(device => (
          <tr key={device.index} data-gpu={device.index}>
            <th scope="row">
              {device.index} <span className="jp-JobsHost-muted">{device.name}</span>
            </th>
            <td>
              <Utilization device={device} />
            </td>
            <td>
              {device.holders.length ? (
                <ul className="jp-JobsHost-holders">
                  {device.holders.map((h, i) => (
                    <li key={i}>
                      <strong>{h.user}</strong> <JobRef job={h.job ?? null} open={open} />
                      {h.project ? ` (${h.project})` : ''} for {since(h.since, now)}
                    </li>
                  ))}
                </ul>
              ) : (
                <span className="jp-JobsHost-muted">free</span>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Queue({ queue, open, now }: { queue: HostQueued[]; open: (id: string) => void; now: number }): JSX.Element {
  if (!queue.length) {
    return <p className="jp-JobsHost-muted">No job waits for a GPU.</p>;
  }
  return (
    <table className="jp-JobsHost-table" aria-label="Jobs waiting for GPUs">
      <thead>
        <tr>
          <th scope="col">#</th>
          <th scope="col">User</th>
          <th scope="col">Job</th>
          <th scope="col">GPUs</th>
          <th scope="col">Priority</th>
          <th scope="col">Waiting</th>
          <th scope="col">Why</th>
        </tr>
      </thead>
      <tbody>
        {queue.map((q, i) => (
          <tr key={i} data-user={q.user}>
            <td>{i + 1}</td>
            <td>{q.user}</td>
            <td>
              <JobRef job={q.job ?? null} open={open} />
              {q.project ? ` (${q.project})` : ''}
            </td>
            <td>{q.gpus}</td>
            <td>{q.priority}</td>
            <td>{since(q.since, now)}</td>
            <td className="jp-JobsHost-why">{q.waiting}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Usage({ label, use }: { label: string; use: Record<string, GPUUse> }): JSX.Element | null {
  const names = Object.keys(use).sort((a, b) => use[b].week - use[a].week || a.localeCompare(b));
  if (!names.length) {
    return null;
  }
  return (
    <table className="jp-JobsHost-table" aria-label={`GPU use by ${label}`}>
      <thead>
        <tr>
          <th scope="col">{label === 'user' ? 'User' : 'Project'}</th>
          <th scope="col">GPUs now</th>
          <th scope="col">Last 24 h</th>
          <th scope="col">Last 7 days</th>
          <th scope="col">Fair-share use</th>
        </tr>
      </thead>
      <tbody>
        {names.map(name => (
          <tr key={name} data-name={name}>
            <th scope="row">{name}</th>
            <td>{use[name].gpus}</td>
            <td>{hours(use[name].day)}</td>
            <td>{hours(use[name].week)}</td>
            <td>{hours(use[name].decayed)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function HostView({ model, open }: { model: HostModel; open: (id: string) => void }): JSX.Element {
  useSignal(model.changed);
  const host = model.host;
  const now = Date.now();
  return (
    <div className="jp-JobsPage jp-JobsHost">
      <div className="jp-JobsPage-toolbar" role="toolbar" aria-label="host">
        <span className="jp-JobsHost-scope" aria-live="polite">
          {host
            ? `${host.scope === 'host' ? 'Every server on this host' : 'This server alone'}: ${count(host.devices.length, 'GPU')}, ` +
              `${count(host.queue.length, 'job')} waiting. Seen as ${host.user}${host.admin ? ' (host admin)' : ''}.`
            : 'Reading the host…'}
        </span>
        <button className="jp-mod-styled" onClick={() => model.refresh()}>
          Refresh
        </button>
      </div>
      <ErrorNote error={model.error} />
      {host?.policy_problem ? (
        <div className="jp-JobsError" role="alert">
          The admin's GPU policy is not applied: {host.policy_problem}
        </div>
      ) : null}
      {host ? (
        <div className="jp-JobsHost-body">
          <h2>GPUs</h2>
          <Devices host={host} open={open} now={now} />
          <h2>Waiting for GPUs</h2>
          <Queue queue={host.queue} open={open} now={now} />
          <h2>GPU use</h2>
          {Object.keys(host.users).length ? (
            <Usage label="user" use={host.users} />
          ) : (
            <p className="jp-JobsHost-muted">No GPU time used in the last 7 days.</p>
          )}
          <Usage label="project" use={host.projects} />
          {host.admin ? null : (
            <p className="jp-JobsHost-muted">Other users' jobs show by user and project only.</p>
          )}
        </div>
      ) : null}
    </div>
  );
}
