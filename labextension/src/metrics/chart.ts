// Line charts of series with uPlot (a well-kept canvas charting library that draws a million
// points in milliseconds): what is drawn is downsampled to about two points per pixel column
// of the range in view (the lowest and highest of each column, so no spike is hidden); the
// data itself is never thinned. Drag to zoom, double-click to reset; hover shows values.
import uPlot from 'uplot';

export interface Line {
  label: string;
  xs: ArrayLike<number>;
  ys: ArrayLike<number>;
  length: number;
}

export interface ChartOptions {
  title: string;
  log: boolean;
  /** exponential smoothing weight, 0 (none) to 0.99 */
  smoothing: number;
  xLabel: string;
  format?: (value: number) => string;
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** ys smoothed by an exponential moving average with `weight` (debiased, as TensorBoard does). */
export function smooth(ys: ArrayLike<number>, length: number, weight: number): Float64Array {
  const out = new Float64Array(length);
  let last = 0;
  let debias = 1;
  for (let i = 0; i < length; i++) {
    last = last * weight + (1 - weight) * ys[i];
    debias *= weight;
    out[i] = weight ? last / (1 - debias) : ys[i];
  }
  return out;
}

/** First index with xs[i] >= x (xs ascending). */
function lowerBound(xs: ArrayLike<number>, length: number, x: number): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

/** One line over [x0, x1] in at most 2 * buckets points: each bucket's min and max, in order. */
export function downsample(xs: ArrayLike<number>, ys: ArrayLike<number>, length: number, x0: number, x1: number,
  buckets: number): [number[], (number | null)[]] {
  const from = Math.max(0, lowerBound(xs, length, x0) - 1);
  const to = Math.min(length, lowerBound(xs, length, x1) + 1);
  if (to - from <= buckets * 2) {
    return [Array.from({ length: to - from }, (_, i) => xs[from + i]), Array.from({ length: to - from }, (_, i) => ys[from + i])];
  }
  const outX: number[] = [];
  const outY: number[] = [];
  const width = (xs[to - 1] - xs[from]) / buckets || 1;
  let i = from;
  while (i < to) {
    const end = xs[i] + width;
    let lo = i;
    let hi = i;
    let j = i;
    for (; j < to && (xs[j] < end || j === i); j++) {
      if (ys[j] < ys[lo]) {
        lo = j;
      }
      if (ys[j] > ys[hi]) {
        hi = j;
      }
    }
    const [a, b] = lo <= hi ? [lo, hi] : [hi, lo];
    outX.push(xs[a]);
    outY.push(ys[a]);
    if (b !== a) {
      outX.push(xs[b]);
      outY.push(ys[b]);
    }
    i = j;
  }
  return [outX, outY];
}

/** Several lines on one x axis: each downsampled on its own, then joined (uPlot.join). On a
 * log scale, values that are not positive have no place: they are left out (null). */
function frame(lines: Line[], x0: number, x1: number, buckets: number, weight: number, log: boolean): uPlot.AlignedData {
  const parts = lines.map(line => {
    const ys = weight ? smooth(line.ys, line.length, weight) : line.ys;
    const [x, y] = downsample(line.xs, ys, line.length, x0, x1, buckets);
    return [x, log ? y.map(v => (v !== null && v > 0 ? v : null)) : y] as uPlot.AlignedData;
  });
  if (parts.length === 1) {
    return parts[0];
  }
  return uPlot.join(parts);
}

function extent(lines: Line[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const line of lines) {
    if (line.length) {
      lo = Math.min(lo, line.xs[0]);
      hi = Math.max(hi, line.xs[line.length - 1]);
    }
  }
  return lo <= hi ? [lo, hi === lo ? lo + 1 : hi] : [0, 1];
}

export class Chart {
  readonly node: HTMLDivElement;
  private plot: uPlot | null = null;
  private zoom: [number, number] | null = null;
  private frameId = 0;
  private resize: ResizeObserver;

  constructor(
    private lines: Line[],
    private options: ChartOptions
  ) {
    this.node = document.createElement('div');
    this.node.className = 'jp-JobsChart';
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(this.node);
  }

  /** New points arrived (or the lines changed): redrawn on the next frame. */
  update(lines?: Line[]): void {
    if (lines) {
      if (lines.length !== this.lines.length) {
        this.plot?.destroy(); // uPlot's series are fixed: a new line means a new plot
        this.plot = null;
      }
      this.lines = lines;
    }
    if (!this.frameId) {
      this.frameId = requestAnimationFrame(() => {
        this.frameId = 0;
        this.draw();
      });
    }
  }

  setOptions(options: Partial<ChartOptions>): void {
    const rebuild = options.log !== undefined && options.log !== this.options.log;
    this.options = { ...this.options, ...options };
    if (rebuild) {
      this.plot?.destroy();
      this.plot = null;
    }
    this.update();
  }

  dispose(): void {
    cancelAnimationFrame(this.frameId);
    this.resize.disconnect();
    this.plot?.destroy();
  }

  private width(): number {
    return Math.max(200, this.node.clientWidth || 400);
  }

  private fit(): void {
    if (this.plot && this.node.clientWidth) {
      this.plot.setSize({ width: this.width(), height: 180 });
      this.update();
    }
  }

  private data(): uPlot.AlignedData {
    const [x0, x1] = this.zoom ?? extent(this.lines);
    return frame(this.lines, x0, x1, Math.ceil(this.width()), this.options.smoothing, this.options.log);
  }

  private draw(): void {
    const data = this.data();
    // what the chart holds and draws, for tests and the curious: points, lines
    this.node.dataset.points = String(this.lines.reduce((n, l) => n + l.length, 0));
    this.node.dataset.lines = String(this.lines.length);
    if (this.plot) {
      this.plot.setData(data, !this.zoom);
      if (this.zoom) {
        this.plot.setScale('x', { min: this.zoom[0], max: this.zoom[1] });
      }
      return;
    }
    const { title, log, xLabel, format } = this.options;
    // a canvas cannot read CSS variables: the theme's colours, resolved now
    const css = getComputedStyle(this.node);
    const ink = css.getPropertyValue('--jp-ui-font-color1').trim() || '#333';
    const grid = css.getPropertyValue('--jp-border-color2').trim() || '#ddd';
    const tick = (v: number | null) => (v === null ? '' : format ? format(v) : String(+v.toPrecision(4)));
    const value = (_u: uPlot, v: number | null) => (v === null || v === undefined ? '—' : format ? format(v) : String(+v.toPrecision(6)));
    this.plot = new uPlot(
      {
        title,
        width: this.width(),
        height: 180,
        scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
        axes: [
          { label: xLabel, stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 64, values: (_u, vs) => vs.map(tick) }
        ],
        series: [{ label: xLabel }, ...this.lines.map((l, i) => ({ label: l.label, stroke: COLORS[i % COLORS.length], width: 1.5, value, spanGaps: true }))],
        cursor: { drag: { x: true, y: false, setScale: false } },
        hooks: {
          setSelect: [
            u => {
              if (u.select.width > 2) {
                this.zoom = [u.posToVal(u.select.left, 'x'), u.posToVal(u.select.left + u.select.width, 'x')];
                u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
                this.update();
              }
            }
          ]
        }
      },
      data,
      this.node
    );
    this.plot.over.addEventListener('dblclick', () => {
      this.zoom = null;
      this.update();
    });
  }
}
