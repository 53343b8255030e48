// Receipts of every kind (class, sample, sisa) have one owner, @lethe/ledger: its schema, its
// writer and its reader. A class forget's receipt keeps its historical name here.
export {
  type ClassForgetReceipt as ForgetReceipt,
  type ClassForgetRequestRecord,
  assertValidRequestId,
  isClassReceipt,
  isSampleForgetReceipt,
  isSisaReceipt,
  listReceipts,
  parseReceipt,
  readReceipt,
  receiptKind,
  receiptObjectName,
  storeReceipt,
  type StoredReceipt,
} from '@lethe/ledger';
