// Chart.js set-up: only the parts the page uses, registered once.
import {
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  DoughnutController,
  Filler,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from 'chart.js';

Chart.register(
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  DoughnutController,
  Filler,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
);

const POSITIVE = '#2563eb';
const NEGATIVE = '#c2410c';

// Axis and label colours from the page's (light or dark) palette.
export function applyChartTheme() {
  const style = getComputedStyle(document.documentElement);
  Chart.defaults.color = style.getPropertyValue('--muted').trim() || '#475569';
  Chart.defaults.borderColor = style.getPropertyValue('--line').trim() || '#e2e8f0';
  for (const chart of Object.values(Chart.instances)) chart.update();
}

// Diagonal stripes: a zero-padded window (see heatmap.js too).
export function hatchPattern(context, colour = 'rgba(100, 116, 139, 0.55)') {
  const tile = document.createElement('canvas');
  tile.width = 8;
  tile.height = 8;
  const pen = tile.getContext('2d');
  pen.strokeStyle = colour;
  pen.lineWidth = 2;
  pen.beginPath();
  pen.moveTo(0, 8);
  pen.lineTo(8, 0);
  pen.moveTo(-2, 2);
  pen.lineTo(2, -2);
  pen.moveTo(6, 10);
  pen.lineTo(10, 6);
  pen.stroke();
  return context.createPattern(tile, 'repeat');
}

// Hatches the plot area from category index `from` (-0.5) to the right end:
// points that involve a zero-padded window.
const paddedHatch = {
  id: 'paddedHatch',
  beforeDatasetsDraw(chart, _args, options) {
    if (options.from === undefined || options.from === null) return;
    const { left, right, top, bottom } = chart.chartArea;
    const scale = chart.scales.x;
    const count = chart.data.labels.length;
    let x = left;
    if (options.from > 0 && count > 1)
      x = (scale.getPixelForValue(options.from) + scale.getPixelForValue(options.from - 1)) / 2;
    const context = chart.ctx;
    context.save();
    context.fillStyle = hatchPattern(context);
    context.fillRect(x, top, right - x, bottom - top);
    context.restore();
  },
};

// Bar chart of one embedding (dimension -> value).
export function embeddingChart(canvas) {
  return new Chart(canvas, {
    type: 'bar',
    data: { labels: [], datasets: [{ data: [], backgroundColor: [], borderWidth: 0 }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { title: (items) => `dimension ${items[0].label}` } },
        paddedHatch: { from: null },
      },
      scales: {
        x: { title: { display: true, text: 'dimension' }, ticks: { maxTicksLimit: 17 }, grid: { display: false } },
        y: { title: { display: true, text: 'value' } },
      },
    },
    plugins: [paddedHatch],
  });
}

// `padded`: the values come from a zero-padded window (hatched behind).
export function setEmbedding(chart, values, padded = false) {
  chart.options.plugins.paddedHatch.from = padded ? 0 : null;
  chart.data.labels = values.map((_, d) => d);
  chart.data.datasets[0].data = values;
  chart.data.datasets[0].backgroundColor = values.map((v) => (v !== null && v < 0 ? NEGATIVE : POSITIVE));
  chart.update();
}

// Line of the cosine similarity between consecutive windows.
export function similarityChart(canvas) {
  return new Chart(canvas, {
    type: 'line',
    data: {
      labels: [],
      datasets: [
        {
          data: [],
          borderColor: POSITIVE,
          backgroundColor: 'rgba(37, 99, 235, 0.12)',
          fill: true,
          pointRadius: 2,
          tension: 0.2,
        },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { title: (items) => `windows starting ${items[0].label}` } },
        paddedHatch: { from: null },
      },
      scales: {
        x: { title: { display: true, text: 'time of the second window (s)' } },
        y: { title: { display: true, text: 'cosine similarity' }, suggestedMin: 0, suggestedMax: 1 },
      },
    },
    plugins: [paddedHatch],
  });
}

// `paddedFrom`: index of the first point that involves a padded window.
export function setSimilarities(chart, labels, values, paddedFrom = null) {
  chart.options.plugins.paddedHatch.from = paddedFrom;
  chart.data.labels = labels;
  chart.data.datasets[0].data = values;
  chart.update();
}

// Draws the threshold as a tick across the gauge's arc.
const thresholdMarker = {
  id: 'thresholdMarker',
  afterDatasetsDraw(chart, _args, options) {
    const arc = chart.getDatasetMeta(0).data[0];
    if (!arc || options.value === undefined) return;
    const { x, y, innerRadius, outerRadius } = arc.getProps(['x', 'y', 'innerRadius', 'outerRadius'], true);
    const angle = Math.PI + ((options.value + 1) / 2) * Math.PI;
    const context = chart.ctx;
    context.save();
    context.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue('--ink').trim() || '#0f172a';
    context.lineWidth = 3;
    context.beginPath();
    context.moveTo(x + Math.cos(angle) * (innerRadius - 6), y + Math.sin(angle) * (innerRadius - 6));
    context.lineTo(x + Math.cos(angle) * (outerRadius + 6), y + Math.sin(angle) * (outerRadius + 6));
    context.stroke();
    context.restore();
  },
};

// Half-doughnut gauge of a similarity in [-1, 1] with the threshold marked.
export function gaugeChart(canvas) {
  return new Chart(canvas, {
    type: 'doughnut',
    data: { datasets: [{ data: [0, 1], backgroundColor: ['#15803d', '#cbd5e1'], borderWidth: 0 }] },
    options: {
      animation: false,
      rotation: -90,
      circumference: 180,
      cutout: '68%',
      maintainAspectRatio: false,
      plugins: { legend: { display: false }, tooltip: { enabled: false }, thresholdMarker: { value: 0.7 } },
    },
    plugins: [thresholdMarker],
  });
}

export function setGauge(chart, similarity, threshold) {
  const filled = Math.min(1, Math.max(0, (similarity + 1) / 2));
  chart.data.datasets[0].data = [filled, 1 - filled];
  chart.data.datasets[0].backgroundColor = [similarity > threshold ? '#15803d' : '#dc2626', '#cbd5e1'];
  chart.options.plugins.thresholdMarker.value = threshold;
  chart.update();
}
