// The sidebar: a header, then one view at a time (list, form or job), chosen by the model.
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { JobsModel } from './model';
import { useSignal } from './views/common';
import { JobForm } from './views/form';
import { JobDetail } from './views/job';
import { JobList } from './views/list';

function JobsApp({ model }: { model: JobsModel }): JSX.Element {
  useSignal(model.changed);
  const { view, detail } = model;
  return (
    <div className="jp-JobsApp">
      <div className="jp-JobsHeader">
        <span className="jp-JobsHeader-title">Jobs</span>
        <button className="jp-mod-styled jp-mod-accept" onClick={() => model.open({ kind: 'form', draft: {} })}>
          New job
        </button>
      </div>
      {view.kind === 'list' ? <JobList model={model} /> : null}
      {view.kind === 'form' ? <JobForm key={JSON.stringify(view.draft)} model={model} draft={view.draft} /> : null}
      {view.kind === 'job' && detail ? <JobDetail key={detail.id} model={model} detail={detail} /> : null}
    </div>
  );
}

/** The sidebar widget. */
export class JobsPanel extends ReactWidget {
  readonly model = new JobsModel(() => this.isVisible);

  constructor() {
    super();
    this.id = 'jupyter-jobs-panel';
    this.addClass('jp-JobsPanel');
  }

  render(): JSX.Element {
    return <JobsApp model={this.model} />;
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.poll.refresh();
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
