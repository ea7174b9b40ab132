export { ArtifactPathError, caseDirName, caseRelativeDir, isSanitizedSegment, mirrorPath, resolveInside, sanitizeSegment } from './paths.js';
export { CustodyLog, verifyCustodyChain, type CustodyEntry, type CustodyRecord, type CustodyVerification } from './custody.js';
export {
  CaseFile,
  EvidenceStoreFullError,
  EvidenceWriteError,
  evidenceErrorReason,
  type ArtifactRecord,
  type ArtifactSource,
  type CaptureOptions,
  type CaseFileOptions,
  type SealResult,
} from './store.js';
export { verifyCaseDir, type CaseVerification } from './verify-case.js';
export { keyFingerprint, signCase, type SignatureFile, type SigningKey } from './signing.js';
export { verifySignature, type SignatureVerification } from './verify-signature.js';
export { writeBundle } from './bundle.js';
export { BundleError, extractBundle } from './bundle-extract.js';
