// jupyter_jobs in JupyterLab: a sidebar (compact live list, quick form), a main-area jobs page,
// one tab per job, and a comparison of jobs; all restored after a reload.
import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';

import { api, Spec } from './api';
import { Draft } from './model';
import { JobsPanel } from './panel';
import { metricsRenderer } from './renderer';
import { CompareTab, JobsPage, JobTab, RunTab } from './widgets';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 5h16a1 1 0 0 1 1 1v12a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1zm1 2v10h14V7H5z"/>
    <path d="M7 9.5l3 2.5-3 2.5V9.5zM11.5 14h5v1.5h-5z"/>
  </g>
</svg>`;

export const jobsIcon = new LabIcon({ name: 'jupyter-jobs:icon', svgstr: ICON_SVG });

const COMMANDS = {
  open: 'jupyter-jobs:open',
  page: 'jupyter-jobs:open-page',
  job: 'jupyter-jobs:open-job',
  compare: 'jupyter-jobs:compare',
  run: 'jupyter-jobs:open-run',
  create: 'jupyter-jobs:new',
  edit: 'jupyter-jobs:edit',
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

/** A notebook artifact opened in JupyterLab: where it is when the file browser reaches the
 * artifacts, else a copy saved under job-outputs/<job id>/. */
async function openNotebook(app: JupyterFrontEnd, id: string, path: string, folder: string | null): Promise<void> {
  if (folder !== null) {
    await app.commands.execute('docmanager:open', { path: folder ? `${folder}/${path}` : path });
    return;
  }
  const content = JSON.parse(await (await api.artifactHead(id, path, 512 * 1024 * 1024)).text());
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
  await app.commands.execute('docmanager:open', { path: copy });
}

interface Parts {
  app: JupyterFrontEnd;
  shell: ILabShell;
  panel: JobsPanel;
  jobs: WidgetTracker<JobTab>;
  pages: WidgetTracker<JobsPage>;
  runs: WidgetTracker<RunTab>;
  browser: IDefaultFileBrowser | null;
}

function addCommands({ app, shell, panel, jobs, pages, runs, browser }: Parts): void {
  const openForm = (draft: Draft) => {
    shell.activateById(panel.id);
    panel.model.open({ kind: 'form', draft });
  };
  const openJob = (id: string) => app.commands.execute(COMMANDS.job, { id });
  app.commands.addCommand(COMMANDS.open, {
    label: 'Jobs: Show Jobs Sidebar',
    icon: jobsIcon,
    execute: () => {
      shell.activateById(panel.id);
      panel.model.open({ kind: 'list' });
    }
  });
  app.commands.addCommand(COMMANDS.page, {
    label: args => (args.isLauncher ? 'Jobs' : 'Jobs: Open All Jobs'),
    caption: 'Every job in a wide table: search, sort, filter, select',
    icon: jobsIcon,
    execute: () => {
      let page = pages.currentWidget ?? pages.find(() => true);
      if (!page) {
        page = new JobsPage({ open: openJob, compare: ids => app.commands.execute(COMMANDS.compare, { ids }) });
        void pages.add(page);
        shell.add(page, 'main');
      }
      shell.activateById(page.id);
      return page;
    }
  });
  app.commands.addCommand(COMMANDS.job, {
    label: args => `Jobs: Open Job ${args.id ?? ''}`,
    execute: args => {
      const id = String(args.id);
      let tab = jobs.find(w => w.jobId === id);
      if (!tab) {
        tab = new JobTab(id, {
          open: openJob,
          edit: (spec: Spec) => openForm(spec as Draft),
          closed: () => tab?.close(),
          openNotebook: (job, path, folder) => openNotebook(app, job, path, folder),
          showFolder: folder => void app.commands.execute('filebrowser:go-to-path', { path: folder, dontShowBrowser: false }),
          openRun: runId => void app.commands.execute(COMMANDS.run, { id: runId })
        });
        void jobs.add(tab);
        shell.add(tab, 'main');
      }
      shell.activateById(tab.id);
      return tab;
    }
  });
  app.commands.addCommand(COMMANDS.run, {
    label: args => `Jobs: Open Workflow Run ${args.id ?? ''}`,
    execute: args => {
      const id = String(args.id);
      let tab = runs.find(w => w.runId === id);
      if (!tab) {
        tab = new RunTab(id, openJob);
        void runs.add(tab);
        shell.add(tab, 'main');
      }
      shell.activateById(tab.id);
      return tab;
    }
  });
  app.commands.addCommand(COMMANDS.compare, {
    label: 'Jobs: Compare Jobs',
    execute: args => {
      const tab = new CompareTab((args.ids as string[]) || [], openJob);
      shell.add(tab, 'main');
      shell.activateById(tab.id);
    }
  });
  app.commands.addCommand(COMMANDS.create, {
    label: 'Jobs: New Job',
    icon: jobsIcon,
    execute: () => openForm({ workspace: browser?.model.path ?? '' })
  });
  app.commands.addCommand(COMMANDS.edit, {
    label: 'Jobs: Edit and Resubmit',
    execute: args => openForm(args.spec as Draft)
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
  optional: [ILayoutRestorer, ICommandPalette, IDefaultFileBrowser, ILauncher, IRenderMimeRegistry],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    browser: IDefaultFileBrowser | null,
    launcher: ILauncher | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    rendermime?.addFactory(metricsRenderer); // the live chart of a %%job cell
    const jobs = new WidgetTracker<JobTab>({ namespace: 'jupyter-jobs-job' });
    const pages = new WidgetTracker<JobsPage>({ namespace: 'jupyter-jobs-page' });
    const runs = new WidgetTracker<RunTab>({ namespace: 'jupyter-jobs-run' });
    const panel = new JobsPanel(
      id => void app.commands.execute(COMMANDS.job, { id }),
      id => void app.commands.execute(COMMANDS.run, { id }),
      () => void app.commands.execute(COMMANDS.page)
    );
    panel.title.icon = jobsIcon;
    panel.title.caption = 'Jobs';
    shell.add(panel, 'left', { rank: 600 });
    addCommands({ app, shell, panel, jobs, pages, runs, browser });
    if (restorer) {
      restorer.add(panel, 'jupyter-jobs');
      void restorer.restore(jobs, { command: COMMANDS.job, args: w => ({ id: w.jobId }), name: w => w.jobId });
      void restorer.restore(pages, { command: COMMANDS.page, name: () => 'jobs' });
      void restorer.restore(runs, { command: COMMANDS.run, args: w => ({ id: w.runId }), name: w => w.runId });
    }
    for (const command of [COMMANDS.page, COMMANDS.open, COMMANDS.create]) {
      palette?.addItem({ command, category: 'Jobs' });
    }
    launcher?.add({ command: COMMANDS.page, category: 'Other', rank: 0 });
    app.contextMenu.addItem({ command: COMMANDS.runItem, selector: '.jp-DirListing-item[data-isdir]', rank: 10 });
  }
};

export default plugin;
