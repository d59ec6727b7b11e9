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
const NEGATIVE = '#f97316';

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
      },
      scales: {
        x: { title: { display: true, text: 'dimension' }, ticks: { maxTicksLimit: 17 }, grid: { display: false } },
        y: { title: { display: true, text: 'value' } },
      },
    },
  });
}

export function setEmbedding(chart, values) {
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
      },
      scales: {
        x: { title: { display: true, text: 'time of the second window (s)' } },
        y: { title: { display: true, text: 'cosine similarity' }, suggestedMin: 0, suggestedMax: 1 },
      },
    },
  });
}

export function setSimilarities(chart, labels, values) {
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
    context.strokeStyle = '#0f172a';
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
    data: { datasets: [{ data: [0, 1], backgroundColor: ['#16a34a', '#e2e8f0'], borderWidth: 0 }] },
    options: {
      animation: false,
      rotation: -90,
      circumference: 180,
      cutout: '68%',
      aspectRatio: 2,
      plugins: { legend: { display: false }, tooltip: { enabled: false }, thresholdMarker: { value: 0.7 } },
    },
    plugins: [thresholdMarker],
  });
}

export function setGauge(chart, similarity, threshold) {
  const filled = Math.min(1, Math.max(0, (similarity + 1) / 2));
  chart.data.datasets[0].data = [filled, 1 - filled];
  chart.data.datasets[0].backgroundColor = [similarity > threshold ? '#16a34a' : '#dc2626', '#e2e8f0'];
  chart.options.plugins.thresholdMarker.value = threshold;
  chart.update();
}
