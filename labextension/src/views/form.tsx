// The new-job form. Every state update is functional (`set(v => ...)`), so updates that
// arrive together (typing while the backends load) cannot overwrite each other.
import * as React from 'react';

import { api, ApiError, Backend, errorMessage, SpecInput } from '../api';
import { Draft, JobsModel } from '../model';
import { ErrorNote } from './common';

type Key = 'name' | 'backend' | 'image' | 'command' | 'workspace' | 'gpus' | 'cpus' | 'memory' | 'timeout' | 'retries';
type Values = Record<Key, string>;
type Input = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
/** The props that tie an input to one value: its name, value and change handler. */
type Bind = (key: Key) => { name: Key; value: string; onChange: (e: React.ChangeEvent<Input>) => void };

interface EnvRow {
  key: string;
  value: string;
}

function initial(draft: Draft): Values {
  const values = { name: '', backend: '', image: '', command: '', workspace: '', gpus: '0', cpus: '', memory: '', timeout: '', retries: '' };
  return { ...values, name: draft.name || '', command: draft.command || '', workspace: draft.workspace || '' };
}

/** The spec the form describes: empty optional fields are left to the server's defaults. */
function toSpec(values: Values, env: EnvRow[]): SpecInput {
  const spec: SpecInput = {
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
  if (values.retries) {
    spec.retries = Number(values.retries);
  }
  return spec;
}

/** The service's complaint as a message, and each bad field's problem by field name. */
function describe(error: ApiError): { message: string; byField: Record<string, string> } {
  const byField: Record<string, string> = {};
  (error.errors || []).forEach(fe => (byField[fe.field] = fe.message));
  const count = Object.keys(byField).length;
  return { message: count ? `The job was not submitted: ${count} field${count > 1 ? 's' : ''} to fix.` : error.message, byField };
}

function Field(props: { label: string; field: string; error?: string; children: React.ReactNode }): JSX.Element {
  return (
    <label className="jp-JobsField" data-field={props.field}>
      <span>{props.label}</span>
      {props.children}
      {props.error ? <span className="jp-JobsField-error">{props.error}</span> : null}
    </label>
  );
}

function BackendField({ backends, bind, error }: { backends: Backend[]; bind: Bind; error?: string }): JSX.Element {
  return (
    <Field label="Backend" field="backend" error={error}>
      <select {...bind('backend')}>
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

function ResourceFields({ bind, errors }: { bind: Bind; errors: Record<string, string> }): JSX.Element {
  return (
    <div className="jp-JobsRowFields">
      <Field label="GPUs" field="resources.gpus" error={errors['resources.gpus']}>
        <input type="number" min={0} {...bind('gpus')} />
      </Field>
      <Field label="CPUs" field="resources.cpus" error={errors['resources.cpus']}>
        <input {...bind('cpus')} placeholder="1.5" />
      </Field>
      <Field label="Memory" field="resources.memory" error={errors['resources.memory']}>
        <input {...bind('memory')} placeholder="2g" />
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

/** The backends to offer; picks the default (or first available) one unless one is chosen. */
function useBackends(setValues: React.Dispatch<React.SetStateAction<Values>>, setError: (error: string) => void): Backend[] {
  const [backends, setBackends] = React.useState<Backend[]>([]);
  React.useEffect(() => {
    let live = true;
    api
      .backends()
      .then(reply => {
        if (!live) {
          return;
        }
        setBackends(reply.backends);
        const preferred = reply.backends.find(b => b.default && b.available) || reply.backends.find(b => b.available);
        setValues(v => ({ ...v, backend: v.backend || preferred?.name || '' }));
      })
      .catch(e => live && setError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, []);
  return backends;
}

/** Submitting: on success the job opens; on failure each bad field's problem is shown. */
function useSubmit(model: JobsModel, spec: () => SpecInput) {
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setError(null);
    try {
      const job = await api.submit(spec());
      model.open({ kind: 'job', id: job.id });
    } catch (err) {
      const { message, byField } = describe(err as ApiError);
      setErrors(byField);
      setError(message);
      setBusy(false);
    }
  };
  return { submit, errors, error, setError, busy };
}

export function JobForm({ model, draft }: { model: JobsModel; draft: Draft }): JSX.Element {
  const [values, setValues] = React.useState(() => initial(draft));
  const [env, setEnv] = React.useState<EnvRow[]>([]);
  const { submit, errors, error, setError, busy } = useSubmit(model, () => toSpec(values, env));
  const backends = useBackends(setValues, setError);
  const bind: Bind = key => ({
    name: key,
    value: values[key],
    onChange: e => {
      const value = e.target.value;
      setValues(v => ({ ...v, [key]: value }));
    }
  });
  return (
    <form className="jp-JobsForm" onSubmit={e => void submit(e)}>
      <Field label="Name" field="name" error={errors.name}>
        <input {...bind('name')} placeholder="train-small" />
      </Field>
      <BackendField backends={backends} bind={bind} error={errors.backend} />
      <Field label="Image" field="image" error={errors.image}>
        <input {...bind('image')} placeholder="python:3.11 (container backends)" />
      </Field>
      <Field label="Command" field="command" error={errors.command}>
        <textarea {...bind('command')} placeholder="python train.py --epochs 3" rows={2} />
      </Field>
      <Field label="Workspace" field="workspace" error={errors.workspace}>
        <input {...bind('workspace')} placeholder="folder under the server root" />
      </Field>
      <ResourceFields bind={bind} errors={errors} />
      <Field label="Timeout" field="timeout" error={errors.timeout}>
        <input {...bind('timeout')} placeholder="3600, 30m, 2h" />
      </Field>
      <Field label="Retries" field="retries" error={errors.retries}>
        <input type="number" min={0} max={10} {...bind('retries')} placeholder="0: a lost job is not retried" />
      </Field>
      <EnvEditor rows={env} setRows={setEnv} error={errors.env} />
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
