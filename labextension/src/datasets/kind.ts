// Datasets and models are the same machinery under other words: a kind says which (its REST
// collection, the spec field a job names it in, where a job reads it, and its nouns). Every
// view of datasets/ takes one, so the Models view and a job tab's "Register as model…" are the
// Datasets view and "Save artifacts as dataset…" told another kind.

export interface Kind {
  /** The REST collection (/jupyter-jobs/<path>) and the job spec's field naming what it reads. */
  readonly path: 'datasets' | 'models';
  /** "dataset", "model". */
  readonly noun: string;
  /** The sidebar view's title: "Datasets", "Models". */
  readonly title: string;
  /** Where a job reads it, outside a container: $JOB_DATASETS_DIR, $JOB_MODELS_DIR. */
  readonly dirVar: string;
  /** Whether a version records a framework, a description and what the job that made it saw. */
  readonly described: boolean;
}

export const DATASETS: Kind = { path: 'datasets', noun: 'dataset', title: 'Datasets', dirVar: '$JOB_DATASETS_DIR', described: false };
export const MODELS: Kind = { path: 'models', noun: 'model', title: 'Models', dirVar: '$JOB_MODELS_DIR', described: true };
