// The stage indexes against brute force on large random sets: the IPv4 CIDR forest must yield
// every containing block, longest first; the hashed suffix walk must never miss a suffix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CidrIndex } from '../../src/policy/engine/cidr-index.ts';
import { DomainIndex } from '../../src/policy/engine/domain-index.ts';
import { QueryCtx } from '../../src/policy/engine/query.ts';
import { formatIPv4, v4Mask } from '../../src/policy/ip.ts';
import { Rng } from './random.ts';

test('IPv4 CIDR forest: all containing blocks, longest prefix first', () => {
  const r = new Rng(5);
  const blocks: { net: number; prefix: number; id: number }[] = [];
  const idx = new CidrIndex<number>();
  for (let id = 0; id < 2000; id++) {
    // Cluster addresses so that nesting is common.
    const base = (r.int(4) << 30) | (r.int(16) << 20) | r.int(1 << 20);
    const prefix = r.int(33);
    const net = (base & v4Mask(prefix)) >>> 0;
    blocks.push({ net, prefix, id });
    idx.add({ family: 4, address: formatIPv4(net), prefix }, id);
  }
  idx.finish((a, b) => a - b);
  for (let k = 0; k < 1500; k++) {
    const ip = ((r.int(4) << 30) | (r.int(16) << 20) | r.int(1 << 20)) >>> 0;
    const want = blocks
      .filter((b) => ((ip & v4Mask(b.prefix)) >>> 0) === b.net)
      .sort((a, b) => b.prefix - a.prefix || a.id - b.id)
      .map((b) => [b.id, b.prefix]);
    const got: number[][] = [];
    idx.find(new QueryCtx({ network: 'tcp', ip: formatIPv4(ip) }), (id, prefix) => { got.push([id, prefix]); return false; });
    assert.deepEqual(got, want, `ip ${formatIPv4(ip)}`);
  }
});

test('suffix index: every matching pattern, most specific first, no missed depth or hash', () => {
  const r = new Rng(6);
  const labels = ['a', 'b', 'c', 'd', 'ex', 'com', 'ru', 'xn--p1ai'];
  const name = () => Array.from({ length: 1 + r.int(4) }, () => r.pick(labels)).join('.');
  const patterns = new Map<string, number>();
  const idx = new DomainIndex<number>();
  for (let id = 0; id < 20_000; id++) {
    const p = name();
    if (patterns.has(p)) continue;
    patterns.set(p, id);
    idx.add({ kind: 'suffix', value: p }, id);
  }
  idx.finish((a, b) => a - b);
  for (let k = 0; k < 20_000; k++) {
    const q = Array.from({ length: 1 + r.int(6) }, () => r.pick(labels)).join('.');
    const parts = q.split('.');
    const want = parts
      .map((_, i) => parts.slice(i).join('.')) // every suffix, longest first
      .filter((p) => patterns.has(p))
      .map((p) => [patterns.get(p)!, p]);
    const got: (number | string)[][] = [];
    idx.find(q, (id, _kind, key) => { got.push([id, key]); return false; });
    assert.deepEqual(got, want, q);
  }
});
