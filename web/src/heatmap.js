// Windows × dimensions heat map on a canvas: one column per window (time
// runs left to right), one row per dimension, diverging blue-white-red
// colours scaled to the largest magnitude.

const MARGIN = { left: 44, right: 12, top: 8, bottom: 26 };

function colour(t) {
  // t in [-1, 1]: blue (negative) through white to red (positive).
  const s = Math.min(1, Math.abs(t));
  const [r, g, b] = t < 0 ? [37, 99, 235] : [220, 38, 38];
  return [255 + (r - 255) * s, 255 + (g - 255) * s, 255 + (b - 255) * s];
}

export function drawHeatmap(canvas, windows) {
  const rows = windows.length ? windows[0].embedding.length : 0;
  const columns = windows.length;
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || 900;
  const cssHeight = 300;
  canvas.width = Math.round(cssWidth * ratio);
  canvas.height = Math.round(cssHeight * ratio);
  canvas.style.height = `${cssHeight}px`;
  const context = canvas.getContext('2d');
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, cssWidth, cssHeight);
  if (!rows || !columns) return;

  let maxAbs = 0;
  for (const window of windows)
    for (const value of window.embedding) if (value !== null) maxAbs = Math.max(maxAbs, Math.abs(value));
  maxAbs = maxAbs || 1;

  const image = new ImageData(columns, rows);
  windows.forEach((window, x) => {
    window.embedding.forEach((value, y) => {
      const [r, g, b] = value === null ? [128, 128, 128] : colour(value / maxAbs);
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

  context.fillStyle = '#475569';
  context.font = '11px system-ui, sans-serif';
  context.textAlign = 'right';
  context.textBaseline = 'middle';
  for (const dim of [0, 64, 128, 192, rows - 1]) {
    if (dim >= rows) continue;
    context.fillText(String(dim), MARGIN.left - 6, MARGIN.top + ((dim + 0.5) / rows) * plotHeight);
  }
  context.textAlign = 'center';
  context.textBaseline = 'top';
  const ticks = Math.min(columns, 8);
  for (let k = 0; k < ticks; k++) {
    const index = ticks === 1 ? 0 : Math.round((k * (columns - 1)) / (ticks - 1));
    const x = MARGIN.left + ((index + 0.5) / columns) * plotWidth;
    context.fillText(`${windows[index].start_s.toFixed(1)} s`, x, MARGIN.top + plotHeight + 6);
  }
}
