// A WebSocket-over-HTTP/2 client (RFC 8441) on Node.js's built-in `http2` module, written
// independently of wsstream: it frames WebSocket messages itself (RFC 6455 §5, masked as
// a client must) on extended CONNECT streams.
//
// Usage: node h2_websocket_client.mjs https://127.0.0.1:PORT/echo   (TLS, ALPN h2)
//        node h2_websocket_client.mjs http://127.0.0.1:PORT/echo    (h2c, prior knowledge)
//        node h2_websocket_client.mjs URL goaway
//
// With `goaway`: two streams (`?n=1`, `?n=2`) echo, then the session is destroyed with a
// GOAWAY carrying INTERNAL_ERROR and the connection closes (each server-side WebSocket
// must end uncleanly); prints `ok`.
//
// One connection, three streams (`?n=1`, `?n=2`, `?n=3`, opened one after the other):
// each echoes; stream 1 is closed with a WebSocket Close (the server must answer Close and
// end the stream with END_STREAM), stream 2 is reset (RST_STREAM INTERNAL_ERROR), and
// stream 3 keeps echoing after both, then closes with 1000 "done". Prints `ok` and exits
// 0 on success; prints the failure to stderr and exits 1 otherwise.
import http2 from 'node:http2';
import { randomBytes } from 'node:crypto';

const target = new URL(process.argv[2]);
const secure = target.protocol === 'https:';

function fail(why) {
  console.error(`FAIL: ${why}`);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 15000).unref();

// --- RFC 6455 frames -------------------------------------------------------------------

function encode(opcode, payload) {
  const mask = randomBytes(4);
  const len = payload.length;
  let head;
  if (len < 126) {
    head = Buffer.from([0x80 | opcode, 0x80 | len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([head, mask, body]);
}

function closePayload(code, reason) {
  const out = Buffer.alloc(2 + Buffer.byteLength(reason));
  out.writeUInt16BE(code, 0);
  out.write(reason, 2);
  return out;
}

// Splits complete frames off `buf`; returns [frames, rest]. Server frames are unmasked.
function decode(buf) {
  const frames = [];
  for (;;) {
    if (buf.length < 2) break;
    const fin = (buf[0] & 0x80) !== 0;
    const opcode = buf[0] & 0x0f;
    if (buf[1] & 0x80) fail('the server masked a frame');
    let len = buf[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      if (buf.length < 4) break;
      len = buf.readUInt16BE(2);
      at = 4;
    } else if (len === 127) {
      if (buf.length < 10) break;
      len = Number(buf.readBigUInt64BE(2));
      at = 10;
    }
    if (buf.length < at + len) break;
    frames.push({ fin, opcode, payload: buf.subarray(at, at + len) });
    buf = buf.subarray(at + len);
  }
  return [frames, buf];
}

// --- one WebSocket on one extended CONNECT stream -------------------------------------

class Socket {
  constructor(name, stream) {
    this.name = name;
    this.stream = stream;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.partial = null; // a fragmented message being reassembled
    this.ended = new Promise((resolve) => stream.on('end', resolve));
    stream.on('data', (chunk) => {
      const [frames, rest] = decode(Buffer.concat([this.buf, chunk]));
      this.buf = rest;
      for (let frame of frames) {
        // Reassemble fragmented messages (RFC 6455 §5.4); control frames stand alone.
        if (frame.opcode < 0x8) {
          if (frame.opcode !== 0x0) this.partial = { opcode: frame.opcode, parts: [] };
          if (!this.partial) fail(`${name}: a continuation frame with no message`);
          this.partial.parts.push(frame.payload);
          if (!frame.fin) continue;
          frame = { fin: true, opcode: this.partial.opcode, payload: Buffer.concat(this.partial.parts) };
          this.partial = null;
        }
        const waiter = this.waiters.shift();
        if (waiter) waiter(frame);
        else this.frames.push(frame);
      }
    });
    this.resetting = false;
    stream.on('error', (e) => {
      // Node reports our own RST_STREAM with an error code as an error too.
      if (!this.resetting) fail(`${name}: stream error ${e.message}`);
    });
    stream.resume();
  }

  next() {
    const frame = this.frames.shift();
    if (frame) return Promise.resolve(frame);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  send(opcode, payload) {
    this.stream.write(encode(opcode, payload));
  }

  async echo(text) {
    this.send(0x1, Buffer.from(text));
    const frame = await this.next();
    if (frame.opcode !== 0x1 || frame.payload.toString() !== text) {
      const show = (t) => JSON.stringify(t.length > 40 ? `${t.slice(0, 40)}... (${t.length})` : t);
      fail(`${this.name}: expected the echo of ${show(text)}, got opcode ${frame.opcode} ` +
        `fin ${frame.fin} ${show(frame.payload.toString())}`);
    }
  }

  async close(code, reason) {
    this.send(0x8, closePayload(code, reason));
    const frame = await this.next();
    if (frame.opcode !== 0x8) fail(`${this.name}: expected Close, got opcode ${frame.opcode}`);
    const got = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : null;
    if (got !== code) fail(`${this.name}: the server's Close has code ${got}, not ${code}`);
    // The server ends its side of the stream (END_STREAM) after its Close.
    await this.ended;
    this.stream.end();
  }
}

const session = http2.connect(target, { rejectUnauthorized: false });
session.on('error', (e) => fail(`session error: ${e.message}`));

// RFC 8441 §3: extended CONNECT only once the server's SETTINGS allow it.
const settings = await new Promise((resolve) => session.once('remoteSettings', resolve));
if (!settings.enableConnectProtocol) {
  fail(`SETTINGS_ENABLE_CONNECT_PROTOCOL not announced: ${JSON.stringify(settings)}`);
}
if (secure && session.alpnProtocol !== 'h2') fail(`ALPN picked ${session.alpnProtocol}`);

const mode = process.argv[3] ?? 'streams';

async function open(n) {
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': secure ? 'https' : 'http',
    ':path': `${target.pathname}?n=${n}`,
    ':authority': target.host,
    'sec-websocket-version': '13',
  }, { endStream: false });
  const headers = await new Promise((resolve) => stream.once('response', resolve));
  if (headers[':status'] !== 200) fail(`stream ${n}: status ${headers[':status']}`);
  if ('sec-websocket-accept' in headers) fail(`stream ${n}: Sec-WebSocket-Accept over HTTP/2`);
  return new Socket(`stream ${n}`, stream);
}

if (mode === 'goaway') {
  const one = await open(1);
  const two = await open(2);
  await one.echo('one');
  await two.echo('two');
  one.resetting = true; // the streams end with the session's error code
  two.resetting = true;
  session.removeAllListeners('error');
  session.on('error', () => {});
  await new Promise((resolve) => {
    session.on('close', resolve);
    session.destroy(null, http2.constants.NGHTTP2_INTERNAL_ERROR);
  });
  console.log('ok');
  process.exit(0);
}

const first = await open(1);
const second = await open(2);
const third = await open(3);
for (const [i, socket] of [first, second, third].entries()) {
  await socket.echo(`hello ${i + 1}`);
}
await third.echo('x'.repeat(70000)); // a 64-bit length, several DATA frames

await first.close(1000, 'bye');
await third.echo('after a close');

second.resetting = true;
second.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
await new Promise((resolve) => second.stream.on('close', resolve));
await third.echo('after a reset');

await third.close(1000, 'done');
console.log('ok');
session.close();
