// The new-job form: a job runs a command, or a notebook (its path, its parameters as
// NAME=VALUE lines, a kernel), from a folder or a git repository (sources.tsx), and may expose
// ports (PORT:NAME[:/health] entries), and reads datasets and models (datasets/picker.tsx). Every state update is functional (`set(v => ...)`), so updates
// that arrive together (typing while the backends load) cannot overwrite each other.
import * as React from 'react';

import { ApiError, Backend, DatasetRef, errorMessage, FieldError, Schemas, SpecInput } from '../api';
import { ErrorNote } from '../common/common';
import { Bind as BindOf, Choice, describe, Field, numberAsTyped, withoutField, withUnread } from '../common/fields';
import { DATASETS, MODELS } from '../datasets/kind';
import { VersionsField } from '../datasets/picker';
import { exposeText, parseExpose } from '../endpoints/endpoints';
import { ExposeField } from '../endpoints/field';
import { Draft, JobsModel } from '../sidebar/model';
import { jobsApi } from './api';
import { parametersText, parseParameters } from './parameters';
import {
  hiddenBySource, InstanceType, InstanceTypeField, RequirementsField, SOURCE_FIELDS, SourceFields, SourceKey, sourceSpec, sourceValues
} from './sources';

type Key =
  | 'name' | 'backend' | 'image' | 'command' | 'notebook' | 'parameters' | 'kernel'
  | 'gpus' | 'cpus' | 'memory' | 'timeout' | 'retries' | 'expose' | SourceKey;
/** What the job runs: a command, or a notebook. */
type Runs = 'command' | 'notebook';
type Values = Record<Key, string>;
type Bind = BindOf<Key>;

interface EnvRow {
  key: string;
  value: string;
}

function text(value: unknown): string {
  return value === undefined || value === null ? '' : String(value);
}

/** The form's values for a draft: a few fields, or a whole spec to edit and resubmit. */
function initial(draft: Draft): Values {
  const r = draft.resources || {};
  const command = Array.isArray(draft.command) ? draft.command.join(' ') : draft.command;
  return {
    name: text(draft.name), backend: text(draft.backend), image: text(draft.image), command: text(command),
    notebook: text(draft.notebook), parameters: parametersText(draft.parameters), kernel: text(draft.kernel),
    ...sourceValues(draft), gpus: text(r.gpus ?? (draft.instance_type ? '' : 0)), cpus: text(r.cpus), memory: text(r.memory),
    timeout: text(draft.timeout), retries: draft.retries ? text(draft.retries) : '', expose: exposeText(draft.expose)
  };
}

function initialEnv(draft: Draft): EnvRow[] {
  return Object.entries(draft.env || {}).map(([key, value]) => ({ key, value: String(value) }));
}

/** Why a field is greyed out: the chosen backend does not apply it. */
function ignoredBy(backend: Backend | undefined, key: Key): string | undefined {
  const caps = backend?.capabilities;
  const applies = { image: caps?.containers, gpus: caps?.gpus, cpus: caps?.cpus, memory: caps?.memory }[key as string];
  return caps && applies === false ? `the ${backend!.name} backend does not apply this` : undefined;
}

/** The error field of each form value whose name differs (the server's names). */
const ERROR_FIELD: Partial<Record<Key, string>> = {
  gpus: 'resources.gpus', cpus: 'resources.cpus', memory: 'resources.memory', instanceType: 'instance_type',
  gitUrl: 'git.url', gitRef: 'git.ref', gitSubdir: 'git.subdir', requirementsKind: 'requirements'
};

/** The dataset and model versions the job reads, as picked. */
type Reads = { datasets: DatasetRef[]; models: DatasetRef[] };

/** The spec the form describes (empty optional fields are left to the server's defaults), and
 * the fields the form itself could not read (parameters that are not NAME=VALUE lines, ports
 * that are not PORT:NAME[:/health]): those are sent as typed, so the server refuses the spec
 * and names its other bad fields in the same answer. */
function toSpec(
  values: Values, env: EnvRow[], reads: Reads, draft: Draft, runs: Runs, backend?: Backend
): { spec: SpecInput; unread: FieldError[] } {
  // what the form does not show (tags, project, retry_on...) is kept from the draft; what the
  // backend does not apply is left out
  for (const key of ['image', 'gpus', 'cpus', 'memory'] as const) {
    if (ignoredBy(backend, key)) {
      values = { ...values, [key]: key === 'gpus' ? '0' : '' };
    }
  }
  const {
    resources: _resources, env: _env, image: _image, timeout: _timeout, retries: _retries, name: _name,
    command: _command, notebook: _notebook, parameters: _parameters, kernel: _kernel, workspace: _workspace,
    git: _git, requirements: _requirements, instance_type: _type, expose: _expose, datasets: _datasets, models: _models, ...kept
  } = draft;
  const unread: FieldError[] = [];
  const expose = parseExpose(values.expose);
  const notebook = runs === 'notebook' ? notebookSpec(values) : undefined;
  for (const [field, error] of [['expose', expose.error], ['parameters', notebook?.error]]) {
    if (error) {
      unread.push({ field: field!, message: error });
    }
  }
  const spec: SpecInput = {
    ...kept,
    ...(notebook ? notebook.spec : { command: values.command }),
    ...sourceSpec(values),
    backend: values.backend || undefined, // none with an instance type: the type's
    env: Object.fromEntries(env.filter(r => r.key).map(r => [r.key, r.value])),
    resources: {
      ...(values.gpus === '' ? {} : { gpus: numberAsTyped(values.gpus) }),
      ...(values.cpus ? { cpus: numberAsTyped(values.cpus) } : {}),
      ...(values.memory ? { memory: values.memory } : {})
    }
  };
  for (const key of ['name', 'image', 'timeout'] as const) {
    if (values[key]) {
      spec[key] = values[key];
    }
  }
  if (values.retries) {
    spec.retries = numberAsTyped(values.retries);
  }
  for (const kind of [DATASETS, MODELS]) {
    if (reads[kind.path].length) {
      spec[kind.path] = reads[kind.path];
    }
  }
  if (expose.error) {
    spec.expose = values.expose as unknown as SpecInput['expose'];
  } else if (expose.expose.length) {
    spec.expose = expose.expose;
  }
  return { spec, unread };
}

/** A notebook job's part of the spec: the notebook, its parameters (as typed when they cannot
 * be read), its kernel if given. */
function notebookSpec(values: Values): { spec: Partial<SpecInput>; error: string | null } {
  const { parameters, error } = parseParameters(values.parameters);
  const sent = error ? (values.parameters as unknown as SpecInput['parameters']) : parameters;
  return { spec: { notebook: values.notebook, parameters: sent, ...(values.kernel.trim() ? { kernel: values.kernel.trim() } : {}) }, error };
}

function BackendField(props: { backends: Backend[]; bind: Bind; type?: InstanceType; error?: string }): JSX.Element {
  const { backends, bind, type, error } = props;
  return (
    <Field label="Backend" field="backend" error={error}>
      <select {...bind('backend')}>
        {type ? <option value="">the instance type's ({type.backend})</option> : null}
        {backends.map(b => (
          <option key={b.name} value={b.name} disabled={!b.available} title={b.reason || b.description}>
            {b.name}
            {b.available ? '' : ` (unavailable: ${b.reason})`}
          </option>
        ))}
      </select>
    </Field>
  );
}

function ResourceFields(props: { bind: Bind; errors: Record<string, string>; backend?: Backend; type?: InstanceType }): JSX.Element {
  const { bind, errors, backend, type } = props;
  const ignored = (key: Key) => ignoredBy(backend, key);
  const typed = (type?.spec.resources || {}) as Record<string, unknown>;
  const hint = (key: string, example: string) => (typed[key] !== undefined ? `the type's: ${typed[key]}` : example);
  return (
    <div className="jp-JobsRowFields">
      <Field label="GPUs" field="resources.gpus" error={errors['resources.gpus']} ignored={ignored('gpus')}>
        <input inputMode="numeric" {...bind('gpus')} placeholder={hint('gpus', '0')} disabled={!!ignored('gpus')} />
      </Field>
      <Field label="CPUs" field="resources.cpus" error={errors['resources.cpus']} ignored={ignored('cpus')}>
        <input {...bind('cpus')} placeholder={hint('cpus', 'e.g. 1.5')} disabled={!!ignored('cpus')} />
      </Field>
      <Field label="Memory" field="resources.memory" error={errors['resources.memory']} ignored={ignored('memory')}>
        <input {...bind('memory')} placeholder={hint('memory', 'e.g. 2g')} disabled={!!ignored('memory')} />
      </Field>
    </div>
  );
}

function EnvEditor(props: { rows: EnvRow[]; setRows: React.Dispatch<React.SetStateAction<EnvRow[]>>; error?: string }): JSX.Element {
  const { rows, setRows, error } = props;
  const edit = (i: number, part: keyof EnvRow) => (e: React.ChangeEvent<HTMLInputElement>) => {
    const text = e.target.value;
    setRows(current => current.map((r, j) => (j === i ? { ...r, [part]: text } : r)));
  };
  return (
    <div className="jp-JobsField" data-field="env">
      <span>Environment</span>
      {rows.map((row, i) => (
        <div className="jp-JobsEnvRow" key={i}>
          <input aria-label="variable" value={row.key} placeholder="KEY" onChange={edit(i, 'key')} />
          <input aria-label="value" value={row.value} placeholder="value" onChange={edit(i, 'value')} />
          <button type="button" title="remove" onClick={() => setRows(current => current.filter((_, j) => j !== i))}>
            ×
          </button>
        </div>
      ))}
      <button type="button" className="jp-JobsLink" onClick={() => setRows(current => [...current, { key: '', value: '' }])}>
        + variable
      </button>
      {error ? <span className="jp-JobsField-error">{error}</span> : null}
    </div>
  );
}

type Offered = { backends: Backend[]; types: InstanceType[]; gpus: Schemas['GPUInfo'][]; preferred: string };

/** The backends and instance types to offer; picks the default (or first available) backend
 * unless one is chosen or an instance type names its own. */
function useBackends(setValues: React.Dispatch<React.SetStateAction<Values>>, setError: (error: string) => void): Offered {
  const [offered, setOffered] = React.useState<Offered>({ backends: [], types: [], gpus: [], preferred: '' });
  React.useEffect(() => {
    let live = true;
    jobsApi
      .backends()
      .then(reply => {
        if (!live) {
          return;
        }
        const preferred = reply.backends.find(b => b.default && b.available) || reply.backends.find(b => b.available);
        setOffered({ backends: reply.backends, types: reply.instance_types || [], gpus: reply.gpus || [], preferred: preferred?.name || '' });
        setValues(v => ({ ...v, backend: v.backend || (v.instanceType ? '' : preferred?.name || '') }));
      })
      .catch(e => live && setError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, []);
  return offered;
}

/** Submitting: on success the job opens; on failure each bad field's problem is shown.
 * Scheduling: the form's job goes to the form of a new schedule (Cancel there comes back). */
function useSubmit(model: JobsModel, spec: () => ReturnType<typeof toSpec>, shown: (field: string) => boolean) {
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const start = () => {
    setErrors({});
    setError(null);
  };
  /** An edit of `field` clears its error (and its parts', `expose.1.name`). */
  const clear = (field: string) => setErrors(current => withoutField(current, field));
  /** One answer for every bad field: the server's, with what the form could not read in place
   * of the server's reading of the same field. */
  const fail = (err: unknown, what: string, unread: FieldError[] = []) => {
    const { message, byField } = describe(withUnread(err as ApiError, unread), shown, what);
    setErrors(byField);
    setError(message);
    setBusy(false);
  };
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    start();
    const { spec: sent, unread } = spec();
    try {
      const job = await jobsApi.submit(sent);
      model.open({ kind: 'list' });
      model.openJob(job.id);
    } catch (err) {
      fail(err, 'The job was not submitted', unread);
    }
  };
  const schedule = () => {
    start();
    try {
      const { spec: job, unread } = spec();
      if (unread.length) {
        throw new ApiError(unread[0].message, 400, unread);
      }
      model.open({ kind: 'new-schedule', spec: job, back: { kind: 'form', draft: job } });
    } catch (err) {
      fail(err, 'The job cannot be scheduled');
    }
  };
  return { submit, schedule, errors, clear, error, setError, busy };
}

const RUNS: [Runs, string][] = [
  ['command', 'A command'],
  ['notebook', 'A notebook']
];

/** A notebook job's fields: the notebook, its parameters, its kernel. */
function NotebookFields({ bind, errors }: { bind: Bind; errors: Record<string, string> }): JSX.Element {
  const lines = bind('parameters').value.split('\n').length;
  return (
    <>
      <Field label="Notebook" field="notebook" error={errors.notebook}>
        <input {...bind('notebook')} placeholder="a notebook in the workspace, e.g. train.ipynb" />
      </Field>
      <Field label="Parameters" field="parameters" error={errors.parameters}>
        <textarea {...bind('parameters')} placeholder={'e.g. lr=0.01\nlayers=[64, 32]'} rows={Math.min(12, Math.max(3, lines + 1))} spellCheck={false} />
        <span className="jp-JobsMuted jp-JobsHint">One NAME=VALUE a line; a VALUE that reads as JSON is JSON, else text.</span>
      </Field>
      <Field label="Kernel" field="kernel" error={errors.kernel}>
        <input {...bind('kernel')} placeholder="the notebook's own; e.g. python3" />
      </Field>
    </>
  );
}

/** The fields a runs choice hides. */
const HIDDEN: Record<Runs, string[]> = { command: ['notebook', 'parameters', 'kernel'], notebook: ['command'] };
const FIELDS = ['name', 'backend', 'image', 'command', 'notebook', 'parameters', 'kernel', 'timeout', 'retries', 'env', 'expose', 'datasets', 'models', ...SOURCE_FIELDS];

export function JobForm({ model, draft }: { model: JobsModel; draft: Draft }): JSX.Element {
  const [values, setValues] = React.useState(() => initial(draft));
  const [runs, setRuns] = React.useState<Runs>(draft.notebook ? 'notebook' : 'command');
  const [env, setEnv] = React.useState<EnvRow[]>(() => initialEnv(draft));
  const [reads, setReads] = React.useState<Reads>(() => ({ datasets: draft.datasets ?? [], models: draft.models ?? [] }));
  const [loadError, setLoadError] = React.useState<string | null>(null);
  const { backends, types, gpus, preferred } = useBackends(setValues, setLoadError);
  const type = types.find(t => t.name === values.instanceType);
  const backend = backends.find(b => b.name === (values.backend || type?.backend));
  const shown = (field: string) =>
    (FIELDS.includes(field) || /^(resources\.(gpus|cpus|memory)|requirements\.\d+|(expose|datasets|models)\.\d+(\.\w+)?)$/.test(field)) &&
    !HIDDEN[runs].includes(field) && !hiddenBySource(values.source).includes(field);
  const { submit, schedule, errors, clear, error, busy } = useSubmit(model, () => toSpec(values, env, reads, draft, runs, backend), shown);
  const imageIgnored = ignoredBy(backend, 'image');
  const bind: Bind = key => ({
    name: key,
    value: values[key],
    onChange: e => {
      const value = e.target.value;
      setValues(v => ({ ...v, [key]: value }));
      clear(ERROR_FIELD[key] ?? key);
    }
  });
  // a type's backend and GPUs apply unless set here; none again: the default backend
  const chooseType = (name: string) =>
    setValues(v => ({
      ...v,
      instanceType: name,
      ...(name ? { backend: '', gpus: v.gpus === '0' ? '' : v.gpus } : { backend: v.backend || preferred, gpus: v.gpus || '0' })
    }));
  return (
    // noValidate: the browser's own checks stopped at the first bad number, one at a time; the
    // server's 400 names every bad field at once
    <form className="jp-JobsForm" noValidate onSubmit={e => void submit(e)}>
      <Field label="Name" field="name" error={errors.name}>
        <input {...bind('name')} placeholder="e.g. train-small" />
      </Field>
      <InstanceTypeField types={types} gpus={gpus} bind={bind} onChange={chooseType} error={errors.instance_type} />
      <BackendField backends={backends} bind={bind} type={type} error={errors.backend} />
      <Field label="Image" field="image" error={errors.image} ignored={imageIgnored}>
        <input {...bind('image')} placeholder="e.g. python:3.11" disabled={!!imageIgnored} />
      </Field>
      <Choice legend="Runs" field="runs" choices={RUNS} value={runs} onChange={setRuns} />
      {runs === 'command' ? (
        <Field label="Command" field="command" error={errors.command}>
          <textarea {...bind('command')} placeholder="e.g. python train.py --epochs 3" rows={2} />
        </Field>
      ) : (
        <NotebookFields bind={bind} errors={errors} />
      )}
      <SourceFields bind={bind} errors={errors} setSource={source => setValues(v => ({ ...v, source }))} />
      <RequirementsField bind={bind} errors={errors} />
      <ResourceFields bind={bind} errors={errors} backend={backend} type={type} />
      <Field label="Timeout" field="timeout" error={errors.timeout}>
        <input {...bind('timeout')} placeholder="none; e.g. 3600, 30m, 2h" />
      </Field>
      <Field label="Retries" field="retries" error={errors.retries}>
        <input inputMode="numeric" {...bind('retries')} placeholder="none; e.g. 2" />
      </Field>
      <ExposeField
        input={bind('expose')}
        errors={errors}
        placeholder="none; e.g. 8000:web or 6006:board:/healthz"
        hint="the job listens on $PORT_<NAME> and opens from its tab."
      />
      {[DATASETS, MODELS].map(kind => (
        <VersionsField key={kind.path} kind={kind} chosen={reads[kind.path]} onChange={chosen => (setReads(r => ({ ...r, [kind.path]: chosen })), clear(kind.path))} errors={errors} />
      ))}
      <EnvEditor rows={env} setRows={rows => (setEnv(rows), clear('env'))} error={errors.env} />
      <ErrorNote error={error ?? loadError} />
      <div className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          Submit
        </button>
        <button type="button" className="jp-mod-styled" onClick={schedule} title="Run this job on a cron schedule">
          Schedule…
        </button>
        <button type="button" className="jp-mod-styled" onClick={() => model.open({ kind: 'list' })}>
          Cancel
        </button>
      </div>
    </form>
  );
}
