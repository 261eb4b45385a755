// A job's tab and datasets: the datasets it reads, in its details ("mnist v2 at
// /datasets/mnist", each opening the Datasets view at that version), and, for a finished job,
// "Save artifacts as dataset…": a dataset's name and, optionally, a file or folder of its
// artifacts become a new version, shown once made.
import * as React from 'react';

import { ApiError, Backend, DatasetMade, Job } from '../api';
import { ErrorNote } from '../common/common';
import { describe, Field } from '../common/fields';
import { jobsApi } from '../jobs/api';
import { datasetsApi } from './api';
import { contentWords, mountPath } from './words';

/** The backends, asked once a page: whether a job's backend runs containers says where it
 * reads its datasets. */
let backends: Promise<Backend[]> | null = null;

function useContainers(backend: string): boolean | undefined {
  const [containers, setContainers] = React.useState<boolean | undefined>(undefined);
  React.useEffect(() => {
    let live = true;
    backends ??= jobsApi
      .backends()
      .then(reply => reply.backends)
      .catch(() => {
        backends = null; // asked again next time
        return [];
      });
    void backends.then(found => live && setContainers(found.find(b => b.name === backend)?.capabilities.containers));
    return () => {
      live = false;
    };
  }, [backend]);
  return containers;
}

/** The datasets a job reads: "mnist v2 at /datasets/mnist" each, the version opening the
 * Datasets view. */
export function DatasetsRead(props: { job: Job; openDataset: (name: string, version?: number | null) => void }): JSX.Element {
  const { job, openDataset } = props;
  const containers = useContainers(job.backend);
  return (
    <ul className="jp-JobsDatasetsRead" aria-label="datasets read">
      {(job.spec.datasets || []).map(ref => (
        <li key={ref.name} data-dataset={ref.name}>
          <button className="jp-JobsLink" onClick={() => openDataset(ref.name, ref.version)} title={`Show ${ref.name} in the Datasets view`}>
            {ref.name}
            {ref.version ? ` v${ref.version}` : ''}
          </button>{' '}
          at <code>{mountPath(ref, containers)}</code>
        </li>
      ))}
    </ul>
  );
}

/** A finished job's artifacts (all, or one file or folder of them) saved as a new version of a
 * dataset; then the version made, which opens in the Datasets view. */
export function SaveAsDataset(props: {
  job: Job;
  close: () => void;
  openDataset: (name: string, version?: number | null) => void;
}): JSX.Element {
  const { job, close, openDataset } = props;
  const [name, setName] = React.useState('');
  const [path, setPath] = React.useState('');
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const [made, setMade] = React.useState<DatasetMade | null>(null);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    if (!name.trim()) {
      setErrors({ name: 'give the dataset a name: a-z, 0-9, ".", "_" and "-"' });
      return;
    }
    setBusy(true);
    try {
      setMade(await datasetsApi.create(name.trim(), { job: job.id, ...(path.trim() ? { path: path.trim() } : {}) }));
    } catch (err) {
      const { message, byField } = describe(err as ApiError, f => f === 'name' || f === 'path', 'The dataset was not saved');
      setErrors(byField);
      setError(message);
    }
    setBusy(false);
  };
  if (made) {
    return (
      <div className="jp-JobsSaveDataset jp-JobsSaveDataset-made" data-dataset={made.name} data-version={made.version} role="status">
        <span>
          Saved as <b>{made.name}</b> v{made.version}: {contentWords(made)}.
        </span>
        {made.notes.length ? <span className="jp-JobsMuted"> {made.notes.join('; ')}</span> : null}
        <span className="jp-JobsButtons">
          <button className="jp-mod-styled" onClick={() => openDataset(made.name, made.version)}>
            Show in Datasets
          </button>
          <button className="jp-mod-styled" onClick={close}>
            Close
          </button>
        </span>
      </div>
    );
  }
  return (
    <form className="jp-JobsSaveDataset" noValidate onSubmit={e => void submit(e)} aria-label="save artifacts as dataset">
      <Field label="Dataset" field="name" error={errors.name}>
        <input name="name" value={name} onChange={e => setName(e.target.value)} placeholder="a new or existing dataset; e.g. features" spellCheck={false} />
      </Field>
      <Field label="Path (optional)" field="path" error={errors.path}>
        <input name="path" value={path} onChange={e => setPath(e.target.value)} placeholder="all its artifacts; or a file or folder of them, e.g. out" spellCheck={false} />
      </Field>
      <span className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          Save as dataset
        </button>
        <button type="button" className="jp-mod-styled" onClick={close}>
          Cancel
        </button>
      </span>
      <ErrorNote error={error} />
    </form>
  );
}
