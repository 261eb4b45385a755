// The workflow runs in the sidebar: the named workflows first (a row each: its newest spec
// version, how many it has; a row opens its page), then one row per run (newest first) with its
// status, how many of its jobs are in each status, who orders them, and the named workflow and
// version it runs, if any; a row opens the run's graph.
import * as React from 'react';

import { Status } from '../api';
import { Badge, ErrorNote, when } from '../common/common';
import { JobsModel, RunSummary } from '../sidebar/model';
import { count } from '../common/words';

/** The inputs a named workflow's run was given: "lr=0.1 · tag=a". */
export function inputsText(inputs: Record<string, unknown> | undefined): string {
  return Object.entries(inputs ?? {})
    .map(([name, value]) => `${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' · ');
}

/** "4 succeeded · 1 failed · 1 skipped", busiest statuses first. */
export function countsText(counts: RunSummary['counts']): string {
  const entries = Object.entries(counts ?? {}).sort((a, b) => b[1] - a[1]);
  return entries.map(([status, n]) => `${n} ${status}`).join(' · ');
}

function RunRow({ run, onOpen }: { run: RunSummary; onOpen: (id: string) => void }): JSX.Element {
  const total = Object.values(run.counts ?? {}).reduce((a, b) => a + b, 0);
  const done = run.counts?.succeeded ?? 0;
  return (
    <li
      className="jp-JobsRow jp-JobsRunRow"
      data-run-id={run.id}
      data-status={run.status}
      tabIndex={0}
      title={run.message ?? undefined}
      aria-label={`workflow run ${run.name}, ${run.status}, ${done} of ${count(total, 'job')} succeeded`}
      onClick={() => onOpen(run.id)}
      onKeyDown={e => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          onOpen(run.id);
        }
      }}
    >
      <Badge status={run.status as Status} />
      <span className="jp-JobsRow-name">{run.name}</span>
      <span className="jp-JobsRow-meta">
        {run.id} · {count(total, 'job')}{run.scheduler !== 'service' ? ` · ordered by ${run.scheduler}` : ''} · {when(run.created_at)}
      </span>
      {run.definition ? (
        <span className="jp-JobsRow-meta jp-JobsRunRow-definition" data-definition={run.definition} data-definition-version={run.definition_version ?? undefined}>
          {run.definition} v{run.definition_version}
          {Object.keys(run.inputs ?? {}).length ? ` · ${inputsText(run.inputs)}` : ''}
        </span>
      ) : null}
      <progress className="jp-JobsRunRow-progress" max={total || 1} value={done} aria-hidden="true" />
      <span className="jp-JobsRow-waiting jp-JobsRunRow-counts">{countsText(run.counts)}</span>
    </li>
  );
}

/** The named workflows, a row each, opening its page. */
function Definitions({ model }: { model: JobsModel }): JSX.Element | null {
  const open = model.openDefinition;
  if (!model.definitions.length || !open) {
    return null;
  }
  return (
    <>
      <div className="jp-JobsSection">Named workflows</div>
      <ul className="jp-JobsRows jp-JobsDefinitions" aria-label="named workflows">
        {model.definitions.map(d => (
          <li key={d.name} className="jp-JobsDefinitionRow" data-definition={d.name}>
            <button className="jp-JobsLink jp-JobsRow-name" onClick={() => open(d.name)} title={`Open the page of ${d.name}: its versions, its runs, a run with inputs`}>
              {d.name}
            </button>
            <span className="jp-JobsRow-meta">
              v{d.latest.version} · {count(d.versions, 'version')} · {when(d.latest.created_at)}
            </span>
          </li>
        ))}
      </ul>
      <div className="jp-JobsSection">Runs</div>
    </>
  );
}

/** The runs view; it re-renders with its model (see JobsApp). */
export function RunList({ model }: { model: JobsModel }): JSX.Element {
  return (
    <div className="jp-JobsList">
      <ErrorNote error={model.error} />
      <Definitions model={model} />
      {model.runs.length === 0 && !model.error ? (
        <p className="jp-JobsEmpty">No workflow runs yet. Start one with %%workflow, %job workflow run, or POST /jupyter-jobs/workflows.</p>
      ) : null}
      <ul className="jp-JobsRows" aria-label="workflow runs">
        {model.runs.map(run => (
          <RunRow key={run.id} run={run} onOpen={model.openRun} />
        ))}
      </ul>
    </div>
  );
}
