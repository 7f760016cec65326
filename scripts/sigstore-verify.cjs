// Verifies a key-signed Sigstore bundle with sigstore-js alone (@sigstore/bundle, @sigstore/verify) and the public
// key: no Gate code is involved. Installed by scripts/setup.d/40-sigstore-js.sh; run as
//   NODE_PATH=.cache/sigstore-js/node_modules node scripts/sigstore-verify.cjs BUNDLE PUBLIC_KEY.pem [SUBJECT_SHA256]
// Exit 0 and a JSON summary on stdout when the signature verifies (and, if given, the in-toto subject digest
// matches); exit 1 with the verifier's error otherwise.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function main() {
  const [bundlePath, keyPath, subjectSha256] = process.argv.slice(2);
  if (!bundlePath || !keyPath) throw new Error('usage: sigstore-verify.cjs BUNDLE PUBLIC_KEY.pem [SUBJECT_SHA256]');
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const pem = fs.readFileSync(keyPath);
  // The hint convention of key-signed bundles (OpenSSF model_signing): hex SHA-256 of the PEM file.
  const hint = crypto.createHash('sha256').update(pem).digest('hex');
  const spki = crypto.createPublicKey(pem).export({ type: 'spki', format: 'der' });
  // An empty trust root: no CA, transparency log or timestamp authority is trusted; only this key is.
  const root = { tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] };
  const trust = toTrustMaterial(root, { [hint]: { rawBytes: spki } });
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));

  const env = bundle.content.dsseEnvelope;
  const statement = JSON.parse(env.payload.toString('utf8'));
  if (statement._type !== 'https://in-toto.io/Statement/v1') throw new Error(`not an in-toto Statement v1: ${statement._type}`);
  const digests = statement.subject.map((s) => s.digest && s.digest.sha256);
  if (subjectSha256 && !digests.includes(subjectSha256)) throw new Error(`no subject has sha256 ${subjectSha256} (subjects: ${digests.join(', ')})`);
  console.log(JSON.stringify({ verified: true, payloadType: env.payloadType, predicateType: statement.predicateType, subject: statement.subject }));
}

try {
  main();
} catch (e) {
  console.error(`sigstore-verify: ${e.name}: ${e.message}`);
  process.exit(1);
}
