// host/: the host view (GET /jupyter-jobs/host) in a main-area tab: the model (model.ts), its
// call (api.ts), the view (view.tsx). The plugin (index.ts) opens, tracks and restores it.
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { HostModel } from './model';
import { HostView } from './view';

class HostContent extends ReactWidget {
  readonly model = new HostModel(() => this.isVisible);
  constructor(private readonly open: (id: string) => void) {
    super();
    this.addClass('jp-JobsMain');
  }
  render(): JSX.Element {
    return <HostView model={this.model} open={this.open} />;
  }
  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}

/** The host's GPUs, their holders, the queue across users and each user's GPU-hours. */
export class HostPage extends MainAreaWidget<HostContent> {
  constructor(open: (id: string) => void) {
    super({ content: new HostContent(open) });
    this.id = 'jupyter-jobs-host';
    this.title.label = 'GPU Host';
    this.title.closable = true;
  }
}
