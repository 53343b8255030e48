// Public face of @lethe/ledger: the store's append-only erasure ledger (what was forgotten, by
// which request, proven by which receipt), the training set it leaves, subject tables, and the
// roster of samples and subjects each stored model was trained on, and the coordinator's audit
// log of forget requests (its one reader and the check that every request has its records).
export {
  type DropEvent,
  type ErasureEvent,
  type LedgerDocument,
  type LedgerEvent,
  LedgerDocumentSchema,
} from './ledger-schema';
export {
  type Erased,
  type Ledger,
  type LedgerStamp,
  type NewErasure,
  LEDGER_OBJECT,
  LedgerError,
  appendErasures,
  dropErasure,
  erasedOf,
  ledgerStamp,
  readLedger,
} from './ledger';
export {
  type HonouredLedger,
  describeHonoured,
  excludeErased,
  honourLedger,
  revisionHonouring,
} from './honour';
export {
  type SubjectTable,
  SubjectTableError,
  checkSubjectTable,
  loadSubjectTable,
  parseSubjectTable,
  readSubjectTable,
} from './subjects';
export {
  type Roster,
  type RosterSample,
  ROSTER_OBJECT,
  RosterSchema,
  buildRoster,
  heldSamples,
  readRoster,
  rosterSamples,
  rosterSubjects,
  storeRoster,
  subjectsRecord,
} from './roster';
export {
  type RoutingLineage,
  ROUTING_LINEAGE_OBJECT,
  RoutingLineageRecorder,
  RoutingLineageSchema,
  expertsThatSaw,
  readRoutingLineage,
  routedExperts,
  storeRoutingLineage,
} from './routing-lineage';
export {
  type AuditActor,
  type AuditEntry,
  type AuditHole,
  type AuditHoleKind,
  type AuditOutcome,
  type AuditRecord,
  type AuditTarget,
  type AuditVerification,
  type AuditedJob,
  type AuditedJobState,
  ANONYMOUS,
  AUDIT_PREFIX,
  AuditEntrySchema,
  appendAudit,
  auditKey,
  publishedReceiptIds,
  readAuditLog,
  scrub,
  verifyAuditTrail,
} from './audit-log';
