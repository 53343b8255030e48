import type { VegaLiteSpec } from './charts';

type Vega = typeof import('vega');
type VegaLite = typeof import('vega-lite', { with: { 'resolution-mode': 'import' } });
type ResvgModule = typeof import('@resvg/resvg-js');

interface Renderers {
  vega: Vega;
  vegaLite: VegaLite;
  resvg: ResvgModule;
}

let renderers: Promise<Renderers> | undefined;

// Loaded on first use: vega and vega-lite are ES modules (top-level await) that this CommonJS
// lib can only reach through import(), and nobody who imports @lethe/metrics for its numbers
// should pay for them or for resvg's native binding.
function loadRenderers(): Promise<Renderers> {
  renderers ??= Promise.all([import('vega'), import('vega-lite'), import('@resvg/resvg-js')]).then(
    ([vega, vegaLite, resvg]) => ({ vega, vegaLite, resvg }),
  );
  return renderers;
}

/**
 * Font files for resvg, from the dejavu-fonts-ttf package rather than the system: a fresh
 * machine or container often has no fonts at all, and then every label would silently vanish.
 */
function fontFiles(): string[] {
  return ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'].map((file) =>
    require.resolve(`dejavu-fonts-ttf/ttf/${file}`),
  );
}

export interface RenderedChart {
  svg: string;
  png: Buffer;
  /** CSS pixels the chart is drawn for; the PNG has `scale` times as many. */
  width: number;
  height: number;
}

/** Compiles a vega-lite spec and draws it as SVG and as a PNG at `scale`× for sharp text. */
export async function renderChart(spec: VegaLiteSpec, scale = 2): Promise<RenderedChart> {
  const { vega, vegaLite, resvg } = await loadRenderers();
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  const renderer = new resvg.Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: scale },
    font: {
      loadSystemFonts: false,
      fontFiles: fontFiles(),
      defaultFontFamily: 'DejaVu Sans',
      sansSerifFamily: 'DejaVu Sans',
    },
  });
  const { width, height } = renderer;
  return { svg, png: renderer.render().asPng(), width, height };
}
