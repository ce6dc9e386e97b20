// The graph section of the HTML report: the drawing laid out at write time by dagre (a layered
// graph layout library) and rendered as SVG, with the toolbar that html.ts's page script wires up.
import * as dagre from '@dagrejs/dagre';
import { escapeHtml } from './format';
import type { GraphDrawing } from './types';

const r1 = (x: number) => Math.round(x * 10) / 10;

// Distinct, readable fills for fusion groups (light enough for dark text).
const PALETTE = ['#8ecae6', '#ffb703', '#90be6d', '#f4a261', '#cdb4db', '#f28482', '#84a59d', '#ffd166',
  '#a3c4f3', '#b5e48c', '#f9c74f', '#e5989b', '#98f5e1', '#fbc4ab', '#c3bef0', '#d4a373'];

interface Laid {
  svg: string;
  width: number;
  height: number;
  groupsDrawn: number;
  regions: number;
}

const NODE_H = 26;
const nodeWidth = (label: string) => Math.max(56, Math.min(260, 7.2 * label.length + 20));

/** Lay out a drawing with dagre and render it as SVG markup (inside a <g id="viewport">). */
export function layoutDrawing(d: GraphDrawing): Laid {
  const g = new dagre.graphlib.Graph({ compound: true, multigraph: false });
  g.setGraph({ rankdir: 'TB', nodesep: 16, ranksep: 26, marginx: 24, marginy: 24 });
  g.setDefaultEdgeLabel(() => ({}));
  const regions = [...new Set(d.nodes.map((n) => n.attention).filter((a): a is string => a !== undefined))];
  const regionLabel = (a: string) => `attention: ${a}`;
  regions.forEach((a, k) => g.setNode(`region:${k}`, { label: a }));
  for (const n of d.nodes) {
    g.setNode(n.id, { width: nodeWidth(n.label), height: NODE_H });
    if (n.attention !== undefined) g.setParent(n.id, `region:${regions.indexOf(n.attention)}`);
  }
  for (const e of d.edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to);
  dagre.layout(g);

  // Colour only groups with two or more drawn members: a singleton is not a fusion.
  const members = new Map<string, number>();
  for (const n of d.nodes) if (n.group !== undefined) members.set(n.group, (members.get(n.group) ?? 0) + 1);
  const colourOf = new Map<string, string>();
  for (const n of d.nodes) {
    if (n.group !== undefined && members.get(n.group)! >= 2 && !colourOf.has(n.group)) {
      colourOf.set(n.group, PALETTE[colourOf.size % PALETTE.length]);
    }
  }

  const parts: string[] = [];
  regions.forEach((a, k) => {
    const c = g.node(`region:${k}`);
    const x = c.x - c.width / 2;
    const y = c.y - c.height / 2;
    // The title goes in the box's top-left corner, else its top-right, else just above the box:
    // the first place where it overlaps no node.
    const text = regionLabel(a);
    const tw = 6.6 * text.length;
    const boxes = d.nodes.map((n) => g.node(n.id)).map((p) => ({
      x0: p.x - p.width / 2, x1: p.x + p.width / 2, y0: p.y - NODE_H / 2, y1: p.y + NODE_H / 2,
    }));
    const free = (x0: number, y0: number) => !boxes.some((b) => b.x0 < x0 + tw && b.x1 > x0 && b.y0 < y0 + 14 && b.y1 > y0);
    const spots: [number, number][] = [[x + 8, y + 3], [x + c.width - tw - 8, y + 3], [x + 8, y - 16]];
    const [lx, ly] = spots.find(([sx, sy]) => free(sx, sy)) ?? spots[0];
    parts.push(`<g class="region" data-attention="${escapeHtml(a)}">` +
      `<rect x="${r1(x)}" y="${r1(y)}" width="${r1(c.width)}" height="${r1(c.height)}" rx="8"/>` +
      `<text x="${r1(lx)}" y="${r1(ly + 11)}">${escapeHtml(text)}</text></g>`);
  });
  for (const e of g.edges()) {
    const pts = g.edge(e).points ?? [];
    if (!pts.length) continue;
    const dpath = pts.map((p: { x: number; y: number }, i: number) => `${i ? 'L' : 'M'}${r1(p.x)} ${r1(p.y)}`).join(' ');
    parts.push(`<path class="edge" d="${dpath}" marker-end="url(#arrow)"/>`);
  }
  for (const n of d.nodes) {
    const p = g.node(n.id);
    const w = p.width;
    const fill = n.group !== undefined ? colourOf.get(n.group) : undefined;
    const cls = ['node', `node-${n.kind}`, fill ? 'fused' : ''].filter(Boolean).join(' ');
    const title = [
      n.title ?? n.label, n.group !== undefined ? `fusion group ${n.group}` : '', n.attention ? `attention ${n.attention}` : '',
    ].filter(Boolean).join('\n');
    parts.push(`<g class="${cls}" data-id="${escapeHtml(n.id)}"${n.group !== undefined ? ` data-group="${escapeHtml(n.group)}"` : ''}>` +
      `<title>${escapeHtml(title)}</title>` +
      `<rect x="${r1(p.x - w / 2)}" y="${r1(p.y - NODE_H / 2)}" width="${r1(w)}" height="${NODE_H}" ` +
      `rx="${n.kind === 'op' ? 5 : 13}"${fill ? ` style="fill:${fill}"` : ''}/>` +
      `<text x="${r1(p.x)}" y="${r1(p.y + 4)}">${escapeHtml(n.label)}</text></g>`);
  }
  const gl = g.graph();
  return {
    svg: parts.join('\n'), width: Math.ceil(gl.width ?? 100), height: Math.ceil(gl.height ?? 100),
    groupsDrawn: colourOf.size, regions: regions.length,
  };
}

const GRAPH_TOOLBAR = '<div class="toolbar"><button type="button" id="zoom-in" title="zoom in">+</button>' +
  '<button type="button" id="zoom-out" title="zoom out">&minus;</button>' +
  '<button type="button" id="zoom-fit" title="fit to view">fit</button>\n' +
  '<span class="legend"><span class="swatch fused-swatch"></span>fusion group (one colour each) ' +
  '<span class="swatch plain-swatch"></span>not fused <span class="swatch region-swatch"></span>attention region ' +
  '<span class="swatch summary-swatch"></span>collapsed nodes</span></div>';

const ARROW_MARKER = '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" ' +
  'markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z"/></marker></defs>';

export function graphSection(d: GraphDrawing | undefined): string {
  if (!d || d.nodes.length === 0) {
    return '<section id="graph-section"><h2>Graph</h2><p class="muted">No graph drawing in this report.</p></section>';
  }
  const laid = layoutDrawing(d);
  const frameHeight = Math.max(260, Math.round(laid.height * 1.25 + 40));
  const svgOpen = `<svg id="graph" viewBox="0 0 ${laid.width} ${laid.height}" data-width="${laid.width}" data-height="${laid.height}" ` +
    'preserveAspectRatio="xMidYMin meet">';
  return `<section id="graph-section"><h2>Graph</h2>
<p class="caption">${escapeHtml(d.caption)}. ${laid.groupsDrawn} fusion group(s) coloured, ${laid.regions} attention region(s) boxed.
Wheel to zoom, drag to pan.</p>
${GRAPH_TOOLBAR}
<div class="graph-frame" style="height: min(72vh, ${frameHeight}px)">${svgOpen}
${ARROW_MARKER}
<g id="viewport">
${laid.svg}
</g></svg></div></section>`;
}
