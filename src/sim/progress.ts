// A progress bar on stderr: redrawn in place on a terminal, a plain line every few seconds
// otherwise (CI logs), silent when asked. Nothing goes to stdout, which belongs to the summary
// and the --json line.

export class Progress {
  private lastLine = 0;
  private drawn = false;
  private readonly tty: boolean;

  constructor(
    private readonly quiet: boolean,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  update(label: string, done: number, total: number, virtualMs: number, wallMs: number): void {
    if (this.quiet) return;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const width = 30;
    const fill = Math.round(frac * width);
    const bar = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]`;
    const text = `${label} ${bar} ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} done  virtual ${(virtualMs / 1000).toFixed(1)} s  wall ${(wallMs / 1000).toFixed(1)} s`;
    if (this.tty) {
      this.stream.write(`\r${text.padEnd(110)}`);
      this.drawn = true;
    } else if (wallMs - this.lastLine >= 5000) {
      this.lastLine = wallMs;
      this.stream.write(`${text}\n`);
    }
  }

  line(text: string): void {
    if (this.quiet) return;
    this.end();
    this.stream.write(`${text}\n`);
  }

  end(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
    this.lastLine = 0;
  }
}
