// Spoofing: a hand-written UDP upstream that, before its real answer, sends answers with a wrong
// ID, with the question in a different case (0x20), and from a wrong source port. None may reach
// the client or the store; the real answer, sent last, must.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import * as packet from 'dns-packet';
import { startDnsForwarder } from '../../src/dns/index.ts';
import type { DnsForwarder } from '../../src/dns/index.ts';
import { builtinEgresses, dig, dnsConfig, have, projector } from './helpers.ts';

const skip = !have('dig') ? 'needs dig' : false;

function bind(): Promise<Socket> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => resolve(s));
  });
}

function swapCase(name: string): string {
  return [...name].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
}

describe('answers that do not match the query are rejected', { skip }, () => {
  let upstream: Socket;
  let other: Socket;
  let fwd: DnsForwarder;
  const asked: string[] = [];

  before(async () => {
    upstream = await bind();
    other = await bind();
    upstream.on('message', (msg, rinfo) => {
      const q = packet.decode(msg);
      const question = q.questions![0]!;
      asked.push(question.name);
      const answer = (id: number, name: string, ip: string): Buffer =>
        packet.encode({
          type: 'response',
          id,
          flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
          questions: [{ ...question, name }],
          answers: [{ type: 'A', class: 'IN', name, ttl: 300, data: ip }],
        });
      upstream.send(answer((q.id! + 1) & 0xffff, question.name, '127.66.6.1'), rinfo.port, rinfo.address);
      upstream.send(answer(q.id!, swapCase(question.name), '127.66.6.2'), rinfo.port, rinfo.address);
      other.send(answer(q.id!, question.name, '127.66.6.3'), rinfo.port, rinfo.address);
      setTimeout(() => upstream.send(answer(q.id!, question.name, '127.7.7.7'), rinfo.port, rinfo.address), 100);
    });
    fwd = await startDnsForwarder({
      config: { dns: dnsConfig({ upstreams: [`udp://127.0.0.1:${upstream.address().port}`] }), egress: builtinEgresses() },
      projectDomain: projector({}),
    });
  });
  after(async () => {
    await fwd?.close();
    upstream?.close();
    other?.close();
  });

  test('only the genuine answer reaches the client and the store', async () => {
    const { host, port } = fwd.addresses[0]!;
    for (const name of ['spoof-target-one.test', 'spoof-target-two.test', 'spoof-target-three.test']) {
      const r = await dig(host, port, [name, 'A']);
      assert.equal(r.status, 'NOERROR');
      assert.deepEqual(r.answers.map((a) => a.split(' ')[4]), ['127.7.7.7']);
    }
    for (const ip of ['127.66.6.1', '127.66.6.2', '127.66.6.3']) assert.equal(fwd.store.lookup(ip).state, 'unknown', ip);
    assert.equal(fwd.store.lookup('127.7.7.7').names[0]?.name, 'spoof-target-three.test');
  });

  test('queries to the upstream use random IDs and 0x20 case', () => {
    assert.equal(asked.length, 3);
    assert.ok(asked.some((n) => n !== n.toLowerCase()), `some upper case in ${asked.join(' ')}`);
    assert.ok(asked.every((n) => /^spoof-target-(one|two|three)\.test$/i.test(n)));
  });
});
