// A uPlot chart as a Preact component. Colours come from the theme's CSS variables, so the
// chart follows light/dark; the uPlot instance is kept on the container (`el.uplot`) so the
// browser tests can compare what is drawn with what the API answered.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** The series palette (readable on both themes). */
export const PALETTE = ['#3b82f6', '#f97316', '#10b981', '#e11d48', '#8b5cf6', '#eab308', '#06b6d4', '#ec4899', '#84cc16', '#64748b'];

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/**
 * props:
 * - x: timestamps (seconds), ascending;
 * - series: [{label, values (null for gaps), color?, dash?, width?}];
 * - stacked: draw as stacked areas (values summed from the first series up);
 * - bars: draw as bars (volume histograms);
 * - xRange: [start, end] seconds of the x axis (the queried range; default: the data's);
 * - height, yLabel, yFormat (value → string), testId.
 */
export function Chart({ x, series, stacked = false, bars = false, xRange, height = 280, yLabel = '', yFormat, testId, theme }) {
  const ref = useRef(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    const axis = cssVar('--fg-muted', '#666');
    const grid = cssVar('--border', '#ddd');
    let values = series.map((s) => s.values);
    if (stacked) {
      const acc = new Array(x.length).fill(0);
      values = series.map((s) => s.values.map((v, i) => (v === null ? null : (acc[i] += v))));
    }
    const fmt = yFormat || ((v) => (v === null ? '—' : String(Number(v.toPrecision(6)))));
    const opts = {
      width: Math.max(el.clientWidth, 200),
      height,
      scales: { x: xRange ? { time: true, range: () => [xRange[0], xRange[1]] } : { time: true } },
      legend: { show: series.length <= 12, live: true },
      cursor: { drag: { x: true, y: false } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, label: yLabel, size: 60, values: (u, ticks) => ticks.map((t) => fmt(t)) },
      ],
      series: [
        {},
        ...series.map((s, i) => {
          const color = s.color || PALETTE[i % PALETTE.length];
          const o = { label: s.label, stroke: color, width: s.width || 1.5, value: (u, v) => fmt(v), spanGaps: false, points: { show: x.length < 60 } };
          if (s.dash) o.dash = s.dash;
          if (stacked) o.fill = color + '55';
          if (bars) {
            o.paths = uPlot.paths.bars({ size: [0.8, 40] });
            o.fill = color + 'aa';
            o.points = { show: false };
          }
          return o;
        }),
      ],
    };
    if (stacked && series.length > 1) {
      opts.bands = series.slice(1).map((_, i) => ({ series: [i + 2, i + 1] }));
    }
    const u = new uPlot(opts, [x, ...values], el);
    el.uplot = u;
    el.dataset.points = String(x.length);
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(el.clientWidth, 200), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      delete el.uplot;
    };
  }, [x, series, stacked, bars, height, theme, xRange && xRange[0], xRange && xRange[1]]);
  return <div class="chart" ref={ref} data-testid={testId} />;
}

/** Turns a Prometheus matrix into chart props, aligning every series on the union of times. */
export function matrixToChart(result, labelOf) {
  const times = new Set();
  for (const s of result) for (const [t] of s.values || []) times.add(t);
  const x = [...times].sort((a, b) => a - b);
  const index = new Map(x.map((t, i) => [t, i]));
  const series = result.map((s) => {
    const values = new Array(x.length).fill(null);
    for (const [t, v] of s.values || []) {
      const f = parseFloat(v);
      values[index.get(t)] = isFinite(f) ? f : null;
    }
    return { label: labelOf(s.metric), values };
  });
  return { x, series };
}
