/**
 * What the benchmark reads from /proc (Linux): the machine's CPU time, and how many FTP sessions the
 * vsftpd started by this process is serving (one child process of the listener per session).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Busy and total CPU time of the whole machine, in clock ticks (all cores). */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** Share of the machine's CPU (0..1 of all cores) used between two `machineCpu()` readings. */
export function busyShare(a: ReturnType<typeof machineCpu>, b: ReturnType<typeof machineCpu>): number {
  const total = b.total - a.total;
  return total > 0 ? (b.busy - a.busy) / total : 0;
}

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
}

function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      out.push({ pid: Number(entry), ppid, comm: stat.slice(open + 1, close) });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/**
 * Samples, every `everyMs`, the FTP sessions of the vsftpd listeners that are children of this
 * process (each session is a child process of its listener), and keeps the largest count seen.
 */
export function sampleFtpSessions(everyMs = 100): { stop(): number } {
  let max = 0;
  const sample = () => {
    const all = processes();
    const listeners = new Set(
      all.filter((p) => p.ppid === process.pid && p.comm === 'vsftpd').map((p) => p.pid),
    );
    const sessions = all.filter((p) => listeners.has(p.ppid)).length;
    if (sessions > max) max = sessions;
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return max;
    },
  };
}
