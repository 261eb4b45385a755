// Several jobs side by side: how they ended and how their specs differ (rows that differ are
// marked; "only differences" hides the rest).
import * as React from 'react';

import { api, errorMessage, Job } from '../api';
import { jobName } from '../table';
import { Badge, command, duration, ErrorNote } from './common';

type Row = [string, (job: Job) => string];

const ROWS: Row[] = [
  ['status', j => j.status],
  ['exit code', j => (j.exit_code === null ? '—' : String(j.exit_code))],
  ['duration', j => duration(j)],
  ['backend', j => j.backend],
  ['image', j => j.spec.image || '—'],
  ['command', j => command(j.spec)],
  ['workspace', j => j.spec.workspace || '(root)'],
  ['project', j => j.project],
  ['GPUs', j => String(j.spec.resources?.gpus ?? 0)],
  ['CPUs', j => String(j.spec.resources?.cpus ?? '—')],
  ['memory', j => j.spec.resources?.memory || '—'],
  ['timeout', j => (j.spec.timeout ? `${j.spec.timeout} s` : '—')],
  ['retries', j => String(j.spec.retries ?? 0)],
  ['tags', j => (j.spec.tags || []).join(', ') || '—']
];

/** The compared rows: the fixed ones, then one per environment variable any job sets. */
function rows(jobs: Job[]): Row[] {
  const keys = [...new Set(jobs.flatMap(j => Object.keys(j.spec.env || {})))].sort();
  return [...ROWS, ...keys.map(k => [`env ${k}`, (j: Job) => (j.spec.env || {})[k] ?? '—'] as Row)];
}

export function CompareView({ ids, open }: { ids: string[]; open: (id: string) => void }): JSX.Element {
  const [jobs, setJobs] = React.useState<Job[]>([]);
  const [error, setError] = React.useState<string | null>(null);
  const [onlyDiff, setOnlyDiff] = React.useState(false);
  React.useEffect(() => {
    Promise.all(ids.map(id => api.get(id))).then(setJobs, e => setError(errorMessage(e)));
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
