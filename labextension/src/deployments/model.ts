// The Deployments view's state, out of React: the deployments (each with its replicas, versions
// and stats: the list says it all, so an expanded row needs no request of its own), the one
// expanded, whether the form of a new one is open, and each deployment's own error (a refused
// rollback or deletion is said in its row). The sidebar's poll (sidebar/model.ts) refreshes it
// while the view is on screen.
import { Deployment, DeploymentInput, errorMessage } from '../api';
import { ListModel } from '../common/listmodel';
import { deploymentsApi } from './api';

export class DeploymentsModel extends ListModel {
  /** The workspace a new deployment starts with (the file browser's folder, where the plugin
   * knows it). */
  currentFolder: () => string = () => '';
  private _deployments: Deployment[] = [];
  private _expanded: string | null = null;
  private _creating = false;
  private _errors = new Map<string, string>();

  get deployments(): readonly Deployment[] {
    return this._deployments;
  }
  /** The deployment whose replicas, versions and scale are shown. */
  get expanded(): string | null {
    return this._expanded;
  }
  /** Whether the form of a new deployment is open. */
  get creating(): boolean {
    return this._creating;
  }
  /** What went wrong with one deployment's last action. */
  errorOf(name: string): string | null {
    return this._errors.get(name) ?? null;
  }

  /** The deployments. A failure is shown and rethrown, so the poll backs off. */
  refresh(): Promise<void> {
    return this.fetch(deploymentsApi.list, deployments => {
      this._deployments = deployments;
      if (this._expanded && !deployments.some(d => d.name === this._expanded)) {
        this._expanded = null; // deleted elsewhere
      }
    });
  }

  /** Expand a deployment (or fold it when it is open). */
  toggle(name: string): void {
    this._expanded = this._expanded === name ? null : name;
    this.emit();
  }

  openForm(open: boolean): void {
    this._creating = open;
    this.emit();
  }

  /** A new deployment; the form closes and the deployment is shown expanded. An ApiError (a 400
   * naming the bad fields, a 409 for a taken name) is rethrown for the form to show. */
  async create(input: DeploymentInput): Promise<void> {
    const made = await deploymentsApi.create(input);
    this.supersede();
    this._deployments = [made, ...this._deployments.filter(d => d.name !== made.name)];
    this._creating = false;
    this._expanded = made.name;
    this.emit();
  }

  /** A change: a new spec, a version served again, or replicas. An ApiError is rethrown for
   * the form that asked (the scale form shows it beside its fields). */
  async update(name: string, change: DeploymentInput): Promise<void> {
    const changed = await deploymentsApi.update(name, change);
    this.supersede();
    this._deployments = this._deployments.map(d => (d.name === name ? changed : d));
    this._errors.delete(name);
    this.emit();
  }

  /** Serve `version` again (a rollback, or forward again); a refusal is said in the row. */
  async serve(name: string, version: number): Promise<void> {
    await this.act(name, () => this.update(name, { version }));
  }

  /** Delete it (its replicas are stopped; their jobs stay); a refusal is said in the row. */
  async remove(name: string): Promise<void> {
    await this.act(name, async () => {
      await deploymentsApi.remove(name);
      this.supersede();
      this._deployments = this._deployments.filter(d => d.name !== name);
      if (this._expanded === name) {
        this._expanded = null;
      }
    });
  }

  private async act(name: string, action: () => Promise<void>): Promise<void> {
    this._errors.delete(name);
    try {
      await action();
    } catch (error) {
      this._errors.set(name, errorMessage(error));
    }
    this.emit();
  }
}
