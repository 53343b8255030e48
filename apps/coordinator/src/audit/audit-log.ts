// The audit log's format, writer and one reader live in @lethe/ledger, so `lethe audit` (and its
// --verify) read the entries with the same code and schema the coordinator writes them with.
export {
  type AuditActor,
  type AuditEntry,
  type AuditOutcome,
  type AuditRecord,
  type AuditTarget,
  ANONYMOUS,
  AUDIT_PREFIX,
  appendAudit,
  auditKey,
  readAuditLog,
  scrub,
} from '@lethe/ledger';
