// Helpers for tenancy tests: raw HTTP with a chosen source address (node:http sends the path as
// given: no normalisation of "..", no re-encoding), tokens from the realm, the admin API, and a
// bearer-authenticated push.
import { request as httpRequest } from 'node:http';
import { allBlobs, type BuiltImage } from './image.js';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): any;
}

export interface HttpOptions {
  token?: string;
  basic?: { user: string; password: string };
  headers?: Record<string, string>;
  body?: Buffer | string;
  localAddress?: string;
}

export function http(method: string, url: string, opts: HttpOptions = {}): Promise<HttpAnswer> {
  const u = new URL(url);
  const path = url.slice(url.indexOf('/', u.protocol.length + 2));
  const headers: Record<string, string | number> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.basic) headers.authorization = `Basic ${Buffer.from(`${opts.basic.user}:${opts.basic.password}`).toString('base64')}`;
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  if (body) headers['content-length'] = body.length;
  else if (method === 'PUT' || method === 'POST' || method === 'PATCH') headers['content-length'] = 0;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, method, headers, localAddress: opts.localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** GET <url>/auth/token with optional Basic credentials; returns the token or throws with the answer. */
export async function getToken(url: string, creds: { user: string; password: string } | undefined, scopes: string[], localAddress?: string): Promise<string> {
  const q = new URLSearchParams({ service: 'shoal' });
  for (const s of scopes) q.append('scope', s);
  const res = await http('GET', `${url}/auth/token?${q}`, { basic: creds, localAddress });
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${res.body.toString()}`);
  return res.json().token;
}

/** Calls the admin API as `creds`; throws unless it answers 2xx. */
export async function admin(url: string, creds: { user: string; password: string }, method: string, path: string, body?: unknown): Promise<any> {
  const res = await http(method, `${url}/api/v1/${path}`, {
    basic: creds,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  });
  if (res.status >= 300) throw new Error(`admin ${method} ${path}: ${res.status} ${res.body.toString()}`);
  return res.body.length ? res.json() : null;
}

/** Pushes an image with a bearer token: monolithic blob uploads, then the manifest under `tag`. */
export async function pushWithToken(url: string, repo: string, tag: string, image: BuiltImage, token: string): Promise<void> {
  for (const b of allBlobs(image)) {
    const post = await http('POST', `${url}/v2/${repo}/blobs/uploads/`, { token });
    if (post.status !== 202) throw new Error(`start upload: ${post.status} ${post.body.toString()}`);
    const loc = new URL(String(post.headers.location), url);
    loc.searchParams.set('digest', b.digest);
    const put = await http('PUT', loc.toString(), { token, body: b.data, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`finish upload: ${put.status} ${put.body.toString()}`);
  }
  const res = await http('PUT', `${url}/v2/${repo}/manifests/${tag}`, { token, body: image.manifest.data, headers: { 'content-type': image.manifest.mediaType } });
  if (res.status !== 201) throw new Error(`put manifest: ${res.status} ${res.body.toString()}`);
}
