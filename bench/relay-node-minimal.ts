// Bench anchor: the least a SOCKS5 CONNECT relay on node:net costs — net.Server + net.connect +
// pipe, IPv4 targets, no auth, no policy, sessions, timeouts or limits. Prints its port, then
// serves until killed. Shows the floor of any relay that makes two net.Sockets per flow.
import net from 'node:net';

const OK = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
const server = net.createServer((c) => {
  c.on('error', () => {});
  let state = 0;
  let acc: Buffer = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    acc = acc.length ? Buffer.concat([acc, d]) : d;
    if (state === 0 && acc.length >= 2 && acc.length >= 2 + acc[1]!) {
      acc = acc.subarray(2 + acc[1]!);
      state = 1;
      c.write(Buffer.from([5, 0]));
    }
    if (state === 1 && acc.length >= 10) {
      if (acc[3] !== 1) return void c.destroy();
      const host = `${acc[4]}.${acc[5]}.${acc[6]}.${acc[7]}`;
      const port = acc.readUInt16BE(8);
      const rest = acc.subarray(10);
      state = 2;
      c.off('data', onData);
      c.pause();
      const u = net.connect(port, host, () => {
        c.write(OK);
        if (rest.length) u.write(rest);
        c.pipe(u);
        u.pipe(c);
        c.resume();
      });
      u.on('error', () => c.destroy());
      c.on('close', () => u.destroy());
    }
  };
  c.on('data', onData);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`));
process.on('SIGINT', () => process.exit(0));
