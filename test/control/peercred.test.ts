// SO_PEERCRED through koffi: struct ucred's layout against the C headers, and the credentials of
// a real peer process (its pid, and a different uid/gid when run through setpriv).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import { ucred, peerCredOfSocket, peerCredOfFd, type PeerCred } from '../../src/sys/linux/peercred.ts';
import { isSwitchyardError } from '../../src/errors.ts';

const hasGcc = spawnSync('gcc', ['--version']).status === 0;
const isRoot = process.getuid?.() === 0;

test('struct ucred layout matches <sys/socket.h>', (t) => {
  if (!hasGcc) return t.skip('needs gcc for the header check');
  const dir = mkdtempSync(join(tmpdir(), 'sy-ucred-'));
  try {
    writeFileSync(
      join(dir, 'u.c'),
      '#define _GNU_SOURCE\n#include <sys/socket.h>\n#include <stddef.h>\n#include <stdio.h>\n' +
        'int main(void){printf("%zu %zu %zu %zu %d %d\\n",sizeof(struct ucred),offsetof(struct ucred,pid),' +
        'offsetof(struct ucred,uid),offsetof(struct ucred,gid),SOL_SOCKET,SO_PEERCRED);return 0;}\n',
    );
    execFileSync('gcc', ['-o', join(dir, 'u'), join(dir, 'u.c')]);
    const [size, pid, uid, gid, sol, opt] = execFileSync(join(dir, 'u'), { encoding: 'utf8' }).trim().split(' ').map(Number);
    assert.equal(koffi.sizeof(ucred), size);
    assert.equal(koffi.offsetof(ucred, 'pid'), pid);
    assert.equal(koffi.offsetof(ucred, 'uid'), uid);
    assert.equal(koffi.offsetof(ucred, 'gid'), gid);
    assert.equal(sol, 1);
    assert.equal(opt, 17);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad fd fails with the call name and errno', () => {
  assert.throws(() => peerCredOfFd(987654), (err) => isSwitchyardError(err) && err.code === 'SY_ERR_CONTROL_IDENTITY' && /getsockopt\(SO_PEERCRED\).*errno 9/.test(err.message));
});

test('credentials of a peer process: pid, and uid/gid after setpriv', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-peer-'));
  chmodSync(dir, 0o755);
  const path = join(dir, 's.sock');
  const seen: PeerCred[] = [];
  const server = createServer((s: Socket) => {
    seen.push(peerCredOfSocket(s));
    s.end();
  });
  await new Promise<void>((r) => server.listen(path, r));
  chmodSync(path, 0o666);
  const connectFrom = async (argv: string[]) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    const code = await new Promise((r) => child.once('close', r));
    assert.equal(code, 0);
    return child.pid;
  };
  try {
    const script = `const s=require('net').connect(${JSON.stringify(path)});s.on('data',()=>{});s.on('end',()=>process.exit(0))`;
    const pid = await connectFrom([process.execPath, '-e', script]);
    assert.deepEqual(seen[0], { pid, uid: process.getuid!(), gid: process.getgid!() });
    if (!isRoot) return t.skip('needs root for the setpriv part');
    // setpriv execs node in place, so the pid stays the one spawn reported.
    const pid2 = await connectFrom(['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e', script]);
    assert.deepEqual(seen[1], { pid: pid2, uid: 65534, gid: 65534 });
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
