// A dataset (or model) version in words, as the Datasets and Models views and a job's tab say it: its files and size
// ("3 files, 97.7 KB"), where it came from (a folder, or a job's artifacts: a link that opens
// the job), and where a job reads it.
import * as React from 'react';

import { DatasetRef, DatasetVersion } from '../api';
import { size } from '../artifacts/artifacts';
import { count } from '../common/words';
import { DATASETS, Kind } from './kind';

/** "3 files, 97.7 KB". */
export function contentWords(version: Pick<DatasetVersion, 'files' | 'size'>): string {
  return `${count(version.files, 'file')}, ${size(version.size)}`;
}

/** Where a version came from: "folder data", or "job <id>'s artifacts (out)" with the job as a
 * link that opens its tab. */
export function Source(props: { version: Pick<DatasetVersion, 'source' | 'job'>; openJob: (id: string) => void }): JSX.Element {
  const { version, openJob } = props;
  const source = version.source as { folder?: string; job?: string; path?: string };
  const job = version.job ?? source.job;
  if (job) {
    return (
      <span className="jp-JobsDataset-source">
        job{' '}
        <button className="jp-JobsLink jp-JobsDataset-job" onClick={() => openJob(job)} title={`Open job ${job}`}>
          {job}
        </button>
        's artifacts{source.path ? <> (<code>{source.path}</code>)</> : null}
      </span>
    );
  }
  return (
    <span className="jp-JobsDataset-source">
      folder <code>{source.folder || '(root)'}</code>
    </span>
  );
}

/** Where a job reads a dataset (or a model): in a container, its mount (`/datasets/<name>`,
 * `/models/<name>`, unless it names one); elsewhere (or while the backend is not known)
 * `$JOB_DATASETS_DIR/<name>` (`$JOB_MODELS_DIR`), which is also true in a container that keeps
 * the default mount. */
export function mountPath(ref: DatasetRef, containers: boolean | undefined, kind: Kind = DATASETS): string {
  return containers ? ref.mount || `/${kind.path}/${ref.name}` : `${kind.dirVar}/${ref.name}`;
}

/** "mnist v2 at /datasets/mnist". */
export function refWords(ref: DatasetRef, containers: boolean | undefined, kind: Kind = DATASETS): string {
  return `${ref.name}${ref.version ? ` v${ref.version}` : ' (newest)'} at ${mountPath(ref, containers, kind)}`;
}
