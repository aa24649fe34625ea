// A WebSocket echo server over HTTP/2 (RFC 8441) on Node's built-in `http2` module, for
// the tests of wsstream's HTTP/2 client. Written against Node, not against wsstream.
//
//   node h2_ws_server.js [--cert FILE --key FILE] [--no-connect-protocol] [--allow-http1]
//                        [--max-streams N]
//
// With --cert/--key: TLS with ALPN h2 (and http/1.1 with --allow-http1); without: h2c
// (HTTP/2 with prior knowledge). --no-connect-protocol leaves
// SETTINGS_ENABLE_CONNECT_PROTOCOL out of the SETTINGS; --max-streams sets
// SETTINGS_MAX_CONCURRENT_STREAMS; --allow-http1 also accepts HTTP/1.1 WebSocket upgrades
// (RFC 6455).
//
// Prints to stdout, one line each: `PORT <port>` once listening; `connection <n>` for each
// TCP connection; `extended connect <path> <n>` for the n-th extended CONNECT to a path;
// `closed <path> rst=<code>` when a WebSocket stream closes; `flood-pending <path> <bytes>`
// one second after a flood started (bytes the server could not send yet because the
// client's flow-control window is closed).
//
// The 200 response carries `x-seen-*` headers with what the request carried (scheme,
// authority, user-agent, authorization, sec-websocket-extensions, sec-websocket-key).
//
// Echo: every data frame comes back unmasked with the same opcode and FIN bit; a Ping gets a
// Pong; a Close is answered with a Close and END_STREAM. Frames from the client must be
// masked (else Close 1002). Text messages with a meaning: `pause:MS` makes the server stop
// reading the stream for MS milliseconds; `reset` resets the stream (RST_STREAM CANCEL);
// `goaway` sends GOAWAY on the connection (the open streams go on); `destroy` closes the
// connection; `flood:N` sends N binary messages of 16 KiB. Paths: `/redirect` answers 301
// to `/echo?redirected`, `/reject` 403 with a body, `/method-not-allowed` 405,
// `/not-implemented` 501;
// `/http11-required` and `/refused` reset the stream with HTTP_1_1_REQUIRED and
// REFUSED_STREAM.
'use strict';
const http2 = require('http2');
const crypto = require('crypto');
const fs = require('fs');

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const flag = (name) => args.includes(name);

function parser(onFrame) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const b0 = buf[0];
      const b1 = buf[1];
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      let mask = null;
      if (masked) {
        if (buf.length < off + 4) return;
        mask = buf.subarray(off, off + 4);
        off += 4;
      }
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(off + len);
      onFrame({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload, masked });
    }
  };
}

function frame(opcode, payload, fin = true) {
  const len = payload.length;
  let head;
  if (len < 126) {
    head = Buffer.from([0, len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | opcode;
  return Buffer.concat([head, payload]);
}

function closePayload(code) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code, 0);
  return b;
}

// Runs the echo over `io` (an Http2Stream or an HTTP/1.1 socket); `reset()` resets it.
function echo(io, path, reset) {
  let closing = false;
  io.on('data', parser((f) => {
    if (closing) return;
    if (!f.masked) {
      closing = true;
      io.write(frame(0x8, closePayload(1002)));
      io.end();
      return;
    }
    if (f.opcode === 0x8) {
      closing = true;
      io.write(frame(0x8, f.payload.subarray(0, 2)));
      io.end();
      return;
    }
    if (f.opcode === 0x9) {
      io.write(frame(0xa, f.payload));
      return;
    }
    if (f.opcode === 0xa) return;
    if (f.opcode === 0x1 && f.fin) {
      const text = f.payload.toString('utf8');
      if (text === 'reset') {
        reset();
        return;
      }
      if (text === 'goaway' && io.session) {
        // A graceful shutdown's GOAWAY: the open streams go on, no new ones.
        io.session.goaway(http2.constants.NGHTTP2_NO_ERROR);
        return;
      }
      if (text === 'destroy' && io.session) {
        // The connection ends under its streams (TCP closed).
        io.session.destroy();
        return;
      }
      const p = /^pause:(\d+)$/.exec(text);
      if (p && typeof io.pause === 'function') {
        // Stop reading for a while: the stream's receive window stays closed.
        io.pause();
        setTimeout(() => io.resume(), Number(p[1]));
        return;
      }
      const m = /^flood:(\d+)$/.exec(text);
      if (m) {
        const chunk = Buffer.alloc(16 * 1024, 0x61);
        for (let i = 0; i < Number(m[1]); i++) io.write(frame(0x2, chunk));
        setTimeout(() => console.log(`flood-pending ${path} ${io.writableLength}`), 1000);
        return;
      }
    }
    io.write(frame(f.opcode, f.payload, f.fin));
  }));
}

const options = { settings: { enableConnectProtocol: !flag('--no-connect-protocol') } };
if (arg('--max-streams')) options.settings.maxConcurrentStreams = Number(arg('--max-streams'));
let server;
if (arg('--cert')) {
  options.cert = fs.readFileSync(arg('--cert'));
  options.key = fs.readFileSync(arg('--key'));
  options.allowHTTP1 = flag('--allow-http1');
  server = http2.createSecureServer(options);
} else {
  server = http2.createServer(options);
}

let connections = 0;
const attempts = new Map();
server.on('connection', () => {
  connections += 1;
  console.log(`connection ${connections}`);
});

server.on('stream', (stream, headers) => {
  stream.on('error', () => {});
  const path = headers[':path'];
  if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
    stream.respond({ ':status': 404 });
    stream.end();
    return;
  }
  attempts.set(path, (attempts.get(path) || 0) + 1);
  console.log(`extended connect ${path} ${attempts.get(path)}`);
  stream.on('close', () => console.log(`closed ${path} rst=${stream.rstCode}`));
  if (path.startsWith('/redirect')) {
    stream.respond({ ':status': 301, location: '/echo?redirected' });
    stream.end();
    return;
  }
  if (path.startsWith('/refused')) {
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (path.startsWith('/http11-required')) {
    stream.close(http2.constants.NGHTTP2_HTTP_1_1_REQUIRED);
    return;
  }
  if (path.startsWith('/method-not-allowed')) {
    stream.respond({ ':status': 405 });
    stream.end();
    return;
  }
  if (path.startsWith('/not-implemented')) {
    stream.respond({ ':status': 501 });
    stream.end();
    return;
  }
  if (path.startsWith('/reject')) {
    stream.respond({ ':status': 403, 'content-type': 'text/plain' });
    stream.end('go away');
    return;
  }
  if (headers['sec-websocket-version'] !== '13') {
    stream.respond({ ':status': 400 });
    stream.end();
    return;
  }
  // What the request carried, for the tests to look at in the response.
  const response = {
    ':status': 200,
    'x-seen-scheme': headers[':scheme'] || 'none',
    'x-seen-authority': headers[':authority'] || 'none',
    'x-seen-user-agent': headers['user-agent'] || 'none',
    'x-seen-authorization': headers.authorization || 'none',
    'x-seen-extensions': headers['sec-websocket-extensions'] || 'none',
    'x-seen-key': headers['sec-websocket-key'] || 'none',
  };
  const offered = headers['sec-websocket-protocol'];
  if (offered) response['sec-websocket-protocol'] = offered.split(',')[0].trim();
  stream.respond(response);
  echo(stream, path, () => stream.close(http2.constants.NGHTTP2_CANCEL));
});

// HTTP/1.1 upgrades (with --allow-http1 over TLS).
server.on('upgrade', (req, socket) => {
  socket.on('error', () => {});
  const key = req.headers['sec-websocket-key'];
  const accept = crypto
    .createHash('sha1')
    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');
  let head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n`;
  const offered = req.headers['sec-websocket-protocol'];
  if (offered) head += `Sec-WebSocket-Protocol: ${offered.split(',')[0].trim()}\r\n`;
  socket.write(head + '\r\n');
  socket.on('close', () => console.log(`closed ${req.url} rst=http1`));
  echo(socket, req.url, () => socket.destroy());
});

server.listen(0, '127.0.0.1', () => {
  console.log(`PORT ${server.address().port}`);
});
