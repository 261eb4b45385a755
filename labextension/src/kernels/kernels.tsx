// kernels/: job kernels, a notebook's kernel that runs as a job of the service (kernel specs
// named jupyter-jobs-*). Here: telling a kernel job from others, the notebook it serves (as the
// file browser names it), and the small pieces the job lists and a job's tab show for it; the
// notebook's toolbar item (why its kernel waits, where it runs) is toolbar.tsx.
import { PageConfig } from '@jupyterlab/coreutils';
import * as React from 'react';

import { Job } from '../api';

/** The names of the job kernels' specs start with this. */
export const KERNEL_PREFIX = 'jupyter-jobs-';

/** A kernel job's origin: this, then the id of the kernel it runs. */
export const KERNEL_ORIGIN = 'notebook-kernel:';

export function isKernelJob(job: Pick<Job, 'kind'>): boolean {
  return job.kind === 'kernel';
}

/** A path as the file browser names it: relative to the server's root (the server may give
 * a kernel's notebook as its full path on disk). */
export function rootRelative(path: string): string {
  const root = (PageConfig.getOption('serverRoot') || '').replace(/\/+$/, '');
  if (root && path.startsWith(`${root}/`)) {
    return path.slice(root.length + 1);
  }
  return path;
}

/** The notebook a kernel job serves, relative to the server's root; null for other jobs and
 * for a kernel started with no notebook. */
export function notebookOf(job: Pick<Job, 'kind' | 'notebook_path'>): string | null {
  return isKernelJob(job) && job.notebook_path ? rootRelative(job.notebook_path) : null;
}

/** Whether a kernel job serves the notebook at `path` (relative to the server's root). */
export function servesNotebook(job: Pick<Job, 'kind' | 'notebook_path'>, path: string): boolean {
  const notebook = notebookOf(job);
  return notebook !== null && notebook.replace(/^\/+/, '') === path.replace(/^\/+/, '');
}

/** A job's GPUs as a short phrase: "GPU 0", "GPUs 0, 1", "no GPU". */
export function gpusWords(gpus: readonly number[] | undefined): string {
  if (!gpus?.length) {
    return 'no GPU';
  }
  return `${gpus.length === 1 ? 'GPU' : 'GPUs'} ${gpus.join(', ')}`;
}

/** The "kernel" mark of a kernel job, with a space after it (nothing for other jobs). */
export function KindBadge({ job }: { job: Pick<Job, 'kind'> }): JSX.Element | null {
  return isKernelJob(job) ? (
    <>
      <span className="jp-JobsBadge jp-JobsKind" data-kind="kernel" title="a notebook's kernel, running as a job">
        kernel
      </span>{' '}
    </>
  ) : null;
}

/** A kernel job's notebook as a link that opens it (plain text where nothing can open it). A
 * click or a key on it stays its own: the row around it opens the job. */
export function NotebookLink(props: { path: string; open?: (path: string) => void; className?: string }): JSX.Element {
  const { path, open, className = '' } = props;
  if (!open) {
    return <code className={`jp-JobsNotebookLink ${className}`}>{path}</code>;
  }
  return (
    <button
      className={`jp-JobsLink jp-JobsNotebookLink ${className}`}
      title={`Open ${path}`}
      onClick={e => {
        e.stopPropagation();
        open(path);
      }}
      onKeyDown={e => e.stopPropagation()}
    >
      {path}
    </button>
  );
}
