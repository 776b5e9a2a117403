// Test "provider" SMTP server on loopback using Nodemailer's smtp-server.
// env: STARTTLS_PORT, SMTPS_PORT, CERT, KEY, USERS="alice:secret,bob:pw", TOKENS="tok1,tok2", TOKEN_FILE, SPOOL,
//      REFUSE_RCPT="a@x,b@y" (answered 550 5.1.1 <addr>: Recipient address rejected)
// Each message: NNNN.json (envelope) then NNNN.eml, each renamed into place (never seen half-written).
'use strict';
const { SMTPServer } = require('smtp-server');
const fs = require('fs');
const path = require('path');

const HOST = '127.0.0.1';
const users = Object.fromEntries((process.env.USERS || 'alice:secret').split(',').map(s => s.split(':')));
const staticTokens = (process.env.TOKENS || '').split(',').filter(Boolean);
function tokens() { // re-read TOKEN_FILE on every AUTH so tokens minted by the test AS are accepted
  const t = new Set(staticTokens);
  if (process.env.TOKEN_FILE && fs.existsSync(process.env.TOKEN_FILE))
    fs.readFileSync(process.env.TOKEN_FILE, 'utf8').split('\n').filter(Boolean).forEach(x => t.add(x.trim()));
  return t;
}
const spool = process.env.SPOOL || './spool-node';
fs.mkdirSync(spool, { recursive: true });
let n = 0;
const refused = new Set((process.env.REFUSE_RCPT || '').split(',').filter(Boolean).map(a => a.toLowerCase()));
function writeAtomic(file, data) { fs.writeFileSync(file + '.tmp', data); fs.renameSync(file + '.tmp', file); }
const tls = { key: fs.readFileSync(process.env.KEY), cert: fs.readFileSync(process.env.CERT) };

function opts(secure) {
  return {
    ...tls,
    secure,                       // true = implicit TLS; false = STARTTLS offered
    name: 'provider.test',
    authMethods: ['PLAIN', 'LOGIN', 'XOAUTH2'],
    allowInsecureAuth: false,     // AUTH only after TLS
    hideENHANCEDSTATUSCODES: false, // advertise ENHANCEDSTATUSCODES and prefix replies with them
    logger: process.env.SMTP_DEBUG === '1',
    onAuth(auth, session, cb) {
      if (auth.method === 'XOAUTH2') {
        if (tokens().has(auth.accessToken)) return cb(null, { user: auth.username });
        // failure -> 334 <base64 json>, client sends empty line, then 535
        return cb(null, { data: { status: '401', schemes: 'bearer', scope: 'https://mail.example/' } });
      }
      if (users[auth.username] === auth.password) return cb(null, { user: auth.username });
      return cb(new Error('Invalid username or password'));
    },
    onRcptTo(address, session, cb) {
      if (refused.has(address.address.toLowerCase())) {
        const err = new Error('<' + address.address + '>: Recipient address rejected');
        err.responseCode = 550;   // smtp-server prefixes the enhanced code (5.1.1)
        return cb(err);
      }
      cb();
    },
    onData(stream, session, cb) {
      const chunks = [];
      stream.on('data', c => chunks.push(c));
      stream.on('end', () => {
        const base = path.join(spool, String(++n).padStart(4, '0'));
        const meta = { mail_from: session.envelope.mailFrom.address,
          rcpt_tos: session.envelope.rcptTo.map(r => r.address), auth_user: session.user, tls: !!session.secure };
        writeAtomic(base + '.json', JSON.stringify(meta));
        writeAtomic(base + '.eml', Buffer.concat(chunks));
        console.log('DELIVERED', base, JSON.stringify(meta));
        cb(null, 'OK queued as ' + n);
      });
    },
  };
}
const servers = [];
let pending = 0;
function listen(port, secure) {
  if (!port) return;
  pending++;
  const s = new SMTPServer(opts(secure));
  s.on('error', e => console.error('ERR', e.message));
  s.listen(Number(port), HOST, () => { if (--pending === 0) console.log('READY'); });
  servers.push(s);
}
listen(process.env.STARTTLS_PORT, false);
listen(process.env.SMTPS_PORT, true);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { servers.forEach(s => s.close()); process.exit(0); });
