// jupyter_jobs in JupyterLab: a sidebar to build, list, watch, cancel and rerun jobs.
import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { LabIcon } from '@jupyterlab/ui-components';

import { Draft } from './model';
import { JobsPanel } from './panel';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 5h16a1 1 0 0 1 1 1v12a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1zm1 2v10h14V7H5z"/>
    <path d="M7 9.5l3 2.5-3 2.5V9.5zM11.5 14h5v1.5h-5z"/>
  </g>
</svg>`;

export const jobsIcon = new LabIcon({ name: 'jupyter-jobs:icon', svgstr: ICON_SVG });

const COMMANDS = {
  open: 'jupyter-jobs:open',
  create: 'jupyter-jobs:new',
  runItem: 'jupyter-jobs:run-item'
};

/** The file browser's first selected item, as a draft job: a folder is the workspace; a
 * Python file runs in its folder. */
function draftFor(browser: IDefaultFileBrowser | null): Draft | null {
  const item = browser?.selectedItems().next();
  const value = item && !item.done ? item.value : null;
  if (!value || !(value.type === 'directory' || value.path.endsWith('.py'))) {
    return null;
  }
  if (value.type === 'directory') {
    return { workspace: value.path, name: PathExt.basename(value.path) };
  }
  return {
    workspace: PathExt.dirname(value.path),
    command: `python ${PathExt.basename(value.path)}`,
    name: PathExt.basename(value.path, '.py')
  };
}

function addCommands(app: JupyterFrontEnd, shell: ILabShell, panel: JobsPanel, browser: IDefaultFileBrowser | null): void {
  const openForm = (draft: Draft) => {
    shell.activateById(panel.id);
    panel.model.open({ kind: 'form', draft });
  };
  app.commands.addCommand(COMMANDS.open, {
    label: 'Jobs: Show Jobs',
    icon: jobsIcon,
    execute: () => {
      shell.activateById(panel.id);
      panel.model.open({ kind: 'list' });
    }
  });
  app.commands.addCommand(COMMANDS.create, {
    label: 'Jobs: New Job',
    icon: jobsIcon,
    execute: () => openForm({ workspace: browser?.model.path ?? '' })
  });
  app.commands.addCommand(COMMANDS.runItem, {
    label: 'Run as Job',
    icon: jobsIcon,
    isVisible: () => draftFor(browser) !== null,
    execute: () => {
      const draft = draftFor(browser);
      if (draft) {
        openForm(draft);
      }
    }
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-jobs:plugin',
  description: 'Build, list, watch, cancel and rerun jupyter_jobs jobs.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILayoutRestorer, ICommandPalette, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    browser: IDefaultFileBrowser | null
  ) => {
    const panel = new JobsPanel();
    panel.title.icon = jobsIcon;
    panel.title.caption = 'Jobs';
    shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'jupyter-jobs');
    addCommands(app, shell, panel, browser);
    palette?.addItem({ command: COMMANDS.open, category: 'Jobs' });
    palette?.addItem({ command: COMMANDS.create, category: 'Jobs' });
    app.contextMenu.addItem({ command: COMMANDS.runItem, selector: '.jp-DirListing-item[data-isdir]', rank: 10 });
  }
};

export default plugin;
