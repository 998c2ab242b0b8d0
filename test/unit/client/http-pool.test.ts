// HttpPool (src/client/http-pool.ts) against real node:http servers on 127.0.0.1: keep-alive reuse,
// the three timeouts with their codes, aborts, streamed request bodies, the body helpers and coalesced reads of a paced body.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { coalescedChunks, holdMs, HttpPool, HttpClientError } from '../../../src/client/http-pool.js';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; sockets: Set<Socket> }> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, sockets };
}

function pool(o: ConstructorParameters<typeof HttpPool>[0] = {}): HttpPool {
  const p = new HttpPool(o);
  closers.push(() => p.close());
  return p;
}

test('reuses one keep-alive connection for sequential requests and reads text and JSON', async () => {
  let connections = 0;
  const { url, server } = await serve((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url, method: req.method }));
  });
  server.on('connection', () => connections++);
  const p = pool();
  for (let i = 0; i < 5; i++) {
    const res = await p.request(`${url}/x${i}`);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(await res.body.json(), { path: `/x${i}`, method: 'GET' });
  }
  const res = await p.request(`${url}/t`, { method: 'HEAD' });
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), '');
  assert.equal(connections, 1);
});

test('sends string and streamed bodies with the caller\'s headers', async () => {
  const { url } = await serve(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    res.end(`${req.method} ${req.headers['x-test']} ${req.headers['content-length'] ?? req.headers['transfer-encoding']} ${Buffer.concat(chunks).toString()}`);
  });
  const p = pool();
  assert.equal(await (await p.request(url, { method: 'POST', headers: { 'x-test': 'a' }, body: 'hello' })).body.text(), 'POST a 5 hello');
  const streamed = await p.request(url, { method: 'PUT', headers: { 'x-test': 'b' }, body: Readable.from([Buffer.from('one '), Buffer.from('two')]) });
  assert.equal(await streamed.body.text(), 'PUT b chunked one two');
});

test('a request queued for a connection is not charged the wait in its headers timeout', async () => {
  // One connection: the second request waits ~300 ms for it behind a slow first response, then
  // gets its own headers at once. Only the time on the connection counts against 200 ms.
  const { url } = await serve((req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('slow'), 300);
    else res.end('fast');
  });
  const p = pool({ connections: 1 });
  const t0 = performance.now();
  const slow = p.request(`${url}/slow`, { headersTimeout: 2000 });
  const fast = p.request(`${url}/fast`, { headersTimeout: 200 });
  const [a, b] = await Promise.all([slow, fast]);
  assert.equal(await a.body.text(), 'slow');
  assert.equal(await b.body.text(), 'fast');
  assert.ok(performance.now() - t0 >= 280, 'the fast request really waited behind the slow one');
});

test('caps connections per origin; extra requests queue', async () => {
  let open = 0;
  let peak = 0;
  const { url } = await serve((_req, res) => {
    open++;
    peak = Math.max(peak, open);
    setTimeout(() => {
      open--;
      res.end('ok');
    }, 30);
  });
  const p = pool({ connections: 2 });
  const bodies = await Promise.all(Array.from({ length: 6 }, async () => (await p.request(url)).body.text()));
  assert.deepEqual(bodies, Array(6).fill('ok'));
  assert.equal(peak, 2);
});

test('headers timeout: a server that never answers fails with HEADERS_TIMEOUT', async () => {
  const { url } = await serve(() => undefined);
  const err = await pool().request(url, { headersTimeout: 100 }).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof HttpClientError, String(err));
  assert.equal(err.code, 'HEADERS_TIMEOUT');
});

test('body timeout: a body that stalls fails the reader with BODY_TIMEOUT', async () => {
  const { url } = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': 10 });
    res.write('abc');
  });
  const res = await pool().request(url, { bodyTimeout: 100 });
  const err = await res.body.text().then(() => null, (e: unknown) => e);
  assert.ok(err instanceof HttpClientError, String(err));
  assert.equal(err.code, 'BODY_TIMEOUT');
});

test('connect timeout: a listener whose accept queue is full fails with CONNECT_TIMEOUT', async (t) => {
  // node:net always accepts, so a python3 listener that never does, with a backlog of 0: once one
  // connection waits in its queue, the kernel drops further SYNs and connects hang like to a dead host.
  const child = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const port = Number(await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()))));
  const filler = connect(port, '127.0.0.1');
  await new Promise((r) => filler.once('connect', r));
  t.after(() => filler.destroy());
  const p = pool({ connectTimeoutMs: 150 });
  const started = Date.now();
  const err = await p.request(`http://127.0.0.1:${port}/`, { headersTimeout: 5000 }).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof HttpClientError, String(err));
  assert.equal(err.code, 'CONNECT_TIMEOUT');
  assert.ok(Date.now() - started < 2000, 'fails on the connect timeout, not the headers timeout');
});

test('abort signal: aborting mid-request rejects and frees the connection slot', async () => {
  const { url } = await serve((req, res) => {
    if (req.url === '/slow') return;
    res.end('fast');
  });
  const p = pool({ connections: 1 });
  const ac = new AbortController();
  const slow = p.request(`${url}/slow`, { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(slow, (e: Error) => e.name === 'AbortError');
  assert.equal(await (await p.request(`${url}/fast`)).body.text(), 'fast');
});

test('dump() drops an unread body so the connection is reused', async () => {
  let connections = 0;
  const { url, server } = await serve((_req, res) => res.end(Buffer.alloc(256 * 1024, 1)));
  server.on('connection', () => connections++);
  const p = pool({ connections: 1 });
  const first = await p.request(url);
  first.body.dump();
  const second = await p.request(url);
  assert.equal((await second.body.text()).length, 256 * 1024);
  assert.equal(connections, 1);
});

test('coalescedChunks gathers a paced body into few large reads and leaves the keep-alive socket usable', async () => {
  const size = 192 * 1024;
  let connections = 0;
  const { url, server } = await serve((req, res) => {
    if (req.url === '/small') return void res.end('after');
    // 2 KiB every millisecond: a paced flow, as from a tc-shaped or slow parent.
    res.writeHead(200, { 'content-length': size });
    let sent = 0;
    const timer = setInterval(() => {
      const n = Math.min(2048, size - sent);
      res.write(Buffer.alloc(n, sent % 251));
      sent += n;
      if (sent >= size) {
        clearInterval(timer);
        res.end();
      }
    }, 1);
  });
  server.on('connection', () => connections++);
  const p = pool({ connections: 1 });
  // Chunks the consumer sees, and reads the socket made (each read is one 'data' event: the
  // hold must stop the socket itself, not only the body, or every packet still wakes the loop).
  const count = async (coalesce: boolean) => {
    const res = await p.request(`${url}/paced`);
    let socketReads = 0;
    const onData = () => socketReads++;
    res.body.socket.on('data', onData);
    let chunks = 0;
    let bytes = 0;
    for await (const c of coalesce ? coalescedChunks(res.body, { waitMs: 20 }) : (res.body as AsyncIterable<Buffer>)) {
      chunks++;
      bytes += c.length;
    }
    res.body.socket?.off('data', onData);
    assert.equal(bytes, size);
    return { chunks, socketReads };
  };
  const plain = await count(false);
  const coalesced = await count(true);
  assert.ok(plain.chunks >= 40 && plain.socketReads >= 40, `a paced body arrives in many small reads (${JSON.stringify(plain)})`);
  assert.ok(coalesced.chunks * 3 <= plain.chunks, `coalesced chunks: ${coalesced.chunks}, plain: ${plain.chunks}`);
  // One socket read per chunk handed on (and the headers'): the socket did not read on, packet by
  // packet, behind a hold. (Before the socket itself was held: 15 reads for 8 chunks.)
  assert.ok(coalesced.socketReads <= coalesced.chunks + 2, `socket reads while coalescing: ${coalesced.socketReads} for ${coalesced.chunks} chunks`);
  // The next request reuses the socket the coalesced read paused and resumed.
  assert.equal(await (await p.request(`${url}/small`)).body.text(), 'after');
  assert.equal(connections, 1);
});

test('holdMs sizes a hold to the flow rate, in doubling steps between the bounds', () => {
  // No history yet: the shortest hold.
  assert.equal(holdMs(32_768, 0, 0, 20, 100), 20);
  // 3.2 MB/s: 32 KiB arrive in ~10 ms, under the floor.
  assert.equal(holdMs(32_768, 3_200_000, 1000, 20, 100), 20);
  // 1 MB/s: ~33 ms wanted, the next step up is 40.
  assert.equal(holdMs(32_768, 1_000_000, 1000, 20, 100), 40);
  // 94 KB/s (an eighth of 6 Mbit/s): ~350 ms wanted, capped at 100.
  assert.equal(holdMs(32_768, 94_000, 1000, 20, 100), 100);
});
