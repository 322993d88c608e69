// The smallest Express app that answers the benchmark's POST, with or
// without express-idempotency (its default in-memory store).
//
// Run by idem-bench: `node app.js with|without`. It listens on a free
// loopback port and prints `peer listening on HOST:PORT`. The handler
// parses the JSON body, as an API would, and answers the same ~100-byte
// charge object as idem's benchmark upstream.
'use strict';

const express = require('express');

const withIdempotency = process.argv[2] === 'with';
const CHARGE = {
  id: 'ch_bench',
  object: 'charge',
  amount: 1000,
  currency: 'usd',
  status: 'succeeded',
  paid: true,
};

const app = express();
app.use(express.json());

let idempotency = null;
if (withIdempotency) {
  idempotency = require('express-idempotency');
  // As its README says: the middleware on every POST route, and the
  // handler asks whether the middleware already answered.
  app.post('*', idempotency.idempotency());
}

app.post('/v1/charges', (req, res) => {
  if (idempotency && idempotency.getSharedIdempotencyService().isHit(req)) {
    return;
  }
  res.json(CHARGE);
});

const server = app.listen(0, '127.0.0.1', () => {
  const { address, port } = server.address();
  console.log(`peer listening on ${address}:${port}`);
});

process.on('SIGTERM', () => process.exit(0));
