// Windows × dimensions heat map on a canvas: one column per window (time
// runs left to right), one row per dimension, diverging blue-white-red
// colours. The scale is robust: it saturates at the 99th percentile of the
// magnitudes of complete windows, so that one zero-padded last window (whose
// values can be 30 times larger) does not turn every other column white.
// Padded windows are hatched.
import { hatchPattern } from './charts.js';

const MARGIN = { left: 44, right: 12, top: 8, bottom: 26 };

function colour(t) {
  // t in [-1, 1]: blue (negative) through white to red (positive).
  const s = Math.min(1, Math.abs(t));
  const [r, g, b] = t < 0 ? [37, 99, 235] : [220, 38, 38];
  return [255 + (r - 255) * s, 255 + (g - 255) * s, 255 + (b - 255) * s];
}

// The magnitude where colours saturate.
export function robustScale(windows) {
  const complete = windows.filter((window) => !window.padded);
  const source = complete.length ? complete : windows;
  const magnitudes = [];
  for (const window of source) for (const value of window.embedding) if (value !== null) magnitudes.push(Math.abs(value));
  if (!magnitudes.length) return 1;
  magnitudes.sort((a, b) => a - b);
  return magnitudes[Math.min(magnitudes.length - 1, Math.floor(0.99 * magnitudes.length))] || 1;
}

// Draws and returns the scale used (for the legend).
export function drawHeatmap(canvas, windows) {
  const rows = windows.length ? windows[0].embedding.length : 0;
  const columns = windows.length;
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || 900;
  const cssHeight = cssWidth < 500 ? 220 : 300;
  canvas.width = Math.round(cssWidth * ratio);
  canvas.height = Math.round(cssHeight * ratio);
  canvas.style.height = `${cssHeight}px`;
  const context = canvas.getContext('2d');
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, cssWidth, cssHeight);
  if (!rows || !columns) return 1;

  const scale = robustScale(windows);
  const image = new ImageData(columns, rows);
  windows.forEach((window, x) => {
    window.embedding.forEach((value, y) => {
      const [r, g, b] = value === null ? [128, 128, 128] : colour(value / scale);
      const i = (y * columns + x) * 4;
      image.data[i] = r;
      image.data[i + 1] = g;
      image.data[i + 2] = b;
      image.data[i + 3] = 255;
    });
  });
  const cells = document.createElement('canvas');
  cells.width = columns;
  cells.height = rows;
  cells.getContext('2d').putImageData(image, 0, 0);

  const plotWidth = cssWidth - MARGIN.left - MARGIN.right;
  const plotHeight = cssHeight - MARGIN.top - MARGIN.bottom;
  context.imageSmoothingEnabled = false;
  context.drawImage(cells, MARGIN.left, MARGIN.top, plotWidth, plotHeight);
  const columnWidth = plotWidth / columns;
  context.fillStyle = hatchPattern(context, 'rgba(15, 23, 42, 0.6)');
  windows.forEach((window, x) => {
    if (window.padded) context.fillRect(MARGIN.left + x * columnWidth, MARGIN.top, columnWidth, plotHeight);
  });

  const style = getComputedStyle(document.documentElement);
  context.fillStyle = style.getPropertyValue('--muted').trim() || '#475569';
  context.font = '11px system-ui, sans-serif';
  context.textAlign = 'right';
  context.textBaseline = 'middle';
  for (const dim of [0, 64, 128, 192, rows - 1]) {
    if (dim >= rows) continue;
    context.fillText(String(dim), MARGIN.left - 6, MARGIN.top + ((dim + 0.5) / rows) * plotHeight);
  }
  context.textAlign = 'center';
  context.textBaseline = 'top';
  const ticks = Math.min(columns, cssWidth < 500 ? 4 : 8);
  for (let k = 0; k < ticks; k++) {
    const index = ticks === 1 ? 0 : Math.round((k * (columns - 1)) / (ticks - 1));
    const x = MARGIN.left + ((index + 0.5) / columns) * plotWidth;
    context.fillText(`${windows[index].start_s.toFixed(1)} s`, x, MARGIN.top + plotHeight + 6);
  }
  return scale;
}
