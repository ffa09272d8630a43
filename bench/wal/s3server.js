'use strict';
// SPDX-License-Identifier: MIT
// The WAL benchmark's S3 server: ONE s3rver application served on plain http
// AND on https (same process, same store), so http clients (ferry, awscli,
// barman) and pgBackRest 2.45 (S3 over TLS only) all talk to one server.
// usage: node s3server.js DIR HOST HTTP_PORT HTTPS_PORT KEY CERT BUCKET
// Needs NODE_PATH pointing at the repository's node_modules (npm ci).
const http = require('http');
const https = require('https');
const fs = require('fs');
const S3rver = require('s3rver');

const [dir, host, port, tlsPort, key, cert, bucket] = process.argv.slice(2);
(async () => {
  const app = new S3rver({
    directory: dir,
    silent: true,
    vhostBuckets: false,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  await app.configureBuckets();
  const cb = app.callback();
  const servers = [
    http.createServer(cb).listen(Number(port), host),
    https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, cb)
      .listen(Number(tlsPort), host),
  ];
  const stop = () => {
    servers.forEach((s) => s.close());
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  console.log(`s3rver http://${host}:${port} https://${host}:${tlsPort} dir=${dir}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
