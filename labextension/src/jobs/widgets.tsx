// jobs/: everything about jobs: the sidebar's job list (list.tsx) and new-job form (form.tsx,
// sources.tsx, parameters.ts), the jobs page (page.tsx over table.ts), a job's tab (job.tsx
// over jobmodel.ts), the comparison of jobs (compare.tsx), a spec written out (copy.ts), "Run
// as Job" drafts (drafts.ts), and the jobs' API calls (api.ts).
//
// The main-area widgets of jobs: the jobs page, one tab per job, and the comparison of jobs.
// Each is a MainAreaWidget over a ReactWidget; the plugin (index.ts) tracks and restores them.
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { count } from '../common/words';
import { CompareView } from './compare';
import { JobActions, JobView } from './job';
import { JobModel } from './jobmodel';
import { JobsPageView, TableActions } from './page';
import { jobName, JobsTable } from './table';
class JobContent extends ReactWidget {
  /** On screen: the tab in front of its area (Lumino's visibility), whatever the hidden mode. */
  readonly shown = (): boolean => this.isVisible;
  constructor(
    readonly detail: JobModel,
    private readonly actions: JobActions
  ) {
    super();
    this.addClass('jp-JobsMain');
  }
  render(): JSX.Element {
    return <JobView detail={this.detail} actions={this.actions} shown={this.shown} />;
  }
}

/** A job in its own tab; the tab's title follows the job's name and status. */
export class JobTab extends MainAreaWidget<JobContent> {
  constructor(
    readonly jobId: string,
    actions: JobActions
  ) {
    const detail = new JobModel(jobId);
    super({ content: new JobContent(detail, actions) });
    this.id = `jupyter-jobs-job-${jobId}`;
    this.title.label = `Job ${jobId}`;
    this.title.closable = true;
    this.addClass('jp-JobsTab');
    detail.changed.connect(() => {
      const job = detail.job;
      if (job) {
        const name = job.kind === 'kernel' ? jobName(job) : job.spec.name; // a kernel: its notebook's
        this.title.label = name || `Job ${job.id}`;
        this.title.caption = `${name || job.id}: ${job.status}`;
        this.title.className = `jp-JobsTab-title jp-mod-${job.status}`;
      }
    });
  }
  dispose(): void {
    this.content.detail.dispose();
    super.dispose();
  }
}

class PageContent extends ReactWidget {
  readonly table = new JobsTable(() => this.isVisible);
  constructor(private readonly actions: TableActions) {
    super();
    this.addClass('jp-JobsMain');
  }
  render(): JSX.Element {
    return <JobsPageView table={this.table} actions={this.actions} />;
  }
  dispose(): void {
    this.table.dispose();
    super.dispose();
  }
}

/** Every job of the history in a wide table. */
export class JobsPage extends MainAreaWidget<PageContent> {
  constructor(actions: TableActions) {
    super({ content: new PageContent(actions) });
    this.id = 'jupyter-jobs-page';
    this.title.label = 'Jobs';
    this.title.closable = true;
  }
}

class CompareContent extends ReactWidget {
  constructor(
    private readonly ids: string[],
    private readonly open: (id: string) => void
  ) {
    super();
    this.addClass('jp-JobsMain');
  }
  render(): JSX.Element {
    return <CompareView ids={this.ids} open={this.open} />;
  }
}

/** Jobs side by side. */
export class CompareTab extends MainAreaWidget<CompareContent> {
  constructor(
    readonly ids: string[],
    open: (id: string) => void
  ) {
    super({ content: new CompareContent(ids, open) });
    this.id = `jupyter-jobs-compare-${ids.join('-')}`;
    this.title.label = `Compare ${count(ids.length, 'job')}`;
    this.title.closable = true;
  }
}
