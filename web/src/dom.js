// Small DOM helpers shared by the tabs.

export const $ = (id) => document.getElementById(id);

export function show(element, visible = true) {
  element.hidden = !visible;
}

export function showError(element, error) {
  if (!error) {
    element.hidden = true;
    element.textContent = '';
    return;
  }
  element.textContent = error.message || String(error);
  element.hidden = false;
}

// Fills a <dl> with [label, value] pairs; values are text, never HTML.
export function fillInfo(list, pairs) {
  list.replaceChildren();
  for (const [label, value, id] of pairs) {
    const term = document.createElement('dt');
    term.textContent = label;
    const description = document.createElement('dd');
    description.textContent = value;
    if (id) description.id = id;
    list.append(term, description);
  }
}

// Makes `zone` accept a dropped file and `input` a picked one; calls
// onFile(File). Enter/Space on the zone opens the picker.
export function wireDropZone(zone, input, onFile) {
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) onFile(file);
  });
  zone.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener('change', () => {
    if (input.files && input.files[0]) onFile(input.files[0]);
  });
}

// Spinner + progress bar + text for a request in flight.
export class Progress {
  constructor(box, bar, text) {
    this.box = box;
    this.bar = bar;
    this.text = text;
    this.timer = null;
  }

  start() {
    this.box.hidden = false;
    this.bar.value = 0;
    this.text.textContent = 'Uploading…';
    this.begin = performance.now();
  }

  // fraction in [0, 1] while uploading, null once the server computes.
  update(fraction) {
    if (fraction === null) {
      this.bar.removeAttribute('value');
      const tick = () => {
        const seconds = (performance.now() - this.begin) / 1000;
        this.text.textContent = `Computing… ${seconds.toFixed(1)} s`;
      };
      tick();
      clearInterval(this.timer);
      this.timer = setInterval(tick, 200);
    } else {
      this.bar.value = fraction;
      this.text.textContent = `Uploading… ${Math.round(fraction * 100)} %`;
    }
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.box.hidden = true;
    return (performance.now() - this.begin) / 1000;
  }
}
