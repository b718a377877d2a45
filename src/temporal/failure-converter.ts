import { DefaultFailureConverter } from '@temporalio/common';

// The failure converter used when payloads are encrypted (QWENOPS_CODEC_KEY): failure
// messages and stack traces (which carry Job log tails, URIs, hub errors) move into the
// encoded attributes payload, so the payload codec encrypts them like everything else and
// history shows only "Encoded failure".
//
// The SDK loads it by module path (DataConverter.failureConverterPath): webpack bundles it
// into the workflow sandbox, and clients/workers `require()` it (Node >= 20.19 requires ESM;
// tsx handles the TypeScript source). Keep this file free of type-only syntax so the source
// form can be required as plain JavaScript as well.
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
