// Terminal rendering of a run for `shoal chain watch`: one row per stage with status, attempts,
// time and a progress bar, then the latest log lines.
import type { LogLine, Run } from './model.js';
import { formatBytes } from '../server/format.js';

export { formatBytes };

const MARK: Record<string, string> = { pending: '·', running: '▶', succeeded: '✔', failed: '✘', skipped: '–', blocked: '⛔' };


export function bar(done: number, total: number, width: number): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.round(frac * width);
  return `[${'█'.repeat(full)}${' '.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}%`;
}

export function renderRunTable(run: Run, recent: LogLine[], columns: number): string {
  const now = Date.now();
  const lines = [`run ${run.id}  ${run.chain}  ${run.repo}${run.tag ? `:${run.tag}` : ''}@${run.digest.slice(0, 19)}…  ${run.status.toUpperCase()}`];
  for (const s of run.stages) {
    const ms = s.startedAt !== undefined ? (s.finishedAt ?? now) - s.startedAt : 0;
    let detail = s.status === 'running' && s.progress ? bar(s.progress.done, s.progress.total, 24) : '';
    if (s.progress && s.progress.unit === 'bytes') detail += ` ${formatBytes(s.progress.done)}/${formatBytes(s.progress.total)}`;
    if (s.error && s.status !== 'succeeded') detail += ` ${s.error}`;
    lines.push(`  ${MARK[s.status] ?? '?'} ${s.name.padEnd(9)} ${s.status.padEnd(9)} ${s.attempts > 1 ? `×${s.attempts}` : '  '} ${(ms / 1000).toFixed(1).padStart(6)} s  ${detail}`.slice(0, columns));
  }
  if (run.reason) lines.push(`  ${run.reason}`.slice(0, columns * 2));
  for (const l of recent) lines.push(`  ${l.stage.padEnd(9)} ${l.message}`.slice(0, columns));
  return `${lines.join('\n')}\n`;
}
