import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import type { QwenopsConfig } from '../config/config.js';

// The TLS options of every Temporal connection (CLI client, workers): none, server-verified
// TLS (QWENOPS_TEMPORAL_TLS=true, e.g. Temporal Cloud with an API key), or mTLS with a client
// certificate, an optional private CA and an optional server name override. Files are read
// here, once per connection, so a rotated certificate is picked up on the next start.

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the Temporal ${what} ${file}: ${(err as Error).message}`);
  }
}

export function temporalTls(temporal: QwenopsConfig['temporal']): TLSConfig | undefined {
  const { tls, tlsCertFile, tlsKeyFile, tlsCaFile, tlsServerName } = temporal;
  if (!tls && !tlsCertFile && !tlsCaFile && !tlsServerName) return undefined;
  const options: TLSConfig = {};
  if (tlsCertFile && tlsKeyFile) {
    options.clientCertPair = {
      crt: readPem(tlsCertFile, 'client certificate (QWENOPS_TEMPORAL_TLS_CERT)'),
      key: readPem(tlsKeyFile, 'client key (QWENOPS_TEMPORAL_TLS_KEY)'),
    };
  }
  if (tlsCaFile)
    options.serverRootCACertificate = readPem(tlsCaFile, 'CA certificate (QWENOPS_TEMPORAL_TLS_CA)');
  if (tlsServerName) options.serverNameOverride = tlsServerName;
  return options;
}
