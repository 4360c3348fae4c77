/**
 * Process-tree helpers for the servers the tests run (vsftpd, pure-ftpd, proftpd, sshd): each forks
 * one process per session, and those outlive the listener and would finish a transfer unless killed.
 * Linux only (reads /proc).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

/** Pids of all processes below `root`, each parent before its children. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid ..." — comm may contain spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    const next = children.get(queue.pop()!) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

/** True until `pid` is reaped (a zombie still exists). */
export function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the child exited. */
export async function kill(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Ends a listener and its sessions: the sessions get SIGKILL first, children before parents, each
 * while its parent is there to reap it; then the listener gets `kill()`.
 */
export async function stopTree(child: ChildProcess): Promise<void> {
  const sessions = child.pid === undefined ? [] : descendants(child.pid);
  for (const pid of sessions.reverse()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      continue; // already gone
    }
    const deadline = Date.now() + 1000;
    while (exists(pid) && Date.now() < deadline) await delay(10);
  }
  await kill(child);
}
