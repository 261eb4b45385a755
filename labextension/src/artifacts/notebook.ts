// A notebook artifact opened in JupyterLab (the artifacts' "Open" in a job's tab).
import { JupyterFrontEnd } from '@jupyterlab/application';
import { PathExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';

import { ApiError } from '../api';
import { artifactsApi } from './api';

/** A notebook artifact opened in JupyterLab: where it is when the file browser reaches the
 * artifacts, else a copy saved under job-outputs/<job id>/ (a copy already open is reloaded,
 * unless it has unsaved edits: a running notebook job rewrites its notebook after each cell).
 * A notebook that is not there is an ApiError 404. */
export async function openNotebook(
  app: JupyterFrontEnd,
  docs: IDocumentManager | null,
  id: string,
  path: string,
  folder: string | null
): Promise<void> {
  if (folder !== null) {
    const where = folder ? `${folder}/${path}` : path;
    try {
      await app.serviceManager.contents.get(where, { content: false });
    } catch {
      throw new ApiError(`${path}: not found`, 404);
    }
    await app.commands.execute('docmanager:open', { path: where });
    return;
  }
  const content = JSON.parse(await (await artifactsApi.artifactHead(id, path, 512 * 1024 * 1024)).text());
  const contents = app.serviceManager.contents;
  let outputs = '';
  for (const part of ['job-outputs', id]) {
    outputs = outputs ? `${outputs}/${part}` : part;
    try {
      await contents.get(outputs, { content: false });
    } catch {
      await contents.save(outputs, { type: 'directory' });
    }
  }
  const copy = `${outputs}/${PathExt.basename(path)}`;
  await contents.save(copy, { type: 'notebook', format: 'json', content });
  const open = docs?.findWidget(copy);
  if (open && !open.context.model.dirty) {
    await open.context.revert();
  }
  await app.commands.execute('docmanager:open', { path: copy });
}
