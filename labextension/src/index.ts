// jupyter_jobs in JupyterLab: a sidebar (compact live list, quick form, workflow runs and named
// workflows, schedules, datasets, models, deployments), a main-area jobs page, one tab per job, per workflow
// run and per named workflow, and a comparison of jobs; all restored after a reload. "Run as
// Job" (the file browser's menu, a notebook's toolbar) opens the form for a folder, a script or
// a notebook. Jobs this browser started notify when they end (notifications/notify.ts; the
// plugin's settings). A notebook whose kernel is a job kernel says in its toolbar why that
// kernel waits, or where it runs (kernels/). This file only wires the plugin: each feature lives
// in its folder (api/, common/, sidebar/, jobs/, logs/, metrics/, artifacts/, workflows/,
// schedules/, datasets/, deployments/, endpoints/, notifications/, host/, kernels/).
import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, ToolbarButton, WidgetTracker } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { browserOrigin, Spec } from './api';
import { Kind } from './datasets/kind';
import { openNotebook } from './artifacts/notebook';
import { jobsApi } from './jobs/api';
import { submission } from './jobs/copy';
import { draftFor, notebookDraft, runnable } from './jobs/drafts';
import type { JobActions } from './jobs/job';
import { NotebookContent } from './jobs/parameters';
import { CompareTab, JobsPage, JobTab } from './jobs/widgets';
import { HostPage } from './host/widget';
import { KernelItem, KernelWatch } from './kernels/toolbar';
import { metricsRenderer } from './metrics/renderer';
import { EndNotifier } from './notifications/notify';
import { Draft } from './sidebar/model';
import { JobsPanel } from './sidebar/panel';
import { DefinitionTab, RunTab } from './workflows/widgets';

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
  host: 'jupyter-jobs:open-host',
  job: 'jupyter-jobs:open-job',
  compare: 'jupyter-jobs:compare',
  run: 'jupyter-jobs:open-run',
  definition: 'jupyter-jobs:open-workflow',
  create: 'jupyter-jobs:new',
  edit: 'jupyter-jobs:edit',
  runItem: 'jupyter-jobs:run-item'
};

interface Parts {
  app: JupyterFrontEnd;
  shell: ILabShell;
  panel: JobsPanel;
  jobs: WidgetTracker<JobTab>;
  pages: WidgetTracker<JobsPage>;
  hosts: WidgetTracker<HostPage>;
  runs: WidgetTracker<RunTab>;
  definitions: WidgetTracker<DefinitionTab>;
  browser: IDefaultFileBrowser | null;
  docs: IDocumentManager | null;
}

/** The form, in the sidebar, for a draft job. */
function showForm({ shell, panel }: Pick<Parts, 'shell' | 'panel'>, draft: Draft): void {
  shell.activateById(panel.id);
  panel.model.open({ kind: 'form', draft });
}

/** The form of a new schedule of a job's spec, in the sidebar. */
function showScheduleForm({ shell, panel }: Pick<Parts, 'shell' | 'panel'>, spec: Spec): void {
  shell.activateById(panel.id);
  panel.model.open({ kind: 'new-schedule', spec: submission(spec) });
}

/** A schedule, expanded in the sidebar's Schedules view. */
function showSchedule({ shell, panel }: Pick<Parts, 'shell' | 'panel'>, id: string): void {
  shell.activateById(panel.id);
  panel.model.schedules.expand(id);
  panel.model.open({ kind: 'schedules' });
}

/** A dataset or a model (at one version, when given), expanded in the sidebar's Datasets or
 * Models view. */
function showVersion({ shell, panel }: Pick<Parts, 'shell' | 'panel'>, kind: Kind, name: string, version?: number | null): void {
  shell.activateById(panel.id);
  panel.model[kind.path].show(name, version ?? null);
  panel.model.open({ kind: kind.path });
}

/** Notifications of the ends of the jobs this browser and its kernels started, as the
 * plugin's settings say (notifyAllJobs, browserNotifications). */
function startNotifier(app: JupyterFrontEnd, settings: ISettingRegistry | null, pluginId: string): EndNotifier {
  const notifier = new EndNotifier({
    origins: () => [browserOrigin(), ...Array.from(app.serviceManager.kernels.running(), k => `kernel:${k.id}`)],
    openJob: id => void app.commands.execute(COMMANDS.job, { id }),
    openRun: id => void app.commands.execute(COMMANDS.run, { id })
  });
  settings
    ?.load(pluginId)
    .then(loaded => {
      const apply = () => {
        notifier.settings = {
          notifyAllJobs: loaded.get('notifyAllJobs').composite === true,
          browserNotifications: loaded.get('browserNotifications').composite === true
        };
      };
      apply();
      loaded.changed.connect(apply);
    })
    .catch(error => console.warn('jupyter-jobs: settings not loaded, notifying with the defaults', error));
  return notifier;
}

/** "Run as Job" on every notebook's toolbar: the notebook is saved (the job runs the file), then
 * the form opens for it, with the parameters of its open model. */
function addNotebookButton(parts: Pick<Parts, 'app' | 'shell' | 'panel'>): void {
  parts.app.docRegistry.addWidgetExtension('Notebook', {
    createNew: (widget, context) => {
      const button = new ToolbarButton({
        className: 'jp-JobsRunNotebook',
        icon: jobsIcon,
        label: 'Run as Job',
        tooltip: 'Run this notebook as a job: it is saved, then the form opens with its parameters',
        onClick: async () => {
          if (context.model.dirty && !context.model.readOnly) {
            await context.save(); // the job runs the file: the one seen here
          }
          showForm(parts, notebookDraft(context.localPath, context.model.toJSON() as NotebookContent));
        }
      });
      (widget as MainAreaWidget).toolbar.insertItem(10, 'jupyter-jobs:run', button); // a notebook panel
      return button;
    }
  });
}

/** On every notebook's toolbar, for a job kernel only: why it waits (with Cancel), then where
 * it runs (which opens its job). */
function addKernelItem(app: JupyterFrontEnd): void {
  app.docRegistry.addWidgetExtension('Notebook', {
    createNew: (widget, context) => {
      const item = new KernelItem(new KernelWatch(context.sessionContext, () => context.localPath), id =>
        void app.commands.execute(COMMANDS.job, { id })
      );
      const toolbar = (widget as MainAreaWidget).toolbar; // a notebook panel
      if (!toolbar.insertBefore('kernelName', 'jupyter-jobs:kernel', item)) {
        toolbar.addItem('jupyter-jobs:kernel', item);
      }
      return item;
    }
  });
}

/** A notebook (or any file), opened by its path from the server's root. */
function openPath(app: JupyterFrontEnd, path: string): void {
  void app.commands.execute('docmanager:open', { path });
}

/** The run a job belongs to ('' for none), from what the sidebar knows or else from the server. */
async function runOf(panel: JobsPanel, id: string): Promise<string> {
  const known = panel.model.jobs.find(j => j.id === id);
  if (known) {
    return known.workflow ?? '';
  }
  try {
    return (await jobsApi.get(id)).workflow ?? '';
  } catch {
    return ''; // the job's tab says what is wrong
  }
}

/** The host's GPUs (one tab, found again when it is opened again). */
function addHostCommand({ app, shell, hosts }: Pick<Parts, 'app' | 'shell' | 'hosts'>): void {
  app.commands.addCommand(COMMANDS.host, {
    label: args => (args.isLauncher ? 'GPU Host' : 'Jobs: Open GPU Host'),
    caption: "The host's GPUs: who holds each, how busy it is, the jobs waiting across users, GPU-hours per user",
    icon: jobsIcon,
    execute: () => {
      let page = hosts.find(() => true);
      if (!page) {
        page = new HostPage(id => void app.commands.execute(COMMANDS.job, { id }));
        void hosts.add(page);
        shell.add(page, 'main');
      }
      shell.activateById(page.id);
      return page;
    }
  });
}

function addCommands({ app, shell, panel, jobs, pages, runs, definitions, browser, docs }: Parts): void {
  const openForm = (draft: Draft) => showForm({ shell, panel }, draft);
  const openJob = (id: string) => app.commands.execute(COMMANDS.job, { id });
  /** What a job's view can ask of the lab; `close` closes the view (its job was deleted). */
  const jobActions = (close: () => void): JobActions => ({
    open: openJob,
    edit: (spec: Spec) => openForm(spec as Draft),
    closed: close,
    openNotebook: (job, path, folder) => openNotebook(app, docs, job, path, folder),
    openPath: path => openPath(app, path),
    showFolder: folder => void app.commands.execute('filebrowser:go-to-path', { path: folder, dontShowBrowser: false }),
    openRun: runId => void app.commands.execute(COMMANDS.run, { id: runId }),
    schedule: spec => showScheduleForm({ shell, panel }, spec),
    openSchedule: scheduleId => showSchedule({ shell, panel }, scheduleId),
    openVersion: (kind, name, version) => showVersion({ shell, panel }, kind, name, version)
  });
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
        page = new JobsPage({
          open: openJob,
          compare: ids => app.commands.execute(COMMANDS.compare, { ids }),
          openNotebook: path => openPath(app, path)
        });
        void pages.add(page);
        shell.add(page, 'main');
      }
      shell.activateById(page.id);
      return page;
    }
  });
  // One tab per job, found again when it is opened again; a job of a workflow run opens in the
  // run's tab, under its graph (`run` in the args when the caller knows it).
  app.commands.addCommand(COMMANDS.job, {
    label: args => `Jobs: Open Job ${args.id ?? ''}`,
    execute: async args => {
      const id = String(args.id);
      let tab = jobs.find(w => w.jobId === id);
      const run = tab ? '' : typeof args.run === 'string' ? args.run : await runOf(panel, id);
      if (run) {
        return app.commands.execute(COMMANDS.run, { id: run, job: id });
      }
      tab ??= jobs.find(w => w.jobId === id); // opened while the run was looked up
      if (!tab) {
        const made: JobTab = new JobTab(id, jobActions(() => made.close()));
        tab = made;
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
        const made: RunTab = new RunTab(id, jobActions(() => made.showJob(null)));
        tab = made;
        made.content.selectedChanged.connect(() => void runs.save(made)); // restored with its job
        void runs.add(tab);
        shell.add(tab, 'main');
      }
      if (typeof args.job === 'string' && args.job) {
        tab.showJob(args.job);
      }
      shell.activateById(tab.id);
      return tab;
    }
  });
  // One tab per named workflow: its versions, its runs, a run with inputs (which opens the run).
  app.commands.addCommand(COMMANDS.definition, {
    label: args => `Jobs: Open Named Workflow ${args.name ?? ''}`,
    execute: args => {
      const name = String(args.name);
      let tab = definitions.find(w => w.definition === name);
      if (!tab) {
        tab = new DefinitionTab(name, id => void app.commands.execute(COMMANDS.run, { id }));
        void definitions.add(tab);
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
    isVisible: () => runnable(browser) !== null,
    execute: async () => {
      const item = runnable(browser);
      if (item) {
        openForm(await draftFor(app, item));
      }
    }
  });
}

const PLUGIN_ID = 'jupyter-jobs:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Build, list, watch, cancel and rerun jupyter_jobs jobs.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILayoutRestorer, ICommandPalette, IDefaultFileBrowser, ILauncher, IRenderMimeRegistry, IDocumentManager, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    browser: IDefaultFileBrowser | null,
    launcher: ILauncher | null,
    rendermime: IRenderMimeRegistry | null,
    docs: IDocumentManager | null,
    settings: ISettingRegistry | null
  ) => {
    rendermime?.addFactory(metricsRenderer); // the live chart of a %%job cell
    const jobs = new WidgetTracker<JobTab>({ namespace: 'jupyter-jobs-job' });
    const pages = new WidgetTracker<JobsPage>({ namespace: 'jupyter-jobs-page' });
    const runs = new WidgetTracker<RunTab>({ namespace: 'jupyter-jobs-run' });
    const hosts = new WidgetTracker<HostPage>({ namespace: 'jupyter-jobs-host' });
    const definitions = new WidgetTracker<DefinitionTab>({ namespace: 'jupyter-jobs-workflow' });
    const panel = new JobsPanel(
      id => void app.commands.execute(COMMANDS.job, { id }),
      id => void app.commands.execute(COMMANDS.run, { id }),
      () => void app.commands.execute(COMMANDS.page),
      () => void app.commands.execute(COMMANDS.host),
      path => openPath(app, path),
      name => void app.commands.execute(COMMANDS.definition, { name })
    );
    const folder = () => browser?.model.path ?? ''; // a new version's default folder, a new deployment's workspace
    panel.model.datasets.currentFolder = panel.model.models.currentFolder = panel.model.deployments.currentFolder = folder;
    panel.title.icon = jobsIcon;
    panel.title.caption = 'Jobs';
    shell.add(panel, 'left', { rank: 600 });
    addCommands({ app, shell, panel, jobs, pages, hosts, runs, definitions, browser, docs });
    addHostCommand({ app, shell, hosts });
    addNotebookButton({ app, shell, panel });
    addKernelItem(app);
    if (restorer) {
      restorer.add(panel, 'jupyter-jobs');
      void restorer.restore(jobs, { command: COMMANDS.job, args: w => ({ id: w.jobId }), name: w => w.jobId });
      void restorer.restore(pages, { command: COMMANDS.page, name: () => 'jobs' });
      void restorer.restore(hosts, { command: COMMANDS.host, name: () => 'host' });
      void restorer.restore(definitions, { command: COMMANDS.definition, args: w => ({ name: w.definition }), name: w => w.definition });
      void restorer.restore(runs, {
        command: COMMANDS.run,
        args: w => ({ id: w.runId, job: w.content.selected ?? '' }),
        name: w => w.runId
      });
    }
    for (const command of [COMMANDS.page, COMMANDS.host, COMMANDS.open, COMMANDS.create]) {
      palette?.addItem({ command, category: 'Jobs' });
    }
    launcher?.add({ command: COMMANDS.page, category: 'Other', rank: 0 });
    app.contextMenu.addItem({ command: COMMANDS.runItem, selector: '.jp-DirListing-item[data-isdir]', rank: 10 });
    startNotifier(app, settings, PLUGIN_ID);
  }
};

export default plugin;
