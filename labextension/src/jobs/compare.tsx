// Several jobs side by side: how they ended and how their specs differ (rows that differ are
// marked; "only differences" hides the rest).
import * as React from 'react';

import { errorMessage, Job } from '../api';
import { Badge, duration, ErrorNote } from '../common/common';
import { allMetrics } from '../metrics/api';
import { Line } from '../metrics/chart';
import { ChartBox, ChartControls, formatFor, isProgress, isSystem } from '../metrics/metrics';
import { jobsApi } from './api';
import { whatItRuns } from './copy';
import { jobName } from './table';

type Row = [string, (job: Job) => string];

const ROWS: Row[] = [
  ['status', j => j.status],
  ['exit code', j => (j.exit_code === null ? '—' : String(j.exit_code))],
  ['duration', j => duration(j)],
  ['backend', j => j.backend],
  ['image', j => j.spec.image || '—'],
  ['command', j => whatItRuns(j.spec)],
  ['workspace', j => j.spec.workspace || '(root)'],
  ['project', j => j.project],
  ['GPUs', j => String(j.spec.resources?.gpus ?? 0)],
  ['CPUs', j => String(j.spec.resources?.cpus ?? '—')],
  ['memory', j => j.spec.resources?.memory || '—'],
  ['timeout', j => (j.spec.timeout ? `${j.spec.timeout} s` : '—')],
  ['retries', j => String(j.spec.retries ?? 0)],
  ['tags', j => (j.spec.tags || []).join(', ') || '—']
];

/** Each job's last value of each of its own series ("final values"). */
function finals(jobs: Job[]): Row[] {
  const names = [...new Set(jobs.flatMap(j => Object.keys(j.metrics?.series || {})))].filter(n => !isSystem(n)).sort();
  return names.map(n => [`final ${n}`, (j: Job) => String(j.metrics?.series[n]?.last ?? '—')] as Row);
}

/** The compared rows: the fixed ones, then one per notebook parameter and one per
 * environment variable any job sets. */
function rows(jobs: Job[]): Row[] {
  const keys = [...new Set(jobs.flatMap(j => Object.keys(j.spec.env || {})))].sort();
  const parameters = [...new Set(jobs.flatMap(j => Object.keys(j.spec.parameters || {})))].sort();
  const parameter = (j: Job, p: string) => (p in (j.spec.parameters || {}) ? JSON.stringify(j.spec.parameters![p]) : '—');
  return [
    ...ROWS,
    ...finals(jobs),
    ...parameters.map(p => [`parameter ${p}`, (j: Job) => parameter(j, p)] as Row),
    ...keys.map(k => [`env ${k}`, (j: Job) => (j.spec.env || {})[k] ?? '—'] as Row)
  ];
}

/** The same metric of every job, overlaid: one colour per job. */
function Overlay({ jobs }: { jobs: Job[] }): JSX.Element | null {
  const names = [...new Set(jobs.flatMap(j => Object.keys(j.metrics?.series || {})))].filter(n => !isProgress(n)).sort();
  const [name, setName] = React.useState('');
  // the lines with the metric they were fetched for: until the pick's own arrive, nothing is
  // drawn (a chart made from the previous pick's lines kept them under the new title and units)
  const [drawn, setDrawn] = React.useState<{ name: string; lines: Line[] }>({ name: '', lines: [] });
  const [log, setLog] = React.useState(false);
  const [smoothing, setSmoothing] = React.useState(0);
  const chosen = name || names.find(n => !isSystem(n)) || names[0] || '';
  React.useEffect(() => {
    if (!chosen) {
      return;
    }
    let live = true;
    Promise.all(jobs.map(j => allMetrics(j.id, [chosen]))).then(all => {
      if (live) {
        const lines = all.map((series, i) => {
          const s = series[chosen] || { steps: [], values: [] };
          return { label: `${jobName(jobs[i])} (${jobs[i].id})`, xs: s.steps, ys: s.values, length: s.steps.length };
        });
        setDrawn({ name: chosen, lines });
      }
    });
    return () => {
      live = false;
    };
  }, [chosen, jobs.map(j => j.id).join(',')]);
  if (!names.length) {
    return null;
  }
  return (
    <div className="jp-JobsCompare-metrics">
      <label>
        Metric{' '}
        <select aria-label="metric to compare" value={chosen} onChange={e => setName(e.target.value)}>
          {names.map(n => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
      <ChartControls log={log} setLog={setLog} smoothing={smoothing} setSmoothing={setSmoothing} />
      {drawn.name === chosen && drawn.lines.length ? (
        <ChartBox
          key={chosen}
          name={chosen}
          version={drawn.lines.length}
          lines={drawn.lines}
          options={{ title: chosen, log, smoothing, xLabel: 'step', format: formatFor(chosen) }}
        />
      ) : null}
    </div>
  );
}

export function CompareView({ ids, open }: { ids: string[]; open: (id: string) => void }): JSX.Element {
  const [jobs, setJobs] = React.useState<Job[]>([]);
  const [error, setError] = React.useState<string | null>(null);
  const [onlyDiff, setOnlyDiff] = React.useState(false);
  React.useEffect(() => {
    Promise.all(ids.map(id => jobsApi.get(id))).then(setJobs, e => setError(errorMessage(e)));
  }, [ids.join(',')]);
  const all = rows(jobs).map(([label, value]) => {
    const values = jobs.map(value);
    return { label, values, differs: new Set(values).size > 1 };
  });
  return (
    <div className="jp-JobsCompare">
      <ErrorNote error={error} />
      <label>
        <input type="checkbox" checked={onlyDiff} onChange={e => setOnlyDiff(e.target.checked)} /> Only differences
      </label>
      <Overlay jobs={jobs} />
      <table className="jp-JobsCompare-table">
        <thead>
          <tr>
            <th scope="col">field</th>
            {jobs.map(j => (
              <th scope="col" key={j.id}>
                <button className="jp-JobsLink" onClick={() => open(j.id)}>
                  {jobName(j)}
                </button>{' '}
                <Badge status={j.status} />
                <div className="jp-JobsMuted">{j.id}</div>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {all
            .filter(r => !onlyDiff || r.differs)
            .map(r => (
              <tr key={r.label} className={r.differs ? 'jp-mod-differs' : ''} data-field={r.label}>
                <th scope="row">{r.label}</th>
                {r.values.map((v, i) => (
                  <td key={i}>{v}</td>
                ))}
              </tr>
            ))}
        </tbody>
      </table>
    </div>
  );
}
