export type {
  ReportEpoch,
  ReportErasure,
  ReportErasureMetrics,
  ReportForget,
  ReportForgetMetrics,
  ReportInput,
  ReportModel,
  ReportOutput,
  ReportTraining,
} from './types';
export { writeReport } from './write-report';
