// The sidebar: a job list that updates itself, a job builder form, and a job's detail view.
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import * as React from 'react';

import { api, ApiError, Artifact, Backend, FieldError, followLogs, Job, Spec, Status, TERMINAL, url } from './api';
import { LogBuffer, LogView } from './logview';

export interface Draft {
  name?: string;
  command?: string;
  workspace?: string;
}

type View = { kind: 'list' } | { kind: 'form'; draft: Draft } | { kind: 'job'; id: string };

const STATUSES: Status[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

function when(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

function duration(job: Job): string {
  if (!job.started_at) {
    return '—';
  }
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  const seconds = Math.max(0, Math.round((end.getTime() - new Date(job.started_at).getTime()) / 1000));
  return seconds >= 3600
    ? `${Math.floor(seconds / 3600)}h${String(Math.floor(seconds / 60) % 60).padStart(2, '0')}m`
    : `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

function command(spec: Spec): string {
  return typeof spec.command === 'string' ? spec.command : spec.command.join(' ');
}

function Badge({ status }: { status: Status }): JSX.Element {
  return <span className={`jp-JobsBadge jp-mod-${status}`}>{status}</span>;
}

function ErrorNote({ error }: { error: string | null }): JSX.Element | null {
  return error ? (
    <div className="jp-JobsError" role="alert">
      {error}
    </div>
  ) : null;
}

/** The state shared by the views: which view is open, the list and its filters. */
export class JobsModel {
  view: View = { kind: 'list' };
  jobs: Job[] = [];
  nextCursor: string | null = null;
  status = '';
  project = '';
  error: string | null = null;
  private listeners = new Set<() => void>();
  private generation = 0;
  readonly poll: Poll;

  /** `visible` says whether the panel is on screen: the list is not polled while it is not. */
  constructor(visible: () => boolean) {
    this.poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: 2000, backoff: true, max: 30000 },
      standby: () => !visible() || 'when-hidden',
      name: 'jupyter-jobs:list'
    });
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed(): void {
    this.listeners.forEach(listener => listener());
  }

  open(view: View): void {
    this.view = view;
    this.changed();
  }

  /** The first page again (newest first), keeping older pages already loaded. A failure is
   * shown and rethrown, so the poll backs off. */
  async refresh(): Promise<void> {
    const generation = ++this.generation;
    try {
      const page = await api.list({ status: this.status, project: this.project, limit: 50 });
      if (generation !== this.generation) {
        return; // the filters changed meanwhile: a newer request answers
      }
      const seen = new Set(page.jobs.map(j => j.id));
      const older = this.jobs.filter(j => !seen.has(j.id) && page.jobs.length && j.created_at < page.jobs[page.jobs.length - 1].created_at);
      this.jobs = [...page.jobs, ...older];
      if (!older.length) {
        this.nextCursor = page.next_cursor;
      }
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
      this.changed();
      throw error;
    }
    this.changed();
  }

  async more(): Promise<void> {
    if (!this.nextCursor) {
      return;
    }
    try {
      const page = await api.list({ status: this.status, project: this.project, limit: 50, cursor: this.nextCursor });
      this.jobs = [...this.jobs, ...page.jobs];
      this.nextCursor = page.next_cursor;
      this.error = null;
    } catch (error) {
      this.error = (error as Error).message;
    }
    this.changed();
  }

  setFilter(status: string, project: string): void {
    this.status = status;
    this.project = project;
    this.jobs = [];
    void this.poll.refresh();
  }

  dispose(): void {
    this.poll.dispose();
  }
}

function useModel(model: JobsModel): void {
  const [, setTick] = React.useState(0);
  React.useEffect(() => model.subscribe(() => setTick(t => t + 1)), [model]);
}

function JobList({ model }: { model: JobsModel }): JSX.Element {
  const projects = Array.from(new Set(model.jobs.map(j => j.project))).sort();
  return (
    <div className="jp-JobsList">
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
          {[...new Set([...projects, model.project].filter(Boolean))].map(p => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </div>
      <ErrorNote error={model.error} />
      {model.jobs.length === 0 && !model.error ? <p className="jp-JobsEmpty">No jobs yet. Start one with “New job”.</p> : null}
      <ul className="jp-JobsRows">
        {model.jobs.map(job => (
          <li key={job.id} className="jp-JobsRow" data-job-id={job.id} data-status={job.status} onClick={() => model.open({ kind: 'job', id: job.id })}>
            <Badge status={job.status} />
            <span className="jp-JobsRow-name">{job.name || command(job.spec)}</span>
            <span className="jp-JobsRow-meta">
              {job.id} · {job.backend} · {job.project} · {duration(job)}
            </span>
          </li>
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

interface EnvRow {
  key: string;
  value: string;
}

function JobForm({ model, draft }: { model: JobsModel; draft: Draft }): JSX.Element {
  const [backends, setBackends] = React.useState<Backend[]>([]);
  const [values, setValues] = React.useState({
    name: draft.name || '',
    backend: '',
    image: '',
    command: draft.command || '',
    workspace: draft.workspace || '',
    gpus: '0',
    cpus: '',
    memory: '',
    timeout: ''
  });
  const [env, setEnv] = React.useState<EnvRow[]>([]);
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);

  React.useEffect(() => {
    api
      .backends()
      .then(reply => {
        setBackends(reply.backends);
        const preferred = reply.backends.find(b => b.default && b.available) || reply.backends.find(b => b.available);
        setValues(v => ({ ...v, backend: v.backend || preferred?.name || '' }));
      })
      .catch(e => setError((e as Error).message));
  }, []);

  const set = (field: keyof typeof values) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>) =>
    setValues({ ...values, [field]: e.target.value });

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setError(null);
    const spec: Record<string, unknown> = {
      command: values.command,
      workspace: values.workspace,
      backend: values.backend || undefined,
      env: Object.fromEntries(env.filter(r => r.key).map(r => [r.key, r.value])),
      resources: {
        gpus: values.gpus === '' ? 0 : Number(values.gpus),
        ...(values.cpus ? { cpus: Number(values.cpus) } : {}),
        ...(values.memory ? { memory: values.memory } : {})
      }
    };
    for (const key of ['name', 'image', 'timeout'] as const) {
      if (values[key]) {
        spec[key] = values[key];
      }
    }
    try {
      const job = await api.submit(spec as Partial<Spec>);
      void model.poll.refresh();
      model.open({ kind: 'job', id: job.id });
    } catch (err) {
      const apiError = err as ApiError;
      const byField: Record<string, string> = {};
      (apiError.errors || []).forEach((fe: FieldError) => (byField[fe.field] = fe.message));
      setErrors(byField);
      const count = Object.keys(byField).length;
      setError(count ? `The job was not submitted: ${count} field${count > 1 ? 's' : ''} to fix.` : apiError.message);
    } finally {
      setBusy(false);
    }
  };

  const field = (name: keyof typeof values, label: string, input: JSX.Element, errorKey: string = name) => (
    <label className="jp-JobsField" data-field={errorKey}>
      <span>{label}</span>
      {React.cloneElement(input, { name })}
      {errors[errorKey] ? <span className="jp-JobsField-error">{errors[errorKey]}</span> : null}
    </label>
  );

  return (
    <form className="jp-JobsForm" onSubmit={e => void submit(e)}>
      {field('name', 'Name', <input value={values.name} onChange={set('name')} placeholder="train-small" />)}
      {field(
        'backend',
        'Backend',
        <select value={values.backend} onChange={set('backend')}>
          {backends.map(b => (
            <option key={b.name} value={b.name} disabled={!b.available} title={b.reason || b.description}>
              {b.name}
              {b.available ? '' : ` (unavailable: ${b.reason})`}
            </option>
          ))}
        </select>
      )}
      {field('image', 'Image', <input value={values.image} onChange={set('image')} placeholder="python:3.11 (container backends)" />)}
      {field('command', 'Command', <textarea value={values.command} onChange={set('command')} placeholder="python train.py --epochs 3" rows={2} />)}
      {field('workspace', 'Workspace', <input value={values.workspace} onChange={set('workspace')} placeholder="folder under the server root" />)}
      <div className="jp-JobsRowFields">
        {field('gpus', 'GPUs', <input type="number" min={0} value={values.gpus} onChange={set('gpus')} />, 'resources.gpus')}
        {field('cpus', 'CPUs', <input value={values.cpus} onChange={set('cpus')} placeholder="1.5" />, 'resources.cpus')}
        {field('memory', 'Memory', <input value={values.memory} onChange={set('memory')} placeholder="2g" />, 'resources.memory')}
      </div>
      {field('timeout', 'Timeout', <input value={values.timeout} onChange={set('timeout')} placeholder="3600, 30m, 2h" />)}
      <div className="jp-JobsField" data-field="env">
        <span>Environment</span>
        {env.map((row, i) => (
          <div className="jp-JobsEnvRow" key={i}>
            <input aria-label="variable" value={row.key} placeholder="KEY" onChange={e => setEnv(env.map((r, j) => (j === i ? { ...r, key: e.target.value } : r)))} />
            <input aria-label="value" value={row.value} placeholder="value" onChange={e => setEnv(env.map((r, j) => (j === i ? { ...r, value: e.target.value } : r)))} />
            <button type="button" title="remove" onClick={() => setEnv(env.filter((_, j) => j !== i))}>
              ×
            </button>
          </div>
        ))}
        <button type="button" className="jp-JobsLink" onClick={() => setEnv([...env, { key: '', value: '' }])}>
          + variable
        </button>
        {errors.env ? <span className="jp-JobsField-error">{errors.env}</span> : null}
      </div>
      <ErrorNote error={error} />
      <div className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          Submit
        </button>
        <button type="button" className="jp-mod-styled" onClick={() => model.open({ kind: 'list' })}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function JobLog({ job }: { job: Job }): JSX.Element {
  const host = React.useRef<HTMLDivElement>(null);
  const [lines, setLines] = React.useState(0);
  React.useEffect(() => {
    const buffer = new LogBuffer();
    const view = new LogView(buffer);
    host.current!.appendChild(view.node);
    const abort = new AbortController();
    let count = 0;
    const timer = window.setInterval(() => {
      if (count !== buffer.length) {
        count = buffer.length;
        setLines(count);
      }
    }, 250);
    let offset = 0;
    const follow = async () => {
      // a dropped stream (server restart, idle proxy) resumes where it stopped
      while (!abort.signal.aborted) {
        try {
          const end = await followLogs(
            job.id,
            offset,
            chunk => {
              buffer.append(chunk.text, chunk.stream);
              offset = chunk.next;
              view.schedule();
            },
            abort.signal
          );
          if (end) {
            return;
          }
        } catch {
          // retried below unless the view was closed
        }
        await new Promise(resolve => window.setTimeout(resolve, 1000));
      }
    };
    void follow();
    return () => {
      abort.abort();
      window.clearInterval(timer);
      view.dispose();
      view.node.remove();
    };
  }, [job.id]);
  return (
    <div className="jp-JobsLogBox">
      <div className="jp-JobsSection">
        Log <span className="jp-JobsMuted">{lines.toLocaleString()} lines</span>
      </div>
      <div ref={host} className="jp-JobsLogHost" />
    </div>
  );
}

function JobDetail({ model, id }: { model: JobsModel; id: string }): JSX.Element {
  const [job, setJob] = React.useState<Job | null>(null);
  const [artifacts, setArtifacts] = React.useState<Artifact[]>([]);
  const [error, setError] = React.useState<string | null>(null);

  const load = React.useCallback(async () => {
    try {
      const [fresh, listed] = await Promise.all([api.get(id), api.artifacts(id)]);
      setJob(fresh);
      setArtifacts(listed.artifacts);
      return fresh;
    } catch (e) {
      setError((e as Error).message);
      return null;
    }
  }, [id]);

  React.useEffect(() => {
    let stopped = false;
    const poll = new Poll({
      factory: async () => {
        const fresh = await load();
        if (fresh && TERMINAL.includes(fresh.status) && !stopped) {
          stopped = true;
          void poll.stop();
        }
      },
      frequency: { interval: 1000, backoff: false },
      standby: 'when-hidden',
      name: `jupyter-jobs:job-${id}`
    });
    return () => poll.dispose();
  }, [id, load]);

  const act = async (action: () => Promise<Job | void>) => {
    setError(null);
    try {
      const result = await action();
      void model.poll.refresh();
      if (result && result.id !== id) {
        model.open({ kind: 'job', id: result.id });
      } else if (result === undefined) {
        model.open({ kind: 'list' });
      } else {
        await load();
      }
    } catch (e) {
      setError((e as Error).message);
    }
  };

  if (!job) {
    return (
      <div className="jp-JobsDetail">
        <button className="jp-JobsLink" onClick={() => model.open({ kind: 'list' })}>
          ← Jobs
        </button>
        <ErrorNote error={error} />
        {error ? null : <p className="jp-JobsMuted">Loading…</p>}
      </div>
    );
  }
  const terminal = TERMINAL.includes(job.status);
  return (
    <div className="jp-JobsDetail" data-job-id={job.id} data-status={job.status}>
      <button className="jp-JobsLink" onClick={() => model.open({ kind: 'list' })}>
        ← Jobs
      </button>
      <h3 className="jp-JobsTitle">
        {job.name || job.id} <Badge status={job.status} />
      </h3>
      {job.message ? (
        <div className={`jp-JobsMessage jp-mod-${job.status}`}>
          {job.reason ? <b>{job.reason}: </b> : null}
          {job.message}
        </div>
      ) : null}
      <ErrorNote error={error} />
      <div className="jp-JobsButtons">
        {terminal ? null : (
          <button className="jp-mod-styled jp-mod-warn" onClick={() => void act(() => api.cancel(job.id))}>
            Cancel
          </button>
        )}
        <button className="jp-mod-styled" onClick={() => void act(() => api.rerun(job.id))}>
          Rerun
        </button>
        {terminal ? (
          <button className="jp-mod-styled" onClick={() => void act(() => api.remove(job.id))}>
            Delete
          </button>
        ) : null}
      </div>
      <table className="jp-JobsFacts">
        <tbody>
          <tr><th>id</th><td>{job.id}</td></tr>
          <tr><th>command</th><td><code>{command(job.spec)}</code></td></tr>
          <tr><th>backend</th><td>{job.backend}{job.spec.image ? ` · ${job.spec.image}` : ''}</td></tr>
          <tr><th>workspace</th><td>{job.spec.workspace || '(root)'} · project {job.project}</td></tr>
          <tr><th>resources</th><td>{job.spec.resources.gpus} GPU · {job.spec.resources.cpus ?? '—'} CPU · {job.spec.resources.memory ?? '—'}{job.gpus.length ? ` · devices ${job.gpus.join(',')}` : ''}</td></tr>
          <tr><th>created</th><td>{when(job.created_at)}</td></tr>
          <tr><th>started</th><td>{when(job.started_at)}</td></tr>
          <tr><th>finished</th><td>{when(job.finished_at)} ({duration(job)})</td></tr>
          <tr><th>exit code</th><td>{job.exit_code ?? '—'}</td></tr>
        </tbody>
      </table>
      {job.notes.length ? <div className="jp-JobsMuted">{job.notes.join('; ')}</div> : null}
      <div className="jp-JobsSection">Artifacts</div>
      {artifacts.length ? (
        <ul className="jp-JobsArtifacts">
          {artifacts.map(a => (
            <li key={a.path}>
              <a href={url('jobs', job.id, 'artifacts') + '/' + a.path.split('/').map(encodeURIComponent).join('/')} download={a.path.split('/').pop()}>
                {a.path}
              </a>{' '}
              <span className="jp-JobsMuted">{a.size.toLocaleString()} bytes</span>
            </li>
          ))}
        </ul>
      ) : (
        <p className="jp-JobsMuted">None yet.</p>
      )}
      <JobLog job={job} />
    </div>
  );
}

function JobsApp({ model }: { model: JobsModel }): JSX.Element {
  useModel(model);
  const view = model.view;
  return (
    <div className="jp-JobsApp">
      <div className="jp-JobsHeader">
        <span className="jp-JobsHeader-title">Jobs</span>
        <button className="jp-mod-styled jp-mod-accept" onClick={() => model.open({ kind: 'form', draft: {} })}>
          New job
        </button>
      </div>
      {view.kind === 'list' ? <JobList model={model} /> : null}
      {view.kind === 'form' ? <JobForm key={JSON.stringify(view.draft)} model={model} draft={view.draft} /> : null}
      {view.kind === 'job' ? <JobDetail key={view.id} model={model} id={view.id} /> : null}
    </div>
  );
}

/** The sidebar widget. */
export class JobsPanel extends ReactWidget {
  readonly model = new JobsModel(() => this.isVisible);

  constructor() {
    super();
    this.id = 'jupyter-jobs-panel';
    this.addClass('jp-JobsPanel');
  }

  render(): JSX.Element {
    return <JobsApp model={this.model} />;
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.poll.refresh();
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
