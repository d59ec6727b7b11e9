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

// A failed run's error, in words: a cancelled one says the server stopped.
export function showRunFailure(element, failure) {
  showError(element, failure.code === 'cancelled' ? new Error('Cancelled: the server stopped the work.') : failure);
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

// Says `text` to screen readers (the page's polite live region).
export function announce(text) {
  const region = $('announcer');
  region.textContent = '';
  // A fresh node after a tick, so that the same message is read again.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

// Makes `zone` accept dropped files and `input` picked ones; calls
// onFiles([File]). The input itself stays in the accessibility tree (only
// visually hidden): it is the keyboard's way in.
export function wireDropZone(zone, input, onFiles) {
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const files = event.dataTransfer ? [...event.dataTransfer.files] : [];
    if (files.length) onFiles(input.multiple ? files : files.slice(0, 1));
  });
  input.addEventListener('change', () => {
    if (input.files && input.files.length) onFiles([...input.files]);
  });
}

// Spinner + progress bar + text for a request in flight; `estimateS`, when
// known, is how long the server should compute.
export class Progress {
  constructor(box, bar, text) {
    this.box = box;
    this.bar = bar;
    this.text = text;
    this.timer = null;
  }

  start(estimateS = null) {
    this.box.hidden = false;
    this.bar.value = 0;
    this.text.textContent = 'Uploading…';
    this.estimateS = estimateS;
    this.begin = performance.now();
    announce('Uploading…');
  }

  // fraction in [0, 1] while uploading, null once the server computes.
  update(fraction) {
    if (fraction === null) {
      this.bar.removeAttribute('value');
      this.computeBegin = performance.now();
      const tick = () => {
        const seconds = (performance.now() - this.computeBegin) / 1000;
        let text = `Computing… ${formatSeconds(seconds)}`;
        if (this.estimateS) text += ` of about ${formatSeconds(this.estimateS)}`;
        this.text.textContent = text;
        if (this.estimateS) {
          this.bar.max = 1;
          this.bar.value = Math.min(0.99, seconds / this.estimateS);
        }
      };
      tick();
      announce('Computing…');
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

function formatSeconds(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

// Copies `text`, then says so on `button` for a moment.
export async function copyText(button, text) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed';
  }
  announce(button.textContent);
  setTimeout(() => {
    button.textContent = label;
  }, 1500);
}

// A list of warnings ([{code, message}]) as an amber note, or hidden.
export function showWarnings(element, groups) {
  element.replaceChildren();
  let count = 0;
  for (const [title, warnings] of groups) {
    for (const warning of warnings || []) {
      const line = document.createElement('p');
      line.dataset.code = warning.code;
      line.textContent = `⚠ ${title ? `${title}: ` : ''}${warning.message}`;
      element.append(line);
      count++;
    }
  }
  element.hidden = count === 0;
  return count;
}
