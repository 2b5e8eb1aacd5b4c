// Certificates for the HTTPS tests, made by openssl in a temporary folder: a test CA with a server
// certificate for localhost/127.0.0.1, and an unrelated CA. Returns null when openssl is missing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  ca: string;
  otherCa: string;
  key: Buffer;
  cert: Buffer;
  cleanup(): void;
}

export function makeTestCerts(): TestCerts | null {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
  } catch {
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sy-lists-tls-'));
  const sh = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const name of ['ca', 'other']) {
    sh(['req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=switchyard test ${name}`, '-days', '2']);
  }
  sh(['req', ...ec, '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  sh(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.crt', '-days', '2', '-extfile', 'ext.cnf']);
  return {
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    otherCa: readFileSync(join(dir, 'other.crt'), 'utf8'),
    key: readFileSync(join(dir, 'srv.key')),
    cert: readFileSync(join(dir, 'srv.crt')),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
