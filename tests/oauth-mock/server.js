// node server.js [port=0] [host=127.0.0.1]  -> prints "READY http://127.0.0.1:<port>" when listening
// GET /__control -> {config,log}; POST /__control {json} merges config; POST /__control/reset
const http = require('node:http');
const DEFAULTS = {
  strict: true, client_secret: null,                            // strict: code known+single-use, redirect_uri/client_id match, verifier required
  authorize_error: null, state_override: null, add_iss: false,  // e.g. "access_denied"; tamper state; RFC 9207 iss
  token_error: null, token_error_grant: null, token_status: 400, // e.g. "invalid_grant" [only for "refresh_token"]
  expires_in: null, omit_refresh_token: false, sub: null,
};
(async () => {
  const { OAuth2Issuer, OAuth2Service } = await import('oauth2-mock-server');
  const [port, host] = [parseInt(process.argv[2] ?? '0', 10), process.argv[3] ?? '127.0.0.1'];
  let cfg = { ...DEFAULTS }, log = [];
  const codes = new Map(), refreshTokens = new Set();
  const issuer = new OAuth2Issuer();
  await issuer.keys.generate('RS256');
  const service = new OAuth2Service(issuer);

  service.on('beforeAuthorizeRedirect', ({ url }, req) => { // mutate url in place (replacing it has no effect)
    const q = req.query, code = url.searchParams.get('code');
    log.push({ endpoint: 'authorize', query: q });
    if (code) codes.set(code, { client_id: q.client_id, redirect_uri: q.redirect_uri, challenge: q.code_challenge });
    if (cfg.authorize_error) {
      url.searchParams.delete('code');
      url.searchParams.set('error', cfg.authorize_error);
      url.searchParams.set('error_description', `mock: ${cfg.authorize_error}`);
    }
    if (cfg.state_override !== null) url.searchParams.set('state', cfg.state_override);
    if (cfg.add_iss) url.searchParams.set('iss', issuer.url);
  });
  service.on('beforeTokenSigning', (token) => {
    if (cfg.expires_in !== null) token.payload.exp = token.payload.iat + cfg.expires_in;
    if (cfg.sub !== null) token.payload.sub = cfg.sub;
  });
  service.on('beforeResponse', (resp, req) => {
    const b = req.body || {};
    log.push({ endpoint: 'token', body: b, authorization: req.headers.authorization ?? null });
    const fail = (error, status = 400, desc = `mock: ${error}`) => {
      resp.statusCode = status; resp.body = { error, error_description: desc };
    };
    if (cfg.strict) {
      const m = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
      const [id, secret] = m ? Buffer.from(m[1], 'base64').toString().split(/:(.*)/s).map(decodeURIComponent)
                             : [b.client_id, b.client_secret];
      if (cfg.client_secret !== null && secret !== cfg.client_secret) return fail('invalid_client', 401);
      if (b.grant_type === 'authorization_code') {
        const c = codes.get(b.code);
        if (!c) return fail('invalid_grant', 400, 'unknown or already used code');
        codes.delete(b.code);
        if (c.redirect_uri !== b.redirect_uri) return fail('invalid_grant', 400, 'redirect_uri mismatch');
        if (c.client_id !== undefined && c.client_id !== id) return fail('invalid_grant', 400, 'client_id mismatch');
        if (c.challenge && !b.code_verifier) return fail('invalid_grant', 400, 'code_verifier required');
      } else if (b.grant_type === 'refresh_token' && !refreshTokens.has(b.refresh_token)) {
        return fail('invalid_grant', 400, 'unknown refresh_token');
      }
    }
    if (cfg.token_error && (!cfg.token_error_grant || cfg.token_error_grant === b.grant_type))
      return fail(cfg.token_error, cfg.token_status);
    if (cfg.expires_in !== null) resp.body.expires_in = cfg.expires_in;
    if (cfg.omit_refresh_token) delete resp.body.refresh_token;
    if (resp.body.refresh_token) refreshTokens.add(resp.body.refresh_token);
  });

  const send = (res, status, obj) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(obj)); };
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (!path.startsWith('/__control')) return service.requestHandler(req, res);
    if (req.method === 'GET') return send(res, 200, { config: cfg, log });
    let raw = '';
    req.on('data', (d) => (raw += d)).on('end', () => {
      try {
        if (path === '/__control/reset') { cfg = { ...DEFAULTS }; log = []; } else cfg = { ...cfg, ...JSON.parse(raw || '{}') };
        send(res, 200, { config: cfg });
      } catch (e) { send(res, 400, { error: String(e) }); }
    });
  });
  server.listen(port, host, () => {
    issuer.url = `http://${host}:${server.address().port}`; // library default would advertise "localhost"
    console.log(`READY ${issuer.url}`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
})().catch((e) => { console.error(e); process.exit(1); });
