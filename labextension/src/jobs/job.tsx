// One job in its own main-area tab: a header (status, progress, what it runs, why it waits or
// failed, actions) and tabs for the log, the artifacts and the details (spec, events, GPUs).
// A notebook job opens its executed notebook (the artifact named as the notebook) from here;
// a job that exposes ports lists its endpoints (their state, a link, the URL to copy). While the
// tab is on screen the job's end is no news: the notifications leave it out (watch.ts). A
// notebook's kernel run as a job says whose kernel it is and opens that notebook; rerunning,
// scheduling or copying it as a job would start a kernel no notebook talks to: not offered.
// Its details list the datasets and models it reads; a finished job's artifacts save as a
// dataset or register as a model.
import * as React from 'react';

import { ApiError, Endpoint, errorMessage, isTerminal, Job, Spec, Status } from '../api';
import { Artifacts } from '../artifacts/artifacts';
import { Badge, confirmDeleteJobs, duration, ErrorNote, ProgressBar, useSignal, when } from '../common/common';
import { count, reasonWords } from '../common/words';
import { OpenVersion, Outputs, SaveAsVersion, VersionsRead } from '../datasets/jobparts';
import { DATASETS, Kind, MODELS } from '../datasets/kind';
import { endpointUrl } from '../endpoints/endpoints';
import { isKernelJob, KindBadge, notebookOf } from '../kernels/kernels';
import { JobLog } from '../logs/log';
import { MetricsView } from '../metrics/metrics';
import { watching } from '../notifications/watch';
import { jobsApi } from './api';
import { asCurl, asMagic, hasRedacted, whatItRuns } from './copy';
import { JobModel } from './jobmodel';
import { jobName } from './table';

/** What the job tab asks of the application around it. */
export interface JobActions {
  open: (id: string) => void;
  edit: (spec: Spec) => void;
  closed: () => void;
  /** Opens a notebook artifact; `folder` is where the file browser reaches the artifacts. */
  openNotebook: (id: string, path: string, folder: string | null) => Promise<void>;
  /** Opens a file by its path from the server's root (a kernel job's notebook). */
  openPath: (path: string) => void;
  showFolder: (folder: string) => void;
  openRun: (runId: string) => void;
  /** The form of a new schedule of this spec, in the sidebar. */
  schedule: (spec: Spec) => void;
  /** A schedule, expanded in the sidebar's Schedules view. */
  openSchedule: (scheduleId: string) => void;
  /** A dataset or a model (at one version, when given), expanded in the sidebar's Datasets or
   * Models view. */
  openVersion: OpenVersion;
}

type TabName = 'log' | 'metrics' | 'artifacts' | 'details';
const TABS: { name: TabName; label: string }[] = [
  { name: 'log', label: 'Log' },
  { name: 'metrics', label: 'Metrics' },
  { name: 'artifacts', label: 'Artifacts' },
  { name: 'details', label: 'Details' }
];

/** Copying text to the clipboard, and what came of it: `done` once copied, else the text to
 * copy by hand (a line to show, as a live status). */
function useCopied(): [string, (text: string, done: string) => void, (message: string) => void] {
  const [copied, setCopied] = React.useState('');
  const copy = (text: string, done: string) => {
    void navigator.clipboard.writeText(text).then(
      () => setCopied(done),
      () => setCopied(`Could not copy: ${text}`)
    );
  };
  return [copied, copy, setCopied];
}

function Copy({ id, spec }: { id: string; spec: Spec }): JSX.Element {
  const [copied, copyText, setCopied] = useCopied();
  const copy = (label: string, text: string, note = hasRedacted(spec) ? ' (secret values are ******** : type them in)' : '') =>
    copyText(text, `Copied as ${label}${note}.`);
  // the server writes the file (only what differs from the defaults) and names the secrets it left out
  const copyFile = () =>
    jobsApi.specFile(id).then(
      ({ text, leftOut }) => copy('job file', text, leftOut.length ? ` (left out, to fill in: ${leftOut.join(', ')})` : ''),
      error => setCopied(`Could not copy: ${errorMessage(error)}`)
    );
  return (
    <>
      <button className="jp-mod-styled" onClick={() => copy('magic', asMagic(spec))}>
        Copy as magic
      </button>
      <button className="jp-mod-styled" onClick={() => copy('curl', asCurl(spec))}>
        Copy as curl
      </button>
      <button className="jp-mod-styled" onClick={() => void copyFile()} title="YAML that jupyter jobs run -f (or POST /jobs) takes">
        Copy as job file
      </button>
      {copied ? (
        <span className="jp-JobsMuted" role="status">
          {copied}
        </span>
      ) : null}
    </>
  );
}

const ENDPOINT_STATES: Record<Endpoint['state'], string> = {
  waiting: 'not answering yet: the job has not started, or its port is not up (or its health path not 2xx)',
  ready: 'answering: open it',
  gone: 'the job ended'
};

/** The ports the job serves, reached through this server (behind its login): a row each with
 * its state (waiting, ready, gone: it follows the polled record), a link to open it once it
 * answers, and its URL to copy. */
function Endpoints({ job }: { job: Job }): JSX.Element | null {
  const [copied, copy] = useCopied();
  const endpoints = job.endpoints || [];
  if (!endpoints.length) {
    return null;
  }
  const health = (name: string) => job.spec.expose?.find(e => e.name === name)?.health;
  return (
    <div className="jp-JobsEndpoints">
      <span className="jp-JobsEndpoints-title">Endpoints</span>
      <ul className="jp-JobsEndpoints-list" aria-label="endpoints">
        {endpoints.map(e => {
          const href = endpointUrl(e);
          const ready = e.state === 'ready';
          return (
            <li key={e.name} className="jp-JobsEndpoint" data-endpoint={e.name} data-state={e.state}>
              <code className="jp-JobsEndpoint-name">{e.name}</code>
              <span className="jp-JobsMuted jp-JobsEndpoint-port">
                port {e.port}
                {health(e.name) ? ` · health ${health(e.name)}` : ''}
              </span>
              <span className={`jp-JobsBadge jp-JobsEndpoint-state jp-mod-${e.state}`} data-state={e.state} title={ENDPOINT_STATES[e.state]}>
                {e.state}
              </span>
              {ready ? (
                <a className="jp-mod-styled jp-JobsButtonLink jp-JobsEndpoint-open" href={href} target="_blank" rel="noopener noreferrer" title={href}>
                  Open
                </a>
              ) : (
                <a className="jp-mod-styled jp-JobsButtonLink jp-JobsEndpoint-open jp-mod-disabled" role="link" aria-disabled="true" title={`${e.name} is ${e.state}: ${ENDPOINT_STATES[e.state]}`}>
                  Open
                </a>
              )}
              <button className="jp-mod-styled jp-JobsEndpoint-copy" onClick={() => copy(href, `Copied the URL of ${e.name}.`)} disabled={e.state === 'gone'} title={href}>
                Copy URL
              </button>
            </li>
          );
        })}
      </ul>
      {copied ? (
        <span className="jp-JobsMuted" role="status">
          {copied}
        </span>
      ) : null}
    </div>
  );
}

/** The executed notebook's artifact: the notebook's file name. */
function executedNotebook(spec: Spec): string | null {
  return spec.notebook ? spec.notebook.split('/').pop()! : null;
}

/** The executed notebook, opened in JupyterLab; before its first cell ends it is not written. */
async function openExecuted(detail: JobModel, job: Job, actions: JobActions): Promise<void> {
  const path = executedNotebook(job.spec)!;
  try {
    await actions.openNotebook(job.id, path, detail.folder);
  } catch (error) {
    if ((error as ApiError).status === 404) {
      throw new Error(`The executed notebook is not there yet: ${path} is saved after each cell, and the job has not finished one.`);
    }
    throw error;
  }
}

function Actions(props: {
  detail: JobModel;
  job: Job;
  actions: JobActions;
  onError: (e: string | null) => void;
  onSave: (kind: Kind) => void;
}): JSX.Element {
  const { detail, job, actions, onError, onSave } = props;
  const act = (action: () => Promise<void>) => {
    onError(null);
    action().catch(e => onError(errorMessage(e)));
  };
  const terminal = isTerminal(job.status);
  const kernel = isKernelJob(job); // its notebook starts it again, not this tab
  return (
    <div className="jp-JobsButtons" role="toolbar" aria-label="job actions">
      {job.spec.notebook && job.started_at ? (
        <button className="jp-mod-styled jp-mod-accept" onClick={() => act(() => openExecuted(detail, job, actions))}>
          Open executed notebook
        </button>
      ) : null}
      {terminal ? null : (
        <button className="jp-mod-styled jp-mod-warn" onClick={() => act(async () => detail.update(await jobsApi.cancel(job.id)))}>
          Cancel
        </button>
      )}
      {kernel ? null : (
        <>
          <button className="jp-mod-styled" onClick={() => act(async () => actions.open((await jobsApi.rerun(job.id)).id))}>
            Rerun
          </button>
          <button className="jp-mod-styled" onClick={() => actions.edit(job.spec)}>
            Edit and resubmit
          </button>
          <button className="jp-mod-styled" onClick={() => actions.schedule(job.spec)} title="Run this job on a cron schedule">
            Schedule this
          </button>
        </>
      )}
      {terminal ? (
        <>
          <button className="jp-mod-styled" onClick={() => onSave(DATASETS)} title="Its artifacts (or a file or folder of them) as a new version of a dataset">
            Save artifacts as dataset…
          </button>
          <button className="jp-mod-styled" onClick={() => onSave(MODELS)} title="Its artifacts (or a file or folder of them) as a new version of a model, with its framework and this job's final metrics">
            Register as model…
          </button>
        </>
      ) : null}
      {terminal ? (
        <button className="jp-mod-styled" onClick={() =>
            act(async () => {
              if (await confirmDeleteJobs([jobName(job)])) {
                await jobsApi.remove(job.id);
                actions.closed();
              }
            })
          }
        >
          Delete
        </button>
      ) : null}
      {kernel ? null : <Copy id={job.id} spec={job.spec} />}
    </div>
  );
}

function Facts({ job, actions }: { job: Job; actions: JobActions }): JSX.Element {
  const r = job.spec.resources;
  const runs: [string, React.ReactNode][] = job.spec.notebook
    ? [
        ['notebook', <code className="jp-JobsCommand">{job.spec.notebook}</code>],
        ['parameters', <Parameters spec={job.spec} />],
        ['kernel', job.spec.kernel || "the notebook's own"]
      ]
    : [[job.spec.cell ? 'cell' : 'command', <code className="jp-JobsCommand">{whatItRuns(job.spec)}</code>]];
  const rows: [string, React.ReactNode][] = [
    ['id', job.id],
    ...runs,
    ['backend', `${job.backend}${job.spec.image ? ` · ${job.spec.image}` : ''}`],
    job.spec.git
      ? ['repository', <><GitSource git={job.spec.git} /> · project {job.project}</>]
      : ['workspace', `${job.spec.workspace || '(root)'} · project ${job.project}`],
    ['packages', requirementsText(job.spec)],
    ...[DATASETS, MODELS]
      .filter(kind => job.spec[kind.path]?.length)
      .map(kind => [kind.path, <VersionsRead kind={kind} job={job} openVersion={actions.openVersion} />] as [string, React.ReactNode]),
    ...(Object.keys(job.spec.outputs ?? {}).length ? ([['outputs', <Outputs job={job} openVersion={actions.openVersion} />]] as [string, React.ReactNode][]) : []),
    ...(job.spec.instance_type ? ([['instance type', job.spec.instance_type]] as [string, string][]) : []),
    ['resources', `${count(r?.gpus ?? 0, 'GPU')} · ${r?.cpus ?? '—'} CPU · ${r?.memory ?? '—'} memory`],
    ['GPUs held', job.gpus?.length ? job.gpus.join(', ') : '—'],
    ['created', when(job.created_at)],
    ['started', when(job.started_at)],
    [job.finished_at ? 'finished' : 'running for', job.finished_at ? `${when(job.finished_at)} (${duration(job)})` : job.started_at ? duration(job).replace('running ', '') : '—'],
    ...(job.status === 'cancelled' ? [] : ([['exit code', job.exit_code ?? '—']] as [string, React.ReactNode][])),
    ...(job.spec.retries ? ([['attempt', `${job.attempt} of ${job.spec.retries + 1}`]] as [string, string][]) : []),
    ...(job.spec.tags?.length ? ([['tags', job.spec.tags.join(', ')]] as [string, string][]) : [])
  ];
  return (
    <table className="jp-JobsFacts">
      <tbody>
        {rows.map(([name, value]) => (
          <tr key={name}>
            <th scope="row">{name}</th>
            <td>{value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A git workspace: the repository, the ref, the commit it ran at (short), the folder in it. */
function GitSource({ git }: { git: NonNullable<Spec['git']> }): JSX.Element {
  return (
    <span className="jp-JobsGit">
      <code>{git.url}</code> @ <code>{git.ref || 'HEAD'}</code>
      {git.commit ? (
        <>
          {' '}
          <code title={git.commit} data-commit={git.commit}>
            {git.commit.slice(0, 7)}
          </code>
        </>
      ) : null}
      {git.subdir ? (
        <>
          {' '}
          in <code>{git.subdir}</code>
        </>
      ) : null}
    </span>
  );
}

/** What the job installs: nothing, auto, a requirements file, or the list. */
function requirementsText(spec: Spec): string {
  const r = spec.requirements;
  if (!r || (Array.isArray(r) && !r.length)) {
    return "none (the job's Python as it is)";
  }
  return Array.isArray(r) ? r.join(', ') : r === 'auto' ? "auto (the workspace's requirements.txt, if any)" : `from ${r}`;
}

/** A notebook job's parameters, NAME = VALUE (JSON) each; none said when it has none. */
function Parameters({ spec }: { spec: Spec }): JSX.Element {
  const entries = Object.entries(spec.parameters || {});
  if (!entries.length) {
    return <span className="jp-JobsMuted">none (the notebook's own values)</span>;
  }
  return (
    <ul className="jp-JobsParameters" aria-label="parameters">
      {entries.map(([name, value]) => (
        <li key={name}>
          <code>
            {name} = {JSON.stringify(value)}
          </code>
        </li>
      ))}
    </ul>
  );
}

function Details({ job, actions }: { job: Job; actions: JobActions }): JSX.Element {
  return (
    <div className="jp-JobsDetails">
      <Facts job={job} actions={actions} />
      {job.notes?.length ? (
        <>
          <div className="jp-JobsSection">Notes</div>
          <ul className="jp-JobsNotes">
            {job.notes.map((n, i) => (
              <li key={i}>{n}</li>
            ))}
          </ul>
        </>
      ) : null}
      <div className="jp-JobsSection">Events</div>
      <ol className="jp-JobsEvents" aria-label="events">
        {(job.events || []).map((e, i) => (
          <li key={i}>
            <time dateTime={e.at}>{when(e.at)}</time> <Badge status={e.status as Status} /> {e.message || ''}
          </li>
        ))}
      </ol>
      <div className="jp-JobsSection">Spec</div>
      <pre className="jp-JobsSpec" tabIndex={0} aria-label="spec">
        {JSON.stringify(job.spec, null, 2)}
      </pre>
    </div>
  );
}

/** ARIA tabs: arrow keys move between them, the panel follows. */
function Tabs({ tab, setTab, counts }: { tab: TabName; setTab: (t: TabName) => void; counts: Partial<Record<TabName, number>> }): JSX.Element {
  const onKey = (e: React.KeyboardEvent) => {
    const i = TABS.findIndex(t => t.name === tab);
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (step) {
      const next = TABS[(i + step + TABS.length) % TABS.length].name;
      setTab(next);
      (e.currentTarget.querySelector(`[data-tab='${next}']`) as HTMLElement | null)?.focus();
    }
  };
  return (
    <div className="jp-JobsTabs" role="tablist" aria-label="job" onKeyDown={onKey}>
      {TABS.map(t => (
        <button
          key={t.name}
          role="tab"
          id={`jp-JobsTab-${t.name}`}
          data-tab={t.name}
          aria-selected={tab === t.name}
          aria-controls={`jp-JobsTabPanel-${t.name}`}
          tabIndex={tab === t.name ? 0 : -1}
          className={tab === t.name ? 'jp-mod-active' : ''}
          onClick={() => setTab(t.name)}
        >
          {t.label}
          {counts[t.name] ? <span className="jp-JobsMuted"> {counts[t.name]}</span> : null}
        </button>
      ))}
    </div>
  );
}

/** Why the job ended, in words, then the server's message where it says more. */
function EndMessage({ job }: { job: Job }): JSX.Element | null {
  const why = reasonWords(job);
  const message = job.message && !(why && job.message.includes(why)) ? job.message : '';
  if (!why && !message) {
    return null;
  }
  return (
    <div className={`jp-JobsMessage jp-mod-${job.status}`}>
      {why ? <b>{why[0].toUpperCase() + why.slice(1)}</b> : null}
      {why && message ? ': ' : null}
      {message}
    </div>
  );
}

/** A kernel job's notebook, and a link that opens it (nothing for other jobs). */
function KernelOf({ job, actions }: { job: Job; actions: JobActions }): JSX.Element | null {
  if (!isKernelJob(job)) {
    return null;
  }
  const notebook = notebookOf(job);
  return (
    <div className="jp-JobsRuns jp-JobsKernelOf">
      <KindBadge job={job} />
      the notebook's kernel, running as a job
      {notebook ? (
        <>
          {' · '}
          <button className="jp-JobsLink jp-JobsKernelOf-open" title={`Open ${notebook}`} onClick={() => actions.openPath(notebook)}>
            Open notebook
          </button>
        </>
      ) : null}
    </div>
  );
}

/** The job's tab. `shown` says whether the tab is on screen (not behind another one): while it
 * is, the job's end is no news for the notifications. */
export function JobView(props: { detail: JobModel; actions: JobActions; shown?: () => boolean }): JSX.Element {
  const { detail, actions, shown } = props;
  useSignal(detail.changed);
  React.useEffect(() => (shown ? watching.watch(detail.id, 'tab', shown) : undefined), [detail, shown]);
  const ended = detail.job && isTerminal(detail.job.status);
  React.useEffect(() => {
    if (ended) {
      watching.sawEnd(detail.id); // seen here: closing the tab before the next poll changes nothing
    }
  }, [detail, ended]);
  const [actionError, setActionError] = React.useState<string | null>(null);
  const [saving, setSaving] = React.useState<Kind | null>(null);
  React.useEffect(() => setSaving(null), [detail]); // a run's tab shows another job here
  const [tab, setTab] = React.useState<TabName>('log');
  const seen = React.useRef(new Set<TabName>());
  seen.current.add(tab); // a tab's content stays once shown (the metrics are followed from then on)
  const { job } = detail;
  const error = actionError ?? detail.error;
  if (!job) {
    return (
      <div className="jp-JobsView">
        <ErrorNote error={error} />
        {error ? null : <p className="jp-JobsMuted">Loading…</p>}
      </div>
    );
  }
  const panel = (name: TabName, content: React.ReactNode) => (
    <div
      role="tabpanel"
      id={`jp-JobsTabPanel-${name}`}
      aria-labelledby={`jp-JobsTab-${name}`}
      className="jp-JobsTabPanel"
      tabIndex={0}
      hidden={tab !== name}
    >
      {content}
    </div>
  );
  return (
    <div className="jp-JobsView" data-job-id={job.id} data-status={job.status}>
      <header className="jp-JobsView-header">
        <h2 className="jp-JobsTitle">
          {jobName(job)} <Badge status={job.status} />
          <span className="jp-JobsMuted jp-JobsTitle-meta">
            {job.id} · {job.backend} · {duration(job)}
          </span>
        </h2>
        <ProgressBar value={job.progress ?? null} status={job.status} label={`progress of ${jobName(job)}`} />
        <KernelOf job={job} actions={actions} />
        {job.spec.notebook ? (
          <div className="jp-JobsRuns">
            notebook <code>{job.spec.notebook}</code>
            {Object.entries(job.spec.parameters || {}).map(([name, value]) => (
              <code key={name}>
                {name}={JSON.stringify(value)}
              </code>
            ))}
          </div>
        ) : null}
        {job.spec.git ? (
          <div className="jp-JobsRuns jp-JobsSource">
            git <GitSource git={job.spec.git} />
          </div>
        ) : null}
        {job.workflow ? (
          <div className="jp-JobsMuted">
            <code>{job.node}</code> of workflow run{' '}
            <button className="jp-JobsLink" onClick={() => actions.openRun(job.workflow!)}>
              {job.workflow}
            </button>
          </div>
        ) : null}
        {job.schedule ? (
          <div className="jp-JobsMuted">
            started by schedule{' '}
            <button className="jp-JobsLink" onClick={() => actions.openSchedule(job.schedule!)}>
              {job.schedule}
            </button>
          </div>
        ) : null}
        {job.waiting ? <div className="jp-JobsWaiting">Waiting: {job.waiting}</div> : null}
        <EndMessage job={job} />
        <Endpoints job={job} />
        <ErrorNote error={error} />
        <Actions detail={detail} job={job} actions={actions} onError={setActionError} onSave={setSaving} />
        {saving ? (
          <SaveAsVersion key={`${job.id}-${saving.path}`} kind={saving} job={job} close={() => setSaving(null)} openVersion={actions.openVersion} />
        ) : null}
        <Tabs tab={tab} setTab={setTab} counts={{ artifacts: detail.artifacts.length }} />
      </header>
      {panel('log', <JobLog follower={detail.log} name={`${jobName(job).slice(0, 40)}-${job.id}`} />)}
      {tab === 'metrics' || seen.current.has('metrics') ? panel('metrics', <MetricsView follower={detail.metrics} />) : null}
      {panel('artifacts', <Artifacts
          id={job.id}
          artifacts={detail.artifacts}
          folder={detail.folder}
          openNotebook={path => actions.openNotebook(job.id, path, detail.folder)}
          showFolder={actions.showFolder}
        />)}
      {panel('details', <Details job={job} actions={actions} />)}
    </div>
  );
}
