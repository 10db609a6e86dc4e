/**
 * `-w/--watch`: a snapshot per interval. On a terminal the screen is redrawn in place
 * (alternate screen, cursor hidden, keys read raw) with a status line, and the lines
 * that appeared or changed since the last refresh are highlighted; `q` or Ctrl-C leaves
 * with the terminal as it was. Elsewhere each snapshot is simply written after the
 * last. A collection is synchronous and the next is scheduled only after it is written,
 * so two never overlap.
 */
import { writeSync } from 'node:fs';
import { style } from './render/text.js';

export interface WatchFrame {
  time: Date;
  /** Terminal mode: the lines, plain (compared between refreshes) and as shown. */
  lines: string[];
  styledLines: string[];
  /** Terminal mode: counts for the status line. */
  counts: string;
  /** Stream mode: what one snapshot writes. */
  stream: string;
  warnings: string[];
}

export interface TerminalStreams {
  output: NodeJS.WriteStream;
  /** Keys are read only when it is a terminal too. */
  input: NodeJS.ReadStream;
  colour: boolean;
}

export interface WatchSettings {
  seconds: number;
  /** Take and render one snapshot. */
  take: () => WatchFrame;
  /** null: stream mode. */
  terminal: TerminalStreams | null;
  /** Stream mode: returns false when the reader is slow (wait for drain) . */
  write: (text: string) => boolean;
  /** True once the reader has gone (EPIPE): the watch ends. */
  closed: () => boolean;
  /** Waits until the output can take more. */
  drained: () => Promise<void>;
  warn: (message: string) => void;
}

const ENTER_ALTERNATE_SCREEN = '\x1b[?1049h';
const LEAVE_ALTERNATE_SCREEN = '\x1b[?1049l';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const HOME = '\x1b[H';
const CLEAR_TO_END_OF_LINE = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';
const CTRL_C = 0x03;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function clock(time: Date): string {
  return time.toTimeString().slice(0, 8);
}

function formatSeconds(seconds: number): string {
  return `${Number(seconds.toFixed(3))}s`;
}

/** The terminal: enter and leave, draw a frame, highlight what is new since the last. */
class Screen {
  private entered = false;
  private previous: ReadonlySet<string> | null = null;
  private last: { frame: WatchFrame; previous: ReadonlySet<string> | null } | null = null;
  private readonly restoreOnExit = () => this.leave();

  constructor(
    private readonly streams: TerminalStreams,
    private readonly seconds: number,
  ) {}

  enter(onKey: (byte: number) => void): void {
    this.entered = true;
    // An exception that escapes must not leave the terminal raw and blank.
    process.on('exit', this.restoreOnExit);
    this.streams.output.write(ENTER_ALTERNATE_SCREEN + HIDE_CURSOR);
    const { input } = this.streams;
    if (input.isTTY) {
      input.setRawMode(true);
      input.on('data', (chunk: Buffer) => {
        for (const byte of chunk) onKey(byte);
      });
      input.resume();
    }
    this.streams.output.on('resize', this.redraw);
  }

  leave(): void {
    if (!this.entered) return;
    this.entered = false;
    process.off('exit', this.restoreOnExit);
    this.streams.output.off('resize', this.redraw);
    const { input } = this.streams;
    if (input.isTTY) {
      try {
        input.setRawMode(false);
      } catch {
        // The terminal is gone (SIGHUP): nothing left to restore.
      }
      input.removeAllListeners('data');
      input.pause();
    }
    try {
      // Synchronous: at 'exit' an asynchronous write would never happen.
      writeSync((this.streams.output as unknown as { fd: number }).fd, SHOW_CURSOR + LEAVE_ALTERNATE_SCREEN);
    } catch {
      // As above.
    }
  }

  show(frame: WatchFrame): void {
    this.last = { frame, previous: this.previous };
    this.draw(frame, this.previous);
    this.previous = new Set(frame.lines);
  }

  private readonly redraw = () => {
    if (this.last) this.draw(this.last.frame, this.last.previous);
  };

  private draw(frame: WatchFrame, previous: ReadonlySet<string> | null): void {
    const { output, colour } = this.streams;
    const rows = Math.max(output.rows || 24, 3);
    const columns = Math.max(output.columns || 80, 20);
    const cutToWidth = (text: string) => text.slice(0, columns);
    const warnings = frame.warnings.slice(0, 2).map((w) => cutToWidth(`knetstat: ${w}`));
    const room = rows - 1 - warnings.length;
    const hidden = Math.max(0, frame.lines.length - room);
    const more = hidden > 0 ? ` · ${hidden} more line${hidden === 1 ? '' : 's'} below` : '';
    const status = cutToWidth(
      `knetstat ${clock(frame.time)} · ${frame.counts} · every ${formatSeconds(this.seconds)}${more} · q quits`,
    );
    const screen = [style('inverse', status)];
    for (const w of warnings) screen.push(colour ? style('yellow', w) : w);
    frame.lines.slice(0, room).forEach((plain, i) => {
      // A cut line loses its colours rather than risk cutting inside an escape sequence.
      let shown = plain.length > columns ? cutToWidth(plain) : (frame.styledLines[i] ?? plain);
      if (previous !== null && !previous.has(plain)) shown = style('inverse', shown);
      screen.push(shown);
    });
    output.write(`${HOME}${screen.join(`${CLEAR_TO_END_OF_LINE}\n`)}${CLEAR_TO_END_OF_LINE}${CLEAR_BELOW}`);
  }
}

/** Runs until `q`, Ctrl-C, SIGINT/SIGTERM/SIGHUP or a closed output; rejects on a failed collection. */
export function runWatch(settings: WatchSettings): Promise<void> {
  const intervalMs = settings.seconds * 1000;
  const screen = settings.terminal ? new Screen(settings.terminal, settings.seconds) : null;
  const warned = new Set<string>();
  const warnOnce = (warnings: readonly string[]) => {
    for (const w of warnings) {
      if (warned.has(w)) continue;
      warned.add(w);
      if (!screen) settings.warn(w);
    }
  };
  return new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const finish = (error?: unknown) => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
      screen?.leave();
      // On a terminal the warnings could only flash by in the status area: repeat them now.
      if (screen) for (const w of warned) settings.warn(w);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onSignal = () => finish();
    for (const signal of STOP_SIGNALS) process.on(signal, onSignal);

    const tick = async () => {
      if (stopped) return;
      const started = Date.now();
      try {
        const frame = settings.take();
        warnOnce(frame.warnings);
        if (screen) screen.show(frame);
        else if (!settings.write(frame.stream)) await settings.drained();
      } catch (error) {
        finish(error);
        return;
      }
      if (settings.closed()) {
        finish();
        return;
      }
      if (!stopped) timer = setTimeout(tick, Math.max(0, started + intervalMs - Date.now()));
    };

    if (screen) {
      screen.enter((byte) => {
        if (byte === CTRL_C || byte === 0x71 /* q */ || byte === 0x51 /* Q */) finish();
      });
    }
    void tick();
  });
}
