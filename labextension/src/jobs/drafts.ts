// "Run as Job": a folder, a Python file or a notebook (chosen in the file browser, or an open
// notebook's toolbar) as a draft job for the form.
import { JupyterFrontEnd } from '@jupyterlab/application';
import { PathExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';

import { Draft } from '../sidebar/model';
import { detectParameters, NotebookContent } from './parameters';

export interface Item {
  path: string;
  type: string;
}

/** The file browser's first selected item when it can run as a job: a folder, a Python file
 * or a notebook. */
export function runnable(browser: IDefaultFileBrowser | null): Item | null {
  const item = browser?.selectedItems().next();
  const value = item && !item.done ? item.value : null;
  const ok = value && (value.type === 'directory' || value.path.endsWith('.py') || value.path.endsWith('.ipynb'));
  return ok ? value : null;
}

/** A notebook as a draft job: its folder is the workspace, and the parameters its cell tagged
 * `parameters` declares are filled in. */
export function notebookDraft(path: string, content: NotebookContent | null): Draft {
  return {
    workspace: PathExt.dirname(path),
    notebook: PathExt.basename(path),
    name: PathExt.basename(path, '.ipynb'),
    parameters: detectParameters(content)
  };
}

/** An item as a draft job: a folder is the workspace; a Python file runs in its folder; a
 * notebook is read (for its parameters) through the contents manager. */
export async function draftFor(app: JupyterFrontEnd, item: Item): Promise<Draft> {
  if (item.type === 'directory') {
    return { workspace: item.path, name: PathExt.basename(item.path) };
  }
  if (item.path.endsWith('.ipynb')) {
    let content: NotebookContent | null = null;
    try {
      content = (await app.serviceManager.contents.get(item.path, { type: 'notebook', content: true })).content;
    } catch {
      // unreadable here: the form still opens, without parameters
    }
    return notebookDraft(item.path, content);
  }
  return {
    workspace: PathExt.dirname(item.path),
    command: `python ${PathExt.basename(item.path)}`,
    name: PathExt.basename(item.path, '.py')
  };
}
