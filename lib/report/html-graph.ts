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
/** Nodes with a second line (the shape, the profiled time) are taller. */
const NODE_H2 = 38;
const nodeHeight = (n: GraphDrawing['nodes'][number]) => (secondLine(n) ? NODE_H2 : NODE_H);
const nodeWidth = (label: string) => Math.max(56, Math.min(260, 7.2 * label.length + 20));

/** What a box shows under the op's name: its output's shape, and its kind's mean time per call. */
function secondLine(n: GraphDrawing['nodes'][number]): string {
  const ms = n.kindMs !== undefined ? `${n.kindMs < 0.1 ? n.kindMs.toFixed(3) : n.kindMs.toFixed(2)} ms` : '';
  return [n.shape ?? '', ms].filter(Boolean).join(' \u00b7 ');
}

/** Lay out a drawing with dagre and render it as SVG markup (inside a <g id="viewport">). */
export function layoutDrawing(d: GraphDrawing): Laid {
  const g = new dagre.graphlib.Graph({ compound: true, multigraph: false });
  g.setGraph({ rankdir: 'TB', nodesep: 16, ranksep: 26, marginx: 24, marginy: 24 });
  g.setDefaultEdgeLabel(() => ({}));
  const regions = [...new Set(d.nodes.map((n) => n.attention).filter((a): a is string => a !== undefined))];
  const regionLabel = (a: string) => `attention: ${a}`;
  regions.forEach((a, k) => g.setNode(`region:${k}`, { label: a }));
  for (const n of d.nodes) {
    g.setNode(n.id, { width: Math.max(nodeWidth(n.label), 6.2 * secondLine(n).length + 16), height: nodeHeight(n) });
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
      x0: p.x - p.width / 2, x1: p.x + p.width / 2, y0: p.y - p.height / 2, y1: p.y + p.height / 2,
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
    const h = p.height;
    const fill = n.group !== undefined ? colourOf.get(n.group) : undefined;
    const cls = ['node', `node-${n.kind}`, fill ? 'fused' : '', n.lowered ? 'lowered' : ''].filter(Boolean).join(' ');
    const time = n.kindMs !== undefined ? `profiled: ${n.kindMs.toFixed(3)} ms per call of this op kind (mean over its calls)` : '';
    const title = [
      n.title ?? n.label, n.lowered ? `fused op from the ${n.lowered} lowering` : '',
      n.group !== undefined && !n.lowered ? `fusion group ${n.group}` : '', n.attention ? `attention ${n.attention}` : '', time,
    ].filter(Boolean).join('\n');
    const second = secondLine(n);
    const attrs = [`data-id="${escapeHtml(n.id)}"`, n.group !== undefined ? `data-group="${escapeHtml(n.group)}"` : '',
      n.lowered ? `data-lowered="${escapeHtml(n.lowered)}"` : ''].filter(Boolean).join(' ');
    parts.push(`<g class="${cls}" ${attrs}>` +
      `<title>${escapeHtml(title)}</title>` +
      `<rect x="${r1(p.x - w / 2)}" y="${r1(p.y - h / 2)}" width="${r1(w)}" height="${h}" ` +
      `rx="${n.kind === 'op' ? 5 : 13}"${fill ? ` style="fill:${fill}"` : ''}/>` +
      (second
        ? `<text x="${r1(p.x)}" y="${r1(p.y - 2)}">${escapeHtml(n.label)}</text>` +
          `<text class="sub" x="${r1(p.x)}" y="${r1(p.y + 12)}">${escapeHtml(second)}</text></g>`
        : `<text x="${r1(p.x)}" y="${r1(p.y + 4)}">${escapeHtml(n.label)}</text></g>`));
  }
  const gl = g.graph();
  return {
    svg: parts.join('\n'), width: Math.ceil(gl.width ?? 100), height: Math.ceil(gl.height ?? 100),
    groupsDrawn: colourOf.size, regions: regions.length,
  };
}

const toolbar = (prefix: string) => '<div class="toolbar">' +
  `<button type="button" id="${prefix}zoom-in" data-zoom="in" title="zoom in">+</button>` +
  `<button type="button" id="${prefix}zoom-out" data-zoom="out" title="zoom out">&minus;</button>` +
  `<button type="button" id="${prefix}zoom-fit" data-zoom="fit" title="fit to view">fit</button>\n` +
  '<span class="legend"><span class="swatch fused-swatch"></span>fusion group (one colour each) ' +
  '<span class="swatch lowered-swatch"></span>fused op (lowered) ' +
  '<span class="swatch plain-swatch"></span>not fused <span class="swatch region-swatch"></span>attention region ' +
  '<span class="swatch summary-swatch"></span>collapsed nodes</span></div>';

const arrowMarker = (id: string) => `<defs><marker id="${id}" viewBox="0 0 10 10" refX="9" refY="5" ` +
  'markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z"/></marker></defs>';

/** Where a graph section goes and what it is called: the unfused graph is #graph, the fused one #fused-graph. */
export interface GraphSectionOptions {
  /** The svg's id; the section's is `${id}-section`, the toolbar's buttons' ids start with `${prefix}`. */
  id: string;
  prefix: string;
  heading: string;
  /** Said after the caption. */
  note?: string;
}

const UNFUSED_GRAPH: GraphSectionOptions = { id: 'graph', prefix: '', heading: 'Unfused graph' };

export function graphSection(d: GraphDrawing | undefined, o: GraphSectionOptions = UNFUSED_GRAPH): string {
  if (!d || d.nodes.length === 0) {
    return `<section id="${o.id}-section"><h2>${escapeHtml(o.heading)}</h2><p class="muted">No graph drawing in this report.</p></section>`;
  }
  const laid = layoutDrawing(d);
  const frameHeight = Math.max(260, Math.round(laid.height * 1.25 + 40));
  const svgOpen = `<svg id="${o.id}" class="graph" viewBox="0 0 ${laid.width} ${laid.height}" data-width="${laid.width}" ` +
    `data-height="${laid.height}" preserveAspectRatio="xMidYMin meet">`;
  const arrow = `${o.prefix}arrow`;
  return `<section id="${o.id}-section" class="graph-section"><h2>${escapeHtml(o.heading)}</h2>
<p class="caption">${escapeHtml(d.caption)}. ${laid.groupsDrawn} fusion group(s) coloured, ${laid.regions} attention region(s) boxed.
${o.note ? `${escapeHtml(o.note)} ` : ''}Wheel to zoom, drag to pan.</p>
${toolbar(o.prefix)}
<div class="graph-frame" style="height: min(72vh, ${frameHeight}px)">${svgOpen}
${arrowMarker(arrow)}
<g class="viewport"${o.id === 'graph' ? ' id="viewport"' : ` id="${o.prefix}viewport"`}>
${laid.svg.replace(/url\(#arrow\)/g, `url(#${arrow})`)}
</g></svg></div></section>`;
}
