// Completion-time CDF charts as standalone SVG, drawn by hand (no plotting dependency): one
// step line per variant, x = seconds since the rollout started, y = share of agents done, with
// the Kumar–Ross bound of each variant as a dashed vertical line in the same colour.

export interface CdfSeries {
  label: string;
  points: Array<[number, number]>;
  bound_s?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export function cdfSvg(title: string, series: CdfSeries[], opts: { logX?: boolean } = {}): string {
  const W = 760;
  const H = 420;
  const m = { l: 60, r: 20, t: 40, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xs = series.flatMap((s) => [...s.points.map((p) => p[0]), ...(s.bound_s !== undefined && Number.isFinite(s.bound_s) ? [s.bound_s] : [])]).filter((x) => Number.isFinite(x) && x > 0);
  const maxX = niceCeil(Math.max(1e-3, ...xs));
  const minX = opts.logX ? Math.max(1e-3, niceFloor(Math.min(...xs))) : 0;
  const sx = (x: number) => {
    if (opts.logX) return m.l + ((Math.log10(Math.max(x, minX)) - Math.log10(minX)) / (Math.log10(maxX) - Math.log10(minX))) * pw;
    return m.l + (x / maxX) * pw;
  };
  const sy = (y: number) => Math.round((m.t + (1 - y) * ph) * 10) / 10;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  // Grid and axes.
  for (let i = 0; i <= 10; i += 2) {
    const y = sy(i / 10);
    out.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${i * 10}%</text>`);
  }
  for (const x of ticks(minX, maxX, !!opts.logX)) {
    const px = Math.round(sx(x) * 10) / 10;
    out.push(`<line x1="${px}" y1="${m.t}" x2="${px}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${px}" y="${m.t + ph + 16}" text-anchor="middle">${fmt(x)}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">seconds since the rollout started${opts.logX ? ' (log scale)' : ''}</text>`);
  out.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">agents done</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    if (s.points.length > 0) {
      let d = `M ${sx(opts.logX ? s.points[0]![0] : 0).toFixed(1)} ${sy(0).toFixed(1)}`;
      let prevY = 0;
      for (const [x, y] of s.points) {
        d += ` L ${sx(x).toFixed(1)} ${sy(prevY).toFixed(1)} L ${sx(x).toFixed(1)} ${sy(y).toFixed(1)}`;
        prevY = y;
      }
      out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
    }
    if (s.bound_s !== undefined && Number.isFinite(s.bound_s) && s.bound_s <= maxX) {
      const bx = sx(s.bound_s).toFixed(1);
      out.push(`<line x1="${bx}" y1="${m.t}" x2="${bx}" y2="${m.t + ph}" stroke="${c}" stroke-dasharray="5 4" stroke-width="1"/>`);
    }
    const ly = m.t + 16 + i * 16;
    out.push(`<line x1="${m.l + 10}" y1="${ly - 4}" x2="${m.l + 30}" y2="${ly - 4}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${m.l + 36}" y="${ly}">${esc(s.label)}</text>`);
  });
  out.push(`<text x="${m.l + pw - 4}" y="${m.t + ph - 8}" text-anchor="end" fill="#666">dashed: Kumar–Ross bound of each variant</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function ticks(min: number, max: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let p = Math.floor(Math.log10(min)); p <= Math.ceil(Math.log10(max)); p++) {
      const v = 10 ** p;
      if (v >= min && v <= max) out.push(v);
    }
    return out;
  }
  const step = niceStep(max / 8);
  const out: number[] = [];
  for (let x = 0; x <= max + 1e-9; x += step) out.push(x);
  return out;
}

function niceStep(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  const f = x / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function niceCeil(x: number): number {
  const s = niceStep(x / 8);
  return Math.ceil(x / s) * s;
}

function niceFloor(x: number): number {
  return 10 ** Math.floor(Math.log10(x));
}

function fmt(x: number): string {
  if (x >= 1000) return `${Math.round(x).toLocaleString('en-US')}`;
  if (x >= 1) return `${+x.toFixed(2)}`;
  return `${+x.toPrecision(2)}`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
