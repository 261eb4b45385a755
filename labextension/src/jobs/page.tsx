// The jobs page: a wide, sortable, searchable table of the whole history with multi-select.
// Only the rows in view are in the DOM, so 10,000 jobs scroll and filter at once.
import * as React from 'react';

import { STATUSES, Status } from '../api';
import { Badge, clock, confirmDeleteJobs, ErrorNote, ProgressBar, useSignal, when } from '../common/common';
import { count } from '../common/words';
import { KindBadge, NotebookLink, notebookOf } from '../kernels/kernels';
import { jobsApi } from './api';
import { JobsTable, jobName, seconds, SortKey } from './table';

const ROW = 30;
const COLUMNS: { key: SortKey | 'tags'; label: string }[] = [
  { key: 'name', label: 'Name' },
  { key: 'status', label: 'Status' },
  { key: 'project', label: 'Project' },
  { key: 'backend', label: 'Backend' },
  { key: 'gpus', label: 'GPUs' },
  { key: 'created', label: 'Created' },
  { key: 'duration', label: 'Duration' },
  { key: 'tags', label: 'Tags' }
];

export interface TableActions {
  open: (id: string) => void;
  compare: (ids: string[]) => void;
  /** Opens a kernel job's notebook. */
  openNotebook?: (path: string) => void;
}

function Toolbar({ table, actions }: { table: JobsTable; actions: TableActions }): JSX.Element {
  const [problem, setProblem] = React.useState<string | null>(null);
  const { filters } = table;
  const picked = table.selected.size;
  const act = async (action: (id: string) => Promise<any>) => {
    const failures = await table.forSelected(action);
    setProblem(failures.length ? failures.join('\n') : null);
  };
  const remove = async () => {
    const names = [...table.selected].map(id => {
      const job = table.job(id);
      return job ? jobName(job) : id;
    });
    if (await confirmDeleteJobs(names)) {
      await act(id => jobsApi.remove(id));
    }
  };
  const select = (label: string, key: 'status' | 'backend' | 'project', options: string[]) => (
    <select aria-label={`${label} filter`} value={filters[key]} onChange={e => table.setFilters({ [key]: e.target.value })}>
      <option value="">all {label === 'status' ? 'statuses' : `${label}s`}</option>
      {options.map(o => (
        <option key={o} value={o}>
          {o}
        </option>
      ))}
    </select>
  );
  return (
    <>
      <div className="jp-JobsPage-toolbar" role="toolbar" aria-label="jobs">
        <input
          type="search"
          className="jp-JobsPage-search"
          aria-label="search jobs by name, command, id or tag"
          placeholder="Search name, command, id, tag"
          value={filters.search}
          onChange={e => table.setFilters({ search: e.target.value })}
        />
        {select('status', 'status', STATUSES)}
        {select('backend', 'backend', table.values('backend'))}
        {select('project', 'project', table.values('project'))}
        <span className="jp-JobsPage-count" aria-live="polite">
          {table.rows.length.toLocaleString()} of {count(table.size, 'job')}{table.loading ? ' (loading…)' : ''}
        </span>
        <span className="jp-JobsPage-selection">
          {picked ? `${picked} selected` : ''}
          <button className="jp-mod-styled" disabled={!picked} onClick={() => void act(id => jobsApi.cancel(id))}>
            Cancel
          </button>
          <button className="jp-mod-styled" disabled={!picked} onClick={() => void remove()}>
            Delete
          </button>
          <button className="jp-mod-styled" disabled={picked < 2} onClick={() => actions.compare([...table.selected])}>
            Compare
          </button>
        </span>
      </div>
      <ErrorNote error={problem ?? table.error} />
    </>
  );
}

function Header({ table }: { table: JobsTable }): JSX.Element {
  const rows = table.rows;
  const all = rows.length > 0 && rows.every(j => table.selected.has(j.id));
  return (
    <div className="jp-JobsGrid-row jp-JobsGrid-head" role="row" aria-rowindex={1}>
      <span role="columnheader" className="jp-JobsGrid-check">
        <input type="checkbox" aria-label="select all shown jobs" checked={all} onChange={() => table.toggleAll()} />
      </span>
      {COLUMNS.map(({ key, label }) => {
        const sorted = table.sort.key === key;
        const sort = sorted ? (table.sort.descending ? 'descending' : 'ascending') : 'none';
        return (
          <span role="columnheader" aria-sort={key === 'tags' ? undefined : sort} key={key} className={`jp-JobsGrid-${key}`}>
            {key === 'tags' ? (
              label
            ) : (
              <button className="jp-JobsGrid-sort" onClick={() => table.sortBy(key)}>
                {label}
                {sorted ? (table.sort.descending ? ' ▾' : ' ▴') : ''}
              </button>
            )}
          </span>
        );
      })}
    </div>
  );
}

function Row(props: { table: JobsTable; index: number; actions: TableActions; now: number }): JSX.Element {
  const { table, index, actions, now } = props;
  const open = actions.open;
  const job = table.rows[index];
  const notebook = notebookOf(job); // a kernel job: the notebook it serves
  const selected = table.selected.has(job.id);
  const onKey = (e: React.KeyboardEvent<HTMLDivElement>) => {
    const sibling = (step: number) => (e.currentTarget.parentElement?.querySelector(`[aria-rowindex='${index + 2 + step}']`) as HTMLElement | null);
    if (e.key === 'Enter') {
      open(job.id);
    } else if (e.key === ' ') {
      e.preventDefault();
      table.toggle(job.id);
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const grid = e.currentTarget.closest('.jp-JobsGrid-body') as HTMLElement;
      const next = index + (e.key === 'ArrowDown' ? 1 : -1);
      if (next >= 0 && next < table.rows.length) {
        grid.scrollTop = Math.min(grid.scrollTop, next * ROW);
        grid.scrollTop = Math.max(grid.scrollTop, (next + 1) * ROW - grid.clientHeight);
        requestAnimationFrame(() => sibling(e.key === 'ArrowDown' ? 1 : -1)?.focus());
      }
    }
  };
  const secs = seconds(job, now);
  return (
    <div
      className={`jp-JobsGrid-row${selected ? ' jp-mod-selected' : ''}`}
      role="row"
      aria-rowindex={index + 2}
      aria-selected={selected}
      tabIndex={0}
      data-job-id={job.id}
      data-status={job.status}
      style={{ top: index * ROW }}
      onClick={e => ((e.target as HTMLElement).tagName === 'INPUT' ? null : open(job.id))}
      onKeyDown={onKey}
    >
      <span role="gridcell" className="jp-JobsGrid-check">
        <input type="checkbox" aria-label={`select ${jobName(job)}`} checked={selected} onChange={() => table.toggle(job.id)} tabIndex={-1} />
      </span>
      <span role="gridcell" className={`jp-JobsGrid-name${notebook ? ' jp-mod-kernel' : ''}`} title={notebook ? `kernel of ${notebook}` : jobName(job)}>
        <KindBadge job={job} />
        {notebook ? <NotebookLink path={notebook} open={actions.openNotebook} /> : jobName(job)}
      </span>
      <span role="gridcell" className="jp-JobsGrid-status" title={job.waiting ?? undefined}>
        <Badge status={job.status as Status} />
        {job.status === 'running' ? (
          <ProgressBar value={job.progress ?? null} status={job.status} label={`progress of ${jobName(job)}`} />
        ) : null}
      </span>
      <span role="gridcell" className="jp-JobsGrid-project">{job.project}</span>
      <span role="gridcell" className="jp-JobsGrid-backend">{job.backend}</span>
      <span role="gridcell" className="jp-JobsGrid-gpus">{job.spec.resources?.gpus ?? 0}</span>
      <span role="gridcell" className="jp-JobsGrid-created">{when(job.created_at)}</span>
      <span role="gridcell" className="jp-JobsGrid-duration">{secs === null ? '—' : clock(secs)}</span>
      <span role="gridcell" className="jp-JobsGrid-tags">
        {(job.spec.tags || []).map(t => (
          <span key={t} className="jp-JobsTag">
            {t}
          </span>
        ))}
      </span>
    </div>
  );
}

/** The rows in view (and a few around them) of a scrolled list of `count` rows. */
function useWindow(count: number): [React.RefObject<HTMLDivElement>, number, number] {
  const body = React.useRef<HTMLDivElement>(null);
  const [view, setView] = React.useState({ top: 0, height: 600 });
  React.useEffect(() => {
    const node = body.current!;
    const measure = () => setView({ top: node.scrollTop, height: node.clientHeight || 600 });
    const observer = new ResizeObserver(measure);
    observer.observe(node);
    node.addEventListener('scroll', measure, { passive: true });
    return () => {
      observer.disconnect();
      node.removeEventListener('scroll', measure);
    };
  }, []);
  const first = Math.max(0, Math.floor(view.top / ROW) - 10);
  const last = Math.min(count, Math.ceil((view.top + view.height) / ROW) + 10);
  return [body, first, last];
}

export function JobsPageView({ table, actions }: { table: JobsTable; actions: TableActions }): JSX.Element {
  useSignal(table.changed);
  const rows = table.rows;
  const [body, first, last] = useWindow(rows.length);
  const now = Date.now();
  const empty = !rows.length && !table.loading && !table.error;
  return (
    <div className="jp-JobsPage">
      <Toolbar table={table} actions={actions} />
      <div className="jp-JobsGrid" role="grid" aria-label="jobs" aria-rowcount={rows.length + 1} aria-multiselectable>
        <Header table={table} />
        <div className="jp-JobsGrid-body" ref={body} role="rowgroup">
          <div role="presentation" style={{ height: rows.length * ROW, position: 'relative' }}>
            {rows.slice(first, last).map((job, i) => (
              <Row key={job.id} table={table} index={first + i} actions={actions} now={now} />
            ))}
          </div>
        </div>
      </div>
      {empty ? <p className="jp-JobsEmpty">{table.size ? 'No jobs match these filters.' : 'No jobs yet.'}</p> : null}
    </div>
  );
}
