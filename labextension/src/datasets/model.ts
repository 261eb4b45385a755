// The state of the Datasets view (or the Models view: the same, of another kind), out of React:
// the datasets (each with its newest version), the one expanded (its versions, newest first), the version expanded under it (its lineage), the form
// of a new version, and each version's own error (a refused deletion is said in place). The
// sidebar's poll (sidebar/model.ts) refreshes it while the view is on screen.
import { DatasetMade, DatasetSummary, DatasetVersion, DatasetVersionDetail, errorMessage } from '../api';
import { ListModel } from '../common/listmodel';
import { DatasetSource, versionsApi, VersionsApi } from './api';
import { DATASETS, Kind } from './kind';

/** A version's key: `name@version`. */
export function versionKey(name: string, version: number): string {
  return `${name}@${version}`;
}

/** The form of a new version: open with the dataset's name (blank for a new dataset). */
export interface NewVersion {
  name: string;
}

export class DatasetsModel extends ListModel {
  private readonly api: VersionsApi;
  /** The folder the form of a new version starts with (the file browser's, where the plugin
   * knows it). */
  currentFolder: () => string = () => '';
  private _datasets: DatasetSummary[] = [];
  private _expanded: string | null = null;
  private _versions: DatasetVersion[] = [];
  private _version: number | null = null;
  private _detail: DatasetVersionDetail | null = null;
  private _form: NewVersion | null = null;
  private _made: DatasetMade | null = null;
  private _versionErrors = new Map<string, string>();

  /** The datasets, or the models. */
  constructor(readonly kind: Kind = DATASETS) {
    super();
    this.api = versionsApi(kind);
  }

  get datasets(): readonly DatasetSummary[] {
    return this._datasets;
  }
  /** The dataset whose versions are listed. */
  get expanded(): string | null {
    return this._expanded;
  }
  /** The expanded dataset's versions, newest first. */
  get versions(): readonly DatasetVersion[] {
    return this._versions;
  }
  /** The expanded version (of the expanded dataset) whose lineage is shown. */
  get version(): number | null {
    return this._version;
  }
  /** The expanded version's lineage, once fetched. */
  get detail(): DatasetVersionDetail | null {
    return this._detail;
  }
  /** The form of a new version, when it is open. */
  get form(): NewVersion | null {
    return this._form;
  }
  /** The version the form just made (with what was left out of it), until the next action. */
  get made(): DatasetMade | null {
    return this._made;
  }
  /** What went wrong with one version (a deletion refused while jobs read it). */
  versionError(name: string, version: number): string | null {
    return this._versionErrors.get(versionKey(name, version)) ?? null;
  }

  /** The datasets, the expanded one's versions and the expanded version's lineage. A failure
   * is shown and rethrown, so the poll backs off. */
  refresh(): Promise<void> {
    const [expanded, version] = [this._expanded, this._version];
    const all = () =>
      Promise.all([
        this.api.list(),
        expanded ? this.api.versions(expanded).catch(gone) : null,
        expanded && version !== null ? this.api.version(expanded, version).catch(gone) : null
      ]);
    return this.fetch(all, ([list, versions, detail]) => {
      this._datasets = list;
      this._versions = versions ?? [];
      this._detail = detail;
      if (expanded && !versions) {
        this._expanded = this._version = null; // its last version was deleted
      } else if (version !== null && !detail) {
        this._version = null;
      }
    });
  }

  /** Expand a dataset (or fold it when it is open): its versions are fetched now. */
  toggle(name: string): void {
    this.show(this._expanded === name ? null : name);
  }

  /** Expand a version of the expanded dataset (or fold it): its lineage is fetched now. */
  toggleVersion(name: string, version: number): void {
    this.show(name, this._expanded === name && this._version === version ? null : version);
  }

  /** A dataset expanded (null: none), and one of its versions (null: none). */
  show(name: string | null, version: number | null = null): void {
    if (name !== this._expanded) {
      this._versions = [];
    }
    if (name !== this._expanded || version !== this._version) {
      this._detail = null;
    }
    this._expanded = name;
    this._version = name === null ? null : version;
    this.emit();
    this.refresh().catch(() => undefined); // shown as the view's error
  }

  /** The address of a version's files as one zip. */
  download(name: string, version: number): string {
    return this.api.download(name, version);
  }

  /** The form of a new version of `name` ('' for a new dataset); null closes it. */
  openForm(form: NewVersion | null): void {
    this._form = form;
    this._made = null;
    this.emit();
  }

  /** A new version; the form closes and the version is shown. An ApiError (a 400 naming the
   * bad fields) is rethrown for the form to show beside its fields. */
  async create(name: string, source: DatasetSource): Promise<DatasetMade> {
    const made = await this.api.create(name, source);
    this._form = null;
    this._made = made;
    this.show(made.name, made.version);
    return made;
  }

  /** Deletes a version; a refusal (409: unfinished jobs read it) is said beside the version. */
  async remove(name: string, version: number): Promise<void> {
    const key = versionKey(name, version);
    this.supersede(); // a refresh under way would bring back the version
    this._versionErrors.delete(key);
    try {
      await this.api.remove(name, version);
      this._versions = this._versions.filter(v => v.version !== version);
      if (this._expanded === name && this._version === version) {
        this._version = null;
        this._detail = null;
      }
      this.setError(null);
    } catch (error) {
      this._versionErrors.set(key, errorMessage(error));
    }
    this.emit();
    await this.refresh().catch(() => undefined);
  }
}

/** A dataset or version deleted meanwhile (404) reads as none; anything else is an error. */
function gone(error: { status?: number }): null {
  if (error.status === 404) {
    return null;
  }
  throw error;
}
