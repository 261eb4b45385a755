// A workflow run as a graph: one column per stage (a job after the jobs it needs), a box per
// workflow job holding its matrix combinations, each coloured by status and live; a click
// opens that job. And the list of runs.
import * as React from 'react';

import { errorMessage, Status } from '../api';
import { Badge, ErrorNote, when } from '../common/common';
import { workflowsApi } from './api';

type Run = Awaited<ReturnType<typeof workflowsApi.workflow>>;
type RunJob = Run['jobs'][number];

/** Each workflow job's stage: 0 without needs, else one more than its deepest need. */
export function stages(jobs: readonly RunJob[]): Map<string, number> {
  const needs = new Map<string, string[]>();
  jobs.forEach(j => needs.set(j.name, j.needs));
  const depth = new Map<string, number>();
  const visit = (name: string, seen: Set<string>): number => {
    if (depth.has(name)) {
      return depth.get(name)!;
    }
    if (seen.has(name)) {
      return 0;
    }
    seen.add(name);
    const d = Math.max(-1, ...(needs.get(name) || []).map(n => visit(n, seen))) + 1;
    depth.set(name, d);
    return d;
  };
  needs.forEach((_, name) => visit(name, new Set()));
  return depth;
}

function useRun(id: string): { run: Run | null; error: string | null; reload: () => void } {
  const [run, setRun] = React.useState<Run | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    let live = true;
    let timer = 0;
    const load = () =>
      workflowsApi.workflow(id).then(
        r => {
          if (live) {
            setRun(r);
            setError(null);
            if (r.status === 'queued' || r.status === 'running') {
              timer = window.setTimeout(load, 1000);
            }
          }
        },
        e => live && setError(errorMessage(e))
      );
    void load();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [id, tick]);
  return { run, error, reload: () => setTick(t => t + 1) };
}

export function RunView({ id, open }: { id: string; open: (jobId: string) => void }): JSX.Element {
  const { run, error, reload } = useRun(id);
  const [actionError, setActionError] = React.useState<string | null>(null);
  if (!run) {
    return <div className="jp-JobsRun">{error ? <ErrorNote error={error} /> : <p className="jp-JobsMuted">Loading…</p>}</div>;
  }
  const depth = stages(run.jobs);
  const columns: string[][] = [];
  [...new Set(run.jobs.map(j => j.name))].forEach(name => (columns[depth.get(name) ?? 0] ??= []).push(name));
  const act = (action: 'cancel' | 'rerun') =>
    workflowsApi.workflowAction(id, action).then(
      () => (setActionError(null), reload()),
      e => setActionError(errorMessage(e))
    );
  const over = !['queued', 'running'].includes(run.status);
  return (
    <div className="jp-JobsRun" data-run-id={run.id} data-status={run.status}>
      <h2 className="jp-JobsTitle">
        {run.name} <Badge status={(run.status === 'running' ? 'running' : run.status) as Status} />
        <span className="jp-JobsMuted jp-JobsTitle-meta">
          {run.id} · {run.jobs.length} jobs{run.scheduler !== 'service' ? ` · ordered by ${run.scheduler}` : ''} ·{' '}
          {when(run.created_at)}
        </span>
      </h2>
      {run.message ? <p className="jp-JobsMuted">{run.message}</p> : null}
      <div className="jp-JobsButtons">
        {over ? null : (
          <button className="jp-mod-styled jp-mod-warn" onClick={() => void act('cancel')}>
            Cancel run
          </button>
        )}
        {over && run.status !== 'succeeded' ? (
          <button className="jp-mod-styled" onClick={() => void act('rerun')}>
            Rerun what did not succeed
          </button>
        ) : null}
      </div>
      <ErrorNote error={actionError ?? error} />
      <div className="jp-JobsGraph" role="list" aria-label="the run's jobs by stage">
        {columns.map((names, stage) => (
          <div className="jp-JobsGraph-stage" key={stage} role="listitem" aria-label={`stage ${stage + 1}`}>
            {names.map(name => {
              const members = run.jobs.filter(j => j.name === name);
              return (
                <div className="jp-JobsGraph-node" key={name} data-name={name}>
                  <div className="jp-JobsGraph-name">
                    {name}
                    {members[0].needs.length ? <span className="jp-JobsMuted"> ← {members[0].needs.join(', ')}</span> : null}
                  </div>
                  {members.map(j => (
                    <button
                      key={j.key}
                      className={`jp-JobsGraph-job jp-mod-${j.status}`}
                      data-job-id={j.job_id}
                      data-status={j.status}
                      title={`${j.key}: ${j.status}`}
                      onClick={() => open(j.job_id)}
                    >
                      <Badge status={j.status as Status} /> {Object.keys(j.matrix).length ? Object.entries(j.matrix).map(([k, v]) => `${k}=${v}`).join(' ') : j.key}
                    </button>
                  ))}
                </div>
              );
            })}
          </div>
        ))}
      </div>
    </div>
  );
}
