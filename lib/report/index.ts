// Renderings of a ValidationReport (terminal, JSON, HTML) and of graphs (DOT, drawings).
export * from './types';
export { reportToJson, reportToJsonObject, validateReportJson, assertValidReport, parseReportJson, ReportContractError } from './json';
export { renderTerminal, type TerminalOptions } from './terminal';
export { renderHtml, writeHtmlReport, layoutDrawing, escapeHtml, type HtmlOptions } from './html';
export { graphToDot, dotString, type DotOptions } from './dot';
export { drawingFromGraph, type DrawingOptions } from './drawing';
export { graphStats, opKind, metaAttention, ATTENTION_KINDS, type StatsOptions } from './stats';
export { writeFileAtomic } from './write';
export { formatBytes, formatFlops, formatDiff, formatInt, formatMs, formatPercent, textTable } from './format';
